#include "manifold/supervision/connector_supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/actors/reading_queue.hpp"

namespace manifold::supervision {

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
/// A point in time for restart windows and backoff resets.
using instant = std::chrono::nanoseconds;

/// The delayed "now restart" after a backoff; it carries the generation it was meant for, so a
/// manual stop or start in between makes it void.
using respawn_atom = caf::atom_constant<caf::atom("respawn")>;
/// One health probe round; carries the generation of the child it probes.
using probe_atom = caf::atom_constant<caf::atom("probe")>;

struct supervisor_state {
  connectors::connector_type* type = nullptr;
  connectors::connector_context ctx;
  caf::actor parent; ///< Told when the group gives up; may be null.
  caf::actor child;
  /// Children ended on purpose (stop, restart, unplace, hung): an exit of theirs that was
  /// already queued when we unlinked them is no news. The last few are enough.
  std::deque<caf::actor_addr> dropped;
  std::uint64_t generation = 0; ///< Bumped for every child started.
  connector_state state = connector_state::starting;
  std::uint64_t restarts = 0;
  std::string last_error;
  /// Whether the cluster placed this connector on this node (always, outside a cluster). An
  /// unplaced group keeps no child and refuses every start, whoever asks.
  bool placed = true;
  std::string unplaced_reason;
  std::size_t pending_calls = 0; ///< Action calls and writes the connector has not answered.
  std::deque<instant> recent_crashes; ///< Within the intensity window.
  std::chrono::milliseconds backoff{0};
  instant started_at{0};
  std::mt19937_64 rng;
  log::logger log{"supervision"};
  static inline const char* name = "connector_supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

/// The monotonic clock, or the connectors' clock when one is set (the testkit's virtual time), so
/// restart windows and backoff resets count in the same time as the connector's timers.
instant now(const supervisor_state& st) {
  if (st.ctx.clock) return instant{st.ctx.clock()};
  return std::chrono::duration_cast<instant>(steady::now().time_since_epoch());
}

const restart_config& policy(supervisor_actor* self) {
  return self->state.ctx.config->restart;
}

void set_up(supervisor_actor* self, bool up) {
  if (auto& m = self->state.ctx.metrics) m->connector_up(self->state.ctx.name()).Set(up ? 1 : 0);
}

/// Every lifecycle change goes through here so `manifold_connector_state` never disagrees with
/// what `status` answers.
void set_state(supervisor_actor* self, connector_state s) {
  auto& st = self->state;
  st.state = s;
  if (auto& m = st.ctx.metrics) m->set_connector_state(st.ctx.name(), s);
}

void mark_restarted(supervisor_actor* self) {
  auto& st = self->state;
  if (!st.ctx.metrics) return;
  auto now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch());
  st.ctx.metrics->connector_last_restart(st.ctx.name()).Set(now.count());
}

/// The connector's own view (some devices unreachable) on top of the supervisor's lifecycle:
/// running <-> degraded, with a warning when it degrades and a note when it recovers.
void note_child_status(supervisor_actor* self, const connector_status& s) {
  auto& st = self->state;
  auto degraded = s.state == connector_state::degraded;
  if (degraded && st.state == connector_state::running) {
    set_state(self, connector_state::degraded);
    std::string devices;
    for (auto& d : s.unreachable_devices) devices += (devices.empty() ? "" : ",") + d;
    st.log.warn("connector degraded: devices unreachable",
                {{"connector", st.ctx.name()}, {"devices", devices}});
  } else if (!degraded && st.state == connector_state::degraded) {
    set_state(self, connector_state::running);
    st.log.info("connector recovered: every device reachable", {{"connector", st.ctx.name()}});
  }
}

void schedule_probe(supervisor_actor* self) {
  self->delayed_send(self, policy(self).health_interval, probe_atom::value,
                     self->state.generation);
}

void start_child(supervisor_actor* self) {
  auto& st = self->state;
  st.child = st.type->spawn(self->system(), st.ctx);
  // Linked: the supervisor traps the child's exit; the child dies with its supervisor.
  self->link_to(st.child);
  ++st.generation;
  set_state(self, connector_state::running);
  st.started_at = now(st);
  set_up(self, true);
  schedule_probe(self);
}

/// Ends the current child without treating it as a crash: unlinks first, so its exit does not
/// reach us, then kills it. A child stuck in a blocking call ends once that call returns.
void drop_child(supervisor_actor* self, const caf::error& reason) {
  auto& st = self->state;
  if (!st.child) return;
  self->unlink_from(st.child);
  self->send_exit(st.child, reason);
  st.dropped.push_back(st.child.address());
  if (st.dropped.size() > 16) st.dropped.pop_front();
  st.child = nullptr;
}

/// The delay before the next restart: doubles from the initial backoff up to the maximum, with
/// up to 20% jitter (from the seeded source, so a replay gives the same delays) so that many
/// connectors failing together do not restart in lockstep. In microseconds: jitter on a 1 ms
/// backoff truncated to whole milliseconds would be no backoff at all.
std::chrono::microseconds next_backoff(supervisor_state& st) {
  auto& rc = st.ctx.config->restart;
  // A child that ran longer than the maximum backoff was healthy: start the ladder again.
  if (st.backoff.count() == 0 || now(st) - st.started_at > rc.max_backoff)
    st.backoff = rc.initial_backoff;
  else
    st.backoff = std::min(st.backoff * 2, rc.max_backoff);
  std::uniform_real_distribution<double> jitter{0.8, 1.0};
  std::chrono::duration<double, std::micro> backoff = st.backoff;
  return std::chrono::microseconds{static_cast<std::int64_t>(backoff.count() * jitter(st.rng))};
}

std::string milliseconds_text(std::chrono::microseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

/// While the connector does not run, nobody updates its points: mark them stale, with why.
void mark_points_stale(supervisor_actor* self, const std::string& why) {
  auto& st = self->state;
  for (auto& d : st.ctx.config->devices)
    connectors::publish_stale(self, st.ctx, d, "connector '" + st.ctx.name() + "' " + why);
}

void escalate(supervisor_actor* self) {
  auto& st = self->state;
  if (st.parent) self->send(st.parent, escalate_atom::value, st.ctx.name(), st.last_error);
}

/// A crash of the current child: restart after backoff, or give up when the restart intensity
/// is exceeded.
void on_crash(supervisor_actor* self, std::string error) {
  auto& st = self->state;
  auto& rc = policy(self);
  auto at = now(st);
  // Crash reports travel to the API and logs: no secret value goes with them.
  st.last_error = log::redact(std::move(error));
  mark_points_stale(self, "crashed: " + st.last_error);
  set_up(self, false);
  st.recent_crashes.push_back(at);
  while (!st.recent_crashes.empty() && at - st.recent_crashes.front() > rc.window)
    st.recent_crashes.pop_front();
  if (rc.kind == restart_kind::temporary) {
    set_state(self, connector_state::failed);
    st.log.error("temporary connector crashed, not restarting",
                 {{"connector", st.ctx.name()}, {"error", st.last_error}});
    return;
  }
  if (st.recent_crashes.size() > rc.max_restarts) {
    set_state(self, connector_state::failed);
    st.log.error("connector failed: too many crashes, not restarting",
                 {{"connector", st.ctx.name()},
                  {"error", st.last_error},
                  {"crashes", std::to_string(st.recent_crashes.size())},
                  {"window_ms", std::to_string(rc.window.count())}});
    escalate(self);
    return;
  }
  set_state(self, connector_state::restarting);
  ++st.restarts;
  if (auto& m = st.ctx.metrics) m->connector_restarts(st.ctx.name()).Increment();
  auto delay = next_backoff(st);
  // A crash loop logs its 1st, 2nd, 4th, 8th… restart, not thousands of identical lines; the
  // restarts metric counts every one.
  if ((st.restarts & (st.restarts - 1)) == 0)
    st.log.warn("connector crashed, restarting",
                {{"connector", st.ctx.name()},
                 {"error", st.last_error},
                 {"restarts", std::to_string(st.restarts)},
                 {"backoff_ms", milliseconds_text(delay)}});
  self->delayed_send(self, delay, respawn_atom::value, st.generation);
}

caf::error not_running(supervisor_actor* self) {
  auto& st = self->state;
  return make_error(errc::unavailable, "connector '" + st.ctx.name() + "' is " +
                                         to_string(st.state) +
                                         (st.last_error.empty() ? "" : ": " + st.last_error));
}

/// Hands an action call or point write to the connector, at most `max_pending_actions` at a
/// time: beyond that the caller gets 503 `overloaded` at once instead of joining an unbounded
/// mailbox. The answer, whatever it is, goes back to the caller.
caf::result<value> forward_call(supervisor_actor* self, caf::message call) {
  auto& st = self->state;
  if (!st.child) return not_running(self);
  auto limit = st.ctx.config->queue.max_pending_actions;
  if (st.pending_calls >= limit)
    return make_error(errc::overloaded, "connector '" + st.ctx.name() + "' has " +
                                          std::to_string(limit) +
                                          " calls in progress; try again later");
  ++st.pending_calls;
  auto rp = self->make_response_promise<value>();
  // The connector answers within its action_timeout; the margin covers the hop back.
  auto deadline = st.ctx.config->action_timeout + std::chrono::seconds{1};
  self->request(st.child, deadline, std::move(call))
    .then(
      [=](value& v) mutable {
        --self->state.pending_calls;
        rp.deliver(std::move(v));
      },
      [=](caf::error& err) mutable {
        --self->state.pending_calls;
        rp.deliver(std::move(err));
      });
  return rp;
}

connector_status own_status(supervisor_actor* self) {
  auto& st = self->state;
  connector_status s;
  s.name = st.ctx.name();
  s.type = st.ctx.config->type;
  s.state = st.state;
  s.restarts = st.restarts;
  s.last_error = st.last_error;
  return s;
}

caf::error not_placed(supervisor_actor* self) {
  auto& st = self->state;
  return make_error(errc::conflict, "connector '" + st.ctx.name() + "' does not run on this node: " +
                                      st.unplaced_reason);
}

caf::behavior connector_supervisor(supervisor_actor* self, connectors::connector_type* type,
                                   connectors::connector_context ctx, caf::actor parent,
                                   bool placed) {
  auto& st = self->state;
  st.parent = std::move(parent);
  st.type = type;
  st.ctx = std::move(ctx);
  st.rng.seed(st.ctx.seed);
  // A hand-made context without a queue still gets a bounded one; made once here, it outlives
  // every restart of the child, so its counters do too.
  if (!st.ctx.queue)
    st.ctx.queue = std::make_shared<reading_queue>(st.ctx.name(), st.ctx.config->queue,
                                                   st.ctx.metrics);
  set_state(self, connector_state::starting);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    if (std::find(st.dropped.begin(), st.dropped.end(), msg.source) != st.dropped.end())
      return; // A child we already let go died before it heard that it was unlinked.
    if (!st.child || msg.source != st.child.address()) {
      // Not from our child: our parent (or the system) ends us, and the group with us.
      self->quit(msg.reason);
      return;
    }
    st.child = nullptr;
    bool normal = !msg.reason || msg.reason == caf::exit_reason::user_shutdown;
    if (normal && policy(self).kind != restart_kind::permanent) {
      set_state(self, connector_state::stopped);
      set_up(self, false);
      st.log.info("connector exited normally", {{"connector", st.ctx.name()}});
      return;
    }
    on_crash(self, normal ? "exited although it is permanent" : message_of(msg.reason));
  });
  st.placed = placed;
  if (placed) {
    start_child(self);
  } else {
    st.unplaced_reason = "not placed here yet";
    set_state(self, connector_state::stopped);
    set_up(self, false);
  }

