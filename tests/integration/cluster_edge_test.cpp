// The edge side of a cluster with real `manifold node run` processes: a pinned connector whose
// node dies never moves, an edge box cut off from its servers keeps serving its own devices,
// mutual TLS keeps out a node whose certificate another CA signed, and a cluster without etcd
// serves pinned connectors across nodes but refuses to fail over.

#include <csignal>
#include <cstdio>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "integration/cluster_fixture.hpp"

namespace {

using namespace manifold::test;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

/// A gateway answer and how long it took.
struct timed_response {
  http_response response;
  std::chrono::duration<double> took{};
};

timed_response timed_get(std::uint16_t port, const std::string& target) {
  auto t0 = steady::now();
  timed_response out;
  out.response = http_get(port, target);
  out.took = steady::now() - t0;
  return out;
}

/// Whether every point of a device list answer has quality good.
bool all_good(const http_response& r) {
  if (r.status != 200) return false;
  auto points = json::parse(r.body, nullptr, false);
  if (!points.is_array() || points.empty()) return false;
  for (auto& p : points)
    if (p.value("quality", "") != "good") return false;
  return true;
}

std::string error_message(const http_response& r) {
  auto j = json::parse(r.body, nullptr, false);
  if (j.is_discarded() || !j.contains("error")) return r.body;
  return j["error"].value("message", r.body);
}

TEST_F(three_node_cluster, a_pinned_connector_never_moves_when_its_node_dies) {
  auto points = "/v1/devices/cell-temperature/points";
  ASSERT_TRUE(wait_until([&] { return all_good(http_get(cluster->api_port("server-1"), points)); },
                         15s))
    << http_get(cluster->api_port("server-1"), points).body << cluster->logs();

  cluster->kill("edge-1");

  // A server's gateway answers 503 naming edge-1, and never keeps a client waiting for a node
  // that is gone.
  std::chrono::duration<double> slowest{};
  timed_response last;
  ASSERT_TRUE(wait_until([&] {
    last = timed_get(cluster->api_port("server-1"), points);
    slowest = std::max(slowest, last.took);
    return last.response.status == 503;
  }, 10s)) << last.response.status << " " << last.response.body;
  EXPECT_NE(error_message(last.response).find("edge-1"), std::string::npos) << last.response.body;
  for (auto& server : {"server-1", "server-2"}) {
    auto r = timed_get(cluster->api_port(server), points);
    slowest = std::max(slowest, r.took);
    EXPECT_EQ(r.response.status, 503) << server << ": " << r.response.body;
    EXPECT_NE(error_message(r.response).find("edge-1"), std::string::npos) << r.response.body;
  }
  std::printf("[ measured ] slowest answer for the dead node's device: %.3f s\n", slowest.count());
  EXPECT_LT(slowest.count(), 1.0);

  // Longer than a lease and its margin: no server ever runs the pinned connector.
  auto window = lease_ttl + fence_margin + 1s;
  auto until = steady::now() + window;
  int looks = 0;
  while (steady::now() < until) {
    for (auto& server : {"server-1", "server-2"}) {
      auto v = cluster->view(server);
      ASSERT_TRUE(v.is_object()) << server << cluster->logs();
      auto running = nodes_running(v, "cell-sim");
      ASSERT_TRUE(running.empty()) << server << " sees cell-sim running on " << running.front();
      auto entry = connector_entry(v, "cell-sim");
      EXPECT_EQ(entry["node"], "edge-1") << entry.dump();
      EXPECT_EQ(entry["available"], false) << entry.dump();
      auto s = get(server, "/v1/connectors/cell-sim");
      EXPECT_NE(s.value("state", ""), "running") << s.dump();
      ++looks;
    }
  }
  EXPECT_GE(looks, 10);
  auto v = cluster->view("server-2");
  EXPECT_EQ(health_of(v, "edge-1"), "down") << v.dump(2);

  // Back: edge-1 runs it again and the servers serve it.
  cluster->start("edge-1");
  ASSERT_TRUE(wait_until([&] { return all_good(http_get(cluster->api_port("server-2"), points)); },
                         20s))
    << http_get(cluster->api_port("server-2"), points).body << cluster->logs();
  ASSERT_TRUE(cluster->wait_view("server-1", [](const json& v) {
    return nodes_running(v, "cell-sim") == std::vector<std::string>{"edge-1"};
  }, 10s)) << cluster->view("server-1").dump(2);
}

TEST_F(three_node_cluster, an_edge_cut_off_from_its_servers_keeps_serving_its_own_devices) {
  auto edge = cluster->api_port("edge-1");
  auto point = "/v1/devices/cell-temperature/points";
  ASSERT_TRUE(wait_until([&] { return all_good(http_get(edge, point)); }, 15s))
    << cluster->logs();

  cluster->signal("server-1", SIGSTOP);
  cluster->signal("server-2", SIGSTOP);
  ASSERT_TRUE(cluster->wait_view("edge-1", [](const json& v) {
    return health_of(v, "server-1") == "down" && health_of(v, "server-2") == "down";
  }, 10s)) << cluster->view("edge-1").dump(2) << cluster->logs();

  // Its pinned connector runs on and its readings stay fresh on its own gateway.
  auto c = get("edge-1", "/v1/connectors/cell-sim");
  EXPECT_EQ(c.value("state", ""), "running") << c.dump();
  auto stamp = [&] {
    auto p = get("edge-1", point);
    return p.is_array() && !p.empty() ? p[0].value("timestamp", "") : std::string{};
  };
  auto before = stamp();
  ASSERT_FALSE(before.empty());
  EXPECT_TRUE(wait_until([&] { return !stamp().empty() && stamp() != before; }, 5s));
  EXPECT_TRUE(all_good(http_get(edge, point))) << http_get(edge, point).body;
  // The servers' device answers 503 at once instead of hanging on a paused node.
  auto t = timed_get(edge, "/v1/devices/line-plc/points");
  EXPECT_EQ(t.response.status, 503) << t.response.body;
  EXPECT_LT(t.took.count(), 1.0);

  auto pid1 = cluster->pid("server-1");
  auto pid2 = cluster->pid("server-2");
  cluster->signal("server-1", SIGCONT);
  cluster->signal("server-2", SIGCONT);
  ASSERT_TRUE(cluster->wait_view("edge-1", [](const json& v) {
    return health_of(v, "server-1") == "alive" && health_of(v, "server-2") == "alive";
  }, 20s)) << cluster->view("edge-1").dump(2) << cluster->logs();
  EXPECT_EQ(cluster->pid("server-1"), pid1);
  EXPECT_EQ(cluster->pid("server-2"), pid2);
  EXPECT_TRUE(cluster->running("server-1") && cluster->running("server-2"));
  // And the movable connector has an owner again whose points the edge serves.
  ASSERT_TRUE(wait_until([&] { return all_good(http_get(edge, "/v1/devices/line-plc/points")); },
                         20s))
    << cluster->view("edge-1").dump(2) << cluster->logs();
  // Through the pause and the resume, at most one server polled at a time.
  auto interleaved = interleaving(modbus->requests());
  EXPECT_TRUE(interleaved.empty()) << interleaved << "\n" << modbus->log();
}

// -- TLS ------------------------------------------------------------------------------------------

/// Certificates made with the openssl command line tool.
class test_pki {
public:
  explicit test_pki(const temp_dir& dir) : dir_(dir) {
    make_ca("ca");
    make_ca("other-ca");
  }

