// How fast the testkit runs simulated time: N simulated Modbus devices polled every second by
// the real modbus connector for H simulated hours, as a speed-up over wall time and as messages
// per second, next to the rate of a plain actor re-arming a timer on the same test scheduler,
// measured in the same run. The ratio is the figure that survives a noisy machine.
//
// Usage: sim_speed [DEVICES=100] [HOURS=24]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "manifold/actors/config.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/testkit/simulation.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// One modbus connector serving `devices` units, two points each (a register and a coil).
std::string plant_config(int devices) {
  std::string y = "connectors:\n  - name: plant\n    type: modbus\n    port: 502\n"
                  "    poll_interval: 1s\n    devices:\n";
  for (int i = 1; i <= devices; ++i)
    y += "      - name: dev-" + std::to_string(i) + "\n        unit_id: " + std::to_string(i) +
         "\n        points:\n"
         "          - {name: level, type: double, table: holding_register, address: 0, "
         "scale: 0.1}\n"
         "          - {name: on, type: bool, table: coil, address: 0}\n";
  return y;
}

/// The reference: one actor re-arming a 1 s timer on the test scheduler, one timer per
/// simulated second per device, i.e. the same number of timers the connector's polls need.
double plain_timer_rate(long timers) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  caf::actor_system sys{cfg};
  auto& coord = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  auto ticker = sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    self->delayed_send(self, 1s, tick_atom::value);
    return {[=](tick_atom) { self->delayed_send(self, 1s, tick_atom::value); }};
  });
  auto t0 = clock_type::now();
  coord.run();
  for (long i = 0; i < timers; ++i) {
    coord.trigger_timeout();
    coord.run();
  }
  auto wall = seconds_since(t0);
  caf::anon_send_exit(ticker, caf::exit_reason::user_shutdown);
  coord.run();
  return static_cast<double>(timers) / wall;
}

} // namespace

int main(int argc, char** argv) {
  int devices = argc > 1 ? std::atoi(argv[1]) : 100;
  int hours = argc > 2 ? std::atoi(argv[2]) : 24;
  if (devices < 1 || devices > 247 || hours < 1 || hours > 24 * 30) {
    std::fprintf(stderr, "usage: sim_speed [DEVICES 1..247] [HOURS 1..720]\n");
    return 2;
  }
  manifold::log::set_level(manifold::log::level::error);
  auto registry = manifold::connectors::connector_registry::builtin();
  auto loaded = manifold::config::load_string(plant_config(devices), "<bench>", registry.schemas(),
                                              registry.names());
  if (!loaded.config) {
    std::fprintf(stderr, "%s", loaded.diag.to_string().c_str());
    return 1;
  }

  manifold::testkit::simulation_options opts;
  opts.seed = 1;
  opts.keep_events = false; // the hash still covers every reading
  manifold::testkit::simulation sim{*loaded.config, opts};
  for (int i = 1; i <= devices; ++i)
    sim.modbus_unit_of("dev-" + std::to_string(i))->holding_registers[0] =
        static_cast<std::uint16_t>(i);
  auto t0 = clock_type::now();
  sim.start();
  sim.advance(std::chrono::hours{hours});
  auto wall = seconds_since(t0);
  auto simulated = std::chrono::duration<double>(sim.elapsed()).count();
  auto timers = static_cast<long>(simulated) * devices;

  auto reference = plain_timer_rate(timers);
  auto events_per_s = static_cast<double>(sim.events()) / wall;
  auto polls_per_s = static_cast<double>(timers) / wall; // device polls per wall second
  std::printf("simulated: %d modbus devices, 1 s poll, %d h (%.0f s) in %.2f s wall\n", devices,
              hours, simulated, wall);
  std::printf("speed-up: %.0fx wall time\n", simulated / wall);
  std::printf("messages: %llu (%.0f/s), trace events %zu, trace hash %s\n",
              static_cast<unsigned long long>(sim.events()), events_per_s, sim.trace().size(),
              sim.trace().hash_hex().c_str());
  // The reference handles one message per timer: compare messages with messages, and device
  // polls (each a timed unit of connector work) with bare timers.
  std::printf("plain test_coordinator timer actor: %.0f messages/s\n", reference);
  std::printf("ratio messages/s: %.3f; device polls: %.0f/s, ratio polls/timers: %.3f\n",
              events_per_s / reference, polls_per_s, polls_per_s / reference);
  return 0;
}
