// .safetensors reading and writing, bf16 conversion, tensor specs. Expected values come from the
// format definition, hand-built files, IEEE bit patterns and (when installed) NumPy.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io_test_helpers.hpp"
#include "levattn/core/half.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/safetensors.hpp"
#include "levattn/io/tensor.hpp"

namespace {

using levattn::Error;
using levattn::ErrorKind;
using levattn::index_t;
namespace io = levattn::io;
namespace fs = std::filesystem;

using levattn::test::expect_error;
using levattn::test::raw_bytes;
using levattn::test::read_file;
using levattn::test::same_bits;
using levattn::test::TempDir;
using levattn::test::write_file;

std::string u64_bytes(std::uint64_t n) { return std::string(reinterpret_cast<const char*>(&n), 8); }

// A .safetensors file: the header length, the header text as given, the data buffer.
std::string make_safetensors(const std::string& header, const std::string& data) {
  return u64_bytes(header.size()) + header + data;
}

class Safetensors : public ::testing::Test {
 protected:
  TempDir dir{"levattn-test-st-"};
};

// ---------------------------------------------------------------- bf16 conversion

TEST(BFloat16, KnownBitPatterns) {
  EXPECT_TRUE(same_bits(levattn::bf16_to_float(0x0000), 0.0f));
  EXPECT_TRUE(same_bits(levattn::bf16_to_float(0x8000), -0.0f));
  EXPECT_EQ(levattn::bf16_to_float(0x3f80), 1.0f);
  EXPECT_EQ(levattn::bf16_to_float(0xc040), -3.0f);
  EXPECT_EQ(levattn::bf16_to_float(0x0001), 0x1p-133f);    // smallest subnormal
  EXPECT_EQ(levattn::bf16_to_float(0x0080), 0x1p-126f);    // smallest normal
  EXPECT_EQ(levattn::bf16_to_float(0x7f7f), 0x1.fep127f);  // max
  EXPECT_EQ(levattn::bf16_to_float(0x7f80), std::numeric_limits<float>::infinity());
  EXPECT_EQ(levattn::bf16_to_float(0xff80), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(levattn::bf16_to_float(0x7fc0)));
  EXPECT_TRUE(std::isnan(levattn::bf16_to_float(0x7f81)));

  EXPECT_EQ(levattn::float_to_bf16(0.0f), 0x0000);
  EXPECT_EQ(levattn::float_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(levattn::float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(levattn::float_to_bf16(1.0f + 0x1p-8f), 0x3f80);      // tie: 1 (even) wins
  EXPECT_EQ(levattn::float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie: 0x3f82 (even) wins over 0x3f81
  EXPECT_EQ(levattn::float_to_bf16(std::nextafter(1.0f + 0x1p-8f, 2.0f)), 0x3f81);
  EXPECT_EQ(levattn::float_to_bf16(std::numeric_limits<float>::max()),
            0x7f80);  // above max + half ulp: inf
  EXPECT_EQ(levattn::float_to_bf16(0x1.fep127f), 0x7f7f);
  EXPECT_EQ(levattn::float_to_bf16(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(levattn::float_to_bf16(0x1p-133f), 0x0001);
  EXPECT_EQ(levattn::float_to_bf16(-std::numeric_limits<float>::infinity()), 0xff80);
  const std::uint16_t nan = levattn::float_to_bf16(std::bit_cast<float>(0x7f800001u));  // payload only in the low bits
  EXPECT_TRUE(std::isnan(levattn::bf16_to_float(nan)));
}

TEST(BFloat16, ExhaustiveRoundTripAndTies) {
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const auto bits = static_cast<std::uint16_t>(b);
    if ((bits & 0x7f80) == 0x7f80 && (bits & 0x7f) != 0) continue;  // NaN
    ASSERT_EQ(levattn::float_to_bf16(levattn::bf16_to_float(bits)), bits) << std::hex << b;
  }
  for (std::uint32_t b = 0; b < 0x7f80; ++b) {
    const float mid = std::bit_cast<float>((b << 16) | 0x8000u);  // exactly halfway to the next bf16
    const auto lo = static_cast<std::uint16_t>(b), up = static_cast<std::uint16_t>(b + 1);
    ASSERT_EQ(levattn::float_to_bf16(mid), b % 2 == 0 ? lo : up) << std::hex << b;
    ASSERT_EQ(levattn::float_to_bf16(std::nextafter(mid, 0.0f)), lo) << std::hex << b;
    ASSERT_EQ(levattn::float_to_bf16(std::nextafter(mid, INFINITY)), up) << std::hex << b;
  }
}

// ---------------------------------------------------------------- writing + reading back

TEST_F(Safetensors, RoundTripEveryDtype) {
  std::vector<float> f32(12);
  for (int i = 0; i < 12; ++i) f32[static_cast<std::size_t>(i)] = static_cast<float>(i - 5) / 3.0f;
  const std::vector<std::uint16_t> f16 = {0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001};
  const std::vector<float> f16_values = {1.0f, -2.0f, 0.5f, 65504.0f, 0x1p-24f};
  const std::vector<std::uint16_t> bf16 = {0x3f80, 0xc040, 0x3f00, 0x7f80, 0x0001, 0x8000};
  const std::vector<float> bf16_values = {1.0f, -3.0f, 0.5f, INFINITY, 0x1p-133f, -0.0f};
  const double f64 = 0.1;
  const std::vector<std::int64_t> i64 = {std::numeric_limits<std::int64_t>::min(), -1, 0, 1LL << 60};

  const std::string path = dir.file("m.safetensors");
  const std::vector<io::TensorRef> tensors = {
      {"odd.f16", io::DType::f16, {5}, f16.data()},  // written first, laid out after the 8-byte
                                                     // types
      {"w.f32", io::DType::f32, {3, 4}, f32.data()},
      {"b.bf16", io::DType::bf16, {2, 1, 3}, bf16.data()},
      {"s.f64", io::DType::f64, {}, &f64},
      {"ids", io::DType::i64, {4}, i64.data()},
      {"none.i64", io::DType::i64, {0, 3}, nullptr},
      {"none.f32", io::DType::f32, {2, 0}, nullptr},
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "h\xc3\xa9llo"}};
  io::write_safetensors(path, tensors, metadata);

  // The raw layout: header length, space-padded JSON, aligned data.
  const std::string bytes = read_file(path);
  std::uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const std::string text = bytes.substr(8, n);
  const auto json = nlohmann::json::parse(text);
  EXPECT_EQ(json["__metadata__"]["note"], "h\xc3\xa9llo");
  EXPECT_EQ(json["w.f32"]["dtype"], "F32");
  EXPECT_EQ(json["w.f32"]["shape"], nlohmann::json({3, 4}));
  EXPECT_EQ(json["s.f64"]["shape"], nlohmann::json::array());
  EXPECT_EQ(text.find_last_not_of(' ') + 1, text.rfind('}') + 1);  // only spaces after the JSON

  const io::SafetensorsHeader h = io::read_safetensors_header(path);
  EXPECT_EQ(h.data_offset, 8 + n);
  EXPECT_EQ(h.metadata, metadata);
  ASSERT_EQ(h.tensors.size(), tensors.size());
  std::uint64_t total = 0;
  for (const io::TensorRef& t : tensors) {
    const auto e = std::find_if(h.tensors.begin(), h.tensors.end(), [&](const auto& x) { return x.name == t.name; });
    ASSERT_NE(e, h.tensors.end()) << t.name;
    EXPECT_EQ(e->dtype, t.dtype);
    EXPECT_EQ(e->shape, t.shape);
    EXPECT_EQ((h.data_offset + e->begin) % io::dtype_size(t.dtype), 0u) << t.name << " is not aligned";
    total += e->end - e->begin;
  }
  EXPECT_EQ(bytes.size(), h.data_offset + total);
  EXPECT_TRUE(
      std::is_sorted(h.tensors.begin(), h.tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; }));

  const io::FloatTensor w = io::load_float_tensor(path + ":w.f32");
  EXPECT_TRUE(w.mapped());
  EXPECT_EQ(w.source(), path + ":w.f32");
  EXPECT_EQ(w.shape(), (std::vector<index_t>{3, 4}));
  EXPECT_EQ(std::vector<float>(w.data(), w.data() + 12), f32);

  const io::FloatTensor half = io::load_float_tensor(path + ":odd.f16");
  EXPECT_EQ(half.source_dtype(), io::DType::f16);
  EXPECT_EQ(std::vector<float>(half.data(), half.data() + 5), f16_values);

  const io::FloatTensor b = io::load_float_tensor(path + ":b.bf16");
  EXPECT_EQ(b.shape(), (std::vector<index_t>{2, 1, 3}));
  for (std::size_t i = 0; i < bf16_values.size(); ++i) EXPECT_TRUE(same_bits(b.data()[i], bf16_values[i])) << i;

  const io::FloatTensor s = io::load_float_tensor(path + ":s.f64");
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.size(), 1);
  EXPECT_EQ(s.data()[0], static_cast<float>(0.1));

  EXPECT_EQ(io::load_float_tensor(path + ":none.f32").size(), 0);
  const auto ids = std::find_if(h.tensors.begin(), h.tensors.end(), [](const auto& x) { return x.name == "ids"; });
  EXPECT_EQ(bytes.substr(h.data_offset + ids->begin, 32), raw_bytes(i64));
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(path + ":ids"); },
               {path, "'ids'", "I64", "cannot be loaded as float"});
}