  /// Writes `node`'s certificate signed by `ca`; returns the `tls:` keys trusting `trust`.
  std::string node_tls(const std::string& node, const std::string& ca, const std::string& trust) {
    auto key = dir_.file(node + ".key");
    auto csr = dir_.file(node + ".csr");
    auto pem = dir_.file(node + ".pem");
    run({"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", csr, "-subj", "/CN=" + node});
    run({"openssl", "x509", "-req", "-in", csr, "-CA", dir_.file(ca + ".pem"), "-CAkey",
         dir_.file(ca + ".key"), "-CAcreateserial", "-out", pem, "-days", "1"});
    return "  tls:\n    certificate: " + pem + "\n    key: " + key + "\n    ca: " +
           dir_.file(trust + ".pem") + "\n";
  }

private:
  void make_ca(const std::string& name) {
    run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", dir_.file(name + ".key"), "-out", dir_.file(name + ".pem"), "-days",
         "1", "-subj", "/CN=" + name});
  }

  void run(const std::vector<std::string>& argv) {
    auto r = run_command(argv);
    if (r.exit_code != 0)
      throw std::runtime_error(argv[0] + " " + argv[1] + " failed: " + r.output);
  }

  const temp_dir& dir_;
};

TEST(cluster_tls, nodes_of_one_ca_form_the_cluster_and_a_node_of_another_ca_cannot_join) {
  temp_dir certs;
  test_pki pki{certs};
  auto modbus_port = free_port(); // Nobody listens: only membership matters here.
  test_cluster cluster{MANIFOLD_BINARY, cluster_config({}, modbus_port)};
  auto node_config = [&](const std::string& id, const std::string& ca) {
    return cluster.dir().write(id + ".yaml",
                               cluster_config({}, modbus_port, pki.node_tls(id, ca, "ca")));
  };
  cluster.add({"server-1", {"role=server"}, node_config("server-1", "ca")});
  cluster.add({"server-2", {"role=server"}, node_config("server-2", "ca")});
  cluster.add({"edge-1", {"role=edge"}, node_config("edge-1", "ca")});
  // Trusts the right CA, but its own certificate comes from another one.
  cluster.add({"intruder", {"role=server"}, node_config("intruder", "other-ca")});
  std::vector<std::string> good{"server-1", "server-2", "edge-1"};
  for (auto& id : good) cluster.start(id);
  ASSERT_TRUE(cluster.wait_formed(good, 30s)) << cluster.logs();

  cluster.start("intruder");
  // It keeps trying every seed; let it try each a few times (or stop early when it got in, which
  // the checks below report).
  ASSERT_TRUE(cluster.wait_view("intruder", [&](const json& v) {
    for (auto& id : good)
      if (health_of(v, id) == "alive") return true;
    if (!v["seeds"].is_array() || v["seeds"].size() != 3) return false;
    for (auto& s : v["seeds"])
      if (s.value("attempts", 0) < 3) return false;
    return true;
  }, 30s)) << cluster.view("intruder").dump(2) << cluster.logs();

  for (auto& id : good) {
    auto v = cluster.view(id);
    EXPECT_TRUE(member_of(v, "intruder").is_null()) << id << ": " << v.dump(2);
    for (auto& other : good) EXPECT_EQ(health_of(v, other), "alive") << id << ": " << v.dump(2);
  }
  auto v = cluster.view("intruder");
  for (auto& id : good) EXPECT_NE(health_of(v, id), "alive") << v.dump(2);
  for (auto& s : v["seeds"]) EXPECT_EQ(s["member"], "") << v.dump(2);
  // The three still serve each other's devices.
  EXPECT_TRUE(wait_until([&] {
    return all_good(http_get(cluster.api_port("server-1"), "/v1/devices/cell-temperature/points"));
  }, 10s)) << cluster.logs();
}

