#include "manifold/supervision/lease_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "manifold/actors/errors.hpp"
#include "manifold/supervision/etcd_lease_store.hpp"
#include "manifold/supervision/memory_lease_store.hpp"
#include "support/processes.hpp"

// The lease_store contract, run against every implementation in `lease_store_backends`, plus
// what only etcd_lease_store has (endpoints, transport failures) against a real etcd.

namespace manifold::supervision {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

/// The etcd every test of this file shares; each test works under its own key prefix.
test::etcd_process& shared_etcd() {
  static auto process = std::make_unique<test::etcd_process>();
  return *process;
}

std::unique_ptr<etcd_lease_store> make_etcd_store(std::vector<std::string> endpoints,
                                                  std::chrono::milliseconds timeout = 2s) {
  etcd_config cfg;
  cfg.endpoints = std::move(endpoints);
  cfg.request_timeout = timeout;
  auto store = etcd_lease_store::make(cfg);
  if (!store) throw std::runtime_error("etcd_lease_store::make: " + message_of(store.error()));
  return std::move(*store);
}

std::string current_test_name() {
  return ::testing::UnitTest::GetInstance()->current_test_info()->name();
}

// -- backends -------------------------------------------------------------------------------------
// A backend gives the contract tests a store and a way to let time pass:
//   lease_store& store();
//   clock_type::time_point now();             the store's clock (real or virtual)
//   bool elapse_until(std::function<bool()> condition, std::chrono::milliseconds limit);
//                                             lets time pass until `condition` holds; false if
//                                             `limit` passed first
// Another implementation joins every contract test with a backend and one entry in
// `lease_store_backends`.

/// A real etcd; time passes for real.
class etcd_backend {
public:
  etcd_backend() : store_(make_etcd_store({shared_etcd().endpoint()})) {}

  lease_store& store() { return *store_; }
  clock_type::time_point now() { return clock_type::now(); }
  bool elapse_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
    return test::wait_until(condition, limit);
  }

private:
  std::unique_ptr<etcd_lease_store> store_;
};

/// The in-memory store; time is virtual and passes in 10 ms ticks, only while a test waits.
class memory_backend {
public:
  lease_store& store() { return store_; }
  clock_type::time_point now() { return now_; }
  bool elapse_until(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
    auto deadline = now_ + limit;
    while (!condition()) {
      if (now_ >= deadline) return false;
      now_ += 10ms;
      store_.set_now(now_);
    }
    return true;
  }

private:
  clock_type::time_point now_ = clock_type::time_point{} + 1h;
  memory_lease_store store_{now_};
};

using lease_store_backends = ::testing::Types<etcd_backend, memory_backend>;

// -- the contract ---------------------------------------------------------------------------------

template <class Backend> class lease_store_contract : public ::testing::Test {
protected:
  lease_store& store() { return backend_.store(); }

  /// A key under this test's own prefix, so tests sharing one store never see each other.
  std::string key(const std::string& name) { return prefix() + name; }
  std::string prefix() { return "/contract/" + current_test_name() + "/"; }

  std::vector<std::string> keys_under(const std::string& prefix) {
    auto entries = store().range(prefix);
    EXPECT_TRUE(entries) << message_of(entries.error());
    std::vector<std::string> out;
    if (entries)
      for (auto& e : *entries)
        out.push_back(e.key);
    return out;
  }

  Backend backend_;
};

TYPED_TEST_SUITE(lease_store_contract, lease_store_backends);

TYPED_TEST(lease_store_contract, grants_distinct_leases_that_keep_alive_renews) {
  auto a = this->store().grant(1s);
  auto b = this->store().grant(1s);
  ASSERT_TRUE(a) << message_of(a.error());
  ASSERT_TRUE(b) << message_of(b.error());
  EXPECT_GT(*a, 0);
  EXPECT_NE(*a, *b);

  auto ttl = this->store().keep_alive(*a);
  ASSERT_TRUE(ttl) << message_of(ttl.error());
  EXPECT_GE(*ttl, 1s);
  EXPECT_LE(*ttl, 2s);
}

