#include "modbus/modbus_schema.hpp"

#include <any>

namespace manifold::connectors::modbus {

using namespace std::chrono_literals;

const char* to_string(modbus_table t) {
  switch (t) {
    case modbus_table::coil: return "coil";
    case modbus_table::discrete_input: return "discrete_input";
    case modbus_table::holding_register: return "holding_register";
    case modbus_table::input_register: return "input_register";
  }
  return "?";
}

bool writable_table(modbus_table t) {
  return t == modbus_table::coil || t == modbus_table::holding_register;
}

bool bit_table(modbus_table t) {
  return t == modbus_table::coil || t == modbus_table::discrete_input;
}

void modbus_schema::parse_connector(config::map_reader& r, connector_config& c) {
  connector_settings s;
  if (auto v = r.get_string("host")) {
    if (v->empty()) r.error("host", "'host' must not be empty");
    else s.host = *v;
  }
  if (auto v = r.get_int("port", 1, 65535, true)) s.port = static_cast<std::uint16_t>(*v);
  if (auto v = r.get_duration("timeout", 10ms, 60s)) s.timeout = *v;
  if (auto v = r.get_int("max_gap", 0, 100)) s.max_gap = static_cast<int>(*v);
  c.settings = s;
}

void modbus_schema::parse_device(config::map_reader& r, const connector_config&,
                                 device_config& d) {
  device_settings s;
  if (auto v = r.get_int("unit_id", 0, 247)) s.unit_id = static_cast<int>(*v);
  d.settings = s;
}

void modbus_schema::parse_point(config::map_reader& r, const connector_config&,
                                const device_config&, point_config& p) {
  point_settings s;
  bool ok = true;
  auto table = r.get_enum(
    "table", {"coil", "discrete_input", "holding_register", "input_register"}, true);
  auto address = r.get_int("address", 0, 65535, true);
  ok = table && address;
  if (table) {
    for (auto t : {modbus_table::coil, modbus_table::discrete_input,
                   modbus_table::holding_register, modbus_table::input_register})
      if (*table == to_string(t)) s.table = t;
  }
  if (address) s.address = static_cast<int>(*address);

  auto enc = r.get_enum("encoding", {"int16", "uint16", "int32", "uint32", "float32", "float64"});
  auto bytes = r.get_enum("byte_order", {"big", "little"});
  auto words = r.get_enum("word_order", {"big", "little"});
  auto scale = r.get_double("scale");
  auto offset = r.get_double("offset");
  if (bytes) s.format.byte_order = *bytes == "big" ? order::big : order::little;
  if (words) s.format.word_order = *words == "big" ? order::big : order::little;
  if (scale) {
    if (*scale == 0) r.error("scale", "'scale' must not be 0 (value = raw * scale + offset)");
    else s.format.scale = *scale;
  }
  if (offset) s.format.offset = *offset;
  s.format.type = p.type;

  if (table && bit_table(s.table)) {
    s.format.enc = encoding::boolean;
    for (const char* key : {"encoding", "byte_order", "word_order", "scale", "offset"})
      if (r.has(key))
        r.error(key, std::string{"'"} + key + "' applies only to registers, not to a " + *table);
    if (p.type != value_type::boolean) {
      r.error("type", "a " + *table + " point must have type bool, got " + to_string(p.type));
      ok = false;
    }
  } else if (table) {
    if (enc) s.format.enc = *parse_encoding(*enc);
    bool is_float = s.format.enc == encoding::float32 || s.format.enc == encoding::float64;
    auto type_key = r.has("type") ? "type" : "table";
    if (p.type != value_type::int64 && p.type != value_type::float64) {
      r.error(type_key, "a register point must have type int64 or double, got " +
                          std::string{to_string(p.type)});
      ok = false;
    } else if (p.type == value_type::int64 && s.format.scale != 1) {
      r.error(type_key, "a point with a scale other than 1 must have type double, got int64");
      ok = false;
    } else if (p.type == value_type::int64 && is_float) {
      r.error(type_key, std::string{"a "} + to_string(s.format.enc) +
                          " point must have type double, got int64");
      ok = false;
    } else if (p.type == value_type::int64 && s.format.offset != static_cast<std::int64_t>(
                                                                  s.format.offset)) {
      r.error("offset", "an int64 point needs a whole-number 'offset'");
      ok = false;
    }
  }

  if (table && p.writable && !writable_table(s.table)) {
    r.error("writable", "a " + *table + " cannot be written; only coil and holding_register "
                        "points may be writable");
    ok = false;
  }
  if (table && address) {
    int count = register_count(s.format.enc);
    if (s.address + count > 65536) {
      r.error("address", "address " + std::to_string(s.address) + " plus " +
                           std::to_string(count) + " registers of " + to_string(s.format.enc) +
                           " runs past the last address 65535");
      ok = false;
    }
  }
  if (ok) p.settings = s;
}

void modbus_schema::parse_action(config::map_reader& r, const connector_config&,
                                 const device_config& d, action_config& a) {
  action_settings s;
  auto target = r.get_string("write", true);
  if (!target) return;
  s.point = *target;
  const point_config* p = d.point(*target);
  if (!p) {
    r.error("write", "'write' names no point of device '" + d.name + "': '" + *target + "'");
    return;
  }
  if (!p->writable) {
    r.error("write", "'write' must name a writable point; '" + *target + "' is not writable");
    return;
  }
  if (a.parameters.size() != 1) {
    r.error(r.has("params") ? "params" : "write",
            "an action that writes a point must declare exactly one parameter (the value), got " +
              std::to_string(a.parameters.size()));
    return;
  }
  auto& param = a.parameters.front();
  s.parameter = param.name;
  bool bits = p->type == value_type::boolean;
  bool numeric = param.type == value_type::int64 || param.type == value_type::float64;
  if (bits ? param.type != value_type::boolean : !numeric) {
    r.error("params", "parameter '" + param.name + "' must be " +
                        (bits ? "bool" : "int64 or double") + " to be written to point '" +
                        p->name + "', got " + to_string(param.type));
    return;
  }
  if (a.result) {
    bool result_numeric = *a.result == value_type::int64 || *a.result == value_type::float64;
    if (bits ? *a.result != value_type::boolean : !result_numeric)
      r.error("result", "the result of an action that writes '" + p->name + "' is the written " +
                          "value, a " + to_string(p->type) + "; got " + to_string(*a.result));
  }
  a.settings = s;
}

void modbus_schema::check(const connector_config&, config::diagnostics&) {
  // Every cross-field rule concerns one point or one action and is checked where that point or
  // action is read, so the diagnostic points at the offending key.
}

} // namespace manifold::connectors::modbus
