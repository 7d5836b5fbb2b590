// The ownership agent against the in-memory lease store, stepped by hand in virtual time; and
// the in-memory store's own contract.

#include <gtest/gtest.h>

#include "supervision/placements.hpp"

#include <memory>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/supervision/memory_lease_store.hpp"
#include "manifold/supervision/ownership.hpp"

namespace {

using namespace std::chrono_literals;
using namespace manifold;
using namespace manifold::supervision;
using clock_type = std::chrono::steady_clock;

const clock_type::time_point t0 = clock_type::time_point{} + 1h;

using manifold::test::pinned;
using manifold::test::selector;

/// Several agents sharing one store; each `step` runs one agent at the current time and, unless
/// told otherwise, applies its actions to that node's running set at once.
struct cluster {
  memory_lease_store store{t0};
  clock_type::time_point now = t0;
  ownership_settings settings;
  std::vector<connector_placement> connectors;
  std::map<std::string, std::unique_ptr<ownership_agent>> agents;
  std::map<std::string, std::set<std::string>> running;

  cluster() {
    log::set_level(log::level::off);
    settings.prefix = "/manifold/test/";
    settings.lease_ttl = 5000ms;
    settings.fence_margin = 1500ms;
  }

  ownership_agent& add(const std::string& id, std::map<std::string, std::string> labels = {},
                       std::string digest = "d1") {
    cluster_member_info self;
    self.id = id;
    self.digest = std::move(digest);
    self.labels = std::move(labels);
    self.address = id + ":7400";
    self.api_url = "http://" + id + ":8080";
    auto& a = agents[id];
    a = std::make_unique<ownership_agent>(self, connectors, store, settings);
    return *a;
  }

  ownership_agent::actions step(const std::string& id, bool apply_stops = true) {
    store.set_now(now);
    auto acts = agents.at(id)->step(now, running[id]);
    for (auto& c : acts.start) running[id].insert(c);
    if (apply_stops)
      for (auto& c : acts.stop) running[id].erase(c);
    return acts;
  }

  ownership_agent& agent(const std::string& id) { return *agents.at(id); }
};

using names = std::vector<std::string>;

// -- memory_lease_store -----------------------------------------------------------------------

TEST(memory_lease_store, lease_expires_ttl_after_the_last_keep_alive_with_its_keys) {
  memory_lease_store s{t0};
  auto id = s.grant(1000ms);
  ASSERT_TRUE(id);
  ASSERT_TRUE(*s.create("/k", "v", *id));
  s.set_now(t0 + 800ms);
  ASSERT_TRUE(s.keep_alive(*id));
  EXPECT_EQ(*s.expiry(*id), t0 + 1800ms);
  s.set_now(t0 + 1799ms);
  EXPECT_EQ(s.range("/")->size(), 1u);
  s.set_now(t0 + 1800ms);
  EXPECT_TRUE(s.range("/")->empty());
  auto again = s.keep_alive(*id);
  ASSERT_FALSE(again);
  EXPECT_EQ(code_of(again.error()), errc::not_found);
  EXPECT_EQ(code_of(s.put("/k", "v", *id)), errc::not_found);
}

TEST(memory_lease_store, create_only_when_absent_and_remove_if_compares_the_value) {
  memory_lease_store s{t0};
  ASSERT_TRUE(*s.create("/a", "one", 0));
  kv_entry holder;
  EXPECT_FALSE(*s.create("/a", "two", 0, &holder));
  EXPECT_EQ(holder.value, "one");
  EXPECT_FALSE(*s.remove_if("/a", "two"));
  EXPECT_TRUE(*s.remove_if("/a", "one"));
  EXPECT_FALSE(*s.remove_if("/a", "one"));
  EXPECT_EQ(code_of(s.create("/b", "x", 42).error()), errc::not_found); // unknown lease
}

TEST(memory_lease_store, range_is_by_prefix_in_key_order_and_revisions_grow) {
  memory_lease_store s{t0};
  ASSERT_FALSE(s.put("/p/b", "2", 0));
  ASSERT_FALSE(s.put("/p/a", "1", 0));
  ASSERT_FALSE(s.put("/q/a", "3", 0));
  auto r = s.range("/p/");
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].key, "/p/a");
  EXPECT_LT((*r)[1].create_revision, (*r)[0].create_revision);
  ASSERT_FALSE(s.put("/p/b", "4", 0));
  r = s.range("/p/b");
  EXPECT_GT((*r)[0].mod_revision, (*r)[0].create_revision);
}

