#include "manifold/supervision/etcd_lease_store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <optional>
#include <utility>

#include <nlohmann/json.hpp>

#include "manifold/actors/errors.hpp"
#include "manifold/actors/http_client.hpp"
#include "manifold/actors/log.hpp"

namespace manifold::supervision {

namespace {

using json = nlohmann::json;

const log::logger logger{"etcd"};

// gRPC status codes that etcd's gateway puts into the `code` of an error answer.
constexpr int grpc_invalid_argument = 3;
constexpr int grpc_deadline_exceeded = 4;
constexpr int grpc_not_found = 5;

// -- base64 (etcd's gateway carries keys and values as base64 with padding) -----------------------

constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    auto n = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16) |
             (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
             std::uint32_t{static_cast<unsigned char>(in[i + 2])};
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += base64_alphabet[(n >> 6) & 63];
    out += base64_alphabet[n & 63];
  }
  if (auto left = in.size() - i; left > 0) {
    auto n = std::uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (left == 2) n |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out += base64_alphabet[(n >> 18) & 63];
    out += base64_alphabet[(n >> 12) & 63];
    out += left == 2 ? base64_alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(const std::string& in) {
  static const auto table = [] {
    std::array<int, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i)
      t[static_cast<unsigned char>(base64_alphabet[i])] = i;
    return t;
  }();
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int pad = 0;
    std::uint32_t n = 0;
    for (std::size_t j = 0; j < 4; ++j) {
      auto c = static_cast<unsigned char>(in[i + j]);
      // Padding may only end the text: at most two '=' in the last group.
      if (c == '=' && i + 4 == in.size() && j >= 2) {
        ++pad;
        n <<= 6;
        continue;
      }
      if (pad > 0 || table[c] < 0) return std::nullopt;
      n = (n << 6) | static_cast<std::uint32_t>(table[c]);
    }
    out += static_cast<char>((n >> 16) & 0xff);
    if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
    if (pad < 1) out += static_cast<char>(n & 0xff);
  }
  return out;
}

// -- reading etcd's JSON --------------------------------------------------------------------------

caf::error garbage(const std::string& what) {
  return make_error(errc::unavailable, "etcd answered garbage: " + what);
}

/// The first bytes of an answer, printable, for error messages.
std::string excerpt(const std::string& text) {
  std::string out;
  for (char c : text.substr(0, 80))
    out += (c >= 32 && c < 127) ? c : '?';
  if (text.size() > 80) out += "...";
  return out;
}

/// The gateway writes int64 fields as JSON strings and leaves out fields that are zero.
bool read_int64(const json& obj, const char* name, std::int64_t& out) {
  out = 0;
  auto it = obj.find(name);
  if (it == obj.end()) return true;
  if (it->is_number_integer()) {
    out = it->get<std::int64_t>();
    return true;
  }
  if (!it->is_string()) return false;
  const auto& text = it->get_ref<const std::string&>();
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size();
}

/// A base64 field; absent means empty (the gateway leaves out empty byte strings).
bool read_bytes(const json& obj, const char* name, std::string& out) {
  out.clear();
  auto it = obj.find(name);
  if (it == obj.end()) return true;
  if (!it->is_string()) return false;
  auto decoded = base64_decode(it->get_ref<const std::string&>());
  if (!decoded) return false;
  out = std::move(*decoded);
  return true;
}

