// Input arrays seen as attention heads: (n, d) is one head, (h, n, d) is h independent heads.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "levattn/core/half.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/io/tensor.hpp"

namespace levattn::cli {

struct HeadArray {
  io::FloatTensor tensor;
  index_t heads = 1;
  index_t rows = 0;         // n (keys) or m (queries) per head
  index_t cols = 0;         // d
  bool multi_head = false;  // the file held a 3-D array

  // Head h as a dense rows × cols view into the tensor, of elements T (tensor.element_type()).
  template <class T = float>
  MatrixView<const T> head(index_t h) const {
    return MatrixView<const T>(tensor.data_as<T>() + h * rows * cols, rows, cols);
  }
};

// work(array.head<T>(h)) with T the element type the tensor holds (float, Half or BFloat16): for
// the library calls that read 16-bit heads as they are.
template <class Work>
auto with_typed_head(const HeadArray& array, index_t h, Work work) {
  return visit_element_type(array.tensor.element_type(),
                            [&]<class T>(std::type_identity<T>) { return work(array.head<T>(h)); });
}

// Loads `spec` (file.npy or file.safetensors[:name]) as heads, float16/bfloat16 files kept 16-bit
// under io::Precision::keep_16_bit. `role` ("keys", "queries") names the array in messages. Throws
// Error{bad_input} unless the array is 2-D or 3-D with every dimension ≥ 1.
HeadArray load_heads(const std::string& spec, const std::string& role, io::Precision precision = io::Precision::f32);

// Throws Error{bad_input} unless queries and keys have the same d and the same head layout.
void check_compatible(const HeadArray& queries, const HeadArray& keys);

// Runs work() for head h of a (possibly multi-head) input; a levattn::Error it throws is
// rethrown with "head h: " in front when the input has several heads, so messages locate rows.
template <class Work>
auto in_head(const HeadArray& array, index_t h, Work work) {
  try {
    return work();
  } catch (const Error& e) {
    if (!array.multi_head) throw;
    throw Error(e.kind(), "head " + std::to_string(h) + ": " + e.what());
  }
}

// An attention input seen as (b, h, n, d): (n, d) is (1, 1, n, d), (h, n, d) is (1, h, n, d).
struct Heads4 {
  io::FloatTensor tensor;
  index_t batch = 1, heads = 1, rows = 0, cols = 0;
  // The heads as elements of type T (float, Half, BFloat16): T must be tensor.element_type().
  template <class T = float>
  HeadsView<const T> view() const {
    return HeadsView<const T>(tensor.data_as<T>(), batch, heads, rows, cols);
  }
};

// Loads `spec` as (n, d), (h, n, d) or (b, h, n, d); Error{bad_input} otherwise or on a 0 dimension.
Heads4 load_heads4(const std::string& spec, const std::string& role, io::Precision precision = io::Precision::f32);

// Throws Error{bad_input} unless Q, K, V have the same rank, Q and K the same d, V one row per key
// in K's heads and batches, and Q's heads a multiple of K's (grouped-query attention).
void check_shapes(const Heads4& q, const Heads4& k, const Heads4& v);

// The required options --queries, --keys and --values of a command that loads them as Heads4.
void add_qkv_options(CLI::App& command, std::string& queries, std::string& keys, std::string& values);

// Queries, keys and values of an attention command, loaded and checked by check_shapes. Under
// Precision::keep_16_bit, 16-bit files stay 16-bit where attend_exact reads them as they are (keys
// and values of one 16-bit type, queries of that type or float32); any other mix is loaded as
// float32.
struct AttentionInputs {
  Heads4 q, k, v;
};
AttentionInputs load_attention_inputs(const std::string& queries, const std::string& keys, const std::string& values,
                                      io::Precision precision = io::Precision::f32);

// Their shapes for --json: batch, query_heads, key_heads, n_q, n_k, d, d_v; and their element
// types as held in memory (queries_type, keys_type, values_type).
nlohmann::json attention_shapes_json(const AttentionInputs& inputs);

}  // namespace levattn::cli