TEST_F(Safetensors, TensorSpecs) {
  const std::vector<float> v = {1, 2, 3};
  const std::string one = dir.file("one.safetensors");
  io::write_safetensors(one, {{"only", io::DType::f32, {3}, v.data()}});
  const io::FloatTensor t = io::load_float_tensor(one);
  EXPECT_EQ(t.source(), one);
  EXPECT_EQ(std::vector<float>(t.data(), t.data() + 3), v);

  const std::string two = dir.file("two.safetensors");
  io::write_safetensors(two, {{"k", io::DType::f32, {3}, v.data()}, {"q", io::DType::f32, {1, 3}, v.data()}});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(two); },
               {two, "2 tensors", "k, q", two + ":tensor_name"});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(two + ":v"); },
               {two, "no tensor named 'v'", "available: k, q"});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(two + ":"); }, {two, "empty tensor name"});
  EXPECT_EQ(io::load_float_tensor(two + ":q").shape(), (std::vector<index_t>{1, 3}));

  const std::string none = dir.file("none.safetensors");
  io::write_safetensors(none, {}, {{"k", "v"}});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(none); }, {none, "no tensors"});
  EXPECT_EQ(io::read_safetensors_header(none).metadata.at("k"), "v");

  // A colon in a directory name does not confuse the spec; the tensor name may contain colons.
  fs::create_directory(dir.file("we:ird"));
  const std::string odd = dir.file("we:ird/m.safetensors");
  io::write_safetensors(odd, {{"a:b", io::DType::f32, {3}, v.data()}, {"c", io::DType::f32, {1}, v.data()}});
  EXPECT_EQ(io::load_float_tensor(odd + ":a:b").size(), 3);

  // Many names: the list is cut short.
  std::vector<io::TensorRef> many;
  std::vector<std::string> names;
  for (int i = 0; i < 30; ++i)
    names.push_back(
        std::string("t").append(std::to_string(100 + i)));  // not "t" + ...: GCC 12 -Wrestrict false positive
  for (const auto& name : names) many.push_back({name, io::DType::f32, {1}, v.data()});
  const std::string big = dir.file("many.safetensors");
  io::write_safetensors(big, many);
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(big + ":x"); }, {"t100, t101", "t119 and 10 more"});
}

