#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>

/// One error enum for the whole project. Inside actors errors travel as `caf::error` whose
/// category is `manifold_errc_category` and whose context holds a human-readable message.
namespace manifold {

enum class errc : std::uint8_t {
  none = 0,
  bad_request,        ///< Parameters missing, of the wrong type or out of range (HTTP 400).
  not_found,          ///< Unknown connector, device, point or action (HTTP 404).
  read_only,          ///< Write to a point that is not writable (HTTP 409).
  conflict,           ///< The request contradicts the current state (HTTP 409).
  unavailable,        ///< The device or connector cannot be reached now (HTTP 503).
  timeout,            ///< No answer within the deadline (HTTP 504).
  device_error,       ///< The device rejected the request (HTTP 502).
  overloaded,         ///< A bounded queue is full (HTTP 503).
  internal,           ///< A bug (HTTP 500).
};

const char* to_string(errc code);

/// The atom that marks a `caf::error` as one of ours.
caf::atom_value manifold_errc_category();

caf::error make_error(errc code, std::string message);

/// Splits a `caf::error` back into our code and message. CAF's own errors (e.g. a request that
/// timed out, an actor that is gone) map to the nearest of ours.
errc code_of(const caf::error& err);
std::string message_of(const caf::error& err);

/// The HTTP status our API answers for an error code.
int http_status(errc code);

} // namespace manifold
