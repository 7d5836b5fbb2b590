#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/modbus_transport.hpp"
#include "modbus/modbus_codec.hpp"

/// The `modbus` connector's config keys and the settings they produce (kept in the `settings`
/// member of the config structs).
namespace manifold::connectors::modbus {

struct connector_settings {
  std::string host = "127.0.0.1";
  std::uint16_t port = 502;
  std::chrono::milliseconds timeout{1000};
  /// Unused addresses a read may span to merge two points into one request.
  int max_gap = 8;
};

struct device_settings {
  int unit_id = 1;
};

struct point_settings {
  modbus_table table = modbus_table::holding_register;
  int address = 0;
  value_format format;
};

struct action_settings {
  std::string point;     ///< The writable point the action writes.
  std::string parameter; ///< The action's only parameter, whose value is written.
};

const char* to_string(modbus_table t);
bool writable_table(modbus_table t);
bool bit_table(modbus_table t);

class modbus_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader& r, connector_config& c) override;
  void parse_device(config::map_reader& r, const connector_config& c, device_config& d) override;
  void parse_point(config::map_reader& r, const connector_config& c, const device_config& d,
                   point_config& p) override;
  void parse_action(config::map_reader& r, const connector_config& c, const device_config& d,
                    action_config& a) override;
  void check(const connector_config& c, config::diagnostics& diag) override;
};

} // namespace manifold::connectors::modbus
