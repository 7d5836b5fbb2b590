#pragma once

#include <string>
#include <utility>

#include <caf/actor_system.hpp>

#include "manifold/connectors/sdk.hpp"

namespace manifold::connectors {

/// The usual connector type: a name, its config schema and its behaviour function, one actor
/// running `Behaviour` per instance. Included by connector implementations only, since it brings
/// in CAF's actor system header.
template <class Schema, auto Behaviour>
class basic_connector_type final : public connector_type {
public:
  explicit basic_connector_type(std::string name) : name_(std::move(name)) {}

  std::string name() const override { return name_; }
  config::connector_schema& schema() override { return schema_; }
  caf::actor spawn(caf::actor_system& sys, connector_context ctx) override {
    return sys.spawn(Behaviour, std::move(ctx));
  }

private:
  std::string name_;
  Schema schema_;
};

} // namespace manifold::connectors
