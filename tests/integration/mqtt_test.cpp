// The mqtt connector against a real mosquitto broker on a free loopback port: readings in,
// actions out, bad payloads, and the broker going away and coming back.

#include <gtest/gtest.h>

#include <csignal>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/connectors/transport.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "support/processes.hpp"

namespace manifold {
namespace {

using namespace std::chrono_literals;
using test::child_process;
using test::run_command;
using test::wait_until;

/// A mosquitto broker bound to 127.0.0.1:port, stopped by pid.
class broker {
public:
  broker(const test::temp_dir& dir, std::uint16_t port, bool anonymous = true) {
    auto conf = dir.write("mosquitto-" + std::to_string(port) + ".conf",
                          "listener " + std::to_string(port) +
                              " 127.0.0.1\n"
                              "allow_anonymous " +
                              (anonymous ? "true" : "false") +
                              "\n"
                              "persistence false\n");
    log_ = dir.file("mosquitto-" + std::to_string(port) + "-" + std::to_string(starts_++) + ".log");
    proc_ = std::make_unique<child_process>(std::vector<std::string>{MOSQUITTO_BROKER, "-c", conf},
                                            log_);
    up_ = wait_until([&] { return test::port_open(port); }, 10s);
  }

  bool up() const { return up_; }
  pid_t pid() const { return proc_->pid(); }
  std::string log() const { return proc_->log(); }
  void stop() { proc_->stop(); }

private:
  static inline int starts_ = 0;
  std::string log_;
  std::unique_ptr<child_process> proc_;
  bool up_ = false;
};

const std::string fast_reconnect = "    reconnect_min: 100ms\n    reconnect_max: 1s\n";

std::string node_yaml(std::uint16_t port, const std::string& reconnect) {
  return "node:\n"
         "  id: mqtt-test\n"
         "connectors:\n"
         "  - name: plant\n"
         "    type: mqtt\n"
         "    port: " +
         std::to_string(port) + "\n" + reconnect +
         "    action_timeout: 3s\n"
         "    devices:\n"
         "      - name: boiler-1\n"
         "        points:\n"
         "          - name: temperature\n"
         "            type: double\n"
         "            topic: plant/boiler-1/temperature\n"
         "          - name: pressure\n"
         "            type: double\n"
         "            topic: plant/boiler-1/status\n"
         "            json_field: pressure.bar\n"
         "          - name: mode\n"
         "            type: string\n"
         "            topic: plant/boiler-1/status\n"
         "            json_field: mode\n"
         "        actions:\n"
         "          - name: set_mode\n"
         "            topic: plant/boiler-1/cmd\n"
         "            params:\n"
         "              - name: mode\n"
         "                type: string\n"
         "          - name: set_level\n"
         "            topic: plant/boiler-1/level\n"
         "            payload: param:level\n"
         "            qos: 0\n"
         "            params:\n"
         "              - name: level\n"
         "                type: double\n";
}

/// One node wired by hand: a data bus and the mqtt connector under its supervisor.
class node {
public:
  explicit node(std::uint16_t port, const std::string& reconnect = fast_reconnect) : sys_{cfg_} {
    auto loaded = config::load_string(node_yaml(port, reconnect), "mqtt_test.yaml",
                                      registry_.schemas(), registry_.names());
    if (!loaded.config) throw std::runtime_error(loaded.diag.to_string());
    bus_ = spawn_data_bus(sys_, nullptr);
    connectors::connector_context ctx;
    ctx.config = std::make_shared<const connector_config>(loaded.config->connectors.at(0));
    ctx.bus = bus_;
    ctx.transports = connectors::make_real_transports();
    supervisor_ = supervision::spawn_connector_supervisor(sys_, *registry_.find("mqtt"), ctx);
  }

  ~node() {
    caf::anon_send_exit(supervisor_, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus_, caf::exit_reason::user_shutdown);
  }

  std::optional<point_reading> reading(const std::string& point) {
    caf::scoped_actor self{sys_};
    std::optional<point_reading> out;
    self->request(bus_, 2s, get_atom::value, std::string{"boiler-1"}, point)
        .receive([&](point_reading& r) { out = std::move(r); }, [](caf::error&) {});
    return out;
  }

