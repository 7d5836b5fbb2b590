#include "manifold/supervision/cluster_node.hpp"

#include <set>

#include <caf/exit_reason.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/io/publish.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/supervision/tls_files.hpp"

namespace manifold::supervision {

/// Defined next to the OpenSSL shims (openssl_error_queue.cpp); referencing it makes the static
/// library's linker pull them into every program that starts a cluster node.
extern const bool openssl_error_queue_cleared;

namespace {

using steady = std::chrono::steady_clock;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

/// Seeds, down members and members heard of are dialled again every this many heartbeats.
constexpr std::uint64_t redial_every = 4;

/// Ends every refusal of a node whose id another node already has: that node is the one
/// misconfigured, and it logs the refusal as an error rather than a warning.
constexpr const char* duplicate_id = "(duplicate node id)";

struct node_state {
  cluster_node_deps deps;
  node_info self_info;
  caf::io::middleman_actor mm; ///< The openssl manager's actor with TLS, the middleman's without.
  /// Peers that passed the handshake, by the address of their node actor: their node id.
  std::map<caf::actor_addr, std::string> accepted;
  std::map<std::string, caf::actor> joined; ///< Node actors of members, by node id.
  std::set<caf::actor_addr> monitored;
  std::set<std::string> dialing;               ///< Addresses with a connect in flight.
  std::map<std::string, std::string> dial_errors; ///< Last error per address, to log changes.
  std::map<std::string, seed_status> seeds;
  std::map<std::string, std::string> learned; ///< Members heard of in heartbeats: id -> address.
  std::map<std::string, running_connector> local; ///< Last status of each local supervisor.
  std::string leader;
  std::uint64_t ticks = 0;
  log::logger log{"cluster"};
  static inline const char* name = "cluster_node";

