#include "manifold/testkit/scenario.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>
#include <prometheus/metric_family.h>

#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/mqtt_transport.hpp"
#include "manifold/testkit/params.hpp"
#include "manifold/testkit/simulation.hpp"
#include "modbus/modbus_codec.hpp"
#include "modbus/modbus_schema.hpp"

namespace manifold::testkit {

/// The latest a step may be. A run keeps its whole event trace in memory (about 3 MB per
/// simulated hour for one device polled every second), so a scenario is bounded to a week.
// TODO(testkit): stream the trace to its hash (and to --trace) instead of keeping it, then lift
// this bound; until then a longer scenario is refused at load time rather than exhausting memory.
constexpr std::chrono::milliseconds max_scenario_time = std::chrono::hours{24 * 7};

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using config::map_reader;

nlohmann::json to_json(const YAML::Node& n) {
  if (n.IsMap()) {
    auto j = nlohmann::json::object();
    for (auto kv : n)
      j[kv.first.Scalar()] = to_json(kv.second);
    return j;
  }
  if (n.IsSequence()) {
    auto j = nlohmann::json::array();
    for (auto x : n)
      j.push_back(to_json(x));
    return j;
  }
  if (!n.IsScalar()) return nullptr;
  const auto& s = n.Scalar();
  // Quoted scalars stay strings; plain ones that read as JSON scalars keep their type.
  if (n.Tag() == "!") return s;
  auto j = nlohmann::json::parse(s, nullptr, false);
  if (!j.is_discarded() && !j.is_object() && !j.is_array()) return j;
  return s;
}

std::string scalar_text(const YAML::Node& n) {
  if (n.IsScalar()) return n.Scalar();
  if (!n.IsDefined() || n.IsNull()) return "null";
  return to_json(n).dump();
}

/// Reads the scenario file's sections; diagnostics go to `diag` with file:line.
class scenario_loader {
public:
  scenario_loader(std::string file, const connectors::connector_registry& registry)
    : file_(std::move(file)), registry_(registry) {}

  scenario_load_result run() {
    scenario_load_result out;
    YAML::Node root;
    try {
      root = YAML::LoadFile(file_);
    } catch (const YAML::BadFile&) {
      diag_.add({file_, 0, 0}, "cannot open the scenario file");
      out.diag = std::move(diag_);
      return out;
    } catch (const YAML::Exception& e) {
      diag_.add({file_, e.mark.line + 1, e.mark.column + 1}, "not valid YAML: " + e.msg);
      out.diag = std::move(diag_);
      return out;
    }
    scenario s;
    s.file = file_;
    map_reader r{root, file_, diag_, "the scenario"};
    if (r.ok()) read(r, s);
    out.diag = std::move(diag_);
    if (out.diag.empty()) out.value = std::move(s);
    return out;
  }

private:
  void read(map_reader& r, scenario& s) {
    s.name = r.get_string("name").value_or(fs::path{file_}.stem().string());
    r.get_string("description");
    if (auto seed = r.get_int("seed", 0, std::numeric_limits<std::int64_t>::max()))
      s.seed = static_cast<std::uint64_t>(*seed);
    if (!read_node(r, s)) {
      // Without a node config nothing else can be checked.
      r.take("devices");
      r.take("steps");
      r.finish();
      return;
    }
    if (auto devices = r.take("devices"); devices.IsDefined() && !devices.IsNull()) {
      if (!devices.IsMap())
        r.error("devices", "'devices' must be a mapping of device name to its data");
      else
        for (auto kv : devices)
          read_device(kv.first.Scalar(), kv.second, s);
    }
    auto steps = r.take("steps");
    if (!steps.IsDefined() || !steps.IsSequence()) {
      diag_.add(r.where(), "the scenario: missing required key 'steps' (a list)");
    } else {
      for (auto st : steps)
        read_step(st, s);
    }
    r.finish();
  }

  bool read_node(map_reader& r, scenario& s) {
    auto node = r.take("node");
    if (!node.IsDefined() || !node.IsMap()) {
      diag_.add(r.where(), "the scenario: missing required key 'node' (a node config, or "
                           "'config: FILE')");
      return false;
    }
    config::load_result loaded;
    if (node.size() == 1 && node["config"]) {
      auto rel = node["config"].as<std::string>("");
      auto path = fs::path{file_}.parent_path() / rel;
      loaded = config::load_file(path.string(), registry_.schemas(), registry_.names());
      if (!loaded.config && !loaded.diag.empty() && loaded.diag.items()[0].where.line == 0)
        diag_.add(config::location_of(node["config"], file_),
                  "cannot read the node config '" + rel + "' (relative to the scenario)");
    } else {
      loaded = config::load_node(node, file_, registry_.schemas(), registry_.names());
    }
    for (auto& d : loaded.diag.items())
      diag_.add(d.where, d.message);
    if (!loaded.config) return false;
    s.node = std::move(*loaded.config);
    return true;
  }

  const device_config* find_device(const scenario& s, const std::string& name,
                                   const connector_config** conn = nullptr) {
    for (auto& c : s.node.connectors)
      if (auto* d = c.device(name)) {
        if (conn) *conn = &c;
        return d;
      }
    return nullptr;
  }

  template <class T>
  void read_table(map_reader& r, const std::string& key, std::map<int, T>& out, bool bits) {
    auto n = r.take(key);
    if (!n.IsDefined() || n.IsNull()) return;
    if (!n.IsMap()) {
      r.error(key, "'" + key + "' must map addresses to values, e.g. {0: 1200}");
      return;
    }
    for (auto kv : n) {
      auto addr = scalar_as(kv.first, value_type::int64);
      std::optional<value> v = bits ? scalar_as(kv.second, value_type::boolean)
                                    : scalar_as(kv.second, value_type::int64);
      auto a = addr ? std::get<std::int64_t>(*addr) : -1;
      std::int64_t x = !v ? -1 : bits ? (std::get<bool>(*v) ? 1 : 0) : std::get<std::int64_t>(*v);
      if (a < 0 || a > 65535 || x < 0 || x > 65535) {
        diag_.add(config::location_of(kv.first, file_),
                  "'" + key + "': expected address 0..65535 and " +
                      (bits ? std::string{"true/false"} : std::string{"a value 0..65535"}) +
                      ", got " + scalar_text(kv.first) + ": " + scalar_text(kv.second));
        continue;
      }
      out[static_cast<int>(a)] = static_cast<T>(x);
    }
  }

