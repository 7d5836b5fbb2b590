// Unit tests of the modbus connector's pure parts: the register codec, the read planner and the
// config schema.

#include <cmath>
#include <cstring>

#include <gtest/gtest.h>

#include "manifold/actors/config.hpp"
#include "manifold/connectors/sdk.hpp"
#include "modbus/modbus_codec.hpp"
#include "modbus/modbus_planner.hpp"
#include "modbus/modbus_schema.hpp"

namespace {

using namespace manifold;
using namespace manifold::connectors;
using namespace manifold::connectors::modbus;
using regs = std::vector<std::uint16_t>;

value_format fmt(encoding e, order bytes = order::big, order words = order::big,
                 value_type t = value_type::float64, double scale = 1, double offset = 0) {
  value_format f;
  f.enc = e;
  f.byte_order = bytes;
  f.word_order = words;
  f.type = t;
  f.scale = scale;
  f.offset = offset;
  return f;
}

value decode_ok(const regs& r, const value_format& f) {
  auto res = decode_registers(r.data(), r.size(), f);
  if (auto* err = std::get_if<std::string>(&res)) {
    ADD_FAILURE() << "decode failed: " << *err;
    return {};
  }
  return std::get<value>(res);
}

regs encode_ok(const value& v, const value_format& f) {
  auto res = encode_registers(v, f);
  if (auto* err = std::get_if<std::string>(&res)) {
    ADD_FAILURE() << "encode failed: " << *err;
    return {};
  }
  return std::get<regs>(res);
}

std::string encode_error(const value& v, const value_format& f) {
  auto res = encode_registers(v, f);
  if (auto* err = std::get_if<std::string>(&res)) return *err;
  return {};
}

// -- codec ----------------------------------------------------------------------------------------

TEST(modbus_codec, float32_in_all_four_orders_decodes_the_documented_layouts) {
  EXPECT_EQ(decode_ok({0x4148, 0x0000}, fmt(encoding::float32)), value{12.5});
  EXPECT_EQ(decode_ok({0x0000, 0x4148}, fmt(encoding::float32, order::big, order::little)),
            value{12.5});
  EXPECT_EQ(decode_ok({0x4841, 0x0000}, fmt(encoding::float32, order::little, order::big)),
            value{12.5});
  EXPECT_EQ(decode_ok({0x0000, 0x4841}, fmt(encoding::float32, order::little, order::little)),
            value{12.5});
}

TEST(modbus_codec, sixteen_bit_values_honour_sign_and_byte_order) {
  auto i = value_type::int64;
  EXPECT_EQ(decode_ok({0xFFFF}, fmt(encoding::int16, order::big, order::big, i)),
            value{std::int64_t{-1}});
  EXPECT_EQ(decode_ok({0xFFFF}, fmt(encoding::uint16, order::big, order::big, i)),
            value{std::int64_t{65535}});
  EXPECT_EQ(decode_ok({0x3412}, fmt(encoding::uint16, order::little, order::big, i)),
            value{std::int64_t{0x1234}});
  EXPECT_EQ(decode_ok({0x0000, 0x0001}, fmt(encoding::uint32, order::big, order::big, i)),
            value{std::int64_t{1}});
  EXPECT_EQ(decode_ok({0x0001, 0x0000}, fmt(encoding::uint32, order::big, order::little, i)),
            value{std::int64_t{1}});
  EXPECT_EQ(decode_ok({0xFFFF, 0xFFFE}, fmt(encoding::int32, order::big, order::big, i)),
            value{std::int64_t{-2}});
}

TEST(modbus_codec, float64_big_endian_matches_ieee_layout) {
  // 1.5 is 0x3FF8000000000000.
  EXPECT_EQ(decode_ok({0x3FF8, 0, 0, 0}, fmt(encoding::float64)), value{1.5});
  EXPECT_EQ(decode_ok({0, 0, 0, 0x3FF8}, fmt(encoding::float64, order::big, order::little)),
            value{1.5});
  EXPECT_EQ(decode_ok({0, 0, 0, 0xF83F}, fmt(encoding::float64, order::little, order::little)),
            value{1.5});
}

TEST(modbus_codec, every_encoding_and_order_round_trips) {
  struct sample {
    encoding enc;
    value v;
    value_type t;
  };
  std::vector<sample> samples = {
    {encoding::int16, value{std::int64_t{-1234}}, value_type::int64},
    {encoding::int16, value{std::int64_t{32767}}, value_type::int64},
    {encoding::uint16, value{std::int64_t{65535}}, value_type::int64},
    {encoding::int32, value{std::int64_t{-2147483647 - 1}}, value_type::int64},
    {encoding::int32, value{std::int64_t{123456789}}, value_type::int64},
    {encoding::uint32, value{std::int64_t{4294967295}}, value_type::int64},
    {encoding::float32, value{-3.25}, value_type::float64},
    {encoding::float64, value{3.141592653589793}, value_type::float64},
  };
  for (auto& s : samples)
    for (auto b : {order::big, order::little})
      for (auto w : {order::big, order::little}) {
        auto f = fmt(s.enc, b, w, s.t);
        auto r = encode_ok(s.v, f);
        ASSERT_EQ(r.size(), static_cast<std::size_t>(register_count(s.enc))) << to_string(s.enc);
        EXPECT_EQ(decode_ok(r, f), s.v) << to_string(s.enc) << " bytes=" << (b == order::big)
                                        << " words=" << (w == order::big);
      }
}

TEST(modbus_codec, word_order_swaps_whole_registers_and_byte_order_swaps_inside_them) {
  auto v = value{std::int64_t{0x11223344}};
  auto i = value_type::int64;
  EXPECT_EQ(encode_ok(v, fmt(encoding::uint32, order::big, order::big, i)),
            (regs{0x1122, 0x3344}));
  EXPECT_EQ(encode_ok(v, fmt(encoding::uint32, order::big, order::little, i)),
            (regs{0x3344, 0x1122}));
  EXPECT_EQ(encode_ok(v, fmt(encoding::uint32, order::little, order::big, i)),
            (regs{0x2211, 0x4433}));
  EXPECT_EQ(encode_ok(v, fmt(encoding::uint32, order::little, order::little, i)),
            (regs{0x4433, 0x2211}));
}

TEST(modbus_codec, scale_and_offset_apply_on_read_and_reverse_on_write) {
  auto f = fmt(encoding::uint16, order::big, order::big, value_type::float64, 0.1, -40);
  auto v = decode_ok({650}, f); // 650 * 0.1 - 40
  ASSERT_TRUE(std::holds_alternative<double>(v));
  EXPECT_NEAR(std::get<double>(v), 25.0, 1e-9);
  EXPECT_EQ(encode_ok(value{25.0}, f), regs{650});
  // Rounds to the nearest raw step rather than truncating.
  EXPECT_EQ(encode_ok(value{25.04}, f), regs{650});
  EXPECT_EQ(encode_ok(value{25.06}, f), regs{651});
  // An int64 parameter is fine for a double point.
  EXPECT_EQ(encode_ok(value{std::int64_t{-40}}, f), regs{0});

  auto g = fmt(encoding::int16, order::big, order::big, value_type::int64, 1, 100);
  EXPECT_EQ(decode_ok({0xFFFF}, g), value{std::int64_t{99}});
  EXPECT_EQ(encode_ok(value{std::int64_t{99}}, g), regs{0xFFFF});
}

TEST(modbus_codec, out_of_range_writes_are_refused_not_wrapped) {
  auto u16 = fmt(encoding::uint16, order::big, order::big, value_type::int64);
  EXPECT_NE(encode_error(value{std::int64_t{65536}}, u16), "");
  EXPECT_NE(encode_error(value{std::int64_t{-1}}, u16), "");
  EXPECT_EQ(encode_error(value{std::int64_t{65535}}, u16), "");
  auto i16 = fmt(encoding::int16, order::big, order::big, value_type::int64);
  EXPECT_NE(encode_error(value{std::int64_t{32768}}, i16), "");
  EXPECT_NE(encode_error(value{std::int64_t{-32769}}, i16), "");
  auto u32 = fmt(encoding::uint32, order::big, order::big, value_type::int64);
  EXPECT_NE(encode_error(value{std::int64_t{4294967296}}, u32), "");
  // With scale 0.1, 6553.5 is the largest speed a uint16 can carry.
  auto speed = fmt(encoding::uint16, order::big, order::big, value_type::float64, 0.1);
  EXPECT_EQ(encode_error(value{6553.5}, speed), "");
  auto err = encode_error(value{6553.6}, speed);
  EXPECT_NE(err.find("out of range"), std::string::npos) << err;
  EXPECT_NE(encode_error(value{1e39}, fmt(encoding::float32)), "");
  EXPECT_NE(encode_error(value{std::nan("")}, fmt(encoding::float64)), "");
  EXPECT_NE(encode_error(value{std::string{"fast"}}, u16), "");
}

TEST(modbus_codec, nan_in_registers_is_a_decode_error_not_a_value) {
  auto res = decode_registers(regs{0x7FC0, 0x0000}.data(), 2, fmt(encoding::float32));
  EXPECT_TRUE(std::holds_alternative<std::string>(res));
  auto short_read = decode_registers(regs{0x4148}.data(), 1, fmt(encoding::float32));
  EXPECT_TRUE(std::holds_alternative<std::string>(short_read));
}

TEST(modbus_codec, booleans_encode_as_one_bit) {
  auto f = fmt(encoding::boolean, order::big, order::big, value_type::boolean);
  EXPECT_EQ(encode_ok(value{true}, f), regs{1});
  EXPECT_EQ(decode_ok({0}, f), value{false});
  EXPECT_NE(encode_error(value{std::int64_t{1}}, f), "");
}

// -- planner --------------------------------------------------------------------------------------

TEST(modbus_planner, contiguous_and_near_points_share_one_request) {
  auto plan = plan_reads(modbus_table::holding_register,
                         {{0, 10, 1}, {1, 11, 2}, {2, 13, 1}, {3, 16, 1}}, 2);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].address, 10);
  EXPECT_EQ(plan[0].count, 7);
  EXPECT_EQ(plan[0].points, (std::vector<std::size_t>{0, 1, 2, 3}));
}

