// Several nodes' actor systems in one process, joined over loopback through CAF's middleman:
// handshake, membership gossip, failure detection, location transparency, forwarded readings and
// mutual TLS.

#include "manifold/supervision/cluster_node.hpp"

#include <gtest/gtest.h>

#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/publish.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "support/processes.hpp"

namespace manifold {
namespace {

using namespace std::chrono_literals;
using supervision::cluster_node_deps;

constexpr auto heartbeat_interval = 100ms;
constexpr auto failure_timeout = 1000ms;

/// Collects what a bus delivers, for checks from the test thread.
class collecting_sink : public reading_sink {
public:
  void deliver(const point_reading& r) override {
    std::lock_guard<std::mutex> guard{mutex_};
    readings_.push_back(r);
  }
  std::vector<point_reading> readings() const {
    std::lock_guard<std::mutex> guard{mutex_};
    return readings_;
  }

private:
  mutable std::mutex mutex_;
  std::vector<point_reading> readings_;
};

/// Stands in for a connector supervisor: answers like one, and says which node it lives on.
caf::behavior fake_supervisor(caf::event_based_actor*, std::string node, std::string connector) {
  return {
    [=](status_atom) {
      connector_status s;
      s.name = connector;
      s.type = "sim";
      s.state = connector_state::degraded;
      s.restarts = 3;
      s.last_error = "on " + node;
      s.unreachable_devices = {"boiler"};
      return s;
    },
    [=](invoke_atom, const action_request& req) -> caf::result<value> {
      if (req.action == "fail") return make_error(errc::device_error, "refused on " + node);
      auto n = req.params.find("n");
      if (n == req.params.end()) return value{node + ":" + req.device + "/" + req.action};
      return value{std::get<std::int64_t>(n->second) * 2};
    },
    [=](write_atom, const std::string&, const std::string&, value& v) { return v; },
  };
}

struct node_options {
  std::string id;
  std::vector<std::string> seeds;
  std::uint16_t port = 0;
  std::string digest = "digest-1";
  std::uint32_t version = cluster_protocol_version;
  cluster_tls_config tls;
};

node_options opts(std::string id, std::vector<std::string> seeds = {}, std::uint16_t port = 0) {
  node_options o;
  o.id = std::move(id);
  o.seeds = std::move(seeds);
  o.port = port;
  return o;
}

/// One Manifold node reduced to what clustering needs: a bus, a supervisor for connector
/// `<id>-pump` and the cluster node actor.
class test_node {
public:
  explicit test_node(const node_options& o) {
    auto cfg = std::make_shared<node_config>();
    cfg->id = o.id;
    cfg->labels = {{"role", "server"}};
    cfg->cluster.enabled = true;
    cfg->cluster.name = "test";
    cfg->cluster.port = o.port;
    cfg->cluster.seeds = o.seeds;
    cfg->cluster.heartbeat_interval = heartbeat_interval;
    cfg->cluster.failure_timeout = failure_timeout;
    cfg->cluster.request_timeout = 2s;
    cfg->cluster.tls = o.tls;
    cfg->cluster.connectors_digest = o.digest;
    for (auto node : {"a", "b", "c"}) {
      connector_config c;
      c.name = std::string{node} + "-pump";
      c.type = "sim";
      c.placement.node = node;
      c.placement.declared = true;
      cfg->connectors.push_back(c);
    }
    connector_config movable;
    movable.name = "roaming";
    movable.type = "sim";
    movable.placement.selector = {{"role", "server"}};
    movable.placement.failover = true;
    movable.placement.declared = true;
    cfg->connectors.push_back(movable);
    config = cfg;

    sys_cfg.set("scheduler.max-threads", 2);
    sys_cfg.set("middleman.workers", 0);
    supervision::configure_cluster(sys_cfg, *cfg);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    bus = spawn_data_bus(*sys, nullptr);
    pump = sys->spawn(fake_supervisor, o.id, o.id + "-pump");
    directory = std::make_shared<cluster_directory>(cfg);
    sink = std::make_shared<collecting_sink>();
    caf::anon_send(bus, subscribe_atom::value, reading_sink_ptr{sink}, reading_filter{});

    cluster_node_deps deps;
    deps.config = cfg;
    deps.bus = bus;
    deps.supervisors = {{o.id + "-pump", pump}};
    deps.directory = directory;
    deps.api_url = "http://127.0.0.1:8080";
    deps.protocol_version = o.version;
    started = supervision::start_cluster_node(*sys, deps);
    if (started) {
      node = started->first;
      port = started->second;
    }
  }