  void read_device(const std::string& name, const YAML::Node& n, scenario& s) {
    const connector_config* conn = nullptr;
    auto* dc = find_device(s, name, &conn);
    if (!dc) {
      diag_.add(config::location_of(n, file_),
                "'devices': no device '" + name + "' in the node config");
      return;
    }
    map_reader r{n, file_, diag_, "device '" + name + "'"};
    if (!r.ok()) return;
    device_model m;
    m.device = name;
    m.where = r.where();
    if (conn->type == "modbus") {
      read_modbus_data(r, *dc, m);
    } else if (conn->type == "mqtt") {
      for (auto& [topic, payload] : r.get_string_map("topics"))
        m.topics[topic] = payload;
      if (auto a = r.take("ack_delay"); a.IsDefined()) {
        if (a.IsScalar() && a.Scalar() == "never")
          m.ack_delay = std::optional<std::chrono::milliseconds>{};
        else if (auto d = a.IsScalar() ? config::parse_duration(a.Scalar()) : std::nullopt)
          m.ack_delay = std::optional<std::chrono::milliseconds>{*d};
        else
          r.error("ack_delay",
                  "'ack_delay' is a duration (e.g. 2s) or 'never', got " + scalar_text(a));
      }
    } else {
      diag_.add(r.where(), "device '" + name + "' belongs to a '" + conn->type +
                               "' connector, which simulates itself: it takes no device data here");
      r.take("points");
      r.take("dynamics");
    }
    if (auto c = r.get_bool("connected")) m.connected = *c;
    if (auto dyn = r.take("dynamics");
        dyn.IsDefined() && !dyn.IsNull() && (conn->type == "modbus" || conn->type == "mqtt"))
      read_dynamics(dyn, *conn, *dc, m);
    r.finish();
    s.devices.push_back(std::move(m));
  }

  /// The data of a Modbus unit: raw tables, point values and rejected addresses.
  void read_modbus_data(map_reader& r, const device_config& dc, device_model& m) {
    read_table(r, "holding_registers", m.holding_registers, false);
    read_table(r, "input_registers", m.input_registers, false);
    read_table(r, "coils", m.coils, true);
    read_table(r, "discrete_inputs", m.discrete_inputs, true);
    if (auto rw = r.take("reject_writes"); rw.IsDefined()) {
      if (!rw.IsMap())
        r.error("reject_writes", "'reject_writes' maps addresses to Modbus "
                                 "exception codes, e.g. {0: 3}");
      else
        for (auto kv : rw) {
          auto a = scalar_as(kv.first, value_type::int64);
          auto c = scalar_as(kv.second, value_type::int64);
          if (!a || !c || std::get<std::int64_t>(*c) < 1 || std::get<std::int64_t>(*c) > 255)
            diag_.add(config::location_of(kv.first, file_),
                      "'reject_writes': expected address: exception code (1..255)");
          else
            m.reject_writes[static_cast<int>(std::get<std::int64_t>(*a))] =
                static_cast<int>(std::get<std::int64_t>(*c));
        }
    }
    if (auto dw = r.take("delay_writes"); dw.IsDefined()) {
      if (!dw.IsMap())
        r.error("delay_writes", "'delay_writes' maps addresses to delays, e.g. {0: 3s}");
      else
        for (auto kv : dw) {
          auto a = scalar_as(kv.first, value_type::int64);
          auto d = kv.second.IsScalar() ? config::parse_duration(kv.second.Scalar()) : std::nullopt;
          if (!a || std::get<std::int64_t>(*a) < 0 || std::get<std::int64_t>(*a) > 65535 || !d)
            diag_.add(config::location_of(kv.first, file_),
                      "'delay_writes': expected address: delay (e.g. 0: 3s), got " +
                          scalar_text(kv.first) + ": " + scalar_text(kv.second));
          else
            m.delay_writes[static_cast<int>(std::get<std::int64_t>(*a))] = *d;
        }
    }
    if (auto pts = r.take("points"); pts.IsDefined()) read_points(pts, dc, m);
  }

  /// `dynamics:` of a device: modbus points or mqtt topics, each with one model.
  void read_dynamics(const YAML::Node& n, const connector_config& conn, const device_config& dc,
                     device_model& m) {
    if (!n.IsMap()) {
      diag_.add(config::location_of(n, file_),
                "'dynamics' maps " + std::string{conn.type == "mqtt" ? "topics" : "points"} +
                    " to a model (follow, counter or script)");
      return;
    }
    for (auto kv : n) {
      dynamic_source d;
      d.target = kv.first.Scalar();
      d.where = config::location_of(kv.first, file_);
      if (conn.type == "modbus") {
        auto* pc = dc.point(d.target);
        if (!pc || !std::any_cast<connectors::modbus::point_settings>(&pc->settings)) {
          diag_.add(d.where,
                    "'dynamics': device '" + dc.name + "' has no point '" + d.target + "'");
          continue;
        }
        if (pc->type != value_type::float64 && pc->type != value_type::int64 &&
            pc->type != value_type::boolean) {
          diag_.add(d.where, "'dynamics': point '" + d.target + "' is " + to_string(pc->type) +
                                 "; dynamics produce numbers and booleans");
          continue;
        }
      } else if (d.target.empty() || d.target.find_first_of("+#") != std::string::npos) {
        diag_.add(d.where, "'dynamics' of an mqtt device are keyed by topic (no wildcards)");
        continue;
      }
      map_reader r{kv.second, file_, diag_, "dynamics '" + d.target + "'"};
      if (!r.ok()) continue;
      int models = r.has("follow") + r.has("counter") + r.has("script");
      if (models != 1) {
        diag_.add(r.where(), "dynamics '" + d.target +
                                 "' needs exactly one of follow (a "
                                 "setpoint), counter, script");
        for (auto k : {"follow", "counter", "script"})
          r.take(k);
      }
      if (auto f = r.take("follow"); f.IsDefined()) {
        d.model = dynamic_source::kind::follow;
        if (auto x = scalar_as(f, value_type::float64)) {
          d.setpoint = std::get<double>(*x);
        } else if (f.IsScalar() && conn.type == "modbus" && dc.point(f.Scalar())) {
          d.setpoint_point = f.Scalar();
        } else {
          r.error("follow", "'follow' is a number or a point of the same modbus device, got '" +
                                scalar_text(f) + "'");
        }
        d.tau = r.get_duration("tau", 0ms, max_scenario_time).value_or(0ms);
      }
      if (auto c = r.take("counter"); c.IsDefined()) {
        d.model = dynamic_source::kind::counter;
        if (auto x = scalar_as(c, value_type::float64))
          d.increment = std::get<double>(*x);
        else
          r.error("counter", "'counter' is the increment per interval, got " + scalar_text(c));
      }
      if (auto sc = r.take("script"); sc.IsDefined()) {
        d.model = dynamic_source::kind::script;
        if (!sc.IsSequence() || sc.size() == 0) {
          r.error("script", "'script' is a list of {at, value}, e.g. [{at: 0s, value: 1}]");
        } else {
          for (auto e : sc) {
            map_reader er{e, file_, diag_, "a script entry"};
            if (!er.ok()) continue;
            auto at = er.get_duration("at", 0ms, max_scenario_time, true);
            auto v = er.get_double("value", true);
            er.finish();
            if (!at || !v) continue;
            if (!d.script.empty() && *at < d.script.back().first)
              er.error("at", "script entries must be in time order");
            d.script.emplace_back(*at, *v);
          }
        }
      }
      d.start = r.get_double("start").value_or(d.setpoint.value_or(0));
      if (d.model == dynamic_source::kind::counter && !r.node()["start"]) d.start = 0;
      d.noise = r.get_double("noise").value_or(0);
      if (d.noise < 0) r.error("noise", "'noise' is a standard deviation (>= 0)");
      d.interval = r.get_duration("interval", 1ms, std::chrono::hours{24}).value_or(1000ms);
      r.finish();
      m.dynamics.push_back(std::move(d));
    }
  }

