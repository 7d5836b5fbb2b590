// The gateway actor: the one entry to the unified API. The HTTP server hands it every request;
// it routes reads to the data bus and calls to the owning connector's supervisor, and never
// blocks: every downstream call is an asynchronous request with the configured deadline.

#include "manifold/gateway/gateway.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/config.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/metrics.hpp"
#include "protocol.hpp"
#include "wire.hpp"

namespace manifold::gateway {

namespace {

using json = nlohmann::json;
using steady = std::chrono::steady_clock;

// -- one request in flight ------------------------------------------------------------------------

/// Answers one HTTP request exactly once and records its metrics under the route template (never
/// the raw path, to keep label cardinality bounded). A request dropped without an answer (a bug)
/// still gets a 500 from the destructor instead of leaving the client hanging.
class exchange {
public:
  exchange(http_callback cb, bool msgpack, std::shared_ptr<node_metrics> metrics)
    : cb_(std::move(cb)), msgpack_(msgpack), metrics_(std::move(metrics)),
      started_(steady::now()) {}

  ~exchange() {
    if (cb_) reply(error_reply(errc::internal, "the gateway dropped this request", msgpack_));
  }

  exchange(const exchange&) = delete;
  exchange& operator=(const exchange&) = delete;

  void set_route(std::string route) { route_ = std::move(route); }
  const std::string& route() const { return route_; }

  void reply(http_reply r) {
    if (!cb_) return;
    if (metrics_) {
      std::chrono::duration<double> took = steady::now() - started_;
      metrics_->http_requests(route_, r.status).Increment();
      metrics_->http_latency(route_).Observe(took.count());
    }
    auto cb = std::move(cb_);
    cb_ = nullptr;
    cb(std::move(r));
  }

  void document(int status, const json& body) { reply(document_reply(status, body, msgpack_)); }
  void error(errc code, const std::string& message) {
    reply(error_reply(code, message, msgpack_));
  }
  void error(const caf::error& err) { error(code_of(err), message_of(err)); }

private:
  http_callback cb_;
  bool msgpack_;
  std::shared_ptr<node_metrics> metrics_;
  steady::time_point started_;
  std::string route_ = "unmatched";
};

using exchange_ptr = std::shared_ptr<exchange>;

// -- state ----------------------------------------------------------------------------------------

struct device_entry {
  const connector_config* connector = nullptr;
  const device_config* device = nullptr;
};

struct gateway_state {
  gateway_deps deps;
  std::chrono::milliseconds timeout{10000};
  /// For calls to another node: a paused or cut-off node must not hold a client for the whole
  /// request timeout.
  std::chrono::milliseconds remote_timeout{3000};
  std::map<std::string, device_entry> devices; ///< Device name -> its declaration.
  log::logger log{"gateway"};
  static inline const char* name = "gateway";
};

using gateway_actor = caf::stateful_actor<gateway_state>;

/// Path parameters bound by a route pattern, in order of appearance.
using path_params = std::vector<std::string>;

using handler = void (*)(gateway_actor*, const exchange_ptr&, const path_params&,
                         const http_request_data&);

struct route {
  std::string templ;                     ///< e.g. `/v1/devices/{device}`
  std::vector<std::string> pattern;      ///< The template split at `/`.
  std::map<std::string, handler> methods; ///< Method -> handler.
};

/// Where the calls for one connector go: its supervisor and the data bus its readings land on,
/// on this node or another one.
struct target {
  caf::actor supervisor;
  caf::actor bus;
  std::string node; ///< Empty on a single node.
  bool remote = false;
  std::string unavailable; ///< Why there is nowhere to go; the handles are null then.

