#include "manifold/testkit/trace.hpp"

#include <cstdio>

namespace manifold::testkit {

std::string format_elapsed(std::chrono::milliseconds d) {
  char buf[48];
  auto ms = d.count();
  std::snprintf(buf, sizeof buf, "%lld.%03llds", static_cast<long long>(ms / 1000),
                static_cast<long long>(ms % 1000));
  return buf;
}

std::string trace_event::to_string() const {
  return format_elapsed(at) + " " + kind + " " + text;
}

void event_trace::record(std::chrono::milliseconds at, std::string kind, std::string text) {
  trace_event ev{at, std::move(kind), std::move(text)};
  for (unsigned char c : ev.to_string() + "\n") {
    hash_ ^= c;
    hash_ *= 1099511628211ull;
  }
  ++count_;
  if (keep_) events_.push_back(std::move(ev));
}

std::string event_trace::hash_hex() const {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(hash_));
  return buf;
}

} // namespace manifold::testkit
