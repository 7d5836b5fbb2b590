#include "manifold/testkit/simulated_plant.hpp"

#include <algorithm>

#include "manifold/connectors/modbus_transport.hpp"
#include "manifold/connectors/mqtt_transport.hpp"

namespace manifold::testkit {

using connectors::modbus_status;
using connectors::modbus_table;

class sim_mqtt_client;

namespace {

struct broker {
  bool up = true;
  std::optional<std::chrono::milliseconds> ack_delay{std::chrono::milliseconds{0}};
  std::vector<sim_mqtt_client*> clients;
  std::map<std::string, std::string> retained;
};

std::string registers_text(const std::vector<std::uint16_t>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i)
    out += (i ? "," : "") + std::to_string(values[i]);
  return out + "]";
}

} // namespace

struct simulated_plant::state {
  std::function<std::chrono::milliseconds()> clock;
  std::shared_ptr<event_trace> trace;
  std::map<std::string, std::map<int, modbus_unit>> modbus;
  std::map<std::string, broker> brokers;
  std::vector<side_effect> effects;
  int next_mid = 1;
  std::function<void(std::chrono::milliseconds)> block;
  std::multimap<std::chrono::milliseconds, std::function<void()>> timers;

  void record(const std::string& kind, std::string text) {
    if (trace) trace->record(clock(), kind, std::move(text));
  }
  void effect(std::string text) {
    effects.push_back({clock(), text});
    record("effect", std::move(text));
  }
};

// -- mqtt -----------------------------------------------------------------------------------------

class sim_mqtt_client : public connectors::mqtt_client {
public:
  sim_mqtt_client(std::shared_ptr<simulated_plant::state> st, std::string endpoint)
    : st_(std::move(st)), endpoint_(std::move(endpoint)) {}

  ~sim_mqtt_client() override { stop(); }

  void start(connectors::mqtt_handlers handlers) override {
    if (started_) return;
    started_ = true;
    handlers_ = std::move(handlers);
    auto& b = st_->brokers[endpoint_];
    b.clients.push_back(this);
    if (b.up)
      connect();
    else if (handlers_.on_disconnect)
      handlers_.on_disconnect("simulated broker " + endpoint_ + " is down");
  }

  bool subscribe(const std::string& topic, int, std::string& error) override {
    if (!connected_) {
      error = "not connected";
      return false;
    }
    subscriptions_.push_back(topic);
    // Retained messages reach a new subscription at once, as from a real broker.
    for (auto& [t, payload] : st_->brokers[endpoint_].retained)
      if (topic_matches(topic, t)) deliver(t, payload);
    return true;
  }

  int publish(const std::string& topic, const std::string& payload, int qos, bool retain,
              std::string& error) override {
    if (!connected_) {
      error = "not connected to the simulated broker " + endpoint_;
      return -1;
    }
    int mid = st_->next_mid++;
    st_->effect("publish " + topic + " " + payload + " qos=" + std::to_string(qos) +
                (retain ? " retain" : ""));
    auto& b = st_->brokers[endpoint_];
    if (retain) b.retained[topic] = payload;
    for (auto* c : std::vector<sim_mqtt_client*>{b.clients})
      c->offer(topic, payload);
    // QoS 1 and 2 are acknowledged by the broker; QoS 0 counts as published once written.
    if (!handlers_.on_published) return mid;
    if (qos == 0 || b.ack_delay == std::chrono::milliseconds{0}) {
      handlers_.on_published(mid);
    } else if (b.ack_delay) {
      // The client may be gone (its connector restarted) by the time the PUBACK is due.
      std::weak_ptr<bool> alive = alive_;
      auto on_published = handlers_.on_published;
      st_->timers.emplace(st_->clock() + *b.ack_delay, [alive, on_published, mid] {
        if (alive.lock()) on_published(mid);
      });
    } else {
      st_->record("fault", "publish " + topic + " never acknowledged");
    }
    return mid;
  }

