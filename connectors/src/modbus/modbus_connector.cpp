// The modbus connector: polls Modbus TCP devices (one server, one unit id per device) and writes
// coils and holding registers. The actor itself never blocks; a detached worker makes the
// libmodbus calls (see modbus_worker.hpp).

#include <algorithm>
#include <map>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/modbus_transport.hpp"
#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/connectors/sdk.hpp"
#include "modbus/modbus_codec.hpp"
#include "modbus/modbus_planner.hpp"
#include "modbus/modbus_schema.hpp"
#include "modbus/modbus_worker.hpp"

namespace manifold::connectors {

namespace {

using namespace std::chrono_literals;
using namespace modbus;

const char* exception_name(int code) {
  switch (code) {
    case 1: return "illegal function";
    case 2: return "illegal data address";
    case 3: return "illegal data value";
    case 4: return "server device failure";
    case 5: return "acknowledge";
    case 6: return "server device busy";
    case 8: return "memory parity error";
    case 10: return "gateway path unavailable";
    case 11: return "gateway target device failed to respond";
    default: return "unknown exception";
  }
}

std::string describe_failure(const modbus_status& st) {
  if (st.exception_code != 0)
    return "Modbus exception " + std::to_string(st.exception_code) + " (" +
           exception_name(st.exception_code) + ")";
  return st.message;
}

// -- state ----------------------------------------------------------------------------------------

struct point_runtime {
  const point_config* config = nullptr;
  point_settings settings;
};

struct device_runtime {
  const device_config* config = nullptr;
  device_settings settings;
  std::vector<point_runtime> points;
  std::vector<read_request> plan; ///< Point ids in the plan index `points`.
  /// nullopt until the first poll answers, so the first failure is logged and published too.
  std::optional<bool> reachable;
  std::string unreachable_reason; ///< Why it stopped answering; empty while it answers.
  bool polling = false; ///< A poll job is queued at the worker; do not stack another.
  std::uint64_t failed_polls = 0;
  /// Per read of `plan`: why it failed last time (empty: it worked), so a read that keeps
  /// failing is logged when it starts and when it stops, not on every poll.
  std::vector<std::string> read_errors;
};

struct modbus_state {
  connector_context ctx;
  connector_settings settings;
  caf::actor worker;
  std::vector<device_runtime> devices;
  static inline const char* name = "modbus_connector";

