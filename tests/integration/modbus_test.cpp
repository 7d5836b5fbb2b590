// The modbus connector against a real Modbus TCP server (tests/peers/modbus_server.py, pymodbus),
// cross-checked with mbpoll. The node is wired by hand: data bus, connector supervisor, real
// transports.

#include <csignal>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <memory>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include "manifold/actors/config.hpp"
#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/connectors/transport.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "support/processes.hpp"

namespace {

using namespace std::chrono_literals;
using namespace manifold;
using manifold::test::child_process;
using manifold::test::wait_until;

const std::string server_script =
  std::string{MANIFOLD_SOURCE_DIR} + "/tests/peers/modbus_server.py";

/// The pymodbus server on `port`, started and waited for.
class modbus_server {
public:
  modbus_server(std::uint16_t port, const manifold::test::temp_dir& dir, int generation,
                bool garbage = false)
    : port_(port) {
    auto log = dir.file("modbus_server_" + std::to_string(generation) + ".log");
    std::vector<std::string> argv{"/usr/bin/python3", server_script, std::to_string(port)};
    if (garbage) argv.push_back("--garbage");
    proc_ = std::make_unique<child_process>(std::move(argv), log);
    ready_ = wait_until([&] { return proc_->log().find("ready") != std::string::npos; }, 20s) &&
             manifold::test::port_open(port);
  }

  bool ready() const { return ready_; }
  std::string log() const { return proc_->log(); }
  void kill() { proc_->stop(SIGKILL); }

private:
  std::uint16_t port_;
  std::unique_ptr<child_process> proc_;
  bool ready_ = false;
};

/// A TCP port that accepts connections (the kernel completes them from the backlog) but never
/// reads or answers: a device that hangs.
class silent_listener {
public:
  silent_listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        ::listen(fd_, 4) == 0 && ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
      port_ = ntohs(addr.sin_port);
  }
  ~silent_listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  std::uint16_t port() const { return port_; }

private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

std::string node_yaml(std::uint16_t port, std::uint16_t dead_port, std::uint16_t silent_port,
                      std::uint16_t garbage_port) {
  auto p = std::to_string(port);
  return R"(node:
  id: modbus-test
connectors:
  - name: plc
    type: modbus
    port: )" + p + R"(
    timeout: 300ms
    poll_interval: 100ms
    action_timeout: 3s
    devices:
      - name: pump
        unit_id: 1
        points:
          - {name: speed, type: double, table: holding_register, address: 0, scale: 0.1,
             writable: true}
          - {name: raw16, type: int64, table: holding_register, address: 1, encoding: int16}
          - {name: level, type: int64, table: holding_register, address: 2, encoding: uint32}
          - {name: hr_float, type: double, table: holding_register, address: 10,
             encoding: float32}
          - {name: small, type: int64, table: holding_register, address: 20, encoding: int16,
             writable: true}
          - {name: rejecting, type: int64, table: holding_register, address: 900,
             writable: true}
          - {name: temperature, type: double, table: input_register, address: 0,
             encoding: float32}
          - {name: temp_swapped, type: double, table: input_register, address: 2,
             encoding: float32, word_order: little}
          - {name: broken, type: double, table: input_register, address: 5, encoding: float32}
          - {name: running, type: bool, table: coil, address: 0, writable: true}
          - {name: valve, type: bool, table: coil, address: 3, writable: true}
          - {name: alarm, type: bool, table: discrete_input, address: 0}
          - {name: beyond, type: int64, table: input_register, address: 5000}
        actions:
          - name: set_speed
            write: speed
            params: [{name: value, type: double}]
            result: double
  - name: nowhere
    type: modbus
    port: )" + std::to_string(dead_port) + R"(
    timeout: 200ms
    poll_interval: 100ms
    devices:
      - name: ghost
        points:
          - {name: level, type: int64, table: holding_register, address: 0, writable: true}
        actions:
          - name: set_level
            write: level
            params: [{name: value, type: int64}]
  - name: silent
    type: modbus
    port: )" + std::to_string(silent_port) + R"(
    timeout: 200ms
    poll_interval: 100ms
    devices:
      - name: mute
        points:
          - {name: level, type: int64, table: input_register, address: 0}
  - name: garbled
    type: modbus
    port: )" + std::to_string(garbage_port) + R"(
    timeout: 300ms
    poll_interval: 100ms
    devices:
      - name: liar
        points:
          - {name: level, type: int64, table: input_register, address: 0}
          - {name: setpoint, type: int64, table: holding_register, address: 0, writable: true}
)";
}