  void stop() override {
    if (!started_) return;
    started_ = false;
    connected_ = false;
    auto it = st_->brokers.find(endpoint_);
    if (it == st_->brokers.end()) return;
    auto& cs = it->second.clients;
    cs.erase(std::remove(cs.begin(), cs.end(), this), cs.end());
  }

  void connect() {
    connected_ = true;
    if (handlers_.on_connect) handlers_.on_connect();
  }

  void drop(const std::string& reason) {
    if (!connected_) return;
    connected_ = false;
    subscriptions_.clear(); // clean session
    if (handlers_.on_disconnect) handlers_.on_disconnect(reason);
  }

  void offer(const std::string& topic, const std::string& payload) {
    if (!connected_) return;
    for (auto& f : subscriptions_)
      if (topic_matches(f, topic)) {
        deliver(topic, payload);
        return; // one delivery per client, however many of its filters match
      }
  }

private:
  void deliver(const std::string& topic, const std::string& payload) {
    if (handlers_.on_message) handlers_.on_message(topic, payload);
  }

  std::shared_ptr<simulated_plant::state> st_;
  std::string endpoint_;
  connectors::mqtt_handlers handlers_;
  std::vector<std::string> subscriptions_;
  bool started_ = false;
  bool connected_ = false;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// -- modbus ---------------------------------------------------------------------------------------

namespace {

class sim_modbus_client : public connectors::modbus_client {
public:
  sim_modbus_client(std::shared_ptr<simulated_plant::state> st, std::string endpoint,
                    std::chrono::milliseconds timeout)
    : st_(std::move(st)), endpoint_(std::move(endpoint)), timeout_(timeout) {}

  bool blocking() const override { return false; }
  modbus_status connect() override { return modbus_status::success(); }
  void close() override {}
  bool connected() const override { return true; }

  modbus_status read_bits(int unit_id, modbus_table table, int address, int count,
                          std::vector<std::uint8_t>& out) override {
    auto* u = unit(unit_id);
    if (auto st = check(u, unit_id, address, count, 2000); !st.ok) return st;
    auto& bits = table == modbus_table::coil ? u->coils : u->discrete_inputs;
    out.clear();
    for (int a = address; a < address + count; ++a) {
      auto it = bits.find(a);
      out.push_back(it == bits.end() ? 0 : it->second);
    }
    return modbus_status::success();
  }

  modbus_status read_registers(int unit_id, modbus_table table, int address, int count,
                               std::vector<std::uint16_t>& out) override {
    auto* u = unit(unit_id);
    if (auto st = check(u, unit_id, address, count, 125); !st.ok) return st;
    auto& regs =
        table == modbus_table::holding_register ? u->holding_registers : u->input_registers;
    out.clear();
    for (int a = address; a < address + count; ++a) {
      auto it = regs.find(a);
      out.push_back(it == regs.end() ? 0 : it->second);
    }
    return modbus_status::success();
  }

  modbus_status write_coil(int unit_id, int address, bool on) override {
    auto* u = unit(unit_id);
    if (auto st = check(u, unit_id, address, 1, 1); !st.ok) return st;
    auto text = "write " + name(*u, unit_id) + " coil " + std::to_string(address) + " [" +
                (on ? "1" : "0") + "]";
    if (auto st = rejected(*u, address, 1, text); !st.ok) return st;
    if (auto st = delayed(*u, unit_id, address, 1, text); !st.ok) return st;
    u->coils[address] = on ? 1 : 0;
    st_->effect(std::move(text));
    return modbus_status::success();
  }

