// What a cluster hop costs on the product path, next to plain CAF remoting measured in the same
// run: readings per second from a connector on node B to a WebSocket client on node A's gateway
// (and on B's own), then to a sink on the data bus of a bare node (the hop without the gateway);
// and the round trip of an HTTP request to node A's gateway for a point or an action of a
// connector on node B, against the same request to node B and a plain CAF remote request. The
// nodes and the plain CAF pair run in this one process as separate actor systems, over loopback.
//
// Usage: cluster_path [READINGS] [ROUNDS] [REQUESTS]

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/config.hpp"
#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/cli/node_runtime.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/supervision/cluster_node.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using burst_atom = caf::atom_constant<caf::atom("burst")>;

namespace beast = boost::beast;
namespace net = boost::asio;

/// Readings (or messages) the producer hands over at once.
constexpr std::uint64_t batch = 1000;
/// At most this many readings (or messages) are on their way at any time, on every path alike,
/// so no queue grows without bound and nothing is dropped.
constexpr std::uint64_t window = 8192;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// -- flow control shared by every path ----------------------------------------------------------

/// What the receiving end has counted; the producer waits on it to keep `window`.
class arrival_counter {
public:
  void add(std::uint64_t k = 1) {
    // Only a waiter's target costs a lock, not every arrival.
    if (count_.fetch_add(k) + k >= wake_at_.load()) {
      std::lock_guard<std::mutex> guard{mutex_};
      cv_.notify_all();
    }
  }

  std::uint64_t count() const { return count_.load(); }

  void reset() {
    count_ = 0;
    wake_at_ = nobody;
  }

  /// Waits until at least `target` arrived; false after `deadline`.
  bool wait_for(std::uint64_t target, std::chrono::milliseconds deadline = 30s) {
    auto until = clock_type::now() + deadline;
    std::unique_lock<std::mutex> lock{mutex_};
    wake_at_ = target;
    bool reached = true;
    while (count_.load() < target) {
      if (clock_type::now() > until) {
        reached = false;
        break;
      }
      cv_.wait_for(lock, 5ms);
    }
    wake_at_ = nobody;
    return reached;
  }

private:
  static constexpr std::uint64_t nobody = ~std::uint64_t{0};

  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> wake_at_{nobody};
  std::mutex mutex_;
  std::condition_variable cv_;
};

/// Sends `n` items in batches through `send_batch(from, count)`, never more than `window` ahead
/// of `arrived`; returns items per second, or 0 if they did not all arrive.
template <class SendBatch>
double windowed_rate(std::uint64_t n, arrival_counter& arrived, SendBatch send_batch) {
  arrived.reset();
  auto t0 = clock_type::now();
  for (std::uint64_t sent = 0; sent < n; sent += batch) {
    if (sent + batch > window && !arrived.wait_for(sent + batch - window)) return 0;
    send_batch(sent, std::min(batch, n - sent));
  }
  if (!arrived.wait_for(n)) return 0;
  return static_cast<double>(n) / seconds_since(t0);
}

// -- a connector that produces readings on command
// -------------------------------------------------

/// Where the bench finds the connector instance it drives (it runs on node B's actor system).
struct producer_handle {
  std::mutex mutex;
  caf::actor actor;

  caf::actor get() {
    std::lock_guard<std::mutex> guard{mutex};
    return actor;
  }
};

/// Devices declare no keys; each gets the point `value` (read by GET), `seq` (the stream of
/// numbered readings) and the action `echo` (answers at once).
class bench_schema : public config::connector_schema {
public:
  void parse_device(config::map_reader&, const connector_config&, device_config& d) override {
    for (auto name : {"value", "seq"}) {
      point_config p;
      p.name = name;
      p.type = value_type::float64;
      d.points.push_back(p);
    }
    action_config a;
    a.name = "echo";
    a.result = value_type::int64;
    d.actions.push_back(a);
  }
};

point_reading numbered(const connectors::connector_context& ctx, const std::string& point,
                       std::uint64_t i) {
  const auto& device = ctx.config->devices.front().name;
  return {ctx.name(), device, point, value{static_cast<double>(i)}, quality::good, {}, ctx.now()};
}

