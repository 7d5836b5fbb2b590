#pragma once

#include <caf/fwd.hpp>

#include "manifold/connectors/sdk.hpp"

namespace manifold::supervision {

/// Spawns the supervisor of one connector instance: it starts the connector actor, restarts it
/// with exponential backoff when it crashes (an exception escaping a handler, an abnormal exit),
/// and answers for it while it is down. Crashes stay inside the group: no other connector sees
/// them.
///
/// Protocol (everything a connector answers, plus):
/// - `(invoke_atom, action_request)`, `(write_atom, device, point, value)`: forwarded to the
///   connector; `errc::unavailable` while it restarts.
/// - `(status_atom) -> connector_status` with state, restart count and last error.
caf::actor spawn_connector_supervisor(caf::actor_system& sys, connectors::connector_type& type,
                                      connectors::connector_context ctx);

} // namespace manifold::supervision
