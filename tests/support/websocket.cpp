#include "support/websocket.hpp"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

namespace manifold::test {

namespace beast = boost::beast;
namespace net = boost::asio;

struct ws_client::impl {
  net::io_context ioc;
  beast::websocket::stream<net::ip::tcp::socket> ws{ioc};
  beast::flat_buffer buffer;
};

ws_client::ws_client(std::uint16_t port, const std::string& target)
  : impl_(std::make_unique<impl>()) {
  beast::get_lowest_layer(impl_->ws).connect({net::ip::make_address("127.0.0.1"), port});
  impl_->ws.handshake("127.0.0.1", target);
}

ws_client::~ws_client() = default;

std::optional<std::string> ws_client::next_text(std::chrono::milliseconds timeout) {
  auto& d = *impl_;
  std::optional<std::string> out;
  bool done = false;
  d.buffer.consume(d.buffer.size());
  d.ws.async_read(d.buffer, [&](beast::error_code ec, std::size_t) {
    done = true;
    if (!ec) out = beast::buffers_to_string(d.buffer.data());
  });
  d.ioc.restart();
  d.ioc.run_for(timeout);
  if (!done) {
    // Cancel the read by closing the socket, and let the handler run before `out` goes away.
    beast::error_code ec;
    beast::get_lowest_layer(d.ws).close(ec);
    d.ioc.restart();
    d.ioc.run_for(std::chrono::seconds{1});
  }
  return out;
}

void ws_client::close() {
  beast::error_code ec;
  impl_->ws.close(beast::websocket::close_code::normal, ec);
}

} // namespace manifold::test
