// The `manifold` binary as a user runs it: node run, config check and the client commands, with
// their exit codes, --json output and --help.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/http.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold::test;
using json = nlohmann::json;
using namespace std::chrono_literals;

const std::string binary = MANIFOLD_BINARY;
const std::string source_dir = MANIFOLD_SOURCE_DIR;

command_result manifold(std::vector<std::string> args) {
  args.insert(args.begin(), binary);
  return run_command(args, 30s);
}

/// A node started from the binary on a free port, stopped by pid.
struct running_node {
  temp_dir dir;
  std::unique_ptr<child_process> proc;
  std::uint16_t port = 0;
  std::string url;

  explicit running_node(const std::string& config = {}) {
    port = free_port();
    std::vector<std::string> argv{binary, "node", "run", "--listen",
                                  "127.0.0.1:" + std::to_string(port)};
    if (!config.empty()) {
      argv.push_back("--config");
      argv.push_back(config);
    }
    proc = std::make_unique<child_process>(argv, dir.file("node.log"));
    url = "http://127.0.0.1:" + std::to_string(port);
    bool up = wait_until([&] { return http_get(port, "/healthz").status == 200; }, 20s);
    EXPECT_TRUE(up) << proc->log();
  }
};

TEST(cli, help_is_available_on_every_command) {
  for (auto args : std::vector<std::vector<std::string>>{
         {"--help"},
         {"node", "run", "--help"},
         {"config", "check", "--help"},
         {"devices", "list", "--help"},
         {"connectors", "list", "--help"},
         {"point", "get", "--help"},
         {"action", "invoke", "--help"}}) {
    args.push_back("--help");
    auto r = manifold(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("Usage:"), std::string::npos) << r.output;
  }
}

TEST(cli, unknown_command_is_a_usage_error) {
  auto r = manifold({"frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("unknown command 'frobnicate' (commands: node, config"),
            std::string::npos)
    << r.output;
}

TEST(cli, config_check_accepts_the_examples) {
  for (auto f : {"examples/quickstart.yaml"}) {
    auto r = manifold({"config", "check", source_dir + "/" + f});
    EXPECT_EQ(r.exit_code, 0) << f << ": " << r.output;
    EXPECT_NE(r.output.find("ok ("), std::string::npos) << r.output;
  }
}

TEST(cli, config_check_reports_every_error_with_file_and_line) {
  temp_dir dir;
  auto file = dir.write("bad.yaml", "connectors:\n  - name: s\n    type: sim\n    colour: red\n"
                                    "    devices: [{name: d, model: toaster}]\n");
  auto r = manifold({"config", "check", file});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(file + ":4:5: unknown key 'colour'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'model' must be one of thermostat, counter, switch, got 'toaster'"),
            std::string::npos)
    << r.output;

  auto j = manifold({"config", "check", "--json", file});
  EXPECT_EQ(j.exit_code, 2);
  auto body = json::parse(j.output);
  EXPECT_FALSE(body["valid"].get<bool>());
  ASSERT_EQ(body["errors"].size(), 2u);
  EXPECT_EQ(body["errors"][0]["line"], 4);
}

TEST(cli, config_check_reports_tls_files_openssl_would_refuse) {
  temp_dir dir;
  auto cert = dir.write("node.pem", "not a certificate\n");
  auto key = dir.write("node.key", "");
  auto ca = dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
  auto config = [&](const std::string& ca_path) {
    return "node: {id: a}\ncluster:\n  name: t\n  listen: 127.0.0.1:0\n  tls: {certificate: " +
           cert + ", key: " + key + ", ca: " + ca_path + "}\nconnectors: []\n";
  };
  auto file = dir.write("tls.yaml", config(ca));
  auto r = manifold({"config", "check", file});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(file + ": cluster.tls.certificate '" + cert + "': not a PEM certificate"),
            std::string::npos)
    << r.output;
  EXPECT_NE(r.output.find("cluster.tls.key '" + key + "': the file is empty"), std::string::npos)
    << r.output;
  EXPECT_NE(r.output.find("cluster.tls.ca '" + ca + "': no PEM certificate in it"),
            std::string::npos)
    << r.output;
  auto j = manifold({"config", "check", "--json", file});
  EXPECT_EQ(j.exit_code, 2);
  EXPECT_FALSE(json::parse(j.output)["valid"].get<bool>());

  // A directory opens like a file; the loader refuses it with its position.
  file = dir.write("tls-dir.yaml", config(dir.file("")));
  r = manifold({"config", "check", file});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(file + ":5:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'cluster.tls.ca': '" + dir.file("") + "' is a directory"),
            std::string::npos)
    << r.output;

  // `node run` refuses the same files before any peer connects, naming them.
  file = dir.write("tls-run.yaml", "gateway: {listen: 127.0.0.1:0}\n" + config(ca));
  r = manifold({"node", "run", "--config", file});
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("cluster.tls.certificate '" + cert + "': not a PEM certificate"),
            std::string::npos)
    << r.output;
}

