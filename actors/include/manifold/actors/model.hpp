#pragma once

#include <any>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

/// The data model every Manifold component shares: a node runs connector instances, a connector
/// instance serves devices, a device exposes points (typed readings) and actions (typed calls).
namespace manifold {

using bytes = std::vector<std::uint8_t>;

/// The types a point value, an action parameter or an action result can take.
enum class value_type : std::uint8_t { boolean, int64, float64, string, bytes };

/// A typed value. `std::monostate` stands for "no value" (an action without a result, or a point
/// that was never read).
using value = std::variant<std::monostate, bool, std::int64_t, double, std::string, bytes>;

const char* to_string(value_type t);
std::optional<value_type> parse_value_type(const std::string& name);

/// The declared type of a value; nullopt for `std::monostate`.
std::optional<value_type> type_of(const value& v);

/// Converts `v` to type `t` where that loses nothing a user would care about (int64 -> float64,
/// integral float64 -> int64, 0/1 -> bool). Returns nullopt when the conversion makes no sense.
std::optional<value> coerce(const value& v, value_type t);

/// Human-readable rendering for logs and CLI tables.
std::string to_display_string(const value& v);

/// How far a reading can be trusted.
enum class quality : std::uint8_t {
  good,  ///< Read from the device just now.
  stale, ///< The last known value; the device has not answered since.
  bad,   ///< The device answered, but the value could not be decoded or is out of range.
};

const char* to_string(quality q);

/// Wall-clock time of the source, nanoseconds since the Unix epoch.
using timestamp = std::int64_t;

timestamp now_timestamp();

/// ISO 8601 in UTC with milliseconds, e.g. `2026-12-03T12:00:00.123Z`.
std::string format_timestamp(timestamp ts);

/// One value of one point, as a connector publishes it to the node's data bus.
struct point_reading {
  std::string connector;
  std::string device;
  std::string point;
  value data;
  quality q = quality::good;
  std::string reason; ///< Why the quality is not `good`; empty otherwise.
  timestamp source_time = 0;
};

/// A credential read from a secret reference in the config (`{secret: NAME}` or `{env: VAR}`).
/// It has no stream operator and no conversion: only `reveal()` gives the value, for the one call
/// that hands it to a client library. `reference()` names where it came from and is safe to show.
class secret {
public:
  secret() = default;
  secret(std::string value, std::string reference)
    : value_(std::move(value)), reference_(std::move(reference)) {}

  const std::string& reveal() const { return value_; }
  const std::string& reference() const { return reference_; }
  bool empty() const { return value_.empty(); }

  /// What logs, API output and error messages show instead of the value.
  static constexpr const char* redacted = "***";

private:
  std::string value_;
  std::string reference_;
};

// -- declarations (from config) ------------------------------------------------------------------

/// Where a declaration came from, for error messages: `file:line:column`.
struct source_location {
  std::string file;
  int line = 0;
  int column = 0;

  std::string to_string() const;
};

struct point_config {
  std::string name;
  value_type type = value_type::float64;
  std::string unit;
  bool writable = false;
  std::string description;
  source_location where;
  std::any settings; ///< Connector-specific (e.g. a Modbus address), set by the connector type.
};

struct parameter_config {
  std::string name;
  value_type type = value_type::float64;
  bool required = true;
  std::optional<double> min; ///< Only for numeric types.
  std::optional<double> max;
  std::optional<value> default_value;
};

struct action_config {
  std::string name;
  std::vector<parameter_config> parameters;
  std::optional<value_type> result; ///< nullopt: the action returns no value.
  std::string description;
  source_location where;
  std::any settings;

  const parameter_config* parameter(const std::string& name) const;
};

struct device_config {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<point_config> points;
  std::vector<action_config> actions;
  source_location where;
  std::any settings;

  const point_config* point(const std::string& name) const;
  const action_config* action(const std::string& name) const;
};

/// How a connector group is restarted after a crash.
/// Which exits of a connector lead to a restart (the child kinds of Erlang/OTP).
enum class restart_kind : std::uint8_t {
  permanent, ///< Always restarted, even after a normal exit.
  transient, ///< Restarted after a crash; a normal exit leaves it stopped.
  temporary, ///< Never restarted: a crash leaves it failed.
};

struct restart_config {
  restart_kind kind = restart_kind::permanent;
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{10000};
  /// Restart intensity: more than `max_restarts` crashes within `window` and the group is
  /// marked `failed` instead of restarted again.
  std::uint32_t max_restarts = 5;
  std::chrono::milliseconds window{60000};
  /// The supervisor asks the connector for its status this often; no answer within
  /// `health_timeout` counts as a crash (a hung connector is restarted, not waited on forever).
  std::chrono::milliseconds health_interval{5000};
  std::chrono::milliseconds health_timeout{2000};
};

/// What a connector's reading queue does when it is full.
enum class overflow_policy : std::uint8_t {
  drop_oldest, ///< Keep the newest readings: the latest value of a point matters most.
  drop_newest, ///< Keep what is queued; refuse new readings until the bus catches up.
};

/// The bounded queue between a connector and the data bus.
struct queue_config {
  std::size_t capacity = 1024;
  overflow_policy overflow = overflow_policy::drop_oldest;
  /// Action calls and point writes a connector may have in progress; further ones are rejected
  /// at once with 503 `overloaded` rather than queued without bound.
  std::size_t max_pending_actions = 64;
};

/// Where in a cluster a connector instance may run. Without a `cluster` section every connector
/// runs on the one node and this is ignored.
struct placement_config {
  std::string node; ///< Pinned to this node id; empty when a selector is used.
  /// Labels a node must carry, all of them (`role=edge,site=plant-1`); empty when pinned.
  std::map<std::string, std::string> selector;
  /// May move to another matching node when its node dies or is drained (needs etcd).
  bool failover = false;
  bool declared = false; ///< The config had a `placement` section.

