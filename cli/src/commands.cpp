#include "manifold/cli/commands.hpp"

#include <csignal>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include "manifold/actors/http_client.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/cli/node_runtime.hpp"
#include "manifold/supervision/tls_files.hpp"
#include "sandbox_commands.hpp"

namespace manifold::cli {

namespace {

using json = nlohmann::json;

// -- output helpers --------------------------------------------------------------------------------

/// Prints rows as an aligned table with a header line.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (auto& r : rows)
    for (std::size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], r[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::cout << out << '\n';
  };
  line(header);
  for (auto& r : rows) line(r);
}

std::string scalar_text(const json& j) {
  if (j.is_null()) return "-";
  if (j.is_string()) return j.get<std::string>();
  return j.dump();
}

std::string join(const json& arr) {
  std::string out;
  if (!arr.is_array()) return out;
  for (auto& x : arr) out += (out.empty() ? "" : ",") + scalar_text(x);
  return out;
}

// -- client commands -------------------------------------------------------------------------------

struct client_options {
  std::string url;
  bool as_json = false;
};

std::string default_url() {
  if (const char* env = std::getenv("MANIFOLD_URL"); env && *env) return env;
  return "http://127.0.0.1:8080";
}

/// Percent-encodes one path segment.
std::string encode_segment(const std::string& s) {
  std::ostringstream os;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
      os << c;
    else
      os << '%' << std::uppercase << std::hex << std::setw(2) << std::setfill('0') << int(c);
  }
  return os.str();
}

/// Calls the gateway; on success stores the parsed body in `out` and returns exit_ok, otherwise
/// prints the error and returns the exit code.
int call(const client_options& opts, const std::string& method, const std::string& target,
         const std::string& body, json& out) {
  std::string err;
  auto url = http::parse_url(opts.url, err);
  if (!url) {
    std::cerr << "error: --url: " << err << '\n';
    return exit_usage;
  }
  auto res = http::http_call(*url, method, target, body);
  if (res.status == 0) {
    std::cerr << "error: " << res.error << " (is a node running? see --url or MANIFOLD_URL)\n";
    return exit_unreachable;
  }
  json parsed = json::parse(res.body, nullptr, false);
  if (res.status >= 400) {
    std::string code = "http_" + std::to_string(res.status);
    std::string message = res.body;
    if (!parsed.is_discarded() && parsed.contains("error")) {
      code = parsed["error"].value("code", code);
      message = parsed["error"].value("message", message);
    }
    if (opts.as_json)
      std::cout << (parsed.is_discarded() ? json{{"error", {{"code", code}, {"message", message}}}}
                                          : parsed)
                     .dump(2)
                << '\n';
    std::cerr << "error: " << message << " (" << code << ", HTTP " << res.status << ")\n";
    return exit_failed;
  }
  if (parsed.is_discarded()) {
    std::cerr << "error: the node answered with something that is not JSON\n";
    return exit_failed;
  }
  out = std::move(parsed);
  return exit_ok;
}

/// With `--json`, prints the node's answer as it is and returns true.
bool print_json(const client_options& opts, const json& body) {
  if (opts.as_json) std::cout << body.dump(2) << '\n';
  return opts.as_json;
}

int devices_list(const client_options& opts) {
  json body;
  if (int rc = call(opts, "GET", "/v1/devices", {}, body); rc != exit_ok) return rc;
  if (print_json(opts, body)) return exit_ok;
  std::vector<std::vector<std::string>> rows;
  for (auto& d : body)
    rows.push_back({d.value("name", ""), d.value("connector", ""), join(d.value("points", json{})),
                    join(d.value("actions", json{}))});
  print_table({"DEVICE", "CONNECTOR", "POINTS", "ACTIONS"}, rows);
  return exit_ok;
}

int connectors_list(const client_options& opts) {
  json body;
  if (int rc = call(opts, "GET", "/v1/connectors", {}, body); rc != exit_ok) return rc;
  if (print_json(opts, body)) return exit_ok;
  // In a cluster every connector also says which node runs it.
  bool clustered = body.is_array() && !body.empty() && body.front().contains("node");
  std::vector<std::vector<std::string>> rows;
  for (auto& c : body) {
    rows.push_back({c.value("name", ""), c.value("type", ""), c.value("state", ""),
                    scalar_text(c.value("restarts", json{})), c.value("last_error", "")});
    if (clustered) rows.back().insert(rows.back().begin() + 3, scalar_text(c["node"]));
  }
  if (clustered)
    print_table({"CONNECTOR", "TYPE", "STATE", "NODE", "RESTARTS", "LAST ERROR"}, rows);
  else
    print_table({"CONNECTOR", "TYPE", "STATE", "RESTARTS", "LAST ERROR"}, rows);
  return exit_ok;
}

