#include "manifold/testkit/cluster_simulation.hpp"

#include <cmath>
#include <deque>
#include <iomanip>
#include <queue>
#include <random>
#include <sstream>
#include <stdexcept>

#include "manifold/actors/errors.hpp"

namespace manifold::testkit {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

/// Virtual time starts well after the clock's zero, which the agent uses for "never valid".
const clock::time_point sim_epoch = clock::time_point{} + std::chrono::hours{1};

constexpr std::size_t timeline_lines = 400;

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (auto& i : items) out += (out.empty() ? "" : ",") + i;
  return out;
}

} // namespace

struct cluster_simulation::impl {
  // -- a node's connection to the store -------------------------------------------------------

  /// The store as one node reaches it: each call leaves at the node's cursor, arrives after a
  /// random latency (or after the store finished the calls before it), takes effect at that
  /// store time, and its answer returns after another latency.
  class client final : public supervision::lease_store {
  public:
    client(impl& sim, std::size_t node) : sim_(sim), node_(node) {}

    clock::time_point cursor{};

    caf::expected<supervision::lease_id> grant(milliseconds ttl) override {
      return call([&] { return sim_.store.grant(ttl); });
    }
    caf::expected<milliseconds> keep_alive(supervision::lease_id id) override {
      return call([&] { return sim_.store.keep_alive(id); });
    }
    caf::error revoke(supervision::lease_id id) override {
      return call([&] { return sim_.store.revoke(id); });
    }
    caf::expected<bool> create(const std::string& key, const std::string& value,
                               supervision::lease_id lease,
                               supervision::kv_entry* holder) override {
      return call([&] { return sim_.store.create(key, value, lease, holder); });
    }
    caf::error put(const std::string& key, const std::string& value,
                   supervision::lease_id lease) override {
      return call([&] { return sim_.store.put(key, value, lease); });
    }
    caf::expected<bool> remove_if(const std::string& key, const std::string& expected) override {
      return call([&] { return sim_.store.remove_if(key, expected); });
    }
    caf::error remove(const std::string& key) override {
      return call([&] { return sim_.store.remove(key); });
    }
    caf::expected<std::vector<supervision::kv_entry>> range(const std::string& prefix) override {
      return call([&] { return sim_.store.range(prefix); });
    }

  private:
    template <class F>
    auto call(F f) -> decltype(f()) {
      if (sim_.nodes[node_].partitioned) {
        cursor += sim_.opts.unreachable_delay;
        return make_error(errc::unavailable, "simulated partition: the store cannot be reached");
      }
      auto arrive = std::max(cursor + sim_.latency(), sim_.store_time);
      sim_.store_time = arrive;
      sim_.store.set_now(arrive);
      auto result = f();
      cursor = arrive + sim_.latency();
      return result;
    }

    impl& sim_;
    std::size_t node_;
  };

  // -- state ----------------------------------------------------------------------------------

  struct node {
    cluster_node_spec spec;
    double rate = 1.0; // Local clock seconds per virtual second.
    std::unique_ptr<client> connection;
    std::unique_ptr<supervision::ownership_agent> agent;
    std::uint64_t incarnation = 0;
    bool crashed = false;
    bool partitioned = false;
    clock::time_point paused_until{};
    std::set<std::string> running;
    std::set<std::string> stopping;
    clock::time_point fence{}; // The agent's valid_until, on the node's clock, once applied.
  };

  enum class kind { step, step_done, stop_done, check };

  struct event {
    clock::time_point at;
    std::uint64_t seq = 0;
    kind what = kind::check;
    std::size_t node = 0;
    std::uint64_t incarnation = 0;
    supervision::ownership_agent::actions actions;
    clock::time_point fence{};
    std::string connector;
  };

  struct later {
    bool operator()(const event& a, const event& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };

  struct expectation {
    std::string connector;
    std::string node;
    clock::time_point since;
    clock::time_point deadline;
  };

  cluster_simulation_options opts;
  std::vector<supervision::connector_placement> connectors;
  std::vector<node> nodes;
  supervision::memory_lease_store store{sim_epoch};
  clock::time_point now = sim_epoch;
  clock::time_point store_time = sim_epoch;
  std::mt19937_64 rng;
  std::priority_queue<event, std::vector<event>, later> queue;
  std::uint64_t next_seq = 0;
  std::vector<cluster_violation> violations;
  std::deque<std::string> lines;
  std::set<std::string> draining;
  clock::time_point last_fault{};
  std::vector<expectation> expectations;
  std::map<std::string, std::size_t> driver_count;

