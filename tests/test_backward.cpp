// The attention backward against float64 gradients computed here from the formulas (themselves
// checked by finite differences of a float64 forward on tiny sizes): softmax and |x|^P, causal,
// grouped queries, lengths on both sides of the 256-row blocks, adversarial magnitudes, identical
// bits for 1 and 2 threads, bad input; LevAttention's backward (kept keys, causal windows) likewise.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "levattn/attention/backward.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/attention/lev_attention.hpp"
#include "reference.hpp"

namespace levattn::test {
namespace {

struct Case {
  index_t B = 1, Hq = 1, Hkv = 1, n_q = 8, n_k = 8, d = 8, dv = 8;
  AttentionOptions o;
  std::string kind = "gaussian";  // gaussian, large_logits, duplicate_keys, huge, tiny
  std::uint64_t seed = 1;
};

struct Tensors {
  std::vector<float> q, k, v, dout;
};

std::vector<float> normal(index_t count, std::mt19937_64& rng, double scale = 1.0) {
  std::normal_distribution<double> n(0.0, 1.0);
  std::vector<float> x(static_cast<size_t>(count));
  for (float& e : x) e = static_cast<float>(scale * n(rng));
  return x;
}

Tensors make(const Case& c) {
  std::mt19937_64 rng(c.seed);
  Tensors t;
  const double mag = c.kind == "huge" ? 1e20 : c.kind == "tiny" ? 1e-20 : 1.0;
  t.q = normal(c.B * c.Hq * c.n_q * c.d, rng, c.kind == "large_logits" ? 6.0 : mag);
  t.k = normal(c.B * c.Hkv * c.n_k * c.d, rng, mag);
  if (c.kind == "mixed_scales") {  // queries ~1e20 with rows spanning 12 decades, keys ~1e-20
    for (index_t r = 0; r < c.B * c.Hq * c.n_q; ++r)
      for (index_t x = 0; x < c.d; ++x) t.q[r * c.d + x] *= static_cast<float>(1e14 * std::pow(10.0, double(r % 13)));
    for (float& x : t.k) x *= 1e-20f;
  }
  if (c.kind == "shifted_logits") {  // every logit near −2000: |L| large, the weights set by the rest
    for (index_t r = 0; r < c.B * c.Hq * c.n_q; ++r) t.q[r * c.d] = -40.0f;
    for (index_t r = 0; r < c.B * c.Hkv * c.n_k; ++r) t.k[r * c.d] = 50.0f;
  }
  t.v = normal(c.B * c.Hkv * c.n_k * c.dv, rng);
  t.dout = normal(c.B * c.Hq * c.n_q * c.dv, rng);
  if (c.kind == "duplicate_keys")
    for (index_t r = 1; r < c.B * c.Hkv * c.n_k; r += 2)
      std::copy_n(t.k.begin() + (r - 1) * c.d, c.d, t.k.begin() + r * c.d);
  return t;
}

struct Grads {
  std::vector<double> dq, dk, dv;
};

// Float64 gradients of Σ dO∘O from the formulas of backward.hpp, every product in double. With
// `kept` (per key head, as LevAttention keeps them): query i's output uses the kept keys and,
// causal, every key of its `window` latest visible ones; softmax runs over those keys only; |x|^P
// sums their terms but normalises over every visible key, so the others get gradient through the
// normaliser (their dP is 0) and no dV.
Grads reference_grads(const Case& c, const Tensors& t, const std::vector<std::vector<index_t>>* kept = nullptr,
                      index_t window = 0) {
  Grads g{std::vector<double>(t.q.size()), std::vector<double>(t.k.size()), std::vector<double>(t.v.size())};
  const bool softmax = c.o.f.kind == ScoreKind::softmax;
  const double p = c.o.f.p, s = effective_scale(c.o, c.d);
  const index_t group = c.Hq / c.Hkv, off = c.n_k - c.n_q;
  for (index_t b = 0; b < c.B; ++b)
    for (index_t h = 0; h < c.Hq; ++h) {
      const index_t kh = h / group;
      const float* Q = &t.q[((b * c.Hq + h) * c.n_q) * c.d];
      const float* K = &t.k[((b * c.Hkv + kh) * c.n_k) * c.d];
      const float* V = &t.v[((b * c.Hkv + kh) * c.n_k) * c.dv];
      const float* dO = &t.dout[((b * c.Hq + h) * c.n_q) * c.dv];
      double* dQ = &g.dq[((b * c.Hq + h) * c.n_q) * c.d];
      double* dK = &g.dk[((b * c.Hkv + kh) * c.n_k) * c.d];
      double* dV = &g.dv[((b * c.Hkv + kh) * c.n_k) * c.dv];
      std::vector<char> in(static_cast<size_t>(c.n_k), kept ? 0 : 1);
      if (kept)
        for (index_t j : (*kept)[static_cast<size_t>(b * c.Hkv + kh)]) in[j] = 1;
      for (index_t i = 0; i < c.n_q; ++i) {
        const index_t end = c.o.causal ? std::min(c.n_k, std::max<index_t>(0, i + off + 1)) : c.n_k;
        std::vector<double> sc(static_cast<size_t>(end)), logw(static_cast<size_t>(end));
        double top = -INFINITY;
        const auto used = [&](index_t j) { return in[j] || (c.o.causal && j > i + off - window); };
        for (index_t j = 0; j < end; ++j) {
          double dot = 0.0;
          for (index_t x = 0; x < c.d; ++x) dot += double(Q[i * c.d + x]) * K[j * c.d + x];
          sc[j] = dot;
          logw[j] = softmax ? s * dot : (dot == 0.0 ? -INFINITY : p * std::log(std::fabs(s * dot)));
          if (softmax && !used(j)) logw[j] = -INFINITY;  // softmax over the keys in the output only
          top = std::max(top, logw[j]);
        }
        if (!(top > -INFINITY)) continue;
        double total = 0.0;
        for (index_t j = 0; j < end; ++j) total += std::exp(logw[j] - top);
        std::vector<double> A(static_cast<size_t>(end)), dP(static_cast<size_t>(end)), O(static_cast<size_t>(c.dv));
        for (index_t j = 0; j < end; ++j) {
          A[j] = std::exp(logw[j] - top) / total;
          if (!used(j)) continue;  // not in the output: dP = 0
          for (index_t x = 0; x < c.dv; ++x) {
            O[x] += A[j] * V[j * c.dv + x];
            dP[j] += double(dO[i * c.dv + x]) * V[j * c.dv + x];
          }
        }
        double D = 0.0;
        for (index_t x = 0; x < c.dv; ++x) D += double(dO[i * c.dv + x]) * O[x];
        for (index_t j = 0; j < end; ++j) {
          const double gij = softmax ? A[j] * (dP[j] - D) * s : (sc[j] == 0.0 ? 0.0 : A[j] * (dP[j] - D) * p / sc[j]);
          for (index_t x = 0; x < c.d; ++x) {
            dQ[i * c.d + x] += gij * K[j * c.d + x];
            dK[j * c.d + x] += gij * Q[i * c.d + x];
          }
          if (used(j))
            for (index_t x = 0; x < c.dv; ++x) dV[j * c.dv + x] += A[j] * dO[i * c.dv + x];
        }
      }
    }
  return g;
}

Grads run_backward(const Case& c, const Tensors& t) {
  std::vector<float> out(t.dout.size()), dq(t.q.size()), dk(t.k.size()), dv(t.v.size());
  std::vector<double> lse(static_cast<size_t>(c.B * c.Hq * c.n_q));
  const ConstHeadsF Q(t.q.data(), c.B, c.Hq, c.n_q, c.d), K(t.k.data(), c.B, c.Hkv, c.n_k, c.d),
      V(t.v.data(), c.B, c.Hkv, c.n_k, c.dv), dO(t.dout.data(), c.B, c.Hq, c.n_q, c.dv);
  attend_exact(Q, K, V, c.o, HeadsF(out.data(), c.B, c.Hq, c.n_q, c.dv), lse.data());
  attend_exact_backward(Q, K, V, ConstHeadsF(out.data(), c.B, c.Hq, c.n_q, c.dv), lse.data(), dO, c.o,
                        HeadsF(dq.data(), c.B, c.Hq, c.n_q, c.d), HeadsF(dk.data(), c.B, c.Hkv, c.n_k, c.d),
                        HeadsF(dv.data(), c.B, c.Hkv, c.n_k, c.dv));
  return {std::vector<double>(dq.begin(), dq.end()), std::vector<double>(dk.begin(), dk.end()),
          std::vector<double>(dv.begin(), dv.end())};
}

// max |a − r| / max |r|.
double relative(const std::vector<double>& a, const std::vector<double>& r) {
  double err = 0.0, scale = 0.0;
  for (size_t i = 0; i < r.size(); ++i) {
    err = std::max(err, std::fabs(a[i] - r[i]));
    scale = std::max(scale, std::fabs(r[i]));
  }
  return scale > 0.0 ? err / scale : err;
}

std::string describe(const Case& c) {
  return c.o.f.name() + (c.o.causal ? " causal" : "") + " " + c.kind + " B" + std::to_string(c.B) + " Hq" +
         std::to_string(c.Hq) + " Hkv" + std::to_string(c.Hkv) + " n_q" + std::to_string(c.n_q) + " n_k" +
         std::to_string(c.n_k) + " d" + std::to_string(c.d);
}

void expect_matches_reference(const Case& c, double tolerance = 1e-4) {
  const Tensors t = make(c);
  const Grads got = run_backward(c, t), ref = reference_grads(c, t);
  EXPECT_LE(relative(got.dq, ref.dq), tolerance) << "dQ " << describe(c);
  EXPECT_LE(relative(got.dk, ref.dk), tolerance) << "dK " << describe(c);
  EXPECT_LE(relative(got.dv, ref.dv), tolerance) << "dV " << describe(c);
}

// Softmax: a float product <q,k> of d terms carries an error up to d·2⁻²⁴·Σ|q_x k_x| (no FMA
// assumptions needed at this size), and the forward and backward both start from such products, so
// a logit c·<q,k> — hence every weight, relatively — is only determined to c·d·2⁻²⁴·max Σ|q_x k_x|.
double logit_rounding(const Case& c, const Tensors& t) {
  double worst = 0.0;
  for (index_t r = 0; r < c.B * c.Hq * c.n_q; ++r)
    for (index_t j = 0; j < c.B * c.Hkv * c.n_k; ++j) {
      double sum = 0.0;
      for (index_t x = 0; x < c.d; ++x) sum += std::fabs(double(t.q[r * c.d + x]) * t.k[j * c.d + x]);
      worst = std::max(worst, sum);
    }
  return effective_scale(c.o, c.d) * double(c.d) * std::ldexp(1.0, -24) * worst;
}

const std::vector<ScoreFunction>& functions() {
  static const std::vector<ScoreFunction> f{ScoreFunction::softmax(), ScoreFunction::power(2.0),
                                            ScoreFunction::power(3.0), ScoreFunction::power(1.5)};
  return f;
}

TEST(AttentionBackward, ReferenceGradientsMatchFiniteDifferences) {
  // The reference's formulas against central differences of Σ dO∘O computed in double.
  for (const ScoreFunction& f : functions())
    for (bool causal : {false, true}) {
      Case c;
      c.Hq = 2;
      c.n_q = 3;
      c.n_k = 4;
      c.d = 3;
      c.dv = 2;
      c.o.f = f;
      c.o.causal = causal;
      const Tensors t = make(c);
      const Grads g = reference_grads(c, t);
      const auto loss = [&](const Tensors& x) {
        double total = 0.0;
        const index_t n = static_cast<index_t>(x.dout.size()) / c.dv;
        std::vector<float> out(x.dout.size());
        std::vector<double> lse(static_cast<size_t>(n));
        // A float64 forward: the reference rows of reference.hpp, head by head.
        for (index_t h = 0; h < c.Hq; ++h) {
          Floats Q{c.n_q, c.d, std::vector<float>(x.q.begin() + h * c.n_q * c.d, x.q.begin() + (h + 1) * c.n_q * c.d)};
          Floats K{c.n_k, c.d, x.k}, V{c.n_k, c.dv, x.v};
          AttentionSpec spec;
          spec.softmax = f.kind == ScoreKind::softmax;
          spec.p = f.p;
          spec.scale = effective_scale(c.o, c.d);
          if (causal) spec.visible = [off = c.n_k - c.n_q](index_t i, index_t j) { return j <= i + off; };
          std::vector<index_t> rows;
          for (index_t i = 0; i < c.n_q; ++i) rows.push_back(i);
          const AttentionRows r = attention_rows_reference(Q, K, V, rows, spec);
          for (index_t i = 0; i < c.n_q; ++i)
            for (index_t col = 0; col < c.dv; ++col) total += r.out(i, col) * x.dout[(h * c.n_q + i) * c.dv + col];
        }
        return total;
      };
      // Differences in double of a float input: perturb by a step that float represents exactly.
      const auto check = [&](std::vector<float> Tensors::*member, const std::vector<double>& grad, const char* name) {
        for (size_t e = 0; e < grad.size(); ++e) {
          Tensors plus = t, minus = t;
          const float step = 1.0f / 1024.0f;
          (plus.*member)[e] += step;
          (minus.*member)[e] -= step;
          const double fd = (loss(plus) - loss(minus)) / (double((plus.*member)[e]) - double((minus.*member)[e]));
          EXPECT_NEAR(fd, grad[e], 2e-4 * std::max(1.0, std::fabs(grad[e])))
              << name << "[" << e << "] " << f.name() << (causal ? " causal" : "");
        }
      };
      check(&Tensors::q, g.dq, "dQ");
      check(&Tensors::k, g.dk, "dK");
      check(&Tensors::v, g.dv, "dV");
    }
}

TEST(AttentionBackward, GradientsMatchTheFloat64Reference) {
  for (const ScoreFunction& f : functions())
    for (bool causal : {false, true})
      for (const auto& [n_q, n_k] :
           std::vector<std::pair<index_t, index_t>>{{1, 1}, {7, 7}, {33, 70}, {300, 300}, {100, 530}, {300, 100}}) {
        Case c;
        c.B = 2;
        c.Hq = 4;
        c.Hkv = 2;
        c.n_q = n_q;
        c.n_k = n_k;
        c.d = 24;
        c.dv = 12;
        c.o.f = f;
        c.o.causal = causal;
        c.seed = static_cast<std::uint64_t>(n_q * 1000 + n_k);
        expect_matches_reference(c);
      }
}

TEST(AttentionBackward, ChunksOfSeveralKeyBlocksMatchTheReference) {
  // n_k > 16·512: chunks of two key blocks, so dQ partials accumulate and causal blocks are skipped
  // inside a chunk.
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
    for (bool causal : {false, true}) {
      Case c;
      c.Hq = 2;
      c.n_q = 300;
      c.n_k = 8700;
      c.d = 8;
      c.dv = 4;
      c.o.f = f;
      c.o.causal = causal;
      expect_matches_reference(c);
    }
}

TEST(AttentionBackward, ScalesOtherThanTheDefaultMatchTheReference) {
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0), ScoreFunction::power(3.0)}) {
    Case c;
    c.Hq = 2;
    c.n_q = 50;
    c.n_k = 70;
    c.d = 16;
    c.o.f = f;
    c.o.scale = 0.3;
    c.o.causal = true;
    expect_matches_reference(c);
  }
}

