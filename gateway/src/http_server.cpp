// The HTTP/1.1 + WebSocket front of the gateway, on Boost.Beast. One I/O thread runs every
// connection; a request is framed and size-checked here, then handed to the gateway actor with a
// callback that posts the reply back to this thread. Nothing here waits on an actor.

#include "manifold/gateway/gateway.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/send.hpp>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/log.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/actors/metrics.hpp"
#include "protocol.hpp"
#include "wire.hpp"

namespace manifold::gateway {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

/// How long a response may take to leave the socket before the connection is dropped.
constexpr std::chrono::seconds write_timeout{30};
/// How long a closing connection keeps draining what the client still sends, so that the client
/// reads our error answer instead of a reset.
constexpr std::chrono::seconds linger_timeout{2};
constexpr std::size_t linger_max_bytes = 1 << 20;
constexpr std::uint32_t header_limit_bytes = 16 * 1024;
/// Idle WebSocket streams are pinged; a peer that answers nothing for this long is dropped.
constexpr std::chrono::seconds stream_idle_timeout{60};

const log::logger& logger() {
  static const log::logger l{"gateway.http"};
  return l;
}

class session_base;

/// A header value as the std::string_view our wire helpers take.
std::string_view view(beast::string_view s) {
  return {s.data(), s.size()};
}

/// What every connection shares. Owned by the server; connections and callbacks only hold weak
/// references, so stop() can tear it down while actors still hold callbacks.
struct server_core {
  caf::actor gateway;
  caf::actor bus;
  gateway_config cfg;
  std::shared_ptr<node_metrics> metrics;
  std::chrono::milliseconds read_timeout = http_server::default_read_timeout;
  std::atomic<std::size_t> connections{0};
  std::vector<std::weak_ptr<session_base>> sessions; ///< Only touched on the I/O thread.
  // Declared last so it is destroyed first: pending handlers (and the sessions they own) go
  // while the members above still exist.
  net::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  /// A failed accept (no file descriptor left, say) fails again at once: wait this long, doubled
  /// per failure up to `max_accept_backoff`, before the next try. Zero while accepts succeed.
  std::chrono::milliseconds accept_backoff{0};
  net::steady_timer accept_retry{ioc};
  std::uint64_t accept_failures = 0; ///< Since the last successful accept.
  std::optional<std::chrono::steady_clock::time_point> accept_failure_logged;

  void count(const std::string& route, int status) {
    if (metrics) metrics->http_requests(route, status).Increment();
  }
};

/// Anything stop() must be able to close.
class session_base {
public:
  virtual ~session_base() = default;
  virtual void close() = 0;
};

http::response<http::string_body> make_response(const http_reply& r, unsigned version,
                                                bool keep_alive) {
  http::response<http::string_body> res{static_cast<http::status>(r.status), version};
  res.set(http::field::server, "manifold");
  res.set(http::field::content_type, r.content_type);
  for (auto& [k, v] : r.headers) res.set(k, v);
  res.keep_alive(keep_alive);
  res.body() = r.body;
  res.prepare_payload();
  return res;
}

/// Shuts down our sending side, drains what the peer still sends (bounded in time and bytes),
/// then closes. Keeps `owner` alive until done.
void linger_close(std::shared_ptr<void> owner, beast::tcp_stream& stream) {
  beast::error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    stream.socket().close(ec);
    return;
  }
  struct drain : std::enable_shared_from_this<drain> {
    std::shared_ptr<void> owner;
    beast::tcp_stream* stream;
    std::array<char, 4096> buf;
    std::size_t total = 0;
    void next() {
      stream->async_read_some(net::buffer(buf),
                              [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                                self->total += n;
                                if (ec || self->total > linger_max_bytes) {
                                  beast::error_code ignored;
                                  self->stream->socket().close(ignored);
                                  return;
                                }
                                self->next();
                              });
    }
  };
  auto d = std::make_shared<drain>();
  d->owner = std::move(owner);
  d->stream = &stream;
  stream.expires_after(linger_timeout);
  d->next();
}

// -- WebSocket reading stream ---------------------------------------------------------------------

class stream_session;

/// The data bus's side of a stream: `deliver` runs on the bus actor, queues and returns. The queue
/// is bounded; when the client falls behind the oldest readings go first, and are counted.
class queue_sink : public reading_sink {
public:
  queue_sink(std::weak_ptr<server_core> core, std::size_t limit,
             std::shared_ptr<node_metrics> metrics)
    : core_(std::move(core)), limit_(limit == 0 ? 1 : limit), metrics_(std::move(metrics)) {}

  void attach(std::weak_ptr<stream_session> s) { session_ = std::move(s); }

