#pragma once

namespace manifold::cli {

/// Exit codes of the `manifold` command, for scripts.
enum exit_code : int {
  exit_ok = 0,
  exit_failed = 1,      ///< The node answered with an error (unknown device, bad parameter, …).
  exit_usage = 2,       ///< Bad command line or invalid config.
  exit_unreachable = 3, ///< No node answered at the given URL.
};

/// Parses the command line and runs the command; returns the process exit code.
int run(int argc, char** argv);

} // namespace manifold::cli
