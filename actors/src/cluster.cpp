#include "manifold/actors/cluster.hpp"

#include <cstdio>

#include <caf/actor_system_config.hpp>

namespace manifold {

namespace {

/// How many refusals the directory remembers.
constexpr std::size_t max_refusals = 16;

std::string versioned(const char* name) {
  return "manifold.v" + std::to_string(cluster_protocol_version) + "." + name;
}

} // namespace

void register_cluster_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<value>(versioned("value"));
  cfg.add_message_type<quality>(versioned("quality"));
  cfg.add_message_type<point_reading>(versioned("point_reading"));
  cfg.add_message_type<action_request>(versioned("action_request"));
  cfg.add_message_type<connector_state>(versioned("connector_state"));
  cfg.add_message_type<connector_status>(versioned("connector_status"));
  cfg.add_message_type<running_connector>(versioned("running_connector"));
  cfg.add_message_type<node_info>(versioned("node_info"));
  cfg.add_message_type<heartbeat>(versioned("heartbeat"));
}

const char* to_string(member_health h) {
  switch (h) {
    case member_health::alive: return "alive";
    case member_health::down: return "down";
  }
  return "unknown";
}

std::string format_seconds(std::chrono::steady_clock::duration d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", std::chrono::duration<double>(d).count());
  return buf;
}

// -- cluster_directory -----------------------------------------------------------------------------

cluster_directory::cluster_directory(std::shared_ptr<const node_config> config)
  : config_(std::move(config)) {}

void cluster_directory::set_self(node_info info) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& m = members_[info.id];
  auto now = std::chrono::steady_clock::now();
  m.self = true;
  m.health = member_health::alive;
  m.last_seen = now;
  if (m.since == std::chrono::steady_clock::time_point{}) m.since = now;
  m.info = std::move(info);
}

void cluster_directory::member_joined(node_info info, std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& m = members_[info.id];
  if (m.self) return; // Only a bug sends us our own info; keep the real self entry.
  if (m.health != member_health::alive || m.info.id.empty()) m.since = now;
  m.health = member_health::alive;
  m.reason.clear();
  m.last_seen = now;
  m.info = std::move(info);
}

bool cluster_directory::heartbeat_received(const heartbeat& hb,
                                           std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = members_.find(hb.id);
  if (i == members_.end() || i->second.self) return false;
  auto& m = i->second;
  if (m.health != member_health::alive) {
    m.health = member_health::alive;
    m.reason.clear();
    m.since = now;
  }
  m.last_seen = now;
  m.node_health = hb.health;
  m.running = hb.running;
  return true;
}

void cluster_directory::mark_down(const std::string& id, const std::string& reason,
                                  std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = members_.find(id);
  if (i == members_.end() || i->second.self || i->second.health == member_health::down) return;
  i->second.health = member_health::down;
  i->second.reason = reason;
  i->second.since = now;
  i->second.running.clear(); // Nothing is known to run there any more.
}

void cluster_directory::set_local_running(std::vector<running_connector> running,
                                          std::string health) {
  std::lock_guard<std::mutex> guard{mutex_};
  auto& m = members_[config_->id];
  m.self = true;
  m.running = std::move(running);
  m.node_health = std::move(health);
  m.last_seen = std::chrono::steady_clock::now();
}

std::vector<cluster_member> cluster_directory::members() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<cluster_member> out;
  out.reserve(members_.size());
  for (auto& [id, m] : members_) out.push_back(m);
  return out;
}

std::optional<cluster_member> cluster_directory::member(const std::string& id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  if (auto i = members_.find(id); i != members_.end()) return i->second;
  return std::nullopt;
}

bool cluster_directory::is_alive(const std::string& id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = members_.find(id);
  return i != members_.end() && i->second.health == member_health::alive;
}

void cluster_directory::set_seed(seed_status s) {
  std::lock_guard<std::mutex> guard{mutex_};
  seeds_[s.address] = std::move(s);
}

std::vector<seed_status> cluster_directory::seeds() const {
  std::lock_guard<std::mutex> guard{mutex_};
  std::vector<seed_status> out;
  for (auto& [address, s] : seeds_) out.push_back(s);
  return out;
}

void cluster_directory::add_refusal(std::string peer, std::string reason,
                                    std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> guard{mutex_};
  // A refused peer retries every few heartbeats: one entry per peer and reason, kept current.
  for (auto i = refusals_.begin(); i != refusals_.end(); ++i)
    if (i->peer == peer && i->reason == reason) {
      refusals_.erase(i);
      break;
    }
  if (refusals_.size() == max_refusals) refusals_.erase(refusals_.begin());
  refusals_.push_back({std::move(peer), std::move(reason), now});
}

std::vector<refusal> cluster_directory::refusals() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return refusals_;
}

void cluster_directory::set_unplaced(std::map<std::string, std::string> reasons) {
  std::lock_guard<std::mutex> guard{mutex_};
  unplaced_ = std::move(reasons);
}

void cluster_directory::set_leader(std::string id, std::string chosen_by) {
  std::lock_guard<std::mutex> guard{mutex_};
  leader_ = {std::move(id), std::move(chosen_by)};
}

leader_info cluster_directory::leader() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return leader_;
}

void cluster_directory::set_owners(std::map<std::string, std::string> owners) {
  std::lock_guard<std::mutex> guard{mutex_};
  owners_ = std::move(owners);
}

void cluster_directory::set_owner(const std::string& connector, const std::string& node) {
  std::lock_guard<std::mutex> guard{mutex_};
  owners_[connector] = node;
}

void cluster_directory::clear_owner(const std::string& connector) {
  std::lock_guard<std::mutex> guard{mutex_};
  owners_.erase(connector);
}

std::optional<std::string> cluster_directory::owner(const std::string& connector) const {
  std::lock_guard<std::mutex> guard{mutex_};
  return owner_locked(connector);
}

std::optional<std::string> cluster_directory::owner_locked(const std::string& connector) const {
  if (auto c = config_->connector(connector); c && !c->placement.node.empty())
    return c->placement.node;
  if (auto i = owners_.find(connector); i != owners_.end()) return i->second;
  return std::nullopt;
}

connector_location cluster_directory::locate(const std::string& connector) const {
  using kind = connector_location::kind;
  connector_location out;
  auto quoted = "connector '" + connector + "'";
  auto c = config_->connector(connector);
  if (!c) {
    out.reason = "no " + quoted + " in the configuration";
    return out;
  }

  std::lock_guard<std::mutex> guard{mutex_};
  auto owner = owner_locked(connector);
  if (!owner) {
    auto why = unplaced_.find(connector);
    out.reason = quoted + " has no owner " +
                 (why != unplaced_.end() ? "(" + why->second + ")"
                                         : "yet (placement: " + c->placement.to_string() + ")");
    return out;
  }
  out.node = *owner;
  auto on_node = quoted + " runs on node '" + *owner + "'";
  auto m = members_.find(*owner);
  if (m == members_.end()) {
    out.reason = on_node + ", which has not joined the cluster";
    return out;
  }
  if (m->second.health == member_health::down) {
    out.reason = on_node + ", which is down (" + m->second.reason + ")";
    return out;
  }
  auto s = m->second.info.supervisors.find(connector);
  if (s == m->second.info.supervisors.end() || !s->second) {
    out.reason = on_node + ", which has no supervisor for it";
    return out;
  }
  out.where = m->second.self ? kind::local : kind::remote;
  out.supervisor = s->second;
  out.bus = m->second.info.bus;
  return out;
}

} // namespace manifold
