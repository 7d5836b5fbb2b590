#include "manifold/supervision/ownership_worker.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <nlohmann/json.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/supervision/lease_store.hpp"
#include "manifold/supervision/ownership.hpp"

namespace manifold::supervision {

namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using steady = std::chrono::steady_clock;

using tick_atom = caf::atom_constant<caf::atom("own_tick")>;

struct worker_state {
  ownership_worker_deps deps;
  std::optional<ownership_agent> agent;
  /// Connectors this worker placed here and has not seen removed yet: counted as running from
  /// the moment it asked for the start until the supervisor confirmed the stop, so the agent
  /// never releases an owner key while a connector might still drive.
  std::set<std::string> running;
  std::set<std::string> stopping;
  std::chrono::milliseconds tick{500};
  bool stopped = false;
  /// What the last round threw (empty after a round that did not), shown as the view's
  /// `last_error`; and when it was last logged, since it repeats every tick.
  std::string failure;
  std::optional<steady::time_point> failure_logged;
  log::logger log{"cluster"};
  static inline const char* name = "ownership_worker";
};

using worker_actor = caf::stateful_actor<worker_state>;

/// A repeated failure is logged again at most this often.
constexpr std::chrono::seconds failure_log_interval{10};

json view_json(const ownership_view& v) {
  json members = json::array();
  for (auto& m : v.members)
    members.push_back({{"id", m.id},
                       {"labels", m.labels},
                       {"draining", m.draining},
                       {"address", m.address},
                       {"api_url", m.api_url}});
  std::chrono::duration<double> left = v.valid_until - steady::now();
  return {{"self", v.self},
          {"leader", v.leader.empty() ? json(nullptr) : json(v.leader)},
          {"members", std::move(members)},
          {"assignments", v.assignments},
          {"owners", v.owners},
          {"draining", v.draining},
          {"unplaced", v.unplaced},
          {"moves", v.moves},
          {"lease_healthy", v.lease_healthy},
          {"fence_seconds_left", std::max(0.0, std::round(left.count() * 10) / 10)},
          {"last_error", v.last_error}};
}

void place(worker_actor* self, const std::string& name, bool here, std::string why) {
  auto& st = self->state;
  auto i = st.deps.supervisors.find(name);
  if (i == st.deps.supervisors.end()) return;
  if (here) {
    st.running.insert(name);
    st.stopping.erase(name);
  } else {
    st.stopping.insert(name);
  }
  self->request(i->second, 5s, place_atom::value, here, std::move(why))
    .then(
      [self, name, here](connector_status&) {
        auto& st = self->state;
        if (!here && st.stopping.erase(name) > 0) st.running.erase(name);
      },
      [self, name](caf::error& err) {
        // Stays in `running`: the owner key is kept until a stop is confirmed.
        self->state.log.warn("placing a connector failed",
                             {{"connector", name}, {"error", message_of(err)}});
        self->state.stopping.erase(name);
      });
}

void publish(worker_actor* self) {
  auto& st = self->state;
  auto v = st.agent->view();
  st.deps.directory->set_leader(v.leader, "etcd");
  st.deps.directory->set_owners(v.owners);
  st.deps.directory->set_unplaced(v.unplaced);
  if (st.deps.metrics) {
    std::chrono::duration<double> left = v.valid_until - steady::now();
    st.deps.metrics->set_ownership(v.lease_healthy, std::max(0.0, left.count()));
  }
}

/// Runs `f` (which returns a caf::error), turning an exception into an error: no exception may
/// leave a message handler, or the worker is gone for good while the node keeps running. The
/// store's HTTP client throws std::system_error when, for one, the process has no file
/// descriptor left for a socket.
template <class F>
caf::error guarded(const char* during, F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return make_error(errc::unavailable, std::string{during} + " failed: " + e.what());
  }
}

/// A round that threw counts as a failed store call: the fence is not moved, so connectors stop
/// driving when it runs out, and the next tick tries again.
void round_failed(worker_actor* self, const std::string& what) {
  auto& st = self->state;
  auto now = steady::now();
  auto due = !st.failure_logged || now - *st.failure_logged >= failure_log_interval;
  if (what != st.failure || due) {
    st.log.error("ownership round failed; retrying every tick, connectors stop at the fence",
                 {{"node", st.deps.config->id}, {"error", what}});
    st.failure_logged = now;
  }
  st.failure = what;
  if (st.deps.metrics) {
    std::chrono::duration<double> left = st.deps.fence->until() - now;
    st.deps.metrics->set_ownership(false, std::max(0.0, left.count()));
  }
}

