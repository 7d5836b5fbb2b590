#pragma once

#include <cstddef>
#include <memory>

#include <caf/fwd.hpp>

#include "manifold/actors/messages.hpp"

namespace manifold {

class node_metrics;

/// Readings the bus takes from one connector's queue per message.
constexpr std::size_t drain_batch = 256;

/// The node's data bus: connectors publish readings to it; it keeps the last value of every
/// point and fans readings out to subscribers.
///
/// Protocol:
/// - `(publish_atom, reading_queue_ptr)`: a connector's queue went from empty to non-empty; the
///   bus drains it in batches of `drain_batch`, re-sending itself the wake-up while readings
///   remain so that other connectors' readings interleave. No reply.
/// - `(publish_atom, point_reading)`: store and fan out one reading; no reply. Unbounded (the
///   mailbox is): connectors publish through their queue instead (`connectors::publish`).
/// - `(get_atom, device, point) -> point_reading`, or `errc::not_found` if none arrived yet.
/// - `(get_atom, device) -> std::vector<point_reading>`: the device's latest readings.
/// - `(subscribe_atom, reading_sink_ptr, reading_filter)`: deliver matching readings to the sink.
/// - `(unsub_atom, reading_sink_ptr)`: stop delivering.
/// - `(subscribe_atom, caf::actor bus)`: another node's bus wants every reading stored here. The
///   bus sends it `(forward_atom, std::vector<point_reading>)` once per stored batch, until that
///   actor goes down. Subscribing twice is the same as once.
/// - `(forward_atom, std::vector<point_reading>)`: readings another node's bus stored; delivered
///   to local sinks only: neither cached nor forwarded again, so buses never loop.
///
/// Before answering a `get_atom`, the bus drains every queue it knows, so a get sent after a
/// publish returned sees that reading (unless the queue dropped it).
caf::actor spawn_data_bus(caf::actor_system& sys, std::shared_ptr<node_metrics> metrics);

} // namespace manifold
