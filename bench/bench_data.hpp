// Benchmark inputs, generated once per shape and kept for the whole run.
#pragma once

#include "levattn/synth/planted.hpp"

namespace levattn::bench {

// The demo's planted model with n keys and m queries of dimension d (seed 1).
const PlantedData& planted(index_t n, index_t m, index_t d);

}  // namespace levattn::bench
