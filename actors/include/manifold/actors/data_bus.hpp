#pragma once

#include <memory>

#include <caf/fwd.hpp>

#include "manifold/actors/messages.hpp"

namespace manifold {

class node_metrics;

/// The node's data bus: connectors publish readings to it; it keeps the last value of every
/// point and fans readings out to subscribers.
///
/// Protocol:
/// - `(publish_atom, point_reading)`: store and fan out; no reply.
/// - `(get_atom, device, point) -> point_reading`, or `errc::not_found` if none arrived yet.
/// - `(get_atom, device) -> std::vector<point_reading>`: the device's latest readings.
/// - `(subscribe_atom, reading_sink_ptr, reading_filter)`: deliver matching readings to the sink.
/// - `(unsub_atom, reading_sink_ptr)`: stop delivering.
caf::actor spawn_data_bus(caf::actor_system& sys, std::shared_ptr<node_metrics> metrics);

} // namespace manifold
