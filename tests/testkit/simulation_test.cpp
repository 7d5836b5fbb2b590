// The testkit's simulation: the real connectors on CAF's test scheduler against simulated
// devices, in virtual time.

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include "manifold/actors/config.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/testkit/simulation.hpp"

namespace {

using namespace std::chrono_literals;
using namespace manifold;
using manifold::testkit::simulation;
using manifold::testkit::simulation_options;

node_config load(const std::string& text) {
  auto registry = connectors::connector_registry::builtin();
  auto r = config::load_string(text, "<test>", registry.schemas(), registry.names());
  if (!r.config) throw std::runtime_error(r.diag.to_string());
  return *r.config;
}

node_config load_example(const std::string& name) {
  auto registry = connectors::connector_registry::builtin();
  auto r = config::load_file(std::string{MANIFOLD_SOURCE_DIR} + "/examples/" + name,
                             registry.schemas(), registry.names());
  if (!r.config) throw std::runtime_error(r.diag.to_string());
  return *r.config;
}

const char* thermostats = R"(
connectors:
  - name: lab
    type: sim
    poll_interval: 1s
    devices:
      - {name: t1, model: thermostat, initial: 20, noise: 0.5}
      - {name: t2, model: thermostat, initial: 25, noise: 0.5}
      - {name: c1, model: counter}
)";

std::string run_thermostats(std::uint64_t seed) {
  simulation_options opts;
  opts.seed = seed;
  simulation sim{load(thermostats), opts};
  sim.start();
  sim.advance(60s);
  auto call = sim.invoke({"t1", "set_setpoint", {{"value", 30.0}}});
  sim.advance(60s);
  EXPECT_TRUE(call->done);
  return sim.trace().hash_hex();
}

TEST(simulation, same_seed_gives_same_trace_hash) {
  auto a = run_thermostats(42);
  auto b = run_thermostats(42);
  auto c = run_thermostats(43);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c) << "the seed must reach the sim connector's noise";
}

