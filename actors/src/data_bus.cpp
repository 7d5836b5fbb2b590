#include "manifold/actors/data_bus.hpp"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
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
  /// Other nodes' buses that want every reading stored here (see `forward`).
  std::vector<caf::actor> forward_to;
  std::vector<point_reading> outgoing; ///< Readings of the current batch, for `forward_to`.
  /// Every connector queue that ever woke the bus, for the drain before a `get`.
  std::unordered_set<reading_queue_ptr> queues;
  std::vector<point_reading> batch; ///< Reused between drains.
  static inline const char* name = "data_bus";
};

using bus_actor = caf::stateful_actor<bus_state>;

void deliver_local(bus_state& st, const point_reading& r) {
  for (auto& s : st.subscribers)
    if (s.filter.matches(r)) s.sink->deliver(r);
}

void store(bus_state& st, point_reading& r) {
  deliver_local(st, r);
  if (!st.forward_to.empty()) st.outgoing.push_back(r);
  auto& slot = st.latest[r.device][r.point];
  // A stale mark keeps the last known value: the device went quiet, the value did not vanish.
  if (r.q == quality::stale && std::holds_alternative<std::monostate>(r.data))
    r.data = std::move(slot.data);
  slot = std::move(r);
}

/// Sends the readings stored since the last call to every subscribed bus, one message each.
void forward(bus_actor* self) {
  auto& st = self->state;
  if (st.outgoing.empty()) return;
  for (std::size_t i = 0; i + 1 < st.forward_to.size(); ++i)
    self->send(st.forward_to[i], forward_atom::value, st.outgoing);
  self->send(st.forward_to.back(), forward_atom::value, std::move(st.outgoing));
  st.outgoing.clear();
}

void store_batch(bus_actor* self) {
  auto& st = self->state;
  for (auto& r : st.batch) store(st, r);
  st.batch.clear();
  forward(self);
}

/// Brings the last-value cache up to date with every reading queued so far. Bounded: at most
/// one capacity's worth per queue, however fast producers push meanwhile.
void drain_all(bus_actor* self) {
  for (auto& q : self->state.queues) {
    q->pop(self->state.batch, q->capacity());
    store_batch(self);
  }
}

caf::behavior data_bus(bus_actor* self) {
  // A subscribed bus whose node left (or whose connection broke) gets nothing more.
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto& subs = self->state.forward_to;
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](const caf::actor& a) { return a.address() == msg.source; }),
               subs.end());
  });
  return {
    [=](publish_atom, reading_queue_ptr& q) {
      auto& st = self->state;
      if (!q) return;
      st.queues.insert(q);
      auto more = q->pop_for_wakeup(st.batch, drain_batch);
      store_batch(self);
      // More left: queue the wake-up behind whatever other connectors sent meanwhile, so a
      // flooding connector cannot starve the others. Still one wake-up per queue.
      if (more) self->send(self, publish_atom::value, std::move(q));
    },
    [=](publish_atom, point_reading& r) {
      store(self->state, r);
      forward(self);
    },
    // Readings another node's bus stored: for local sinks only. Not cached (the last value
    // belongs to the owning node) and not forwarded again, so two buses never loop.
    [=](forward_atom, const std::vector<point_reading>& readings) {
      for (auto& r : readings) deliver_local(self->state, r);
    },
    [=](subscribe_atom, const caf::actor& bus) {
      auto& subs = self->state.forward_to;
      if (!bus || std::find(subs.begin(), subs.end(), bus) != subs.end()) return;
      self->monitor(bus);
      subs.push_back(bus);
    },
    [=](get_atom, const std::string& device,
        const std::string& point) -> caf::result<point_reading> {
      auto& st = self->state;
      drain_all(self);
      if (auto d = st.latest.find(device); d != st.latest.end())
        if (auto p = d->second.find(point); p != d->second.end()) return p->second;
      return make_error(errc::not_found, "no reading of " + device + "/" + point + " yet");
    },
    [=](get_atom, const std::string& device) {
      std::vector<point_reading> out;
      auto& st = self->state;
      drain_all(self);
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
