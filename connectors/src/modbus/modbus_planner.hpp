#pragma once

#include <cstddef>
#include <vector>

#include "manifold/connectors/modbus_transport.hpp"

/// Planning the read requests of one poll. Pure functions, no I/O.
namespace manifold::connectors::modbus {

/// The largest read the Modbus specification allows in one request.
constexpr int max_registers_per_read = 125;
constexpr int max_bits_per_read = 2000;

int max_read_count(modbus_table t);

/// One point to read: where it lives and how many registers (or bits) it spans.
struct planned_point {
  std::size_t id = 0; ///< The caller's index of the point; returned in the plan.
  int address = 0;
  int count = 1;
};

/// One read request: `count` registers (or bits) from `address`, covering `points`.
struct read_request {
  modbus_table table = modbus_table::holding_register;
  int address = 0;
  int count = 0;
  std::vector<std::size_t> points; ///< Ids of the points inside this range.
};

/// Groups the points of one device and one table into as few requests as the addresses allow:
/// points whose ranges overlap, touch or leave a gap of at most `max_gap` unused addresses share
/// a request, as long as the request stays within the Modbus limit for the table. Requests come
/// out in address order; every point appears in exactly one request.
std::vector<read_request> plan_reads(modbus_table table, std::vector<planned_point> points,
                                     int max_gap);

} // namespace manifold::connectors::modbus