TEST(AttentionBackward, AdversarialInputsMatchTheReference) {
  for (const std::string kind : {"large_logits", "duplicate_keys"})
    for (bool causal : {false, true}) {
      Case c;
      c.Hq = 2;
      c.n_q = 260;
      c.n_k = 300;
      c.d = 32;
      c.dv = 16;
      c.kind = kind;
      c.o.causal = causal;
      expect_matches_reference(c);
      c.o.f = ScoreFunction::power(2.0);
      expect_matches_reference(c);
    }
  for (const std::string kind : {"huge", "tiny", "mixed_scales"})
    for (const ScoreFunction& f : {ScoreFunction::power(2.0), ScoreFunction::power(3.0)}) {
      Case c;
      c.Hq = 4;
      c.Hkv = 2;
      c.n_q = 40;
      c.n_k = 50;
      c.d = 16;
      c.kind = kind;
      c.o.f = f;
      c.o.causal = kind == "mixed_scales";
      expect_matches_reference(c);
    }
  for (bool causal : {false, true}) {
    Case c;
    c.Hq = 2;
    c.n_q = 60;
    c.n_k = 80;
    c.d = 16;
    c.kind = "shifted_logits";
    c.o.scale = 1.0;
    c.o.causal = causal;
    // Logits near −2000 are fixed by float products only to about 1e-3 (logit_rounding): the
    // gradients are held to 1e-4 or that bound, whichever is larger.
    const double bound = logit_rounding(c, make(c));
    EXPECT_GT(bound, 1e-4);
    expect_matches_reference(c, std::max(1e-4, bound));
  }
}

