#pragma once

#include <memory>

/// Device I/O behind interfaces, so the testkit can put simulated devices where real ones are.
namespace manifold::connectors {

class mqtt_client;   // see mqtt_transport.hpp
class modbus_client; // see modbus_transport.hpp
struct mqtt_client_options;
struct modbus_client_options;

/// Makes the clients connectors talk to devices through. The node uses the real one; the
/// testkit substitutes simulated devices.
class transport_factory {
public:
  virtual ~transport_factory() = default;
  virtual std::unique_ptr<mqtt_client> make_mqtt(const mqtt_client_options& opts) = 0;
  virtual std::unique_ptr<modbus_client> make_modbus(const modbus_client_options& opts) = 0;
};

/// libmosquitto and libmodbus.
std::shared_ptr<transport_factory> make_real_transports();

} // namespace manifold::connectors