  void deliver(const point_reading& r) override;

  /// Takes the oldest queued reading; false when there is none.
  bool pop(point_reading& out) {
    std::lock_guard<std::mutex> g{mtx_};
    if (queue_.empty()) return false;
    out = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }

  void woken() {
    std::lock_guard<std::mutex> g{mtx_};
    wake_pending_ = false;
  }

private:
  std::weak_ptr<server_core> core_;
  std::weak_ptr<stream_session> session_;
  std::size_t limit_;
  std::shared_ptr<node_metrics> metrics_;
  std::mutex mtx_;
  std::deque<point_reading> queue_;
  bool wake_pending_ = false;
};

std::string reading_message(const point_reading& r) {
  nlohmann::json j{{"connector", r.connector},
                   {"device", r.device},
                   {"point", r.point},
                   {"value", to_json(r.data)},
                   {"quality", to_string(r.q)},
                   {"timestamp", r.source_time == 0 ? nlohmann::json(nullptr)
                                                    : nlohmann::json(format_timestamp(
                                                        r.source_time))}};
  if (r.q != quality::good) j["reason"] = r.reason;
  auto text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  // Same rule as every API answer: no registered secret value leaves the node.
  return log::has_secrets() ? log::redact(std::move(text)) : text;
}

class stream_session : public session_base,
                       public std::enable_shared_from_this<stream_session> {
public:
  stream_session(std::shared_ptr<server_core> core, beast::tcp_stream&& stream,
                 reading_filter filter)
    : core_(core.get()), ws_(std::move(stream)), filter_(std::move(filter)) {
    sink_ = std::make_shared<queue_sink>(core, core->cfg.stream_queue_limit, core->metrics);
    ++core_->connections;
  }

  ~stream_session() override {
    unsubscribe();
    --core_->connections;
  }

  void run(http::request<http::string_body> req) {
    sink_->attach(weak_from_this());
    beast::get_lowest_layer(ws_).expires_never();
    auto opt = websocket::stream_base::timeout::suggested(beast::role_type::server);
    opt.idle_timeout = stream_idle_timeout;
    opt.keep_alive_pings = true;
    ws_.set_option(opt);
    ws_.async_accept(req, [self = shared_from_this()](beast::error_code ec) {
      self->on_accept(ec);
    });
  }

  void close() override {
    unsubscribe();
    beast::error_code ec;
    beast::get_lowest_layer(ws_).socket().close(ec);
  }

  /// Runs on the I/O thread after the sink queued something.
  void wake() {
    sink_->woken();
    if (!writing_ && open_) write_next();
  }

private:
  void on_accept(beast::error_code ec) {
    if (ec) return close();
    open_ = true;
    subscribed_ = true;
    caf::anon_send(core_->bus, subscribe_atom::value, reading_sink_ptr{sink_}, filter_);
    if (core_->metrics) core_->metrics->stream_subscribers().Increment();
    read();
  }

  /// Reads (and ignores) what the client sends, so pings, pongs and close frames are handled.
  void read() {
    ws_.async_read(inbound_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->inbound_.consume(self->inbound_.size());
      self->read();
    });
  }

  void write_next() {
    point_reading r;
    if (!sink_->pop(r)) {
      writing_ = false;
      return;
    }
    writing_ = true;
    outbound_ = reading_message(r);
    ws_.text(true);
    ws_.async_write(net::buffer(outbound_),
                    [self = shared_from_this()](beast::error_code ec, std::size_t) {
                      if (ec) {
                        self->writing_ = false;
                        return self->close();
                      }
                      self->write_next();
                    });
  }

  void unsubscribe() {
    if (!subscribed_) return;
    subscribed_ = false;
    open_ = false;
    caf::anon_send(core_->bus, unsub_atom::value, reading_sink_ptr{sink_});
    if (core_->metrics) core_->metrics->stream_subscribers().Decrement();
  }

  server_core* core_;
  websocket::stream<beast::tcp_stream> ws_;
  reading_filter filter_;
  std::shared_ptr<queue_sink> sink_;
  beast::flat_buffer inbound_;
  std::string outbound_;
  bool writing_ = false;
  bool open_ = false;
  bool subscribed_ = false;
};

void queue_sink::deliver(const point_reading& r) {
  bool dropped = false;
  bool wake = false;
  {
    std::lock_guard<std::mutex> g{mtx_};
    queue_.push_back(r);
    if (queue_.size() > limit_) {
      queue_.pop_front();
      dropped = true;
    }
    if (!wake_pending_) wake = wake_pending_ = true;
  }
  if (dropped && metrics_) metrics_->stream_dropped().Increment();
  if (!wake) return;
  auto core = core_.lock();
  if (!core) return;
  net::post(core->ioc, [s = session_] {
    if (auto p = s.lock()) p->wake();
  });
}

