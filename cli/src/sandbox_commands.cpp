// `manifold sandbox`: scenarios and single actions against simulated devices in virtual time.
// Nothing here opens a network connection: the connectors get the testkit's simulated plant.

#include "sandbox_commands.hpp"

#include <algorithm>
#include <fstream>
#include <set>
#include <iostream>
#include <memory>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "manifold/actors/log.hpp"
#include "manifold/cli/commands.hpp"
#include "manifold/cli/node_runtime.hpp"
#include "manifold/testkit/cluster_simulation.hpp"
#include "manifold/testkit/params.hpp"
#include "manifold/testkit/scenario.hpp"
#include "manifold/testkit/simulation.hpp"

namespace manifold::cli {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

struct sandbox_options {
  std::vector<std::string> files;
  std::optional<std::uint64_t> seed;
  std::string seeds; ///< `A..B`: sweep these seeds.
  std::string junit;
  std::string trace;
  bool as_json = false;
  std::string log_level = "off";

  std::string config;
  std::vector<std::string> nodes; ///< `ID[:KEY=VALUE,...]`
  std::string io_overrun = "200ms";
  std::string device;
  std::string action;
  std::vector<std::string> params;
};

void quiet_logs(const std::string& level) {
  log::level lvl;
  if (log::parse_level(level, lvl)) log::set_level(lvl);
}

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
    case '&': out += "&amp;"; break;
    case '<': out += "&lt;"; break;
    case '>': out += "&gt;"; break;
    case '"': out += "&quot;"; break;
    default: out += c;
    }
  }
  return out;
}

bool write_junit(const std::string& path, const std::vector<testkit::scenario_report>& reports) {
  std::ofstream out{path};
  if (!out) return false;
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n";
  for (auto& r : reports) {
    out << "  <testsuite name=\"" << xml_escape(r.name) << "\" tests=\"" << r.steps.size()
        << "\" failures=\"" << r.failed << "\" time=\"" << r.wall_seconds << "\">\n";
    for (auto& s : r.steps) {
      out << "    <testcase classname=\"" << xml_escape(r.name) << "\" name=\""
          << xml_escape("[" + std::to_string(s.index) + "] " + testkit::format_elapsed(s.at) + " " +
                        s.description)
          << "\"";
      if (s.passed) {
        out << "/>\n";
        continue;
      }
      out << ">\n      <failure message=\"" << xml_escape(s.message) << "\">"
          << xml_escape(s.where.to_string() + ": " + s.message) << "</failure>\n"
          << "    </testcase>\n";
    }
    out << "  </testsuite>\n";
  }
  out << "</testsuites>\n";
  return static_cast<bool>(out);
}

std::string combined_hash(const std::vector<testkit::scenario_report>& reports) {
  testkit::event_trace t{false};
  for (auto& r : reports)
    t.record(0ms, "scenario", r.file + " " + r.trace_hash);
  return reports.size() == 1 ? reports[0].trace_hash : t.hash_hex();
}

std::string replay_command(const std::vector<std::string>& files, std::uint64_t seed) {
  std::string cmd = "manifold sandbox run";
  for (auto& f : files)
    cmd += " " + f;
  return cmd + " --seed " + std::to_string(seed);
}

