#pragma once

// Helpers the scenario tests share: load a scenario file or fail loudly, and list what failed.

#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "manifold/testkit/scenario.hpp"

namespace manifold::test {

/// The scenario at `path`; throws with the diagnostics when it does not load.
inline testkit::scenario load_scenario_or_throw(const std::string& path) {
  auto r = testkit::load_scenario(path);
  if (!r.value) throw std::runtime_error(r.diag.to_string());
  return *r.value;
}

/// One line per failed step: where it is in the file, what it is, and why it failed.
inline std::string failed_steps(const testkit::scenario_report& rep) {
  std::string out;
  for (auto& s : rep.steps)
    if (!s.passed)
      out += s.where.to_string() + " step " + std::to_string(s.index) + " " + s.description +
             ": " + s.message + "\n";
  return out;
}

/// The result of step `index` (as numbered in the report); a test failure when there is none.
inline testkit::step_result step_of(const testkit::scenario_report& rep, std::size_t index) {
  for (auto& s : rep.steps)
    if (s.index == index) return s;
  ADD_FAILURE() << "no step " << index;
  return {};
}

} // namespace manifold::test
