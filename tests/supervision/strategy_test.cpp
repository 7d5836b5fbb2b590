// The node's root supervisor: a group that gives up escalates, and the root's strategy decides
// which groups restart (one_for_one, one_for_all, rest_for_one), within its own intensity.

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "manifold/supervision/node_supervisor.hpp"
#include "support/processes.hpp"
#include "supervision/crashy_connector.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;

/// Three crashy groups a, b, c in that order; each gives up at its first crash (max_restarts 0)
/// so that every crash escalates to the root.
std::string config_for(const std::string& strategy, int root_max_restarts) {
  std::string text = "node:\n  supervision: {strategy: " + strategy +
                     ", max_restarts: " + std::to_string(root_max_restarts) +
                     ", backoff: 10ms}\nconnectors:\n";
  for (auto name : {"a", "b", "c"})
    text += std::string{"  - name: "} + name +
            "\n    type: crashy\n    poll_interval: 10ms\n    restart: {max_restarts: 0}\n"
            "    devices: [{name: " + name + "1}]\n";
  return text;
}

struct root_fixture {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  connectors::connector_registry registry;
  caf::actor bus;
  caf::actor root;
  std::map<std::string, caf::actor> groups;

  explicit root_fixture(const std::string& text) {
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    registry.add(std::make_unique<test::crashy_type>("crashy"));
    auto loaded = config::load_string(text, "t.yaml", registry.schemas(), registry.names());
    EXPECT_TRUE(loaded.config) << loaded.diag.to_string();
    bus = spawn_data_bus(*sys, nullptr);
    root = supervision::spawn_node_supervisor(*sys, loaded.config->supervision);
    supervision::group_list list;
    for (auto& c : loaded.config->connectors) {
      connectors::connector_context ctx;
      ctx.config = std::make_shared<const connector_config>(c);
      ctx.bus = bus;
      auto g = supervision::spawn_connector_supervisor(*sys, *registry.find(c.type), ctx, root);
      groups[c.name] = g;
      list.emplace_back(c.name, g);
    }
    caf::anon_send(root, groups_atom::value, std::move(list));
  }

  ~root_fixture() {
    caf::anon_send_exit(root, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  std::int64_t ticks(const std::string& group) {
    caf::scoped_actor self{*sys};
    std::int64_t out = 0;
    self->request(bus, 2s, get_atom::value, group + "1", std::string{"ticks"})
      .receive([&](point_reading& r) { out = std::get<std::int64_t>(r.data); },
               [&](caf::error&) {});
    return out;
  }

  connector_state state(const std::string& group) {
    caf::scoped_actor self{*sys};
    connector_state out = connector_state::starting;
    self->request(groups[group], 2s, status_atom::value)
      .receive([&](connector_status& s) { out = s.state; }, [&](caf::error&) {});
    return out;
  }

  std::string root_status() {
    caf::scoped_actor self{*sys};
    std::string out;
    self->request(root, 2s, status_atom::value)
      .receive([&](std::string& s) { out = s; }, [&](caf::error&) {});
    return out;
  }

  /// Asks `group` to crash; returns the error its caller saw.
  caf::error crash(const std::string& group) {
    caf::scoped_actor self{*sys};
    caf::error out;
    self->request(groups[group], 2s, invoke_atom::value, action_request{group + "1", "crash", {}})
      .receive([](value&) {}, [&](caf::error& e) { out = e; });
    return out;
  }

  /// Every group publishing; returns their tick counts.
  std::map<std::string, std::int64_t> warm_up() {
    std::map<std::string, std::int64_t> out;
    for (auto g : {"a", "b", "c"}) {
      EXPECT_TRUE(test::wait_until([&] { return ticks(g) > 20; }));
      out[g] = ticks(g);
    }
    return out;
  }

  /// A group was restarted if its counter went back below where it was.
  bool restarted_since(const std::string& g, std::int64_t before) { return ticks(g) < before; }
};

TEST(root_supervision, one_for_one_restarts_only_the_failed_group) {
  root_fixture f{config_for("one_for_one", 3)};
  auto before = f.warm_up();
  f.crash("b");
  ASSERT_TRUE(test::wait_until([&] { return f.restarted_since("b", before["b"]); }));
  ASSERT_TRUE(test::wait_until([&] { return f.state("b") == connector_state::running; }));
  EXPECT_FALSE(f.restarted_since("a", before["a"]));
  EXPECT_FALSE(f.restarted_since("c", before["c"]));
}

TEST(root_supervision, rest_for_one_restarts_the_failed_group_and_those_after_it) {
  root_fixture f{config_for("rest_for_one", 3)};
  auto before = f.warm_up();
  f.crash("b");
  ASSERT_TRUE(test::wait_until([&] {
    return f.restarted_since("b", before["b"]) && f.restarted_since("c", before["c"]);
  }));
  EXPECT_FALSE(f.restarted_since("a", before["a"]));
}

TEST(root_supervision, one_for_all_restarts_every_group) {
  root_fixture f{config_for("one_for_all", 3)};
  auto before = f.warm_up();
  f.crash("a");
  ASSERT_TRUE(test::wait_until([&] {
    return f.restarted_since("a", before["a"]) && f.restarted_since("b", before["b"]) &&
           f.restarted_since("c", before["c"]);
  }));
}

TEST(root_supervision, past_its_own_intensity_the_root_gives_up) {
  root_fixture f{config_for("one_for_one", 1)};
  auto before = f.warm_up();
  f.crash("b");
  // A fresh instance (its counter starts again) that runs: the root restarted the group.
  ASSERT_TRUE(test::wait_until([&] {
    return f.restarted_since("b", before["b"]) && f.state("b") == connector_state::running;
  }));
  EXPECT_EQ(f.root_status(), "running");
  f.crash("b");
  ASSERT_TRUE(test::wait_until([&] { return f.root_status() == "gave_up"; }));
  EXPECT_EQ(f.state("b"), connector_state::failed);
  EXPECT_EQ(f.state("a"), connector_state::running);
}

TEST(root_supervision, strategy_is_checked_in_the_config) {
  connectors::connector_registry registry;
  registry.add(std::make_unique<test::crashy_type>("crashy"));
  auto r = config::load_string("node: {supervision: {strategy: all_for_one}}\nconnectors: []\n",
                               "t.yaml", registry.schemas(), registry.names());
  ASSERT_FALSE(r.config);
  EXPECT_NE(r.diag.to_string().find(
              "'strategy' must be one of one_for_one, one_for_all, rest_for_one"),
            std::string::npos)
    << r.diag.to_string();
}

} // namespace
