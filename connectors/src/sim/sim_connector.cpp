// The sim connector: seeded simulated devices, no I/O. It is the embedded default a node starts
// with, and the worked example of connectors/README.md.

#include <cmath>
#include <limits>
#include <random>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/connectors/sdk.hpp"

namespace manifold::connectors {

namespace {

using namespace std::chrono_literals;

// -- device models ---------------------------------------------------------------------------------

enum class sim_model { thermostat, counter, toggle_switch };

/// A thermostat's setpoint range, for the action and for writes of the point alike.
constexpr double setpoint_min = 5.0;
constexpr double setpoint_max = 35.0;

/// What the config says about one simulated device.
struct sim_device_settings {
  sim_model model = sim_model::thermostat;
  double initial = 20.0;      ///< Thermostat: start temperature and setpoint; counter: start.
  double time_constant_s = 60; ///< Thermostat: seconds to close 63% of the gap to the setpoint.
  double noise = 0.05;         ///< Thermostat: standard deviation added to each reading.
  std::int64_t step = 1;       ///< Counter: increment per poll.
};

point_config make_point(std::string name, value_type t, std::string unit, bool writable) {
  point_config p;
  p.name = std::move(name);
  p.type = t;
  p.unit = std::move(unit);
  p.writable = writable;
  return p;
}

action_config make_action(std::string name, std::optional<value_type> result,
                          std::vector<parameter_config> params = {}) {
  action_config a;
  a.name = std::move(name);
  a.result = result;
  a.parameters = std::move(params);
  return a;
}

parameter_config make_param(std::string name, value_type t, std::optional<double> min,
                            std::optional<double> max) {
  parameter_config p;
  p.name = std::move(name);
  p.type = t;
  p.min = min;
  p.max = max;
  return p;
}

/// The points and actions each model has; users do not declare them.
void declare_model(device_config& d, sim_model m) {
  switch (m) {
    case sim_model::thermostat:
      d.points.push_back(make_point("temperature", value_type::float64, "°C", false));
      d.points.push_back(make_point("setpoint", value_type::float64, "°C", true));
      d.actions.push_back(make_action("set_setpoint", value_type::float64,
                                      {make_param("value", value_type::float64, setpoint_min, setpoint_max)}));
      break;
    case sim_model::counter:
      d.points.push_back(make_point("count", value_type::int64, "", false));
      d.actions.push_back(make_action("reset", value_type::int64));
      break;
    case sim_model::toggle_switch:
      d.points.push_back(make_point("on", value_type::boolean, "", true));
      d.actions.push_back(make_action("turn_on", value_type::boolean));
      d.actions.push_back(make_action("turn_off", value_type::boolean));
      d.actions.push_back(make_action("toggle", value_type::boolean));
      // Switches on, answers once the pulse is over: a slow action by design.
      d.actions.push_back(make_action("pulse", value_type::boolean,
                                      {make_param("duration_ms", value_type::int64, 1, 600000)}));
      break;
  }
}

class sim_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader& r, connector_config& c) override {
    if (auto seed = r.get_int("seed", 0, std::numeric_limits<std::int64_t>::max()))
      c.settings = static_cast<std::uint64_t>(*seed);
  }

  void parse_device(config::map_reader& r, const connector_config&, device_config& d) override {
    sim_device_settings s;
    auto model = r.get_enum("model", {"thermostat", "counter", "switch"}, true);
    if (model == std::optional<std::string>{"counter"}) s.model = sim_model::counter, s.initial = 0;
    if (model == std::optional<std::string>{"switch"}) s.model = sim_model::toggle_switch;
    if (auto v = r.get_double("initial")) {
      // A counter counts in int64; keep its start far enough from the ends that it cannot wrap.
      if (s.model == sim_model::counter && std::abs(*v) > 1e15)
        r.error("initial", "a counter's 'initial' must lie within -1e15 and 1e15");
      else
        s.initial = *v;
    }
    if (auto v = r.get_double("time_constant")) {
      if (*v <= 0) r.error("time_constant", "'time_constant' must be positive (seconds)");
      else s.time_constant_s = *v;
    }
    if (auto v = r.get_double("noise")) {
      if (*v < 0) r.error("noise", "'noise' must not be negative");
      else s.noise = *v;
    }
    if (auto v = r.get_int("step", -1'000'000, 1'000'000)) s.step = *v;
    if (r.has("points") || r.has("actions")) {
      r.error(r.has("points") ? "points" : "actions",
              "sim devices take their points and actions from their model; remove this key");
      r.take("points");
      r.take("actions");
    }
    if (model) declare_model(d, s.model);
    d.settings = s;
  }
};