// -- HTTP connection ------------------------------------------------------------------------------

class http_session;

/// The callback handed to the gateway actor with a request. If the actor drops the message (it is
/// gone), the last copy's destructor still answers, so the connection never waits forever.
struct pending_reply {
  std::weak_ptr<server_core> core;
  std::weak_ptr<http_session> session;
  std::atomic<bool> done{false};

  void deliver(http_reply r);

  ~pending_reply() {
    if (!done)
      deliver(error_reply(errc::unavailable, "the gateway is not running", false));
  }
};

class http_session : public session_base, public std::enable_shared_from_this<http_session> {
public:
  http_session(std::shared_ptr<server_core> core, tcp::socket&& socket)
    : core_(core.get()), weak_core_(core), stream_(std::move(socket)),
      deadline_(stream_.get_executor()) {
    ++core_->connections;
  }

  ~http_session() override { --core_->connections; }

  void start() { read(); }

  void close() override {
    closed_ = true;
    beast::error_code ec;
    deadline_.cancel();
    stream_.socket().close(ec);
  }

  /// Runs on the I/O thread with the gateway actor's answer.
  void on_reply(http_reply r) {
    if (!waiting_ || closed_) return;
    waiting_ = false;
    deadline_.cancel();
    write(std::move(r), keep_alive_);
  }

private:
  void read() {
    if (closed_) return;
    parser_.emplace();
    parser_->body_limit(core_->cfg.max_body_bytes);
    parser_->header_limit(header_limit_bytes);
    // One deadline for the whole request: a client that trickles bytes (slowloris) is cut off.
    stream_.expires_after(core_->read_timeout);
    // The header first, so that a client waiting for `100 Continue` gets it before the body.
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (closed_) return;
    // A declared Content-Length over the limit already failed here with body_limit: the client
    // gets its 413 without sending the body (and without a 100 Continue).
    if (ec || parser_->is_done()) return on_read(ec);
    auto& req = parser_->get();
    if (req.version() >= 11 && beast::iequals(req[http::field::expect], "100-continue")) {
      continue_ = {http::status::continue_, req.version()};
      http::async_write(stream_, continue_,
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    if (closed_) return;
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) {
                       self->on_read(ec);
                     });
  }

  void on_read(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::end_of_stream || ec == net::error::operation_aborted) return close();
    // The stream already closed the socket: an idle keep-alive connection or a client too slow
    // to send its request (slowloris) just ends.
    if (ec == beast::error::timeout) {
      if (buffer_.size() > 0 || parser_->got_some()) core_->count("invalid", 408);
      return close();
    }
    // The fields read so far are in the parser: an `Accept` before the point of failure counts.
    if (ec == http::error::body_limit)
      return fail(413, errc::bad_request,
                  "the request body exceeds the limit of " +
                    std::to_string(core_->cfg.max_body_bytes) + " bytes",
                  wants_msgpack(view(parser_->get()[http::field::accept])));
    if (ec == http::error::header_limit)
      return fail(431, errc::bad_request, "the request header exceeds the limit");
    if (ec == http::error::partial_message) return close();
    if (ec.category() == beast::http::make_error_code(http::error::bad_target).category())
      return fail(400, errc::bad_request, "malformed HTTP request: " + ec.message());
    if (ec) return close();

