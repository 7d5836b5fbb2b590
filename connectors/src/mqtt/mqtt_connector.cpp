// The mqtt connector: points follow topics a broker delivers, actions publish to topics.
//
// The client's callbacks run on libmosquitto's thread; they only `anon_send` to the connector
// actor, which owns all state. So the actor never blocks on the network and no library thread
// touches actor state.

#include <chrono>
#include <unordered_map>

#include <atomic>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <prometheus/counter.h>
#include <prometheus/histogram.h>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/mqtt_transport.hpp"
#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/connectors/transport.hpp"
#include "mqtt/mqtt_mapping.hpp"
#include "mqtt/mqtt_schema.hpp"

namespace manifold::connectors {

namespace {

using namespace mqtt;

// Messages from the client's thread (and our own timers) to the actor.
using connected_atom = caf::atom_constant<caf::atom("mqconn")>;
using disconnected_atom = caf::atom_constant<caf::atom("mqdisc")>;
using message_atom = caf::atom_constant<caf::atom("mqmsg")>;
using oversized_atom = caf::atom_constant<caf::atom("mqbig")>;
using published_atom = caf::atom_constant<caf::atom("mqpubd")>;
using ack_timeout_atom = caf::atom_constant<caf::atom("mqacktmo")>;

/// One point listening on a topic.
struct point_binding {
  const device_config* device = nullptr;
  const point_config* point = nullptr;
  field_spec spec;
};

/// A publish waiting for the broker's acknowledgement.
struct pending_publish {
  caf::response_promise promise;
  std::uint64_t seq = 0; ///< Tells a timeout for this publish from one for a reused message id.
  std::string device;
  std::string action;
  std::chrono::steady_clock::time_point started;
};

struct mqtt_state {
  connector_context ctx;
  mqtt_client_options opts;
  std::unique_ptr<mqtt_client> client;
  bool connected = false;
  bool stale_published = false; ///< Points were marked stale for the current outage.
  std::string last_disconnect;
  std::unordered_map<std::string, std::vector<point_binding>> by_topic;
  std::unordered_map<int, pending_publish> pending; ///< By MQTT message id.
  std::uint64_t next_seq = 0;
  /// The reason each point last went bad, so a device that keeps sending garbage is logged once
  /// per kind of garbage, not once per message.
  std::unordered_map<const point_config*, std::string> bad_reason;
  /// Messages posted by the client thread and not yet handled; bounded by opts.max_inflight.
  std::shared_ptr<std::atomic<std::size_t>> inflight = std::make_shared<std::atomic<std::size_t>>(0);
  /// Messages the client thread dropped because `inflight` was at its bound.
  std::shared_ptr<std::atomic<std::uint64_t>> dropped =
    std::make_shared<std::atomic<std::uint64_t>>(0);
  std::uint64_t dropped_logged = 0;
  std::uint64_t dropped_counted = 0; ///< Drops already added to the dropped_total metric.
  static inline const char* name = "mqtt_connector";
};

using mqtt_actor = caf::stateful_actor<mqtt_state>;

// -- helpers --------------------------------------------------------------------------------------

log::field conn_field(const mqtt_state& st) {
  return {"connector", st.ctx.name()};
}

std::string broker(const mqtt_state& st) {
  return st.opts.host + ":" + std::to_string(st.opts.port);
}

void count_action(mqtt_state& st, const std::string& action, const std::string& outcome,
                  std::chrono::steady_clock::time_point started) {
  auto& m = st.ctx.metrics;
  if (!m) return;
  m->action_calls(st.ctx.name(), action, outcome).Increment();
  m->action_latency(st.ctx.name())
      .Observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
}

/// The handlers the client calls on its own thread: each only posts a message to the actor. A
/// weak address, so a client outliving its actor for a moment sends into the void.
mqtt_handlers make_handlers(mqtt_actor* self) {
  auto addr = self->address();
  auto post = [addr](auto&&... xs) {
    if (auto a = caf::actor_cast<caf::actor>(addr))
      caf::anon_send(a, std::forward<decltype(xs)>(xs)...);
  };
  mqtt_handlers h;
  h.on_connect = [post] { post(connected_atom::value); };
  h.on_disconnect = [post](const std::string& reason) { post(disconnected_atom::value, reason); };
  auto inflight = self->state.inflight;
  auto dropped = self->state.dropped;
  auto limit = self->state.opts.max_inflight;
  h.on_message = [post, inflight, dropped, limit](const std::string& topic,
                                                 const std::string& payload) {
    // A device flooding faster than the connector handles loses its newest messages here, on
    // the client thread, instead of piling them up in the actor's (unbounded) mailbox.
    if (inflight->load(std::memory_order_relaxed) >= limit) {
      dropped->fetch_add(1, std::memory_order_relaxed);
      return;
    }
    inflight->fetch_add(1, std::memory_order_relaxed);
    // An oversized payload is not copied into the mailbox: its size is all we need.
    if (payload.size() > max_payload_bytes)
      post(oversized_atom::value, topic, static_cast<std::uint64_t>(payload.size()));
    else
      post(message_atom::value, topic, payload);
  };
  h.on_published = [post](int mid) { post(published_atom::value, mid); };
  return h;
}

/// Frees one in-flight slot and reports drops, doubling the count between log lines so a
/// sustained flood logs a handful of lines, not one per message.
void message_handled(mqtt_actor* self) {
  auto& st = self->state;
  st.inflight->fetch_sub(1, std::memory_order_relaxed);
  auto dropped = st.dropped->load(std::memory_order_relaxed);
  if (dropped > st.dropped_counted && st.ctx.metrics) {
    st.ctx.metrics->connector_dropped(st.ctx.name())
      .Increment(static_cast<double>(dropped - st.dropped_counted));
    st.dropped_counted = dropped;
  }
  if (dropped > 0 && dropped >= 2 * st.dropped_logged) {
    st.ctx.log.warn("messages arrive faster than handled, dropping the newest",
                    {conn_field(st),
                     {"dropped_total", std::to_string(dropped)},
                     {"max_inflight", std::to_string(st.opts.max_inflight)}});
    st.dropped_logged = dropped;
  }
}

void publish_result(mqtt_actor* self, const point_binding& b, mapping_result r) {
  auto& st = self->state;
  if (r.q == quality::bad) {
    auto& last = st.bad_reason[b.point];
    if (last != r.reason)
      st.ctx.log.warn("payload does not map to point", {conn_field(st),
                                                        {"device", b.device->name},
                                                        {"point", b.point->name},
                                                        {"reason", r.reason}});
    last = r.reason;
  } else {
    st.bad_reason.erase(b.point);
  }
  point_reading reading;
  reading.connector = st.ctx.name();
  reading.device = b.device->name;
  reading.point = b.point->name;
  reading.data = std::move(r.data);
  reading.q = r.q;
  reading.reason = std::move(r.reason);
  reading.source_time = st.ctx.now();
  publish(self, st.ctx, std::move(reading));
}

void fail_pending(mqtt_actor* self, const std::string& why) {
  auto& st = self->state;
  for (auto& [mid, p] : st.pending) {
    count_action(st, p.action, "unavailable", p.started);
    p.promise.deliver(make_error(errc::unavailable, why));
  }
  st.pending.clear();
}

// -- events from the client -----------------------------------------------------------------------

/// Every device of an MQTT connector is reached through its one broker.
void set_devices_up(mqtt_actor* self, bool up) {
  auto& st = self->state;
  if (!st.ctx.metrics) return;
  for (auto& d : st.ctx.config->devices) st.ctx.metrics->device_up(st.ctx.name(), d.name).Set(up);
}

void on_connected(mqtt_actor* self) {
  auto& st = self->state;
  st.connected = true;
  set_devices_up(self, true);
  st.stale_published = false;
  st.last_disconnect.clear();
  st.ctx.log.info("connected to MQTT broker", {conn_field(st),
                                               {"broker", broker(st)},
                                               {"client_id", st.opts.client_id},
                                               {"topics", std::to_string(st.by_topic.size())}});
  // Clean session: the broker forgot our subscriptions, so every connect subscribes again.
  for (auto& [topic, bindings] : st.by_topic) {
    std::string error;
    if (!st.client->subscribe(topic, 1, error))
      st.ctx.log.warn("cannot subscribe", {conn_field(st), {"topic", topic}, {"error", error}});
  }
}

void on_disconnected(mqtt_actor* self, const std::string& reason) {
  auto& st = self->state;
  bool was_connected = st.connected;
  st.connected = false;
  st.last_disconnect = reason;
  set_devices_up(self, false);
  if (st.stale_published) return; // one outage, one warning and one stale mark per point
  st.stale_published = true;
  st.ctx.log.warn(was_connected ? "disconnected from MQTT broker" : "cannot reach MQTT broker",
                  {conn_field(st), {"broker", broker(st)}, {"reason", reason}});
  auto why = "MQTT broker " + broker(st) + " unreachable: " + reason;
  for (auto& d : st.ctx.config->devices)
    publish_stale(self, st.ctx, d, why);
  fail_pending(self, "connection to the MQTT broker lost before it acknowledged the message "
                     "(it may still be delivered after reconnecting): " +
                         reason);
}

void on_message(mqtt_actor* self, const std::string& topic, const std::string& payload) {
  auto& st = self->state;
  auto it = st.by_topic.find(topic);
  if (it == st.by_topic.end()) return; // e.g. a subscription of a previous connector instance
  std::vector<field_spec> specs;
  specs.reserve(it->second.size());
  for (auto& b : it->second)
    specs.push_back(b.spec);
  auto results = map_payload(payload, specs);
  for (std::size_t i = 0; i < results.size(); ++i)
    publish_result(self, it->second[i], std::move(results[i]));
}

void on_oversized(mqtt_actor* self, const std::string& topic, std::uint64_t size) {
  auto& st = self->state;
  auto it = st.by_topic.find(topic);
  if (it == st.by_topic.end()) return;
  auto why = "payload of " + std::to_string(size) + " bytes exceeds the limit of " +
             std::to_string(max_payload_bytes) + " bytes";
  for (auto& b : it->second)
    publish_result(self, b, mapping_result::bad(why));
}

void on_published(mqtt_actor* self, int mid) {
  auto& st = self->state;
  auto it = st.pending.find(mid);
  if (it == st.pending.end()) return; // already timed out
  count_action(st, it->second.action, "ok", it->second.started);
  it->second.promise.deliver(value{true});
  st.pending.erase(it);
}

void on_ack_timeout(mqtt_actor* self, int mid, std::uint64_t seq) {
  auto& st = self->state;
  auto it = st.pending.find(mid);
  if (it == st.pending.end() || it->second.seq != seq) return;
  auto& p = it->second;
  st.ctx.log.warn("broker did not acknowledge an action in time",
                  {conn_field(st), {"device", p.device}, {"action", p.action}});
  count_action(st, p.action, "timeout", p.started);
  p.promise.deliver(
      make_error(errc::timeout, "the MQTT broker did not acknowledge '" + p.action + "' within " +
                                    std::to_string(st.ctx.config->action_timeout.count()) + " ms"));
  st.pending.erase(it);
}

// -- requests -------------------------------------------------------------------------------------

caf::result<value> invoke(mqtt_actor* self, action_request& req) {
  auto& st = self->state;
  auto started = std::chrono::steady_clock::now();
  const auto* device = st.ctx.config->device(req.device);
  if (!device)
    return make_error(errc::not_found, "no device '" + req.device + "' in this connector");
  const auto* action = device->action(req.action);
  const auto* settings = action ? std::any_cast<action_settings>(&action->settings) : nullptr;
  if (!action || !settings)
    return make_error(errc::not_found,
                      "device '" + req.device + "' has no action '" + req.action + "'");
  if (!st.connected) {
    count_action(st, req.action, "unavailable", started);
    return make_error(errc::unavailable,
                      "not connected to the MQTT broker " + broker(st) +
                          (st.last_disconnect.empty() ? std::string{} : ": " + st.last_disconnect));
  }
  if (!st.ctx.may_drive()) {
    count_action(st, req.action, "unavailable", started);
    return make_error(errc::unavailable, std::string{"cannot publish to '"} + settings->topic +
                                           "': " + connector_context::fenced_reason);
  }
  std::string error;
  auto payload = action_payload(*settings, *action, std::move(req.params), error);
  if (!payload) {
    count_action(st, req.action, "bad_request", started);
    return make_error(errc::bad_request, error);
  }
  auto mid = st.client->publish(settings->topic, *payload, settings->qos, settings->retain, error);
  if (mid < 0) {
    count_action(st, req.action, "unavailable", started);
    return make_error(errc::unavailable, "cannot publish to '" + settings->topic + "': " + error);
  }
  st.ctx.log.debug("action published", {conn_field(st),
                                        {"device", req.device},
                                        {"action", req.action},
                                        {"topic", settings->topic},
                                        {"mid", std::to_string(mid)}});
  // The acknowledgement (PUBACK for QoS 1, the write for QoS 0) arrives as `published_atom`
  // after this handler returns, so registering the promise now cannot miss it.
  auto rp = self->make_response_promise();
  auto seq = st.next_seq++;
  st.pending[mid] = pending_publish{rp, seq, req.device, req.action, started};
  self->delayed_send(self, st.ctx.config->action_timeout, ack_timeout_atom::value, mid, seq);
  return rp;
}

connector_status status(mqtt_actor* self) {
  auto& st = self->state;
  connector_status s;
  s.name = st.ctx.name();
  s.type = "mqtt";
  s.state = st.connected ? connector_state::running : connector_state::degraded;
  if (!st.connected) {
    s.last_error = st.last_disconnect;
    for (auto& d : st.ctx.config->devices)
      s.unreachable_devices.push_back(d.name);
  }
  return s;
}

// -- the actor ------------------------------------------------------------------------------------

caf::behavior mqtt_connector(mqtt_actor* self, connector_context ctx) {
  auto& st = self->state;
  st.ctx = std::move(ctx);
  report_crashes(self, st.ctx);
  if (auto* o = std::any_cast<mqtt_client_options>(&st.ctx.config->settings)) st.opts = *o;
  for (auto& d : st.ctx.config->devices)
    for (auto& p : d.points)
      if (auto* s = std::any_cast<point_settings>(&p.settings))
        st.by_topic[s->topic].push_back({&d, &p, {p.type, s->json_field}});
  if (!st.ctx.transports) {
    st.ctx.log.error("no transport factory given", {conn_field(st)});
    self->quit(make_error(errc::internal, "mqtt connector started without transports"));
    return {};
  }
  st.client = st.ctx.transports->make_mqtt(st.opts);
  if (!st.client) {
    st.ctx.log.error("transport factory made no MQTT client", {conn_field(st)});
    self->quit(make_error(errc::internal, "no MQTT client"));
    return {};
  }
  st.ctx.log.info("mqtt connector started",
                  {conn_field(st),
                   {"broker", broker(st)},
                   {"client_id", st.opts.client_id},
                   {"username", st.opts.username},
                   {"password", st.opts.password.empty() ? std::string{"none"}
                                                         : log::to_field_value(log::redacted{})},
                   {"devices", std::to_string(st.ctx.config->devices.size())}});
  st.client->start(make_handlers(self));
  // Like the default exit handler, plus an answer for every action still waiting for the broker.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    if (!msg.reason) return;
    fail_pending(self, "connector '" + self->state.ctx.name() + "' is stopping");
    self->quit(msg.reason);
  });

