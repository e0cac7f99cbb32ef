// levattn eval --queries Q --keys K --values V --budgets 16,32,64,256 [--thresholds E,...]
//              [--rules R,...] [--f softmax,pow:2] [--capture-eps 0.01,0.05,0.1] [--scale X]
//              [--ridge-fraction F] [--sinks S] [--seed S] [--relevant J,...]
//              [--output OUT.csv] [--plots DIR] [--json]
// Every selection rule at equal budgets against exact attention (eval/evaluate.hpp): capture of
// heavy entries, relative output error, time. Shapes as `attend`.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>

#include "commands.hpp"
#include "heads.hpp"
#include "levattn/eval/evaluate.hpp"
#include "levattn/io/atomic_file.hpp"
#include "report.hpp"

namespace levattn::cli {

namespace {

struct EvalCliOptions {
  std::string queries, keys, values, output, plots;
  std::vector<std::string> f = {"softmax", "pow:2"};
  EvalOptions eval;
  CommonOptions common;
};

std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

void write_csv(const std::string& path, const EvalReport& r, const std::vector<double>& eps) {
  io::AtomicFile file(path);
  std::FILE* out = file.stream();
  std::fprintf(out, "rule,f,budget,threshold,kept_mean");
  for (double e : eps) std::fprintf(out, ",capture_%s", number(e).c_str());
  for (double e : eps) std::fprintf(out, ",heavy_%s", number(e).c_str());
  std::fprintf(out, ",rel_error,select_seconds,attend_seconds,relevant_recall,failure\n");
  for (const EvalRow& row : r.rows) {
    std::fprintf(out, "%s,%s,", row.rule.c_str(), row.f.name().c_str());
    if (row.budget > 0)
      std::fprintf(out, "%" PRId64 ",", row.budget);
    else
      std::fprintf(out, ",");
    if (row.threshold > 0)
      std::fprintf(out, "%g,", row.threshold);
    else
      std::fprintf(out, ",");
    if (!row.failure.empty()) {  // no figures: empty fields, then the message, quoted
      for (size_t t = 0; t < 2 * eps.size() + 4; ++t) std::fprintf(out, ",");  // kept … relevant_recall
      std::string quoted = row.failure;
      for (size_t at = quoted.find('"'); at != std::string::npos; at = quoted.find('"', at + 2))
        quoted.insert(at, "\"");
      std::fprintf(out, ",\"%s\"\n", quoted.c_str());
      continue;
    }
    std::fprintf(out, "%.6g", row.kept_mean);
    for (double c : row.capture) std::isnan(c) ? std::fprintf(out, ",") : std::fprintf(out, ",%.9g", c);
    for (index_t h : row.heavy) std::fprintf(out, ",%" PRId64, h);
    std::fprintf(out, ",%.9g,%.6g,%.6g,", row.error, row.select_seconds, row.attend_seconds);
    if (row.relevant_recall >= 0) std::fprintf(out, "%.9g", row.relevant_recall);
    std::fprintf(out, ",\n");
  }
  file.commit();
}

// The plotting script: $LEVATTN_PLOT_SCRIPT, else the installed copy (LEVATTN_INSTALLED_PLOT_SCRIPT is
// its path from the installed levattn's folder), else the source tree's tools/plot_eval.py.
std::string plot_script() {
  if (const char* script = std::getenv("LEVATTN_PLOT_SCRIPT")) return script;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path installed = exe.parent_path() / LEVATTN_INSTALLED_PLOT_SCRIPT;
    if (std::filesystem::is_regular_file(installed, ec)) return installed.string();
  }
  return LEVATTN_PLOT_SCRIPT;
}

// Runs the plotting script (python3-matplotlib) on the CSV: capture and error vs budget.
void plot(const std::string& csv, const std::string& dir) {
  const char* python = std::getenv("LEVATTN_PYTHON");
  const std::string s = plot_script();
  const std::string py = python ? python : "/usr/bin/python3";
  std::vector<std::string> args = {py, s, csv, dir};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawn(&pid, py.c_str(), nullptr, nullptr, argv.data(), environ) != 0)
    throw Error(ErrorKind::failure, "plots: cannot run " + py);
  int status = 0;
  if (waitpid(pid, &status, 0) < 0) throw Error(ErrorKind::failure, "plots: lost track of " + s);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error(ErrorKind::failure, "plots: " + s + " failed (" +
                                        (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                           : "killed by signal " + std::to_string(WTERMSIG(status))) +
                                        ", its message above); the CSV " + csv + " is complete");
}

nlohmann::json row_json(const EvalRow& row, const std::vector<double>& eps) {
  nlohmann::json capture = nlohmann::json::object(), heavy = nlohmann::json::object();
  for (size_t t = 0; t < eps.size(); ++t) {
    capture[number(eps[t])] = std::isnan(row.capture[t]) ? nlohmann::json() : nlohmann::json(row.capture[t]);
    heavy[number(eps[t])] = row.heavy[t];
  }
  nlohmann::json j = {{"rule", row.rule},
                      {"f", row.f.name()},
                      {"kept_mean", row.kept_mean},
                      {"capture", capture},
                      {"heavy", heavy},
                      {"rel_error", row.error},
                      {"select_seconds", row.select_seconds},
                      {"attend_seconds", row.attend_seconds}};
  if (row.budget > 0)
    j["budget"] = row.budget;
  else
    j["threshold"] = row.threshold;
  if (row.relevant_recall >= 0) j["relevant_recall"] = row.relevant_recall;
  if (!row.failure.empty()) {  // no figures
    for (const char* key : {"kept_mean", "rel_error", "select_seconds", "attend_seconds"}) j[key] = nullptr;
    j["failure"] = row.failure;
  }
  return j;
}