  const node_config& cfg() const { return *deps.config; }
  const cluster_config& cluster() const { return deps.config->cluster; }
  cluster_directory& dir() { return *deps.directory; }
};

using node_actor = caf::stateful_actor<node_state>;

std::string describe(caf::actor_system& sys, const caf::error& err) {
  if (err.category() == manifold_errc_category()) return message_of(err);
  return sys.render(err);
}

bool split_address(const std::string& address, std::string& host, std::uint16_t& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  try {
    auto p = std::stoul(address.substr(colon + 1));
    if (p == 0 || p > 65535) return false;
    port = static_cast<std::uint16_t>(p);
  } catch (const std::exception&) {
    return false;
  }
  host = address.substr(0, colon);
  // `[::1]:7400`: the brackets only separate the IPv6 address from the port.
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return !host.empty();
}

/// Why this node refuses a peer that said it runs `version` in `cluster` as node `id` with the
/// connectors `digest`; empty when it accepts.
std::string mismatch(const node_state& st, std::uint32_t version, const std::string& cluster,
                     const std::string& id, const std::string& digest) {
  if (version != st.deps.protocol_version)
    return "protocol version " + std::to_string(version) + ", expected " +
           std::to_string(st.deps.protocol_version);
  if (cluster != st.cluster().name)
    return "cluster '" + cluster + "', expected '" + st.cluster().name + "'";
  if (id == st.cfg().id)
    return "node id '" + id + "' is this node's own id " + std::string{duplicate_id};
  if (digest != st.cluster().connectors_digest)
    return "connectors digest " + digest + ", expected " + st.cluster().connectors_digest +
           " (the nodes' connectors sections differ)";
  return {};
}

/// Why `peer`, saying it is node `id`, cannot be admitted although the handshake matched: a
/// different node actor that is alive already is `id` (a second process started with the same
/// `--node-id`). Empty when it can. A node that restarted under its id replaces its old entry
/// once that one is down.
std::string id_taken(node_state& st, const std::string& id, const caf::actor& peer) {
  auto j = st.joined.find(id);
  if (j == st.joined.end() || j->second == peer || !st.dir().is_alive(id)) return {};
  auto m = st.dir().member(id);
  auto where = m && !m->info.address.empty() ? " at " + m->info.address : std::string{};
  return "node id '" + id + "' is already a member" + where + " " + duplicate_id;
}

void refuse(node_actor* self, const std::string& peer, const std::string& why) {
  auto& st = self->state;
  st.log.warn("peer refused", {{"node", st.cfg().id}, {"peer", peer}, {"reason", why}});
  st.dir().add_refusal(peer, why, steady::now());
}

/// A peer refused this node. When the reason is our id, this node is the misconfigured one.
void refused_by(node_actor* self, const std::string& address, const std::string& why) {
  auto& st = self->state;
  auto text = "refused us: " + why;
  if (why.find(duplicate_id) != std::string::npos)
    st.log.error("this node's id is taken in the cluster; it will not join until the other "
                 "node with this id leaves",
                 {{"node", st.cfg().id}, {"peer", address}, {"reason", why}});
  else
    st.log.warn("peer refused", {{"node", st.cfg().id}, {"peer", address}, {"reason", text}});
  st.dir().add_refusal(address, text, steady::now());
}

void record_dial(node_actor* self, const std::string& address, const std::string& error,
                 const std::string& member = {}) {
  auto& st = self->state;
  if (auto s = st.seeds.find(address); s != st.seeds.end()) {
    s->second.last_error = error;
    s->second.connected = error.empty() && !member.empty();
    if (!member.empty()) s->second.member = member;
    st.dir().set_seed(s->second);
  }
  auto& last = st.dial_errors[address];
  if (error.empty()) {
    last.clear();
    return;
  }
  // A peer that stays away is retried forever: log when the reason changes, not every time.
  if (last != error)
    st.log.warn("cannot join peer", {{"node", st.cfg().id}, {"address", address},
                                     {"reason", error}});
  last = error;
}

void subscribe_to(node_actor* self, const node_info& peer) {
  if (peer.bus && self->state.deps.bus)
    self->send(peer.bus, subscribe_atom::value, self->state.deps.bus);
}

/// A peer passed the handshake in both directions and told us about itself. `address` is the
/// one we dialled (empty when the peer dialled us).
void admit(node_actor* self, node_info info, const caf::actor& peer, const std::string& address) {
  auto& st = self->state;
  info.node = peer;
  auto id = info.id;
  // Two nodes that heard of each other dial each other at the same time: one join is news.
  auto known = st.joined.count(id) > 0 && st.joined[id] == peer && st.dir().is_alive(id);
  st.accepted[peer.address()] = id;
  st.joined[id] = peer;
  if (st.monitored.insert(peer.address()).second) self->monitor(peer);
  st.learned.erase(id);
  if (!address.empty()) record_dial(self, address, {}, id);
  if (known) return;
  subscribe_to(self, info);
  st.log.info("node joined", {{"node", st.cfg().id}, {"peer", id},
                              {"address", info.address}});
  st.dir().member_joined(std::move(info), steady::now());
}

void dial_failed(node_actor* self, const std::string& address, const std::string& why) {
  self->state.dialing.erase(address);
  record_dial(self, address, why);
}

/// Both handshakes passed on our side: send our info, expect theirs.
void join(node_actor* self, const caf::actor& peer, const std::string& address,
          const std::string& peer_id) {
  auto& st = self->state;
  st.accepted[peer.address()] = peer_id;
  self->request(peer, st.cluster().request_timeout, join_atom::value, st.self_info)
    .then(
      [=](node_info& info) {
        self->state.dialing.erase(address);
        if (info.id != peer_id) {
          refuse(self, peer_id, "joined as '" + info.id + "' after saying hello as '" + peer_id +
                                  "'");
          return;
        }
        // Two nodes with one id that handshook at the same time: the first admitted stays.
        if (auto why = id_taken(self->state, info.id, peer); !why.empty()) {
          refuse(self, info.id, why);
          dial_failed(self, address, "refused node '" + info.id + "': " + why);
          return;
        }
        admit(self, std::move(info), peer, address);
      },
      [=](caf::error& err) {
        auto why = describe(self->system(), err);
        if (code_of(err) == errc::conflict) refused_by(self, address, why);
        dial_failed(self, address, "join refused: " + why);
      });
}

void say_hello(node_actor* self, const caf::actor& peer, const std::string& address) {
  auto& st = self->state;
  self->request(peer, st.cluster().request_timeout, hello_atom::value, st.deps.protocol_version,
                st.cluster().name, st.cfg().id, st.cluster().connectors_digest)
    .then(
      [=](hello_atom, std::uint32_t version, std::string& cluster, std::string& id,
          std::string& digest) {
        auto why = mismatch(self->state, version, cluster, id, digest);
        if (why.empty()) why = id_taken(self->state, id, peer);
        if (!why.empty()) {
          refuse(self, id, why);
          dial_failed(self, address, "refused node '" + id + "': " + why);
          return;
        }
        join(self, peer, address, id);
      },
      [=](caf::error& err) {
        auto why = describe(self->system(), err);
        if (code_of(err) == errc::conflict) refused_by(self, address, why);
        dial_failed(self, address, why);
      });
}

/// Why connecting to `address` failed, in terms of what to check. CAF's own words (a BASP
/// message that is not one, a handshake cut short) point nowhere without knowing BASP; they
/// follow in parentheses.
std::string describe_dial_error(node_actor* self, const std::string& address,
                                const caf::error& err) {
  auto detail = describe(self->system(), err);
  if (err.category() != caf::atom("system")) return detail;
  auto tls = self->state.cluster().tls.enabled();
  switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::disconnect_during_handshake:
      // Without TLS the peer cut the BASP handshake: it does not speak it (or speaks TLS).
      if (tls)
        return "TLS handshake with " + address + " failed (is the certificate signed by the "
               "cluster's CA? is TLS on at both ends?) (" + detail + ")";
      [[fallthrough]];
    case caf::sec::request_timeout:
    case caf::sec::malformed_basp_message:
      return "no Manifold cluster node answers at " + address + " (is it the cluster port of a "
             "node, not its gateway or etcd?" + (tls ? "" : " is TLS off at both ends?") + ") (" +
             detail + ")";
    default: return detail;
  }
}

/// Connects to the node published at `address` without blocking, then handshakes.
void dial(node_actor* self, const std::string& address) {
  auto& st = self->state;
  if (address == st.self_info.address || st.dialing.count(address) > 0) return;
  if (auto s = st.seeds.find(address); s != st.seeds.end()) {
    ++s->second.attempts;
    st.dir().set_seed(s->second);
  }
  std::string host;
  std::uint16_t port = 0;
  if (!split_address(address, host, port)) {
    record_dial(self, address, "not a host:port address");
    return;
  }
  st.dialing.insert(address);
  self->request(st.mm, st.cluster().request_timeout, caf::connect_atom::value, host, port)
    .then(
      [=](const caf::node_id& nid, caf::strong_actor_ptr& ptr, const std::set<std::string>&) {
        if (nid == self->system().node()) {
          // A seed list shared by every node names this node too.
          self->state.dialing.erase(address);
          record_dial(self, address, {}, self->state.cfg().id);
          return;
        }
        auto peer = caf::actor_cast<caf::actor>(std::move(ptr));
        if (!peer) {
          dial_failed(self, address, "no Manifold node is published there");
          return;
        }
        say_hello(self, peer, address);
      },
      [=](caf::error& err) {
        dial_failed(self, address, describe_dial_error(self, address, err));
      });
}

void redial(node_actor* self) {
  auto& st = self->state;
  for (auto& [address, s] : st.seeds)
    if (!(s.connected && st.dir().is_alive(s.member))) dial(self, address);
  for (auto& m : st.dir().members())
    if (!m.self && m.health == member_health::down && !m.info.address.empty())
      dial(self, m.info.address);
  for (auto i = st.learned.begin(); i != st.learned.end();) {
    if (st.dir().is_alive(i->first)) {
      i = st.learned.erase(i);
    } else {
      dial(self, i->second);
      ++i;
    }
  }
}

/// Asks every local supervisor for its state; answers arrive before the next heartbeat.
void poll_local(node_actor* self) {
  auto& st = self->state;
  for (auto& [name, sup] : st.deps.supervisors) {
    auto connector = name;
    self->request(sup, st.cluster().heartbeat_interval, status_atom::value)
      .then(
        [=](connector_status& s) { self->state.local[connector] = {connector, s.state}; },
        [=](caf::error&) {
          // A supervisor too busy to answer keeps its last known state.
        });
  }
}

heartbeat make_heartbeat(node_actor* self) {
  auto& st = self->state;
  heartbeat hb;
  hb.id = st.cfg().id;
  hb.health = "ready";
  for (auto& [name, r] : st.local) {
    if (r.state == connector_state::failed) hb.health = "degraded";
    if (r.state != connector_state::stopped) hb.running.push_back(r);
  }
  for (auto& m : st.dir().members())
    if (m.health == member_health::alive) hb.members[m.info.id] = m.info.address;
  return hb;
}

void detect_failures(node_actor* self, steady::time_point now) {
  auto& st = self->state;
  for (auto& m : st.dir().members()) {
    if (m.self || m.health != member_health::alive) continue;
    auto silent = now - m.last_seen;
    if (silent < st.cluster().failure_timeout) continue;
    auto why = "no heartbeat for " + format_seconds(silent);
    st.log.warn("node down", {{"node", st.cfg().id}, {"peer", m.info.id}, {"reason", why}});
    st.dir().mark_down(m.info.id, why, now);
  }
}

void elect_without_store(node_actor* self) {
  auto& st = self->state;
  if (st.cluster().etcd) return; // The ownership worker sets the leader etcd elected.
  std::string lowest;
  for (auto& m : st.dir().members())
    if (m.health == member_health::alive && (lowest.empty() || m.info.id < lowest))
      lowest = m.info.id;
  if (lowest == st.leader) return;
  st.leader = lowest;
  st.log.info("leader", {{"node", st.cfg().id}, {"leader", lowest}, {"chosen_by", "lowest id"}});
  st.dir().set_leader(lowest, "lowest id");
}

void on_tick(node_actor* self) {
  auto& st = self->state;
  auto now = steady::now();
  ++st.ticks;

  auto hb = make_heartbeat(self);
  st.dir().set_local_running(hb.running, hb.health);
  for (auto& [id, peer] : st.joined)
    if (st.dir().is_alive(id)) self->send(peer, heartbeat_atom::value, hb);
  poll_local(self);

  detect_failures(self, now);
  elect_without_store(self);
  if (st.ticks % redial_every == 1) redial(self);
  self->delayed_send(self, st.cluster().heartbeat_interval, tick_atom::value);
}

caf::behavior cluster_node(node_actor* self, cluster_node_deps deps) {
  auto& st = self->state;
  st.deps = std::move(deps);
  for (auto& address : st.cluster().seeds) st.seeds[address].address = address;
  auto& sys = self->system();
  st.mm = st.cluster().tls.enabled() ? sys.openssl_manager().actor_handle()
                                     : sys.middleman().actor_handle();

  self->set_down_handler([=](caf::down_msg& msg) {
    auto& st = self->state;
    st.monitored.erase(msg.source);
    auto i = st.accepted.find(msg.source);
    if (i == st.accepted.end()) return;
    auto id = i->second;
    st.accepted.erase(i);
    if (auto j = st.joined.find(id); j != st.joined.end() && j->second.address() == msg.source)
      st.joined.erase(j);
    // CAF says remote_link_unreachable when the TCP link broke (process gone, network down).
    auto why = msg.reason == caf::exit_reason::remote_link_unreachable
                 ? std::string{"connection lost"}
               : msg.reason == caf::exit_reason::user_shutdown
                 ? std::string{"the node stopped"}
                 : "connection lost (" + self->system().render(msg.reason) + ")";
    if (st.dir().is_alive(id))
      st.log.warn("node down", {{"node", st.cfg().id}, {"peer", id}, {"reason", why}});
    st.dir().mark_down(id, why, steady::now());
  });

  return {
    // Sent once by start_cluster_node after publishing: the bound port completes our address.
    [=](start_atom, std::uint16_t port) {
      auto& st = self->state;
      auto& info = st.self_info;
      info.id = st.cfg().id;
      info.address = advertised_address(st.cfg(), port);
      info.api_url = st.deps.api_url;
      info.labels = st.cfg().labels;
      info.node = caf::actor_cast<caf::actor>(self);
      info.bus = st.deps.bus;
      info.gateway = st.deps.gateway;
      info.supervisors = st.deps.supervisors;
      st.dir().set_self(info);
      for (auto& [address, s] : st.seeds) st.dir().set_seed(s);
      st.log.info("cluster node listening",
                  {{"node", info.id}, {"address", info.address},
                   {"tls", st.cluster().tls.enabled() ? "on" : "off"}});
      on_tick(self);
      for (auto& [address, s] : st.seeds) dial(self, address);
    },
    [=](tick_atom) { on_tick(self); },
    [=](hello_atom, std::uint32_t version, const std::string& cluster, const std::string& id,
        const std::string& digest)
      -> caf::result<hello_atom, std::uint32_t, std::string, std::string, std::string> {
      auto& st = self->state;
      auto peer = caf::actor_cast<caf::actor>(self->current_sender());
      if (!peer) return make_error(errc::bad_request, "hello without a sender");
      auto why = mismatch(st, version, cluster, id, digest);
      if (why.empty()) why = id_taken(st, id, peer);
      if (!why.empty()) {
        refuse(self, id, why);
        return make_error(errc::conflict,
                          "node '" + st.cfg().id + "' refuses node '" + id + "': " + why);
      }
      st.accepted[peer.address()] = id;
      return {hello_atom::value, st.deps.protocol_version, st.cluster().name, st.cfg().id,
              st.cluster().connectors_digest};
    },
    [=](join_atom, node_info& info) -> caf::result<node_info> {
      auto& st = self->state;
      auto peer = caf::actor_cast<caf::actor>(self->current_sender());
      auto i = peer ? st.accepted.find(peer.address()) : st.accepted.end();
      if (i == st.accepted.end() || i->second != info.id)
        return make_error(errc::conflict, "node '" + info.id + "' joins without a handshake");
      if (auto why = id_taken(st, info.id, peer); !why.empty()) {
        refuse(self, info.id, why);
        return make_error(errc::conflict,
                          "node '" + st.cfg().id + "' refuses node '" + info.id + "': " + why);
      }
      admit(self, std::move(info), peer, {});
      return st.self_info;
    },
    [=](heartbeat_atom, heartbeat& hb) {
      auto& st = self->state;
      auto peer = caf::actor_cast<caf::actor>(self->current_sender());
      auto j = st.joined.find(hb.id);
      if (!peer || j == st.joined.end() || j->second != peer) return; // Not (or no longer) ours.
      if (!st.dir().is_alive(hb.id)) {
        // Silent for a while but the link held (e.g. a paused process): back without a new
        // handshake, since it is the same node actor.
        st.log.info("node back", {{"node", st.cfg().id}, {"peer", hb.id}});
        if (auto m = st.dir().member(hb.id)) subscribe_to(self, m->info);
      }
      st.dir().heartbeat_received(hb, steady::now());
      for (auto& [id, address] : hb.members) {
        if (id == st.cfg().id || st.dir().is_alive(id) || address.empty()) continue;
        if (st.learned.emplace(id, address).second) dial(self, address);
      }
    },
  };
}

} // namespace