  /// A change of a Modbus device's data at a point in time: the device's own dynamics.
  void read_set(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::set;
    auto set = r.nested("set", "'set'");
    if (!set.ok()) return;
    st.device = set.get_string("device", true).value_or("");
    st.model.device = st.device;
    const connector_config* conn = nullptr;
    auto* dc = st.device.empty() ? nullptr : find_device(s, st.device, &conn);
    if (dc && conn->type == "modbus") {
      read_modbus_data(set, *dc, st.model);
    } else {
      if (!dc && !st.device.empty())
        set.error("device", "no device '" + st.device + "' in the node config");
      if (dc) set.error("device", "'set' changes a modbus device's data; for mqtt use 'publish'");
      for (auto k : {"holding_registers", "input_registers", "coils", "discrete_inputs",
                     "reject_writes", "delay_writes", "points"})
        set.take(k);
    }
    set.finish();
    st.description = "set " + st.device;
  }

  /// Initial point values, encoded the way the connector decodes the point.
  void read_points(const YAML::Node& pts, const device_config& dc, device_model& m) {
    if (!pts.IsMap()) {
      diag_.add(config::location_of(pts, file_), "'points' maps point names to initial values");
      return;
    }
    for (auto kv : pts) {
      auto where = config::location_of(kv.first, file_);
      auto* pc = dc.point(kv.first.Scalar());
      auto* ps = pc ? std::any_cast<connectors::modbus::point_settings>(&pc->settings) : nullptr;
      if (!ps) {
        diag_.add(where, "device '" + dc.name + "' has no point '" + kv.first.Scalar() + "'");
        continue;
      }
      auto v = scalar_as(kv.second, pc->type);
      if (!v) {
        diag_.add(where, "point '" + pc->name + "' is " + to_string(pc->type) + ", got '" +
                             scalar_text(kv.second) + "'");
        continue;
      }
      if (connectors::modbus::bit_table(ps->table)) {
        auto bit = std::get<bool>(*v) ? 1 : 0;
        (ps->table == connectors::modbus_table::coil ? m.coils : m.discrete_inputs)[ps->address] =
            static_cast<std::uint8_t>(bit);
        continue;
      }
      auto enc = connectors::modbus::encode_registers(*v, ps->format);
      if (auto* why = std::get_if<std::string>(&enc)) {
        diag_.add(where, "point '" + pc->name + "': " + *why);
        continue;
      }
      auto& regs = ps->table == connectors::modbus_table::holding_register ? m.holding_registers
                                                                           : m.input_registers;
      auto& words = std::get<std::vector<std::uint16_t>>(enc);
      for (std::size_t i = 0; i < words.size(); ++i)
        regs[ps->address + static_cast<int>(i)] = words[i];
    }
  }

  void read_step(const YAML::Node& n, scenario& s) {
    map_reader r{n, file_, diag_, "a step"};
    if (!r.ok()) return;
    scenario_step st;
    st.where = r.where();
    if (auto at = r.get_duration("at", 0ms, max_scenario_time, true)) st.at = *at;
    if (!s.steps.empty() && st.at < s.steps.back().at)
      r.error("at", "steps must be in time order: this one is at " + format_elapsed(st.at) +
                        ", the one before at " + format_elapsed(s.steps.back().at));
    int kinds = 0;
    for (auto k : {"invoke", "publish", "fault", "expect", "expect_writes", "set",
                   "expect_connector", "expect_metric"})
      kinds += r.has(k);
    if (kinds != 1) {
      diag_.add(st.where, "a step needs exactly one of invoke, publish, fault, set, expect, "
                          "expect_writes, expect_connector, expect_metric");
      for (auto k : {"invoke", "publish", "fault", "set", "expect", "expect_writes",
                     "expect_result", "expect_error", "expect_connector", "expect_metric"})
        r.take(k);
      r.finish();
      return;
    }
    if (r.has("invoke")) read_invoke(r, s, st);
    if (r.has("publish")) read_publish(r, s, st);
    if (r.has("fault")) read_fault(r, s, st);
    if (r.has("expect")) read_expect(r, s, st);
    if (r.has("expect_writes")) read_writes(r, st);
    if (r.has("set")) read_set(r, s, st);
    if (r.has("expect_connector")) read_expect_connector(r, s, st);
    if (r.has("expect_metric")) read_expect_metric(r, st);
    r.finish();
    s.steps.push_back(std::move(st));
  }