TEST(AttentionBackward, OneAndTwoThreadsGiveTheSameBits) {
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)})
    for (bool causal : {false, true}) {
      Case c;
      c.B = 2;
      c.Hq = 2;
      c.Hkv = 1;
      c.n_q = 700;
      c.n_k = 900;
      c.d = 32;
      c.dv = 32;
      c.o.f = f;
      c.o.causal = causal;
      const Tensors t = make(c);
      const int before = omp_get_max_threads();
      omp_set_num_threads(1);
      const Grads one = run_backward(c, t);
      omp_set_num_threads(2);
      const Grads two = run_backward(c, t);
      omp_set_num_threads(before);
      EXPECT_EQ(one.dq, two.dq) << f.name();
      EXPECT_EQ(one.dk, two.dk) << f.name();
      EXPECT_EQ(one.dv, two.dv) << f.name();
    }
}

struct LevCase {
  Case c;
  LevSelectOptions select;
};

// attend_lev's output and report, then attend_lev_backward's gradients with them.
struct LevRun {
  std::vector<float> out;
  LevAttentionReport report;
  Grads grads;
};

LevRun run_lev_forward(const LevCase& l, const Tensors& t) {
  const Case& c = l.c;
  LevRun run;
  run.out.resize(t.dout.size());
  run.report = attend_lev(
      ConstHeadsF(t.q.data(), c.B, c.Hq, c.n_q, c.d), ConstHeadsF(t.k.data(), c.B, c.Hkv, c.n_k, c.d),
      ConstHeadsF(t.v.data(), c.B, c.Hkv, c.n_k, c.dv), c.o, l.select, HeadsF(run.out.data(), c.B, c.Hq, c.n_q, c.dv));
  return run;
}