// -- the connector actor ---------------------------------------------------------------------------

struct device_state {
  const device_config* config = nullptr;
  sim_device_settings settings;
  double temperature = 0;
  double setpoint = 0;
  std::int64_t count = 0;
  bool on = false;
};

struct sim_state {
  connector_context ctx;
  std::mt19937_64 rng;
  std::unordered_map<std::string, device_state> devices;
  std::unordered_map<std::uint64_t, caf::response_promise> pulses;
  std::uint64_t next_pulse = 0;
  static inline const char* name = "sim_connector";
};

using sim_actor = caf::stateful_actor<sim_state>;
using pulse_done_atom = caf::atom_constant<caf::atom("pulsedone")>;

void publish_value(sim_actor* self, const device_state& d, const std::string& point, value v) {
  point_reading r;
  r.connector = self->state.ctx.name();
  r.device = d.config->name;
  r.point = point;
  r.data = std::move(v);
  r.source_time = self->state.ctx.now();
  publish(self, self->state.ctx, std::move(r));
}

void publish_all(sim_actor* self, const device_state& d) {
  switch (d.settings.model) {
    case sim_model::thermostat:
      publish_value(self, d, "temperature", d.temperature);
      publish_value(self, d, "setpoint", d.setpoint);
      break;
    case sim_model::counter: publish_value(self, d, "count", d.count); break;
    case sim_model::toggle_switch: publish_value(self, d, "on", d.on); break;
  }
}

/// Advances every device by one poll interval of simulated physics.
void step(sim_actor* self) {
  auto dt = std::chrono::duration<double>(self->state.ctx.config->poll_interval).count();
  for (auto& [name, d] : self->state.devices) {
    switch (d.settings.model) {
      case sim_model::thermostat: {
        // First-order lag towards the setpoint, plus measurement noise.
        double k = 1.0 - std::exp(-dt / d.settings.time_constant_s);
        d.temperature += (d.setpoint - d.temperature) * k;
        std::normal_distribution<double> noise{0.0, d.settings.noise};
        if (d.settings.noise > 0) d.temperature += noise(self->state.rng);
        break;
      }
      case sim_model::counter:
        // Saturates instead of wrapping: a counter never jumps to a negative value.
        if (__builtin_add_overflow(d.count, d.settings.step, &d.count))
          d.count = d.settings.step > 0 ? std::numeric_limits<std::int64_t>::max()
                                        : std::numeric_limits<std::int64_t>::min();
        break;
      case sim_model::toggle_switch: break;
    }
    publish_all(self, d);
  }
}

caf::result<value> set_switch(sim_actor* self, device_state& d, bool on) {
  d.on = on;
  publish_value(self, d, "on", d.on);
  return value{d.on};
}

