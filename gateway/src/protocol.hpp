#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/allowed_unsafe_message_type.hpp>

/// What the HTTP layer and the gateway actor exchange. Private to the gateway library.
namespace manifold::gateway {

/// One HTTP request as the gateway actor sees it: already framed and size-checked by the server.
struct http_request_data {
  std::string method; ///< Upper case, e.g. `GET`.
  std::string target; ///< Raw request target, path and query, still percent-encoded.
  std::string body;
  std::string content_type;
  std::string accept;
};

/// The answer to one request. The gateway actor fills it; the server writes it.
struct http_reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers; ///< Extra headers, e.g. `Allow`.
};

/// Called exactly once with the reply, from any thread; it posts the reply to the session's I/O
/// thread and never blocks.
using http_callback = std::function<void(http_reply)>;

} // namespace manifold::gateway

// Both stay inside one process: the callback captures a session of this node's HTTP server.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::gateway::http_request_data)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(manifold::gateway::http_callback)