Grads run_lev_backward(const LevCase& l, const Tensors& t, const LevRun& forward) {
  const Case& c = l.c;
  std::vector<float> dq(t.q.size()), dk(t.k.size()), dv(t.v.size());
  attend_lev_backward(
      ConstHeadsF(t.q.data(), c.B, c.Hq, c.n_q, c.d), ConstHeadsF(t.k.data(), c.B, c.Hkv, c.n_k, c.d),
      ConstHeadsF(t.v.data(), c.B, c.Hkv, c.n_k, c.dv), ConstHeadsF(forward.out.data(), c.B, c.Hq, c.n_q, c.dv),
      ConstHeadsF(t.dout.data(), c.B, c.Hq, c.n_q, c.dv), c.o, forward.report, HeadsF(dq.data(), c.B, c.Hq, c.n_q, c.d),
      HeadsF(dk.data(), c.B, c.Hkv, c.n_k, c.d), HeadsF(dv.data(), c.B, c.Hkv, c.n_k, c.dv));
  return {{dq.begin(), dq.end()}, {dk.begin(), dk.end()}, {dv.begin(), dv.end()}};
}

std::vector<LevCase> lev_cases() {
  std::vector<LevCase> cases;
  for (const ScoreFunction& f : {ScoreFunction::softmax(), ScoreFunction::power(2.0)}) {
    // Not causal: budgets, sinks and a threshold; keys shared by two query heads.
    for (const auto& [top_k, sinks, eps] :
         std::vector<std::tuple<index_t, index_t, double>>{{40, 0, 0.0}, {25, 3, 0.0}, {0, 0, 0.05}}) {
      LevCase l;
      l.select.top_k = top_k;
      l.select.sinks = sinks;
      l.select.eps = eps;
      l.c.B = 2;
      l.c.Hq = 4;
      l.c.Hkv = 2;
      l.c.n_q = 90;
      l.c.n_k = 300;
      l.c.d = 16;
      l.c.dv = 8;
      l.c.o.f = f;
      cases.push_back(l);
    }
    // Causal, with and without a window: n_q < n_k, n_q = n_k across several query and key blocks
    // (the window's band crosses block edges), n_q > n_k (early queries see nothing), and n_k past
    // 16 key blocks (chunks of two, so a band's partial dQ starts at a chunk's later block).
    for (const auto& [n_q, n_k, top_k, window] : std::vector<std::tuple<index_t, index_t, index_t, index_t>>{
             {90, 300, 40, 0},
             {90, 300, 40, 7},
             {600, 1100, 60, 300},
             {300, 120, 10, 5},
             {300, 9000, 40, 700}}) {  // chunks of two key blocks: a query block first seen at the second
      LevCase l;
      l.select.top_k = top_k;
      l.select.sinks = 2;
      l.select.window = window;
      l.c.Hq = 2;
      l.c.n_q = n_q;
      l.c.n_k = n_k;
      l.c.d = 16;
      l.c.dv = 8;
      l.c.o.f = f;
      l.c.o.causal = true;
      l.c.seed = static_cast<std::uint64_t>(n_q + window);
      cases.push_back(l);
    }
  }
  return cases;
}