    auto req = parser_->release();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    auto target = std::string{req.target()};
    if (websocket::is_upgrade(req) && target.substr(0, target.find('?')) == "/v1/stream")
      return upgrade(std::move(req), target);
    dispatch(req);
  }

  void upgrade(http::request<http::string_body> req, const std::string& target) {
    // Everything Beast's accept would refuse is refused here, in our error format, before the
    // upgrade: Beast would answer with a plain-text body.
    bool msgpack = wants_msgpack(view(req[http::field::accept]));
    auto refuse = [&](int status, const std::string& message) {
      core_->count("/v1/stream", status);
      auto r = error_reply(errc::bad_request, message, msgpack);
      r.status = status;
      if (status == 426) r.headers.emplace_back("Sec-WebSocket-Version", "13");
      write(std::move(r), false);
    };
    auto q = parse_query(target);
    if (!q) return refuse(400, "malformed percent-encoding in the query of /v1/stream");
    if (req.count(http::field::host) == 0)
      return refuse(400, "the WebSocket handshake lacks a Host header");
    auto key = req[http::field::sec_websocket_key];
    if (key.empty()) return refuse(400, "the WebSocket handshake lacks Sec-WebSocket-Key");
    if (key.size() > 24) return refuse(400, "the Sec-WebSocket-Key is not a valid key");
    auto version = req[http::field::sec_websocket_version];
    if (version.empty())
      return refuse(400, "the WebSocket handshake lacks Sec-WebSocket-Version");
    if (version != "13")
      return refuse(426, "WebSocket version " + clip(std::string{version}) +
                           " is not supported; use 13");
    reading_filter filter{(*q)["device"], (*q)["point"]};
    core_->count("/v1/stream", 101);
    auto core = weak_core_.lock();
    if (!core) return close();
    auto s = std::make_shared<stream_session>(core, std::move(stream_), std::move(filter));
    core_->sessions.push_back(s);
    closed_ = true;
    s->run(std::move(req));
  }

  void dispatch(http::request<http::string_body>& req) {
    http_request_data data;
    data.method = std::string{req.method_string()};
    data.target = std::string{req.target()};
    data.body = std::move(req.body());
    data.content_type = std::string{req[http::field::content_type]};
    data.accept = std::string{req[http::field::accept]};

    auto pending = std::make_shared<pending_reply>();
    pending->core = weak_core_;
    pending->session = weak_from_this();
    http_callback cb = [pending](http_reply r) { pending->deliver(std::move(r)); };

    // The gateway bounds each downstream call by the request timeout; this backstop only fires if
    // the gateway itself is stuck, so the client still gets an answer.
    waiting_ = true;
    stream_.expires_never();
    deadline_.expires_after(core_->cfg.request_timeout + 5s);
    deadline_.async_wait([self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->waiting_) return;
      self->core_->count("unanswered", 504);
      self->on_reply(error_reply(errc::timeout, "the gateway did not answer in time", false));
    });
    caf::anon_send(core_->gateway, http_atom::value, std::move(data), std::move(cb));
  }

  void write(http_reply r, bool keep_alive) {
    res_ = make_response(r, version_, keep_alive);
    stream_.expires_after(write_timeout);
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep_alive](beast::error_code ec, std::size_t) {
                        if (ec) return self->close();
                        if (!keep_alive) return self->linger();
                        self->read();
                      });
  }

  /// Answers an error the server detected itself, then closes the connection.
  void fail(int status, errc code, const std::string& message, bool msgpack = false) {
    core_->count("invalid", status);
    auto r = error_reply(code, message, msgpack);
    r.status = status;
    write(std::move(r), false);
  }

  void linger() {
    closed_ = true;
    linger_close(shared_from_this(), stream_);
  }

  server_core* core_;
  std::weak_ptr<server_core> weak_core_;
  beast::tcp_stream stream_;
  net::steady_timer deadline_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  http::response<http::empty_body> continue_;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool waiting_ = false;
  bool closed_ = false;
};

void pending_reply::deliver(http_reply r) {
  if (done.exchange(true)) return;
  auto c = core.lock();
  if (!c) return;
  net::post(c->ioc, [s = session, r = std::move(r)]() mutable {
    if (auto p = s.lock()) p->on_reply(std::move(r));
  });
}

/// A connection over the limit: answered 503 at once, then closed.
class rejected_connection : public std::enable_shared_from_this<rejected_connection> {
public:
  explicit rejected_connection(tcp::socket&& socket) : stream_(std::move(socket)) {}

  void run() {
    res_ = make_response(error_reply(errc::overloaded, "too many connections", false), 11, false);
    stream_.expires_after(write_timeout);
    http::async_write(stream_, res_, [self = shared_from_this()](beast::error_code ec,
                                                                 std::size_t) {
      if (ec) return;
      linger_close(self, self->stream_);
    });
  }

private:
  beast::tcp_stream stream_;
  http::response<http::string_body> res_;
};

constexpr std::chrono::milliseconds first_accept_backoff{100};
constexpr std::chrono::milliseconds max_accept_backoff{1000};
/// While accepts keep failing, one line says so at most this often.
constexpr std::chrono::seconds accept_failure_log_interval{10};

void accept_next(const std::shared_ptr<server_core>& core);

