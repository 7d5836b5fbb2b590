// The gateway of a cluster node, in process: two nodes without etcd (pinned connectors only)
// serve each other's devices, say where each connector runs, and answer 503 at once for a
// device whose node is gone.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "manifold/cli/node_runtime.hpp"
#include "support/http.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using json = nlohmann::json;

std::string node_yaml(const std::string& id, std::uint16_t cluster_port, std::uint16_t seed) {
  return "node:\n  id: " + id + "\n  labels: {role: " + (id == "a" ? "server" : "edge") +
         "}\n"
         "gateway:\n  listen: 127.0.0.1:0\n"
         "cluster:\n  name: t\n  listen: 127.0.0.1:" + std::to_string(cluster_port) + "\n" +
         (seed ? "  seeds: [127.0.0.1:" + std::to_string(seed) + "]\n" : std::string{}) +
         "  heartbeat_interval: 100ms\n  failure_timeout: 1s\n  request_timeout: 500ms\n"
         R"(connectors:
  - name: sim-a
    type: sim
    poll_interval: 50ms
    placement: {node: a}
    devices: [{name: thermo-a, model: thermostat}]
  - name: sim-b
    type: sim
    poll_interval: 50ms
    placement: {node: b}
    devices: [{name: counter-b, model: counter}]
)";
}

std::unique_ptr<cli::node_runtime> start_node(const std::string& id, std::uint16_t port,
                                              std::uint16_t seed) {
  auto registry = connectors::connector_registry::builtin();
  auto loaded = config::load_string(node_yaml(id, port, seed), id + ".yaml", registry.schemas(),
                                    registry.names());
  EXPECT_TRUE(loaded.config) << loaded.diag.to_string();
  if (!loaded.config) return nullptr;
  auto node = std::make_unique<cli::node_runtime>(*loaded.config, std::move(registry));
  auto err = node->start();
  EXPECT_FALSE(err) << *err;
  return node;
}

json get_json(std::uint16_t port, const std::string& target, int* status = nullptr) {
  auto r = test::http_get(port, target);
  if (status) *status = r.status;
  return json::parse(r.body, nullptr, false);
}

class cluster_api : public ::testing::Test {
protected:
  void SetUp() override {
    auto port_a = test::free_port();
    a_ = start_node("a", port_a, 0);
    b_ = start_node("b", test::free_port(), port_a);
    ASSERT_TRUE(a_ && b_);
    ASSERT_TRUE(test::wait_until(
      [&] {
        auto c = get_json(a_->port(), "/v1/cluster");
        if (!c.is_object() || c["members"].size() != 2) return false;
        for (auto& m : c["members"])
          if (m["health"] != "alive") return false;
        return true;
      },
      10s))
      << get_json(a_->port(), "/v1/cluster").dump(2);
  }

  std::unique_ptr<cli::node_runtime> a_;
  std::unique_ptr<cli::node_runtime> b_;
};

TEST_F(cluster_api, each_gateway_serves_the_devices_of_the_other_node) {
  // Node a reads node b's counter, which only b runs.
  ASSERT_TRUE(test::wait_until([&] {
    int status = 0;
    auto p = get_json(a_->port(), "/v1/devices/counter-b/points/count", &status);
    return status == 200 && p["quality"] == "good";
  }));
  auto devices = get_json(a_->port(), "/v1/devices");
  ASSERT_EQ(devices.size(), 2u);
  for (auto& d : devices) {
    EXPECT_EQ(d["node"], d["name"] == "thermo-a" ? "a" : "b") << d.dump();
    EXPECT_EQ(d["available"], true);
  }

  // An action on b's device through a's gateway runs on b.
  auto r = test::http_post(a_->port(), "/v1/devices/counter-b/actions/reset", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  auto conns = get_json(a_->port(), "/v1/connectors");
  ASSERT_EQ(conns.size(), 2u);
  for (auto& c : conns) {
    EXPECT_EQ(c["state"], "running") << c.dump();
    EXPECT_EQ(c["node"], c["name"] == "sim-a" ? "a" : "b");
  }
  // Lifecycle calls travel too.
  r = test::http_post(a_->port(), "/v1/connectors/sim-b/restart", "{}");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["node"], "b");
}

TEST_F(cluster_api, cluster_status_says_there_is_no_failover_without_etcd) {
  // Each node settles on the leader at its next heartbeat after it saw the other.
  ASSERT_TRUE(test::wait_until(
    [&] { return get_json(b_->port(), "/v1/cluster")["leader"]["id"] == "a"; }));
  auto c = get_json(b_->port(), "/v1/cluster");
  EXPECT_EQ(c["cluster"], "t");
  EXPECT_EQ(c["self"], "b");
  EXPECT_EQ(c["failover"], false);
  EXPECT_NE(c["note"].get<std::string>().find("nothing fails over"), std::string::npos);
  EXPECT_EQ(c["leader"]["id"], "a");
  EXPECT_EQ(c["leader"]["chosen_by"], "lowest id");
  ASSERT_EQ(c["connectors"].size(), 2u);
  EXPECT_EQ(c["connectors"][1]["placement"], "node=b");

  auto metrics = test::http_get(b_->port(), "/metrics").body;
  EXPECT_NE(metrics.find("manifold_cluster_members{health=\"alive\"} 2"), std::string::npos)
    << metrics;
  EXPECT_NE(metrics.find("manifold_cluster_leader 0"), std::string::npos);

  auto drain = test::http_post(a_->port(), "/v1/cluster/nodes/b/drain", "");
  EXPECT_EQ(drain.status, 409) << drain.body;
  EXPECT_NE(drain.body.find("needs 'cluster.etcd'"), std::string::npos) << drain.body;
  auto move = test::http_post(a_->port(), "/v1/connectors/sim-b/move", R"({"to": "a"})");
  EXPECT_EQ(move.status, 409);
  EXPECT_NE(move.body.find("pinned to node 'b'"), std::string::npos) << move.body;
}