int sandbox_run(const sandbox_options& o) {
  quiet_logs(o.log_level);
  std::vector<testkit::scenario_report> reports;
  std::size_t passed = 0, failed = 0;
  bool load_failed = false;
  std::vector<std::string> failed_files;
  for (auto& file : o.files) {
    auto loaded = testkit::load_scenario(file);
    if (!loaded.value) {
      std::cerr << loaded.diag.to_string() << file << ": invalid scenario ("
                << loaded.diag.items().size() << " error"
                << (loaded.diag.items().size() == 1 ? "" : "s") << ")\n";
      load_failed = true;
      continue;
    }
    auto& sc = *loaded.value;
    auto total = sc.steps.size();
    std::size_t done = 0;
    if (!o.as_json)
      std::cout << "scenario " << sc.name << " (" << file << ", seed " << o.seed.value_or(sc.seed)
                << ", " << total << " steps)\n";
    auto report = testkit::run_scenario(sc, o.seed, [&](const testkit::step_result& r) {
      ++done;
      if (o.as_json) return;
      std::cout << "  [" << done << "/" << total << "] " << testkit::format_elapsed(r.at) << " "
                << r.description << ": " << (r.passed ? "ok" : "FAILED");
      if (!r.message.empty()) std::cout << " (" << r.message << ")";
      if (!r.passed) std::cout << "\n      at " << r.where.to_string();
      std::cout << '\n';
    });
    passed += report.passed;
    failed += report.failed;
    if (report.failed > 0) failed_files.push_back(file);
    if (!o.as_json)
      std::cout << "  " << report.passed << " passed, " << report.failed << " failed in "
                << testkit::format_elapsed(report.virtual_time) << " virtual time; trace "
                << report.trace_hash << '\n';
    reports.push_back(std::move(report));
  }

  auto hash = combined_hash(reports);
  bool report_failed = false; // A CI job must not pass without the report it asked for.
  if (!o.trace.empty()) {
    std::ofstream out{o.trace};
    for (auto& r : reports) {
      out << "# " << r.file << " seed " << r.seed << " trace " << r.trace_hash << '\n';
      for (auto& e : r.trace)
        out << e.to_string() << '\n';
    }
    if (!out) {
      std::cerr << "error: cannot write the trace to " << o.trace << '\n';
      report_failed = true;
    }
  }
  if (!o.junit.empty() && !write_junit(o.junit, reports)) {
    std::cerr << "error: cannot write the JUnit report to " << o.junit << '\n';
    report_failed = true;
  }

  if (o.as_json) {
    json j;
    j["passed"] = passed;
    j["failed"] = failed;
    j["trace_hash"] = hash;
    j["scenarios"] = json::array();
    for (auto& r : reports) {
      json s{{"file", r.file},        {"name", r.name},
             {"seed", r.seed},        {"passed", r.passed},
             {"failed", r.failed},    {"trace_hash", r.trace_hash},
             {"events", r.events},    {"virtual_ms", r.virtual_time.count()},
             {"steps", json::array()}};
      for (auto& st : r.steps)
        s["steps"].push_back({{"index", st.index},
                              {"at_ms", st.at.count()},
                              {"step", st.description},
                              {"passed", st.passed},
                              {"message", st.message},
                              {"where", st.where.to_string()}});
      j["scenarios"].push_back(std::move(s));
    }
    std::cout << j.dump(2) << '\n';
  } else {
    std::cout << passed << " passed, " << failed << " failed\n";
    std::cout << "trace hash: " << hash << '\n';
  }
  if (failed > 0) {
    for (auto& r : reports)
      if (r.failed > 0)
        std::cerr << "failed: " << r.file << " with seed " << r.seed
                  << "; replay: " << replay_command({r.file}, r.seed) << '\n';
    return exit_failed;
  }
  return load_failed || report_failed ? exit_usage : exit_ok;
}

/// `A..B` (inclusive, at most `max_sweep` seeds); nullopt when it does not read so.
constexpr std::uint64_t max_sweep = 100000;

std::optional<std::pair<std::uint64_t, std::uint64_t>> parse_seed_range(const std::string& text) {
  auto dots = text.find("..");
  if (dots == std::string::npos || dots == 0 || dots + 2 >= text.size()) return std::nullopt;
  auto number = [](const std::string& x) -> std::optional<std::uint64_t> {
    if (x.empty() || x.size() > 19 || x.find_first_not_of("0123456789") != std::string::npos)
      return std::nullopt;
    return std::stoull(x);
  };
  auto a = number(text.substr(0, dots));
  auto b = number(text.substr(dots + 2));
  if (!a || !b || *b < *a || *b - *a >= max_sweep) return std::nullopt;
  return std::make_pair(*a, *b);
}

/// `--seeds A..B`: runs every scenario with each seed in turn and stops at the first seed that
/// fails one, naming it with the command that replays it.
int sandbox_sweep(const sandbox_options& o) {
  quiet_logs(o.log_level);
  auto range = parse_seed_range(o.seeds);
  if (!range) {
    std::cerr << "error: --seeds takes FIRST..LAST (at most " << max_sweep
              << " seeds, FIRST <= LAST), got '" << o.seeds << "'\n";
    return exit_usage;
  }
  std::vector<testkit::scenario> scenarios;
  for (auto& file : o.files) {
    auto loaded = testkit::load_scenario(file);
    if (!loaded.value) {
      std::cerr << loaded.diag.to_string() << file << ": invalid scenario\n";
      return exit_usage;
    }
    scenarios.push_back(std::move(*loaded.value));
  }
  std::uint64_t runs = 0;
  for (auto seed = range->first;; ++seed) {
    for (auto& sc : scenarios) {
      auto r = testkit::run_scenario(sc, seed);
      ++runs;
      if (r.failed == 0) continue;
      std::cout << "seed " << seed << ": scenario " << sc.name << " (" << sc.file << ") failed\n";
      for (auto& st : r.steps)
        if (!st.passed)
          std::cout << "  [" << st.index << "] " << testkit::format_elapsed(st.at) << " "
                    << st.description << ": " << st.message << "\n      at " << st.where.to_string()
                    << '\n';
      std::cout << "first failing seed: " << seed;
      if (seed > range->first)
        std::cout << " (seeds " << range->first << ".." << seed - 1 << " passed)";
      std::cout << '\n';
      std::cerr << "replay: " << replay_command({sc.file}, seed) << '\n';
      return exit_failed;
    }
    if (seed == range->second) break;
  }
  std::cout << "seeds " << range->first << ".." << range->second << ": all "
            << range->second - range->first + 1 << " passed (" << runs << " scenario runs)\n";
  return exit_ok;
}