/// An answer from the connector: a value or an error.
struct answer {
  value v;
  caf::error err;
  errc code() const { return err ? code_of(err) : errc::none; }
};

class modbus_connector_test : public ::testing::Test {
protected:
  void SetUp() override {
    port_ = manifold::test::free_port();
    dead_port_ = manifold::test::free_port();
    server_ = std::make_unique<modbus_server>(port_, dir_, generation_++);
    ASSERT_TRUE(server_->ready()) << server_->log();
    garbage_port_ = manifold::test::free_port();
    garbage_ = std::make_unique<modbus_server>(garbage_port_, dir_, 100, true);
    ASSERT_TRUE(garbage_->ready()) << garbage_->log();

    ASSERT_NE(silent_.port(), 0);
    auto loaded = config::load_string(node_yaml(port_, dead_port_, silent_.port(), garbage_port_),
                                      "modbus_test.yaml",
                                      registry_.schemas(), registry_.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    config_ = std::move(*loaded.config);

    bus_ = spawn_data_bus(sys_, nullptr);
    for (auto& cc : config_.connectors) {
      auto ctx = connectors::make_connector_context(cc, bus_, nullptr,
                                                    connectors::make_real_transports());
      auto* type = registry_.find(cc.type);
      ASSERT_NE(type, nullptr);
      supervisors_.push_back(supervision::spawn_connector_supervisor(sys_, *type, ctx));
    }
  }

  void TearDown() override {
    for (auto& s : supervisors_) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus_, caf::exit_reason::user_shutdown);
  }

  std::optional<point_reading> get(const std::string& device, const std::string& point) {
    caf::scoped_actor self{sys_};
    std::optional<point_reading> out;
    self->request(bus_, 2s, get_atom::value, device, point)
      .receive([&](point_reading& r) { out = std::move(r); }, [&](caf::error&) {});
    return out;
  }

  bool wait_for_quality(const std::string& device, const std::string& point, quality q,
                        std::chrono::milliseconds deadline = 10s) {
    return wait_until(
      [&] {
        auto r = get(device, point);
        return r && r->q == q;
      },
      deadline);
  }

  answer call(const caf::actor& sup, caf::message msg) {
    caf::scoped_actor self{sys_};
    answer a;
    self->request(sup, 10s, std::move(msg))
      .receive([&](value& v) { a.v = std::move(v); }, [&](caf::error& e) { a.err = e; });
    return a;
  }

  answer invoke(const std::string& device, const std::string& action, value param,
                std::size_t connector = 0) {
    action_request req;
    req.device = device;
    req.action = action;
    req.params.emplace("value", std::move(param));
    return call(supervisors_.at(connector),
                caf::make_message(invoke_atom::value, std::move(req)));
  }

  answer write(const std::string& device, const std::string& point, value v,
               std::size_t connector = 0) {
    return call(supervisors_.at(connector),
                caf::make_message(write_atom::value, device, point, std::move(v)));
  }

  connector_status status(std::size_t connector) {
    caf::scoped_actor self{sys_};
    connector_status out;
    self->request(supervisors_.at(connector), 5s, status_atom::value)
      .receive([&](connector_status& s) { out = std::move(s); }, [&](caf::error&) {});
    return out;
  }

  /// Reads `count` registers of `table` (mbpoll's -t) at 0-based `address` with mbpoll.
  std::string mbpoll_read(int table, int address) {
    auto r = manifold::test::run_command({"mbpoll", "-m", "tcp", "-p", std::to_string(port_),
                                          "-a", "1", "-t", std::to_string(table), "-r",
                                          std::to_string(address + 1), "-c", "1", "-1",
                                          "127.0.0.1"},
                                         10s);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    auto at = r.output.find("[" + std::to_string(address + 1) + "]:");
    if (at == std::string::npos) return {};
    auto line_end = r.output.find('\n', at);
    auto text = r.output.substr(at, line_end - at);
    auto colon = text.find(':');
    auto first = text.find_first_not_of(" \t", colon + 1);
    auto last = text.find_first_of(" \t", first);
    return text.substr(first, last == std::string::npos ? std::string::npos : last - first);
  }

