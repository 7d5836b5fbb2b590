#include "manifold/connectors/transport.hpp"

#include "manifold/connectors/modbus_transport.hpp"
#include "manifold/connectors/mqtt_transport.hpp"

namespace manifold::connectors {

namespace {

class real_transports : public transport_factory {
public:
  std::unique_ptr<mqtt_client> make_mqtt(const mqtt_client_options& opts) override {
    return make_mosquitto_client(opts);
  }
  std::unique_ptr<modbus_client> make_modbus(const modbus_client_options& opts) override {
    return make_libmodbus_client(opts);
  }
};

} // namespace

std::shared_ptr<transport_factory> make_real_transports() {
  return std::make_shared<real_transports>();
}

} // namespace manifold::connectors
