#pragma once

#include <map>
#include <string>
#include <vector>

#include "manifold/actors/model.hpp"

/// Where each connector of a cluster should run: a pure function of the configuration, the
/// members that are alive and what the cluster decided before.
namespace manifold::supervision {

/// A connector as placement sees it: its name and its `placement` section.
struct connector_placement {
  std::string name;
  placement_config placement;
};

/// An alive member as placement sees it.
struct placement_member {
  std::string id;
  std::map<std::string, std::string> labels;
  bool draining = false; ///< Takes no new connector and gives its failover connectors away.
};

struct placement_input {
  std::vector<connector_placement> connectors; ///< Every connector, pinned ones included.
  std::vector<placement_member> members;       ///< Alive members only.
  std::map<std::string, std::string> current;  ///< connector -> node decided before.
  std::map<std::string, std::string> moves;    ///< connector -> node an operator asked for.
};

struct placement_result {
  /// connector -> node for every non-pinned connector that has a node. A `failover: false`
  /// connector whose node is down keeps that node here (and is also listed in `unplaced`).
  std::map<std::string, std::string> assignment;
  /// connector -> why it has no running node (`no alive node matches role=server`).
  std::map<std::string, std::string> unplaced;
  /// connector -> why the move request for it cannot be honoured now.
  std::map<std::string, std::string> refused_moves;
};

/// Places every non-pinned connector (pinned ones are the runtime's business and only count
/// towards their node's load). In order of precedence:
/// 1. a move request wins when its target is alive, not draining and matches the selector;
/// 2. the current node is kept (sticky) while it is alive, matches, and is not draining; a
///    `failover: false` connector keeps its node even when that node drains or dies;
/// 3. otherwise the eligible node (alive, not draining, matching) with the fewest connectors,
///    ties broken by the smaller id.
/// Connectors are considered in the order given, so equal inputs give equal results.
placement_result place(const placement_input& in);

/// Why `target` cannot take `connector` now, or an empty string when it can. Used to refuse a
/// move request before it is written.
std::string move_refusal(const connector_placement& connector, const std::string& target,
                         const std::vector<placement_member>& members);

} // namespace manifold::supervision