  return {
    [=](respawn_atom, std::uint64_t generation) {
      auto& st = self->state;
      // Stale: a manual stop/start/restart happened since this restart was scheduled.
      if (st.child || generation != st.generation || st.state != connector_state::restarting ||
          !st.placed)
        return;
      start_child(self);
      mark_restarted(self);
      st.log.info("connector restarted", {{"connector", st.ctx.name()}});
    },
    [=](probe_atom, std::uint64_t generation) {
      auto& st = self->state;
      if (!st.child || generation != st.generation) return;
      self->request(st.child, policy(self).health_timeout, status_atom::value)
        .then(
              [=](connector_status& s) {
                if (generation == self->state.generation) note_child_status(self, s);
                schedule_probe(self);
              },
              [=](caf::error& err) {
                auto& st = self->state;
                if (!st.child || generation != st.generation) return;
                auto reason = code_of(err) == errc::timeout
                                ? "health probe unanswered for " +
                                    std::to_string(policy(self).health_timeout.count()) + "ms"
                                : "health probe failed: " + message_of(err);
                drop_child(self, caf::exit_reason::kill);
                on_crash(self, reason);
              });
    },
    [=](stop_atom) -> connector_status {
      auto& st = self->state;
      drop_child(self, caf::exit_reason::user_shutdown);
      set_state(self, connector_state::stopped);
      set_up(self, false);
      mark_points_stale(self, "was stopped");
      st.log.info("connector stopped on request", {{"connector", st.ctx.name()}});
      return own_status(self);
    },
    [=](place_atom, bool here, std::string& why) -> connector_status {
      auto& st = self->state;
      if (here && !st.placed) {
        st.placed = true;
        st.unplaced_reason.clear();
        st.recent_crashes.clear();
        st.backoff = 0ms;
        if (!st.child) start_child(self);
        st.log.debug("connector placed on this node", {{"connector", st.ctx.name()}});
      } else if (!here && (st.placed || st.child)) {
        st.placed = false;
        st.unplaced_reason = why;
        drop_child(self, caf::exit_reason::user_shutdown);
        ++st.generation; // Voids a pending respawn or probe of the dropped child.
        set_state(self, connector_state::stopped);
        set_up(self, false);
        mark_points_stale(self, "was stopped on this node: " + why);
        st.log.info("connector removed from this node", {{"connector", st.ctx.name()},
                                                          {"reason", why}});
      } else if (!here) {
        st.unplaced_reason = why;
      }
      return own_status(self);
    },
    [=](start_atom) -> caf::result<connector_status> {
      auto& st = self->state;
      if (!st.placed) return not_placed(self);
      if (!st.child) {
        // A manual start forgives earlier crashes: the operator has looked at it.
        st.recent_crashes.clear();
        st.backoff = 0ms;
        start_child(self);
        st.log.info("connector started on request", {{"connector", st.ctx.name()}});
      }
      return own_status(self);
    },
    [=](restart_atom) -> caf::result<connector_status> {
      auto& st = self->state;
      if (!st.placed) return not_placed(self);
      drop_child(self, caf::exit_reason::user_shutdown);
      st.recent_crashes.clear();
      st.backoff = 0ms;
      start_child(self);
      mark_restarted(self);
      st.log.info("connector restarted on request", {{"connector", st.ctx.name()}});
      return own_status(self);
    },
    [=](invoke_atom a, action_request& req) -> caf::result<value> {
      return forward_call(self, caf::make_message(a, std::move(req)));
    },
    [=](write_atom a, std::string& device, std::string& point, value& v) -> caf::result<value> {
      return forward_call(self, caf::make_message(a, std::move(device), std::move(point),
                                                  std::move(v)));
    },
    [=](status_atom) -> caf::result<connector_status> {
      auto& st = self->state;
      auto base = own_status(self);
      if (!st.child) return base;
      auto rp = self->make_response_promise<connector_status>();
      auto generation = st.generation;
      self->request(st.child, policy(self).health_timeout, status_atom::value)
        .then(
          [=](connector_status& s) mutable {
            // Lifecycle is the supervisor's to say; the connector only adds "some devices
            // unreachable".
            auto out = base;
            if (generation == self->state.generation) {
              note_child_status(self, s);
              out.state = self->state.state;
            }
            out.unreachable_devices = std::move(s.unreachable_devices);
            // A degraded connector's own reason beats an old crash's: it is what is wrong now.
            if (out.state == connector_state::degraded && !s.last_error.empty())
              out.last_error = std::move(s.last_error);
            rp.deliver(std::move(out));
          },
          [=](caf::error&) mutable { rp.deliver(base); });
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_connector_supervisor(caf::actor_system& sys, connectors::connector_type& type,
                                      connectors::connector_context ctx, caf::actor parent,
                                      bool placed) {
  return sys.spawn(connector_supervisor, &type, std::move(ctx), std::move(parent), placed);
}

} // namespace manifold::supervision