TEST(memory_lease_store, a_cut_off_store_answers_unavailable_and_changes_nothing) {
  memory_lease_store s{t0};
  auto id = *s.grant(1000ms);
  s.set_available(false);
  EXPECT_EQ(code_of(s.keep_alive(id).error()), errc::unavailable);
  EXPECT_EQ(code_of(s.put("/k", "v", 0)), errc::unavailable);
  s.set_now(t0 + 2s);
  s.set_available(true);
  EXPECT_EQ(code_of(s.keep_alive(id).error()), errc::not_found);
  EXPECT_TRUE(s.range("/")->empty());
  EXPECT_EQ(code_of(s.grant(0ms).error()), errc::bad_request);
}

// -- settings ---------------------------------------------------------------------------------

TEST(ownership_settings, come_from_the_cluster_config_and_reject_a_margin_without_room) {
  cluster_config c;
  c.name = "plant";
  c.etcd = etcd_config{};
  c.etcd->prefix = "/mf/";
  auto s = ownership_settings::from(c);
  EXPECT_EQ(s.prefix, "/mf/plant/");
  EXPECT_TRUE(s.problem().empty()) << s.problem();

  s.fence_margin = s.lease_ttl;
  EXPECT_NE(s.problem().find("shorter than lease_ttl"), std::string::npos);
  s.fence_margin = 4000ms; // leaves 1 s, less than the renew interval of ttl/3
  EXPECT_NE(s.problem().find("renew interval"), std::string::npos);
  s.fence_margin = -1ms;
  EXPECT_FALSE(s.problem().empty());

  memory_lease_store store;
  cluster_member_info self;
  self.id = "a";
  EXPECT_THROW(ownership_agent(self, {}, store, s), std::invalid_argument);
}

// -- one node ---------------------------------------------------------------------------------

TEST(ownership_agent, first_step_leads_acquires_and_starts) {
  cluster c;
  c.connectors = {selector("x", {}), pinned("p", "a")};
  c.add("a", {{"role", "server"}});
  auto acts = c.step("a");
  EXPECT_EQ(acts.start, names{"x"});
  EXPECT_EQ(c.agent("a").valid_until(), t0 + 3500ms);

  auto v = c.agent("a").view();
  EXPECT_EQ(v.leader, "a");
  EXPECT_TRUE(v.lease_healthy);
  ASSERT_EQ(v.members.size(), 1u);
  EXPECT_EQ(v.members[0].labels.at("role"), "server");
  EXPECT_EQ(v.members[0].api_url, "http://a:8080");
  EXPECT_EQ(v.assignments.at("x"), "a");
  EXPECT_EQ(v.owners.at("x"), "a");
  EXPECT_EQ(v.owners.at("p"), "a"); // pinned: listed for display only
  EXPECT_EQ(v.assignments.count("p"), 0u);
  EXPECT_TRUE(v.unplaced.empty());

  c.now += 1s;
  acts = c.step("a");
  EXPECT_TRUE(acts.start.empty() && acts.stop.empty());
}

TEST(ownership_agent, unplaceable_connector_is_reported_with_a_reason) {
  cluster c;
  c.connectors = {selector("db", {{"role", "db"}})};
  c.add("a", {{"role", "server"}});
  EXPECT_TRUE(c.step("a").start.empty());
  EXPECT_EQ(c.agent("a").view().unplaced.at("db"), "no alive node matches role=db");
}

TEST(ownership_agent, unreachable_store_at_start_starts_nothing_and_says_why) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.store.set_available(false);
  auto acts = c.step("a");
  EXPECT_TRUE(acts.start.empty());
  auto v = c.agent("a").view();
  EXPECT_FALSE(v.lease_healthy);
  EXPECT_NE(v.last_error.find("grant"), std::string::npos) << v.last_error;
  EXPECT_EQ(c.agent("a").valid_until(), clock_type::time_point{});
}

// -- fencing ----------------------------------------------------------------------------------

