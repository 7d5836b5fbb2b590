#include "manifold/supervision/memory_lease_store.hpp"

#include "manifold/actors/errors.hpp"

namespace manifold::supervision {

memory_lease_store::memory_lease_store(clock::time_point start) : now_(start) {}

void memory_lease_store::set_now(clock::time_point t) {
  std::lock_guard<std::mutex> guard{mutex_};
  if (t > now_) now_ = t;
  expire_due();
}

memory_lease_store::clock::time_point memory_lease_store::now() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return now_;
}

void memory_lease_store::set_available(bool available) {
  std::lock_guard<std::mutex> guard{mutex_};
  available_ = available;
}

std::optional<memory_lease_store::clock::time_point> memory_lease_store::expiry(lease_id id) const {
  std::lock_guard<std::mutex> guard{mutex_};
  auto i = leases_.find(id);
  if (i == leases_.end()) return std::nullopt;
  return i->second.expires;
}

std::int64_t memory_lease_store::revision() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return revision_;
}

caf::error memory_lease_store::check_available() const {
  if (available_) return caf::none;
  return make_error(errc::unavailable, "lease store: the store cannot be reached (cut off)");
}

caf::error memory_lease_store::check_lease(lease_id lease) const {
  if (lease == 0 || leases_.count(lease) > 0) return caf::none;
  return make_error(errc::not_found,
                    "lease store: lease " + std::to_string(lease) + " expired or was revoked");
}

void memory_lease_store::expire_due() {
  std::vector<lease_id> due;
  for (auto& [id, state] : leases_)
    if (state.expires <= now_) due.push_back(id);
  for (auto id : due) drop_lease(id);
}

void memory_lease_store::drop_lease(lease_id id) {
  if (leases_.erase(id) == 0) return;
  // Like etcd, one revision deletes every key the lease held.
  bool deleted = false;
  for (auto i = keys_.begin(); i != keys_.end();) {
    if (i->second.lease == id) {
      i = keys_.erase(i);
      deleted = true;
    } else {
      ++i;
    }
  }
  if (deleted) ++revision_;
}

void memory_lease_store::write(const std::string& key, const std::string& value, lease_id lease) {
  ++revision_;
  auto& entry = keys_[key];
  if (entry.create_revision == 0) {
    entry.key = key;
    entry.create_revision = revision_;
  }
  entry.value = value;
  entry.lease = lease;
  entry.mod_revision = revision_;
}

caf::expected<lease_id> memory_lease_store::grant(std::chrono::milliseconds ttl) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  if (ttl <= std::chrono::milliseconds::zero())
    return make_error(errc::bad_request, "lease store: a lease needs a positive ttl, got " +
                                             std::to_string(ttl.count()) + " ms");
  auto id = next_lease_++;
  leases_[id] = lease_state{ttl, now_ + ttl};
  return id;
}

caf::expected<std::chrono::milliseconds> memory_lease_store::keep_alive(lease_id id) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  auto i = leases_.find(id);
  if (i == leases_.end())
    return make_error(errc::not_found,
                      "lease store: lease " + std::to_string(id) + " expired or was revoked");
  i->second.expires = now_ + i->second.ttl;
  return i->second.ttl;
}

caf::error memory_lease_store::revoke(lease_id id) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  drop_lease(id);
  return caf::none;
}

caf::expected<bool> memory_lease_store::create(const std::string& key, const std::string& value,
                                               lease_id lease, kv_entry* holder) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  auto i = keys_.find(key);
  if (i != keys_.end()) {
    if (holder != nullptr) *holder = i->second;
    return false;
  }
  if (auto err = check_lease(lease)) return err;
  write(key, value, lease);
  return true;
}

caf::error memory_lease_store::put(const std::string& key, const std::string& value,
                                   lease_id lease) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  if (auto err = check_lease(lease)) return err;
  write(key, value, lease);
  return caf::none;
}

caf::expected<bool> memory_lease_store::remove_if(const std::string& key,
                                                  const std::string& expected) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  auto i = keys_.find(key);
  if (i == keys_.end() || i->second.value != expected) return false;
  keys_.erase(i);
  ++revision_;
  return true;
}

caf::error memory_lease_store::remove(const std::string& key) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  if (keys_.erase(key) > 0) ++revision_;
  return caf::none;
}

caf::expected<std::vector<kv_entry>> memory_lease_store::range(const std::string& prefix) {
  std::lock_guard<std::mutex> guard{mutex_};
  expire_due();
  if (auto err = check_available()) return err;
  std::vector<kv_entry> out;
  for (auto i = keys_.lower_bound(prefix); i != keys_.end(); ++i) {
    if (i->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back(i->second);
  }
  return out;
}

} // namespace manifold::supervision
