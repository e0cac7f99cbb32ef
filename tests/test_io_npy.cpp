// .npy reading and writing, f16 conversion, atomic output. Expected values come from the .npy
// format definition, hand-built files, IEEE bit patterns and (when installed) NumPy itself.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "io_test_helpers.hpp"
#include "levattn/core/half.hpp"
#include "levattn/io/atomic_file.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"
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

// Reverses the bytes of every `itemsize`-byte element (little-endian <-> big-endian).
std::string swap_elements(std::string bytes, std::size_t itemsize) {
  for (std::size_t i = 0; i + itemsize <= bytes.size(); i += itemsize) std::reverse(&bytes[i], &bytes[i] + itemsize);
  return bytes;
}

// A .npy file with the given header text (padded with spaces and '\n' to a multiple of 64) and
// data.
std::string make_npy(const std::string& dict, const std::string& data, int version = 1) {
  const std::size_t prefix = version == 1 ? 10 : 12;
  std::string header = dict;
  while ((prefix + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file = std::string("\x93NUMPY", 6) + char(version) + '\0';
  const auto length = static_cast<std::uint32_t>(header.size());
  file.append(reinterpret_cast<const char*>(&length), version == 1 ? 2 : 4);
  return file + header + data;
}

class Npy : public ::testing::Test {
 protected:
  TempDir dir{"levattn-test-npy-"};
};

// ---------------------------------------------------------------- f16 conversion

TEST(Half, KnownBitPatterns) {
  EXPECT_TRUE(same_bits(levattn::half_to_float(0x0000), 0.0f));
  EXPECT_TRUE(same_bits(levattn::half_to_float(0x8000), -0.0f));
  EXPECT_EQ(levattn::half_to_float(0x0001), 5.9604644775390625e-08f);  // 2^-24, smallest subnormal
  EXPECT_EQ(levattn::half_to_float(0x03ff), 6.097555160522461e-05f);   // largest subnormal, 1023 * 2^-24
  EXPECT_EQ(levattn::half_to_float(0x0400), 6.103515625e-05f);         // 2^-14, smallest normal
  EXPECT_EQ(levattn::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(levattn::half_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(levattn::half_to_float(0xc000), -2.0f);
  EXPECT_EQ(levattn::half_to_float(0x7bff), 65504.0f);  // max
  EXPECT_EQ(levattn::half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(levattn::half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(levattn::half_to_float(0x7e00)));
  EXPECT_TRUE(std::isnan(levattn::half_to_float(0x7c01)));  // signalling NaN stays NaN

  EXPECT_EQ(levattn::float_to_half(0.0f), 0x0000);
  EXPECT_EQ(levattn::float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(levattn::float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(levattn::float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(levattn::float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(levattn::float_to_half(65519.996f), 0x7bff);  // just below the max/inf midpoint
  EXPECT_EQ(levattn::float_to_half(65520.0f), 0x7c00);    // tie between max (odd) and inf (even): inf
  EXPECT_EQ(levattn::float_to_half(1e30f), 0x7c00);
  EXPECT_EQ(levattn::float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(levattn::float_to_half(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(levattn::float_to_half(std::numeric_limits<float>::quiet_NaN()) & 0x7e00, 0x7e00);
  EXPECT_EQ(levattn::float_to_half(1.0f + 0x1p-11f), 0x3c00);      // tie: 1 (even) wins over 1+2^-10
  EXPECT_EQ(levattn::float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie: 0x3c02 (even) wins over 0x3c01
  EXPECT_EQ(levattn::float_to_half(0x1p-25f), 0x0000);             // tie between 0 and 2^-24: 0
  EXPECT_EQ(levattn::float_to_half(3 * 0x1p-25f), 0x0002);         // tie between 1 and 2 ulps: 2
  EXPECT_EQ(levattn::float_to_half(std::nextafter(0x1p-25f, 1.0f)), 0x0001);
  EXPECT_EQ(levattn::float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(levattn::float_to_half(-std::numeric_limits<float>::denorm_min()), 0x8000);
  EXPECT_EQ(levattn::float_to_half(0x1p-14f - 0x1p-26f),
            0x0400);  // rounds up from subnormal to smallest normal
}

// Every finite half round-trips, and every midpoint between neighbours rounds to the even one while
// the floats either side of it round to the nearer one: float_to_half is exactly IEEE
// round-to-nearest-even on all boundaries.
TEST(Half, ExhaustiveRoundTripAndTies) {
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto bits = static_cast<std::uint16_t>(h);
    if ((bits & 0x7c00) == 0x7c00 && (bits & 0x3ff) != 0) continue;  // NaN
    ASSERT_EQ(levattn::float_to_half(levattn::half_to_float(bits)), bits) << std::hex << h;
  }
  for (std::uint16_t h = 0; h < 0x7c00; ++h) {
    const float lo = levattn::half_to_float(h);
    const float hi =
        h + 1 < 0x7c00 ? levattn::half_to_float(static_cast<std::uint16_t>(h + 1)) : 65536.0f;  // inf acts as 2^16
    const float mid = (lo + hi) / 2;  // exact: float has 13 more mantissa bits than half
    const auto up = static_cast<std::uint16_t>(h + 1);
    const std::uint16_t even = (h % 2 == 0) ? h : up;
    ASSERT_EQ(levattn::float_to_half(mid), even) << std::hex << h;
    ASSERT_EQ(levattn::float_to_half(-mid), even | 0x8000) << std::hex << h;
    ASSERT_EQ(levattn::float_to_half(std::nextafter(mid, 0.0f)), h) << std::hex << h;
    ASSERT_EQ(levattn::float_to_half(std::nextafter(mid, 1e30f)), up) << std::hex << h;
  }
}

// ---------------------------------------------------------------- writing + reading back

std::vector<float> sample_floats(index_t n) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = static_cast<float>(i - 11) / 3.0f;
  if (n > 2) {
    v[1] = -0.0f;
    v[2] = std::numeric_limits<float>::infinity();
  }
  return v;
}

index_t product(const std::vector<index_t>& shape) {
  index_t n = 1;
  for (const index_t d : shape) n *= d;
  return n;
}

TEST_F(Npy, Float32RoundTripAllShapesIsZeroCopy) {
  const std::vector<std::vector<index_t>> shapes = {{}, {5}, {3, 4}, {2, 3, 4}, {0}, {3, 0}, {0, 4, 2}, {1, 1, 1, 7}};
  const std::vector<std::string> spelled = {"()",   "(5,)",   "(3, 4)",    "(2, 3, 4)",
                                            "(0,)", "(3, 0)", "(0, 4, 2)", "(1, 1, 1, 7)"};
  for (std::size_t s = 0; s < shapes.size(); ++s) {
    const auto& shape = shapes[s];
    const std::string path = dir.file("a" + std::to_string(s) + ".npy");
    const std::vector<float> values = sample_floats(product(shape));
    io::write_npy(path, values.data(), shape);

    // The bytes are what the format prescribes.
    const std::string bytes = read_file(path);
    ASSERT_GE(bytes.size(), 10u);
    EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
    const std::size_t header_length = std::uint8_t(bytes[8]) | (std::size_t(std::uint8_t(bytes[9])) << 8);
    EXPECT_EQ((10 + header_length) % 64, 0u);
    const std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + spelled[s] + ", }";
    EXPECT_EQ(bytes.substr(10, dict.size()), dict);
    EXPECT_EQ(bytes[10 + header_length - 1], '\n');
    EXPECT_EQ(bytes.size(), 10 + header_length + values.size() * 4);

    const io::FloatTensor t = io::load_float_tensor(path);
    EXPECT_EQ(t.shape(), shape);
    EXPECT_EQ(t.ndim(), static_cast<index_t>(shape.size()));
    EXPECT_EQ(t.size(), static_cast<index_t>(values.size()));
    EXPECT_EQ(t.source_dtype(), io::DType::f32);
    EXPECT_EQ(t.source(), path);
    EXPECT_TRUE(t.mapped());
    for (std::size_t i = 0; i < values.size(); ++i) EXPECT_TRUE(same_bits(t.data()[i], values[i])) << i;

    const io::NpyHeader h = io::read_npy_header(path);
    EXPECT_EQ(h.major_version, 1);
    EXPECT_EQ(h.data_offset % 64, 0u);
    EXPECT_EQ(h.layout.shape, shape);
    EXPECT_FALSE(h.layout.fortran_order);
  }
}

TEST_F(Npy, Float64RoundTripConvertsToNearestFloat) {
  const std::vector<double> values = {0.1, -1.0 / 3.0, 1e-40, -0.0, 1e38, 123456789.123, 3.0};
  const std::string path = dir.file("d.npy");
  io::write_npy(path, values.data(), {7});
  EXPECT_EQ(io::read_npy_header(path).layout.dtype, io::DType::f64);
  EXPECT_EQ(read_file(path).substr(10, 15), "{'descr': '<f8'");
  const io::FloatTensor t = io::load_float_tensor(path);
  ASSERT_EQ(t.shape(), std::vector<index_t>{7});
  EXPECT_FALSE(t.mapped());
  EXPECT_EQ(t.source_dtype(), io::DType::f64);
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_TRUE(same_bits(t.data()[i], static_cast<float>(values[i]))) << i;

  const std::vector<double> huge = {1.0, 1e300};
  io::write_npy(path, huge.data(), {2});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(path); },
               {path, "1.0000000000000001e+300", "float32 range"});
  const std::vector<double> infinite = {std::numeric_limits<double>::infinity(),
                                        -std::numeric_limits<double>::infinity()};
  io::write_npy(path, infinite.data(), {2});
  const io::FloatTensor inf = io::load_float_tensor(path);
  EXPECT_EQ(inf.data()[0], std::numeric_limits<float>::infinity());
  EXPECT_EQ(inf.data()[1], -std::numeric_limits<float>::infinity());
}

TEST_F(Npy, Int64WritesExactBytesAndIsNotAFloatTensor) {
  const std::vector<std::int64_t> values = {
      0, -1, 42, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), 1LL << 53};
  const std::string path = dir.file("i.npy");
  io::write_npy(path, values.data(), {3, 2});
  const io::NpyHeader h = io::read_npy_header(path);
  EXPECT_EQ(h.layout.dtype, io::DType::i64);
  EXPECT_EQ(h.layout.shape, (std::vector<index_t>{3, 2}));
  EXPECT_EQ(read_file(path).substr(h.data_offset), raw_bytes(values));
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(path); }, {path, "int64"});
}

TEST_F(Npy, LongHeaderUsesVersion2) {
  const std::vector<index_t> big_shape(30000, 1);  // "(1, 1, ...)": 90000 characters
  const float value = 2.5f;
  const std::string path = dir.file("v2.npy");
  io::write_npy(path, &value, big_shape);
  const std::string bytes = read_file(path);
  EXPECT_EQ(bytes[6], '\x02');
  const io::NpyHeader h = io::read_npy_header(path);
  EXPECT_EQ(h.major_version, 2);
  EXPECT_EQ(h.data_offset % 64, 0u);
  const io::FloatTensor t = io::load_float_tensor(path);
  EXPECT_EQ(t.ndim(), 30000);
  EXPECT_EQ(t.data()[0], 2.5f);
}

TEST_F(Npy, WriterRejectsBadArguments) {
  const std::string path = dir.file("bad.npy");
  const float x = 1;
  expect_error(ErrorKind::bad_input, [&] { io::write_npy(path, &x, {-1, 2}); }, {path, "negative"});
  expect_error(ErrorKind::bad_input, [&] { io::write_npy(path, static_cast<const float*>(nullptr), {2}); },
               {path, "null data"});
  expect_error(ErrorKind::bad_input, [&] { io::write_npy(path, &x, {1LL << 40, 1LL << 40}); }, {path, "too large"});
  io::write_npy(path, static_cast<const float*>(nullptr), {0, 5});  // empty: no data needed
  EXPECT_EQ(io::load_float_tensor(path).size(), 0);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"bad.npy"});
}

// ---------------------------------------------------------------- hand-built files

TEST_F(Npy, HeaderParsingIsRobust) {
  const std::vector<float> values = {1, 2, 3, 4, 5, 6};
  const std::string data = raw_bytes(values);
  const std::vector<std::pair<std::string, int>> headers = {
      {"{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}", 1},
      {"{ \"descr\" :\t\"<f4\" ,\"fortran_order\":False,\n\"shape\":( 2 ,3 ) , }", 1},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }", 1},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 2},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 3},
  };
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const std::string path = dir.file("h" + std::to_string(i) + ".npy");
    write_file(path, make_npy(headers[i].first, data, headers[i].second));
    const io::FloatTensor t = io::load_float_tensor(path);
    EXPECT_EQ(t.shape(), (std::vector<index_t>{2, 3})) << headers[i].first;
    EXPECT_EQ(std::vector<float>(t.data(), t.data() + 6), values) << headers[i].first;
    EXPECT_EQ(io::read_npy_header(path).major_version, headers[i].second);
  }
  const std::string one = dir.file("one.npy");
  write_file(one, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", data));
  EXPECT_EQ(io::load_float_tensor(one).shape(), std::vector<index_t>{6});
  const std::string scalar = dir.file("scalar.npy");
  write_file(scalar, make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': ()}", data.substr(0, 4)));
  const io::FloatTensor s = io::load_float_tensor(scalar);
  EXPECT_EQ(s.ndim(), 0);
  EXPECT_EQ(s.size(), 1);
  EXPECT_EQ(s.data()[0], 1.0f);
}

TEST_F(Npy, Float16AndBigEndianAreConverted) {
  const std::vector<std::uint16_t> halves = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                                             0x3555, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00};
  const std::vector<float> expected = {0.0f,  -0.0f,    0x1p-24f, 1023 * 0x1p-24f, 0x1p-14f, 1.0f, 0.333251953125f,
                                       -2.0f, 65504.0f, INFINITY, -INFINITY,       NAN};
  const std::string little = raw_bytes(halves);
  for (const bool big : {false, true}) {
    const std::string path = dir.file(big ? "be_f2.npy" : "le_f2.npy");
    write_file(path, make_npy(std::string("{'descr': '") + (big ? '>' : '<') +
                                  "f2', 'fortran_order': False, 'shape': (12,), }",
                              big ? swap_elements(little, 2) : little));
    const io::FloatTensor t = io::load_float_tensor(path);
    EXPECT_EQ(t.source_dtype(), io::DType::f16);
    EXPECT_FALSE(t.mapped());
    for (std::size_t i = 0; i < expected.size(); ++i) {
      if (std::isnan(expected[i])) {
        EXPECT_TRUE(std::isnan(t.data()[i]));
      } else {
        EXPECT_TRUE(same_bits(t.data()[i], expected[i])) << i << " " << t.data()[i];
      }
    }
  }
  const std::vector<float> f = {1.5f, -0.0f, 3e38f, 1e-42f};
  const std::string be4 = dir.file("be_f4.npy");
  write_file(be4,
             make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (4,), }", swap_elements(raw_bytes(f), 4)));
  const io::FloatTensor t4 = io::load_float_tensor(be4);
  EXPECT_FALSE(t4.mapped());
  for (std::size_t i = 0; i < f.size(); ++i) EXPECT_TRUE(same_bits(t4.data()[i], f[i])) << i;
  const std::vector<double> d = {0.1, -2.0, 1e-300};
  const std::string be8 = dir.file("be_f8.npy");
  write_file(be8,
             make_npy("{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }", swap_elements(raw_bytes(d), 8)));
  const io::FloatTensor t8 = io::load_float_tensor(be8);
  for (std::size_t i = 0; i < d.size(); ++i) EXPECT_TRUE(same_bits(t8.data()[i], static_cast<float>(d[i]))) << i;
}

// NpyRowReader gives float16 rows as they are (either byte order), or widened to float32.
TEST_F(Npy, RowReaderKeepsFloat16RowsAsTheyAre) {
  const std::vector<std::uint16_t> halves = {0x0000, 0x8000, 0x0001, 0x03ff, 0x0400, 0x3c00,
                                             0x3555, 0xc000, 0x7bff, 0x7c00, 0xfc00, 0x7e00};
  const std::string little = raw_bytes(halves);
  for (const bool big : {false, true}) {
    const std::string path = dir.file(big ? "rows_be_f2.npy" : "rows_le_f2.npy");
    write_file(path, make_npy(std::string("{'descr': '") + (big ? '>' : '<') +
                                  "f2', 'fortran_order': False, 'shape': (4, 3), }",
                              big ? swap_elements(little, 2) : little));
    io::NpyRowReader reader(path);
    EXPECT_EQ(reader.element_type(), levattn::ElementType::f16);
    std::vector<levattn::Half> rows(6);
    reader.read(1, 2, rows.data());
    std::vector<float> widened(6);
    reader.read(1, 2, widened.data());
    for (std::size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].bits, halves[3 + i]) << (big ? "big " : "little ") << i;
      const float want = levattn::half_to_float(halves[3 + i]);
      EXPECT_TRUE(same_bits(widened[i], want) || (std::isnan(want) && std::isnan(widened[i]))) << i;
    }
    EXPECT_THROW(reader.read(3, 2, rows.data()), Error);
  }
  const std::vector<float> f = {1.5f, -0.0f, 3e38f, 1e-42f};
  const std::string le4 = dir.file("rows_f4.npy");
  write_file(le4, make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", raw_bytes(f)));
  io::NpyRowReader reader(le4);
  EXPECT_EQ(reader.element_type(), levattn::ElementType::f32);
  std::vector<levattn::Half> rows(2);
  expect_error(ErrorKind::bad_input, [&] { reader.read(0, 1, rows.data()); }, {"not float16"});
}

// Fortran order: element (i, j, k) of an I x J x K array is stored at i + I * (j + J * k).
TEST_F(Npy, FortranOrderReadsLikeCOrder) {
  for (const std::vector<index_t>& shape :
       {std::vector<index_t>{3, 4}, std::vector<index_t>{2, 3, 4}, std::vector<index_t>{5, 1, 2}}) {
    const index_t I = shape[0], J = shape[1], K = shape.size() == 3 ? shape[2] : 1;
    std::vector<double> c(static_cast<std::size_t>(I * J * K)), fortran(c.size());
    for (index_t i = 0; i < I; ++i)
      for (index_t j = 0; j < J; ++j)
        for (index_t k = 0; k < K; ++k) {
          const double v = static_cast<double>(100 * i + 10 * j + k) / 7.0;
          c[static_cast<std::size_t>((i * J + j) * K + k)] = v;
          fortran[static_cast<std::size_t>(i + I * (j + J * k))] = v;
        }
    std::string tuple = "(";
    for (const index_t d : shape) tuple += std::to_string(d) + ", ";
    tuple += ")";
    for (const char* descr : {"<f8", "<f4", "<f2", ">f4"}) {
      const std::string code = descr;
      std::string fbytes, cbytes;
      if (code == "<f8") {
        fbytes = raw_bytes(fortran), cbytes = raw_bytes(c);
      } else if (code == "<f2") {
        std::vector<std::uint16_t> fh, ch;
        for (const double v : fortran) fh.push_back(levattn::float_to_half(static_cast<float>(v)));
        for (const double v : c) ch.push_back(levattn::float_to_half(static_cast<float>(v)));
        fbytes = raw_bytes(fh), cbytes = raw_bytes(ch);
      } else {
        const std::vector<float> ff(fortran.begin(), fortran.end()), cf(c.begin(), c.end());
        fbytes = raw_bytes(ff), cbytes = raw_bytes(cf);
        if (code[0] == '>') fbytes = swap_elements(fbytes, 4), cbytes = swap_elements(cbytes, 4);
      }
      const std::string fpath = dir.file("f.npy"), cpath = dir.file("c.npy");
      write_file(fpath, make_npy("{'descr': '" + code + "', 'fortran_order': True, 'shape': " + tuple + "}", fbytes));
      write_file(cpath, make_npy("{'descr': '" + code + "', 'fortran_order': False, 'shape': " + tuple + "}", cbytes));
      const io::FloatTensor ft = io::load_float_tensor(fpath), ct = io::load_float_tensor(cpath);
      EXPECT_TRUE(io::read_npy_header(fpath).layout.fortran_order);
      EXPECT_FALSE(ft.mapped());
      ASSERT_EQ(ft.shape(), shape);
      ASSERT_EQ(ct.shape(), shape);
      for (std::size_t n = 0; n < c.size(); ++n) {
        EXPECT_EQ(ft.data()[n], ct.data()[n]) << code << " element " << n;
        if (code != "<f2") {
          EXPECT_EQ(ft.data()[n], static_cast<float>(c[n])) << code << " element " << n;
        }
      }
    }
  }
}

TEST_F(Npy, MisalignedFloat32IsCopiedNotMapped) {
  // A header whose data starts at an odd offset (legal, though NumPy never writes it).
  const std::vector<float> values = {1.25f, -7.0f, 3.5f};
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }";
  while ((10 + header.size() + 1) % 4 != 2) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  const auto length = static_cast<std::uint16_t>(header.size());
  bytes.append(reinterpret_cast<const char*>(&length), 2);
  const std::string path = dir.file("odd.npy");
  write_file(path, bytes + header + raw_bytes(values));
  const io::FloatTensor t = io::load_float_tensor(path);
  EXPECT_FALSE(t.mapped());
  EXPECT_EQ(std::vector<float>(t.data(), t.data() + 3), values);
}

// ---------------------------------------------------------------- adversarial files

TEST_F(Npy, AdversarialFilesAreRejectedClearly) {
  const std::string f4x4 = raw_bytes(std::vector<float>{1, 2, 3, 4});
  const auto dict = [](const std::string& descr, const std::string& shape, const std::string& fortran = "False") {
    return "{'descr': '" + descr + "', 'fortran_order': " + fortran + ", 'shape': " + shape + ", }";
  };
  struct Case {
    std::string name, bytes;
    std::vector<std::string> message;
  };
  const std::string magic = std::string("\x93NUMPY", 6);
  const std::vector<Case> cases = {
      {"empty", "", {"not a .npy file"}},
      {"short_magic", "\x93NUM", {"not a .npy file"}},
      {"zip", "PK\x03\x04 not numpy at all", {"not a .npy file"}},
      {"no_version", magic, {"version bytes are missing"}},
      {"half_version", magic + "\x01", {"version bytes are missing"}},
      {"version4",
       magic + std::string("\x04\x00\x10\x00", 4) + std::string(16, ' '),
       {"unsupported .npy format version 4.0"}},
      {"version1_1", magic + std::string("\x01\x01\x10\x00", 4) + std::string(16, ' '), {"version 1.1"}},
      {"short_len_v1", magic + std::string("\x01\x00\x10", 3), {"header length field"}},
      {"short_len_v2", magic + std::string("\x02\x00\x10\x00\x00", 5), {"header length field"}},
      {"len_past_end", magic + std::string("\x01\x00\xff\xff", 4) + "{'descr': '<f4'", {"header length 65535 exceeds"}},
      {"len_past_end_v2",
       magic + std::string("\x02\x00\xff\xff\xff\xff", 6) + "{}",
       {"header length 4294967295 exceeds"}},
      {"cut_header", make_npy("{'descr': '<f4', 'fortr", ""), {"malformed .npy header"}},
      {"not_dict", make_npy("[1, 2, 3]", f4x4), {"malformed .npy header", "expected '{'"}},
      {"list_shape", make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': [4]}", f4x4), {"expected '('"}},
      {"missing_shape", make_npy("{'descr': '<f4', 'fortran_order': False}", f4x4), {"missing key 'shape'"}},
      {"missing_descr", make_npy("{'fortran_order': False, 'shape': (4,)}", f4x4), {"missing key 'descr'"}},
      {"extra_key",
       make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': 1}", f4x4),
       {"unexpected key 'x'"}},
      {"dup_key",
       make_npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,)}", f4x4),
       {"duplicate key 'descr'"}},
      {"descr_i4", make_npy(dict("<i4", "(4,)"), f4x4), {"unsupported dtype '<i4'"}},
      {"descr_u1", make_npy(dict("|u1", "(16,)"), f4x4), {"unsupported dtype '|u1'"}},
      {"descr_native", make_npy(dict("f4", "(4,)"), f4x4), {"unsupported dtype 'f4'"}},
      {"structured",
       make_npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,)}", f4x4),
       {"structured"}},
      {"fortran_str", make_npy(dict("<f4", "(4,)", "'no'"), f4x4), {"expected True or False"}},
      {"negative_dim", make_npy(dict("<f4", "(-4,)"), f4x4), {"negative dimension"}},
      {"float_dim", make_npy(dict("<f4", "(4.0,)"), f4x4), {"malformed .npy header"}},
      {"dim_overflow", make_npy(dict("<f4", "(99999999999999999999,)"), f4x4), {"does not fit in 64 bits"}},
      {"product_overflow", make_npy(dict("<f4", "(1099511627776, 1099511627776)"), f4x4), {"too large"}},
      {"bytes_overflow", make_npy(dict("<f8", "(2305843009213693952,)"), f4x4), {"too large"}},  // 2^61 * 8 = 2^64
      {"data_short",
       make_npy(dict("<f4", "(1000, 64)"), std::string(1200, '\0')),
       {"header says shape (1000, 64) of float32 (256000 bytes) but the file holds 1200 bytes of "
        "data"}},
      {"data_long", make_npy(dict("<f4", "(2, 1)"), f4x4), {"(8 bytes) but the file holds 16 bytes of data"}},
      {"data_missing_0d", make_npy(dict("<f8", "()"), ""), {"(8 bytes) but the file holds 0 bytes"}},
      {"trailing_text", make_npy(dict("<f4", "(4,)") + " junk", f4x4), {"unexpected text after the dict"}},
      {"unterminated", make_npy("{'descr': '<f4", f4x4), {"unterminated string"}},
      {"escape", make_npy("{'descr': '<f\\4', 'fortran_order': False, 'shape': (4,)}", f4x4), {"escape"}},
      {"nul_header", make_npy(std::string("{'descr'\0: '<f4'}", 16), f4x4), {"expected ':'"}},
  };
  for (const Case& c : cases) {
    const std::string path = dir.file(c.name + ".npy");
    write_file(path, c.bytes);
    std::vector<std::string> parts = c.message;
    parts.push_back(path);
    expect_error(
        ErrorKind::bad_input, [&] { io::load_float_tensor(path); }, parts);
    expect_error(
        ErrorKind::bad_input, [&] { io::read_npy_header(path); }, parts);
  }
}

