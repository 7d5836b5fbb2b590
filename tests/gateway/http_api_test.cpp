// The unified HTTP API end to end: an in-process node (data bus, sim connectors under their
// supervisors, gateway actor, Beast server on a free port) driven by a real HTTP client.

#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include <nlohmann/json.hpp>

#include "manifold/actors/config.hpp"
#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/gateway/gateway.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "support/http.hpp"
#include "support/websocket.hpp"
#include "support/processes.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using manifold::test::http_get;
using manifold::test::http_post;
using manifold::test::http_request;
using manifold::test::http_response;
using manifold::test::raw_exchange;
using manifold::test::wait_until;

namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

const char* node_yaml = R"(
node:
  id: gateway-test
gateway:
  listen: 127.0.0.1:0
  max_body_bytes: 1024
  max_connections: 64
  request_timeout: 5s
  stream_queue_limit: 64
connectors:
  - name: sim
    type: sim
    seed: 7
    poll_interval: 50ms
    devices:
      - name: thermostat-1
        model: thermostat
        initial: 20
        labels:
          room: lab
      - name: counter-1
        model: counter
      - name: switch-1
        model: switch
  - name: spare
    type: sim
    poll_interval: 1h
    devices:
      - name: switch-2
        model: switch
)";

/// How a test wants its node built.
struct node_options {
  std::function<void(manifold::node_config&)> tweak; ///< Applied to the loaded config.
  std::set<std::string> without_supervisor;          ///< Connectors declared but not started.
  std::chrono::milliseconds read_timeout = 1s;
};

class http_api : public ::testing::Test {
protected:
  void TearDown() override { stop(); }

  void start(node_options opts = {}) {
    auto& registry = registry_;
    auto loaded = manifold::config::load_string(node_yaml, "t.yaml", registry.schemas(),
                                                registry.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    if (opts.tweak) opts.tweak(*loaded.config);
    config_ = std::make_shared<const manifold::node_config>(std::move(*loaded.config));

    caf_cfg_.set("scheduler.max-threads", 2);
    sys_ = std::make_unique<caf::actor_system>(caf_cfg_);
    metrics_ = std::make_shared<manifold::node_metrics>();
    bus_ = manifold::spawn_data_bus(*sys_, metrics_);

    manifold::gateway::gateway_deps deps;
    deps.config = config_;
    deps.bus = bus_;
    deps.metrics = metrics_;
    std::uint64_t seed = 1;
    for (auto& c : config_->connectors) {
      if (opts.without_supervisor.count(c.name)) continue;
      manifold::connectors::connector_context ctx;
      ctx.config = std::shared_ptr<const manifold::connector_config>(config_, &c);
      ctx.bus = bus_;
      ctx.metrics = metrics_;
      ctx.seed = seed++;
      ctx.readings_counter = &metrics_->readings(c.name);
      auto sup = manifold::supervision::spawn_connector_supervisor(*sys_, *registry.find(c.type),
                                                                   std::move(ctx));
      supervisors_[c.name] = sup;
      deps.connectors[c.name] = sup;
    }
    gateway_ = manifold::gateway::spawn_gateway(*sys_, deps);
    server_ = std::make_unique<manifold::gateway::http_server>(
      *sys_, gateway_, bus_, config_->gateway, metrics_);
    server_->set_read_timeout(opts.read_timeout);
    auto err = server_->start();
    ASSERT_FALSE(err) << *err;
    port_ = server_->port();
    ASSERT_NE(port_, 0);
  }

  void stop() {
    if (server_) server_->stop();
    server_.reset();
    if (!sys_) return;
    for (auto& [name, sup] : supervisors_)
      caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(gateway_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus_, caf::exit_reason::user_shutdown);
    supervisors_.clear();
    gateway_ = nullptr;
    bus_ = nullptr;
    sys_.reset();
  }

  http_response get(const std::string& target, const std::map<std::string, std::string>& h = {}) {
    return http_get(port_, target, h);
  }

  json get_json(const std::string& target, int expected_status = 200) {
    auto r = get(target);
    EXPECT_EQ(r.status, expected_status) << target << ": " << r.error << r.body;
    return json::parse(r.body, nullptr, false);
  }

  http_response put(const std::string& target, const std::string& body) {
    return http_request(port_, "PUT", target, body, {{"Content-Type", "application/json"}});
  }

  http_response post(const std::string& target, const std::string& body) {
    return http_post(port_, target, body);
  }

  /// Asserts an error answer in our format and returns its message.
  std::string expect_error(const http_response& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.error << r.body;
    EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "",
              "application/json");
    auto j = json::parse(r.body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
    if (!j.is_object() || !j.contains("error")) return {};
    EXPECT_EQ(j["error"]["code"], code) << r.body;
    return j["error"]["message"].get<std::string>();
  }

  bool has_reading(const std::string& device, const std::string& point) {
    auto r = get("/v1/devices/" + device + "/points/" + point);
    if (r.status != 200) return false;
    auto j = json::parse(r.body, nullptr, false);
    return j.is_object() && j["quality"] == "good" && !j["value"].is_null();
  }

  // Outlives the supervisors: they spawn (and respawn) connectors through it.
  manifold::connectors::connector_registry registry_ =
    manifold::connectors::connector_registry::builtin();
  caf::actor_system_config caf_cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  std::shared_ptr<const manifold::node_config> config_;
  std::shared_ptr<manifold::node_metrics> metrics_;
  caf::actor bus_;
  caf::actor gateway_;
  std::map<std::string, caf::actor> supervisors_;
  std::unique_ptr<manifold::gateway::http_server> server_;
  std::uint16_t port_ = 0;
};

// -- happy paths ----------------------------------------------------------------------------------

TEST_F(http_api, health_and_readiness_answer_ok_when_all_connectors_run) {
  start();
  EXPECT_EQ(get_json("/healthz"), (json{{"status", "ok"}}));
  EXPECT_TRUE(wait_until([&] { return get("/readyz").status == 200; }));
  EXPECT_EQ(get_json("/readyz")["status"], "ready");
}

TEST_F(http_api, lists_connectors_with_state_and_devices) {
  start();
  auto list = get_json("/v1/connectors");
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["name"], "sim");
  EXPECT_EQ(list[0]["type"], "sim");
  EXPECT_EQ(list[0]["state"], "running");
  EXPECT_EQ(list[0]["restarts"], 0);
  EXPECT_EQ(list[0]["last_error"], "");
  EXPECT_EQ(list[0]["devices"], (json{"thermostat-1", "counter-1", "switch-1"}));

