// The ViT and its selective attention (see vit.hpp).
#include "vit.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <cmath>

#include "levattn/core/error.hpp"

namespace levattn::vit {

namespace {
// Fashion-MNIST pixel mean and standard deviation (of x/255 over the training images).
constexpr double kPixelMean = 0.2860, kPixelStd = 0.3530;
}  // namespace

void check_config(const VitConfig& c) {
  require(c.patch >= 1 && 28 % c.patch == 0, "ViT: the patch size must divide 28 (1, 2, 4, 7, 14, 28)");
  require(c.width >= 1 && c.heads >= 1 && c.width % c.heads == 0,
          "ViT: the width must be a positive multiple of the number of heads");
  require(c.depth >= 1 && c.mlp >= 1, "ViT: depth and MLP width must be at least 1");
}

SelfAttentionImpl::SelfAttentionImpl(std::int64_t width, std::int64_t heads)
    : heads_(heads),
      qkv_(register_module("qkv", torch::nn::Linear(width, 3 * width))),
      proj_(register_module("proj", torch::nn::Linear(width, width))) {}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const AttentionSetting& setting, Kernel kernel,
                                         torch::Generator& generator, LayerCapture* capture) {
  const std::int64_t B = x.size(0), n = x.size(1), D = x.size(2), dh = D / heads_;
  const torch::Tensor qkv = qkv_(x).view({B, n, 3, heads_, dh}).permute({2, 0, 3, 1, 4});
  const torch::Tensor q = qkv[0];
  torch::Tensor k = qkv[1], v = qkv[2];
  if (capture) *capture = {q.detach(), k.detach(), v.detach()};
  if (setting.rule != Rule::softmax) {
    const torch::Tensor kept = select_keys(k, setting.rule, setting.k, generator);
    const torch::Tensor index = kept.unsqueeze(-1).expand({B, heads_, setting.k, dh});
    k = k.gather(2, index);
    v = v.gather(2, index);
  }
  const double scale = 1.0 / std::sqrt(double(dh));
  const torch::Tensor out = kernel == Kernel::levattn
                                ? levattn_softmax_attention(q, k, v, scale)
                                : torch::matmul((torch::matmul(q, k.transpose(-2, -1)) * scale).softmax(-1), v);
  return proj_(out.transpose(1, 2).reshape({B, n, D}));
}

BlockImpl::BlockImpl(std::int64_t width, std::int64_t heads, std::int64_t mlp)
    : norm1_(register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})))),
      norm2_(register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})))),
      attention_(register_module("attention", SelfAttention(width, heads))),
      fc1_(register_module("fc1", torch::nn::Linear(width, mlp))),
      fc2_(register_module("fc2", torch::nn::Linear(mlp, width))) {}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const AttentionSetting& setting, Kernel kernel,
                                 torch::Generator& generator, LayerCapture* capture) {
  const torch::Tensor y = x + attention_(norm1_(x), setting, kernel, generator, capture);
  return y + fc2_(torch::gelu(fc1_(norm2_(y))));
}

VitImpl::VitImpl(const VitConfig& config)
    : config_((check_config(config), config)), generator_(at::detail::createCPUGenerator(0)) {
  const std::int64_t D = config.width;
  embed_ =
      register_module("embed", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, D, config.patch).stride(config.patch)));
  cls_ = register_parameter("cls", torch::randn({1, 1, D}) * 0.02);
  position_ = register_parameter("position", torch::randn({1, config.tokens(), D}) * 0.02);
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  for (std::int64_t l = 0; l < config.depth; ++l) blocks_->push_back(Block(D, config.heads, config.mlp));
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  head_ = register_module("head", torch::nn::Linear(D, 10));
}

void VitImpl::set_attention(const AttentionSetting& setting) {
  const std::int64_t n = config_.tokens();
  require(setting.rule == Rule::softmax || (setting.k >= 1 && setting.k <= n),
          "ViT: k = " + std::to_string(setting.k) + " must lie in [1, " + std::to_string(n) +
              "] (the sequence length at patch " + std::to_string(config_.patch) + ")");
  setting_ = setting;
}

void VitImpl::seed_selection(std::uint64_t seed) { generator_.set_current_seed(seed); }

torch::Tensor VitImpl::forward(const torch::Tensor& images, std::vector<LayerCapture>* captures) {
  require(images.dim() == 4 && images.size(1) == 1 && images.size(2) == 28 && images.size(3) == 28,
          "ViT: images must be (batch, 1, 28, 28)");
  const torch::Tensor pixels = (images.to(torch::kFloat) / 255.0 - kPixelMean) / kPixelStd;
  torch::Tensor x = embed_(pixels).flatten(2).transpose(1, 2);
  x = torch::cat({cls_.expand({x.size(0), 1, x.size(2)}), x}, 1) + position_;
  if (captures) captures->assign(blocks_->size(), {});
  for (std::size_t l = 0; l < blocks_->size(); ++l)
    x = blocks_[l]->as<Block>()->forward(x, setting_, kernel_, generator_, captures ? &(*captures)[l] : nullptr);
  return head_(norm_(x.select(1, 0)));
}

}  // namespace levattn::vit
