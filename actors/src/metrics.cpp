#include "manifold/actors/metrics.hpp"

#include <prometheus/text_serializer.h>

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
  stream_dropped_ = &prometheus::BuildCounter()
                       .Name("manifold_stream_dropped_total")
                       .Help("Readings dropped because a WebSocket subscriber fell behind")
                       .Register(r);
  stream_subscribers_ = &prometheus::BuildGauge()
                           .Name("manifold_stream_subscribers")
                           .Help("Open WebSocket reading streams")
                           .Register(r);
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

prometheus::Counter& node_metrics::stream_dropped() {
  return stream_dropped_->Add({});
}

prometheus::Gauge& node_metrics::stream_subscribers() {
  return stream_subscribers_->Add({});
}

} // namespace manifold