void print_connector(const json& c) {
  if (c.contains("node")) // In a cluster: which node runs it.
    print_table({"CONNECTOR", "TYPE", "STATE", "NODE", "RESTARTS", "LAST ERROR"},
                {{c.value("name", ""), c.value("type", ""), c.value("state", ""),
                  scalar_text(c["node"]), scalar_text(c.value("restarts", json{})),
                  c.value("last_error", "")}});
  else
    print_table({"CONNECTOR", "TYPE", "STATE", "RESTARTS", "LAST ERROR"},
                {{c.value("name", ""), c.value("type", ""), c.value("state", ""),
                  scalar_text(c.value("restarts", json{})), c.value("last_error", "")}});
  if (auto u = c.find("unreachable_devices"); u != c.end() && u->is_array() && !u->empty())
    std::cout << "unreachable devices: " << join(*u) << '\n';
}

/// `connector status NAME` (GET) and `connector stop|start|restart NAME` (POST).
int connector_command(const client_options& opts, const std::string& op,
                      const std::string& name) {
  json body;
  auto target = "/v1/connectors/" + encode_segment(name);
  int rc = op == "status" ? call(opts, "GET", target, {}, body)
                          : call(opts, "POST", target + "/" + op, "{}", body);
  if (rc != exit_ok) return rc;
  if (opts.as_json)
    std::cout << body.dump(2) << '\n';
  else
    print_connector(body);
  return exit_ok;
}

int connector_move(const client_options& opts, const std::string& name, const std::string& to) {
  if (!config::valid_name(to)) {
    std::cerr << "error: --to expects a node id (1 to 64 letters, digits, '-', '_', '.'), got '"
              << (to.size() > 64 ? to.substr(0, 64) + "…" : to) << "'\n";
    return exit_usage;
  }
  json body;
  json request{{"to", to}};
  int rc = call(opts, "POST", "/v1/connectors/" + encode_segment(name) + "/move", request.dump(),
                body);
  if (rc != exit_ok) return rc;
  if (!print_json(opts, body)) std::cout << body.value("result", "") << '\n';
  return exit_ok;
}

std::string labels_text(const json& labels) {
  std::string out;
  if (!labels.is_object()) return out;
  for (auto& [k, v] : labels.items()) out += (out.empty() ? "" : ",") + k + "=" + scalar_text(v);
  return out;
}

int cluster_status(const client_options& opts) {
  json body;
  if (int rc = call(opts, "GET", "/v1/cluster", {}, body); rc != exit_ok) return rc;
  if (print_json(opts, body)) return exit_ok;
  auto leader = body["leader"];
  std::cout << "Cluster '" << body.value("cluster", "") << "' seen from node '"
            << body.value("self", "") << "'; leader: " << scalar_text(leader["id"])
            << (leader.value("chosen_by", "").empty() ? ""
                                                      : " (" + leader.value("chosen_by", "") + ")")
            << '\n';
  if (body.contains("note")) std::cout << "Note: " << body["note"].get<std::string>() << '\n';
  std::cout << '\n';
  std::vector<std::vector<std::string>> rows;
  for (auto& m : body["members"]) {
    std::string health = m.value("health", "");
    if (m.value("draining", false)) health += ", draining";
    if (m.value("self", false)) health += " (this node)";
    std::string running;
    for (auto& c : m["connectors"])
      running += (running.empty() ? "" : ",") + c.value("name", "") + ":" + c.value("state", "");
    rows.push_back({m.value("id", ""), health, m.value("address", ""),
                    labels_text(m["labels"]), running.empty() ? "-" : running,
                    m.value("reason", "").empty() ? "-" : m.value("reason", "")});
  }
  print_table({"NODE", "HEALTH", "ADDRESS", "LABELS", "RUNNING", "REASON"}, rows);
  std::cout << '\n';
  rows.clear();
  for (auto& c : body["connectors"])
    rows.push_back({c.value("name", ""), c.value("placement", ""), scalar_text(c["node"]),
                    scalar_text(c["state"]), c.value("available", false) ? "yes" : "no",
                    c.value("reason", "").empty() ? "-" : c.value("reason", "")});
  print_table({"CONNECTOR", "PLACEMENT", "NODE", "STATE", "AVAILABLE", "REASON"}, rows);
  if (body["refusals"].is_array() && !body["refusals"].empty()) {
    std::cout << "\nRefused peers:\n";
    for (auto& r : body["refusals"])
      std::cout << "  " << r.value("peer", "") << ": " << r.value("reason", "") << " ("
                << scalar_text(r["seconds_ago"]) << " s ago)\n";
  }
  return exit_ok;
}

