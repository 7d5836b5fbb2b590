#include "manifold/cli/node_runtime.hpp"

#include <functional>
#include <map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/transport.hpp"
#include "manifold/gateway/gateway.hpp"
#include "manifold/supervision/cluster_node.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "manifold/supervision/etcd_lease_store.hpp"
#include "manifold/supervision/node_supervisor.hpp"
#include "manifold/supervision/ownership_worker.hpp"

namespace manifold::cli {

extern const char* const embedded_config_text;

const char* embedded_config() {
  return embedded_config_text;
}

config::load_result load_node_config(const std::string& path,
                                     const connectors::connector_registry& registry,
                                     const config::load_options& options) {
  if (path.empty())
    return config::load_string(embedded_config_text, "<embedded quickstart.yaml>",
                               registry.schemas(), registry.names(), options);
  return config::load_file(path, registry.schemas(), registry.names(), options);
}

namespace {

void configure_system(caf::actor_system_config& sys_cfg, const node_config& cfg) {
  if (cfg.worker_threads > 0)
    sys_cfg.set("scheduler.max-threads", static_cast<std::size_t>(cfg.worker_threads));
  if (cfg.cluster.enabled) supervision::configure_cluster(sys_cfg, cfg);
}

/// A per-connector seed: stable for a name, different between connectors.
std::uint64_t connector_seed(const std::string& node_id, const std::string& name) {
  return std::hash<std::string>{}(node_id + "/" + name);
}

} // namespace

struct node_runtime::impl {
  std::shared_ptr<const node_config> cfg;
  connectors::connector_registry registry;
  std::shared_ptr<connectors::transport_factory> transports;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor bus;
  caf::actor root;
  caf::actor gateway;
  std::map<std::string, caf::actor> supervisors;
  std::unique_ptr<gateway::http_server> http;
  std::shared_ptr<cluster_directory> directory;
  std::shared_ptr<connectors::ownership_fence> fence;
  caf::actor cluster_node;
  std::uint16_t cluster_port = 0;
  caf::actor ownership;
  log::logger log{"node"};
  bool stopped = false;
};

node_runtime::node_runtime(node_config cfg, connectors::connector_registry registry,
                           std::shared_ptr<connectors::transport_factory> transports)
  : impl_(std::make_unique<impl>()) {
  configure_system(impl_->sys_cfg, cfg);
  impl_->cfg = std::make_shared<const node_config>(std::move(cfg));
  impl_->registry = std::move(registry);
  impl_->transports = transports ? std::move(transports) : connectors::make_real_transports();
}

node_runtime::~node_runtime() {
  stop();
}

std::optional<std::string> node_runtime::start() {
  auto& d = *impl_;
  log::level lvl;
  if (log::parse_level(d.cfg->log_level, lvl)) log::set_level(lvl);
  d.sys = std::make_unique<caf::actor_system>(d.sys_cfg);
  d.bus = spawn_data_bus(*d.sys, d.metrics);
  d.root = supervision::spawn_node_supervisor(*d.sys, d.cfg->supervision);
  auto& cl = d.cfg->cluster;
  if (cl.enabled) {
    d.directory = std::make_shared<cluster_directory>(d.cfg);
    d.fence = std::make_shared<connectors::ownership_fence>();
  }
  supervision::group_list groups;
  for (auto& c : d.cfg->connectors) {
    auto* type = d.registry.find(c.type);
    // Each connector gets a copy of its own section only: nothing of the others.
    auto ctx = connectors::make_connector_context(c, d.bus, d.metrics, d.transports,
                                                  connector_seed(d.cfg->id, c.name));
    // A non-pinned connector of a cluster drives its devices only while this node's lease is
    // renewed. Every group starts unplaced; see below.
    if (cl.enabled && c.placement.node.empty()) ctx.fence = d.fence;
    auto group = supervision::spawn_connector_supervisor(*d.sys, *type, ctx, d.root, false);
    d.supervisors.emplace(c.name, group);
    groups.emplace_back(c.name, group);
  }
  caf::anon_send(d.root, groups_atom::value, std::move(groups));
  gateway::gateway_deps deps{d.cfg, d.supervisors, d.bus, d.metrics, d.directory, {}};
  d.gateway = gateway::spawn_gateway(*d.sys, deps);
  d.http = std::make_unique<gateway::http_server>(*d.sys, d.gateway, d.bus, d.cfg->gateway,
                                                  d.metrics);
  if (auto err = d.http->start()) return "gateway: " + *err;
  if (cl.enabled)
    if (auto err = start_cluster()) return err;
  // Only now, with the gateway (and the cluster port) bound, do connectors start: a node that
  // cannot start never touched a device. In a cluster a pinned connector starts on its node
  // whatever the rest of the cluster does; any other waits until the ownership worker took its
  // owner key.
  for (auto& c : d.cfg->connectors) {
    auto& group = d.supervisors.at(c.name);
    if (!cl.enabled || c.placement.node == d.cfg->id)
      caf::anon_send(group, place_atom::value, true, std::string{});
    else if (c.placement.node.empty())
      caf::anon_send(group, place_atom::value, false,
                     "waiting for an owner (placement: " + c.placement.to_string() + ")");
    else
      caf::anon_send(group, place_atom::value, false,
                     "pinned to node '" + c.placement.node + "'");
  }
  d.log.info("node started", {{"node", d.cfg->id},
                              {"connectors", std::to_string(d.cfg->connectors.size())},
                              {"url", url()}});
  return std::nullopt;
}

std::optional<std::string> node_runtime::start_cluster() {
  auto& d = *impl_;
  auto& cl = d.cfg->cluster;
  supervision::cluster_node_deps nd;
  nd.config = d.cfg;
  nd.bus = d.bus;
  nd.gateway = d.gateway;
  nd.supervisors = d.supervisors;
  nd.directory = d.directory;
  nd.api_url = url();
  auto started = supervision::start_cluster_node(*d.sys, std::move(nd));
  if (!started) return "cluster: " + message_of(started.error());
  d.cluster_node = started->first;
  d.cluster_port = started->second;
  if (!cl.etcd) return std::nullopt;
  auto store = supervision::etcd_lease_store::make(*cl.etcd);
  if (!store) return "cluster.etcd: " + message_of(store.error());
  supervision::ownership_worker_deps od;
  od.config = d.cfg;
  od.supervisors = d.supervisors;
  od.directory = d.directory;
  od.fence = d.fence;
  od.store = std::shared_ptr<supervision::lease_store>(std::move(*store));
  od.address = supervision::advertised_address(*d.cfg, d.cluster_port);
  od.api_url = url();
  od.metrics = d.metrics;
  d.ownership = supervision::spawn_ownership_worker(*d.sys, std::move(od));
  caf::anon_send(d.gateway, cluster_atom::value, d.ownership);
  return std::nullopt;
}

std::uint16_t node_runtime::cluster_port() const {
  return impl_->cluster_port;
}

std::uint16_t node_runtime::port() const {
  return impl_->http ? impl_->http->port() : 0;
}

std::string node_runtime::url() const {
  auto host = impl_->cfg->gateway.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port());
}

