// Context isolation: a connector sees only its own config and secrets, and no secret value
// surfaces through the API, the CLI, the logs, error messages, crash reports or the data bus.

#include <gtest/gtest.h>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>
#include <nlohmann/json.hpp>

#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/cli/node_runtime.hpp"
#include "support/http.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;
using json = nlohmann::json;

// -- a connector that shows what it can see ----------------------------------------------------------

class spy_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader& r, connector_config& c) override {
    if (auto s = r.get_secret("password", true)) c.settings = *s;
  }
  void parse_device(config::map_reader&, const connector_config&, device_config& d) override {
    point_config p;
    p.name = "seen";
    p.type = value_type::string;
    d.points.push_back(p);
    for (auto name : {"peek", "leak"}) {
      action_config a;
      a.name = name;
      a.result = value_type::string;
      d.actions.push_back(a);
    }
  }
};

struct spy_state {
  connectors::connector_context ctx;
};

/// Everything in the context that names a connector, a device or a credential.
std::string what_it_sees(const connectors::connector_context& ctx) {
  std::string out = "connector=" + ctx.config->name;
  for (auto& d : ctx.config->devices) out += " device=" + d.name;
  if (auto* s = std::any_cast<secret>(&ctx.config->settings)) out += " password=" + s->reveal();
  return out;
}

caf::behavior spy(caf::stateful_actor<spy_state>* self, connectors::connector_context ctx) {
  self->state.ctx = std::move(ctx);
  connectors::report_crashes(self, self->state.ctx);
  auto& c = self->state.ctx;
  for (auto& d : c.config->devices)
    connectors::publish(self, c, {c.name(), d.name, "seen", value{c.config->name}, quality::good,
                                  {}, now_timestamp()});
  return {
    [=](invoke_atom, action_request& req) -> value {
      auto& ctx = self->state.ctx;
      if (req.action == "leak")
        throw std::runtime_error("cannot log in with password " +
                                 std::any_cast<secret>(ctx.config->settings).reveal());
      return value{what_it_sees(ctx)};
    },
    [=](status_atom) { return connector_status{}; },
  };
}

/// `spy`: its schema and behaviour, one actor per instance.
using spy_type = connectors::basic_connector_type<spy_schema, &spy>;

// -- fixture -----------------------------------------------------------------------------------------

const std::string secret_a = "alpha-Secret-4711";
const std::string secret_b = "bravo-Secret-0815";

struct isolation_test : ::testing::Test {
  test::temp_dir dir;
  std::unique_ptr<cli::node_runtime> node;
  std::uint16_t port = 0;

  void SetUp() override {
    dir.write("a-password", secret_a + "\n");
    ::setenv("MANIFOLD_TEST_B_PASSWORD", secret_b.c_str(), 1);
    auto registry = connectors::connector_registry::builtin();
    registry.add(std::make_unique<spy_type>("spy"));
    auto text = "node: {secrets_dir: '" + dir.path() + "'}\n"
                "gateway: {listen: '127.0.0.1:0'}\n"
                "connectors:\n"
                "  - {name: a, type: spy, password: {secret: a-password}, devices: [{name: a1}]}\n"
                "  - name: b\n    type: spy\n    password: {env: MANIFOLD_TEST_B_PASSWORD}\n"
                "    restart: {initial_backoff: 10ms}\n    devices: [{name: b1}]\n"
                "  - name: m\n    type: mqtt\n    port: " + std::to_string(test::free_port()) +
                "\n    username: u\n    password: {secret: a-password}\n"
                "    devices: [{name: m1, points: [{name: t, topic: x/t}]}]\n";
    auto loaded = config::load_string(text, "iso.yaml", registry.schemas(), registry.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    node = std::make_unique<cli::node_runtime>(std::move(*loaded.config), std::move(registry));
    auto err = node->start();
    ASSERT_FALSE(err) << *err;
    port = node->port();
  }

  void TearDown() override { node.reset(); }

  static bool clean(const std::string& text) {
    return text.find(secret_a) == std::string::npos && text.find(secret_b) == std::string::npos;
  }
};

TEST_F(isolation_test, a_connector_sees_only_its_own_config_and_secret) {
  auto r = test::http_post(port, "/v1/devices/a1/actions/peek", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  // The connector itself does see its own secret (it needs it); nothing of b.
  auto seen = json::parse(r.body)["result"].get<std::string>();
  EXPECT_NE(seen.find("connector=a device=a1"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("b1"), std::string::npos) << seen;
  EXPECT_EQ(seen.find(secret_b), std::string::npos);
  // …and its answer, as it leaves through the API, is redacted like every other output.
  EXPECT_TRUE(clean(r.body)) << r.body;
  EXPECT_NE(r.body.find("password=***"), std::string::npos) << r.body;

  r = test::http_post(port, "/v1/devices/b1/actions/peek", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body.find("a1"), std::string::npos) << r.body;
}

TEST_F(isolation_test, no_secret_surfaces_in_api_cli_logs_or_crash_reports) {
  testing::internal::CaptureStderr();
  // A crash whose message carries the secret: the crash report is redacted everywhere.
  auto crash = test::http_post(port, "/v1/devices/b1/actions/leak", "{}");
  EXPECT_GE(crash.status, 500) << crash.body;
  EXPECT_TRUE(clean(crash.body)) << crash.body;
  ASSERT_TRUE(test::wait_until([&] {
    auto c = test::http_get(port, "/v1/connectors/b");
    return c.body.find("cannot log in") != std::string::npos;
  })) << test::http_get(port, "/v1/connectors/b").body;

  std::string everything;
  for (auto target : {"/v1/connectors", "/v1/connectors/a", "/v1/connectors/b", "/v1/connectors/m",
                      "/v1/devices", "/v1/devices/a1", "/v1/devices/b1", "/v1/devices/m1",
                      "/v1/devices/a1/points", "/metrics", "/readyz"})
    everything += test::http_get(port, target).body;
  EXPECT_TRUE(clean(everything)) << everything;
  EXPECT_NE(everything.find("cannot log in with password ***"), std::string::npos) << everything;

  auto url = "http://127.0.0.1:" + std::to_string(port);
  auto cli = test::run_command({MANIFOLD_BINARY, "connectors", "list", "--url", url});
  auto cli_json = test::run_command({MANIFOLD_BINARY, "connector", "status", "b", "--json",
                                     "--url", url});
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_TRUE(clean(cli.output + cli_json.output)) << cli.output << cli_json.output;

  node->stop();
  auto logs = testing::internal::GetCapturedStderr();
  EXPECT_TRUE(clean(logs)) << logs;
  EXPECT_NE(logs.find("***"), std::string::npos) << logs;
}

TEST_F(isolation_test, config_errors_never_echo_a_secret) {
  auto registry = connectors::connector_registry::builtin();
  registry.add(std::make_unique<spy_type>("spy"));
  auto r = config::load_string("connectors:\n  - {name: a, type: spy, password: " + secret_a +
                                 ", devices: []}\n",
                               "bad.yaml", registry.schemas(), registry.names());
  ASSERT_FALSE(r.config);
  EXPECT_TRUE(clean(r.diag.to_string())) << r.diag.to_string();
}

} // namespace
