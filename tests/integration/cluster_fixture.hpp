#pragma once

// The cluster of examples/cluster.yaml with short timings, as real processes: a real etcd, a
// pymodbus server logging every request, two servers and an edge box. Shared by the cluster
// integration tests.

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/cluster.hpp"
#include "support/http.hpp"
#include "support/processes.hpp"

namespace manifold::test {

using namespace std::chrono_literals;

/// Timings the config below uses; tests derive their bounds from them.
inline constexpr auto lease_ttl = 2000ms;
inline constexpr auto fence_margin = 600ms;
inline constexpr auto failure_timeout = 1000ms;

/// The modbus connector moves between the servers; the sim connector is pinned to edge-1.
inline std::string cluster_config(const std::string& etcd_endpoint, std::uint16_t modbus_port,
                                  const std::string& extra_cluster_keys = {}) {
  std::string etcd;
  if (!etcd_endpoint.empty())
    etcd = "  etcd:\n"
           "    endpoints: [" + etcd_endpoint + "]\n"
           "    prefix: /realtests\n"
           "    lease_ttl: 2s\n"
           "    fence_margin: 600ms\n"
           "    request_timeout: 300ms\n";
  return "node:\n"
         "  labels: {site: test-plant}\n"
         "gateway:\n"
         "  listen: 127.0.0.1:0\n"
         "cluster:\n"
         "  name: realtests\n"
         "  listen: 127.0.0.1:0\n"
         "  heartbeat_interval: 200ms\n"
         "  failure_timeout: 1s\n"
         "  request_timeout: 300ms\n" +
         extra_cluster_keys + etcd +
         "connectors:\n"
         "  - name: line-modbus\n"
         "    type: modbus\n"
         "    host: 127.0.0.1\n"
         "    port: " + std::to_string(modbus_port) + "\n"
         "    timeout: 300ms\n"
         "    poll_interval: 100ms\n"
         "    placement: " +
         (etcd.empty() ? std::string{"{node: server-1}"}
                       : std::string{"{selector: role=server, failover: true}"}) + "\n"
         "    devices:\n"
         "      - name: line-plc\n"
         "        unit_id: 1\n"
         "        points:\n"
         "          - {name: speed, type: double, table: holding_register, address: 0,\n"
         "             scale: 0.1, writable: true}\n"
         "        actions:\n"
         "          - name: set_speed\n"
         "            write: speed\n"
         "            params: [{name: value, type: double, min: 0, max: 3000}]\n"
         "            result: double\n"
         "  - name: cell-sim\n"
         "    type: sim\n"
         "    poll_interval: 100ms\n"
         "    placement: {node: edge-1}\n"
         "    devices:\n"
         "      - name: cell-temperature\n"
         "        model: thermostat\n";
}

/// A pymodbus server on a free port that logs every request with its client port.
class modbus_peer {
public:
  explicit modbus_peer(const temp_dir& dir) : port_(free_port()) {
    process_ = std::make_unique<child_process>(
      std::vector<std::string>{"/usr/bin/python3",
                               std::string{MANIFOLD_SOURCE_DIR} + "/tests/peers/modbus_server.py",
                               std::to_string(port_), "--log-requests"},
      dir.file("modbus.log"));
    if (!wait_until([&] { return process_->log().find("ready") != std::string::npos; }, 20s))
      throw std::runtime_error("pymodbus did not start:\n" + process_->log());
  }
  std::uint16_t port() const { return port_; }
  std::string log() const { return process_->log(); }
  std::vector<modbus_request> requests() const { return parse_modbus_requests(log()); }

private:
  std::uint16_t port_;
  std::unique_ptr<child_process> process_;
};

/// etcd + pymodbus + server-1, server-2 (role=server) and edge-1 (role=edge), formed, with the
/// movable connector running on one server.
struct three_node_cluster : ::testing::Test {
  temp_dir peers_dir;
  std::unique_ptr<etcd_process> etcd;
  std::unique_ptr<modbus_peer> modbus;
  std::unique_ptr<test_cluster> cluster;

  void SetUp() override {
    etcd = std::make_unique<etcd_process>();
    modbus = std::make_unique<modbus_peer>(peers_dir);
    cluster = std::make_unique<test_cluster>(MANIFOLD_BINARY,
                                             cluster_config(etcd->endpoint(), modbus->port()));
    cluster->add({"server-1", {"role=server"}, {}});
    cluster->add({"server-2", {"role=server"}, {}});
    cluster->add({"edge-1", {"role=edge"}, {}});
    cluster->start_all();
    ASSERT_TRUE(cluster->wait_formed(cluster->ids(), 30s)) << cluster->logs();
    ASSERT_TRUE(cluster->wait_view("edge-1", [](const nlohmann::json& v) {
      return nodes_running(v, "line-modbus").size() == 1;
    }, 30s)) << cluster->view("edge-1").dump(2) << cluster->logs();
  }

  /// The one node that runs the movable connector, as `seen_from` sees it.
  std::string modbus_owner(const std::string& seen_from = "edge-1") {
    auto running = nodes_running(cluster->view(seen_from), "line-modbus");
    return running.size() == 1 ? running.front() : std::string{};
  }

  static std::string other_server(const std::string& server) {
    return server == "server-1" ? "server-2" : "server-1";
  }

  /// GET on a node's gateway, parsed (null json unless 200).
  nlohmann::json get(const std::string& node, const std::string& target) {
    auto r = http_get(cluster->api_port(node), target);
    if (r.status != 200) return nullptr;
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    return j.is_discarded() ? nlohmann::json(nullptr) : j;
  }

  /// Runs the manifold CLI against `node`'s gateway.
  command_result cli(const std::string& node, std::vector<std::string> args) {
    args.insert(args.begin(), MANIFOLD_BINARY);
    args.push_back("--url");
    args.push_back(cluster->url(node));
    return run_command(args, 30s);
  }
};

} // namespace manifold::test
