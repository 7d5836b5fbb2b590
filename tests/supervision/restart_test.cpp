// A crash in one connector group restarts that group with backoff and leaves the others alone.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "support/processes.hpp"
#include "supervision/crashy_connector.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using test::crashy_type;
using test::hang_release;

// -- fixture ---------------------------------------------------------------------------------------

const char* config_text = R"(connectors:
  - name: faulty
    type: crashy
    poll_interval: 10ms
    restart: {initial_backoff: 300ms, max_backoff: 2s, max_restarts: 3, window: 1m,
              health_interval: 50ms, health_timeout: 300ms}
    devices: [{name: f1}]
  - name: healthy
    type: sim
    poll_interval: 10ms
    devices: [{name: c1, model: counter}]
)";

struct supervision_test : ::testing::Test {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
  connectors::connector_registry registry;
  caf::actor bus;
  std::map<std::string, caf::actor> sups;
  node_config cfg;

  void SetUp() override {
    sys_cfg.set("scheduler.max-threads", std::size_t{4});
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    registry.add(connectors::make_sim_connector());
    registry.add(std::make_unique<crashy_type>("crashy"));
    auto loaded = config::load_string(config_text, "t.yaml", registry.schemas(), registry.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    cfg = *loaded.config;
    bus = spawn_data_bus(*sys, metrics);
    for (auto& c : cfg.connectors) {
      auto ctx = connectors::make_connector_context(c, bus, metrics, nullptr);
      sups[c.name] = supervision::spawn_connector_supervisor(*sys, *registry.find(c.type), ctx);
    }
  }

  void TearDown() override {
    for (auto& [n, s] : sups) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  std::optional<std::int64_t> latest(const std::string& device, const std::string& point) {
    caf::scoped_actor self{*sys};
    std::optional<std::int64_t> out;
    self->request(bus, 2s, get_atom::value, device, point)
      .receive([&](point_reading& r) { out = std::get<std::int64_t>(r.data); },
               [&](caf::error&) {});
    return out;
  }

  connector_status status(const std::string& name) {
    caf::scoped_actor self{*sys};
    connector_status out;
    self->request(sups[name], 2s, status_atom::value)
      .receive([&](connector_status& s) { out = s; }, [&](caf::error&) {});
    return out;
  }

  connector_status lifecycle(const std::string& name, caf::atom_value op) {
    caf::scoped_actor self{*sys};
    connector_status out;
    auto msg = op == caf::atom("stop")    ? caf::make_message(stop_atom::value)
               : op == caf::atom("start") ? caf::make_message(start_atom::value)
                                          : caf::make_message(restart_atom::value);
    self->request(sups[name], 2s, std::move(msg))
      .receive([&](connector_status& s) { out = s; }, [&](caf::error&) {});
    return out;
  }

  void crash_and_wait(int expected_restarts) {
    invoke("faulty", {"f1", "crash", {}});
    ASSERT_TRUE(test::wait_until([&] {
      auto s = status("faulty");
      return s.restarts == static_cast<std::uint64_t>(expected_restarts) ||
             s.state == connector_state::failed;
    }));
  }

  /// The value of the metric series `series` (name and labels), or -1 when it does not exist.
  double metric(const std::string& series) {
    auto text = metrics->serialize();
    auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + series.size() + 2));
  }

  caf::error invoke(const std::string& connector, action_request req) {
    caf::scoped_actor self{*sys};
    caf::error out;
    self->request(sups[connector], 2s, invoke_atom::value, std::move(req))
      .receive([&](value&) {}, [&](caf::error& e) { out = e; });
    return out;
  }
};

