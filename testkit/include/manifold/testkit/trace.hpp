#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

/// The ordered record of what happened in a simulated run. Two runs with one seed produce the
/// same trace, so its hash identifies a run.
namespace manifold::testkit {

/// One entry: virtual time since the start of the run, a kind (`reading`, `write`, `publish`,
/// `inject`, `fault`, `invoke`, `result`) and a canonical text.
struct trace_event {
  std::chrono::milliseconds at{0};
  std::string kind;
  std::string text;

  std::string to_string() const; ///< `12.000s write pump holding_register 0 [1500]`
};

class event_trace {
public:
  /// Keeping every event costs memory on long runs; the hash is kept either way.
  explicit event_trace(bool keep_events = true) : keep_(keep_events) {}

  void record(std::chrono::milliseconds at, std::string kind, std::string text);

  const std::vector<trace_event>& events() const { return events_; }
  std::size_t size() const { return count_; }

  /// FNV-1a (64 bit) over every event's `to_string()` and a newline, in order.
  std::uint64_t hash() const { return hash_; }
  std::string hash_hex() const;

private:
  bool keep_;
  std::vector<trace_event> events_;
  std::size_t count_ = 0;
  std::uint64_t hash_ = 14695981039346656037ull;
};

/// `12.000s`
std::string format_elapsed(std::chrono::milliseconds d);

} // namespace manifold::testkit