TEST_F(cluster_api, bad_cluster_requests_get_clear_errors) {
  auto r = test::http_post(a_->port(), "/v1/connectors/sim-b/move", R"({"to": 3})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("{\\\"to\\\": \\\"NODE\\\"}"), std::string::npos) << r.body;
  r = test::http_post(a_->port(), "/v1/connectors/nope/move", R"({"to": "a"})");
  EXPECT_EQ(r.status, 404);
  r = test::http_post(a_->port(), "/v1/cluster/nodes/b/drain", R"({"drain": "yes"})");
  EXPECT_EQ(r.status, 400);
  r = test::http_request(a_->port(), "DELETE", "/v1/cluster");
  EXPECT_EQ(r.status, 405);
  r = test::http_post(a_->port(), "/v1/connectors/sim-b/move", R"({"to": ""})");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("must be a node id"), std::string::npos) << r.body;
  r = test::http_post(a_->port(), "/v1/connectors/sim-b/move", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("got nothing"), std::string::npos) << r.body;
  r = test::http_post(a_->port(), "/v1/connectors/sim-b/move",
                      R"({"to": ")" + std::string(5000, 'x') + R"("})");
  EXPECT_EQ(r.status, 400);
  EXPECT_LT(r.body.size(), 1000u); // The name is not echoed whole.
  r = test::http_post(a_->port(), "/v1/cluster/nodes/bad%20id/drain", "");
  EXPECT_EQ(r.status, 400);
  EXPECT_NE(r.body.find("is not a node id"), std::string::npos) << r.body;
}

TEST_F(cluster_api, a_device_whose_node_is_gone_answers_503_at_once_with_the_reason) {
  b_->stop();
  ASSERT_TRUE(test::wait_until([&] {
    auto c = get_json(a_->port(), "/v1/cluster");
    for (auto& m : c["members"])
      if (m["id"] == "b") return m["health"] == "down";
    return false;
  }));
  auto started = std::chrono::steady_clock::now();
  auto r = test::http_get(a_->port(), "/v1/devices/counter-b/points");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("runs on node 'b', which is down"), std::string::npos) << r.body;
  // The node's own devices are unaffected, and its readiness only counts its own connectors.
  EXPECT_EQ(test::http_get(a_->port(), "/v1/devices/thermo-a/points").status, 200);
  EXPECT_EQ(test::http_get(a_->port(), "/readyz").status, 200);
  auto conns = get_json(a_->port(), "/v1/connectors");
  EXPECT_EQ(conns[1]["state"], "unavailable") << conns.dump();
}

TEST_F(cluster_api, a_node_restarted_at_once_binds_its_cluster_port_again_and_rejoins) {
  // b dialed a (its seed), so a's side of that connection is a's cluster port; a closes it
  // first, which leaves it in TIME_WAIT. The port must still be usable at once.
  auto port = a_->cluster_port();
  a_->stop();
  a_.reset();
  a_ = start_node("a", port, 0);
  ASSERT_TRUE(a_);
  EXPECT_EQ(a_->cluster_port(), port);
  // b keeps dialing its seed and comes back without a restart.
  ASSERT_TRUE(test::wait_until(
    [&] {
      int status = 0;
      auto p = get_json(a_->port(), "/v1/devices/counter-b/points/count", &status);
      return status == 200 && p["quality"] == "good";
    },
    15s));
}

TEST(cluster_api_single, a_node_without_a_cluster_has_no_cluster_routes) {
  auto registry = connectors::connector_registry::builtin();
  auto loaded = config::load_string("gateway: {listen: '127.0.0.1:0'}\nconnectors:\n"
                                    "  - {name: s, type: sim, devices: [{name: d, model: counter}]}\n",
                                    "one.yaml", registry.schemas(), registry.names());
  ASSERT_TRUE(loaded.config);
  cli::node_runtime node{*loaded.config, std::move(registry)};
  ASSERT_FALSE(node.start());
  EXPECT_EQ(node.cluster_port(), 0);
  auto r = test::http_get(node.port(), "/v1/cluster");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("runs alone"), std::string::npos);
  EXPECT_EQ(json::parse(test::http_get(node.port(), "/v1/devices").body)[0].count("node"), 0u);
}

} // namespace
