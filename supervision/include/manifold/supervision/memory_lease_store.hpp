#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "manifold/supervision/lease_store.hpp"

namespace manifold::supervision {

/// The `lease_store` contract kept in memory, in a clock the caller drives: nothing expires
/// until `set_now` moves the store's time past a lease's deadline. The testkit's cluster
/// simulation runs every node's ownership agent against one of these in virtual time.
///
/// Expiry follows etcd: a lease granted or kept alive at store time `r` expires at `r + ttl`;
/// at that instant (any call or `set_now` at or after it) the lease and every key bound to it
/// vanish together. Calls are serialised by a mutex, so threads may share one instance.
class memory_lease_store final : public lease_store {
public:
  using clock = std::chrono::steady_clock;

  explicit memory_lease_store(clock::time_point start = clock::time_point{});

  /// Moves the store's clock to `t` and expires every lease due by then. Time never runs
  /// backwards: an earlier `t` is ignored.
  void set_now(clock::time_point t);
  clock::time_point now() const;

  /// While false, every call fails with `errc::unavailable` and changes nothing (the store
  /// is cut off, as when etcd is down). Leases keep expiring as `set_now` moves time.
  void set_available(bool available);

  /// When the lease expires in store time; nothing when it is unknown or expired.
  std::optional<clock::time_point> expiry(lease_id id) const;
  std::int64_t revision() const;

  // -- lease_store ---------------------------------------------------------------------------
  caf::expected<lease_id> grant(std::chrono::milliseconds ttl) override;
  caf::expected<std::chrono::milliseconds> keep_alive(lease_id id) override;
  caf::error revoke(lease_id id) override;
  caf::expected<bool> create(const std::string& key, const std::string& value, lease_id lease,
                             kv_entry* holder = nullptr) override;
  caf::error put(const std::string& key, const std::string& value, lease_id lease) override;
  caf::expected<bool> remove_if(const std::string& key, const std::string& expected) override;
  caf::error remove(const std::string& key) override;
  caf::expected<std::vector<kv_entry>> range(const std::string& prefix) override;

private:
  struct lease_state {
    std::chrono::milliseconds ttl;
    clock::time_point expires;
  };

  caf::error check_available() const;
  caf::error check_lease(lease_id lease) const;
  void expire_due();
  void drop_lease(lease_id id);
  void write(const std::string& key, const std::string& value, lease_id lease);

  mutable std::mutex mutex_;
  clock::time_point now_;
  bool available_ = true;
  lease_id next_lease_ = 1;
  std::int64_t revision_ = 1; // etcd starts at 1 with an empty store.
  std::map<lease_id, lease_state> leases_;
  std::map<std::string, kv_entry> keys_;
};

} // namespace manifold::supervision
