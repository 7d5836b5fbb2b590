#include "mqtt/mqtt_mapping.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "manifold/connectors/sdk.hpp"

namespace manifold::connectors::mqtt {

namespace {

using json = nlohmann::json;

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!s.empty() && space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && space(s.back()))
    s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

/// A short, printable excerpt of an offending input for a reason text.
std::string excerpt(std::string_view s) {
  constexpr std::size_t limit = 32;
  std::string out;
  for (char c : s.substr(0, limit))
    out += std::isprint(static_cast<unsigned char>(c)) ? c : '?';
  if (s.size() > limit) out += "...";
  return "'" + out + "'";
}

std::vector<std::string_view> split_path(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto dot = path.find('.', start);
    out.push_back(path.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) return out;
    start = dot + 1;
  }
}

/// Walks a dotted path; a numeric segment indexes an array. Null with `error` set when a segment
/// is missing.
const json* find_field(const json& root, const std::string& path, std::string& error) {
  const json* cur = &root;
  std::string walked;
  for (auto seg : split_path(path)) {
    std::string key{seg};
    if (cur->is_object()) {
      auto it = cur->find(key);
      if (it == cur->end()) {
        error = "JSON payload has no field '" + path + "' ('" + key + "' missing" +
                (walked.empty() ? "" : " in '" + walked + "'") + ")";
        return nullptr;
      }
      cur = &*it;
    } else if (cur->is_array()) {
      std::size_t index = 0;
      auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), index);
      if (ec != std::errc{} || end != key.data() + key.size() || index >= cur->size()) {
        error = "JSON payload has no field '" + path + "' ('" + (walked.empty() ? "" : walked) +
                "' is an array of " + std::to_string(cur->size()) + ", no element '" + key + "')";
        return nullptr;
      }
      cur = &(*cur)[index];
    } else {
      error = "JSON payload has no field '" + path + "' ('" +
              (walked.empty() ? std::string{"the payload"} : walked) + "' is a " +
              cur->type_name() + ", not an object)";
      return nullptr;
    }
    walked += (walked.empty() ? "" : ".") + key;
  }
  return cur;
}

std::string wrong_type(const std::string& field, const json& j, value_type want) {
  auto shown = j.dump();
  return "JSON field '" + field + "' is " + j.type_name() + " " + excerpt(shown) + ", expected " +
         to_string(want);
}

/// Converts a JSON value to the point's type. Numbers and booleans sent as strings ("21.5",
/// "on") are accepted, because many devices send them that way.
mapping_result from_json(const json& j, value_type type, const std::string& field) {
  if (j.is_string() && type != value_type::string && type != value_type::bytes) {
    auto r = parse_raw(j.get_ref<const std::string&>(), type);
    if (r.q != quality::good) r.reason = "JSON field '" + field + "': " + r.reason;
    return r;
  }
  switch (type) {
  case value_type::boolean:
    if (j.is_boolean()) return mapping_result::good(j.get<bool>());
    if (j.is_number_integer() && (j.get<std::int64_t>() == 0 || j.get<std::int64_t>() == 1))
      return mapping_result::good(j.get<std::int64_t>() == 1);
    break;
  case value_type::int64:
    if (j.is_number_unsigned()) {
      auto u = j.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return mapping_result::bad("JSON field '" + field + "' = " + j.dump() +
                                   " is out of the int64 range");
      return mapping_result::good(static_cast<std::int64_t>(u));
    }
    if (j.is_number_integer()) return mapping_result::good(j.get<std::int64_t>());
    if (j.is_number_float()) {
      // 21.0 is an integer sent by a JSON encoder that does not know better; 21.5 is not.
      auto d = j.get<double>();
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18)
        return mapping_result::good(static_cast<std::int64_t>(d));
    }
    break;
  case value_type::float64:
    if (j.is_number()) return mapping_result::good(j.get<double>());
    break;
  case value_type::string:
    if (j.is_string()) return mapping_result::good(j.get<std::string>());
    if (j.is_number() || j.is_boolean()) return mapping_result::good(j.dump());
    break;
  case value_type::bytes:
    if (j.is_string()) {
      auto& s = j.get_ref<const std::string&>();
      return mapping_result::good(bytes(s.begin(), s.end()));
    }
    if (!j.is_null()) {
      auto s = j.dump();
      return mapping_result::good(bytes(s.begin(), s.end()));
    }
    break;
  }
  return mapping_result::bad(wrong_type(field, j, type));
}

} // namespace

// -- raw payloads ---------------------------------------------------------------------------------