TEST(ownership_agent, lease_not_renewed_fences_at_send_time_plus_ttl_minus_margin) {
  cluster c;
  c.connectors = {selector("x", {}), pinned("p", "a")};
  c.add("a");
  c.running["a"].insert("p");
  c.step("a");
  c.now = t0 + 2s; // past the renew interval (ttl/3): the keep-alive is sent now
  c.step("a");
  EXPECT_EQ(c.agent("a").valid_until(), t0 + 2s + 3500ms);
  EXPECT_EQ(*c.store.expiry(1), t0 + 7s); // the store's deadline lies beyond the fence

  c.store.set_available(false);
  c.now = t0 + 4s;
  EXPECT_TRUE(c.step("a").stop.empty()); // keep-alive failed, but the fence still holds
  c.now = t0 + 5500ms - 1ms;
  EXPECT_TRUE(c.step("a").stop.empty());
  c.now = t0 + 5500ms;
  auto acts = c.step("a", false);
  EXPECT_EQ(acts.stop, names{"x"}); // pinned p is not the agent's business
  EXPECT_FALSE(c.agent("a").view().lease_healthy);
  c.now += 500ms;
  EXPECT_EQ(c.step("a").stop, names{"x"}); // asks again while it still runs
  c.now += 500ms;
  acts = c.step("a");
  EXPECT_TRUE(acts.start.empty() && acts.stop.empty());

  // The store comes back after the lease expired there: the agent notices, starts over with a
  // new lease and takes the connector again.
  c.now = t0 + 8s;
  c.store.set_available(true);
  EXPECT_TRUE(c.step("a").start.empty());
  EXPECT_EQ(c.agent("a").valid_until(), clock_type::time_point{});
  c.now += 1s;
  EXPECT_EQ(c.step("a").start, names{"x"});
  EXPECT_EQ(c.agent("a").valid_until(), c.now + 3500ms);
}

TEST(ownership_agent, store_back_before_expiry_keeps_the_lease) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.step("a");
  c.store.set_available(false);
  c.now = t0 + 4s;
  EXPECT_EQ(c.step("a").stop, names{"x"}); // fenced at t0 + 3.5 s
  c.store.set_available(true);
  c.now = t0 + 4500ms; // the store's deadline is t0 + 5 s
  EXPECT_EQ(c.step("a").start, names{"x"});
  EXPECT_EQ(c.agent("a").valid_until(), c.now + 3500ms);
}

TEST(ownership_agent, another_node_takes_over_only_after_the_old_lease_expired) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.add("b");
  c.step("a");
  c.step("b");
  ASSERT_EQ(c.running["a"], std::set<std::string>{"x"});
  auto fence_a = c.agent("a").valid_until();
  auto expiry_a = *c.store.expiry(1);

  // a falls silent (crashed, paused or cut off); b keeps stepping.
  clock_type::time_point taken{};
  for (int i = 0; i < 40 && taken == clock_type::time_point{}; ++i) {
    c.now += 250ms;
    if (!c.step("b").start.empty()) taken = c.now;
  }
  ASSERT_NE(taken, clock_type::time_point{}) << "b never took x over";
  EXPECT_GE(taken, expiry_a);
  EXPECT_GT(taken, fence_a);
  EXPECT_LE(taken, expiry_a + 500ms); // b leads and places in the step that sees the expiry
  EXPECT_EQ(c.agent("b").view().leader, "b");
  EXPECT_EQ(c.agent("b").view().owners.at("x"), "b");
}

// -- handover ---------------------------------------------------------------------------------

TEST(ownership_agent, move_stops_first_and_releases_only_once_stopped) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.add("b");
  c.step("a");
  c.step("b");
  ASSERT_FALSE(c.agent("b").move("x", "b"));

  c.now += 100ms;
  EXPECT_EQ(c.step("a", false).stop, names{"x"}); // leader a reassigns, then stops its copy
  EXPECT_EQ(c.agent("a").view().assignments.at("x"), "b");
  EXPECT_TRUE(c.agent("a").view().moves.empty()); // the request is consumed
  c.now += 100ms;
  EXPECT_TRUE(c.step("b").start.empty()); // a still holds the key
  c.now += 100ms;
  EXPECT_EQ(c.step("a", false).stop, names{"x"}); // not stopped yet: no release
  c.now += 100ms;
  EXPECT_TRUE(c.step("b").start.empty());

  c.running["a"].clear(); // the runtime reports it stopped
  c.now += 100ms;
  c.step("a"); // releases
  EXPECT_EQ(c.agent("a").view().owners.count("x"), 0u);
  c.now += 100ms;
  EXPECT_EQ(c.step("b").start, names{"x"});
}

TEST(ownership_agent, move_is_refused_with_a_reason) {
  cluster c;
  c.connectors = {selector("x", {{"role", "server"}}), pinned("p", "a")};
  c.add("a", {{"role", "server"}});
  c.add("e", {{"role", "edge"}});
  c.step("a");
  c.step("e");

  auto err = c.agent("a").move("nope", "a");
  EXPECT_EQ(code_of(err), errc::not_found);
  err = c.agent("a").move("p", "e");
  EXPECT_EQ(code_of(err), errc::conflict);
  EXPECT_NE(message_of(err).find("pinned"), std::string::npos) << message_of(err);
  err = c.agent("a").move("x", "e");
  EXPECT_EQ(code_of(err), errc::conflict);
  EXPECT_NE(message_of(err).find("does not match"), std::string::npos) << message_of(err);
  err = c.agent("a").move("x", "ghost");
  EXPECT_NE(message_of(err).find("not an alive member"), std::string::npos) << message_of(err);
  EXPECT_TRUE(c.agent("a").view().moves.empty());
}