/// Parses an answer body that must be a JSON object carrying etcd's response `header`.
caf::expected<json> parse_answer(const std::string& body) {
  auto doc = json::parse(body, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return garbage("not JSON: '" + excerpt(body) + "'");
  return doc;
}

caf::error expect_header(const json& doc, const std::string& body) {
  if (!doc.contains("header") || !doc["header"].is_object())
    return garbage("no response header in '" + excerpt(body) + "'");
  return caf::none;
}

caf::error read_kv(const json& item, kv_entry& out) {
  if (!item.is_object() || !read_bytes(item, "key", out.key) || out.key.empty() ||
      !read_bytes(item, "value", out.value) || !read_int64(item, "lease", out.lease) ||
      !read_int64(item, "create_revision", out.create_revision) ||
      !read_int64(item, "mod_revision", out.mod_revision))
    return garbage("malformed key-value entry '" + excerpt(item.dump()) + "'");
  return caf::none;
}

/// A transaction's outcome: whether its comparisons held.
caf::expected<bool> read_succeeded(const json& doc) {
  auto it = doc.find("succeeded");
  if (it == doc.end()) return false;
  if (!it->is_boolean()) return garbage("'succeeded' is not a boolean");
  return it->get<bool>();
}

/// The smallest key greater than every key starting with `prefix` (etcd's range_end). A prefix
/// of only 0xff bytes (or none) has no such key; "\0" then means "to the end of the keyspace".
std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto last = static_cast<unsigned char>(prefix.back());
    if (last < 0xff) {
      prefix.back() = static_cast<char>(last + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0');
}

json put_request(const std::string& key, const std::string& value, lease_id lease) {
  json req{{"key", base64_encode(key)}, {"value", base64_encode(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  return req;
}

} // namespace

// -- construction ---------------------------------------------------------------------------------

caf::expected<std::unique_ptr<etcd_lease_store>> etcd_lease_store::make(const etcd_config& cfg) {
  if (cfg.endpoints.empty())
    return make_error(errc::bad_request,
                      "etcd: no endpoint configured (expected http://host:port)");
  if (cfg.request_timeout.count() <= 0)
    return make_error(errc::bad_request, "etcd: request_timeout must be positive, got " +
                                             std::to_string(cfg.request_timeout.count()) + " ms");
  std::vector<http::parsed_url> urls;
  for (const auto& endpoint : cfg.endpoints) {
    std::string err;
    auto url = http::parse_url(endpoint, err);
    if (!url) return make_error(errc::bad_request, "etcd endpoint: " + err);
    urls.push_back(std::move(*url));
  }
  return std::unique_ptr<etcd_lease_store>{
      new etcd_lease_store(cfg.endpoints, std::move(urls), cfg.request_timeout)};
}

etcd_lease_store::etcd_lease_store(std::vector<std::string> names,
                                   std::vector<http::parsed_url> urls,
                                   std::chrono::milliseconds request_timeout)
  : endpoint_names_(std::move(names)), urls_(std::move(urls)), request_timeout_(request_timeout) {}

etcd_lease_store::~etcd_lease_store() = default;

// -- transport ------------------------------------------------------------------------------------

caf::error etcd_lease_store::post(const std::string& path, const std::string& body,
                                  const std::function<caf::error(const std::string&)>& on_answer) {
  const auto count = urls_.size();
  const auto first = preferred_.load() % count;
  bool timed_out = false;
  std::string failures;
  for (std::size_t attempt = 0; attempt < count; ++attempt) {
    const auto index = (first + attempt) % count;
    const auto& name = endpoint_names_[index];
    auto res = http::http_call(urls_[index], "POST", path, body, request_timeout_);
    caf::error err;
    if (res.status == 0) {
      timed_out = timed_out || res.timed_out;
      err = make_error(res.timed_out ? errc::timeout : errc::unavailable, res.error);
    } else if (res.status == 200) {
      err = on_answer(res.body);
    } else {
      // etcd reports failures as {"error": text, "message": text, "code": gRPC status}.
      auto doc = json::parse(res.body, nullptr, false);
      auto code = doc.is_object() ? doc.value("code", -1) : -1;
      auto message = doc.is_object() ? doc.value("message", std::string{}) : std::string{};
      if (code == grpc_not_found) {
        err = make_error(errc::not_found, "etcd " + path + ": " + message);
      } else if (code == grpc_invalid_argument) {
        err = make_error(errc::bad_request, "etcd refused " + path + ": " + message);
      } else if (code == grpc_deadline_exceeded) {
        timed_out = true;
        err = make_error(errc::timeout, "etcd timed out: " + message);
      } else if (code >= 0) {
        err = make_error(errc::unavailable,
                         "etcd failed (code " + std::to_string(code) + "): " + message);
      } else {
        err = garbage("HTTP " + std::to_string(res.status) + " '" + excerpt(res.body) + "'");
      }
    }

    auto errc_code = err ? code_of(err) : errc::none;
    if (errc_code != errc::unavailable && errc_code != errc::timeout) {
      if (index != first)
        logger.warn("etcd endpoint answers in place of a failed one",
                    {{"endpoint", name}, {"failed", failures}});
      preferred_.store(index);
      return err;
    }
    if (!failures.empty()) failures += "; ";
    failures += name + ": " + message_of(err);
  }
  if (timed_out)
    return make_error(errc::timeout, "etcd " + path + ": no endpoint answered within " +
                                         std::to_string(request_timeout_.count()) +
                                         " ms (the call may have been applied): " + failures);
  return make_error(errc::unavailable, "etcd " + path + ": no endpoint answered: " + failures);
}

// -- leases ---------------------------------------------------------------------------------------

caf::expected<lease_id> etcd_lease_store::grant(std::chrono::milliseconds ttl) {
  if (ttl.count() <= 0)
    return make_error(errc::bad_request,
                      "lease ttl must be positive, got " + std::to_string(ttl.count()) + " ms");
  auto seconds = (ttl.count() + 999) / 1000;
  lease_id id = 0;
  auto err = post("/v3/lease/grant", json{{"TTL", seconds}}.dump(), [&](const std::string& body) {
    auto doc = parse_answer(body);
    if (!doc) return doc.error();
    if (auto err = expect_header(*doc, body)) return err;
    if (auto text = doc->value("error", std::string{}); !text.empty())
      return make_error(errc::unavailable, "etcd refused a lease: " + text);
    if (!read_int64(*doc, "ID", id) || id <= 0)
      return garbage("no lease ID in '" + excerpt(body) + "'");
    return caf::error{};
  });
  if (err) return err;
  return id;
}

caf::expected<std::chrono::milliseconds> etcd_lease_store::keep_alive(lease_id id) {
  std::int64_t ttl = 0;
  auto err = post(
      "/v3/lease/keepalive", json{{"ID", std::to_string(id)}}.dump(), [&](const std::string& body) {
        // A streaming call: one {"result": ...} per request, or {"error": {...}} when it failed.
        auto doc = parse_answer(body);
        if (!doc) return doc.error();
        if (auto failure = doc->find("error"); failure != doc->end() && failure->is_object()) {
          auto code = failure->value("grpc_code", failure->value("code", -1));
          auto message = failure->value("message", std::string{});
          return make_error(code == grpc_not_found ? errc::not_found : errc::unavailable,
                            "etcd keep-alive failed: " + message);
        }
        auto result = doc->find("result");
        if (result == doc->end() || !result->is_object())
          return garbage("no keep-alive result in '" + excerpt(body) + "'");
        if (auto err = expect_header(*result, body)) return err;
        if (!read_int64(*result, "TTL", ttl)) return garbage("TTL is not a number");
        return caf::error{};
      });
  if (err) return err;
  // etcd answers an expired or unknown lease with a result that has no TTL (zero).
  if (ttl <= 0)
    return make_error(errc::not_found, "lease " + std::to_string(id) + " expired or was revoked");
  return std::chrono::milliseconds{ttl * 1000};
}

caf::error etcd_lease_store::revoke(lease_id id) {
  auto err = post("/v3/lease/revoke", json{{"ID", std::to_string(id)}}.dump(),
                  [](const std::string& body) {
                    auto doc = parse_answer(body);
                    if (!doc) return doc.error();
                    return expect_header(*doc, body);
                  });
  if (err && code_of(err) == errc::not_found) return caf::none; // Already gone: the goal holds.
  return err;
}

// -- keys -----------------------------------------------------------------------------------------

caf::expected<bool> etcd_lease_store::create(const std::string& key, const std::string& value,
                                             lease_id lease, kv_entry* holder) {
  auto encoded = base64_encode(key);
  json txn{
      {"compare", json::array({{{"key", encoded},
                                {"target", "CREATE"},
                                {"result", "EQUAL"},
                                {"create_revision", "0"}}})},
      {"success", json::array({{{"request_put", put_request(key, value, lease)}}})},
      {"failure", json::array({{{"request_range", {{"key", encoded}}}}})},
  };
  bool created = false;
  kv_entry existing;
  auto err = post("/v3/kv/txn", txn.dump(), [&](const std::string& body) {
    auto doc = parse_answer(body);
    if (!doc) return doc.error();
    if (auto err = expect_header(*doc, body)) return err;
    auto succeeded = read_succeeded(*doc);
    if (!succeeded) return succeeded.error();
    created = *succeeded;
    if (created) return caf::error{};
    // The failure branch read the key in the same transaction, so it exists in this answer.
    auto responses = doc->find("responses");
    if (responses == doc->end() || !responses->is_array() || responses->empty())
      return garbage("a failed create without the existing key in '" + excerpt(body) + "'");
    const auto& ranged = (*responses)[0];
    if (!ranged.contains("response_range") || !ranged["response_range"].contains("kvs") ||
        !ranged["response_range"]["kvs"].is_array() || ranged["response_range"]["kvs"].empty())
      return garbage("a failed create without the existing key in '" + excerpt(body) + "'");
    return read_kv(ranged["response_range"]["kvs"][0], existing);
  });
  if (err) return err;
  if (!created && holder != nullptr) *holder = std::move(existing);
  return created;
}

caf::error etcd_lease_store::put(const std::string& key, const std::string& value, lease_id lease) {
  return post("/v3/kv/put", put_request(key, value, lease).dump(), [](const std::string& body) {
    auto doc = parse_answer(body);
    if (!doc) return doc.error();
    return expect_header(*doc, body);
  });
}

caf::expected<bool> etcd_lease_store::remove_if(const std::string& key,
                                                const std::string& expected) {
  auto encoded = base64_encode(key);
  json txn{
      {"compare", json::array({{{"key", encoded},
                                {"target", "VALUE"},
                                {"result", "EQUAL"},
                                {"value", base64_encode(expected)}}})},
      {"success", json::array({{{"request_delete_range", {{"key", encoded}}}}})},
  };
  bool removed = false;
  auto err = post("/v3/kv/txn", txn.dump(), [&](const std::string& body) {
    auto doc = parse_answer(body);
    if (!doc) return doc.error();
    if (auto err = expect_header(*doc, body)) return err;
    auto succeeded = read_succeeded(*doc);
    if (!succeeded) return succeeded.error();
    removed = *succeeded;
    return caf::error{};
  });
  if (err) return err;
  return removed;
}

caf::error etcd_lease_store::remove(const std::string& key) {
  return post("/v3/kv/deleterange", json{{"key", base64_encode(key)}}.dump(),
              [](const std::string& body) {
                auto doc = parse_answer(body);
                if (!doc) return doc.error();
                return expect_header(*doc, body);
              });
}

caf::expected<std::vector<kv_entry>> etcd_lease_store::range(const std::string& prefix) {
  // An empty prefix means every key: etcd reads key "\0" with range_end "\0" as "all keys".
  auto start = prefix.empty() ? std::string(1, '\0') : prefix;
  json req{{"key", base64_encode(start)}, {"range_end", base64_encode(prefix_end(prefix))}};
  std::vector<kv_entry> entries;
  auto err = post("/v3/kv/range", req.dump(), [&](const std::string& body) {
    entries.clear();
    auto doc = parse_answer(body);
    if (!doc) return doc.error();
    if (auto err = expect_header(*doc, body)) return err;
    auto kvs = doc->find("kvs");
    if (kvs == doc->end()) return caf::error{};
    if (!kvs->is_array()) return garbage("'kvs' is not an array");
    for (const auto& item : *kvs) {
      kv_entry entry;
      if (auto err = read_kv(item, entry)) return err;
      entries.push_back(std::move(entry));
    }
    return caf::error{};
  });
  if (err) return err;
  // etcd returns keys in byte order already; sorting keeps the promise whatever the server does.
  std::sort(entries.begin(), entries.end(),
            [](const kv_entry& a, const kv_entry& b) { return a.key < b.key; });
  return entries;
}

} // namespace manifold::supervision