TEST_F(Safetensors, HandBuiltFilesWithForeignDtypesAndMisalignment) {
  // data: 2 bytes of I8 then 3 F32 at offset 2 (misaligned) then one I32.
  const std::vector<float> f = {1.5f, -2.25f, 1e-3f};
  const std::int32_t i32 = -7;
  const std::string data =
      std::string("\x01\xff", 2) + raw_bytes(f) + std::string(reinterpret_cast<const char*>(&i32), 4);
  std::string header =
      R"({ "x" : {"dtype":"F32","shape":[3],"data_offsets":[2,14]}, "c":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},)"
      R"("i":{"shape":[1,1],"dtype":"I32","data_offsets":[14,18], "extra": true}, "__metadata__": {}}   )";
  while (header.size() % 8 != 0) header += ' ';  // the buffer is 8-aligned, so "x" at offset 2 is not
  const std::string path = dir.file("h.safetensors");
  write_file(path, make_safetensors(header, data));
  const io::SafetensorsHeader h = io::read_safetensors_header(path);
  ASSERT_EQ(h.tensors.size(), 3u);
  EXPECT_EQ(h.tensors[0].name, "c");
  EXPECT_EQ(h.tensors[0].dtype_tag, "I8");
  EXPECT_FALSE(h.tensors[0].dtype.has_value());
  const io::FloatTensor x = io::load_float_tensor(path + ":x");
  EXPECT_FALSE(x.mapped());  // misaligned: copied
  EXPECT_EQ(std::vector<float>(x.data(), x.data() + 3), f);
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(path + ":i"); },
               {path, "'i'", "I32", "cannot be loaded"});
}