  connector_state state() {
    caf::scoped_actor self{sys_};
    auto out = connector_state::failed;
    self->request(supervisor_, 3s, status_atom::value)
        .receive([&](connector_status& s) { out = s.state; }, [](caf::error&) {});
    return out;
  }

  /// The action's value, or the error's code.
  std::variant<value, errc> set_mode(const std::string& mode) {
    return invoke({"boiler-1", "set_mode", {{"mode", value{mode}}}});
  }

  std::variant<value, errc> invoke(action_request req) {
    caf::scoped_actor self{sys_};
    std::variant<value, errc> out = errc::internal;
    self->request(supervisor_, 10s, invoke_atom::value, std::move(req))
        .receive([&](value& v) { out = std::move(v); }, [&](caf::error& e) { out = code_of(e); });
    return out;
  }

  std::variant<value, errc> write(const std::string& point) {
    caf::scoped_actor self{sys_};
    std::variant<value, errc> out = errc::internal;
    self->request(supervisor_, 10s, write_atom::value, std::string{"boiler-1"}, point, value{1.0})
        .receive([&](value& v) { out = std::move(v); }, [&](caf::error& e) { out = code_of(e); });
    return out;
  }

private:
  // The registry outlives the actor system: the supervisor keeps a pointer to the mqtt type.
  connectors::connector_registry registry_ = connectors::connector_registry::builtin();
  caf::actor_system_config cfg_;
  caf::actor_system sys_;
  caf::actor bus_;
  caf::actor supervisor_;
};

bool publish(std::uint16_t port, const std::string& topic, const std::vector<std::string>& body) {
  std::vector<std::string> argv{MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", std::to_string(port),
                                "-q",          "1",  "-t",        topic};
  argv.insert(argv.end(), body.begin(), body.end());
  return run_command(argv, 10s).exit_code == 0;
}

/// Publishes `-m payload` (or other body arguments) until `seen` holds: the connector may not
/// have subscribed yet when the first message goes out, and MQTT does not keep it for later.
bool publish_until(std::uint16_t port, const std::string& topic,
                   const std::vector<std::string>& body, const std::function<bool()>& seen) {
  for (int attempt = 0; attempt < 20; ++attempt) {
    if (!publish(port, topic, body)) continue;
    if (wait_until(seen, 500ms)) return true;
  }
  return false;
}

std::function<bool()> has(node& n, const std::string& point, quality q, value v = {}) {
  return [&n, point, q, v] {
    auto r = n.reading(point);
    return r && r->q == q && (std::holds_alternative<std::monostate>(v) || r->data == v);
  };
}

class mqtt_integration : public ::testing::Test {
protected:
  void SetUp() override {
    ASSERT_NE(std::string{MOSQUITTO_BROKER}, "") << "mosquitto not found (Debian: mosquitto)";
    ASSERT_NE(std::string{MOSQUITTO_PUB}, "") << "mosquitto_pub not found (mosquitto-clients)";
    port_ = test::free_port();
  }

  test::temp_dir dir_;
  std::uint16_t port_ = 0;
};

TEST_F(mqtt_integration, readings_actions_and_broker_outage) {
  auto b = std::make_unique<broker>(dir_, port_);
  ASSERT_TRUE(b->up()) << b->log();
  node n{port_};
  ASSERT_TRUE(wait_until([&] { return n.state() == connector_state::running; }, 10s));

  // A raw payload becomes a good reading.
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-m", "21.5"},
                            has(n, "temperature", quality::good, value{21.5})));