void step_unguarded(worker_actor* self) {
  auto& st = self->state;
  auto now = steady::now();
  std::set<std::string> reachable;
  for (auto& m : st.deps.directory->members())
    if (m.health == member_health::alive) reachable.insert(m.info.id);
  st.agent->set_reachable(std::move(reachable));
  auto acts = st.agent->step(now, st.running);
  // Extended before any start below, narrowed for good when the lease is lost.
  st.deps.fence->extend_until(st.agent->valid_until());
  auto v = st.agent->view();
  for (auto& name : acts.stop) {
    auto i = v.assignments.find(name);
    auto why = !v.lease_healthy
                 ? "this node could not renew its etcd lease in time" +
                     (v.last_error.empty() ? std::string{} : " (" + v.last_error + ")")
               : i != v.assignments.end() && i->second != v.self
                 ? "placed on node '" + i->second + "'"
                 : std::string{"this node no longer owns it"};
    if (st.stopping.count(name) == 0) place(self, name, false, why);
  }
  for (auto& name : acts.start) place(self, name, true, {});
  publish(self);
}

void step(worker_actor* self) {
  auto& st = self->state;
  if (st.stopped) return;
  auto err = guarded("ownership step", [self] {
    step_unguarded(self);
    return caf::error{};
  });
  if (err) {
    round_failed(self, message_of(err));
  } else if (!st.failure.empty()) {
    st.log.info("ownership rounds work again", {{"node", st.deps.config->id}});
    st.failure.clear();
    st.failure_logged.reset();
  }
}

caf::behavior ownership_worker(worker_actor* self, ownership_worker_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  auto& cfg = *st.deps.config;
  auto settings = ownership_settings::from(cfg.cluster);
  st.tick = std::clamp(settings.lease_ttl / 10, std::chrono::milliseconds{100},
                       std::chrono::milliseconds{1000});
  std::vector<connector_placement> connectors;
  for (auto& c : cfg.connectors) connectors.push_back({c.name, c.placement});
  cluster_member_info me;
  me.id = cfg.id;
  me.labels = cfg.labels;
  me.digest = cfg.cluster.connectors_digest;
  me.address = st.deps.address;
  me.api_url = st.deps.api_url;
  st.agent.emplace(std::move(me), std::move(connectors), *st.deps.store, settings);
  self->send(self, tick_atom::value);
  return {
    [=](tick_atom) {
      step(self);
      if (!self->state.stopped) self->delayed_send(self, self->state.tick, tick_atom::value);
    },
    [=](drain_atom, std::string& node, bool on) -> caf::result<std::string> {
      if (auto err = guarded("drain", [&] { return self->state.agent->drain(node, on); }))
        return err;
      return on ? "node '" + node + "' drains: its movable connectors move to other nodes"
                : "node '" + node + "' takes movable connectors again";
    },
    [=](move_atom, std::string& connector, std::string& node) -> caf::result<std::string> {
      if (auto err =
            guarded("move", [&] { return self->state.agent->move(connector, node); }))
        return err;
      return "connector '" + connector + "' moves to node '" + node + "'";
    },
    [=](cluster_atom) -> std::string {
      auto& st = self->state;
      auto view = view_json(st.agent->view());
      // The agent's own last error may be older than what the last round threw.
      if (!st.failure.empty()) {
        view["last_error"] = st.failure;
        view["lease_healthy"] = false;
      }
      return view.dump();
    },
    [=](stop_atom) -> caf::result<bool> {
      auto& st = self->state;
      st.stopped = true;
      st.deps.fence->close();
      auto rp = self->make_response_promise<bool>();
      auto pending = std::make_shared<std::size_t>(st.running.size());
      auto finish = [self, rp]() mutable {
        auto& st = self->state;
        if (auto err = guarded("resign", [&] { return st.agent->resign(st.running); }))
          st.log.warn("could not hand over at shutdown; other nodes wait for the lease to expire",
                      {{"error", message_of(err)}});
        rp.deliver(true);
      };
      if (*pending == 0) {
        finish();
        return rp;
      }
      for (auto name : std::set<std::string>{st.running}) {
        auto i = st.deps.supervisors.find(name);
        self->request(i->second, 5s, place_atom::value, false, std::string{"node stops"})
          .then(
            [self, name, pending, finish](connector_status&) mutable {
              self->state.running.erase(name);
              if (--*pending == 0) finish();
            },
            [pending, finish](caf::error&) mutable {
              if (--*pending == 0) finish();
            });
      }
      return rp;
    },
  };
}

} // namespace

caf::actor spawn_ownership_worker(caf::actor_system& sys, ownership_worker_deps deps) {
  return sys.spawn<caf::detached>(ownership_worker, std::move(deps));
}

} // namespace manifold::supervision
