#include "modbus/modbus_worker.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/messages.hpp"
#include "modbus/modbus_schema.hpp"

namespace manifold::connectors::modbus {

namespace {

struct worker_state {
  std::shared_ptr<modbus_client> client;
  std::shared_ptr<const ownership_fence> fence;
  static inline const char* name = "modbus_worker";
};

using worker_actor = caf::stateful_actor<worker_state>;

modbus_status missing_client() {
  modbus_status st;
  st.ok = false;
  st.connection_lost = true;
  st.message = "no Modbus client available";
  return st;
}

modbus_status fenced() {
  modbus_status st;
  st.ok = false;
  st.connection_lost = true;
  st.message = connector_context::fenced_reason;
  return st;
}

/// Checked right before each call: the worker may have waited in its mailbox, or the whole
/// process may have been paused, since the connector decided to poll.
bool may_drive(const worker_state& st) {
  return !st.fence || st.fence->open();
}

poll_outcome run_poll(const worker_state& st, poll_job& job) {
  auto* client = st.client.get();
  poll_outcome out;
  out.device = job.device;
  for (auto& req : job.reads) {
    read_result res;
    if (!may_drive(st)) {
      res.status = fenced();
    } else if (!client) {
      res.status = missing_client();
    } else if (bit_table(req.table)) {
      res.status = client->read_bits(job.unit_id, req.table, req.address, req.count, res.bits);
    } else {
      res.status =
        client->read_registers(job.unit_id, req.table, req.address, req.count, res.registers);
    }
    if (res.status.connection_lost) {
      // The rest would fail the same way, each after a timeout of its own.
      out.unreachable = true;
      out.reason = res.status.message;
      out.results.clear();
      return out;
    }
    out.results.push_back(std::move(res));
  }
  return out;
}

caf::behavior modbus_worker(worker_actor* self, std::shared_ptr<modbus_client> client,
                           std::shared_ptr<const ownership_fence> fence) {
  self->state.client = std::move(client);
  self->state.fence = std::move(fence);
  return {
    [=](poll_atom, poll_job& job) { return run_poll(self->state, job); },
    [=](write_atom, write_job& job) -> modbus_status {
      auto* client = self->state.client.get();
      if (!may_drive(self->state)) return fenced();
      if (!client) return missing_client();
      if (job.table == modbus_table::coil)
        return client->write_coil(job.unit_id, job.address,
                                  !job.registers.empty() && job.registers.front() != 0);
      return client->write_registers(job.unit_id, job.address, job.registers);
    },
  };
}

} // namespace

caf::actor spawn_modbus_worker(caf::event_based_actor* parent,
                               std::shared_ptr<transport_factory> transports,
                               modbus_client_options opts,
                               std::shared_ptr<const ownership_fence> fence) {
  // Made here rather than in the worker so its kind picks the worker's: creating a client opens
  // no connection (libmodbus connects on the first call).
  std::shared_ptr<modbus_client> client;
  if (transports) client = transports->make_modbus(opts);
  // A detached actor has a thread of its own even under CAF's deterministic test scheduler, so
  // only a client that blocks gets one; a simulated one runs in order with the connector.
  if (client && !client->blocking())
    return parent->spawn<caf::linked>(modbus_worker, std::move(client), std::move(fence));
  return parent->spawn<caf::detached + caf::linked>(modbus_worker, std::move(client),
                                                    std::move(fence));
}

} // namespace manifold::connectors::modbus