const node_config& node_runtime::config() const {
  return *impl_->cfg;
}

void node_runtime::stop() {
  auto& d = *impl_;
  if (d.stopped || !d.sys) return;
  d.stopped = true;
  if (d.http) d.http->stop();
  if (d.ownership) {
    // Hands the movable connectors over at once instead of after the lease ttl: stop them,
    // then revoke the lease.
    caf::scoped_actor self{*d.sys};
    self->request(d.ownership, std::chrono::seconds{10}, stop_atom::value)
      .receive([](bool) {}, [&](caf::error& err) {
        d.log.warn("ownership hand-over at stop failed", {{"error", message_of(err)}});
      });
    caf::anon_send_exit(d.ownership, caf::exit_reason::user_shutdown);
  }
  if (d.cluster_node) caf::anon_send_exit(d.cluster_node, caf::exit_reason::user_shutdown);
  // Ending the root ends every connector group linked to it.
  caf::anon_send_exit(d.root, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(d.gateway, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(d.bus, caf::exit_reason::user_shutdown);
  d.supervisors.clear();
  d.ownership = nullptr;
  d.cluster_node = nullptr;
  d.root = nullptr;
  d.gateway = nullptr;
  d.bus = nullptr;
  d.http.reset();
  d.sys.reset(); // Waits for every actor to finish.
  d.log.info("node stopped", {{"node", d.cfg->id}});
}

} // namespace manifold::cli