/// The node config a sandbox command works on; prints its diagnostics when it is invalid.
config::load_result load_sandbox_config(const std::string& file) {
  auto registry = connectors::connector_registry::builtin();
  auto loaded = load_node_config(file, registry);
  if (!loaded.config) std::cerr << loaded.diag.to_string() << file << ": invalid config\n";
  return loaded;
}

/// `ID[:KEY=VALUE,...]` with the shared config's node labels underneath.
std::optional<testkit::cluster_node_spec> parse_node_spec(const std::string& text,
                                                         const node_config& cfg,
                                                         std::string& error) {
  testkit::cluster_node_spec spec;
  auto colon = text.find(':');
  spec.id = text.substr(0, colon);
  spec.labels = cfg.labels;
  if (!config::valid_name(spec.id)) {
    error = "--node expects ID[:KEY=VALUE,...] with ID made of letters, digits, '-', '_', '.'; "
            "got '" + text + "'";
    return std::nullopt;
  }
  if (colon == std::string::npos) return spec;
  std::stringstream labels{text.substr(colon + 1)};
  for (std::string kv; std::getline(labels, kv, ',');) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size() ||
        !config::valid_name(kv.substr(0, eq))) {
      error = "--node " + text + ": labels are KEY=VALUE separated by commas, got '" + kv + "'";
      return std::nullopt;
    }
    spec.labels[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return spec;
}