std::string describe(const LevCase& l) {
  return describe(l.c) + " top_k " + std::to_string(l.select.top_k) + " sinks " + std::to_string(l.select.sinks) +
         " eps " + std::to_string(l.select.eps) + " window " + std::to_string(l.select.window);
}

TEST(LevAttentionBackward, GradientsThroughTheKeptKeysMatchTheReference) {
  for (const LevCase& l : lev_cases()) {
    const Tensors t = make(l.c);
    const LevRun forward = run_lev_forward(l, t);
    const Grads got = run_lev_backward(l, t, forward);
    const LevAttentionReport& report = forward.report;
    const Grads ref = reference_grads(l.c, t, &report.kept_keys, l.select.window);
    EXPECT_LE(relative(got.dq, ref.dq), 1e-4) << "dQ " << describe(l);
    EXPECT_LE(relative(got.dk, ref.dk), 1e-4) << "dK " << describe(l);
    EXPECT_LE(relative(got.dv, ref.dv), 1e-4) << "dV " << describe(l);
    EXPECT_LT(report.kept_keys[0].size(), static_cast<size_t>(l.c.n_k)) << "the check must see keys left out";
  }
}

TEST(LevAttentionBackward, OneAndTwoThreadsGiveTheSameBits) {
  for (const LevCase& l : lev_cases()) {
    const Tensors t = make(l.c);
    const LevRun forward = run_lev_forward(l, t);
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    const Grads one = run_lev_backward(l, t, forward);
    omp_set_num_threads(2);
    const Grads two = run_lev_backward(l, t, forward);
    omp_set_num_threads(before);
    EXPECT_EQ(one.dq, two.dq) << describe(l);
    EXPECT_EQ(one.dk, two.dk) << describe(l);
    EXPECT_EQ(one.dv, two.dv) << describe(l);
  }
}

