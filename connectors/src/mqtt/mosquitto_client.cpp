// The real MQTT client: libmosquitto with its own network thread.

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <utility>

#include <mosquitto.h>

#include "manifold/actors/log.hpp"
#include "manifold/connectors/mqtt_transport.hpp"

namespace manifold::connectors {

namespace {

const log::logger mqtt_log{"mqtt"};

std::once_flag lib_init_once;

/// libmosquitto counts reconnect delays in whole seconds; round up, at least 1 s.
unsigned int whole_seconds(std::chrono::milliseconds d) {
  auto s = (d.count() + 999) / 1000;
  return static_cast<unsigned int>(std::max<std::int64_t>(1, s));
}

class mosquitto_client : public mqtt_client {
public:
  explicit mosquitto_client(mqtt_client_options opts) : opts_(std::move(opts)) {
    // The library keeps process-wide state (SSL, sockets on some platforms); initialise it once
    // and never clean it up, since other clients may still run.
    std::call_once(lib_init_once, [] { mosquitto_lib_init(); });
  }

  ~mosquitto_client() override { stop(); }

  void start(mqtt_handlers handlers) override {
    if (mosq_) return;
    handlers_ = std::move(handlers);
    mosq_ = mosquitto_new(opts_.client_id.empty() ? nullptr : opts_.client_id.c_str(),
                          /*clean_session=*/true, this);
    if (!mosq_) {
      report_disconnect("cannot create an MQTT client (out of memory or invalid client id)");
      return;
    }
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (!opts_.username.empty())
      mosquitto_username_pw_set(mosq_, opts_.username.c_str(),
                                opts_.password.empty() ? nullptr : opts_.password.c_str());
    // Backoff grows from the minimum to the maximum delay between attempts.
    // TODO(mqtt): libmosquitto counts these delays in whole seconds, so a reconnect_min below 1s
    // is rounded up to 1s; a sub-second first retry would need our own reconnect loop.
    auto min = whole_seconds(opts_.reconnect_min);
    auto max = std::max(min, whole_seconds(opts_.reconnect_max));
    mosquitto_reconnect_delay_set(mosq_, min, max, /*exponential=*/true);
    mosquitto_connect_callback_set(mosq_, &on_connect);
    mosquitto_disconnect_callback_set(mosq_, &on_disconnect);
    mosquitto_message_callback_set(mosq_, &on_message);
    mosquitto_publish_callback_set(mosq_, &on_publish);

    auto rc = mosquitto_connect_async(mosq_, opts_.host.c_str(), opts_.port,
                                      static_cast<int>(opts_.keepalive.count()));
    bool first_attempt_failed = rc != MOSQ_ERR_SUCCESS;
    if (first_attempt_failed) report_disconnect(describe(rc));
    rc = mosquitto_loop_start(mosq_);
    if (rc != MOSQ_ERR_SUCCESS) {
      mqtt_log.error("cannot start the MQTT network thread",
                     {{"client_id", opts_.client_id}, {"error", mosquitto_strerror(rc)}});
      report_disconnect(std::string{"cannot start the network thread: "} + mosquitto_strerror(rc));
      mosquitto_destroy(mosq_);
      mosq_ = nullptr;
      return;
    }
    loop_running_ = true;
    // libmosquitto's thread retries only once a first attempt got under way; a first attempt
    // refused on the spot (nothing listening on a local port, a name that does not resolve)
    // leaves it waiting for good (eclipse/mosquitto#1903). Retry that first attempt ourselves.
    if (first_attempt_failed) retry_thread_ = std::thread{[this] { retry_first_connect(); }};
  }

  bool subscribe(const std::string& topic, int qos, std::string& error) override {
    if (!mosq_) return error = "the client is not started", false;
    auto rc = mosquitto_subscribe(mosq_, nullptr, topic.c_str(), qos);
    if (rc != MOSQ_ERR_SUCCESS) return error = mosquitto_strerror(rc), false;
    return true;
  }

  int publish(const std::string& topic, const std::string& payload, int qos, bool retain,
              std::string& error) override {
    if (!mosq_) return error = "the client is not started", -1;
    int mid = -1;
    auto rc = mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()),
                                payload.data(), qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) return error = mosquitto_strerror(rc), -1;
    return mid;
  }

