#include "levattn/io/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string_view>

#include "io/mapped_file.hpp"
#include "levattn/io/atomic_file.hpp"

static_assert(std::endian::native == std::endian::little, "the io layer assumes a little-endian host");

namespace levattn::io {
namespace {

using nlohmann::json;

// Every dtype of the format with a whole number of bytes per element; `dtype` is set for ours.
struct TagInfo {
  std::string_view tag;
  std::size_t itemsize;
  std::optional<DType> dtype;
};
constexpr TagInfo kTags[] = {
    {"BOOL", 1, {}},    {"U8", 1, {}},  {"I8", 1, {}},          {"F8_E5M2", 1, {}},     {"F8_E4M3", 1, {}},
    {"F8_E8M0", 1, {}}, {"I16", 2, {}}, {"U16", 2, {}},         {"F16", 2, DType::f16}, {"BF16", 2, DType::bf16},
    {"I32", 4, {}},     {"U32", 4, {}}, {"F32", 4, DType::f32}, {"F64", 8, DType::f64}, {"I64", 8, DType::i64},
    {"U64", 8, {}},
};

std::string_view tag_of(DType dtype) {
  for (const TagInfo& t : kTags)
    if (t.dtype == dtype) return t.tag;
  return "?";
}

// A JSON unsigned integer that fits in int64, or an error naming `what`.
std::uint64_t to_count(const json& value, const std::string& what) {
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > std::uint64_t(std::numeric_limits<index_t>::max()))
    throw Error(ErrorKind::bad_input,
                what + " must be non-negative 64-bit integers, got " +
                    (value.is_number() ? value.dump() : std::string("a JSON ") + value.type_name()));
  return value.get<std::uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& name, const json& value, std::uint64_t buffer_size,
                             const std::string& path) {
  const std::string where = path + ": tensor '" + name + "'";
  require(value.is_object(), where + ": entry is not a JSON object");
  SafetensorsEntry e;
  e.name = name;

  const auto dtype = value.find("dtype");
  require(dtype != value.end() && dtype->is_string(), where + ": missing string \"dtype\"");
  e.dtype_tag = dtype->get<std::string>();
  const auto info =
      std::find_if(std::begin(kTags), std::end(kTags), [&](const TagInfo& t) { return t.tag == e.dtype_tag; });
  require(info != std::end(kTags), where + ": unknown dtype '" + e.dtype_tag + "'");
  e.dtype = info->dtype;

  const auto shape = value.find("shape");
  require(shape != value.end() && shape->is_array(), where + ": missing array \"shape\"");
  for (const json& d : *shape) e.shape.push_back(static_cast<index_t>(to_count(d, where + ": shape entries")));

  const auto offsets = value.find("data_offsets");
  require(offsets != value.end() && offsets->is_array() && offsets->size() == 2,
          where + ": \"data_offsets\" must be an array [begin, end]");
  e.begin = to_count((*offsets)[0], where + ": data_offsets");
  e.end = to_count((*offsets)[1], where + ": data_offsets");
  require(e.begin <= e.end && e.end <= buffer_size, where + ": data_offsets [" + std::to_string(e.begin) + ", " +
                                                        std::to_string(e.end) + "] lie outside the data buffer of " +
                                                        std::to_string(buffer_size) + " bytes");

  const index_t count = checked_element_count(e.shape, info->itemsize, where);
  const auto expected = static_cast<std::uint64_t>(count) * info->itemsize;
  require(e.end - e.begin == expected, where + ": shape " + format_shape(e.shape) + " of " + e.dtype_tag + " needs " +
                                           std::to_string(expected) + " bytes but data_offsets span " +
                                           std::to_string(e.end - e.begin));
  return e;
}

SafetensorsHeader parse_safetensors(const MappedFile& file) {
  const std::string& path = file.path();
  const std::size_t size = file.size();
  require(size >= 8, path + ": not a .safetensors file (" + std::to_string(size) +
                         " bytes, too short for the 8-byte header length)");
  std::uint64_t header_length = 0;
  std::memcpy(&header_length, file.data(), 8);
  require(header_length <= size - 8, path + ": header length " + std::to_string(header_length) + " exceeds the " +
                                         std::to_string(size - 8) + " bytes left in the file");
  const char* text = reinterpret_cast<const char*>(file.data()) + 8;
  json root;
  try {
    root = json::parse(text, text + header_length);
  } catch (const json::exception& e) {
    throw Error(ErrorKind::bad_input, path + ": invalid JSON header: " + e.what());
  }
  require(root.is_object(), path + ": the JSON header is not an object");

  SafetensorsHeader header;
  header.data_offset = 8 + header_length;
  const std::uint64_t buffer_size = size - header.data_offset;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      require(value.is_object(), path + ": \"__metadata__\" is not a JSON object");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string())
          throw Error(ErrorKind::bad_input, path + ": metadata value for '" + k + "' is not a string");
        header.metadata[k] = v.get<std::string>();
      }
    } else {
      header.tensors.push_back(parse_entry(key, value, buffer_size, path));
    }
  }
  return header;  // json objects iterate in key order, so tensors are sorted by name
}