TEST_F(Npy, MissingFilesAndBadSpecs) {
  const std::string missing = dir.file("nope.npy");
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(missing); }, {missing, "cannot open", "No such file"});
  const std::string folder = dir.file("folder.npy");
  fs::create_directory(folder);
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor(folder); }, {folder, "not a regular file"});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor("K.txt"); }, {"K.txt", "unsupported tensor file"});
  expect_error(ErrorKind::bad_input, [&] { io::load_float_tensor("K"); }, {"unsupported tensor file"});
}

TEST_F(Npy, TensorAccessorsAndSharedOwnership) {
  const std::vector<float> values = sample_floats(24);
  const std::string path = dir.file("t.npy");
  io::write_npy(path, values.data(), {2, 3, 4});
  io::FloatTensor copy;
  EXPECT_EQ(copy.shape(), std::vector<index_t>{0});
  EXPECT_EQ(copy.size(), 0);
  {
    const io::FloatTensor t = io::load_float_tensor(path);
    EXPECT_EQ(t.dim(0), 2);
    EXPECT_EQ(t.dim(2), 4);
    expect_error(ErrorKind::bad_input, [&] { (void)t.dim(3); }, {path, "axis 3"});
    expect_error(ErrorKind::bad_input, [&] { (void)t.dim(-1); }, {"axis -1"});
    expect_error(ErrorKind::bad_input, [&] { (void)t.matrix(); }, {path, "expected a 2-D array", "(2, 3, 4)"});
    copy = t;
  }
  fs::remove(path);  // the map keeps the data alive
  for (std::size_t i = 0; i < values.size(); ++i) EXPECT_TRUE(same_bits(copy.data()[i], values[i]));

  io::write_npy(path, values.data(), {4, 6});
  const io::FloatTensor t2 = io::load_float_tensor(path);
  const levattn::ConstMatrixF m = t2.matrix();  // a view: valid while t2 (or a copy) lives
  EXPECT_EQ(m.rows, 4);
  EXPECT_EQ(m.cols, 6);
  EXPECT_EQ(m.stride, 6);
  EXPECT_EQ(m(2, 5), values[17]);
}