  ~test_node() { shutdown(); }

  /// Ends every actor this node spawned and the actor system (its connections close).
  void shutdown() {
    if (!sys) return;
    for (auto& a : {node, bus, pump})
      if (a) caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port); }

  bool sees_alive(const std::string& id) const { return directory->is_alive(id); }

  std::size_t alive_count() const {
    std::size_t n = 0;
    for (auto& m : directory->members()) n += m.health == member_health::alive;
    return n;
  }

  std::shared_ptr<const node_config> config;
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor bus;
  caf::actor pump;
  caf::actor node;
  std::uint16_t port = 0;
  std::shared_ptr<cluster_directory> directory;
  std::shared_ptr<collecting_sink> sink;
  caf::expected<std::pair<caf::actor, std::uint16_t>> started{caf::error{}};
};

bool has_refusal(const test_node& n, const std::string& peer, const std::string& text) {
  for (auto& r : n.directory->refusals())
    if (r.peer == peer && r.reason.find(text) != std::string::npos) return true;
  return false;
}

std::optional<seed_status> seed_of(const test_node& n, const std::string& address) {
  for (auto& s : n.directory->seeds())
    if (s.address == address) return s;
  return std::nullopt;
}

// -- serialization ---------------------------------------------------------------------------------

template <class T>
caf::error round_trip(caf::actor_system& sys, T& in, T& out) {
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  if (auto err = static_cast<caf::serializer&>(sink)(in)) return err;
  caf::binary_deserializer source{sys, buf};
  return static_cast<caf::deserializer&>(source)(out);
}

class serialization : public ::testing::Test {
protected:
  serialization() {
    node_config cfg;
    supervision::configure_cluster(sys_cfg, cfg);
    sys_cfg.set("scheduler.max-threads", 1);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
  }
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
};

TEST_F(serialization, every_value_alternative_survives_a_round_trip) {
  std::vector<value> values{std::monostate{}, true,          false,
                            std::int64_t{-42}, 2.5,          std::string{"hot water"},
                            bytes{0, 1, 255},  std::string{}};
  for (auto& v : values) {
    value out = std::string{"garbage"};
    ASSERT_FALSE(round_trip(*sys, v, out)) << to_display_string(v);
    EXPECT_EQ(out, v) << to_display_string(v);
  }
}

TEST_F(serialization, readings_calls_and_status_survive_a_round_trip) {
  point_reading r{"plant", "boiler", "temperature", 71.5, quality::stale, "timeout", 1234567};
  point_reading r2;
  ASSERT_FALSE(round_trip(*sys, r, r2));
  EXPECT_EQ(r2.connector, "plant");
  EXPECT_EQ(r2.point, "temperature");
  EXPECT_EQ(r2.data, value{71.5});
  EXPECT_EQ(r2.q, quality::stale);
  EXPECT_EQ(r2.reason, "timeout");
  EXPECT_EQ(r2.source_time, 1234567);

  action_request call{"pump", "set_speed",
                      {{"rpm", std::int64_t{900}}, {"label", std::string{"x"}}, {"on", true}}};
  action_request call2;
  ASSERT_FALSE(round_trip(*sys, call, call2));
  EXPECT_EQ(call2.device, "pump");
  EXPECT_EQ(call2.params, call.params);

  connector_status s{"plant", "mqtt", connector_state::restarting, 7, "broker gone", {"a", "b"}};
  connector_status s2;
  ASSERT_FALSE(round_trip(*sys, s, s2));
  EXPECT_EQ(s2.state, connector_state::restarting);
  EXPECT_EQ(s2.restarts, 7u);
  EXPECT_EQ(s2.unreachable_devices, s.unreachable_devices);
}

TEST_F(serialization, an_unknown_value_tag_or_enum_is_an_error_not_a_wrong_value) {
  std::vector<char> buf;
  caf::binary_serializer sink{*sys, buf};
  std::uint8_t bad_tag = 9;
  ASSERT_FALSE(sink(bad_tag));
  value v;
  caf::binary_deserializer source{*sys, buf};
  auto err = static_cast<caf::deserializer&>(source)(v);
  ASSERT_TRUE(err);
  EXPECT_NE(sys->render(err).find("unknown value alternative 9"), std::string::npos)
    << sys->render(err);

  connector_status s;
  s.state = static_cast<connector_state>(42);
  connector_status s2;
  err = round_trip(*sys, s, s2);
  ASSERT_TRUE(err);
  EXPECT_NE(sys->render(err).find("unknown connector state 42"), std::string::npos);
}

// -- directory -------------------------------------------------------------------------------------

TEST(directory, locate_names_the_owner_or_says_why_there_is_none) {
  auto cfg = std::make_shared<node_config>();
  cfg->id = "a";
  connector_config pinned;
  pinned.name = "pump";
  pinned.placement.node = "b";
  connector_config movable;
  movable.name = "roaming";
  movable.placement.selector = {{"role", "server"}};
  movable.placement.failover = true;
  cfg->connectors = {pinned, movable};
  cluster_directory dir{cfg};
  auto now = std::chrono::steady_clock::now();

  EXPECT_EQ(dir.locate("nope").where, connector_location::kind::unavailable);
  auto l = dir.locate("pump");
  EXPECT_EQ(l.where, connector_location::kind::unavailable);
  EXPECT_EQ(l.reason, "connector 'pump' runs on node 'b', which has not joined the cluster");
  l = dir.locate("roaming");
  EXPECT_EQ(l.reason, "connector 'roaming' has no owner yet (placement: role=server, failover)");

  node_info b;
  b.id = "b";
  dir.member_joined(b, now);
  EXPECT_EQ(dir.locate("pump").reason,
            "connector 'pump' runs on node 'b', which has no supervisor for it");
  dir.mark_down("b", "no heartbeat for 4.2 s", now);
  EXPECT_EQ(dir.locate("pump").reason,
            "connector 'pump' runs on node 'b', which is down (no heartbeat for 4.2 s)");
  heartbeat hb;
  hb.id = "b";
  EXPECT_TRUE(dir.heartbeat_received(hb, now));
  EXPECT_TRUE(dir.is_alive("b"));
  hb.id = "stranger";
  EXPECT_FALSE(dir.heartbeat_received(hb, now));

  dir.set_owner("roaming", "a");
  EXPECT_EQ(dir.owner("roaming"), std::optional<std::string>{"a"});
  EXPECT_EQ(dir.locate("roaming").reason,
            "connector 'roaming' runs on node 'a', which has not joined the cluster");
  dir.set_owners({});
  EXPECT_FALSE(dir.owner("roaming"));
  EXPECT_EQ(dir.owner("pump"), std::optional<std::string>{"b"});
}

// -- membership ------------------------------------------------------------------------------------

TEST(cluster_node, a_third_node_is_learned_through_one_seed) {
  test_node a{opts("a")};
  ASSERT_TRUE(a.started) << a.sys->render(a.started.error());
  test_node b{opts("b", {a.address()})};
  test_node c{opts("c", {a.address()})};
  ASSERT_TRUE(b.started && c.started);

  // b and c only know a; they find each other through a's heartbeats.
  ASSERT_TRUE(test::wait_until([&] {
    return a.alive_count() == 3 && b.alive_count() == 3 && c.alive_count() == 3;
  })) << a.alive_count() << b.alive_count() << c.alive_count();
  auto c_seen_by_b = b.directory->member("c");
  ASSERT_TRUE(c_seen_by_b);
  EXPECT_EQ(c_seen_by_b->info.address, c.address());
  EXPECT_EQ(c_seen_by_b->info.labels.at("role"), "server");
  EXPECT_EQ(c_seen_by_b->info.api_url, "http://127.0.0.1:8080");

  // Without etcd the leader is the lowest id, everywhere.
  ASSERT_TRUE(test::wait_until([&] { return c.directory->leader().id == "a"; }));
  EXPECT_EQ(c.directory->leader().chosen_by, "lowest id");

  // Heartbeats carry what runs where (the fake supervisors say degraded).
  ASSERT_TRUE(test::wait_until([&] {
    auto m = a.directory->member("c");
    return m && m->running.size() == 1 && m->node_health == "ready";
  }));
  EXPECT_EQ(a.directory->member("c")->running[0].name, "c-pump");
  EXPECT_EQ(a.directory->member("c")->running[0].state, connector_state::degraded);
  auto seed = seed_of(b, a.address());
  ASSERT_TRUE(seed);
  EXPECT_TRUE(seed->connected);
  EXPECT_EQ(seed->member, "a");
}

TEST(cluster_node, a_request_to_a_remote_supervisor_gets_its_answer) {
  test_node a{opts("a")};
  test_node b{opts("b", {a.address()})};
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("b"); }));

  auto where = a.directory->locate("b-pump");
  ASSERT_EQ(where.where, connector_location::kind::remote) << where.reason;
  EXPECT_EQ(where.node, "b");
  EXPECT_EQ(a.directory->locate("a-pump").where, connector_location::kind::local);

  caf::scoped_actor self{*a.sys};
  action_request call{"valve", "open", {}};
  self->request(where.supervisor, 5s, invoke_atom::value, call)
    .receive([&](value& v) { EXPECT_EQ(v, value{std::string{"b:valve/open"}}); },
             [&](caf::error& err) { FAIL() << a.sys->render(err); });
  call.params["n"] = std::int64_t{21};
  self->request(where.supervisor, 5s, invoke_atom::value, call)
    .receive([&](value& v) { EXPECT_EQ(v, value{std::int64_t{42}}); },
             [&](caf::error& err) { FAIL() << a.sys->render(err); });
  self->request(where.supervisor, 5s, write_atom::value, "valve", "level", value{bytes{7, 8}})
    .receive([&](value& v) { EXPECT_EQ(v, (value{bytes{7, 8}})); },
             [&](caf::error& err) { FAIL() << a.sys->render(err); });
  call.action = "fail";
  self->request(where.supervisor, 5s, invoke_atom::value, call)
    .receive([&](value&) { FAIL() << "a refused call answered with a value"; },
             [&](caf::error& err) {
               EXPECT_EQ(code_of(err), errc::device_error);
               EXPECT_EQ(message_of(err), "refused on b");
             });
  self->request(where.supervisor, 5s, status_atom::value)
    .receive(
      [&](connector_status& s) {
        EXPECT_EQ(s.name, "b-pump");
        EXPECT_EQ(s.state, connector_state::degraded);
        EXPECT_EQ(s.last_error, "on b");
      },
      [&](caf::error& err) { FAIL() << a.sys->render(err); });
}

