#include "modbus/modbus_codec.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

namespace manifold::connectors::modbus {

namespace {

std::uint16_t swap_bytes(std::uint16_t r) {
  return static_cast<std::uint16_t>((r >> 8) | (r << 8));
}

/// The registers of one value as a big-endian integer of 16 * n bits: words brought into
/// most-significant-first order, bytes inside each word likewise.
std::uint64_t gather(const std::uint16_t* regs, int n, const value_format& f) {
  std::uint64_t bits = 0;
  for (int i = 0; i < n; ++i) {
    int src = f.word_order == order::big ? i : n - 1 - i;
    std::uint16_t w = regs[src];
    if (f.byte_order == order::little) w = swap_bytes(w);
    bits = (bits << 16) | w;
  }
  return bits;
}

std::vector<std::uint16_t> scatter(std::uint64_t bits, int n, const value_format& f) {
  std::vector<std::uint16_t> out(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    // Word i in most-significant-first order.
    auto w = static_cast<std::uint16_t>(bits >> (16 * (n - 1 - i)));
    if (f.byte_order == order::little) w = swap_bytes(w);
    int dst = f.word_order == order::big ? i : n - 1 - i;
    out[static_cast<std::size_t>(dst)] = w;
  }
  return out;
}

struct int_range {
  double min;
  double max;
};

int_range range_of(encoding e) {
  switch (e) {
    case encoding::int16: return {-32768.0, 32767.0};
    case encoding::uint16: return {0.0, 65535.0};
    case encoding::int32: return {-2147483648.0, 2147483647.0};
    case encoding::uint32: return {0.0, 4294967295.0};
    default: return {0.0, 1.0};
  }
}

std::string number_text(double d) {
  std::ostringstream s;
  s.precision(15);
  s << d;
  return s.str();
}

} // namespace

const char* to_string(encoding e) {
  switch (e) {
    case encoding::boolean: return "bool";
    case encoding::int16: return "int16";
    case encoding::uint16: return "uint16";
    case encoding::int32: return "int32";
    case encoding::uint32: return "uint32";
    case encoding::float32: return "float32";
    case encoding::float64: return "float64";
  }
  return "?";
}

std::optional<encoding> parse_encoding(const std::string& name) {
  for (auto e : {encoding::int16, encoding::uint16, encoding::int32, encoding::uint32,
                 encoding::float32, encoding::float64})
    if (name == to_string(e)) return e;
  return std::nullopt;
}

int register_count(encoding e) {
  switch (e) {
    case encoding::int32:
    case encoding::uint32:
    case encoding::float32: return 2;
    case encoding::float64: return 4;
    default: return 1;
  }
}

double raw_number(const std::uint16_t* regs, const value_format& f) {
  auto bits = gather(regs, register_count(f.enc), f);
  switch (f.enc) {
    case encoding::boolean: return bits != 0 ? 1.0 : 0.0;
    case encoding::int16: return static_cast<std::int16_t>(bits);
    case encoding::uint16: return static_cast<std::uint16_t>(bits);
    case encoding::int32: return static_cast<std::int32_t>(bits);
    case encoding::uint32: return static_cast<std::uint32_t>(bits);
    case encoding::float32: {
      auto u = static_cast<std::uint32_t>(bits);
      float x;
      std::memcpy(&x, &u, sizeof x);
      return x;
    }
    case encoding::float64: {
      double x;
      std::memcpy(&x, &bits, sizeof x);
      return x;
    }
  }
  return 0;
}

decode_result decode_registers(const std::uint16_t* regs, std::size_t count,
                               const value_format& f) {
  auto need = static_cast<std::size_t>(register_count(f.enc));
  if (count < need)
    return "expected " + std::to_string(need) + " registers for " + to_string(f.enc) + ", got " +
           std::to_string(count);
  if (f.enc == encoding::boolean) return value{regs[0] != 0};

  bool is_float = f.enc == encoding::float32 || f.enc == encoding::float64;
  if (f.type == value_type::int64 && !is_float && f.scale == 1) {
    // Integer path: exact, no detour through double.
    auto raw = static_cast<std::int64_t>(raw_number(regs, f));
    return value{raw + static_cast<std::int64_t>(f.offset)};
  }
  double raw = raw_number(regs, f);
  if (!std::isfinite(raw))
    return std::string{"the registers hold "} + (std::isnan(raw) ? "NaN" : "an infinity") +
           ", not a number";
  // A decimal scale such as 0.1 is applied as a division by 10: 333 * 0.1 is
  // 33.300000000000004 in binary floating point, 333 / 10.0 is the 33.3 the device means.
  double inverse = 1.0 / f.scale;
  bool decimal = std::abs(f.scale) < 1 && std::abs(inverse - std::round(inverse)) < 1e-9;
  double v = (decimal ? raw / std::round(inverse) : raw * f.scale) + f.offset;
  if (f.type == value_type::int64) return value{static_cast<std::int64_t>(std::llround(v))};
  return value{v};
}

encode_result encode_registers(const value& v, const value_format& f) {
  if (f.enc == encoding::boolean) {
    if (auto* b = std::get_if<bool>(&v))
      return std::vector<std::uint16_t>(1, static_cast<std::uint16_t>(*b ? 1 : 0));
    return std::string{"expected a bool"};
  }

  // The engineering value, as a number; integers stay exact while they can.
  std::optional<std::int64_t> as_int;
  double d = 0;
  if (auto* i = std::get_if<std::int64_t>(&v)) {
    as_int = *i;
    d = static_cast<double>(*i);
  } else if (auto* x = std::get_if<double>(&v)) {
    d = *x;
  } else {
    return std::string{"expected a number"};
  }
  if (!std::isfinite(d)) return std::string{"the value must be a finite number"};

  int n = register_count(f.enc);
  switch (f.enc) {
    case encoding::float32: {
      double raw = (d - f.offset) / f.scale;
      if (std::fabs(raw) > std::numeric_limits<float>::max())
        return "value " + number_text(d) + " is out of range for float32";
      float x = static_cast<float>(raw);
      std::uint32_t u;
      std::memcpy(&u, &x, sizeof u);
      return scatter(u, n, f);
    }
    case encoding::float64: {
      double raw = (d - f.offset) / f.scale;
      std::uint64_t u;
      std::memcpy(&u, &raw, sizeof u);
      return scatter(u, n, f);
    }
    default: break;
  }

  auto range = range_of(f.enc);
  std::int64_t raw = 0;
  if (as_int && f.scale == 1 && f.offset == std::trunc(f.offset)) {
    raw = *as_int - static_cast<std::int64_t>(f.offset);
    if (static_cast<double>(raw) < range.min || static_cast<double>(raw) > range.max)
      return "value " + std::to_string(*as_int) + " is out of range for " + to_string(f.enc) +
             " (raw " + std::to_string(raw) + ", allowed " + number_text(range.min) + ".." +
             number_text(range.max) + ")";
  } else {
    double scaled = std::round((d - f.offset) / f.scale);
    if (!(scaled >= range.min && scaled <= range.max))
      return "value " + number_text(d) + " is out of range for " + to_string(f.enc) +
             " with scale " + number_text(f.scale) + " and offset " + number_text(f.offset) +
             " (raw " + number_text(scaled) + ", allowed " + number_text(range.min) + ".." +
             number_text(range.max) + ")";
    raw = static_cast<std::int64_t>(scaled);
  }
  // Two's complement of the value in the encoding's width.
  auto width_mask = n == 1 ? 0xFFFFull : 0xFFFFFFFFull;
  return scatter(static_cast<std::uint64_t>(raw) & width_mask, n, f);
}

} // namespace manifold::connectors::modbus