// ---------------------------------------------------------------- atomic output

TEST_F(Npy, FailedWritesLeaveNothingBehind) {
  const std::vector<float> values = {1, 2, 3};
  const std::string nowhere = dir.file("no_such_dir/x.npy");
  expect_error(ErrorKind::failure, [&] { io::write_npy(nowhere, values.data(), {3}); }, {nowhere, "temporary"});
  EXPECT_TRUE(dir.entries().empty());

  // An exception between construction and commit: the old target survives and no temporary remains.
  const std::string target = dir.file("target.npy");
  write_file(target, "old contents");
  try {
    io::AtomicFile out(target);
    out.write("new", 3);
    EXPECT_EQ(dir.entries().size(), 2u);  // the target and the temporary
    throw std::runtime_error("interrupted");
  } catch (const std::runtime_error&) {}
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"target.npy"});
  EXPECT_EQ(read_file(target), "old contents");

  // The target is a directory: rename fails, nothing is left.
  const std::string folder = dir.file("folder");
  fs::create_directory(folder);
  expect_error(ErrorKind::failure, [&] { io::write_npy(folder, values.data(), {3}); }, {folder, "rename"});
  EXPECT_EQ(dir.entries(), (std::vector<std::string>{"folder", "target.npy"}));
  EXPECT_TRUE(fs::is_empty(folder));
}

