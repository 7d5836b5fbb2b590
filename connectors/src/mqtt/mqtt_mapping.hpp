#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifold/actors/model.hpp"

/// The MQTT connector's settings and its pure functions: payload -> value, parameters ->
/// payload, topic checks. No I/O and no actors, so unit tests call them directly.
namespace manifold::connectors::mqtt {

/// Payloads above this size are not parsed; the points of the topic read `bad` instead. A broker
/// accepts up to 256 MB, and one runaway device should not stall the connector parsing it.
inline constexpr std::size_t max_payload_bytes = 256 * 1024;

/// What a point's config says beyond the common keys.
struct point_settings {
  std::string topic;
  /// Dotted path into a JSON payload (`data.temp`, `items.0.value`); empty: the whole payload is
  /// the raw value.
  std::string json_field;
};

enum class payload_kind { json, param };

/// What an action's config says beyond the common keys.
struct action_settings {
  std::string topic;
  payload_kind payload = payload_kind::json;
  std::string param; ///< With `payload_kind::param`: the parameter whose raw value is sent.
  int qos = 1;
  bool retain = false;
};

/// The outcome of mapping one payload to one point: a good value, or `bad` with a reason.
struct mapping_result {
  value data;
  quality q = quality::good;
  std::string reason;

  static mapping_result good(value v) { return {std::move(v), quality::good, {}}; }
  static mapping_result bad(std::string why) { return {{}, quality::bad, std::move(why)}; }
};

/// One point's view of a payload: its type and (optional) JSON field.
struct field_spec {
  value_type type = value_type::float64;
  std::string json_field;
};

/// Maps `payload` to each of `specs`, in order. The JSON is parsed at most once however many
/// points share the topic. Never throws; every problem is a `bad` result with a reason.
std::vector<mapping_result> map_payload(std::string_view payload,
                                        const std::vector<field_spec>& specs);

/// One point; see the overload above.
mapping_result map_payload(std::string_view payload, value_type type,
                           const std::string& json_field = {});

/// Parses a raw payload as `type`: bool accepts true/false/1/0/on/off (any case), int64 and
/// double are decimal numbers (surrounding whitespace allowed), string must be UTF-8 and is taken
/// as is, bytes are taken as is.
mapping_result parse_raw(std::string_view text, value_type type);

/// Checks a topic a point subscribes to or an action publishes to. Returns an empty string when
/// it is fine, otherwise what is wrong (wildcards, empty, not UTF-8, NUL, too long).
std::string check_topic(std::string_view topic);

/// Checks a `json_field` path: dot-separated non-empty segments.
std::string check_json_field(std::string_view path);

/// The text of a value as an MQTT payload: `true`, `42`, `21.5` (shortest round-trip form),
/// strings and bytes as they are.
std::string raw_payload(const value& v);

/// The payload an action publishes for `params`. Parameters left out that have a default in
/// `action` are filled in. Returns nullopt with `error` set when a `param:NAME` payload names a
/// parameter that has no value.
std::optional<std::string> action_payload(const action_settings& settings,
                                          const action_config& action,
                                          std::map<std::string, value> params, std::string& error);

/// True when `text` is well-formed UTF-8.
bool valid_utf8(std::string_view text);

} // namespace manifold::connectors::mqtt
