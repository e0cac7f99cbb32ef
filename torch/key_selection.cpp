// The key selection rules (see key_selection.hpp).
#include "key_selection.hpp"

#include <ATen/Parallel.h>

#include "levattn/attention/lev_attention.hpp"
#include "levattn/core/error.hpp"

namespace levattn::vit {

namespace {

// The k largest of scores (B, H, n) along the last axis, ties to the lower index, ascending.
torch::Tensor top_k_ascending(const torch::Tensor& scores, std::int64_t k) {
  // A stable descending sort keeps equal scores in index order, so ties go to the lower index.
  const torch::Tensor order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true));
  return std::get<0>(order.narrow(-1, 0, k).sort(-1));
}

torch::Tensor leverage_top_k(const torch::Tensor& keys, std::int64_t k) {
  const torch::Tensor K = keys.detach().to(torch::kCPU, torch::kFloat).contiguous();
  const std::int64_t B = K.size(0), H = K.size(1), n = K.size(2), d = K.size(3);
  torch::Tensor out = torch::empty({B, H, k}, torch::kLong);
  const float* src = K.data_ptr<float>();
  std::int64_t* dst = out.data_ptr<std::int64_t>();
  LevSelectOptions options;
  options.top_k = k;
  at::parallel_for(0, B * H, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t bh = begin; bh < end; ++bh) {
      const std::vector<index_t> kept = lev_select(ConstMatrixF(src + bh * n * d, n, d), options);
      std::copy(kept.begin(), kept.end(), dst + bh * k);
    }
  });
  return out.to(keys.device());
}

}  // namespace

Rule parse_rule(const std::string& name) {
  if (name == "softmax") return Rule::softmax;
  if (name == "leverage") return Rule::leverage;
  if (name == "row-norm") return Rule::row_norm;
  if (name == "random") return Rule::random;
  throw Error(ErrorKind::bad_input, "unknown attention rule '" + name + "' (softmax, leverage, row-norm, random)");
}

std::string rule_name(Rule rule) {
  switch (rule) {
    case Rule::softmax:
      return "softmax";
    case Rule::leverage:
      return "leverage";
    case Rule::row_norm:
      return "row-norm";
    case Rule::random:
      return "random";
  }
  return "?";
}

torch::Tensor select_keys(const torch::Tensor& keys, Rule rule, std::int64_t k, torch::Generator& generator) {
  require(keys.dim() == 4, "key selection: keys must be (batch, heads, n, d)");
  const std::int64_t n = keys.size(2);
  require(k >= 1 && k <= n,
          "key selection: k = " + std::to_string(k) + " must lie in [1, n = " + std::to_string(n) + "]");
  torch::NoGradGuard no_grad;
  switch (rule) {
    case Rule::leverage:
      return leverage_top_k(keys, k);
    case Rule::row_norm:
      return top_k_ascending(keys.detach().to(torch::kDouble).norm(2, -1), k);
    case Rule::random:
      return top_k_ascending(
          torch::rand({keys.size(0), keys.size(1), n}, generator, torch::TensorOptions().dtype(torch::kDouble)), k);
    case Rule::softmax:
      break;
  }
  throw Error(ErrorKind::bad_input, "key selection: softmax keeps every key; there is nothing to select");
}

}  // namespace levattn::vit
