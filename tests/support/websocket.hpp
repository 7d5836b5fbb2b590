#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace manifold::test {

/// A WebSocket client for the gateway's `/v1/stream` on 127.0.0.1 (Boost.Beast), independent of
/// the gateway code. Every read is bounded by a deadline.
class ws_client {
public:
  /// Connects and completes the handshake; throws on failure.
  ws_client(std::uint16_t port, const std::string& target);
  ~ws_client();

  /// The next text message, or nullopt if none arrived within `timeout` (the connection is
  /// closed then: a later call returns nullopt at once).
  std::optional<std::string> next_text(std::chrono::milliseconds timeout);

  /// The next message parsed as JSON (a discarded value when it is not JSON).
  std::optional<nlohmann::json> next(std::chrono::milliseconds timeout = std::chrono::seconds{5}) {
    auto text = next_text(timeout);
    if (!text) return std::nullopt;
    return nlohmann::json::parse(*text, nullptr, false);
  }

  /// A normal close handshake.
  void close();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace manifold::test
