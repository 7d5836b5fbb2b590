// Faults on the virtual clock (slow and unanswered devices, corrupt answers, broker restarts,
// connector crashes) and the expectations that judge them (stays_within, expect_connector,
// expect_metric). Each test names the steps that must fail as well as those that must pass.

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

testkit::step_result step(const testkit::scenario_report& rep, std::size_t index) {
  return test::step_of(rep, index);
}

std::string failures(const testkit::scenario_report& rep) {
  return test::failed_steps(rep);
}

// A response timeout (10s) longer than the action timeout (2s): a slow unit makes the
// connector's own request time out, as it would with a real device.
const char* modbus_header = R"(seed: 5
node:
  connectors:
    - name: m
      type: modbus
      port: 1502
      timeout: 10s
      action_timeout: 2s
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

const char* mqtt_header = R"(seed: 5
node:
  connectors:
    - name: q
      type: mqtt
      port: 1883
      action_timeout: 5s
      devices:
        - name: boiler
          points:
            - {name: temperature, type: double, topic: b/temperature}
          actions:
            - {name: set_mode, topic: b/cmd, params: [{name: mode, type: string}]}
devices:
  boiler:
    topics: {b/temperature: "60"}
)";

TEST(faults, slow_modbus_write_times_out_in_virtual_time) {
  test::temp_dir dir;
  auto path = dir.write("slow.yaml", std::string{modbus_header} + R"(steps:
  - at: 1s
    fault: {slow: {device: pump, delay: 5s}}
  - at: 1s
    invoke: {device: pump, action: set_speed, params: {value: 20}}
    expect_error: timeout
  - at: 30s
    fault: {heal: pump}
  - at: 40s
    invoke: {device: pump, action: set_speed, params: {value: 30}}
    expect_result: 30
  - at: 50s
    fault: {slow: {device: pump, delay: 500ms}}
  - at: 60s
    invoke: {device: pump, action: set_speed, params: {value: 40}}
    expect_result: 40
  - at: 70s
    invoke: {device: pump, action: set_speed, params: {value: 50}}
    expect_error: timeout
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_EQ(step(rep, 2).passed, true) << step(rep, 2).message;
  // Judged when the connector gave up: 2s (action_timeout) after the call, not at once.
  EXPECT_GE(step(rep, 2).at, 3s);
  EXPECT_LT(step(rep, 2).at, 6s);
  EXPECT_TRUE(step(rep, 4).passed) << step(rep, 4).message;
  EXPECT_TRUE(step(rep, 6).passed) << step(rep, 6).message;
  EXPECT_GE(step(rep, 6).at, 60s + 500ms);
  // A 500 ms device answers within the 2 s action timeout: the last step must fail.
  EXPECT_FALSE(step(rep, 7).passed);
  EXPECT_EQ(rep.failed, 1u) << failures(rep);
}

TEST(faults, unanswered_and_corrupt_modbus_units) {
  test::temp_dir dir;
  auto path = dir.write("corrupt.yaml", std::string{modbus_header} + R"(steps:
  - at: 1s
    expect: {point: pump/speed, equals: 12.5, quality: good}
  - at: 2s
    fault: {corrupt: pump}
  - at: 4s
    expect: {point: pump/speed, quality: bad}
  - at: 5s
    fault: {heal: pump}
  - at: 7s
    expect: {point: pump/speed, equals: 12.5, quality: good}
  - at: 8s
    fault: {timeout: pump}
  - at: 30s
    expect: {point: pump/speed, quality: stale}
  - at: 30s
    expect_connector: {name: m, state: degraded}
  - at: 31s
    fault: {heal: pump}
  - at: 50s
    expect: {point: pump/speed, quality: good}
  - at: 50s
    expect_connector: {name: m, state: running, restarts: 0}
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_EQ(rep.failed, 0u) << failures(rep);
  EXPECT_NE(step(rep, 3).message.find("corrupted frame"), std::string::npos)
      << step(rep, 3).message;
}

TEST(faults, crash_restarts_the_connector_in_virtual_time) {
  test::temp_dir dir;
  auto path = dir.write("crash.yaml", std::string{modbus_header} + R"(steps:
  - at: 1s
    expect_metric: {name: manifold_connector_restarts_total, labels: {connector: m}, equals: 0}
  - at: 2s
    fault: {crash: m}
  - at: 2s
    expect_connector: {name: m, state: restarting, restarts: 1}
  - at: 2s
    invoke: {device: pump, action: set_speed, params: {value: 20}}
    expect_error: unavailable
  - at: 5s
    expect_connector: {name: m, state: running, restarts: 1}
  - at: 5s
    expect_metric: {name: manifold_connector_restarts_total, labels: {connector: m}, equals: 1}
  - at: 6s
    invoke: {device: pump, action: set_speed, params: {value: 20}}
    expect_result: 20
  - at: 7s
    expect_connector: {name: m, restarts: 2}
  - at: 7s
    expect_metric: {name: manifold_connector_restarts_total, labels: {connector: m}, equals: 3}
  - at: 7s
    expect_metric: {name: manifold_connector_restarts_total, labels: {connector: nobody},
                    equals: 1}
)");
  auto rep = testkit::run_scenario(load(path));
  for (std::size_t i = 1; i <= 7; ++i)
    EXPECT_TRUE(step(rep, i).passed) << i << ": " << step(rep, i).message;
  EXPECT_FALSE(step(rep, 8).passed);
  EXPECT_EQ(step(rep, 8).message, "expected restarts=2, got running, restarts=1 (simulated crash)");
  EXPECT_FALSE(step(rep, 9).passed);
  EXPECT_EQ(step(rep, 9).message, "got 1");
  EXPECT_FALSE(step(rep, 10).passed);
  EXPECT_EQ(step(rep, 10).message, "no such series");
}

TEST(faults, mqtt_late_and_missing_acknowledgements_and_broker_restart) {
  test::temp_dir dir;
  auto path = dir.write("mqtt.yaml", std::string{mqtt_header} + R"(steps:
  - at: 1s
    fault: {slow: {device: boiler, delay: 2s}}
  - at: 1s
    invoke: {device: boiler, action: set_mode, params: {mode: eco}}
  - at: 10s
    fault: {timeout: boiler}
  - at: 10s
    invoke: {device: boiler, action: set_mode, params: {mode: eco}}
    expect_error: timeout
  - at: 20s
    fault: {heal: boiler}
  - at: 20s
    invoke: {device: boiler, action: set_mode, params: {mode: eco}}
  - at: 30s
    fault: {broker_restart: {broker: q, down_for: 5s}}
  - at: 31s
    expect: {point: boiler/temperature, equals: 60, quality: stale}
  - at: 36s
    expect: {point: boiler/temperature, equals: 60, quality: good}
  - at: 36s
    expect_connector: {name: q, state: running, restarts: 0}
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_EQ(rep.failed, 0u) << failures(rep);
  EXPECT_EQ(step(rep, 2).at, 3s) << "the PUBACK comes 2 s late";
  EXPECT_EQ(step(rep, 4).at, 15s) << "no PUBACK: the action times out after 5 s";
  EXPECT_EQ(step(rep, 6).at, 20s);
}

TEST(faults, stays_within_checks_every_reading_of_its_window) {
  test::temp_dir dir;
  auto path = dir.write("window.yaml", std::string{modbus_header} + R"(steps:
  - at: 1s
    expect: {point: pump/speed, stays_within: [10, 15], for: 10m}
  - at: 2s
    expect: {point: pump/speed, stays_within: [10, 15], for: 20s}
  - at: 5m
    set: {device: pump, points: {speed: 16}}
  - at: 5m
    expect: {point: pump/speed, stays_within: [15, 17], for: 1m}
  - at: 30m
    expect: {point: pump/speed, stays_within: [0, 100], for: 1s}
)");
  auto rep = testkit::run_scenario(load(path));
  EXPECT_FALSE(step(rep, 1).passed);
  EXPECT_EQ(step(rep, 1).at, 601s);
  EXPECT_NE(step(rep, 1).message.find("left the range at 301.000s: 16"), std::string::npos)
      << step(rep, 1).message;
  EXPECT_TRUE(step(rep, 2).passed) << step(rep, 2).message;
  EXPECT_EQ(step(rep, 2).at, 22s);
  EXPECT_NE(step(rep, 2).message.find("readings in range"), std::string::npos);
  // Polled each second: the 1 min window from 5m sees the readings at 5m1s .. 6m.
  EXPECT_TRUE(step(rep, 4).passed) << step(rep, 4).message;
  EXPECT_EQ(step(rep, 4).message, "60 readings in range");
  EXPECT_TRUE(step(rep, 5).passed) << step(rep, 5).message;
  EXPECT_EQ(rep.failed, 1u) << failures(rep);
}

TEST(faults, delayed_write_responses_from_the_device_data) {
  // Writes to the speed register take 5 s (beyond the 2 s action timeout), polls are prompt.
  test::temp_dir dir;
  auto slow =
      dir.write("slow_writes.yaml", std::string{modbus_header} + R"(    delay_writes: {0: 5s}
steps:
  - at: 1s
    invoke: {device: pump, action: set_speed, params: {value: 20}}
    expect_error: timeout
  - at: 1s
    expect: {point: pump/speed, stays_within: [12, 21], for: 20s}
  - at: 30s
    set: {device: pump, delay_writes: {0: 1s}}
  - at: 30s
    invoke: {device: pump, action: set_speed, params: {value: 30}}
    expect_result: 30
)");
  auto rep = testkit::run_scenario(load(slow));
  EXPECT_EQ(rep.failed, 0u) << failures(rep);
  EXPECT_EQ(step(rep, 1).at, 3s) << "the connector gives up after its 2 s action timeout";
  EXPECT_EQ(step(rep, 4).at, 31s) << "answered after the 1 s delay";

  auto never = dir.write("never.yaml", std::string{mqtt_header} + R"(    ack_delay: never
steps:
  - at: 1s
    invoke: {device: boiler, action: set_mode, params: {mode: eco}}
)");
  auto r2 = testkit::run_scenario(load(never));
  ASSERT_EQ(r2.failed, 1u);
  EXPECT_EQ(r2.steps[0].at, 6s);
  EXPECT_NE(r2.steps[0].message.find("timeout"), std::string::npos) << r2.steps[0].message;
}

TEST(faults, bad_fault_and_expectation_steps_are_reported) {
  test::temp_dir dir;
  auto path = dir.write("bad.yaml", std::string{modbus_header} + R"(steps:
  - at: 1s
    fault: {crash: nobody}
  - at: 1s
    fault: {broker_restart: {broker: m}}
  - at: 1s
    fault: {slow: {device: pump}}
  - at: 1s
    expect: {point: pump/speed, stays_within: [1, 2]}
  - at: 1s
    expect_connector: {name: m, state: sleepy}
  - at: 1s
    expect_metric: {name: x}
)");
  auto r = testkit::load_scenario(path);
  ASSERT_FALSE(r.value);
  auto text = r.diag.to_string();
  EXPECT_NE(text.find("no connector 'nobody'"), std::string::npos) << text;
  EXPECT_NE(text.find("'broker_restart' needs an mqtt connector"), std::string::npos) << text;
  EXPECT_NE(text.find("'slow': missing required key 'delay'"), std::string::npos) << text;
  EXPECT_NE(text.find("'expect': missing required key 'for'"), std::string::npos) << text;
  EXPECT_NE(text.find("sleepy"), std::string::npos) << text;
  EXPECT_NE(text.find("'expect_metric': missing required key 'equals'"), std::string::npos) << text;
}

} // namespace