  auto one = get_json("/v1/connectors/spare");
  EXPECT_EQ(one["name"], "spare");
  EXPECT_EQ(one["devices"], (json{"switch-2"}));
  EXPECT_EQ(one["state"], "running");
}

TEST_F(http_api, lists_devices_with_labels_points_and_actions) {
  start();
  auto list = get_json("/v1/devices");
  ASSERT_TRUE(list.is_array());
  ASSERT_EQ(list.size(), 4u);
  EXPECT_EQ(list[0]["name"], "thermostat-1");
  EXPECT_EQ(list[0]["connector"], "sim");
  EXPECT_EQ(list[0]["labels"], (json{{"room", "lab"}}));
  EXPECT_EQ(list[0]["points"], (json{"temperature", "setpoint"}));
  EXPECT_EQ(list[0]["actions"], (json{"set_setpoint"}));
  EXPECT_EQ(list[3]["connector"], "spare");
}

TEST_F(http_api, describes_one_device_with_point_values_and_action_signatures) {
  start();
  ASSERT_TRUE(wait_until([&] { return has_reading("thermostat-1", "temperature"); }));
  auto d = get_json("/v1/devices/thermostat-1");
  EXPECT_EQ(d["name"], "thermostat-1");
  EXPECT_EQ(d["connector"], "sim");
  EXPECT_EQ(d["labels"]["room"], "lab");
  ASSERT_EQ(d["points"].size(), 2u);
  auto& temp = d["points"][0];
  EXPECT_EQ(temp["name"], "temperature");
  EXPECT_EQ(temp["type"], "double");
  EXPECT_EQ(temp["unit"], "°C");
  EXPECT_EQ(temp["writable"], false);
  EXPECT_TRUE(temp["value"].is_number());
  EXPECT_EQ(temp["quality"], "good");
  EXPECT_TRUE(temp["timestamp"].is_string());
  EXPECT_EQ(d["points"][1]["writable"], true);
  ASSERT_EQ(d["actions"].size(), 1u);
  auto& a = d["actions"][0];
  EXPECT_EQ(a["name"], "set_setpoint");
  EXPECT_EQ(a["result"], "double");
  ASSERT_EQ(a["params"].size(), 1u);
  EXPECT_EQ(a["params"][0]["name"], "value");
  EXPECT_EQ(a["params"][0]["type"], "double");
  EXPECT_EQ(a["params"][0]["required"], true);
  EXPECT_EQ(a["params"][0]["min"], 5.0);
  EXPECT_EQ(a["params"][0]["max"], 35.0);
  EXPECT_TRUE(a["params"][0]["default"].is_null());
}

TEST_F(http_api, reads_points_of_a_device_and_one_point) {
  start();
  ASSERT_TRUE(wait_until([&] { return has_reading("counter-1", "count"); }));
  auto points = get_json("/v1/devices/counter-1/points");
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0]["name"], "count");
  EXPECT_EQ(points[0]["type"], "int64");
  EXPECT_TRUE(points[0]["value"].is_number_integer());
  EXPECT_EQ(points[0]["quality"], "good");

  auto p = get_json("/v1/devices/counter-1/points/count");
  EXPECT_TRUE(p["value"].is_number_integer());
  EXPECT_EQ(p["unit"], "");
  EXPECT_EQ(p["quality"], "good");
  EXPECT_FALSE(p.contains("reason"));
  // ISO 8601 UTC with milliseconds.
  auto ts = p["timestamp"].get<std::string>();
  EXPECT_EQ(ts.size(), 24u) << ts;
  EXPECT_EQ(ts.back(), 'Z') << ts;
  EXPECT_EQ(ts[10], 'T') << ts;

  // The counter counts: a later read sees a larger value.
  auto first = p["value"].get<std::int64_t>();
  EXPECT_TRUE(wait_until([&] {
    return get_json("/v1/devices/counter-1/points/count")["value"].get<std::int64_t>() > first;
  }));
}

