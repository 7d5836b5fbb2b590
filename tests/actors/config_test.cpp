// The node config loader: every bad-config kind is rejected with file:line and what was expected.

#include <gtest/gtest.h>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/sdk.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold;

/// A connector type with no keys of its own, so the generic point/action schema can be tested.
class plain_schema : public config::connector_schema {
public:
  void parse_connector(config::map_reader& r, connector_config& c) override {
    if (auto s = r.get_secret("password")) c.settings = *s;
  }
};

config::load_result load(const std::string& text, config::load_options options = {}) {
  static plain_schema plain;
  static auto builtin = connectors::connector_registry::builtin();
  static auto builtin_schemas = builtin.schemas();
  auto lookup = [](const std::string& t) -> config::connector_schema* {
    if (t == "plain") return &plain;
    return builtin_schemas(t);
  };
  auto names = builtin.names();
  names.push_back("plain");
  return config::load_string(text, "node.yaml", lookup, names, options);
}

/// The single diagnostic of a load that must fail, as `file:line:col: message`.
std::string only_error(const std::string& text, config::load_options options = {}) {
  auto r = load(text, options);
  EXPECT_FALSE(r.config.has_value());
  EXPECT_EQ(r.diag.items().size(), 1u) << r.diag.to_string();
  return r.diag.items().empty() ? std::string{} : r.diag.items().front().to_string();
}

const char* valid = R"(node:
  id: plant-1
  labels: {role: edge, site: plant-1}
gateway:
  listen: 127.0.0.1:0
connectors:
  - name: sim
    type: sim
    poll_interval: 250ms
    devices:
      - name: t1
        model: thermostat
  - name: p
    type: plain
    devices:
      - name: d1
        points:
          - {name: a, type: double, unit: bar, writable: true}
        actions:
          - name: go
            params:
              - {name: speed, type: int64, min: 0, max: 10}
              - {name: mode, type: string, default: eco}
            result: bool
)";

TEST(config, valid_config_loads_with_all_declarations) {
  auto r = load(valid);
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = *r.config;
  EXPECT_EQ(c.id, "plant-1");
  EXPECT_EQ(c.labels.at("site"), "plant-1");
  EXPECT_EQ(c.gateway.port, 0);
  ASSERT_EQ(c.connectors.size(), 2u);
  EXPECT_EQ(c.connectors[0].poll_interval, std::chrono::milliseconds{250});
  // The sim model declares its own points and actions.
  auto* t1 = c.connectors[0].device("t1");
  ASSERT_NE(t1, nullptr);
  EXPECT_NE(t1->point("temperature"), nullptr);
  EXPECT_NE(t1->action("set_setpoint"), nullptr);
  auto* go = c.connectors[1].devices[0].action("go");
  ASSERT_NE(go, nullptr);
  EXPECT_EQ(go->parameter("speed")->max, 10.0);
  EXPECT_FALSE(go->parameter("mode")->required);
  EXPECT_EQ(go->result, value_type::boolean);
}

TEST(config, unknown_key_is_reported_with_its_line_and_the_allowed_keys) {
  auto e = only_error("connectors:\n  - name: s\n    type: sim\n    pol_interval: 1s\n"
                      "    devices: []\n");
  EXPECT_NE(e.find("node.yaml:4:5: unknown key 'pol_interval'"), std::string::npos) << e;
  EXPECT_NE(e.find("poll_interval"), std::string::npos) << e;
}

TEST(config, unknown_top_level_key_is_rejected) {
  auto e = only_error("connectors: []\ngatway: {}\n");
  EXPECT_NE(e.find("node.yaml:2:1: unknown key 'gatway'"), std::string::npos) << e;
}

