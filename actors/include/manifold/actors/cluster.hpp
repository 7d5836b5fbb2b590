#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>

#include "manifold/actors/messages.hpp"
#include "manifold/actors/model.hpp"

/// What a node knows about the cluster it is part of, and the messages nodes exchange.
namespace manifold {

// -- wire protocol ---------------------------------------------------------------------------------

/// The version of the messages nodes exchange. Nodes compare it in the handshake, which uses
/// only CAF's built-in types, and refuse a peer with another version before any Manifold type
/// crosses. Raise it whenever a type registered by `register_cluster_types` changes.
constexpr std::uint32_t cluster_protocol_version = 1;

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using join_atom = caf::atom_constant<caf::atom("join")>;
using heartbeat_atom = caf::atom_constant<caf::atom("heartbeat")>;

/// One connector a node runs, with its supervisor's state.
struct running_connector {
  std::string name;
  connector_state state = connector_state::starting;
};

/// What a node tells a peer about itself once both accepted the handshake.
struct node_info {
  std::string id;
  std::string address; ///< `host:port` where the node accepts other nodes.
  std::string api_url; ///< Base URL of its gateway.
  std::map<std::string, std::string> labels;
  caf::actor node;    ///< Its cluster_node actor.
  caf::actor bus;     ///< Its data bus.
  caf::actor gateway; ///< Its gateway actor.
  /// Its connector supervisors by connector name (running or not).
  std::map<std::string, caf::actor> supervisors;
};

/// Sent by every node to every peer it accepted, each heartbeat interval.
struct heartbeat {
  std::string id;
  std::string health; ///< `ready` or `degraded`, as the node's /readyz would say.
  std::vector<running_connector> running;
  /// `id -> address` of every member the sender sees alive (itself included): how a node
  /// learns the whole cluster through one seed.
  std::map<std::string, std::string> members;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, running_connector& x) {
  return f(caf::meta::type_name("manifold.running_connector"), x.name, x.state,
           caf::meta::load_callback([&x] {
             return detail::check_enum(x.state, connector_state::stopped, "connector state");
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("manifold.node_info"), x.id, x.address, x.api_url, x.labels,
           x.node, x.bus, x.gateway, x.supervisors);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, heartbeat& x) {
  return f(caf::meta::type_name("manifold.heartbeat"), x.id, x.health, x.running, x.members);
}

/// Registers every Manifold type that crosses nodes, under `manifold.v<N>.<name>`. Call it on
/// the config of every node's actor system before the system starts.
void register_cluster_types(caf::actor_system_config& cfg);

// -- directory -------------------------------------------------------------------------------------

enum class member_health : std::uint8_t { alive, down };

const char* to_string(member_health h);

/// One node of the cluster as this node sees it.
struct cluster_member {
  node_info info;
  bool self = false;
  member_health health = member_health::alive;
  std::chrono::steady_clock::time_point last_seen; ///< Last heartbeat (or join).
  std::chrono::steady_clock::time_point since;     ///< When `health` last changed.
  std::string reason;      ///< Why it is down, e.g. `no heartbeat for 3.2 s`.
  std::string node_health; ///< From its heartbeat: `ready` or `degraded`.
  std::vector<running_connector> running;
};

/// A seed address and how joining through it went.
struct seed_status {
  std::string address;
  std::uint64_t attempts = 0;
  bool connected = false;  ///< A member reached through it is alive.
  std::string member;      ///< Id of the node found there, once known.
  std::string last_error;  ///< Empty after a success.
};

/// A peer this node refused in the handshake, and why.
struct refusal {
  std::string peer; ///< Its node id, or its address when it never said.
  std::string reason;
  std::chrono::steady_clock::time_point when;
};

/// Where the requests for one connector go.
struct connector_location {
  enum class kind : std::uint8_t { local, remote, unavailable };
  kind where = kind::unavailable;
  std::string node;      ///< The owner's node id; empty when there is none.
  caf::actor supervisor; ///< The owner's supervisor of the connector (local or remote).
  caf::actor bus;        ///< The owner's data bus.
  std::string reason;    ///< Why it is unavailable, for a 503 body.
};

/// Who leads the cluster, and how it was chosen: `etcd` (the ownership worker won the election)
/// or `lowest id` (no etcd: the alive member with the lowest id, for display only).
struct leader_info {
  std::string id;
  std::string chosen_by;
};

/// The cluster as this node sees it: members, leader, connector owners. Written by the
/// cluster_node actor (membership, heartbeats) and the ownership worker (owners and leader in
/// etcd mode), read by the gateway. Thread-safe; every read returns a copy.
class cluster_directory {
public:
  /// `config` gives this node's id and every connector's placement.
  explicit cluster_directory(std::shared_ptr<const node_config> config);

  const node_config& config() const { return *config_; }
  const std::string& self_id() const { return config_->id; }

  // -- membership (cluster_node) -------------------------------------------------------------------

  /// This node's own entry; always alive.
  void set_self(node_info info);
  /// A peer passed the handshake and sent its info: alive from `now` on.
  void member_joined(node_info info, std::chrono::steady_clock::time_point now);
  /// A heartbeat from an alive or down member (a down one is alive again). False when `hb.id`
  /// is no member.
  bool heartbeat_received(const heartbeat& hb, std::chrono::steady_clock::time_point now);
  /// Marks `id` down with `reason`; no effect on an unknown or already down member.
  void mark_down(const std::string& id, const std::string& reason,
                 std::chrono::steady_clock::time_point now);
  /// What this node runs now (the cluster_node asks its supervisors every heartbeat).
  void set_local_running(std::vector<running_connector> running, std::string health);

  std::vector<cluster_member> members() const; ///< Ordered by id; self included.
  std::optional<cluster_member> member(const std::string& id) const;
  bool is_alive(const std::string& id) const;

  void set_seed(seed_status s);
  std::vector<seed_status> seeds() const;
  void add_refusal(std::string peer, std::string reason,
                   std::chrono::steady_clock::time_point now);
  /// The last few, oldest first; one per peer and reason (the latest time it happened).
  std::vector<refusal> refusals() const;

  // -- leader and owners (ownership worker in etcd mode) -------------------------------------------

  void set_leader(std::string id, std::string chosen_by);
  leader_info leader() const;
  /// Replaces every owner of a movable/selector-placed connector: connector name -> node id.
  /// Pinned connectors need no entry: their pinned node owns them.
  void set_owners(std::map<std::string, std::string> owners);
  void set_owner(const std::string& connector, const std::string& node);
  /// Why connectors have no node (from the leader's placement): `locate` gives these reasons.
  void set_unplaced(std::map<std::string, std::string> reasons);
  void clear_owner(const std::string& connector);
  /// The owner of `connector`: its pinned node, or the one set; nullopt when none.
  std::optional<std::string> owner(const std::string& connector) const;

  /// Where requests for `connector` go. Unavailable (with a reason a user can act on) when the
  /// connector is unknown, has no owner, or its owner is down, unknown or lacks a supervisor.
  connector_location locate(const std::string& connector) const;

private:
  std::optional<std::string> owner_locked(const std::string& connector) const;

  std::shared_ptr<const node_config> config_;
  mutable std::mutex mutex_;
  std::map<std::string, cluster_member> members_;
  std::map<std::string, seed_status> seeds_;
  std::vector<refusal> refusals_;
  leader_info leader_;
  std::map<std::string, std::string> owners_;
  std::map<std::string, std::string> unplaced_;
};

/// `4.2 s`: a duration as the directory's reasons show it.
std::string format_seconds(std::chrono::steady_clock::duration d);

} // namespace manifold
