#include "manifold/connectors/sdk.hpp"

#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"

namespace manifold::connectors {

connector_context make_connector_context(const connector_config& config, caf::actor bus,
                                         std::shared_ptr<node_metrics> metrics,
                                         std::shared_ptr<transport_factory> transports,
                                         std::uint64_t seed) {
  connector_context ctx;
  ctx.config = std::make_shared<const connector_config>(config);
  ctx.bus = std::move(bus);
  ctx.transports = std::move(transports);
  ctx.seed = seed;
  if (!config.type.empty()) ctx.log = log::logger{config.type};
  if (metrics) ctx.readings_counter = &metrics->readings(config.name);
  ctx.queue = std::make_shared<reading_queue>(config.name, config.queue, metrics);
  ctx.metrics = std::move(metrics);
  return ctx;
}

namespace {

void enqueue(caf::event_based_actor* self, const connector_context& ctx, point_reading r) {
  if (!ctx.queue) {
    self->send(ctx.bus, publish_atom::value, std::move(r));
    return;
  }
  auto res = ctx.queue->push(std::move(r));
  if (res.wake) self->send(ctx.bus, publish_atom::value, ctx.queue);
  if (res.dropped && ctx.queue->drop_log_due())
    ctx.log.warn("reading queue full, dropping readings",
                 {{"connector", ctx.name()},
                  {"policy", ctx.queue->overflow() == overflow_policy::drop_newest
                               ? "drop_newest"
                               : "drop_oldest"},
                  {"capacity", std::to_string(ctx.queue->capacity())},
                  {"dropped_total", std::to_string(ctx.queue->dropped())}});
}

} // namespace

void publish(caf::event_based_actor* self, const connector_context& ctx, point_reading r) {
  if (ctx.readings_counter) ctx.readings_counter->Increment();
  enqueue(self, ctx, std::move(r));
}

void publish_stale(caf::event_based_actor* self, const connector_context& ctx,
                   const device_config& device, const std::string& reason) {
  auto now = ctx.now();
  for (auto& p : device.points) {
    point_reading r;
    r.connector = ctx.name();
    r.device = device.name;
    r.point = p.name;
    r.q = quality::stale;
    r.reason = reason;
    r.source_time = now;
    enqueue(self, ctx, std::move(r));
  }
}

void report_crashes(caf::event_based_actor* self, const connector_context& ctx) {
  auto name = ctx.name();
  auto log = ctx.log;
  self->set_exception_handler([name, log](caf::scheduled_actor*, std::exception_ptr& ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    // The supervisor logs the crash (rate-limited) with this message as its error.
    log.debug("connector crashed", {{"connector", name}, {"error", what}});
    return make_error(errc::internal, "uncaught exception: " + what);
  });
}

void connector_registry::add(std::unique_ptr<connector_type> type) {
  if (type) types_.push_back(std::move(type));
}

connector_type* connector_registry::find(const std::string& name) const {
  for (auto& t : types_)
    if (t->name() == name) return t.get();
  return nullptr;
}

std::vector<std::string> connector_registry::names() const {
  std::vector<std::string> out;
  for (auto& t : types_) out.push_back(t->name());
  return out;
}

config::schema_lookup connector_registry::schemas() const {
  auto types = types_;
  return [types](const std::string& name) -> config::connector_schema* {
    for (auto& t : types)
      if (t->name() == name) return &t->schema();
    return nullptr;
  };
}

connector_registry connector_registry::builtin() {
  connector_registry r;
  r.add(make_sim_connector());
  r.add(make_mqtt_connector());
  r.add(make_modbus_connector());
  return r;
}

std::string params_to_json(const std::map<std::string, value>& params) {
  nlohmann::json j = nlohmann::json::object();
  for (auto& [k, v] : params) {
    std::visit(
      [&](auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>)
          j[k] = nullptr;
        else if constexpr (std::is_same_v<T, bytes>)
          j[k] = to_display_string(v);
        else
          j[k] = x;
      },
      v);
  }
  return j.dump();
}

} // namespace manifold::connectors