TYPED_TEST(lease_store_contract, expired_lease_takes_its_keys_and_refuses_keep_alive) {
  auto lease = this->store().grant(1s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  ASSERT_TRUE(this->store().create(this->key("owned"), "node-a", *lease).value());
  ASSERT_FALSE(this->store().put(this->key("member"), "node-a", *lease));
  ASSERT_FALSE(this->store().put(this->key("unbound"), "stays", 0));
  EXPECT_EQ(this->keys_under(this->prefix()).size(), 3u);

  auto granted = this->backend_.now();
  ASSERT_TRUE(this->backend_.elapse_until(
      [&] { return this->keys_under(this->prefix()).size() == 1; }, 10s))
      << "keys bound to a 1 s lease still exist 10 s later";
  EXPECT_GE(this->backend_.now() - granted, 900ms) << "the lease expired before its ttl";
  EXPECT_EQ(this->keys_under(this->prefix()), std::vector<std::string>{this->key("unbound")});

  auto renewed = this->store().keep_alive(*lease);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(code_of(renewed.error()), errc::not_found) << message_of(renewed.error());
}

TYPED_TEST(lease_store_contract, kept_alive_lease_outlives_its_ttl) {
  auto lease = this->store().grant(1s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  ASSERT_FALSE(this->store().put(this->key("member"), "node-a", *lease));

  // Renew about every 300 ms for three ttls; the key must be there at every renewal.
  auto start = this->backend_.now();
  auto last_renewal = start;
  bool lost = false;
  this->backend_.elapse_until(
      [&] {
        auto now = this->backend_.now();
        if (now - last_renewal >= 300ms) {
          last_renewal = now;
          lost = lost || !this->store().keep_alive(*lease) ||
                 this->keys_under(this->prefix()).size() != 1;
        }
        return lost || now - start >= 3s;
      },
      10s);
  EXPECT_FALSE(lost) << "a lease renewed every 300 ms lost its key";
  EXPECT_GE(this->backend_.now() - start, 3s);
}

TYPED_TEST(lease_store_contract, keep_alive_of_an_unknown_lease_is_not_found) {
  auto renewed = this->store().keep_alive(0x7123456789);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(code_of(renewed.error()), errc::not_found) << message_of(renewed.error());
}

TYPED_TEST(lease_store_contract, create_succeeds_only_for_an_absent_key) {
  auto lease = this->store().grant(10s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  auto k = this->key("owner");

  auto first = this->store().create(k, "node-a", *lease);
  ASSERT_TRUE(first) << message_of(first.error());
  EXPECT_TRUE(*first);

  kv_entry holder;
  auto second = this->store().create(k, "node-b", 0, &holder);
  ASSERT_TRUE(second) << message_of(second.error());
  EXPECT_FALSE(*second);
  EXPECT_EQ(holder.key, k);
  EXPECT_EQ(holder.value, "node-a");
  EXPECT_EQ(holder.lease, *lease);
  EXPECT_GT(holder.create_revision, 0);
  EXPECT_GE(holder.mod_revision, holder.create_revision);

  auto without_holder = this->store().create(k, "node-c", 0);
  ASSERT_TRUE(without_holder) << message_of(without_holder.error());
  EXPECT_FALSE(*without_holder);
  auto entries = this->store().range(k);
  ASSERT_TRUE(entries);
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ(entries->front().value, "node-a") << "a refused create changed the value";

  ASSERT_FALSE(this->store().remove(k));
  auto again = this->store().create(k, "node-b", 0);
  ASSERT_TRUE(again) << message_of(again.error());
  EXPECT_TRUE(*again) << "create refused after the key was removed";
}

TYPED_TEST(lease_store_contract, create_and_put_with_a_revoked_lease_are_not_found) {
  auto lease = this->store().grant(10s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  ASSERT_FALSE(this->store().revoke(*lease));

  auto created = this->store().create(this->key("owner"), "node-a", *lease);
  ASSERT_FALSE(created);
  EXPECT_EQ(code_of(created.error()), errc::not_found) << message_of(created.error());
  auto err = this->store().put(this->key("member"), "node-a", *lease);
  EXPECT_EQ(code_of(err), errc::not_found) << message_of(err);
  EXPECT_TRUE(this->keys_under(this->prefix()).empty());
}

TYPED_TEST(lease_store_contract, put_overwrites_and_rebinds) {
  auto k = this->key("assignment");
  ASSERT_FALSE(this->store().put(k, "node-a", 0));
  auto before = this->store().range(k);
  ASSERT_TRUE(before && before->size() == 1);

  auto lease = this->store().grant(10s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  ASSERT_FALSE(this->store().put(k, "node-b", *lease));
  auto after = this->store().range(k);
  ASSERT_TRUE(after && after->size() == 1);
  EXPECT_EQ(after->front().value, "node-b");
  EXPECT_EQ(after->front().lease, *lease);
  EXPECT_EQ(after->front().create_revision, before->front().create_revision);
  EXPECT_GT(after->front().mod_revision, before->front().mod_revision);

  ASSERT_FALSE(this->store().revoke(*lease));
  EXPECT_TRUE(this->keys_under(k).empty()) << "a key rebound to a revoked lease survived";
}

TYPED_TEST(lease_store_contract, remove_if_deletes_only_the_expected_value) {
  auto k = this->key("owner");
  ASSERT_FALSE(this->store().put(k, "node-a", 0));

  auto wrong = this->store().remove_if(k, "node-b");
  ASSERT_TRUE(wrong) << message_of(wrong.error());
  EXPECT_FALSE(*wrong);
  EXPECT_EQ(this->keys_under(k).size(), 1u);

  auto prefix_of_value = this->store().remove_if(k, "node-");
  ASSERT_TRUE(prefix_of_value);
  EXPECT_FALSE(*prefix_of_value);

  auto right = this->store().remove_if(k, "node-a");
  ASSERT_TRUE(right) << message_of(right.error());
  EXPECT_TRUE(*right);
  EXPECT_TRUE(this->keys_under(k).empty());

  auto absent = this->store().remove_if(k, "node-a");
  ASSERT_TRUE(absent) << message_of(absent.error());
  EXPECT_FALSE(*absent);

  // An empty value is a value like any other.
  ASSERT_FALSE(this->store().put(k, "", 0));
  auto empty = this->store().remove_if(k, "");
  ASSERT_TRUE(empty) << message_of(empty.error());
  EXPECT_TRUE(*empty);
}

TYPED_TEST(lease_store_contract, remove_of_an_absent_key_is_no_error) {
  auto k = this->key("drain");
  EXPECT_FALSE(this->store().remove(k));
  ASSERT_FALSE(this->store().put(k, "on", 0));
  EXPECT_FALSE(this->store().remove(k));
  EXPECT_TRUE(this->keys_under(k).empty());
}

TYPED_TEST(lease_store_contract, range_returns_exactly_the_prefix_in_key_order) {
  auto p = this->prefix();
  // "x0" is the first key after every "x/..." key ('/' + 1 == '0').
  for (auto name : {"x/b", "x/a", "x/c/deep", "x", "x0", "xa", "y/a"})
    ASSERT_FALSE(this->store().put(p + name, std::string{"v-"} + name, 0));

  auto entries = this->store().range(p + "x/");
  ASSERT_TRUE(entries) << message_of(entries.error());
  std::vector<std::string> keys;
  for (auto& e : *entries)
    keys.push_back(e.key);
  EXPECT_EQ(keys, (std::vector<std::string>{p + "x/a", p + "x/b", p + "x/c/deep"}));
  ASSERT_EQ(entries->size(), 3u);
  EXPECT_EQ((*entries)[0].value, "v-x/a");
  EXPECT_EQ((*entries)[0].lease, 0);

  auto none = this->store().range(p + "nothing/");
  ASSERT_TRUE(none) << message_of(none.error());
  EXPECT_TRUE(none->empty());
}

TYPED_TEST(lease_store_contract, keys_and_values_keep_every_byte) {
  auto p = this->prefix();
  const char raw[] = "\x00\xff\x7f json \"quoted\" {}\n";
  const std::string value(raw, sizeof(raw) - 1);
  const std::string key = p + "b\xc3\xa4ume/\x01";
  ASSERT_FALSE(this->store().put(key, value, 0));
  // A prefix ending in 0xff has no simple successor: the range must still end right there.
  const std::string high = p + "\xff";
  ASSERT_FALSE(this->store().put(high + "z", "high", 0));

  auto entries = this->store().range(p);
  ASSERT_TRUE(entries) << message_of(entries.error());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].key, key);
  EXPECT_EQ((*entries)[0].value, value);
  auto high_only = this->store().range(high);
  ASSERT_TRUE(high_only);
  ASSERT_EQ(high_only->size(), 1u);
  EXPECT_EQ(high_only->front().value, "high");
}

TYPED_TEST(lease_store_contract, revoke_deletes_bound_keys_at_once_and_is_idempotent) {
  auto lease = this->store().grant(30s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  ASSERT_TRUE(this->store().create(this->key("leader"), "node-a", *lease).value());
  ASSERT_FALSE(this->store().put(this->key("members/node-a"), "{}", *lease));

  ASSERT_FALSE(this->store().revoke(*lease));
  EXPECT_TRUE(this->keys_under(this->prefix()).empty());
  auto renewed = this->store().keep_alive(*lease);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(code_of(renewed.error()), errc::not_found);

  EXPECT_FALSE(this->store().revoke(*lease)) << "revoking twice is no error";
  EXPECT_FALSE(this->store().revoke(0x7123456789)) << "revoking an unknown lease is no error";

  // The key is free again for another holder.
  EXPECT_TRUE(this->store().create(this->key("leader"), "node-b", 0).value());
}

// -- etcd only: configuration ---------------------------------------------------------------------

TEST(etcd_lease_store, make_rejects_a_bad_configuration) {
  auto attempt = [](std::vector<std::string> endpoints, std::chrono::milliseconds timeout) {
    etcd_config cfg;
    cfg.endpoints = std::move(endpoints);
    cfg.request_timeout = timeout;
    auto store = etcd_lease_store::make(cfg);
    return store
               ? std::string{}
               : to_string(code_of(store.error())) + std::string{": "} + message_of(store.error());
  };
  EXPECT_NE(attempt({}, 1s).find("no endpoint"), std::string::npos);
  EXPECT_NE(attempt({"https://127.0.0.1:2379"}, 1s).find("http://"), std::string::npos);
  EXPECT_NE(attempt({"http://127.0.0.1:2379", "127.0.0.1:2379"}, 1s).find("127.0.0.1:2379"),
            std::string::npos);
  EXPECT_NE(attempt({"http://127.0.0.1:port"}, 1s).find("bad_request"), std::string::npos);
  EXPECT_NE(attempt({"http://127.0.0.1:2379"}, 0ms).find("request_timeout"), std::string::npos);
  EXPECT_EQ(attempt({"http://127.0.0.1:2379", "http://[::1]:2379/"}, 1s), "");
}

TEST(etcd_lease_store, rounds_ttls_up_to_whole_seconds_and_refuses_non_positive_ones) {
  auto store = make_etcd_store({shared_etcd().endpoint()});
  auto lease = store->grant(1500ms);
  ASSERT_TRUE(lease) << message_of(lease.error());
  auto ttl = store->keep_alive(*lease);
  ASSERT_TRUE(ttl) << message_of(ttl.error());
  EXPECT_EQ(*ttl, 2s);
  EXPECT_FALSE(store->revoke(*lease));

  for (auto bad : {0ms, -5ms}) {
    auto refused = store->grant(bad);
    ASSERT_FALSE(refused);
    EXPECT_EQ(code_of(refused.error()), errc::bad_request);
  }
}

TEST(etcd_lease_store, an_empty_key_is_a_bad_request) {
  auto store = make_etcd_store({shared_etcd().endpoint()});
  auto err = store->put("", "value", 0);
  EXPECT_EQ(code_of(err), errc::bad_request) << message_of(err);
}

// -- etcd only: transport failures ----------------------------------------------------------------

/// A TCP server on a free loopback port that answers every connection with `reply` and closes
/// it, or with an empty `reply` reads the request and never answers (a hung etcd).
class canned_server {
public:
  explicit canned_server(std::string reply) : reply_(std::move(reply)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len))
      throw std::runtime_error("canned_server: cannot listen");
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread{[this] { serve(); }};
  }

  ~canned_server() {
    stop_ = true;
    thread_.join();
    for (int fd : held_)
      ::close(fd);
    ::close(fd_);
  }

  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int connections() const { return connections_; }

private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      int conn = ::accept(fd_, nullptr, nullptr);
      if (conn < 0) continue;
      ++connections_;
      char buf[4096];
      pollfd c{conn, POLLIN, 0};
      if (::poll(&c, 1, 1000) > 0) (void)::recv(conn, buf, sizeof(buf), 0);
      if (reply_.empty()) {
        held_.push_back(conn);
        continue;
      }
      (void)::send(conn, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      ::shutdown(conn, SHUT_WR);
      ::close(conn);
    }
  }

  std::string reply_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::vector<int> held_;
};

std::string http_reply(int status, const std::string& body) {
  return "HTTP/1.1 " + std::to_string(status) + " X\r\nContent-Type: application/json\r\n" +
         "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
}

/// A port nothing listens on (it was free a moment ago).
std::string closed_endpoint() {
  return "http://127.0.0.1:" + std::to_string(test::free_port());
}

TEST(etcd_lease_store, an_unreachable_endpoint_is_unavailable_at_once) {
  auto endpoint = closed_endpoint();
  auto store = make_etcd_store({endpoint}, 5s);
  auto start = clock_type::now();
  auto lease = store->grant(5s);
  auto elapsed = clock_type::now() - start;
  ASSERT_FALSE(lease);
  EXPECT_EQ(code_of(lease.error()), errc::unavailable) << message_of(lease.error());
  EXPECT_NE(message_of(lease.error()).find(endpoint), std::string::npos)
      << message_of(lease.error());
  EXPECT_LT(elapsed, 1s) << "a refused connection should not wait for the request timeout";

  EXPECT_EQ(code_of(store->keep_alive(1).error()), errc::unavailable);
  EXPECT_EQ(code_of(store->revoke(1)), errc::unavailable);
  EXPECT_EQ(code_of(store->create("/k", "v", 0).error()), errc::unavailable);
  EXPECT_EQ(code_of(store->put("/k", "v", 0)), errc::unavailable);
  EXPECT_EQ(code_of(store->remove_if("/k", "v").error()), errc::unavailable);
  EXPECT_EQ(code_of(store->remove("/k")), errc::unavailable);
  EXPECT_EQ(code_of(store->range("/k").error()), errc::unavailable);
}

TEST(etcd_lease_store, a_garbage_answer_is_unavailable_with_a_clear_message) {
  struct case_t {
    std::string reply;
    std::string expected_in_message;
  };
  std::vector<case_t> cases{
      {"SSH-2.0-OpenSSH_9.2\r\n", "bad answer from"},
      {http_reply(200, "<html>hello</html>"), "not JSON: '<html>hello</html>'"},
      {http_reply(200, R"({"kvs":[]})"), "no response header"},
      {http_reply(200, R"({"header":{},"kvs":[{"key":"%%%"}]})"), "malformed key-value entry"},
      {http_reply(200, R"({"header":{},"kvs":[{"key":"YQ==","lease":"twelve"}]})"),
       "malformed key-value entry"},
      {http_reply(404, "Not Found"), "HTTP 404 'Not Found'"},
      {http_reply(503, R"({"error":"no leader","message":"etcdserver: no leader","code":14})"),
       "etcdserver: no leader"},
  };
  for (const auto& c : cases) {
    canned_server server{c.reply};
    auto store = make_etcd_store({server.endpoint()}, 2s);
    auto entries = store->range("/manifold/");
    ASSERT_FALSE(entries) << "accepted: " << c.reply;
    EXPECT_EQ(code_of(entries.error()), errc::unavailable) << message_of(entries.error());
    EXPECT_NE(message_of(entries.error()).find(c.expected_in_message), std::string::npos)
        << "message: " << message_of(entries.error());
  }

  // Garbage in a keep-alive answer, a lease ID or a transaction outcome.
  canned_server no_result{http_reply(200, R"({"header":{}})")};
  auto store = make_etcd_store({no_result.endpoint()}, 2s);
  auto renewed = store->keep_alive(7);
  ASSERT_FALSE(renewed);
  EXPECT_EQ(code_of(renewed.error()), errc::unavailable) << message_of(renewed.error());
  auto lease = store->grant(1s);
  ASSERT_FALSE(lease);
  EXPECT_NE(message_of(lease.error()).find("no lease ID"), std::string::npos)
      << message_of(lease.error());
  auto created = store->create("/k", "v", 0);
  ASSERT_FALSE(created) << "a failed create must carry the existing key";
  EXPECT_EQ(code_of(created.error()), errc::unavailable);

  canned_server bad_bool{http_reply(200, R"({"header":{},"succeeded":"yes"})")};
  auto store2 = make_etcd_store({bad_bool.endpoint()}, 2s);
  auto removed = store2->remove_if("/k", "v");
  ASSERT_FALSE(removed);
  EXPECT_NE(message_of(removed.error()).find("succeeded"), std::string::npos);
}

TEST(etcd_lease_store, an_endpoint_that_never_answers_times_out) {
  canned_server hung{""};
  auto store = make_etcd_store({hung.endpoint()}, 300ms);
  auto start = clock_type::now();
  auto lease = store->grant(5s);
  auto elapsed = clock_type::now() - start;
  ASSERT_FALSE(lease);
  EXPECT_EQ(code_of(lease.error()), errc::timeout) << message_of(lease.error());
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 2s) << "the request timeout did not bound the call";
}

