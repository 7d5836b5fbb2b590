#include "manifold/actors/metrics.hpp"

#include <prometheus/text_serializer.h>

#include "manifold/actors/messages.hpp"

namespace manifold {

namespace {

const std::vector<double>& latency_buckets() {
  static const std::vector<double> buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                           0.05,   0.1,   0.25,   0.5,   1,     2.5, 5, 10};
  return buckets;
}

} // namespace

node_metrics::node_metrics() : registry_(std::make_shared<prometheus::Registry>()) {
  auto& r = *registry_;
  readings_ = &prometheus::BuildCounter()
                 .Name("manifold_readings_total")
                 .Help("Readings published to the data bus, by connector")
                 .Register(r);
  action_calls_ = &prometheus::BuildCounter()
                     .Name("manifold_action_calls_total")
                     .Help("Device action calls, by connector, action and outcome")
                     .Register(r);
  action_latency_ = &prometheus::BuildHistogram()
                       .Name("manifold_action_duration_seconds")
                       .Help("Time from an action request to its result, by connector")
                       .Register(r);
  http_requests_ = &prometheus::BuildCounter()
                      .Name("manifold_http_requests_total")
                      .Help("HTTP requests served by the gateway, by route and status")
                      .Register(r);
  http_latency_ = &prometheus::BuildHistogram()
                     .Name("manifold_http_request_duration_seconds")
                     .Help("HTTP request handling time, by route")
                     .Register(r);
  restarts_ = &prometheus::BuildCounter()
                 .Name("manifold_connector_restarts_total")
                 .Help("Restarts of a connector group after a crash")
                 .Register(r);
  connector_up_ = &prometheus::BuildGauge()
                     .Name("manifold_connector_up")
                     .Help("1 while the connector group runs, 0 while it restarts or failed")
                     .Register(r);
  connector_state_ = &prometheus::BuildGauge()
                        .Name("manifold_connector_state")
                        .Help("1 for the connector group's current state, 0 for the others")
                        .Register(r);
  queue_depth_ = &prometheus::BuildGauge()
                    .Name("manifold_connector_queue_depth")
                    .Help("Readings waiting in the connector's queue for the data bus")
                    .Register(r);
  device_up_ = &prometheus::BuildGauge()
                  .Name("manifold_device_up")
                  .Help("1 while a device answers its connector, 0 while it is unreachable")
                  .Register(r);
  dropped_ = &prometheus::BuildCounter()
                .Name("manifold_connector_dropped_total")
                .Help("Readings dropped because the connector's queue was full")
                .Register(r);
  last_restart_ = &prometheus::BuildGauge()
                     .Name("manifold_connector_last_restart_timestamp_seconds")
                     .Help("Unix time of the connector group's last restart")
                     .Register(r);
  stream_dropped_ = &prometheus::BuildCounter()
                       .Name("manifold_stream_dropped_total")
                       .Help("Readings dropped because a WebSocket subscriber fell behind")
                       .Register(r);
  stream_subscribers_ = &prometheus::BuildGauge()
                           .Name("manifold_stream_subscribers")
                           .Help("Open WebSocket reading streams")
                           .Register(r);
  cluster_members_ = &prometheus::BuildGauge()
                        .Name("manifold_cluster_members")
                        .Help("Cluster members this node sees, by health (alive, down)")
                        .Register(r);
  cluster_leader_ = &prometheus::BuildGauge()
                       .Name("manifold_cluster_leader")
                       .Help("1 while this node leads the cluster, else 0")
                       .Register(r);
  lease_healthy_ = &prometheus::BuildGauge()
                      .Name("manifold_cluster_lease_healthy")
                      .Help("1 while this node holds an etcd lease it renewed in time, else 0")
                      .Register(r);
  fence_remaining_ = &prometheus::BuildGauge()
                        .Name("manifold_cluster_fence_remaining_seconds")
                        .Help("How long this node may still drive its movable connectors "
                              "without renewing its lease")
                        .Register(r);
}

void node_metrics::set_cluster_members(std::size_t alive, std::size_t down, bool leader) {
  cluster_members_->Add({{"health", "alive"}}).Set(static_cast<double>(alive));
  cluster_members_->Add({{"health", "down"}}).Set(static_cast<double>(down));
  cluster_leader_->Add({}).Set(leader ? 1 : 0);
}

void node_metrics::set_ownership(bool lease_healthy, double fence_remaining_seconds) {
  lease_healthy_->Add({}).Set(lease_healthy ? 1 : 0);
  fence_remaining_->Add({}).Set(fence_remaining_seconds);
}

std::string node_metrics::serialize() const {
  return prometheus::TextSerializer{}.Serialize(registry_->Collect());
}

prometheus::Counter& node_metrics::readings(const std::string& connector) {
  return readings_->Add({{"connector", connector}});
}

prometheus::Counter& node_metrics::action_calls(const std::string& connector,
                                                const std::string& action,
                                                const std::string& outcome) {
  return action_calls_->Add({{"connector", connector}, {"action", action}, {"outcome", outcome}});
}

prometheus::Histogram& node_metrics::action_latency(const std::string& connector) {
  return action_latency_->Add({{"connector", connector}}, latency_buckets());
}

prometheus::Counter& node_metrics::http_requests(const std::string& route, int status) {
  return http_requests_->Add({{"route", route}, {"status", std::to_string(status)}});
}

prometheus::Histogram& node_metrics::http_latency(const std::string& route) {
  return http_latency_->Add({{"route", route}}, latency_buckets());
}

prometheus::Counter& node_metrics::connector_restarts(const std::string& connector) {
  return restarts_->Add({{"connector", connector}});
}

prometheus::Gauge& node_metrics::connector_up(const std::string& connector) {
  return connector_up_->Add({{"connector", connector}});
}

void node_metrics::set_connector_state(const std::string& connector, connector_state state) {
  static constexpr connector_state all[] = {
    connector_state::starting,   connector_state::running, connector_state::degraded,
    connector_state::restarting, connector_state::failed,  connector_state::stopped,
  };
  for (auto s : all)
    connector_state_->Add({{"connector", connector}, {"state", to_string(s)}})
      .Set(s == state ? 1 : 0);
}

prometheus::Gauge& node_metrics::connector_queue_depth(const std::string& connector) {
  return queue_depth_->Add({{"connector", connector}});
}

prometheus::Gauge& node_metrics::device_up(const std::string& connector,
                                           const std::string& device) {
  return device_up_->Add({{"connector", connector}, {"device", device}});
}

prometheus::Counter& node_metrics::connector_dropped(const std::string& connector) {
  return dropped_->Add({{"connector", connector}});
}

prometheus::Gauge& node_metrics::connector_last_restart(const std::string& connector) {
  return last_restart_->Add({{"connector", connector}});
}

prometheus::Counter& node_metrics::stream_dropped() {
  return stream_dropped_->Add({});
}

prometheus::Gauge& node_metrics::stream_subscribers() {
  return stream_subscribers_->Add({});
}

} // namespace manifold