TEST(cluster_node, readings_published_on_one_node_reach_sinks_on_another) {
  test_node a{opts("a")};
  test_node b{opts("b", {a.address()})};
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("b") && b.sees_alive("a"); }));

  // The subscription is sent when the peer joins; publish until the first reading arrives so
  // the test does not depend on when it landed, then check one exact reading.
  point_reading warmup{"b-pump", "warmup", "tick", std::int64_t{0}, quality::good, "", 1};
  ASSERT_TRUE(test::wait_until([&] {
    caf::anon_send(b.bus, publish_atom::value, warmup);
    return !a.sink->readings().empty();
  }));
  point_reading r{"b-pump", "boiler", "temperature", 71.5, quality::good, "", 99};
  caf::anon_send(b.bus, publish_atom::value, r);
  auto arrived = [&] {
    for (auto& x : a.sink->readings())
      if (x.device == "boiler") return true;
    return false;
  };
  ASSERT_TRUE(test::wait_until(arrived));
  for (auto& x : a.sink->readings())
    if (x.device == "boiler") {
      EXPECT_EQ(x.connector, "b-pump");
      EXPECT_EQ(x.data, value{71.5});
      EXPECT_EQ(x.source_time, 99);
    }

  // Forwarded readings are delivered, not cached (the owner's bus answers for its points) and
  // not forwarded back: b's own sink sees its reading exactly once.
  caf::scoped_actor self{*a.sys};
  self->request(a.bus, 5s, get_atom::value, "boiler", "temperature")
    .receive([&](point_reading&) { FAIL() << "a forwarded reading was cached"; },
             [&](caf::error& err) { EXPECT_EQ(code_of(err), errc::not_found); });
  caf::scoped_actor bself{*b.sys};
  bself->request(b.bus, 5s, get_atom::value, "boiler", "temperature")
    .receive([&](point_reading& x) { EXPECT_EQ(x.data, value{71.5}); },
             [&](caf::error& err) { FAIL() << b.sys->render(err); });
  std::size_t on_b = 0;
  for (auto& x : b.sink->readings()) on_b += x.device == "boiler";
  EXPECT_EQ(on_b, 1u);
}

