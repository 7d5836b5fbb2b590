#pragma once

#include <chrono>
#include <optional>
#include <string>

/// A blocking HTTP/1.1 client (plain http only) for the CLI's calls to a node's gateway and the
/// cluster's calls to etcd's JSON gateway. One connection per call; nothing is shared between
/// calls, so calls from several threads at once are safe.
namespace manifold::http {

/// What one call produced: an HTTP answer (`status` != 0) or a transport problem (`error`).
struct http_result {
  int status = 0; ///< 0 when there was no HTTP answer at all.
  std::string body;
  std::string error;      ///< Transport-level problem (cannot connect, timeout, broken answer).
  bool timed_out = false; ///< The deadline passed; the server may still have acted on the call.
};

struct parsed_url {
  std::string host;
  std::string port;
  std::string base_path; ///< Without a trailing '/'; prefixed to every call's target.
};

/// Accepts `http://host:port[/path]` (https is not supported). nullopt with `error` set otherwise.
std::optional<parsed_url> parse_url(const std::string& url, std::string& error);

/// Sends `method` `base_path + target` with `body` (as application/json when not empty) and
/// reads the whole answer. `timeout` bounds the entire call: resolve, connect, send and read.
http_result http_call(const parsed_url& url, const std::string& method, const std::string& target,
                      const std::string& body = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds{15});

} // namespace manifold::http
