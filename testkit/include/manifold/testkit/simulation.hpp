#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/model.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/testkit/simulated_plant.hpp"
#include "manifold/testkit/trace.hpp"

/// Deterministic virtual-time runs of a node's real connectors against simulated devices.
namespace manifold {
class node_metrics;
}

namespace manifold::testkit {

/// The virtual wall-clock time at the start of every run: 2026-01-01T00:00:00Z. A fixed epoch
/// keeps reading timestamps, and so traces, equal between runs.
inline constexpr timestamp virtual_epoch = 1767225600LL * 1000000000LL;

struct simulation_options {
  std::uint64_t seed = 0;
  /// Record every reading in the trace (the hash covers them either way only if recorded).
  bool trace_readings = true;
  /// Keep the trace's events in memory (off for long benchmarks; the hash is kept anyway).
  bool keep_events = true;
  /// Upper bound on messages processed without virtual time moving: a livelock guard.
  std::size_t max_events_per_instant = 10'000'000;
};

/// The outcome of an action invoked in a simulation; `done` once the connector answered.
struct call_outcome {
  bool done = false;
  std::optional<value> result; ///< Set on success.
  errc code = errc::none;      ///< Set on failure.
  std::string message;
  std::chrono::milliseconds answered_at{0};
};

/// One node (data bus and a supervised group per connector, exactly as `manifold node run`
/// builds them) on CAF's deterministic test scheduler, its connectors' devices simulated by a
/// `simulated_plant`. Nothing runs until time is advanced; one seed replays a run exactly.
///
///     simulation_options opts;
///     opts.seed = 7;
///     simulation sim{cfg, opts};
///     sim.plant().modbus("127.0.0.1:5020", 1).holding_registers[0] = 1200;
///     sim.start();
///     sim.advance(5s);
///     EXPECT_EQ(std::get<double>(sim.latest("pump", "speed")->data), 120.0);
class simulation {
public:
  simulation(node_config cfg, simulation_options opts = {},
             connectors::connector_registry registry = connectors::connector_registry::builtin());
  ~simulation();

  simulation(const simulation&) = delete;
  simulation& operator=(const simulation&) = delete;

  /// The simulated devices; set initial registers and topics before `start`.
  simulated_plant& plant();
  /// `host:port` of the Modbus server or MQTT broker behind a device of the config; empty for
  /// devices of other connector types.
  std::string endpoint_of(const std::string& device) const;
  /// The Modbus unit of a device of a modbus connector; nullptr for other devices.
  modbus_unit* modbus_unit_of(const std::string& device);

  /// Spawns the data bus and the connector supervisors and delivers their first messages.
  void start();

  /// Moves virtual time forward by `d`, firing every timer due on the way in time order and
  /// delivering every message they cause.
  void advance(std::chrono::milliseconds d);
  void advance_to(std::chrono::milliseconds t);
  /// Delivers every pending message without moving time.
  void run();

  /// Virtual time since `start`.
  std::chrono::milliseconds elapsed() const;
  /// Virtual wall-clock time (`virtual_epoch` + elapsed).
  timestamp now() const;

  /// Invokes an action through the device's connector supervisor, as the gateway would; the
  /// outcome fills in as time is advanced (at once for most devices).
  std::shared_ptr<const call_outcome> invoke(action_request req);

  /// The latest reading of a point (a stale mark keeps the last value, as the data bus does).
  std::optional<point_reading> latest(const std::string& device, const std::string& point) const;
  /// The connector (from the config) serving a device; nullptr if none does.
  const connector_config* connector_of(const std::string& device) const;
  const node_config& config() const;

  event_trace& trace();
  /// Messages processed so far.
  std::uint64_t events() const;

  caf::actor_system& system();
  /// The node's metrics, as the gateway would serve them (readings, actions, connector state).
  node_metrics& metrics();
  caf::actor supervisor(const std::string& connector) const;

  /// The supervisor's status of a connector (state, restarts, last error); nullopt for an
  /// unknown connector.
  std::optional<connector_status> status(const std::string& connector);
  /// Kills the running actor of a connector with an error, as an exception escaping one of its
  /// handlers would: its supervisor sees a crash and restarts it after its backoff (in virtual
  /// time). False when the connector has no running actor.
  bool crash(const std::string& connector, const std::string& why = "simulated crash");
  /// Called with every reading the data bus delivers, after `latest` has it.
  void on_reading(std::function<void(const point_reading&)> fn);

  /// Stops every actor and delivers their exits. Idempotent; the destructor calls it.
  void stop();

  struct impl; ///< Internal; public only so the file's helpers can name it.

private:
  std::unique_ptr<impl> impl_;
};

/// The per-connector seed: the run's seed mixed with the connector name.
std::uint64_t connector_seed(std::uint64_t seed, const std::string& connector);

} // namespace manifold::testkit
