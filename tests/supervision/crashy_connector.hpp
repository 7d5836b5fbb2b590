#pragma once

// A test connector type that publishes a tick counter and crashes or hangs on command, for the
// supervision tests. `ticks` restarts from 1 in every fresh instance, which shows a restart.

#include <future>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/connectors/sdk.hpp"

namespace manifold::test {

using namespace std::chrono_literals;

class crashy_schema : public config::connector_schema {
public:
  void parse_device(config::map_reader&, const connector_config&, device_config& d) override {
    point_config p;
    p.name = "ticks";
    p.type = value_type::int64;
    d.points.push_back(p);
    for (auto name : {"crash", "hang", "degrade", "worker_crash"}) {
      action_config a;
      a.name = name;
      d.actions.push_back(a);
    }
  }
};

/// Released by the test at the end, so a "hung" connector's thread returns to the scheduler.
inline std::promise<void> hang_release;
inline std::shared_future<void> hang_gate = hang_release.get_future().share();

struct crashy_state {
  connectors::connector_context ctx;
  std::int64_t ticks = 0;
  bool degraded = false; ///< Set by the "degrade" action: reports its device unreachable.
  caf::actor worker;      ///< Detached and linked, like a connector's blocking I/O worker.
};

/// An I/O worker on its own thread, as connectors run blocking client libraries; it throws on
/// `crash_atom`.
inline caf::behavior crashy_worker(caf::event_based_actor*) {
  return {
    [](crash_atom) { throw std::runtime_error("I/O worker failed"); },
  };
}

inline caf::behavior crashy(caf::stateful_actor<crashy_state>* self, connectors::connector_context ctx) {
  self->state.ctx = std::move(ctx);
  connectors::report_crashes(self, self->state.ctx);
  self->state.worker = self->spawn<caf::detached + caf::linked>(crashy_worker);
  self->send(self, poll_atom::value);
  return {
    [=](poll_atom) {
      auto& st = self->state;
      // A device labelled `crash: loop` makes every instance crash at its first poll.
      for (auto& d : st.ctx.config->devices)
        if (auto l = d.labels.find("crash"); l != d.labels.end() && l->second == "loop")
          throw std::runtime_error("crash loop");
      for (auto& d : st.ctx.config->devices)
        connectors::publish(self, st.ctx,
                            point_reading{st.ctx.name(), d.name, "ticks", value{++st.ticks},
                                          quality::good, {}, now_timestamp()});
      self->delayed_send(self, st.ctx.config->poll_interval, poll_atom::value);
    },
    [=](invoke_atom, action_request& req) -> value {
      if (req.action == "worker_crash") {
        self->send(self->state.worker, crash_atom::value);
        return value{};
      }
      if (req.action == "degrade") {
        self->state.degraded = true;
        return value{};
      }
      if (req.action == "hang") {
        // Deliberately blocks its scheduler thread, as a connector stuck in a library call would.
        hang_gate.wait_for(30s);
        return value{};
      }
      throw std::runtime_error("crash on command");
    },
    [=](status_atom) {
      connector_status s;
      if (self->state.degraded) {
        s.state = connector_state::degraded;
        s.unreachable_devices = {"f1"};
      }
      return s;
    },
  };
}

/// `crashy`: its schema and behaviour, one actor per instance.
using crashy_type = connectors::basic_connector_type<crashy_schema, &crashy>;

} // namespace manifold::test
