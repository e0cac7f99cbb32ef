// A small vision transformer for 28×28 grey images whose attention can keep, in every head and for
// every image, only k keys chosen by a selection rule (key_selection.hpp) — the paper's
// LevAttention when the rule is leverage.
//
// Layout: patches of side p (p divides 28) embedded by a strided convolution, a class token,
// learned position embeddings, `depth` pre-norm blocks (multi-head self-attention, then a GELU MLP
// of width `mlp`), a final layer norm and a linear head on the class token. n = (28/p)² + 1 tokens:
// 50 for p = 4, 197 for p = 2.
//
// Attention with a rule other than softmax: the rule picks k key indices per (image, head) from
// the detached keys; the kept keys and their values are gathered (torch ops, so gradients flow
// through them) and every query runs ordinary softmax over them. With k = n the output equals
// full softmax attention (the gather is the identity). The softmax over the (kept) keys runs
// through torch operations or through levattn's kernels (attention_kernel.hpp), as set_kernel says.
#pragma once

#include <torch/torch.h>
#include <cstdint>
#include <vector>

#include "attention_kernel.hpp"
#include "key_selection.hpp"

namespace levattn::vit {

struct VitConfig {
  std::int64_t patch = 4, width = 64, depth = 4, heads = 4, mlp = 128;
  std::int64_t tokens() const { return (28 / patch) * (28 / patch) + 1; }
};

// Throws Error{bad_input} unless patch divides 28 and heads divides width (all ≥ 1).
void check_config(const VitConfig& config);

// How every attention layer attends: full softmax, or softmax over k keys chosen by `rule`.
struct AttentionSetting {
  Rule rule = Rule::softmax;
  std::int64_t k = 0;  // 1 ≤ k ≤ n when rule ≠ softmax
};

// One layer's queries, keys and values (B, H, n, d_head), detached, as computed in a forward pass.
struct LayerCapture {
  torch::Tensor q, k, v;
};

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(std::int64_t width, std::int64_t heads);
  // x: (B, n, width) → (B, n, width).
  torch::Tensor forward(const torch::Tensor& x, const AttentionSetting& setting, Kernel kernel,
                        torch::Generator& generator, LayerCapture* capture);

 private:
  std::int64_t heads_;
  torch::nn::Linear qkv_{nullptr}, proj_{nullptr};
};
TORCH_MODULE(SelfAttention);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(std::int64_t width, std::int64_t heads, std::int64_t mlp);
  torch::Tensor forward(const torch::Tensor& x, const AttentionSetting& setting, Kernel kernel,
                        torch::Generator& generator, LayerCapture* capture);

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  SelfAttention attention_{nullptr};
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
};
TORCH_MODULE(Block);

class VitImpl : public torch::nn::Module {
 public:
  // Parameters are drawn from torch's global generator: seed it (torch::manual_seed) first.
  explicit VitImpl(const VitConfig& config);
  // images: (B, 1, 28, 28) uint8 pixels → logits (B, 10). When `captures` is given it receives
  // one LayerCapture per block.
  torch::Tensor forward(const torch::Tensor& images, std::vector<LayerCapture>* captures = nullptr);

  const VitConfig& config() const { return config_; }
  // The attention of every layer from now on (checked against n when used).
  void set_attention(const AttentionSetting& setting);
  const AttentionSetting& attention() const { return setting_; }
  // Which code computes the softmax of every layer (torch operations by default).
  void set_kernel(Kernel kernel) { kernel_ = kernel; }
  Kernel kernel() const { return kernel_; }
  // Reseeds the generator of the random rule.
  void seed_selection(std::uint64_t seed);

 private:
  VitConfig config_;
  AttentionSetting setting_;
  Kernel kernel_ = Kernel::torch;
  torch::Generator generator_;
  torch::nn::Conv2d embed_{nullptr};
  torch::Tensor cls_, position_;
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(Vit);

}  // namespace levattn::vit
