#include "manifold/testkit/simulation.hpp"

#include <algorithm>
#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/mqtt_transport.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "modbus/modbus_schema.hpp"

namespace manifold::testkit {

namespace {

using namespace std::chrono_literals;

std::string point_key(const std::string& device, const std::string& point) {
  return device + "/" + point;
}

std::string reading_text(const point_reading& r) {
  auto text = r.device + "/" + r.point + " " + to_display_string(r.data) + " " + to_string(r.q);
  if (!r.reason.empty()) text += " (" + r.reason + ")";
  return text;
}

} // namespace

std::uint64_t connector_seed(std::uint64_t seed, const std::string& connector) {
  std::uint64_t h = 14695981039346656037ull ^ seed;
  for (unsigned char c : connector) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

struct simulation::impl {
  simulation_options opts;
  std::shared_ptr<const node_config> cfg;
  connectors::connector_registry registry;
  std::shared_ptr<event_trace> trace;
  std::shared_ptr<simulated_plant> plant;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* coord = nullptr;
  caf::actor_clock::time_point start_time;
  caf::actor bus;
  std::map<std::string, caf::actor> supervisors;
  /// The connector types, wrapped to remember each connector's current actor.
  std::vector<std::unique_ptr<connectors::connector_type>> types;
  std::map<std::string, caf::actor> children;
  std::function<void(const point_reading&)> reading_hook;
  std::map<std::string, point_reading> latest;
  reading_sink_ptr sink;
  std::uint64_t events = 0;
  bool started = false;
  bool stopped = false;

  std::chrono::milliseconds elapsed() const {
    if (!coord) return 0ms;
    return std::chrono::duration_cast<std::chrono::milliseconds>(coord->clock().current_time -
                                                                 start_time);
  }

  /// Fires every timer (the actors' and the plant's) due by `target` one at a time in due
  /// order, delivering the messages each causes; then moves the clock to `target`. A timer fired
  /// on the way may arm another one that is also due before `target`. At equal times the
  /// plant's fire first: a device changes at `t`, then a poll at `t` sees the change.
  void advance_to(caf::actor_clock::time_point target) {
    auto& clock = coord->clock();
    run();
    for (;;) {
      std::optional<caf::actor_clock::time_point> actor_due;
      if (clock.has_pending_timeout()) actor_due = clock.schedule().begin()->first;
      std::optional<caf::actor_clock::time_point> plant_due;
      if (auto p = plant->next_due()) plant_due = start_time + *p;
      if (!actor_due && !plant_due) break;
      bool actor_first = actor_due && (!plant_due || *actor_due < *plant_due);
      auto due = actor_first ? *actor_due : *plant_due;
      if (due > target) break;
      if (due > clock.current_time) clock.current_time = due;
      if (actor_first)
        clock.trigger_timeout();
      else
        plant->fire_due(elapsed());
      run();
    }
    if (target > clock.current_time) clock.current_time = target;
  }

  /// A simulated call that blocks its actor for `d`: the rest of the node goes on meanwhile.
  /// The blocked actor is running, so it is not in the scheduler's queue and none of its
  /// messages are handled until the call returns, exactly as with a blocking call on a thread.
  void block_for(std::chrono::milliseconds d) { advance_to(coord->clock().current_time + d); }

  void run() {
    auto n = coord->run(opts.max_events_per_instant);
    events += n;
    if (n >= opts.max_events_per_instant)
      throw std::runtime_error("more than " + std::to_string(opts.max_events_per_instant) +
                               " messages at " + format_elapsed(elapsed()) +
                               " without time moving: the actors loop");
  }
};

namespace {

/// Takes every reading off the data bus into the simulation (called inside the bus actor, which
/// the test scheduler runs on the thread driving the simulation).
class latest_sink : public reading_sink {
public:
  explicit latest_sink(simulation::impl* d) : d_(d) {}

  void deliver(const point_reading& r) override {
    auto& slot = d_->latest[point_key(r.device, r.point)];
    auto data = slot.data;
    slot = r;
    // A stale mark keeps the last known value, as the data bus does.
    if (r.q == quality::stale && std::holds_alternative<std::monostate>(r.data)) slot.data = data;
    if (d_->opts.trace_readings) d_->trace->record(d_->elapsed(), "reading", reading_text(r));
    if (d_->reading_hook) d_->reading_hook(slot);
  }

private:
  simulation::impl* d_;
};

/// A connector type that remembers the actor it spawned last for each connector, so a `crash`
/// fault can kill it as an escaping exception would.
class recording_type : public connectors::connector_type {
public:
  recording_type(connectors::connector_type& inner, std::map<std::string, caf::actor>& children)
    : inner_(inner), children_(children) {}
  std::string name() const override { return inner_.name(); }
  config::connector_schema& schema() override { return inner_.schema(); }
  caf::actor spawn(caf::actor_system& sys, connectors::connector_context ctx) override {
    auto name = ctx.name();
    auto a = inner_.spawn(sys, std::move(ctx));
    children_[name] = a;
    return a;
  }

private:
  connectors::connector_type& inner_;
  std::map<std::string, caf::actor>& children_;
};

} // namespace

simulation::simulation(node_config cfg, simulation_options opts,
                       connectors::connector_registry registry)
  : impl_(std::make_unique<impl>()) {
  auto& d = *impl_;
  d.opts = opts;
  d.cfg = std::make_shared<const node_config>(std::move(cfg));
  d.registry = std::move(registry);
  d.trace = std::make_shared<event_trace>(opts.keep_events);
  auto* self = impl_.get();
  d.plant = std::make_shared<simulated_plant>([self] { return self->elapsed(); }, d.trace);
  d.plant->set_blocker([self](std::chrono::milliseconds t) { self->block_for(t); });
  d.sys_cfg.set("scheduler.policy", caf::atom("testing"));
  d.sys = std::make_unique<caf::actor_system>(d.sys_cfg);
  d.coord = &dynamic_cast<caf::scheduler::test_coordinator&>(d.sys->scheduler());
  d.start_time = d.coord->clock().current_time;
  // Name the Modbus units after their devices, so traces say `pump`, not `127.0.0.1:502/1`.
  for (auto& c : d.cfg->connectors)
    for (auto& dev : c.devices)
      if (auto* u = modbus_unit_of(dev.name)) u->device = dev.name;
}

simulation::~simulation() {
  stop();
}

simulated_plant& simulation::plant() {
  return *impl_->plant;
}

const connector_config* simulation::connector_of(const std::string& device) const {
  for (auto& c : impl_->cfg->connectors)
    if (c.device(device)) return &c;
  return nullptr;
}

const node_config& simulation::config() const {
  return *impl_->cfg;
}

std::string simulation::endpoint_of(const std::string& device) const {
  auto* c = connector_of(device);
  if (!c) return {};
  if (auto* s = std::any_cast<connectors::modbus::connector_settings>(&c->settings))
    return s->host + ":" + std::to_string(s->port);
  if (auto* o = std::any_cast<connectors::mqtt_client_options>(&c->settings))
    return o->host + ":" + std::to_string(o->port);
  return {};
}

modbus_unit* simulation::modbus_unit_of(const std::string& device) {
  auto* c = connector_of(device);
  if (!c || c->type != "modbus") return nullptr;
  auto* dc = c->device(device);
  int unit = 1;
  if (auto* s = std::any_cast<connectors::modbus::device_settings>(&dc->settings))
    unit = s->unit_id;
  return &impl_->plant->modbus(endpoint_of(device), unit);
}

void simulation::start() {
  auto& d = *impl_;
  if (d.started) return;
  d.started = true;
  d.bus = spawn_data_bus(*d.sys, d.metrics);
  d.sink = std::make_shared<latest_sink>(impl_.get());
  caf::anon_send(d.bus, subscribe_atom::value, d.sink, reading_filter{});
  d.run();
  auto* self = impl_.get();
  for (auto& c : d.cfg->connectors) {
    auto* type = d.registry.find(c.type);
    if (!type) throw std::invalid_argument("unknown connector type '" + c.type + "'");
    d.types.push_back(std::make_unique<recording_type>(*type, d.children));
    connectors::connector_context ctx;
    // As in node_runtime: each connector gets a copy of its own section only.
    ctx.config = std::make_shared<const connector_config>(c);
    ctx.bus = d.bus;
    ctx.metrics = d.metrics;
    ctx.transports = d.plant;
    ctx.seed = connector_seed(d.opts.seed, c.name);
    ctx.log = log::logger{c.type};
    ctx.readings_counter = &d.metrics->readings(c.name);
    ctx.clock = [self] { return virtual_epoch + self->elapsed().count() * 1000000LL; };
    d.supervisors.emplace(c.name,
                          supervision::spawn_connector_supervisor(*d.sys, *d.types.back(), ctx));
  }
  d.run();
}

void simulation::run() {
  impl_->run();
}

void simulation::advance(std::chrono::milliseconds d) {
  advance_to(elapsed() + d);
}

void simulation::advance_to(std::chrono::milliseconds t) {
  impl_->advance_to(impl_->start_time + t);
}

std::chrono::milliseconds simulation::elapsed() const {
  return impl_->elapsed();
}

timestamp simulation::now() const {
  return virtual_epoch + elapsed().count() * 1000000LL;
}

std::shared_ptr<const call_outcome> simulation::invoke(action_request req) {
  auto& d = *impl_;
  auto out = std::make_shared<call_outcome>();
  auto* c = connector_of(req.device);
  if (!c) {
    out->done = true;
    out->code = errc::not_found;
    out->message = "no device '" + req.device + "' in the node config";
    return out;
  }
  auto sup = d.supervisors.at(c->name);
  auto* self = impl_.get();
  d.trace->record(d.elapsed(), "invoke",
                  req.device + " " + req.action + " " + connectors::params_to_json(req.params));
  d.sys->spawn([=](caf::event_based_actor* a) {
    a->request(sup, caf::infinite, invoke_atom::value, req)
        .then(
            [=](value& v) {
              out->done = true;
              out->result = v;
              out->answered_at = self->elapsed();
              self->trace->record(out->answered_at, "result",
                                  req.device + " " + req.action + " = " + to_display_string(v));
            },
            [=](caf::error& err) {
              out->done = true;
              out->code = code_of(err);
              out->message = message_of(err);
              out->answered_at = self->elapsed();
              self->trace->record(out->answered_at, "result",
                                  req.device + " " + req.action +
                                      " failed: " + to_string(out->code) + ": " + out->message);
            });
  });
  d.run();
  return out;
}

std::optional<point_reading> simulation::latest(const std::string& device,
                                                const std::string& point) const {
  auto it = impl_->latest.find(point_key(device, point));
  if (it == impl_->latest.end()) return std::nullopt;
  return it->second;
}

event_trace& simulation::trace() {
  return *impl_->trace;
}

std::uint64_t simulation::events() const {
  return impl_->events;
}

node_metrics& simulation::metrics() {
  return *impl_->metrics;
}

caf::actor_system& simulation::system() {
  return *impl_->sys;
}

caf::actor simulation::supervisor(const std::string& connector) const {
  auto it = impl_->supervisors.find(connector);
  return it == impl_->supervisors.end() ? caf::actor{} : it->second;
}

std::optional<connector_status> simulation::status(const std::string& connector) {
  auto& d = *impl_;
  auto it = d.supervisors.find(connector);
  if (it == d.supervisors.end()) return std::nullopt;
  auto out = std::make_shared<std::optional<connector_status>>();
  auto sup = it->second;
  d.sys->spawn([=](caf::event_based_actor* a) {
    a->request(sup, caf::infinite, status_atom::value)
        .then([=](connector_status& s) { *out = std::move(s); }, [](caf::error&) {});
  });
  d.run();
  return *out;
}

bool simulation::crash(const std::string& connector, const std::string& why) {
  auto& d = *impl_;
  auto it = d.children.find(connector);
  if (it == d.children.end() || !it->second) return false;
  d.trace->record(d.elapsed(), "fault", "crash " + connector);
  // An exit with an error, not a plain exit_reason: the supervisor reports the error as the crash.
  auto& child = it->second;
  child->enqueue(
      nullptr, caf::make_message_id(),
      caf::make_message(caf::exit_msg{child->address(), make_error(errc::internal, why)}), nullptr);
  it->second = nullptr;
  d.run();
  return true;
}

void simulation::on_reading(std::function<void(const point_reading&)> fn) {
  impl_->reading_hook = std::move(fn);
}

void simulation::stop() {
  auto& d = *impl_;
  if (d.stopped || !d.sys) return;
  d.stopped = true;
  for (auto& [name, sup] : d.supervisors)
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  if (d.bus) caf::anon_send_exit(d.bus, caf::exit_reason::user_shutdown);
  d.supervisors.clear();
  d.children.clear();
  d.bus = nullptr;
  d.sink.reset();
  try {
    d.run();
  } catch (const std::exception&) {
    // A looping actor must not keep the process from ending; the run already failed.
  }
  // Every actor has had its exit delivered; do not wait on one the test scheduler never runs.
  d.sys->await_actors_before_shutdown(false);
  d.sys.reset();
}

} // namespace manifold::testkit
