#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "manifold/actors/model.hpp"

namespace prometheus {
class Counter;
class Gauge;
} // namespace prometheus

namespace manifold {

class node_metrics;

/// The bounded queue between one connector and the data bus. CAF 0.17 mailboxes are unbounded,
/// so a connector that publishes faster than the bus drains would grow the node's memory without
/// limit; instead the connector pushes here (dropping per the overflow policy when full) and wakes
/// the bus with one message only when the queue goes from empty to non-empty. The bus drains it
/// in batches. Memory is bounded by `capacity`, the bus mailbox by one wake-up per connector:
/// the queue remembers that a wake-up is out, and only `pop_for_wakeup` finding it empty ends it.
///
/// Thread-safe: producers (the connector actor, or any thread) and the consumer (the bus) may
/// run concurrently.
class reading_queue {
public:
  /// `metrics` may be null; otherwise the queue keeps
  /// `manifold_connector_queue_depth{connector}` and `manifold_connector_dropped_total{connector}`
  /// current.
  reading_queue(std::string connector, queue_config cfg,
                const std::shared_ptr<node_metrics>& metrics = nullptr);

  struct push_result {
    bool wake = false;    ///< The queue was empty: the caller must wake the consumer.
    bool dropped = false; ///< A reading (the oldest or this one, per policy) was dropped.
  };

  /// Adds `r`, dropping per the overflow policy when full.
  push_result push(point_reading r);

  /// The consumer's answer to a wake-up: moves up to `max` readings, oldest first, to the end of
  /// `out`. True if readings remain: the consumer keeps the wake-up and must come back (it sends
  /// itself the wake-up again). False: the wake-up is over, the next push wakes again.
  bool pop_for_wakeup(std::vector<point_reading>& out, std::size_t max);

  /// Moves up to `max` readings to the end of `out` outside a wake-up (e.g. a consumer catching
  /// up before a read); returns how many. A wake-up already out stays out.
  std::size_t pop(std::vector<point_reading>& out, std::size_t max);

  std::size_t size() const;
  bool empty() const { return size() == 0; }
  std::uint64_t dropped() const;
  std::uint64_t pushed() const; ///< Every push, dropped or not.
  std::size_t capacity() const { return cfg_.capacity; }
  overflow_policy overflow() const { return cfg_.overflow; }
  const std::string& connector() const { return connector_; }

  /// True at most once per `interval`: lets a producer log drops without flooding the log.
  bool drop_log_due(std::chrono::steady_clock::duration interval = std::chrono::seconds{10});

private:
  std::size_t pop_locked(std::vector<point_reading>& out, std::size_t max);

  const std::string connector_;
  const queue_config cfg_;
  prometheus::Gauge* depth_ = nullptr;
  prometheus::Counter* dropped_counter_ = nullptr;
  mutable std::mutex mtx_;
  std::deque<point_reading> items_;
  std::uint64_t dropped_ = 0;
  std::uint64_t pushed_ = 0;
  bool wake_out_ = false; ///< A wake-up was sent and its consumer has not found the queue empty.
  std::chrono::steady_clock::time_point last_drop_log_{};
  bool drop_logged_ = false;
};

using reading_queue_ptr = std::shared_ptr<reading_queue>;

} // namespace manifold