  device_runtime* find(const std::string& name) {
    for (auto& d : devices)
      if (d.config->name == name) return &d;
    return nullptr;
  }
};

using modbus_actor = caf::stateful_actor<modbus_state>;

device_runtime make_device(const device_config& dc, int max_gap) {
  device_runtime d;
  d.config = &dc;
  if (auto* s = std::any_cast<device_settings>(&dc.settings)) d.settings = *s;
  std::map<modbus_table, std::vector<planned_point>> by_table;
  for (auto& pc : dc.points) {
    auto* ps = std::any_cast<point_settings>(&pc.settings);
    if (!ps) continue; // The loader rejects configs with unparsed points; be safe anyway.
    by_table[ps->table].push_back(
      {d.points.size(), ps->address, register_count(ps->format.enc)});
    d.points.push_back({&pc, *ps});
  }
  for (auto& [table, points] : by_table)
    for (auto& r : plan_reads(table, std::move(points), max_gap)) d.plan.push_back(std::move(r));
  d.read_errors.resize(d.plan.size());
  return d;
}

// -- publishing -----------------------------------------------------------------------------------

void publish_point(modbus_actor* self, const device_runtime& d, const point_runtime& p,
                   value v, quality q = quality::good, std::string reason = {}) {
  point_reading r;
  r.connector = self->state.ctx.name();
  r.device = d.config->name;
  r.point = p.config->name;
  r.data = std::move(v);
  r.q = q;
  r.reason = std::move(reason);
  r.source_time = self->state.ctx.now();
  publish(self, self->state.ctx, std::move(r));
}

void set_device_up(modbus_actor* self, const device_runtime& d, bool up) {
  if (auto& m = self->state.ctx.metrics) m->device_up(self->state.ctx.name(), d.config->name).Set(up);
}

/// A degraded device gets both a warning and a metric (`manifold_device_up` 0).
void mark_unreachable(modbus_actor* self, device_runtime& d, const std::string& reason) {
  ++d.failed_polls;
  if (d.reachable == std::optional<bool>{false}) return; // Already reported: no log per poll.
  d.reachable = false;
  d.unreachable_reason = reason;
  set_device_up(self, d, false);
  self->state.ctx.log.warn("device unreachable; its points are stale until it answers",
                           {{"connector", self->state.ctx.name()},
                            {"device", d.config->name},
                            {"reason", reason}});
  publish_stale(self, self->state.ctx, *d.config, reason);
}

void mark_reachable(modbus_actor* self, device_runtime& d) {
  if (d.reachable == std::optional<bool>{false})
    self->state.ctx.log.info("device answers again",
                             {{"connector", self->state.ctx.name()},
                              {"device", d.config->name},
                              {"failed_polls", std::to_string(d.failed_polls)}});
  if (d.reachable != std::optional<bool>{true}) set_device_up(self, d, true);
  d.reachable = true;
  d.failed_polls = 0;
}

/// Decodes one read's answer into its points' readings.
void publish_read(modbus_actor* self, device_runtime& d, const read_request& req,
                  const read_result& res) {
  for (auto id : req.points) {
    auto& p = d.points[id];
    if (!res.status.ok) {
      publish_point(self, d, p, {}, quality::bad, describe_failure(res.status));
      continue;
    }
    auto at = static_cast<std::size_t>(p.settings.address - req.address);
    if (bit_table(req.table)) {
      if (at >= res.bits.size())
        publish_point(self, d, p, {}, quality::bad, "the answer holds too few bits");
      else
        publish_point(self, d, p, value{res.bits[at] != 0});
      continue;
    }
    if (at >= res.registers.size()) {
      publish_point(self, d, p, {}, quality::bad, "the answer holds too few registers");
      continue;
    }
    auto decoded =
      decode_registers(res.registers.data() + at, res.registers.size() - at, p.settings.format);
    if (auto* v = std::get_if<value>(&decoded))
      publish_point(self, d, p, std::move(*v));
    else
      publish_point(self, d, p, {}, quality::bad, std::get<std::string>(decoded));
  }
}

// -- polling --------------------------------------------------------------------------------------

/// Logs a read the device answers with an error when the error starts or changes, and when the
/// read works again.
void note_read_error(modbus_actor* self, device_runtime& d, std::size_t i,
                     const modbus_status& st) {
  auto& last = d.read_errors[i];
  auto now = st.ok ? std::string{} : describe_failure(st);
  if (now == last) return;
  auto& req = d.plan[i];
  auto range = std::string{to_string(req.table)} + " " + std::to_string(req.address) + "+" +
               std::to_string(req.count);
  auto& log = self->state.ctx.log;
  if (now.empty())
    log.info("read works again",
             {{"connector", self->state.ctx.name()}, {"device", d.config->name}, {"read", range}});
  else
    log.warn("read failed; its points are bad until it works",
             {{"connector", self->state.ctx.name()},
              {"device", d.config->name},
              {"read", range},
              {"error", now}});
  last = std::move(now);
}

void poll_device(modbus_actor* self, device_runtime& d) {
  if (d.polling || d.plan.empty()) return;
  d.polling = true;
  poll_job job;
  job.device = d.config->name;
  job.unit_id = d.settings.unit_id;
  job.reads = d.plan;
  // No request timeout: every libmodbus call ends within the response timeout, so the worker
  // always answers, and `polling` stays set until it has. A timeout here would let a slow worker
  // (many unreachable devices in a row) collect a second job per device on every poll.
  auto name = d.config->name;
  self->request(self->state.worker, caf::infinite, poll_atom::value, std::move(job))
    .then(
      [=](poll_outcome& out) {
        auto* d = self->state.find(name);
        if (!d) return;
        d->polling = false;
        if (out.unreachable) {
          mark_unreachable(self, *d, out.reason);
          return;
        }
        mark_reachable(self, *d);
        for (std::size_t i = 0; i < out.results.size() && i < d->plan.size(); ++i) {
          note_read_error(self, *d, i, out.results[i].status);
          publish_read(self, *d, d->plan[i], out.results[i]);
        }
      },
      [=](caf::error& err) {
        auto* d = self->state.find(name);
        if (!d) return;
        d->polling = false;
        mark_unreachable(self, *d, "no answer from the Modbus worker: " + caf::to_string(err));
      });
}

// -- writing --------------------------------------------------------------------------------------

/// Writes `v` (typed per the point) to a point and answers with the value the device now holds,
/// converted to `result_type` when given.
caf::result<value> write_point(modbus_actor* self, const std::string& device,
                               const std::string& point, const value& v,
                               std::optional<value_type> result_type) {
  auto* d = self->state.find(device);
  if (!d) return make_error(errc::not_found, "no device '" + device + "' in this connector");
  auto it = std::find_if(d->points.begin(), d->points.end(),
                         [&](const point_runtime& p) { return p.config->name == point; });
  if (it == d->points.end())
    return make_error(errc::not_found, "device '" + device + "' has no point '" + point + "'");
  const point_runtime& p = *it;
  if (!p.config->writable || !writable_table(p.settings.table))
    return make_error(errc::read_only, "point '" + device + "/" + point + "' is read-only");
  if (d->reachable == std::optional<bool>{false})
    return make_error(errc::unavailable, "device '" + device + "' is unreachable");

  auto encoded = encode_registers(v, p.settings.format);
  if (auto* why = std::get_if<std::string>(&encoded))
    return make_error(errc::bad_request, "cannot write '" + device + "/" + point + "': " + *why);
  write_job job;
  job.unit_id = d->settings.unit_id;
  job.table = p.settings.table;
  job.address = p.settings.address;
  job.registers = std::get<std::vector<std::uint16_t>>(encoded);

  // What the device holds after the write: the value rounded to what the registers can store.
  auto written = decode_registers(job.registers.data(), job.registers.size(), p.settings.format);
  value stored = std::holds_alternative<value>(written) ? std::get<value>(written) : v;

  auto rp = self->make_response_promise();
  auto timeout = self->state.ctx.config->action_timeout;
  self->request(self->state.worker, timeout, write_atom::value, std::move(job))
    .then(
      [=](modbus_status& st) mutable {
        auto* d = self->state.find(device);
        if (!d) { // Devices never leave the state; answer anyway rather than let a caller hang.
          rp.deliver(make_error(errc::internal, "device '" + device + "' vanished"));
          return;
        }
        if (st.connection_lost) {
          mark_unreachable(self, *d, st.message);
          rp.deliver(make_error(errc::unavailable, "device '" + device +
                                                     "' is unreachable: " + st.message));
          return;
        }
        if (!st.ok) {
          self->state.ctx.log.warn("write rejected", {{"connector", self->state.ctx.name()},
                                                      {"device", device},
                                                      {"point", point},
                                                      {"error", describe_failure(st)}});
          rp.deliver(make_error(errc::device_error, "device '" + device + "' rejected the write "
                                                      "of '" + point + "': " +
                                                      describe_failure(st)));
          return;
        }
        mark_reachable(self, *d);
        auto& p = *std::find_if(d->points.begin(), d->points.end(),
                                [&](const point_runtime& x) { return x.config->name == point; });
        publish_point(self, *d, p, stored);
        value result = stored;
        if (result_type)
          if (auto c = coerce(stored, *result_type)) result = *c;
        rp.deliver(std::move(result));
      },
      [=](caf::error& err) mutable {
        rp.deliver(make_error(errc::timeout, "no answer from device '" + device + "' within " +
                                               std::to_string(timeout.count()) + " ms"));
      });
  return rp;
}

caf::result<value> invoke(modbus_actor* self, action_request& req) {
  auto* d = self->state.find(req.device);
  if (!d) return make_error(errc::not_found, "no device '" + req.device + "' in this connector");
  const action_config* a = d->config->action(req.action);
  if (!a)
    return make_error(errc::not_found,
                      "device '" + req.device + "' has no action '" + req.action + "'");
  auto* s = std::any_cast<action_settings>(&a->settings);
  if (!s) return make_error(errc::internal, "action '" + req.action + "' has no settings");
  auto param = req.params.find(s->parameter);
  const parameter_config* pc = a->parameter(s->parameter);
  if (param == req.params.end() && pc && pc->default_value)
    return write_point(self, req.device, s->point, *pc->default_value, a->result);
  if (param == req.params.end())
    return make_error(errc::bad_request, "missing parameter '" + s->parameter + "'");
  return write_point(self, req.device, s->point, param->second, a->result);
}

caf::behavior modbus_connector(modbus_actor* self, connector_context ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  report_crashes(self, st.ctx);
  if (auto* s = std::any_cast<connector_settings>(&st.ctx.config->settings)) st.settings = *s;
  for (auto& dc : st.ctx.config->devices)
    st.devices.push_back(make_device(dc, st.settings.max_gap));

  modbus_client_options opts;
  opts.host = st.settings.host;
  opts.port = st.settings.port;
  opts.timeout = st.settings.timeout;
  st.worker = spawn_modbus_worker(self, st.ctx.transports, opts, st.ctx.fence);
  // A link only takes the worker down on an abnormal exit; it must also end on a normal one,
  // or its thread would outlive the connector.
  self->attach_functor([w = st.worker](const caf::error&) {
    caf::anon_send_exit(w, caf::exit_reason::user_shutdown);
  });

  std::size_t reads = 0;
  for (auto& d : st.devices) reads += d.plan.size();
  st.ctx.log.info("modbus connector started",
                  {{"connector", st.ctx.name()},
                   {"server", st.settings.host + ":" + std::to_string(st.settings.port)},
                   {"devices", std::to_string(st.devices.size())},
                   {"reads_per_poll", std::to_string(reads)}});
  self->send(self, poll_atom::value);

  return {
    [=](poll_atom) {
      // Fenced: no poll at all (the worker refuses device calls too, should one be queued).
      if (self->state.ctx.may_drive())
        for (auto& d : self->state.devices) poll_device(self, d);
      self->delayed_send(self, self->state.ctx.config->poll_interval, poll_atom::value);
    },
    [=](invoke_atom, action_request& req) { return invoke(self, req); },
    [=](write_atom, const std::string& device, const std::string& point,
        value& v) -> caf::result<value> {
      return write_point(self, device, point, v, std::nullopt);
    },
    [=](status_atom) {
      connector_status s;
      s.name = self->state.ctx.name();
      s.type = "modbus";
      for (auto& d : self->state.devices)
        if (d.reachable == std::optional<bool>{false}) {
          s.unreachable_devices.push_back(d.config->name);
          // The first one's reason: what `connectors list` shows for a degraded connector.
          if (s.last_error.empty())
            s.last_error = "device '" + d.config->name + "' unreachable: " + d.unreachable_reason;
        }
      s.state = s.unreachable_devices.empty() ? connector_state::running
                                              : connector_state::degraded;
      return s;
    },
  };
}

/// `modbus`: its schema and behaviour, one actor per instance.
using modbus_type = basic_connector_type<modbus_schema, &modbus_connector>;

} // namespace

std::unique_ptr<connector_type> make_modbus_connector() {
  return std::make_unique<modbus_type>("modbus");
}

} // namespace manifold::connectors