TEST(config, wrong_type_is_reported_with_what_was_expected) {
  auto e = only_error("gateway:\n  max_connections: many\nconnectors: []\n");
  EXPECT_NE(e.find("node.yaml:2:20: 'max_connections' must be an integer, got 'many'"),
            std::string::npos)
    << e;
  e = only_error("connectors:\n  - name: s\n    type: sim\n    devices: {a: 1}\n");
  EXPECT_NE(e.find("node.yaml:4:14: 'devices' must be a list"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: s\n    type: sim\n    poll_interval: 5 seconds\n"
                 "    devices: []\n");
  EXPECT_NE(e.find("must be a duration such as 250ms"), std::string::npos) << e;
}

TEST(config, out_of_range_values_are_rejected) {
  auto e = only_error("gateway:\n  listen: 127.0.0.1:70000\nconnectors: []\n");
  EXPECT_NE(e.find("node.yaml:2:11: 'listen' must be HOST:PORT"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: s\n    type: sim\n    poll_interval: 1ms\n"
                 "    devices: []\n");
  EXPECT_NE(e.find("'poll_interval' must be between 10ms and 24h, got 1ms"), std::string::npos)
    << e;
  e = only_error("node:\n  worker_threads: 1000\nconnectors: []\n");
  EXPECT_NE(e.find("between 0 and 256"), std::string::npos) << e;
}

TEST(config, duplicate_names_are_rejected_at_every_level) {
  auto e = only_error("connectors:\n  - {name: s, type: sim, devices: []}\n"
                      "  - {name: s, type: sim, devices: []}\n");
  EXPECT_NE(e.find("node.yaml:3:12: duplicate connector name 's'"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: s\n    type: sim\n    devices:\n"
                 "      - {name: d, model: counter}\n      - {name: d, model: switch}\n");
  EXPECT_NE(e.find("node.yaml:6:16: duplicate device name 'd'"), std::string::npos) << e;
  // Devices are addressed by name alone, so two connectors cannot share a device name.
  e = only_error("connectors:\n  - name: a\n    type: sim\n    devices: [{name: d, model: counter}]\n"
                 "  - name: b\n    type: sim\n    devices: [{name: d, model: counter}]\n");
  EXPECT_NE(e.find("connector 'a' already has a device of that name"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                 "        points: [{name: x}, {name: x}]\n");
  EXPECT_NE(e.find("duplicate point name 'x'"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                 "        actions: [{name: go}, {name: go}]\n");
  EXPECT_NE(e.find("duplicate action name 'go'"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                 "        actions: [{name: go, params: [{name: v, type: int64}, "
                 "{name: v, type: int64}]}]\n");
  EXPECT_NE(e.find("duplicate parameter 'v'"), std::string::npos) << e;
  e = only_error("connectors: []\nnode: {id: a}\nnode: {id: b}\n");
  EXPECT_NE(e.find("node.yaml:3:1: duplicate key 'node'"), std::string::npos) << e;
}

TEST(config, unknown_connector_type_names_the_known_ones) {
  auto e = only_error("connectors:\n  - {name: s, type: opcua, devices: []}\n");
  EXPECT_NE(e.find("unknown connector type 'opcua' (known types: sim"), std::string::npos) << e;
}

TEST(config, parameter_bounds_and_defaults_are_checked) {
  auto e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                      "        actions: [{name: go, params: [{name: v, type: string, min: 1}]}]\n");
  EXPECT_NE(e.find("'min' applies only to int64 and double parameters"), std::string::npos) << e;
  e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                 "        actions: [{name: go, params: [{name: v, type: int64, default: x}]}]\n");
  EXPECT_NE(e.find("'default' must be a int64"), std::string::npos) << e;
}

TEST(config, a_default_outside_min_and_max_is_rejected) {
  auto e = only_error("connectors:\n  - name: p\n    type: plain\n    devices:\n      - name: d\n"
                      "        actions: [{name: go, params: [{name: v, type: int64, min: 0, "
                      "max: 10, default: 50}]}]\n");
  EXPECT_NE(e.find("'default' must lie within 'min' and 'max'"), std::string::npos) << e;
}

TEST(config, a_counter_start_that_could_wrap_is_rejected) {
  auto e = only_error("connectors:\n  - name: s\n    type: sim\n    devices:\n"
                      "      - {name: c, model: counter, initial: 1e308}\n");
  EXPECT_NE(e.find("a counter's 'initial' must lie within -1e15 and 1e15"), std::string::npos)
    << e;
}

TEST(config, a_directory_is_not_a_config_file) {
  test::temp_dir dir;
  auto reg = connectors::connector_registry::builtin();
  auto r = config::load_file(dir.path(), reg.schemas(), reg.names());
  ASSERT_FALSE(r.config);
  EXPECT_EQ(r.diag.to_string(), dir.path() + ": is a directory, not a config file\n");
}

TEST(config, a_huge_file_is_refused_before_parsing) {
  test::temp_dir dir;
  auto path = dir.write("huge.yaml", "connectors: []\n# " + std::string(17u << 20, 'x') + "\n");
  auto reg = connectors::connector_registry::builtin();
  auto r = config::load_file(path, reg.schemas(), reg.names());
  ASSERT_FALSE(r.config);
  EXPECT_NE(r.diag.to_string().find("at most 16 MiB is accepted"), std::string::npos);
}

TEST(config, names_must_be_url_safe) {
  auto e = only_error("connectors:\n  - {name: 'my connector', type: sim, devices: []}\n");
  EXPECT_NE(e.find("'name' must be 1 to 64 letters, digits"), std::string::npos) << e;
}

TEST(config, syntax_errors_and_empty_files_are_reported) {
  auto e = only_error("connectors: [\n  - name: x\n");
  EXPECT_NE(e.find("node.yaml:"), std::string::npos);
  EXPECT_NE(e.find("not valid YAML"), std::string::npos) << e;
  e = only_error("");
  EXPECT_NE(e.find("the config is empty"), std::string::npos) << e;
  e = only_error("- just\n- a list\n");
  EXPECT_NE(e.find("the config must be a mapping"), std::string::npos) << e;
}

TEST(config, all_errors_are_reported_at_once) {
  auto r = load("gateway: {max_body_bytes: 0}\nconnectors:\n  - {name: s, type: sim, extra: 1, "
                "devices: [{name: d, model: toaster}]}\n");
  EXPECT_FALSE(r.config);
  EXPECT_EQ(r.diag.items().size(), 3u) << r.diag.to_string();
}

TEST(config, missing_file_is_a_clear_error) {
  auto reg = connectors::connector_registry::builtin();
  auto r = config::load_file("/nonexistent/manifold.yaml", reg.schemas(), reg.names());
  ASSERT_FALSE(r.config);
  EXPECT_EQ(r.diag.to_string(),
            "/nonexistent/manifold.yaml: cannot open the config file: No such file or directory\n");
}

// -- secrets ---------------------------------------------------------------------------------------

const char* with_secret = "connectors:\n  - name: p\n    type: plain\n    password: %s\n"
                          "    devices: []\n";

std::string secret_config(const std::string& ref) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), with_secret, ref.c_str());
  return buf;
}

TEST(config_secrets, a_secret_reference_reads_the_file_in_the_secrets_directory) {
  test::temp_dir dir;
  dir.write("broker-password", "hunter2\n");
  auto r = load(secret_config("{secret: broker-password}"), {dir.path()});
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto s = std::any_cast<secret>(r.config->connectors[0].settings);
  EXPECT_EQ(s.reveal(), "hunter2"); // The trailing newline is not part of the secret.
  EXPECT_EQ(s.reference(), "secret:broker-password");
}

TEST(config_secrets, node_secrets_dir_wins_over_the_default) {
  test::temp_dir dir;
  dir.write("pw", "s3cret");
  auto text = "node: {secrets_dir: '" + dir.path() + "'}\n" + secret_config("{secret: pw}");
  auto r = load(text, {"/nonexistent"});
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_EQ(std::any_cast<secret>(r.config->connectors[0].settings).reveal(), "s3cret");
}

TEST(config_secrets, an_env_reference_reads_the_variable) {
  ::setenv("MANIFOLD_TEST_PASSWORD", "from-env", 1);
  auto r = load(secret_config("{env: MANIFOLD_TEST_PASSWORD}"));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_EQ(std::any_cast<secret>(r.config->connectors[0].settings).reveal(), "from-env");
  auto missing = only_error(secret_config("{env: MANIFOLD_TEST_UNSET_VARIABLE}"));
  EXPECT_NE(missing.find("environment variable MANIFOLD_TEST_UNSET_VARIABLE is not set"),
            std::string::npos)
    << missing;
}

TEST(config_secrets, an_inline_credential_is_rejected_without_echoing_it) {
  auto e = only_error(secret_config("hunter2"));
  EXPECT_NE(e.find("node.yaml:4:15: 'password' must not be written inline"), std::string::npos)
    << e;
  EXPECT_EQ(e.find("hunter2"), std::string::npos) << e;
}

TEST(config_secrets, an_empty_secret_is_an_error_not_a_missing_password) {
  test::temp_dir dir;
  dir.write("blank", "\n");
  auto e = only_error(secret_config("{secret: blank}"), {dir.path()});
  EXPECT_NE(e.find("secret 'blank' is empty"), std::string::npos) << e;
  e = only_error(secret_config("{secret: ..}"), {dir.path()});
  EXPECT_NE(e.find("not starting with '.'"), std::string::npos) << e;
  ::setenv("MANIFOLD_TEST_EMPTY", "", 1);
  e = only_error(secret_config("{env: MANIFOLD_TEST_EMPTY}"));
  EXPECT_NE(e.find("environment variable MANIFOLD_TEST_EMPTY is empty"), std::string::npos) << e;
}

TEST(config_secrets, a_secret_value_written_into_another_field_is_not_echoed) {
  test::temp_dir dir;
  dir.write("pw", "Reused-Secret-9");
  auto r = load("connectors:\n  - name: p\n    type: plain\n    password: {secret: pw}\n"
                "    poll_interval: Reused-Secret-9\n    devices: []\n",
                {dir.path()});
  ASSERT_FALSE(r.config);
  EXPECT_EQ(r.diag.to_string().find("Reused-Secret-9"), std::string::npos) << r.diag.to_string();
  EXPECT_NE(r.diag.to_string().find("got '***'"), std::string::npos) << r.diag.to_string();
}

TEST(config_secrets, a_missing_secret_names_the_file_it_expected) {
  test::temp_dir dir;
  auto e = only_error(secret_config("{secret: nope}"));
  EXPECT_NE(e.find("secret 'nope' not found"), std::string::npos) << e;
  e = only_error(secret_config("{vault: x}"));
  EXPECT_NE(e.find("must be a reference {secret: NAME} or {env: VARIABLE}"), std::string::npos)
    << e;
  e = only_error(secret_config("{secret: ../etc/passwd}"));
  EXPECT_NE(e.find("secret name '../etc/passwd' must be"), std::string::npos) << e;
}

} // namespace