  modbus_status write_registers(int unit_id, int address,
                                const std::vector<std::uint16_t>& values) override {
    auto* u = unit(unit_id);
    auto count = static_cast<int>(values.size());
    if (auto st = check(u, unit_id, address, count, 123); !st.ok) return st;
    auto text = "write " + name(*u, unit_id) + " holding_register " + std::to_string(address) +
                " " + registers_text(values);
    if (auto st = rejected(*u, address, count, text); !st.ok) return st;
    if (auto st = delayed(*u, unit_id, address, count, text); !st.ok) return st;
    for (int i = 0; i < count; ++i)
      u->holding_registers[address + i] = values[i];
    st_->effect(std::move(text));
    return modbus_status::success();
  }

private:
  modbus_unit* unit(int unit_id) { return &st_->modbus[endpoint_][unit_id]; }

  std::string name(const modbus_unit& u, int unit_id) const {
    return u.device.empty() ? endpoint_ + "/" + std::to_string(unit_id) : u.device;
  }

  modbus_status check(modbus_unit* u, int unit_id, int address, int count, int max_count) {
    modbus_status st;
    if (!u->connected) {
      st.ok = false;
      st.connection_lost = true;
      st.message = "simulated device " + name(*u, unit_id) + " (unit " + std::to_string(unit_id) +
                   " at " + endpoint_ + ") is disconnected";
      return st;
    }
    auto delay = u->no_answer ? timeout_ : u->delay;
    if (delay > std::chrono::milliseconds{0} && st_->block) {
      // The call takes its time; the connector's own timers keep running meanwhile.
      st_->block(std::min(delay, timeout_));
      if (delay >= timeout_) {
        st.ok = false;
        st.connection_lost = true;
        st.message = "simulated device " + name(*u, unit_id) + " did not answer within " +
                     std::to_string(timeout_.count()) + " ms";
        return st;
      }
    }
    if (u->corrupt) {
      st.ok = false;
      st.message =
          "invalid answer from simulated device " + name(*u, unit_id) + " (corrupted frame)";
      return st;
    }
    if (count < 1 || count > max_count) {
      st.ok = false;
      st.exception_code = 3;
      st.message = "illegal data value";
      return st;
    }
    if (address < 0 || address + count > 65536) {
      st.ok = false;
      st.exception_code = 2;
      st.message = "illegal data address";
    }
    return st;
  }

  modbus_status rejected(modbus_unit& u, int address, int count, const std::string& text) {
    for (int a = address; a < address + count; ++a)
      if (auto it = u.reject_writes.find(a); it != u.reject_writes.end()) {
        modbus_status st;
        st.ok = false;
        st.exception_code = it->second;
        st.message = "rejected by the simulated device";
        st_->record("rejected", text + " exception=" + std::to_string(it->second));
        return st;
      }
    return modbus_status::success();
  }

  /// A write to an address in `delay_writes` takes its delay; beyond the response timeout it is
  /// lost.
  modbus_status delayed(modbus_unit& u, int unit_id, int address, int count,
                        const std::string& text) {
    std::chrono::milliseconds delay{0};
    for (int a = address; a < address + count; ++a)
      if (auto it = u.delay_writes.find(a); it != u.delay_writes.end())
        delay = std::max(delay, it->second);
    if (delay == std::chrono::milliseconds{0} || !st_->block) return modbus_status::success();
    st_->block(std::min(delay, timeout_));
    if (delay < timeout_) return modbus_status::success();
    modbus_status st;
    st.ok = false;
    st.connection_lost = true;
    st.message = "simulated device " + name(u, unit_id) + " did not answer within " +
                 std::to_string(timeout_.count()) + " ms";
    st_->record("lost", text);
    return st;
  }

