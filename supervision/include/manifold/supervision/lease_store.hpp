#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

/// The store that keeps a cluster's leases, its leader and the ownership of movable connectors.
/// Its semantics are etcd v3's, reduced to what Manifold needs; `etcd_lease_store` speaks to a
/// real etcd, `memory_lease_store` follows the same rules in (virtual) time for the testkit.
namespace manifold::supervision {

using lease_id = std::int64_t;

/// One key as the store holds it.
struct kv_entry {
  std::string key;
  std::string value;
  lease_id lease = 0;               ///< 0: not bound to a lease.
  std::int64_t create_revision = 0; ///< The store's revision when the key was created.
  std::int64_t mod_revision = 0;    ///< The store's revision when the key last changed.
};

/// A store with leases and keys bound to them, as etcd v3 has them:
/// - a lease expires `ttl` after the store last received a grant or keep-alive for it, and then
///   every key bound to it is deleted at once;
/// - `create` succeeds only when the key does not exist (a transaction comparing its
///   create_revision with 0), so two nodes can never both hold an ownership key.
///
/// Every call blocks until the store answered or the store's request timeout passed. Errors are
/// `caf::error`s made with `manifold::make_error`: `errc::unavailable` when the store cannot be
/// reached or answered garbage, `errc::timeout` when it did not answer in time (the call may
/// still have been applied), `errc::not_found` when a lease expired or was revoked.
class lease_store {
public:
  virtual ~lease_store() = default;

  /// A new lease that expires `ttl` after the store granted it unless kept alive.
  virtual caf::expected<lease_id> grant(std::chrono::milliseconds ttl) = 0;

  /// Renews `id`; it now expires its ttl after the store received this call. Returns the ttl
  /// the store granted; `errc::not_found` when the lease already expired or was revoked.
  virtual caf::expected<std::chrono::milliseconds> keep_alive(lease_id id) = 0;

  /// Ends `id` at once, deleting every key bound to it. Revoking an unknown lease is no error.
  virtual caf::error revoke(lease_id id) = 0;

  /// Creates `key` = `value` bound to `lease` (0: no lease) if and only if `key` does not
  /// exist. True when created; false when it existed, and then `holder` (if given) receives the
  /// existing entry.
  virtual caf::expected<bool> create(const std::string& key, const std::string& value,
                                     lease_id lease, kv_entry* holder = nullptr) = 0;

  /// Sets `key` = `value`, bound to `lease` (0: no lease), whether or not it existed.
  virtual caf::error put(const std::string& key, const std::string& value, lease_id lease) = 0;

  /// Deletes `key` if and only if its value is `expected`. True when deleted.
  virtual caf::expected<bool> remove_if(const std::string& key, const std::string& expected) = 0;

  /// Deletes `key` if it exists.
  virtual caf::error remove(const std::string& key) = 0;

  /// Every key that starts with `prefix`, in key order.
  virtual caf::expected<std::vector<kv_entry>> range(const std::string& prefix) = 0;
};

} // namespace manifold::supervision