TEST(simulation, sim_counter_counts_in_virtual_time_with_virtual_timestamps) {
  simulation sim{load(thermostats)};
  sim.start();
  sim.advance(10s);
  auto r = sim.latest("c1", "count");
  ASSERT_TRUE(r);
  EXPECT_EQ(std::get<std::int64_t>(r->data), 10); // one step per 1 s poll
  EXPECT_EQ(sim.elapsed(), 10s);
  EXPECT_EQ(r->source_time, testkit::virtual_epoch + 10'000'000'000LL);
}

TEST(simulation, modbus_poll_decodes_simulated_registers) {
  simulation sim{load_example("modbus.yaml")};
  auto* pump = sim.modbus_unit_of("pump");
  ASSERT_NE(pump, nullptr);
  pump->holding_registers[0] = 1200; // speed, scale 0.1
  pump->coils[0] = 1;
  sim.start();
  sim.advance(1s);
  auto speed = sim.latest("pump", "speed");
  ASSERT_TRUE(speed) << "the modbus worker must run on the test scheduler, not a thread";
  EXPECT_DOUBLE_EQ(std::get<double>(speed->data), 120.0);
  EXPECT_EQ(speed->q, quality::good);
  EXPECT_TRUE(std::get<bool>(sim.latest("pump", "running")->data));
  // The node's metrics are wired as in a node: readings are counted per connector.
  EXPECT_NE(sim.metrics().serialize().find("manifold_readings_total{connector=\"plant-modbus\"}"),
            std::string::npos)
      << sim.metrics().serialize();
}

TEST(simulation, modbus_action_writes_register_and_records_it) {
  simulation sim{load_example("modbus.yaml")};
  sim.start();
  sim.advance(2s);
  auto call = sim.invoke({"pump", "set_speed", {{"value", 150.0}}});
  ASSERT_TRUE(call->done);
  ASSERT_TRUE(call->result) << call->message;
  EXPECT_DOUBLE_EQ(std::get<double>(*call->result), 150.0);
  ASSERT_EQ(sim.plant().side_effects().size(), 1u);
  EXPECT_EQ(sim.plant().side_effects()[0].text, "write pump holding_register 0 [1500]");
  EXPECT_EQ(sim.plant().side_effects()[0].at, 2s);
  EXPECT_EQ(sim.modbus_unit_of("pump")->holding_registers[0], 1500);
}

TEST(simulation, modbus_rejected_write_is_a_device_error_without_side_effect) {
  simulation sim{load_example("modbus.yaml")};
  sim.modbus_unit_of("pump")->reject_writes[0] = 3;
  sim.start();
  auto call = sim.invoke({"pump", "set_speed", {{"value", 150.0}}});
  ASSERT_TRUE(call->done);
  EXPECT_EQ(call->code, errc::device_error);
  EXPECT_NE(call->message.find("Modbus exception 3"), std::string::npos) << call->message;
  EXPECT_TRUE(sim.plant().side_effects().empty());
}

TEST(simulation, modbus_disconnect_goes_stale_and_reconnect_good) {
  simulation sim{load_example("modbus.yaml")};
  sim.modbus_unit_of("pump")->holding_registers[0] = 1200;
  sim.start();
  sim.advance(2s);
  sim.modbus_unit_of("pump")->connected = false;
  sim.advance(1s);
  auto speed = sim.latest("pump", "speed");
  EXPECT_EQ(speed->q, quality::stale);
  EXPECT_DOUBLE_EQ(std::get<double>(speed->data), 120.0) << "stale keeps the last value";
  sim.modbus_unit_of("pump")->connected = true;
  sim.advance(1s);
  EXPECT_EQ(sim.latest("pump", "speed")->q, quality::good);
}

TEST(simulation, mqtt_broker_delivers_records_publishes_and_goes_down) {
  simulation sim{load_example("mqtt.yaml")};
  auto ep = sim.endpoint_of("boiler-1");
  EXPECT_EQ(ep, "127.0.0.1:1883");
  sim.plant().mqtt_retain(ep, "plant/boiler-1/temperature", "64.5");
  sim.start();
  EXPECT_DOUBLE_EQ(std::get<double>(sim.latest("boiler-1", "temperature")->data), 64.5);
  sim.plant().mqtt_inject(ep, "plant/boiler-1/status", R"({"pressure":{"bar":1.8},"mode":"eco"})",
                          false);
  sim.run();
  EXPECT_EQ(std::get<std::string>(sim.latest("boiler-1", "mode")->data), "eco");

  auto call = sim.invoke({"boiler-1", "set_mode", {{"mode", std::string{"comfort"}}}});
  ASSERT_TRUE(call->done);
  EXPECT_TRUE(call->result) << call->message;
  ASSERT_EQ(sim.plant().side_effects().size(), 1u);
  EXPECT_EQ(sim.plant().side_effects()[0].text,
            R"(publish plant/boiler-1/cmd {"mode":"comfort"} qos=1)");

  sim.plant().mqtt_set_up(ep, false);
  sim.run();
  EXPECT_EQ(sim.latest("boiler-1", "temperature")->q, quality::stale);
  auto down = sim.invoke({"boiler-1", "set_mode", {{"mode", std::string{"eco"}}}});
  EXPECT_EQ(down->code, errc::unavailable);
  sim.plant().mqtt_set_up(ep, true);
  sim.run();
  // Subscribed again on reconnect: the retained value comes back as good.
  EXPECT_EQ(sim.latest("boiler-1", "temperature")->q, quality::good);
}

/// A connector type that crashes on its first message; it counts how often it was started.
class crashing_type : public connectors::connector_type {
public:
  explicit crashing_type(std::shared_ptr<int> spawns) : spawns_(std::move(spawns)) {}
  std::string name() const override { return "crashing"; }
  config::connector_schema& schema() override { return schema_; }
  caf::actor spawn(caf::actor_system& sys, connectors::connector_context ctx) override {
    ++*spawns_;
    return sys.spawn([ctx](caf::event_based_actor* self) -> caf::behavior {
      connectors::report_crashes(self, ctx);
      self->send(self, poll_atom::value);
      return {[](poll_atom) { throw std::runtime_error("boom"); },
              [](status_atom) { return connector_status{}; }};
    });
  }

private:
  config::connector_schema schema_; // No keys of its own.
  std::shared_ptr<int> spawns_;
};

TEST(simulation, supervisor_restarts_count_in_virtual_time) {
  auto spawns = std::make_shared<int>(0);
  connectors::connector_registry registry;
  registry.add(std::make_unique<crashing_type>(spawns));
  auto r = config::load_string(R"(
connectors:
  - name: flaky
    type: crashing
    restart: {initial_backoff: 2s, max_backoff: 2s, max_restarts: 1, window: 1s}
    devices: []
)",
                               "<test>", registry.schemas(), registry.names());
  ASSERT_TRUE(r.config) << r.diag.to_string();
  simulation sim{*r.config, {}, std::move(registry)};
  sim.start();
  EXPECT_EQ(*spawns, 1);
  sim.advance(1500ms); // the backoff is 2 s less up to 20% jitter: 1.6-2 s
  EXPECT_EQ(*spawns, 1);
  sim.advance(500ms);
  EXPECT_EQ(*spawns, 2);
  // Crashes 1.6-2 virtual seconds apart never fall within the 1 s window, so the group keeps
  // restarting; measured in wall time they would, and it would have failed at the second crash.
  sim.advance(60s);
  EXPECT_GE(*spawns, 30);
}

