// Scenario files: loading (with file:line errors) and running in virtual time.

#include <filesystem>

#include <gtest/gtest.h>

#include "manifold/testkit/scenario.hpp"
#include "testkit/scenario_support.hpp"
#include "support/processes.hpp"

namespace {

using namespace std::chrono_literals;
using namespace manifold;
namespace fs = std::filesystem;

std::string scenario_dir() {
  return std::string{MANIFOLD_SOURCE_DIR} + "/tests/scenarios";
}

std::vector<std::string> example_scenarios() {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator{scenario_dir()})
    if (e.path().extension() == ".yaml") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

testkit::scenario load(const std::string& path) {
  return test::load_scenario_or_throw(path);
}

std::string failures(const testkit::scenario_report& rep) {
  return test::failed_steps(rep);
}

const char* pump_header = R"(seed: 5
node:
  connectors:
    - name: m
      type: modbus
      port: 1502
      devices:
        - name: pump
          points:
            - {name: speed, type: double, table: holding_register, address: 0, scale: 0.1,
               writable: true}
          actions:
            - name: set_speed
              write: speed
              params: [{name: value, type: double, min: 0, max: 100}]
              result: double
devices:
  pump:
    points: {speed: 12.5}
)";

TEST(scenario, every_example_scenario_passes) {
  auto files = example_scenarios();
  ASSERT_GE(files.size(), 4u);
  for (auto& f : files) {
    SCOPED_TRACE(f);
    auto rep = testkit::run_scenario(load(f));
    EXPECT_EQ(rep.failed, 0u) << failures(rep);
    EXPECT_GT(rep.passed, 0u);
  }
}

TEST(scenario, one_seed_replays_the_same_trace) {
  for (auto& f : example_scenarios()) {
    SCOPED_TRACE(f);
    auto s = load(f);
    auto a = testkit::run_scenario(s);
    auto b = testkit::run_scenario(s);
    EXPECT_EQ(a.trace_hash, b.trace_hash);
    ASSERT_EQ(a.trace.size(), b.trace.size());
    for (std::size_t i = 0; i < a.trace.size(); ++i)
      ASSERT_EQ(a.trace[i].to_string(), b.trace[i].to_string()) << "event " << i;
  }
  auto s = load(scenario_dir() + "/sim_thermostat.yaml");
  EXPECT_NE(testkit::run_scenario(s, 1).trace_hash, testkit::run_scenario(s, 2).trace_hash)
      << "another seed must give another run of the noisy thermostat";
}

TEST(scenario, wrong_expectation_fails_with_a_clear_message) {
  test::temp_dir dir;
  auto path = dir.write("wrong.yaml", std::string{pump_header} + R"(steps:
  - at: 1s
    expect: {point: pump/speed, equals: 99}
  - at: 2s
    invoke: {device: pump, action: set_speed, params: {value: 20}}
    expect_result: 21
  - at: 2s
    expect_writes: ['write pump holding_register 0 [201]']
  - at: 3s
    expect: {point: pump/speed, quality: stale}
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_EQ(rep.passed, 0u);
  ASSERT_EQ(rep.failed, 4u) << failures(rep);
  auto by_index = [&](std::size_t i) {
    for (auto& s : rep.steps)
      if (s.index == i) return s;
    return testkit::step_result{};
  };
  EXPECT_EQ(by_index(1).message, "expected 99, got 12.5 (good)");
  EXPECT_EQ(by_index(1).where.line, 21);
  EXPECT_EQ(by_index(2).message, "expected result 21, got 20");
  EXPECT_EQ(by_index(2).passed, false);
  EXPECT_EQ(by_index(3).message, "expected writes: write pump holding_register 0 [201]; got: "
                                 "write pump holding_register 0 [200]");
  EXPECT_EQ(by_index(4).message, "expected quality stale, got 20 (good)");
}

TEST(scenario, bad_scenarios_are_reported_with_file_and_line) {
  test::temp_dir dir;
  auto path = dir.write("bad.yaml", std::string{pump_header} + R"(steps:
  - at: 5s
    expect: {point: pump/speed, equals: 1}
  - at: 2s
    expect: {point: pump/nothing, equals: 1}
  - at: 3s
    invoke: {device: pump, action: set_speed, params: {value: 500}}
  - at: 4s
    fault: {disconnect: nobody}
  - at: 4s
    expect: {point: pump/speed, equals: 1}
    colour: blue
  - at: 5s
    set: {device: pump, points: {nothing: 1}}
)");
  auto r = testkit::load_scenario(path);
  ASSERT_FALSE(r.value);
  auto text = r.diag.to_string();
  EXPECT_NE(text.find("bad.yaml:24:"), std::string::npos) << text; // out of order
  EXPECT_NE(text.find("steps must be in time order"), std::string::npos) << text;
  EXPECT_NE(text.find("no point 'pump/nothing'"), std::string::npos) << text;
  EXPECT_NE(text.find("parameter 'value' must be within [0, 100], got 500"), std::string::npos)
      << text;
  EXPECT_NE(text.find("no device 'nobody'"), std::string::npos) << text;
  EXPECT_NE(text.find("colour"), std::string::npos) << text;
  EXPECT_NE(text.find("device 'pump' has no point 'nothing'"), std::string::npos) << text;
}

TEST(scenario, node_config_errors_point_into_the_scenario_file) {
  test::temp_dir dir;
  auto path = dir.write("bad_node.yaml", R"(seed: 1
node:
  connectors:
    - name: m
      type: modbus
      poll_interval: soon
steps: []
)");
  auto r = testkit::load_scenario(path);
  ASSERT_FALSE(r.value);
  EXPECT_NE(r.diag.to_string().find("bad_node.yaml:6:"), std::string::npos) << r.diag.to_string();
}

TEST(scenario, action_expected_to_succeed_fails_when_the_broker_is_down) {
  // The broker is down from the start, so the mqtt connector refuses the action at once.
  test::temp_dir dir;
  auto path = dir.write("down.yaml", R"(seed: 1
node:
  config: )" + std::string{MANIFOLD_SOURCE_DIR} +
                                         R"(/examples/mqtt.yaml
devices:
  boiler-1: {connected: false}
steps:
  - at: 1s
    invoke: {device: boiler-1, action: set_mode, params: {mode: eco}}
)");
  auto rep = testkit::run_scenario(load(path));
  ASSERT_EQ(rep.failed, 1u);
  EXPECT_NE(rep.steps[0].message.find("unavailable"), std::string::npos) << rep.steps[0].message;
}

} // namespace
