// examples/plant.yaml end to end, as a user runs it: the manifold binary against a real mosquitto
// broker and a real pymodbus server, MQTT and Modbus devices side by side behind one API, with
// mbpoll and mosquitto_sub as independent witnesses of what the actions did.

#include <csignal>
#include <fstream>
#include <regex>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/http.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold::test;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string source_dir = MANIFOLD_SOURCE_DIR;

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream os;
  os << in.rdbuf();
  return os.str();
}

struct plant_test : ::testing::Test {
  temp_dir dir;
  std::uint16_t mqtt_port = free_port();
  std::uint16_t modbus_port = free_port();
  std::uint16_t gateway_port = free_port();
  std::unique_ptr<child_process> broker;
  std::unique_ptr<child_process> modbus;
  std::unique_ptr<child_process> node;

  void SetUp() override {
    auto conf = dir.write("mosquitto.conf", "listener " + std::to_string(mqtt_port) +
                                              " 127.0.0.1\nallow_anonymous true\n");
    broker = std::make_unique<child_process>(
      std::vector<std::string>{MOSQUITTO_BROKER, "-c", conf}, dir.file("mosquitto.log"));
    modbus = std::make_unique<child_process>(
      std::vector<std::string>{"/usr/bin/python3", source_dir + "/tests/peers/modbus_server.py",
                               std::to_string(modbus_port)},
      dir.file("modbus.log"));
    ASSERT_TRUE(wait_until([&] { return port_open(mqtt_port); }, 20s)) << broker->log();
    ASSERT_TRUE(wait_until([&] { return modbus->log().find("ready") != std::string::npos; }, 20s))
      << modbus->log();

    // The example as shipped, pointed at this test's peers.
    auto text = read_file(source_dir + "/examples/plant.yaml");
    text = std::regex_replace(text, std::regex{"port: 1883"}, "port: " + std::to_string(mqtt_port));
    text = std::regex_replace(text, std::regex{"port: 5020"},
                              "port: " + std::to_string(modbus_port));
    auto config = dir.write("plant.yaml", text);
    node = std::make_unique<child_process>(
      std::vector<std::string>{MANIFOLD_BINARY, "node", "run", "--config", config, "--listen",
                               "127.0.0.1:" + std::to_string(gateway_port)},
      dir.file("node.log"));
    ASSERT_TRUE(wait_until([&] { return http_get(gateway_port, "/healthz").status == 200; }, 20s))
      << node->log();
  }

  json get(const std::string& target) {
    auto r = http_get(gateway_port, target);
    EXPECT_EQ(r.status, 200) << target << ": " << r.body;
    return json::parse(r.body, nullptr, false);
  }
};

TEST_F(plant_test, mqtt_and_modbus_devices_side_by_side_through_the_same_endpoints) {
  auto devices = get("/v1/devices");
  std::map<std::string, std::string> connector_of;
  for (auto& d : devices) connector_of[d["name"]] = d["connector"];
  EXPECT_EQ(connector_of["boiler-1"], "plant-mqtt");
  EXPECT_EQ(connector_of["pump-1"], "plant-modbus");

  // Modbus: polled and decoded (the test server holds 12.5 as float32 in input register 0).
  ASSERT_TRUE(wait_until([&] {
    auto p = get("/v1/devices/pump-1/points/temperature");
    return p.value("quality", "") == "good" && p["value"] == 12.5;
  }, 15s)) << node->log();

  // MQTT: a published value becomes a reading of the same shape.
  ASSERT_TRUE(wait_until([&] {
    run_command({"mosquitto_pub", "-h", "127.0.0.1", "-p", std::to_string(mqtt_port), "-t",
                 "plant/boiler-1/temperature", "-m", "64.5"});
    auto p = get("/v1/devices/boiler-1/points/temperature");
    return p.value("quality", "") == "good" && p["value"] == 64.5;
  }, 15s)) << node->log();
  auto p = get("/v1/devices/boiler-1/points/temperature");
  EXPECT_EQ(p["unit"], "°C");
  EXPECT_TRUE(p["timestamp"].is_string());
}