void print_table(const EvalReport& r, const std::vector<double>& eps) {
  std::printf("%-13s %-8s %8s %9s", "rule", "f", "budget", "kept");
  for (double e : eps) std::printf("  cap@%-6s", number(e).c_str());
  std::printf(" %10s %10s\n", "rel_error", "seconds");
  for (const EvalRow& row : r.rows) {
    const std::string budget = row.budget > 0 ? std::to_string(row.budget) : "ε=" + number(row.threshold);
    if (!row.failure.empty()) {
      std::printf("%-13s %-8s %8s  not computed: %s\n", row.rule.c_str(), row.f.name().c_str(), budget.c_str(),
                  row.failure.c_str());
      continue;
    }
    std::printf("%-13s %-8s %8s %9.1f", row.rule.c_str(), row.f.name().c_str(), budget.c_str(), row.kept_mean);
    for (double c : row.capture) std::isnan(c) ? std::printf("  %10s", "-") : std::printf("  %10.4f", c);
    std::printf(" %10.3g %10.3g\n", row.error, row.select_seconds + row.attend_seconds);
  }
}

int run_eval(EvalCliOptions& o) {
  if (!o.output.empty() && !ends_with(o.output, ".csv")) throw UsageError("--output must end in .csv");
  if (!o.plots.empty() && o.output.empty())
    throw UsageError("--plots needs --output (the plots are drawn from the CSV)");
  Phases phases;
  phases.threads = start_threads(o.common);
  o.eval.functions.clear();
  for (const std::string& f : o.f) o.eval.functions.push_back(parse_score_function(f));
  require(o.eval.scale >= 0.0, "--scale must be > 0");

  Stopwatch load;
  const AttentionInputs inputs = load_attention_inputs(o.queries, o.keys, o.values);
  phases.load = load.seconds();

  Stopwatch compute;
  const EvalReport report = evaluate(inputs.q.view(), inputs.k.view(), inputs.v.view(), o.eval);
  phases.compute = compute.seconds();

  Stopwatch write;
  if (!o.output.empty()) write_csv(o.output, report, o.eval.capture_eps);
  if (!o.plots.empty()) plot(o.output, o.plots);
  phases.write = write.seconds();

  if (o.common.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const EvalRow& row : report.rows) rows.push_back(row_json(row, o.eval.capture_eps));
    nlohmann::json j = attention_shapes_json(inputs);
    j.update({{"command", "eval"},
              {"rows", rows},
              {"reference_seconds", report.reference_seconds},
              {"seconds", phases.json()}});
    print_json(j);
  } else {
    print_table(report, o.eval.capture_eps);
    if (!o.output.empty()) std::fprintf(stderr, "levattn: wrote %s\n", o.output.c_str());
  }
  return 0;
}

}  // namespace

Command add_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalCliOptions>();
  CLI::App* c = app.add_subcommand(
      "eval", "Selection rules at equal budgets against exact attention: heavy-entry capture, output error, time");
  add_qkv_options(*c, o->queries, o->keys, o->values);
  c->add_option("--budgets", o->eval.budgets, "Keys kept per head, comma-separated (e.g. 16,32,64,256)")
      ->delimiter(',');
  c->add_option("--thresholds", o->eval.thresholds,
                "Also the leverage threshold sets {τ ≥ ε}, comma-separated ε in (0, 1]")
      ->delimiter(',');
  c->add_option("--rules", o->eval.rules,
                "Comma-separated rules: leverage, ridge, lewis, row-norm, random, sinks-window, h2o, "
                "oracle (default: every one)")
      ->delimiter(',');
  c->add_option("--f", o->f, "Score functions, comma-separated: softmax, pow:P")->delimiter(',')->capture_default_str();
  c->add_option("--capture-eps", o->eval.capture_eps, "Heavy-entry thresholds ε of the capture, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  c->add_option("--scale", o->eval.scale, "Scale c of the scores (default 1/√d for softmax, 1 for pow:P)");
  c->add_option("--ridge-fraction", o->eval.key_rules.ridge_fraction, "ridge: λ = F·‖K‖_F²/d")->capture_default_str();
  c->add_option("--sinks", o->eval.key_rules.sinks, "sinks-window: leading keys always kept")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  c->add_option("--seed", o->eval.key_rules.seed, "random: seed")->capture_default_str();
  c->add_option("--rcond", o->eval.key_rules.rcond, "leverage, ridge: relative singular-value cut-off")
      ->capture_default_str();
  c->add_option("--relevant", o->eval.relevant,
                "Key indices to look for (e.g. a planted model's): report each rule's recall of them")
      ->delimiter(',');
  c->add_option("--output", o->output, "Write the results as CSV (one row per rule, f and budget)");
  c->add_option("--plots", o->plots, "Also draw capture and error vs budget as PNGs into DIR (python3-matplotlib)");
  add_common_options(*c, o->common);
  return {c, [o] { return run_eval(*o); }};
}

}  // namespace levattn::cli
