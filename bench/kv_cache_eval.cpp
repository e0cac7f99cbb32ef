// A long synthetic decode through every KV-cache policy at equal budgets: recall of the true
// heavy entries (A ≥ 0.01 over all keys so far) and the relative output error against exact
// attention, under softmax and under x². Prints the markdown tables of BENCHMARKS.md.
//
// The stream (seed 1): d = 64; 32 topic directions; each key is noise, and with probability 1/256
// a "relevant" key 10·u_topic + small noise instead; each query is noise, and with probability
// 1/2 aimed at a topic already seen (8·u_topic + noise). Two variants of the keys:
//  * long relevant keys: noise N(0, 0.25²·I), so relevant keys are about 5× longer than the rest;
//  * equal norms: every noise key rescaled to the relevant keys' mean length, so a key's length
//    says nothing about whether it is relevant.
// Usage: levattn_kv_eval [steps (default 32768)] [evaluate every k-th step (default 256)]
#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "levattn/attention/kv_cache.hpp"

using namespace levattn;

namespace {

constexpr index_t kD = 64, kTopics = 32;

struct Stream {
  std::vector<float> keys, values, queries;
};

// equal_norms: every noise key rescaled to the length the relevant keys have on average (√(100 +
// 0.0625·d)), so norms no longer tell relevant keys from noise.
Stream make_stream(index_t steps, bool equal_norms) {
  std::mt19937_64 rng(1);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform;
  std::vector<float> topics(kTopics * kD);
  for (index_t r = 0; r < kTopics; ++r) {
    float norm = 0.0f;
    for (index_t c = 0; c < kD; ++c) norm += std::pow(topics[r * kD + c] = normal(rng), 2.0f);
    for (index_t c = 0; c < kD; ++c) topics[r * kD + c] /= std::sqrt(norm);
  }
  Stream s{std::vector<float>(steps * kD), std::vector<float>(steps * kD), std::vector<float>(steps * kD)};
  std::vector<index_t> seen;
  for (index_t t = 0; t < steps; ++t) {
    const bool relevant = uniform(rng) < 1.0f / 256;
    const index_t topic = static_cast<index_t>(uniform(rng) * kTopics) % kTopics;
    if (relevant) seen.push_back(topic);
    const bool aimed = !seen.empty() && uniform(rng) < 0.5f;
    const index_t target = seen.empty() ? 0 : seen[static_cast<size_t>(uniform(rng) * seen.size()) % seen.size()];
    for (index_t c = 0; c < kD; ++c) {
      s.keys[t * kD + c] = 0.25f * normal(rng) + (relevant ? 10.0f * topics[topic * kD + c] : 0.0f);
      s.values[t * kD + c] = normal(rng);
      s.queries[t * kD + c] = normal(rng) + (aimed ? 8.0f * topics[target * kD + c] : 0.0f);
    }
    if (equal_norms && !relevant) {
      float* k = s.keys.data() + t * kD;
      double square = 0.0;
      for (index_t c = 0; c < kD; ++c) square += double(k[c]) * k[c];
      const double factor = std::sqrt((100.0 + 0.0625 * kD) / square);
      for (index_t c = 0; c < kD; ++c) k[c] = static_cast<float>(k[c] * factor);
    }
  }
  return s;
}

struct Score {
  double heavy = 0, found = 0, error = 0, evaluations = 0, size = 0;
};

// Exact attention of query t over keys [0, t] in double: the heavy keys and the output.
void truth(const Stream& s, index_t t, bool softmax, std::vector<index_t>& heavy, std::vector<double>& out) {
  std::vector<double> w(t + 1);
  double top = -1e300;
  for (index_t j = 0; j <= t; ++j) {
    double dot = 0;
    for (index_t c = 0; c < kD; ++c) dot += double(s.queries[t * kD + c]) * s.keys[j * kD + c];
    w[j] = softmax ? dot / std::sqrt(double(kD)) : dot * dot;
    top = std::max(top, w[j]);
  }
  double sum = 0;
  for (index_t j = 0; j <= t; ++j) sum += (w[j] = softmax ? std::exp(w[j] - top) : w[j]);
  heavy.clear();
  out.assign(kD, 0.0);
  for (index_t j = 0; j <= t; ++j) {
    w[j] /= sum;
    if (w[j] >= 0.01) heavy.push_back(j);
    for (index_t c = 0; c < kD; ++c) out[c] += w[j] * s.values[j * kD + c];
  }
}

// One table: every policy at budgets 64, 256 and 1,024 (and leverage's threshold mode).
void print_table(const Stream& s, index_t steps, index_t every) {
  struct Rule {
    std::string name;
    CachePolicy policy;
    double eps;
  };
  const std::vector<Rule> rules = {{"leverage (top scores)", CachePolicy::leverage, 0.0},
                                   {"key norm (longest keys)", CachePolicy::key_norm, 0.0},
                                   {"sliding window + 4 sinks", CachePolicy::window, 0.0},
                                   {"accumulated attention (H2O)", CachePolicy::accumulated, 0.0},
                                   {"leverage, threshold ε = 0.01", CachePolicy::leverage, 0.01}};
  std::printf(
      "| policy | budget | mean keys kept | softmax: recall of A ≥ 0.01 | softmax: output error | "
      "x²: recall of A ≥ 0.01 | x²: output error |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  std::vector<index_t> heavy;
  std::vector<double> exact;
  double counted[2] = {0, 0};  // heavy entries over the evaluated steps (the same for every policy)
  for (const Rule& rule : rules)
    for (index_t budget : {64, 256, 1024}) {
      if (rule.eps > 0 && budget != 64) continue;  // threshold mode has no budget
      Score score[2];
      for (int f = 0; f < 2; ++f) {
        KVCacheOptions o;
        o.policy = rule.policy;
        o.budget = budget;
        o.eps = rule.eps;
        o.attention.f = f == 0 ? ScoreFunction::softmax() : ScoreFunction::power(2.0);
        KVCache cache(kD, kD, o);
        std::vector<float> out(kD);
        for (index_t t = 0; t < steps; ++t) {
          cache.append(s.keys.data() + t * kD, s.values.data() + t * kD);
          cache.attend(s.queries.data() + t * kD, out.data());
          if (t < 1024 || t % every != 0) continue;
          truth(s, t, f == 0, heavy, exact);
          const std::vector<index_t> pos = cache.positions();
          const std::set<index_t> kept(pos.begin(), pos.end());
          Score& sc = score[f];
          for (index_t j : heavy) sc.found += kept.count(j);
          sc.heavy += double(heavy.size());
          double num = 0, den = 0;
          for (index_t c = 0; c < kD; ++c) {
            num += std::pow(out[c] - exact[c], 2);
            den += exact[c] * exact[c];
          }
          sc.error += std::sqrt(num / den);
          sc.size += double(cache.size());
          sc.evaluations += 1;
        }
      }
      counted[0] = score[0].heavy;
      counted[1] = score[1].heavy;
      std::printf("| %s | %s | %.0f | %.3f | %.3f | %.3f | %.3f |\n", rule.name.c_str(),
                  rule.eps > 0 ? "–" : std::to_string(budget).c_str(), score[1].size / score[1].evaluations,
                  score[0].heavy > 0 ? score[0].found / score[0].heavy : 1.0, score[0].error / score[0].evaluations,
                  score[1].heavy > 0 ? score[1].found / score[1].heavy : 1.0, score[1].error / score[1].evaluations);
      std::fflush(stdout);
    }
  std::printf("\nHeavy entries (A ≥ 0.01) over the evaluated steps: %.0f under softmax, %.0f under x².\n", counted[0],
              counted[1]);
}

}  // namespace

int main(int argc, char** argv) {
  const index_t steps = argc > 1 ? std::atol(argv[1]) : 32768;
  const index_t every = argc > 2 ? std::atol(argv[2]) : 256;
  std::printf(
      "Decode of %lld steps, d = %lld, evaluated every %lld steps from step 1024 on; output error is "
      "‖o − ô‖/‖o‖ averaged over the evaluated steps.\n",
      (long long)steps, (long long)kD, (long long)every);
  for (bool equal_norms : {false, true}) {
    const Stream s = make_stream(steps, equal_norms);
    std::printf(equal_norms ? "\nNoise keys rescaled to the relevant keys' mean length (equal norms):\n\n"
                            : "\nRelevant keys about 5× longer than the noise keys:\n\n");
    print_table(s, steps, every);
  }
  return 0;
}
