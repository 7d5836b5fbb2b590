#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/load_callback.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/sec.hpp>

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
/// Readings another node's bus forwards: `(forward_atom, std::vector<point_reading>)`.
using forward_atom = caf::atom_constant<caf::atom("forward")>;
using cluster_atom = caf::atom_constant<caf::atom("cluster")>;
using drain_atom = caf::atom_constant<caf::atom("drain")>;
using move_atom = caf::atom_constant<caf::atom("move")>;

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

// -- serialization (readings, calls and status cross nodes) ----------------------------------------
//
// CAF 0.17 inspectors: `caf::serializer`, `caf::deserializer` and the stringification inspector.
// Enums (`quality`, `connector_state`) need no overload: CAF writes their underlying type, and the
// structs holding them reject out-of-range values after loading.

namespace detail {

template <class Enum>
caf::error check_enum(Enum x, Enum last, const char* what) {
  if (static_cast<std::uint8_t>(x) > static_cast<std::uint8_t>(last))
    return caf::make_error(caf::sec::invalid_argument, std::string{"unknown "} + what + " " +
                                                           std::to_string(static_cast<int>(x)));
  return caf::none;
}

} // namespace detail

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, point_reading& x) {
  return f(caf::meta::type_name("manifold.point_reading"), x.connector, x.device, x.point, x.data,
           x.q, x.reason, x.source_time, caf::meta::load_callback([&x] {
             return detail::check_enum(x.q, quality::bad, "quality");
           }));
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, action_request& x) {
  return f(caf::meta::type_name("manifold.action_request"), x.device, x.action, x.params);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, connector_status& x) {
  return f(caf::meta::type_name("manifold.connector_status"), x.name, x.type, x.state, x.restarts,
           x.last_error, x.unreachable_devices, caf::meta::load_callback([&x] {
             return detail::check_enum(x.state, connector_state::stopped, "connector state");
           }));
}

} // namespace manifold

namespace caf {

/// `manifold::value` is a `std::variant`, which CAF 0.17 cannot serialize, and an alias, so an
/// overload in namespace manifold is invisible to argument-dependent lookup. The serializer and
/// deserializer live in namespace caf, where lookup does find this one. Encoding: the index of
/// the alternative (one byte), then the alternative unless it is `std::monostate`.
template <class Inspector>
typename std::enable_if<!std::is_void<typename Inspector::result_type>::value,
                        typename Inspector::result_type>::type
inspect(Inspector& f, manifold::value& x) {
  if constexpr (Inspector::reads_state) {
    auto tag = static_cast<std::uint8_t>(x.index());
    return std::visit(
      [&](auto& alternative) -> typename Inspector::result_type {
        if constexpr (std::is_same_v<std::decay_t<decltype(alternative)>, std::monostate>)
          return f(tag);
        else
          return f(tag, alternative);
      },
      x);
  } else {
    std::uint8_t tag = 0;
    if (auto err = f(tag)) return err;
    auto load = [&](auto alternative) -> typename Inspector::result_type {
      if (auto err = f(alternative)) return err;
      x = std::move(alternative);
      return caf::none;
    };
    switch (tag) {
      case 0: x = std::monostate{}; return caf::none;
      case 1: return load(false);
      case 2: return load(std::int64_t{0});
      case 3: return load(0.0);
      case 4: return load(std::string{});
      case 5: return load(manifold::bytes{});
      default:
        return caf::make_error(caf::sec::invalid_argument,
                               "unknown value alternative " + std::to_string(tag));
    }
  }
}

} // namespace caf

// Local-only handles: a sink, a queue or a filter is a pointer into this process and must never
// be sent to another node. They have no inspect() and are never registered, so a remote send of
// one fails instead of arriving empty.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_sink_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_filter)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::reading_queue_ptr)
