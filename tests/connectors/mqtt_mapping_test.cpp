// The mqtt connector's pure parts: payload -> value mapping, parameters -> payload, and the
// config schema's diagnostics.

#include <gtest/gtest.h>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/mqtt_transport.hpp"
#include "manifold/connectors/sdk.hpp"
#include "mqtt/mqtt_mapping.hpp"

namespace manifold::connectors::mqtt {
namespace {

// -- raw payloads ---------------------------------------------------------------------------------

TEST(mqtt_mapping, raw_double_parses_with_surrounding_whitespace) {
  auto r = map_payload("21.5", value_type::float64);
  ASSERT_EQ(r.q, quality::good) << r.reason;
  EXPECT_EQ(std::get<double>(r.data), 21.5);
  EXPECT_EQ(std::get<double>(map_payload(" -3e2\n", value_type::float64).data), -300.0);
}

TEST(mqtt_mapping, raw_bool_accepts_the_documented_spellings) {
  for (auto yes : {"true", "1", "on", "ON", "True"})
    EXPECT_EQ(map_payload(yes, value_type::boolean).data, value{true}) << yes;
  for (auto no : {"false", "0", "off", "OFF"})
    EXPECT_EQ(map_payload(no, value_type::boolean).data, value{false}) << no;
  auto r = map_payload("maybe", value_type::boolean);
  EXPECT_EQ(r.q, quality::bad);
  EXPECT_NE(r.reason.find("not a bool"), std::string::npos) << r.reason;
}

TEST(mqtt_mapping, raw_int64_rejects_fractions_and_overflow) {
  EXPECT_EQ(map_payload("-42", value_type::int64).data, value{std::int64_t{-42}});
  auto frac = map_payload("4.2", value_type::int64);
  EXPECT_EQ(frac.q, quality::bad);
  EXPECT_NE(frac.reason.find("not an integer"), std::string::npos) << frac.reason;
  auto big = map_payload("99999999999999999999", value_type::int64);
  EXPECT_EQ(big.q, quality::bad);
  EXPECT_NE(big.reason.find("range"), std::string::npos) << big.reason;
}

TEST(mqtt_mapping, raw_wrong_type_is_bad_with_reason) {
  auto r = map_payload("hot", value_type::float64);
  EXPECT_EQ(r.q, quality::bad);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(r.data));
  EXPECT_NE(r.reason.find("'hot'"), std::string::npos) << r.reason;
  for (auto text : {"", "  ", "nan", "inf", "1.5x"})
    EXPECT_EQ(map_payload(text, value_type::float64).q, quality::bad) << "'" << text << "'";
}

TEST(mqtt_mapping, raw_string_and_bytes_are_taken_as_is) {
  EXPECT_EQ(map_payload(" auto \n", value_type::string).data, value{std::string{" auto \n"}});
  std::string binary{"\x00\xff\x10", 3};
  EXPECT_EQ(map_payload(binary, value_type::bytes).data, (value{bytes{0x00, 0xff, 0x10}}));
  // Invalid UTF-8 would break every JSON consumer downstream, so a string point refuses it.
  auto r = map_payload(binary, value_type::string);
  EXPECT_EQ(r.q, quality::bad);
  EXPECT_NE(r.reason.find("UTF-8"), std::string::npos) << r.reason;
  EXPECT_EQ(map_payload("Grüße", value_type::string).q, quality::good);
}

// -- JSON payloads --------------------------------------------------------------------------------

TEST(mqtt_mapping, json_field_maps_nested_paths) {
  std::string payload = R"({"mode":"eco","pressure":{"bar":1.75,"ok":true},"items":[{"v":7}]})";
  EXPECT_EQ(map_payload(payload, value_type::float64, "pressure.bar").data, value{1.75});
  EXPECT_EQ(map_payload(payload, value_type::string, "mode").data, value{std::string{"eco"}});
  EXPECT_EQ(map_payload(payload, value_type::boolean, "pressure.ok").data, value{true});
  EXPECT_EQ(map_payload(payload, value_type::int64, "items.0.v").data, value{std::int64_t{7}});
}

TEST(mqtt_mapping, json_numbers_convert_where_nothing_is_lost) {
  EXPECT_EQ(map_payload(R"({"n":3})", value_type::float64, "n").data, value{3.0});
  EXPECT_EQ(map_payload(R"({"n":3.0})", value_type::int64, "n").data, value{std::int64_t{3}});
  EXPECT_EQ(map_payload(R"({"n":"21.5"})", value_type::float64, "n").data, value{21.5});
  EXPECT_EQ(map_payload(R"({"n":1})", value_type::boolean, "n").data, value{true});
  EXPECT_EQ(map_payload(R"({"n":3.5})", value_type::string, "n").data, value{std::string{"3.5"}});
}

TEST(mqtt_mapping, json_wrong_type_is_bad_with_reason) {
  auto r = map_payload(R"({"t":{"c":1}})", value_type::float64, "t");
  EXPECT_EQ(r.q, quality::bad);
  EXPECT_NE(r.reason.find("'t' is object"), std::string::npos) << r.reason;
  EXPECT_NE(r.reason.find("expected double"), std::string::npos) << r.reason;
  EXPECT_EQ(map_payload(R"({"t":3.5})", value_type::int64, "t").q, quality::bad);
  EXPECT_EQ(map_payload(R"({"t":2})", value_type::boolean, "t").q, quality::bad);
  EXPECT_EQ(map_payload(R"({"t":null})", value_type::string, "t").q, quality::bad);
  EXPECT_EQ(map_payload(R"({"t":"warm"})", value_type::float64, "t").q, quality::bad);
  EXPECT_EQ(map_payload(R"({"t":18446744073709551615})", value_type::int64, "t").q, quality::bad);
}

TEST(mqtt_mapping, json_missing_field_names_the_missing_segment) {
  auto r = map_payload(R"({"data":{"temp":1}})", value_type::float64, "data.pressure");
  EXPECT_EQ(r.q, quality::bad);
  EXPECT_NE(r.reason.find("'pressure' missing in 'data'"), std::string::npos) << r.reason;
  auto scalar = map_payload(R"({"data":5})", value_type::float64, "data.temp");
  EXPECT_EQ(scalar.q, quality::bad);
  EXPECT_NE(scalar.reason.find("not an object"), std::string::npos) << scalar.reason;
  EXPECT_EQ(map_payload(R"({"a":[1]})", value_type::float64, "a.5").q, quality::bad);
  EXPECT_EQ(map_payload(R"([1,2])", value_type::float64, "x").q, quality::bad);
}

TEST(mqtt_mapping, malformed_json_is_bad_for_every_field_but_raw_points_still_map) {
  std::vector<field_spec> specs{
      {value_type::float64, "a"}, {value_type::string, "b"}, {value_type::string, ""}};
  auto results = map_payload(R"({"a": 1,)", specs);
  ASSERT_EQ(results.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(results[i].q, quality::bad);
    EXPECT_NE(results[i].reason.find("not valid JSON"), std::string::npos) << results[i].reason;
  }
  EXPECT_EQ(results[2].q, quality::good);
}

TEST(mqtt_mapping, huge_payload_is_bad_without_parsing) {
  std::string huge(max_payload_bytes + 1, '1');
  for (auto field : {"", "x"}) {
    auto r = map_payload(huge, value_type::float64, field);
    EXPECT_EQ(r.q, quality::bad);
    EXPECT_NE(r.reason.find("exceeds the limit"), std::string::npos) << r.reason;
  }
  // Just under the limit still maps: the cap is on size, not on content.
  std::string big = "\"" + std::string(max_payload_bytes - 10, 'x') + "\"";
  EXPECT_EQ(map_payload("{\"s\":" + big + "}", value_type::string, "s").q, quality::good);
}

TEST(mqtt_mapping, deeply_nested_json_does_not_crash) {
  std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_EQ(map_payload(deep, value_type::float64, "a").q, quality::bad);
  std::string open = std::string(200000, '{');
  EXPECT_EQ(map_payload(open, value_type::float64, "a").q, quality::bad);
}

// -- actions --------------------------------------------------------------------------------------

action_config make_action() {
  action_config a;
  a.name = "set_mode";
  parameter_config mode;
  mode.name = "mode";
  mode.type = value_type::string;
  parameter_config level;
  level.name = "level";
  level.type = value_type::float64;
  level.required = false;
  level.default_value = value{2.5};
  a.parameters = {mode, level};
  return a;
}

TEST(mqtt_mapping, json_action_payload_fills_in_defaults) {
  action_settings s;
  std::string error;
  auto p = action_payload(s, make_action(), {{"mode", value{std::string{"eco"}}}}, error);
  ASSERT_TRUE(p) << error;
  EXPECT_EQ(*p, R"({"level":2.5,"mode":"eco"})");
}

TEST(mqtt_mapping, param_action_payload_sends_the_raw_value) {
  action_settings s;
  s.payload = payload_kind::param;
  s.param = "level";
  std::string error;
  EXPECT_EQ(action_payload(s, make_action(), {{"level", value{0.1}}}, error), "0.1");
  EXPECT_EQ(action_payload(s, make_action(), {}, error), "2.5");
  s.param = "mode";
  EXPECT_FALSE(action_payload(s, make_action(), {}, error));
  EXPECT_NE(error.find("'mode'"), std::string::npos) << error;
  EXPECT_EQ(raw_payload(value{true}), "true");
  EXPECT_EQ(raw_payload(value{std::int64_t{-7}}), "-7");
}

TEST(mqtt_mapping, topic_checks) {
  EXPECT_EQ(check_topic("plant/boiler-1/temperature"), "");
  EXPECT_NE(check_topic("plant/+/temperature"), "");
  EXPECT_NE(check_topic("plant/#"), "");
  EXPECT_NE(check_topic(""), "");
  EXPECT_NE(check_topic(std::string{"a\0b", 3}), "");
  EXPECT_EQ(check_json_field("a.b.0"), "");
  EXPECT_NE(check_json_field("a..b"), "");
  EXPECT_NE(check_json_field(".a"), "");
}

// -- config schema --------------------------------------------------------------------------------

config::load_result load(const std::string& text) {
  auto registry = connector_registry::builtin();
  return config::load_string(text, "t.yaml", registry.schemas(), registry.names());
}

/// A config with one mqtt connector; `connector_extra` goes under the connector, `point` and
/// `action` replace the device's point and action.
std::string config_text(const std::string& connector_extra, const std::string& point,
                        const std::string& action = "") {
  return "connectors:\n"
         "  - name: plant\n"
         "    type: mqtt\n" +
         connector_extra +
         "    devices:\n"
         "      - name: boiler-1\n"
         "        points:\n" +
         point + (action.empty() ? "" : "        actions:\n" + action);
}

const std::string good_point = "          - name: temperature\n"
                               "            type: double\n"
                               "            topic: plant/boiler-1/temperature\n";

bool has_diag(const config::load_result& r, int line, const std::string& text) {
  for (auto& d : r.diag.items())
    if (d.where.line == line && d.message.find(text) != std::string::npos &&
        d.where.file == "t.yaml")
      return true;
  return false;
}

TEST(mqtt_schema, good_config_fills_in_defaults) {
  auto r = load(config_text("", good_point,
                            "          - name: set_mode\n"
                            "            topic: plant/boiler-1/cmd\n"
                            "            params:\n"
                            "              - {name: mode, type: string}\n"));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = r.config->connectors.at(0);
  auto& o = std::any_cast<const mqtt_client_options&>(c.settings);
  EXPECT_EQ(o.host, "127.0.0.1");
  EXPECT_EQ(o.port, 1883);
  EXPECT_EQ(o.client_id, "manifold-plant");
  EXPECT_EQ(o.keepalive, std::chrono::seconds{30});
  EXPECT_EQ(o.reconnect_min, std::chrono::milliseconds{100});
  EXPECT_EQ(o.reconnect_max, std::chrono::milliseconds{10000});
  auto& p = std::any_cast<const point_settings&>(c.devices.at(0).points.at(0).settings);
  EXPECT_EQ(p.topic, "plant/boiler-1/temperature");
  EXPECT_EQ(p.json_field, "");
  auto& action = c.devices.at(0).actions.at(0);
  auto& a = std::any_cast<const action_settings&>(action.settings);
  EXPECT_EQ(a.payload, payload_kind::json);
  EXPECT_EQ(a.qos, 1);
  EXPECT_FALSE(a.retain);
  EXPECT_EQ(action.result, value_type::boolean);
}

TEST(mqtt_schema, connector_keys_are_read) {
  ::setenv("MANIFOLD_TEST_MQTT_PASSWORD", "s3cret", 1);
  auto r = load(config_text("    host: broker.local\n"
                            "    port: 8883\n"
                            "    client_id: edge-7\n"
                            "    username: plant\n"
                            "    password: {env: MANIFOLD_TEST_MQTT_PASSWORD}\n"
                            "    keepalive: 1m\n"
                            "    reconnect_min: 2s\n"
                            "    reconnect_max: 1m\n",
                            good_point));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& o = std::any_cast<const mqtt_client_options&>(r.config->connectors.at(0).settings);
  EXPECT_EQ(o.host, "broker.local");
  EXPECT_EQ(o.port, 8883);
  EXPECT_EQ(o.client_id, "edge-7");
  EXPECT_EQ(o.username, "plant");
  EXPECT_EQ(o.password, "s3cret");
  EXPECT_EQ(o.keepalive, std::chrono::seconds{60});
  EXPECT_EQ(o.reconnect_min, std::chrono::milliseconds{2000});
}

TEST(mqtt_schema, wildcard_topic_is_reported_at_its_line) {
  auto r = load(config_text("", "          - name: temperature\n"
                                "            type: double\n"
                                "            topic: plant/+/temperature\n"));
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_diag(r, 9, "wildcards")) << r.diag.to_string();
  auto hash = load(config_text("", good_point,
                               "          - name: all\n"
                               "            topic: plant/#\n"));
  EXPECT_TRUE(has_diag(hash, 12, "wildcards")) << hash.diag.to_string();
}

