// Exact attention (prefill and decode) and LevAttention. FLOPs are counted as 4·n_q·n_k·d (two
// products); decode is compared with the memory bandwidth measured in the same run. Inputs come
// from hashed_floats, so bench/torch_attention.py times PyTorch on bit-identical data.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "bench_data.hpp"
#include "levattn/attention/backward.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/attention/lev_attention.hpp"

namespace levattn::bench {
namespace {

struct QKV {
  std::vector<float> q, k, v;
  QKV(index_t n_q, index_t n_k, index_t d)
      : q(hashed_floats(n_q * d, 1)), k(hashed_floats(n_k * d, 2)), v(hashed_floats(n_k * d, 3)) {}
};

void exact(benchmark::State& state, index_t n_q, index_t n_k, index_t d) {
  const QKV in(n_q, n_k, d);
  std::vector<float> out(static_cast<size_t>(n_q * d));
  for (auto _ : state) {
    attend_exact(ConstMatrixF(in.q.data(), n_q, d), ConstMatrixF(in.k.data(), n_k, d),
                 ConstMatrixF(in.v.data(), n_k, d), AttentionOptions{}, MatrixF(out.data(), n_q, d));
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["FLOP"] =
      benchmark::Counter(4.0 * double(n_q) * double(n_k) * double(d), benchmark::Counter::kIsIterationInvariantRate);
}

// One head, n_q = n_k = range(0), width range(1).
void BM_ExactAttention(benchmark::State& state) { exact(state, state.range(0), state.range(0), state.range(1)); }

// One query over n_k = range(0) keys of width 128: bytes = K and V once.
void BM_Decode(benchmark::State& state) {
  const index_t n_k = state.range(0), d = 128;
  exact(state, 1, n_k, d);
  state.counters["bytes"] =
      benchmark::Counter(2.0 * double(n_k) * double(d) * sizeof(float), benchmark::Counter::kIsIterationInvariantRate);
}

// The same inputs rounded to a 16-bit type T.
template <class T>
std::vector<T> rounded(const std::vector<float>& x) {
  std::vector<T> r(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    if constexpr (std::is_same_v<T, Half>)
      r[i] = to_half(x[i]);
    else
      r[i] = to_bfloat16(x[i]);
  }
  return r;
}

template <class T>
void exact16(benchmark::State& state, index_t n_q, index_t n_k, index_t d, Arithmetic arithmetic) {
  const QKV in(n_q, n_k, d);
  const std::vector<T> q = rounded<T>(in.q), k = rounded<T>(in.k), v = rounded<T>(in.v);
  std::vector<float> out(static_cast<size_t>(n_q * d));
  AttentionOptions options;
  options.arithmetic = arithmetic;
  for (auto _ : state) {
    attend_exact(HeadsView<const T>(q.data(), 1, 1, n_q, d), HeadsView<const T>(k.data(), 1, 1, n_k, d),
                 HeadsView<const T>(v.data(), 1, 1, n_k, d), options, HeadsF(out.data(), 1, 1, n_q, d));
    benchmark::DoNotOptimize(out.data());
  }
  state.SetLabel(attention_kernel(n_q, options).bf16_products ? "bf16 products" : "f32 products");
  state.counters["FLOP"] =
      benchmark::Counter(4.0 * double(n_q) * double(n_k) * double(d), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes"] =
      benchmark::Counter(2.0 * double(n_k) * double(d) * sizeof(T), benchmark::Counter::kIsIterationInvariantRate);
}

// One head of 16-bit inputs, n_q = n_k = range(0), width range(1); range(2) = 1 for Half, 2 for
// BFloat16; range(3) = 1 asks for bf16 arithmetic, 0 for f32.
void BM_ExactAttention16(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1);
  const Arithmetic a = state.range(3) == 1 ? Arithmetic::bf16 : Arithmetic::f32;
  if (state.range(2) == 1)
    exact16<Half>(state, n, n, d, a);
  else
    exact16<BFloat16>(state, n, n, d, a);
}

// One float query over n_k = range(0) 16-bit keys and values of width 128 (range(1) as above):
// bytes = K and V once.
void BM_Decode16(benchmark::State& state) {
  const index_t n_k = state.range(0), d = 128;
  if (state.range(1) == 1)
    exact16<Half>(state, 1, n_k, d, Arithmetic::f32);
  else
    exact16<BFloat16>(state, 1, n_k, d, Arithmetic::f32);
}

// The machine's read bandwidth in the same run: a parallel bitwise OR over 512 MiB of 64-bit
// words (one cheap independent operation per 8 bytes, so the loop is bound by memory alone; a
// 32-bit sum or a float sum measured only 7-17 GB/s here, against 40-47 GB/s for this loop).
void BM_MemoryRead(benchmark::State& state) {
  const index_t count = index_t{1} << 26;
  std::vector<std::uint64_t> x(static_cast<size_t>(count), 1u);
  for (auto _ : state) {
    std::uint64_t bits = 0;
#pragma omp parallel for simd reduction(| : bits) schedule(static)
    for (index_t i = 0; i < count; ++i) bits |= x[i];
    benchmark::DoNotOptimize(bits);
  }
  state.counters["bytes"] =
      benchmark::Counter(double(count) * sizeof(std::uint64_t), benchmark::Counter::kIsIterationInvariantRate);
}

// The backward pass of exact softmax attention, one head, n_q = n_k = range(0), width range(1),
// counting 10·n²·d FLOPs (the five products S, dP, dV, dK, dQ); with range(2) = 1 the forward
// (with its log normaliser) is timed too, as a training step runs both.
void BM_AttentionBackward(benchmark::State& state) {
  const index_t n = state.range(0), d = state.range(1);
  const bool with_forward = state.range(2) == 1;
  const QKV in(n, n, d);
  const std::vector<float> dout = hashed_floats(n * d, 4);
  std::vector<float> out(static_cast<size_t>(n * d)), dq(out.size()), dk(out.size()), dv(out.size());
  std::vector<double> lse(static_cast<size_t>(n));
  const ConstHeadsF Q(in.q.data(), 1, 1, n, d), K(in.k.data(), 1, 1, n, d), V(in.v.data(), 1, 1, n, d);
  attend_exact(Q, K, V, AttentionOptions{}, HeadsF(out.data(), 1, 1, n, d), lse.data());
  for (auto _ : state) {
    if (with_forward) attend_exact(Q, K, V, AttentionOptions{}, HeadsF(out.data(), 1, 1, n, d), lse.data());
    attend_exact_backward(Q, K, V, ConstHeadsF(out.data(), 1, 1, n, d), lse.data(),
                          ConstHeadsF(dout.data(), 1, 1, n, d), AttentionOptions{}, HeadsF(dq.data(), 1, 1, n, d),
                          HeadsF(dk.data(), 1, 1, n, d), HeadsF(dv.data(), 1, 1, n, d));
    benchmark::DoNotOptimize(dq.data());
  }
  state.counters["FLOP"] =
      benchmark::Counter(10.0 * double(n) * double(n) * double(d), benchmark::Counter::kIsIterationInvariantRate);
}

// LevAttention, softmax, top-256 keys, n_q = n_k = range(0), d = 64, selection included.
void BM_LevAttention(benchmark::State& state) {
  const index_t n = state.range(0), d = 64;
  const QKV in(n, n, d);
  std::vector<float> out(static_cast<size_t>(n * d));
  LevSelectOptions select;
  select.top_k = 256;
  for (auto _ : state) {
    attend_lev(ConstHeadsF(in.q.data(), 1, 1, n, d), ConstHeadsF(in.k.data(), 1, 1, n, d),
               ConstHeadsF(in.v.data(), 1, 1, n, d), AttentionOptions{}, select, HeadsF(out.data(), 1, 1, n, d));
    benchmark::DoNotOptimize(out.data());
  }
}

BENCHMARK(BM_ExactAttention)->Args({4096, 64})->Args({4096, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
// The call the Python benchmark (bench/python_attention.py) measures its overhead against.
BENCHMARK(BM_ExactAttention)->Args({64, 64})->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ExactAttention)->Args({65536, 64})->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Decode)->Arg(16384)->Arg(65536)->Arg(262144)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ExactAttention16)
    ->Args({4096, 64, 2, 1})
    ->Args({4096, 128, 2, 1})
    ->Args({4096, 64, 2, 0})
    ->Args({4096, 128, 2, 0})
    ->Args({4096, 64, 1, 0})
    ->Args({4096, 128, 1, 0})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_Decode16)
    ->Args({65536, 1})
    ->Args({262144, 1})
    ->Args({65536, 2})
    ->Args({262144, 2})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK(BM_AttentionBackward)
    ->Args({4096, 64, 0})
    ->Args({4096, 128, 0})
    ->Args({4096, 64, 1})
    ->Args({4096, 128, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_MemoryRead)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LevAttention)
    ->RangeMultiplier(4)
    ->Range(index_t{1} << 14, index_t{1} << 18)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace levattn::bench