TEST(cli, node_with_invalid_config_exits_nonzero_and_starts_nothing) {
  temp_dir dir;
  auto file = dir.write("bad.yaml", "gateway: {listen: 127.0.0.1:0}\nconnectors: 3\n");
  auto r = manifold({"node", "run", "--config", file});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nothing started"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("Gateway:"), std::string::npos) << r.output;
}

TEST(cli, node_runs_the_embedded_config_and_client_commands_work) {
  running_node node;
  auto list = manifold({"devices", "list", "--url", node.url});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_NE(list.output.find("thermostat-1"), std::string::npos) << list.output;
  EXPECT_NE(list.output.find("DEVICE"), std::string::npos) << list.output;

  auto list_json = manifold({"devices", "list", "--json", "--url", node.url});
  ASSERT_EQ(list_json.exit_code, 0) << list_json.output;
  EXPECT_EQ(json::parse(list_json.output).size(), 3u);

  auto set = manifold({"action", "invoke", "thermostat-1", "set_setpoint", "value=23.5", "--json",
                       "--url", node.url});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(json::parse(set.output)["result"], 23.5);

  auto get = manifold({"point", "get", "thermostat-1/setpoint", "--json", "--url", node.url});
  ASSERT_EQ(get.exit_code, 0) << get.output;
  auto point = json::parse(get.output);
  EXPECT_EQ(point["value"], 23.5);
  EXPECT_EQ(point["quality"], "good");

  auto conns = manifold({"connectors", "list", "--url", node.url});
  EXPECT_EQ(conns.exit_code, 0) << conns.output;
  EXPECT_NE(conns.output.find("running"), std::string::npos) << conns.output;
}

TEST(cli, client_errors_have_meaningful_exit_codes) {
  running_node node;
  auto missing = manifold({"point", "get", "nope/temperature", "--url", node.url});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(missing.output.find("not_found"), std::string::npos) << missing.output;

  auto bad = manifold({"action", "invoke", "thermostat-1", "set_setpoint", "value=99", "--url",
                       node.url});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("bad_request"), std::string::npos) << bad.output;

  // Writing the point directly is held to the same bounds as the action.
  auto put = http_request(node.port, "PUT", "/v1/devices/thermostat-1/points/setpoint",
                          R"({"value": 100})", {{"Content-Type", "application/json"}});
  EXPECT_EQ(put.status, 400) << put.body;
  EXPECT_NE(put.body.find("must be within [5, 35]"), std::string::npos) << put.body;

  auto malformed = manifold({"action", "invoke", "thermostat-1", "set_setpoint", "value", "--url",
                             node.url});
  EXPECT_EQ(malformed.exit_code, 2) << malformed.output;

  auto ref = manifold({"point", "get", "no-slash", "--url", node.url});
  EXPECT_EQ(ref.exit_code, 2) << ref.output;

  auto bad_url = manifold({"devices", "list", "--url", "ftp://x"});
  EXPECT_EQ(bad_url.exit_code, 2) << bad_url.output;

  auto down = manifold({"devices", "list", "--url",
                        "http://127.0.0.1:" + std::to_string(free_port())});
  EXPECT_EQ(down.exit_code, 3) << down.output;
  EXPECT_NE(down.output.find("is a node running?"), std::string::npos) << down.output;
}

TEST(cli, connector_lifecycle_by_hand) {
  running_node node;
  auto status = manifold({"connector", "status", "sim", "--json", "--url", node.url});
  ASSERT_EQ(status.exit_code, 0) << status.output;
  EXPECT_EQ(json::parse(status.output)["state"], "running");

  auto stop = manifold({"connector", "stop", "sim", "--json", "--url", node.url});
  ASSERT_EQ(stop.exit_code, 0) << stop.output;
  EXPECT_EQ(json::parse(stop.output)["state"], "stopped");
  // Nobody updates a stopped connector's points: they read stale, and the node is not ready.
  ASSERT_TRUE(wait_until([&] {
    return http_get(node.port, "/v1/devices/counter-1/points/count").body.find("\"stale\"") !=
           std::string::npos;
  })) << http_get(node.port, "/v1/devices/counter-1/points/count").body;
  EXPECT_EQ(http_get(node.port, "/readyz").status, 503);
  // A stopped connector's devices answer 503 unavailable, quickly.
  auto r = http_post(node.port, "/v1/devices/switch-1/actions/toggle", "{}");
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_NE(r.body.find("\"unavailable\""), std::string::npos) << r.body;

  auto start = manifold({"connector", "start", "sim", "--url", node.url});
  ASSERT_EQ(start.exit_code, 0) << start.output;
  EXPECT_TRUE(wait_until([&] { return http_get(node.port, "/readyz").status == 200; }));
  EXPECT_NE(start.output.find("running"), std::string::npos) << start.output;
  EXPECT_EQ(http_post(node.port, "/v1/devices/switch-1/actions/toggle", "{}").status, 200);

  auto restart = manifold({"connector", "restart", "sim", "--json", "--url", node.url});
  ASSERT_EQ(restart.exit_code, 0) << restart.output;
  EXPECT_EQ(json::parse(restart.output)["state"], "running");

  auto unknown = manifold({"connector", "stop", "nope", "--url", node.url});
  EXPECT_EQ(unknown.exit_code, 1) << unknown.output;
  EXPECT_NE(unknown.output.find("not_found"), std::string::npos) << unknown.output;
}