// ---------------------------------------------------------------- adversarial files

TEST_F(Safetensors, AdversarialFilesAreRejectedClearly) {
  const std::string data16(16, '\0');
  const auto entry = [](const std::string& fields) { return R"({"a": {)" + fields + "}}"; };
  struct Case {
    std::string name, bytes;
    std::vector<std::string> message;
  };
  const std::vector<Case> cases = {
      {"empty", "", {"too short for the 8-byte header length"}},
      {"seven", std::string("\x10\0\0\0\0\0\0", 7), {"(7 bytes, too short"}},
      {"huge_len", u64_bytes(1ULL << 63) + "{}", {"header length 9223372036854775808 exceeds the 2 bytes left"}},
      {"max_len", u64_bytes(~0ULL) + "{}", {"header length 18446744073709551615 exceeds"}},
      {"len_past_end", u64_bytes(100) + R"({"a": {"dtype": "F32"})", {"header length 100 exceeds the 22 bytes"}},
      {"invalid_json", make_safetensors(R"({"a": )", data16), {"invalid JSON header"}},
      {"garbage_json", make_safetensors("\x93NUMPY", data16), {"invalid JSON header"}},
      {"empty_json", make_safetensors("", data16), {"invalid JSON header"}},
      {"array_json", make_safetensors("[1, 2]", data16), {"not an object"}},
      {"entry_not_object", make_safetensors(R"({"a": 5})", data16), {"tensor 'a'", "not a JSON object"}},
      {"no_dtype", make_safetensors(entry(R"("shape": [4], "data_offsets": [0, 16])"), data16), {"'a'", "\"dtype\""}},
      {"dtype_number",
       make_safetensors(entry(R"("dtype": 4, "shape": [4], "data_offsets": [0, 16])"), data16),
       {"\"dtype\""}},
      {"unknown_dtype",
       make_safetensors(entry(R"("dtype": "Q7", "shape": [4], "data_offsets": [0, 16])"), data16),
       {"unknown dtype 'Q7'"}},
      {"no_shape", make_safetensors(entry(R"("dtype": "F32", "data_offsets": [0, 16])"), data16), {"\"shape\""}},
      {"negative_shape",
       make_safetensors(entry(R"("dtype": "F32", "shape": [-4], "data_offsets": [0, 16])"), data16),
       {"shape entries must be non-negative", "-4"}},
      {"float_shape",
       make_safetensors(entry(R"("dtype": "F32", "shape": [4.0], "data_offsets": [0, 16])"), data16),
       {"shape entries"}},
      {"string_shape",
       make_safetensors(entry(R"("dtype": "F32", "shape": "4", "data_offsets": [0, 16])"), data16),
       {"\"shape\""}},
      {"huge_dim",
       make_safetensors(entry(R"("dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 16])"), data16),
       {"shape entries"}},
      {"no_offsets", make_safetensors(entry(R"("dtype": "F32", "shape": [4])"), data16), {"data_offsets"}},
      {"three_offsets",
       make_safetensors(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16])"), data16),
       {"data_offsets\" must be an array [begin, end]"}},
      {"negative_offset",
       make_safetensors(entry(R"("dtype": "F32", "shape": [4], "data_offsets": [-16, 0])"), data16),
       {"data_offsets"}},
      {"outside",
       make_safetensors(entry(R"("dtype": "F32", "shape": [250], "data_offsets": [0, 1000])"), data16),
       {"data_offsets [0, 1000] lie outside the data buffer of 16 bytes"}},
      {"far_outside",
       make_safetensors(
           entry(R"("dtype": "F32", "shape": [1], "data_offsets": [9223372036854775800, 9223372036854775804])"),
           data16),
       {"outside the data buffer"}},
      {"reversed",
       make_safetensors(entry(R"("dtype": "F32", "shape": [1], "data_offsets": [8, 4])"), data16),
       {"[8, 4] lie outside"}},
      {"wrong_count",
       make_safetensors(entry(R"("dtype": "F32", "shape": [3], "data_offsets": [0, 16])"), data16),
       {"shape (3,) of F32 needs 12 bytes but data_offsets span 16"}},
      {"overflow",
       make_safetensors(entry(R"("dtype": "F32", "shape": [1099511627776, 1099511627776], "data_offsets": [0, 16])"),
                        data16),
       {"too large"}},
      {"deep_array", make_safetensors(std::string(300000, '[') + std::string(300000, ']'), data16), {"not an object"}},
      {"deep_shape",
       make_safetensors(entry(R"("dtype": "F32", "shape": [)" + std::string(300000, '[') + std::string(300001, ']') +
                              R"(, "data_offsets": [0, 16])"),
                        data16),
       {"shape entries must be non-negative 64-bit integers, got a JSON array"}},
      {"unclosed", make_safetensors(R"({"a": )" + std::string(300000, '['), data16), {"invalid JSON header"}},
      {"metadata_array",
       make_safetensors(R"({"__metadata__": [1]})", data16),
       {"\"__metadata__\" is not a JSON object"}},
      {"metadata_number",
       make_safetensors(R"({"__metadata__": {"k": 1}})", data16),
       {"metadata value for 'k' is not a string"}},
  };
  for (const Case& c : cases) {
    const std::string path = dir.file(c.name + ".safetensors");
    write_file(path, c.bytes);
    std::vector<std::string> parts = c.message;
    parts.push_back(path);
    expect_error(
        ErrorKind::bad_input, [&] { io::load_float_tensor(path + ":a"); }, parts);
    expect_error(
        ErrorKind::bad_input, [&] { io::read_safetensors_header(path); }, parts);
  }
  const std::string missing = dir.file("missing.safetensors");
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(missing); }, {missing, "cannot open"});
}

