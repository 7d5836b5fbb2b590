#include "support/cluster.hpp"

#include "support/http.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace manifold::test {

using json = nlohmann::json;

test_cluster::test_cluster(std::string binary, const std::string& config_text)
  : binary_(std::move(binary)) {
  config_ = dir_.write("cluster.yaml", config_text);
}

test_cluster::~test_cluster() {
  // Resume paused nodes and ask every node to stop at once, so their hand-overs overlap instead
  // of each one waiting for the previous.
  for (auto& n : nodes_)
    if (n.process && n.process->running()) {
      n.process->signal(SIGCONT);
      n.process->signal(SIGTERM);
    }
  for (auto& n : nodes_)
    if (n.process) n.process->stop();
}

void test_cluster::add(cluster_node_spec spec) {
  node n;
  n.spec = std::move(spec);
  n.api_port = free_port();
  n.cluster_port = free_port();
  nodes_.push_back(std::move(n));
}

test_cluster::node& test_cluster::at(const std::string& id) {
  for (auto& n : nodes_)
    if (n.spec.id == id) return n;
  throw std::out_of_range("test_cluster: no node '" + id + "'");
}

const test_cluster::node& test_cluster::at(const std::string& id) const {
  return const_cast<test_cluster*>(this)->at(id);
}

void test_cluster::start(const std::string& id) {
  auto& n = at(id);
  if (n.process && n.process->running())
    throw std::logic_error("test_cluster: node '" + id + "' already runs");
  std::vector<std::string> argv{binary_,
                                "node",
                                "run",
                                "-c",
                                n.spec.config.empty() ? config_ : n.spec.config,
                                "--node-id",
                                id,
                                "--listen",
                                "127.0.0.1:" + std::to_string(n.api_port),
                                "--cluster-listen",
                                "127.0.0.1:" + std::to_string(n.cluster_port)};
  for (auto& l : n.spec.labels) {
    argv.push_back("--label");
    argv.push_back(l);
  }
  for (auto& other : nodes_)
    if (other.spec.id != id) {
      argv.push_back("--seed");
      argv.push_back("127.0.0.1:" + std::to_string(other.cluster_port));
    }
  n.log_file = dir_.file(id + "-" + std::to_string(++n.generation) + ".log");
  n.process = std::make_unique<child_process>(std::move(argv), n.log_file);
  auto port = n.api_port;
  auto answers = [&] {
    return !n.process->running() || http_get(port, "/healthz").status == 200;
  };
  bool up = wait_until(answers, std::chrono::seconds{30});
  if (!up || !n.process->running())
    throw std::runtime_error("node '" + id + "' did not start:\n" + n.process->log());
}

void test_cluster::start_all() {
  for (auto& n : nodes_)
    if (!n.process || !n.process->running()) start(n.spec.id);
}

void test_cluster::signal(const std::string& id, int sig) {
  at(id).process->signal(sig);
}

void test_cluster::kill(const std::string& id) {
  at(id).process->stop(SIGKILL);
}

void test_cluster::stop(const std::string& id) {
  at(id).process->stop(SIGTERM);
}

bool test_cluster::running(const std::string& id) {
  auto& n = at(id);
  return n.process && n.process->running();
}

std::uint16_t test_cluster::api_port(const std::string& id) const {
  return at(id).api_port;
}

std::uint16_t test_cluster::cluster_port(const std::string& id) const {
  return at(id).cluster_port;
}

std::string test_cluster::url(const std::string& id) const {
  return "http://127.0.0.1:" + std::to_string(at(id).api_port);
}

pid_t test_cluster::pid(const std::string& id) const {
  return at(id).process ? at(id).process->pid() : -1;
}

std::vector<std::string> test_cluster::ids() const {
  std::vector<std::string> out;
  for (auto& n : nodes_) out.push_back(n.spec.id);
  return out;
}

