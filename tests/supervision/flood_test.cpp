// A connector that publishes far faster than the data bus drains cannot grow the node's memory
// without bound: its queue drops per policy (counted in the metrics), and the other connectors'
// readings keep reaching the bus meanwhile. Below capacity, nothing is ever dropped.

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "manifold/actors/data_bus.hpp"
#include "manifold/actors/errors.hpp"
#include "manifold/actors/metrics.hpp"
#include "manifold/connectors/basic_connector_type.hpp"
#include "manifold/supervision/connector_supervisor.hpp"
#include "support/processes.hpp"

namespace {

using namespace manifold;
using namespace std::chrono_literals;

constexpr std::size_t burst_size = 10000;
constexpr std::size_t payload_bytes = 300;

// -- a connector that floods on command -----------------------------------------------------------

class flood_schema : public config::connector_schema {
public:
  void parse_device(config::map_reader&, const connector_config&, device_config& d) override {
    point_config p;
    p.name = "blob";
    p.type = value_type::string;
    d.points.push_back(p);
    action_config a;
    a.name = "burst"; // Publishes one queue capacity's worth of numbered readings.
    a.result = value_type::int64;
    d.actions.push_back(a);
  }
};

/// Set by the test: the flood starts only once the baseline memory is measured, and stops when
/// `flood_stop` is set or, as a safety net, after `flood_limit` bursts.
std::atomic<bool> flood_go{false};
std::atomic<bool> flood_stop{false};
std::atomic<std::size_t> flood_limit{0};
std::atomic<std::size_t> bursts_done{0};
std::atomic<bool> flood_idle{false};

struct flood_state {
  connectors::connector_context ctx;
  std::int64_t seq = 0;
};

point_reading blob_reading(flood_state& st, const std::string& device, std::int64_t n) {
  // The sequence number leads the payload so a subscriber can check order and completeness.
  auto payload = std::to_string(n);
  payload.resize(payload_bytes, 'x');
  return point_reading{st.ctx.name(), device, "blob", value{std::move(payload)}, quality::good,
                       {},            now_timestamp()};
}

caf::behavior flood(caf::stateful_actor<flood_state>* self, connectors::connector_context ctx) {
  self->state.ctx = std::move(ctx);
  connectors::report_crashes(self, self->state.ctx);
  self->send(self, poll_atom::value);
  return {
    [=](poll_atom) {
      auto& st = self->state;
      if (!flood_go || flood_stop || bursts_done >= flood_limit) {
        flood_idle = flood_go.load();
        self->delayed_send(self, 5ms, poll_atom::value);
        return;
      }
      auto& device = st.ctx.config->devices.front().name;
      for (std::size_t i = 0; i < burst_size; ++i)
        connectors::publish(self, st.ctx, blob_reading(st, device, st.seq++));
      ++bursts_done;
      // To itself, not a loop: between bursts the actor answers probes and status requests.
      self->send(self, poll_atom::value);
    },
    [=](invoke_atom, action_request& req) -> value {
      auto& st = self->state;
      auto n = static_cast<std::int64_t>(st.ctx.config->queue.capacity);
      for (std::int64_t i = 0; i < n; ++i)
        connectors::publish(self, st.ctx, blob_reading(st, req.device, st.seq++));
      return value{n};
    },
    [=](status_atom) { return connector_status{}; },
  };
}

/// `flood`: its schema and behaviour, one actor per instance.
using flood_type = connectors::basic_connector_type<flood_schema, &flood>;

/// Counts the flood's readings as the bus delivers them and checks their order; keeps the healthy
/// counter's latest value without asking the bus (a `get` would make the bus drain every queue).
class counting_sink : public reading_sink {
public:
  std::atomic<std::int64_t> healthy_count{0};

