#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>

#include "manifold/actors/model.hpp"
#include "manifold/actors/reading_queue.hpp"

/// The messages Manifold's actors exchange inside one node.
namespace manifold {

// -- atoms (CAF 0.17: at most 10 characters) -------------------------------------------------------

using publish_atom = caf::atom_constant<caf::atom("publish")>;
using get_atom = caf::atom_constant<caf::atom("get")>;
using list_atom = caf::atom_constant<caf::atom("list")>;
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
using unsub_atom = caf::atom_constant<caf::atom("unsub")>;
using invoke_atom = caf::atom_constant<caf::atom("invoke")>;
using write_atom = caf::atom_constant<caf::atom("write")>;
using status_atom = caf::atom_constant<caf::atom("status")>;
using poll_atom = caf::atom_constant<caf::atom("poll")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using start_atom = caf::atom_constant<caf::atom("start")>;
using escalate_atom = caf::atom_constant<caf::atom("escalate")>;
using groups_atom = caf::atom_constant<caf::atom("groups")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using http_atom = caf::atom_constant<caf::atom("http")>;
using place_atom = caf::atom_constant<caf::atom("place")>;

// -- payloads --------------------------------------------------------------------------------------

/// A call of a device action whose parameters the gateway already checked against the
/// declaration: every required parameter is present and of its declared type.
struct action_request {
  std::string device;
  std::string action;
  std::map<std::string, value> params;
};

/// Lifecycle of a connector group.
enum class connector_state : std::uint8_t {
  starting,
  running,
  degraded, ///< Running, but some devices are unreachable.
  restarting,
  failed,
  stopped,
};

const char* to_string(connector_state s);

struct connector_status {
  std::string name;
  std::string type;
  connector_state state = connector_state::starting;
  std::uint64_t restarts = 0;
  std::string last_error;
  std::vector<std::string> unreachable_devices;
};

/// A consumer of readings outside the actor system (a WebSocket session). `deliver` is called
/// from the data bus actor and must not block: it queues and returns.
class reading_sink {
public:
  virtual ~reading_sink() = default;
  virtual void deliver(const point_reading& r) = 0;
};

using reading_sink_ptr = std::shared_ptr<reading_sink>;

/// Filter for a subscription: empty strings match everything.
struct reading_filter {
  std::string device;
  std::string point;

  bool matches(const point_reading& r) const {
    return (device.empty() || device == r.device) && (point.empty() || point == r.point);
  }
};

} // namespace manifold

// These types stay inside one process for now.
// TODO(cluster): add inspect() overloads for value and point_reading so they can cross nodes;
// until then they are local-only and a remote send would fail to serialize.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::value)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::point_reading)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::action_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::connector_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_sink_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_filter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_queue_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<manifold::point_reading>)
