// How long a movable connector is unserved after its node dies: three real `manifold` processes
// with a real etcd and a pymodbus server; each repetition kills the owner of the movable Modbus
// connector with SIGKILL and measures until another node's gateway serves the device's point with
// a fresh good reading again. Prints each repetition, the median and p99, and the bound the
// design promises (lease_ttl + fence_margin).
//
// Usage: failover_time [REPETITIONS] [LEASE_TTL_MS] [FENCE_MARGIN_MS]

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "manifold/actors/model.hpp"
#include "support/http.hpp"
#include "support/processes.hpp"

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;
using manifold::test::child_process;

constexpr const char* connector = "line-modbus";
constexpr const char* point_path = "/v1/devices/line-plc/points/speed";

/// Replaces every `{KEY}` in `text` by its value.
std::string fill(std::string text, const std::vector<std::pair<std::string, std::string>>& vars) {
  for (auto& [key, val] : vars)
    for (auto at = text.find("{" + key + "}"); at != std::string::npos;
         at = text.find("{" + key + "}", at + val.size()))
      text.replace(at, key.size() + 2, val);
  return text;
}

/// One file for every node, as examples/cluster.yaml: identity and ports come from the command
/// line. The connector polls every 100 ms, so a poll adds little to the failover time.
constexpr const char* config_template = R"(node: {log_level: warn}
cluster:
  name: failover-bench
  heartbeat_interval: 200ms
  failure_timeout: 2s
  request_timeout: 1s
  etcd:
    endpoints: [{ETCD}]
    lease_ttl: {TTL}ms
    fence_margin: {MARGIN}ms
    request_timeout: {ETCD_TIMEOUT}ms
connectors:
  - name: line-modbus
    type: modbus
    host: 127.0.0.1
    port: {MODBUS_PORT}
    poll_interval: 100ms
    placement: {selector: role=server, failover: true}
    devices:
      - name: line-plc
        unit_id: 1
        points:
          - {name: speed, type: double, table: holding_register, address: 0, scale: 0.1}
)";

std::string config_yaml(const std::string& etcd, std::uint16_t modbus_port, int ttl_ms,
                        int margin_ms) {
  // One etcd call must end well before the fence does (the config refuses anything else).
  int etcd_timeout_ms = std::min(1000, margin_ms / 2);
  return fill(config_template, {{"ETCD", etcd},
                                {"TTL", std::to_string(ttl_ms)},
                                {"MARGIN", std::to_string(margin_ms)},
                                {"ETCD_TIMEOUT", std::to_string(etcd_timeout_ms)},
                                {"MODBUS_PORT", std::to_string(modbus_port)}});
}

/// One `manifold node run` process; a restart gets fresh ports (the old ones may linger in
/// TIME_WAIT after a SIGKILL).
struct node_process {
  std::string id;
  std::uint16_t http_port = 0;
  std::uint16_t cluster_port = 0;
  std::unique_ptr<child_process> process;
};

void pick_ports(node_process& n) {
  n.http_port = manifold::test::free_port();
  n.cluster_port = manifold::test::free_port();
}

/// Starts `n` on its ports with every other node as a seed.
void start(node_process& n, const std::string& config, const std::vector<node_process>& all,
           const manifold::test::temp_dir& dir) {
  std::vector<std::string> argv{MANIFOLD_BINARY, "node", "run", "-c", config};
  argv.insert(argv.end(), {"--node-id", n.id, "--label", "role=server"});
  argv.insert(argv.end(), {"--listen", "127.0.0.1:" + std::to_string(n.http_port)});
  argv.insert(argv.end(), {"--cluster-listen", "127.0.0.1:" + std::to_string(n.cluster_port)});
  for (auto& other : all)
    if (other.id != n.id && other.cluster_port != 0)
      argv.insert(argv.end(), {"--seed", "127.0.0.1:" + std::to_string(other.cluster_port)});
  n.process = std::make_unique<child_process>(argv, dir.file(n.id + ".log"));
}