  void read_invoke(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::invoke;
    auto inv = r.nested("invoke", "'invoke'");
    if (!inv.ok()) return;
    auto device = inv.get_string("device", true).value_or("");
    auto action = inv.get_string("action", true).value_or("");
    std::map<std::string, YAML::Node> raw;
    if (auto p = inv.take("params"); p.IsDefined() && !p.IsNull()) {
      if (!p.IsMap())
        inv.error("params", "'params' maps parameter names to values");
      else
        for (auto kv : p)
          raw[kv.first.Scalar()] = kv.second;
    }
    inv.finish();
    st.request.device = device;
    st.request.action = action;
    std::map<std::string, nlohmann::json> shown;
    for (auto& [k, v] : raw)
      shown[k] = to_json(v);
    st.description = "invoke " + device + " " + action + " " + nlohmann::json(shown).dump();
    if (device.empty() || action.empty()) return;
    auto* dc = find_device(s, device);
    const action_config* ac = dc ? dc->action(action) : nullptr;
    if (!dc)
      inv.error("device", "no device '" + device + "' in the node config");
    else if (!ac)
      inv.error("action", "device '" + device + "' has no action '" + action + "'");
    if (ac) {
      auto checked = check_params(*ac, raw);
      if (auto* err = std::get_if<std::string>(&checked))
        st.param_error = *err;
      else
        st.request.params = std::get<std::map<std::string, value>>(checked);
    }
    if (r.has("expect_result") && r.has("expect_error"))
      r.error("expect_error", "a step expects either a result or an error, not both");
    st.expect_result = r.take("expect_result");
    if (auto e = r.get_string("expect_error")) {
      st.expect_error = parse_errc(*e);
      if (!st.expect_error)
        r.error("expect_error", "unknown error code '" + *e +
                                    "' (bad_request, not_found, "
                                    "read_only, conflict, unavailable, timeout, device_error, "
                                    "overloaded, internal)");
    }
    if (!st.param_error.empty() && st.expect_error != errc::bad_request)
      inv.error("params", st.param_error + " (or expect it with 'expect_error: bad_request')");
  }

  void read_publish(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::publish;
    auto p = r.nested("publish", "'publish'");
    if (!p.ok()) return;
    st.topic = p.get_string("topic", true).value_or("");
    auto payload = p.take("payload");
    if (!payload.IsDefined()) p.error("payload", "'publish' needs a 'payload'");
    st.payload = payload.IsScalar() ? payload.Scalar() : to_json(payload).dump();
    st.retain = p.get_bool("retain").value_or(false);
    if (auto dev = p.get_string("device")) {
      const connector_config* c = nullptr;
      if (!find_device(s, *dev, &c) || c->type != "mqtt")
        p.error("device", "no mqtt device '" + *dev + "' in the node config");
      else if (auto* o = std::any_cast<connectors::mqtt_client_options>(&c->settings))
        st.endpoint = o->host + ":" + std::to_string(o->port);
    }
    p.finish();
    st.description = "publish " + st.topic + " " + st.payload;
  }

  /// A fault: `disconnect`/`reconnect`/`corrupt`/`heal: DEVICE`, `slow: {device, delay}`,
  /// `timeout: DEVICE`, `broker_restart: {broker: DEVICE|CONNECTOR, down_for}`,
  /// `crash: CONNECTOR`. A map value `{device: X}` / `{connector: X}` works for each, too.
  void read_fault(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::fault;
    static const std::vector<std::string> kinds{
        "disconnect", "reconnect", "slow", "timeout", "corrupt", "heal", "broker_restart", "crash"};
    auto f = r.nested("fault", "'fault'");
    if (!f.ok()) return;
    int n = 0;
    for (auto& k : kinds)
      if (f.has(k)) {
        st.fault = k;
        ++n;
      }
    if (n != 1) {
      for (auto& k : kinds)
        f.take(k);
      f.finish();
      diag_.add(f.where(), "'fault' takes exactly one of disconnect, reconnect, slow, timeout, "
                           "corrupt, heal (each: DEVICE), broker_restart: {broker, down_for}, "
                           "crash: CONNECTOR");
      return;
    }
    auto v = f.node()[st.fault];
    std::string target;
    if (v.IsScalar()) {
      f.take(st.fault);
      target = v.Scalar();
    } else {
      auto m = f.nested(st.fault, "'" + st.fault + "'");
      if (m.ok()) {
        auto key = st.fault == "crash"            ? "connector"
                   : st.fault == "broker_restart" ? "broker"
                                                  : "device";
        target = m.get_string(key, true).value_or("");
        if (st.fault == "slow")
          st.delay = m.get_duration("delay", 0ms, std::chrono::hours{24}, true).value_or(0ms);
        if (st.fault == "broker_restart")
          st.delay = m.get_duration("down_for", 0ms, std::chrono::hours{24}).value_or(0ms);
        m.finish();
      }
    }
    f.finish();
    st.description = "fault " + st.fault + " " + target;
    if (st.fault == "slow") st.description += " " + format_elapsed(st.delay);
    if (target.empty()) return;
    if (st.fault == "crash") {
      st.connector = target;
      if (!s.node.connector(target))
        diag_.add(f.where(), "no connector '" + target + "' in the node config");
      return;
    }
    const connector_config* conn = nullptr;
    if (st.fault == "broker_restart") {
      conn = s.node.connector(target);
      if (!conn) find_device(s, target, &conn);
      if (!conn)
        diag_.add(f.where(), "no connector or device '" + target + "' in the node config");
      else if (conn->type != "mqtt")
        diag_.add(f.where(), "'broker_restart' needs an mqtt connector or device, '" + target +
                                 "' is " + conn->type);
      else
        st.connector = conn->name;
      return;
    }
    st.device = target;
    st.disconnect = st.fault == "disconnect";
    if (!find_device(s, st.device, &conn)) {
      diag_.add(f.where(), "no device '" + st.device + "' in the node config");
    } else if (conn->type != "modbus" && conn->type != "mqtt") {
      diag_.add(f.where(), "device '" + st.device + "' belongs to a '" + conn->type +
                               "' connector: only modbus and mqtt devices take device faults "
                               "(a sim connector can 'crash')");
    } else if (conn->type == "mqtt" && st.fault == "corrupt") {
      diag_.add(f.where(), "'corrupt' garbles a modbus device's answers; for mqtt, 'publish' a "
                           "malformed payload to the device's topic");
    }
  }

