#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "manifold/supervision/memory_lease_store.hpp"
#include "manifold/supervision/ownership.hpp"
#include "manifold/supervision/placement.hpp"

/// Several nodes' ownership agents against one in-memory lease store, in virtual time, with
/// crashes, pauses and partitions, and a checker for the two promises of connector ownership.
namespace manifold::testkit {

struct cluster_node_spec {
  std::string id;
  std::map<std::string, std::string> labels;
};

struct cluster_simulation_options {
  std::uint64_t seed = 0;
  std::chrono::milliseconds lease_ttl{5000};
  std::chrono::milliseconds fence_margin{1500};
  /// A node steps every `step_interval` of its own clock, scaled by a random factor in
  /// [1 - step_jitter, 1 + step_jitter], counted from the end of its previous step.
  std::chrono::milliseconds step_interval{1000};
  double step_jitter = 0.2;
  /// Each way of each store call takes a random time up to this. The store serves calls one at
  /// a time, so a call also waits for the calls other nodes made before it.
  std::chrono::milliseconds max_latency{5};
  /// A call to the store from a node cut off from it fails after this long.
  std::chrono::milliseconds unreachable_delay{50};
  /// The runtime needs this long to stop a connector it was told to stop.
  std::chrono::milliseconds stop_delay{100};
  /// A device operation a connector began just before its fence passed may still act this long
  /// after it (the connector checks the fence before an operation, not during it).
  std::chrono::milliseconds io_overrun{200};
  /// Each node's clock runs at a rate 1 + d with |d| <= max_clock_drift (drawn per node).
  double max_clock_drift = 0.01;
  /// Whether connectors check `valid_until()` before driving their devices. Off: a connector
  /// drives until the runtime stops it (to show that the fence is needed).
  bool connectors_check_fence = true;
  std::chrono::milliseconds boot_settle{0};
};

/// A broken promise: `two drivers` (two nodes drove one connector at the same instant) or
/// `no failover` (a connector whose node failed had no driver again within the bound).
struct cluster_violation {
  std::string kind;
  std::chrono::milliseconds at; ///< Virtual time since the start of the run.
  std::string connector;
  std::string detail;
};

/// A virtual-time cluster: each node runs the real `ownership_agent`, stepped like the node's
/// worker does, against one `memory_lease_store`; a node's runtime starts and stops connectors
/// as the agent says. One seed replays a run exactly.
///
/// A connector *drives* on a node at an instant when it runs there, the node has not crashed,
/// and (connectors checking the fence) the node's clock is before its agent's `valid_until()`
/// plus `io_overrun`. Driving changes only at events, so checking after every instant that has
/// events checks every instant. A paused node (SIGSTOP) keeps its connectors running: they
/// may still drive while the fence allows, as a device operation in flight would.
///
///     cluster_simulation sim{{{"a", {{"role", "server"}}}, {"b", {{"role", "server"}}}},
///                            connectors, opts};
///     sim.run_for(10s);
///     sim.crash("a");
///     sim.run_for(sim.failover_bound() + 1s);
///     EXPECT_TRUE(sim.violations().empty()) << sim.timeline();
class cluster_simulation {
public:
  cluster_simulation(std::vector<cluster_node_spec> nodes,
                     std::vector<supervision::connector_placement> connectors,
                     cluster_simulation_options options = {});
  ~cluster_simulation();
  cluster_simulation(const cluster_simulation&) = delete;
  cluster_simulation& operator=(const cluster_simulation&) = delete;

  /// Processes every event up to now + `d` and checks the promises at each instant.
  void run_for(std::chrono::milliseconds d);
  std::chrono::milliseconds elapsed() const;

  // -- faults, effective at the current instant ------------------------------------------------
  /// The process dies: its connectors stop at once, its lease lives on until it expires.
  void crash(const std::string& node);
  /// A crashed node starts again with a new agent (a new lease) and nothing running.
  void restart(const std::string& node);
  /// SIGSTOP for `d`: no steps, no stops; running connectors stay running.
  void pause(const std::string& node, std::chrono::milliseconds d);
  /// Cuts `nodes` off from the store (their calls fail with `unavailable`).
  void partition(const std::vector<std::string>& nodes);
  /// Every node reaches the store again.
  void heal();

  // -- admin, through one node's agent ---------------------------------------------------------
  caf::error drain(const std::string& via, const std::string& node, bool on);
  caf::error move(const std::string& via, const std::string& connector, const std::string& node);

  // -- observation -----------------------------------------------------------------------------
  std::set<std::string> drivers(const std::string& connector) const;
  std::set<std::string> running(const std::string& node) const;
  const supervision::ownership_agent& agent(const std::string& node) const;
  supervision::memory_lease_store& store();
  /// Whether the node is up, not paused and not cut off from the store.
  bool healthy(const std::string& node) const;

  /// How long after a node's failure a failover connector must drive again: the lease ttl,
  /// two steps (the leader notices, then the new owner acquires), and store round trips.
  std::chrono::milliseconds failover_bound() const;

  /// Adds a `not settled` violation for each failover connector that a healthy, non-draining,
  /// matching node could drive but nobody drives now. For the end of a run, after a quiet time.
  void check_settled();

  const std::vector<cluster_violation>& violations() const;
  /// The last events of the run, one line each, for diagnosing a failure.
  std::string timeline() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// One random run, fully determined by `seed`: the cluster settles, then a dozen faults
/// (crash, restart, pause up to 14.5 s, a node or two cut off from the store, heal) at random
/// instants, then every node is healed and restarted and the run continues for twice the
/// failover bound before `check_settled()`. The seed also draws the store latency (up to 30 ms)
/// and whether the leader waits for the others at boot. `opts.seed` is overwritten.
std::unique_ptr<cluster_simulation> random_cluster_run(
  std::uint64_t seed, const std::vector<cluster_node_spec>& nodes,
  const std::vector<supervision::connector_placement>& connectors,
  cluster_simulation_options opts = {});

/// Every violation of `sim`, one per line, then its timeline.
std::string describe_violations(const cluster_simulation& sim);

} // namespace manifold::testkit
