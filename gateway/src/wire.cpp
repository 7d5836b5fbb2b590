#include "wire.hpp"

#include "manifold/actors/log.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>

#include <msgpack.hpp>

namespace manifold::gateway {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void pack(msgpack::packer<msgpack::sbuffer>& pk, const nlohmann::json& j) {
  using t = nlohmann::json::value_t;
  switch (j.type()) {
    case t::null:
    case t::discarded: pk.pack_nil(); break;
    case t::boolean:
      if (j.get<bool>()) pk.pack_true();
      else pk.pack_false();
      break;
    case t::number_integer: pk.pack_int64(j.get<std::int64_t>()); break;
    case t::number_unsigned: pk.pack_uint64(j.get<std::uint64_t>()); break;
    case t::number_float: pk.pack_double(j.get<double>()); break;
    case t::string: pk.pack(j.get_ref<const std::string&>()); break;
    case t::binary: {
      auto& b = j.get_binary();
      pk.pack_bin(static_cast<std::uint32_t>(b.size()));
      pk.pack_bin_body(reinterpret_cast<const char*>(b.data()),
                       static_cast<std::uint32_t>(b.size()));
      break;
    }
    case t::array:
      pk.pack_array(static_cast<std::uint32_t>(j.size()));
      for (auto& e : j) pack(pk, e);
      break;
    case t::object:
      pk.pack_map(static_cast<std::uint32_t>(j.size()));
      for (auto& [k, v] : j.items()) {
        pk.pack(k);
        pack(pk, v);
      }
      break;
  }
}

} // namespace

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
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

/// How one media type fares against an `Accept` header: the q of the most specific range that
/// matches it, and where that range stands in the list.
struct acceptance {
  int specificity = -1; ///< -1: no range matches; 0: `*/*`; 1: `type/*`; 2: exact.
  double q = 0;
  std::size_t position = 0;
};

acceptance accepted(std::string_view accept, std::string_view type, std::string_view subtype) {
  acceptance best;
  std::size_t position = 0;
  std::size_t pos = 0;
  while (pos <= accept.size()) {
    auto end = accept.find(',', pos);
    if (end == std::string_view::npos) end = accept.size();
    auto item = accept.substr(pos, end - pos);
    pos = end + 1;
    auto semi = item.find(';');
    auto range = trim(item.substr(0, semi));
    if (range.empty()) continue;
    double q = 1;
    while (semi != std::string_view::npos) {
      auto next = item.find(';', semi + 1);
      auto param = trim(item.substr(semi + 1, next == std::string_view::npos
                                                  ? std::string_view::npos
                                                  : next - semi - 1));
      if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
        // A q that does not parse counts as 0 rather than guessing what the client meant.
        std::string text{param.substr(2)};
        char* stop = nullptr;
        q = std::strtod(text.c_str(), &stop);
        if (stop != text.c_str() + text.size() || !(q >= 0 && q <= 1)) q = 0;
      }
      semi = next;
    }
    auto slash = range.find('/');
    if (slash == std::string_view::npos) continue;
    auto t = range.substr(0, slash);
    auto s = range.substr(slash + 1);
    int specificity = -1;
    if (t == "*" && s == "*")
      specificity = 0;
    else if (iequals(t, type) && s == "*")
      specificity = 1;
    else if (iequals(t, type) && iequals(s, subtype))
      specificity = 2;
    if (specificity > best.specificity) best = {specificity, q, position};
    ++position;
  }
  return best;
}

} // namespace

bool wants_msgpack(std::string_view accept) {
  auto mp = accepted(accept, "application", "msgpack");
  auto js = accepted(accept, "application", "json");
  if (mp.q <= 0) return false;
  if (mp.q != js.q) return mp.q > js.q;
  // Equal q: the one listed first; one range matching both (`*/*`) means JSON.
  return mp.position < js.position;
}

std::string clip(std::string_view text) {
  if (text.size() <= quote_limit) return std::string{text};
  auto cut = quote_limit;
  // Never split a UTF-8 sequence: back up over continuation bytes.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string{text.substr(0, cut)} + "\xE2\x80\xA6"; // U+2026 HORIZONTAL ELLIPSIS
}

nlohmann::json to_json(const value& v) {
  struct visitor {
    nlohmann::json operator()(std::monostate) const { return nullptr; }
    nlohmann::json operator()(bool b) const { return b; }
    nlohmann::json operator()(std::int64_t i) const { return i; }
    nlohmann::json operator()(double d) const {
      // JSON has no NaN or infinity; null says "no number" honestly.
      if (!std::isfinite(d)) return nullptr;
      return d;
    }
    nlohmann::json operator()(const std::string& s) const { return s; }
    nlohmann::json operator()(const bytes& b) const { return to_display_string(value{b}); }
  };
  return std::visit(visitor{}, v);
}

