#include "levattn/io/npy.hpp"

#include <bit>
#include <cstring>
#include <limits>
#include <string_view>

#include "io/mapped_file.hpp"
#include "levattn/io/atomic_file.hpp"

static_assert(std::endian::native == std::endian::little, "the io layer assumes a little-endian host");

namespace levattn::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr std::size_t kMagicSize = 6;

// Parses the header dict NumPy writes, e.g. "{'descr': '<f4', 'fortran_order': False, 'shape': (3,
// 4), }", accepting any key order, any whitespace, single or double quotes, an optional trailing
// comma and Python 2 "3L" integers. Anything else is an error quoting the header.
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& path) : text_(text), path_(path) {}

  StoredLayout parse() {
    std::string descr;
    bool have_descr = false, have_fortran = false, have_shape = false;
    StoredLayout layout;
    skip_space();
    expect('{');
    skip_space();
    while (!consume('}')) {
      const std::string key = parse_string();
      skip_space();
      expect(':');
      skip_space();
      if (key == "descr") {
        if (have_descr) fail("duplicate key 'descr'");
        if (peek() == '[') fail("structured dtypes (a list 'descr') are not supported");
        descr = parse_string();
        have_descr = true;
      } else if (key == "fortran_order") {
        if (have_fortran) fail("duplicate key 'fortran_order'");
        layout.fortran_order = parse_bool();
        have_fortran = true;
      } else if (key == "shape") {
        if (have_shape) fail("duplicate key 'shape'");
        layout.shape = parse_shape();
        have_shape = true;
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (!consume(',')) {
        expect('}');
        break;
      }
      skip_space();
    }
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the dict");
    if (!have_descr) fail("missing key 'descr'");
    if (!have_fortran) fail("missing key 'fortran_order'");
    if (!have_shape) fail("missing key 'shape'");
    set_dtype(descr, layout);
    return layout;
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  void skip_space() {
    while (pos_ < text_.size() &&
           (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\r' || text_[pos_] == '\n'))
      ++pos_;
  }
  bool consume(char c) {
    if (pos_ >= text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!consume(c)) fail(std::string("expected '") + c + "'");
  }

  std::string parse_string() {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted string");
    const std::size_t start = ++pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') fail("escape sequences are not supported");
      ++pos_;
    }
    if (pos_ >= text_.size()) fail("unterminated string");
    return std::string(text_.substr(start, pos_++ - start));
  }

  bool parse_bool() {
    for (const bool value : {true, false}) {
      const std::string_view word = value ? "True" : "False";
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return value;
      }
    }
    fail("expected True or False");
  }

  std::vector<index_t> parse_shape() {
    std::vector<index_t> shape;
    expect('(');
    skip_space();
    while (!consume(')')) {
      shape.push_back(parse_dimension());
      skip_space();
      if (!consume(',')) {
        expect(')');
        break;
      }
      skip_space();
    }
    return shape;
  }

  index_t parse_dimension() {
    if (peek() == '-') fail("negative dimension in shape");
    if (peek() < '0' || peek() > '9') fail("expected a dimension");
    index_t value = 0;
    for (; peek() >= '0' && peek() <= '9'; ++pos_) {
      const index_t digit = peek() - '0';
      if (value > (std::numeric_limits<index_t>::max() - digit) / 10) fail("dimension does not fit in 64 bits");
      value = value * 10 + digit;
    }
    if (peek() == 'L') ++pos_;  // Python 2 long
    return value;
  }

  void set_dtype(const std::string& descr, StoredLayout& layout) const {
    static constexpr struct {
      std::string_view code;
      DType dtype;
    } kTypes[] = {{"f2", DType::f16}, {"f4", DType::f32}, {"f8", DType::f64}, {"i8", DType::i64}};
    if (descr.size() == 3 && (descr[0] == '<' || descr[0] == '>')) {
      for (const auto& t : kTypes) {
        if (t.code == std::string_view(descr).substr(1)) {
          layout.dtype = t.dtype;
          layout.big_endian = descr[0] == '>';
          return;
        }
      }
    }
    throw Error(ErrorKind::bad_input, path_ + ": unsupported dtype '" + descr +
                                          "' (supported: '<f2', '<f4', '<f8', '<i8' and the big-endian '>' forms)");
  }

  [[noreturn]] void fail(const std::string& problem) const {
    std::string excerpt;
    for (const char c : text_.substr(0, 120)) excerpt += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (text_.size() > 120) excerpt += "...";
    throw Error(ErrorKind::bad_input, path_ + ": malformed .npy header: " + problem + " at character " +
                                          std::to_string(pos_) + " of \"" + excerpt + "\"");
  }

  std::string_view text_;
  const std::string& path_;
  std::size_t pos_ = 0;
};

// Validates the whole file: magic, version, header and that the data section has exactly the size
// the header implies.
NpyHeader parse_npy(const MappedFile& file) {
  const std::string& path = file.path();
  const std::byte* bytes = file.data();
  const std::size_t size = file.size();
  require(size >= kMagicSize && std::memcmp(bytes, kMagic, kMagicSize) == 0,
          path + ": not a .npy file (it does not start with the \\x93NUMPY magic string)");
  require(size >= kMagicSize + 2, path + ": truncated .npy file (the version bytes are missing)");
  NpyHeader header;
  const auto major = static_cast<unsigned>(bytes[6]), minor = static_cast<unsigned>(bytes[7]);
  require(major >= 1 && major <= 3 && minor == 0,
          path + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  header.major_version = static_cast<int>(major);
  const std::size_t length_bytes = major == 1 ? 2 : 4;
  const std::size_t header_start = kMagicSize + 2 + length_bytes;
  require(size >= header_start, path + ": truncated .npy file (the header length field is cut short)");
  std::uint32_t header_length = 0;  // little-endian u16 (v1) or u32 (v2, v3)
  std::memcpy(&header_length, bytes + kMagicSize + 2, length_bytes);
  require(header_length <= size - header_start, path + ": header length " + std::to_string(header_length) +
                                                    " exceeds the " + std::to_string(size - header_start) +
                                                    " bytes left in the file");
  const std::string_view text(reinterpret_cast<const char*>(bytes + header_start), header_length);
  header.layout = HeaderParser(text, path).parse();
  header.data_offset = header_start + header_length;

  const std::size_t itemsize = dtype_size(header.layout.dtype);
  const index_t count = checked_element_count(header.layout.shape, itemsize, path + ": header");
  const auto expected = static_cast<std::uint64_t>(count) * itemsize;
  const std::uint64_t actual = size - header.data_offset;
  require(expected == actual, path + ": header says shape " + format_shape(header.layout.shape) + " of " +
                                  dtype_name(header.layout.dtype) + " (" + std::to_string(expected) +
                                  " bytes) but the file holds " + std::to_string(actual) + " bytes of data");
  return header;
}

template <class T>
void write_npy_as(const std::string& path, const T* data, const std::vector<index_t>& shape, const char* descr) {
  const index_t count = checked_element_count(shape, sizeof(T), path);
  require(data != nullptr || count == 0, path + ": null data for shape " + format_shape(shape));
  const std::string dict =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + format_shape(shape) + ", }";
  // Pad with spaces and a final newline so that the data starts at a multiple of 64 bytes.
  const auto padded_length = [&](std::size_t prefix) { return (prefix + dict.size() + 1 + 63) / 64 * 64 - prefix; };
  unsigned char version = 1;
  std::size_t prefix = kMagicSize + 2 + 2;
  std::uint32_t length = static_cast<std::uint32_t>(padded_length(prefix));
  if (length > std::numeric_limits<std::uint16_t>::max()) {
    version = 2;
    prefix = kMagicSize + 2 + 4;
    length = static_cast<std::uint32_t>(padded_length(prefix));
  }
  std::string head(kMagic, kMagicSize);
  head += static_cast<char>(version);
  head += '\0';
  head.append(reinterpret_cast<const char*>(&length), version == 1 ? 2 : 4);
  head += dict;
  head.append(length - dict.size() - 1, ' ');
  head += '\n';

  AtomicFile out(path);
  out.write(head.data(), head.size());
  out.write(data, static_cast<std::size_t>(count) * sizeof(T));
  out.commit();
}

}  // namespace

NpyHeader read_npy_header(const std::string& path) { return parse_npy(*MappedFile::open(path)); }

FloatTensor load_npy(const std::string& path, Precision precision) {
  const std::shared_ptr<const MappedFile> file = MappedFile::open(path);
  const NpyHeader header = parse_npy(*file);
  return decode_float_tensor(file->data() + header.data_offset, file->size() - header.data_offset, file, header.layout,
                             path, precision);
}

void write_npy(const std::string& path, const double* data, const std::vector<index_t>& shape) {
  write_npy_as(path, data, shape, "<f8");
}
void write_npy(const std::string& path, const float* data, const std::vector<index_t>& shape) {
  write_npy_as(path, data, shape, "<f4");
}
void write_npy(const std::string& path, const std::int64_t* data, const std::vector<index_t>& shape) {
  write_npy_as(path, data, shape, "<i8");
}

}  // namespace levattn::io
