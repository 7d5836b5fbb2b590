// Time from a connector crash to its first reading after the supervisor restarted it, over many
// crashes, next to the plain CAF cost measured in the same run: spawning an actor and getting its
// first message to a waiting actor. The ratio is the figure that survives a noisy machine. Also
// the node's resident memory at idle in the edge profile (connectors and bus, no gateway).
//
// Usage: restart_latency [CRASHES] [EDGE_CONFIG]   (defaults: 200, examples/edge.yaml)

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/supervision/connector_supervisor.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           clock_type::now().time_since_epoch())
    .count();
}

/// Spins (yielding) until `done` holds or 5 s pass; false on timeout.
template <class Predicate>
bool wait_for(Predicate done) {
  auto until = clock_type::now() + 5s;
  while (!done()) {
    if (clock_type::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

std::size_t vm_rss_kib() {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6));
  return 0;
}

struct stats {
  double median_us = 0;
  double p99_us = 0;
  double max_us = 0;
};

stats summarize(std::vector<std::int64_t> ns) {
  stats s;
  if (ns.empty()) return s;
  std::sort(ns.begin(), ns.end());
  auto at = [&](double q) {
    auto i = static_cast<std::size_t>(q * static_cast<double>(ns.size() - 1) + 0.5);
    return static_cast<double>(ns[i]) / 1000.0;
  };
  s.median_us = at(0.5);
  s.p99_us = at(0.99);
  s.max_us = static_cast<double>(ns.back()) / 1000.0;
  return s;
}

// -- reference: plain CAF spawn + first message ---------------------------------------------------

/// Like the supervisor does it: an actor spawns a child, whose first act is a message to a third
/// actor; timed from just before the spawn, in the spawning actor, to the message's arrival.
std::vector<std::int64_t> spawn_first_message(caf::actor_system& sys, std::size_t n) {
  auto received = std::make_shared<std::atomic<std::size_t>>(0);
  auto spawned_at = std::make_shared<std::atomic<std::int64_t>>(0);
  auto arrived_at = std::make_shared<std::atomic<std::int64_t>>(0);
  auto waiter = sys.spawn([=]() -> caf::behavior {
    return {[=](std::int32_t) {
      arrived_at->store(now_ns());
      ++*received;
    }};
  });
  auto parent = sys.spawn([=](caf::event_based_actor* self) -> caf::behavior {
    return {[=](std::int32_t) {
      spawned_at->store(now_ns());
      self->spawn([waiter](caf::event_based_actor* child) -> caf::behavior {
        child->send(waiter, std::int32_t{1});
        return {}; // Done: an empty behaviour ends the actor.
      });
    }};
  });
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < n; ++i) {
    caf::anon_send(parent, std::int32_t{1});
    if (!wait_for([&] { return *received == i + 1; })) {
      std::fprintf(stderr, "reference: no message after spawn %zu\n", i);
      break;
    }
    out.push_back(*arrived_at - *spawned_at);
  }
  caf::anon_send_exit(parent, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(waiter, caf::exit_reason::user_shutdown);
  return out;
}

// -- a connector that publishes on start and crashes on command -----------------------------------

std::atomic<std::int64_t> instances{0};  ///< Bumped by every spawn of the connector.
std::atomic<std::int64_t> crashed_at{0}; ///< When the handler threw.

/// No keys of its own.
class crashy_schema : public config::connector_schema {};

struct crashy_state {
  connectors::connector_context ctx;
};

caf::behavior crashy(caf::stateful_actor<crashy_state>* self, connectors::connector_context ctx) {
  self->state.ctx = std::move(ctx);
  connectors::report_crashes(self, self->state.ctx);
  // The first reading of this instance carries its number, so the sink can tell it apart.
  connectors::publish(self, self->state.ctx,
                      point_reading{self->state.ctx.name(), "b1", "instance",
                                    value{++instances}, quality::good, {}, now_timestamp()});
  return {
    [=](invoke_atom, action_request&) -> value {
      crashed_at = now_ns();
      throw std::runtime_error("crash on command");
    },
    [=](status_atom) { return connector_status{}; },
  };
}

/// `crashy`: its schema and behaviour, one actor per instance.
using crashy_type = connectors::basic_connector_type<crashy_schema, &crashy>;

/// Records when each instance's first reading reached the bus's subscribers.
class arrival_sink : public reading_sink {
public:
  std::atomic<std::int64_t> instance{0};
  std::atomic<std::int64_t> at{0};

  void deliver(const point_reading& r) override {
    if (r.device != "b1") return;
    at = now_ns();
    instance = std::get<std::int64_t>(r.data);
  }
};

std::vector<std::int64_t> crash_to_first_reading(caf::actor_system& sys, std::size_t n,
                                                 std::chrono::milliseconds backoff) {
  auto metrics = std::make_shared<node_metrics>();
  auto bus = spawn_data_bus(sys, metrics);
  auto sink = std::make_shared<arrival_sink>();
  caf::anon_send(bus, subscribe_atom::value, reading_sink_ptr{sink}, reading_filter{});
  connector_config cc;
  cc.name = "crashy";
  cc.type = "crashy";
  device_config dev;
  dev.name = "b1";
  cc.devices.push_back(dev);
  cc.restart.initial_backoff = backoff;
  cc.restart.max_backoff = backoff; // No doubling: every restart waits the same.
  cc.restart.max_restarts = static_cast<std::uint32_t>(n + 10);
  cc.restart.window = 1h;
  crashy_type type{"crashy"};
  instances = 0;
  auto sup = supervision::spawn_connector_supervisor(
    sys, type, connectors::make_connector_context(cc, bus, metrics, nullptr));

  std::vector<std::int64_t> out;
  if (!wait_for([&] { return sink->instance == 1; })) {
    std::fprintf(stderr, "restart: the connector never published\n");
    return out;
  }
  for (std::size_t i = 0; i < n; ++i) {
    auto next = static_cast<std::int64_t>(i) + 2;
    caf::anon_send(sup, invoke_atom::value, action_request{"b1", "crash", {}});
    if (!wait_for([&] { return sink->instance == next; })) {
      std::fprintf(stderr, "restart: no reading after crash %zu\n", i);
      break;
    }
    out.push_back(sink->at - crashed_at);
  }
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
  return out;
}

// -- edge profile at idle -------------------------------------------------------------------------

/// Starts the profile's connectors and the bus (no gateway), waits for a reading of every device,
/// lets it run `settle`, and returns VmRSS in KiB; 0 on failure.
std::size_t edge_idle_rss(const std::string& path, std::chrono::seconds settle) {
  auto registry = connectors::connector_registry::builtin();
  auto loaded = config::load_file(path, registry.schemas(), registry.names());
  if (!loaded.config) {
    std::fprintf(stderr, "%s", loaded.diag.to_string().c_str());
    return 0;
  }
  auto& cfg = *loaded.config;
  caf::actor_system_config sys_cfg;
  if (cfg.worker_threads > 0)
    sys_cfg.set("scheduler.max-threads", static_cast<std::size_t>(cfg.worker_threads));
  caf::actor_system sys{sys_cfg};
  auto metrics = std::make_shared<node_metrics>();
  auto bus = spawn_data_bus(sys, metrics);
  std::vector<caf::actor> sups;
  for (auto& c : cfg.connectors)
    sups.push_back(supervision::spawn_connector_supervisor(
      sys, *registry.find(c.type),
      connectors::make_connector_context(c, bus, metrics, nullptr, 1)));

  caf::scoped_actor self{sys};
  auto all_published = [&] {
    for (auto& c : cfg.connectors)
      for (auto& d : c.devices) {
        bool any = false;
        self->request(bus, 1s, get_atom::value, d.name)
          .receive([&](std::vector<point_reading>& rs) { any = !rs.empty(); },
                   [](caf::error&) {});
        if (!any) return false;
      }
    return true;
  };
  auto until = clock_type::now() + 10s;
  while (!all_published() && clock_type::now() < until) std::this_thread::sleep_for(10ms);
  std::this_thread::sleep_for(settle);
  auto rss = vm_rss_kib();
  for (auto& s : sups) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
  return rss;
}

} // namespace

