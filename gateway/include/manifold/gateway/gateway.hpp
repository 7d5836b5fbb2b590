#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "manifold/actors/model.hpp"

namespace manifold {
class node_metrics;
class cluster_directory;
}

namespace manifold::gateway {

/// What the gateway actor needs to answer the unified API.
struct gateway_deps {
  std::shared_ptr<const node_config> config;
  std::map<std::string, caf::actor> connectors; ///< Connector name -> its supervisor.
  caf::actor bus;
  std::shared_ptr<node_metrics> metrics;
  /// In a cluster: where every connector runs. Null on a single node.
  std::shared_ptr<cluster_directory> directory;
  /// In a cluster with etcd: the ownership worker, which takes drain and move requests and
  /// answers `(cluster_atom) -> std::string` with its view as JSON. Null otherwise.
  caf::actor cluster_admin;
};

/// The one entry to the unified API: routes each request to the data bus or a connector, on
/// this node or, in a cluster, on the node that runs it. `(cluster_atom, caf::actor)` sets the
/// cluster admin (see `gateway_deps::cluster_admin`) after the fact.
caf::actor spawn_gateway(caf::actor_system& sys, gateway_deps deps);

/// The HTTP/1.1 + WebSocket front of the gateway actor, on Boost.Beast. Runs on its own I/O
/// thread; every request is handed to the gateway actor without blocking that thread.
class http_server {
public:
  http_server(caf::actor_system& sys, caf::actor gateway, caf::actor bus, gateway_config cfg,
              std::shared_ptr<node_metrics> metrics);
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// How long a client may take to send one complete request (header and body) before the
  /// connection is cut; also how long an idle keep-alive connection stays open.
  static constexpr std::chrono::milliseconds default_read_timeout{10000};

  /// Overrides `default_read_timeout`; call before start().
  void set_read_timeout(std::chrono::milliseconds timeout);

  /// Binds the listen address and starts serving. Returns an error message on failure.
  std::optional<std::string> start();

  /// The bound port (useful when the config asked for port 0).
  std::uint16_t port() const;

  /// Closes the listener and all sessions and joins the I/O thread. Idempotent.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace manifold::gateway