  void read_expect(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::expect;
    auto e = r.nested("expect", "'expect'");
    if (!e.ok()) return;
    auto ref = e.get_string("point", true).value_or("");
    auto slash = ref.find('/');
    if (!ref.empty()) {
      if (slash == std::string::npos) {
        e.error("point", "'point' is DEVICE/POINT, got '" + ref + "'");
      } else {
        st.device = ref.substr(0, slash);
        st.point = ref.substr(slash + 1);
        auto* dc = find_device(s, st.device);
        if (!dc || !dc->point(st.point))
          e.error("point", "no point '" + ref + "' in the node config");
      }
    }
    st.equals = e.take("equals");
    if (auto w = e.take("within"); w.IsDefined()) {
      auto lo =
          w.IsSequence() && w.size() == 2 ? scalar_as(w[0], value_type::float64) : std::nullopt;
      auto hi =
          w.IsSequence() && w.size() == 2 ? scalar_as(w[1], value_type::float64) : std::nullopt;
      if (!lo || !hi)
        e.error("within", "'within' is [low, high], got " + scalar_text(w));
      else
        st.within = {std::get<double>(*lo), std::get<double>(*hi)};
    }
    if (auto w = e.take("stays_within"); w.IsDefined()) {
      auto lo =
          w.IsSequence() && w.size() == 2 ? scalar_as(w[0], value_type::float64) : std::nullopt;
      auto hi =
          w.IsSequence() && w.size() == 2 ? scalar_as(w[1], value_type::float64) : std::nullopt;
      if (!lo || !hi)
        e.error("stays_within", "'stays_within' is [low, high], got " + scalar_text(w));
      else
        st.stays_within = {std::get<double>(*lo), std::get<double>(*hi)};
      st.window = e.get_duration("for", 1ms, max_scenario_time, true).value_or(0ms);
    } else if (e.has("for")) {
      e.error("for", "'for' goes with 'stays_within'");
    }
    if (auto q = e.get_enum("quality", {"good", "stale", "bad"}))
      st.expect_quality = *q == "good"    ? quality::good
                          : *q == "stale" ? quality::stale
                                          : quality::bad;
    e.finish();
    if (!st.equals.IsDefined() && !st.within && !st.expect_quality && !st.stays_within)
      diag_.add(e.where(), "'expect' needs at least one of equals, within, quality, "
                           "stays_within");
    if (st.stays_within && (st.equals.IsDefined() || st.within || st.expect_quality))
      diag_.add(e.where(), "'stays_within' watches a window: put equals/within/quality in a "
                           "step of their own");
    st.description = "expect " + ref;
    if (st.equals.IsDefined()) st.description += " equals " + scalar_text(st.equals);
    if (st.within)
      st.description += " within [" + scalar_text(r.node()["expect"]["within"][0]) + ", " +
                        scalar_text(r.node()["expect"]["within"][1]) + "]";
    if (st.expect_quality) st.description += std::string{" "} + to_string(*st.expect_quality);
    if (st.stays_within)
      st.description += " stays_within [" + scalar_text(r.node()["expect"]["stays_within"][0]) +
                        ", " + scalar_text(r.node()["expect"]["stays_within"][1]) + "] for " +
                        format_elapsed(st.window);
  }

  void read_expect_connector(map_reader& r, scenario& s, scenario_step& st) {
    st.kind = step_kind::expect_connector;
    auto e = r.nested("expect_connector", "'expect_connector'");
    if (!e.ok()) return;
    st.connector = e.get_string("name", true).value_or("");
    if (!st.connector.empty() && !s.node.connector(st.connector))
      e.error("name", "no connector '" + st.connector + "' in the node config");
    static const std::vector<std::string> states{"starting",   "running", "degraded",
                                                 "restarting", "failed",  "stopped"};
    if (auto v = e.get_enum("state", states))
      for (int i = 0; i < 16; ++i)
        if (*v == to_string(static_cast<connector_state>(i))) {
          st.expect_state = static_cast<connector_state>(i);
          break;
        }
    if (auto n = e.get_int("restarts", 0, std::numeric_limits<std::int64_t>::max()))
      st.expect_restarts = static_cast<std::uint64_t>(*n);
    e.finish();
    if (!st.expect_state && !st.expect_restarts)
      diag_.add(e.where(), "'expect_connector' needs 'state' or 'restarts'");
    st.description = "expect_connector " + st.connector;
    if (st.expect_state) st.description += std::string{" "} + to_string(*st.expect_state);
    if (st.expect_restarts) st.description += " restarts=" + std::to_string(*st.expect_restarts);
  }

  void read_expect_metric(map_reader& r, scenario_step& st) {
    st.kind = step_kind::expect_metric;
    auto e = r.nested("expect_metric", "'expect_metric'");
    if (!e.ok()) return;
    st.metric = e.get_string("name", true).value_or("");
    st.labels = e.get_string_map("labels");
    st.metric_equals = e.get_double("equals", true).value_or(0);
    e.finish();
    std::string labels;
    for (auto& [k, v] : st.labels)
      labels += (labels.empty() ? "" : ",") + k + "=\"" + v + "\"";
    st.description = "expect_metric " + st.metric + "{" + labels + "} equals " +
                     scalar_text(r.node()["expect_metric"]["equals"]);
  }

  void read_writes(map_reader& r, scenario_step& st) {
    st.kind = step_kind::expect_writes;
    auto w = r.take("expect_writes");
    if (!w.IsSequence()) {
      r.error("expect_writes", "'expect_writes' is a list of side effects, e.g. "
                               "['write pump holding_register 0 [1500]']; [] for none");
      return;
    }
    for (auto x : w) {
      if (x.IsScalar()) {
        st.writes.push_back(x.Scalar());
        continue;
      }
      diag_.add(config::location_of(x, file_),
                "each expected write is one line as the trace shows it, e.g. "
                "'write pump holding_register 0 [1500]' or 'publish TOPIC PAYLOAD qos=1'");
    }
    st.description = "expect_writes (" + std::to_string(st.writes.size()) + ")";
  }

  std::string file_;
  const connectors::connector_registry& registry_;
  config::diagnostics diag_;
};

} // namespace

scenario_load_result load_scenario(const std::string& path,
                                   const connectors::connector_registry& registry) {
  return scenario_loader{path, registry}.run();
}

void apply_models(simulation& sim, const std::vector<device_model>& models) {
  for (auto& m : models) {
    if (auto* u = sim.modbus_unit_of(m.device)) {
      for (auto& [a, v] : m.holding_registers)
        u->holding_registers[a] = v;
      for (auto& [a, v] : m.input_registers)
        u->input_registers[a] = v;
      for (auto& [a, v] : m.coils)
        u->coils[a] = v;
      for (auto& [a, v] : m.discrete_inputs)
        u->discrete_inputs[a] = v;
      for (auto& [a, c] : m.reject_writes)
        u->reject_writes[a] = c;
      for (auto& [a, d] : m.delay_writes)
        u->delay_writes[a] = d;
      if (m.connected) u->connected = *m.connected;
      continue;
    }
    auto ep = sim.endpoint_of(m.device);
    for (auto& [topic, payload] : m.topics)
      sim.plant().mqtt_retain(ep, topic, payload);
    if (m.ack_delay) sim.plant().mqtt_set_ack(ep, *m.ack_delay);
    if (m.connected == false) sim.plant().mqtt_set_up(ep, false);
  }
}

// -- running --------------------------------------------------------------------------------------