int main(int argc, char** argv) {
  std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200;
  std::string edge = argc > 2 ? argv[2] : "examples/edge.yaml";
  log::set_level(log::level::off);

  // First, while the process holds nothing else: memory of an idle edge node.
  auto rss_start = vm_rss_kib();
  auto rss_edge = edge_idle_rss(edge, 3s);
  std::printf("edge profile (%s) at idle, bus + connectors, no gateway:\n", edge.c_str());
  std::printf("  VmRSS before start %zu KiB, idle after 3 s %zu KiB (+%zu KiB)\n\n", rss_start,
              rss_edge, rss_edge > rss_start ? rss_edge - rss_start : 0);

  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto ref = summarize(spawn_first_message(sys, n));
  auto r0 = summarize(crash_to_first_reading(sys, n, 0ms));
  auto r1 = summarize(crash_to_first_reading(sys, n, 1ms));

  std::printf("%zu samples each (microseconds)     %10s %10s %10s %14s\n", n, "median", "p99",
              "max", "median ratio");
  std::printf("%-36s %10.1f %10.1f %10.1f %14s\n", "CAF spawn + first message (ref)",
              ref.median_us, ref.p99_us, ref.max_us, "1.0");
  std::printf("%-36s %10.1f %10.1f %10.1f %14.1f\n", "crash -> first reading, backoff 0",
              r0.median_us, r0.p99_us, r0.max_us, r0.median_us / ref.median_us);
  std::printf("%-36s %10.1f %10.1f %10.1f %14.1f\n", "crash -> first reading, backoff 1ms",
              r1.median_us, r1.p99_us, r1.max_us, r1.median_us / ref.median_us);
  return 0;
}