int cluster_drain(const client_options& opts, const std::string& node, bool undo) {
  json body;
  json request{{"drain", !undo}};
  int rc = call(opts, "POST", "/v1/cluster/nodes/" + encode_segment(node) + "/drain",
                request.dump(), body);
  if (rc != exit_ok) return rc;
  if (!print_json(opts, body)) std::cout << body.value("result", "") << '\n';
  return exit_ok;
}

int point_get(const client_options& opts, const std::string& ref) {
  auto slash = ref.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size()) {
    std::cerr << "error: expected DEVICE/POINT, got '" << ref << "'\n";
    return exit_usage;
  }
  auto device = ref.substr(0, slash);
  auto point = ref.substr(slash + 1);
  json body;
  auto target = "/v1/devices/" + encode_segment(device) + "/points/" + encode_segment(point);
  if (int rc = call(opts, "GET", target, {}, body); rc != exit_ok) return rc;
  if (print_json(opts, body)) return exit_ok;
  print_table({"POINT", "VALUE", "UNIT", "QUALITY", "TIMESTAMP", "REASON"},
              {{ref, scalar_text(body.value("value", json{})), body.value("unit", ""),
                body.value("quality", ""), body.value("timestamp", ""),
                body.value("reason", "")}});
  return exit_ok;
}

/// `key=value` pairs to a JSON object. `declared` maps parameter names to their declared types
/// (from the node): a string or bytes parameter takes the text as it is, so `mode=42` is the
/// string "42"; other values are read as JSON scalars (22.5, true). An undeclared parameter is
/// read as a JSON scalar when it is one, else as text; the node then names what it expected.
std::optional<json> parse_params(const std::vector<std::string>& pairs,
                                 const std::map<std::string, std::string>& declared) {
  json params = json::object();
  for (auto& p : pairs) {
    auto eq = p.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::cerr << "error: parameters are key=value, got '" << p << "'\n";
      return std::nullopt;
    }
    auto key = p.substr(0, eq);
    auto text = p.substr(eq + 1);
    if (params.contains(key)) {
      std::cerr << "error: parameter '" << key << "' is given twice\n";
      return std::nullopt;
    }
    auto type = declared.find(key);
    if (type != declared.end() && (type->second == "string" || type->second == "bytes")) {
      params[key] = text;
      continue;
    }
    auto v = json::parse(text, nullptr, false);
    params[key] = (v.is_discarded() || v.is_object() || v.is_array()) ? json(text) : v;
  }
  return params;
}

/// The declared parameter types of `device`'s `action`, by name; empty when the node does not
/// say (the call then goes ahead and the node reports what is wrong).
std::map<std::string, std::string> declared_params(const client_options& opts,
                                                   const http::parsed_url& url,
                                                   const std::string& device,
                                                   const std::string& action) {
  std::map<std::string, std::string> out;
  auto res = http::http_call(url, "GET", "/v1/devices/" + encode_segment(device));
  if (res.status != 200) return out;
  auto doc = json::parse(res.body, nullptr, false);
  if (doc.is_discarded() || !doc.contains("actions")) return out;
  for (auto& a : doc["actions"])
    if (a.value("name", "") == action && a.contains("params"))
      for (auto& p : a["params"])
        if (p.contains("name") && p.contains("type") && p["type"].is_string())
          out[p["name"].get<std::string>()] = p["type"].get<std::string>();
  return out;
}

int action_invoke(const client_options& opts, const std::string& device, const std::string& action,
                  const std::vector<std::string>& pairs) {
  std::string err;
  auto url = http::parse_url(opts.url, err);
  if (!url) {
    std::cerr << "error: --url: " << err << '\n';
    return exit_usage;
  }
  auto params = parse_params(pairs, declared_params(opts, *url, device, action));
  if (!params) return exit_usage;
  json body;
  auto target = "/v1/devices/" + encode_segment(device) + "/actions/" + encode_segment(action);
  if (int rc = call(opts, "POST", target, params->dump(), body); rc != exit_ok) return rc;
  if (opts.as_json)
    std::cout << body.dump(2) << '\n';
  else
    std::cout << device << " " << action << ": " << scalar_text(body.value("result", json{}))
              << '\n';
  return exit_ok;
}

