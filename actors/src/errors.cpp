#include "manifold/actors/errors.hpp"

#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace manifold {

const char* to_string(errc code) {
  switch (code) {
    case errc::none: return "none";
    case errc::bad_request: return "bad_request";
    case errc::not_found: return "not_found";
    case errc::read_only: return "read_only";
    case errc::conflict: return "conflict";
    case errc::unavailable: return "unavailable";
    case errc::timeout: return "timeout";
    case errc::device_error: return "device_error";
    case errc::overloaded: return "overloaded";
    case errc::internal: return "internal";
  }
  return "internal";
}

caf::atom_value manifold_errc_category() {
  return caf::atom("manifold");
}

caf::error make_error(errc code, std::string message) {
  return caf::error{static_cast<std::uint8_t>(code), manifold_errc_category(),
                    caf::make_message(std::move(message))};
}

errc code_of(const caf::error& err) {
  if (!err) return errc::none;
  if (err.category() == manifold_errc_category()) return static_cast<errc>(err.code());
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
      case caf::sec::request_timeout: return errc::timeout;
      case caf::sec::request_receiver_down:
      case caf::sec::no_actor_published_at_port:
      case caf::sec::cannot_connect_to_node: return errc::unavailable;
      case caf::sec::unexpected_message: return errc::bad_request;
      default: break;
    }
  }
  return errc::internal;
}

std::string message_of(const caf::error& err) {
  if (!err) return {};
  if (err.category() == manifold_errc_category() && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  switch (code_of(err)) {
    case errc::timeout: return "no answer within the deadline";
    case errc::unavailable: return "the connector is not running";
    default: return "internal error (" + caf::to_string(err) + ")";
  }
}

int http_status(errc code) {
  switch (code) {
    case errc::none: return 200;
    case errc::bad_request: return 400;
    case errc::not_found: return 404;
    case errc::read_only:
    case errc::conflict: return 409;
    case errc::unavailable:
    case errc::overloaded: return 503;
    case errc::timeout: return 504;
    case errc::device_error: return 502;
    case errc::internal: return 500;
  }
  return 500;
}

} // namespace manifold