TEST_F(http_api, a_declared_point_without_reading_is_bad_and_waiting) {
  start({{}, {"spare"}});
  auto p = get_json("/v1/devices/switch-2/points/on");
  EXPECT_TRUE(p["value"].is_null());
  EXPECT_EQ(p["quality"], "bad");
  EXPECT_EQ(p["reason"], "waiting for first reading");
  auto points = get_json("/v1/devices/switch-2/points");
  EXPECT_EQ(points[0]["reason"], "waiting for first reading");
}

TEST_F(http_api, writes_a_writable_point_and_reads_it_back) {
  start();
  auto r = put("/v1/devices/thermostat-1/points/setpoint", R"({"value": 22.5})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), (json{{"value", 22.5}}));
  EXPECT_TRUE(wait_until([&] {
    return get_json("/v1/devices/thermostat-1/points/setpoint")["value"] == 22.5;
  }));

  // An integral number is a fine double; a bool point takes true/false.
  r = put("/v1/devices/thermostat-1/points/setpoint", R"({"value": 21})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["value"], 21.0);
  r = put("/v1/devices/switch-1/points/on", R"({"value": true})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["value"], true);
}

TEST_F(http_api, calls_actions_with_checked_and_coerced_parameters) {
  start();
  auto r = post("/v1/devices/thermostat-1/actions/set_setpoint", R"({"value": 30})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), (json{{"result", 30.0}}));

  r = post("/v1/devices/counter-1/actions/reset", "");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), (json{{"result", 0}}));

  r = post("/v1/devices/switch-1/actions/toggle", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(json::parse(r.body)["result"].is_boolean());

  // 2.0 is an integral number: fine for an int64 parameter.
  r = post("/v1/devices/switch-1/actions/pulse", R"({"duration_ms": 2.0})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["result"], false);

  auto text = get("/metrics").body;
  EXPECT_NE(text.find("manifold_action_calls_total{"), std::string::npos);
  EXPECT_NE(text.find("outcome=\"ok\""), std::string::npos);
  EXPECT_NE(text.find("action=\"set_setpoint\""), std::string::npos);
  EXPECT_NE(text.find("manifold_action_duration_seconds_count{connector=\"sim\"}"),
            std::string::npos)
    << text;
}

TEST_F(http_api, answers_msgpack_when_asked_and_it_matches_json) {
  start();
  auto as_json = get("/v1/devices");
  auto as_msgpack = get("/v1/devices", {{"Accept", "application/msgpack"}});
  ASSERT_EQ(as_msgpack.status, 200);
  EXPECT_EQ(as_msgpack.headers["content-type"], "application/msgpack");
  EXPECT_EQ(as_json.headers["content-type"], "application/json");
  auto decoded = json::from_msgpack(as_msgpack.body);
  EXPECT_EQ(decoded, json::parse(as_json.body));

  auto one = get("/v1/devices/thermostat-1", {{"Accept", "application/msgpack"}});
  auto d = json::from_msgpack(one.body);
  EXPECT_EQ(d["actions"], json::parse(get("/v1/devices/thermostat-1").body)["actions"]);

  // Errors follow the requested format too.
  auto err = get("/v1/devices/nope", {{"Accept", "application/msgpack"}});
  EXPECT_EQ(err.status, 404);
  EXPECT_EQ(json::from_msgpack(err.body)["error"]["code"], "not_found");
}

TEST_F(http_api, percent_encoded_path_segments_are_decoded) {
  start();
  EXPECT_EQ(get_json("/v1/devices/thermostat%2D1")["name"], "thermostat-1");
  expect_error(get("/v1/devices/bad%zz"), 400, "bad_request");
  expect_error(get("/v1/devices/bad%2"), 400, "bad_request");
}

TEST_F(http_api, metrics_count_requests_by_route_template) {
  start();
  get("/v1/devices/thermostat-1");
  get("/v1/devices/counter-1/points/count");
  get("/no/such/route");
  auto r = get("/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers["content-type"], "text/plain; version=0.0.4");
  EXPECT_NE(r.body.find("manifold_http_requests_total{"), std::string::npos);
  EXPECT_NE(r.body.find("route=\"/v1/devices/{device}\""), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("route=\"/v1/devices/{device}/points/{point}\""), std::string::npos);
  EXPECT_NE(r.body.find("route=\"unmatched\""), std::string::npos);
  // Raw paths never become labels.
  EXPECT_EQ(r.body.find("thermostat-1"), std::string::npos);
  EXPECT_NE(r.body.find("manifold_http_request_duration_seconds_bucket"), std::string::npos);
}

// -- errors ---------------------------------------------------------------------------------------

TEST_F(http_api, bad_parameters_are_rejected_naming_the_parameter) {
  start();
  const std::string url = "/v1/devices/thermostat-1/actions/set_setpoint";
  auto msg = expect_error(post(url, "[1, 2]"), 400, "bad_request");
  EXPECT_NE(msg.find("JSON object"), std::string::npos) << msg;

  msg = expect_error(post(url, R"({"value": 20, "speed": 1})"), 400, "bad_request");
  EXPECT_NE(msg.find("unknown parameter 'speed'"), std::string::npos) << msg;

  msg = expect_error(post(url, "{}"), 400, "bad_request");
  EXPECT_NE(msg.find("missing required parameter 'value'"), std::string::npos) << msg;

  msg = expect_error(post(url, R"({"value": "hot"})"), 400, "bad_request");
  EXPECT_NE(msg.find("'value' must be a number"), std::string::npos) << msg;

  msg = expect_error(post(url, R"({"value": 50})"), 400, "bad_request");
  EXPECT_NE(msg.find("within [5.0, 35.0]"), std::string::npos) << msg;

  msg = expect_error(post("/v1/devices/switch-1/actions/pulse", R"({"duration_ms": 2.5})"), 400,
                     "bad_request");
  EXPECT_NE(msg.find("'duration_ms' must be an integer"), std::string::npos) << msg;

  msg = expect_error(post(url, R"({"value": )"), 400, "bad_request");
  EXPECT_NE(msg.find("at byte"), std::string::npos) << msg;

  msg = expect_error(put("/v1/devices/thermostat-1/points/setpoint", R"({"value": "x"})"), 400,
                     "bad_request");
  EXPECT_NE(msg.find("'value' must be a number"), std::string::npos) << msg;
  expect_error(put("/v1/devices/thermostat-1/points/setpoint", R"({"v": 1})"), 400,
               "bad_request");
  expect_error(put("/v1/devices/thermostat-1/points/setpoint", "not json"), 400, "bad_request");
}

TEST_F(http_api, declared_defaults_fill_missing_parameters_and_types_are_checked) {
  start({[](manifold::node_config& c) {
           auto& sw = c.connectors[0].devices[2];
           ASSERT_EQ(sw.name, "switch-1");
           for (auto& a : sw.actions) {
             if (a.name == "pulse") {
               a.parameters[0].required = false;
               a.parameters[0].default_value = manifold::value{std::int64_t{1}};
             }
             if (a.name == "toggle") {
               manifold::parameter_config note;
               note.name = "note";
               note.type = manifold::value_type::string;
               note.required = false;
               manifold::parameter_config tag = note;
               tag.name = "tag";
               tag.type = manifold::value_type::bytes;
               a.parameters = {note, tag};
             }
           }
         },
         {}});
  // The sim connector reads duration_ms unconditionally: only the default makes this work.
  auto r = post("/v1/devices/switch-1/actions/pulse", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["result"], false);
  auto d = get_json("/v1/devices/switch-1");
  EXPECT_EQ(d["actions"][3]["params"][0]["default"], 1);
  EXPECT_EQ(d["actions"][3]["params"][0]["required"], false);

  // Optional parameters may be left out; when given they must have their type.
  EXPECT_EQ(post("/v1/devices/switch-1/actions/toggle", "{}").status, 200);
  EXPECT_EQ(post("/v1/devices/switch-1/actions/toggle", R"({"note": "hi", "tag": "0aFF"})").status,
            200);
  auto msg =
    expect_error(post("/v1/devices/switch-1/actions/toggle", R"({"note": 1})"), 400, "bad_request");
  EXPECT_NE(msg.find("'note' must be a string"), std::string::npos) << msg;
  msg = expect_error(post("/v1/devices/switch-1/actions/toggle", R"({"tag": "zz"})"), 400,
                     "bad_request");
  EXPECT_NE(msg.find("'tag' must be a hex string"), std::string::npos) << msg;
  msg = expect_error(post("/v1/devices/switch-1/actions/toggle", R"({"tag": "abc"})"), 400,
                     "bad_request");
}

TEST_F(http_api, unknown_things_are_not_found) {
  start();
  expect_error(get("/nope"), 404, "not_found");
  expect_error(get("/v1/connectors/nope"), 404, "not_found");
  expect_error(get("/v1/devices/nope"), 404, "not_found");
  expect_error(get("/v1/devices/nope/points"), 404, "not_found");
  expect_error(get("/v1/devices/thermostat-1/points/nope"), 404, "not_found");
  expect_error(put("/v1/devices/thermostat-1/points/nope", R"({"value": 1})"), 404, "not_found");
  expect_error(post("/v1/devices/thermostat-1/actions/nope", "{}"), 404, "not_found");
  expect_error(post("/v1/devices/nope/actions/reset", "{}"), 404, "not_found");
}

TEST_F(http_api, wrong_method_is_405_with_allow_header) {
  start();
  auto r = http_request(port_, "DELETE", "/v1/devices");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET");
  r = http_request(port_, "POST", "/v1/devices/thermostat-1/points/setpoint", "{}");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "GET, PUT");
  r = http_request(port_, "GET", "/v1/devices/thermostat-1/actions/set_setpoint");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers["allow"], "POST");
}

TEST_F(http_api, writing_a_read_only_point_is_409) {
  start();
  auto msg = expect_error(put("/v1/devices/thermostat-1/points/temperature", R"({"value": 1})"),
                          409, "read_only");
  EXPECT_NE(msg.find("read-only"), std::string::npos);
}

TEST_F(http_api, a_body_over_the_limit_is_413) {
  start();
  std::string big = R"({"value": ")" + std::string(4096, 'x') + R"("})";
  expect_error(post("/v1/devices/thermostat-1/actions/set_setpoint", big), 413, "bad_request");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(http_api, a_connector_without_supervisor_is_503_and_not_ready) {
  start({{}, {"spare"}});
  expect_error(post("/v1/devices/switch-2/actions/toggle", "{}"), 503, "unavailable");
  expect_error(put("/v1/devices/switch-2/points/on", R"({"value": true})"), 503, "unavailable");
  auto ready = get("/readyz");
  EXPECT_EQ(ready.status, 503);
  auto j = json::parse(ready.body);
  ASSERT_EQ(j["reasons"].size(), 1u);
  EXPECT_NE(j["reasons"][0].get<std::string>().find("spare"), std::string::npos);
  EXPECT_EQ(get_json("/v1/connectors/spare")["state"], "unknown");
}

TEST_F(http_api, a_dead_supervisor_is_503) {
  start();
  caf::anon_send_exit(supervisors_["spare"], caf::exit_reason::kill);
  EXPECT_TRUE(wait_until([&] {
    return post("/v1/devices/switch-2/actions/toggle", "{}").status == 503;
  }));
  expect_error(post("/v1/devices/switch-2/actions/toggle", "{}"), 503, "unavailable");
  EXPECT_EQ(get("/readyz").status, 503);
  auto spare = get_json("/v1/connectors/spare");
  EXPECT_EQ(spare["state"], "unknown");
  EXPECT_EQ(spare["last_error"], "the connector is not running");
  EXPECT_EQ(get_json("/v1/connectors/sim")["state"], "running");
  // The other connector is untouched.
  EXPECT_EQ(post("/v1/devices/switch-1/actions/toggle", "{}").status, 200);
}

TEST_F(http_api, a_slow_action_past_the_request_timeout_is_504) {
  start({[](manifold::node_config& c) { c.gateway.request_timeout = 200ms; }, {}});
  auto msg = expect_error(post("/v1/devices/switch-1/actions/pulse", R"({"duration_ms": 3000})"),
                          504, "timeout");
  EXPECT_FALSE(msg.empty());
  auto text = get("/metrics").body;
  EXPECT_NE(text.find("outcome=\"timeout\""), std::string::npos);
  // The gateway keeps serving while the pulse runs on.
  EXPECT_EQ(get("/v1/devices/switch-1/points/on").status, 200);
}

TEST_F(http_api, a_dead_gateway_actor_still_gets_every_request_answered) {
  start();
  caf::anon_send_exit(gateway_, caf::exit_reason::kill);
  // The request message is dropped with the actor; its callback still answers.
  EXPECT_TRUE(wait_until([&] { return get("/healthz").status == 503; }));
  expect_error(get("/v1/devices"), 503, "unavailable");
}

// -- robustness -----------------------------------------------------------------------------------

TEST_F(http_api, malformed_http_and_garbage_get_400_or_close_and_the_server_keeps_serving) {
  start();
  std::vector<std::string> inputs{
    "GARBAGE\r\n\r\n",
    "GET /healthz HTTP/9.9\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    "GET /healthz HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
    std::string("\x00\x01\x02\xff\xfe\r\n\r\n", 9),
    std::string("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 11), // a TLS client hello
  };
  std::string noise;
  for (int i = 0; i < 2048; ++i) noise += static_cast<char>((i * 7919) % 256);
  inputs.push_back(noise);
  for (auto& in : inputs) {
    auto out = raw_exchange(port_, in, 5s);
    EXPECT_TRUE(out.empty() || out.rfind("HTTP/1.1 400", 0) == 0 ||
                out.rfind("HTTP/1.1 408", 0) == 0)
      << out;
    EXPECT_EQ(get("/healthz").status, 200);
  }
  auto out = raw_exchange(port_, "GARBAGE\r\n\r\n", 5s);
  EXPECT_EQ(out.rfind("HTTP/1.1 400", 0), 0u) << out;
  EXPECT_NE(out.find("\"bad_request\""), std::string::npos) << out;
}

TEST_F(http_api, odd_paths_and_oversized_headers_are_answered_not_crashed_on) {
  start();
  // A decoded segment that is not UTF-8 still yields a valid JSON error.
  auto msg = expect_error(get("/v1/devices/%ff%fe"), 404, "not_found");
  EXPECT_FALSE(msg.empty());
  expect_error(get("/v1/devices/a%2Fb/points"), 404, "not_found");
  expect_error(get("/v1/devices/%00"), 404, "not_found");
  auto r = get("/v1/devices/" + std::string(20000, 'x'));
  EXPECT_EQ(r.status, 431) << r.error;
  r = http_request(port_, "GET", "/healthz", {}, {{"X-Big", std::string(20000, 'y')}});
  EXPECT_EQ(r.status, 431) << r.error;
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(http_api, a_slow_client_is_cut_off_while_others_are_served) {
  start({{}, {}, 500ms});
  auto started = std::chrono::steady_clock::now();
  auto slow = std::async(std::launch::async, [&] {
    return raw_exchange(port_, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 8s);
  });
  EXPECT_EQ(get("/healthz").status, 200);
  auto out = slow.get();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 7s) << "the server never cut it off";
  EXPECT_EQ(out, "") << "a request that never completed got an answer";
  EXPECT_EQ(get("/healthz").status, 200);
  EXPECT_NE(get("/metrics").body.find("route=\"invalid\",status=\"408\""), std::string::npos);
}

TEST_F(http_api, keep_alive_serves_several_requests_on_one_connection) {
  start();
  auto out = raw_exchange(port_,
                          "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /v1/connectors/sim HTTP/1.1\r\nHost: x\r\n\r\n"
                          "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                          5s);
  std::size_t count = 0;
  for (auto pos = out.find("HTTP/1.1 200"); pos != std::string::npos;
       pos = out.find("HTTP/1.1 200", pos + 1))
    ++count;
  EXPECT_EQ(count, 3u) << out;
}

TEST_F(http_api, connections_over_the_limit_get_503_then_close) {
  start({[](manifold::node_config& c) { c.gateway.max_connections = 3; }, {}, 10s});
  net::io_context ioc;
  std::vector<std::unique_ptr<tcp::socket>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<tcp::socket>(ioc));
    held.back()->connect({net::ip::make_address("127.0.0.1"), port_});
  }
  auto r = get("/healthz");
  auto msg = expect_error(r, 503, "overloaded");
  EXPECT_NE(msg.find("too many connections"), std::string::npos);
  for (auto& s : held) s->close();
  EXPECT_TRUE(wait_until([&] { return get("/healthz").status == 200; }));
}

TEST_F(http_api, stop_is_idempotent_and_closes_the_port) {
  start();
  ASSERT_EQ(get("/healthz").status, 200);
  server_->stop();
  server_->stop();
  EXPECT_FALSE(manifold::test::port_open(port_));
}

// -- WebSocket stream -----------------------------------------------------------------------------

using manifold::test::ws_client;

double gauge_value(const std::string& text, const std::string& name) {
  auto pos = text.find("\n" + name + " ");
  if (pos == std::string::npos) return -1;
  return std::stod(text.substr(pos + name.size() + 2));
}

TEST_F(http_api, stream_pushes_every_reading) {
  start();
  ws_client ws{port_, "/v1/stream"};
  std::set<std::string> devices;
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (devices.size() < 2 && std::chrono::steady_clock::now() < deadline) {
    auto m = ws.next();
    ASSERT_TRUE(m && m->is_object());
    EXPECT_TRUE((*m)["connector"] == "sim" || (*m)["connector"] == "spare") << *m;
    EXPECT_TRUE(m->contains("point"));
    EXPECT_TRUE(m->contains("value"));
    EXPECT_EQ((*m)["quality"], "good");
    EXPECT_TRUE((*m)["timestamp"].is_string());
    devices.insert((*m)["device"].get<std::string>());
  }
  EXPECT_GE(devices.size(), 2u);
  EXPECT_EQ(gauge_value(get("/metrics").body, "manifold_stream_subscribers"), 1.0);
  ws.close();
  EXPECT_TRUE(wait_until([&] {
    return gauge_value(get("/metrics").body, "manifold_stream_subscribers") == 0.0;
  }));
}

TEST_F(http_api, stream_filter_limits_readings_to_one_point) {
  start();
  ws_client ws{port_, "/v1/stream?device=counter-1&point=count"};
  for (int i = 0; i < 5; ++i) {
    auto m = ws.next();
    ASSERT_TRUE(m && m->is_object());
    EXPECT_EQ((*m)["device"], "counter-1");
    EXPECT_EQ((*m)["point"], "count");
    EXPECT_TRUE((*m)["value"].is_number_integer());
  }
  // A write shows up on a stream filtered to its point.
  ws_client sw{port_, "/v1/stream?device=switch-1"};
  ASSERT_EQ(post("/v1/devices/switch-1/actions/turn_on", "{}").status, 200);
  bool seen_on = false;
  for (int i = 0; i < 100 && !seen_on; ++i) {
    auto m = sw.next();
    ASSERT_TRUE(m && m->is_object());
    EXPECT_EQ((*m)["device"], "switch-1");
    seen_on = (*m)["value"] == true;
  }
  EXPECT_TRUE(seen_on);
}

TEST_F(http_api, a_stream_client_that_does_not_read_never_blocks_the_bus) {
  start({[](manifold::node_config& c) { c.gateway.stream_queue_limit = 4; }, {}});
  ws_client idle{port_, "/v1/stream?device=flood"};
  ASSERT_TRUE(wait_until([&] {
    return gauge_value(get("/metrics").body, "manifold_stream_subscribers") == 1.0;
  }));
  // Far more than the socket buffers hold: the session's queue must overflow and drop.
  std::string padding(200, 'p');
  for (int i = 0; i < 200000; ++i) {
    manifold::point_reading r;
    r.connector = "test";
    r.device = "flood";
    r.point = "p";
    r.data = padding;
    r.source_time = manifold::now_timestamp();
    caf::anon_send(bus_, manifold::publish_atom::value, std::move(r));
  }
  auto dropped = [&] {
    auto text = get("/metrics").body;
    return gauge_value(text, "manifold_stream_dropped_total");
  };
  EXPECT_TRUE(wait_until([&] { return dropped() > 0; }, 30s));
  // The bus got through the flood and still answers reads.
  EXPECT_TRUE(wait_until([&] { return has_reading("counter-1", "count"); }));
}

TEST_F(http_api, stream_without_upgrade_is_400) {
  start();
  expect_error(get("/v1/stream"), 400, "bad_request");
}

// -- findings of a first-use review ---------------------------------------------------------------

/// The headers of a valid WebSocket handshake, for requests sent with the plain HTTP client.
std::map<std::string, std::string> ws_headers() {
  return {{"Connection", "Upgrade"},
          {"Upgrade", "websocket"},
          {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
          {"Sec-WebSocket-Version", "13"}};
}

TEST_F(http_api, a_stream_query_with_a_bad_escape_is_400_before_the_upgrade) {
  start();
  // The same handshake with a good query upgrades: the 400 below is about the escape only.
  auto ok = get("/v1/stream?device=counter-1&point=count", ws_headers());
  EXPECT_EQ(ok.status, 101) << ok.error << ok.body;
  auto msg = expect_error(get("/v1/stream?device=%zz&point=count", ws_headers()), 400,
                          "bad_request");
  EXPECT_NE(msg.find("percent-encoding"), std::string::npos) << msg;
  expect_error(get("/v1/stream?device=counter-1&point=%2", ws_headers()), 400, "bad_request");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(http_api, websocket_handshake_errors_are_answered_in_our_error_format) {
  start();
  auto h = ws_headers();
  h.erase("Sec-WebSocket-Key");
  auto msg = expect_error(get("/v1/stream", h), 400, "bad_request");
  EXPECT_NE(msg.find("Sec-WebSocket-Key"), std::string::npos) << msg;

  h = ws_headers();
  h["Sec-WebSocket-Key"] = std::string(40, 'k');
  expect_error(get("/v1/stream", h), 400, "bad_request");

  h = ws_headers();
  h.erase("Sec-WebSocket-Version");
  expect_error(get("/v1/stream", h), 400, "bad_request");

  h = ws_headers();
  h["Sec-WebSocket-Version"] = "8";
  auto r = get("/v1/stream", h);
  msg = expect_error(r, 426, "bad_request");
  EXPECT_NE(msg.find("13"), std::string::npos) << msg;
  EXPECT_EQ(r.headers["sec-websocket-version"], "13");
  EXPECT_EQ(get("/healthz").status, 200);
}

TEST_F(http_api, a_413_honours_accept_msgpack) {
  start();
  std::string big = R"({"value": ")" + std::string(4096, 'x') + R"("})";
  // The test client sends Accept before Content-Length, so the header naming the format is read
  // when the declared length is refused.
  auto r = http_request(port_, "POST", "/v1/devices/thermostat-1/actions/set_setpoint", big,
                        {{"Accept", "application/msgpack"}, {"Content-Type", "application/json"}});
  EXPECT_EQ(r.status, 413) << r.error;
  EXPECT_EQ(r.headers["content-type"], "application/msgpack");
  auto j = json::from_msgpack(r.body, true, false);
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
  EXPECT_EQ(j["error"]["code"], "bad_request") << r.body;
  EXPECT_EQ(get("/healthz").status, 200);
}

/// A raw connection whose every read is bounded by a deadline.
class raw_client {
public:
  explicit raw_client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  }

  void send(const std::string& bytes) {
    stream_.expires_after(5s);
    net::write(stream_, net::buffer(bytes));
  }

  /// Reads until `marker` has arrived or `timeout` passes; returns what arrived so far.
  std::string read_until(const std::string& marker, std::chrono::milliseconds timeout) {
    stream_.expires_after(timeout);
    char buf[4096];
    while (received_.find(marker) == std::string::npos) {
      beast::error_code ec;
      auto n = stream_.read_some(net::buffer(buf), ec);
      received_.append(buf, n);
      if (ec) break;
    }
    return received_;
  }

  void forget() { received_.clear(); }

private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  std::string received_;
};

TEST_F(http_api, expect_100_continue_is_answered_before_the_body) {
  start();
  raw_client c{port_};
  c.send("POST /v1/devices/counter-1/actions/reset HTTP/1.1\r\nHost: x\r\n"
         "Content-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
  // Without the interim answer the server waits for a body the client holds back: no answer.
  auto interim = c.read_until("\r\n\r\n", 3s);
  EXPECT_EQ(interim.rfind("HTTP/1.1 100 Continue\r\n", 0), 0u) << interim;
  c.forget();
  c.send("{}");
  auto out = c.read_until("}}", 5s);
  EXPECT_EQ(out.rfind("HTTP/1.1 200", 0), 0u) << out;
  EXPECT_NE(out.find("\"result\""), std::string::npos) << out;

  // Over the limit: 413 at once, no 100 Continue, and the body is never needed.
  raw_client big{port_};
  big.send("POST /v1/devices/counter-1/actions/reset HTTP/1.1\r\nHost: x\r\n"
           "Content-Type: application/json\r\nContent-Length: 100000\r\n"
           "Expect: 100-continue\r\n\r\n");
  out = big.read_until("}}", 3s);
  EXPECT_EQ(out.rfind("HTTP/1.1 413", 0), 0u) << out;
  EXPECT_EQ(out.find("100 Continue"), std::string::npos) << out;
}

TEST_F(http_api, the_response_format_follows_accept_q_values) {
  start();
  auto type_for = [&](const std::string& accept) {
    return get("/v1/devices", {{"Accept", accept}}).headers["content-type"];
  };
  const std::string js = "application/json";
  const std::string mp = "application/msgpack";
  EXPECT_EQ(type_for("application/json, application/msgpack;q=0.5"), js);
  EXPECT_EQ(type_for("application/json;q=0.5, application/msgpack"), mp);
  EXPECT_EQ(type_for("application/msgpack;q=0.9, application/json;q=0.8"), mp);
  EXPECT_EQ(type_for("application/msgpack, application/json"), mp); // a tie: first listed
  EXPECT_EQ(type_for("application/json, application/msgpack"), js);
  EXPECT_EQ(type_for("application/msgpack;q=0, */*"), js);
  EXPECT_EQ(type_for("*/*"), js);
  EXPECT_EQ(type_for("text/html"), js);
  EXPECT_EQ(type_for("application/json;q=0, application/msgpack;q=0.1"), mp);
  EXPECT_EQ(type_for("Application/MsgPack"), mp);
  EXPECT_EQ(get("/v1/devices").headers["content-type"], js);
}

TEST_F(http_api, error_messages_quote_at_most_128_bytes_of_client_input) {
  start();
  const std::string ellipsis = "\xE2\x80\xA6";
  auto check = [&](const std::string& msg, const std::string& what) {
    EXPECT_LT(msg.size(), 400u) << what << ": " << msg.size() << " bytes";
    EXPECT_NE(msg.find(ellipsis), std::string::npos) << what << ": " << msg;
  };
  check(expect_error(get("/v1/devices/" + std::string(10000, 'd')), 404, "not_found"), "device");
  check(expect_error(get("/v1/connectors/" + std::string(10000, 'c')), 404, "not_found"),
        "connector");
  check(expect_error(get("/no/" + std::string(10000, 'r')), 404, "not_found"), "route");
  check(expect_error(get("/v1/devices/thermostat-1/points/" + std::string(10000, 'p')), 404,
                     "not_found"),
        "point");
  const std::string filler(900, 'x');
  std::string msg;
  check(expect_error(put("/v1/devices/thermostat-1/points/setpoint",
                         R"({"value": ")" + filler + R"("})"),
                     400, "bad_request"),
        "wrong type");
  msg = expect_error(post("/v1/devices/thermostat-1/actions/set_setpoint", "\"" + filler), 400,
                     "bad_request");
  check(msg, "invalid JSON");
  // Only the quoted token is cut: what the parser said about it stays.
  EXPECT_NE(msg.find("at byte"), std::string::npos) << msg;
  EXPECT_NE(msg.find("missing closing quote"), std::string::npos) << msg;
  check(expect_error(post("/v1/devices/thermostat-1/actions/set_setpoint",
                          "{\"" + filler + "\": 1}"),
                     400, "bad_request"),
        "unknown parameter");
  // A cut never splits a UTF-8 character: the message stays valid JSON text with no U+FFFD.
  std::string umlauts;
  for (int i = 0; i < 300; ++i) umlauts += "\xC3\xA4";
  msg = expect_error(get("/v1/devices/" + umlauts), 404, "not_found");
  check(msg, "utf-8");
  EXPECT_EQ(msg.find("\xEF\xBF\xBD"), std::string::npos) << msg;
  // Short input is quoted whole.
  EXPECT_EQ(expect_error(get("/v1/devices/nope"), 404, "not_found"), "no device 'nope'");
}

TEST_F(http_api, int64_parameter_ranges_and_defaults_render_as_integers) {
  start({[](manifold::node_config& c) {
           for (auto& a : c.connectors[0].devices[2].actions)
             if (a.name == "pulse") a.parameters[0].default_value = manifold::value{250.0};
         },
         {}});
  auto d = get_json("/v1/devices/switch-1");
  json pulse;
  for (auto& a : d["actions"])
    if (a["name"] == "pulse") pulse = a["params"][0];
  ASSERT_TRUE(pulse.is_object()) << d;
  EXPECT_TRUE(pulse["min"].is_number_integer()) << pulse;
  EXPECT_TRUE(pulse["max"].is_number_integer()) << pulse;
  EXPECT_TRUE(pulse["default"].is_number_integer()) << pulse;
  auto raw = get("/v1/devices/switch-1").body;
  EXPECT_NE(raw.find(R"("max":600000,"min":1)"), std::string::npos) << raw;
  auto msg = expect_error(post("/v1/devices/switch-1/actions/pulse", R"({"duration_ms": 0})"),
                          400, "bad_request");
  EXPECT_NE(msg.find("within [1, 600000]"), std::string::npos) << msg;
  // Double parameters keep their decimal point.
  msg = expect_error(post("/v1/devices/thermostat-1/actions/set_setpoint", R"({"value": 50})"),
                     400, "bad_request");
  EXPECT_NE(msg.find("within [5.0, 35.0]"), std::string::npos) << msg;
}

TEST_F(http_api, stream_dropped_total_is_exported_as_zero_from_the_start) {
  start();
  auto text = get("/metrics").body;
  EXPECT_EQ(gauge_value(text, "manifold_stream_dropped_total"), 0.0) << text;
}

} // namespace
