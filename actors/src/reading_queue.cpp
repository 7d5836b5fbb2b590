#include "manifold/actors/reading_queue.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>

#include <algorithm>

#include "manifold/actors/metrics.hpp"

namespace manifold {

namespace {

// A zero capacity would drop everything; the config loader rejects it, hand-made configs too.
queue_config at_least_one(queue_config cfg) {
  if (cfg.capacity == 0) cfg.capacity = 1;
  return cfg;
}

} // namespace

reading_queue::reading_queue(std::string connector, queue_config cfg,
                             const std::shared_ptr<node_metrics>& metrics)
  : connector_(std::move(connector)), cfg_(at_least_one(cfg)) {
  if (metrics) {
    depth_ = &metrics->connector_queue_depth(connector_);
    dropped_counter_ = &metrics->connector_dropped(connector_);
    depth_->Set(0);
  }
}

reading_queue::push_result reading_queue::push(point_reading r) {
  push_result res;
  // Destroyed outside the lock: a reading owns strings, and freeing them need not block the bus.
  point_reading evicted;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    ++pushed_;
    // With only wake-up pops this is exactly "empty -> non-empty"; after a plain `pop` emptied
    // the queue, the wake-up still out will find the new reading.
    res.wake = !wake_out_;
    wake_out_ = true;
    if (items_.size() >= cfg_.capacity) {
      res.dropped = true;
      ++dropped_;
      if (cfg_.overflow == overflow_policy::drop_newest) {
        evicted = std::move(r);
      } else {
        evicted = std::move(items_.front());
        items_.pop_front();
        items_.push_back(std::move(r));
      }
    } else {
      items_.push_back(std::move(r));
    }
    // Under the lock so the gauge never shows a depth older than one already shown.
    if (depth_) depth_->Set(static_cast<double>(items_.size()));
    if (res.dropped && dropped_counter_) dropped_counter_->Increment();
  }
  return res;
}

bool reading_queue::pop_for_wakeup(std::vector<point_reading>& out, std::size_t max) {
  std::lock_guard<std::mutex> guard{mtx_};
  pop_locked(out, max);
  wake_out_ = !items_.empty();
  return wake_out_;
}

std::size_t reading_queue::pop(std::vector<point_reading>& out, std::size_t max) {
  std::lock_guard<std::mutex> guard{mtx_};
  return pop_locked(out, max);
}

std::size_t reading_queue::pop_locked(std::vector<point_reading>& out, std::size_t max) {
  auto n = std::min(max, items_.size());
  for (std::size_t i = 0; i < n; ++i) {
    out.push_back(std::move(items_.front()));
    items_.pop_front();
  }
  if (depth_) depth_->Set(static_cast<double>(items_.size()));
  return n;
}

std::size_t reading_queue::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return items_.size();
}

std::uint64_t reading_queue::dropped() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return dropped_;
}

std::uint64_t reading_queue::pushed() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return pushed_;
}

bool reading_queue::drop_log_due(std::chrono::steady_clock::duration interval) {
  auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> guard{mtx_};
  if (drop_logged_ && now - last_drop_log_ < interval) return false;
  drop_logged_ = true;
  last_drop_log_ = now;
  return true;
}

} // namespace manifold