  explicit operator bool() const { return unavailable.empty(); }
};

target target_of(gateway_actor* self, const std::string& connector) {
  auto& st = self->state;
  target t;
  if (!st.deps.directory) {
    // One node: readings are on the local bus even while no supervisor runs the connector.
    t.bus = st.deps.bus;
    auto& c = st.deps.connectors;
    if (auto i = c.find(connector); i != c.end() && i->second) {
      t.supervisor = i->second;
    } else {
      t.unavailable = "no supervisor runs connector '" + connector + "'";
    }
    return t;
  }
  auto loc = st.deps.directory->locate(connector);
  using kind = connector_location::kind;
  t.node = loc.node;
  if (loc.where == kind::unavailable) {
    t.unavailable = loc.reason;
    return t;
  }
  t.supervisor = loc.supervisor;
  t.remote = loc.where == kind::remote;
  // The local bus is ours even when the directory's handle to it would do.
  t.bus = t.remote ? loc.bus : st.deps.bus;
  return t;
}

std::chrono::milliseconds deadline_for(gateway_actor* self, const target& t) {
  auto& st = self->state;
  return t.remote ? std::min(st.timeout, st.remote_timeout) : st.timeout;
}

/// A remote node that does not answer in time or whose connection broke is unavailable (503),
/// not a slow connector (504): the client should retry elsewhere or later.
caf::error remote_error(gateway_actor* self, const target& t, const caf::error& err) {
  if (!t.remote) return err;
  auto code = code_of(err);
  if (code == errc::timeout)
    return make_error(errc::unavailable,
                      "node '" + t.node + "' did not answer within " +
                        std::to_string(deadline_for(self, t).count()) +
                        " ms; the request may still reach it and take effect");
  if (err.category() != manifold_errc_category())
    return make_error(errc::unavailable,
                      "node '" + t.node + "' cannot be reached: " + message_of(err));
  return err;
}

const device_entry* find_device(gateway_actor* self, const std::string& name) {
  auto& d = self->state.devices;
  auto i = d.find(name);
  return i == d.end() ? nullptr : &i->second;
}

// -- rendering ------------------------------------------------------------------------------------

/// A declared bound of a parameter as JSON: an integer for an `int64` parameter (`1`, not
/// `1.0`), a number otherwise, `null` when not declared.
json bound_json(const parameter_config& p, const std::optional<double>& d) {
  if (!d) return nullptr;
  if (p.type == value_type::int64 && std::nearbyint(*d) == *d && std::abs(*d) < 9.2e18)
    return static_cast<std::int64_t>(*d);
  return *d;
}

/// A parameter's declared default in the parameter's own type.
json default_json(const parameter_config& p) {
  if (!p.default_value) return nullptr;
  auto v = coerce(*p.default_value, p.type);
  return to_json(v ? *v : *p.default_value);
}

json timestamp_json(timestamp ts) {
  return ts == 0 ? json(nullptr) : json(format_timestamp(ts));
}

/// A point's current state: its reading if the bus has one, else "waiting for first reading".
json point_state(const point_config& p, const point_reading* r) {
  json j;
  if (!r) {
    j["value"] = nullptr;
    j["unit"] = p.unit;
    j["quality"] = to_string(quality::bad);
    j["timestamp"] = nullptr;
    j["reason"] = "waiting for first reading";
    return j;
  }
  j["value"] = to_json(r->data);
  j["unit"] = p.unit;
  j["quality"] = to_string(r->q);
  j["timestamp"] = timestamp_json(r->source_time);
  if (r->q != quality::good) j["reason"] = r->reason;
  return j;
}

json point_object(const point_config& p, const point_reading* r) {
  json j = point_state(p, r);
  j["name"] = p.name;
  j["type"] = to_string(p.type);
  j["writable"] = p.writable;
  return j;
}

json point_objects(const device_config& d, const std::vector<point_reading>& readings) {
  std::map<std::string, const point_reading*> by_point;
  for (auto& r : readings) by_point[r.point] = &r;
  json out = json::array();
  for (auto& p : d.points) {
    auto i = by_point.find(p.name);
    out.push_back(point_object(p, i == by_point.end() ? nullptr : i->second));
  }
  return out;
}

json action_object(const action_config& a) {
  json params = json::array();
  for (auto& p : a.parameters) {
    params.push_back({{"name", p.name},
                      {"type", to_string(p.type)},
                      {"required", p.required},
                      {"min", bound_json(p, p.min)},
                      {"max", bound_json(p, p.max)},
                      {"default", default_json(p)}});
  }
  return {{"name", a.name},
          {"description", a.description},
          {"params", std::move(params)},
          {"result", a.result ? json(to_string(*a.result)) : json(nullptr)}};
}

json device_summary(const connector_config& c, const device_config& d) {
  json points = json::array();
  for (auto& p : d.points) points.push_back(p.name);
  json actions = json::array();
  for (auto& a : d.actions) actions.push_back(a.name);
  return {{"name", d.name},
          {"connector", c.name},
          {"labels", d.labels},
          {"points", std::move(points)},
          {"actions", std::move(actions)}};
}

/// What a supervisor said about its connector, or why it said nothing.
struct status_answer {
  const connector_config* config = nullptr;
  std::optional<connector_status> status;
  std::string failure;
  std::string node;      ///< Where it runs, in a cluster.
  bool clustered = false;
};

json connector_object(const status_answer& a) {
  json devices = json::array();
  for (auto& d : a.config->devices) devices.push_back(d.name);
  json j{{"name", a.config->name}, {"type", a.config->type}};
  if (a.status) {
    j["state"] = to_string(a.status->state);
    j["restarts"] = a.status->restarts;
    j["last_error"] = a.status->last_error;
    j["unreachable_devices"] = a.status->unreachable_devices;
  } else {
    j["state"] = a.clustered ? "unavailable" : "unknown";
    j["restarts"] = nullptr;
    j["last_error"] = a.failure;
  }
  j["devices"] = std::move(devices);
  if (a.clustered) {
    j["node"] = a.node.empty() ? json(nullptr) : json(a.node);
    j["placement"] = a.config->placement.to_string();
  }
  return j;
}

/// Asks every connector in `list` for its status in parallel; `done` runs once all answered or
/// timed out.
void collect_statuses(gateway_actor* self, std::vector<const connector_config*> list,
                      std::function<void(std::vector<status_answer>&)> done) {
  struct gather {
    std::vector<status_answer> answers;
    std::size_t pending = 0;
    std::function<void(std::vector<status_answer>&)> done;
  };
  auto g = std::make_shared<gather>();
  g->answers.resize(list.size());
  g->pending = list.size();
  g->done = std::move(done);
  auto finish_one = [g] {
    if (--g->pending == 0) g->done(g->answers);
  };
  if (list.empty()) {
    g->done(g->answers);
    return;
  }
  for (std::size_t i = 0; i < list.size(); ++i) {
    auto& a = g->answers[i];
    a.config = list[i];
    auto t = target_of(self, list[i]->name);
    a.node = t.node;
    a.clustered = self->state.deps.directory != nullptr;
    if (!t) {
      a.failure = t.unavailable;
      finish_one();
      continue;
    }
    self->request(t.supervisor, deadline_for(self, t), status_atom::value)
      .then(
        [g, i, finish_one](connector_status& s) {
          g->answers[i].status = std::move(s);
          finish_one();
        },
        [self, g, i, t, finish_one](caf::error& err) {
          g->answers[i].failure = message_of(remote_error(self, t, err));
          finish_one();
        });
  }
}

// -- request bodies -------------------------------------------------------------------------------

/// Parses a JSON body; on failure answers 400 naming the byte where parsing stopped.
std::optional<json> parse_body(const exchange_ptr& ex, const std::string& body) {
  try {
    return json::parse(body);
  } catch (const json::parse_error& e) {
    // The parser's message ends quoting the last token it read, which can be most of the body:
    // keep what it says, cut only the quote.
    std::string what = e.what();
    constexpr std::string_view marker = "last read: '";
    if (auto at = what.find(marker); at != std::string::npos) {
      auto start = at + marker.size();
      auto token = what.substr(start);
      if (!token.empty() && token.back() == '\'') token.pop_back();
      what = what.substr(0, start) + clip(token) + "'";
    } else {
      what = clip(what);
    }
    ex->error(errc::bad_request,
              "invalid JSON body at byte " + std::to_string(e.byte) + ": " + what);
  } catch (const std::exception& e) {
    ex->error(errc::bad_request, "invalid JSON body: " + clip(e.what()));
  }
  return std::nullopt;
}

std::string describe_range(const parameter_config& p) {
  if (p.min && p.max)
    return "[" + bound_json(p, p.min).dump() + ", " + bound_json(p, p.max).dump() + "]";
  if (p.min) return ">= " + bound_json(p, p.min).dump();
  if (p.max) return "<= " + bound_json(p, p.max).dump();
  return {};
}

std::optional<double> as_number(const value& v) {
  if (auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (auto* d = std::get_if<double>(&v)) return *d;
  return std::nullopt;
}

/// Checks `body` against the action's declaration and fills `params`; returns the message of the
/// first problem, naming the parameter and what was expected.
std::optional<std::string> check_params(const action_config& a, const json& body,
                                        std::map<std::string, value>& params) {
  if (!body.is_object())
    return std::string{"the body must be a JSON object of parameters, got "} + body.type_name();
  for (auto& [key, val] : body.items()) {
    if (a.parameter(key)) continue;
    std::string known;
    for (auto& p : a.parameters) known += (known.empty() ? "" : ", ") + p.name;
    return "unknown parameter '" + clip(key) + "'; action '" + a.name + "' takes " +
           (known.empty() ? std::string{"no parameters"} : known);
  }
  for (auto& p : a.parameters) {
    auto it = body.find(p.name);
    if (it == body.end() || it->is_null()) {
      if (p.default_value) {
        auto v = coerce(*p.default_value, p.type);
        if (v) params[p.name] = *v;
        continue;
      }
      if (p.required)
        return "missing required parameter '" + p.name + "' (" + to_string(p.type) +
               (describe_range(p).empty() ? "" : ", " + describe_range(p)) + ")";
      continue;
    }
    std::string expected;
    auto v = from_json(*it, p.type, expected);
    if (!v)
      return "parameter '" + p.name + "' must be " + expected + " (" + to_string(p.type) +
             "), got " + clip(it->dump());
    if (auto n = as_number(*v); n && ((p.min && *n < *p.min) || (p.max && *n > *p.max)))
      return "parameter '" + p.name + "' must be within " + describe_range(p) + ", got " +
             clip(it->dump());
    params[p.name] = std::move(*v);
  }
  return std::nullopt;
}

// -- handlers -------------------------------------------------------------------------------------

void get_health(gateway_actor*, const exchange_ptr& ex, const path_params&,
                const http_request_data&) {
  ex->document(200, {{"status", "ok"}});
}

void get_ready(gateway_actor* self, const exchange_ptr& ex, const path_params&,
               const http_request_data&) {
  std::vector<const connector_config*> list;
  // In a cluster a node answers for the connectors it runs; the others are their owners' to say.
  auto& dir = self->state.deps.directory;
  if (auto& cfg = self->state.deps.config)
    for (auto& c : cfg->connectors)
      if (!dir || dir->locate(c.name).where == connector_location::kind::local)
        list.push_back(&c);
  collect_statuses(self, std::move(list), [ex](std::vector<status_answer>& answers) {
    json reasons = json::array();
    for (auto& a : answers) {
      auto who = "connector '" + a.config->name + "'";
      if (!a.status)
        reasons.push_back(who + " did not answer: " + a.failure);
      else if (a.status->state == connector_state::failed ||
               a.status->state == connector_state::starting ||
               a.status->state == connector_state::stopped)
        reasons.push_back(who + " is " + to_string(a.status->state) +
                          (a.status->last_error.empty() ? "" : ": " + a.status->last_error));
    }
    if (reasons.empty())
      ex->document(200, {{"status", "ready"}});
    else
      ex->document(503, {{"status", "not ready"}, {"reasons", std::move(reasons)}});
  });
}

void get_metrics(gateway_actor* self, const exchange_ptr& ex, const path_params&,
                 const http_request_data&) {
  http_reply r;
  r.content_type = "text/plain; version=0.0.4";
  auto& m = self->state.deps.metrics;
  if (auto& dir = self->state.deps.directory; m && dir) {
    // Read from the directory at scrape time: always current, and no writer needs the metrics.
    std::size_t alive = 0;
    std::size_t down = 0;
    for (auto& member : dir->members()) ++(member.health == member_health::alive ? alive : down);
    m->set_cluster_members(alive, down, dir->leader().id == dir->self_id());
  }
  if (m) r.body = m->serialize();
  ex->reply(std::move(r));
}

void list_connectors(gateway_actor* self, const exchange_ptr& ex, const path_params&,
                     const http_request_data&) {
  std::vector<const connector_config*> list;
  if (auto& cfg = self->state.deps.config)
    for (auto& c : cfg->connectors) list.push_back(&c);
  collect_statuses(self, std::move(list), [ex](std::vector<status_answer>& answers) {
    json out = json::array();
    for (auto& a : answers) out.push_back(connector_object(a));
    ex->document(200, out);
  });
}

void get_connector(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                   const http_request_data&) {
  auto& cfg = self->state.deps.config;
  const connector_config* c = cfg ? cfg->connector(pp[0]) : nullptr;
  if (!c) return ex->error(errc::not_found, "no connector '" + clip(pp[0]) + "'");
  collect_statuses(self, {c}, [ex](std::vector<status_answer>& answers) {
    ex->document(200, connector_object(answers.front()));
  });
}

/// `POST /v1/connectors/{name}/{stop|start|restart}`: lifecycle by hand, answered with the
/// connector's status after the change.
template <class Atom>
void connector_lifecycle(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                         const http_request_data&) {
  auto& cfg = self->state.deps.config;
  const connector_config* c = cfg ? cfg->connector(pp[0]) : nullptr;
  if (!c) return ex->error(errc::not_found, "no connector '" + clip(pp[0]) + "'");
  auto t = target_of(self, c->name);
  if (!t) return ex->error(errc::unavailable, t.unavailable);
  self->request(t.supervisor, deadline_for(self, t), Atom::value)
    .then(
      [self, ex, c, t](connector_status& s) {
        status_answer a;
        a.config = c;
        a.status = std::move(s);
        a.node = t.node;
        a.clustered = self->state.deps.directory != nullptr;
        ex->document(200, connector_object(a));
      },
      [self, ex, t](caf::error& err) { ex->error(remote_error(self, t, err)); });
}

void list_devices(gateway_actor* self, const exchange_ptr& ex, const path_params&,
                  const http_request_data&) {
  json out = json::array();
  auto& dir = self->state.deps.directory;
  if (auto& cfg = self->state.deps.config)
    for (auto& c : cfg->connectors) {
      std::optional<connector_location> loc;
      if (dir) loc = dir->locate(c.name);
      for (auto& d : c.devices) {
        auto j = device_summary(c, d);
        if (loc) {
          j["node"] = loc->node.empty() ? json(nullptr) : json(loc->node);
          j["available"] = loc->where != connector_location::kind::unavailable;
        }
        out.push_back(std::move(j));
      }
    }
  ex->document(200, out);
}

/// The device's declaration; answers 404 and returns nullptr when there is none.
const device_entry* device_or_404(gateway_actor* self, const exchange_ptr& ex,
                                  const std::string& name) {
  auto* e = find_device(self, name);
  if (!e) ex->error(errc::not_found, "no device '" + clip(name) + "'");
  return e;
}

/// Asks the bus for the device's latest readings, then runs `then` with them.
void with_readings(gateway_actor* self, const exchange_ptr& ex, const device_entry& e,
                   std::function<void(std::vector<point_reading>&)> then) {
  auto t = target_of(self, e.connector->name);
  if (!t.bus) return ex->error(errc::unavailable, t.unavailable);
  self->request(t.bus, deadline_for(self, t), get_atom::value, e.device->name)
    .then([then](std::vector<point_reading>& rs) { then(rs); },
          [self, ex, t](caf::error& err) { ex->error(remote_error(self, t, err)); });
}

void get_device(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                const http_request_data&) {
  auto* e = device_or_404(self, ex, pp[0]);
  if (!e) return;
  with_readings(self, ex, *e, [self, ex, e](std::vector<point_reading>& rs) {
    json actions = json::array();
    for (auto& a : e->device->actions) actions.push_back(action_object(a));
    json j{{"name", e->device->name},
           {"connector", e->connector->name},
           {"labels", e->device->labels},
           {"points", point_objects(*e->device, rs)},
           {"actions", std::move(actions)}};
    if (self->state.deps.directory) j["node"] = target_of(self, e->connector->name).node;
    ex->document(200, j);
  });
}

void list_points(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                 const http_request_data&) {
  auto* e = device_or_404(self, ex, pp[0]);
  if (!e) return;
  with_readings(self, ex, *e, [ex, e](std::vector<point_reading>& rs) {
    ex->document(200, point_objects(*e->device, rs));
  });
}

const point_config* point_or_404(const exchange_ptr& ex, const device_entry& e,
                                 const std::string& name) {
  auto* p = e.device->point(name);
  if (!p)
    ex->error(errc::not_found,
              "device '" + e.device->name + "' has no point '" + clip(name) + "'");
  return p;
}

void get_point(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
               const http_request_data&) {
  auto* e = device_or_404(self, ex, pp[0]);
  if (!e) return;
  auto* p = point_or_404(ex, *e, pp[1]);
  if (!p) return;
  auto t = target_of(self, e->connector->name);
  if (!t.bus) return ex->error(errc::unavailable, t.unavailable);
  self->request(t.bus, deadline_for(self, t), get_atom::value, pp[0], pp[1])
    .then([ex, p](point_reading& r) { ex->document(200, point_state(*p, &r)); },
          [self, ex, p, t](caf::error& err) {
            // The bus answers not_found until the first reading arrives: declared, not broken.
            if (code_of(err) == errc::not_found)
              ex->document(200, point_state(*p, nullptr));
            else
              ex->error(remote_error(self, t, err));
          });
}

void put_point(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
               const http_request_data& req) {
  auto* e = device_or_404(self, ex, pp[0]);
  if (!e) return;
  auto* p = point_or_404(ex, *e, pp[1]);
  if (!p) return;
  if (!p->writable)
    return ex->error(errc::read_only, "point '" + pp[0] + "/" + pp[1] + "' is read-only");
  auto body = parse_body(ex, req.body);
  if (!body) return;
  if (!body->is_object() || !body->contains("value") || body->size() != 1)
    return ex->error(errc::bad_request,
                     std::string{"the body must be {\"value\": ...} with a "} +
                       to_string(p->type) + ", got " + clip(body->dump()));
  std::string expected;
  auto v = from_json(body->at("value"), p->type, expected);
  if (!v)
    return ex->error(errc::bad_request, "'value' must be " + expected + " (" +
                                          to_string(p->type) + "), got " +
                                          clip(body->at("value").dump()));
  auto t = target_of(self, e->connector->name);
  if (!t) return ex->error(errc::unavailable, t.unavailable);
  self->request(t.supervisor, deadline_for(self, t), write_atom::value, pp[0], pp[1],
                std::move(*v))
    .then([ex](value& written) { ex->document(200, {{"value", to_json(written)}}); },
          [self, ex, t](caf::error& err) { ex->error(remote_error(self, t, err)); });
}

void call_action(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                 const http_request_data& req) {
  auto* e = device_or_404(self, ex, pp[0]);
  if (!e) return;
  auto* a = e->device->action(pp[1]);
  if (!a)
    return ex->error(errc::not_found,
                     "device '" + pp[0] + "' has no action '" + clip(pp[1]) + "'");
  // An action without parameters may be called with an empty body.
  json body = json::object();
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto parsed = parse_body(ex, req.body);
    if (!parsed) return;
    body = std::move(*parsed);
  }
  action_request call;
  call.device = pp[0];
  call.action = pp[1];
  if (auto problem = check_params(*a, body, call.params))
    return ex->error(errc::bad_request, *problem);
  const auto& connector = e->connector->name;
  auto t = target_of(self, connector);
  if (!t) return ex->error(errc::unavailable, t.unavailable);
  auto metrics = self->state.deps.metrics;
  auto started = steady::now();
  auto record = [metrics, connector, action = call.action, started](const char* outcome) {
    if (!metrics) return;
    std::chrono::duration<double> took = steady::now() - started;
    metrics->action_calls(connector, action, outcome).Increment();
    metrics->action_latency(connector).Observe(took.count());
  };
  self->request(t.supervisor, deadline_for(self, t), invoke_atom::value, std::move(call))
    .then(
      [ex, record](value& result) {
        record("ok");
        ex->document(200, {{"result", to_json(result)}});
      },
      [self, ex, record, connector, t, action = pp[1]](caf::error& raw) {
        auto err = remote_error(self, t, raw);
        record(to_string(code_of(err)));
        self->state.log.warn("action failed", {{"connector", connector},
                                               {"action", action},
                                               {"error", message_of(err)}});
        ex->error(err);
      });
}

// -- cluster --------------------------------------------------------------------------------------

json member_object(const cluster_member& m, std::chrono::steady_clock::time_point now) {
  json connectors = json::array();
  for (auto& r : m.running) connectors.push_back({{"name", r.name}, {"state", to_string(r.state)}});
  std::chrono::duration<double> ago = now - m.last_seen;
  return {{"id", m.info.id},
          {"self", m.self},
          {"address", m.info.address},
          {"api_url", m.info.api_url},
          {"labels", m.info.labels},
          {"health", to_string(m.health)},
          {"node_health", m.node_health},
          {"reason", m.reason},
          {"last_seen_seconds_ago", m.self ? 0.0 : std::round(ago.count() * 10) / 10},
          {"connectors", std::move(connectors)}};
}

/// `GET /v1/cluster`: members with health, the leader, and where every connector runs.
void get_cluster(gateway_actor* self, const exchange_ptr& ex, const path_params&,
                 const http_request_data&) {
  auto& st = self->state;
  auto& dir = st.deps.directory;
  if (!dir)
    return ex->error(errc::not_found, "this node runs alone: its config has no 'cluster' "
                                      "section");
  auto& cfg = dir->config();
  auto now = std::chrono::steady_clock::now();
  json members = json::array();
  std::map<std::string, std::map<std::string, connector_state>> running; // node -> connector
  for (auto& m : dir->members()) {
    members.push_back(member_object(m, now));
    for (auto& r : m.running) running[m.info.id][r.name] = r.state;
  }
  json connectors = json::array();
  for (auto& c : cfg.connectors) {
    auto loc = dir->locate(c.name);
    // Its state on its node, as that node's last heartbeat said: `stopped` when that node
    // does not run it (stopped by hand, or not started yet).
    json state = nullptr;
    if (!loc.node.empty() && dir->is_alive(loc.node)) {
      auto& on_node = running[loc.node];
      auto i = on_node.find(c.name);
      state = i == on_node.end() ? "stopped" : to_string(i->second);
    }
    connectors.push_back({{"name", c.name},
                          {"type", c.type},
                          {"placement", c.placement.to_string()},
                          {"movable", c.placement.movable()},
                          {"node", loc.node.empty() ? json(nullptr) : json(loc.node)},
                          {"state", state},
                          {"available", loc.where != connector_location::kind::unavailable},
                          {"reason", loc.reason}});
  }
  json seeds = json::array();
  for (auto& s : dir->seeds())
    seeds.push_back({{"address", s.address},
                     {"connected", s.connected},
                     {"member", s.member},
                     {"attempts", s.attempts},
                     {"last_error", s.last_error}});
  json refusals = json::array();
  for (auto& r : dir->refusals()) {
    std::chrono::duration<double> ago = now - r.when;
    refusals.push_back({{"peer", r.peer},
                        {"reason", r.reason},
                        {"seconds_ago", std::round(ago.count() * 10) / 10}});
  }
  auto leader = dir->leader();
  bool failover = cfg.cluster.etcd.has_value();
  json doc{{"cluster", cfg.cluster.name},
           {"self", dir->self_id()},
           {"failover", failover},
           {"leader", {{"id", leader.id.empty() ? json(nullptr) : json(leader.id)},
                       {"chosen_by", leader.chosen_by}}},
           {"members", std::move(members)},
           {"connectors", std::move(connectors)},
           {"seeds", std::move(seeds)},
           {"refusals", std::move(refusals)}};
  if (!failover) {
    doc["note"] = "no etcd configured: connectors run where they are pinned, and nothing fails "
                  "over";
    doc["ownership"] = nullptr;
    return ex->document(200, doc);
  }
  if (!st.deps.cluster_admin) {
    doc["ownership"] = nullptr;
    return ex->document(200, doc);
  }
  self->request(st.deps.cluster_admin, st.remote_timeout, cluster_atom::value)
    .then(
      [ex, doc](std::string& view) mutable {
        doc["ownership"] = json::parse(view, nullptr, false);
        // Draining is etcd's to say; show it on the members too.
        auto& draining = doc["ownership"]["draining"];
        for (auto& m : doc["members"])
          m["draining"] = draining.is_array() &&
                          std::find(draining.begin(), draining.end(), m["id"]) != draining.end();
        ex->document(200, doc);
      },
      [ex, doc](caf::error& err) mutable {
        // message_of speaks of connectors for a dead receiver; this receiver is the worker.
        doc["ownership"] = {{"error", code_of(err) == errc::unavailable
                                        ? "the ownership worker is not running"
                                        : message_of(err)}};
        ex->document(200, doc);
      });
}

/// Drain and move need the ownership worker, which exists only with etcd.
bool admin_or_409(gateway_actor* self, const exchange_ptr& ex, const char* what) {
  if (self->state.deps.cluster_admin) return true;
  ex->error(errc::conflict,
            std::string{what} + " needs failover, and failover needs 'cluster.etcd' in the "
                                "config: without it connectors stay where they are pinned");
  return false;
}

/// `POST /v1/cluster/nodes/{node}/drain` with an optional `{"drain": false}` to undo.
void drain_node(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                const http_request_data& req) {
  if (!self->state.deps.directory)
    return ex->error(errc::not_found, "this node runs alone: there is no cluster to drain");
  if (!config::valid_name(pp[0]))
    return ex->error(errc::bad_request, "'" + clip(pp[0]) + "' is not a node id (1 to 64 "
                                        "letters, digits, '-', '_' or '.')");
  bool on = true;
  if (req.body.find_first_not_of(" \t\r\n") != std::string::npos) {
    auto body = parse_body(ex, req.body);
    if (!body) return;
    if (!body->is_object() || body->size() != 1 || !body->contains("drain") ||
        !body->at("drain").is_boolean())
      return ex->error(errc::bad_request,
                       "the body must be empty or {\"drain\": true|false}, got " +
                         clip(body->dump()));
    on = body->at("drain").get<bool>();
  }
  if (!admin_or_409(self, ex, "draining a node")) return;
  self->request(self->state.deps.cluster_admin, self->state.remote_timeout, drain_atom::value,
                pp[0], on)
    .then([ex](std::string& message) { ex->document(200, {{"result", message}}); },
          [ex](caf::error& err) { ex->error(err); });
}

/// `POST /v1/connectors/{name}/move` with `{"to": "NODE"}`.
void move_connector(gateway_actor* self, const exchange_ptr& ex, const path_params& pp,
                    const http_request_data& req) {
  auto& cfg = self->state.deps.config;
  const connector_config* c = cfg ? cfg->connector(pp[0]) : nullptr;
  if (!c) return ex->error(errc::not_found, "no connector '" + clip(pp[0]) + "'");
  if (!self->state.deps.directory)
    return ex->error(errc::not_found, "this node runs alone: there is no other node to move to");
  if (req.body.find_first_not_of(" \t\r\n") == std::string::npos)
    return ex->error(errc::bad_request, "the body must be {\"to\": \"NODE\"}, got nothing");
  auto body = parse_body(ex, req.body);
  if (!body) return;
  if (!body->is_object() || body->size() != 1 || !body->contains("to") ||
      !body->at("to").is_string())
    return ex->error(errc::bad_request,
                     "the body must be {\"to\": \"NODE\"}, got " + clip(body->dump()));
  auto to = body->at("to").get<std::string>();
  if (!config::valid_name(to))
    return ex->error(errc::bad_request, "'to' must be a node id (1 to 64 letters, digits, '-', "
                                        "'_' or '.'), got '" + clip(to) + "'");
  if (!c->placement.node.empty())
    return ex->error(errc::conflict, "connector '" + c->name + "' is pinned to node '" +
                                       c->placement.node + "' and does not move");
  if (!admin_or_409(self, ex, "moving a connector")) return;
  self->request(self->state.deps.cluster_admin, self->state.remote_timeout, move_atom::value,
                c->name, to)
    .then([ex](std::string& message) { ex->document(200, {{"result", message}}); },
          [ex](caf::error& err) { ex->error(err); });
}

void stream_without_upgrade(gateway_actor*, const exchange_ptr& ex, const path_params&,
                            const http_request_data&) {
  ex->error(errc::bad_request, "/v1/stream expects a WebSocket upgrade request");
}

// -- routing --------------------------------------------------------------------------------------

std::vector<std::string> split_template(const std::string& templ) {
  return split_path(templ).value_or(std::vector<std::string>{});
}

const std::vector<route>& routes() {
  static const std::vector<route> table = [] {
    std::vector<route> t{
      {"/healthz", {}, {{"GET", get_health}}},
      {"/readyz", {}, {{"GET", get_ready}}},
      {"/metrics", {}, {{"GET", get_metrics}}},
      {"/v1/connectors", {}, {{"GET", list_connectors}}},
      {"/v1/connectors/{name}", {}, {{"GET", get_connector}}},
      {"/v1/connectors/{name}/stop", {}, {{"POST", connector_lifecycle<stop_atom>}}},
      {"/v1/connectors/{name}/start", {}, {{"POST", connector_lifecycle<start_atom>}}},
      {"/v1/connectors/{name}/restart", {}, {{"POST", connector_lifecycle<restart_atom>}}},
      {"/v1/connectors/{name}/move", {}, {{"POST", move_connector}}},
      {"/v1/cluster", {}, {{"GET", get_cluster}}},
      {"/v1/cluster/nodes/{node}/drain", {}, {{"POST", drain_node}}},
      {"/v1/devices", {}, {{"GET", list_devices}}},
      {"/v1/devices/{device}", {}, {{"GET", get_device}}},
      {"/v1/devices/{device}/points", {}, {{"GET", list_points}}},
      {"/v1/devices/{device}/points/{point}", {}, {{"GET", get_point}, {"PUT", put_point}}},
      {"/v1/devices/{device}/actions/{action}", {}, {{"POST", call_action}}},
      {"/v1/stream", {}, {{"GET", stream_without_upgrade}}},
    };
    for (auto& r : t) r.pattern = split_template(r.templ);
    return t;
  }();
  return table;
}

const route* match(const std::vector<std::string>& segments, path_params& params) {
  for (auto& r : routes()) {
    if (r.pattern.size() != segments.size()) continue;
    path_params bound;
    bool ok = true;
    for (std::size_t i = 0; i < segments.size() && ok; ++i) {
      auto& pat = r.pattern[i];
      if (!pat.empty() && pat.front() == '{')
        bound.push_back(segments[i]);
      else
        ok = pat == segments[i];
    }
    if (ok) {
      params = std::move(bound);
      return &r;
    }
  }
  return nullptr;
}

void dispatch(gateway_actor* self, const http_request_data& req, http_callback& cb) {
  auto ex = std::make_shared<exchange>(std::move(cb), wants_msgpack(req.accept),
                                       self->state.deps.metrics);
  auto segments = split_path(req.target);
  if (!segments)
    return ex->error(errc::bad_request, "malformed percent-encoding in the request path");
  path_params params;
  auto* r = match(*segments, params);
  if (!r)
    return ex->error(errc::not_found,
                     "no route for " + clip(req.method) + " " + clip(req.target));
  ex->set_route(r->templ);
  auto h = r->methods.find(req.method);
  if (h == r->methods.end()) {
    std::string allow;
    for (auto& [m, fn] : r->methods) allow += (allow.empty() ? "" : ", ") + m;
    auto reply = error_reply(errc::bad_request,
                             "method " + clip(req.method) + " is not allowed on " + r->templ +
                               "; allowed: " + allow,
                             wants_msgpack(req.accept));
    reply.status = 405;
    reply.headers.emplace_back("Allow", allow);
    return ex->reply(std::move(reply));
  }
  h->second(self, ex, params, req);
}

caf::behavior gateway(gateway_actor* self, gateway_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  if (auto& cfg = st.deps.config) {
    st.timeout = cfg->gateway.request_timeout;
    st.remote_timeout = cfg->cluster.request_timeout;
    for (auto& c : cfg->connectors)
      for (auto& d : c.devices) st.devices.emplace(d.name, device_entry{&c, &d});
  }
  return {
    [=](cluster_atom, caf::actor& admin) {
      // The ownership worker starts after the gateway: it needs the gateway's bound URL.
      self->state.deps.cluster_admin = std::move(admin);
    },
    [=](http_atom, http_request_data& req, http_callback& cb) {
      // No exception may leave a handler; the exchange answers 500 if one cuts a request short.
      try {
        dispatch(self, req, cb);
      } catch (const std::exception& e) {
        self->state.log.error("request failed", {{"target", req.target}, {"error", e.what()}});
      }
    },
  };
}

} // namespace

caf::actor spawn_gateway(caf::actor_system& sys, gateway_deps deps) {
  return sys.spawn(gateway, std::move(deps));
}

} // namespace manifold::gateway
