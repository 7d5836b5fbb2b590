// Device dynamics in scenario files: a first-order lag towards a setpoint (fixed or another
// point), a counter, a script over time and seeded noise, for Modbus points and MQTT topics.

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "manifold/testkit/scenario.hpp"
#include "testkit/scenario_support.hpp"
#include "support/processes.hpp"

namespace {

using namespace std::chrono_literals;
using namespace manifold;

testkit::scenario load(const std::string& path) {
  return test::load_scenario_or_throw(path);
}

std::string failures(const testkit::scenario_report& rep) {
  return test::failed_steps(rep);
}

const char* header = R"(seed: 11
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
            - {name: temperature, type: double, table: input_register, address: 0,
               encoding: float32}
            - {name: strokes, type: int64, table: input_register, address: 2, encoding: uint32}
            - {name: level, type: double, table: input_register, address: 4, scale: 0.01}
          actions:
            - name: set_speed
              write: speed
              params: [{name: value, type: double, min: 0, max: 1000}]
              result: double
    - name: q
      type: mqtt
      port: 1883
      devices:
        - name: boiler
          points:
            - {name: temperature, type: double, topic: b/temperature}
)";

TEST(dynamics, modbus_lag_counter_and_script_on_the_virtual_clock) {
  test::temp_dir dir;
  auto path = dir.write("dyn.yaml", std::string{header} + R"(devices:
  pump:
    points: {speed: 120}
    dynamics:
      temperature: {follow: speed, tau: 30s, start: 20}
      strokes: {counter: 3, interval: 10s}
      level: {script: [{at: 0s, value: 1}, {at: 10m, value: 5}], interval: 1m}
steps:
  - at: 500ms
    expect: {point: pump/temperature, equals: 20}
  - at: 30s
    # One time constant: 20 + 100 * (1 - 1/e) = 83.2
    expect: {point: pump/temperature, within: [82.5, 83.9]}
  - at: 30s
    expect: {point: pump/strokes, equals: 9}
  - at: 9m
    expect: {point: pump/level, equals: 1}
  - at: 10m
    invoke: {device: pump, action: set_speed, params: {value: 50}}
  - at: 601s
    expect: {point: pump/level, equals: 5}
  - at: 15m
    expect: {point: pump/temperature, stays_within: [49.5, 50.5], for: 10m}
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_EQ(rep.failed, 0u) << failures(rep);
  EXPECT_EQ(rep.passed, 7u);
}

TEST(dynamics, wrong_expectations_about_dynamics_fail) {
  test::temp_dir dir;
  auto path = dir.write("dyn.yaml", std::string{header} + R"(devices:
  pump:
    dynamics:
      temperature: {follow: 100, tau: 1m, start: 0}
steps:
  - at: 30s
    # Only 39% of the way after half a time constant after half a time constant, not there yet.
    expect: {point: pump/temperature, within: [90, 110]}
)");
  auto rep = testkit::run_scenario(load(path));
  ASSERT_EQ(rep.failed, 1u);
  EXPECT_NE(rep.steps[0].message.find("got 39.3"), std::string::npos) << rep.steps[0].message;
}

TEST(dynamics, noise_comes_from_the_seed_and_mqtt_topics_are_published_every_interval) {
  test::temp_dir dir;
  auto path = dir.write("noise.yaml", std::string{header} + R"(devices:
  pump:
    dynamics:
      temperature: {follow: 60, tau: 0s, noise: 0.5}
  boiler:
    dynamics:
      b/temperature: {follow: 70, tau: 1m, start: 20, noise: 0.1, interval: 5s}
steps:
  - at: 1s
    expect: {point: pump/temperature, stays_within: [57, 63], for: 10m}
  - at: 1s
    expect: {point: boiler/temperature, within: [19.5, 20.5]}
  - at: 20m
    expect: {point: boiler/temperature, within: [69.5, 70.5], quality: good}
)");
  auto s = load(path);
  auto a = testkit::run_scenario(s);
  EXPECT_EQ(a.failed, 0u) << failures(a);
  auto b = testkit::run_scenario(s);
  EXPECT_EQ(a.trace_hash, b.trace_hash);
  auto c = testkit::run_scenario(s, 12);
  EXPECT_NE(a.trace_hash, c.trace_hash) << "another seed must give other noise";
  // The broker got one publish per 5 s interval from the start to the end (20 min).
  std::size_t injects = 0;
  std::set<std::string> values;
  for (auto& e : a.trace)
    if (e.kind == "inject" && e.text.rfind("publish b/temperature ", 0) == 0) {
      ++injects;
      values.insert(e.text);
    }
  EXPECT_GE(injects, 240u);
  EXPECT_LE(injects, 242u);
  EXPECT_GT(values.size(), 200u) << "noise makes the published values differ";
}

TEST(dynamics, bad_dynamics_are_reported_with_file_and_line) {
  test::temp_dir dir;
  auto path = dir.write("bad.yaml", std::string{header} + R"(devices:
  pump:
    dynamics:
      nothing: {follow: 1}
      temperature: {follow: 1, counter: 2}
      strokes: {script: [{at: 1m, value: 1}, {at: 0s, value: 2}]}
      level: {follow: nowhere, noise: -1}
  boiler:
    dynamics:
      b/#: {counter: 1}
steps: []
)");
  auto r = testkit::load_scenario(path);
  ASSERT_FALSE(r.value);
  auto text = r.diag.to_string();
  EXPECT_NE(text.find("bad.yaml:31:"), std::string::npos) << text;
  EXPECT_NE(text.find("has no point 'nothing'"), std::string::npos) << text;
  EXPECT_NE(text.find("exactly one of follow"), std::string::npos) << text;
  EXPECT_NE(text.find("time order"), std::string::npos) << text;
  EXPECT_NE(text.find("'follow' is a number or a point"), std::string::npos) << text;
  EXPECT_NE(text.find("standard deviation"), std::string::npos) << text;
  EXPECT_NE(text.find("keyed by topic"), std::string::npos) << text;
}

} // namespace