TEST_F(plant_test, a_modbus_action_writes_a_register_that_mbpoll_reads_back) {
  auto r = http_post(gateway_port, "/v1/devices/pump-1/actions/set_speed", R"({"value": 120.5})");
  ASSERT_EQ(r.status, 200) << r.body << node->log();
  EXPECT_EQ(json::parse(r.body)["result"], 120.5);
  auto read = run_command({"mbpoll", "-m", "tcp", "-p", std::to_string(modbus_port), "-a", "1",
                           "-t", "4", "-r", "1", "-c", "1", "-1", "127.0.0.1"});
  EXPECT_EQ(read.exit_code, 0) << read.output;
  EXPECT_TRUE(std::regex_search(read.output, std::regex{R"(\[1\]:\s+1205\b)"})) << read.output;
}

TEST_F(plant_test, an_mqtt_action_is_received_by_mosquitto_sub) {
  child_process sub{{"mosquitto_sub", "-h", "127.0.0.1", "-p", std::to_string(mqtt_port), "-t",
                     "plant/boiler-1/cmd", "-C", "1", "-q", "1"},
                    dir.file("sub.log")};
  // mosquitto_sub subscribes asynchronously: retry the action until the subscriber got it.
  bool received = wait_until([&] {
    auto r = http_post(gateway_port, "/v1/devices/boiler-1/actions/set_mode",
                       R"({"mode": "eco"})");
    EXPECT_EQ(r.status, 200) << r.body;
    return wait_until([&] { return sub.log().find("eco") != std::string::npos; }, 500ms);
  }, 15s);
  ASSERT_TRUE(received) << sub.log() << node->log();
  EXPECT_EQ(json::parse(sub.log()), (json{{"mode", "eco"}}));
}

TEST_F(plant_test, an_unreachable_modbus_device_goes_stale_answers_503_and_comes_back) {
  auto metric_up = "manifold_device_up{connector=\"plant-modbus\",device=\"pump-1\"} 1";
  auto metric_down = "manifold_device_up{connector=\"plant-modbus\",device=\"pump-1\"} 0";
  ASSERT_TRUE(wait_until([&] { return http_get(gateway_port, "/metrics").body.find(metric_up) !=
                                      std::string::npos; }, 15s)) << node->log();
  modbus->stop();
  ASSERT_TRUE(wait_until([&] {
    return get("/v1/devices/pump-1/points/temperature").value("quality", "") == "stale";
  }, 15s)) << node->log();
  auto r = http_post(gateway_port, "/v1/devices/pump-1/actions/set_speed", R"({"value": 1})");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(http_get(gateway_port, "/metrics").body.find(metric_down), std::string::npos);
  auto c = get("/v1/connectors/plant-modbus");
  EXPECT_EQ(c["state"], "degraded") << c.dump();
  EXPECT_EQ(c["unreachable_devices"], json::array({"pump-1"})) << c.dump();

  modbus = std::make_unique<child_process>(
    std::vector<std::string>{"/usr/bin/python3", source_dir + "/tests/peers/modbus_server.py",
                             std::to_string(modbus_port)},
    dir.file("modbus2.log"));
  ASSERT_TRUE(wait_until([&] {
    return get("/v1/devices/pump-1/points/temperature").value("quality", "") == "good";
  }, 20s)) << node->log();
  EXPECT_NE(http_get(gateway_port, "/metrics").body.find(metric_up), std::string::npos);
}

TEST_F(plant_test, the_cli_sends_text_for_a_string_parameter_even_when_it_looks_numeric) {
  auto url = "http://127.0.0.1:" + std::to_string(gateway_port);
  // `mode` is declared string: 42 must arrive as "42", not be refused as a number.
  ASSERT_TRUE(wait_until([&] {
    return run_command({MANIFOLD_BINARY, "action", "invoke", "boiler-1", "set_mode", "mode=42",
                        "--url", url})
             .exit_code == 0;
  }, 15s)) << node->log();
  auto twice = run_command({MANIFOLD_BINARY, "action", "invoke", "boiler-1", "set_mode",
                            "mode=a", "mode=b", "--url", url});
  EXPECT_EQ(twice.exit_code, 2) << twice.output;
  EXPECT_NE(twice.output.find("parameter 'mode' is given twice"), std::string::npos)
    << twice.output;
}

} // namespace