caf::result<value> invoke(sim_actor* self, action_request& req) {
  auto it = self->state.devices.find(req.device);
  if (it == self->state.devices.end())
    return make_error(errc::not_found, "no device '" + req.device + "' in this connector");
  auto& d = it->second;
  const auto& a = req.action;
  if (a == "set_setpoint" && d.settings.model == sim_model::thermostat) {
    d.setpoint = std::get<double>(req.params.at("value"));
    publish_value(self, d, "setpoint", d.setpoint);
    return value{d.setpoint};
  }
  if (a == "reset" && d.settings.model == sim_model::counter) {
    d.count = 0;
    publish_value(self, d, "count", d.count);
    return value{std::int64_t{0}};
  }
  if (d.settings.model == sim_model::toggle_switch) {
    if (a == "turn_on") return set_switch(self, d, true);
    if (a == "turn_off") return set_switch(self, d, false);
    if (a == "toggle") return set_switch(self, d, !d.on);
    if (a == "pulse") {
      set_switch(self, d, true);
      auto id = self->state.next_pulse++;
      auto rp = self->make_response_promise();
      self->state.pulses.emplace(id, rp);
      auto duration =
        std::chrono::milliseconds{std::get<std::int64_t>(req.params.at("duration_ms"))};
      // A delayed message to ourselves ends the pulse, so the actor stays responsive meanwhile.
      self->delayed_send(self, duration, pulse_done_atom::value, req.device, id);
      return rp;
    }
  }
  return make_error(errc::not_found, "device '" + req.device + "' has no action '" + a + "'");
}

caf::behavior sim_connector(sim_actor* self, connector_context ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  report_crashes(self, st.ctx);
  auto seed = st.ctx.seed;
  if (auto* s = std::any_cast<std::uint64_t>(&st.ctx.config->settings)) seed = *s;
  st.rng.seed(seed);
  for (auto& dc : st.ctx.config->devices) {
    device_state d;
    d.config = &dc;
    d.settings = std::any_cast<sim_device_settings>(dc.settings);
    d.temperature = d.setpoint = d.settings.initial;
    d.count = static_cast<std::int64_t>(d.settings.initial);
    st.devices.emplace(dc.name, d);
  }
  st.ctx.log.info("sim connector started",
                  {{"connector", st.ctx.name()}, {"devices", std::to_string(st.devices.size())}});
  for (auto& [name, d] : st.devices) publish_all(self, d);
  self->delayed_send(self, st.ctx.config->poll_interval, poll_atom::value);

  return {
    [=](poll_atom) {
      step(self);
      self->delayed_send(self, self->state.ctx.config->poll_interval, poll_atom::value);
    },
    [=](invoke_atom, action_request& req) { return invoke(self, req); },
    [=](pulse_done_atom, const std::string& device, std::uint64_t id) {
      auto& st = self->state;
      if (auto d = st.devices.find(device); d != st.devices.end()) set_switch(self, d->second, false);
      if (auto p = st.pulses.find(id); p != st.pulses.end()) {
        p->second.deliver(value{false});
        st.pulses.erase(p);
      }
    },
    [=](write_atom, const std::string& device, const std::string& point,
        value& v) -> caf::result<value> {
      auto it = self->state.devices.find(device);
      if (it == self->state.devices.end())
        return make_error(errc::not_found, "no device '" + device + "' in this connector");
      auto& d = it->second;
      if (point == "setpoint" && d.settings.model == sim_model::thermostat) {
        // The same bounds as the set_setpoint action: a write must not bypass them.
        auto sp = std::get<double>(v);
        if (sp < setpoint_min || sp > setpoint_max)
          return make_error(errc::bad_request,
                            "'setpoint' must be within [" + to_display_string(setpoint_min) +
                              ", " + to_display_string(setpoint_max) + "], got " +
                              to_display_string(v));
        d.setpoint = sp;
        publish_value(self, d, point, d.setpoint);
        return value{d.setpoint};
      }
      if (point == "on" && d.settings.model == sim_model::toggle_switch)
        return set_switch(self, d, std::get<bool>(v));
      return make_error(errc::read_only, "point '" + device + "/" + point + "' is read-only");
    },
    [=](status_atom) {
      connector_status s;
      s.name = self->state.ctx.name();
      s.type = "sim";
      s.state = connector_state::running;
      return s;
    },
  };
}

/// `sim`: its schema and behaviour, one actor per instance.
using sim_type = basic_connector_type<sim_schema, &sim_connector>;

} // namespace

std::unique_ptr<connector_type> make_sim_connector() {
  return std::make_unique<sim_type>("sim");
}

} // namespace manifold::connectors
