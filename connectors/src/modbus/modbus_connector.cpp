// Placeholder until the modbus connector lands.
#include "manifold/connectors/modbus_transport.hpp"
#include "manifold/connectors/sdk.hpp"

namespace manifold::connectors {
std::unique_ptr<connector_type> make_modbus_connector() { return nullptr; }
std::unique_ptr<modbus_client> make_libmodbus_client(const modbus_client_options&) {
  return nullptr;
}
} // namespace manifold::connectors
