#include "manifold/actors/data_bus.hpp"

#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/reading_queue.hpp"

namespace manifold {

namespace {

struct subscription {
  reading_sink_ptr sink;
  reading_filter filter;
};

struct bus_state {
  // device -> point -> latest reading. Two levels so `get (device)` needs no scan.
  std::unordered_map<std::string, std::unordered_map<std::string, point_reading>> latest;
  std::vector<subscription> subscribers;
  /// Every connector queue that ever woke the bus, for the drain before a `get`.
  std::unordered_set<reading_queue_ptr> queues;
  std::vector<point_reading> batch; ///< Reused between drains.
  static inline const char* name = "data_bus";
};

using bus_actor = caf::stateful_actor<bus_state>;

void store(bus_state& st, point_reading& r) {
  for (auto& s : st.subscribers)
    if (s.filter.matches(r)) s.sink->deliver(r);
  auto& slot = st.latest[r.device][r.point];
  // A stale mark keeps the last known value: the device went quiet, the value did not vanish.
  if (r.q == quality::stale && std::holds_alternative<std::monostate>(r.data))
    r.data = std::move(slot.data);
  slot = std::move(r);
}

void store_batch(bus_state& st) {
  for (auto& r : st.batch) store(st, r);
  st.batch.clear();
}

/// Brings the last-value cache up to date with every reading queued so far. Bounded: at most
/// one capacity's worth per queue, however fast producers push meanwhile.
void drain_all(bus_state& st) {
  for (auto& q : st.queues) {
    q->pop(st.batch, q->capacity());
    store_batch(st);
  }
}

caf::behavior data_bus(bus_actor* self) {
  return {
    [=](publish_atom, reading_queue_ptr& q) {
      auto& st = self->state;
      if (!q) return;
      st.queues.insert(q);
      auto more = q->pop_for_wakeup(st.batch, drain_batch);
      store_batch(st);
      // More left: queue the wake-up behind whatever other connectors sent meanwhile, so a
      // flooding connector cannot starve the others. Still one wake-up per queue.
      if (more) self->send(self, publish_atom::value, std::move(q));
    },
    [=](publish_atom, point_reading& r) { store(self->state, r); },
    [=](get_atom, const std::string& device,
        const std::string& point) -> caf::result<point_reading> {
      auto& st = self->state;
      drain_all(st);
      if (auto d = st.latest.find(device); d != st.latest.end())
        if (auto p = d->second.find(point); p != d->second.end()) return p->second;
      return make_error(errc::not_found, "no reading of " + device + "/" + point + " yet");
    },
    [=](get_atom, const std::string& device) {
      std::vector<point_reading> out;
      auto& st = self->state;
      drain_all(st);
      if (auto d = st.latest.find(device); d != st.latest.end())
        for (auto& [name, r] : d->second) out.push_back(r);
      return out;
    },
    [=](subscribe_atom, reading_sink_ptr& sink, reading_filter& filter) {
      self->state.subscribers.push_back({std::move(sink), std::move(filter)});
    },
    [=](unsub_atom, const reading_sink_ptr& sink) {
      auto& subs = self->state.subscribers;
      for (auto i = subs.begin(); i != subs.end();) {
        if (i->sink == sink)
          i = subs.erase(i);
        else
          ++i;
      }
    },
  };
}

} // namespace

caf::actor spawn_data_bus(caf::actor_system& sys, std::shared_ptr<node_metrics>) {
  return sys.spawn(data_bus);
}

} // namespace manifold