namespace {

struct pending_call {
  std::size_t index;
  const scenario_step* step;
  std::shared_ptr<const call_outcome> outcome;
};

std::string outcome_text(const call_outcome& o) {
  if (o.result) return "= " + to_display_string(*o.result);
  return std::string{to_string(o.code)} + ": " + o.message;
}

step_result judge_call(std::size_t index, const scenario_step& st, const call_outcome& o) {
  step_result res{index, o.answered_at, st.description, false, outcome_text(o), st.where};
  if (st.expect_error) {
    if (o.result)
      res.message = "expected error " + std::string{to_string(*st.expect_error)} +
                    ", but the action succeeded " + outcome_text(o);
    else if (o.code != *st.expect_error)
      res.message =
          "expected error " + std::string{to_string(*st.expect_error)} + ", got " + outcome_text(o);
    else
      res.passed = true;
    return res;
  }
  if (!o.result) {
    res.message = "the action failed: " + outcome_text(o);
    return res;
  }
  if (st.expect_result.IsDefined() && !value_equals(*o.result, st.expect_result)) {
    res.message = "expected result " + scalar_text(st.expect_result) + ", got " +
                  to_display_string(*o.result);
    return res;
  }
  res.passed = true;
  return res;
}

step_result check_point(std::size_t index, const scenario_step& st, simulation& sim) {
  step_result res{index, sim.elapsed(), st.description, false, {}, st.where};
  auto r = sim.latest(st.device, st.point);
  if (!r) {
    res.message = "no reading of " + st.device + "/" + st.point + " yet";
    return res;
  }
  auto got = to_display_string(r->data) + " (" + to_string(r->q) +
             (r->reason.empty() ? "" : ": " + r->reason) + ")";
  res.message = got;
  if (st.expect_quality && r->q != *st.expect_quality) {
    res.message = "expected quality " + std::string{to_string(*st.expect_quality)} + ", got " + got;
    return res;
  }
  if (st.equals.IsDefined() && !value_equals(r->data, st.equals)) {
    res.message = "expected " + scalar_text(st.equals) + ", got " + got;
    return res;
  }
  if (st.within) {
    auto x = coerce(r->data, value_type::float64);
    auto [lo, hi] = *st.within;
    if (!x || std::get<double>(*x) < lo || std::get<double>(*x) > hi) {
      res.message = "expected a value within [" + std::to_string(lo) + ", " + std::to_string(hi) +
                    "], got " + got;
      return res;
    }
  }
  res.passed = true;
  return res;
}

std::string list_text(const std::vector<std::string>& xs) {
  if (xs.empty()) return "none";
  std::string out;
  for (auto& x : xs)
    out += (out.empty() ? "" : "; ") + x;
  return out;
}

std::string mqtt_endpoint(const connector_config& c) {
  if (auto* o = std::any_cast<connectors::mqtt_client_options>(&c.settings))
    return o->host + ":" + std::to_string(o->port);
  return {};
}

/// Applies a fault step to the simulation; false with `why` when it cannot.
bool apply_fault(const scenario_step& st, simulation& sim, std::string& why) {
  auto now = sim.elapsed();
  if (st.fault == "crash") {
    if (sim.crash(st.connector)) return true;
    why = "connector '" + st.connector + "' has no running actor to crash";
    return false;
  }
  if (st.fault == "broker_restart") {
    auto ep = mqtt_endpoint(*sim.config().connector(st.connector));
    sim.plant().mqtt_set_up(ep, false);
    sim.run();
    if (st.delay == 0ms) {
      sim.plant().mqtt_set_up(ep, true);
    } else {
      auto* plant = &sim.plant();
      plant->schedule(now + st.delay, [plant, ep] { plant->mqtt_set_up(ep, true); });
    }
    sim.run();
    return true;
  }
  if (auto* u = sim.modbus_unit_of(st.device)) {
    if (st.fault == "disconnect" || st.fault == "reconnect") u->connected = !st.disconnect;
    if (st.fault == "slow") u->delay = st.delay;
    if (st.fault == "timeout") u->no_answer = true;
    if (st.fault == "corrupt") u->corrupt = true;
    if (st.fault == "heal") {
      u->delay = 0ms;
      u->no_answer = false;
      u->corrupt = false;
    }
    sim.trace().record(now, "fault",
                       st.fault + " " + st.device +
                           (st.fault == "slow" ? " " + format_elapsed(st.delay) : std::string{}));
  } else {
    auto ep = sim.endpoint_of(st.device);
    if (st.fault == "disconnect" || st.fault == "reconnect")
      sim.plant().mqtt_set_up(ep, !st.disconnect);
    if (st.fault == "slow") sim.plant().mqtt_set_ack(ep, st.delay);
    if (st.fault == "timeout") sim.plant().mqtt_set_ack(ep, std::nullopt);
    if (st.fault == "heal") sim.plant().mqtt_set_ack(ep, 0ms);
    if (st.fault != "disconnect" && st.fault != "reconnect")
      sim.trace().record(now, "fault", st.fault + " broker " + ep);
  }
  sim.run();
  return true;
}

step_result check_connector(std::size_t index, const scenario_step& st, simulation& sim) {
  step_result res{index, sim.elapsed(), st.description, false, {}, st.where};
  auto s = sim.status(st.connector);
  if (!s) {
    res.message = "no status from connector '" + st.connector + "'";
    return res;
  }
  auto got = std::string{to_string(s->state)} + ", restarts=" + std::to_string(s->restarts) +
             (s->last_error.empty() ? "" : " (" + s->last_error + ")");
  res.message = got;
  if ((st.expect_state && s->state != *st.expect_state) ||
      (st.expect_restarts && s->restarts != *st.expect_restarts)) {
    res.message = "expected" +
                  (st.expect_state ? " " + std::string{to_string(*st.expect_state)} : "") +
                  (st.expect_restarts ? " restarts=" + std::to_string(*st.expect_restarts) : "") +
                  ", got " + got;
    return res;
  }
  res.passed = true;
  return res;
}

step_result check_metric(std::size_t index, const scenario_step& st, simulation& sim) {
  step_result res{index, sim.elapsed(), st.description, false, {}, st.where};
  std::vector<double> found;
  for (auto& fam : sim.metrics().registry().Collect()) {
    if (fam.name != st.metric) continue;
    for (auto& m : fam.metric) {
      std::size_t matched = 0;
      for (auto& l : m.label)
        if (auto it = st.labels.find(l.name); it != st.labels.end() && it->second == l.value)
          ++matched;
      if (matched != st.labels.size()) continue;
      switch (fam.type) {
      case prometheus::MetricType::Counter: found.push_back(m.counter.value); break;
      case prometheus::MetricType::Gauge: found.push_back(m.gauge.value); break;
      case prometheus::MetricType::Untyped: found.push_back(m.untyped.value); break;
      case prometheus::MetricType::Histogram:
        found.push_back(static_cast<double>(m.histogram.sample_count));
        break;
      default: break;
      }
    }
  }
  // A labelled counter has no series until its first increment: it reads 0, as Prometheus'
  // `or vector(0)` would make it.
  if (found.empty() && st.metric_equals == 0) {
    res.passed = true;
    res.message = "no series yet (0)";
    return res;
  }
  if (found.size() != 1) {
    res.message = found.empty() ? "no such series"
                                : std::to_string(found.size()) +
                                      " series match; name more labels to pick one";
    return res;
  }
  std::ostringstream got;
  got << found[0];
  res.message = got.str();
  if (std::abs(found[0] - st.metric_equals) > 1e-9 * std::max(1.0, std::abs(st.metric_equals))) {
    res.message = "got " + got.str();
    return res;
  }
  res.passed = true;
  return res;
}

// -- device dynamics ------------------------------------------------------------------------------

const point_config* modbus_point(simulation& sim, const std::string& device,
                                 const std::string& point,
                                 const connectors::modbus::point_settings** ps) {
  auto* c = sim.connector_of(device);
  auto* pc = c ? c->device(device)->point(point) : nullptr;
  *ps = pc ? std::any_cast<connectors::modbus::point_settings>(&pc->settings) : nullptr;
  return *ps ? pc : nullptr;
}

/// The value a Modbus point holds in its simulated unit, decoded as the connector would.
std::optional<double> read_point(simulation& sim, const std::string& device,
                                 const std::string& point) {
  const connectors::modbus::point_settings* ps = nullptr;
  auto* pc = modbus_point(sim, device, point, &ps);
  auto* u = sim.modbus_unit_of(device);
  if (!pc || !u) return std::nullopt;
  if (connectors::modbus::bit_table(ps->table)) {
    auto& bits = ps->table == connectors::modbus_table::coil ? u->coils : u->discrete_inputs;
    auto it = bits.find(ps->address);
    return it != bits.end() && it->second ? 1.0 : 0.0;
  }
  auto& regs = ps->table == connectors::modbus_table::holding_register ? u->holding_registers
                                                                       : u->input_registers;
  std::vector<std::uint16_t> words;
  auto n = connectors::modbus::register_count(ps->format.enc);
  for (int i = 0; i < n; ++i) {
    auto it = regs.find(ps->address + i);
    words.push_back(it == regs.end() ? 0 : it->second);
  }
  auto v = connectors::modbus::decode_registers(words.data(), words.size(), ps->format);
  if (!std::holds_alternative<value>(v)) return std::nullopt;
  auto x = coerce(std::get<value>(v), value_type::float64);
  return x ? std::optional<double>{std::get<double>(*x)} : std::nullopt;
}

/// Writes `x` into a Modbus point's registers (or bit) as the connector decodes it; false when
/// the point's encoding cannot hold it.
bool write_point(simulation& sim, const std::string& device, const std::string& point, double x) {
  const connectors::modbus::point_settings* ps = nullptr;
  auto* pc = modbus_point(sim, device, point, &ps);
  auto* u = sim.modbus_unit_of(device);
  if (!pc || !u) return false;
  if (connectors::modbus::bit_table(ps->table)) {
    (ps->table == connectors::modbus_table::coil ? u->coils : u->discrete_inputs)[ps->address] =
        x != 0 ? 1 : 0;
    return true;
  }
  value v = x;
  if (pc->type == value_type::int64) v = static_cast<std::int64_t>(std::llround(x));
  if (pc->type == value_type::boolean) v = x != 0;
  auto enc = connectors::modbus::encode_registers(v, ps->format);
  if (!std::holds_alternative<std::vector<std::uint16_t>>(enc)) return false;
  auto& words = std::get<std::vector<std::uint16_t>>(enc);
  auto& regs = ps->table == connectors::modbus_table::holding_register ? u->holding_registers
                                                                       : u->input_registers;
  for (std::size_t i = 0; i < words.size(); ++i)
    regs[ps->address + static_cast<int>(i)] = words[i];
  return true;
}

/// One running dynamic: its state between ticks and its own random source.
struct dynamic_run {
  const dynamic_source* src;
  std::string device;
  bool modbus = false;
  std::string endpoint;
  double state = 0;
  std::uint64_t ticks = 0;
  std::mt19937_64 rng;
  std::normal_distribution<double> normal{0.0, 1.0};