TEST(modbus_planner, a_gap_larger_than_allowed_splits_the_request) {
  auto plan = plan_reads(modbus_table::input_register, {{0, 0, 2}, {1, 5, 1}}, 2);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].address, 0);
  EXPECT_EQ(plan[0].count, 2);
  EXPECT_EQ(plan[1].address, 5);
  EXPECT_EQ(plan[1].count, 1);
  EXPECT_EQ(plan[1].table, modbus_table::input_register);
  // The same points with a gap of 3 allowed need one request.
  EXPECT_EQ(plan_reads(modbus_table::input_register, {{0, 0, 2}, {1, 5, 1}}, 3).size(), 1u);
  // No gap allowed: only touching points merge.
  EXPECT_EQ(plan_reads(modbus_table::input_register, {{0, 0, 2}, {1, 2, 1}}, 0).size(), 1u);
}

TEST(modbus_planner, unsorted_and_overlapping_points_are_handled) {
  auto plan = plan_reads(modbus_table::holding_register, {{0, 20, 2}, {1, 0, 4}, {2, 2, 1}}, 0);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_EQ(plan[0].address, 0);
  EXPECT_EQ(plan[0].count, 4);
  EXPECT_EQ(plan[0].points, (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(plan[1].points, (std::vector<std::size_t>{0}));
}

TEST(modbus_planner, requests_respect_the_modbus_limits) {
  std::vector<planned_point> regs_points;
  for (std::size_t i = 0; i < 300; ++i) regs_points.push_back({i, static_cast<int>(i), 1});
  auto plan = plan_reads(modbus_table::holding_register, regs_points, 8);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].count, 125);
  EXPECT_EQ(plan[1].address, 125);
  EXPECT_EQ(plan[2].count, 50);
  // A 2-register value at the limit moves whole into the next request.
  auto edge = plan_reads(modbus_table::holding_register, {{0, 0, 124}, {1, 124, 2}}, 0);
  ASSERT_EQ(edge.size(), 2u);
  EXPECT_EQ(edge[1].address, 124);
  EXPECT_EQ(edge[1].count, 2);

  std::vector<planned_point> bits;
  for (std::size_t i = 0; i < 4500; ++i) bits.push_back({i, static_cast<int>(i), 1});
  auto bit_plan = plan_reads(modbus_table::coil, bits, 8);
  ASSERT_EQ(bit_plan.size(), 3u);
  EXPECT_EQ(bit_plan[0].count, 2000);
  EXPECT_EQ(bit_plan[2].count, 500);
  std::size_t covered = 0;
  for (auto& r : bit_plan) {
    EXPECT_LE(r.count, max_bits_per_read);
    covered += r.points.size();
  }
  EXPECT_EQ(covered, 4500u);
}