// -- failures --------------------------------------------------------------------------------------

TEST(cluster_node, a_node_that_shuts_down_is_marked_down_within_the_failure_timeout) {
  test_node a{opts("a")};
  auto b = std::make_unique<test_node>(opts("b", {a.address()}));
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("b"); }));

  auto t0 = std::chrono::steady_clock::now();
  b->shutdown();
  ASSERT_TRUE(test::wait_until([&] { return !a.sees_alive("b"); }, failure_timeout + 500ms));
  EXPECT_LE(std::chrono::steady_clock::now() - t0, failure_timeout + 500ms);
  auto m = a.directory->member("b");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->health, member_health::down);
  EXPECT_FALSE(m->reason.empty());
  EXPECT_TRUE(m->running.empty());
  auto where = a.directory->locate("b-pump");
  EXPECT_EQ(where.where, connector_location::kind::unavailable);
  EXPECT_EQ(where.reason.find("connector 'b-pump' runs on node 'b', which is down ("), 0u)
    << where.reason;

  // A node on the same address again: a rejoins it without a restart.
  b = std::make_unique<test_node>(opts("b", {a.address()}, b->port));
  ASSERT_TRUE(b->started) << "port reuse: " << b->sys->render(b->started.error());
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("b"); }));
  EXPECT_EQ(a.directory->locate("b-pump").where, connector_location::kind::remote);
}