TEST(LevAttentionBackward, PowerPAWindowWithoutCausalAndBadShapesOrReportsAreRefused) {
  Case c;
  const Tensors t = make(c);
  std::vector<float> out(t.dout.size()), dq(t.q.size()), dk(t.k.size()), dv(t.v.size());
  const ConstHeadsF Q(t.q.data(), 1, 1, c.n_q, c.d), K(t.k.data(), 1, 1, c.n_k, c.d), V(t.v.data(), 1, 1, c.n_k, c.dv),
      dO(t.dout.data(), 1, 1, c.n_q, c.dv), O(out.data(), 1, 1, c.n_q, c.dv);
  LevAttentionReport report;
  report.kept_keys = {{0, 2, 5}};
  const auto call = [&](const AttentionOptions& o, const LevAttentionReport& r) {
    attend_lev_backward(Q, K, V, O, dO, o, r, HeadsF(dq.data(), 1, 1, c.n_q, c.d), HeadsF(dk.data(), 1, 1, c.n_k, c.d),
                        HeadsF(dv.data(), 1, 1, c.n_k, c.dv));
  };
  AttentionOptions o;
  EXPECT_NO_THROW(call(o, report));
  LevAttentionReport windowed = report;
  windowed.window = 2;
  EXPECT_THROW(call(o, windowed), Error);
  o.causal = true;
  EXPECT_NO_THROW(call(o, windowed));
  windowed.window = -1;
  EXPECT_THROW(call(o, windowed), Error);
  o = AttentionOptions{};
  o.f = ScoreFunction::power(3.0);
  EXPECT_THROW(call(o, report), Error);
  std::vector<float> narrow(static_cast<size_t>(c.n_q * (c.d - 1)));  // queries one column short
  EXPECT_THROW(attend_lev_backward(ConstHeadsF(narrow.data(), 1, 1, c.n_q, c.d - 1), K, V, O, dO, o, report,
                                   HeadsF(dq.data(), 1, 1, c.n_q, c.d - 1), HeadsF(dk.data(), 1, 1, c.n_k, c.d),
                                   HeadsF(dv.data(), 1, 1, c.n_k, c.dv)),
               Error);
  EXPECT_THROW(attend_lev_backward(Q, K, V, ConstHeadsF(out.data(), 1, 1, c.n_q - 1, c.dv), dO, o, report,
                                   HeadsF(dq.data(), 1, 1, c.n_q, c.d), HeadsF(dk.data(), 1, 1, c.n_k, c.d),
                                   HeadsF(dv.data(), 1, 1, c.n_k, c.dv)),
               Error);
  LevAttentionReport bad = report;
  bad.kept_keys = {{5, 2}};
  EXPECT_THROW(call(AttentionOptions{}, bad), Error);
  bad.kept_keys = {{0, 8}};
  EXPECT_THROW(call(AttentionOptions{}, bad), Error);
}