TEST_F(Safetensors, WriterRejectsBadArgumentsAndLeavesNothing) {
  const float x = 1;
  const std::string path = dir.file("w.safetensors");
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"a", io::DType::f32, {1}, &x}, {"a", io::DType::f32, {1}, &x}});
               },
               {path, "'a'", "duplicate"});
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"", io::DType::f32, {1}, &x}});
               },
               {"invalid tensor name"});
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"__metadata__", io::DType::f32, {1}, &x}});
               },
               {"invalid tensor name"});
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"a", io::DType::f32, {2}, nullptr}});
               },
               {"null data"});
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"a", io::DType::f32, {-1}, &x}});
               },
               {"negative"});
  expect_error(ErrorKind::bad_input,
               [&] {
                 io::write_safetensors(path, {{"bad\xff", io::DType::f32, {1}, &x}});
               },
               {"UTF-8"});
  EXPECT_TRUE(dir.entries().empty());

  const std::string nowhere = dir.file("no/such/dir.safetensors");
  expect_error(ErrorKind::failure,
               [&] {
                 io::write_safetensors(nowhere, {{"a", io::DType::f32, {1}, &x}});
               },
               {nowhere});
  EXPECT_TRUE(dir.entries().empty());
}

// ---------------------------------------------------------------- NumPy as the peer

bool have_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

int run_python(const TempDir& dir, const std::string& script) {
  const std::string path = dir.file("script.py");
  write_file(path, script);
  return std::system(("/usr/bin/python3 " + path + " " + dir.path.string()).c_str());
}