/// Says hello and joins like a node, then never sends a heartbeat.
caf::behavior silent_peer(caf::event_based_actor* self, std::string digest) {
  return {
    [=](hello_atom, std::uint32_t, const std::string& cluster, const std::string&,
        const std::string&) {
      return caf::make_message(hello_atom::value, cluster_protocol_version, cluster,
                               std::string{"ghost"}, digest);
    },
    [=](join_atom, const node_info&) {
      node_info me;
      me.id = "ghost";
      me.node = caf::actor_cast<caf::actor>(self);
      return me;
    },
    [=](heartbeat_atom, const heartbeat&) {},
  };
}

TEST(cluster_node, a_peer_that_stops_sending_heartbeats_is_marked_down) {
  node_config ghost_cfg;
  caf::actor_system_config ghost_sys_cfg;
  ghost_sys_cfg.set("scheduler.max-threads", 1);
  supervision::configure_cluster(ghost_sys_cfg, ghost_cfg);
  caf::actor_system ghost_sys{ghost_sys_cfg};
  auto ghost = ghost_sys.spawn(silent_peer, std::string{"digest-1"});
  auto ghost_port = caf::io::publish(ghost, 0, "127.0.0.1");
  ASSERT_TRUE(ghost_port);

  test_node a{opts("a", {"127.0.0.1:" + std::to_string(*ghost_port)})};
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("ghost"); }));
  auto joined = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::wait_until([&] { return !a.sees_alive("ghost"); }, failure_timeout * 3));
  auto took = std::chrono::steady_clock::now() - joined;
  EXPECT_GE(took, failure_timeout - heartbeat_interval);
  auto m = a.directory->member("ghost");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->reason.find("no heartbeat for "), 0u) << m->reason;
  caf::anon_send_exit(ghost, caf::exit_reason::user_shutdown);
}