TEST(AttentionBackward, BadInputIsRefused) {
  Case c;
  Tensors t = make(c);
  std::vector<float> out(t.dout.size()), dq(t.q.size()), dk(t.k.size()), dv(t.v.size());
  std::vector<double> lse(static_cast<size_t>(c.n_q), 0.0);
  const auto call = [&](const std::vector<double>& l, const Tensors& x, index_t d_grad) {
    attend_exact_backward(ConstHeadsF(x.q.data(), 1, 1, c.n_q, c.d), ConstHeadsF(x.k.data(), 1, 1, c.n_k, c.d),
                          ConstHeadsF(x.v.data(), 1, 1, c.n_k, c.dv), ConstHeadsF(out.data(), 1, 1, c.n_q, c.dv),
                          l.data(), ConstHeadsF(x.dout.data(), 1, 1, c.n_q, c.dv), c.o,
                          HeadsF(dq.data(), 1, 1, c.n_q, d_grad), HeadsF(dk.data(), 1, 1, c.n_k, c.d),
                          HeadsF(dv.data(), 1, 1, c.n_k, c.dv));
  };
  EXPECT_NO_THROW(call(lse, t, c.d));
  EXPECT_THROW(call(lse, t, c.d - 1), Error);  // grad_queries of the wrong width
  std::vector<double> bad = lse;
  bad[3] = NAN;
  EXPECT_THROW(call(bad, t, c.d), Error);
  Tensors nan = t;
  nan.dout[5] = NAN;
  try {
    call(lse, nan, c.d);
    ADD_FAILURE() << "NaN in grad_out accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::bad_input);
    EXPECT_NE(std::string(e.what()).find("grad_out: batch 0, head 0, row 0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace levattn::test