  // -- helpers --------------------------------------------------------------------------------

  nanoseconds latency() {
    auto max = nanoseconds{opts.max_latency}.count();
    return nanoseconds{max <= 0 ? 0 : static_cast<std::int64_t>(rng() % (max + 1))};
  }

  double uniform01() { return static_cast<double>(rng() >> 11) / 9007199254740992.0; }

  std::size_t index(const std::string& id) const {
    for (std::size_t i = 0; i < nodes.size(); ++i)
      if (nodes[i].spec.id == id) return i;
    throw std::invalid_argument("cluster simulation: no node '" + id + "'");
  }

  const supervision::connector_placement* connector(const std::string& name) const {
    for (auto& c : connectors)
      if (c.name == name) return &c;
    return nullptr;
  }

  clock::time_point local(const node& n, clock::time_point t) const {
    auto since = static_cast<double>((t - sim_epoch).count());
    return sim_epoch + nanoseconds{static_cast<std::int64_t>(std::floor(since * n.rate))};
  }

  /// The first virtual instant at which `n`'s clock shows `l` or later.
  clock::time_point virtual_of(const node& n, clock::time_point l) const {
    auto since = static_cast<double>((l - sim_epoch).count());
    auto t = sim_epoch + nanoseconds{static_cast<std::int64_t>(std::ceil(since / n.rate))};
    while (local(n, t - nanoseconds{1}) >= l) t -= nanoseconds{1};
    while (local(n, t) < l) t += nanoseconds{1};
    return t;
  }

  milliseconds elapsed(clock::time_point t) const {
    return std::chrono::duration_cast<milliseconds>(t - sim_epoch);
  }

  void note(const std::string& line) {
    std::ostringstream out;
    out << "t=" << std::fixed << std::setprecision(3)
        << std::chrono::duration<double>(now - sim_epoch).count() << "s " << line;
    lines.push_back(out.str());
    if (lines.size() > timeline_lines) lines.pop_front();
  }

  void push(event e) {
    e.seq = next_seq++;
    queue.push(std::move(e));
  }

  void push_check(clock::time_point at) {
    event e;
    e.at = at;
    e.what = kind::check;
    push(std::move(e));
  }

  bool healthy(const node& n, clock::time_point t) const {
    return !n.crashed && t >= n.paused_until && !n.partitioned;
  }

  bool driving(const node& n, const std::string& c, clock::time_point t) const {
    if (n.crashed || n.running.count(c) == 0) return false;
    if (!opts.connectors_check_fence) return true;
    return local(n, t) < n.fence + opts.io_overrun;
  }

  std::vector<std::string> drivers_at(const std::string& c, clock::time_point t) const {
    std::vector<std::string> out;
    for (auto& n : nodes)
      if (driving(n, c, t)) out.push_back(n.spec.id);
    return out;
  }

  bool eligible(const node& n, const supervision::connector_placement& c) const {
    return healthy(n, now) && draining.count(n.spec.id) == 0 &&
           c.placement.matches(n.spec.labels);
  }

  // -- nodes ----------------------------------------------------------------------------------

  void boot(std::size_t i, clock::time_point first_step) {
    auto& n = nodes[i];
    n.connection = std::make_unique<client>(*this, i);
    supervision::ownership_settings s;
    s.prefix = "/manifold/sim/";
    s.lease_ttl = opts.lease_ttl;
    s.fence_margin = opts.fence_margin;
    s.boot_settle = opts.boot_settle;
    supervision::cluster_member_info self;
    self.id = n.spec.id;
    self.labels = n.spec.labels;
    n.agent = std::make_unique<supervision::ownership_agent>(self, connectors, *n.connection, s);
    n.crashed = false;
    n.running.clear();
    n.stopping.clear();
    n.fence = clock::time_point{};
    ++n.incarnation;
    event e;
    e.at = first_step;
    e.what = kind::step;
    e.node = i;
    e.incarnation = n.incarnation;
    push(std::move(e));
  }

  nanoseconds step_gap(const node& n) {
    auto factor = 1.0 + opts.step_jitter * (2.0 * uniform01() - 1.0);
    auto local_gap = static_cast<double>(nanoseconds{opts.step_interval}.count()) * factor;
    return nanoseconds{static_cast<std::int64_t>(local_gap / n.rate)};
  }