  void restart_server() {
    server_ = std::make_unique<modbus_server>(port_, dir_, generation_++);
    ASSERT_TRUE(server_->ready()) << server_->log();
  }

  manifold::test::temp_dir dir_;
  int generation_ = 0;
  std::uint16_t port_ = 0;
  std::uint16_t dead_port_ = 0;
  std::unique_ptr<modbus_server> server_;
  std::uint16_t garbage_port_ = 0;
  std::unique_ptr<modbus_server> garbage_;
  silent_listener silent_;
  connectors::connector_registry registry_ = connectors::connector_registry::builtin();
  node_config config_;
  caf::actor_system_config cfg_;
  caf::actor_system sys_{cfg_};
  caf::actor bus_;
  std::vector<caf::actor> supervisors_;
};

TEST_F(modbus_connector_test, polled_values_are_decoded_with_good_quality) {
  ASSERT_TRUE(wait_for_quality("pump", "speed", quality::good));
  auto expect_value = [&](const std::string& point, value v) {
    ASSERT_TRUE(wait_for_quality("pump", point, quality::good)) << point;
    auto r = get("pump", point);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->connector, "plc");
    if (auto* d = std::get_if<double>(&v)) {
      ASSERT_TRUE(std::holds_alternative<double>(r->data)) << point;
      EXPECT_NEAR(std::get<double>(r->data), *d, 1e-9) << point;
    } else {
      EXPECT_EQ(r->data, v) << point << ": " << to_display_string(r->data);
    }
  };
  expect_value("speed", 12.3);
  expect_value("raw16", std::int64_t{-1});
  expect_value("level", std::int64_t{65538});
  expect_value("hr_float", 12.5);
  expect_value("temperature", 12.5);
  expect_value("temp_swapped", 12.5);
  expect_value("running", true);
  expect_value("valve", false);
  expect_value("alarm", true);

  // NaN in the registers is a bad reading with a reason, not a value.
  ASSERT_TRUE(wait_for_quality("pump", "broken", quality::bad));
  EXPECT_NE(get("pump", "broken")->reason.find("NaN"), std::string::npos);
  // An address the server does not have: the read's points are bad, the device stays reachable.
  ASSERT_TRUE(wait_for_quality("pump", "beyond", quality::bad));
  EXPECT_NE(get("pump", "beyond")->reason.find("exception 2"), std::string::npos)
    << get("pump", "beyond")->reason;

  // Later polls reuse the connection instead of opening one per poll (the server logs a line
  // per connection; the readiness check made one too).
  auto connections = [&] {
    auto log = server_->log();
    std::size_t n = 0;
    for (auto at = log.find("client connected"); at != std::string::npos;
         at = log.find("client connected", at + 1))
      ++n;
    return n;
  };
  auto before = connections();
  EXPECT_LE(before, 2u);
  auto first = get("pump", "temperature")->source_time;
  ASSERT_TRUE(wait_until([&] {
    auto r = get("pump", "temperature");
    return r && r->source_time > first + 300'000'000; // at least three polls later
  }));
  EXPECT_EQ(connections(), before) << server_->log();

  auto s = status(0);
  EXPECT_EQ(s.state, connector_state::running);
  EXPECT_TRUE(s.unreachable_devices.empty());
}

TEST_F(modbus_connector_test, an_action_writes_a_register_that_mbpoll_reads_back) {
  ASSERT_TRUE(wait_for_quality("pump", "speed", quality::good));
  auto a = invoke("pump", "set_speed", 45.6);
  ASSERT_FALSE(a.err) << message_of(a.err);
  ASSERT_TRUE(std::holds_alternative<double>(a.v));
  EXPECT_NEAR(std::get<double>(a.v), 45.6, 1e-9);
  EXPECT_EQ(mbpoll_read(4, 0), "456");

  // The new value is published right away and the poll agrees.
  auto r = get("pump", "speed");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->q, quality::good);
  EXPECT_NEAR(std::get<double>(r->data), 45.6, 1e-9);

  // A point write of a signed register.
  auto w = write("pump", "small", std::int64_t{-2});
  ASSERT_FALSE(w.err) << message_of(w.err);
  EXPECT_EQ(w.v, value{std::int64_t{-2}});
  EXPECT_EQ(mbpoll_read(4, 20), "65534");
}