  /// The output at virtual time `t`, advancing the model by one interval.
  double next(std::chrono::milliseconds t, simulation& sim) {
    switch (src->model) {
    case dynamic_source::kind::follow: {
      auto sp = src->setpoint;
      if (!src->setpoint_point.empty())
        if (auto x = read_point(sim, device, src->setpoint_point)) sp = *x;
      if (sp && ticks > 0) {
        // Exact step of dx/dt = (sp - x) / tau over one interval with sp held constant.
        auto a = src->tau.count() == 0
                     ? 1.0
                     : 1.0 - std::exp(-static_cast<double>(src->interval.count()) /
                                      static_cast<double>(src->tau.count()));
        state += (*sp - state) * a;
      }
      break;
    }
    case dynamic_source::kind::counter:
      state = src->start + src->increment * static_cast<double>(ticks);
      break;
    case dynamic_source::kind::script:
      state = src->script.front().second;
      for (auto& [at, v] : src->script)
        if (at <= t) state = v;
      break;
    }
    ++ticks;
    return src->noise > 0 ? state + src->noise * normal(rng) : state;
  }
};

void tick(std::shared_ptr<dynamic_run> d, simulation* sim) {
  auto t = sim->elapsed();
  auto x = d->next(t, *sim);
  if (d->modbus) {
    if (!write_point(*sim, d->device, d->src->target, x))
      sim->trace().record(t, "fault",
                          "dynamics " + d->device + "/" + d->src->target + ": " +
                              to_display_string(value{x}) + " does not fit the point's encoding");
  } else {
    std::ostringstream text;
    text.precision(15);
    text << x;
    sim->plant().mqtt_inject(d->endpoint, d->src->target, text.str(), false);
  }
  sim->plant().schedule(t + d->src->interval, [d, sim] { tick(d, sim); });
}

/// Starts every device's dynamics: Modbus values are in place before the first poll, MQTT
/// publishes begin once the connectors are up (the first `advance`).
void start_dynamics(simulation& sim, const std::vector<device_model>& models, std::uint64_t seed) {
  for (auto& m : models)
    for (auto& src : m.dynamics) {
      auto d = std::make_shared<dynamic_run>();
      d->src = &src;
      d->device = m.device;
      d->modbus = sim.modbus_unit_of(m.device) != nullptr;
      d->endpoint = sim.endpoint_of(m.device);
      d->state = src.start;
      d->rng.seed(connector_seed(seed, "dynamics/" + m.device + "/" + src.target));
      if (d->modbus)
        tick(d, &sim);
      else
        sim.plant().schedule(0ms, [d, s = &sim] { tick(d, s); });
    }
}

/// A `stays_within` expectation being watched: every reading of its point until `end`.
struct window_watch {
  std::size_t index;
  const scenario_step* step;
  std::chrono::milliseconds end;
  std::size_t readings = 0;
  std::string failure;
};

} // namespace