TEST(cli, a_sandbox_report_that_cannot_be_written_fails_the_run) {
  auto r = manifold({"sandbox", "run", source_dir + "/tests/scenarios/sim_thermostat.yaml",
                     "--junit", "/nonexistent-dir/report.xml"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot write the JUnit report"), std::string::npos) << r.output;
}

TEST(cli, node_stops_cleanly_on_sigterm) {
  running_node node;
  EXPECT_EQ(node.proc->stop(SIGTERM), 0) << node.proc->log();
  EXPECT_NE(node.proc->log().find("node stopped"), std::string::npos) << node.proc->log();
}

TEST(cli, a_node_whose_gateway_port_is_taken_starts_no_connector) {
  running_node first;
  auto r = manifold({"node", "run", "--listen", "127.0.0.1:" + std::to_string(first.port)});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("error: gateway:"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("connector started"), std::string::npos) << r.output;
}

std::size_t open_descriptors(pid_t pid) {
  std::size_t n = 0;
  auto dir = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!dir) return 0;
  while (auto e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

std::size_t count_lines_with(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(cli, a_node_out_of_file_descriptors_backs_off_accepting_and_serves_again) {
  running_node node;
  auto pid = node.proc->pid();
  auto used = open_descriptors(pid);
  ASSERT_GT(used, 0u);
  // Two more descriptors: two connections are accepted, every further accept fails (EMFILE).
  rlimit limit{used + 2, used + 2};
  ASSERT_EQ(prlimit(pid, RLIMIT_NOFILE, &limit, nullptr), 0) << std::strerror(errno);

  std::vector<int> clients;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(node.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (int i = 0; i < 8; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    // The kernel completes these from the listen backlog whether or not the node accepts.
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    clients.push_back(fd);
  }
  ASSERT_TRUE(wait_until([&] {
    return node.proc->log().find("accept failed") != std::string::npos;
  })) << node.proc->log();

  // From the first failure until accepting works again, a loop that retries at once fails
  // thousands of times even in a few milliseconds; with the backoff it fails about once per
  // 100 ms or more. The time counted here (until recovery is seen) is longer than the node's.
  auto failing_since = std::chrono::steady_clock::now();
  for (int fd : clients) close(fd);

  // The descriptors are back once the node closed its ends: it serves again.
  ASSERT_TRUE(wait_until([&] { return http_get(node.port, "/healthz").status == 200; }, 10s))
    << node.proc->log().substr(0, 4000);
  ASSERT_TRUE(wait_until([&] {
    return node.proc->log().find("accepting connections again") != std::string::npos;
  }));
  std::chrono::duration<double> failing = std::chrono::steady_clock::now() - failing_since;
  auto log = node.proc->log();
  EXPECT_LE(count_lines_with(log, "accept failed"), 2u) << log.substr(0, 4000);
  auto at = log.find("failed_accepts=");
  ASSERT_NE(at, std::string::npos) << log.substr(0, 4000);
  auto failures = std::stoul(log.substr(at + std::string{"failed_accepts="}.size()));
  // One try right away, then one per backoff step (at least 100 ms each) while it failed.
  EXPECT_LE(failures, 2 + static_cast<std::size_t>(failing.count() / 0.1)) << log;
  EXPECT_GE(failures, 1u);
}

TEST(cli, cluster_commands_explain_themselves_and_check_their_arguments) {
  for (auto args : std::vector<std::vector<std::string>>{
         {"cluster", "status", "--help"},
         {"cluster", "drain", "--help"},
         {"connector", "move", "--help"},
         {"sandbox", "cluster", "--help"}}) {
    auto r = manifold(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
  }
  auto no_target = manifold({"connector", "move", "line-modbus"});
  EXPECT_EQ(no_target.exit_code, 2) << no_target.output;
  EXPECT_NE(no_target.output.find("--to is required"), std::string::npos) << no_target.output;

  // A single node has no cluster: a clear 404, exit code 1.
  running_node node;
  auto status = manifold({"cluster", "status", "--url", node.url});
  EXPECT_EQ(status.exit_code, 1) << status.output;
  EXPECT_NE(status.output.find("runs alone"), std::string::npos) << status.output;
  auto nobody = manifold({"cluster", "status", "--url", "http://127.0.0.1:1"});
  EXPECT_EQ(nobody.exit_code, 3) << nobody.output;
}

} // namespace