  void stop() override {
    if (!mosq_) return;
    // No callbacks from here on: the owner may be going away.
    {
      std::lock_guard<std::mutex> lock{retry_mutex_};
      stopping_ = true;
    }
    retry_wakeup_.notify_all();
    if (retry_thread_.joinable()) retry_thread_.join();
    mosquitto_disconnect(mosq_);
    // Wakes the thread if it sleeps between reconnect attempts, then joins it.
    if (loop_running_) mosquitto_loop_stop(mosq_, /*force=*/false);
    loop_running_ = false;
    mosquitto_destroy(mosq_);
    mosq_ = nullptr;
    handlers_ = {};
  }

private:
  static mosquitto_client* self(void* user) { return static_cast<mosquitto_client*>(user); }

  static std::string describe(int rc) {
    // MOSQ_ERR_ERRNO means "see errno", which mosquitto_strerror cannot show.
    if (rc == MOSQ_ERR_ERRNO) return std::string{"connection failed: "} + std::strerror(errno);
    return mosquitto_strerror(rc);
  }

  /// Repeats the first connect with backoff until it gets under way or `stop` is called; from
  /// then on libmosquitto's thread reconnects by itself.
  void retry_first_connect() {
    auto delay = opts_.reconnect_min;
    std::unique_lock<std::mutex> lock{retry_mutex_};
    for (;;) {
      if (retry_wakeup_.wait_for(lock, delay, [this] { return stopping_.load(); })) return;
      auto rc = mosquitto_reconnect_async(mosq_);
      if (rc == MOSQ_ERR_SUCCESS) return;
      delay = std::min(delay * 2, opts_.reconnect_max);
    }
  }

  void report_disconnect(const std::string& reason) {
    if (!stopping_ && handlers_.on_disconnect) handlers_.on_disconnect(reason);
  }

  // -- callbacks, on libmosquitto's thread --------------------------------------------------------

  static void on_connect(mosquitto*, void* user, int rc) {
    auto* c = self(user);
    if (c->stopping_) return;
    if (rc != 0) {
      // The broker answered but refused us (bad credentials, client id taken, …). The library
      // follows with a disconnect; the refusal is the better reason for that one too.
      c->refusal_ = std::string{"broker refused the connection: "} + mosquitto_connack_string(rc);
      c->report_disconnect(c->refusal_);
      return;
    }
    if (c->handlers_.on_connect) c->handlers_.on_connect();
  }

  static void on_disconnect(mosquitto*, void* user, int rc) {
    auto* c = self(user);
    if (!c->refusal_.empty())
      c->report_disconnect(std::exchange(c->refusal_, std::string{}));
    else
      c->report_disconnect(rc == 0 ? std::string{"disconnected by the client"}
                                   : std::string{"connection lost: "} + mosquitto_strerror(rc));
  }

  static void on_message(mosquitto*, void* user, const mosquitto_message* m) {
    auto* c = self(user);
    if (c->stopping_ || !c->handlers_.on_message || !m || !m->topic) return;
    std::string payload;
    if (m->payload && m->payloadlen > 0)
      payload.assign(static_cast<const char*>(m->payload), static_cast<std::size_t>(m->payloadlen));
    c->handlers_.on_message(m->topic, payload);
  }

  static void on_publish(mosquitto*, void* user, int mid) {
    auto* c = self(user);
    if (!c->stopping_ && c->handlers_.on_published) c->handlers_.on_published(mid);
  }

  mqtt_client_options opts_;
  mqtt_handlers handlers_;
  mosquitto* mosq_ = nullptr;
  bool loop_running_ = false;
  std::atomic<bool> stopping_{false};
  std::string refusal_; ///< Only touched on libmosquitto's thread.
  std::thread retry_thread_;
  std::mutex retry_mutex_;
  std::condition_variable retry_wakeup_;
};

} // namespace

std::unique_ptr<mqtt_client> make_mosquitto_client(const mqtt_client_options& opts) {
  return std::make_unique<mosquitto_client>(opts);
}

} // namespace manifold::connectors
