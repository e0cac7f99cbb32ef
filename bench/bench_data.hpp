// Benchmark inputs, generated once per shape and kept for the whole run.
#pragma once

#include <cstdint>
#include <vector>

#include "levattn/synth/planted.hpp"

namespace levattn::bench {

// The demo's planted model with n keys and m queries of dimension d (seed 1).
const PlantedData& planted(index_t n, index_t m, index_t d);

// count floats in [−1, 1) from an integer hash of (index, seed), computed exactly so that
// bench/torch_attention.py builds bit-identical inputs for PyTorch:
// x_i = 2·(((i·2654435761 + seed·40503) mod 2³²) / 2³²) − 1, rounded to float.
std::vector<float> hashed_floats(index_t count, std::uint64_t seed);

}  // namespace levattn::bench
