#pragma once

#include "manifold/actors/config.hpp"

namespace manifold::connectors::mqtt {

/// The `mqtt` connector's config keys (see docs/connectors/mqtt.md). It stores
/// `mqtt_client_options` in the connector's settings, `point_settings` in each point's and
/// `action_settings` in each action's.
class mqtt_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader& r, connector_config& c) override;
  void parse_device(config::map_reader& r, const connector_config& c, device_config& d) override;
  void parse_point(config::map_reader& r, const connector_config& c, const device_config& d,
                   point_config& p) override;
  void parse_action(config::map_reader& r, const connector_config& c, const device_config& d,
                    action_config& a) override;
  void check(const connector_config& c, config::diagnostics& diag) override;
};

} // namespace manifold::connectors::mqtt
