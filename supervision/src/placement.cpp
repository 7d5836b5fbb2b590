#include "manifold/supervision/placement.hpp"

#include <algorithm>
#include <limits>

namespace manifold::supervision {

namespace {

const placement_member* find_member(const std::vector<placement_member>& members,
                                    const std::string& id) {
  for (auto& m : members)
    if (m.id == id) return &m;
  return nullptr;
}

std::string selector_text(const placement_config& p) {
  std::string out;
  for (auto& [k, v] : p.selector) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out.empty() ? "any node" : out;
}

/// Why no member can take `c`; only called when none can.
std::string unplaced_reason(const connector_placement& c,
                            const std::vector<placement_member>& members) {
  if (members.empty()) return "no node is alive";
  std::vector<std::string> draining;
  for (auto& m : members)
    if (c.placement.matches(m.labels) && m.draining) draining.push_back(m.id);
  if (draining.empty()) return "no alive node matches " + selector_text(c.placement);
  std::string ids;
  for (auto& id : draining) ids += (ids.empty() ? "" : ", ") + id;
  return "every alive node matching " + selector_text(c.placement) + " is draining (" + ids +
         ")";
}

} // namespace

std::string move_refusal(const connector_placement& connector, const std::string& target,
                         const std::vector<placement_member>& members) {
  auto& p = connector.placement;
  if (!p.node.empty())
    return "connector '" + connector.name + "' is pinned to node '" + p.node +
           "'; change its placement in the configuration instead";
  auto* m = find_member(members, target);
  if (m == nullptr) return "node '" + target + "' is not an alive member of the cluster";
  if (m->draining) return "node '" + target + "' is draining";
  if (!p.matches(m->labels))
    return "node '" + target + "' does not match the placement of connector '" +
           connector.name + "' (" + selector_text(p) + ")";
  return {};
}

placement_result place(const placement_input& in) {
  placement_result out;
  std::map<std::string, std::size_t> load;
  for (auto& m : in.members) load[m.id] = 0;
  for (auto& c : in.connectors)
    if (!c.placement.node.empty() && load.count(c.placement.node) > 0) ++load[c.placement.node];

  // First the decisions that do not depend on load (moves, sticky assignments), so that the
  // least-loaded choice below sees them all.
  std::vector<const connector_placement*> open;
  for (auto& c : in.connectors) {
    if (!c.placement.node.empty()) continue;
    if (auto mv = in.moves.find(c.name); mv != in.moves.end()) {
      auto why = move_refusal(c, mv->second, in.members);
      if (why.empty()) {
        out.assignment[c.name] = mv->second;
        ++load[mv->second];
        continue;
      }
      out.refused_moves[c.name] = why;
    }
    if (auto cur = in.current.find(c.name); cur != in.current.end()) {
      auto* m = find_member(in.members, cur->second);
      bool matches = m != nullptr && c.placement.matches(m->labels);
      if (matches && (!m->draining || !c.placement.failover)) {
        out.assignment[c.name] = cur->second;
        ++load[cur->second];
        continue;
      }
      if (m == nullptr && !c.placement.failover) {
        out.assignment[c.name] = cur->second;
        out.unplaced[c.name] = "its node '" + cur->second +
                               "' is not alive and the connector has failover: false";
        continue;
      }
    }
    open.push_back(&c);
  }

  for (auto* c : open) {
    const placement_member* best = nullptr;
    std::size_t best_load = std::numeric_limits<std::size_t>::max();
    for (auto& m : in.members) { // members may come in any order; ties go to the smaller id
      if (m.draining || !c->placement.matches(m.labels)) continue;
      auto l = load[m.id];
      if (l < best_load || (l == best_load && best != nullptr && m.id < best->id)) {
        best = &m;
        best_load = l;
      }
    }
    if (best == nullptr) {
      out.unplaced[c->name] = unplaced_reason(*c, in.members);
      continue;
    }
    out.assignment[c->name] = best->id;
    ++load[best->id];
  }
  return out;
}

} // namespace manifold::supervision
