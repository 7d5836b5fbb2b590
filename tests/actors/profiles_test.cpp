// The connector queue settings and the sized example profiles (edge, server): both load, both
// pass `manifold config check`, and each is sized as its comments say.

#include <gtest/gtest.h>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/sdk.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;

const std::string source_dir = MANIFOLD_SOURCE_DIR;

config::load_result load_example(const std::string& name) {
  auto registry = connectors::connector_registry::builtin();
  return config::load_file(source_dir + "/examples/" + name, registry.schemas(),
                           registry.names());
}

config::load_result load_text(const std::string& text) {
  auto registry = connectors::connector_registry::builtin();
  return config::load_string(text, "node.yaml", registry.schemas(), registry.names());
}

std::string with_queue(const std::string& queue) {
  return "connectors:\n"
         "  - name: a\n"
         "    type: sim\n" +
         queue +
         "    devices: [{name: x, model: counter}]\n";
}

TEST(queue_config, defaults_to_1024_dropping_the_oldest) {
  auto r = load_text(with_queue(""));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_EQ(r.config->connectors[0].queue.capacity, 1024u);
  EXPECT_EQ(r.config->connectors[0].queue.overflow, overflow_policy::drop_oldest);
}

TEST(queue_config, reads_capacity_and_policy) {
  auto r = load_text(with_queue("    queue: {capacity: 1048576, overflow: drop_newest}\n"));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  EXPECT_EQ(r.config->connectors[0].queue.capacity, 1048576u);
  EXPECT_EQ(r.config->connectors[0].queue.overflow, overflow_policy::drop_newest);
}

TEST(queue_config, bad_values_are_reported_with_their_place) {
  auto r = load_text(with_queue("    queue: {capacity: 0, overflow: drop_all, size: 3}\n"));
  ASSERT_FALSE(r.config);
  auto text = r.diag.to_string();
  ASSERT_EQ(r.diag.items().size(), 3u) << text;
  EXPECT_NE(text.find("node.yaml:4:"), std::string::npos) << text;
  EXPECT_NE(text.find("'capacity' must be between 1 and 1048576, got 0"), std::string::npos)
    << text;
  EXPECT_NE(text.find("drop_oldest, drop_newest"), std::string::npos) << text;
  EXPECT_NE(text.find("unknown key 'size'"), std::string::npos) << text;

  r = load_text(with_queue("    queue: {capacity: 1048577}\n"));
  EXPECT_FALSE(r.config);
  r = load_text(with_queue("    queue: [1, 2]\n"));
  EXPECT_FALSE(r.config);
  r = load_text(with_queue("    queue: {capacity: lots}\n"));
  EXPECT_FALSE(r.config);
}

TEST(profiles, edge_is_small) {
  auto r = load_example("edge.yaml");
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = *r.config;
  EXPECT_EQ(c.worker_threads, 1u);
  EXPECT_LE(c.gateway.max_connections, 32u);
  EXPECT_LE(c.gateway.max_body_bytes, 16u * 1024);
  EXPECT_LE(c.gateway.stream_queue_limit, 256u);
  ASSERT_FALSE(c.connectors.empty());
  for (auto& conn : c.connectors) {
    EXPECT_EQ(conn.type, "sim");
    EXPECT_LE(conn.queue.capacity, 256u) << conn.name;
  }
}

TEST(profiles, server_is_larger_than_edge) {
  auto edge = load_example("edge.yaml");
  auto server = load_example("server.yaml");
  ASSERT_TRUE(edge.config) << edge.diag.to_string();
  ASSERT_TRUE(server.config) << server.diag.to_string();
  auto& e = *edge.config;
  auto& s = *server.config;
  EXPECT_GT(s.worker_threads, e.worker_threads);
  EXPECT_GT(s.gateway.max_connections, e.gateway.max_connections);
  EXPECT_GT(s.gateway.max_body_bytes, e.gateway.max_body_bytes);
  EXPECT_GT(s.gateway.stream_queue_limit, e.gateway.stream_queue_limit);
  for (auto& conn : s.connectors) {
    EXPECT_EQ(conn.type, "sim");
    EXPECT_GT(conn.queue.capacity, e.connectors.front().queue.capacity) << conn.name;
  }
}

TEST(profiles, pass_manifold_config_check) {
  for (auto name : {"edge.yaml", "server.yaml"}) {
    auto res = test::run_command(
      {MANIFOLD_BINARY, "config", "check", source_dir + "/examples/" + name}, 30s);
    EXPECT_EQ(res.exit_code, 0) << name << ": " << res.output;
    EXPECT_NE(res.output.find(": ok ("), std::string::npos) << res.output;
  }
}

} // namespace
