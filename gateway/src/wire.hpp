#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/model.hpp"
#include "protocol.hpp"

/// How the gateway puts values on the wire: JSON (or msgpack) bodies, error bodies, paths.
/// Private to the gateway library.
namespace manifold::gateway {

inline constexpr const char* json_content_type = "application/json";
inline constexpr const char* msgpack_content_type = "application/msgpack";

/// True when the client's `Accept` header prefers msgpack: the type with the higher q-value wins
/// (a missing q is 1, q=0 is "not acceptable"); on a tie the one listed first; `*/*`, an absent
/// header or one naming neither type mean JSON.
bool wants_msgpack(std::string_view accept);

/// How much client-supplied text an error message quotes at most (bytes).
inline constexpr std::size_t quote_limit = 128;

/// `text` cut to `quote_limit` bytes (at a UTF-8 character boundary) with `…` marking the cut.
/// Every piece of client input quoted in an error message goes through this, so an answer never
/// echoes a huge name or body back.
std::string clip(std::string_view text);

/// A value as JSON: bool, number, string, null; bytes as a lower-case hex string.
nlohmann::json to_json(const value& v);

/// Reads a JSON value as declared type `t`. Numbers coerce where nothing is lost (an integral
/// number for a double, 2.0 for an int64); bytes are given as a hex string. On a mismatch returns
/// nullopt and sets `expected` to what the client should have sent.
std::optional<value> from_json(const nlohmann::json& j, value_type t, std::string& expected);

/// The JSON document encoded as msgpack (maps, arrays, scalars; no extension types).
std::string encode_msgpack(const nlohmann::json& j);

/// A reply carrying `body` as JSON, or msgpack when `msgpack` is set.
http_reply document_reply(int status, const nlohmann::json& body, bool msgpack);

/// `{"error":{"code":…,"message":…}}` with the status our API uses for `code`.
http_reply error_reply(errc code, const std::string& message, bool msgpack);

/// The path of a request target split at `/` with every segment percent-decoded; the query is
/// cut off first. nullopt when a `%` escape is malformed.
std::optional<std::vector<std::string>> split_path(std::string_view target);

/// The query string of a request target as decoded key/value pairs (last one wins); nullopt when
/// a `%` escape is malformed.
std::optional<std::map<std::string, std::string>> parse_query(std::string_view target);

/// Percent-decodes `in` (and `+` as space when `plus_is_space`); nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space = false);

} // namespace manifold::gateway