/// `manifold sandbox cluster`: the config's connectors with their placements on simulated nodes,
/// through random crashes, pauses and partitions in virtual time, checking that no connector
/// ever has two driving owners and that a movable one has an owner again within the bound.
int sandbox_cluster(const sandbox_options& o) {
  quiet_logs(o.log_level);
  auto loaded = load_sandbox_config(o.config);
  if (!loaded.config) return exit_usage;
  auto& cfg = *loaded.config;
  if (!cfg.cluster.etcd) {
    std::cerr << "error: " << o.config << " has no 'cluster.etcd': without etcd nothing fails "
              << "over, so there is nothing to simulate\n";
    return exit_usage;
  }
  std::vector<testkit::cluster_node_spec> nodes;
  std::set<std::string> ids;
  for (auto& text : o.nodes) {
    std::string error;
    auto spec = parse_node_spec(text, cfg, error);
    if (!spec) {
      std::cerr << "error: " << error << '\n';
      return exit_usage;
    }
    if (!ids.insert(spec->id).second) {
      std::cerr << "error: --node " << spec->id << " is given twice\n";
      return exit_usage;
    }
    nodes.push_back(std::move(*spec));
  }
  if (nodes.size() < 2) {
    std::cerr << "error: give at least two nodes, e.g. --node server-1:role=server --node "
                 "server-2:role=server\n";
    return exit_usage;
  }
  std::vector<supervision::connector_placement> connectors;
  for (auto& c : cfg.connectors) connectors.push_back({c.name, c.placement});
  // A connector no simulated node may run would pass every check without being tested.
  for (auto& c : cfg.connectors) {
    bool runnable = false;
    for (auto& n : nodes)
      runnable = runnable || n.id == c.placement.node || c.placement.matches(n.labels);
    if (runnable) continue;
    if (!c.placement.node.empty()) {
      std::cerr << "note: connector '" << c.name << "' is pinned to node '" << c.placement.node
                << "', which is not simulated; it takes no part\n";
      continue;
    }
    std::cerr << "error: no simulated node may run connector '" << c.name << "' (placement: "
              << c.placement.to_string() << "); give a --node with matching labels\n";
    return exit_usage;
  }

  std::pair<std::uint64_t, std::uint64_t> range{o.seed.value_or(1), o.seed.value_or(1)};
  if (!o.seeds.empty()) {
    auto r = parse_seed_range(o.seeds);
    if (!r) {
      std::cerr << "error: --seeds takes FIRST..LAST (at most " << max_sweep
                << " seeds, FIRST <= LAST), got '" << o.seeds << "'\n";
      return exit_usage;
    }
    range = *r;
  }
  testkit::cluster_simulation_options opts;
  auto overrun = config::parse_duration(o.io_overrun);
  if (!overrun) {
    std::cerr << "error: --io-overrun expects a duration such as 200ms or 1s, got '"
              << o.io_overrun << "'\n";
    return exit_usage;
  }
  opts.io_overrun = *overrun;
  opts.lease_ttl = cfg.cluster.etcd->lease_ttl;
  opts.fence_margin = cfg.cluster.etcd->fence_margin;
  opts.step_interval = std::clamp(opts.lease_ttl / 10, std::chrono::milliseconds{100},
                                  std::chrono::milliseconds{1000});

  auto total = range.second - range.first + 1;
  std::uint64_t done = 0;
  auto last_progress = std::chrono::steady_clock::now();
  std::optional<std::uint64_t> failing;
  std::unique_ptr<testkit::cluster_simulation> failed_run;
  std::chrono::milliseconds bound{0};
  for (auto seed = range.first;; ++seed) {
    auto sim = testkit::random_cluster_run(seed, nodes, connectors, opts);
    bound = sim->failover_bound();
    ++done;
    if (!sim->violations().empty()) {
      failing = seed;
      failed_run = std::move(sim);
      break;
    }
    // A long sweep says how far it got, on stderr so --json output stays clean.
    if (auto now = std::chrono::steady_clock::now(); now - last_progress > 2s) {
      std::cerr << "  " << done << "/" << total << " seeds passed\n";
      last_progress = now;
    }
    if (seed == range.second) break;
  }
  auto replay = "manifold sandbox cluster -c " + o.config;
  for (auto& n : o.nodes) replay += " --node " + n;
  if (o.io_overrun != "200ms") replay += " --io-overrun " + o.io_overrun;
  if (failing) replay += " --seed " + std::to_string(*failing);

  if (o.as_json) {
    json out{{"config", o.config},
             {"seeds", {range.first, range.second}},
             {"runs", done},
             {"failover_bound_seconds", bound.count() / 1000.0},
             {"passed", !failing}};
    if (failing) {
      json violations = json::array();
      for (auto& v : failed_run->violations())
        violations.push_back({{"kind", v.kind},
                              {"connector", v.connector},
                              {"at_ms", v.at.count()},
                              {"detail", v.detail}});
      out["failing_seed"] = *failing;
      out["violations"] = std::move(violations);
      out["timeline"] = failed_run->timeline();
      out["replay"] = replay;
    }
    std::cout << out.dump(2) << '\n';
    return failing ? exit_failed : exit_ok;
  }
  std::cout << "sandbox cluster: " << nodes.size() << " nodes, " << connectors.size()
            << " connectors from " << o.config << "; lease_ttl "
            << opts.lease_ttl.count() << " ms, fence_margin " << opts.fence_margin.count()
            << " ms, device calls overrun the fence by up to " << opts.io_overrun.count()
            << " ms (virtual time, no network)\n";
  if (failing) {
    std::cout << "seed " << *failing << " failed:\n"
              << testkit::describe_violations(*failed_run);
    std::cerr << "replay: " << replay << '\n';
    return exit_failed;
  }
  std::cout << "seeds " << range.first << ".." << range.second << ": all " << done
            << " passed: never two owners driving a connector, and every movable connector "
               "had an owner again within the bound ("
            << bound.count() / 1000.0 << " s) after its node failed\n";
  return exit_ok;
}

