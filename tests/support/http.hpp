#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>

/// A small blocking HTTP/1.1 client for tests (Boost.Beast), independent of the gateway code.
namespace manifold::test {

struct http_response {
  int status = 0; ///< 0 when the request failed at the transport level.
  std::string body;
  std::map<std::string, std::string> headers; ///< Lower-case names.
  std::string error;
};

http_response http_request(std::uint16_t port, const std::string& method,
                           const std::string& target, const std::string& body = {},
                           const std::map<std::string, std::string>& headers = {},
                           std::chrono::milliseconds timeout = std::chrono::seconds{10});

inline http_response http_get(std::uint16_t port, const std::string& target,
                              const std::map<std::string, std::string>& headers = {}) {
  return http_request(port, "GET", target, {}, headers);
}

inline http_response http_post(std::uint16_t port, const std::string& target,
                               const std::string& body) {
  return http_request(port, "POST", target, body, {{"Content-Type", "application/json"}});
}

/// Sends raw bytes and returns whatever the server answers before closing (or timeout).
std::string raw_exchange(std::uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout = std::chrono::seconds{5});

} // namespace manifold::test
