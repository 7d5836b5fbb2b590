#pragma once

#include <map>
#include <optional>
#include <string>
#include <variant>

#include <yaml-cpp/yaml.h>

#include "manifold/actors/config.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/model.hpp"

/// Checking action parameters against their declaration, as the gateway does before an action
/// reaches a connector, so the sandbox refuses what a node would refuse.
namespace manifold::testkit {

/// A scalar read as `type`, exactly as the node config reads it (`config::parse_scalar`).
inline std::optional<value> scalar_as(const YAML::Node& node, value_type type) {
  return config::parse_scalar(node, type);
}

/// Types the raw parameters (scalars from a scenario, or the text of `key=value`) per the
/// action's declaration: every name must be declared, every required one present (or filled
/// from its default), every number within min/max. The error names the parameter.
std::variant<std::map<std::string, value>, std::string>
check_params(const action_config& action, const std::map<std::string, YAML::Node>& raw);

/// Reverse of `to_string(errc)`; nullopt for an unknown name.
std::optional<errc> parse_errc(const std::string& name);

/// Whether `actual` equals the scalar `expected`, read in `actual`'s type (doubles within a
/// relative 1e-9).
bool value_equals(const value& actual, const YAML::Node& expected);

} // namespace manifold::testkit
