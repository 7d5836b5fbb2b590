#include "manifold/actors/config.hpp"

#include "manifold/actors/log.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

namespace manifold::config {

// -- diagnostics -----------------------------------------------------------------------------------

std::string diagnostic::to_string() const {
  // Line 0: the problem is the file as a whole, not a place in it.
  if (where.line == 0) return where.file + ": " + message;
  return where.to_string() + ": " + message;
}

void diagnostics::add(source_location where, std::string message) {
  items_.push_back({std::move(where), std::move(message)});
}

void diagnostics::sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const diagnostic& a, const diagnostic& b) {
    return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
  });
}

std::string diagnostics::to_string() const {
  std::string out;
  for (auto& d : items_) {
    // A secret's value written by mistake into another field is not echoed either.
    out += log::redact(d.to_string());
    out += '\n';
  }
  return out;
}

// -- helpers ---------------------------------------------------------------------------------------

source_location location_of(const YAML::Node& node, const std::string& file) {
  auto mark = node.Mark();
  // yaml-cpp counts from 0; editors count from 1. A null mark (-1) means "no position".
  return {file, mark.line + 1, mark.column + 1};
}

std::optional<std::chrono::milliseconds> parse_duration(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  if (i == 0 || i > 12) return std::nullopt;
  auto number = std::stoll(text.substr(0, i));
  auto unit = text.substr(i);
  if (unit == "ms") return std::chrono::milliseconds{number};
  if (unit == "s") return std::chrono::milliseconds{number * 1000};
  if (unit == "m") return std::chrono::milliseconds{number * 60'000};
  if (unit == "h") return std::chrono::milliseconds{number * 3'600'000};
  return std::nullopt;
}

bool valid_name(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

namespace {

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

std::string format_ms(std::chrono::milliseconds d) {
  auto n = d.count();
  if (n % 3'600'000 == 0 && n != 0) return std::to_string(n / 3'600'000) + "h";
  if (n % 60'000 == 0 && n != 0) return std::to_string(n / 60'000) + "m";
  if (n % 1000 == 0 && n != 0) return std::to_string(n / 1000) + "s";
  return std::to_string(n) + "ms";
}

} // namespace

// -- map_reader ------------------------------------------------------------------------------------

map_reader::map_reader(YAML::Node node, std::string file, diagnostics& diag, std::string what)
  : node_(std::move(node)), file_(std::move(file)), diag_(diag), what_(std::move(what)) {
  if (!node_.IsMap()) {
    diag_.add(location_of(node_, file_), what_ + " must be a mapping, got " + describe(node_));
    ok_ = false;
    return;
  }
  // yaml-cpp keeps both entries of a repeated key; the second would silently win elsewhere.
  std::set<std::string> seen;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    auto key = it->first.as<std::string>("");
    if (!seen.insert(key).second)
      diag_.add(location_of(it->first, file_), "duplicate key '" + key + "' in " + what_);
  }
}

source_location map_reader::where() const {
  return location_of(node_, file_);
}

source_location map_reader::where(const std::string& key) const {
  if (ok_) {
    for (auto it = node_.begin(); it != node_.end(); ++it)
      if (it->first.as<std::string>("") == key) return location_of(it->second, file_);
  }
  return where();
}

bool map_reader::has(const std::string& key) const {
  return ok_ && node_[key].IsDefined() && !node_[key].IsNull();
}

YAML::Node map_reader::take(const std::string& key) {
  taken_.insert(key);
  if (!ok_) return YAML::Node{YAML::NodeType::Undefined};
  return node_[key];
}

void map_reader::error(const std::string& key, const std::string& message) {
  diag_.add(where(key), message);
}

std::optional<std::string> map_reader::get_string(const std::string& key, bool required) {
  auto n = take(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required && ok_) diag_.add(where(), what_ + ": missing required key '" + key + "'");
    return std::nullopt;
  }
  if (!n.IsScalar()) {
    error(key, "'" + key + "' must be a string, got " + describe(n));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<bool> map_reader::get_bool(const std::string& key, bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  if (*s == "true") return true;
  if (*s == "false") return false;
  error(key, "'" + key + "' must be true or false, got '" + *s + "'");
  return std::nullopt;
}

std::optional<std::int64_t> map_reader::get_int(const std::string& key, std::int64_t min,
                                                std::int64_t max, bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  std::int64_t v = 0;
  std::size_t used = 0;
  try {
    v = std::stoll(*s, &used, 0);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != s->size()) {
    error(key, "'" + key + "' must be an integer, got '" + *s + "'");
    return std::nullopt;
  }
  if (v < min || v > max) {
    error(key, "'" + key + "' must be between " + std::to_string(min) + " and " +
                 std::to_string(max) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<double> map_reader::get_double(const std::string& key, bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  double v = 0;
  std::size_t used = 0;
  try {
    v = std::stod(*s, &used);
  } catch (...) {
    used = 0;
  }
  if (used == 0 || used != s->size() || !std::isfinite(v)) {
    error(key, "'" + key + "' must be a number, got '" + *s + "'");
    return std::nullopt;
  }
  return v;
}

std::optional<std::chrono::milliseconds>
map_reader::get_duration(const std::string& key, std::chrono::milliseconds min,
                         std::chrono::milliseconds max, bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  auto d = parse_duration(*s);
  if (!d) {
    error(key, "'" + key + "' must be a duration such as 250ms, 5s, 2m or 1h, got '" + *s + "'");
    return std::nullopt;
  }
  if (*d < min || *d > max) {
    error(key, "'" + key + "' must be between " + format_ms(min) + " and " + format_ms(max) +
                 ", got " + *s);
    return std::nullopt;
  }
  return d;
}

std::optional<std::string> map_reader::get_enum(const std::string& key,
                                                const std::vector<std::string>& choices,
                                                bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  for (auto& c : choices)
    if (c == *s) return s;
  std::string list;
  for (auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  error(key, "'" + key + "' must be one of " + list + ", got '" + *s + "'");
  return std::nullopt;
}

std::optional<value_type> map_reader::get_value_type(const std::string& key, bool required) {
  auto s = get_enum(key, {"bool", "int64", "double", "string", "bytes"}, required);
  if (!s) return std::nullopt;
  return parse_value_type(*s);
}

std::optional<std::string> map_reader::get_name(const std::string& key, bool required) {
  auto s = get_string(key, required);
  if (!s) return std::nullopt;
  if (!valid_name(*s)) {
    error(key, "'" + key + "' must be 1 to 64 letters, digits, '-', '_' or '.', got '" + *s +
                 "'");
    return std::nullopt;
  }
  return s;
}

std::map<std::string, std::string> map_reader::get_string_map(const std::string& key) {
  std::map<std::string, std::string> out;
  auto n = take(key);
  if (!n.IsDefined() || n.IsNull()) return out;
  if (!n.IsMap()) {
    error(key, "'" + key + "' must be a mapping of names to strings, got " + describe(n));
    return out;
  }
  map_reader sub{n, file_, diag_, "'" + key + "'"};
  for (auto it = n.begin(); it != n.end(); ++it) {
    if (!it->second.IsScalar()) {
      diag_.add(location_of(it->second, file_),
                "'" + key + "." + it->first.as<std::string>("") + "' must be a string");
      continue;
    }
    out[it->first.as<std::string>("")] = it->second.Scalar();
  }
  return out;
}

std::optional<secret> map_reader::get_secret(const std::string& key, bool required) {
  auto n = take(key);
  if (!n.IsDefined() || n.IsNull()) {
    if (required && ok_) diag_.add(where(), what_ + ": missing required key '" + key + "'");
    return std::nullopt;
  }
  const std::string expected = "a reference {secret: NAME} or {env: VARIABLE}";
  if (n.IsScalar()) {
    // Never echo the scalar: it is probably the credential itself.
    error(key, "'" + key + "' must not be written inline; use " + expected);
    return std::nullopt;
  }
  if (!n.IsMap() || n.size() != 1) {
    error(key, "'" + key + "' must be " + expected + ", got " + describe(n));
    return std::nullopt;
  }
  auto kind = n.begin()->first.as<std::string>("");
  auto name = n.begin()->second.IsScalar() ? n.begin()->second.Scalar() : std::string{};
  if ((kind != "secret" && kind != "env") || name.empty()) {
    error(key, "'" + key + "' must be " + expected);
    return std::nullopt;
  }
  if (kind == "env") {
    const char* v = std::getenv(name.c_str());
    if (!v) {
      error(key, "'" + key + "': environment variable " + name + " is not set");
      return std::nullopt;
    }
    if (!*v) {
      error(key, "'" + key + "': environment variable " + name + " is empty");
      return std::nullopt;
    }
    log::register_secret(v);
    return secret{v, "env:" + name};
  }
  if (!valid_name(name) || name.front() == '.') {
    error(key, "'" + key + "': secret name '" + name +
                 "' must be 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'");
    return std::nullopt;
  }
  auto path = secrets_dir_ + "/" + name;
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    error(key, "'" + key + "': secret '" + name + "' not found (expected a file " + path + ")");
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  auto v = text.str();
  // Files made with `echo` or by editors end in a newline that is not part of the secret.
  while (!v.empty() && (v.back() == '\n' || v.back() == '\r')) v.pop_back();
  if (v.empty()) {
    error(key, "'" + key + "': secret '" + name + "' is empty (" + path + ")");
    return std::nullopt;
  }
  log::register_secret(v);
  return secret{v, "secret:" + name};
}

map_reader map_reader::nested(const std::string& key, std::string what) {
  map_reader r{take(key), file_, diag_, std::move(what)};
  r.secrets_dir_ = secrets_dir_;
  return r;
}

void map_reader::finish() {
  if (!ok_) return;
  for (auto it = node_.begin(); it != node_.end(); ++it) {
    auto key = it->first.as<std::string>("");
    if (taken_.count(key)) continue;
    std::string allowed;
    for (auto& k : taken_) allowed += (allowed.empty() ? "" : ", ") + k;
    diag_.add(location_of(it->first, file_),
              "unknown key '" + key + "' in " + what_ + " (expected one of: " + allowed + ")");
  }
}

std::optional<value> parse_scalar(const YAML::Node& n, value_type t) {
  if (!n.IsScalar()) return std::nullopt;
  const auto& s = n.Scalar();
  try {
    std::size_t used = 0;
    switch (t) {
      case value_type::boolean:
        if (s == "true") return value{true};
        if (s == "false") return value{false};
        return std::nullopt;
      case value_type::int64: {
        auto v = std::stoll(s, &used, 0);
        if (used != s.size()) return std::nullopt;
        return value{static_cast<std::int64_t>(v)};
      }
      case value_type::float64: {
        auto v = std::stod(s, &used);
        if (used != s.size() || !std::isfinite(v)) return std::nullopt;
        return value{v};
      }
      case value_type::string: return value{s};
      case value_type::bytes: return value{bytes(s.begin(), s.end())};
    }
  } catch (...) {
  }
  return std::nullopt;
}

// -- loader ----------------------------------------------------------------------------------------

namespace {

using namespace std::chrono_literals;

/// `HOST:PORT` or `[V6]:PORT` with a port from 0 to 65535; HOST is a name or an address (no
/// scheme, path or spaces).
bool parse_host_port(const std::string& text, std::string& host_out, std::uint16_t& port_out) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  auto digits = text.substr(colon + 1);
  if (host.empty() || digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos ||
      host.find_first_of("/ \t@?#") != std::string::npos)
    return false;
  auto port = std::stoll(digits);
  if (port > 65535) return false;
  host_out = host;
  port_out = static_cast<std::uint16_t>(port);
  return true;
}

class loader {
public:
  loader(std::string file, const schema_lookup& schemas, const std::vector<std::string>& types,
         const load_options& options)
    : file_(std::move(file)), schemas_(schemas), types_(types), options_(options) {}

  load_result run(const std::string& text) {
    load_result result;
    YAML::Node root;
    try {
      root = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      result.diag.add({file_, e.mark.line + 1, e.mark.column + 1},
                      "not valid YAML: " + e.msg);
      return result;
    }
    return run(root);
  }

  load_result run(const YAML::Node& root) {
    load_result result;
    node_config cfg;
    cfg.source = file_;
    if (!root.IsDefined() || root.IsNull()) {
      diag_.add({file_, 1, 1}, "the config is empty (expected node, gateway and connectors)");
    } else {
      read_root(root, cfg);
    }
    result.diag = std::move(diag_);
    result.diag.sort();
    if (result.diag.empty()) result.config = std::move(cfg);
    return result;
  }

private:
  void read_root(const YAML::Node& root, node_config& cfg) {
    map_reader r{root, file_, diag_, "the config"};
    if (!r.ok()) return;
    // `node` first, whatever the file's order: it says where secrets live.
    if (auto n = r.take("node"); n.IsDefined() && !n.IsNull()) read_node(n, cfg);
    secrets_dir_ = cfg.secrets_dir;
    if (secrets_dir_.empty()) secrets_dir_ = options_.secrets_dir;
    if (const char* env = std::getenv("MANIFOLD_SECRETS_DIR"); secrets_dir_.empty() && env)
      secrets_dir_ = env;
    if (secrets_dir_.empty()) secrets_dir_ = "/run/secrets/manifold";
    if (auto n = r.take("gateway"); n.IsDefined() && !n.IsNull()) read_gateway(n, cfg.gateway);
    if (auto n = r.take("cluster"); n.IsDefined() && !n.IsNull()) read_cluster(n, cfg.cluster);
    auto list = r.take("connectors");
    if (!list.IsDefined() || list.IsNull()) {
      diag_.add(r.where(), "the config: missing required key 'connectors' (a list)");
    } else if (!list.IsSequence()) {
      diag_.add(location_of(list, file_), "'connectors' must be a list, got " + describe(list));
    } else {
      for (auto item : list) read_connector(item, cfg);
    }
    r.finish();
    check_unique_devices(cfg);
    check_placements(cfg);
    if (list.IsDefined()) cfg.cluster.connectors_digest = digest_of(list);
  }

  void read_node(const YAML::Node& n, node_config& cfg) {
    auto r = reader(n, "'node'");
    if (auto v = r.get_name("id", false)) cfg.id = *v;
    cfg.labels = r.get_string_map("labels");
    if (auto v = r.get_enum("log_level", {"trace", "debug", "info", "warn", "error", "off"}))
      cfg.log_level = *v;
    if (auto v = r.get_int("worker_threads", 0, 256)) cfg.worker_threads = *v;
    if (auto v = r.get_string("secrets_dir")) cfg.secrets_dir = *v;
    if (auto sn = r.take("supervision"); sn.IsDefined() && !sn.IsNull()) {
      auto sr = reader(sn, "'supervision'");
      auto& sup = cfg.supervision;
      if (auto v = sr.get_enum("strategy", {"one_for_one", "one_for_all", "rest_for_one"}))
        sup.strategy = *v == "one_for_one"   ? supervision_strategy::one_for_one
                       : *v == "one_for_all" ? supervision_strategy::one_for_all
                                             : supervision_strategy::rest_for_one;
      if (auto v = sr.get_int("max_restarts", 0, 10000)) sup.max_restarts = *v;
      if (auto v = sr.get_duration("window", 1s, 24h)) sup.window = *v;
      if (auto v = sr.get_duration("backoff", 1ms, 1h)) sup.backoff = *v;
      sr.finish();
    }
    r.finish();
  }

  void read_gateway(const YAML::Node& n, gateway_config& gw) {
    auto r = reader(n, "'gateway'");
    if (auto v = r.get_string("listen")) {
      if (!parse_host_port(*v, gw.host, gw.port))
        r.error("listen", "'listen' must be HOST:PORT with a port from 0 to 65535 (0 picks a free "
                          "port), got '" + *v + "'");
    }
    if (auto v = r.get_int("max_body_bytes", 1, 16 << 20)) gw.max_body_bytes = *v;
    if (auto v = r.get_int("max_connections", 1, 65536)) gw.max_connections = *v;
    if (auto v = r.get_duration("request_timeout", 10ms, 10min)) gw.request_timeout = *v;
    if (auto v = r.get_int("stream_queue_limit", 1, 1 << 20)) gw.stream_queue_limit = *v;
    r.finish();
  }

  void read_cluster(const YAML::Node& n, cluster_config& cl) {
    auto r = reader(n, "'cluster'");
    if (!r.ok()) return;
    cl.enabled = true;
    if (auto v = r.get_name("name", false)) cl.name = *v;
    if (auto v = r.get_string("listen")) {
      if (!parse_host_port(*v, cl.host, cl.port))
        r.error("listen", "'cluster.listen' must be HOST:PORT with a port from 0 to 65535 (0 "
                          "picks a free port), got '" + *v + "'");
    }
    if (auto v = r.get_string("advertise")) {
      std::string host;
      std::uint16_t port = 0;
      if (!parse_host_port(*v, host, port) || port == 0)
        r.error("advertise", "'cluster.advertise' must be HOST:PORT with a port from 1 to 65535 "
                             "(the address other nodes dial), got '" + *v + "'");
      else
        cl.advertise = *v;
    }
    if (auto seeds = r.take("seeds"); seeds.IsDefined() && !seeds.IsNull()) {
      if (!seeds.IsSequence()) {
        diag_.add(location_of(seeds, file_),
                  "'cluster.seeds' must be a list of HOST:PORT, got " + describe(seeds));
      } else {
        for (auto s : seeds) {
          std::string host;
          std::uint16_t port = 0;
          if (!s.IsScalar() || !parse_host_port(s.Scalar(), host, port) || port == 0)
            diag_.add(location_of(s, file_), "a seed must be HOST:PORT with a port from 1 to "
                                             "65535, got " + describe(s));
          else
            cl.seeds.push_back(s.Scalar());
        }
      }
    }
    if (auto v = r.get_duration("heartbeat_interval", 10ms, 1min)) cl.heartbeat_interval = *v;
    if (auto v = r.get_duration("failure_timeout", 50ms, 10min)) cl.failure_timeout = *v;
    if (auto v = r.get_duration("request_timeout", 10ms, 10min)) cl.request_timeout = *v;
    if (cl.failure_timeout <= cl.heartbeat_interval)
      r.error("failure_timeout", "'cluster.failure_timeout' (" +
                                   std::to_string(cl.failure_timeout.count()) +
                                   " ms) must be longer than 'heartbeat_interval' (" +
                                   std::to_string(cl.heartbeat_interval.count()) + " ms)");
    if (auto t = r.take("tls"); t.IsDefined() && !t.IsNull()) read_cluster_tls(t, cl.tls);
    if (auto e = r.take("etcd"); e.IsDefined() && !e.IsNull()) read_etcd(e, cl);
    r.finish();
  }

  void read_cluster_tls(const YAML::Node& n, cluster_tls_config& tls) {
    auto r = reader(n, "'cluster.tls'");
    if (!r.ok()) return;
    auto file = [&](const char* key, std::string& out) {
      auto v = r.get_string(key, true);
      if (!v) return;
      std::ifstream in{*v};
      if (!in)
        r.error(key, std::string{"'cluster.tls."} + key + "': cannot read '" + *v +
                       "': " + std::strerror(errno) + " (expected a PEM file)");
      // An ifstream opens a directory too; reading it fails only later, inside OpenSSL.
      else if (std::error_code ec; std::filesystem::is_directory(*v, ec))
        r.error(key, std::string{"'cluster.tls."} + key + "': '" + *v +
                       "' is a directory (expected a PEM file)");
      else
        out = *v;
    };
    file("certificate", tls.certificate);
    file("key", tls.key);
    file("ca", tls.ca);
    r.finish();
    if (tls.certificate.empty() || tls.key.empty() || tls.ca.empty()) tls = {};
  }

  void read_etcd(const YAML::Node& n, cluster_config& cl) {
    auto r = reader(n, "'cluster.etcd'");
    if (!r.ok()) return;
    etcd_config e;
    auto list = r.take("endpoints");
    if (!list.IsDefined() || list.IsNull()) {
      r.error("endpoints", "'cluster.etcd': missing required key 'endpoints' (a list of "
                           "http://HOST:PORT)");
    } else if (!list.IsSequence() || list.size() == 0) {
      diag_.add(location_of(list, file_), "'cluster.etcd.endpoints' must be a non-empty list of "
                                          "http://HOST:PORT, got " + describe(list));
    } else {
      for (auto item : list) {
        std::string host;
        std::uint16_t port = 0;
        auto text = item.IsScalar() ? item.Scalar() : std::string{};
        const std::string scheme = "http://";
        if (text.rfind(scheme, 0) != 0 ||
            !parse_host_port(text.substr(scheme.size()), host, port) || port == 0)
          diag_.add(location_of(item, file_), "an etcd endpoint must be http://HOST:PORT (etcd's "
                                              "client URL), got " + describe(item));
        else
          e.endpoints.push_back(text);
      }
    }
    if (auto v = r.get_string("prefix")) {
      if (v->empty() || v->front() != '/' || v->find(' ') != std::string::npos)
        r.error("prefix", "'cluster.etcd.prefix' must start with '/' and hold no spaces, got '" +
                            *v + "'");
      else
        e.prefix = *v;
    }
    if (auto v = r.get_duration("lease_ttl", 2s, 10min)) e.lease_ttl = *v;
    // At least half a second: it must cover a device call already on its way when the fence
    // closes, and a step that comes late (`manifold sandbox cluster` shows what less allows).
    if (auto v = r.get_duration("fence_margin", 500ms, 10min)) e.fence_margin = *v;
    if (auto v = r.get_duration("request_timeout", 10ms, 1min)) e.request_timeout = *v;
    if (e.fence_margin * 2 > e.lease_ttl)
      r.error("fence_margin", "'cluster.etcd.fence_margin' (" +
                                std::to_string(e.fence_margin.count()) +
                                " ms) must be at most half of 'lease_ttl' (" +
                                std::to_string(e.lease_ttl.count()) + " ms)");
    if (e.request_timeout >= e.fence_margin)
      r.error("request_timeout", "'cluster.etcd.request_timeout' (" +
                                   std::to_string(e.request_timeout.count()) +
                                   " ms) must be shorter than 'fence_margin' (" +
                                   std::to_string(e.fence_margin.count()) + " ms)");
    r.finish();
    cl.etcd = std::move(e);
  }

  void read_placement(const YAML::Node& n, connector_config& c) {
    auto r = reader(n, "'placement'");
    if (!r.ok()) return;
    auto& p = c.placement;
    p.declared = true;
    if (auto v = r.get_name("node", false)) p.node = *v;
    if (auto sel = r.take("selector"); sel.IsDefined() && !sel.IsNull()) {
      if (sel.IsMap()) {
        for (auto it = sel.begin(); it != sel.end(); ++it) {
          if (!it->second.IsScalar())
            diag_.add(location_of(it->second, file_), "'placement.selector." +
                                                        it->first.as<std::string>("") +
                                                        "' must be a string");
          else
            p.selector[it->first.as<std::string>("")] = it->second.Scalar();
        }
      } else if (sel.IsScalar() && parse_selector(sel.Scalar(), p.selector)) {
      } else {
        diag_.add(location_of(sel, file_), "'placement.selector' must be LABEL=VALUE[,LABEL=VALUE"
                                           "...] with each label once (e.g. "
                                           "role=edge,site=plant-1) or a mapping, got " +
                                           describe(sel));
      }
      if (p.selector.empty() && sel.IsMap())
        diag_.add(location_of(sel, file_), "'placement.selector' must name at least one label");
    }
    if (auto v = r.get_bool("failover")) p.failover = *v;
    if (!p.node.empty() && r.has("selector"))
      r.error("selector", "'placement' takes either 'node' (pinned) or 'selector', not both");
    if (p.node.empty() && p.selector.empty() && !r.has("selector"))
      r.error("node", "'placement' needs 'node: ID' (pinned to one node) or 'selector: "
                      "LABEL=VALUE,...' (any matching node)");
    if (!p.node.empty() && p.failover)
      r.error("failover", "a connector pinned to node '" + p.node + "' cannot fail over; use a "
                          "'selector' to let it move");
    r.finish();
  }

  static bool parse_selector(const std::string& text, std::map<std::string, std::string>& out) {
    std::size_t start = 0;
    while (start <= text.size()) {
      auto comma = text.find(',', start);
      auto part = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                 : comma - start);
      auto eq = part.find('=');
      if (eq == std::string::npos) return false;
      auto key = part.substr(0, eq);
      auto val = part.substr(eq + 1);
      if (!valid_name(key) || val.empty() || val.find('=') != std::string::npos ||
          !out.emplace(key, val).second)
        return false;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return !out.empty();
  }

  /// Placement only means something in a cluster, and failover only with etcd to decide who
  /// owns a connector: without it two halves of a partition could each start the same one.
  void check_placements(const node_config& cfg) {
    auto& cl = cfg.cluster;
    for (auto& c : cfg.connectors) {
      auto& p = c.placement;
      if (!cl.enabled) continue;
      if (!p.declared) {
        diag_.add(c.where, "connector '" + c.name + "': missing 'placement' (in a cluster every "
                           "connector says where it runs: 'node: ID' or 'selector: "
                           "LABEL=VALUE,...')");
        continue;
      }
      if (p.node.empty() && !cl.etcd)
        diag_.add(c.where, "connector '" + c.name + "': a placement 'selector' needs "
                           "'cluster.etcd' (without etcd only 'placement.node' is supported, "
                           "and nothing fails over)");
    }
  }

  /// The node's content without its style: mappings sorted by key, scalars as their text. Two
  /// files that say the same thing in flow or block style, or with keys in another order,
  /// give the same text.
  static void canonical(const YAML::Node& n, std::string& out) {
    auto quoted = [&](const std::string& s) {
      out += '"';
      for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
      }
      out += '"';
    };
    switch (n.Type()) {
      case YAML::NodeType::Map: {
        // Sorted by index: assigning a YAML::Node (as sorting nodes would) writes through to
        // the document it refers to.
        std::vector<YAML::Node> values;
        std::vector<std::pair<std::string, std::size_t>> keys;
        for (auto it = n.begin(); it != n.end(); ++it) {
          std::string key;
          canonical(it->first, key);
          keys.emplace_back(std::move(key), values.size());
          values.push_back(it->second);
        }
        std::sort(keys.begin(), keys.end());
        out += '{';
        for (auto& [key, index] : keys) {
          out += key;
          out += ':';
          canonical(values[index], out);
          out += ',';
        }
        out += '}';
        break;
      }
      case YAML::NodeType::Sequence:
        out += '[';
        for (auto item : n) {
          canonical(item, out);
          out += ',';
        }
        out += ']';
        break;
      case YAML::NodeType::Scalar: quoted(n.Scalar()); break;
      default: out += '~';
    }
  }

  /// FNV-1a over the canonical text of the connectors section: nodes compare it when they meet.
  static std::string digest_of(const YAML::Node& list) {
    std::string text;
    canonical(list, text);
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char ch : text) {
      h ^= ch;
      h *= 1099511628211ull;
    }
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }

  void read_connector(const YAML::Node& n, node_config& cfg) {
    auto r = reader(n, "a connector");
    if (!r.ok()) return;
    connector_config c;
    c.where = r.where();
    auto name = r.get_name("name");
    auto type = r.get_string("type", true);
    if (name) {
      c.name = *name;
      if (!seen_names(&cfg, "connector:" + c.name))
        r.error("name", "duplicate connector name '" + c.name + "'");
    }
    connector_schema* schema = nullptr;
    if (type) {
      c.type = *type;
      schema = schemas_(c.type);
      if (!schema) {
        std::string list;
        for (auto& t : types_) list += (list.empty() ? "" : ", ") + t;
        r.error("type", "unknown connector type '" + c.type + "' (known types: " + list + ")");
      }
    }
    if (auto v = r.get_duration("poll_interval", 10ms, 24h)) c.poll_interval = *v;
    if (auto v = r.get_duration("action_timeout", 10ms, 10min)) c.action_timeout = *v;
    if (auto rs = r.take("restart"); rs.IsDefined() && !rs.IsNull()) {
      auto rr = reader(rs, "'restart'");
      if (auto v = rr.get_enum("kind", {"permanent", "transient", "temporary"}))
        c.restart.kind = *v == "permanent"   ? restart_kind::permanent
                         : *v == "transient" ? restart_kind::transient
                                             : restart_kind::temporary;
      if (auto v = rr.get_duration("initial_backoff", 1ms, 1h)) c.restart.initial_backoff = *v;
      if (auto v = rr.get_duration("max_backoff", 1ms, 24h)) c.restart.max_backoff = *v;
      if (auto v = rr.get_int("max_restarts", 0, 10000)) c.restart.max_restarts = *v;
      if (auto v = rr.get_duration("window", 1s, 24h)) c.restart.window = *v;
      if (auto v = rr.get_duration("health_interval", 10ms, 1h)) c.restart.health_interval = *v;
      if (auto v = rr.get_duration("health_timeout", 10ms, 10min)) c.restart.health_timeout = *v;
      if (c.restart.max_backoff < c.restart.initial_backoff)
        rr.error("max_backoff", "'max_backoff' must not be shorter than 'initial_backoff'");
      rr.finish();
    }
    if (auto qs = r.take("queue"); qs.IsDefined() && !qs.IsNull()) {
      auto qr = reader(qs, "'queue'");
      if (auto v = qr.get_int("capacity", 1, 1 << 20)) c.queue.capacity = *v;
      if (auto v = qr.get_enum("overflow", {"drop_oldest", "drop_newest"}))
        c.queue.overflow =
          *v == "drop_newest" ? overflow_policy::drop_newest : overflow_policy::drop_oldest;
      if (auto v = qr.get_int("max_pending_actions", 1, 65536)) c.queue.max_pending_actions = *v;
      qr.finish();
    }
    if (auto pl = r.take("placement"); pl.IsDefined() && !pl.IsNull()) read_placement(pl, c);
    if (schema) schema->parse_connector(r, c);
    auto devices = r.take("devices");
    if (!devices.IsDefined() || devices.IsNull()) {
      diag_.add(r.where(), "connector '" + c.name + "': missing required key 'devices' (a list)");
    } else if (!devices.IsSequence()) {
      diag_.add(location_of(devices, file_), "'devices' must be a list, got " + describe(devices));
    } else {
      for (auto d : devices) read_device(d, c, schema);
    }
    if (!schema) {
      // The type is unknown, so its keys are too; reporting each as unknown would only bury the
      // real error.
    } else {
      r.finish();
      schema->check(c, diag_);
    }
    forget_names(&c);
    cfg.connectors.push_back(std::move(c));
  }

  void read_device(const YAML::Node& n, connector_config& c, connector_schema* schema) {
    auto r = reader(n, "a device");
    if (!r.ok()) return;
    device_config d;
    d.where = r.where();
    if (auto name = r.get_name("name")) {
      d.name = *name;
      if (!seen_names(&c, "device:" + d.name))
        r.error("name", "duplicate device name '" + d.name + "' in connector '" + c.name + "'");
    }
    d.labels = r.get_string_map("labels");
    if (schema) schema->parse_device(r, c, d);
    if (auto points = r.take("points"); points.IsDefined() && !points.IsNull()) {
      if (!points.IsSequence())
        diag_.add(location_of(points, file_), "'points' must be a list, got " + describe(points));
      else
        for (auto p : points) read_point(p, c, d, schema);
    }
    if (auto actions = r.take("actions"); actions.IsDefined() && !actions.IsNull()) {
      if (!actions.IsSequence())
        diag_.add(location_of(actions, file_),
                  "'actions' must be a list, got " + describe(actions));
      else
        for (auto a : actions) read_action(a, c, d, schema);
    }
    if (schema) r.finish();
    forget_names(&d);
    c.devices.push_back(std::move(d));
  }

  void read_point(const YAML::Node& n, const connector_config& c, device_config& d,
                  connector_schema* schema) {
    auto r = reader(n, "a point");
    if (!r.ok()) return;
    point_config p;
    p.where = r.where();
    if (auto name = r.get_name("name")) {
      p.name = *name;
      if (!seen_names(&d, "point:" + p.name))
        r.error("name", "duplicate point name '" + p.name + "' in device '" + d.name + "'");
    }
    if (auto t = r.get_value_type("type")) p.type = *t;
    if (auto u = r.get_string("unit")) p.unit = *u;
    if (auto w = r.get_bool("writable")) p.writable = *w;
    if (auto s = r.get_string("description")) p.description = *s;
    if (schema) {
      schema->parse_point(r, c, d, p);
      r.finish();
    }
    d.points.push_back(std::move(p));
  }

  void read_action(const YAML::Node& n, const connector_config& c, device_config& d,
                   connector_schema* schema) {
    auto r = reader(n, "an action");
    if (!r.ok()) return;
    action_config a;
    a.where = r.where();
    if (auto name = r.get_name("name")) {
      a.name = *name;
      if (!seen_names(&d, "action:" + a.name))
        r.error("name", "duplicate action name '" + a.name + "' in device '" + d.name + "'");
    }
    if (auto s = r.get_string("description")) a.description = *s;
    if (auto t = r.get_value_type("result")) a.result = *t;
    if (auto params = r.take("params"); params.IsDefined() && !params.IsNull()) {
      if (!params.IsSequence())
        diag_.add(location_of(params, file_), "'params' must be a list, got " + describe(params));
      else
        for (auto p : params) read_parameter(p, a);
    }
    if (schema) {
      schema->parse_action(r, c, d, a);
      r.finish();
    }
    d.actions.push_back(std::move(a));
  }

  void read_parameter(const YAML::Node& n, action_config& a) {
    auto r = reader(n, "a parameter");
    if (!r.ok()) return;
    parameter_config p;
    if (auto name = r.get_name("name")) {
      p.name = *name;
      if (a.parameter(p.name))
        r.error("name", "duplicate parameter '" + p.name + "' in action '" + a.name + "'");
    }
    if (auto t = r.get_value_type("type", true)) p.type = *t;
    if (auto req = r.get_bool("required")) p.required = *req;
    bool numeric = p.type == value_type::int64 || p.type == value_type::float64;
    for (auto key : {"min", "max"}) {
      if (!r.has(key)) {
        r.take(key);
        continue;
      }
      if (!numeric) {
        r.take(key);
        r.error(key, std::string{"'"} + key + "' applies only to int64 and double parameters");
        continue;
      }
      auto v = r.get_double(key);
      (std::string{key} == "min" ? p.min : p.max) = v;
    }
    if (p.min && p.max && *p.min > *p.max)
      r.error("max", "'max' must not be less than 'min'");
    if (auto def = r.take("default"); def.IsDefined() && !def.IsNull()) {
      auto v = parse_scalar(def, p.type);
      if (!v)
        r.error("default", std::string{"'default' must be a "} + to_string(p.type) + ", got " +
                             describe(def));
      else if (auto* d = std::get_if<double>(&*v);
               d && ((p.min && *d < *p.min) || (p.max && *d > *p.max)))
        r.error("default", "'default' must lie within 'min' and 'max'");
      else if (auto* i = std::get_if<std::int64_t>(&*v);
               i && ((p.min && *i < *p.min) || (p.max && *i > *p.max)))
        r.error("default", "'default' must lie within 'min' and 'max'");
      else
        p.default_value = v;
      p.required = false;
    }
    r.finish();
    a.parameters.push_back(std::move(p));
  }

  void check_unique_devices(const node_config& cfg) {
    // The API addresses a device by name alone, so names are unique across connectors.
    std::map<std::string, const connector_config*> owner;
    for (auto& c : cfg.connectors)
      for (auto& d : c.devices) {
        auto [it, fresh] = owner.emplace(d.name, &c);
        if (!fresh && it->second != &c)
          diag_.add(d.where, "duplicate device name '" + d.name + "': connector '" +
                               it->second->name + "' already has a device of that name");
      }
  }

  /// Records `name` in the scope `owner` (the config object whose children it names); false when
  /// it was there already. A set per scope keeps the check linear in the config's size.
  bool seen_names(const void* owner, const std::string& name) {
    return names_[owner].insert(name).second;
  }

  /// Forgets a scope once its object is read (and about to move), so the address can be reused.
  void forget_names(const void* owner) { names_.erase(owner); }

  map_reader reader(const YAML::Node& n, std::string what) {
    map_reader r{n, file_, diag_, std::move(what)};
    r.set_secrets_dir(secrets_dir_);
    return r;
  }

  std::string file_;
  const schema_lookup& schemas_;
  const std::vector<std::string>& types_;
  const load_options& options_;
  std::string secrets_dir_;
  std::unordered_map<const void*, std::unordered_set<std::string>> names_;
  diagnostics diag_;
};

} // namespace

load_result load_string(const std::string& text, const std::string& file,
                        const schema_lookup& schemas, const std::vector<std::string>& types,
                        const load_options& options) {
  return loader{file, schemas, types, options}.run(text);
}

load_result load_node(const YAML::Node& root, const std::string& file,
                      const schema_lookup& schemas, const std::vector<std::string>& types,
                      const load_options& options) {
  return loader{file, schemas, types, options}.run(root);
}

load_result load_file(const std::string& path, const schema_lookup& schemas,
                      const std::vector<std::string>& types, const load_options& options) {
  load_result r;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    r.diag.add({path, 0, 0}, "is a directory, not a config file");
    return r;
  }
  std::ifstream in{path, std::ios::binary};
  if (!in) {
    r.diag.add({path, 0, 0}, std::string{"cannot open the config file: "} + std::strerror(errno));
    return r;
  }
  // A node config is a few kilobytes; a huge file is a mistake and would only cost memory.
  constexpr std::uintmax_t max_size = 16u << 20;
  if (auto size = std::filesystem::file_size(path, ec); !ec && size > max_size) {
    r.diag.add({path, 0, 0}, "the config file is " + std::to_string(size) +
                               " bytes; at most 16 MiB is accepted");
    return r;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return load_string(text.str(), path, schemas, types, options);
}

} // namespace manifold::config
