#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "manifold/actors/model.hpp"

/// Reading and checking a node's YAML config. Every problem is reported with `file:line:column`
/// and what was expected, all of them at once, before anything starts.
namespace manifold::config {

struct diagnostic {
  source_location where;
  std::string message;

  std::string to_string() const; ///< `file:line:col: message`
};

class diagnostics {
public:
  void add(source_location where, std::string message);
  bool empty() const { return items_.empty(); }
  const std::vector<diagnostic>& items() const { return items_; }
  std::string to_string() const; ///< One diagnostic per line.
  /// Orders the diagnostics by position in the file, the order a reader fixes them in.
  void sort();

private:
  std::vector<diagnostic> items_;
};

/// A YAML mapping being read. Each key read is marked as used; `finish()` reports every key
/// nobody read as unknown, listing the keys that are allowed there.
class map_reader {
public:
  map_reader(YAML::Node node, std::string file, diagnostics& diag, std::string what);

  /// False if the node was not a mapping (already reported).
  bool ok() const { return ok_; }
  const YAML::Node& node() const { return node_; }
  source_location where() const;
  source_location where(const std::string& key) const;
  diagnostics& diag() { return diag_; }
  const std::string& file() const { return file_; }

  bool has(const std::string& key) const;
  /// Marks `key` as known and returns its node (undefined if absent).
  YAML::Node take(const std::string& key);

  std::optional<std::string> get_string(const std::string& key, bool required = false);
  std::optional<bool> get_bool(const std::string& key, bool required = false);
  std::optional<std::int64_t> get_int(const std::string& key, std::int64_t min, std::int64_t max,
                                      bool required = false);
  std::optional<double> get_double(const std::string& key, bool required = false);
  /// Durations are written `250ms`, `5s`, `2m`, `1h`; `min`/`max` bound the value.
  std::optional<std::chrono::milliseconds> get_duration(const std::string& key,
                                                        std::chrono::milliseconds min,
                                                        std::chrono::milliseconds max,
                                                        bool required = false);
  /// One of `choices`; anything else is reported with the list.
  std::optional<std::string> get_enum(const std::string& key,
                                      const std::vector<std::string>& choices,
                                      bool required = false);
  std::optional<value_type> get_value_type(const std::string& key, bool required = false);
  /// A name: letters, digits, `-`, `_`, `.`; 1..64 characters; used in URLs and metric labels.
  std::optional<std::string> get_name(const std::string& key, bool required = true);
  /// A mapping of strings to strings.
  std::map<std::string, std::string> get_string_map(const std::string& key);
  /// A credential, given as a reference, never inline: `{secret: NAME}` reads the file NAME in
  /// the secrets directory (the layout Kubernetes uses to mount a Secret), `{env: VAR}` reads an
  /// environment variable. A missing secret is reported like any other config error, without
  /// its value.
  std::optional<secret> get_secret(const std::string& key, bool required = false);

  /// A reader for the mapping under `key` that shares this reader's settings (secrets directory).
  map_reader nested(const std::string& key, std::string what);

  void set_secrets_dir(std::string dir) { secrets_dir_ = std::move(dir); }

  /// Reports every key that was not taken.
  void finish();

  void error(const std::string& key, const std::string& message);

private:
  YAML::Node node_;
  std::string file_;
  diagnostics& diag_;
  std::string what_;
  std::set<std::string> taken_;
  bool ok_ = true;
  std::string secrets_dir_;
};

source_location location_of(const YAML::Node& node, const std::string& file);
/// A YAML scalar as a value of type `t` (integers in any base stoll reads, finite doubles,
/// `true`/`false`); nullopt when it is not one.
std::optional<value> parse_scalar(const YAML::Node& node, value_type t);
std::optional<std::chrono::milliseconds> parse_duration(const std::string& text);
bool valid_name(const std::string& name);

/// The part of the config schema a connector type owns. The loader reads the keys every
/// connector has (name, type, devices, points, actions, …) and hands the same reader to these
/// hooks for the type's own keys; anything neither reads is an unknown key. A type overrides
/// the hooks for the levels that have keys of its own; the others read nothing.
class connector_schema {
public:
  virtual ~connector_schema() = default;
  virtual void parse_connector(map_reader&, connector_config&) {}
  virtual void parse_device(map_reader&, const connector_config&, device_config&) {}
  virtual void parse_point(map_reader&, const connector_config&, const device_config&,
                           point_config&) {}
  virtual void parse_action(map_reader&, const connector_config&, const device_config&,
                            action_config&) {}
  /// Cross-field checks once the whole connector is read.
  virtual void check(const connector_config&, diagnostics&) {}
};

/// Looks up the schema of a connector type; nullptr when the type is unknown.
using schema_lookup = std::function<connector_schema*(const std::string& type)>;

struct load_result {
  std::optional<node_config> config; ///< Set only when there were no diagnostics.
  diagnostics diag;
};

/// Parses `text` as a node config; `file` names it in diagnostics.
/// Settings of one load that do not come from the file itself.
struct load_options {
  /// Secrets directory when the config sets no `node.secrets_dir`; empty: the environment
  /// variable MANIFOLD_SECRETS_DIR, else /run/secrets/manifold.
  std::string secrets_dir;
};

load_result load_string(const std::string& text, const std::string& file,
                        const schema_lookup& schemas, const std::vector<std::string>& known_types,
                        const load_options& options = {});
/// Reads an already parsed YAML node laid out like a config file (e.g. a section of a testkit
/// scenario); positions in diagnostics are those of the file `file` it was parsed from.
load_result load_node(const YAML::Node& root, const std::string& file,
                      const schema_lookup& schemas, const std::vector<std::string>& known_types,
                      const load_options& options = {});
load_result load_file(const std::string& path, const schema_lookup& schemas,
                      const std::vector<std::string>& known_types,
                      const load_options& options = {});

} // namespace manifold::config
