// The attention backward (see backward.hpp): per (batch, key head, chunk of keys) unit, blocks of
// 512 keys against blocks of 256 queries — S and dP from block products, the element-wise pass
// (backward_tile.hpp), then dV, dK and a partial dQ from block products — and the partial dQs
// summed in chunk order. Both the pass and the products come from the kernel set chosen at run
// time (backward_kernel.hpp).
#include "levattn/attention/backward.hpp"

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "attention/backward_kernel.hpp"
#include "attention/finite_check.hpp"
#include "attention/masked_attention.hpp"
#include "core/first_error.hpp"
#include "linalg/scaled_rows.hpp"

namespace levattn {

namespace {

constexpr index_t kBlockQueries = 256;   // queries per block
constexpr index_t kBlockKeys = 512;      // keys per block
constexpr index_t kMaxChunks = 16;       // key chunks per key head, at most
constexpr double kPartialBytes = 512e6;  // partial dQ memory per batch of key heads

// The queries and keys the block products read. |x|^P: queries scaled per row and keys per head
// by powers of two, so every product is at most about d whatever the inputs' magnitudes (q̃ =
// q·2^{-q_shift}, k̃ = k·2^{-k_shift}). Softmax: queries times c (as the forward packs them), keys
// as they are.
struct Scaled {
  std::vector<float> q, k;
  std::vector<int> q_shift;  // |x|^P: per query row (b, h, i)
  std::vector<int> k_shift;  // |x|^P: per key head (b, kh)
};

Scaled scale_inputs(ConstHeadsF Q, ConstHeadsF K, bool power, float c) {
  Scaled s;
  const index_t d = Q.cols, rows = Q.count() * Q.rows;
  s.q.resize(static_cast<size_t>(rows * d));
  if (!power) {
#pragma omp parallel for schedule(static)
    for (index_t r = 0; r < rows; ++r)
      for (index_t col = 0; col < d; ++col) s.q[r * d + col] = c * Q.data[r * d + col];
    return s;
  }
  s.k.resize(static_cast<size_t>(K.count() * K.rows * d));
  s.q_shift.resize(static_cast<size_t>(rows));
  s.k_shift.resize(static_cast<size_t>(K.count()));
#pragma omp parallel for schedule(static)
  for (index_t r = 0; r < rows; ++r) {
    const float* q = Q.data + r * d;
    s.q_shift[r] = -linalg::pow2_shift(q, d);
    linalg::scale_copy(q, d, -s.q_shift[r], s.q.data() + r * d);
  }
  for (index_t h = 0; h < K.count(); ++h) {
    const float* k = K.data + h * K.rows * d;
    s.k_shift[h] = -linalg::pow2_shift(k, K.rows * d);
    linalg::scale_copy(k, K.rows * d, -s.k_shift[h], s.k.data() + h * K.rows * d);
  }
  return s;
}

struct Problem {
  ConstHeadsF Q, K, V, dO;  // Q and K as scale_inputs gives them
  index_t group, chunk_keys, chunks;
  detail::BackwardBlock proto;     // kind, p, mask
  const std::vector<double>* lse;  // per query row, of the scaled products
  const std::vector<float>* D;     // per query row
};

struct RowRange {
  index_t begin, end;
};

// The queries that may see some key of [j0, j1) under the mask: [begin, end), begin rounded down
// to a query block (empty when none does).
RowRange seeing_rows(const Problem& pb, index_t j0, index_t j1) {
  const detail::KeyMask& mask = pb.proto.mask;
  const index_t n_q = pb.Q.rows;
  index_t begin = 0, end = n_q;
  if (mask.upper) begin = std::clamp<index_t>(mask.position(j0) - mask.hi_offset, 0, n_q);
  if (mask.lower) end = std::clamp<index_t>(mask.position(j1 - 1) - mask.lo_offset + 1, 0, n_q);
  if (begin >= end) return {0, 0};
  return {begin / kBlockQueries * kBlockQueries, end};
}

// One unit: key head (b, kh), keys [k_begin, k_end). Accumulates dK, dV rows of the chunk and writes
// the partial dQ (group × n_q × d, not initialised on entry): each query block is written by its
// first product and accumulated into after; the blocks no key of the chunk is visible to are zeroed.
void run_unit(const Problem& pb, index_t b, index_t kh, index_t k_begin, index_t k_end, std::vector<float>& S,
              std::vector<float>& dP, MatrixF dK, MatrixF dV, float* dq_partial) {
  const auto& kernel = detail::active_backward_kernels();
  const index_t n_q = pb.Q.rows, d = pb.Q.cols, q_blocks = (n_q + kBlockQueries - 1) / kBlockQueries;
  const ConstMatrixF K = pb.K.head(b, kh), V = pb.V.head(b, kh);
  std::vector<char> written(static_cast<size_t>(pb.group * q_blocks), 0);
  for (index_t j0 = k_begin; j0 < k_end; j0 += kBlockKeys) {
    const index_t j1 = std::min(k_end, j0 + kBlockKeys), cols = j1 - j0;
    const ConstMatrixF Kb = K.rows_range(j0, j1), Vb = V.rows_range(j0, j1);
    const MatrixF dKb = dK.rows_range(j0, j1), dVb = dV.rows_range(j0, j1);
    const RowRange seeing = seeing_rows(pb, j0, j1);
    for (index_t g = 0; g < pb.group; ++g) {
      const index_t h = kh * pb.group + g, row0 = (b * pb.Q.heads + h) * n_q;
      const ConstMatrixF Q = pb.Q.head(b, h), dO = pb.dO.head(b, h);
      const MatrixF dQ(dq_partial + g * n_q * d, n_q, d);
      for (index_t i0 = seeing.begin; i0 < seeing.end; i0 += kBlockQueries) {
        const index_t i1 = std::min(n_q, i0 + kBlockQueries), rows = i1 - i0;
        const MatrixF Sb(S.data(), rows, cols), dPb(dP.data(), rows, cols);
        kernel.gemm(false, true, Q.rows_range(i0, i1), Kb, false, Sb);
        kernel.gemm(false, true, dO.rows_range(i0, i1), Vb, false, dPb);
        detail::BackwardBlock blk = pb.proto;
        blk.rows = rows;
        blk.cols = cols;
        blk.ld = cols;
        blk.S = S.data();
        blk.dP = dP.data();
        blk.lse = pb.lse->data() + row0 + i0;
        blk.D = pb.D->data() + row0 + i0;
        blk.first_row = i0;
        blk.first_col = j0;
        kernel.block(blk);
        kernel.gemm(true, false, Sb, dO.rows_range(i0, i1), true, dVb);
        kernel.gemm(true, false, dPb, Q.rows_range(i0, i1), true, dKb);
        char& done = written[static_cast<size_t>(g * q_blocks + i0 / kBlockQueries)];
        kernel.gemm(false, false, dPb, Kb, done != 0, dQ.rows_range(i0, i1));
        done = 1;
      }
    }
  }
  for (index_t g = 0; g < pb.group; ++g)
    for (index_t blk = 0; blk < q_blocks; ++blk)
      if (!written[static_cast<size_t>(g * q_blocks + blk)]) {
        float* rows = dq_partial + (g * n_q + blk * kBlockQueries) * d;
        std::fill(rows, rows + std::min(kBlockQueries, n_q - blk * kBlockQueries) * d, 0.0f);
      }
}

}  // namespace

namespace detail {

void check_backward_shapes(ConstHeadsF Q, ConstHeadsF K, ConstHeadsF V, ConstHeadsF O, ConstHeadsF dO, HeadsF dQ,
                           HeadsF dK, HeadsF dV) {
  require(K.batch == Q.batch && V.batch == Q.batch, "attention backward: batch sizes differ");
  require(K.cols == Q.cols, "attention backward: queries and keys must have the same width d");
  require(V.heads == K.heads && V.rows == K.rows, "attention backward: values must match the keys' heads and rows");
  require(K.heads > 0 && Q.heads % K.heads == 0, "attention backward: query heads must be a multiple of key heads");
  const auto same = [](auto a, auto b) {
    return a.batch == b.batch && a.heads == b.heads && a.rows == b.rows && a.cols == b.cols;
  };
  require(O.batch == Q.batch && O.heads == Q.heads && O.rows == Q.rows && O.cols == V.cols,
          "attention backward: out must have shape (batch, query heads, n_q, d_v)");
  require(same(dO, O), "attention backward: grad_out must have the shape of out");
  require(same(dQ, Q), "attention backward: grad_queries must have the shape of queries");
  require(same(dK, K), "attention backward: grad_keys must have the shape of keys");
  require(same(dV, V), "attention backward: grad_values must have the shape of values");
  require(Q.count() * Q.rows == 0 || K.rows == 0 || Q.cols >= 1, "attention backward: d must be at least 1");
}

}  // namespace detail

namespace {

// Throws Error{bad_input} naming the first gradient that is not finite (products overflowed float).
void check_gradients(ConstHeadsF dQ, ConstHeadsF dK, ConstHeadsF dV) {
  for (const auto& [name, t] :
       {std::pair{"grad_queries", dQ}, std::pair{"grad_keys", dK}, std::pair{"grad_values", dV}})
    for (index_t i = 0; i < t.count() * t.rows * t.cols; ++i)
      if (!std::isfinite(t.data[i]))
        throw Error(ErrorKind::bad_input, std::string("attention backward: ") + name +
                                              " overflows float32 (inputs too large for these gradients)");
}

}  // namespace

void attend_exact_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                           const double* log_normaliser, ConstHeadsF grad_out, const AttentionOptions& options,
                           HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values) {
  detail::KeyMask mask;
  mask.upper = options.causal;
  mask.hi_offset = keys.rows - queries.rows;
  detail::attend_masked_backward(queries, keys, values, out, log_normaliser, grad_out, options, mask, grad_queries,
                                 grad_keys, grad_values);
}

