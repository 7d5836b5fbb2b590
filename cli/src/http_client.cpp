#include "manifold/cli/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace manifold::cli {

namespace beast = boost::beast;
namespace http = beast::http;
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
  net::io_context ioc;
  tcp::resolver resolver{ioc};
  beast::tcp_stream stream{ioc};
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    out.error = "cannot resolve " + url.host + ": " + ec.message();
    return out;
  }
  stream.expires_after(timeout);
  stream.connect(endpoints, ec);
  if (ec) {
    out.error = "cannot connect to " + url.host + ":" + url.port + ": " + ec.message();
    return out;
  }
  http::request<http::string_body> req{http::string_to_verb(method), url.base_path + target, 11};
  req.set(http::field::host, url.host);
  req.set(http::field::user_agent, "manifold-cli");
  req.set(http::field::accept, "application/json");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  if (!ec) {
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(stream, buffer, parser, ec);
    if (!ec) {
      out.status = static_cast<int>(parser.get().result_int());
      out.body = parser.get().body();
    }
  }
  if (ec) out.error = "request to " + url.host + ":" + url.port + " failed: " + ec.message();
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

} // namespace manifold::cli
