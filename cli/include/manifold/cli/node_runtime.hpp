#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/sdk.hpp"

namespace manifold::cli {

/// The embedded default config (examples/quickstart.yaml, compiled in).
const char* embedded_config();

/// Loads a node config from `path`, or the embedded default when `path` is empty.
config::load_result load_node_config(const std::string& path,
                                     const connectors::connector_registry& registry,
                                     const config::load_options& options = {});

/// One running node: actor system, data bus, a supervised group per connector, the gateway
/// actor and its HTTP server.
class node_runtime {
public:
  node_runtime(node_config cfg, connectors::connector_registry registry,
               std::shared_ptr<connectors::transport_factory> transports = nullptr);
  ~node_runtime();

  node_runtime(const node_runtime&) = delete;
  node_runtime& operator=(const node_runtime&) = delete;

  /// Starts everything; an error message when the gateway cannot listen.
  std::optional<std::string> start();

  /// The gateway's bound port.
  std::uint16_t port() const;

  /// Where other nodes connect (the bound port); 0 outside a cluster.
  std::uint16_t cluster_port() const;

  /// The base URL of the gateway, e.g. `http://127.0.0.1:8080`.
  std::string url() const;

  const node_config& config() const;

  /// Stops the HTTP server, then every connector group, then the actor system. Idempotent.
  void stop();

private:
  std::optional<std::string> start_cluster();

  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace manifold::cli
