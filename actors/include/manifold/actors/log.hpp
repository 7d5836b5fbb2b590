#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

/// Levelled, line-per-event logging. Every line names the module and carries the fields it
/// concerns (`connector=… device=…`), so `grep connector=plant-mqtt` finds a connector's story.
namespace manifold::log {

enum class level { trace, debug, info, warn, error, off };

bool parse_level(const std::string& name, level& out);
void set_level(level l);
level current_level();

/// A key and a value for one log line. Values are quoted when they contain spaces.
using field = std::pair<std::string_view, std::string>;

/// Marks a value that must never reach a log line; it is written as `***`.
struct redacted {};
std::string to_field_value(redacted);

/// Remembers a secret's value so that `redact` (and so every log line) replaces it with `***`
/// wherever it appears: a connector that puts its password into an exception message or a
/// client library that echoes it cannot leak it. Values shorter than 4 characters are not
/// registered (they would redact ordinary words).
void register_secret(const std::string& value);

/// True once any secret was registered; lets hot paths skip `redact` entirely.
bool has_secrets();

/// `text` with every registered secret value replaced by `***`.
std::string redact(std::string text);

void write(level l, std::string_view module, std::string_view message,
           std::initializer_list<field> fields = {});

/// One named logger per module.
class logger {
public:
  explicit logger(std::string module) : module_(std::move(module)) {}

  void debug(std::string_view msg, std::initializer_list<field> f = {}) const {
    write(level::debug, module_, msg, f);
  }
  void info(std::string_view msg, std::initializer_list<field> f = {}) const {
    write(level::info, module_, msg, f);
  }
  void warn(std::string_view msg, std::initializer_list<field> f = {}) const {
    write(level::warn, module_, msg, f);
  }
  void error(std::string_view msg, std::initializer_list<field> f = {}) const {
    write(level::error, module_, msg, f);
  }
  bool enabled(level l) const { return l >= current_level(); }

private:
  std::string module_;
};

} // namespace manifold::log