// -- cluster and placement ------------------------------------------------------------------------

namespace {

std::string cluster_yaml(const std::string& cluster, const std::string& placement) {
  return "node:\n  id: s1\n  labels: {role: server}\ncluster:\n" + cluster +
         "connectors:\n  - name: sim\n    type: sim\n" + placement +
         "    devices:\n      - name: t1\n        model: thermostat\n";
}

const char* with_etcd = "  listen: 127.0.0.1:0\n  seeds: [127.0.0.1:7401, '[::1]:7402']\n"
                        "  etcd:\n    endpoints: [http://127.0.0.1:2379]\n    lease_ttl: 4s\n"
                        "    fence_margin: 1s\n    request_timeout: 500ms\n";

} // namespace

TEST(config_cluster, a_cluster_with_etcd_and_a_movable_connector_loads) {
  auto r = load(cluster_yaml(with_etcd, "    placement: {selector: 'role=server,site=a', "
                                          "failover: true}\n"));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& cl = r.config->cluster;
  EXPECT_TRUE(cl.enabled);
  EXPECT_EQ(cl.port, 0);
  EXPECT_EQ(cl.seeds.size(), 2u);
  ASSERT_TRUE(cl.etcd);
  EXPECT_EQ(cl.etcd->lease_ttl, std::chrono::seconds{4});
  EXPECT_EQ(cl.connectors_digest.size(), 16u);
  auto& p = r.config->connectors.front().placement;
  EXPECT_TRUE(p.movable());
  EXPECT_EQ(p.selector.at("site"), "a");
  EXPECT_TRUE(p.matches({{"role", "server"}, {"site", "a"}, {"rack", "3"}}));
  EXPECT_FALSE(p.matches({{"role", "server"}}));
  EXPECT_EQ(p.to_string(), "role=server,site=a, failover");
}

