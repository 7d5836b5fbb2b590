#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/fwd.hpp>

#include "manifold/connectors/modbus_transport.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/connectors/transport.hpp"
#include "modbus/modbus_planner.hpp"

/// The worker that makes the blocking Modbus calls for one connector instance. It runs in its
/// own thread (a detached actor) when the client blocks, owns the `modbus_client`, and handles
/// one request at a time.
///
/// Protocol:
/// - `(poll_atom, poll_job) -> poll_outcome`: runs the job's reads in order; stops at the first
///   read that finds the device unreachable.
/// - `(write_atom, write_job) -> modbus_status`.
namespace manifold::connectors::modbus {

struct poll_job {
  std::string device;
  int unit_id = 1;
  std::vector<read_request> reads;
};

struct read_result {
  modbus_status status;
  std::vector<std::uint16_t> registers; ///< Holding and input registers.
  std::vector<std::uint8_t> bits;       ///< Coils and discrete inputs, one byte per bit.
};

struct poll_outcome {
  std::string device;
  bool unreachable = false;
  std::string reason; ///< Why the device is unreachable.
  std::vector<read_result> results; ///< One per read of the job, in order, when reachable.
};

struct write_job {
  int unit_id = 1;
  modbus_table table = modbus_table::holding_register;
  int address = 0;
  std::vector<std::uint16_t> registers; ///< For a coil: one element, 0 or 1.
};

/// Spawns the worker linked to `parent`; the client comes from `transports`. A blocking client
/// (libmodbus) gets a detached worker; a non-blocking one (`modbus_client::blocking`) a scheduled
/// one. With a `fence`, the worker makes no device call while the fence is closed.
caf::actor spawn_modbus_worker(caf::event_based_actor* parent,
                               std::shared_ptr<transport_factory> transports,
                               modbus_client_options opts,
                               std::shared_ptr<const ownership_fence> fence = nullptr);

} // namespace manifold::connectors::modbus

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::connectors::modbus_status)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::connectors::modbus::poll_job)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::connectors::modbus::poll_outcome)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::connectors::modbus::write_job)
