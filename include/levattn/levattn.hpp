// levattn in one include: every public header of the library, layer by layer (core, linear
// algebra, scores, selection, attention, evaluation, input/output, synthetic data). Including the
// headers one by one instead compiles faster; this is for convenience.
#pragma once

#include "levattn/version.hpp"

#include "levattn/core/error.hpp"
#include "levattn/core/finite_rows.hpp"
#include "levattn/core/half.hpp"
#include "levattn/core/heads_view.hpp"
#include "levattn/core/matrix_view.hpp"
#include "levattn/core/row_store.hpp"
#include "levattn/core/threads.hpp"

#include "levattn/linalg/gram.hpp"
#include "levattn/linalg/gram_factors.hpp"
#include "levattn/linalg/sketch.hpp"

#include "levattn/scores/approx_leverage.hpp"
#include "levattn/scores/leverage.hpp"
#include "levattn/scores/leverage_bound.hpp"
#include "levattn/scores/lewis.hpp"
#include "levattn/scores/power_normaliser.hpp"

#include "levattn/select/key_rules.hpp"
#include "levattn/select/key_scores.hpp"
#include "levattn/select/stream_selector.hpp"
#include "levattn/select/universal_set.hpp"

#include "levattn/attention/backward.hpp"
#include "levattn/attention/brute_force.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/attention/heavy.hpp"
#include "levattn/attention/kv_cache.hpp"
#include "levattn/attention/lev_attention.hpp"
#include "levattn/attention/power_heavy.hpp"
#include "levattn/attention/stream_heavy.hpp"
#include "levattn/attention/verify.hpp"

#include "levattn/eval/evaluate.hpp"
#include "levattn/eval/exact_reference.hpp"
#include "levattn/eval/metrics.hpp"
#include "levattn/eval/presses.hpp"
#include "levattn/eval/query_rules.hpp"

#include "levattn/io/atomic_file.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/npy_rows.hpp"
#include "levattn/io/safetensors.hpp"
#include "levattn/io/signal_cleanup.hpp"
#include "levattn/io/tensor.hpp"

#include "levattn/synth/planted.hpp"
