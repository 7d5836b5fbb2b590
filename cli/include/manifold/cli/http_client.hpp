#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace manifold::cli {

/// A blocking HTTP/1.1 client for the CLI's commands against a node's gateway.
struct http_result {
  int status = 0;     ///< 0 when there was no HTTP answer at all.
  std::string body;
  std::string error;  ///< Transport-level problem (cannot connect, timeout).
};

struct parsed_url {
  std::string host;
  std::string port;
  std::string base_path;
};

/// Accepts `http://host:port[/path]` (https is not supported). nullopt with `error` set otherwise.
std::optional<parsed_url> parse_url(const std::string& url, std::string& error);

http_result http_call(const parsed_url& url, const std::string& method, const std::string& target,
                      const std::string& body = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds{15});

} // namespace manifold::cli
