// Training loop, evaluation and the progress bar (see training.hpp).
#include "training.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numbers>

#include "checkpoint.hpp"
#include "levattn/core/error.hpp"

namespace levattn::vit {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// "label [#####-----]  50% text" on stderr, redrawn at most every 0.2 s, when enabled.
class ProgressBar {
 public:
  ProgressBar(std::string label, std::int64_t total, bool enabled)
      : label_(std::move(label)), total_(total), enabled_(enabled) {}
  ~ProgressBar() {
    if (enabled_ && drawn_) std::fprintf(stderr, "\n");
  }
  void update(std::int64_t done, const std::string& text = "") {
    if (!enabled_ || total_ <= 0) return;
    if (done < total_ && drawn_ && seconds_since(last_) < 0.2) return;
    last_ = std::chrono::steady_clock::now();
    drawn_ = true;
    const int width = 30, full = static_cast<int>(width * done / total_);
    std::string bar(static_cast<std::size_t>(full), '#');
    bar.resize(width, '-');
    std::fprintf(stderr, "\r%s [%s] %3d%% %s ", label_.c_str(), bar.c_str(), static_cast<int>(100 * done / total_),
                 text.c_str());
    std::fflush(stderr);
  }

 private:
  std::string label_;
  std::int64_t total_;
  bool enabled_, drawn_ = false;
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

torch::Generator generator(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

// A different, fixed stream of seeds for each purpose.
std::uint64_t mix(std::uint64_t seed, std::uint64_t salt) {
  std::uint64_t z = seed * 0x9e3779b97f4a7c15ULL + salt;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

double learning_rate(const TrainOptions& o, std::int64_t step, std::int64_t total) {
  const std::int64_t warmup = std::max<std::int64_t>(1, total / 20);
  if (step < warmup) return o.lr * double(step + 1) / double(warmup);
  const double t = double(step - warmup) / double(std::max<std::int64_t>(1, total - warmup));
  return o.lr * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
}

}  // namespace

Batchable to_tensors(const ImageSet& set, std::int64_t subset) {
  require(subset >= 0 && subset <= set.size(),
          "subset of " + std::to_string(subset) + " images requested from a set of " + std::to_string(set.size()));
  Batchable out;
  out.images =
      torch::from_blob(const_cast<std::uint8_t*>(set.pixels.data()), {set.size(), 1, 28, 28}, torch::kUInt8).clone();
  out.labels =
      torch::from_blob(const_cast<std::uint8_t*>(set.labels.data()), {set.size()}, torch::kUInt8).to(torch::kLong);
  if (subset > 0) {
    torch::Generator g = generator(20250101);
    const torch::Tensor pick = torch::randperm(set.size(), g, torch::kLong).narrow(0, 0, subset);
    out.images = out.images.index_select(0, pick);
    out.labels = out.labels.index_select(0, pick);
  }
  return out;
}

nlohmann::json options_json(const TrainOptions& o) {
  return {{"model", config_json(o.model)},
          {"rule", rule_name(o.attention.rule)},
          {"k", o.attention.k},
          {"kernel", kernel_name(o.kernel)},
          {"warm_start", o.warm_start},
          {"epochs", o.epochs},
          {"steps", o.steps},
          {"batch", o.batch},
          {"lr", o.lr},
          {"weight_decay", o.weight_decay},
          {"seed", o.seed},
          {"train_subset", o.train_subset},
          {"test_subset", o.test_subset},
          {"log_every", o.log_every},
          {"eval_each_epoch", o.eval_each_epoch},
          {"checkpoint_every", o.checkpoint_every}};
}

TrainOptions options_from_json(const nlohmann::json& j) {
  TrainOptions o;
  o.model = config_from_json(j.at("model"));
  o.attention = {parse_rule(j.at("rule").get<std::string>()), j.at("k").get<std::int64_t>()};
  o.kernel = parse_kernel(j.value("kernel", std::string("torch")));  // checkpoints before --kernel: torch
  o.warm_start = j.at("warm_start");
  o.epochs = j.at("epochs");
  o.steps = j.at("steps");
  o.batch = j.at("batch");
  o.lr = j.at("lr");
  o.weight_decay = j.at("weight_decay");
  o.seed = j.at("seed");
  o.train_subset = j.at("train_subset");
  o.test_subset = j.at("test_subset");
  o.log_every = j.at("log_every");
  o.eval_each_epoch = j.at("eval_each_epoch");
  o.checkpoint_every = j.at("checkpoint_every");
  return o;
}

Evaluation evaluate(Vit& model, const Batchable& set, std::int64_t batch, std::uint64_t seed, bool keep_logits,
                    bool progress) {
  require(batch >= 1, "the batch size must be at least 1");
  torch::NoGradGuard no_grad;
  model->eval();
  model->seed_selection(mix(seed, 2));
  std::int64_t correct = 0;
  double loss = 0.0;
  std::vector<torch::Tensor> logits;
  ProgressBar bar("eval ", set.size(), progress);
  for (std::int64_t at = 0; at < set.size(); at += batch) {
    const std::int64_t b = std::min(batch, set.size() - at);
    const torch::Tensor y = set.labels.narrow(0, at, b);
    const torch::Tensor out = model->forward(set.images.narrow(0, at, b));
    loss += torch::nn::functional::cross_entropy(
                out, y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                .item<double>();
    correct += out.argmax(1).eq(y).sum().item<std::int64_t>();
    if (keep_logits) logits.push_back(out);
    bar.update(at + b);
  }
  Evaluation e;
  e.accuracy = double(correct) / double(set.size());
  e.loss = loss / double(set.size());
  if (keep_logits) e.logits = torch::cat(logits);
  return e;
}

nlohmann::json train(const FashionMnist& data, const TrainOptions& given, const std::string& checkpoint, bool resume,
                     bool progress, std::int64_t stop_at) {
  TrainOptions o = given;
  nlohmann::json record;
  std::optional<Checkpoint> restored;
  if (resume && !checkpoint.empty() && std::filesystem::exists(checkpoint)) {
    restored = load_checkpoint(checkpoint);
    record = restored->record;
    o = options_from_json(record.at("options"));
  }
  check_config(o.model);
  require(o.warm_start >= 0.0 && o.warm_start < 1.0, "the warm start must be a fraction in [0, 1)");
  require(o.batch >= 1 && o.lr > 0.0 && o.weight_decay >= 0.0 && o.log_every >= 1 && o.checkpoint_every >= 0,
          "batch and log interval must be ≥ 1, the learning rate > 0, weight decay and checkpoint interval ≥ 0");
  require(o.attention.rule == Rule::softmax || (o.attention.k >= 1 && o.attention.k <= o.model.tokens()),
          "k = " + std::to_string(o.attention.k) + " must lie in [1, " + std::to_string(o.model.tokens()) +
              "] (the sequence length)");

  const Batchable train_set = to_tensors(data.train, o.train_subset);
  const Batchable test_set = to_tensors(data.test, o.test_subset);
  const std::int64_t per_epoch = (train_set.size() + o.batch - 1) / o.batch;
  const std::int64_t total =
      o.steps > 0 ? o.steps : std::max<std::int64_t>(1, std::llround(o.epochs * double(per_epoch)));
  require(o.steps > 0 || o.epochs > 0.0, "give a positive number of steps or epochs");
  const std::int64_t warm_steps = std::llround(o.warm_start * double(total));

  torch::manual_seed(o.seed);
  Vit model = restored ? restored->model : Vit(o.model);
  model->set_kernel(o.kernel);
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  std::int64_t step = 0;
  double seconds = 0.0;
  if (restored) {
    if (restored->optimizer) optimizer.load(*restored->optimizer);
    step = record.at("step");
    seconds = record.at("train_seconds");
  } else {
    record = {{"options", options_json(o)}, {"curve", nlohmann::json::array()}, {"evals", nlohmann::json::array()}};
  }

  const auto save = [&] {
    record["step"] = step;
    record["train_seconds"] = seconds;
    if (!checkpoint.empty()) save_checkpoint(checkpoint, model, &optimizer, record);
  };

  ProgressBar bar("train", total, progress);
  double loss_sum = 0.0, acc_sum = 0.0;
  std::int64_t in_window = 0;
  torch::Tensor order;
  std::int64_t order_epoch = -1;
  while (step < total) {
    const auto start = std::chrono::steady_clock::now();
    const std::int64_t epoch = step / per_epoch, at = (step % per_epoch) * o.batch;
    if (epoch != order_epoch) {
      torch::Generator g = generator(mix(o.seed, 1000 + epoch));
      order = torch::randperm(train_set.size(), g, torch::kLong);
      order_epoch = epoch;
    }
    const torch::Tensor pick = order.narrow(0, at, std::min(o.batch, train_set.size() - at));
    const torch::Tensor x = train_set.images.index_select(0, pick), y = train_set.labels.index_select(0, pick);

    model->train();
    model->set_attention(step < warm_steps ? AttentionSetting{} : o.attention);
    model->seed_selection(mix(o.seed, 5000000 + step));
    for (auto& group : optimizer.param_groups())
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(learning_rate(o, step, total));
    optimizer.zero_grad();
    const torch::Tensor out = model->forward(x);
    const torch::Tensor loss = torch::nn::functional::cross_entropy(out, y);
    require(std::isfinite(loss.item<double>()),
            "training diverged (the loss is not finite) at step " + std::to_string(step) + "; lower --lr");
    loss.backward();
    optimizer.step();
    loss_sum += loss.item<double>();
    acc_sum += out.argmax(1).eq(y).to(torch::kDouble).mean().item<double>();
    ++in_window;
    ++step;
    seconds += seconds_since(start);

    if (in_window == o.log_every || step == total) {
      record["curve"].push_back({step, loss_sum / double(in_window), acc_sum / double(in_window)});
      loss_sum = acc_sum = 0.0;
      in_window = 0;
    }
    char text[96];
    std::snprintf(text, sizeof text, "step %lld/%lld loss %.3f %.0fs", static_cast<long long>(step),
                  static_cast<long long>(total), loss.item<double>(), seconds);
    bar.update(step, text);
    if (o.eval_each_epoch && (step % per_epoch == 0 || step == total)) {
      model->set_attention(o.attention);
      const Evaluation e = evaluate(model, test_set, 500, o.seed);
      record["evals"].push_back(
          {{"step", step}, {"epoch", double(step) / double(per_epoch)}, {"accuracy", e.accuracy}, {"loss", e.loss}});
    }
    if (stop_at > 0 && step == stop_at && step < total) {
      record["complete"] = false;
      save();
      return record;
    }
    if (o.checkpoint_every > 0 && step % o.checkpoint_every == 0 && step < total) save();
  }
  record["complete"] = true;
  model->set_attention(o.attention);
  const Evaluation e = evaluate(model, test_set, 500, o.seed);
  record["test"] = {{"accuracy", e.accuracy}, {"loss", e.loss}, {"images", test_set.size()}};
  save();
  return record;
}

}  // namespace levattn::vit
