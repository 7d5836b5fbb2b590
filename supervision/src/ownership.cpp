#include "manifold/supervision/ownership.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"

namespace manifold::supervision {

namespace {

const log::logger logger{"ownership"};

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

std::string member_json(const cluster_member_info& m) {
  nlohmann::json j;
  j["id"] = m.id;
  j["labels"] = m.labels;
  j["draining"] = m.draining;
  j["address"] = m.address;
  j["api_url"] = m.api_url;
  j["digest"] = m.digest;
  return j.dump();
}

/// The member stored under `id`; a value that is not the JSON we write still yields a member
/// (its id), since the key's existence alone says the node's lease is alive.
cluster_member_info parse_member(const std::string& id, const std::string& value) {
  cluster_member_info m;
  m.id = id;
  auto j = nlohmann::json::parse(value, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    logger.warn("member key is not JSON", {{"node", id}});
    return m;
  }
  if (auto i = j.find("labels"); i != j.end() && i->is_object())
    for (auto& [k, v] : i->items())
      if (v.is_string()) m.labels[k] = v.get<std::string>();
  if (auto i = j.find("draining"); i != j.end() && i->is_boolean()) m.draining = i->get<bool>();
  if (auto i = j.find("address"); i != j.end() && i->is_string()) m.address = i->get<std::string>();
  if (auto i = j.find("api_url"); i != j.end() && i->is_string()) m.api_url = i->get<std::string>();
  if (auto i = j.find("digest"); i != j.end() && i->is_string()) m.digest = i->get<std::string>();
  return m;
}

} // namespace

// -- settings ---------------------------------------------------------------------------------

ownership_settings ownership_settings::from(const cluster_config& cluster) {
  ownership_settings s;
  etcd_config etcd = cluster.etcd ? *cluster.etcd : etcd_config{};
  auto prefix = etcd.prefix;
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  s.prefix = prefix + "/" + cluster.name + "/";
  s.lease_ttl = etcd.lease_ttl;
  s.fence_margin = etcd.fence_margin;
  s.boot_settle = etcd.lease_ttl / 2;
  return s;
}

std::chrono::milliseconds ownership_settings::effective_renew_interval() const {
  return renew_interval.count() > 0 ? renew_interval : lease_ttl / 3;
}

std::string ownership_settings::problem() const {
  if (prefix.empty() || prefix.back() != '/')
    return "key prefix '" + prefix + "' must end in '/'";
  if (lease_ttl.count() <= 0) return "lease_ttl must be positive, got " + ms_text(lease_ttl);
  if (fence_margin.count() < 0)
    return "fence_margin must not be negative, got " + ms_text(fence_margin);
  if (fence_margin >= lease_ttl)
    return "fence_margin (" + ms_text(fence_margin) + ") must be shorter than lease_ttl (" +
           ms_text(lease_ttl) + ")";
  if (effective_renew_interval() >= lease_ttl - fence_margin)
    return "the renew interval (" + ms_text(effective_renew_interval()) +
           ") must be shorter than lease_ttl - fence_margin (" +
           ms_text(lease_ttl - fence_margin) + "), or the node fences itself between renewals";
  return {};
}

// -- agent ------------------------------------------------------------------------------------

struct ownership_agent::snapshot {
  std::map<std::string, cluster_member_info> members;
  std::map<std::string, kv_entry> member_keys; // Lease and create revision of each member key.
  std::string leader;
  lease_id leader_lease = 0;
  std::map<std::string, std::string> assign;
  std::map<std::string, kv_entry> owner;
  std::set<std::string> draining;
  std::map<std::string, std::string> moves;
  std::set<std::string> stray_assign; // Assignment keys of connectors we do not know.
  std::set<std::string> stray_moves;
  placement_result placed;
  bool valid = false;
};

ownership_agent::ownership_agent(cluster_member_info self,
                                 std::vector<connector_placement> connectors, lease_store& store,
                                 ownership_settings settings)
  : self_(std::move(self)),
    connectors_(std::move(connectors)),
    store_(store),
    settings_(std::move(settings)) {
  if (auto why = settings_.problem(); !why.empty())
    throw std::invalid_argument("ownership settings: " + why);
  view_.self = self_.id;
}

std::string ownership_agent::key(const std::string& kind, const std::string& name) const {
  return settings_.prefix + kind + "/" + name;
}

const connector_placement* ownership_agent::find_connector(const std::string& name) const {
  for (auto& c : connectors_)
    if (c.name == name) return &c;
  return nullptr;
}

bool ownership_agent::managed(const std::string& connector) const {
  auto* c = find_connector(connector);
  return c != nullptr && c->placement.node.empty();
}

ownership_agent::clock::time_point ownership_agent::valid_until() const {
  std::lock_guard<std::mutex> guard{view_mutex_};
  return lease_ == 0 ? clock::time_point{} : valid_until_;
}

ownership_view ownership_agent::view() const {
  std::lock_guard<std::mutex> guard{view_mutex_};
  return view_;
}

void ownership_agent::note_error(const caf::error& err, const char* during) {
  auto text = std::string{during} + ": " + message_of(err);
  std::lock_guard<std::mutex> guard{view_mutex_};
  view_.last_error = text;
  if (text != logged_error_) {
    logger.warn("lease store call failed",
                {{"node", self_.id}, {"during", during}, {"error", message_of(err)}});
    logged_error_ = text;
  }
}

void ownership_agent::lose_lease(const std::string& why) {
  logger.warn("lease lost; stopping owned connectors and starting over",
              {{"node", self_.id}, {"lease", std::to_string(lease_)}, {"reason", why}});
  std::lock_guard<std::mutex> guard{view_mutex_};
  lease_ = 0;
  registered_ = false;
  valid_until_ = clock::time_point{};
  view_.lease_healthy = false;
}

bool ownership_agent::renew(clock::time_point now) {
  auto ttl = settings_.lease_ttl;
  if (lease_ == 0) {
    auto id = store_.grant(ttl);
    if (!id) {
      note_error(id.error(), "grant");
      return false;
    }
    logger.info("lease granted", {{"node", self_.id}, {"lease", std::to_string(*id)}});
    std::lock_guard<std::mutex> guard{view_mutex_};
    lease_ = *id;
    last_renew_sent_ = now;
    valid_until_ = now + ttl - settings_.fence_margin;
    return true;
  }
  if (now - last_renew_sent_ < settings_.effective_renew_interval()) return true;
  auto granted = store_.keep_alive(lease_);
  if (!granted) {
    if (code_of(granted.error()) == errc::not_found) {
      lose_lease(message_of(granted.error()));
      return false;
    }
    note_error(granted.error(), "keep-alive"); // Still ours until the fence says otherwise.
    return true;
  }
  std::lock_guard<std::mutex> guard{view_mutex_};
  last_renew_sent_ = now; // The send time, never the answer's: see the header.
  valid_until_ = now + std::min(*granted, ttl) - settings_.fence_margin;
  return true;
}

caf::error ownership_agent::read(snapshot& s) {
  auto entries = store_.range(settings_.prefix);
  if (!entries) return entries.error();
  for (auto& e : *entries) {
    auto rel = e.key.substr(settings_.prefix.size());
    auto slash = rel.find('/');
    auto kind = rel.substr(0, slash);
    auto name = slash == std::string::npos ? std::string{} : rel.substr(slash + 1);
    if (rel == "leader") {
      s.leader = e.value;
      s.leader_lease = e.lease;
    } else if (name.empty()) {
      continue;
    } else if (kind == "members") {
      s.members[name] = parse_member(name, e.value);
      s.member_keys[name] = e;
    } else if (kind == "assign") {
      if (managed(name))
        s.assign[name] = e.value;
      else
        s.stray_assign.insert(name);
    } else if (kind == "owner") {
      s.owner[name] = e;
    } else if (kind == "drain") {
      s.draining.insert(name);
    } else if (kind == "move") {
      if (managed(name))
        s.moves[name] = e.value;
      else
        s.stray_moves.insert(name);
    }
  }
  s.valid = true;
  return caf::none;
}

placement_input ownership_agent::placement_of(const snapshot& s) const {
  placement_input in;
  in.connectors = connectors_;
  for (auto& [id, m] : s.members)
    // Only nodes that know the connectors as this one does, and that the mesh can reach.
    if (m.digest == self_.digest && (!reachable_ || reachable_->count(id) > 0))
      in.members.push_back(placement_member{id, m.labels, s.draining.count(id) > 0});
  in.current = s.assign;
  in.moves = s.moves;
  return in;
}

caf::error ownership_agent::lead(clock::time_point now, snapshot& s) {
  if (s.assign.empty() && settings_.boot_settle.count() > 0 && now - started_ < settings_.boot_settle)
    return caf::none; // The cluster is booting: let the other nodes register first.

  for (auto& name : s.stray_assign)
    if (auto err = store_.remove(key("assign", name))) return err;
  for (auto& name : s.stray_moves)
    if (auto err = store_.remove(key("move", name))) return err;

  for (auto& c : connectors_) {
    if (!c.placement.node.empty()) continue;
    auto decided = s.placed.assignment.find(c.name);
    auto current = s.assign.find(c.name);
    if (decided != s.placed.assignment.end()) {
      if (current == s.assign.end() || current->second != decided->second) {
        if (auto err = store_.put(key("assign", c.name), decided->second, 0)) return err;
        logger.info("connector assigned", {{"node", self_.id}, {"connector", c.name},
                                           {"to", decided->second},
                                           {"from", current == s.assign.end() ? std::string{"-"}
                                                                              : current->second}});
        s.assign[c.name] = decided->second;
      }
    } else if (current != s.assign.end()) {
      if (auto err = store_.remove(key("assign", c.name))) return err;
      s.assign.erase(current);
    }

    auto mv = s.moves.find(c.name);
    if (mv == s.moves.end()) continue;
    auto refused = s.placed.refused_moves.find(c.name);
    if (refused != s.placed.refused_moves.end())
      logger.warn("move request dropped",
                  {{"connector", c.name}, {"to", mv->second}, {"reason", refused->second}});
    if (refused != s.placed.refused_moves.end() || s.assign[c.name] == mv->second) {
      if (auto err = store_.remove(key("move", c.name))) return err;
      s.moves.erase(mv);
    }
  }
  return caf::none;
}

caf::error ownership_agent::own(snapshot& s, const std::set<std::string>& running,
                                actions& out) {
  for (auto& c : connectors_) {
    if (!c.placement.node.empty()) continue;
    auto a = s.assign.find(c.name);
    bool mine = a != s.assign.end() && a->second == self_.id;
    auto o = s.owner.find(c.name);
    bool held = o != s.owner.end() && o->second.value == self_.id && o->second.lease == lease_;
    bool is_running = running.count(c.name) > 0;

    if (is_running && (!mine || !held)) {
      // Stop first; the key is released in a later step, once the runtime reports it stopped.
      out.stop.push_back(c.name);
      continue;
    }
    if (mine && o == s.owner.end()) {
      kv_entry holder;
      auto created = store_.create(key("owner", c.name), self_.id, lease_, &holder);
      if (!created) return created.error();
      if (*created) {
        holder.key = key("owner", c.name);
        holder.value = self_.id;
        holder.lease = lease_;
        held = true;
        logger.info("connector acquired", {{"node", self_.id}, {"connector", c.name}});
      }
      s.owner[c.name] = holder;
    }
    if (mine && held && !is_running) out.start.push_back(c.name);
    if (!mine && held && !is_running) {
      auto removed = store_.remove_if(key("owner", c.name), self_.id);
      if (!removed) return removed.error();
      s.owner.erase(c.name);
      logger.info("connector released", {{"node", self_.id}, {"connector", c.name}});
    }
  }
  return caf::none;
}

void ownership_agent::publish_view(const snapshot& s, bool lease_healthy) {
  std::lock_guard<std::mutex> guard{view_mutex_};
  view_.lease_healthy = lease_healthy;
  view_.valid_until = lease_ == 0 ? clock::time_point{} : valid_until_;
  if (!s.valid) return; // Keep the last picture of the cluster.
  view_.leader = s.leader;
  view_.members.clear();
  for (auto& [id, m] : s.members) {
    auto copy = m;
    copy.draining = s.draining.count(id) > 0;
    view_.members.push_back(std::move(copy));
  }
  view_.assignments = s.assign;
  view_.owners.clear();
  for (auto& [name, e] : s.owner) view_.owners[name] = e.value;
  for (auto& c : connectors_)
    if (!c.placement.node.empty()) view_.owners[c.name] = c.placement.node;
  view_.draining = s.draining;
  view_.moves = s.moves;
  view_.unplaced.clear();
  for (auto& c : connectors_) {
    if (!c.placement.node.empty()) continue;
    if (auto u = s.placed.unplaced.find(c.name); u != s.placed.unplaced.end())
      view_.unplaced[c.name] = u->second;
    else if (s.assign.count(c.name) == 0)
      view_.unplaced[c.name] = s.leader.empty() ? "no leader is elected yet"
                                                : "waiting for the leader ('" + s.leader +
                                                      "') to place it";
  }
  view_.last_error.clear();
  logged_error_.clear();
}

ownership_agent::actions ownership_agent::step(clock::time_point now,
                                               const std::set<std::string>& running) {
  std::lock_guard<std::mutex> guard{step_mutex_};
  actions out;
  if (!started_known_) {
    started_ = now;
    started_known_ = true;
  }
  snapshot s;

  auto fence = [&] {
    out = actions{};
    for (auto& name : running)
      if (managed(name)) out.stop.push_back(name);
  };
  // A store call that failed: a vanished lease means starting over, anything else leaves the
  // connectors to the fence.
  auto fail = [&](const caf::error& err, const char* during) {
    if (code_of(err) == errc::not_found && lease_ != 0) {
      lose_lease(message_of(err));
      fence();
    } else {
      note_error(err, during);
    }
    publish_view(snapshot{}, lease_ != 0 && now < valid_until());
    return out;
  };

  if (!renew(now) || now >= valid_until()) {
    if (lease_ != 0) {
      std::lock_guard<std::mutex> view_guard{view_mutex_};
      if (view_.lease_healthy)
        logger.warn("lease not renewed in time; fencing: stopping owned connectors",
                    {{"node", self_.id}, {"lease", std::to_string(lease_)}});
    }
    fence();
    publish_view(snapshot{}, false);
    return out;
  }

  // Stays out of the cluster's decisions: stops what it runs, takes nothing, says why.
  auto stay_out = [&](const std::string& why) {
    out_reason_ = why;
    fence();
    publish_view(snapshot{}, true);
    std::lock_guard<std::mutex> view_guard{view_mutex_};
    view_.last_error = why;
    if (why != logged_error_) {
      logger.warn("not taking part in ownership", {{"node", self_.id}, {"reason", why}});
      logged_error_ = why;
    }
    return out;
  };

  if (!registered_) {
    auto me = self_;
    me.draining = registered_draining_;
    kv_entry holder;
    auto created = store_.create(key("members", self_.id), member_json(me), lease_, &holder);
    if (!created) return fail(created.error(), "register member");
    // A create that was applied twice (retried on another endpoint) finds our own key.
    if (!*created && holder.lease != lease_)
      return stay_out("node id '" + self_.id + "' is registered by another lease (" +
                      std::to_string(holder.lease) + "): another node runs with this id, or "
                      "this node's previous run did and its lease has not expired yet");
    registered_ = true;
  }
  if (auto err = read(s)) return fail(err, "read cluster state");
  if (auto k = s.member_keys.find(self_.id); k != s.member_keys.end() && k->second.lease != lease_) {
    registered_ = false; // Our key expired and someone else registered the id since.
    return stay_out("node id '" + self_.id + "' was registered by another lease meanwhile");
  }
  const std::pair<const std::string, kv_entry>* first = nullptr;
  for (auto& entry : s.member_keys)
    if (!first || entry.second.create_revision < first->second.create_revision) first = &entry;
  if (first && first->first != self_.id && s.members[first->first].digest != self_.digest)
    return stay_out("this node's connectors section (digest " + self_.digest + ") differs from "
                    "the cluster's, set by node '" + first->first + "' (digest " +
                    s.members[first->first].digest + "); it takes no connector until they match");
  out_reason_.clear();
  bool draining = s.draining.count(self_.id) > 0;
  if (draining != registered_draining_ || s.members.count(self_.id) == 0) {
    auto me = self_;
    me.draining = draining;
    if (s.members.count(self_.id) == 0) {
      kv_entry holder;
      auto created = store_.create(key("members", self_.id), member_json(me), lease_, &holder);
      if (!created) return fail(created.error(), "update member");
      if (!*created && holder.lease != lease_)
        return stay_out("node id '" + self_.id + "' was registered by another lease meanwhile");
    } else if (auto err = store_.put(key("members", self_.id), member_json(me), lease_)) {
      return fail(err, "update member");
    }
    registered_draining_ = draining;
    s.members[self_.id] = me;
  }

  if (s.leader.empty()) {
    kv_entry holder;
    auto created = store_.create(settings_.prefix + "leader", self_.id, lease_, &holder);
    if (!created) return fail(created.error(), "campaign");
    if (*created) {
      logger.info("became leader", {{"node", self_.id}});
      s.leader = self_.id;
      s.leader_lease = lease_;
    } else {
      s.leader = holder.value;
      s.leader_lease = holder.lease;
    }
  }
  s.placed = place(placement_of(s));
  if (s.leader == self_.id && s.leader_lease == lease_)
    if (auto err = lead(now, s)) return fail(err, "write assignments");
  if (auto err = own(s, running, out)) return fail(err, "acquire or release connectors");

  publish_view(s, true);
  return out;
}

// -- admin ------------------------------------------------------------------------------------

void ownership_agent::set_reachable(std::set<std::string> members) {
  std::lock_guard<std::mutex> guard{step_mutex_};
  reachable_ = std::move(members);
}

caf::error ownership_agent::drain(const std::string& node, bool on) {
  std::lock_guard<std::mutex> guard{step_mutex_};
  if (!out_reason_.empty())
    return make_error(errc::conflict, "this node takes no part in ownership (" + out_reason_ +
                                          "); ask another node");
  if (!on) return store_.remove(key("drain", node));
  auto entries = store_.range(settings_.prefix + "members/");
  if (!entries) return entries.error();
  bool known = false;
  for (auto& e : *entries) known = known || e.key == key("members", node);
  if (!known)
    return make_error(errc::not_found,
                      "cannot drain node '" + node + "': it is not an alive cluster member");
  logger.info("node draining requested", {{"node", node}});
  return store_.put(key("drain", node), "true", 0);
}

caf::error ownership_agent::move(const std::string& connector, const std::string& node) {
  auto* c = find_connector(connector);
  if (c == nullptr)
    return make_error(errc::not_found, "cannot move connector '" + connector +
                                           "': no connector of that name is configured");
  std::lock_guard<std::mutex> guard{step_mutex_};
  if (!out_reason_.empty())
    return make_error(errc::conflict, "this node takes no part in ownership (" + out_reason_ +
                                          "); ask another node");
  if (reachable_ && reachable_->count(node) == 0)
    return make_error(errc::conflict, "cannot move: node '" + node + "' is not an alive member "
                                      "of this node's cluster (not joined, refused or down)");
  snapshot s;
  if (!c->placement.node.empty())
    return make_error(errc::conflict, "cannot move: " + move_refusal(*c, node, {}));
  if (auto err = read(s)) return err;
  if (auto m = s.members.find(node); m != s.members.end() && m->second.digest != self_.digest)
    return make_error(errc::conflict, "cannot move: node '" + node + "' runs another connectors "
                                      "section (digest " + m->second.digest + ", here " +
                                      self_.digest + ")");
  if (auto a = s.assign.find(connector); a != s.assign.end() && a->second == node)
    return make_error(errc::conflict, "connector '" + connector + "' already runs on node '" +
                                          node + "'");
  auto why = move_refusal(*c, node, placement_of(s).members);
  if (!why.empty()) return make_error(errc::conflict, "cannot move: " + why);
  logger.info("move requested", {{"connector", connector}, {"to", node}});
  return store_.put(key("move", connector), node, 0);
}

caf::error ownership_agent::resign(const std::set<std::string>& running) {
  for (auto& name : running)
    if (managed(name))
      return make_error(errc::conflict, "cannot resign while connector '" + name +
                                            "' still runs on this node; stop it first");
  std::lock_guard<std::mutex> guard{step_mutex_};
  if (lease_ == 0) return caf::none;
  if (auto err = store_.revoke(lease_)) return err;
  logger.info("lease revoked", {{"node", self_.id}, {"lease", std::to_string(lease_)}});
  std::lock_guard<std::mutex> view_guard{view_mutex_};
  lease_ = 0;
  registered_ = false;
  valid_until_ = clock::time_point{};
  view_.lease_healthy = false;
  return caf::none;
}

} // namespace manifold::supervision
