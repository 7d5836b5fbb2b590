#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "manifold/actors/config.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/testkit/trace.hpp"

/// Scenario files: a node config, initial device data and timed steps with expectations, run in
/// virtual time by `run_scenario`. See testkit/README.md for the format.
namespace manifold::testkit {

class simulation;

enum class step_kind {
  invoke,
  publish,
  fault,
  set,
  expect,
  expect_writes,
  expect_connector,
  expect_metric
};

/// A value a simulated device produces by itself, evaluated on the virtual clock every
/// `interval`: a first-order lag towards a setpoint, a counter or a script, plus noise from the
/// scenario's seed. Modbus: written into a point's registers; MQTT: published to a topic.
struct dynamic_source {
  enum class kind { follow, counter, script };
  std::string target; ///< modbus: a point of the device; mqtt: a topic.
  source_location where;
  kind model = kind::follow;
  std::optional<double> setpoint;   ///< follow: a fixed setpoint, or
  std::string setpoint_point;       ///< follow: the current value of this point of the device.
  std::chrono::milliseconds tau{0}; ///< follow: time constant; 0 jumps to the setpoint.
  double start = 0;                 ///< follow: first value; counter: first count.
  double increment = 1;             ///< counter: added every interval.
  std::vector<std::pair<std::chrono::milliseconds, double>> script; ///< (at, value), in order.
  double noise = 0; ///< Standard deviation of the Gaussian noise added to each output.
  std::chrono::milliseconds interval{1000};
};

/// Initial data of one simulated device.
struct device_model {
  std::string device;
  source_location where;
  std::map<int, std::uint16_t> holding_registers, input_registers;
  std::map<int, std::uint8_t> coils, discrete_inputs;
  std::map<int, int> reject_writes;
  std::map<int, std::chrono::milliseconds> delay_writes;
  /// MQTT: how late the broker acknowledges QoS 1 publishes; nullopt inside: never.
  std::optional<std::optional<std::chrono::milliseconds>> ack_delay;
  std::optional<bool> connected;             ///< Unset: as it is (connected at the start).
  std::map<std::string, std::string> topics; ///< MQTT: retained payloads by topic.
  std::vector<dynamic_source> dynamics;
};

/// One timed step of a scenario, already checked against the node config.
struct scenario_step {
  std::chrono::milliseconds at{0};
  source_location where;
  step_kind kind = step_kind::expect;
  std::string description; ///< One line for the report, e.g. `expect pump/speed equals 150`.

  // invoke
  action_request request;
  std::string param_error;          ///< Set when the parameters fail their declaration.
  YAML::Node expect_result;         ///< Defined: the result must equal it.
  std::optional<errc> expect_error; ///< Set: the call must fail with this code.

  // publish
  std::string endpoint; ///< Broker `host:port`; empty: every broker.
  std::string topic;
  std::string payload;
  bool retain = false;

  // fault
  std::string device;
  bool disconnect = true;
  /// disconnect, reconnect, slow, timeout, corrupt, heal, broker_restart, crash.
  std::string fault;
  std::chrono::milliseconds delay{0}; ///< slow: per call; broker_restart: time down.
  std::string connector;              ///< crash, expect_connector, broker_restart.

  // expect
  std::string point; ///< With `device`.
  YAML::Node equals;
  std::optional<std::pair<double, double>> within;
  std::optional<quality> expect_quality;
  /// stays_within: every reading of the point from `at` to `at + window` must be in range.
  std::optional<std::pair<double, double>> stays_within;
  std::chrono::milliseconds window{0};

  // expect_connector (with `connector`)
  std::optional<connector_state> expect_state;
  std::optional<std::uint64_t> expect_restarts;

  // expect_metric
  std::string metric;
  std::map<std::string, std::string> labels;
  double metric_equals = 0;

  // expect_writes
  std::vector<std::string> writes;

  // set (with `device`): the data to write into the device
  device_model model;
};

struct scenario {
  std::string file;
  std::string name;
  std::uint64_t seed = 0;
  node_config node;
  std::vector<device_model> devices;
  std::vector<scenario_step> steps;
};

struct scenario_load_result {
  std::optional<scenario> value; ///< Set only without diagnostics.
  config::diagnostics diag;
};

/// Reads a scenario file; every problem is reported with file:line.
scenario_load_result load_scenario(
    const std::string& path,
    const connectors::connector_registry& registry = connectors::connector_registry::builtin());

/// Builds the devices of a node config in `sim` with the models' data (encoding `points:`
/// values the way the connector decodes them).
void apply_models(simulation& sim, const std::vector<device_model>& models);

struct step_result {
  std::size_t index = 0; ///< 1-based.
  std::chrono::milliseconds at{0};
  std::string description;
  bool passed = false;
  std::string message; ///< Why it failed, or the observed outcome.
  source_location where;
};

struct scenario_report {
  std::string file;
  std::string name;
  std::uint64_t seed = 0;
  std::vector<step_result> steps; ///< In the order they finished.
  std::size_t passed = 0;
  std::size_t failed = 0;
  std::string trace_hash;
  std::vector<trace_event> trace;
  std::uint64_t events = 0;
  std::chrono::milliseconds virtual_time{0};
  double wall_seconds = 0;
};

/// Runs a loaded scenario; `seed` overrides the file's. `on_step` sees each step as it
/// finishes (an action still waiting for its device finishes later than its `at`).
scenario_report run_scenario(const scenario& s, std::optional<std::uint64_t> seed = std::nullopt,
                             const std::function<void(const step_result&)>& on_step = {});

} // namespace manifold::testkit