TEST(simulation, topic_filters_match_like_a_broker) {
  EXPECT_TRUE(testkit::topic_matches("a/b", "a/b"));
  EXPECT_TRUE(testkit::topic_matches("a/+", "a/b"));
  EXPECT_TRUE(testkit::topic_matches("a/#", "a/b/c"));
  EXPECT_FALSE(testkit::topic_matches("a/+", "a/b/c"));
  EXPECT_FALSE(testkit::topic_matches("a/b", "a/c"));
  EXPECT_FALSE(testkit::topic_matches("a", "a/b"));
}

TEST(simulation, crash_is_restarted_by_the_supervisor_in_virtual_time) {
  simulation sim{load(thermostats)};
  sim.start();
  sim.advance(2s);
  EXPECT_FALSE(sim.crash("nobody"));
  ASSERT_TRUE(sim.crash("lab"));
  EXPECT_FALSE(sim.crash("lab")) << "no running actor until the supervisor restarts it";
  auto st = sim.status("lab");
  ASSERT_TRUE(st);
  EXPECT_EQ(st->state, connector_state::restarting);
  EXPECT_EQ(st->restarts, 1u);
  sim.advance(1s);
  EXPECT_EQ(sim.status("lab")->state, connector_state::running);
  EXPECT_FALSE(sim.status("nobody"));
  auto count = sim.latest("c1", "count");
  ASSERT_TRUE(count);
  EXPECT_EQ(count->q, quality::good);
  // The restarted connector read its devices again after its backoff (about 100 ms).
  EXPECT_GT(count->source_time, testkit::virtual_epoch + 2'000'000'000LL);
  EXPECT_LT(count->source_time, testkit::virtual_epoch + 2'500'000'000LL);
}

TEST(simulation, plant_timers_fire_in_time_order_with_the_actors) {
  simulation sim{load(thermostats)};
  sim.start();
  std::vector<std::pair<std::string, std::chrono::milliseconds>> fired;
  sim.plant().schedule(1500ms, [&] { fired.emplace_back("b", sim.elapsed()); });
  sim.plant().schedule(500ms, [&] { fired.emplace_back("a", sim.elapsed()); });
  sim.plant().schedule(5s, [&] { fired.emplace_back("c", sim.elapsed()); });
  sim.advance(2s);
  ASSERT_EQ(fired.size(), 2u);
  EXPECT_EQ(fired[0], std::make_pair(std::string{"a"}, std::chrono::milliseconds{500}));
  EXPECT_EQ(fired[1], std::make_pair(std::string{"b"}, std::chrono::milliseconds{1500}));
  EXPECT_EQ(sim.plant().next_due(), std::chrono::milliseconds{5s});
}

} // namespace