TEST(cluster_node, a_peer_with_another_protocol_version_is_refused_on_both_sides) {
  test_node a{opts("a")};
  auto o = opts("x", {a.address()});
  o.version = cluster_protocol_version + 1;
  test_node x{o};
  auto expected = "protocol version " + std::to_string(cluster_protocol_version + 1) +
                  ", expected " + std::to_string(cluster_protocol_version);
  ASSERT_TRUE(test::wait_until([&] {
    auto s = seed_of(x, a.address());
    return has_refusal(a, "x", expected) && s && s->attempts >= 2;
  }));
  EXPECT_TRUE(has_refusal(x, a.address(), "refused us"));
  auto s = seed_of(x, a.address());
  EXPECT_FALSE(s->connected);
  EXPECT_NE(s->last_error.find(expected), std::string::npos) << s->last_error;
  EXPECT_FALSE(a.directory->member("x"));
  EXPECT_FALSE(x.directory->member("a"));

  // The other direction: a dials x (x now learns of a as its seed too) and x refuses.
  auto o2 = opts("y", {x.address()});
  test_node y{o2};
  ASSERT_TRUE(test::wait_until([&] { return has_refusal(x, "y", "protocol version"); }));
  EXPECT_FALSE(y.directory->member("x"));
}

TEST(cluster_node, a_peer_with_other_connectors_or_the_same_id_is_refused) {
  test_node a{opts("a")};
  auto o = opts("x", {a.address()});
  o.digest = "digest-2";
  test_node x{o};
  ASSERT_TRUE(test::wait_until([&] {
    return has_refusal(a, "x", "connectors digest digest-2, expected digest-1");
  }));
  EXPECT_FALSE(a.directory->member("x"));
  EXPECT_FALSE(x.directory->member("a"));

  test_node twin{opts("a", {a.address()})};
  ASSERT_TRUE(test::wait_until([&] { return has_refusal(a, "a", "duplicate node id"); }));
  EXPECT_EQ(a.alive_count(), 1u);
}

TEST(cluster_node, a_second_process_with_a_members_id_is_refused_by_the_other_members) {
  test_node a{opts("a")};
  test_node b{opts("b", {a.address()})};
  ASSERT_TRUE(test::wait_until([&] { return b.sees_alive("a") && a.sees_alive("b"); }));

  // Started by mistake with a's id; it knows only b. b must not take it for a.
  test_node twin{opts("a", {b.address()})};
  ASSERT_TRUE(twin.started);
  auto expected = "node id 'a' is already a member at " + a.address();
  ASSERT_TRUE(test::wait_until([&] {
    return has_refusal(b, "a", expected) && has_refusal(twin, b.address(), expected);
  }));
  EXPECT_TRUE(has_refusal(twin, b.address(), "refused us: node 'b' refuses node 'a': " + expected));
  auto s = seed_of(twin, b.address());
  ASSERT_TRUE(s);
  EXPECT_FALSE(s->connected);
  EXPECT_NE(s->last_error.find(expected), std::string::npos) << s->last_error;

  // b still talks to the real a, and the twin is nobody's member.
  auto m = b.directory->member("a");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->info.address, a.address());
  EXPECT_TRUE(b.sees_alive("a"));
  EXPECT_EQ(b.directory->locate("a-pump").where, connector_location::kind::remote);
  EXPECT_FALSE(twin.directory->member("b"));

  // Once the real a is gone, the same id may join again (a node restarted elsewhere).
  a.shutdown();
  ASSERT_TRUE(test::wait_until([&] { return twin.sees_alive("b") && b.sees_alive("a"); }));
  EXPECT_EQ(b.directory->member("a")->info.address, twin.address());
}