// -- local commands --------------------------------------------------------------------------------

int config_check(const std::string& file, bool as_json, const config::load_options& options) {
  auto registry = connectors::connector_registry::builtin();
  auto result = load_node_config(file, registry, options);
  // The loader sees that the TLS files can be read; whether OpenSSL takes them (a PEM
  // certificate, its key, a CA) only OpenSSL can say, and a node would fail at its first peer.
  if (result.config)
    for (auto& problem : supervision::check_tls_files(result.config->cluster.tls))
      result.diag.add({file, 0, 0}, problem);
  if (!result.diag.empty()) result.config.reset();
  if (as_json) {
    json out;
    out["file"] = file;
    out["valid"] = result.diag.empty();
    out["errors"] = json::array();
    for (auto& d : result.diag.items())
      out["errors"].push_back({{"file", d.where.file},
                               {"line", d.where.line},
                               {"column", d.where.column},
                               {"message", log::redact(d.message)}});
    if (result.config) {
      std::size_t devices = 0;
      for (auto& c : result.config->connectors) devices += c.devices.size();
      out["connectors"] = result.config->connectors.size();
      out["devices"] = devices;
    }
    std::cout << out.dump(2) << '\n';
  } else if (!result.config) {
    std::cerr << result.diag.to_string();
    std::cerr << file << ": invalid (" << result.diag.items().size() << " error"
              << (result.diag.items().size() == 1 ? "" : "s") << ")\n";
  } else {
    std::size_t devices = 0;
    for (auto& c : result.config->connectors) devices += c.devices.size();
    auto n = result.config->connectors.size();
    std::cout << file << ": ok (" << n << (n == 1 ? " connector, " : " connectors, ") << devices
              << (devices == 1 ? " device)\n" : " devices)\n");
  }
  return result.config ? exit_ok : exit_usage;
}

/// What `node run` may set on the command line so that one cluster config file serves every node.
struct node_overrides {
  std::string id;
  std::vector<std::string> labels; ///< KEY=VALUE
  std::string cluster_listen;
  std::vector<std::string> seeds;

  bool any() const {
    return !id.empty() || !labels.empty() || !cluster_listen.empty() || !seeds.empty();
  }
};

/// Loads the config with the overrides written into its YAML before it is checked, so they are
/// validated (and reported) exactly like keys of the file.
std::optional<config::load_result> load_with_overrides(const std::string& file,
                                                       const connectors::connector_registry& reg,
                                                       const config::load_options& options,
                                                       const node_overrides& o) {
  YAML::Node root;
  std::string name = file.empty() ? "<embedded quickstart.yaml>" : file;
  try {
    root = file.empty() ? YAML::Load(embedded_config()) : YAML::LoadFile(file);
  } catch (const YAML::Exception&) {
    return std::nullopt; // The plain load reports it with its position.
  }
  if (!root.IsMap()) return std::nullopt;
  if (!o.id.empty()) root["node"]["id"] = o.id;
  for (auto& kv : o.labels) {
    auto eq = kv.find('=');
    root["node"]["labels"][kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!o.cluster_listen.empty()) root["cluster"]["listen"] = o.cluster_listen;
  if (!o.seeds.empty()) {
    YAML::Node seeds{YAML::NodeType::Sequence};
    for (auto& s : o.seeds) seeds.push_back(s);
    root["cluster"]["seeds"] = seeds;
  }
  return config::load_node(root, name, reg.schemas(), reg.names(), options);
}

int node_run(const std::string& file, const std::string& listen,
             const config::load_options& options, const node_overrides& overrides) {
  auto registry = connectors::connector_registry::builtin();
  for (auto& kv : overrides.labels) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == kv.size() ||
        !config::valid_name(kv.substr(0, eq))) {
      std::cerr << "error: --label expects KEY=VALUE (KEY: letters, digits, '-', '_', '.'), got '"
                << kv << "'\n";
      return exit_usage;
    }
  }
  std::optional<config::load_result> loaded;
  if (overrides.any()) loaded = load_with_overrides(file, registry, options, overrides);
  auto result = loaded ? std::move(*loaded) : load_node_config(file, registry, options);
  if (!result.config) {
    std::cerr << result.diag.to_string();
    std::cerr << (file.empty() ? "embedded config" : file) << ": invalid config; nothing started\n";
    return exit_usage;
  }
  auto cfg = std::move(*result.config);
  if (!listen.empty()) {
    auto colon = listen.rfind(':');
    auto port = colon == std::string::npos ? std::string{} : listen.substr(colon + 1);
    if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) > 65535) {
      std::cerr << "error: --listen expects HOST:PORT, got '" << listen << "'\n";
      return exit_usage;
    }
    auto host = listen.substr(0, colon);
    if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    cfg.gateway.host = host;
    cfg.gateway.port = static_cast<std::uint16_t>(std::stoi(port));
  }

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  node_runtime node{std::move(cfg), std::move(registry)};
  if (auto err = node.start()) {
    std::cerr << "error: " << *err << '\n';
    return exit_failed;
  }
  std::cout << "Manifold node '" << node.config().id << "' is running.\n"
            << "Gateway: " << node.url() << "  (try: curl " << node.url() << "/v1/devices)\n";
  if (node.cluster_port() != 0)
    std::cout << "Cluster: '" << node.config().cluster.name << "', accepting nodes on port "
              << node.cluster_port() << "  (try: manifold cluster status --url " << node.url()
              << ")\n";
  std::cout << "Press Ctrl-C to stop." << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  node.stop();
  return exit_ok;
}

} // namespace