TEST_F(modbus_connector_test, a_coil_write_changes_the_coil) {
  ASSERT_TRUE(wait_for_quality("pump", "running", quality::good));
  auto a = write("pump", "running", false);
  ASSERT_FALSE(a.err) << message_of(a.err);
  EXPECT_EQ(a.v, value{false});
  EXPECT_EQ(mbpoll_read(0, 0), "0");
  auto b = write("pump", "valve", true);
  ASSERT_FALSE(b.err) << message_of(b.err);
  EXPECT_EQ(mbpoll_read(0, 3), "1");
  EXPECT_TRUE(wait_until([&] {
    auto r = get("pump", "valve");
    return r && r->q == quality::good && r->data == value{true};
  }));
}

TEST_F(modbus_connector_test, bad_writes_are_refused_with_the_right_error) {
  ASSERT_TRUE(wait_for_quality("pump", "speed", quality::good));
  // 7000 / 0.1 does not fit a uint16: refused, not wrapped.
  auto big = invoke("pump", "set_speed", 7000.0);
  EXPECT_EQ(big.code(), errc::bad_request) << message_of(big.err);
  EXPECT_EQ(mbpoll_read(4, 0), "123");
  auto small = write("pump", "small", std::int64_t{40000});
  EXPECT_EQ(small.code(), errc::bad_request) << message_of(small.err);

  auto ro = write("pump", "temperature", 1.0);
  EXPECT_EQ(ro.code(), errc::read_only) << message_of(ro.err);
  auto di = write("pump", "alarm", false);
  EXPECT_EQ(di.code(), errc::read_only) << message_of(di.err);

  auto rejected = write("pump", "rejecting", std::int64_t{5});
  EXPECT_EQ(rejected.code(), errc::device_error) << message_of(rejected.err);
  EXPECT_NE(message_of(rejected.err).find("exception 4"), std::string::npos)
    << message_of(rejected.err);
  EXPECT_NE(message_of(rejected.err).find("server device failure"), std::string::npos);

  EXPECT_EQ(write("nobody", "speed", 1.0).code(), errc::not_found);
  EXPECT_EQ(write("pump", "nothing", 1.0).code(), errc::not_found);
  EXPECT_EQ(invoke("pump", "fly", 1.0).code(), errc::not_found);

  // The device keeps answering after all that.
  EXPECT_EQ(status(0).state, connector_state::running);
  auto ok = invoke("pump", "set_speed", 1.5);
  EXPECT_FALSE(ok.err) << message_of(ok.err);
}

TEST_F(modbus_connector_test, a_lost_server_makes_points_stale_and_comes_back) {
  ASSERT_TRUE(wait_for_quality("pump", "temperature", quality::good));
  server_->kill();

  EXPECT_TRUE(wait_for_quality("pump", "temperature", quality::stale));
  EXPECT_TRUE(wait_for_quality("pump", "running", quality::stale));
  auto s = status(0);
  EXPECT_EQ(s.state, connector_state::degraded);
  EXPECT_EQ(s.unreachable_devices, std::vector<std::string>{"pump"});
  EXPECT_EQ(s.last_error.rfind("device 'pump' unreachable: ", 0), 0u) << s.last_error;
  auto a = invoke("pump", "set_speed", 10.0);
  EXPECT_EQ(a.code(), errc::unavailable) << message_of(a.err);
  auto w = write("pump", "running", true);
  EXPECT_EQ(w.code(), errc::unavailable) << message_of(w.err);

  restart_server();
  EXPECT_TRUE(wait_for_quality("pump", "temperature", quality::good));
  EXPECT_TRUE(wait_until([&] { return status(0).state == connector_state::running; }));
  EXPECT_EQ(status(0).last_error, "");
  auto again = invoke("pump", "set_speed", 10.0);
  EXPECT_FALSE(again.err) << message_of(again.err);
  EXPECT_EQ(mbpoll_read(4, 0), "100");
  // The supervisor never had to restart the connector.
  EXPECT_EQ(status(0).restarts, 0u);
}

