// The ownership worker as a node runs it (a detached actor ticking against a lease store), with
// a store that starts throwing the way the etcd client does when the process runs out of file
// descriptors (std::system_error from its io_context).

#include "manifold/supervision/ownership_worker.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <system_error>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <nlohmann/json.hpp>

#include "manifold/actors/cluster.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/messages.hpp"
#include "manifold/connectors/sdk.hpp"
#include "manifold/supervision/memory_lease_store.hpp"
#include "support/processes.hpp"

namespace manifold {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
using supervision::lease_id;

/// The in-memory store, except that every call throws while `failing` is set.
class throwing_store final : public supervision::lease_store {
public:
  std::atomic<bool> failing{false};
  std::atomic<std::size_t> calls{0};

  caf::expected<lease_id> grant(std::chrono::milliseconds ttl) override {
    enter();
    return store_.grant(ttl);
  }
  caf::expected<std::chrono::milliseconds> keep_alive(lease_id id) override {
    enter();
    return store_.keep_alive(id);
  }
  caf::error revoke(lease_id id) override {
    enter();
    return store_.revoke(id);
  }
  caf::expected<bool> create(const std::string& key, const std::string& value, lease_id lease,
                             supervision::kv_entry* holder) override {
    enter();
    return store_.create(key, value, lease, holder);
  }
  caf::error put(const std::string& key, const std::string& value, lease_id lease) override {
    enter();
    return store_.put(key, value, lease);
  }
  caf::expected<bool> remove_if(const std::string& key, const std::string& expected) override {
    enter();
    return store_.remove_if(key, expected);
  }
  caf::error remove(const std::string& key) override {
    enter();
    return store_.remove(key);
  }
  caf::expected<std::vector<supervision::kv_entry>> range(const std::string& prefix) override {
    enter();
    return store_.range(prefix);
  }

private:
  void enter() {
    ++calls;
    if (failing)
      throw std::system_error{EMFILE, std::generic_category(), "etcd client: cannot open socket"};
  }

  // Its clock stays put: leases never expire, so only the worker's own handling is tested.
  supervision::memory_lease_store store_;
};

std::string view_of(caf::actor_system& sys, const caf::actor& worker) {
  caf::scoped_actor self{sys};
  std::string out;
  self->request(worker, 5s, cluster_atom::value)
    .receive([&](std::string& v) { out = v; },
             [&](caf::error& err) { out = "error: " + sys.render(err); });
  return out;
}

TEST(ownership_worker, a_store_that_throws_fails_rounds_without_ending_the_worker) {
  auto cfg = std::make_shared<node_config>();
  cfg->id = "a";
  cfg->cluster.enabled = true;
  cfg->cluster.name = "test";
  etcd_config etcd;
  etcd.endpoints = {"http://127.0.0.1:1"};
  etcd.lease_ttl = 2000ms;
  etcd.fence_margin = 600ms;
  etcd.request_timeout = 500ms;
  cfg->cluster.etcd = etcd;

  caf::actor_system_config sys_cfg;
  sys_cfg.set("scheduler.max-threads", 2);
  caf::actor_system sys{sys_cfg};
  auto store = std::make_shared<throwing_store>();
  auto fence = std::make_shared<connectors::ownership_fence>();
  supervision::ownership_worker_deps deps;
  deps.config = cfg;
  deps.directory = std::make_shared<cluster_directory>(cfg);
  deps.fence = fence;
  deps.store = store;
  deps.address = "127.0.0.1:7400";
  auto worker = supervision::spawn_ownership_worker(sys, deps);

  // Healthy first: the worker holds a lease and keeps moving the fence forward.
  ASSERT_TRUE(test::wait_until([&] { return fence->open(); }));

  // The store throws: rounds fail, the fence stays where the last good round put it.
  store->failing = true;
  ASSERT_TRUE(test::wait_until([&] {
    return view_of(sys, worker).find("Too many open files") != std::string::npos;
  })) << view_of(sys, worker);
  auto frozen = fence->until();
  auto calls = store->calls.load();
  ASSERT_TRUE(test::wait_until([&] { return store->calls >= calls + 3; }))
    << "the worker stopped ticking";
  EXPECT_EQ(fence->until(), frozen) << "a round that threw moved the fence";
  auto view = json::parse(view_of(sys, worker), nullptr, false);
  ASSERT_TRUE(view.is_object()) << view_of(sys, worker);
  EXPECT_FALSE(view["lease_healthy"].get<bool>());
  EXPECT_NE(view["last_error"].get<std::string>().find("ownership step failed: "),
            std::string::npos)
    << view.dump();

  // A request that reaches the store gets an error, not silence from a dead actor.
  caf::scoped_actor self{sys};
  self->request(worker, 5s, drain_atom::value, std::string{"a"}, true)
    .receive([&](std::string& s) { FAIL() << "drain succeeded: " << s; },
             [&](caf::error& err) {
               EXPECT_NE(message_of(err).find("drain failed: "), std::string::npos)
                 << sys.render(err);
             });

  // The store answers again: the next rounds renew the lease and move the fence on.
  store->failing = false;
  ASSERT_TRUE(test::wait_until([&] { return fence->until() > frozen; }));
  ASSERT_TRUE(test::wait_until([&] {
    auto v = json::parse(view_of(sys, worker), nullptr, false);
    return v.is_object() && v["lease_healthy"] == true &&
           v["last_error"].get<std::string>().find("ownership step failed") == std::string::npos;
  })) << view_of(sys, worker);

  self->request(worker, 5s, stop_atom::value).receive([](bool) {}, [](caf::error&) {});
  caf::anon_send_exit(worker, caf::exit_reason::user_shutdown);
}

} // namespace
} // namespace manifold