/// Publishes exactly as a polling connector does (`connectors::publish`: the connector's bounded
/// queue, then the data bus), `count` readings per `burst` message instead of one per poll.
caf::behavior bench_connector(caf::event_based_actor* self, connectors::connector_context ctx) {
  connectors::report_crashes(self, ctx);
  connectors::publish(self, ctx, numbered(ctx, "value", 1));
  return {
      [=](burst_atom, std::uint64_t from, std::uint64_t count) {
        for (auto i = from; i < from + count; ++i)
          connectors::publish(self, ctx, numbered(ctx, "seq", i));
      },
      [=](invoke_atom, const action_request&) { return value{std::int64_t{1}}; },
      [=](write_atom, const std::string&, const std::string&, value& v) { return v; },
      [=](status_atom) {
        connector_status s;
        s.state = connector_state::running;
        return s;
      },
  };
}

class bench_type : public connectors::connector_type {
public:
  explicit bench_type(std::shared_ptr<producer_handle> handle) : handle_(std::move(handle)) {}

  std::string name() const override { return "bench"; }
  config::connector_schema& schema() override { return schema_; }
  caf::actor spawn(caf::actor_system& sys, connectors::connector_context ctx) override {
    auto a = sys.spawn(bench_connector, std::move(ctx));
    std::lock_guard<std::mutex> guard{handle_->mutex};
    handle_->actor = a;
    return a;
  }

private:
  std::shared_ptr<producer_handle> handle_;
  bench_schema schema_;
};

// -- two Manifold nodes ---------------------------------------------------------------------------

/// One config for both nodes (the connectors section must be the same on every node); the bench
/// connector is pinned to node `b`. No etcd: pinned connectors are all this needs.
std::string node_yaml(const std::string& id, const std::string& seed) {
  std::string y = "node: {id: " + id +
                  ", log_level: warn}\n"
                  "gateway: {listen: 127.0.0.1:0, stream_queue_limit: 1048576}\n"
                  "cluster:\n"
                  "  name: bench\n"
                  "  listen: 127.0.0.1:0\n"
                  "  heartbeat_interval: 200ms\n"
                  "  failure_timeout: 5s\n";
  if (!seed.empty()) y += "  seeds: [" + seed + "]\n";
  y += "connectors:\n"
       "  - name: producer\n"
       "    type: bench\n"
       "    queue: {capacity: 65536}\n"
       "    placement: {node: b}\n"
       "    devices: [{name: probe}]\n";
  return y;
}

node_config load_config(const std::string& id, const std::string& seed,
                        const connectors::connector_registry& registry) {
  auto loaded = config::load_string(node_yaml(id, seed), "<cluster_path " + id + ">",
                                    registry.schemas(), registry.names());
  if (!loaded.config) {
    std::fprintf(stderr, "config: %s\n", loaded.diag.to_string().c_str());
    std::exit(1);
  }
  return std::move(*loaded.config);
}

std::unique_ptr<cli::node_runtime> start_node(const std::string& id, const std::string& seed,
                                              const connectors::connector_registry& registry) {
  auto node = std::make_unique<cli::node_runtime>(load_config(id, seed, registry), registry);
  if (auto err = node->start()) {
    std::fprintf(stderr, "node %s: %s\n", id.c_str(), err->c_str());
    std::exit(1);
  }
  return node;
}

/// Counts what a data bus delivers to it.
class counting_sink : public reading_sink {
public:
  explicit counting_sink(arrival_counter& counter) : counter_(counter) {}
  void deliver(const point_reading&) override { counter_.add(); }

private:
  arrival_counter& counter_;
};

/// A node reduced to the pieces a forwarded reading passes (the cluster node actor and the data
/// bus, as node_runtime wires them) with a sink on its bus instead of a gateway: it shows the
/// cluster hop's own capacity, apart from the gateway's WebSocket leg.
struct bare_node {
  bare_node(node_config config, arrival_counter& arrived) {
    auto cfg = std::make_shared<const node_config>(std::move(config));
    supervision::configure_cluster(sys_cfg, *cfg);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    bus = spawn_data_bus(*sys, nullptr);
    sink = std::make_shared<counting_sink>(arrived);
    caf::anon_send(bus, subscribe_atom::value, reading_sink_ptr{sink}, reading_filter{"", "seq"});
    supervision::cluster_node_deps deps;
    deps.config = cfg;
    deps.bus = bus;
    deps.directory = std::make_shared<cluster_directory>(cfg);
    deps.api_url = "http://127.0.0.1:0";
    directory = deps.directory;
    auto started = supervision::start_cluster_node(*sys, deps);
    if (!started) {
      std::fprintf(stderr, "bare node: %s\n", sys->render(started.error()).c_str());
      std::exit(1);
    }
    node = started->first;
  }