TEST(cluster_node, a_seed_that_is_no_cluster_port_is_named_as_such) {
  // A real HTTP server stands for the gateway or etcd port someone put among the seeds.
  test::temp_dir dir;
  auto http_port = test::free_port();
  test::child_process http{{"/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1",
                            std::to_string(http_port)},
                           dir.file("http.log")};
  ASSERT_TRUE(test::wait_until([&] { return test::port_open(http_port); })) << http.log();
  auto seed = "127.0.0.1:" + std::to_string(http_port);
  test_node a{opts("a", {seed})};
  ASSERT_TRUE(test::wait_until([&] {
    auto s = seed_of(a, seed);
    return s && !s->last_error.empty();
  }, 10s));
  auto error = seed_of(a, seed)->last_error;
  EXPECT_EQ(error.find("no Manifold cluster node answers at " + seed +
                       " (is it the cluster port of a node, not its gateway or etcd?"),
            0u)
    << error;
  EXPECT_NE(error.find("(system_error("), std::string::npos) << error; // CAF's word stays.
}

TEST(cluster_node, start_fails_with_a_clear_error_when_the_port_is_taken) {
  test_node a{opts("a")};
  test_node clash{opts("b", {}, a.port)};
  ASSERT_FALSE(clash.started);
  auto text = clash.sys->render(clash.started.error());
  EXPECT_NE(text.find("cannot listen for cluster peers on 127.0.0.1:" + std::to_string(a.port)),
            std::string::npos)
    << text;
}

// -- TLS -------------------------------------------------------------------------------------------

/// A CA and certificates it signs, made with the openssl command line tool.
class test_pki {
public:
  test_pki() {
    ca_ = make_ca("ca");
    other_ca_ = make_ca("other-ca");
  }

  std::string make_ca(const std::string& name) {
    run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", dir_.file(name + ".key"), "-out", dir_.file(name + ".pem"), "-days",
         "1", "-subj", "/CN=" + name});
    return name;
  }

  /// A certificate for `node` signed by `ca` (trusting `trust`).
  cluster_tls_config node_cert(const std::string& node, const std::string& ca,
                               const std::string& trust) {
    auto key = dir_.file(node + ".key");
    auto csr = dir_.file(node + ".csr");
    auto pem = dir_.file(node + ".pem");
    run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=" + node});
    run({"openssl", "x509", "-req", "-in", csr, "-CA", dir_.file(ca + ".pem"), "-CAkey",
         dir_.file(ca + ".key"), "-CAcreateserial", "-out", pem, "-days", "1"});
    return {pem, key, dir_.file(trust + ".pem")};
  }

  const std::string& ca() const { return ca_; }
  const std::string& other_ca() const { return other_ca_; }
  std::string file(const std::string& name) const { return dir_.file(name); }
  std::string write(const std::string& name, const std::string& text) {
    return dir_.write(name, text);
  }

private:
  void run(const std::vector<std::string>& argv) {
    auto r = test::run_command(argv);
    if (r.exit_code != 0) ADD_FAILURE() << argv[0] << " " << argv[1] << ": " << r.output;
  }

  test::temp_dir dir_;
  std::string ca_;
  std::string other_ca_;
};

