#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "manifold/actors/model.hpp"

/// Turning Modbus registers and bits into point values and back. Pure functions, no I/O.
namespace manifold::connectors::modbus {

/// How a point's value is laid out in its registers. Coils and discrete inputs are `boolean`.
enum class encoding : std::uint8_t { boolean, int16, uint16, int32, uint32, float32, float64 };

/// `big`: the most significant byte (or word) first, as the Modbus specification sends a
/// register; `little`: swapped, as many PLCs store 32-bit values.
enum class order : std::uint8_t { big, little };

const char* to_string(encoding e);
std::optional<encoding> parse_encoding(const std::string& name);

/// Registers a value of this encoding occupies (1 for booleans: one bit).
int register_count(encoding e);

/// Everything needed to decode and encode one point's value.
struct value_format {
  encoding enc = encoding::uint16;
  order byte_order = order::big;
  order word_order = order::big;
  double scale = 1;
  double offset = 0;
  value_type type = value_type::int64; ///< The point's declared type: int64, float64 or boolean.
};

/// A decoded value, or why the registers could not be decoded (e.g. a NaN float).
using decode_result = std::variant<value, std::string>;

/// Decodes `register_count(f.enc)` registers starting at `regs[0]`: value = raw * scale + offset.
decode_result decode_registers(const std::uint16_t* regs, std::size_t count, const value_format& f);

/// Encoded registers, or why the value cannot be written (wrong type, out of the encoding's range).
using encode_result = std::variant<std::vector<std::uint16_t>, std::string>;

/// Reverses scale and offset (raw = (v - offset) / scale), rounds to the nearest integer for
/// integer encodings and refuses values the encoding cannot hold instead of wrapping them.
encode_result encode_registers(const value& v, const value_format& f);

/// The raw integer or float a register layout holds, before scale and offset.
/// Exposed for tests; `decode_registers` is the normal entry point.
double raw_number(const std::uint16_t* regs, const value_format& f);

} // namespace manifold::connectors::modbus
