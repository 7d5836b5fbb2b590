#pragma once

#include <functional>
#include <optional>

namespace CLI {
class App;
}

namespace manifold::cli {

/// Adds `manifold sandbox run` and `manifold sandbox action` to `app`. The returned function,
/// called after parsing, runs the sandbox command that was given and returns its exit code, or
/// nullopt when the command line named another command.
std::function<std::optional<int>()> add_sandbox_commands(CLI::App& app);

} // namespace manifold::cli
