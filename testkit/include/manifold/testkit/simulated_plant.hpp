#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "manifold/connectors/transport.hpp"
#include "manifold/testkit/trace.hpp"

/// Simulated devices behind the connectors' transport interfaces: Modbus servers and MQTT brokers
/// that live in memory, never open a socket and record every side effect with its virtual time.
namespace manifold::testkit {

/// The data of one simulated Modbus unit (one `unit_id` at one server address).
struct modbus_unit {
  std::string device; ///< The device name from the node config, for traces.
  std::map<int, std::uint16_t> holding_registers;
  std::map<int, std::uint16_t> input_registers;
  std::map<int, std::uint8_t> coils;
  std::map<int, std::uint8_t> discrete_inputs;
  /// A write touching one of these addresses (coil or holding register) is answered with the
  /// given Modbus exception code and changes nothing.
  std::map<int, int> reject_writes;
  /// A write touching one of these addresses is answered after the given virtual delay (the
  /// worker blocks meanwhile, as with a slow device); at or beyond the response timeout it is
  /// not answered at all and changes nothing.
  std::map<int, std::chrono::milliseconds> delay_writes;
  bool connected = true;
  /// Faults on the virtual clock: every call takes `delay` of virtual time (at or beyond the
  /// client's response timeout it is not answered: `connection_lost` after that timeout, as
  /// libmodbus reports it); `no_answer` is that for every call; `corrupt` answers every call with
  /// a garbled frame (a failure that is neither an exception nor a lost connection).
  std::chrono::milliseconds delay{0};
  bool no_answer = false;
  bool corrupt = false;
};

/// A write or publish a connector made: what `expect_writes` compares.
struct side_effect {
  std::chrono::milliseconds at{0};
  std::string text; ///< `write pump holding_register 0 [1500]`, `publish TOPIC PAYLOAD`

  bool operator==(const side_effect& o) const { return at == o.at && text == o.text; }
};

/// Every simulated device of one run. It is the `transport_factory` the connectors get.
class simulated_plant : public connectors::transport_factory {
public:
  /// `clock` gives the virtual time since the start of the run; `trace` receives every event.
  simulated_plant(std::function<std::chrono::milliseconds()> clock,
                  std::shared_ptr<event_trace> trace);
  ~simulated_plant() override;

  std::unique_ptr<connectors::mqtt_client>
  make_mqtt(const connectors::mqtt_client_options& opts) override;
  std::unique_ptr<connectors::modbus_client>
  make_modbus(const connectors::modbus_client_options& opts) override;

  // -- modbus -------------------------------------------------------------------------------------

  /// The unit at `endpoint` (`host:port`), created empty (all zero) on first use.
  modbus_unit& modbus(const std::string& endpoint, int unit_id);

  // -- mqtt ---------------------------------------------------------------------------------------

  /// Delivers a publish to every client subscribed at the broker `endpoint`; an empty endpoint
  /// means every broker. `retain` keeps it for later subscribers. Recorded as `inject`.
  void mqtt_inject(const std::string& endpoint, const std::string& topic,
                   const std::string& payload, bool retain);
  /// Takes a broker down (clients see `on_disconnect`) or up again (`on_connect`).
  void mqtt_set_up(const std::string& endpoint, bool up);
  /// How the broker acknowledges QoS 1/2 publishes: after `delay` of virtual time, or never
  /// (nullopt). Default: at once.
  void mqtt_set_ack(const std::string& endpoint, std::optional<std::chrono::milliseconds> delay);
  /// The broker at `endpoint`, created on first use.
  void mqtt_retain(const std::string& endpoint, const std::string& topic,
                   const std::string& payload);

  // -- side effects -------------------------------------------------------------------------------

  const std::vector<side_effect>& side_effects() const;

  // -- virtual time -------------------------------------------------------------------------------

  /// What a simulated call that takes time does with the clock: the simulation moves virtual
  /// time forward by the given span, firing the timers due on the way (their messages are
  /// delivered before the call's answer, as they would be while a real call blocks).
  void set_blocker(std::function<void(std::chrono::milliseconds)> block);
  /// Runs `fn` when virtual time reaches `at` (the simulation's `advance` fires it).
  void schedule(std::chrono::milliseconds at, std::function<void()> fn);
  /// The time of the earliest scheduled call; nullopt if there is none.
  std::optional<std::chrono::milliseconds> next_due() const;
  /// Runs every scheduled call due at or before `now`, in time order. Returns how many ran.
  std::size_t fire_due(std::chrono::milliseconds now);

  struct state;

private:
  std::shared_ptr<state> state_;
};

/// Whether an MQTT topic filter (with `+` and `#`) matches a topic.
bool topic_matches(const std::string& filter, const std::string& topic);

} // namespace manifold::testkit