  void on_step(const event& e) {
    auto& n = nodes[e.node];
    n.connection->cursor = e.at;
    auto acts = n.agent->step(local(n, e.at), n.running);
    event done;
    done.at = n.connection->cursor;
    done.what = kind::step_done;
    done.node = e.node;
    done.incarnation = n.incarnation;
    done.actions = std::move(acts);
    done.fence = n.agent->valid_until();
    auto next_at = done.at + step_gap(n);
    push(std::move(done));
    event next;
    next.at = next_at;
    next.what = kind::step;
    next.node = e.node;
    next.incarnation = n.incarnation;
    push(std::move(next));
  }

  void on_step_done(const event& e) {
    auto& n = nodes[e.node];
    n.fence = e.fence;
    for (auto& c : e.actions.stop) {
      if (n.running.count(c) == 0 || n.stopping.count(c) > 0) continue;
      n.stopping.insert(c);
      event stop;
      stop.at = e.at + opts.stop_delay;
      stop.what = kind::stop_done;
      stop.node = e.node;
      stop.incarnation = n.incarnation;
      stop.connector = c;
      push(std::move(stop));
    }
    for (auto& c : e.actions.start) n.running.insert(c);
    if (!e.actions.start.empty() || !e.actions.stop.empty())
      note(n.spec.id + ": start [" + join(e.actions.start) + "] stop [" +
           join(e.actions.stop) + "]");
    auto edge = virtual_of(n, n.fence + opts.io_overrun);
    if (edge > e.at) push_check(edge);
  }

  void dispatch(const event& e) {
    if (e.what == kind::check) return;
    auto& n = nodes[e.node];
    if (n.crashed || e.incarnation != n.incarnation) return;
    if (e.at < n.paused_until) { // SIGSTOP: nothing happens in the process until it resumes.
      auto later_event = e;
      later_event.at = n.paused_until;
      push(std::move(later_event));
      return;
    }
    switch (e.what) {
      case kind::step: on_step(e); break;
      case kind::step_done: on_step_done(e); break;
      case kind::stop_done:
        n.running.erase(e.connector);
        n.stopping.erase(e.connector);
        break;
      case kind::check: break;
    }
  }

  // -- the checker ----------------------------------------------------------------------------

  void evaluate(clock::time_point t) {
    for (auto& c : connectors) {
      if (!c.placement.node.empty()) continue;
      auto d = drivers_at(c.name, t);
      auto& before = driver_count[c.name];
      if (d.size() >= 2 && before < 2) {
        std::string detail = "nodes " + join(d) + " drive it at once;";
        for (auto& id : d) {
          auto& n = nodes[index(id)];
          detail += " " + id + " fence ends at t=" +
                    std::to_string(elapsed(virtual_of(n, n.fence + opts.io_overrun)).count()) +
                    " ms";
        }
        violations.push_back({"two drivers", elapsed(t), c.name, detail});
        note("VIOLATION two drivers of " + c.name + ": " + detail);
      }
      before = d.size();
    }

    for (auto i = expectations.begin(); i != expectations.end();) {
      bool met = false;
      for (auto& id : drivers_at(i->connector, t)) met = met || healthy(nodes[index(id)], t);
      if (met) {
        i = expectations.erase(i);
        continue;
      }
      if (t >= i->deadline) {
        if (last_fault <= i->since) { // Another fault since would excuse a longer gap.
          auto detail = "node " + i->node + " failed at t=" +
                        std::to_string(elapsed(i->since).count()) + " ms; no driver within " +
                        std::to_string(elapsed(i->deadline).count() -
                                       elapsed(i->since).count()) +
                        " ms";
          violations.push_back({"no failover", elapsed(t), i->connector, detail});
          note("VIOLATION no failover of " + i->connector + ": " + detail);
        }
        i = expectations.erase(i);
        continue;
      }
      ++i;
    }
  }

  /// Before `failing` fails now: every failover connector it drives must drive elsewhere (or
  /// there again) within the bound, if another node could take it.
  void expect_failover(const node& failing, milliseconds bound) {
    for (auto& c : connectors) {
      if (!c.placement.movable() || !driving(failing, c.name, now)) continue;
      bool someone = false;
      for (auto& n : nodes) someone = someone || (&n != &failing && eligible(n, c));
      if (!someone) continue;
      expectations.push_back({c.name, failing.spec.id, now, now + bound});
      push_check(now + bound);
    }
  }

