// Readings per second from a connector through the data bus into the last-value cache and out to
// one WebSocket subscriber, next to the plain CAF actor-to-actor message rate measured in the
// same run. The ratio is the figure that survives a noisy machine.
//
// Usage: bus_throughput [READINGS] [ROUNDS]

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/gateway/gateway.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t batch = 1000;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// -- reference: plain CAF ---------------------------------------------------------------------------

/// One sender, one receiver, small messages, a request as barrier every `batch` messages so the
/// receiver's mailbox stays bounded, the same flow control the Manifold path uses below.
double raw_caf_rate(caf::actor_system& sys, std::size_t n) {
  auto receiver = sys.spawn([]() -> caf::behavior {
    auto count = std::make_shared<std::size_t>(0);
    return {
      [=](std::int32_t, double) { ++*count; },
      [=](get_atom) { return *count; },
    };
  });
  caf::scoped_actor self{sys};
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; ++i) {
    self->send(receiver, static_cast<std::int32_t>(i), 1.5);
    if ((i + 1) % batch == 0) self->request(receiver, 10s, get_atom::value).receive([](std::size_t) {}, [](caf::error&) {});
  }
  std::size_t got = 0;
  self->request(receiver, 10s, get_atom::value)
    .receive([&](std::size_t c) { got = c; }, [](caf::error&) {});
  auto secs = seconds_since(t0);
  caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
  if (got != n) std::fprintf(stderr, "raw CAF: receiver counted %zu of %zu\n", got, n);
  return static_cast<double>(n) / secs;
}

// -- Manifold path -----------------------------------------------------------------------------------

struct ws_counter {
  std::atomic<std::size_t> received{0};
  std::atomic<bool> ready{false};
  std::atomic<bool> stop{false};
};

/// Reads the stream until told to stop; counts messages.
void ws_client(std::uint16_t port, ws_counter& c) {
  namespace beast = boost::beast;
  namespace net = boost::asio;
  net::io_context ioc;
  beast::websocket::stream<beast::tcp_stream> ws{ioc};
  beast::get_lowest_layer(ws).connect(
    net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
  ws.handshake("127.0.0.1", "/v1/stream");
  c.ready = true;
  beast::flat_buffer buf;
  beast::error_code ec;
  while (!c.stop) {
    ws.read(buf, ec);
    if (ec) break;
    buf.consume(buf.size());
    ++c.received;
  }
}

double manifold_rate(caf::actor_system& sys, std::size_t n, std::size_t& ws_received,
                     double& ws_rate) {
  auto metrics = std::make_shared<node_metrics>();
  auto bus = spawn_data_bus(sys, metrics);
  node_config cfg;
  cfg.gateway.port = 0;
  cfg.gateway.stream_queue_limit = n; // Nothing dropped: the bench measures delivery.
  auto ncfg = std::make_shared<const node_config>(cfg);
  gateway::gateway_deps deps;
  deps.config = ncfg;
  deps.bus = bus;
  deps.metrics = metrics;
  auto gw = gateway::spawn_gateway(sys, deps);
  gateway::http_server http{sys, gw, bus, cfg.gateway, metrics};
  if (auto err = http.start()) {
    std::fprintf(stderr, "http: %s\n", err->c_str());
    std::exit(1);
  }
  ws_counter counter;
  std::thread client{[&] { ws_client(http.port(), counter); }};
  while (!counter.ready) std::this_thread::yield();
  // The subscription is registered asynchronously; wait until the bus delivers to it.
  connector_config cc;
  cc.name = "bench";
  // One barrier round fits in the queue: nothing is dropped, the bench measures delivery.
  cc.queue.capacity = batch;
  auto ctx = connectors::make_connector_context(cc, bus, metrics, nullptr);
  auto gauge_ready = [&] {
    return metrics->serialize().find("manifold_stream_subscribers 1") != std::string::npos;
  };
  for (int i = 0; i < 500 && !gauge_ready(); ++i) std::this_thread::sleep_for(10ms);

  // The producer is an actor that publishes like a connector does, with the same barrier.
  caf::scoped_actor self{sys};
  auto producer = sys.spawn([ctx, n](caf::event_based_actor* p) -> caf::behavior {
    return {
      [=](get_atom, std::size_t from, std::size_t count) {
        for (std::size_t i = from; i < from + count && i < n; ++i) {
          point_reading r;
          r.connector = "bench";
          r.device = "dev-" + std::to_string(i % 100);
          r.point = "value";
          r.data = static_cast<double>(i);
          r.source_time = static_cast<timestamp>(i);
          connectors::publish(p, ctx, std::move(r));
        }
        return count;
      },
    };
  });
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < n; i += batch) {
    self->request(producer, 10s, get_atom::value, i, batch)
      .receive([](std::size_t) {}, [](caf::error&) {});
    // Barrier: the bus has stored every reading published so far.
    self->request(bus, 10s, get_atom::value, std::string{"dev-0"}, std::string{"value"})
      .receive([](point_reading&) {}, [](caf::error&) {});
  }
  auto bus_secs = seconds_since(t0);
  for (int i = 0; i < 3000 && counter.received < n; ++i) std::this_thread::sleep_for(1ms);
  auto ws_secs = seconds_since(t0);
  ws_received = counter.received;
  ws_rate = static_cast<double>(ws_received) / ws_secs;
  counter.stop = true;
  http.stop();
  client.join();
  caf::anon_send_exit(producer, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(gw, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
  return static_cast<double>(n) / bus_secs;
}

} // namespace

int main(int argc, char** argv) {
  std::size_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  log::set_level(log::level::warn);
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  std::printf("readings per round: %zu, rounds: %d\n", n, rounds);
  std::printf("%-6s %16s %16s %16s %8s %8s\n", "round", "raw CAF msg/s", "bus+cache r/s",
              "bus+cache+WS r/s", "ratio", "WS ratio");
  for (int r = 1; r <= rounds; ++r) {
    auto raw = raw_caf_rate(sys, n);
    std::size_t ws_received = 0;
    double ws_rate = 0;
    auto bus = manifold_rate(sys, n, ws_received, ws_rate);
    std::printf("%-6d %16.0f %16.0f %16.0f %8.3f %8.3f%s\n", r, raw, bus, ws_rate, bus / raw,
                ws_rate / raw,
                ws_received < n ? "  (WebSocket client missed readings)" : "");
  }
  return 0;
}
