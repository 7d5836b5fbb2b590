#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

/// The Modbus client a connector talks through. Calls block; connectors make them from a
/// detached actor. The real client wraps libmodbus (TCP); the testkit provides simulated devices.
namespace manifold::connectors {

enum class modbus_table : std::uint8_t { coil, discrete_input, holding_register, input_register };

struct modbus_client_options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 502;
  std::chrono::milliseconds timeout{1000};
};

/// Outcome of one Modbus call.
struct modbus_status {
  bool ok = true;
  /// The device answered with a Modbus exception (1 illegal function, 2 illegal data address,
  /// 3 illegal data value, 4 device failure, …); 0 when it did not answer at all.
  int exception_code = 0;
  bool connection_lost = false; ///< No answer or the link broke: the device is unreachable.
  std::string message;

  static modbus_status success() { return {}; }
};

class modbus_client {
public:
  virtual ~modbus_client() = default;

  /// Whether calls block on I/O. The connector runs a blocking client in a detached actor (its
  /// own thread); a non-blocking one (the testkit's simulated devices) in an ordinary scheduled
  /// actor, so a deterministic scheduler runs it in order with everything else.
  virtual bool blocking() const { return true; }

  virtual modbus_status connect() = 0;
  virtual void close() = 0;
  virtual bool connected() const = 0;

  /// Reads `count` coils or discrete inputs (one byte, 0 or 1, per bit) into `out`.
  virtual modbus_status read_bits(int unit_id, modbus_table table, int address, int count,
                                  std::vector<std::uint8_t>& out) = 0;
  /// Reads `count` holding or input registers into `out`.
  virtual modbus_status read_registers(int unit_id, modbus_table table, int address, int count,
                                       std::vector<std::uint16_t>& out) = 0;
  virtual modbus_status write_coil(int unit_id, int address, bool on) = 0;
  virtual modbus_status write_registers(int unit_id, int address,
                                        const std::vector<std::uint16_t>& values) = 0;
};

std::unique_ptr<modbus_client> make_libmodbus_client(const modbus_client_options& opts);

} // namespace manifold::connectors