TEST(config_cluster, the_digest_depends_on_the_connectors_only) {
  auto a = load(cluster_yaml(with_etcd, "    placement: {node: s1}\n"));
  auto b = load(cluster_yaml("  listen: 127.0.0.1:9\n", "    placement: {node: s1}\n"));
  auto c = load(cluster_yaml(with_etcd, "    placement: {node: s2}\n"));
  ASSERT_TRUE(a.config && b.config && c.config);
  EXPECT_EQ(a.config->cluster.connectors_digest, b.config->cluster.connectors_digest);
  EXPECT_NE(a.config->cluster.connectors_digest, c.config->cluster.connectors_digest);
}

TEST(config_cluster, every_connector_of_a_cluster_needs_a_placement) {
  auto e = only_error(cluster_yaml(with_etcd, ""));
  EXPECT_NE(e.find("node.yaml:13:5: connector 'sim': missing 'placement'"), std::string::npos)
    << e;
}

TEST(config_cluster, a_selector_without_etcd_is_refused) {
  auto e = only_error(cluster_yaml("  listen: 127.0.0.1:0\n",
                                     "    placement: {selector: role=server}\n"));
  EXPECT_NE(e.find("needs 'cluster.etcd'"), std::string::npos) << e;
}

TEST(config_cluster, a_pinned_connector_cannot_fail_over) {
  auto e = only_error(cluster_yaml(with_etcd, "    placement: {node: s1, failover: true}\n"));
  EXPECT_NE(e.find("cannot fail over"), std::string::npos) << e;
}