TEST(mqtt_schema, missing_topic_is_reported_at_the_point) {
  auto r = load(config_text("", "          - name: temperature\n"
                                "            type: double\n"));
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_diag(r, 7, "missing required key 'topic'")) << r.diag.to_string();
}

TEST(mqtt_schema, bad_port_is_reported_at_its_line) {
  for (auto port : {"0", "70000", "mqtt"}) {
    auto r = load(config_text(std::string{"    port: "} + port + "\n", good_point));
    ASSERT_FALSE(r.config) << port;
    EXPECT_TRUE(has_diag(r, 4, "'port'")) << r.diag.to_string();
  }
}

TEST(mqtt_schema, other_bad_values_are_reported) {
  auto r = load(config_text("    password: hunter2\n"
                            "    keepalive: 10500ms\n"
                            "    reconnect_min: 5s\n"
                            "    reconnect_max: 1s\n",
                            "          - name: temperature\n"
                            "            type: double\n"
                            "            writable: true\n"
                            "            json_field: a..b\n"
                            "            topic: t\n",
                            "          - name: go\n"
                            "            topic: cmd\n"
                            "            qos: 2\n"
                            "            retain: maybe\n"
                            "            result: double\n"
                            "            payload: param:nope\n"));
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_diag(r, 4, "must not be written inline")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 5, "whole seconds")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 7, "'reconnect_max' must not be shorter")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 13, "read-only")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 14, "'json_field'")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 19, "'qos'")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 20, "'retain'")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 21, "return bool")) << r.diag.to_string();
  EXPECT_TRUE(has_diag(r, 22, "no such parameter")) << r.diag.to_string();
  // The password's value is never echoed, even in a diagnostic.
  EXPECT_EQ(r.diag.to_string().find("hunter2"), std::string::npos);
}