scenario_report run_scenario(const scenario& s, std::optional<std::uint64_t> seed,
                             const std::function<void(const step_result&)>& on_step) {
  auto wall_start = std::chrono::steady_clock::now();
  scenario_report rep;
  rep.file = s.file;
  rep.name = s.name;
  rep.seed = seed.value_or(s.seed);
  simulation_options opts;
  opts.seed = rep.seed;
  // Declared before the simulation: its reading hook refers to it until the simulation ends.
  std::vector<window_watch> windows;
  simulation sim{s.node, opts};
  apply_models(sim, s.devices);
  start_dynamics(sim, s.devices, rep.seed);
  sim.on_reading([&](const point_reading& r) {
    for (auto& w : windows) {
      if (w.step->device != r.device || w.step->point != r.point || sim.elapsed() > w.end) continue;
      ++w.readings;
      if (!w.failure.empty()) continue;
      auto x = coerce(r.data, value_type::float64);
      auto [lo, hi] = *w.step->stays_within;
      if (r.q != quality::good || !x || std::get<double>(*x) < lo || std::get<double>(*x) > hi)
        w.failure = "at " + format_elapsed(sim.elapsed()) + ": " + to_display_string(r.data) +
                    " (" + to_string(r.q) + (r.reason.empty() ? "" : ": " + r.reason) + ")";
    }
  });

  auto finish = [&](step_result r) {
    (r.passed ? rep.passed : rep.failed)++;
    if (on_step) on_step(r);
    rep.steps.push_back(std::move(r));
  };
  std::vector<pending_call> pending;
  auto settle = [&] {
    for (auto it = pending.begin(); it != pending.end();) {
      if (!it->outcome->done) {
        ++it;
        continue;
      }
      finish(judge_call(it->index, *it->step, *it->outcome));
      it = pending.erase(it);
    }
  };
  std::size_t writes_seen = 0;
  // Closes the watched windows that end by `upto`, moving time to each end in turn.
  auto close_windows = [&](std::chrono::milliseconds upto) {
    for (;;) {
      auto it = std::min_element(windows.begin(), windows.end(),
                                 [](auto& a, auto& b) { return a.end < b.end; });
      if (it == windows.end() || it->end > upto) return;
      sim.advance_to(it->end);
      settle();
      step_result r{it->index, it->end, it->step->description, false, {}, it->step->where};
      if (!it->failure.empty())
        r.message = "left the range " + it->failure;
      else if (it->readings == 0)
        r.message = "no reading of " + it->step->device + "/" + it->step->point + " in the window";
      else {
        r.passed = true;
        r.message = std::to_string(it->readings) + " readings in range";
      }
      windows.erase(it);
      finish(std::move(r));
    }
  };

  try {
    sim.start();
    for (std::size_t i = 0; i < s.steps.size(); ++i) {
      auto& st = s.steps[i];
      auto index = i + 1;
      close_windows(st.at);
      sim.advance_to(st.at);
      settle();
      switch (st.kind) {
      case step_kind::invoke: {
        if (!st.param_error.empty()) {
          call_outcome o;
          o.done = true;
          o.code = errc::bad_request;
          o.message = st.param_error;
          o.answered_at = sim.elapsed();
          finish(judge_call(index, st, o));
          break;
        }
        pending.push_back({index, &st, sim.invoke(st.request)});
        settle();
        break;
      }
      case step_kind::publish:
        sim.plant().mqtt_inject(st.endpoint, st.topic, st.payload, st.retain);
        sim.run();
        finish({index, sim.elapsed(), st.description, true, {}, st.where});
        break;
      case step_kind::fault: {
        std::string why;
        bool ok = apply_fault(st, sim, why);
        finish({index, sim.elapsed(), st.description, ok, why, st.where});
        settle();
        break;
      }
      case step_kind::expect_connector: finish(check_connector(index, st, sim)); break;
      case step_kind::expect_metric: finish(check_metric(index, st, sim)); break;
      case step_kind::set:
        apply_models(sim, {st.model});
        sim.trace().record(sim.elapsed(), "set", st.device);
        finish({index, sim.elapsed(), st.description, true, {}, st.where});
        break;
      case step_kind::expect:
        if (st.stays_within) {
          // Readings from now on count; one already taken before the step does not.
          windows.push_back(window_watch{index, &st, st.at + st.window, 0, {}});
        } else {
          finish(check_point(index, st, sim));
        }
        break;
      case step_kind::expect_writes: {
        auto& all = sim.plant().side_effects();
        std::vector<std::string> got;
        for (auto k = writes_seen; k < all.size(); ++k)
          got.push_back(all[k].text);
        writes_seen = all.size();
        step_result r{index, sim.elapsed(), st.description, got == st.writes, {}, st.where};
        r.message = r.passed
                        ? list_text(got)
                        : "expected writes: " + list_text(st.writes) + "; got: " + list_text(got);
        finish(std::move(r));
        break;
      }
      }
    }
    close_windows(std::chrono::milliseconds::max());
    // Give actions still waiting for a device their full timeout, then call them unanswered.
    if (!pending.empty()) {
      std::chrono::milliseconds longest{0};
      for (auto& c : s.node.connectors)
        longest = std::max(longest, c.action_timeout);
      sim.advance(longest + 1s);
      settle();
      for (auto& p : pending)
        finish({p.index, sim.elapsed(), p.step->description, false,
                "no answer from the connector by the end of the scenario", p.step->where});
      pending.clear();
    }
  } catch (const std::exception& e) {
    finish({0, sim.elapsed(), "run", false, e.what(), {s.file, 0, 0}});
  }
  sim.on_reading({});
  rep.trace_hash = sim.trace().hash_hex();
  rep.trace = sim.trace().events();
  rep.events = sim.events();
  rep.virtual_time = sim.elapsed();
  sim.stop();
  rep.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return rep;
}

} // namespace manifold::testkit
