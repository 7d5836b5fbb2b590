// The real Modbus TCP client: a thin wrapper over libmodbus. Every call blocks for at most the
// response timeout; the connector makes them from its detached worker actor.

#include <cerrno>
#include <cstring>

#include <modbus/modbus.h>

#include "manifold/connectors/modbus_transport.hpp"

namespace manifold::connectors {

namespace {

/// Errors after which the TCP link cannot be trusted: the next call reconnects. A timeout counts
/// too, since a late answer would otherwise be taken as the reply to the next request.
bool link_error(int err) {
  switch (err) {
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EPIPE:
    case ECONNRESET:
    case EBADF:
    case ENOTCONN:
    case EHOSTUNREACH:
    case ENETUNREACH:
    case ECONNABORTED:
    case EINPROGRESS:
      return true;
    default: return false;
  }
}

class libmodbus_client : public modbus_client {
public:
  explicit libmodbus_client(const modbus_client_options& opts) : opts_(opts) {}

  ~libmodbus_client() override {
    close();
    if (ctx_) modbus_free(ctx_);
  }

  modbus_status connect() override {
    if (connected_) return modbus_status::success();
    if (!ctx_) {
      ctx_ = modbus_new_tcp(opts_.host.c_str(), opts_.port);
      if (!ctx_) return failure(errno, "cannot create a Modbus TCP context");
      auto ms = opts_.timeout.count();
      modbus_set_response_timeout(ctx_, static_cast<std::uint32_t>(ms / 1000),
                                  static_cast<std::uint32_t>((ms % 1000) * 1000));
    }
    if (modbus_connect(ctx_) == -1) {
      int err = errno;
      auto st = failure(err, "cannot connect to " + endpoint());
      // Whatever went wrong, the device did not answer.
      st.connection_lost = true;
      return st;
    }
    connected_ = true;
    return modbus_status::success();
  }

  void close() override {
    if (ctx_ && connected_) modbus_close(ctx_);
    connected_ = false;
  }

  bool connected() const override { return connected_; }

  modbus_status read_bits(int unit_id, modbus_table table, int address, int count,
                          std::vector<std::uint8_t>& out) override {
    if (auto st = prepare(unit_id); !st.ok) return st;
    out.assign(static_cast<std::size_t>(count), 0);
    int rc = table == modbus_table::coil
               ? modbus_read_bits(ctx_, address, count, out.data())
               : modbus_read_input_bits(ctx_, address, count, out.data());
    return finish(rc, count);
  }

  modbus_status read_registers(int unit_id, modbus_table table, int address, int count,
                               std::vector<std::uint16_t>& out) override {
    if (auto st = prepare(unit_id); !st.ok) return st;
    out.assign(static_cast<std::size_t>(count), 0);
    int rc = table == modbus_table::holding_register
               ? modbus_read_registers(ctx_, address, count, out.data())
               : modbus_read_input_registers(ctx_, address, count, out.data());
    return finish(rc, count);
  }

  modbus_status write_coil(int unit_id, int address, bool on) override {
    if (auto st = prepare(unit_id); !st.ok) return st;
    return finish(modbus_write_bit(ctx_, address, on ? 1 : 0), 1);
  }

  modbus_status write_registers(int unit_id, int address,
                                const std::vector<std::uint16_t>& values) override {
    if (auto st = prepare(unit_id); !st.ok) return st;
    // One register goes with function 06, which more devices support than 16.
    int rc = values.size() == 1
               ? modbus_write_register(ctx_, address, values.front())
               : modbus_write_registers(ctx_, address, static_cast<int>(values.size()),
                                        values.data());
    return finish(rc, values.size() == 1 ? 1 : static_cast<int>(values.size()));
  }

private:
  std::string endpoint() const { return opts_.host + ":" + std::to_string(opts_.port); }

  modbus_status prepare(int unit_id) {
    if (auto st = connect(); !st.ok) return st;
    if (modbus_set_slave(ctx_, unit_id) == -1)
      return failure(errno, "invalid unit id " + std::to_string(unit_id));
    return modbus_status::success();
  }

  modbus_status finish(int rc, int expected) {
    if (rc == -1) return failure(errno, "Modbus request to " + endpoint() + " failed");
    if (rc != expected) {
      close();
      modbus_status st;
      st.ok = false;
      st.message = "short answer from " + endpoint() + ": " + std::to_string(rc) + " of " +
                   std::to_string(expected);
      return st;
    }
    return modbus_status::success();
  }

  modbus_status failure(int err, const std::string& what) {
    modbus_status st;
    st.ok = false;
    st.message = what + ": " + modbus_strerror(err);
    if (err >= EMBXILFUN && err <= EMBXGTAR) {
      st.exception_code = err - MODBUS_ENOBASE;
    } else if (link_error(err)) {
      st.connection_lost = true;
      close();
    } else {
      // A garbled or mismatched reply: start over on a fresh connection.
      close();
    }
    return st;
  }

  modbus_client_options opts_;
  modbus_t* ctx_ = nullptr;
  bool connected_ = false;
};

} // namespace

std::unique_ptr<modbus_client> make_libmodbus_client(const modbus_client_options& opts) {
  return std::make_unique<libmodbus_client>(opts);
}

} // namespace manifold::connectors
