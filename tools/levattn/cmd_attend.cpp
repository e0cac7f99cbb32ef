// levattn attend --queries Q --keys K --values V [--method exact|lev] [--top-k K | --eps E]
//                [--sinks S] [--window W] [--causal] [--f softmax|pow:P] [--scale X]
//                [--delta D] [--seed S] [--compute f32|bf16] --output O.npy [--lse L.npy]
//                [--missing-mass M.npy] [--json]
// Shapes (n, d), (h, n, d) or (b, h, n, d), the same rank for all three; query heads may be a
// multiple of key heads (grouped-query attention). O has the queries' shape with d_v last.
// Exact attention and LevAttention (softmax and pow:P) read float16/bfloat16 inputs as they are
// (memory-mapped, no float32 copy); --compute chooses the arithmetic of softmax prefill (exact
// float products by default).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/attention/exact.hpp"
#include "levattn/attention/lev_attention.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/tensor.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {

struct AttendOptions {
  std::string queries, keys, values, output, lse_output, missing_output;
  std::string method = "exact";
  std::string f = "softmax";
  std::optional<double> eps;
  std::optional<index_t> top_k;
  index_t sinks = 0, window = 0;
  bool causal = false;
  double scale = 0.0, ridge = 0.0, rcond = kDefaultRcond, delta = 0.1;
  std::uint64_t seed = 1;
  std::string compute = "f32";  // or "bf16"
  CommonOptions common;
};

// Exact attention over the inputs in the element types they were loaded in.
void attend_loaded(const AttentionInputs& in, const AttentionOptions& options, HeadsF out, double* lse) {
  const ElementType q = in.q.tensor.element_type();
  switch (in.k.tensor.element_type()) {
    case ElementType::f32:
      return attend_exact(in.q.view(), in.k.view(), in.v.view(), options, out, lse);
    case ElementType::f16:
      if (q == ElementType::f32)
        return attend_exact(in.q.view(), in.k.view<Half>(), in.v.view<Half>(), options, out, lse);
      return attend_exact(in.q.view<Half>(), in.k.view<Half>(), in.v.view<Half>(), options, out, lse);
    case ElementType::bf16:
      if (q == ElementType::f32)
        return attend_exact(in.q.view(), in.k.view<BFloat16>(), in.v.view<BFloat16>(), options, out, lse);
      return attend_exact(in.q.view<BFloat16>(), in.k.view<BFloat16>(), in.v.view<BFloat16>(), options, out, lse);
  }
}

// LevAttention over the inputs in the element types they were loaded in.
LevAttentionReport lev_loaded(const AttentionInputs& in, const AttentionOptions& options,
                              const LevSelectOptions& select, HeadsF out) {
  const ElementType q = in.q.tensor.element_type();
  switch (in.k.tensor.element_type()) {
    case ElementType::f32:
      break;
    case ElementType::f16:
      if (q == ElementType::f32)
        return attend_lev(in.q.view(), in.k.view<Half>(), in.v.view<Half>(), options, select, out);
      return attend_lev(in.q.view<Half>(), in.k.view<Half>(), in.v.view<Half>(), options, select, out);
    case ElementType::bf16:
      if (q == ElementType::f32)
        return attend_lev(in.q.view(), in.k.view<BFloat16>(), in.v.view<BFloat16>(), options, select, out);
      return attend_lev(in.q.view<BFloat16>(), in.k.view<BFloat16>(), in.v.view<BFloat16>(), options, select, out);
  }
  return attend_lev(in.q.view(), in.k.view(), in.v.view(), options, select, out);
}

