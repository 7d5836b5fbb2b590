#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

/// The node's Prometheus metrics. One instance per node, shared by every component; the metric
/// objects are thread-safe, so actors and I/O threads update them directly.
namespace manifold {

enum class connector_state : std::uint8_t; // messages.hpp; declared here to keep CAF out.

class node_metrics {
public:
  node_metrics();

  prometheus::Registry& registry() { return *registry_; }
  std::shared_ptr<prometheus::Registry> registry_ptr() { return registry_; }

  /// Prometheus text exposition format of every metric.
  std::string serialize() const;

  prometheus::Counter& readings(const std::string& connector);
  prometheus::Counter& action_calls(const std::string& connector, const std::string& action,
                                    const std::string& outcome);
  prometheus::Histogram& action_latency(const std::string& connector);
  prometheus::Counter& http_requests(const std::string& route, int status);
  prometheus::Histogram& http_latency(const std::string& route);
  prometheus::Counter& connector_restarts(const std::string& connector);
  prometheus::Gauge& connector_up(const std::string& connector);
  /// `manifold_connector_state{connector,state}`: one series per state, 1 for the current one
  /// and 0 for the others, so `manifold_connector_state{state="failed"} == 1` is an alert rule.
  void set_connector_state(const std::string& connector, connector_state state);
  /// `manifold_connector_queue_depth{connector}`: readings waiting for the data bus.
  prometheus::Gauge& connector_queue_depth(const std::string& connector);
  /// `manifold_connector_dropped_total{connector}`: readings dropped by a full queue.
  prometheus::Counter& connector_dropped(const std::string& connector);
  /// `manifold_device_up{connector,device}`: 1 while the device answers, 0 while it does not.
  prometheus::Gauge& device_up(const std::string& connector, const std::string& device);
  /// `manifold_connector_last_restart_timestamp_seconds{connector}`: Unix time of the last
  /// restart of the group (after a crash or by hand); 0 if it never restarted.
  prometheus::Gauge& connector_last_restart(const std::string& connector);
  prometheus::Counter& stream_dropped();
  prometheus::Gauge& stream_subscribers();
  /// `manifold_cluster_members{health}` and `manifold_cluster_leader`.
  void set_cluster_members(std::size_t alive, std::size_t down, bool leader);
  /// `manifold_cluster_lease_healthy` and `manifold_cluster_fence_remaining_seconds`: a node
  /// whose lease is not healthy is about to stop (or has stopped) its movable connectors.
  void set_ownership(bool lease_healthy, double fence_remaining_seconds);

private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* readings_;
  prometheus::Family<prometheus::Counter>* action_calls_;
  prometheus::Family<prometheus::Histogram>* action_latency_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Histogram>* http_latency_;
  prometheus::Family<prometheus::Counter>* restarts_;
  prometheus::Family<prometheus::Gauge>* connector_up_;
  prometheus::Family<prometheus::Gauge>* connector_state_;
  prometheus::Family<prometheus::Gauge>* queue_depth_;
  prometheus::Family<prometheus::Counter>* dropped_;
  prometheus::Family<prometheus::Gauge>* device_up_;
  prometheus::Family<prometheus::Gauge>* last_restart_;
  prometheus::Family<prometheus::Counter>* stream_dropped_;
  prometheus::Family<prometheus::Gauge>* stream_subscribers_;
  prometheus::Family<prometheus::Gauge>* cluster_members_;
  prometheus::Family<prometheus::Gauge>* cluster_leader_;
  prometheus::Family<prometheus::Gauge>* lease_healthy_;
  prometheus::Family<prometheus::Gauge>* fence_remaining_;
};

} // namespace manifold
