#pragma once

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
  prometheus::Counter& stream_dropped();
  prometheus::Gauge& stream_subscribers();

private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>* readings_;
  prometheus::Family<prometheus::Counter>* action_calls_;
  prometheus::Family<prometheus::Histogram>* action_latency_;
  prometheus::Family<prometheus::Counter>* http_requests_;
  prometheus::Family<prometheus::Histogram>* http_latency_;
  prometheus::Family<prometheus::Counter>* restarts_;
  prometheus::Family<prometheus::Gauge>* connector_up_;
  prometheus::Family<prometheus::Counter>* stream_dropped_;
  prometheus::Family<prometheus::Gauge>* stream_subscribers_;
};

} // namespace manifold