  std::shared_ptr<simulated_plant::state> st_;
  std::string endpoint_;
  std::chrono::milliseconds timeout_;
};

std::string endpoint_of(const std::string& host, std::uint16_t port) {
  return host + ":" + std::to_string(port);
}

} // namespace

// -- the plant ------------------------------------------------------------------------------------

simulated_plant::simulated_plant(std::function<std::chrono::milliseconds()> clock,
                                 std::shared_ptr<event_trace> trace)
  : state_(std::make_shared<state>()) {
  state_->clock = std::move(clock);
  state_->trace = std::move(trace);
}

simulated_plant::~simulated_plant() = default;

std::unique_ptr<connectors::mqtt_client>
simulated_plant::make_mqtt(const connectors::mqtt_client_options& opts) {
  return std::make_unique<sim_mqtt_client>(state_, endpoint_of(opts.host, opts.port));
}

std::unique_ptr<connectors::modbus_client>
simulated_plant::make_modbus(const connectors::modbus_client_options& opts) {
  return std::make_unique<sim_modbus_client>(state_, endpoint_of(opts.host, opts.port),
                                             opts.timeout);
}

modbus_unit& simulated_plant::modbus(const std::string& endpoint, int unit_id) {
  return state_->modbus[endpoint][unit_id];
}

void simulated_plant::mqtt_inject(const std::string& endpoint, const std::string& topic,
                                  const std::string& payload, bool retain) {
  state_->record("inject", "publish " + topic + " " + payload + (retain ? " retain" : ""));
  for (auto& [ep, b] : state_->brokers) {
    if (!endpoint.empty() && ep != endpoint) continue;
    if (!b.up) continue;
    if (retain) b.retained[topic] = payload;
    for (auto* c : std::vector<sim_mqtt_client*>{b.clients})
      c->offer(topic, payload);
  }
}

void simulated_plant::mqtt_set_up(const std::string& endpoint, bool up) {
  auto& b = state_->brokers[endpoint];
  if (b.up == up) return;
  b.up = up;
  state_->record("fault", std::string{"broker "} + endpoint + (up ? " up" : " down"));
  for (auto* c : std::vector<sim_mqtt_client*>{b.clients}) {
    if (up)
      c->connect();
    else
      c->drop("simulated broker " + endpoint + " went down");
  }
}

void simulated_plant::mqtt_set_ack(const std::string& endpoint,
                                   std::optional<std::chrono::milliseconds> delay) {
  state_->brokers[endpoint].ack_delay = delay;
}

void simulated_plant::set_blocker(std::function<void(std::chrono::milliseconds)> block) {
  state_->block = std::move(block);
}

void simulated_plant::schedule(std::chrono::milliseconds at, std::function<void()> fn) {
  state_->timers.emplace(at, std::move(fn));
}

std::optional<std::chrono::milliseconds> simulated_plant::next_due() const {
  if (state_->timers.empty()) return std::nullopt;
  return state_->timers.begin()->first;
}

std::size_t simulated_plant::fire_due(std::chrono::milliseconds now) {
  std::size_t n = 0;
  while (!state_->timers.empty() && state_->timers.begin()->first <= now) {
    auto fn = std::move(state_->timers.begin()->second);
    state_->timers.erase(state_->timers.begin());
    fn();
    ++n;
  }
  return n;
}

void simulated_plant::mqtt_retain(const std::string& endpoint, const std::string& topic,
                                  const std::string& payload) {
  state_->brokers[endpoint].retained[topic] = payload;
}

const std::vector<side_effect>& simulated_plant::side_effects() const {
  return state_->effects;
}

bool topic_matches(const std::string& filter, const std::string& topic) {
  std::size_t f = 0, t = 0;
  while (f < filter.size()) {
    auto fe = filter.find('/', f);
    auto flevel = filter.substr(f, fe == std::string::npos ? std::string::npos : fe - f);
    if (flevel == "#") return true;
    if (t > topic.size()) return false;
    auto te = topic.find('/', t);
    auto tlevel = topic.substr(t, te == std::string::npos ? std::string::npos : te - t);
    if (flevel != "+" && flevel != tlevel) return false;
    if ((fe == std::string::npos) != (te == std::string::npos)) return false;
    if (fe == std::string::npos) return true;
    f = fe + 1;
    t = te + 1;
  }
  return topic.empty();
}

} // namespace manifold::testkit
