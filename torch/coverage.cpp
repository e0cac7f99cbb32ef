// Heavy-entry coverage of the selection rules on a softmax model (see coverage.hpp).
#include "coverage.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <cmath>

#include "levattn/core/error.hpp"

namespace levattn::vit {

nlohmann::json coverage(Vit& model, const Batchable& set, const CoverageOptions& o) {
  const std::int64_t n = model->config().tokens(), depth = model->config().depth;
  for (std::int64_t k : o.ks)
    require(k >= 1 && k <= n, "coverage: k = " + std::to_string(k) + " must lie in [1, " + std::to_string(n) + "]");
  require(o.batch >= 1, "coverage: the batch size must be at least 1");
  const std::size_t T = o.thresholds.size();
  struct Tally {
    std::vector<double> heavy, held;
    double mass = 0.0;
  };
  // tally[layer][rule][k]
  std::vector<std::vector<std::vector<Tally>>> tally(
      static_cast<std::size_t>(depth),
      std::vector<std::vector<Tally>>(
          o.rules.size(), std::vector<Tally>(o.ks.size(), {std::vector<double>(T), std::vector<double>(T)})));
  double rows = 0.0;

  torch::NoGradGuard no_grad;
  model->eval();
  const AttentionSetting before = model->attention();
  model->set_attention({});
  torch::Generator generator = at::detail::createCPUGenerator(o.seed);
  for (std::int64_t at = 0; at < set.size(); at += o.batch) {
    const std::int64_t b = std::min(o.batch, set.size() - at);
    std::vector<LayerCapture> layers;
    model->forward(set.images.narrow(0, at, b), &layers);
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const torch::Tensor& q = layers[l].q;
      const torch::Tensor& k = layers[l].k;
      const torch::Tensor A = (torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)))).softmax(-1);
      if (l == 0) rows += double(A.numel() / n);
      for (std::size_t r = 0; r < o.rules.size(); ++r)
        for (std::size_t ki = 0; ki < o.ks.size(); ++ki) {
          const torch::Tensor kept = select_keys(k, o.rules[r], o.ks[ki], generator);
          const torch::Tensor mask =
              torch::zeros({A.size(0), A.size(1), n}, torch::kFloat).scatter_(2, kept, 1.0f).unsqueeze(2);
          Tally& t = tally[l][r][ki];
          t.mass += (A * mask).sum().item<double>();
          for (std::size_t ti = 0; ti < T; ++ti) {
            const torch::Tensor heavy = A.ge(o.thresholds[ti]).to(torch::kFloat);
            t.heavy[ti] += heavy.sum().item<double>();
            t.held[ti] += (heavy * mask).sum().item<double>();
          }
        }
    }
  }
  model->set_attention(before);

  nlohmann::json out = {{"thresholds", o.thresholds}, {"images", set.size()}, {"rows", nlohmann::json::array()}};
  for (std::size_t l = 0; l < tally.size(); ++l)
    for (std::size_t r = 0; r < o.rules.size(); ++r)
      for (std::size_t ki = 0; ki < o.ks.size(); ++ki) {
        const Tally& t = tally[l][r][ki];
        out["rows"].push_back({{"layer", l},
                               {"rule", rule_name(o.rules[r])},
                               {"k", o.ks[ki]},
                               {"mass", t.mass / rows},
                               {"heavy", t.heavy},
                               {"held", t.held}});
      }
  return out;
}

}  // namespace levattn::vit