  // One JSON payload feeds two points through their fields.
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/status",
                            {"-m", R"({"pressure":{"bar":1.8},"mode":"eco"})"},
                            has(n, "pressure", quality::good, value{1.8})));
  EXPECT_TRUE(wait_until(has(n, "mode", quality::good, value{std::string{"eco"}}), 2s));

  // Garbage turns the points bad with a reason, and the node keeps working.
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/status", {"-m", "{not json"},
                            has(n, "pressure", quality::bad)));
  EXPECT_NE(n.reading("pressure")->reason.find("not valid JSON"), std::string::npos);
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-m", "hot"},
                            has(n, "temperature", quality::bad)));
  EXPECT_NE(n.reading("temperature")->reason.find("not a finite number"), std::string::npos);
  auto huge = dir_.write("huge", std::string(300 * 1024, '7'));
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-f", huge}, [&] {
    auto r = n.reading("temperature");
    return r && r->q == quality::bad && r->reason.find("exceeds") != std::string::npos;
  }));
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-m", "22.25"},
                            has(n, "temperature", quality::good, value{22.25})));
  EXPECT_EQ(n.state(), connector_state::running);

  // MQTT points are read-only.
  EXPECT_EQ(n.write("temperature"), (std::variant<value, errc>{errc::read_only}));

  // An action publishes JSON that a subscriber receives; the broker's ack answers true. The
  // subscriber may not be subscribed yet when the first command goes out, so repeat until it
  // has one (it exits after one message).
  child_process sub{{MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", std::to_string(port_), "-t",
                     "plant/boiler-1/cmd", "-C", "1", "-W", "30"},
                    dir_.file("sub.log")};
  bool received = false;
  for (int attempt = 0; attempt < 20 && !received; ++attempt) {
    EXPECT_EQ(n.set_mode("eco"), (std::variant<value, errc>{value{true}}));
    received = wait_until([&] { return sub.log().find('}') != std::string::npos; }, 500ms);
  }
  ASSERT_TRUE(received) << sub.log();
  EXPECT_EQ(sub.log(), "{\"mode\":\"eco\"}\n");
  EXPECT_EQ(sub.wait_exit(5s), 0);

  // The broker goes away: points turn stale (keeping their last value), actions fail fast.
  b->stop();
  ASSERT_TRUE(wait_until(has(n, "temperature", quality::stale), 10s));
  auto stale = n.reading("temperature");
  EXPECT_EQ(stale->data, value{22.25});
  EXPECT_NE(stale->reason.find("unreachable"), std::string::npos) << stale->reason;
  EXPECT_TRUE(wait_until(has(n, "mode", quality::stale), 2s));
  EXPECT_EQ(n.state(), connector_state::degraded);
  EXPECT_EQ(n.set_mode("eco"), (std::variant<value, errc>{errc::unavailable}));

  // The broker comes back on the same port: the connector reconnects, resubscribes, and readings
  // flow again.
  b = std::make_unique<broker>(dir_, port_);
  ASSERT_TRUE(b->up()) << b->log();
  ASSERT_TRUE(wait_until([&] { return n.state() == connector_state::running; }, 15s));
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-m", "23"},
                            has(n, "temperature", quality::good, value{23.0})));
  EXPECT_EQ(n.set_mode("off"), (std::variant<value, errc>{value{true}}));
}

TEST_F(mqtt_integration, connects_once_the_broker_appears) {
  node n{port_};
  // Nothing listens yet: the points are stale with a reason and the connector degraded.
  ASSERT_TRUE(wait_until(has(n, "temperature", quality::stale), 10s));
  EXPECT_NE(n.reading("temperature")->reason.find("unreachable"), std::string::npos);
  EXPECT_EQ(n.state(), connector_state::degraded);
  EXPECT_EQ(n.set_mode("eco"), (std::variant<value, errc>{errc::unavailable}));

  broker b{dir_, port_};
  ASSERT_TRUE(b.up()) << b.log();
  ASSERT_TRUE(wait_until([&] { return n.state() == connector_state::running; }, 15s));
  ASSERT_TRUE(publish_until(port_, "plant/boiler-1/temperature", {"-m", "19"},
                            has(n, "temperature", quality::good, value{19.0})));
}