std::optional<json> get_json(std::uint16_t port, const std::string& target,
                             std::chrono::milliseconds timeout = 1s) {
  auto res = manifold::test::http_request(port, "GET", target, {}, {}, timeout);
  if (res.status != 200) return std::nullopt;
  auto j = json::parse(res.body, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

/// What one node's GET /v1/cluster says: every node alive, the connector owned and available.
struct cluster_state {
  int alive = 0;
  std::string owner;
  std::string leader;
};

std::optional<cluster_state> state_of(const node_process& n) {
  auto j = get_json(n.http_port, "/v1/cluster");
  if (!j) return std::nullopt;
  cluster_state s;
  for (auto& m : (*j)["members"])
    s.alive += m.value("health", "") == "alive";
  for (auto& c : (*j)["connectors"])
    if (c.value("name", "") == connector && c.value("available", false) && c["node"].is_string())
      s.owner = c["node"].get<std::string>();
  if ((*j)["leader"]["id"].is_string()) s.leader = (*j)["leader"]["id"].get<std::string>();
  return s;
}

/// A good reading stamped after `since` (ISO 8601 strings of one format order like time).
bool serves_fresh(const node_process& n, const std::string& since,
                  std::chrono::milliseconds timeout = 1s) {
  auto j = get_json(n.http_port, point_path, timeout);
  return j && j->value("quality", "") == "good" && (*j)["timestamp"].is_string() &&
         (*j)["timestamp"].get<std::string>() > since;
}

/// Every node sees three alive members and the same owner, and a node other than the owner
/// serves a fresh reading. Returns the owner and leader.
std::optional<cluster_state> settled(const std::vector<node_process>& nodes) {
  auto since = manifold::format_timestamp(manifold::now_timestamp() - 2000);
  std::optional<cluster_state> agreed;
  for (auto& n : nodes) {
    auto s = state_of(n);
    if (!s || s->alive != 3 || s->owner.empty()) return std::nullopt;
    if (agreed && (agreed->owner != s->owner || agreed->leader != s->leader)) return std::nullopt;
    agreed = s;
  }
  for (auto& n : nodes)
    if (n.id != agreed->owner && !serves_fresh(n, since)) return std::nullopt;
  return agreed;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  // Nearest rank: with fewer than 100 samples the p99 is the largest.
  auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size()) + 0.999999);
  return v[std::min(v.size(), std::max<std::size_t>(rank, 1)) - 1];
}

} // namespace