TEST(etcd_lease_store, a_paused_etcd_times_out_and_answers_again_once_resumed) {
  test::etcd_process etcd;
  auto store = make_etcd_store({etcd.endpoint()}, 300ms);
  ASSERT_FALSE(store->put("/paused/k", "v", 0));

  etcd.signal(SIGSTOP);
  auto entries = store->range("/paused/");
  etcd.signal(SIGCONT);
  ASSERT_FALSE(entries);
  EXPECT_EQ(code_of(entries.error()), errc::timeout) << message_of(entries.error());

  ASSERT_TRUE(test::wait_until([&] { return static_cast<bool>(store->range("/paused/")); }, 5s));
  EXPECT_EQ(store->range("/paused/")->size(), 1u);
}

TEST(etcd_lease_store, falls_over_to_the_next_endpoint_and_stays_there) {
  canned_server hung{""};
  auto down = closed_endpoint();
  auto store = make_etcd_store({down, hung.endpoint(), shared_etcd().endpoint()}, 400ms);

  // The first call pays for the refused and the hung endpoint, then etcd answers.
  auto lease = store->grant(5s);
  ASSERT_TRUE(lease) << message_of(lease.error());
  EXPECT_EQ(hung.connections(), 1);

  // Later calls go to the endpoint that answered, without waiting on the hung one again.
  auto start = clock_type::now();
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store->keep_alive(*lease)) << "call " << i;
  }
  EXPECT_LT(clock_type::now() - start, 400ms);
  EXPECT_EQ(hung.connections(), 1);
  EXPECT_FALSE(store->revoke(*lease));
}

TEST(etcd_lease_store, every_endpoint_down_names_each_failure) {
  canned_server hung{""};
  auto down = closed_endpoint();
  auto store = make_etcd_store({down, hung.endpoint()}, 300ms);
  auto err = store->put("/k", "v", 0);
  // One endpoint timed out, so the put may have been applied somewhere: timeout, not unavailable.
  EXPECT_EQ(code_of(err), errc::timeout) << message_of(err);
  EXPECT_NE(message_of(err).find(down), std::string::npos) << message_of(err);
  EXPECT_NE(message_of(err).find(hung.endpoint()), std::string::npos) << message_of(err);

  auto refused_only = make_etcd_store({down, closed_endpoint()}, 300ms);
  EXPECT_EQ(code_of(refused_only->put("/k", "v", 0)), errc::unavailable);
}

} // namespace
} // namespace manifold::supervision
