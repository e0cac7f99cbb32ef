#include "heads.hpp"

namespace levattn::cli {

HeadArray load_heads(const std::string& spec, const std::string& role) {
  HeadArray a;
  a.tensor = io::load_float_tensor(spec);
  const auto& shape = a.tensor.shape();
  require(shape.size() == 2 || shape.size() == 3,
          role + ": " + spec + " has shape " + io::format_shape(shape) +
              "; expected (n, d) or (heads, n, d)");
  a.multi_head = shape.size() == 3;
  a.heads = a.multi_head ? shape[0] : 1;
  a.rows = shape[shape.size() - 2];
  a.cols = shape[shape.size() - 1];
  require(a.heads >= 1 && a.rows >= 1 && a.cols >= 1,
          role + ": " + spec + " has shape " + io::format_shape(shape) + "; no dimension may be 0");
  return a;
}

void check_compatible(const HeadArray& queries, const HeadArray& keys) {
  require(queries.cols == keys.cols,
          "shape mismatch: queries " + io::format_shape(queries.tensor.shape()) + " and keys " +
              io::format_shape(keys.tensor.shape()) + " differ in d");
  require(queries.multi_head == keys.multi_head && queries.heads == keys.heads,
          "shape mismatch: queries " + io::format_shape(queries.tensor.shape()) + " and keys " +
              io::format_shape(keys.tensor.shape()) + " must both be (n, d) or both (h, n, d) with the same h");
}

}  // namespace levattn::cli
