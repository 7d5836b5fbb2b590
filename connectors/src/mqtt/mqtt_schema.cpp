#include "mqtt/mqtt_schema.hpp"

#include "manifold/connectors/mqtt_transport.hpp"
#include "mqtt/mqtt_mapping.hpp"

namespace manifold::connectors::mqtt {

namespace {

using namespace std::chrono_literals;

/// Reads a topic key and reports what is wrong with it at its line.
std::string read_topic(config::map_reader& r, const char* key) {
  auto topic = r.get_string(key, true);
  if (!topic) return {};
  if (auto why = check_topic(*topic); !why.empty()) {
    r.error(key, std::string{"'"} + key + "': " + why);
    return {};
  }
  return *topic;
}

} // namespace

void mqtt_schema::parse_connector(config::map_reader& r, connector_config& c) {
  mqtt_client_options o;
  o.client_id = "manifold-" + c.name;
  if (auto v = r.get_string("host")) {
    if (v->empty())
      r.error("host", "'host' must be a host name or address, got an empty string");
    else
      o.host = *v;
  }
  if (auto v = r.get_int("port", 1, 65535)) o.port = static_cast<std::uint16_t>(*v);
  if (auto v = r.get_string("client_id")) {
    if (v->empty() || v->size() > 65535)
      r.error("client_id", "'client_id' must be 1 to 65535 characters");
    else
      o.client_id = *v;
  }
  if (auto v = r.get_string("username")) o.username = *v;
  // A reference ({secret: NAME} or {env: VAR}), never inline; its value is never echoed.
  if (auto v = r.get_secret("password")) {
    o.password = v->reveal();
    if (o.username.empty())
      r.error("password", "'password' needs a 'username' (MQTT sends no password alone)");
  }
  // libmosquitto refuses keepalives under 5 s; MQTT carries it as 16-bit seconds.
  if (auto v = r.get_duration("keepalive", 5s, 65535s)) {
    if (v->count() % 1000 != 0)
      r.error("keepalive", "'keepalive' must be whole seconds, e.g. 30s");
    else
      o.keepalive = std::chrono::duration_cast<std::chrono::seconds>(*v);
  }
  if (auto v = r.get_duration("reconnect_min", 1ms, 1h)) o.reconnect_min = *v;
  if (auto v = r.get_duration("reconnect_max", 1ms, 24h)) o.reconnect_max = *v;
  if (auto v = r.get_int("max_inflight", 1, 1 << 20)) o.max_inflight = static_cast<std::size_t>(*v);
  if (o.reconnect_max < o.reconnect_min)
    r.error("reconnect_max", "'reconnect_max' must not be shorter than 'reconnect_min'");
  c.settings = o;
}

void mqtt_schema::parse_device(config::map_reader&, const connector_config&, device_config&) {}

void mqtt_schema::parse_point(config::map_reader& r, const connector_config&, const device_config&,
                              point_config& p) {
  point_settings s;
  s.topic = read_topic(r, "topic");
  if (auto f = r.get_string("json_field")) {
    if (auto why = check_json_field(*f); !why.empty())
      r.error("json_field", "'json_field': " + why);
    else
      s.json_field = *f;
  }
  if (p.writable)
    r.error("writable", "MQTT points are read-only (they show what devices publish); use an "
                        "action to send a command");
  p.settings = s;
}

void mqtt_schema::parse_action(config::map_reader& r, const connector_config&, const device_config&,
                               action_config& a) {
  action_settings s;
  s.topic = read_topic(r, "topic");
  if (auto v = r.get_string("payload")) {
    static const std::string prefix = "param:";
    if (*v == "json") {
      s.payload = payload_kind::json;
    } else if (v->compare(0, prefix.size(), prefix) == 0) {
      s.payload = payload_kind::param;
      s.param = v->substr(prefix.size());
      if (!a.parameter(s.param))
        r.error("payload", "'payload' names parameter '" + s.param + "', but action '" + a.name +
                               "' has no such parameter");
    } else {
      r.error("payload", "'payload' must be json or param:NAME, got '" + *v + "'");
    }
  }
  if (auto v = r.get_int("qos", 0, 1)) s.qos = static_cast<int>(*v);
  if (auto v = r.get_bool("retain")) s.retain = *v;
  // The result tells whether the broker took the message; nothing else comes back over MQTT.
  if (a.result && *a.result != value_type::boolean)
    r.error("result", std::string{"MQTT actions return bool (true once the broker acknowledged "
                                  "the message), got "} +
                          to_string(*a.result));
  a.result = value_type::boolean;
  a.settings = s;
}

void mqtt_schema::check(const connector_config&, config::diagnostics&) {}

} // namespace manifold::connectors::mqtt