TEST_F(supervision_test, crashed_group_restarts_and_the_healthy_one_keeps_running) {
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) > 3; }));
  ASSERT_TRUE(test::wait_until([&] { return latest("c1", "count").value_or(0) > 3; }));
  EXPECT_EQ(status("faulty").state, connector_state::running);

  // The crash reaches the caller as an error, never as a hang.
  auto err = invoke("faulty", {"f1", "crash", {}});
  EXPECT_TRUE(err);
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::restarting; }));
  EXPECT_EQ(status("faulty").restarts, 1u);

  // While it waits out its backoff, it answers "unavailable" (503), not a hang.
  err = invoke("faulty", {"f1", "crash", {}});
  EXPECT_EQ(code_of(err), errc::unavailable) << caf::to_string(err);

  // The healthy connector keeps publishing and answering during the faulty one's restart.
  auto before = latest("c1", "count").value_or(0);
  ASSERT_TRUE(test::wait_until([&] { return latest("c1", "count").value_or(0) > before + 5; }));
  EXPECT_FALSE(invoke("healthy", {"c1", "reset", {}}));
  EXPECT_EQ(status("healthy").restarts, 0u);

  // The faulty group comes back by itself, with a fresh actor (its tick counter restarts).
  ASSERT_TRUE(test::wait_until([&] { return status("faulty").state == connector_state::running; }));
  EXPECT_EQ(status("faulty").restarts, 1u);
  EXPECT_NE(status("faulty").last_error.find("crash on command"), std::string::npos)
    << status("faulty").last_error;
  auto metrics_text = metrics->serialize();
  EXPECT_NE(metrics_text.find("manifold_connector_restarts_total{connector=\"faulty\"} 1"),
            std::string::npos)
    << metrics_text;
  EXPECT_EQ(metric("manifold_connector_state{connector=\"faulty\",state=\"running\"}"), 1);
  EXPECT_EQ(metric("manifold_connector_state{connector=\"faulty\",state=\"restarting\"}"), 0);
  EXPECT_EQ(metric("manifold_connector_state{connector=\"healthy\",state=\"running\"}"), 1);
  // The restart happened during this test: its timestamp is recent, the healthy one has none.
  auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch());
  auto last = metric("manifold_connector_last_restart_timestamp_seconds{connector=\"faulty\"}");
  EXPECT_GT(last, now.count() - 60);
  EXPECT_LE(last, now.count() + 1);
  EXPECT_EQ(metric("manifold_connector_last_restart_timestamp_seconds{connector=\"healthy\"}"),
            -1);
}

TEST_F(supervision_test, a_degraded_connector_shows_in_status_and_metrics_and_recovers) {
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) > 0; }));
  EXPECT_EQ(metric("manifold_connector_state{connector=\"faulty\",state=\"degraded\"}"), 0);
  EXPECT_FALSE(invoke("faulty", {"f1", "degrade", {}}));

  // The health probe (every 50 ms) notices without anyone asking for the status.
  ASSERT_TRUE(test::wait_until([&] {
    return metric("manifold_connector_state{connector=\"faulty\",state=\"degraded\"}") == 1;
  }));
  EXPECT_EQ(metric("manifold_connector_state{connector=\"faulty\",state=\"running\"}"), 0);
  auto s = status("faulty");
  EXPECT_EQ(s.state, connector_state::degraded);
  EXPECT_EQ(s.unreachable_devices, std::vector<std::string>{"f1"});

  // A fresh instance reports every device reachable again.
  EXPECT_EQ(lifecycle("faulty", caf::atom("restart")).state, connector_state::running);
  ASSERT_TRUE(test::wait_until([&] {
    return metric("manifold_connector_state{connector=\"faulty\",state=\"running\"}") == 1;
  }));
  EXPECT_EQ(metric("manifold_connector_state{connector=\"faulty\",state=\"degraded\"}"), 0);
  EXPECT_EQ(status("faulty").state, connector_state::running);
  EXPECT_GT(metric("manifold_connector_last_restart_timestamp_seconds{connector=\"faulty\"}"), 0);
}

TEST_F(supervision_test, a_dying_io_worker_restarts_its_group) {
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) > 0; }));
  EXPECT_FALSE(invoke("faulty", {"f1", "worker_crash", {}}));
  ASSERT_TRUE(test::wait_until([&] { return status("faulty").restarts == 1; }));
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::running; }));
  EXPECT_EQ(status("healthy").restarts, 0u);
}

TEST_F(supervision_test, repeated_crashes_keep_being_restarted) {
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
      test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
    invoke("faulty", {"f1", "crash", {}});
    ASSERT_TRUE(test::wait_until(
      [&] { return status("faulty").restarts == static_cast<std::uint64_t>(i); }));
  }
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
  EXPECT_EQ(status("healthy").state, connector_state::running);
}

TEST_F(supervision_test, too_many_crashes_within_the_window_mark_the_group_failed) {
  // max_restarts is 3: the fourth crash within the minute is one too many.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
      test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
    crash_and_wait(i);
  }
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
  invoke("faulty", {"f1", "crash", {}});
  ASSERT_TRUE(test::wait_until([&] { return status("faulty").state == connector_state::failed; }));
  EXPECT_EQ(status("faulty").restarts, 3u);
  auto err = invoke("faulty", {"f1", "crash", {}});
  EXPECT_EQ(code_of(err), errc::unavailable);
  EXPECT_NE(message_of(err).find("failed"), std::string::npos) << message_of(err);
  EXPECT_EQ(status("healthy").state, connector_state::running);

  // An operator's start brings it back and forgives the crashes.
  EXPECT_EQ(lifecycle("faulty", caf::atom("start")).state, connector_state::running);
  crash_and_wait(4);
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
}