TEST(ownership_agent, drain_moves_failover_connectors_away_and_keeps_the_others) {
  cluster c;
  c.connectors = {selector("x", {}), selector("y", {}, false)};
  c.add("a");
  c.step("a"); // alone: both land on a
  c.add("b");
  c.step("b");
  ASSERT_EQ(c.running["a"], (std::set<std::string>{"x", "y"}));

  EXPECT_EQ(code_of(c.agent("b").drain("ghost", true)), errc::not_found);
  ASSERT_FALSE(c.agent("b").drain("a", true));
  for (int i = 0; i < 3; ++i) {
    c.now += 300ms;
    c.step("a");
    c.step("b");
  }
  EXPECT_EQ(c.running["a"], std::set<std::string>{"y"});
  EXPECT_EQ(c.running["b"], std::set<std::string>{"x"});
  auto v = c.agent("b").view();
  EXPECT_EQ(v.draining, std::set<std::string>{"a"});
  bool a_draining = false;
  for (auto& m : v.members) a_draining = a_draining || (m.id == "a" && m.draining);
  EXPECT_TRUE(a_draining);

  ASSERT_FALSE(c.agent("a").drain("a", false));
  c.now += 300ms;
  c.step("a");
  EXPECT_TRUE(c.agent("a").view().draining.empty());
  EXPECT_EQ(c.running["b"], std::set<std::string>{"x"}); // sticky: no move back
}

TEST(ownership_agent, leader_failover_reassigns_the_dead_leaders_connectors) {
  cluster c;
  c.connectors = {selector("x", {}), selector("y", {})};
  c.add("a");
  c.add("b");
  c.add("c");
  c.step("a");
  c.step("b");
  c.step("c");
  c.now += 300ms;
  c.step("a"); // a leads and had placed both on itself before b and c registered
  ASSERT_EQ(c.agent("b").view().leader, "a");
  ASSERT_EQ(c.running["a"], (std::set<std::string>{"x", "y"}));

  for (int i = 0; i < 30; ++i) { // a is gone; b and c go on
    c.now += 300ms;
    c.step("b");
    c.step("c");
  }
  auto v = c.agent("c").view();
  EXPECT_NE(v.leader, "a");
  EXPECT_FALSE(v.leader.empty());
  ASSERT_EQ(v.members.size(), 2u);
  std::set<std::string> owners{v.owners.at("x"), v.owners.at("y")};
  EXPECT_EQ(owners, (std::set<std::string>{"b", "c"})); // spread by load
  EXPECT_EQ(c.running["b"].size() + c.running["c"].size(), 2u);
}

TEST(ownership_agent, resign_hands_over_without_waiting_for_the_ttl) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.add("b");
  c.step("a");
  c.step("b");
  EXPECT_EQ(code_of(c.agent("a").resign(c.running["a"])), errc::conflict);
  c.running["a"].clear();
  ASSERT_FALSE(c.agent("a").resign(c.running["a"]));
  EXPECT_EQ(c.agent("a").valid_until(), clock_type::time_point{});
  c.now += 100ms;
  EXPECT_EQ(c.step("b").start, names{"x"});
}

TEST(ownership_agent, boot_settle_spreads_connectors_over_the_nodes_that_came_up_together) {
  cluster c;
  c.settings.boot_settle = 1000ms;
  c.connectors = {selector("x", {}), selector("y", {})};
  c.add("a");
  c.add("b");
  EXPECT_TRUE(c.step("a").start.empty());
  EXPECT_NE(c.agent("a").view().unplaced.at("x").find("leader"), std::string::npos);
  c.step("b");
  c.now += 1s;
  EXPECT_EQ(c.step("a").start.size(), 1u);
  EXPECT_EQ(c.step("b").start.size(), 1u);
}

