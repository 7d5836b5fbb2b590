#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "manifold/actors/config.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/model.hpp"
#include "manifold/actors/reading_queue.hpp"

/// The connector SDK: what a connector type implements and what a connector instance receives.
/// See connectors/README.md for a walk-through with the sim connector.
namespace manifold {
class node_metrics;
}

namespace prometheus {
class Counter;
}

namespace manifold::connectors {

class transport_factory;

/// Until when this node may drive the devices of its movable connectors. In a cluster with etcd
/// the node's ownership worker moves it forward each time the node renews its lease, to a point
/// safely before the lease could expire; a connector checks it right before every device call,
/// so a node that was paused or cut off never touches a device that another node may own by now.
class ownership_fence {
public:
  using clock = std::chrono::steady_clock;

  /// A fence that is closed until extended.
  ownership_fence() = default;

  bool open() const { return open_at(clock::now()); }
  bool open_at(clock::time_point t) const {
    return t.time_since_epoch().count() < until_.load(std::memory_order_acquire);
  }
  clock::time_point until() const { return clock::time_point{clock::duration{until_.load()}}; }

  void extend_until(clock::time_point t) {
    until_.store(t.time_since_epoch().count(), std::memory_order_release);
  }
  void close() { until_.store(0, std::memory_order_release); }

private:
  std::atomic<clock::rep> until_{0};
};

/// Everything a connector instance gets: its own config and nothing of any other connector.
struct connector_context {
  std::shared_ptr<const connector_config> config;
  caf::actor bus;                        ///< The node's data bus (publish readings here).
  std::shared_ptr<node_metrics> metrics; ///< May be null in tests.
  std::shared_ptr<transport_factory> transports; ///< Real or simulated device I/O.
  std::uint64_t seed = 0; ///< The node's seed mixed with the connector name.
  log::logger log{"connector"};
  /// `manifold_readings_total{connector=…}`, resolved once so publishing stays cheap.
  prometheus::Counter* readings_counter = nullptr;
  /// The bounded queue to the bus (`config->queue`). Shared by every instance of the connector
  /// across restarts. The supervisor creates it when a hand-made context has none.
  reading_queue_ptr queue;
  /// Where readings get their `source_time`. Empty: the wall clock. The testkit sets a virtual
  /// clock here so a simulated run reads no wall-clock time and replays exactly.
  std::function<timestamp()> clock;
  /// Set only for a movable connector in a cluster with etcd; null: this node always may drive.
  std::shared_ptr<const ownership_fence> fence;

  const std::string& name() const { return config->name; }
  /// Whether the connector may talk to its devices now (see ownership_fence).
  bool may_drive() const { return !fence || fence->open(); }
  /// Why it may not, for logs and errors.
  static constexpr const char* fenced_reason =
    "this node's ownership lease is not renewed; it does not drive the device until it is";
  /// The time to stamp a reading with: `clock()` when set, else the wall clock.
  timestamp now() const { return clock ? clock() : now_timestamp(); }
};

/// A context with everything derived from `config` filled in: the reading queue, the readings
/// counter, a logger named after the type. `metrics` and `transports` may be null.
connector_context make_connector_context(const connector_config& config, caf::actor bus,
                                         std::shared_ptr<node_metrics> metrics,
                                         std::shared_ptr<transport_factory> transports,
                                         std::uint64_t seed = 0);

/// Queues a reading for the data bus and counts it. Never blocks: when the connector's queue is
/// full, a reading is dropped per `queue.overflow` (counted, and logged at most every 10 s).
/// Without a queue in `ctx`, sends the reading straight to the bus (unbounded).
void publish(caf::event_based_actor* self, const connector_context& ctx, point_reading r);

/// Publishes a `stale` reading (keeping no value) for every point of `device`.
void publish_stale(caf::event_based_actor* self, const connector_context& ctx,
                   const device_config& device, const std::string& reason);

/// Turns an exception escaping one of the connector's handlers into a crash the supervisor sees
/// with the exception's message (and a log line), instead of CAF's bare default. Call it first
/// thing in the connector's behaviour function.
void report_crashes(caf::event_based_actor* self, const connector_context& ctx);

/// A kind of connector (`sim`, `mqtt`, `modbus`, …).
///
/// A connector instance is one CAF actor spawned by `spawn`. Its behaviour must answer:
/// - `(invoke_atom, action_request) -> value` (or a `caf::error` made with `make_error`)
/// - `(write_atom, std::string device, std::string point, value) -> value`
/// - `(status_atom) -> connector_status` (`state` running or degraded; the supervisor fills in
///   restarts and the rest)
/// It polls with delayed messages (`self->delayed_send(self, interval, poll_atom::value)`), never
/// sleeps, and runs blocking client libraries in detached actors it spawns and links to itself.
class connector_type {
public:
  virtual ~connector_type() = default;
  virtual std::string name() const = 0;
  virtual config::connector_schema& schema() = 0;
  virtual caf::actor spawn(caf::actor_system& sys, connector_context ctx) = 0;
};

/// The connector types a node knows, by name.
class connector_registry {
public:
  void add(std::unique_ptr<connector_type> type);
  connector_type* find(const std::string& name) const;
  std::vector<std::string> names() const;

  /// A schema lookup for the config loader.
  config::schema_lookup schemas() const;

  /// sim, mqtt and modbus.
  static connector_registry builtin();

private:
  std::vector<std::shared_ptr<connector_type>> types_;
};

std::unique_ptr<connector_type> make_sim_connector();
std::unique_ptr<connector_type> make_mqtt_connector();
std::unique_ptr<connector_type> make_modbus_connector();

/// Renders a parameter map as a JSON object, e.g. for an MQTT command payload.
std::string params_to_json(const std::map<std::string, value>& params);

} // namespace manifold::connectors