/// Logs a failed accept (rate-limited: it repeats for as long as its cause lasts) and accepts
/// again after the backoff, so that a full descriptor table does not spin the I/O thread.
void accept_failed(const std::shared_ptr<server_core>& core, const beast::error_code& ec) {
  auto now = std::chrono::steady_clock::now();
  ++core->accept_failures;
  core->accept_backoff = core->accept_backoff.count() == 0
                           ? first_accept_backoff
                           : std::min(core->accept_backoff * 2, max_accept_backoff);
  auto& logged = core->accept_failure_logged;
  if (!logged || now - *logged >= accept_failure_log_interval) {
    logger().warn("accept failed; retrying with backoff",
                  {{"error", ec.message()},
                   {"failures", std::to_string(core->accept_failures)},
                   {"retry_in_ms", std::to_string(core->accept_backoff.count())}});
    logged = now;
  }
  core->accept_retry.expires_after(core->accept_backoff);
  core->accept_retry.async_wait([weak = std::weak_ptr<server_core>{core}](beast::error_code ec) {
    auto core = weak.lock();
    if (ec || !core || !core->acceptor.is_open()) return;
    accept_next(core);
  });
}

void accept_next(const std::shared_ptr<server_core>& core) {
  core->acceptor.async_accept(
    [weak = std::weak_ptr<server_core>{core}](beast::error_code ec, tcp::socket socket) {
      auto core = weak.lock();
      if (!core || !core->acceptor.is_open()) return;
      if (ec) return accept_failed(core, ec);
      if (core->accept_failures > 0) {
        logger().info("accepting connections again",
                      {{"failed_accepts", std::to_string(core->accept_failures)}});
        core->accept_failures = 0;
        core->accept_backoff = {};
        core->accept_failure_logged.reset();
      }
      if (core->connections >= core->cfg.max_connections) {
        core->count("overloaded", 503);
        std::make_shared<rejected_connection>(std::move(socket))->run();
      } else {
        auto& list = core->sessions;
        list.erase(std::remove_if(list.begin(), list.end(),
                                  [](auto& w) { return w.expired(); }),
                   list.end());
        auto s = std::make_shared<http_session>(core, std::move(socket));
        list.push_back(s);
        s->start();
      }
      accept_next(core);
    });
}

} // namespace

// -- http_server ----------------------------------------------------------------------------------

struct http_server::impl {
  std::shared_ptr<server_core> core = std::make_shared<server_core>();
  std::thread io_thread;
  std::uint16_t port = 0;
  bool started = false;
  bool stopped = false;
};

http_server::http_server(caf::actor_system&, caf::actor gateway, caf::actor bus,
                         gateway_config cfg, std::shared_ptr<node_metrics> metrics)
  : impl_(std::make_unique<impl>()) {
  auto& c = *impl_->core;
  c.gateway = std::move(gateway);
  c.bus = std::move(bus);
  c.cfg = std::move(cfg);
  c.metrics = std::move(metrics);
  // Create the series now, so /metrics shows the counter at 0 before the first drop.
  if (c.metrics) c.metrics->stream_dropped();
}

http_server::~http_server() {
  stop();
}

void http_server::set_read_timeout(std::chrono::milliseconds timeout) {
  impl_->core->read_timeout = timeout;
}

std::optional<std::string> http_server::start() {
  if (impl_->started) return std::string{"the server was already started"};
  auto core = impl_->core;
  auto& cfg = core->cfg;
  beast::error_code ec;
  auto address = net::ip::make_address(cfg.host, ec);
  if (ec) return "gateway host '" + cfg.host + "' is not an IP address: " + ec.message();
  tcp::endpoint ep{address, cfg.port};
  auto& acc = core->acceptor;
  acc.open(ep.protocol(), ec);
  if (!ec) acc.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acc.bind(ep, ec);
  if (!ec) acc.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    beast::error_code ignored;
    acc.close(ignored);
    return "cannot listen on " + cfg.host + ":" + std::to_string(cfg.port) + ": " + ec.message();
  }
  impl_->port = acc.local_endpoint(ec).port();
  impl_->started = true;
  accept_next(core);
  impl_->io_thread = std::thread{[core] {
    // A handler that throws is a bug; log it and keep serving rather than take the node down.
    for (;;) {
      try {
        core->ioc.run();
        return;
      } catch (const std::exception& e) {
        logger().error("I/O handler threw", {{"error", e.what()}});
      }
    }
  }};
  logger().info("gateway listening", {{"host", cfg.host}, {"port", std::to_string(port())}});
  return std::nullopt;
}

std::uint16_t http_server::port() const {
  return impl_->port;
}

void http_server::stop() {
  if (!impl_ || !impl_->started || impl_->stopped) return;
  impl_->stopped = true;
  auto core = impl_->core;
  net::post(core->ioc, [core] {
    beast::error_code ec;
    core->acceptor.close(ec);
    core->accept_retry.cancel();
    for (auto& w : core->sessions)
      if (auto s = w.lock()) s->close();
    core->sessions.clear();
    core->ioc.stop();
  });
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
}

} // namespace manifold::gateway
