#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/model.hpp"

namespace manifold::supervision {

/// What the node actor works with.
struct cluster_node_deps {
  /// Uses `id`, `labels` and `cluster.*` (host, port, seeds, timings, tls, connectors_digest).
  std::shared_ptr<const node_config> config;
  caf::actor bus;
  caf::actor gateway;
  /// This node's connector supervisors by connector name; peers reach them for location
  /// transparency, and the node asks them `(status_atom)` every heartbeat.
  std::map<std::string, caf::actor> supervisors;
  std::shared_ptr<cluster_directory> directory;
  std::string api_url; ///< This node's gateway base URL, as peers should call it.
  /// Tests set another version to check that peers refuse it.
  std::uint32_t protocol_version = cluster_protocol_version;
};

/// Prepares an actor system config for clustering, before the system starts: loads the
/// middleman (and, with `cfg.cluster.tls` enabled, CAF's openssl manager with `openssl.*` set
/// from it) and registers the message types (`register_cluster_types`).
void configure_cluster(caf::actor_system_config& sys_cfg, const node_config& cfg);

/// Spawns the node actor, publishes it on `cluster.host:cluster.port` (through the openssl
/// manager when TLS is configured) and starts joining the seeds. Returns the actor and the bound
/// port, or an error naming what failed (port taken, TLS files unreadable). The system must have
/// been configured with `configure_cluster`.
///
/// The node actor:
/// - joins each seed asynchronously (the middleman actor's connect, never a blocking call on an
///   actor thread), and retries seeds, down members and members it heard of every few heartbeats
///   for as long as it runs, so a node whose link returns rejoins without a restart;
/// - handshakes with built-in types only: `(hello_atom, uint32 version, cluster name, node id,
///   connectors digest)`, answered with the same tuple of the peer; a different version,
///   cluster name or digest (or a duplicate node id) is refused on both sides and logged, and
///   recorded in `directory->refusals()` / `directory->seeds()`;
/// - then exchanges `node_info` (`(join_atom, node_info) -> node_info`), and sends every peer a
///   `heartbeat` each `heartbeat_interval`;
/// - marks a peer down after `failure_timeout` without a heartbeat, or at once when its node
///   actor goes down (connection lost);
/// - subscribes its bus to every peer's bus when the peer joins, so local sinks see the readings
///   of the whole cluster;
/// - publishes membership, running connectors and (without etcd) the leader, the alive member
///   with the lowest id, to `directory`.
///
/// Ending the actor (e.g. `caf::exit_reason::user_shutdown`) leaves the cluster as a crash
/// would: peers see the connection drop.
caf::expected<std::pair<caf::actor, std::uint16_t>>
start_cluster_node(caf::actor_system& sys, cluster_node_deps deps);

/// The address other nodes dial for this one: `cluster.advertise`, else the listen host (in
/// brackets when IPv6) with the bound port.
std::string advertised_address(const node_config& cfg, std::uint16_t bound_port);

} // namespace manifold::supervision
