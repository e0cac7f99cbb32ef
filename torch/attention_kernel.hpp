// Softmax attention as a libtorch autograd function backed by levattn's kernels: attend_exact
// forward (keeping each row's log normaliser) and attend_exact_backward (tiled, no n × n matrix)
// for the gradients — the "levattn" kernel of levattn-vit, against the "torch" one (matmul,
// softmax, matmul through autograd).
#pragma once

#include <torch/torch.h>
#include <string>

namespace levattn::vit {

enum class Kernel { torch, levattn };
// "torch" or "levattn"; Error{bad_input} otherwise.
Kernel parse_kernel(const std::string& name);
std::string kernel_name(Kernel kernel);

// softmax(scale·q·kᵀ)·v for q (B, H, n_q, d), k (B, H, n_k, d), v (B, H, n_k, d_v), any strides and
// float dtype (computed in float32); differentiable in q, k and v. Output float32 (B, H, n_q, d_v).
torch::Tensor levattn_softmax_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                        double scale);

}  // namespace levattn::vit