void configure_cluster(caf::actor_system_config& sys_cfg, const node_config& cfg) {
  sys_cfg.load<caf::io::middleman>();
  auto& tls = cfg.cluster.tls;
  if (tls.enabled()) {
    // CAF's openssl manager then requires and verifies a certificate on both ends of every
    // connection (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT) against `cafile`.
    sys_cfg.load<caf::openssl::manager>();
    sys_cfg.openssl_certificate = tls.certificate;
    sys_cfg.openssl_key = tls.key;
    sys_cfg.openssl_cafile = tls.ca;
  }
  register_cluster_types(sys_cfg);
}

caf::expected<std::pair<caf::actor, std::uint16_t>>
start_cluster_node(caf::actor_system& sys, cluster_node_deps deps) {
  if (!deps.config || !deps.directory)
    return make_error(errc::internal, "start_cluster_node needs a config and a directory");
  auto cfg = deps.config;
  auto& tls = cfg->cluster.tls;
  if (tls.enabled()) {
    if (!openssl_error_queue_cleared)
      return make_error(errc::internal, "the OpenSSL error queue shims are missing");
    // CAF reads these files only at the first connection, and then throws on its I/O thread,
    // which ends the process: check them the way it will load them, before publishing.
    auto problems = check_tls_files(tls);
    if (!problems.empty()) {
      std::string text;
      for (auto& p : problems) text += (text.empty() ? "" : "; ") + p;
      return make_error(errc::bad_request, text);
    }
    if (!sys.has_openssl_manager())
      return make_error(errc::internal,
                        "cluster.tls is set but the actor system has no openssl manager "
                        "(configure_cluster was not called)");
  }

  auto node = sys.spawn(cluster_node, std::move(deps));
  auto& host = cfg->cluster.host;
  // SO_REUSEADDR: a node restarted right after it died binds its port again although the old
  // connections still linger in TIME_WAIT; a port another process listens on stays refused.
  constexpr bool reuse_address = true;
  auto bound = tls.enabled()
                 ? caf::openssl::publish(node, cfg->cluster.port, host.c_str(), reuse_address)
                 : caf::io::publish(node, cfg->cluster.port, host.c_str(), reuse_address);
  if (!bound) {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    return make_error(errc::unavailable, "cannot listen for cluster peers on " + host + ":" +
                                           std::to_string(cfg->cluster.port) +
                                           " (is another node or program listening there?): " +
                                           sys.render(bound.error()));
  }
  caf::anon_send(node, start_atom::value, *bound);
  return std::make_pair(node, *bound);
}

std::string advertised_address(const node_config& cfg, std::uint16_t bound_port) {
  auto& cl = cfg.cluster;
  if (!cl.advertise.empty()) return cl.advertise;
  auto host = cl.host.find(':') != std::string::npos ? "[" + cl.host + "]" : cl.host;
  return host + ":" + std::to_string(bound_port);
}

} // namespace manifold::supervision