namespace detail {

void attend_masked_backward(ConstHeadsF queries, ConstHeadsF keys, ConstHeadsF values, ConstHeadsF out,
                            const double* log_normaliser, ConstHeadsF grad_out, const AttentionOptions& options,
                            const KeyMask& mask, HeadsF grad_queries, HeadsF grad_keys, HeadsF grad_values) {
  detail::check_attention_options(options);
  detail::check_backward_shapes(queries, keys, values, out, grad_out, grad_queries, grad_keys, grad_values);
  const index_t n_q = queries.rows, n_k = keys.rows, d = queries.cols, dv = values.cols;
  const index_t rows_all = queries.count() * n_q;
  std::fill(grad_queries.data, grad_queries.data + rows_all * d, 0.0f);
  std::fill(grad_keys.data, grad_keys.data + keys.count() * n_k * d, 0.0f);
  std::fill(grad_values.data, grad_values.data + values.count() * n_k * dv, 0.0f);
  if (rows_all == 0 || n_k == 0) return;
  require(log_normaliser != nullptr, "attention backward: the forward's log normaliser is needed");
  for (index_t r = 0; r < rows_all; ++r)
    if (std::isnan(log_normaliser[r]) || log_normaliser[r] == INFINITY)
      throw Error(ErrorKind::bad_input,
                  "attention backward: log normaliser of row " + std::to_string(r) + " is NaN or +inf");
  detail::check_finite("queries", queries);
  detail::check_finite("keys", keys);
  detail::check_finite("values", values);
  detail::check_finite("out", out);
  detail::check_finite("grad_out", grad_out);

  const bool power = options.f.kind == ScoreKind::power;
  const double c = effective_scale(options, d);
  std::vector<float> D(static_cast<size_t>(rows_all));
  std::vector<double> lse(log_normaliser, log_normaliser + rows_all);
  const Scaled scaled = scale_inputs(queries, keys, power, static_cast<float>(c));
  const index_t group = queries.heads / keys.heads;
#pragma omp parallel for schedule(static)
  for (index_t r = 0; r < rows_all; ++r) {
    double sum = 0.0;
    for (index_t col = 0; col < dv; ++col)
      sum += static_cast<double>(grad_out.data[r * dv + col]) * out.data[r * dv + col];
    D[r] = static_cast<float>(sum);
    if (power) {  // ln Σ|s̃|^P = L − P·(ln c + (a_i + b)·ln 2)
      const index_t b = r / (queries.heads * n_q), h = (r / n_q) % queries.heads, kh = h / group;
      lse[r] -= options.f.p * (std::log(c) + (scaled.q_shift[r] + scaled.k_shift[b * keys.heads + kh]) * std::log(2.0));
    }
  }

  Problem pb;
  pb.Q = ConstHeadsF(scaled.q.data(), queries.batch, queries.heads, n_q, d);
  pb.K = power ? ConstHeadsF(scaled.k.data(), keys.batch, keys.heads, n_k, d) : keys;
  pb.V = values;
  pb.dO = grad_out;
  pb.group = group;
  // At most kMaxChunks chunks of whole key blocks, and fewer when one key head's partial dQs would
  // pass kPartialBytes (shapes alone decide, so the bits never depend on the thread count).
  const double unit_bytes = 4.0 * double(group) * double(n_q) * double(d);
  const index_t max_chunks = std::clamp<index_t>(static_cast<index_t>(kPartialBytes / unit_bytes), 1, kMaxChunks);
  pb.chunk_keys =
      std::max(kBlockKeys, (((n_k + max_chunks - 1) / max_chunks + kBlockKeys - 1) / kBlockKeys) * kBlockKeys);
  pb.chunks = (n_k + pb.chunk_keys - 1) / pb.chunk_keys;
  pb.proto = detail::BackwardBlock{.kind = options.f.kind, .p = options.f.p, .mask = mask};
  pb.lse = &lse;
  pb.D = &D;

  // Key heads in batches whose partial dQs fit kPartialBytes; units within a batch run in parallel.
  const index_t pairs = keys.count();
  const index_t per_batch =
      std::clamp<index_t>(static_cast<index_t>(kPartialBytes / (unit_bytes * pb.chunks)), 1, pairs);
  const size_t unit_floats = static_cast<size_t>(group * n_q * d);
  const std::unique_ptr<float[]> partial(new float[static_cast<size_t>(per_batch * pb.chunks) * unit_floats]);
  for (index_t first = 0; first < pairs; first += per_batch) {
    const index_t last = std::min(pairs, first + per_batch), units = (last - first) * pb.chunks;
    FirstError error;
    // A parallel region even for one unit: inside one, OpenBLAS (the portable products) runs on the
    // calling thread alone, so how it would split a product never depends on the thread count.
#pragma omp parallel
    {
      std::vector<float> S, dP;
#pragma omp for schedule(dynamic, 1)
      for (index_t u = 0; u < units; ++u) {
        if (error.failed()) continue;
        try {
          if (S.empty()) {
            S.resize(static_cast<size_t>(kBlockQueries * kBlockKeys));
            dP.resize(static_cast<size_t>(kBlockQueries * kBlockKeys));
          }
          const index_t pair = first + u / pb.chunks, chunk = u % pb.chunks;
          const index_t b = pair / keys.heads, kh = pair % keys.heads;
          const index_t k_begin = chunk * pb.chunk_keys, k_end = std::min(n_k, k_begin + pb.chunk_keys);
          run_unit(pb, b, kh, k_begin, k_end, S, dP, grad_keys.head(b, kh), grad_values.head(b, kh),
                   partial.get() + static_cast<size_t>(u) * unit_floats);
        } catch (...) {
          error.capture();
        }
      }
    }
    error.rethrow_if_any();
    // dQ = Σ_chunks partial, in chunk order; |x|^P: times 2^{-a_i}. dK: times 2^{-b}.
    const index_t batch_rows = (last - first) * group * n_q;
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < batch_rows; ++t) {
      const index_t pair = first + t / (group * n_q), g = (t / n_q) % group, i = t % n_q;
      const index_t b = pair / keys.heads, h = (pair % keys.heads) * group + g;
      float* dq = grad_queries.head(b, h).row(i);
      for (index_t chunk = 0; chunk < pb.chunks; ++chunk) {
        const float* p = partial.get() + static_cast<size_t>((pair - first) * pb.chunks + chunk) * unit_floats +
                         static_cast<size_t>((g * n_q + i) * d);
        for (index_t col = 0; col < d; ++col) dq[col] += p[col];
      }
      if (power) {
        const int e = scaled.q_shift[(b * queries.heads + h) * n_q + i];
        for (index_t col = 0; col < d; ++col) dq[col] = std::ldexp(dq[col], -e);
      } else {  // g = c·P·(dP − D): the blocks carried P·(dP − D)
        for (index_t col = 0; col < d; ++col) dq[col] *= static_cast<float>(c);
      }
    }
    if (power)
      for (index_t pair = first; pair < last; ++pair) {
        const int e = scaled.k_shift[pair];
        float* dk = grad_keys.data + pair * n_k * d;
        for (index_t i = 0; i < n_k * d; ++i) dk[i] = std::ldexp(dk[i], -e);
      }
  }
  check_gradients(grad_queries, grad_keys, grad_values);
}

}  // namespace detail

}  // namespace levattn