TEST(config_cluster, bad_placements_and_cluster_keys_name_what_was_expected) {
  EXPECT_NE(only_error(cluster_yaml(with_etcd, "    placement: {selector: 'role'}\n"))
              .find("must be LABEL=VALUE"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml(with_etcd, "    placement: {failover: true}\n"))
              .find("needs 'node: ID'"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml(with_etcd, "    placement: {node: s1, selector: a=b}\n"))
              .find("either 'node'"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml("  seeds: [nowhere]\n", "    placement: {node: s1}\n"))
              .find("a seed must be HOST:PORT with a port from 1 to 65535, got 'nowhere'"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml("  etcd: {endpoints: ['127.0.0.1:2379']}\n",
                                      "    placement: {node: s1}\n"))
              .find("must be http://HOST:PORT"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml("  heartbeat_interval: 2s\n  failure_timeout: 1s\n",
                                      "    placement: {node: s1}\n"))
              .find("must be longer than 'heartbeat_interval'"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml("  etcd: {endpoints: ['http://h:1'], lease_ttl: 2s, "
                                      "fence_margin: 1500ms}\n",
                                      "    placement: {node: s1}\n"))
              .find("at most half of 'lease_ttl'"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml("  tls: {certificate: /nonexistent/c.pem, key: /dev/null, ca: /dev/null}\n",
                                      "    placement: {node: s1}\n"))
              .find("'cluster.tls.certificate': cannot read '/nonexistent/c.pem'"),
            std::string::npos);
}

TEST(config_cluster, without_a_cluster_section_placement_is_optional) {
  auto r = load(valid);
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_FALSE(r.config->cluster.enabled);
}

TEST(config_cluster, advertise_must_be_a_dialable_address) {
  auto r = load(cluster_yaml("  listen: 0.0.0.0:7400\n  advertise: 10.0.0.5:7400\n",
                             "    placement: {node: s1}\n"));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_EQ(r.config->cluster.advertise, "10.0.0.5:7400");
  EXPECT_NE(only_error(cluster_yaml("  advertise: 10.0.0.5:0\n", "    placement: {node: s1}\n"))
              .find("'cluster.advertise' must be HOST:PORT"),
            std::string::npos);
}

TEST(config_cluster, the_digest_ignores_yaml_style_and_key_order) {
  auto block = load(cluster_yaml(with_etcd, "    poll_interval: 250ms\n    placement: {node: s1}\n"));
  auto flow = load("node:\n  id: s1\ncluster:\n" + std::string{with_etcd} +
                   "connectors:\n  - {placement: {node: s1}, devices: [{model: thermostat, "
                   "name: t1}], type: sim, poll_interval: 250ms, name: sim}\n");
  ASSERT_TRUE(block.config && flow.config) << block.diag.to_string() << flow.diag.to_string();
  EXPECT_EQ(block.config->cluster.connectors_digest, flow.config->cluster.connectors_digest);
}

TEST(config_cluster, seeds_and_selectors_must_say_one_thing) {
  EXPECT_NE(only_error(cluster_yaml("  seeds: ['http://127.0.0.1:80']\n",
                                    "    placement: {node: s1}\n"))
              .find("a seed must be HOST:PORT"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml(with_etcd, "    placement: {selector: 'role=a,role=b'}\n"))
              .find("each label once"),
            std::string::npos);
  EXPECT_NE(only_error(cluster_yaml(with_etcd, "    placement: {selector: 'a=b=c'}\n"))
              .find("must be LABEL=VALUE"),
            std::string::npos);
}