int main(int argc, char** argv) {
  int repetitions = argc > 1 ? std::atoi(argv[1]) : 10;
  int ttl_ms = argc > 2 ? std::atoi(argv[2]) : 5000;
  int margin_ms = argc > 3 ? std::atoi(argv[3]) : 1500;

  manifold::test::temp_dir dir;
  // etcd with its default timings (1 s election timeout): what a deployment runs.
  manifold::test::etcd_process::options etcd_opts;
  etcd_opts.short_leases = false;
  manifold::test::etcd_process etcd{etcd_opts};

  auto modbus_port = manifold::test::free_port();
  child_process modbus{{"/usr/bin/python3",
                        std::string{MANIFOLD_SOURCE_DIR} + "/tests/peers/modbus_server.py",
                        std::to_string(modbus_port)},
                       dir.file("modbus.log")};
  if (!manifold::test::wait_until([&] { return manifold::test::port_open(modbus_port); }, 20s)) {
    std::fprintf(stderr, "the modbus server did not start:\n%s\n", modbus.log().c_str());
    return 1;
  }

  auto config =
      dir.write("cluster.yaml", config_yaml(etcd.endpoint(), modbus_port, ttl_ms, margin_ms));
  std::vector<node_process> nodes(3);
  for (int i = 0; i < 3; ++i)
    nodes[i].id = "server-" + std::to_string(i + 1);
  // Ports first, so that every node gets the others as seeds.
  for (auto& n : nodes)
    pick_ports(n);
  for (auto& n : nodes)
    start(n, config, nodes, dir);

  std::printf("lease_ttl %d ms, fence_margin %d ms: bound lease_ttl + fence_margin = %d ms\n",
              ttl_ms, margin_ms, ttl_ms + margin_ms);
  std::printf("%-4s %-10s %-7s %-10s %14s %14s\n", "rep", "killed", "leader", "new owner",
              "on owner ms", "on other ms");
  std::vector<double> first; ///< Per kill: until the first surviving gateway serves again.
  std::vector<double> every; ///< Per kill: until both surviving gateways do.
  for (int rep = 1; rep <= repetitions; ++rep) {
    std::optional<cluster_state> before;
    if (!manifold::test::wait_until([&] { return (before = settled(nodes)).has_value(); }, 60s)) {
      std::fprintf(stderr, "the cluster did not settle with three nodes; logs in %s\n",
                   dir.path().c_str());
      for (auto& n : nodes)
        std::fprintf(stderr, "--- %s\n%s\n", n.id.c_str(), n.process->log().c_str());
      return 1;
    }
    auto victim =
        std::find_if(nodes.begin(), nodes.end(), [&](auto& n) { return n.id == before->owner; });
    std::vector<node_process*> survivors;
    for (auto& n : nodes)
      if (n.id != before->owner) survivors.push_back(&n);

    // Each survivor's gateway is polled until it serves a reading taken after the kill: the new
    // owner's from its own bus, the other's through the cluster from the new owner's bus.
    auto since = manifold::format_timestamp(manifold::now_timestamp());
    auto t0 = clock_type::now();
    victim->process->stop(SIGKILL);
    std::vector<double> served_ms(survivors.size(), -1);
    auto deadline = t0 + std::chrono::milliseconds{10 * (ttl_ms + margin_ms)};
    bool all_served = false;
    while (!all_served && clock_type::now() < deadline) {
      all_served = true;
      for (std::size_t i = 0; i < survivors.size(); ++i) {
        if (served_ms[i] >= 0) continue;
        if (serves_fresh(*survivors[i], since, 500ms))
          served_ms[i] = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
        else
          all_served = false;
      }
      if (!all_served) std::this_thread::sleep_for(10ms);
    }
    if (!all_served) {
      std::fprintf(stderr, "rep %d: the survivors did not serve %s again within %d ms\n", rep,
                   point_path, 10 * (ttl_ms + margin_ms));
      return 1;
    }
    auto after = state_of(*survivors.front());
    std::string new_owner = after ? after->owner : "?";
    double owner_ms = 0;
    double other_ms = 0;
    for (std::size_t i = 0; i < survivors.size(); ++i)
      (survivors[i]->id == new_owner ? owner_ms : other_ms) = served_ms[i];
    first.push_back(*std::min_element(served_ms.begin(), served_ms.end()));
    every.push_back(*std::max_element(served_ms.begin(), served_ms.end()));
    std::printf("%-4d %-10s %-7s %-10s %14.0f %14.0f\n", rep, victim->id.c_str(),
                before->leader == victim->id ? "yes" : "no", new_owner.c_str(), owner_ms, other_ms);
    std::fflush(stdout);

    // The killed node comes back (fresh ports, same id) for the next repetition.
    pick_ports(*victim);
    start(*victim, config, nodes, dir);
  }

  auto summary = [&](const char* what, const std::vector<double>& v) {
    std::printf("%-28s median %5.0f ms, p99 %5.0f ms, min %5.0f ms, max %5.0f ms\n", what,
                percentile(v, 0.5), percentile(v, 0.99), *std::min_element(v.begin(), v.end()),
                *std::max_element(v.begin(), v.end()));
  };
  if (!first.empty()) {
    std::printf("\nover %zu kills (p99 by nearest rank: the largest below 100 kills); bound "
                "lease_ttl + fence_margin = %d ms\n",
                first.size(), ttl_ms + margin_ms);
    summary("first gateway serves again", first);
    summary("every gateway serves again", every);
  }
  return 0;
}
