// Placeholder until the mqtt connector lands.
#include "manifold/connectors/mqtt_transport.hpp"
#include "manifold/connectors/sdk.hpp"

namespace manifold::connectors {
std::unique_ptr<connector_type> make_mqtt_connector() { return nullptr; }
std::unique_ptr<mqtt_client> make_mosquitto_client(const mqtt_client_options&) { return nullptr; }
} // namespace manifold::connectors