TEST(ownership_agent, a_second_node_with_the_same_id_takes_nothing_until_the_first_is_gone) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  for (int i = 0; i < 5; ++i, c.now += 300ms) c.step("a");
  ASSERT_EQ(c.running["a"], std::set<std::string>{"x"});

  // Another process started with id "a": it must not take over a's registration or connector.
  cluster_member_info twin;
  twin.id = "a";
  twin.digest = "d1";
  twin.address = "elsewhere:7400";
  ownership_agent other{twin, c.connectors, c.store, c.settings};
  std::set<std::string> other_running;
  for (int i = 0; i < 5; ++i, c.now += 300ms) {
    c.step("a");
    c.store.set_now(c.now);
    auto acts = other.step(c.now, other_running);
    EXPECT_TRUE(acts.start.empty());
  }
  EXPECT_NE(other.view().last_error.find("registered by another lease"), std::string::npos)
    << other.view().last_error;
  EXPECT_EQ(c.running["a"], std::set<std::string>{"x"});
  auto members = c.agent("a").view().members;
  ASSERT_EQ(members.size(), 1u);
  EXPECT_EQ(members[0].address, "a:7400");

  // The first one dies; once its lease expired the second registers and takes the connector.
  for (int i = 0; i < 40 && other_running.empty(); ++i, c.now += 300ms) {
    c.store.set_now(c.now);
    for (auto& x : other.step(c.now, other_running).start) other_running.insert(x);
  }
  EXPECT_EQ(other_running, std::set<std::string>{"x"});
  EXPECT_EQ(other.view().last_error, "");
}

TEST(ownership_agent, a_node_with_another_connectors_section_takes_no_connector) {
  cluster c;
  c.connectors = {selector("x", {}), selector("y", {})};
  c.add("a");
  for (int i = 0; i < 3; ++i, c.now += 300ms) c.step("a");
  c.add("c");
  c.add("b", {}, "d2"); // registered last, with a config the cluster does not share
  for (int i = 0; i < 10; ++i, c.now += 300ms) {
    c.step("a");
    c.step("c");
    c.step("b");
  }
  EXPECT_TRUE(c.running["b"].empty());
  EXPECT_NE(c.agent("b").view().last_error.find("differs from the cluster's, set by node 'a'"),
            std::string::npos)
    << c.agent("b").view().last_error;
  auto refused = c.agent("a").move("x", "b");
  EXPECT_EQ(code_of(refused), errc::conflict);
  EXPECT_NE(message_of(refused).find("runs another connectors section"), std::string::npos);
  auto here = c.agent("a").move(*c.running["a"].begin(), "a");
  EXPECT_NE(message_of(here).find("already runs on node 'a'"), std::string::npos)
    << message_of(here);

  // a goes away: c holds every connector; b still takes none (c registered before b, so c's
  // digest is the cluster's now).
  for (int i = 0; i < 40; ++i, c.now += 300ms) {
    c.step("c");
    c.step("b");
  }
  EXPECT_EQ(c.running["c"], (std::set<std::string>{"x", "y"}));
  EXPECT_TRUE(c.running["b"].empty());
}

TEST(ownership_agent, the_leader_places_only_on_nodes_its_cluster_links_reach) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  c.add("b"); // registered in the store, but the mesh refused it (e.g. a wrong certificate)
  c.agent("a").set_reachable({"a"});
  c.agent("b").set_reachable({"b"});
  for (int i = 0; i < 5; ++i, c.now += 300ms) {
    c.step("a");
    c.step("b");
  }
  ASSERT_EQ(c.running["a"], std::set<std::string>{"x"});
  auto refused = c.agent("a").move("x", "b");
  EXPECT_EQ(code_of(refused), errc::conflict);
  EXPECT_NE(message_of(refused).find("is not an alive member"), std::string::npos)
    << message_of(refused);

  // a dies: b now leads in a cluster of its own, where it reaches itself, and takes x.
  for (int i = 0; i < 40; ++i, c.now += 300ms) c.step("b");
  EXPECT_EQ(c.running["b"], std::set<std::string>{"x"});
}

TEST(ownership_agent, a_node_out_of_ownership_refuses_drains_and_moves) {
  cluster c;
  c.connectors = {selector("x", {})};
  c.add("a");
  for (int i = 0; i < 3; ++i, c.now += 300ms) c.step("a");
  c.add("b", {}, "d2");
  for (int i = 0; i < 3; ++i, c.now += 300ms) {
    c.step("a");
    c.step("b");
  }
  auto drain = c.agent("b").drain("a", true);
  EXPECT_EQ(code_of(drain), errc::conflict);
  EXPECT_NE(message_of(drain).find("takes no part in ownership"), std::string::npos);
  EXPECT_EQ(code_of(c.agent("b").move("x", "b")), errc::conflict);
  EXPECT_TRUE(c.agent("a").view().draining.empty());
}

} // namespace
