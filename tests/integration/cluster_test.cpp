// Failover of a movable connector between real `manifold node run` processes with a real etcd:
// kill -9 and SIGSTOP of its owner, the unified API and stream across nodes, and the operator
// commands (cluster status, drain, connector move). pymodbus logs every request it answers, so
// the tests see from the device's side who polled when.

#include <csignal>
#include <cstdio>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "integration/cluster_fixture.hpp"
#include "support/websocket.hpp"

namespace {

using namespace manifold::test;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

std::string dump(const std::vector<modbus_request>& requests, double from = 0) {
  std::ostringstream os;
  for (auto& r : requests)
    if (r.t >= from) os << "  client=" << r.client_port << " t=" << std::fixed << r.t << '\n';
  return os.str();
}

/// The quality of the speed point as `node`'s gateway serves it.
std::string speed_quality(three_node_cluster& f, const std::string& node) {
  auto p = f.get(node, "/v1/devices/line-plc/points/speed");
  return p.is_object() ? p.value("quality", "") : std::string{};
}

bool mbpoll_reads(std::uint16_t port, int raw) {
  auto r = run_command({"mbpoll", "-m", "tcp", "-p", std::to_string(port), "-a", "1", "-t", "4",
                        "-r", "1", "-c", "1", "-1", "127.0.0.1"});
  return r.exit_code == 0 &&
         std::regex_search(r.output, std::regex{R"(\[1\]:\s+)" + std::to_string(raw) + R"(\b)"});
}

TEST_F(three_node_cluster, kill_9_of_the_owner_moves_the_connector_within_the_lease_bound) {
  auto owner = modbus_owner();
  ASSERT_FALSE(owner.empty());
  auto survivor = other_server(owner);
  ASSERT_TRUE(wait_until([&] { return speed_quality(*this, "edge-1") == "good"; }, 15s))
    << cluster->logs();

  auto t0 = steady::now();
  double killed_at = monotonic_seconds();
  cluster->kill(owner);

  // The survivor runs it, as it says itself.
  ASSERT_TRUE(cluster->wait_view(survivor, [&](const json& v) {
    auto running = nodes_running(v, "line-modbus");
    return running == std::vector<std::string>{survivor};
  }, 30s)) << cluster->view(survivor).dump(2) << cluster->logs();
  auto owned_after = std::chrono::duration<double>(steady::now() - t0).count();

  // The device saw the first request of the new owner.
  double first_poll = 0;
  ASSERT_TRUE(wait_until([&] {
    auto rs = modbus->requests();
    std::set<std::uint16_t> before;
    for (auto& r : rs)
      if (r.t < killed_at) before.insert(r.client_port);
    for (auto& r : rs)
      if (r.t > killed_at && before.count(r.client_port) == 0) {
        first_poll = r.t - killed_at;
        return true;
      }
    return false;
  }, 10s)) << dump(modbus->requests(), killed_at);

  // etcd expires the lease at most lease_ttl after the last renewal; the survivor then needs a
  // few steps (leader, assignment, owner key, start). The fence margin plus 2 s of slack absorb
  // those on a busy machine.
  auto bound = std::chrono::duration<double>(lease_ttl + fence_margin + 2s).count();
  std::printf("[ measured ] kill -9 of %s: %s runs line-modbus after %.2f s, first poll after "
              "%.2f s (bound %.1f s)\n",
              owner.c_str(), survivor.c_str(), owned_after, first_poll, bound);
  EXPECT_LE(owned_after, bound);
  EXPECT_LE(first_poll, bound);

  // The edge node's gateway serves the points from the new owner again.
  ASSERT_TRUE(cluster->wait_view("edge-1", [&](const json& v) {
    return health_of(v, owner) == "down" &&
           nodes_running(v, "line-modbus") == std::vector<std::string>{survivor};
  }, 15s)) << cluster->view("edge-1").dump(2);
  ASSERT_TRUE(wait_until([&] { return speed_quality(*this, "edge-1") == "good"; }, 15s))
    << cluster->logs();
  auto device = get("edge-1", "/v1/devices/line-plc");
  EXPECT_EQ(device.value("node", ""), survivor) << device.dump();

  // An action through the edge gateway reaches the device; mbpoll reads it back.
  auto r = http_post(cluster->api_port("edge-1"), "/v1/devices/line-plc/actions/set_speed",
                     R"({"value": 42.5})");
  ASSERT_EQ(r.status, 200) << r.body << cluster->logs();
  EXPECT_EQ(json::parse(r.body)["result"], 42.5);
  EXPECT_TRUE(mbpoll_reads(modbus->port(), 425));
  // So does a point write.
  r = http_request(cluster->api_port("edge-1"), "PUT", "/v1/devices/line-plc/points/speed",
                   R"({"value": 17.3})", {{"Content-Type", "application/json"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(mbpoll_reads(modbus->port(), 173));
}

TEST_F(three_node_cluster, a_paused_owner_never_polls_again_after_the_takeover_and_rejoins) {
  auto owner = modbus_owner();
  ASSERT_FALSE(owner.empty());
  auto survivor = other_server(owner);
  ASSERT_TRUE(wait_until([&] { return modbus->requests().size() >= 5; }, 15s)) << modbus->log();
  auto old_port = modbus->requests().back().client_port;

  double paused_at = monotonic_seconds();
  cluster->signal(owner, SIGSTOP);

  // Another server takes over and polls.
  std::uint16_t new_port = 0;
  ASSERT_TRUE(wait_until([&] {
    for (auto& r : modbus->requests())
      if (r.t > paused_at && r.client_port != old_port) {
        new_port = r.client_port;
        return true;
      }
    return false;
  }, 30s)) << dump(modbus->requests(), paused_at) << cluster->logs();
  ASSERT_TRUE(cluster->wait_view(survivor, [&](const json& v) {
    return nodes_running(v, "line-modbus") == std::vector<std::string>{survivor};
  }, 15s)) << cluster->view(survivor).dump(2);

  double resumed_at = monotonic_seconds();
  auto pid = cluster->pid(owner);
  cluster->signal(owner, SIGCONT);

  // The old owner rejoins without a restart: the others see it alive, it sees them, and it knows
  // it no longer runs the connector.
  ASSERT_TRUE(cluster->wait_view(survivor, [&](const json& v) {
    return health_of(v, owner) == "alive";
  }, 20s)) << cluster->view(survivor).dump(2) << cluster->logs();
  ASSERT_TRUE(cluster->wait_view(owner, [&](const json& v) {
    auto running = nodes_running(v, "line-modbus");
    return health_of(v, survivor) == "alive" && health_of(v, "edge-1") == "alive" &&
           running == std::vector<std::string>{survivor};
  }, 20s)) << cluster->view(owner).dump(2) << cluster->logs();
  EXPECT_TRUE(cluster->running(owner));
  EXPECT_EQ(cluster->pid(owner), pid);

  // Keep watching while the new owner polls on: ten more of its requests after the rejoin.
  double rejoined_at = monotonic_seconds();
  ASSERT_TRUE(wait_until([&] {
    int n = 0;
    for (auto& r : modbus->requests()) n += r.t > rejoined_at && r.client_port == new_port;
    return n >= 10;
  }, 15s)) << dump(modbus->requests(), paused_at);

  auto requests = modbus->requests();
  auto interleaved = interleaving(requests);
  EXPECT_TRUE(interleaved.empty()) << interleaved << "\nrequests since the pause:\n"
                                   << dump(requests, paused_at - 1);
  for (auto& r : requests) {
    EXPECT_FALSE(r.t > resumed_at && r.client_port != new_port)
      << "a request from client port " << r.client_port << " at t=" << r.t
      << " after the old owner resumed (t=" << resumed_at << "); the new owner is port "
      << new_port << "\n" << dump(requests, paused_at - 1);
  }
  int old_after_pause = 0;
  for (auto& r : requests) old_after_pause += r.t > paused_at && r.client_port == old_port;
  EXPECT_EQ(old_after_pause, 0) << dump(requests, paused_at - 1);
}

// -- unified API ----------------------------------------------------------------------------------

using manifold::test::ws_client;

TEST_F(three_node_cluster, every_gateway_lists_every_device_with_its_node_and_streams_it) {
  auto owner = modbus_owner();
  ASSERT_FALSE(owner.empty());
  for (auto& node : cluster->ids()) {
    auto devices = get(node, "/v1/devices");
    ASSERT_TRUE(devices.is_array()) << node;
    std::map<std::string, json> by_name;
    for (auto& d : devices) by_name[d.value("name", "")] = d;
    ASSERT_EQ(by_name.size(), 2u) << node << ": " << devices.dump();
    EXPECT_EQ(by_name["line-plc"]["node"], owner) << node << ": " << devices.dump();
    EXPECT_EQ(by_name["line-plc"]["available"], true) << node;
    EXPECT_EQ(by_name["cell-temperature"]["node"], "edge-1") << node << ": " << devices.dump();
    EXPECT_EQ(by_name["cell-temperature"]["connector"], "cell-sim") << node;
  }

  // The edge node's stream carries readings the owner's modbus connector produced.
  ws_client ws{cluster->api_port("edge-1"), "/v1/stream?device=line-plc"};
  std::optional<json> m;
  auto until = steady::now() + 15s;
  while (steady::now() < until) {
    m = ws.next(5s);
    if (m && m->value("connector", "") == "line-modbus") break;
  }
  ASSERT_TRUE(m && m->is_object()) << cluster->logs();
  EXPECT_EQ((*m)["device"], "line-plc") << *m;
  EXPECT_EQ((*m)["point"], "speed") << *m;
  EXPECT_EQ((*m)["value"], 12.3) << *m; // holding register 0 holds 123, scale 0.1
  EXPECT_EQ((*m)["quality"], "good") << *m;
  // A stream filtered to the edge's own device carries those too.
  ws_client local{cluster->api_port("server-1"), "/v1/stream?device=cell-temperature"};
  auto c = local.next(10s);
  ASSERT_TRUE(c && c->is_object()) << cluster->logs();
  EXPECT_EQ((*c)["connector"], "cell-sim") << *c;
}

// -- operations -----------------------------------------------------------------------------------

TEST_F(three_node_cluster, status_drain_and_move_through_the_cli) {
  auto owner = modbus_owner();
  ASSERT_FALSE(owner.empty());
  auto other = other_server(owner);

  auto status = cli("edge-1", {"cluster", "status", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  auto doc = json::parse(status.output, nullptr, false);
  ASSERT_TRUE(doc.is_object()) << status.output;
  EXPECT_EQ(doc["self"], "edge-1");
  EXPECT_EQ(doc["failover"], true);
  EXPECT_EQ(doc["members"].size(), 3u) << status.output;
  EXPECT_TRUE(doc["leader"]["id"].is_string()) << status.output;
  EXPECT_EQ(doc["leader"]["chosen_by"], "etcd") << status.output;
  EXPECT_EQ(connector_entry(doc, "line-modbus")["node"], owner) << status.output;
  EXPECT_EQ(connector_entry(doc, "cell-sim")["node"], "edge-1") << status.output;
  auto text = cli("server-1", {"cluster", "status"});
  ASSERT_EQ(text.exit_code, 0) << text.output;
  EXPECT_NE(text.output.find("line-modbus"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("leader: " + doc["leader"]["id"].get<std::string>()),
            std::string::npos)
    << text.output;

  // Drain moves it to the other server.
  auto drain = cli("edge-1", {"cluster", "drain", owner});
  ASSERT_EQ(drain.exit_code, 0) << drain.output;
  EXPECT_NE(drain.output.find(owner), std::string::npos) << drain.output;
  ASSERT_TRUE(cluster->wait_view(owner, [&](const json& v) {
    return nodes_running(v, "line-modbus") == std::vector<std::string>{other};
  }, 20s)) << cluster->view(owner).dump(2) << cluster->logs();
  auto undo = cli("edge-1", {"cluster", "drain", owner, "--undo"});
  ASSERT_EQ(undo.exit_code, 0) << undo.output;
  ASSERT_TRUE(cluster->wait_view(owner, [&](const json& v) {
    auto& draining = v["ownership"]["draining"];
    return draining.is_array() && draining.empty();
  }, 10s)) << cluster->view(owner).dump(2);

  // A move brings it back.
  auto move = cli("server-1", {"connector", "move", "line-modbus", "--to", owner});
  ASSERT_EQ(move.exit_code, 0) << move.output;
  ASSERT_TRUE(cluster->wait_view(other, [&](const json& v) {
    return nodes_running(v, "line-modbus") == std::vector<std::string>{owner};
  }, 20s)) << cluster->view(other).dump(2) << cluster->logs();
  ASSERT_TRUE(wait_until([&] { return speed_quality(*this, "edge-1") == "good"; }, 15s));
  // A planned hand-over stops the old owner before the new one polls, as a failover does.
  auto requests = modbus->requests();
  auto interleaved = interleaving(requests);
  EXPECT_TRUE(interleaved.empty()) << interleaved << "\n" << dump(requests);

  // Refused: the edge box does not match role=server; a pinned connector does not move; an
  // unknown node.
  auto to_edge = cli("server-2", {"connector", "move", "line-modbus", "--to", "edge-1"});
  EXPECT_EQ(to_edge.exit_code, 1) << to_edge.output;
  EXPECT_NE(to_edge.output.find("role=server"), std::string::npos) << to_edge.output;
  auto pinned = cli("server-2", {"connector", "move", "cell-sim", "--to", "server-1"});
  EXPECT_EQ(pinned.exit_code, 1) << pinned.output;
  EXPECT_NE(pinned.output.find("pinned to node 'edge-1'"), std::string::npos) << pinned.output;
  auto nowhere = cli("server-2", {"connector", "move", "line-modbus", "--to", "server-9"});
  EXPECT_EQ(nowhere.exit_code, 1) << nowhere.output;
  EXPECT_NE(nowhere.output.find("server-9"), std::string::npos) << nowhere.output;
  auto drain_unknown = cli("server-2", {"cluster", "drain", "server-9"});
  EXPECT_EQ(drain_unknown.exit_code, 1) << drain_unknown.output;

  // None of the refused moves moved anything.
  EXPECT_EQ(modbus_owner(), owner);
}

} // namespace
