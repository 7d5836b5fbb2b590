#include "manifold/actors/model.hpp"

#include <cmath>
#include <ctime>
#include <limits>
#include <sstream>

#include "manifold/actors/messages.hpp"

namespace manifold {

const char* to_string(value_type t) {
  switch (t) {
    case value_type::boolean: return "bool";
    case value_type::int64: return "int64";
    case value_type::float64: return "double";
    case value_type::string: return "string";
    case value_type::bytes: return "bytes";
  }
  return "?";
}

std::optional<value_type> parse_value_type(const std::string& name) {
  if (name == "bool" || name == "boolean") return value_type::boolean;
  if (name == "int64" || name == "int") return value_type::int64;
  if (name == "double" || name == "float64") return value_type::float64;
  if (name == "string") return value_type::string;
  if (name == "bytes") return value_type::bytes;
  return std::nullopt;
}

std::optional<value_type> type_of(const value& v) {
  switch (v.index()) {
    case 1: return value_type::boolean;
    case 2: return value_type::int64;
    case 3: return value_type::float64;
    case 4: return value_type::string;
    case 5: return value_type::bytes;
    default: return std::nullopt;
  }
}

std::optional<value> coerce(const value& v, value_type t) {
  if (type_of(v) == t) return v;
  switch (t) {
    case value_type::float64:
      if (auto* i = std::get_if<std::int64_t>(&v)) return value{static_cast<double>(*i)};
      break;
    case value_type::int64:
      if (auto* d = std::get_if<double>(&v)) {
        // Only integral doubles within range: 2.5 for an int64 is a mistake, not a rounding.
        if (std::isfinite(*d) && std::floor(*d) == *d && *d >= -9.2e18 && *d <= 9.2e18)
          return value{static_cast<std::int64_t>(*d)};
      }
      break;
    case value_type::boolean:
      if (auto* i = std::get_if<std::int64_t>(&v); i && (*i == 0 || *i == 1))
        return value{*i == 1};
      break;
    default: break;
  }
  return std::nullopt;
}

std::string to_display_string(const value& v) {
  struct visitor {
    std::string operator()(std::monostate) const { return "-"; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      std::ostringstream os;
      os.precision(10);
      os << d;
      return os.str();
    }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const bytes& b) const {
      static const char* hex = "0123456789abcdef";
      std::string out;
      for (auto c : b) {
        out += hex[c >> 4];
        out += hex[c & 0xf];
      }
      return out;
    }
  };
  return std::visit(visitor{}, v);
}

const char* to_string(quality q) {
  switch (q) {
    case quality::good: return "good";
    case quality::stale: return "stale";
    case quality::bad: return "bad";
  }
  return "?";
}

timestamp now_timestamp() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

std::string format_timestamp(timestamp ts) {
  if (ts == 0) return {};
  std::time_t secs = static_cast<std::time_t>(ts / 1'000'000'000);
  int millis = static_cast<int>((ts / 1'000'000) % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[80]; // Room for any int the format may print, so nothing is ever cut.
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
  return buf;
}

std::string source_location::to_string() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

const parameter_config* action_config::parameter(const std::string& n) const {
  for (auto& p : parameters)
    if (p.name == n) return &p;
  return nullptr;
}

const point_config* device_config::point(const std::string& n) const {
  for (auto& p : points)
    if (p.name == n) return &p;
  return nullptr;
}

const action_config* device_config::action(const std::string& n) const {
  for (auto& a : actions)
    if (a.name == n) return &a;
  return nullptr;
}

const device_config* connector_config::device(const std::string& n) const {
  for (auto& d : devices)
    if (d.name == n) return &d;
  return nullptr;
}

bool placement_config::matches(const std::map<std::string, std::string>& labels) const {
  if (!node.empty()) return false;
  for (auto& [k, v] : selector) {
    auto i = labels.find(k);
    if (i == labels.end() || i->second != v) return false;
  }
  return true;
}

std::string placement_config::to_string() const {
  std::string out;
  if (!node.empty()) {
    out = "node=" + node;
  } else {
    for (auto& [k, v] : selector) out += (out.empty() ? "" : ",") + k + "=" + v;
    if (out.empty()) out = "any node";
  }
  if (failover) out += ", failover";
  return out;
}

const connector_config* node_config::connector(const std::string& n) const {
  for (auto& c : connectors)
    if (c.name == n) return &c;
  return nullptr;
}

const char* to_string(connector_state s) {
  switch (s) {
    case connector_state::starting: return "starting";
    case connector_state::running: return "running";
    case connector_state::degraded: return "degraded";
    case connector_state::restarting: return "restarting";
    case connector_state::failed: return "failed";
    case connector_state::stopped: return "stopped";
  }
  return "?";
}

} // namespace manifold