  return {
      [=](connected_atom) { on_connected(self); },
      [=](disconnected_atom, const std::string& reason) { on_disconnected(self, reason); },
      [=](message_atom, const std::string& topic, const std::string& payload) {
        message_handled(self);
        on_message(self, topic, payload);
      },
      [=](oversized_atom, const std::string& topic, std::uint64_t size) {
        message_handled(self);
        on_oversized(self, topic, size);
      },
      [=](published_atom, int mid) { on_published(self, mid); },
      [=](ack_timeout_atom, int mid, std::uint64_t seq) { on_ack_timeout(self, mid, seq); },
      [=](invoke_atom, action_request& req) { return invoke(self, req); },
      [=](write_atom, const std::string& device, const std::string& point,
          const value&) -> caf::result<value> {
        const auto* d = self->state.ctx.config->device(device);
        if (!d || !d->point(point))
          return make_error(errc::not_found, "no point '" + device + "/" + point + "'");
        return make_error(errc::read_only, "point '" + device + "/" + point +
                                               "' is read-only: MQTT points show what the device "
                                               "publishes; use an action to send a command");
      },
      [=](status_atom) { return status(self); },
  };
}

/// `mqtt`: its schema and behaviour, one actor per instance.
using mqtt_type = basic_connector_type<mqtt_schema, &mqtt_connector>;

} // namespace

std::unique_ptr<connector_type> make_mqtt_connector() {
  return std::make_unique<mqtt_type>("mqtt");
}

} // namespace manifold::connectors