// "a, b, c" (at most 20 names, then "and N more").
std::string list_names(const std::vector<SafetensorsEntry>& tensors) {
  std::string list;
  const std::size_t shown = std::min<std::size_t>(tensors.size(), 20);
  for (std::size_t i = 0; i < shown; ++i) list += (i ? ", " : "") + tensors[i].name;
  if (tensors.size() > shown) list += " and " + std::to_string(tensors.size() - shown) + " more";
  return list;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::string& path) {
  return parse_safetensors(*MappedFile::open(path));
}

FloatTensor load_safetensors(const std::string& path, const std::string& name, Precision precision) {
  const std::shared_ptr<const MappedFile> file = MappedFile::open(path);
  const SafetensorsHeader header = parse_safetensors(*file);
  const auto& tensors = header.tensors;
  const SafetensorsEntry* entry = nullptr;
  if (name.empty()) {
    require(!tensors.empty(), path + ": the file holds no tensors");
    require(tensors.size() == 1, path + ": the file holds " + std::to_string(tensors.size()) + " tensors (" +
                                     list_names(tensors) + "); choose one with " + path + ":tensor_name");
    entry = &tensors.front();
  } else {
    const auto it =
        std::find_if(tensors.begin(), tensors.end(), [&](const SafetensorsEntry& e) { return e.name == name; });
    require(it != tensors.end(), path + ": no tensor named '" + name + "' (available: " + list_names(tensors) + ")");
    entry = &*it;
  }
  require(entry->dtype.has_value() && entry->dtype != DType::i64,
          path + ": tensor '" + entry->name + "' has dtype " + entry->dtype_tag +
              ", which cannot be loaded as float (loadable: F16, BF16, F32, F64)");
  const StoredLayout layout{*entry->dtype, entry->shape, false, false};
  return decode_float_tensor(file->data() + header.data_offset + entry->begin, entry->end - entry->begin, file, layout,
                             name.empty() ? path : path + ":" + name, precision);
}

void write_safetensors(const std::string& path, const std::vector<TensorRef>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::set<std::string> names;
  std::vector<std::uint64_t> bytes(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorRef& t = tensors[i];
    const std::string where = path + ": tensor '" + t.name + "'";
    require(!t.name.empty() && t.name != "__metadata__", where + ": invalid tensor name");
    require(names.insert(t.name).second, where + ": duplicate tensor name");
    const index_t count = checked_element_count(t.shape, dtype_size(t.dtype), where);
    require(t.data != nullptr || count == 0, where + ": null data for shape " + format_shape(t.shape));
    bytes[i] = static_cast<std::uint64_t>(count) * dtype_size(t.dtype);
  }
  // Lay out by decreasing element size: with the header a multiple of 8 bytes, every tensor then
  // starts at a multiple of its own element size, so readers can use it in place.
  std::vector<std::size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });
  std::vector<std::uint64_t> begin(tensors.size());
  std::uint64_t offset = 0;
  for (const std::size_t i : order) {
    require(bytes[i] <= std::numeric_limits<std::uint64_t>::max() - offset, path + ": total data size overflows");
    begin[i] = offset;
    offset += bytes[i];
  }

  nlohmann::ordered_json root = nlohmann::ordered_json::object();
  if (!metadata.empty()) root["__metadata__"] = metadata;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    root[tensors[i].name] = {{"dtype", tag_of(tensors[i].dtype)},
                             {"shape", tensors[i].shape},
                             {"data_offsets", {begin[i], begin[i] + bytes[i]}}};
  }
  std::string text;
  try {
    text = root.dump();
  } catch (const nlohmann::ordered_json::exception& e) {
    throw Error(ErrorKind::bad_input,
                path + ": cannot encode the header (names and metadata must be UTF-8): " + e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::uint64_t header_length = text.size();

  AtomicFile out(path);
  out.write(&header_length, 8);
  out.write(text.data(), text.size());
  for (const std::size_t i : order) out.write(tensors[i].data, bytes[i]);
  out.commit();
}

}  // namespace levattn::io
