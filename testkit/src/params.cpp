#include "manifold/testkit/params.hpp"

#include <cmath>

namespace manifold::testkit {

namespace {

std::string number_text(double d) {
  auto s = std::to_string(d);
  s.erase(s.find_last_not_of('0') + 1);
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string declared_names(const action_config& a) {
  std::string out;
  for (auto& p : a.parameters)
    out += (out.empty() ? "" : ", ") + p.name;
  return out.empty() ? "none" : out;
}

} // namespace

std::variant<std::map<std::string, value>, std::string>
check_params(const action_config& action, const std::map<std::string, YAML::Node>& raw) {
  std::map<std::string, value> out;
  for (auto& [name, node] : raw)
    if (!action.parameter(name))
      return "unknown parameter '" + name + "' for action '" + action.name +
             "' (it takes: " + declared_names(action) + ")";
  for (auto& p : action.parameters) {
    auto it = raw.find(p.name);
    if (it == raw.end()) {
      if (p.default_value) {
        out[p.name] = *p.default_value;
        continue;
      }
      if (p.required)
        return "missing required parameter '" + p.name + "' (" + to_string(p.type) + ")";
      continue;
    }
    auto v = scalar_as(it->second, p.type);
    if (!v)
      return "parameter '" + p.name + "' must be " + to_string(p.type) + ", got '" +
             (it->second.IsScalar() ? it->second.Scalar() : std::string{"a non-scalar"}) + "'";
    if (p.type == value_type::int64 || p.type == value_type::float64) {
      double x = p.type == value_type::int64 ? static_cast<double>(std::get<std::int64_t>(*v))
                                             : std::get<double>(*v);
      if ((p.min && x < *p.min) || (p.max && x > *p.max))
        return "parameter '" + p.name + "' must be within [" +
               (p.min ? number_text(*p.min) : std::string{"-inf"}) + ", " +
               (p.max ? number_text(*p.max) : std::string{"inf"}) + "], got " + it->second.Scalar();
    }
    out[p.name] = std::move(*v);
  }
  return out;
}

std::optional<errc> parse_errc(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(errc::internal); ++i)
    if (name == to_string(static_cast<errc>(i))) return static_cast<errc>(i);
  return std::nullopt;
}

bool value_equals(const value& actual, const YAML::Node& expected) {
  auto type = type_of(actual);
  if (!type) return expected.IsNull();
  auto e = scalar_as(expected, *type);
  // An integral expectation for a double point, or the other way round, still compares.
  if (!e && *type == value_type::int64) e = scalar_as(expected, value_type::float64);
  if (!e) return false;
  if (auto* d = std::get_if<double>(&actual)) {
    double x = std::holds_alternative<double>(*e) ? std::get<double>(*e)
                                                  : static_cast<double>(std::get<std::int64_t>(*e));
    return std::fabs(*d - x) <= 1e-9 * std::max(1.0, std::fabs(x));
  }
  if (auto* i = std::get_if<std::int64_t>(&actual); i && std::holds_alternative<double>(*e))
    return static_cast<double>(*i) == std::get<double>(*e);
  return actual == *e;
}

} // namespace manifold::testkit