json test_cluster::view(const std::string& id, std::chrono::milliseconds timeout) const {
  auto r = http_request(at(id).api_port, "GET", "/v1/cluster", {}, {}, timeout);
  if (r.status != 200) return nullptr;
  auto doc = json::parse(r.body, nullptr, false);
  return doc.is_discarded() ? json(nullptr) : doc;
}

bool test_cluster::wait_view(const std::string& id,
                             const std::function<bool(const json&)>& condition,
                             std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    auto v = view(id);
    if (!v.is_null() && condition(v)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  return false;
}

bool test_cluster::wait_formed(const std::vector<std::string>& ids,
                               std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  for (auto& id : ids) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      until - std::chrono::steady_clock::now());
    bool ok = wait_view(id, [&](const json& v) {
      for (auto& other : ids)
        if (health_of(v, other) != "alive") return false;
      return true;
    }, std::max(left, std::chrono::milliseconds{1}));
    if (!ok) return false;
  }
  return true;
}

std::string test_cluster::logs(std::size_t tail_bytes) const {
  std::ostringstream os;
  for (auto& n : nodes_) {
    if (!n.process) continue;
    auto text = n.process->log();
    if (text.size() > tail_bytes) text = "[...]" + text.substr(text.size() - tail_bytes);
    os << "---- " << n.spec.id << " (" << n.log_file << ") ----\n" << text << '\n';
  }
  return os.str();
}

// -- reading GET /v1/cluster ----------------------------------------------------------------------

json member_of(const json& view, const std::string& id) {
  if (!view.is_object() || !view.contains("members")) return nullptr;
  for (auto& m : view["members"])
    if (m.value("id", "") == id) return m;
  return nullptr;
}

std::string health_of(const json& view, const std::string& id) {
  auto m = member_of(view, id);
  return m.is_null() ? std::string{} : m.value("health", "");
}

std::vector<std::string> nodes_running(const json& view, const std::string& connector) {
  std::vector<std::string> out;
  if (!view.is_object() || !view.contains("members")) return out;
  for (auto& m : view["members"])
    for (auto& c : m["connectors"])
      if (c.value("name", "") == connector && c.value("state", "") == "running")
        out.push_back(m.value("id", ""));
  return out;
}

std::string etcd_owner(const json& view, const std::string& connector) {
  if (!view.is_object() || !view.contains("ownership") || !view["ownership"].is_object())
    return {};
  auto& owners = view["ownership"]["owners"];
  if (!owners.is_object() || !owners.contains(connector)) return {};
  return owners[connector].is_string() ? owners[connector].get<std::string>() : std::string{};
}

json connector_entry(const json& view, const std::string& connector) {
  if (!view.is_object() || !view.contains("connectors")) return nullptr;
  for (auto& c : view["connectors"])
    if (c.value("name", "") == connector) return c;
  return nullptr;
}

// -- pymodbus request log -------------------------------------------------------------------------

std::vector<modbus_request> parse_modbus_requests(const std::string& log) {
  std::vector<modbus_request> out;
  std::istringstream in{log};
  std::string line;
  while (std::getline(in, line)) {
    unsigned port = 0;
    double t = 0;
    if (std::sscanf(line.c_str(), "request client=%u t=%lf", &port, &t) == 2)
      out.push_back({static_cast<std::uint16_t>(port), t});
  }
  return out;
}

double monotonic_seconds() {
  // libstdc++'s steady_clock is CLOCK_MONOTONIC, the clock behind Python's time.monotonic().
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

std::string interleaving(const std::vector<modbus_request>& requests) {
  std::set<std::uint16_t> finished;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    auto port = requests[i].client_port;
    if (finished.count(port) > 0) {
      std::ostringstream os;
      os << "request " << i << " (t=" << requests[i].t << ") comes from client port " << port
         << ", whose run had ended when client port " << requests[i - 1].client_port
         << " polled (t=" << requests[i - 1].t << ")";
      return os.str();
    }
    if (i + 1 < requests.size() && requests[i + 1].client_port != port) finished.insert(port);
  }
  return {};
}

} // namespace manifold::test