TEST_F(Npy, DiskFullFailsAndKeepsTheOldFile) {
  // RLIMIT_FSIZE makes write(2) fail with EFBIG past the limit, like a full disk.
  const std::string target = dir.file("big.npy");
  write_file(target, "old contents");
  struct rlimit old_limit {};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  const auto old_handler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::vector<double> values(100000, 1.5);
  bool threw_failure = false;
  std::string message;
  try {
    io::write_npy(target, values.data(), {100000});
  } catch (const Error& e) {
    threw_failure = e.kind() == ErrorKind::failure;
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw_failure) << message;
  EXPECT_NE(message.find(target), std::string::npos) << message;
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"big.npy"});
  EXPECT_EQ(read_file(target), "old contents");
}

TEST_F(Npy, CommitReplacesTargetWithNormalPermissions) {
  const mode_t old_mask = umask(027);
  const std::string target = dir.file("out.txt");
  {
    io::AtomicFile out(target);
    std::fprintf(out.stream(), "hello %d\n", 42);
    out.write("bye", 3);
    out.commit();
    expect_error(ErrorKind::failure, [&] { out.commit(); }, {target, "commit called twice"});
  }
  umask(old_mask);
  EXPECT_EQ(read_file(target), "hello 42\nbye");
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all, fs::perms(0640));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"out.txt"});
  // Overwriting keeps the existing file's permissions.
  fs::permissions(target, fs::perms(0600));
  const float x = 1;
  io::write_npy(target, &x, {1});
  EXPECT_EQ(fs::status(target).permissions() & fs::perms::all, fs::perms(0600));
}