  ~bare_node() {
    caf::anon_send_exit(node, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor bus;
  caf::actor node;
  std::shared_ptr<counting_sink> sink;
  std::shared_ptr<cluster_directory> directory;
};

// -- HTTP and WebSocket clients
// -----------------------------------------------------------------------

/// One keep-alive HTTP/1.1 connection, so a round trip measures the request, not TCP set-up.
class http_connection {
public:
  explicit http_connection(std::uint16_t port) : stream_{ioc_} {
    stream_.connect(net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
    stream_.socket().set_option(net::ip::tcp::no_delay{true});
  }

  /// The status code, 0 on a transport error; the body goes to `body`.
  int request(beast::http::verb verb, const std::string& target, std::string& body) {
    beast::http::request<beast::http::string_body> req{verb, target, 11};
    req.set(beast::http::field::host, "127.0.0.1");
    if (verb == beast::http::verb::post)
      req.set(beast::http::field::content_type, "application/json");
    req.keep_alive(true);
    req.prepare_payload();
    beast::error_code ec;
    beast::http::write(stream_, req, ec);
    if (ec) return 0;
    beast::http::response<beast::http::string_body> res;
    beast::http::read(stream_, buffer_, res, ec);
    if (ec) return 0;
    body = std::move(res.body());
    return res.result_int();
  }

private:
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

/// Counts the frames of `/v1/stream?point=seq` on its own I/O thread until destroyed.
class stream_client {
public:
  stream_client(std::uint16_t port, arrival_counter& counter) : ws_{ioc_}, counter_(counter) {
    beast::error_code ec;
    beast::get_lowest_layer(ws_).connect(
        net::ip::tcp::endpoint{net::ip::make_address("127.0.0.1"), port}, ec);
    if (!ec) ws_.handshake("127.0.0.1", "/v1/stream?point=seq", ec);
    failed_ = static_cast<bool>(ec);
    if (failed_) return;
    read_next();
    thread_ = std::thread{[this] { ioc_.run(); }};
  }

  /// Closes the connection from the I/O thread, so the gateway unsubscribes the session and no
  /// reading of a later run reaches this client.
  ~stream_client() {
    if (!thread_.joinable()) return;
    net::post(ioc_, [this] {
      beast::error_code ec;
      beast::get_lowest_layer(ws_).socket().shutdown(net::ip::tcp::socket::shutdown_both, ec);
      beast::get_lowest_layer(ws_).socket().close(ec);
    });
    thread_.join();
  }

  bool failed() const { return failed_; }

private:
  void read_next() {
    ws_.async_read(buffer_, [this](beast::error_code ec, std::size_t) {
      if (ec) return;
      buffer_.consume(buffer_.size());
      counter_.add();
      read_next();
    });
  }

  net::io_context ioc_;
  beast::websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  arrival_counter& counter_;
  bool failed_ = false;
  std::thread thread_;
};

// -- plain CAF over the middleman
// -------------------------------------------------------------------

/// Two actor systems with the middleman: a receiver published on system 2, reached from system 1
/// through `remote_actor` over loopback.
struct caf_pair {
  caf_pair() {
    cfg1.load<caf::io::middleman>();
    cfg2.load<caf::io::middleman>();
    sys1 = std::make_unique<caf::actor_system>(cfg1);
    sys2 = std::make_unique<caf::actor_system>(cfg2);
    arrived = std::make_shared<arrival_counter>();
    auto counter = arrived;
    receiver = sys2->spawn([counter]() -> caf::behavior {
      return {
          [=](std::int32_t, double) { counter->add(); },
          [=](get_atom, std::int32_t i, double d) { return caf::make_message(i, d); },
      };
    });
    auto port = sys2->middleman().publish(receiver, 0, "127.0.0.1");
    if (!port) fail("publish", port.error());
    auto proxy = sys1->middleman().remote_actor("127.0.0.1", *port);
    if (!proxy) fail("remote_actor", proxy.error());
    remote = *proxy;
  }

  ~caf_pair() {
    caf::anon_send_exit(receiver, caf::exit_reason::user_shutdown);
    remote = nullptr;
    receiver = nullptr;
    sys1.reset();
    sys2.reset();
  }

  [[noreturn]] void fail(const char* what, const caf::error& err) {
    std::fprintf(stderr, "plain CAF %s: %s\n", what, sys1->render(err).c_str());
    std::exit(1);
  }

  caf::actor_system_config cfg1;
  caf::actor_system_config cfg2;
  std::unique_ptr<caf::actor_system> sys1;
  std::unique_ptr<caf::actor_system> sys2;
  std::shared_ptr<arrival_counter> arrived;
  caf::actor receiver;
  caf::actor remote; ///< The proxy of `receiver` in system 1.
};

double raw_remote_rate(caf_pair& p, std::uint64_t n) {
  caf::scoped_actor self{*p.sys1};
  return windowed_rate(n, *p.arrived, [&](std::uint64_t from, std::uint64_t count) {
    for (auto i = from; i < from + count; ++i)
      self->send(p.remote, static_cast<std::int32_t>(i), 1.5);
  });
}

double stream_rate(std::uint16_t gateway_port, producer_handle& producer, std::uint64_t n) {
  arrival_counter arrived;
  stream_client client{gateway_port, arrived};
  if (client.failed()) return 0;
  // The session subscribes to the bus asynchronously: a first reading that arrives says it is in.
  auto actor = producer.get();
  for (int i = 0; i < 500 && arrived.count() == 0; ++i) {
    caf::anon_send(actor, burst_atom::value, std::uint64_t{0}, std::uint64_t{1});
    arrived.wait_for(1, 10ms);
  }
  if (arrived.count() == 0) return 0;
  // A probe still in flight may be counted in the run below: at most a few in `n`.
  return windowed_rate(n, arrived, [&](std::uint64_t from, std::uint64_t count) {
    caf::anon_send(actor, burst_atom::value, from, count);
  });
}

/// Readings from the connector on node B to the sink on the bare node's bus.
double bus_sink_rate(producer_handle& producer, arrival_counter& arrived, std::uint64_t n) {
  auto actor = producer.get();
  return windowed_rate(n, arrived, [&](std::uint64_t from, std::uint64_t count) {
    caf::anon_send(actor, burst_atom::value, from, count);
  });
}

// -- round trips ----------------------------------------------------------------------------------

struct percentiles {
  double median_us = 0;
  double p99_us = 0;
};

percentiles summarize(std::vector<double> us) {
  if (us.empty()) return {};
  std::sort(us.begin(), us.end());
  auto at = [&](double q) {
    return us[std::min(us.size() - 1, static_cast<std::size_t>(q * us.size()))];
  };
  return {at(0.5), at(0.99)};
}

struct round_trip_leg {
  const char* name;
  std::function<bool()> once; ///< One request; false when it failed.
  std::vector<double> samples_us;
};

} // namespace

int main(int argc, char** argv) {
  std::uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  int requests = argc > 3 ? std::atoi(argv[3]) : 2000;
  n = std::max<std::uint64_t>(batch, n / batch * batch);
  log::set_level(log::level::warn);

  auto producer = std::make_shared<producer_handle>();
  auto registry = connectors::connector_registry::builtin();
  registry.add(std::make_unique<bench_type>(producer));

  auto b = start_node("b", "", registry);
  auto a = start_node("a", "127.0.0.1:" + std::to_string(b->cluster_port()), registry);
  caf_pair plain;

  // Ready when node A's gateway serves the point of B's connector.
  std::string body;
  bool joined = false;
  {
    http_connection probe{a->port()};
    for (int i = 0; i < 1000 && !joined; ++i) {
      joined =
          probe.request(beast::http::verb::get, "/v1/devices/probe/points/value", body) == 200 &&
          body.find("\"good\"") != std::string::npos;
      if (!joined) std::this_thread::sleep_for(10ms);
    }
  }
  if (!joined || !producer->get()) {
    std::fprintf(stderr, "node a never served node b's point: %s\n", body.c_str());
    return 1;
  }

  std::printf("readings: %llu per round, %d rounds; window %llu, batch %llu\n",
              static_cast<unsigned long long>(n), rounds, static_cast<unsigned long long>(window),
              static_cast<unsigned long long>(batch));
  std::printf("%-6s %16s %18s %18s %10s %10s\n", "round", "plain CAF msg/s", "B -> WS on A r/s",
              "B -> WS on B r/s", "A / CAF", "A / B");
  for (int r = 1; r <= rounds; ++r) {
    auto raw = raw_remote_rate(plain, n);
    auto remote = stream_rate(a->port(), *producer, n);
    auto local = stream_rate(b->port(), *producer, n);
    std::printf("%-6d %16.0f %18.0f %18.0f %10.3f %10.3f\n", r, raw, remote, local,
                raw > 0 ? remote / raw : 0, local > 0 ? remote / local : 0);
  }

  // Round trips, interleaved so that load from elsewhere on the machine hits every leg alike.
  http_connection to_a{a->port()};
  http_connection to_b{b->port()};
  caf::scoped_actor self{*plain.sys1};
  auto http_leg = [&](http_connection& c, beast::http::verb verb, const char* target) {
    return [&c, verb, target] {
      std::string out;
      return c.request(verb, target, out) == 200;
    };
  };
  const auto get = beast::http::verb::get;
  const auto post = beast::http::verb::post;
  std::vector<round_trip_leg> legs{
      {"plain CAF remote request",
       [&] {
         bool ok = false;
         self->request(plain.remote, 5s, get_atom::value, std::int32_t{1}, 1.5)
             .receive([&](std::int32_t, double) { ok = true; }, [](caf::error&) {});
         return ok;
       },
       {}},
      {"GET point on A (connector on B)",
       http_leg(to_a, get, "/v1/devices/probe/points/value"),
       {}},
      {"GET point on B (local)", http_leg(to_b, get, "/v1/devices/probe/points/value"), {}},
      {"POST action on A (connector on B)",
       http_leg(to_a, post, "/v1/devices/probe/actions/echo"),
       {}},
      {"POST action on B (local)", http_leg(to_b, post, "/v1/devices/probe/actions/echo"), {}},
  };
  for (int i = 0; i < requests + 100; ++i)
    for (auto& leg : legs) {
      auto t0 = clock_type::now();
      if (!leg.once()) {
        std::fprintf(stderr, "%s failed\n", leg.name);
        return 1;
      }
      if (i >= 100) leg.samples_us.push_back(seconds_since(t0) * 1e6);
    }
  std::printf("\nround trips: %d per leg (after 100 warm-up), interleaved\n", requests);
  std::printf("%-36s %12s %12s %14s\n", "leg", "median us", "p99 us", "median / CAF");
  auto reference = summarize(legs.front().samples_us).median_us;
  for (auto& leg : legs) {
    auto s = summarize(leg.samples_us);
    std::printf("%-36s %12.1f %12.1f %14.2f\n", leg.name, s.median_us, s.p99_us,
                s.median_us / reference);
  }

  // The hop alone: node A leaves, a bare node with a bus sink joins node B instead.
  a->stop();
  a.reset();
  {
    arrival_counter arrived;
    bare_node c{load_config("c", "127.0.0.1:" + std::to_string(b->cluster_port()), registry),
                arrived};
    // Joined once B forwards to it: a first reading arrives.
    for (int i = 0; i < 1000 && arrived.count() == 0; ++i) {
      caf::anon_send(producer->get(), burst_atom::value, std::uint64_t{0}, std::uint64_t{1});
      arrived.wait_for(1, 10ms);
    }
    if (arrived.count() == 0) {
      std::fprintf(stderr, "the bare node never received a reading from node b\n");
      return 1;
    }
    std::printf("\n%-6s %16s %18s %10s\n", "round", "plain CAF msg/s", "B -> bus sink r/s",
                "sink / CAF");
    for (int r = 1; r <= rounds; ++r) {
      auto raw = raw_remote_rate(plain, n);
      auto hop = bus_sink_rate(*producer, arrived, n);
      std::printf("%-6d %16.0f %18.0f %10.3f\n", r, raw, hop, raw > 0 ? hop / raw : 0);
    }
  }
  b->stop();
  return 0;
}