TEST_F(supervision_test, a_hung_connector_is_detected_and_restarted) {
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) > 0; }));
  // The action never answers in time; the probe finds the connector hung and replaces it.
  std::thread caller{[&] { invoke("faulty", {"f1", "hang", {}}); }};
  ASSERT_TRUE(test::wait_until([&] { return status("faulty").restarts == 1; }, 10s));
  EXPECT_NE(status("faulty").last_error.find("health probe unanswered"), std::string::npos)
    << status("faulty").last_error;
  ASSERT_TRUE(
    test::wait_until([&] { return status("faulty").state == connector_state::running; }, 10s));
  // The fresh instance publishes again (its counter restarted from zero).
  auto before = latest("f1", "ticks").value_or(0);
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) != before; }));
  hang_release.set_value();
  caller.join();
}

TEST(supervision_kinds, a_temporary_connector_is_not_restarted_after_a_crash) {
  // Declared before the actor system, whose destructor waits for every actor: the supervisor
  // borrows its connector type until it has ended.
  connectors::connector_registry registry;
  registry.add(std::make_unique<crashy_type>("crashy"));
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto loaded = config::load_string("connectors:\n  - name: once\n    type: crashy\n"
                                    "    restart: {kind: temporary}\n    devices: [{name: f1}]\n",
                                    "t.yaml", registry.schemas(), registry.names());
  ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
  auto bus = spawn_data_bus(sys, nullptr);
  connectors::connector_context ctx;
  ctx.config = std::make_shared<const connector_config>(loaded.config->connectors[0]);
  ctx.bus = bus;
  auto sup = supervision::spawn_connector_supervisor(sys, *registry.find("crashy"), ctx);
  caf::scoped_actor self{sys};
  self->request(sup, 2s, invoke_atom::value, action_request{"f1", "crash", {}})
    .receive([](value&) {}, [](caf::error&) {});
  connector_status st;
  ASSERT_TRUE(test::wait_until([&] {
    self->request(sup, 2s, status_atom::value)
      .receive([&](connector_status& s) { st = s; }, [](caf::error&) {});
    return st.state == connector_state::failed;
  }));
  EXPECT_EQ(st.restarts, 0u);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
}

TEST(supervision_bounds, calls_beyond_max_pending_actions_are_rejected_at_once) {
  // Declared before the actor system, whose destructor waits for every actor: the supervisor
  // borrows its connector type until it has ended.
  auto registry = connectors::connector_registry::builtin();
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto loaded = config::load_string("connectors:\n  - name: s\n    type: sim\n"
                                    "    queue: {max_pending_actions: 2}\n"
                                    "    devices: [{name: sw, model: switch}]\n",
                                    "t.yaml", registry.schemas(), registry.names());
  ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
  auto bus = spawn_data_bus(sys, nullptr);
  auto ctx = connectors::make_connector_context(loaded.config->connectors[0], bus, nullptr,
                                                nullptr, 1);
  auto sup = supervision::spawn_connector_supervisor(sys, *registry.find("sim"), ctx);
  caf::scoped_actor self{sys};
  auto pulse = [&] {
    return action_request{"sw", "pulse", {{"duration_ms", value{std::int64_t{1500}}}}};
  };
  // Two slow calls fill the connector's allowance; the third is turned away, not queued.
  auto first = self->request(sup, 10s, invoke_atom::value, pulse());
  auto second = self->request(sup, 10s, invoke_atom::value, pulse());
  caf::error third;
  self->request(sup, 10s, invoke_atom::value, pulse())
    .receive([](value&) {}, [&](caf::error& e) { third = e; });
  EXPECT_EQ(code_of(third), errc::overloaded) << caf::to_string(third);
  EXPECT_EQ(http_status(code_of(third)), 503);
  int answered = 0;
  first.receive([&](value&) { ++answered; }, [](caf::error&) {});
  second.receive([&](value&) { ++answered; }, [](caf::error&) {});
  EXPECT_EQ(answered, 2);
  // Once they are answered, calls go through again.
  caf::error again;
  self->request(sup, 10s, invoke_atom::value, action_request{"sw", "toggle", {}})
    .receive([](value&) {}, [&](caf::error& e) { again = e; });
  EXPECT_FALSE(again) << caf::to_string(again);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
}

