#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "manifold/actors/model.hpp"
#include "manifold/supervision/lease_store.hpp"
#include "manifold/supervision/placement.hpp"

/// One node's part in deciding which node runs each movable connector, with the decisions kept
/// in a `lease_store` (etcd in production, `memory_lease_store` in the testkit).
namespace manifold::supervision {

/// What a node tells the cluster about itself; stored as JSON in its member key.
struct cluster_member_info {
  std::string id;
  std::map<std::string, std::string> labels;
  bool draining = false;
  std::string address; ///< `host:port` where other nodes reach it.
  std::string api_url; ///< Its HTTP API, for redirects and display.
  /// Digest of its `connectors` section. The member that registered first sets the cluster's;
  /// a node with another one takes no connector (see `ownership_agent`).
  std::string digest;
};

struct ownership_settings {
  /// Every key lives under this prefix, which ends in `/` (`/manifold/plant/`).
  std::string prefix = "/manifold/manifold/";
  std::chrono::milliseconds lease_ttl{5000};
  /// How long before the lease can expire in the store the node stops its connectors.
  std::chrono::milliseconds fence_margin{1500};
  /// How often the lease is kept alive; zero means a third of the ttl.
  std::chrono::milliseconds renew_interval{0};
  /// A leader that finds no assignment at all (the cluster just booted) waits this long after
  /// its own start before placing, so the other nodes can register first and the connectors
  /// spread over them instead of landing on whichever node came up first. Zero: no wait.
  std::chrono::milliseconds boot_settle{0};

  /// From a node's configuration: `<etcd.prefix>/<cluster.name>/`, the etcd ttl and margin, and
  /// a boot settle of half the ttl.
  static ownership_settings from(const cluster_config& cluster);

  /// Empty when usable; otherwise what is wrong (the margin must leave room to renew).
  std::string problem() const;
  std::chrono::milliseconds effective_renew_interval() const;
};

/// The cluster as one node last read it from the store.
struct ownership_view {
  std::string self;
  std::string leader;                          ///< Empty when no node leads.
  std::vector<cluster_member_info> members;    ///< Nodes whose lease is alive.
  std::map<std::string, std::string> assignments; ///< connector -> node (leader's decision).
  /// connector -> node that holds it (owner key); pinned connectors map to their node.
  std::map<std::string, std::string> owners;
  std::set<std::string> draining;
  std::map<std::string, std::string> unplaced; ///< connector -> why it has no node.
  std::map<std::string, std::string> moves;    ///< Pending move requests: connector -> node.
  bool lease_healthy = false;                  ///< This node holds a lease it renewed in time.
  std::chrono::steady_clock::time_point valid_until{};
  std::string last_error; ///< The last store failure, empty once a step succeeded.
};

/// One node's side of connector ownership, driven by `step(now, running)`: plain C++ without
/// threads or actors, so a worker thread against etcd and the testkit's virtual-time
/// simulation against a `memory_lease_store` run the same code.
///
/// Per step, the agent keeps its lease alive (every `renew_interval`), registers its member key
/// bound to the lease, campaigns for the leader key (create-if-absent, bound to the lease), as
/// leader writes the assignment of every non-pinned connector (`place`), and for the connectors
/// assigned to it takes the owner key (create-if-absent, bound to the lease) before asking to
/// start them. A connector no longer assigned here is stopped first and its owner key released
/// only in a later step, once it no longer appears in `running`; the next owner can take the
/// key only after that, so a handover never overlaps.
///
/// Self-fencing. The node trusts its ownership until
///     valid_until = S + ttl - fence_margin,
/// where S is the time (on this node's steady clock) at which the last SUCCESSFUL keep-alive
/// (or grant) was sent; the agent uses the `now` of the step that sent it, which is no later.
/// The store receives that call at some R >= S and expires the lease no earlier than R + ttl,
/// deleting the owner keys; only then can another node create them, and it starts a connector
/// only after its create returned. So the old owner's last instant, before S + ttl - margin,
/// lies strictly before the new owner's first one, whatever the network delays, as long as the
/// fence is enforced where the device is driven (connectors check `valid_until()` before each
/// device operation). The margin absorbs what that argument leaves out: a device operation
/// already in flight when the fence passes, the node's clock running slower than the store's,
/// and a step that comes late. Measuring from the *answer* of the keep-alive instead of its
/// sending would break the argument by up to the round-trip time. The testkit's
/// `cluster_simulation` models call latency, clock drift and overrunning device operations and
/// catches a margin that does not cover them.
///
/// Membership is exclusive: a node registers its member key only if no other lease holds that
/// id (another process with the same id, or this node's previous run until its lease expires);
/// until it could, it takes no connector and says why in `view().last_error`. The member that
/// registered first (lowest create revision) sets the cluster's `connectors` digest; a node with
/// another digest neither campaigns nor takes connectors, and the leader places connectors only
/// on members with its own digest, so nodes that know a connector differently never drive it.
///
/// Past `valid_until`, `step` asks to stop every running non-pinned connector and acquires
/// nothing until a keep-alive succeeds again. A lease the store no longer knows (expired while
/// the node was cut off or paused) is replaced by a new one and the node starts over.
///
/// Thread safety: `step`, `drain` and `move` serialise on one mutex (so a store call never
/// runs concurrently on the same agent); `view` and `valid_until` only take a short lock.
class ownership_agent {
public:
  using clock = std::chrono::steady_clock;