void check_usage(const AttendOptions& o) {
  if (!ends_with(o.output, ".npy")) throw UsageError("--output must end in .npy");
  if (!o.lse_output.empty() && !ends_with(o.lse_output, ".npy")) throw UsageError("--lse must end in .npy");
  if (!o.missing_output.empty() && !ends_with(o.missing_output, ".npy"))
    throw UsageError("--missing-mass must end in .npy");
  if (!(o.delta > 0.0 && o.delta < 1.0)) throw UsageError("--delta must lie in (0, 1)");
  if (o.method == "exact") {
    if (o.eps || o.top_k || o.sinks > 0 || o.window > 0 || !o.missing_output.empty())
      throw UsageError("--top-k, --eps, --sinks, --window and --missing-mass apply to --method lev");
    return;
  }
  if (static_cast<int>(o.eps.has_value()) + static_cast<int>(o.top_k.has_value()) != 1)
    throw UsageError("--method lev needs exactly one of --top-k and --eps");
  if (!o.lse_output.empty()) throw UsageError("--lse applies to --method exact");
  if (o.window > 0 && !o.causal) throw UsageError("--window needs --causal");
}

int run_attend(const AttendOptions& o) {
  check_usage(o);
  Phases phases;
  phases.threads = start_threads(o.common);
  AttentionOptions attention;
  attention.f = parse_score_function(o.f);
  attention.scale = o.scale;
  attention.causal = o.causal;
  attention.arithmetic = o.compute == "bf16" ? Arithmetic::bf16 : Arithmetic::f32;
  require(o.scale >= 0.0, "--scale must be > 0");
  if (!o.missing_output.empty() && attention.f.kind != ScoreKind::power)
    throw UsageError("--missing-mass needs --f pow:P (softmax has no cheap full normaliser)");

  Stopwatch load;
  const AttentionInputs inputs = load_attention_inputs(o.queries, o.keys, o.values, io::Precision::keep_16_bit);
  const Heads4 &q = inputs.q, &k = inputs.k, &v = inputs.v;
  phases.load = load.seconds();

  std::vector<index_t> out_shape = q.tensor.shape();
  out_shape.back() = v.cols;
  std::vector<float> out(static_cast<size_t>(q.batch * q.heads * q.rows * v.cols));
  const HeadsF out_view(out.data(), q.batch, q.heads, q.rows, v.cols);
  std::vector<double> lse;
  LevAttentionReport lev;
  Stopwatch compute;
  if (o.method == "exact") {
    lse.resize(static_cast<size_t>(q.batch * q.heads * q.rows));
    attend_loaded(inputs, attention, out_view, lse.data());
  } else {
    LevSelectOptions select;
    select.top_k = o.top_k.value_or(0);
    select.eps = o.eps.value_or(0.0);
    select.sinks = o.sinks;
    select.window = o.window;
    select.leverage = {o.ridge, o.rcond};
    select.power.delta = o.delta;
    select.power.seed = o.seed;
    lev = lev_loaded(inputs, attention, select, out_view);
  }
  phases.compute = compute.seconds();

  Stopwatch write;
  io::write_npy(o.output, out.data(), out_shape);
  std::vector<index_t> row_shape(q.tensor.shape().begin(), q.tensor.shape().end() - 1);
  if (!o.lse_output.empty()) io::write_npy(o.lse_output, lse.data(), row_shape);
  if (!o.missing_output.empty()) io::write_npy(o.missing_output, lev.missing_mass.data(), row_shape);
  phases.write = write.seconds();

  nlohmann::json j = attention_shapes_json(inputs);
  j.update({{"command", "attend"},
            {"method", o.method},
            {"f", attention.f.name()},
            {"scale", effective_scale(attention, q.cols)},
            {"causal", o.causal},
            {"arithmetic", attention_kernel(q.rows, attention).bf16_products ? "bf16" : "f32"},
            {"kernel", attention_kernel(q.rows, attention).name},
            {"output", o.output},
            {"seconds", phases.json()},
            {"peak_rss_bytes", peak_resident_bytes()}});
  if (o.method == "lev") {
    j["kept_per_head"] = lev.kept;
    j["select_seconds"] = lev.select_seconds;
    j["attend_seconds"] = lev.attend_seconds;
    if (o.top_k)
      j["top_k"] = *o.top_k;
    else
      j["eps"] = *o.eps;
    j["sinks"] = o.sinks;
    j["window"] = o.window;
    if (!lev.missing_mass.empty()) {
      const auto& m = lev.missing_mass;
      double sum = 0.0;
      for (double x : m) sum += x;
      j["missing_mass"] = {{"max", *std::max_element(m.begin(), m.end())},
                           {"mean", sum / static_cast<double>(m.size())}};
      j["normaliser_estimated"] = lev.normaliser_estimated;
      if (lev.normaliser_estimated) {
        j["delta"] = lev.normaliser_delta;
        j["failure_per_row"] = lev.normaliser_failure;
      }
    }
  }
  if (o.common.json) {
    print_json(j);
  } else {
    std::fprintf(stderr, "levattn: wrote %s: %s attention (%s), %lld × %lld queries × %lld keys in %.3f s\n",
                 o.output.c_str(), o.method.c_str(), attention.f.name().c_str(),
                 static_cast<long long>(q.batch) * q.heads, static_cast<long long>(q.rows),
                 static_cast<long long>(k.rows), phases.compute);
    if (j.contains("missing_mass"))
      std::fprintf(stderr, "levattn: missing mass per row%s: max %.3g, mean %.3g\n",
                   lev.normaliser_estimated ? " (estimated: normaliser sampled)" : "",
                   j["missing_mass"]["max"].get<double>(), j["missing_mass"]["mean"].get<double>());
  }
  return 0;
}

}  // namespace

