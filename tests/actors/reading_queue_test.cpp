// The bounded queue between a connector and the data bus: capacity, both overflow policies, exact
// drop counts, one wake-up per empty -> non-empty, and no loss below capacity under concurrency.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "manifold/actors/metrics.hpp"
#include "manifold/actors/reading_queue.hpp"

namespace {

using namespace manifold;

point_reading numbered(std::int64_t n, const std::string& device = "d") {
  point_reading r;
  r.connector = "c";
  r.device = device;
  r.point = "p";
  r.data = value{n};
  return r;
}

std::vector<std::int64_t> drain_numbers(reading_queue& q) {
  std::vector<point_reading> out;
  while (q.pop_for_wakeup(out, 7)) {
  }
  std::vector<std::int64_t> nums;
  for (auto& r : out) nums.push_back(std::get<std::int64_t>(r.data));
  return nums;
}

TEST(reading_queue, holds_up_to_capacity) {
  reading_queue q{"c", {4, overflow_policy::drop_oldest}};
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(q.push(numbered(i)).dropped);
  EXPECT_EQ(q.size(), 4u);
  EXPECT_TRUE(q.push(numbered(4)).dropped);
  EXPECT_EQ(q.size(), 4u);
  EXPECT_EQ(q.capacity(), 4u);
}

TEST(reading_queue, drop_oldest_keeps_the_newest) {
  reading_queue q{"c", {5, overflow_policy::drop_oldest}};
  for (int i = 0; i < 12; ++i) q.push(numbered(i));
  EXPECT_EQ(drain_numbers(q), (std::vector<std::int64_t>{7, 8, 9, 10, 11}));
  EXPECT_EQ(q.dropped(), 7u);
  EXPECT_EQ(q.pushed(), 12u);
}

TEST(reading_queue, drop_newest_keeps_the_oldest) {
  reading_queue q{"c", {5, overflow_policy::drop_newest}};
  for (int i = 0; i < 12; ++i) q.push(numbered(i));
  EXPECT_EQ(drain_numbers(q), (std::vector<std::int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(q.dropped(), 7u);
}

TEST(reading_queue, dropped_counter_and_depth_gauge_match_the_queue) {
  auto metrics = std::make_shared<node_metrics>();
  reading_queue q{"flood", {3, overflow_policy::drop_oldest}, metrics};
  for (int i = 0; i < 1000; ++i) q.push(numbered(i));
  EXPECT_EQ(q.dropped(), 997u);
  EXPECT_EQ(metrics->connector_dropped("flood").Value(), 997.0);
  EXPECT_EQ(metrics->connector_queue_depth("flood").Value(), 3.0);
  std::vector<point_reading> out;
  q.pop(out, 2);
  EXPECT_EQ(metrics->connector_queue_depth("flood").Value(), 1.0);
  auto text = metrics->serialize();
  EXPECT_NE(text.find("manifold_connector_dropped_total{connector=\"flood\"} 997"),
            std::string::npos)
    << text;
}

TEST(reading_queue, wakes_only_on_empty_to_non_empty) {
  reading_queue q{"c", {100, overflow_policy::drop_oldest}};
  EXPECT_TRUE(q.push(numbered(1)).wake);
  EXPECT_FALSE(q.push(numbered(2)).wake);
  EXPECT_FALSE(q.push(numbered(3)).wake);

  // The consumer takes part of it: the wake-up stays with the consumer, pushes do not wake.
  std::vector<point_reading> out;
  EXPECT_TRUE(q.pop_for_wakeup(out, 2));
  EXPECT_FALSE(q.push(numbered(4)).wake);

  // The consumer empties it: the next push wakes again, exactly once.
  EXPECT_FALSE(q.pop_for_wakeup(out, 100));
  EXPECT_TRUE(q.empty());
  EXPECT_TRUE(q.push(numbered(5)).wake);
  EXPECT_FALSE(q.push(numbered(6)).wake);

  // A plain pop (the bus catching up before a read) leaves the wake-up out: the pending one will
  // find the next reading, so no second wake-up is sent.
  EXPECT_EQ(q.pop(out, 100), 2u);
  EXPECT_FALSE(q.push(numbered(7)).wake);
  EXPECT_FALSE(q.pop_for_wakeup(out, 100));
  EXPECT_TRUE(q.push(numbered(8)).wake);

  // A full queue under drop_oldest keeps its wake-up too.
  reading_queue small{"c", {1, overflow_policy::drop_oldest}};
  EXPECT_TRUE(small.push(numbered(1)).wake);
  auto res = small.push(numbered(2));
  EXPECT_FALSE(res.wake);
  EXPECT_TRUE(res.dropped);
}

TEST(reading_queue, concurrent_producers_lose_nothing_below_capacity) {
  constexpr int producers = 4;
  constexpr int per_producer = 5000;
  reading_queue q{"c", {producers * per_producer, overflow_policy::drop_oldest}};
  std::atomic<int> wakes{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < producers; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < per_producer; ++i)
        if (q.push(numbered(i, "d" + std::to_string(t))).wake) ++wakes;
    });

  // A concurrent consumer, like the bus: drains in batches while the producers push.
  std::vector<point_reading> got;
  std::atomic<bool> done{false};
  std::thread consumer{[&] {
    while (!done || !q.empty()) q.pop_for_wakeup(got, 256);
  }};
  for (auto& t : threads) t.join();
  done = true;
  consumer.join();

  EXPECT_EQ(q.dropped(), 0u);
  ASSERT_EQ(got.size(), static_cast<std::size_t>(producers * per_producer));
  // Each producer's readings arrive complete and in order.
  std::map<std::string, std::int64_t> next;
  for (auto& r : got) {
    auto n = std::get<std::int64_t>(r.data);
    EXPECT_EQ(n, next[r.device]) << r.device;
    next[r.device] = n + 1;
  }
  EXPECT_GE(wakes.load(), 1);
}

TEST(reading_queue, zero_capacity_is_treated_as_one) {
  reading_queue q{"c", {0, overflow_policy::drop_newest}};
  EXPECT_FALSE(q.push(numbered(1)).dropped);
  EXPECT_TRUE(q.push(numbered(2)).dropped);
  EXPECT_EQ(drain_numbers(q), (std::vector<std::int64_t>{1}));
}

} // namespace
