#pragma once

#include <map>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "manifold/actors/model.hpp"

namespace manifold {
class cluster_directory;
class node_metrics;
}

namespace manifold::connectors {
class ownership_fence;
}

namespace manifold::supervision {

class lease_store;

/// What the ownership worker of a node needs.
struct ownership_worker_deps {
  std::shared_ptr<const node_config> config;
  /// This node's connector groups by connector name; the worker places the non-pinned ones.
  std::map<std::string, caf::actor> supervisors;
  std::shared_ptr<cluster_directory> directory;
  /// Shared with this node's movable connectors: moved forward after each lease renewal.
  std::shared_ptr<connectors::ownership_fence> fence;
  std::shared_ptr<lease_store> store;
  std::string address; ///< Where other nodes reach this one (`host:port`).
  std::string api_url; ///< This node's gateway.
  std::shared_ptr<node_metrics> metrics; ///< May be null.
};

/// Spawns the node's ownership worker (a detached actor: its store calls block). Every
/// `lease_ttl / 10` (at least 100 ms, at most 1 s) it runs one `ownership_agent::step`, moves
/// the fence, places the connectors the agent assigned here and removes the ones it took away,
/// and publishes leader and owners to the directory.
///
/// Protocol (the gateway's cluster admin):
/// - `(drain_atom, std::string node, bool on) -> std::string`
/// - `(move_atom, std::string connector, std::string node) -> std::string`
/// - `(cluster_atom) -> std::string`: the agent's view as JSON.
/// - `(stop_atom) -> bool`: closes the fence, removes every connector it placed and revokes the
///   lease so that other nodes take over at once (graceful shutdown).
caf::actor spawn_ownership_worker(caf::actor_system& sys, ownership_worker_deps deps);

} // namespace manifold::supervision