int sandbox_action(const sandbox_options& o) {
  quiet_logs(o.log_level);
  auto loaded = load_sandbox_config(o.config);
  if (!loaded.config) return exit_usage;
  const action_config* action = nullptr;
  const connector_config* conn = nullptr;
  for (auto& c : loaded.config->connectors)
    if (auto* d = c.device(o.device)) {
      conn = &c;
      action = d->action(o.action);
      if (!action) {
        std::string names;
        for (auto& a : d->actions)
          names += (names.empty() ? "" : ", ") + a.name;
        std::cerr << "error: device '" << o.device << "' has no action '" << o.action
                  << "' (it has: " << (names.empty() ? "none" : names) << ")\n";
        return exit_usage;
      }
    }
  if (!conn) {
    std::cerr << "error: no device '" << o.device << "' in " << o.config << '\n';
    return exit_usage;
  }
  std::map<std::string, YAML::Node> raw;
  for (auto& p : o.params) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "error: parameters are key=value, got '" << p << "'\n";
      return exit_usage;
    }
    raw[p.substr(0, eq)] = YAML::Node(p.substr(eq + 1));
  }
  auto checked = testkit::check_params(*action, raw);
  if (auto* err = std::get_if<std::string>(&checked)) {
    std::cerr << "error: " << *err << '\n';
    return exit_usage;
  }

  testkit::simulation sim{*loaded.config};
  sim.start();
  auto before = sim.plant().side_effects().size();
  auto call = sim.invoke({o.device, o.action, std::get<std::map<std::string, value>>(checked)});
  for (int i = 0; !call->done && i < 100; ++i)
    sim.advance(conn->action_timeout / 50 + 1ms);
  std::cout << "sandbox: " << o.device << " " << o.action << " on simulated devices from "
            << o.config << " (no network)\n";
  auto& effects = sim.plant().side_effects();
  for (auto i = before; i < effects.size(); ++i)
    std::cout << "  " << effects[i].text << '\n';
  if (effects.size() == before) std::cout << "  (no writes, no publishes)\n";
  if (!call->done) {
    std::cout << "outcome: no answer from the connector\n";
    return exit_failed;
  }
  if (call->result) {
    std::cout << "outcome: ok, result " << to_display_string(*call->result) << '\n';
    return exit_ok;
  }
  std::cout << "outcome: " << to_string(call->code) << ": " << call->message << '\n';
  return exit_failed;
}

} // namespace

std::function<std::optional<int>()> add_sandbox_commands(CLI::App& app) {
  auto o = std::make_shared<sandbox_options>();
  auto sandbox = app.add_subcommand("sandbox", "Try scenarios and actions on simulated devices");
  sandbox->require_subcommand(1);

  auto run = sandbox->add_subcommand("run", "Run scenario files in deterministic virtual time");
  run->add_option("files", o->files, "Scenario files (YAML)")->required()->check(CLI::ExistingFile);
  auto seed_opt =
      run->add_option("--seed", o->seed, "Seed for every scenario (default: each file's seed)");
  run->add_option("--seeds", o->seeds,
                  "Sweep seeds FIRST..LAST (e.g. 1..100): run every scenario with each seed, "
                  "stop at the first failing seed and print the command that replays it")
      ->excludes(seed_opt);
  run->add_option("--junit", o->junit, "Write a JUnit XML report to this file");
  run->add_option("--trace", o->trace, "Write the ordered event trace to this file");
  run->add_flag("--json", o->as_json, "Print the report as JSON");
  run->add_option("--log-level", o->log_level, "Connector log level (default off)");

  auto action = sandbox->add_subcommand(
      "action", "Run one action against simulated devices built from a node config");
  action->add_option("-c,--config", o->config, "Node config (YAML)")
      ->required()
      ->check(CLI::ExistingFile);
  action->add_option("device", o->device, "Device name")->required();
  action->add_option("action", o->action, "Action name")->required();
  action->add_option("params", o->params, "Parameters as key=value");
  action->add_option("--log-level", o->log_level, "Connector log level (default off)");

  auto cluster = sandbox->add_subcommand(
      "cluster", "Put a cluster config's connectors on simulated nodes through random crashes, "
                 "pauses and partitions, checking ownership and failover");
  cluster->add_option("-c,--config", o->config, "Cluster config (YAML) with cluster.etcd")
      ->required()
      ->check(CLI::ExistingFile);
  cluster->add_option("--node", o->nodes,
                      "A simulated node, ID[:KEY=VALUE,...] (repeatable; at least two); it "
                      "also carries the config's node.labels");
  auto cluster_seed = cluster->add_option("--seed", o->seed, "Run this seed (default 1)");
  cluster->add_option("--seeds", o->seeds, "Sweep seeds FIRST..LAST, stop at the first failure")
      ->excludes(cluster_seed);
  cluster->add_option("--io-overrun", o->io_overrun,
                      "How long a device call sent just before the fence closed may still act "
                      "(network and device latency)")
      ->capture_default_str();
  cluster->add_flag("--json", o->as_json, "Print the result as JSON");

  return [o, run, action, cluster]() -> std::optional<int> {
    if (*cluster) return sandbox_cluster(*o);
    if (*run) return o->seeds.empty() ? sandbox_run(*o) : sandbox_sweep(*o);
    if (*action) return sandbox_action(*o);
    return std::nullopt;
  };
}

} // namespace manifold::cli