TEST_F(modbus_connector_test, a_device_that_never_answers_times_out_into_stale_points) {
  EXPECT_TRUE(wait_for_quality("mute", "level", quality::stale));
  auto s = status(2);
  EXPECT_EQ(s.state, connector_state::degraded);
  EXPECT_EQ(s.unreachable_devices, std::vector<std::string>{"mute"});
  EXPECT_EQ(s.restarts, 0u);
  EXPECT_TRUE(wait_for_quality("pump", "speed", quality::good));
}

TEST_F(modbus_connector_test, garbage_replies_give_bad_points_and_failed_writes_not_a_crash) {
  ASSERT_TRUE(wait_for_quality("liar", "level", quality::bad));
  EXPECT_FALSE(get("liar", "level")->reason.empty());
  auto w = write("liar", "setpoint", std::int64_t{1}, 3);
  EXPECT_TRUE(w.code() == errc::device_error || w.code() == errc::unavailable)
    << to_string(w.code()) << ": " << message_of(w.err);
  // Still polling after the failed write, never restarted.
  auto since = get("liar", "level")->source_time;
  EXPECT_TRUE(wait_until([&] {
    auto r = get("liar", "level");
    return r && r->source_time > since;
  }));
  EXPECT_EQ(status(3).restarts, 0u);
  EXPECT_TRUE(wait_for_quality("pump", "speed", quality::good));
}

TEST_F(modbus_connector_test, a_port_with_nothing_listening_gives_stale_points_not_a_crash) {
  EXPECT_TRUE(wait_for_quality("ghost", "level", quality::stale));
  auto s = status(1);
  EXPECT_EQ(s.state, connector_state::degraded);
  EXPECT_EQ(s.unreachable_devices, std::vector<std::string>{"ghost"});
  auto a = invoke("ghost", "set_level", std::int64_t{3}, 1);
  EXPECT_EQ(a.code(), errc::unavailable) << message_of(a.err);
  // The other connector is unaffected.
  EXPECT_TRUE(wait_for_quality("pump", "speed", quality::good));
  // Polls went on failing meanwhile: still degraded, never restarted.
  auto later = status(1);
  EXPECT_EQ(later.state, connector_state::degraded);
  EXPECT_EQ(later.restarts, 0u);
}

} // namespace

namespace {

TEST_F(modbus_connector_test, a_closed_ownership_fence_keeps_the_connector_off_the_device) {
  auto loaded = config::load_string(R"(connectors:
  - name: fenced
    type: modbus
    port: )" + std::to_string(port_) + R"(
    poll_interval: 50ms
    devices:
      - name: fenced_pump
        points:
          - {name: speed, type: int64, table: holding_register, address: 0, writable: true}
        actions:
          - {name: set_speed, write: speed, params: [{name: value, type: int64}]}
)",
                                    "fenced.yaml", registry_.schemas(), registry_.names());
  ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
  auto fence = std::make_shared<connectors::ownership_fence>();
  auto ctx = connectors::make_connector_context(loaded.config->connectors.front(), bus_, nullptr,
                                                connectors::make_real_transports());
  ctx.fence = fence;
  supervisors_.push_back(supervision::spawn_connector_supervisor(
    sys_, *registry_.find("modbus"), ctx));
  auto fenced = supervisors_.size() - 1;

  // While the unfenced connector polls several times, the fenced one reads nothing...
  ASSERT_TRUE(wait_for_quality("pump", "speed", quality::good));
  auto first = get("pump", "speed")->source_time;
  ASSERT_TRUE(wait_until([&] {
    auto r = get("pump", "speed");
    return r && r->source_time > first + 300'000'000;
  }));
  EXPECT_FALSE(get("fenced_pump", "speed").has_value());
  // ...and writes nothing: the call is refused with the reason.
  auto refused = invoke("fenced_pump", "set_speed", std::int64_t{77}, fenced);
  EXPECT_EQ(refused.code(), errc::unavailable);
  EXPECT_NE(message_of(refused.err).find("ownership lease"), std::string::npos)
    << message_of(refused.err);
  EXPECT_NE(mbpoll_read(4, 0), "77");

  // Open the fence: it polls and writes.
  fence->extend_until(connectors::ownership_fence::clock::now() + 1h);
  ASSERT_TRUE(wait_for_quality("fenced_pump", "speed", quality::good));
  EXPECT_EQ(invoke("fenced_pump", "set_speed", std::int64_t{77}, fenced).code(), errc::none);
  EXPECT_EQ(mbpoll_read(4, 0), "77");
}

} // namespace
