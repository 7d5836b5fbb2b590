#include "manifold/actors/log.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <vector>

#include "manifold/actors/model.hpp"

namespace manifold::log {

namespace {

std::atomic<level> global_level{level::info};
std::mutex output_mutex;

const char* level_name(level l) {
  switch (l) {
    case level::trace: return "TRACE";
    case level::debug: return "DEBUG";
    case level::info: return "INFO";
    case level::warn: return "WARN";
    case level::error: return "ERROR";
    default: return "?";
  }
}

void append_value(std::string& out, const std::string& v) {
  bool quote = v.empty() || v.find_first_of(" \t\"=") != std::string::npos;
  if (!quote) {
    out += v;
    return;
  }
  out += '"';
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  out += '"';
}

std::mutex secrets_mutex;
std::vector<std::string> secret_values; ///< Guarded by secrets_mutex; only ever grows.
std::atomic<bool> have_secrets{false};

} // namespace

void register_secret(const std::string& value) {
  if (value.size() < 4) return;
  std::lock_guard<std::mutex> guard{secrets_mutex};
  if (std::find(secret_values.begin(), secret_values.end(), value) == secret_values.end())
    secret_values.push_back(value);
  have_secrets = true;
}

bool has_secrets() {
  return have_secrets.load(std::memory_order_acquire);
}

std::string redact(std::string text) {
  if (!have_secrets.load(std::memory_order_acquire)) return text;
  std::lock_guard<std::mutex> guard{secrets_mutex};
  for (auto& v : secret_values)
    for (auto pos = text.find(v); pos != std::string::npos; pos = text.find(v, pos + 3))
      text.replace(pos, v.size(), "***");
  return text;
}

bool parse_level(const std::string& name, level& out) {
  static const std::pair<const char*, level> names[] = {
    {"trace", level::trace}, {"debug", level::debug}, {"info", level::info},
    {"warn", level::warn},   {"error", level::error}, {"off", level::off}};
  for (auto& [n, l] : names) {
    if (name == n) {
      out = l;
      return true;
    }
  }
  return false;
}

void set_level(level l) {
  global_level = l;
}

level current_level() {
  return global_level;
}

std::string to_field_value(redacted) {
  return "***";
}

void write(level l, std::string_view module, std::string_view message,
           std::initializer_list<field> fields) {
  if (l < global_level.load(std::memory_order_relaxed)) return;
  std::string line = format_timestamp(now_timestamp());
  line += ' ';
  line += level_name(l);
  line += ' ';
  line += module;
  line += ": ";
  for (char c : message) line += (c == '\n' ? ' ' : c);
  for (auto& [k, v] : fields) {
    line += ' ';
    line += k;
    line += '=';
    append_value(line, v);
  }
  line += '\n';
  line = redact(std::move(line));
  std::lock_guard<std::mutex> guard{output_mutex};
  std::fwrite(line.data(), 1, line.size(), stderr);
}

} // namespace manifold::log