  void deliver(const point_reading& r) override {
    if (r.device == "c1") healthy_count = std::get<std::int64_t>(r.data);
    if (r.device != "blob1") return;
    auto n = std::stoll(std::get<std::string>(r.data));
    std::lock_guard<std::mutex> guard{mtx_};
    if (n != next_) out_of_order_ = true;
    next_ = n + 1;
    ++count_;
  }
  std::size_t count() {
    std::lock_guard<std::mutex> guard{mtx_};
    return count_;
  }
  bool out_of_order() {
    std::lock_guard<std::mutex> guard{mtx_};
    return out_of_order_;
  }

private:
  std::mutex mtx_;
  std::int64_t next_ = 0;
  std::size_t count_ = 0;
  bool out_of_order_ = false;
};

// -- process memory -------------------------------------------------------------------------------

/// A `/proc/self/status` field in bytes (VmRSS, VmHWM), or 0.
std::size_t status_bytes(const std::string& field) {
  std::ifstream in{"/proc/self/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoull(line.substr(field.size() + 1)) * 1024;
  return 0;
}

/// Resets VmHWM to the current RSS (Linux >= 4.0); false where the kernel does not allow it.
bool reset_peak_rss() {
  std::ofstream out{"/proc/self/clear_refs"};
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

// -- fixture --------------------------------------------------------------------------------------

const char* config_text = R"(connectors:
  - name: flooder
    type: flood
    queue: {capacity: 512, overflow: drop_oldest}
    devices: [{name: blob1}]
  - name: healthy
    type: sim
    poll_interval: 10ms
    devices: [{name: c1, model: counter}]
)";

struct flood_test : ::testing::Test {
  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::shared_ptr<node_metrics> metrics = std::make_shared<node_metrics>();
  connectors::connector_registry registry;
  caf::actor bus;
  std::map<std::string, caf::actor> sups;
  std::map<std::string, connectors::connector_context> contexts;
  node_config cfg;
  std::shared_ptr<counting_sink> sink = std::make_shared<counting_sink>();

  void SetUp() override {
    flood_go = false;
    flood_stop = false;
    flood_idle = false;
    bursts_done = 0;
    flood_limit = 0;
    sys_cfg.set("scheduler.max-threads", std::size_t{4});
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    registry.add(connectors::make_sim_connector());
    registry.add(std::make_unique<flood_type>("flood"));
    auto loaded = config::load_string(config_text, "t.yaml", registry.schemas(), registry.names());
    ASSERT_TRUE(loaded.config) << loaded.diag.to_string();
    cfg = *loaded.config;
    bus = spawn_data_bus(*sys, metrics);
    caf::anon_send(bus, subscribe_atom::value, reading_sink_ptr{sink}, reading_filter{});
    for (auto& c : cfg.connectors) {
      auto ctx = connectors::make_connector_context(c, bus, metrics, nullptr);
      contexts[c.name] = ctx;
      sups[c.name] = supervision::spawn_connector_supervisor(*sys, *registry.find(c.type), ctx);
    }
  }

  void TearDown() override {
    flood_stop = true;
    for (auto& [n, s] : sups) caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(bus, caf::exit_reason::user_shutdown);
    sys.reset();
  }

  reading_queue& flood_queue() { return *contexts["flooder"].queue; }

  std::optional<std::int64_t> latest_count() {
    caf::scoped_actor self{*sys};
    std::optional<std::int64_t> out;
    self->request(bus, 2s, get_atom::value, std::string{"c1"}, std::string{"count"})
      .receive([&](point_reading& r) { out = std::get<std::int64_t>(r.data); },
               [&](caf::error&) {});
    return out;
  }

  /// The value of a metric line starting with `series` (name and labels), or -1.
  double metric(const std::string& series) {
    auto text = metrics->serialize();
    auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + series.size() + 2));
  }

  caf::error burst() {
    caf::scoped_actor self{*sys};
    caf::error out;
    self->request(sups["flooder"], 10s, invoke_atom::value,
                  action_request{"blob1", "burst", {}})
      .receive([&](value&) {}, [&](caf::error& e) { out = e; });
    return out;
  }
};