// -- without etcd ---------------------------------------------------------------------------------

TEST(cluster_without_etcd, pinned_connectors_work_across_nodes_and_nothing_fails_over) {
  temp_dir dir;
  modbus_peer modbus{dir};
  test_cluster cluster{MANIFOLD_BINARY, cluster_config({}, modbus.port())};
  cluster.add({"server-1", {"role=server"}, {}});
  cluster.add({"edge-1", {"role=edge"}, {}});
  cluster.start_all();
  ASSERT_TRUE(cluster.wait_formed(cluster.ids(), 30s)) << cluster.logs();

  // server-1's modbus device, read through edge-1; edge-1's sim device through server-1.
  auto edge = cluster.api_port("edge-1");
  ASSERT_TRUE(wait_until([&] {
    auto r = http_get(edge, "/v1/devices/line-plc/points/speed");
    auto p = json::parse(r.body, nullptr, false);
    return r.status == 200 && p.value("quality", "") == "good" && p["value"] == 12.3;
  }, 15s)) << http_get(edge, "/v1/devices/line-plc/points/speed").body << cluster.logs();
  EXPECT_TRUE(wait_until([&] {
    return all_good(http_get(cluster.api_port("server-1"), "/v1/devices/cell-temperature/points"));
  }, 15s));

  // Each node reports what runs where.
  ASSERT_TRUE(cluster.wait_view("edge-1", [](const json& v) {
    return nodes_running(v, "line-modbus") == std::vector<std::string>{"server-1"} &&
           nodes_running(v, "cell-sim") == std::vector<std::string>{"edge-1"};
  }, 10s)) << cluster.view("edge-1").dump(2);

  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), MANIFOLD_BINARY);
    args.push_back("--url");
    args.push_back(cluster.url("edge-1"));
    return run_command(args, 30s);
  };
  auto status = run({"cluster", "status"});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("no etcd configured"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("nothing fails over"), std::string::npos) << status.output;
  auto doc = json::parse(run({"cluster", "status", "--json"}).output, nullptr, false);
  ASSERT_TRUE(doc.is_object());
  EXPECT_EQ(doc["failover"], false);
  EXPECT_EQ(doc["leader"]["id"], "edge-1") << doc.dump(2); // the lowest id
  EXPECT_EQ(doc["leader"]["chosen_by"], "lowest id") << doc.dump(2);

  auto r = http_post(edge, "/v1/cluster/nodes/server-1/drain", "");
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_NE(error_message(r).find("cluster.etcd"), std::string::npos) << r.body;
  auto drain = run({"cluster", "drain", "server-1"});
  EXPECT_EQ(drain.exit_code, 1) << drain.output;
  EXPECT_NE(drain.output.find("HTTP 409"), std::string::npos) << drain.output;
  auto move = run({"connector", "move", "line-modbus", "--to", "edge-1"});
  EXPECT_EQ(move.exit_code, 1) << move.output;
  EXPECT_NE(move.output.find("pinned to node 'server-1'"), std::string::npos) << move.output;

  // Nothing fails over: with server-1 gone its device answers 503 on edge-1 and stays there.
  cluster.kill("server-1");
  ASSERT_TRUE(wait_until([&] {
    return http_get(edge, "/v1/devices/line-plc/points").status == 503;
  }, 10s)) << cluster.logs();
  auto gone = http_get(edge, "/v1/devices/line-plc/points");
  EXPECT_NE(error_message(gone).find("server-1"), std::string::npos) << gone.body;
  EXPECT_TRUE(nodes_running(cluster.view("edge-1"), "line-modbus").empty());
}

} // namespace
