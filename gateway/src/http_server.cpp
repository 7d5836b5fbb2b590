// Placeholder until the gateway lands.
#include "manifold/gateway/gateway.hpp"

namespace manifold::gateway {
struct http_server::impl {};
http_server::http_server(caf::actor_system&, caf::actor, caf::actor, gateway_config,
                         std::shared_ptr<node_metrics>) {}
http_server::~http_server() = default;
std::optional<std::string> http_server::start() { return std::string{"not implemented"}; }
std::uint16_t http_server::port() const { return 0; }
void http_server::stop() {}
} // namespace manifold::gateway