// Python writes a .safetensors file by hand (json + raw NumPy bytes, tensors in a shuffled order,
// no padding) and the float32 values NumPy converts them to as .npy references.
TEST_F(Safetensors, ReadsWhatPythonWrites) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  ASSERT_EQ(run_python(dir, R"(
import sys, json, struct, numpy as np
d = sys.argv[1]
base = (np.arange(24, dtype=np.float64) - 11) / 3.0
arrays = {'h': base.astype(np.float16).reshape(4, 6), 'f': base.astype(np.float32).reshape(2, 3, 4), 'g': base.reshape(24)}
tags = {'h': 'F16', 'f': 'F32', 'g': 'F64'}
header, blob = {'__metadata__': {'who': 'python'}}, b''
for name in ['h', 'g', 'f']:
    raw = arrays[name].astype(arrays[name].dtype.newbyteorder('<')).tobytes()
    header[name] = {'dtype': tags[name], 'shape': list(arrays[name].shape), 'data_offsets': [len(blob), len(blob) + len(raw)]}
    blob += raw
text = json.dumps(header).encode()
with open(f'{d}/py.safetensors', 'wb') as out:
    out.write(struct.pack('<Q', len(text)) + text + blob)
for name, a in arrays.items():
    np.save(f'{d}/ref_{name}.npy', a.astype(np.float32))
)"),
            0);
  const std::string path = dir.file("py.safetensors");
  EXPECT_EQ(io::read_safetensors_header(path).metadata.at("who"), "python");
  for (const std::string name : {"h", "f", "g"}) {
    const io::FloatTensor t = io::load_float_tensor(path + ":" + name);
    const io::FloatTensor ref = io::load_float_tensor(dir.file("ref_" + name + ".npy"));
    ASSERT_EQ(t.shape(), ref.shape()) << name;
    for (index_t i = 0; i < ref.size(); ++i) EXPECT_EQ(t.data()[i], ref.data()[i]) << name << " element " << i;
  }
}

// Python parses our file with json + struct and checks every tensor's bytes with NumPy.
TEST_F(Safetensors, PythonReadsWhatWeWrite) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  std::vector<double> f64(24);
  for (int i = 0; i < 24; ++i) f64[static_cast<std::size_t>(i)] = static_cast<double>(i - 11) / 3.0;
  const std::vector<float> f32(f64.begin(), f64.end());
  std::vector<std::uint16_t> f16, bf16;
  for (const float v : f32) f16.push_back(levattn::float_to_half(v)), bf16.push_back(levattn::float_to_bf16(v));
  const std::vector<std::int64_t> i64 = {std::numeric_limits<std::int64_t>::min(), -1, 0, 1LL << 60};
  io::write_safetensors(dir.file("ours.safetensors"),
                        {{"f16", io::DType::f16, {24}, f16.data()},
                         {"bf16", io::DType::bf16, {4, 6}, bf16.data()},
                         {"f32", io::DType::f32, {2, 3, 4}, f32.data()},
                         {"f64", io::DType::f64, {24}, f64.data()},
                         {"i64", io::DType::i64, {2, 2}, i64.data()}},
                        {{"source", "levattn"}});
  ASSERT_EQ(run_python(dir, R"(
import sys, json, struct, numpy as np
d = sys.argv[1]
raw = open(f'{d}/ours.safetensors', 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
assert n % 8 == 0, n
header = json.loads(raw[8:8 + n].decode('utf-8'))
assert header.pop('__metadata__') == {'source': 'levattn'}
buf = raw[8 + n:]
types = {'F16': '<f2', 'BF16': '<u2', 'F32': '<f4', 'F64': '<f8', 'I64': '<i8'}
def get(name):
    e = header[name]
    b, end = e['data_offsets']
    return np.frombuffer(buf[b:end], dtype=types[e['dtype']]).reshape(e['shape'])
base = (np.arange(24, dtype=np.float64) - 11) / 3.0
f32 = base.astype(np.float32)
assert np.array_equal(get('f64'), base)
assert np.array_equal(get('f32'), f32.reshape(2, 3, 4))
assert np.array_equal(get('f16'), f32.astype(np.float16)), (get('f16'), f32.astype(np.float16))
# bf16 by definition: of the two bf16 values around each float (truncated, and one ulp further from
# zero) take the nearer, the even one on a tie.
lo = f32.view(np.uint32) >> 16
down = (lo << 16).view(np.float32).astype(np.float64)
up = ((lo + 1) << 16).view(np.float32).astype(np.float64)
x = f32.astype(np.float64)
nearest = np.where(abs(x - down) < abs(up - x), lo, np.where(abs(up - x) < abs(x - down), lo + 1, lo + (lo % 2)))
assert np.array_equal(get('bf16').reshape(24), nearest.astype(np.uint16)), (get('bf16'), nearest)
assert not np.array_equal(lo, nearest)  # some values do round up
assert np.array_equal(get('i64'), np.array([[-2**63, -1], [0, 2**60]], dtype=np.int64))
assert sum(e['data_offsets'][1] - e['data_offsets'][0] for e in header.values()) == len(buf)
)"),
            0);
}

}  // namespace
