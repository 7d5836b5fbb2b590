#include "support/http.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>

namespace manifold::test {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

http_response http_request(std::uint16_t port, const std::string& method,
                           const std::string& target, const std::string& body,
                           const std::map<std::string, std::string>& headers,
                           std::chrono::milliseconds timeout) {
  http_response out;
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::error_code ec;
  stream.expires_after(timeout);
  stream.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) {
    out.error = "connect: " + ec.message();
    return out;
  }
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "127.0.0.1");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req, ec);
  if (ec) {
    out.error = "write: " + ec.message();
    return out;
  }
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  http::read(stream, buffer, parser, ec);
  if (ec) {
    out.error = "read: " + ec.message();
    return out;
  }
  auto& res = parser.get();
  out.status = static_cast<int>(res.result_int());
  out.body = res.body();
  for (auto& f : res) {
    std::string name{f.name_string()};
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    out.headers[name] = std::string{f.value()};
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  return out;
}

std::string raw_exchange(std::uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout) {
  net::io_context ioc;
  beast::tcp_stream stream{ioc};
  beast::error_code ec;
  stream.expires_after(timeout);
  stream.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return {};
  net::write(stream.socket(), net::buffer(bytes), ec);
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = stream.read_some(net::buffer(buf), ec);
    out.append(buf, n);
    if (ec) break;
  }
  return out;
}

} // namespace manifold::test