std::optional<value> from_json(const nlohmann::json& j, value_type t, std::string& expected) {
  expected = std::string{"a value of type "} + to_string(t);
  switch (t) {
    case value_type::boolean:
      expected = "true or false";
      if (j.is_boolean()) return value{j.get<bool>()};
      return std::nullopt;
    case value_type::int64:
    case value_type::float64: {
      expected = t == value_type::int64 ? "an integer" : "a number";
      value raw;
      if (j.is_number_integer() && !j.is_number_unsigned()) {
        raw = j.get<std::int64_t>();
      } else if (j.is_number_unsigned()) {
        auto u = j.get<std::uint64_t>();
        if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          raw = static_cast<double>(u);
        else
          raw = static_cast<std::int64_t>(u);
      } else if (j.is_number_float()) {
        raw = j.get<double>();
      } else {
        return std::nullopt;
      }
      return coerce(raw, t);
    }
    case value_type::string:
      expected = "a string";
      if (j.is_string()) return value{j.get<std::string>()};
      return std::nullopt;
    case value_type::bytes: {
      expected = "a hex string of even length";
      if (!j.is_string()) return std::nullopt;
      auto& s = j.get_ref<const std::string&>();
      if (s.size() % 2 != 0) return std::nullopt;
      bytes out;
      out.reserve(s.size() / 2);
      for (std::size_t i = 0; i < s.size(); i += 2) {
        int hi = hex_digit(s[i]);
        int lo = hex_digit(s[i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
      }
      return value{std::move(out)};
    }
  }
  return std::nullopt;
}

std::string encode_msgpack(const nlohmann::json& j) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk{&buf};
  pack(pk, j);
  return std::string{buf.data(), buf.size()};
}

/// Every string in `j` with secret values replaced: whatever a connector answers or a device
/// sends, no registered secret leaves the node through the API.
void redact_strings(nlohmann::json& j) {
  if (j.is_string())
    j = log::redact(j.get<std::string>());
  else if (j.is_structured())
    for (auto& x : j) redact_strings(x);
}

http_reply document_reply(int status, const nlohmann::json& body, bool msgpack) {
  http_reply r;
  r.status = status;
  nlohmann::json redacted;
  const nlohmann::json* doc = &body;
  if (log::has_secrets()) {
    redacted = body;
    redact_strings(redacted);
    doc = &redacted;
  }
  if (msgpack) {
    r.content_type = msgpack_content_type;
    r.body = encode_msgpack(*doc);
  } else {
    r.content_type = json_content_type;
    // Replace invalid UTF-8 (e.g. from a device string) rather than throw mid-reply.
    r.body = doc->dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return r;
}

http_reply error_reply(errc code, const std::string& message, bool msgpack) {
  // Messages can carry what a device or library said; no secret value leaves through them.
  nlohmann::json body{{"error", {{"code", to_string(code)}, {"message", log::redact(message)}}}};
  return document_reply(http_status(code), body, msgpack);
}

std::optional<std::string> percent_decode(std::string_view in, bool plus_is_space) {
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return std::nullopt;
      int hi = hex_digit(in[i + 1]);
      int lo = hex_digit(in[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::vector<std::string>> split_path(std::string_view target) {
  auto path = target.substr(0, target.find('?'));
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < path.size()) {
    if (path[pos] == '/') {
      ++pos;
      continue;
    }
    auto end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    auto seg = percent_decode(path.substr(pos, end - pos));
    if (!seg) return std::nullopt;
    out.push_back(std::move(*seg));
    pos = end;
  }
  return out;
}

std::optional<std::map<std::string, std::string>> parse_query(std::string_view target) {
  std::map<std::string, std::string> out;
  auto q = target.find('?');
  if (q == std::string_view::npos) return out;
  auto query = target.substr(q + 1);
  std::size_t pos = 0;
  while (pos <= query.size()) {
    auto end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    auto pair = query.substr(pos, end - pos);
    if (!pair.empty()) {
      auto eq = pair.find('=');
      auto key = percent_decode(pair.substr(0, eq), true);
      auto val = eq == std::string_view::npos ? std::optional<std::string>{""}
                                              : percent_decode(pair.substr(eq + 1), true);
      if (!key || !val) return std::nullopt;
      out[*key] = *val;
    }
    pos = end + 1;
  }
  return out;
}

} // namespace manifold::gateway
