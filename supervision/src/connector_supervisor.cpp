#include "manifold/supervision/connector_supervisor.hpp"

#include <algorithm>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"

namespace manifold::supervision {

namespace {

using namespace std::chrono_literals;

struct supervisor_state {
  connectors::connector_type* type = nullptr;
  connectors::connector_context ctx;
  caf::actor child;
  connector_state state = connector_state::starting;
  std::uint64_t restarts = 0;
  std::string last_error;
  std::chrono::milliseconds backoff{0};
  std::chrono::steady_clock::time_point started_at;
  std::mt19937_64 rng;
  log::logger log{"supervision"};
  static inline const char* name = "connector_supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

void set_up(supervisor_actor* self, bool up) {
  if (auto& m = self->state.ctx.metrics) m->connector_up(self->state.ctx.name()).Set(up ? 1 : 0);
}

void start_child(supervisor_actor* self) {
  auto& st = self->state;
  st.child = st.type->spawn(self->system(), st.ctx);
  // Linked: the supervisor traps the child's exit; the child dies with its supervisor.
  self->link_to(st.child);
  st.state = connector_state::running;
  st.started_at = std::chrono::steady_clock::now();
  set_up(self, true);
}

/// The delay before the next restart: doubles from the initial backoff up to the maximum, with
/// up to 20% jitter so that many connectors failing together do not restart in lockstep.
std::chrono::milliseconds next_backoff(supervisor_state& st) {
  auto& rc = st.ctx.config->restart;
  // A child that ran longer than the maximum backoff was healthy: start the ladder again.
  if (st.backoff.count() == 0 || std::chrono::steady_clock::now() - st.started_at > rc.max_backoff)
    st.backoff = rc.initial_backoff;
  else
    st.backoff = std::min(st.backoff * 2, rc.max_backoff);
  std::uniform_real_distribution<double> jitter{0.8, 1.0};
  return std::chrono::milliseconds{
    static_cast<std::int64_t>(static_cast<double>(st.backoff.count()) * jitter(st.rng))};
}

caf::error not_running(supervisor_actor* self) {
  auto& st = self->state;
  return make_error(errc::unavailable, "connector '" + st.ctx.name() + "' is " +
                                         to_string(st.state) +
                                         (st.last_error.empty() ? "" : ": " + st.last_error));
}

caf::behavior connector_supervisor(supervisor_actor* self, connectors::connector_type* type,
                                   connectors::connector_context ctx) {
  auto& st = self->state;
  st.type = type;
  st.ctx = std::move(ctx);
  st.rng.seed(st.ctx.seed);
  self->set_exit_handler([=](caf::exit_msg& msg) {
    auto& st = self->state;
    if (msg.source != st.child.address()) {
      // Our parent (or the system) ends us: take the group down with us.
      self->quit(msg.reason);
      return;
    }
    st.child = nullptr;
    if (msg.reason == caf::exit_reason::user_shutdown || !msg.reason) {
      st.state = connector_state::stopped;
      set_up(self, false);
      return;
    }
    st.last_error = message_of(msg.reason);
    st.state = connector_state::restarting;
    ++st.restarts;
    set_up(self, false);
    if (auto& m = st.ctx.metrics) m->connector_restarts(st.ctx.name()).Increment();
    auto delay = next_backoff(st);
    st.log.warn("connector crashed, restarting",
                {{"connector", st.ctx.name()},
                 {"error", st.last_error},
                 {"restarts", std::to_string(st.restarts)},
                 {"backoff_ms", std::to_string(delay.count())}});
    self->delayed_send(self, delay, restart_atom::value);
  });
  start_child(self);

  return {
    [=](restart_atom) {
      if (self->state.child) return;
      start_child(self);
      self->state.log.info("connector restarted", {{"connector", self->state.ctx.name()}});
    },
    [=](invoke_atom a, action_request& req) -> caf::result<value> {
      if (!self->state.child) return not_running(self);
      auto rp = self->make_response_promise();
      rp.delegate(self->state.child, a, std::move(req));
      return rp;
    },
    [=](write_atom a, std::string& device, std::string& point, value& v) -> caf::result<value> {
      if (!self->state.child) return not_running(self);
      auto rp = self->make_response_promise();
      rp.delegate(self->state.child, a, std::move(device), std::move(point), std::move(v));
      return rp;
    },
    [=](status_atom) -> caf::result<connector_status> {
      auto& st = self->state;
      connector_status base;
      base.name = st.ctx.name();
      base.type = st.ctx.config->type;
      base.state = st.state;
      base.restarts = st.restarts;
      base.last_error = st.last_error;
      if (!st.child) return base;
      auto rp = self->make_response_promise<connector_status>();
      self->request(st.child, 2s, status_atom::value)
        .then(
          [=](connector_status& s) mutable {
            // Lifecycle is the supervisor's to say; the connector only adds "some devices
            // unreachable".
            s.state = s.state == connector_state::degraded ? connector_state::degraded : base.state;
            s.name = base.name;
            s.type = base.type;
            s.restarts = base.restarts;
            s.last_error = base.last_error;
            rp.deliver(std::move(s));
          },
          [=](caf::error&) mutable { rp.deliver(base); });
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_connector_supervisor(caf::actor_system& sys, connectors::connector_type& type,
                                      connectors::connector_context ctx) {
  return sys.spawn(connector_supervisor, &type, std::move(ctx));
}

} // namespace manifold::supervision
