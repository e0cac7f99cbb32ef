// Training and evaluation of the ViT on Fashion-MNIST (deterministic given the seed and the
// thread count), with checkpoints that resume exactly where a run stopped.
#pragma once

#include <torch/torch.h>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "fashion_mnist.hpp"
#include "vit.hpp"

namespace levattn::vit {

// Images (N, 1, 28, 28) uint8 and labels (N) int64 of a set, or of a fixed subset of it: the
// first `subset` of a permutation drawn with a fixed seed (0 = all; > size is an error).
struct Batchable {
  torch::Tensor images, labels;
  std::int64_t size() const { return labels.size(0); }
};
Batchable to_tensors(const ImageSet& set, std::int64_t subset = 0);

struct TrainOptions {
  VitConfig model;
  AttentionSetting attention;       // the rule trained with
  Kernel kernel = Kernel::levattn;  // the code computing the softmax (results agree to float rounding)
  double warm_start = 0.0;          // fraction of the steps trained with full softmax first, in [0, 1)
  double epochs = 1.0;              // used when steps = 0
  std::int64_t steps = 0;           // total optimizer steps (0: epochs × batches per epoch)
  std::int64_t batch = 128;
  double lr = 1e-3, weight_decay = 0.05;  // AdamW; linear warm-up over 5% of steps, cosine decay
  std::uint64_t seed = 0;
  std::int64_t train_subset = 0, test_subset = 0;  // 0: all images
  std::int64_t log_every = 50;                     // steps per point of the loss curve
  bool eval_each_epoch = false;                    // test accuracy after every epoch
  std::int64_t checkpoint_every = 0;               // steps between checkpoints (0: only at the end)
};

nlohmann::json options_json(const TrainOptions& o);
TrainOptions options_from_json(const nlohmann::json& j);

// Trains as `options` says and returns the run's record: options, "curve" [[step, mean loss,
// mean batch accuracy], …] per log_every steps, "evals" [{step, epoch, accuracy, loss}], the final
// "test" {accuracy, loss}, "train_seconds". With a checkpoint path the model is saved there at
// the end (and every checkpoint_every steps); with resume = true and that file present, the run
// continues from it with the options stored in it (the given options are ignored).
// stop_at > 0 ends the run after that step as if interrupted (checkpoint saved, no test; the
// record's "complete" is false), for runs split over several sittings.
// `progress` draws a bar on stderr (callers pass isatty(stderr)).
nlohmann::json train(const FashionMnist& data, const TrainOptions& options, const std::string& checkpoint, bool resume,
                     bool progress, std::int64_t stop_at = 0);

struct Evaluation {
  double accuracy = 0.0, loss = 0.0;
  torch::Tensor logits;  // (N, 10), when asked for
};

// Accuracy and mean cross-entropy of model on set with the model's current attention setting;
// the random rule is seeded with `seed` first, so evaluations repeat exactly.
Evaluation evaluate(Vit& model, const Batchable& set, std::int64_t batch, std::uint64_t seed, bool keep_logits = false,
                    bool progress = false);

}  // namespace levattn::vit