// ---------------------------------------------------------------- NumPy as the peer

bool have_numpy() { return std::system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") == 0; }

int run_python(const TempDir& dir, const std::string& script) {
  const std::string path = dir.file("script.py");
  write_file(path, script);
  return std::system(("/usr/bin/python3 " + path + " " + dir.path.string()).c_str());
}

TEST_F(Npy, ReadsWhatNumpyWrites) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  ASSERT_EQ(run_python(dir, R"(
import sys, numpy as np
d = sys.argv[1]
base = (np.arange(24, dtype=np.float64).reshape(2, 3, 4) - 11) / 3.0
for code in ['f2', 'f4', 'f8']:
    a = base.astype(code)
    np.save(f'{d}/c_{code}.npy', a)
    np.save(f'{d}/f_{code}.npy', np.asfortranarray(a))
    np.save(f'{d}/t_{code}.npy', a.T)                         # a Fortran-contiguous view: saved in Fortran order
    np.save(f'{d}/be_{code}.npy', a.astype('>' + code))
    np.save(f'{d}/ref_{code}.npy', a.astype(np.float32))      # NumPy's own conversion to float32
    np.save(f'{d}/reft_{code}.npy', np.ascontiguousarray(a.T).astype(np.float32))
np.save(f'{d}/scalar.npy', np.array(2.5, dtype=np.float32))
np.save(f'{d}/empty.npy', np.zeros((0, 3), np.float32))
with np.errstate(over='ignore'):
    special = np.array([0.0, -0.0, 6e-8, 1e-5, 65504, 70000, np.inf, -np.inf, 1 / 3, np.nan]).astype(np.float16)
np.save(f'{d}/special.npy', special)
)"),
            0);
  for (const std::string code : {"f2", "f4", "f8"}) {
    const io::FloatTensor ref = io::load_float_tensor(dir.file("ref_" + code + ".npy"));
    const io::FloatTensor reft = io::load_float_tensor(dir.file("reft_" + code + ".npy"));
    ASSERT_EQ(ref.shape(), (std::vector<index_t>{2, 3, 4}));
    ASSERT_EQ(reft.shape(), (std::vector<index_t>{4, 3, 2}));
    EXPECT_TRUE(ref.mapped());
    if (code != "f2") {
      for (index_t i = 0; i < 24; ++i)
        EXPECT_EQ(ref.data()[i], static_cast<float>(static_cast<double>(i - 11) / 3.0)) << i;
    }
    for (const std::string kind : {"c_", "f_", "be_", "t_"}) {
      const std::string path = dir.file(kind + code + ".npy");
      const io::FloatTensor t = io::load_float_tensor(path);
      const io::FloatTensor& expected = kind == "t_" ? reft : ref;
      ASSERT_EQ(t.shape(), expected.shape()) << path;
      EXPECT_EQ(t.mapped(), kind == "c_" && code == "f4") << path;
      EXPECT_EQ(io::read_npy_header(path).layout.fortran_order, kind == "f_" || kind == "t_") << path;
      for (index_t i = 0; i < 24; ++i) EXPECT_EQ(t.data()[i], expected.data()[i]) << path << " element " << i;
    }
  }
  const io::FloatTensor scalar = io::load_float_tensor(dir.file("scalar.npy"));
  EXPECT_EQ(scalar.ndim(), 0);
  EXPECT_EQ(scalar.data()[0], 2.5f);
  EXPECT_EQ(io::load_float_tensor(dir.file("empty.npy")).shape(), (std::vector<index_t>{0, 3}));
  const io::FloatTensor special = io::load_float_tensor(dir.file("special.npy"));
  const std::vector<float> expected = {
      0.0f,     -0.0f,     5.9604644775390625e-08f, 1.0013580322265625e-05f, 65504.0f, INFINITY,
      INFINITY, -INFINITY, 0.333251953125f};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_TRUE(same_bits(special.data()[i], expected[i])) << i;
  EXPECT_TRUE(std::isnan(special.data()[9]));
  // Our f16 encoder agrees with NumPy's on these values.
  const std::vector<float> inputs = {0.0f, -0.0f, 6e-8f, 1e-5f, 65504.0f, 70000.0f, INFINITY, -INFINITY, 1.0f / 3};
  for (std::size_t i = 0; i < inputs.size(); ++i)
    EXPECT_TRUE(same_bits(levattn::half_to_float(levattn::float_to_half(inputs[i])), expected[i])) << i;
}

