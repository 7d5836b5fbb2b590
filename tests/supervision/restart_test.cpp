// A crash in one connector group restarts that group with backoff and leaves the others alone.

#include <gtest/gtest.h>

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

namespace {

using namespace manifold;
using namespace std::chrono_literals;

// -- a connector that crashes on command -----------------------------------------------------------

class crashy_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader&, connector_config&) override {}
  void parse_device(config::map_reader&, const connector_config&, device_config& d) override {
    point_config p;
    p.name = "ticks";
    p.type = value_type::int64;
    d.points.push_back(p);
    action_config a;
    a.name = "crash";
    d.actions.push_back(a);
  }
  void parse_point(config::map_reader&, const connector_config&, const device_config&,
                   point_config&) override {}
  void parse_action(config::map_reader&, const connector_config&, const device_config&,
                    action_config&) override {}
  void check(const connector_config&, config::diagnostics&) override {}
};

struct crashy_state {
  connectors::connector_context ctx;
  std::int64_t ticks = 0;
};

caf::behavior crashy(caf::stateful_actor<crashy_state>* self, connectors::connector_context ctx) {
  self->state.ctx = std::move(ctx);
  connectors::report_crashes(self, self->state.ctx);
  self->send(self, poll_atom::value);
  return {
    [=](poll_atom) {
      auto& st = self->state;
      for (auto& d : st.ctx.config->devices)
        connectors::publish(self, st.ctx,
                            point_reading{st.ctx.name(), d.name, "ticks", value{++st.ticks},
                                          quality::good, {}, now_timestamp()});
      self->delayed_send(self, st.ctx.config->poll_interval, poll_atom::value);
    },
    [=](invoke_atom, action_request&) -> value {
      throw std::runtime_error("crash on command");
    },
    [=](status_atom) { return connector_status{}; },
  };
}

class crashy_type : public connectors::connector_type {
public:
  std::string name() const override { return "crashy"; }
  config::connector_schema& schema() override { return schema_; }
  caf::actor spawn(caf::actor_system& sys, connectors::connector_context ctx) override {
    return sys.spawn(crashy, std::move(ctx));
  }

private:
  crashy_schema schema_;
};

// -- fixture ---------------------------------------------------------------------------------------

const char* config_text = R"(connectors:
  - name: faulty
    type: crashy
    poll_interval: 10ms
    restart: {initial_backoff: 300ms, max_backoff: 2s}
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
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    registry.add(connectors::make_sim_connector());
    registry.add(std::make_unique<crashy_type>());
    auto loaded = config::load_string(config_text, "t.yaml", registry.schemas(), registry.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    cfg = *loaded.config;
    bus = spawn_data_bus(*sys, metrics);
    for (auto& c : cfg.connectors) {
      connectors::connector_context ctx;
      ctx.config = std::make_shared<const connector_config>(c);
      ctx.bus = bus;
      ctx.metrics = metrics;
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

} // namespace