TEST_F(flood_test, a_flooding_connector_stays_within_its_memory_bound_and_others_keep_flowing) {
  ASSERT_TRUE(test::wait_until([&] { return latest_count().value_or(0) > 3; }));

  // Memory before the flood. What the flood may add: its queue (capacity readings), the bus's
  // batch in hand, a reading being built; each reading is the struct plus its payload's heap
  // block. Four times that covers allocator rounding and the freed-but-kept blocks of a second
  // thread's arena; the slack covers arenas and stacks the flood's threads touch for the first
  // time. Measured on a 2-core machine: the bounded queue adds under 1 MiB; the same flood
  // through one message per reading (the unbounded mailbox) peaked at +1.07 GiB.
  auto baseline = status_bytes("VmRSS");
  ASSERT_GT(baseline, 0u);
  auto hwm_reset = reset_peak_rss();
  const std::size_t reading_bytes = sizeof(point_reading) + payload_bytes + 32;
  const std::size_t capacity = flood_queue().capacity();
  const std::size_t slack = 16u << 20;
  const std::size_t bound = baseline + 4 * (capacity + drain_batch + 1) * reading_bytes + slack;
  std::size_t peak = baseline;
  auto sample = [&] { peak = std::max(peak, status_bytes("VmRSS")); };

  flood_limit = 5000; // A cap far above what the test waits for: the test stops the flood.
  flood_go = true;
  ASSERT_TRUE(test::wait_until([&] { return bursts_done >= 2; }, 30s));

  // During the flood the healthy connector's readings still reach the bus by its own wake-ups.
  auto before = sink->healthy_count.load();
  ASSERT_TRUE(test::wait_until(
    [&] {
      sample();
      return sink->healthy_count > before + 5;
    },
    20s));
  EXPECT_LT(bursts_done.load(), flood_limit.load()) << "the flood ended before the check ran";

  // At least 2 million readings of a few hundred bytes each, then stop.
  ASSERT_TRUE(test::wait_until(
    [&] {
      sample();
      return bursts_done >= 200;
    },
    100s));
  flood_stop = true;
  ASSERT_TRUE(test::wait_until([&] { return flood_idle.load(); }));
  sample();
  if (hwm_reset) peak = std::max(peak, status_bytes("VmHWM"));
  EXPECT_LE(peak, bound) << "baseline " << baseline << " B, peak " << peak << " B, bound "
                         << bound << " B";
  std::printf("flood: baseline RSS %zu KiB, peak %zu KiB (+%zu KiB), bound %zu KiB\n",
              baseline / 1024, peak / 1024, (peak - baseline) / 1024, bound / 1024);

  // Every reading was either delivered or dropped, and the metric says exactly what the queue
  // counted.
  ASSERT_TRUE(test::wait_until([&] { return flood_queue().empty(); }));
  auto pushed = flood_queue().pushed();
  auto dropped = flood_queue().dropped();
  EXPECT_EQ(pushed, bursts_done * burst_size);
  EXPECT_GT(dropped, 0u);
  EXPECT_EQ(metric("manifold_connector_dropped_total{connector=\"flooder\"}"),
            static_cast<double>(dropped));
  EXPECT_EQ(metric("manifold_connector_queue_depth{connector=\"flooder\"}"), 0.0);
  ASSERT_TRUE(test::wait_until([&] { return sink->count() == pushed - dropped; }))
    << sink->count() << " delivered, " << pushed << " pushed, " << dropped << " dropped";
  EXPECT_EQ(metric("manifold_connector_dropped_total{connector=\"healthy\"}"), 0.0);
  EXPECT_EQ(metric("manifold_connector_state{connector=\"flooder\",state=\"running\"}"), 1.0);
}

TEST_F(flood_test, readings_below_capacity_are_never_dropped) {
  const auto capacity = flood_queue().capacity();
  for (std::size_t round = 1; round <= 20; ++round) {
    // One whole capacity in one handler: the queue may fill to the brim, never beyond.
    ASSERT_FALSE(burst());
    ASSERT_TRUE(test::wait_until([&] { return sink->count() == round * capacity; }))
      << "round " << round << ": " << sink->count() << " delivered";
  }
  EXPECT_EQ(flood_queue().dropped(), 0u);
  EXPECT_FALSE(sink->out_of_order());
  EXPECT_EQ(metric("manifold_connector_dropped_total{connector=\"flooder\"}"), 0.0);
}

} // namespace