TEST_F(Npy, NumpyReadsWhatWeWrite) {
  if (!have_numpy()) GTEST_SKIP() << "/usr/bin/python3 has no numpy";
  std::vector<double> f8(24);
  for (int i = 0; i < 24; ++i) f8[static_cast<std::size_t>(i)] = static_cast<double>(i - 11) / 3.0;
  const std::vector<float> f4(f8.begin(), f8.end());
  const std::vector<std::int64_t> i8 = {
      0, -1, 42, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), 1LL << 53};
  const double zero_d = -7.25;
  io::write_npy(dir.file("ours_f8.npy"), f8.data(), {2, 3, 4});
  io::write_npy(dir.file("ours_f4.npy"), f4.data(), {24});
  io::write_npy(dir.file("ours_i8.npy"), i8.data(), {3, 2});
  io::write_npy(dir.file("ours_0d.npy"), &zero_d, {});
  io::write_npy(dir.file("ours_empty.npy"), static_cast<const double*>(nullptr), {0, 3});
  ASSERT_EQ(run_python(dir, R"(
import sys, numpy as np
d = sys.argv[1]
def check(name, expected):
    with open(f'{d}/{name}', 'rb') as f:
        version = np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        assert version == (1, 0), (name, version)
        assert f.tell() % 64 == 0, (name, f.tell())
    a = np.load(f'{d}/{name}')
    assert a.dtype == expected.dtype and a.shape == expected.shape, (name, a.dtype, a.shape)
    assert np.array_equal(a, expected), (name, a, expected)
base = (np.arange(24, dtype=np.float64) - 11) / 3.0
check('ours_f8.npy', base.reshape(2, 3, 4))
check('ours_f4.npy', base.astype(np.float32))
check('ours_i8.npy', np.array([0, -1, 42, -2**63, 2**63 - 1, 2**53], dtype=np.int64).reshape(3, 2))
check('ours_0d.npy', np.array(-7.25))
check('ours_empty.npy', np.zeros((0, 3)))
)"),
            0);
}

}  // namespace