mapping_result parse_raw(std::string_view text, value_type type) {
  switch (type) {
  case value_type::string:
    if (!valid_utf8(text)) return mapping_result::bad("payload is not valid UTF-8 text");
    return mapping_result::good(std::string{text});
  case value_type::bytes: return mapping_result::good(bytes(text.begin(), text.end()));
  default: break;
  }
  auto t = trim(text);
  if (t.empty())
    return mapping_result::bad(std::string{"empty payload, expected "} + to_string(type));
  switch (type) {
  case value_type::boolean:
    for (auto yes : {"true", "1", "on"})
      if (iequals(t, yes)) return mapping_result::good(true);
    for (auto no : {"false", "0", "off"})
      if (iequals(t, no)) return mapping_result::good(false);
    return mapping_result::bad("payload " + excerpt(t) +
                               " is not a bool (true/false, 1/0, on/off)");
  case value_type::int64: {
    std::int64_t v = 0;
    auto first = t.data() + (t.front() == '+' ? 1 : 0);
    auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
    if (ec == std::errc::result_out_of_range)
      return mapping_result::bad("payload " + excerpt(t) + " is out of the int64 range");
    if (ec != std::errc{} || end != t.data() + t.size())
      return mapping_result::bad("payload " + excerpt(t) + " is not an integer");
    return mapping_result::good(v);
  }
  case value_type::float64: {
    double v = 0;
    auto first = t.data() + (t.front() == '+' ? 1 : 0);
    // from_chars, not strtod: the result must not depend on the process locale.
    auto [end, ec] = std::from_chars(first, t.data() + t.size(), v);
    if (ec != std::errc{} || end != t.data() + t.size() || !std::isfinite(v))
      return mapping_result::bad("payload " + excerpt(t) + " is not a finite number");
    return mapping_result::good(v);
  }
  default: break;
  }
  return mapping_result::bad("unsupported point type");
}

// -- payload -> points ----------------------------------------------------------------------------

std::vector<mapping_result> map_payload(std::string_view payload,
                                        const std::vector<field_spec>& specs) {
  std::vector<mapping_result> out;
  out.reserve(specs.size());
  if (payload.size() > max_payload_bytes) {
    auto why = "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
               std::to_string(max_payload_bytes) + " bytes";
    for (std::size_t i = 0; i < specs.size(); ++i)
      out.push_back(mapping_result::bad(why));
    return out;
  }
  std::optional<json> doc; // parsed on first need, once for all specs
  for (auto& spec : specs) {
    if (spec.json_field.empty()) {
      out.push_back(parse_raw(payload, spec.type));
      continue;
    }
    if (!doc) doc = json::parse(payload.begin(), payload.end(), nullptr, false);
    if (doc->is_discarded()) {
      out.push_back(mapping_result::bad("payload is not valid JSON (" + excerpt(payload) +
                                        "), expected a field '" + spec.json_field + "'"));
      continue;
    }
    std::string error;
    auto* field = find_field(*doc, spec.json_field, error);
    out.push_back(field ? from_json(*field, spec.type, spec.json_field)
                        : mapping_result::bad(std::move(error)));
  }
  return out;
}

mapping_result map_payload(std::string_view payload, value_type type,
                           const std::string& json_field) {
  return map_payload(payload, std::vector<field_spec>{{type, json_field}}).front();
}

// -- checks ---------------------------------------------------------------------------------------

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false; // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    static constexpr std::array<std::uint32_t, 4> min_cp{0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return false;
    i += n + 1;
  }
  return true;
}

std::string check_topic(std::string_view topic) {
  if (topic.empty()) return "a topic must not be empty";
  if (topic.size() > 65535) return "a topic must be at most 65535 bytes";
  if (topic.find_first_of("+#") != std::string_view::npos)
    return "wildcards '+' and '#' are not allowed here (one topic per point or action), got '" +
           std::string{topic} + "'";
  if (topic.find('\0') != std::string_view::npos) return "a topic must not contain NUL";
  if (!valid_utf8(topic)) return "a topic must be UTF-8 text";
  return {};
}

std::string check_json_field(std::string_view path) {
  if (path.empty()) return "a JSON field path must not be empty";
  for (auto seg : split_path(path))
    if (seg.empty())
      return "a JSON field path is dot-separated names such as 'data.temp', got '" +
             std::string{path} + "'";
  return {};
}

// -- parameters -> payload ------------------------------------------------------------------------

std::string raw_payload(const value& v) {
  struct visitor {
    std::string operator()(std::monostate) const { return {}; }
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const {
      std::array<char, 64> buf{};
      auto [end, ec] = std::to_chars(buf.data(), buf.data() + buf.size(), d);
      return ec == std::errc{} ? std::string(buf.data(), end) : std::string{};
    }
    std::string operator()(const std::string& s) const { return s; }
    std::string operator()(const bytes& b) const { return std::string(b.begin(), b.end()); }
  };
  return std::visit(visitor{}, v);
}

std::optional<std::string> action_payload(const action_settings& settings,
                                          const action_config& action,
                                          std::map<std::string, value> params, std::string& error) {
  for (auto& p : action.parameters)
    if (p.default_value && !params.count(p.name)) params.emplace(p.name, *p.default_value);
  if (settings.payload == payload_kind::json) return params_to_json(params);
  auto it = params.find(settings.param);
  if (it == params.end() || std::holds_alternative<std::monostate>(it->second)) {
    error = "parameter '" + settings.param + "' is needed for the payload but was not given";
    return std::nullopt;
  }
  return raw_payload(it->second);
}

} // namespace manifold::connectors::mqtt
