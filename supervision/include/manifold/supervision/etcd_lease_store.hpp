#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "manifold/actors/model.hpp"
#include "manifold/supervision/lease_store.hpp"

namespace manifold::http {
struct parsed_url;
struct http_result;
} // namespace manifold::http

namespace manifold::supervision {

/// A `lease_store` kept by etcd (v3.4 or later), reached through etcd's HTTP/JSON gateway
/// (`POST /v3/...`, keys and values base64-encoded) over plain http.
///
/// Endpoints are tried in order, starting with the one that answered last: an endpoint that
/// cannot be reached, times out, answers garbage or reports itself unavailable is skipped for
/// the next. Each HTTP call is bounded by `etcd_config::request_timeout`, so one call of this
/// class blocks for at most that times the number of endpoints.
///
/// A call that timed out on one endpoint and is then answered by another may have been applied
/// twice: `create` may then report false with `holder` showing the caller's own value and lease,
/// `remove_if` false although the key is gone, `grant` may leave an unused lease behind (it
/// expires by itself). Callers compare the holder with themselves.
///
/// Thread-safe: calls share nothing but the index of the endpoint to try first.
class etcd_lease_store : public lease_store {
public:
  /// Fails with `errc::bad_request` when `cfg` lists no endpoint or one that is not
  /// `http://host:port`, or its request_timeout is not positive.
  static caf::expected<std::unique_ptr<etcd_lease_store>> make(const etcd_config& cfg);

  ~etcd_lease_store() override;

  /// etcd counts lease TTLs in whole seconds: `ttl` is rounded up to one, and etcd may raise it
  /// further to its minimum (about 1.5 election timeouts, 2 s with etcd's defaults).
  caf::expected<lease_id> grant(std::chrono::milliseconds ttl) override;
  caf::expected<std::chrono::milliseconds> keep_alive(lease_id id) override;
  caf::error revoke(lease_id id) override;
  caf::expected<bool> create(const std::string& key, const std::string& value, lease_id lease,
                             kv_entry* holder = nullptr) override;
  caf::error put(const std::string& key, const std::string& value, lease_id lease) override;
  caf::expected<bool> remove_if(const std::string& key, const std::string& expected) override;
  caf::error remove(const std::string& key) override;
  caf::expected<std::vector<kv_entry>> range(const std::string& prefix) override;

  /// The endpoints in the configured order, as given.
  const std::vector<std::string>& endpoints() const { return endpoint_names_; }

private:
  etcd_lease_store(std::vector<std::string> names, std::vector<http::parsed_url> urls,
                   std::chrono::milliseconds request_timeout);

  /// POSTs `body` to `path` on the endpoints in turn until one gives an answer that `on_answer`
  /// (called with the body of each HTTP 200) accepts. An endpoint whose answer `on_answer` finds
  /// malformed (it returns `errc::unavailable`) is skipped like one that cannot be reached.
  caf::error post(const std::string& path, const std::string& body,
                  const std::function<caf::error(const std::string&)>& on_answer);

  std::vector<std::string> endpoint_names_;
  std::vector<http::parsed_url> urls_;
  std::chrono::milliseconds request_timeout_;
  std::atomic<std::size_t> preferred_{0};
};

} // namespace manifold::supervision