int run(int argc, char** argv) {
  CLI::App app{"manifold: devices and data sources behind one API", "manifold"};
  app.set_version_flag("--version", "manifold 0.1.0");
  app.require_subcommand(1);

  client_options client;
  auto add_client_flags = [&](CLI::App* cmd) {
    client.url = default_url();
    cmd->add_option("--url", client.url, "Gateway URL of a running node (env MANIFOLD_URL)")
      ->capture_default_str();
    cmd->add_flag("--json", client.as_json, "Print JSON for scripts instead of a table");
  };

  // manifold node run
  auto node = app.add_subcommand("node", "Run a Manifold node");
  node->require_subcommand(1);
  auto node_run_cmd = node->add_subcommand("run", "Start a node and serve its gateway until Ctrl-C");
  std::string node_config_file;
  std::string listen;
  node_run_cmd->add_option("-c,--config", node_config_file,
                           "Node config (YAML); without it the embedded quickstart config runs")
    ->check(CLI::ExistingFile);
  node_run_cmd->add_option("--listen", listen, "Override gateway.listen, e.g. 127.0.0.1:0");
  config::load_options load_opts;
  auto secrets_help = "Directory of secret files for {secret: NAME} references (default: "
                      "node.secrets_dir, $MANIFOLD_SECRETS_DIR, /run/secrets/manifold)";
  node_run_cmd->add_option("--secrets-dir", load_opts.secrets_dir, secrets_help);
  node_overrides overrides;
  node_run_cmd->add_option("--node-id", overrides.id, "Override node.id");
  node_run_cmd->add_option("--label", overrides.labels,
                           "Add or override a node label, KEY=VALUE (repeatable)");
  node_run_cmd->add_option("--cluster-listen", overrides.cluster_listen,
                           "Override cluster.listen (where other nodes connect), HOST:PORT");
  node_run_cmd->add_option("--seed", overrides.seeds,
                           "Replace cluster.seeds with these HOST:PORT (repeatable)");

  // manifold config check
  auto cfg = app.add_subcommand("config", "Work with node config files");
  cfg->require_subcommand(1);
  auto cfg_check = cfg->add_subcommand("check", "Validate a node config without starting anything");
  std::string check_file;
  bool check_json = false;
  cfg_check->add_option("file", check_file, "Config file (YAML)")->required();
  cfg_check->add_flag("--json", check_json, "Print the result as JSON");
  cfg_check->add_option("--secrets-dir", load_opts.secrets_dir, secrets_help);

  // manifold devices list
  auto devices = app.add_subcommand("devices", "Devices of a running node");
  devices->require_subcommand(1);
  auto devices_list_cmd = devices->add_subcommand("list", "List every device with its points");
  add_client_flags(devices_list_cmd);

  // manifold connectors list
  auto conns = app.add_subcommand("connectors", "Connector instances of a running node");
  conns->require_subcommand(1);
  auto conns_list_cmd = conns->add_subcommand("list", "List connectors with state and restarts");
  add_client_flags(conns_list_cmd);

  // manifold connector status|stop|start|restart NAME
  auto conn = app.add_subcommand("connector", "One connector instance of a running node");
  conn->require_subcommand(1);
  std::string connector_name;
  std::map<std::string, CLI::App*> connector_ops;
  for (auto [op, help] : std::vector<std::pair<std::string, std::string>>{
         {"status", "Show state, restarts, last error and unreachable devices"},
         {"stop", "Stop the connector group (its devices become unavailable)"},
         {"start", "Start a stopped or failed connector group"},
         {"restart", "Restart the connector group now"}}) {
    auto sub = conn->add_subcommand(op, help);
    sub->add_option("name", connector_name, "Connector name")->required();
    add_client_flags(sub);
    connector_ops[op] = sub;
  }

  // manifold connector move NAME --to NODE
  std::string move_to;
  auto move_cmd = conn->add_subcommand("move", "Move a movable connector to another node "
                                                "(cluster with etcd)");
  move_cmd->add_option("name", connector_name, "Connector name")->required();
  move_cmd->add_option("--to", move_to, "Node id to move it to")->required();
  add_client_flags(move_cmd);

  // manifold cluster status|drain
  auto cluster = app.add_subcommand("cluster", "The cluster a running node is part of");
  cluster->require_subcommand(1);
  auto cluster_status_cmd =
    cluster->add_subcommand("status", "Show nodes, their health, the leader and which "
                                      "connectors run where");
  add_client_flags(cluster_status_cmd);
  auto cluster_drain_cmd = cluster->add_subcommand(
    "drain", "Move every movable connector off a node, e.g. for maintenance (needs etcd)");
  std::string drain_node;
  bool drain_undo = false;
  cluster_drain_cmd->add_option("node", drain_node, "Node id")->required();
  cluster_drain_cmd->add_flag("--undo", drain_undo,
                              "Let the node take movable connectors again");
  add_client_flags(cluster_drain_cmd);

  // manifold point get
  auto point = app.add_subcommand("point", "Points of a running node's devices");
  point->require_subcommand(1);
  auto point_get_cmd = point->add_subcommand("get", "Read a point's latest value");
  std::string point_ref;
  point_get_cmd->add_option("point", point_ref, "DEVICE/POINT")->required();
  add_client_flags(point_get_cmd);

  // manifold action invoke
  auto action = app.add_subcommand("action", "Device actions of a running node");
  action->require_subcommand(1);
  auto invoke_cmd = action->add_subcommand("invoke", "Invoke a device action");
  std::string action_device;
  std::string action_name;
  std::vector<std::string> action_params;
  invoke_cmd->add_option("device", action_device, "Device name")->required();
  invoke_cmd->add_option("action", action_name, "Action name")->required();
  invoke_cmd->add_option("params", action_params, "Parameters as key=value (value: JSON or text)");
  add_client_flags(invoke_cmd);

  auto sandbox = add_sandbox_commands(app);

  // CLI11 would only say "A subcommand is required" for a mistyped command; name it instead.
  if (argc > 1 && argv[1][0] != '-') {
    std::string first = argv[1];
    std::string known;
    bool found = false;
    for (auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      found = found || sub->get_name() == first;
      known += (known.empty() ? "" : ", ") + sub->get_name();
    }
    if (!found) {
      std::cerr << "error: unknown command '" << first << "' (commands: " << known
                << "; see manifold --help)\n";
      return exit_usage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }

  if (auto rc = sandbox()) return *rc;
  if (*node_run_cmd) return node_run(node_config_file, listen, load_opts, overrides);
  if (*cfg_check) return config_check(check_file, check_json, load_opts);
  if (*devices_list_cmd) return devices_list(client);
  if (*conns_list_cmd) return connectors_list(client);
  for (auto& [op, sub] : connector_ops)
    if (*sub) return connector_command(client, op, connector_name);
  if (*move_cmd) return connector_move(client, connector_name, move_to);
  if (*cluster_status_cmd) return cluster_status(client);
  if (*cluster_drain_cmd) return cluster_drain(client, drain_node, drain_undo);
  if (*point_get_cmd) return point_get(client, point_ref);
  if (*invoke_cmd) return action_invoke(client, action_device, action_name, action_params);
  return exit_usage;
}

} // namespace manifold::cli