TEST_F(mqtt_integration, raw_parameter_action_with_qos0) {
  broker b{dir_, port_};
  ASSERT_TRUE(b.up()) << b.log();
  node n{port_};
  ASSERT_TRUE(wait_until([&] { return n.state() == connector_state::running; }, 10s));
  child_process sub{{MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", std::to_string(port_), "-t",
                     "plant/boiler-1/level", "-C", "1", "-W", "30"},
                    dir_.file("sub.log")};
  bool received = false;
  for (int attempt = 0; attempt < 20 && !received; ++attempt) {
    EXPECT_EQ(n.invoke({"boiler-1", "set_level", {{"level", value{2.5}}}}),
              (std::variant<value, errc>{value{true}}));
    received = wait_until([&] { return sub.log().find('\n') != std::string::npos; }, 500ms);
  }
  ASSERT_TRUE(received) << sub.log();
  EXPECT_EQ(sub.log(), "2.5\n");
  // Unknown devices and actions are not found, not a crash.
  EXPECT_EQ(n.invoke({"boiler-9", "set_level", {}}), (std::variant<value, errc>{errc::not_found}));
  EXPECT_EQ(n.invoke({"boiler-1", "explode", {}}), (std::variant<value, errc>{errc::not_found}));
  EXPECT_EQ(n.invoke({"boiler-1", "set_level", {}}),
            (std::variant<value, errc>{errc::bad_request}));
}

TEST_F(mqtt_integration, action_times_out_when_the_broker_does_not_acknowledge) {
  broker b{dir_, port_};
  ASSERT_TRUE(b.up()) << b.log();
  node n{port_};
  ASSERT_TRUE(wait_until([&] { return n.state() == connector_state::running; }, 10s));
  EXPECT_EQ(n.set_mode("eco"), (std::variant<value, errc>{value{true}}));

  // A frozen broker keeps the connection open but sends no PUBACK: the action answers timeout
  // after action_timeout (3 s), and the late acknowledgement after thawing changes nothing.
  ASSERT_EQ(::kill(b.pid(), SIGSTOP), 0);
  auto started = std::chrono::steady_clock::now();
  auto frozen = n.set_mode("eco");
  auto waited = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(::kill(b.pid(), SIGCONT), 0);
  EXPECT_EQ(frozen, (std::variant<value, errc>{errc::timeout}));
  EXPECT_GE(waited, 2900ms);
  EXPECT_LT(waited, 8s);
  EXPECT_EQ(n.set_mode("off"), (std::variant<value, errc>{value{true}}));
  EXPECT_EQ(n.state(), connector_state::running);
}

TEST_F(mqtt_integration, refused_login_is_reported_without_the_password) {
  broker b{dir_, port_, /*anonymous=*/false}; // and no password file: every login is refused
  ASSERT_TRUE(b.up()) << b.log();
  ::setenv("MANIFOLD_TEST_MQTT_PASSWORD", "pw-never-shown", 1);
  testing::internal::CaptureStderr();
  {
    node n{port_, fast_reconnect +
                    "    username: manifold\n    password: {env: MANIFOLD_TEST_MQTT_PASSWORD}\n"};
    EXPECT_TRUE(wait_until(has(n, "temperature", quality::stale), 10s));
    auto r = n.reading("temperature");
    EXPECT_TRUE(r && r->reason.find("refused the connection: Connection Refused: not authorised") !=
                         std::string::npos)
        << (r ? r->reason : "");
    EXPECT_EQ(n.state(), connector_state::degraded);
    EXPECT_EQ(n.set_mode("eco"), (std::variant<value, errc>{errc::unavailable}));
  }
  auto log = testing::internal::GetCapturedStderr();
  EXPECT_NE(log.find("password=***"), std::string::npos) << log;
  EXPECT_EQ(log.find("pw-never-shown"), std::string::npos) << log;
}

TEST_F(mqtt_integration, stopping_while_the_broker_is_down_is_prompt) {
  broker b{dir_, port_};
  ASSERT_TRUE(b.up()) << b.log();
  // The first reconnect attempt comes 5 s after the loss; stopping must not wait for it.
  auto n = std::make_unique<node>(port_, "    reconnect_min: 5s\n    reconnect_max: 20s\n");
  ASSERT_TRUE(wait_until([&] { return n->state() == connector_state::running; }, 10s));
  b.stop();
  ASSERT_TRUE(wait_until([&] { return n->state() == connector_state::degraded; }, 10s));
  auto started = std::chrono::steady_clock::now();
  n.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

} // namespace
} // namespace manifold
