#pragma once

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "manifold/connectors/sdk.hpp"

namespace manifold::supervision {

/// Spawns the supervisor of one connector instance: it starts the connector actor, restarts it
/// with exponential backoff when it crashes (an exception escaping a handler, an abnormal exit,
/// a health probe left unanswered), and answers for it while it is down. Crashes stay inside the
/// group: no other connector sees them. More than `restart.max_restarts` crashes within
/// `restart.window` mark the group `failed`; it stays down until started again by hand.
///
/// Protocol (everything a connector answers, plus):
/// - `(invoke_atom, action_request)`, `(write_atom, device, point, value)`: forwarded to the
///   connector; `errc::unavailable` while it is not running.
/// - `(status_atom) -> connector_status` with state, restart count and last error.
/// - `(stop_atom)`, `(start_atom)`, `(restart_atom) -> connector_status`: lifecycle by hand;
///   start and restart forgive earlier crashes.
/// - `(place_atom, bool here, std::string reason) -> connector_status`: the cluster placed the
///   connector on this node (start it) or elsewhere (stop it; `reason` says where). While not
///   placed here, start and restart answer `errc::conflict` with that reason, and no crash
///   escalation or root strategy starts it. `placed = false` spawns the group that way.
///
/// When the group gives up (`failed`), it tells `parent` with `(escalate_atom, name, error)`;
/// the parent's strategy decides what happens next (see node_supervisor.hpp).
///
/// `type` is borrowed, not owned: the supervisor calls it for every (re)start, including a
/// respawn already queued when an exit is sent to it. Keep it (the registry) alive until the
/// actor has ended, e.g. by destroying the actor system, which waits for every actor, first.
caf::actor spawn_connector_supervisor(caf::actor_system& sys, connectors::connector_type& type,
                                      connectors::connector_context ctx,
                                      caf::actor parent = caf::actor{},
                                      bool placed = true);

} // namespace manifold::supervision