TEST(modbus_planner, no_points_no_requests) {
  EXPECT_TRUE(plan_reads(modbus_table::coil, {}, 8).empty());
}

// -- schema ---------------------------------------------------------------------------------------

const char* const good_config = R"(node:
  id: test
connectors:
  - name: plc
    type: modbus
    host: 127.0.0.1
    port: 5020
    timeout: 500ms
    devices:
      - name: pump
        unit_id: 3
        points:
          - name: speed
            type: double
            table: holding_register
            address: 0
            scale: 0.1
            writable: true
          - name: temperature
            type: double
            table: input_register
            address: 10
            encoding: float32
            word_order: little
          - name: running
            type: bool
            table: coil
            address: 0
            writable: true
        actions:
          - name: set_speed
            write: speed
            params:
              - name: value
                type: double
            result: double
)";

config::load_result load(const std::string& text) {
  connector_registry registry;
  registry.add(make_modbus_connector());
  return config::load_string(text, "t.yaml", registry.schemas(), registry.names());
}

/// Replaces the first occurrence of `from` in the good config.
std::string variant_of(const std::string& from, const std::string& to) {
  std::string s = good_config;
  auto at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

bool has_diagnostic(const config::load_result& r, int line, const std::string& text) {
  for (auto& d : r.diag.items())
    if (d.where.line == line && d.message.find(text) != std::string::npos &&
        d.where.file == "t.yaml")
      return true;
  return false;
}

TEST(modbus_schema, a_valid_config_yields_the_settings) {
  auto r = load(good_config);
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = r.config->connectors.at(0);
  auto& cs = std::any_cast<const connector_settings&>(c.settings);
  EXPECT_EQ(cs.port, 5020);
  EXPECT_EQ(cs.timeout, std::chrono::milliseconds{500});
  auto& d = c.devices.at(0);
  EXPECT_EQ(std::any_cast<const device_settings&>(d.settings).unit_id, 3);
  auto& speed = std::any_cast<const point_settings&>(d.points.at(0).settings);
  EXPECT_EQ(speed.table, modbus_table::holding_register);
  EXPECT_EQ(speed.format.enc, encoding::uint16);
  EXPECT_DOUBLE_EQ(speed.format.scale, 0.1);
  auto& temp = std::any_cast<const point_settings&>(d.points.at(1).settings);
  EXPECT_EQ(temp.address, 10);
  EXPECT_EQ(temp.format.enc, encoding::float32);
  EXPECT_EQ(temp.format.word_order, order::little);
  EXPECT_EQ(temp.format.byte_order, order::big);
  auto& a = std::any_cast<const action_settings&>(d.actions.at(0).settings);
  EXPECT_EQ(a.point, "speed");
  EXPECT_EQ(a.parameter, "value");
}

TEST(modbus_schema, defaults_apply_when_keys_are_left_out) {
  auto r = load(variant_of("    host: 127.0.0.1\n", ""));
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto& c = r.config->connectors.at(0);
  EXPECT_EQ(std::any_cast<const connector_settings&>(c.settings).host, "127.0.0.1");
  auto no_unit = load(variant_of("        unit_id: 3\n", ""));
  ASSERT_TRUE(no_unit.config) << no_unit.diag.to_string();
  EXPECT_EQ(std::any_cast<const device_settings&>(no_unit.config->connectors[0].devices[0].settings)
              .unit_id,
            1);
}

TEST(modbus_schema, a_missing_port_is_reported) {
  auto r = load(variant_of("    port: 5020\n", ""));
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(has_diagnostic(r, 4, "missing required key 'port'")) << r.diag.to_string();
  auto bad = load(variant_of("port: 5020", "port: 70000"));
  EXPECT_TRUE(has_diagnostic(bad, 7, "'port' must be between 1 and 65535")) << bad.diag.to_string();
}

TEST(modbus_schema, a_writable_input_register_is_an_error_at_its_line) {
  auto r = load(variant_of("            word_order: little\n",
                           "            word_order: little\n            writable: true\n"));
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(has_diagnostic(r, 25, "cannot be written")) << r.diag.to_string();
}

TEST(modbus_schema, a_coil_with_type_double_is_an_error_at_its_line) {
  auto r = load(variant_of("            type: bool\n", "            type: double\n"));
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(has_diagnostic(r, 26, "must have type bool")) << r.diag.to_string();
}

TEST(modbus_schema, a_scaled_register_must_be_double) {
  auto r = load(variant_of("            type: double\n            table: holding_register",
                           "            type: int64\n            table: holding_register"));
  EXPECT_FALSE(r.config);
  EXPECT_TRUE(has_diagnostic(r, 14, "must have type double")) << r.diag.to_string();
}

TEST(modbus_schema, bad_keys_and_values_are_each_reported) {
  auto r = load(variant_of("            encoding: float32\n", "            encoding: float16\n"));
  EXPECT_TRUE(has_diagnostic(r, 23, "'encoding' must be one of")) << r.diag.to_string();
  auto missing_table = load(variant_of("            table: coil\n", ""));
  EXPECT_TRUE(has_diagnostic(missing_table, 25, "missing required key 'table'"))
    << missing_table.diag.to_string();
  auto far = load(variant_of("address: 10", "address: 65535"));
  EXPECT_TRUE(has_diagnostic(far, 22, "runs past the last address")) << far.diag.to_string();
  auto unit = load(variant_of("unit_id: 3", "unit_id: 248"));
  EXPECT_TRUE(has_diagnostic(unit, 11, "'unit_id' must be between 0 and 247"))
    << unit.diag.to_string();
  auto typo = load(variant_of("scale: 0.1", "scal: 0.1"));
  EXPECT_FALSE(typo.config);
  EXPECT_TRUE(has_diagnostic(typo, 17, "scal")) << typo.diag.to_string();
}

TEST(modbus_schema, actions_must_write_a_writable_point_with_one_parameter) {
  auto unknown = load(variant_of("write: speed", "write: sped"));
  EXPECT_TRUE(has_diagnostic(unknown, 32, "names no point")) << unknown.diag.to_string();
  auto read_only = load(variant_of("write: speed", "write: temperature"));
  EXPECT_TRUE(has_diagnostic(read_only, 32, "writable point")) << read_only.diag.to_string();
  auto two = load(variant_of("                type: double\n",
                             "                type: double\n              - name: other\n"
                             "                type: double\n"));
  EXPECT_TRUE(has_diagnostic(two, 34, "exactly one parameter")) << two.diag.to_string();
  auto no_write = load(variant_of("            write: speed\n", ""));
  EXPECT_TRUE(has_diagnostic(no_write, 31, "missing required key 'write'"))
    << no_write.diag.to_string();
}

TEST(modbus_schema, the_builtin_registry_knows_modbus) {
  auto registry = connector_registry::builtin();
  auto r = config::load_string(good_config, "t.yaml", registry.schemas(), registry.names());
  EXPECT_TRUE(r.config) << r.diag.to_string();
}

TEST(modbus_schema, the_example_config_loads) {
  auto registry = connector_registry::builtin();
  auto r = config::load_file(std::string{MANIFOLD_SOURCE_DIR} + "/examples/modbus.yaml",
                             registry.schemas(), registry.names());
  ASSERT_TRUE(r.config) << r.diag.to_string();
  auto* c = r.config->connector("plant-modbus");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(r.config->gateway.port, 8080);
  auto& d = c->devices.at(0);
  EXPECT_EQ(d.points.size(), 4u);
  EXPECT_NE(d.action("set_speed"), nullptr);
}

} // namespace

namespace {

TEST(modbus_codec, a_decimal_scale_gives_the_decimal_the_device_means) {
  // 333 * 0.1 would be 33.300000000000004; the reading must be 33.3 exactly as a double parses it.
  auto v = decode_ok(regs{333}, fmt(encoding::uint16, order::big, order::big,
                                    value_type::float64, 0.1));
  EXPECT_EQ(std::get<double>(v), 33.3);
  v = decode_ok(regs{12345}, fmt(encoding::uint16, order::big, order::big, value_type::float64,
                                 0.01, 1));
  EXPECT_EQ(std::get<double>(v), 124.45);
}

} // namespace
