#pragma once

#include <map>
#include <string>

#include "manifold/supervision/placement.hpp"

/// Connector placements as the placement, ownership and cluster simulation tests write them.
namespace manifold::test {

inline supervision::connector_placement selector(const std::string& name,
                                                 std::map<std::string, std::string> labels,
                                                 bool failover = true) {
  supervision::connector_placement c;
  c.name = name;
  c.placement.selector = std::move(labels);
  c.placement.failover = failover;
  c.placement.declared = true;
  return c;
}

inline supervision::connector_placement pinned(const std::string& name,
                                               const std::string& node) {
  supervision::connector_placement c;
  c.name = name;
  c.placement.node = node;
  c.placement.declared = true;
  return c;
}

inline const std::map<std::string, std::string> server_role{{"role", "server"}};

} // namespace manifold::test