TEST(cluster_node, with_tls_only_nodes_whose_certificate_the_ca_signed_can_join) {
  test_pki pki;
  auto oa = opts("a");
  oa.tls = pki.node_cert("a", pki.ca(), pki.ca());
  test_node a{oa};
  ASSERT_TRUE(a.started) << a.sys->render(a.started.error());
  auto ob = opts("b", {a.address()});
  ob.tls = pki.node_cert("b", pki.ca(), pki.ca());
  test_node b{ob};
  ASSERT_TRUE(test::wait_until([&] { return a.sees_alive("b") && b.sees_alive("a"); }));
  auto b_since = a.directory->member("b")->since;

  // x trusts the cluster's CA but its own certificate comes from another CA: a must refuse the
  // TLS handshake, so x never even says hello.
  auto ox = opts("x", {a.address()});
  ox.tls = pki.node_cert("x", pki.other_ca(), pki.ca());
  test_node x{ox};
  ASSERT_TRUE(x.started);
  ASSERT_TRUE(test::wait_until([&] {
    auto s = seed_of(x, a.address());
    return s && s->attempts >= 2 && !s->last_error.empty();
  })) << (seed_of(x, a.address()) ? seed_of(x, a.address())->last_error : "no seed");
  EXPECT_FALSE(a.directory->member("x"));
  EXPECT_FALSE(x.directory->member("a"));
  auto x_error = seed_of(x, a.address())->last_error;
  EXPECT_EQ(x_error.find("TLS handshake with " + a.address() + " failed (is the certificate "
                         "signed by the cluster's CA? is TLS on at both ends?)"),
            0u)
    << x_error;

  // A plain (non-TLS) node cannot join either.
  test_node plain{opts("p", {a.address()})};
  ASSERT_TRUE(test::wait_until([&] {
    auto s = seed_of(plain, a.address());
    return s && s->attempts >= 2 && !s->last_error.empty();
  }));
  EXPECT_FALSE(a.directory->member("p"));
  auto p_error = seed_of(plain, a.address())->last_error;
  EXPECT_EQ(p_error.find("no Manifold cluster node answers at " + a.address()), 0u) << p_error;
  EXPECT_NE(p_error.find("is TLS off at both ends?"), std::string::npos) << p_error;

  // Failed handshakes did not disturb the established link (OpenSSL's per-thread error queue
  // once made them drop every TLS connection of the node).
  EXPECT_TRUE(a.sees_alive("b"));
  EXPECT_EQ(a.directory->member("b")->since, b_since) << "a lost b meanwhile";
}

TEST(cluster_node, unreadable_tls_files_stop_the_start_with_their_name) {
  test_pki pki;
  auto o = opts("a");
  o.tls = pki.node_cert("a", pki.ca(), pki.ca());
  o.tls.key = pki.file("missing.key");
  test_node a{o};
  ASSERT_FALSE(a.started);
  EXPECT_NE(message_of(a.started.error()).find("cluster.tls.key '" + o.tls.key + "': No such file"),
            std::string::npos)
    << message_of(a.started.error());
}

/// Starts a TLS node with `tls` and returns why it did not start (empty if it did).
std::string start_error(const cluster_tls_config& tls) {
  auto o = opts("a");
  o.tls = tls;
  test_node n{o};
  return n.started ? std::string{} : message_of(n.started.error());
}

// CAF loads these files only when the first peer connects, and throws from its I/O thread when
// OpenSSL refuses them, which ends the process: the node must refuse to start instead.
TEST(cluster_node, tls_files_openssl_refuses_stop_the_start_with_their_name_and_problem) {
  test_pki pki;
  auto good = pki.node_cert("a", pki.ca(), pki.ca());
  auto other = pki.node_cert("b", pki.ca(), pki.ca());
  ASSERT_EQ(start_error(good), "");

  auto t = good;
  t.certificate = pki.write("not-pem.pem", "this is not a certificate\n");
  auto why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.certificate '" + t.certificate + "': not a PEM certificate"),
            std::string::npos)
    << why;

  t = good;
  t.key = pki.write("empty.key", "");
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.key '" + t.key + "': the file is empty"), std::string::npos)
    << why;

  t = good;
  t.key =
    pki.write("garbage.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.key '" + t.key + "': not a PEM private key"), std::string::npos)
    << why;

  t = good;
  t.ca = pki.file("");
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.ca '" + t.ca + "': it is a directory"), std::string::npos)
    << why;

  t = good;
  t.key = other.key;
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.key '" + t.key + "': does not match the certificate '" +
                     t.certificate + "'"),
            std::string::npos)
    << why;

  t = good;
  t.ca = good.key; // PEM, but no certificate in it.
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.ca '" + t.ca + "': no PEM certificate in it"),
            std::string::npos)
    << why;

  // Every problem at once, so that one run of the node (or of config check) names them all.
  t.certificate = pki.write("not-pem.pem", "nope\n");
  why = start_error(t);
  EXPECT_NE(why.find("cluster.tls.certificate"), std::string::npos) << why;
  EXPECT_NE(why.find("cluster.tls.ca"), std::string::npos) << why;
}

} // namespace
} // namespace manifold
