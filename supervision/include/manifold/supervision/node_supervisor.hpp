#pragma once

#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include "manifold/actors/model.hpp"

namespace manifold::supervision {

/// The connector groups of a node, in config order (the order rest_for_one follows).
using group_list = std::vector<std::pair<std::string, caf::actor>>;

/// Spawns the node's root supervisor. Connector supervisors spawned with it as their parent
/// escalate to it when they give up; it applies `cfg.strategy` across the groups it was given
/// with `(groups_atom, group_list)`, within its own restart intensity. Past that intensity it
/// gives up too: the failed groups stay failed and the node keeps serving the others.
/// Ending the root ends every group.
///
/// `(status_atom) -> std::string`: `"running"` or `"gave_up"`.
caf::actor spawn_node_supervisor(caf::actor_system& sys, root_supervision_config cfg);

} // namespace manifold::supervision

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::supervision::group_list)
