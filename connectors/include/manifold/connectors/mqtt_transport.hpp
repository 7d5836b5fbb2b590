#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

/// The MQTT client a connector talks through. The real one wraps libmosquitto; the testkit
/// provides a simulated broker.
namespace manifold::connectors {

struct mqtt_client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 1883;
  std::string client_id;
  std::string username;
  std::string password; ///< Never logged.
  std::chrono::seconds keepalive{30};
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{10000};
  /// Messages received but not yet handled by the connector; beyond this, new messages are
  /// dropped (and counted) so a flooding device cannot grow the node's memory without bound.
  std::size_t max_inflight = 4096;
};

/// Callbacks run on the client's own thread (or the testkit's); they must only hand work on,
/// e.g. by `caf::anon_send` to the connector actor.
struct mqtt_handlers {
  std::function<void()> on_connect;
  std::function<void(const std::string& reason)> on_disconnect;
  std::function<void(const std::string& topic, const std::string& payload)> on_message;
  /// The broker acknowledged the QoS 1 publish with this message id.
  std::function<void(int mid)> on_published;
};

class mqtt_client {
public:
  virtual ~mqtt_client() = default;

  /// Connects in the background and keeps reconnecting with backoff until `stop`.
  virtual void start(mqtt_handlers handlers) = 0;

  /// Subscribes (again after every reconnect is the caller's job, from `on_connect`).
  /// Returns false with `error` set when the client cannot queue the request.
  virtual bool subscribe(const std::string& topic, int qos, std::string& error) = 0;

  /// Queues a publish; returns its message id, or -1 with `error` set.
  virtual int publish(const std::string& topic, const std::string& payload, int qos, bool retain,
                      std::string& error) = 0;

  /// Disconnects and joins the client's thread. Idempotent.
  virtual void stop() = 0;
};

std::unique_ptr<mqtt_client> make_mosquitto_client(const mqtt_client_options& opts);

} // namespace manifold::connectors