  /// Throws std::invalid_argument when `settings.problem()` is not empty. `connectors` is the
  /// whole `connectors` section (pinned ones are listed in the view only). `store` must outlive
  /// the agent.
  ownership_agent(cluster_member_info self, std::vector<connector_placement> connectors,
                  lease_store& store, ownership_settings settings);

  struct actions {
    std::vector<std::string> start; ///< Owned here now; start them.
    std::vector<std::string> stop;  ///< Stop them; report them in `running` until stopped.
  };

  /// One round against the store. `now` must be taken before the call (it stands for the send
  /// time of the calls made inside); `running` is every connector that runs on this node now.
  actions step(clock::time_point now, const std::set<std::string>& running);

  /// Until when this node may drive the connectors it owns; in the past while it holds no
  /// lease. Connectors check it before each device operation.
  clock::time_point valid_until() const;

  ownership_view view() const;

  /// Marks `node` as draining (its failover connectors move away, it takes no new ones) or
  /// ends that. Draining a node that is not a member is refused (`errc::not_found`); ending
  /// it is always accepted.
  caf::error drain(const std::string& node, bool on);

  /// Asks the leader to run `connector` on `node`. Refused with the reason when the connector
  /// is unknown (`not_found`), pinned, or the node is not alive, drains, or does not match the
  /// connector's selector (`conflict`).
  caf::error move(const std::string& connector, const std::string& node);

  /// Gives everything up at shutdown: revokes the lease, so the owner keys vanish at once and
  /// other nodes take over without waiting for the ttl. Refused (`conflict`) while a non-pinned
  /// connector still appears in `running`.
  caf::error resign(const std::set<std::string>& running);

  const cluster_member_info& self() const { return self_; }

  /// The members this node can reach over the cluster's own links (the runtime passes the
  /// alive members of its membership view before each step). A leader places connectors only
  /// on those, and a move only goes to one: a node registered in the store that the mesh
  /// refused (wrong TLS certificate, say) could never be called by any gateway. Never set (the
  /// testkit): every member counts as reachable.
  void set_reachable(std::set<std::string> members);

private:
  struct snapshot; // What one range over the prefix returned, parsed.

  bool managed(const std::string& connector) const;
  const connector_placement* find_connector(const std::string& name) const;
  bool renew(clock::time_point now);
  void lose_lease(const std::string& why);
  caf::error read(snapshot& out);
  placement_input placement_of(const snapshot& s) const;
  caf::error lead(clock::time_point now, snapshot& s);
  caf::error own(snapshot& s, const std::set<std::string>& running, actions& out);
  void publish_view(const snapshot& s, bool lease_healthy);
  void note_error(const caf::error& err, const char* during);
  std::string key(const std::string& kind, const std::string& name) const;

  cluster_member_info self_;
  std::vector<connector_placement> connectors_;
  lease_store& store_;
  ownership_settings settings_;

  std::mutex step_mutex_; // One store conversation at a time.
  std::optional<std::set<std::string>> reachable_;
  std::string out_reason_; // Why this node takes no part in ownership now; empty when it does.
  lease_id lease_ = 0;
  clock::time_point started_{};
  bool started_known_ = false;
  clock::time_point last_renew_sent_{};
  bool registered_ = false;
  bool registered_draining_ = false;

  mutable std::mutex view_mutex_;
  clock::time_point valid_until_{};
  ownership_view view_;
  std::string logged_error_; // Last error logged, to log each new failure once.
};

} // namespace manifold::supervision