Command add_attend_command(CLI::App& app) {
  auto o = std::make_shared<AttendOptions>();
  CLI::App* c =
      app.add_subcommand("attend", "Attention output O = A·V: exact (tiled, online normaliser) or LevAttention");
  add_qkv_options(*c, o->queries, o->keys, o->values);
  c->add_option("--method", o->method, "exact, or lev (attention over the keys of top leverage score)")
      ->check(CLI::IsMember({"exact", "lev"}))
      ->capture_default_str();
  auto* k =
      c->add_option("--top-k", o->top_k,
                    "lev: keep the k keys of largest leverage score (pow:P, P ≠ 2: ℓP Lewis sensitivity) per head");
  auto* eps = c->add_option("--eps", o->eps, "lev: keep the keys with leverage score (or ℓP sensitivity) ≥ ε");
  k->excludes(eps);
  eps->excludes(k);
  c->add_option("--sinks", o->sinks, "lev: always keep the first S keys")->check(CLI::NonNegativeNumber);
  c->add_option("--window", o->window, "lev with --causal: each query also sees its W latest keys")
      ->check(CLI::NonNegativeNumber);
  c->add_flag("--causal", o->causal, "Causal mask (query i sees keys j ≤ i + n_k − n_q)");
  c->add_option("--f", o->f, "softmax or pow:P (|x|^P)")->capture_default_str();
  c->add_option("--scale", o->scale, "Scale c of the scores (default 1/√d for softmax, 1 for pow:P)");
  c->add_option("--ridge", o->ridge, "lev: ridge λ of the leverage scores")->check(CLI::NonNegativeNumber);
  c->add_option("--rcond", o->rcond, "lev: relative singular-value cut-off")->capture_default_str();
  c->add_option("--output", o->output, "Output O.npy (float32)")->required();
  c->add_option("--lse", o->lse_output, "exact: also write each row's log normaliser (float64 .npy)");
  c->add_option("--missing-mass", o->missing_output,
                "lev with pow:P: also write each row's missing mass 1 − Σ_kept A (float64 .npy; estimated "
                "when the normaliser is sampled)");
  c->add_option("--delta", o->delta, "lev with pow:P, P ≠ 2: relative accuracy of a sampled normaliser")
      ->capture_default_str();
  c->add_option("--seed", o->seed, "lev with pow:P, P ≠ 2: seed of the normaliser's key sample")->capture_default_str();
  c->add_option("--compute", o->compute,
                "Arithmetic of softmax prefill: f32 (exact products of the inputs), or bf16 (inputs and weights "
                "rounded to bf16, products summed in float; vdpbf16ps where the CPU has AVX512_BF16)")
      ->check(CLI::IsMember({"f32", "bf16"}))
      ->capture_default_str();
  add_common_options(*c, o->common);
  return {c, [o] { return run_attend(*o); }};
}

}  // namespace levattn::cli
