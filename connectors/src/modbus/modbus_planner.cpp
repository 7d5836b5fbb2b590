#include "modbus/modbus_planner.hpp"

#include <algorithm>

namespace manifold::connectors::modbus {

int max_read_count(modbus_table t) {
  bool bits = t == modbus_table::coil || t == modbus_table::discrete_input;
  return bits ? max_bits_per_read : max_registers_per_read;
}

std::vector<read_request> plan_reads(modbus_table table, std::vector<planned_point> points,
                                     int max_gap) {
  std::vector<read_request> out;
  std::stable_sort(points.begin(), points.end(),
                   [](const planned_point& a, const planned_point& b) {
                     return a.address < b.address;
                   });
  int limit = max_read_count(table);
  max_gap = std::max(max_gap, 0);

  for (auto& p : points) {
    int end = p.address + p.count; // one past the point's last address
    if (!out.empty()) {
      auto& cur = out.back();
      int cur_end = cur.address + cur.count;
      int new_end = std::max(cur_end, end);
      bool near = p.address - cur_end <= max_gap;
      if (near && new_end - cur.address <= limit) {
        cur.count = new_end - cur.address;
        cur.points.push_back(p.id);
        continue;
      }
    }
    read_request r;
    r.table = table;
    r.address = p.address;
    r.count = p.count;
    r.points.push_back(p.id);
    out.push_back(std::move(r));
  }
  return out;
}

} // namespace manifold::connectors::modbus