  void run_until(clock::time_point target) {
    while (!queue.empty() && queue.top().at <= target) {
      auto t = queue.top().at;
      now = t;
      while (!queue.empty() && queue.top().at == t) {
        auto e = queue.top();
        queue.pop();
        dispatch(e);
      }
      evaluate(t);
    }
    now = target;
    evaluate(now);
  }
};

// -- cluster_simulation -----------------------------------------------------------------------

cluster_simulation::cluster_simulation(std::vector<cluster_node_spec> nodes,
                                       std::vector<supervision::connector_placement> connectors,
                                       cluster_simulation_options options)
  : impl_(std::make_unique<impl>()) {
  auto& s = *impl_;
  s.opts = options;
  s.connectors = std::move(connectors);
  s.rng.seed(options.seed);
  for (auto& spec : nodes) {
    impl::node n;
    n.spec = std::move(spec);
    n.rate = 1.0 + options.max_clock_drift * (2.0 * s.uniform01() - 1.0);
    s.nodes.push_back(std::move(n));
  }
  for (std::size_t i = 0; i < s.nodes.size(); ++i) {
    auto offset = nanoseconds{options.step_interval}.count();
    s.boot(i, sim_epoch + nanoseconds{static_cast<std::int64_t>(s.rng() % (offset + 1))});
  }
}

cluster_simulation::~cluster_simulation() = default;

void cluster_simulation::run_for(milliseconds d) {
  impl_->run_until(impl_->now + d);
}

milliseconds cluster_simulation::elapsed() const {
  return impl_->elapsed(impl_->now);
}

void cluster_simulation::crash(const std::string& id) {
  auto& s = *impl_;
  auto& n = s.nodes[s.index(id)];
  if (n.crashed) return;
  s.expect_failover(n, failover_bound());
  n.crashed = true;
  n.running.clear();
  n.stopping.clear();
  ++n.incarnation;
  s.last_fault = s.now;
  s.note(id + ": CRASH");
  s.evaluate(s.now);
}

void cluster_simulation::restart(const std::string& id) {
  auto& s = *impl_;
  auto i = s.index(id);
  if (!s.nodes[i].crashed) return;
  s.note(id + ": RESTART");
  s.boot(i, s.now + s.latency());
}

void cluster_simulation::pause(const std::string& id, milliseconds d) {
  auto& s = *impl_;
  auto& n = s.nodes[s.index(id)];
  if (n.crashed) return;
  s.expect_failover(n, failover_bound());
  n.paused_until = std::max(n.paused_until, s.now + d);
  s.last_fault = s.now;
  s.note(id + ": PAUSE for " + std::to_string(d.count()) + " ms");
  s.push_check(n.paused_until);
  s.evaluate(s.now);
}

void cluster_simulation::partition(const std::vector<std::string>& ids) {
  auto& s = *impl_;
  // Cut them all off first: a node of the same partition cannot take the others' connectors.
  std::vector<impl::node*> newly;
  for (auto& id : ids) {
    auto& n = s.nodes[s.index(id)];
    if (n.partitioned) continue;
    n.partitioned = true;
    newly.push_back(&n);
  }
  for (auto* n : newly)
    if (!n->crashed) s.expect_failover(*n, failover_bound());
  s.last_fault = s.now;
  s.note("PARTITION " + join(ids) + " from the store");
  s.evaluate(s.now);
}

void cluster_simulation::heal() {
  auto& s = *impl_;
  for (auto& n : s.nodes) n.partitioned = false;
  s.note("HEAL");
  s.evaluate(s.now);
}

caf::error cluster_simulation::drain(const std::string& via, const std::string& node, bool on) {
  auto& s = *impl_;
  auto& n = s.nodes[s.index(via)];
  n.connection->cursor = s.now;
  auto err = n.agent->drain(node, on);
  if (!err) {
    if (on)
      s.draining.insert(node);
    else
      s.draining.erase(node);
  }
  s.note("DRAIN " + node + (on ? " on" : " off") + " via " + via +
         (err ? " refused: " + message_of(err) : std::string{}));
  return err;
}

caf::error cluster_simulation::move(const std::string& via, const std::string& connector,
                                    const std::string& node) {
  auto& s = *impl_;
  auto& n = s.nodes[s.index(via)];
  n.connection->cursor = s.now;
  auto err = n.agent->move(connector, node);
  s.note("MOVE " + connector + " to " + node + " via " + via +
         (err ? " refused: " + message_of(err) : std::string{}));
  return err;
}

std::set<std::string> cluster_simulation::drivers(const std::string& connector) const {
  auto d = impl_->drivers_at(connector, impl_->now);
  return {d.begin(), d.end()};
}

std::set<std::string> cluster_simulation::running(const std::string& node) const {
  auto& n = impl_->nodes[impl_->index(node)];
  return n.crashed ? std::set<std::string>{} : n.running;
}

const supervision::ownership_agent& cluster_simulation::agent(const std::string& node) const {
  return *impl_->nodes[impl_->index(node)].agent;
}

supervision::memory_lease_store& cluster_simulation::store() {
  return impl_->store;
}

bool cluster_simulation::healthy(const std::string& node) const {
  return impl_->healthy(impl_->nodes[impl_->index(node)], impl_->now);
}

milliseconds cluster_simulation::failover_bound() const {
  auto& o = impl_->opts;
  // A step makes at most a few calls per connector plus a fixed handful; each waits up to two
  // latencies and, at the store, for the step another node is making.
  auto calls = static_cast<std::int64_t>(6 + 3 * impl_->connectors.size());
  auto step_duration = 2 * calls * 2 * o.max_latency;
  auto step = milliseconds{static_cast<std::int64_t>(std::ceil(
      static_cast<double>(o.step_interval.count()) * (1.0 + o.step_jitter) /
      (1.0 - o.max_clock_drift)))};
  // The lease expires ttl after the last keep-alive arrived (at most a step's duration after
  // the failure); the leader notices at its next step and writes the new assignment; the new
  // owner acquires at its next step after that.
  return o.lease_ttl + 2 * step + 3 * step_duration;
}

void cluster_simulation::check_settled() {
  auto& s = *impl_;
  for (auto& c : s.connectors) {
    if (!c.placement.movable() || !s.drivers_at(c.name, s.now).empty()) continue;
    bool someone = false;
    for (auto& n : s.nodes) someone = someone || s.eligible(n, c);
    if (!someone) continue;
    s.violations.push_back({"not settled", s.elapsed(s.now), c.name,
                            "a healthy matching node exists but nobody drives it"});
    s.note("VIOLATION not settled: " + c.name);
  }
}

const std::vector<cluster_violation>& cluster_simulation::violations() const {
  return impl_->violations;
}

std::string cluster_simulation::timeline() const {
  std::string out;
  for (auto& l : impl_->lines) out += l + "\n";
  return out;
}

std::unique_ptr<cluster_simulation> random_cluster_run(
  std::uint64_t seed, const std::vector<cluster_node_spec>& nodes,
  const std::vector<supervision::connector_placement>& connectors,
  cluster_simulation_options opts) {
  using std::chrono::milliseconds;
  std::mt19937_64 rng{seed};
  auto pick = [&](std::uint64_t n) { return static_cast<std::size_t>(rng() % n); };

  opts.seed = seed;
  opts.max_latency = milliseconds{pick(30)};
  opts.boot_settle = pick(2) == 1 ? opts.lease_ttl / 2 : milliseconds{0};
  auto sim = std::make_unique<cluster_simulation>(nodes, connectors, opts);
  sim->run_for(milliseconds{5000 + pick(5000)});

  for (int i = 0; i < 12 && !nodes.empty(); ++i) {
    auto& id = nodes[pick(nodes.size())].id;
    switch (pick(6)) {
      case 0: sim->crash(id); break;
      case 1: sim->restart(id); break;
      case 2: sim->pause(id, milliseconds{500 + pick(14000)}); break;
      case 3: sim->partition({id}); break;
      case 4: sim->heal(); break;
      case 5: {
        auto& other = nodes[pick(nodes.size())].id;
        sim->partition(other == id ? std::vector<std::string>{id}
                                   : std::vector<std::string>{id, other});
        break;
      }
    }
    sim->run_for(milliseconds{200 + pick(15000)});
  }

  sim->heal();
  for (auto& n : nodes) sim->restart(n.id);
  sim->run_for(2 * sim->failover_bound() + milliseconds{15000}); // pauses end within this too
  sim->check_settled();
  return sim;
}

std::string describe_violations(const cluster_simulation& sim) {
  std::string out;
  for (auto& v : sim.violations())
    out += v.kind + " of " + v.connector + " at " + std::to_string(v.at.count()) + " ms: " +
           v.detail + "\n";
  return out + "timeline:\n" + sim.timeline();
}

} // namespace manifold::testkit