TEST(supervision_isolation, a_crash_looping_neighbour_leaves_the_healthy_rate_within_10_percent) {
  // The registry outlives the actor system: ~actor_system waits for every actor, and a
  // supervisor may still run a queued respawn (a call into its connector type) after the exit
  // sent at the end of the test, since that exit queues behind it.
  auto registry = connectors::connector_registry::builtin();
  registry.add(std::make_unique<crashy_type>("crashy"));
  caf::actor_system_config sys_cfg;
  caf::actor_system sys{sys_cfg};
  auto loaded = config::load_string(
    "connectors:\n"
    "  - {name: healthy, type: sim, poll_interval: 10ms, devices: [{name: c1, model: counter}]}\n"
    "  - name: faulty\n    type: crashy\n    poll_interval: 10ms\n"
    "    restart: {initial_backoff: 1ms, max_backoff: 1ms, max_restarts: 10000, window: 1s}\n"
    "    devices: [{name: f1, labels: {crash: loop}}]\n",
    "t.yaml", registry.schemas(), registry.names());
  ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
  auto& cfg = *loaded.config;
  auto bus = spawn_data_bus(sys, nullptr);
  auto spawn = [&](const connector_config& c) {
    return supervision::spawn_connector_supervisor(
      sys, *registry.find(c.type), connectors::make_connector_context(c, bus, nullptr, nullptr, 1));
  };
  caf::scoped_actor self{sys};
  auto count = [&] {
    std::int64_t out = -1;
    self->request(bus, 2s, get_atom::value, std::string{"c1"}, std::string{"count"})
      .receive([&](point_reading& r) { out = std::get<std::int64_t>(r.data); },
               [](caf::error&) {});
    return out;
  };
  // Polls per second of the healthy counter over a fixed window of wall time.
  auto rate = [&] {
    auto t0 = std::chrono::steady_clock::now();
    auto c0 = count();
    std::this_thread::sleep_for(2s); // The measurement window itself, not a wait for an event.
    auto c1 = count();
    return static_cast<double>(c1 - c0) /
           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto healthy = spawn(cfg.connectors[0]);
  ASSERT_TRUE(test::wait_until([&] { return count() > 10; }));
  auto alone = rate();

  auto faulty = spawn(cfg.connectors[1]);
  auto restarts = [&] {
    connector_status st;
    self->request(faulty, 2s, status_atom::value)
      .receive([&](connector_status& s) { st = s; }, [](caf::error&) {});
    return st.restarts;
  };
  ASSERT_TRUE(test::wait_until([&] { return restarts() > 20; }));
  auto beside = rate();
  auto looped = restarts();

  EXPECT_GT(looped, 100u) << "the neighbour must really be crash-looping during the window";
  EXPECT_GE(beside, 0.9 * alone) << "alone: " << alone << "/s, beside a crash loop: " << beside
                                 << "/s (" << looped << " restarts)";
  caf::anon_send_exit(faulty, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(healthy, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
}

TEST_F(supervision_test, stop_start_and_restart_by_hand) {
  EXPECT_EQ(lifecycle("faulty", caf::atom("stop")).state, connector_state::stopped);
  EXPECT_EQ(code_of(invoke("faulty", {"f1", "crash", {}})), errc::unavailable);
  EXPECT_EQ(status("faulty").state, connector_state::stopped);
  EXPECT_EQ(lifecycle("faulty", caf::atom("start")).state, connector_state::running);
  EXPECT_EQ(lifecycle("faulty", caf::atom("restart")).state, connector_state::running);
  EXPECT_EQ(status("faulty").restarts, 0u); // Restarts by hand are not crashes.
  ASSERT_TRUE(test::wait_until([&] { return latest("f1", "ticks").value_or(0) > 0; }));
}

TEST_F(supervision_test, a_group_placed_elsewhere_refuses_to_start_until_placed_here) {
  caf::scoped_actor self{*sys};
  auto& c = *cfg.connector("healthy");
  auto ctx = connectors::make_connector_context(c, bus, metrics, nullptr);
  auto group = supervision::spawn_connector_supervisor(*sys, *registry.find("sim"), ctx,
                                                       caf::actor{}, false);
  auto ask = [&](auto... xs) {
    std::optional<connector_status> out;
    caf::error err;
    self->request(group, 5s, xs...)
      .receive([&](connector_status& s) { out = std::move(s); }, [&](caf::error& e) { err = e; });
    return std::make_pair(out, err);
  };
  EXPECT_EQ(ask(status_atom::value).first->state, connector_state::stopped);
  auto refused = ask(start_atom::value);
  EXPECT_EQ(code_of(refused.second), errc::conflict);
  EXPECT_NE(message_of(refused.second).find("does not run on this node"), std::string::npos);
  EXPECT_EQ(code_of(ask(restart_atom::value).second), errc::conflict);

  EXPECT_EQ(ask(place_atom::value, true, std::string{}).first->state, connector_state::running);
  EXPECT_EQ(ask(status_atom::value).first->state, connector_state::running);

  auto moved = ask(place_atom::value, false, std::string{"placed on node 'b'"});
  EXPECT_EQ(moved.first->state, connector_state::stopped);
  auto again = ask(start_atom::value);
  EXPECT_NE(message_of(again.second).find("placed on node 'b'"), std::string::npos);
  caf::anon_send_exit(group, caf::exit_reason::user_shutdown);
}

} // namespace