TEST(mqtt_schema, a_password_needs_a_username) {
  ::setenv("MANIFOLD_TEST_MQTT_PASSWORD", "s3cret", 1);
  auto r = load(config_text("    password: {env: MANIFOLD_TEST_MQTT_PASSWORD}\n",
                            "          - name: temperature\n"
                            "            topic: t\n",
                            ""));
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_diag(r, 4, "needs a 'username'")) << r.diag.to_string();
  EXPECT_EQ(r.diag.to_string().find("s3cret"), std::string::npos);
}

TEST(mqtt_schema, unknown_key_is_reported) {
  auto r = load(config_text("    hots: x\n", good_point));
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(has_diag(r, 4, "unknown key 'hots'")) << r.diag.to_string();
}

TEST(mqtt_schema, example_config_loads) {
  auto registry = connector_registry::builtin();
  auto r = config::load_file(std::string{MANIFOLD_SOURCE_DIR} + "/examples/mqtt.yaml",
                             registry.schemas(), registry.names());
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = r.config->connectors.at(0);
  EXPECT_EQ(c.type, "mqtt");
  auto* boiler = c.device("boiler-1");
  ASSERT_NE(boiler, nullptr);
  auto& pressure = std::any_cast<const point_settings&>(boiler->point("pressure")->settings);
  EXPECT_EQ(pressure.topic, "plant/boiler-1/status");
  EXPECT_EQ(pressure.json_field, "pressure.bar");
  ASSERT_NE(boiler->action("set_mode"), nullptr);
}

} // namespace
} // namespace manifold::connectors::mqtt
