#include "manifold/supervision/node_supervisor.hpp"

#include <deque>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"

namespace manifold::supervision {

namespace {

using steady = std::chrono::steady_clock;
using apply_atom = caf::atom_constant<caf::atom("apply")>;

struct root_state {
  root_supervision_config cfg;
  group_list groups;
  std::deque<steady::time_point> recent; ///< Escalations within the window.
  bool gave_up = false;
  log::logger log{"supervision"};
  static inline const char* name = "node_supervisor";
};

using root_actor = caf::stateful_actor<root_state>;

const char* to_string(supervision_strategy s) {
  switch (s) {
    case supervision_strategy::one_for_one: return "one_for_one";
    case supervision_strategy::one_for_all: return "one_for_all";
    case supervision_strategy::rest_for_one: return "rest_for_one";
  }
  return "?";
}

/// Restarts the groups the strategy names for a failure of `failed`.
void apply_strategy(root_actor* self, const std::string& failed) {
  auto& st = self->state;
  bool after = false;
  for (auto& [name, group] : st.groups) {
    bool hit = name == failed;
    bool restart = false;
    switch (st.cfg.strategy) {
      case supervision_strategy::one_for_one: restart = hit; break;
      case supervision_strategy::one_for_all: restart = true; break;
      case supervision_strategy::rest_for_one: restart = hit || after; break;
    }
    after = after || hit;
    if (!restart) continue;
    // `restart` ends a running group and starts it fresh; for the failed one it is a start.
    caf::anon_send(group, restart_atom::value); // Its status reply is of no use here.
    st.log.info("root supervisor restarts group",
                {{"connector", name}, {"strategy", to_string(st.cfg.strategy)}, {"cause", failed}});
  }
}

caf::behavior node_supervisor(root_actor* self, root_supervision_config cfg) {
  self->state.cfg = cfg;
  // The groups are linked to us: when we end, they end; their exits do not end us.
  self->set_exit_handler([=](caf::exit_msg& msg) {
    for (auto& [name, group] : self->state.groups)
      if (msg.source == group.address()) return;
    self->quit(msg.reason);
  });
  return {
    [=](groups_atom, group_list& groups) {
      for (auto& [name, group] : groups) self->link_to(group);
      self->state.groups = std::move(groups);
    },
    [=](escalate_atom, const std::string& name, const std::string& error) {
      auto& st = self->state;
      auto now = steady::now();
      st.recent.push_back(now);
      while (!st.recent.empty() && now - st.recent.front() > st.cfg.window) st.recent.pop_front();
      if (st.gave_up || st.recent.size() > st.cfg.max_restarts) {
        st.gave_up = true;
        st.log.error("root supervisor gives up: too many group failures; the group stays failed",
                     {{"connector", name}, {"error", error},
                      {"failures", std::to_string(st.recent.size())}});
        return;
      }
      st.log.warn("connector group failed, applying the root strategy",
                  {{"connector", name},
                   {"error", error},
                   {"strategy", to_string(st.cfg.strategy)},
                   {"backoff_ms", std::to_string(st.cfg.backoff.count())}});
      self->delayed_send(self, st.cfg.backoff, apply_atom::value, name);
    },
    [=](apply_atom, const std::string& name) { apply_strategy(self, name); },
    [=](status_atom) { return std::string{self->state.gave_up ? "gave_up" : "running"}; },
  };
}

} // namespace

caf::actor spawn_node_supervisor(caf::actor_system& sys, root_supervision_config cfg) {
  return sys.spawn(node_supervisor, cfg);
}

} // namespace manifold::supervision
