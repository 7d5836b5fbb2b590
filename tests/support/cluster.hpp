#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/processes.hpp"

/// Real `manifold node run` processes forming a cluster on loopback, for integration tests.
namespace manifold::test {

/// One node of a test cluster.
struct cluster_node_spec {
  std::string id;
  std::vector<std::string> labels; ///< `KEY=VALUE`, passed as `--label`.
  /// A config file of its own (e.g. other TLS certificates); empty: the cluster's shared one.
  std::string config;
};

/// Starts nodes from one generated config, each on free loopback ports (gateway and cluster),
/// seeded with every other node of the cluster. Nodes are stopped by pid: the destructor resumes
/// paused ones and ends them all.
class test_cluster {
public:
  /// `config_text` is written to a file in a fresh temp dir; `binary` is the manifold executable.
  test_cluster(std::string binary, const std::string& config_text);
  ~test_cluster();

  test_cluster(const test_cluster&) = delete;
  test_cluster& operator=(const test_cluster&) = delete;

  /// Adds a node and picks its ports; it starts with start().
  void add(cluster_node_spec spec);
  /// Starts (or restarts, with a new log) the node and waits until its gateway answers
  /// /healthz; throws std::runtime_error with the node's log when it does not within 30 s.
  void start(const std::string& id);
  /// Starts every added node that does not run.
  void start_all();

  /// Sends `sig` without waiting (SIGSTOP, SIGCONT).
  void signal(const std::string& id, int sig);
  /// kill -9, reaped before it returns.
  void kill(const std::string& id);
  /// SIGTERM (the node hands its connectors over), reaped.
  void stop(const std::string& id);
  bool running(const std::string& id);

  std::uint16_t api_port(const std::string& id) const;
  std::uint16_t cluster_port(const std::string& id) const;
  std::string url(const std::string& id) const;
  pid_t pid(const std::string& id) const;
  std::vector<std::string> ids() const;

  /// GET /v1/cluster on the node; a null json when it did not answer 200 within `timeout`.
  nlohmann::json view(const std::string& id,
                      std::chrono::milliseconds timeout = std::chrono::seconds{2}) const;
  /// Polls GET /v1/cluster on `id` every 50 ms until `condition` holds or `deadline` passes.
  bool wait_view(const std::string& id, const std::function<bool(const nlohmann::json&)>& condition,
                 std::chrono::milliseconds deadline);
  /// True when every node in `ids` sees every node in `ids` alive.
  bool wait_formed(const std::vector<std::string>& ids, std::chrono::milliseconds deadline);

  /// The end of every node's log, for failure messages.
  std::string logs(std::size_t tail_bytes = 6000) const;
  const temp_dir& dir() const { return dir_; }
  const std::string& config_file() const { return config_; }

private:
  struct node {
    cluster_node_spec spec;
    std::uint16_t api_port = 0;
    std::uint16_t cluster_port = 0;
    int generation = 0;
    std::string log_file;
    std::unique_ptr<child_process> process;
  };
  node& at(const std::string& id);
  const node& at(const std::string& id) const;

  std::string binary_;
  temp_dir dir_;
  std::string config_;
  std::vector<node> nodes_;
};

// -- reading GET /v1/cluster --------------------------------------------------------------------

/// The member `id` in a /v1/cluster document, or a null json.
nlohmann::json member_of(const nlohmann::json& view, const std::string& id);
/// "alive", "down", or "" when `id` is not a member.
std::string health_of(const nlohmann::json& view, const std::string& id);
/// The nodes whose member entry lists `connector` as running (state "running").
std::vector<std::string> nodes_running(const nlohmann::json& view, const std::string& connector);
/// The owner of `connector` in etcd as the node's ownership view says, or "".
std::string etcd_owner(const nlohmann::json& view, const std::string& connector);
/// The `connectors[]` entry for `connector`, or a null json.
nlohmann::json connector_entry(const nlohmann::json& view, const std::string& connector);

// -- a pymodbus server that logs every request --------------------------------------------------

/// One request as tests/peers/modbus_server.py --log-requests prints it.
struct modbus_request {
  std::uint16_t client_port = 0;
  double t = 0; ///< CLOCK_MONOTONIC seconds, comparable with std::chrono::steady_clock.
};

/// Parses every `request client=PORT t=T` line of the server's log.
std::vector<modbus_request> parse_modbus_requests(const std::string& log);
/// steady_clock::now() in the server's time base (seconds).
double monotonic_seconds();
/// The first place where a client connection's requests resume after another client's (a
/// connection that polls again after another one took over), described; "" when every client
/// port's requests form one contiguous run.
std::string interleaving(const std::vector<modbus_request>& requests);

} // namespace manifold::test
