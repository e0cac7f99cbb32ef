// Which keys each attention head keeps: the selection rules of the ViT's attention.
//
// Every rule works per image and per head on keys of shape (B, H, n, d) and returns int64 indices
// (B, H, k), ascending within each head. The choice is made on detached values (no gradient flows
// through it); the caller gathers the kept keys and values, so gradients flow through those.
//
//  * leverage: the k keys with the largest ℓ2 leverage score τ_j = k_jᵀ(KᵀK)⁺k_j of that head's
//    keys, ties to the lower index — exactly the library's lev_select (top-k, no sinks, default
//    rank cut-off), which this calls on a float copy of each head's keys.
//  * row_norm: the k keys of largest ‖k_j‖₂, ties to the lower index.
//  * random: k distinct keys drawn uniformly from `generator` (one draw per image and head).
//
// With k = n every rule returns 0, 1, …, n − 1, so the attention equals full softmax.
#pragma once

#include <torch/torch.h>
#include <cstdint>
#include <string>

namespace levattn::vit {

enum class Rule { softmax, leverage, row_norm, random };

// "softmax", "leverage", "row-norm", "random"; throws Error{bad_input} listing them otherwise.
Rule parse_rule(const std::string& name);
std::string rule_name(Rule rule);

// Indices (B, H, k) as described above, for rule ≠ softmax. keys: (B, H, n, d) float, finite.
// Throws Error{bad_input} if k ∉ [1, n], keys are not 4-D, or (leverage) a key is NaN/Inf.
torch::Tensor select_keys(const torch::Tensor& keys, Rule rule, std::int64_t k, torch::Generator& generator);

}  // namespace levattn::vit
