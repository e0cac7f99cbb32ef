#include "heads.hpp"

namespace levattn::cli {

HeadArray load_heads(const std::string& spec, const std::string& role, io::Precision precision) {
  HeadArray a;
  a.tensor = io::load_float_tensor(spec, precision);
  const auto& shape = a.tensor.shape();
  require(shape.size() == 2 || shape.size() == 3,
          role + ": " + spec + " has shape " + io::format_shape(shape) + "; expected (n, d) or (heads, n, d)");
  a.multi_head = shape.size() == 3;
  a.heads = a.multi_head ? shape[0] : 1;
  a.rows = shape[shape.size() - 2];
  a.cols = shape[shape.size() - 1];
  require(a.heads >= 1 && a.rows >= 1 && a.cols >= 1,
          role + ": " + spec + " has shape " + io::format_shape(shape) + "; no dimension may be 0");
  return a;
}

void check_compatible(const HeadArray& queries, const HeadArray& keys) {
  require(queries.cols == keys.cols, "shape mismatch: queries " + io::format_shape(queries.tensor.shape()) +
                                         " and keys " + io::format_shape(keys.tensor.shape()) + " differ in d");
  require(queries.multi_head == keys.multi_head && queries.heads == keys.heads,
          "shape mismatch: queries " + io::format_shape(queries.tensor.shape()) + " and keys " +
              io::format_shape(keys.tensor.shape()) + " must both be (n, d) or both (h, n, d) with the same h");
}

Heads4 load_heads4(const std::string& spec, const std::string& role, io::Precision precision) {
  Heads4 a;
  a.tensor = io::load_float_tensor(spec, precision);
  const auto& s = a.tensor.shape();
  require(s.size() >= 2 && s.size() <= 4,
          role + ": " + spec + " has shape " + io::format_shape(s) + "; expected (n, d), (h, n, d) or (b, h, n, d)");
  a.rows = s[s.size() - 2];
  a.cols = s[s.size() - 1];
  if (s.size() >= 3) a.heads = s[s.size() - 3];
  if (s.size() == 4) a.batch = s[0];
  require(a.batch >= 1 && a.heads >= 1 && a.rows >= 1 && a.cols >= 1,
          role + ": " + spec + " has shape " + io::format_shape(s) + "; no dimension may be 0");
  return a;
}

void check_shapes(const Heads4& q, const Heads4& k, const Heads4& v) {
  const auto shapes = "queries " + io::format_shape(q.tensor.shape()) + ", keys " + io::format_shape(k.tensor.shape()) +
                      ", values " + io::format_shape(v.tensor.shape());
  require(q.tensor.ndim() == k.tensor.ndim() && k.tensor.ndim() == v.tensor.ndim(),
          "shape mismatch: " + shapes + " must have the same number of dimensions");
  require(q.cols == k.cols, "shape mismatch: " + shapes + ": queries and keys differ in d");
  require(k.rows == v.rows && k.heads == v.heads && k.batch == v.batch,
          "shape mismatch: " + shapes + ": values need one row per key, in the same heads");
  require(q.batch == k.batch, "shape mismatch: " + shapes + ": batch sizes differ");
  require(q.heads % k.heads == 0, "shape mismatch: " + shapes + ": query heads must be a multiple of key heads");
}

void add_qkv_options(CLI::App& command, std::string& queries, std::string& keys, std::string& values) {
  command.add_option("--queries", queries, "Queries: .npy or .safetensors[:name], (n, d), (h, n, d) or (b, h, n, d)")
      ->required();
  command.add_option("--keys", keys, "Keys, same rank as the queries; heads may divide the query heads")->required();
  command.add_option("--values", values, "Values, one row per key")->required();
}

AttentionInputs load_attention_inputs(const std::string& queries, const std::string& keys, const std::string& values,
                                      io::Precision precision) {
  AttentionInputs in{load_heads4(queries, "queries", precision), load_heads4(keys, "keys", precision),
                     load_heads4(values, "values", precision)};
  const ElementType kt = in.k.tensor.element_type(), qt = in.q.tensor.element_type();
  const bool readable = kt == in.v.tensor.element_type() && (qt == kt || qt == ElementType::f32);
  if (!readable) {  // a mix attend_exact does not read in place: every input as float32
    const auto as_float = [](Heads4& h, const std::string& spec, const std::string& role) {
      if (h.tensor.element_type() != ElementType::f32) h = load_heads4(spec, role);
    };
    as_float(in.q, queries, "queries");
    as_float(in.k, keys, "keys");
    as_float(in.v, values, "values");
  }
  check_shapes(in.q, in.k, in.v);
  return in;
}

nlohmann::json attention_shapes_json(const AttentionInputs& in) {
  return {{"batch", in.q.batch},
          {"query_heads", in.q.heads},
          {"key_heads", in.k.heads},
          {"n_q", in.q.rows},
          {"n_k", in.k.rows},
          {"d", in.q.cols},
          {"d_v", in.v.cols},
          {"queries_type", element_type_name(in.q.tensor.element_type())},
          {"keys_type", element_type_name(in.k.tensor.element_type())},
          {"values_type", element_type_name(in.v.tensor.element_type())}};
}

}  // namespace levattn::cli
