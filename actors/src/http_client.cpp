#include "manifold/actors/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <string>

namespace manifold::http {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

std::optional<parsed_url> parse_url(const std::string& url, std::string& error) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0) {
    error = "the URL must start with http:// (got '" + url + "')";
    return std::nullopt;
  }
  auto rest = url.substr(scheme.size());
  auto slash = rest.find('/');
  auto authority = rest.substr(0, slash);
  parsed_url out;
  out.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!out.base_path.empty() && out.base_path.back() == '/') out.base_path.pop_back();
  std::string host = authority;
  std::string port = "80";
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) {
      error = "unterminated IPv6 address in '" + url + "'";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else if (auto colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos) {
    error = "expected http://HOST:PORT, got '" + url + "'";
    return std::nullopt;
  }
  out.host = host;
  out.port = port;
  return out;
}

http_result http_call(const parsed_url& url, const std::string& method, const std::string& target,
                      const std::string& body, std::chrono::milliseconds timeout) {
  http_result out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  const auto where = url.host + ":" + url.port;
  net::io_context ioc;
  tcp::resolver resolver{ioc};
  beast::error_code ec;
  // The system resolver blocks and cannot be cancelled; numeric hosts (what clusters and the CLI
  // are normally given) resolve without a lookup.
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    out.error = "cannot resolve " + url.host + ": " + ec.message();
    return out;
  }

  beast::http::request<beast::http::string_body> req{beast::http::string_to_verb(method),
                                                     url.base_path + target, 11};
  req.set(beast::http::field::host, where);
  req.set(beast::http::field::user_agent, "manifold");
  req.set(beast::http::field::accept, "application/json");
  if (!body.empty()) req.set(beast::http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();

  // Blocking Beast calls ignore the stream's timer, so the exchange runs as asynchronous steps
  // on a private io_context; the one deadline then covers connect, send and read together.
  beast::tcp_stream stream{ioc};
  beast::flat_buffer buffer;
  beast::http::response_parser<beast::http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  auto fail = [&](const std::string& what, beast::error_code err) {
    if (err == beast::error::timeout) {
      out.timed_out = true;
      out.error = "no answer from " + where + " within " + std::to_string(timeout.count()) + " ms";
    } else {
      out.error = what + ": " + err.message();
    }
  };
  stream.expires_at(deadline);
  stream.async_connect(endpoints, [&](beast::error_code err, const tcp::endpoint&) {
    if (err) return fail("cannot connect to " + where, err);
    beast::http::async_write(stream, req, [&](beast::error_code err, std::size_t) {
      if (err) return fail("request to " + where + " failed", err);
      beast::http::async_read(stream, buffer, parser, [&](beast::error_code err, std::size_t) {
        if (err) return fail("bad answer from " + where, err);
        out.status = static_cast<int>(parser.get().result_int());
        out.body = std::move(parser.get().body());
      });
    });
  });
  ioc.run();
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

} // namespace manifold::http