  bool movable() const { return node.empty() && failover; }
  /// Whether a node carrying `labels` satisfies the selector (a pinned placement matches none).
  bool matches(const std::map<std::string, std::string>& labels) const;
  /// `node=ID` or `role=edge,site=plant-1` (plus `, failover`), for logs and status output.
  std::string to_string() const;
};

struct connector_config {
  std::string name;
  std::string type;
  std::chrono::milliseconds poll_interval{1000};
  std::chrono::milliseconds action_timeout{5000}; ///< How long the connector gives a device.
  restart_config restart;
  queue_config queue;
  placement_config placement;
  std::vector<device_config> devices;
  source_location where;
  std::any settings;

  const device_config* device(const std::string& name) const;
};

/// How the node's root supervisor treats a connector group that gave up (exceeded its restart
/// intensity): the Erlang/OTP strategies, applied across groups in config order.
enum class supervision_strategy : std::uint8_t {
  one_for_one,  ///< Start that group again.
  one_for_all,  ///< Restart every group.
  rest_for_one, ///< Restart that group and every group declared after it.
};

struct root_supervision_config {
  supervision_strategy strategy = supervision_strategy::one_for_one;
  /// More escalations than this within `window` and the root gives up: the failed groups stay
  /// failed (the node keeps serving the others and reports not ready).
  std::uint32_t max_restarts = 3;
  std::chrono::milliseconds window{600000};
  std::chrono::milliseconds backoff{1000}; ///< Delay before applying the strategy.
};

struct gateway_config {
  std::string host = "127.0.0.1";
  std::uint16_t port = 8080; ///< 0 picks a free port.
  std::size_t max_body_bytes = 64 * 1024;
  std::size_t max_connections = 256;
  std::chrono::milliseconds request_timeout{10000}; ///< Gateway gives up on a connector (504).
  std::size_t stream_queue_limit = 1024; ///< Readings buffered per WebSocket before dropping.
};

/// Mutual TLS between nodes (CAF's openssl module): every node presents `certificate`/`key` and
/// accepts only peers whose certificate `ca` signed. All three set, or none.
struct cluster_tls_config {
  std::string certificate; ///< PEM file.
  std::string key;         ///< PEM file.
  std::string ca;          ///< PEM file of the CA that signs every node's certificate.

  bool enabled() const { return !certificate.empty(); }
};

/// etcd (v3, over its HTTP/JSON gateway) as the store of membership leases, the leader and
/// connector ownership. Without it a cluster runs pinned connectors only and never fails over.
struct etcd_config {
  std::vector<std::string> endpoints; ///< `http://host:port`; tried in order.
  std::string prefix = "/manifold";   ///< Every key lives under `<prefix>/<cluster name>/`.
  std::chrono::milliseconds lease_ttl{5000};
  /// A node that could not renew its lease stops its movable connectors this long before the
  /// lease can expire in etcd, so a new owner never starts while the old one still drives.
  std::chrono::milliseconds fence_margin{1500};
  std::chrono::milliseconds request_timeout{1000}; ///< One HTTP call to etcd.
};

struct cluster_config {
  bool enabled = false;                ///< The config had a `cluster` section.
  std::string name = "manifold";       ///< Nodes of different clusters refuse each other.
  std::string host = "127.0.0.1";      ///< Where this node accepts other nodes (BASP over TCP).
  std::uint16_t port = 7400;           ///< 0 picks a free port.
  /// `host:port` other nodes dial to reach this one, when it differs from where it listens
  /// (listening on 0.0.0.0, behind NAT, in a pod). Empty: `host` and the bound port.
  std::string advertise;
  std::vector<std::string> seeds;      ///< `host:port` of nodes to join through.
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds failure_timeout{3000}; ///< Silent this long: the node is down.
  /// How long the gateway waits for another node before answering 503 (never longer than the
  /// gateway's own request_timeout).
  std::chrono::milliseconds request_timeout{3000};
  cluster_tls_config tls;
  std::optional<etcd_config> etcd;
  /// A digest of the `connectors` section; nodes refuse a peer whose digest differs, since
  /// placement needs every node to know every connector the same way.
  std::string connectors_digest;
};

struct node_config {
  std::string id = "manifold";
  std::map<std::string, std::string> labels;
  std::string log_level = "info";
  std::size_t worker_threads = 0; ///< CAF scheduler threads; 0 = number of cores.
  std::string secrets_dir;        ///< Where `{secret: NAME}` files are read from.
  root_supervision_config supervision;
  gateway_config gateway;
  cluster_config cluster;
  std::vector<connector_config> connectors;
  std::string source; ///< File name the config was read from, or `<embedded>`.

  const connector_config* connector(const std::string& name) const;
};

} // namespace manifold
