// The libtorch ViT front end against independent references: the leverage rule is the top-k of
// float64 SVD leverage scores (ties to the lower index), row-norm and random rules as specified;
// with k = n every rule gives the softmax model's logits; the attention over kept keys matches a
// float64 reference and passes no gradient to the keys it drops; the data cache and checkpoints
// round-trip and refuse corrupt files.
#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "checkpoint.hpp"
#include "fashion_mnist.hpp"
#include "key_selection.hpp"
#include "levattn/core/error.hpp"
#include "reference.hpp"
#include "training.hpp"
#include "vit.hpp"

namespace levattn::vit {
namespace {

using test::Floats;

torch::Tensor to_tensor(const Floats& f) {
  return torch::from_blob(const_cast<float*>(f.data.data()), {f.rows, f.cols}, torch::kFloat).clone();
}

torch::Generator gen(std::uint64_t seed) { return at::detail::createCPUGenerator(seed); }

std::vector<std::int64_t> head(const torch::Tensor& idx, std::int64_t b, std::int64_t h) {
  const torch::Tensor row = idx[b][h].contiguous();
  return {row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel()};
}

// The k largest of ref (ties to the lower index), ascending: the reference of every rule.
std::vector<std::int64_t> reference_top_k(const std::vector<double>& ref, std::int64_t k) {
  std::vector<std::int64_t> order(ref.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return ref[a] > ref[b]; });
  order.resize(static_cast<std::size_t>(k));
  std::sort(order.begin(), order.end());
  return order;
}

// Kept sets may differ from the reference only by keys whose reference score ties the k-th.
void expect_top_k(const std::vector<std::int64_t>& got, const std::vector<double>& ref, std::int64_t k, double tol,
                  const std::string& what) {
  ASSERT_EQ(static_cast<std::int64_t>(got.size()), k) << what;
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end())) << what;
  std::vector<double> sorted = ref;
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  const double kth = sorted[static_cast<std::size_t>(k - 1)];
  const std::set<std::int64_t> kept(got.begin(), got.end());
  EXPECT_EQ(kept.size(), got.size()) << what << ": repeated index";
  for (std::size_t j = 0; j < ref.size(); ++j) {
    if (kept.count(std::int64_t(j)))
      EXPECT_GE(ref[j], kth - tol * std::abs(kth)) << what << " kept " << j;
    else
      EXPECT_LE(ref[j], kth + tol * std::abs(kth)) << what << " dropped " << j;
  }
}

TEST(VitSelection, LeverageIsTheTopKOfReferenceScores) {
  const std::int64_t n = 50, d = 16;
  for (const std::string& kind : test::kinds()) {
    if (kind == "cond1e6") continue;  // scores there are only good to 1e-2 (leverage.hpp)
    std::vector<torch::Tensor> heads;
    std::vector<Floats> keys;
    for (std::uint64_t s = 0; s < 4; ++s) {
      keys.push_back(test::make_keys(kind, n, d, 11 + s));
      heads.push_back(to_tensor(keys.back()));
    }
    const torch::Tensor K = torch::stack(heads).view({2, 2, n, d});
    torch::Generator g = gen(0);
    for (std::int64_t k : {1, 4, 8, 16, 33}) {
      const torch::Tensor idx = select_keys(K, Rule::leverage, k, g);
      ASSERT_EQ(idx.sizes(), (std::vector<std::int64_t>{2, 2, k}));
      for (std::int64_t bh = 0; bh < 4; ++bh) {
        // The rank each kind is built with; 50 draws of 16 distinct rows may miss some, so a cut-off.
        const index_t rank = kind == "duplicated" ? -1 : test::built_rank(kind, d);
        const std::vector<double> ref = test::leverage_reference(keys[std::size_t(bh)], 1e-6, rank);
        expect_top_k(head(idx, bh / 2, bh % 2), ref, k, 1e-4, kind + " k=" + std::to_string(k));
      }
    }
  }
}

TEST(VitSelection, TiesGoToTheLowerIndex) {
  // Keys [I; I; I] (d = 4, n = 12): every leverage score and every norm equals, so top-k is 0..k-1.
  const torch::Tensor K = torch::eye(4).repeat({3, 1}).view({1, 1, 12, 4});
  torch::Generator g = gen(0);
  for (Rule rule : {Rule::leverage, Rule::row_norm})
    for (std::int64_t k : {1, 3, 5, 12}) {
      std::vector<std::int64_t> want(static_cast<std::size_t>(k));
      std::iota(want.begin(), want.end(), 0);
      EXPECT_EQ(head(select_keys(K, rule, k, g), 0, 0), want) << rule_name(rule) << " k=" << k;
    }
}

TEST(VitSelection, RowNormIsTheTopKOfReferenceNorms) {
  for (const std::string kind : {"gaussian", "heavy_tailed", "badly_scaled", "huge", "tiny"}) {
    const Floats f = test::make_keys(kind, 50, 8, 3);
    std::vector<double> ref(50);
    for (std::int64_t j = 0; j < 50; ++j) {
      double s = 0;
      for (std::int64_t c = 0; c < 8; ++c) s += double(f.data[std::size_t(j * 8 + c)]) * f.data[std::size_t(j * 8 + c)];
      ref[std::size_t(j)] = std::sqrt(s);
    }
    torch::Generator g = gen(0);
    for (std::int64_t k : {1, 7, 49})
      expect_top_k(head(select_keys(to_tensor(f).view({1, 1, 50, 8}), Rule::row_norm, k, g), 0, 0), ref, k, 1e-6,
                   std::string(kind));
  }
}

TEST(VitSelection, RandomIsUniformDistinctAndSeeded) {
  const std::int64_t n = 20, k = 5, draws = 4000;
  const torch::Tensor K = torch::randn({draws, 1, n, 4});
  torch::Generator g1 = gen(7), g2 = gen(7), g3 = gen(8);
  const torch::Tensor a = select_keys(K, Rule::random, k, g1);
  EXPECT_TRUE(a.equal(select_keys(K, Rule::random, k, g2)));
  EXPECT_FALSE(a.equal(select_keys(K, Rule::random, k, g3)));
  const torch::Tensor sorted = std::get<0>(a.sort(-1));
  EXPECT_TRUE(a.equal(sorted));
  EXPECT_TRUE((a.narrow(-1, 1, k - 1) > a.narrow(-1, 0, k - 1)).all().item<bool>());  // distinct
  const torch::Tensor counts = torch::bincount(a.flatten(), {}, n).to(torch::kDouble);
  const double expect = double(draws * k) / n, sd = std::sqrt(expect * (1 - double(k) / n));
  EXPECT_LT((counts - expect).abs().max().item<double>(), 5 * sd);  // every key equally likely
}

TEST(VitSelection, BadInputIsRefused) {
  torch::Generator g = gen(0);
  const torch::Tensor K = torch::randn({1, 1, 10, 4});
  EXPECT_THROW(select_keys(K, Rule::leverage, 0, g), Error);
  EXPECT_THROW(select_keys(K, Rule::row_norm, 11, g), Error);
  EXPECT_THROW(select_keys(K.view({10, 4}), Rule::random, 2, g), Error);
  torch::Tensor bad = K.clone();
  bad[0][0][3][1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(select_keys(bad, Rule::leverage, 2, g), Error);
  EXPECT_THROW(parse_rule("lev"), Error);
  EXPECT_THROW(Vit(VitConfig{5, 64, 2, 4, 64}), Error);  // 5 does not divide 28
  EXPECT_THROW(Vit(VitConfig{4, 30, 2, 4, 64}), Error);  // 4 heads do not divide 30
  Vit model(VitConfig{7, 16, 1, 2, 16});
  EXPECT_THROW(model->set_attention({Rule::leverage, 18}), Error);  // n = 17
}

torch::Tensor images(std::int64_t count, std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, 256, {count, 1, 28, 28}, torch::kLong).to(torch::kUInt8);
}

TEST(Vit, EveryRuleWithKEqualToNGivesTheSoftmaxLogits) {
  for (std::int64_t patch : {7, 4}) {
    torch::manual_seed(3);
    Vit model(VitConfig{patch, 32, 2, 4, 48});
    model->eval();
    torch::NoGradGuard no_grad;
    const torch::Tensor x = images(16, 4);
    const torch::Tensor softmax = model->forward(x);
    for (Rule rule : {Rule::leverage, Rule::row_norm, Rule::random}) {
      model->set_attention({rule, model->config().tokens()});
      const double diff = (model->forward(x) - softmax).abs().max().item<double>();
      EXPECT_LE(diff, 1e-5) << rule_name(rule) << " patch " << patch;
      model->set_attention({});
    }
  }
}

// One head's softmax attention over `kept` keys in double.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  const std::vector<std::int64_t>& kept) {
  const torch::Tensor idx = torch::tensor(kept, torch::kLong);
  const torch::Tensor kk = k.index_select(0, idx).to(torch::kDouble), vv = v.index_select(0, idx).to(torch::kDouble);
  const torch::Tensor s = torch::matmul(q.to(torch::kDouble), kk.t()) / std::sqrt(double(q.size(1)));
  return torch::matmul(s.softmax(-1), vv);
}

TEST(Vit, AttentionOverKeptKeysMatchesAFloat64ReferenceAndDropsTheirGradient) {
  for (const Kernel kernel : {Kernel::torch, Kernel::levattn}) {
    SCOPED_TRACE(kernel_name(kernel));
    const std::int64_t B = 3, n = 30, D = 16, H = 2, dh = 8, k = 6;
    torch::manual_seed(5);
    SelfAttention attention(D, H);
    const torch::Tensor x = torch::randn({B, n, D}, torch::requires_grad());
    torch::Generator g = gen(0);
    const torch::Tensor out = attention->forward(x, {Rule::leverage, k}, kernel, g, nullptr);

    // The reference: q, k, v from the module's weights in double, keys chosen from reference scores.
    const auto params = attention->named_parameters();
    const torch::Tensor w = params["qkv.weight"].detach().to(torch::kDouble),
                        bias = params["qkv.bias"].detach().to(torch::kDouble);
    const torch::Tensor pw = params["proj.weight"].detach().to(torch::kDouble),
                        pb = params["proj.bias"].detach().to(torch::kDouble);
    std::vector<std::vector<std::int64_t>> kept_by_head;
    for (std::int64_t b = 0; b < B; ++b) {
      const torch::Tensor qkv = torch::matmul(x[b].detach().to(torch::kDouble), w.t()) + bias;  // (n, 3D)
      std::vector<torch::Tensor> heads;
      for (std::int64_t h = 0; h < H; ++h) {
        const torch::Tensor q = qkv.narrow(1, h * dh, dh), kh = qkv.narrow(1, D + h * dh, dh),
                            v = qkv.narrow(1, 2 * D + h * dh, dh);
        Floats f{n, dh, std::vector<float>(std::size_t(n * dh))};
        const torch::Tensor kf = kh.to(torch::kFloat).contiguous();
        std::copy(kf.data_ptr<float>(), kf.data_ptr<float>() + n * dh, f.data.begin());
        const std::vector<std::int64_t> kept = reference_top_k(test::leverage_reference(f, 1e-9), k);
        kept_by_head.push_back(kept);
        heads.push_back(reference_attention(q, kh, v, kept));
      }
      const torch::Tensor want = torch::matmul(torch::cat(heads, 1), pw.t()) + pb;
      EXPECT_LE((out[b].detach().to(torch::kDouble) - want).abs().max().item<double>(), 1e-5) << "image " << b;
    }

    // Gradient: rows other than j see token j only through its key and value, so if no head keeps j
    // their output has zero gradient with respect to x_j; a kept token's gradient is not zero.
    for (std::int64_t b = 0; b < B; ++b) {
      std::set<std::int64_t> kept_any;
      for (std::int64_t h = 0; h < H; ++h)
        for (std::int64_t j : kept_by_head[std::size_t(b * H + h)]) kept_any.insert(j);
      for (std::int64_t j : {std::int64_t{0}, std::int64_t{1}, std::int64_t{2}, std::int64_t{3}, std::int64_t{4}}) {
        const torch::Tensor mask = torch::ones({n, 1});
        mask[j] = 0;
        const torch::Tensor y = (attention->forward(x, {Rule::leverage, k}, kernel, g, nullptr)[b] * mask).sum();
        const torch::Tensor grad = torch::autograd::grad({y}, {x})[0][b][j];
        if (kept_any.count(j))
          EXPECT_GT(grad.abs().max().item<double>(), 0.0) << "kept token " << j;
        else
          EXPECT_EQ(grad.abs().max().item<double>(), 0.0) << "dropped token " << j;
      }
    }
  }
}

TEST(Vit, LevattnKernelGivesTheTorchKernelsLogitsAndGradients) {
  // The same model and batch through both kernels: logits and every parameter's gradient agree to
  // 1e-4 of their largest entry (both compute in float; the reference above pins each to float64).
  for (const AttentionSetting setting : {AttentionSetting{}, AttentionSetting{Rule::leverage, 20}}) {
    VitConfig config;
    config.depth = 2;
    torch::manual_seed(3);
    Vit model(config);
    model->set_attention(setting);
    const torch::Tensor images = torch::randint(0, 256, {4, 1, 28, 28}).to(torch::kUInt8);
    const torch::Tensor labels = torch::randint(0, 10, {4});
    std::vector<torch::Tensor> logits, grads;
    for (const Kernel kernel : {Kernel::torch, Kernel::levattn}) {
      model->set_kernel(kernel);
      model->zero_grad();
      model->seed_selection(1);
      const torch::Tensor out = model->forward(images);
      torch::nn::functional::cross_entropy(out, labels).backward();
      logits.push_back(out.detach());
      for (const auto& p : model->parameters()) grads.push_back(p.grad().clone());
    }
    const auto relative = [](const torch::Tensor& a, const torch::Tensor& b) {
      return (a - b).abs().max().item<double>() / std::max(1e-30, b.abs().max().item<double>());
    };
    EXPECT_LE(relative(logits[1], logits[0]), 1e-4) << rule_name(setting.rule);
    const std::size_t count = grads.size() / 2;
    for (std::size_t i = 0; i < count; ++i)
      EXPECT_LE(relative(grads[count + i], grads[i]), 1e-4) << rule_name(setting.rule) << " parameter " << i;
  }
}

TEST(Vit, CheckpointsRoundTripAndRefuseOtherFiles) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "levattn_test_vit_ckpt";
  std::filesystem::create_directories(dir);
  torch::manual_seed(9);
  Vit model(VitConfig{7, 24, 2, 3, 32});
  const std::string path = (dir / "model.pt").string();
  save_checkpoint(path, model, nullptr, {{"note", "test"}});
  Checkpoint c = load_checkpoint(path);
  EXPECT_EQ(c.record.at("note"), "test");
  EXPECT_EQ(c.model->config().heads, 3);
  EXPECT_FALSE(c.optimizer.has_value());
  torch::NoGradGuard no_grad;
  model->eval();
  c.model->eval();
  const torch::Tensor x = images(4, 1);
  EXPECT_TRUE(model->forward(x).equal(c.model->forward(x)));
  EXPECT_THROW(load_checkpoint((dir / "absent.pt").string()), Error);
  std::ofstream((dir / "junk.pt").string()) << "not a checkpoint";
  EXPECT_THROW(load_checkpoint((dir / "junk.pt").string()), Error);
  std::filesystem::remove_all(dir);
}

// A package-shaped directory: class c has `per_class` images whose pixels all equal 10·c + i.
std::filesystem::path write_json_dir(const std::filesystem::path& dir, int per_class) {
  std::filesystem::create_directories(dir);
  for (int c = 0; c < kClasses; ++c) {
    std::ofstream out(dir / (std::to_string(c) + ".json"));
    out << "{\"data\":[";
    for (int i = 0; i < per_class; ++i) {
      out << (i ? ",[" : "[");
      for (int p = 0; p < kImagePixels; ++p) out << (p ? "," : "") << (10 * c + i);
      out << "]";
    }
    out << (c == 0 ? ",[]" : "") << "]}";  // an empty entry, as the real package has
  }
  return dir;
}

TEST(FashionMnistCache, SplitIsStratifiedAndTheCacheRoundTrips) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "levattn_test_fmnist";
  std::filesystem::remove_all(dir);
  const FashionMnist d = convert_json(write_json_dir(dir / "json", 8).string());
  // Per class, images i = 0..7: i = 6 is a test image, the others train.
  ASSERT_EQ(d.train.size(), 70);
  ASSERT_EQ(d.test.size(), 10);
  EXPECT_EQ(d.skipped_empty, 1);
  for (int c = 0; c < kClasses; ++c) {
    EXPECT_EQ(d.test.labels[std::size_t(c)], c);
    EXPECT_EQ(d.test.pixels[std::size_t(c * kImagePixels + 5)], 10 * c + 6);
    EXPECT_EQ(std::count(d.train.labels.begin(), d.train.labels.end(), c), 7);
  }
  const std::string path = (dir / "cache.bin").string();
  write_cache(path, d);
  const FashionMnist back = load_cache(path);
  EXPECT_EQ(back.train.pixels, d.train.pixels);
  EXPECT_EQ(back.train.labels, d.train.labels);
  EXPECT_EQ(back.test.pixels, d.test.pixels);
  EXPECT_EQ(back.test.labels, d.test.labels);

  const auto expect_refused = [&](const std::string& file, const std::string& words) {
    try {
      load_cache(file);
      ADD_FAILURE() << "accepted " << file;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  const auto corrupt = [&](const std::string& name, auto change) {
    std::ifstream in(path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    change(bytes);
    std::ofstream((dir / name).string(), std::ios::binary) << bytes;
    return (dir / name).string();
  };
  expect_refused(corrupt("flip.bin", [](std::string& b) { b[b.size() - 100] ^= 1; }), "checksum");
  expect_refused(corrupt("short.bin", [](std::string& b) { b.resize(b.size() - 1); }), "size");
  expect_refused(corrupt("magic.bin", [](std::string& b) { b[0] = 'X'; }), "header");
  expect_refused(corrupt("label.bin", [](std::string& b) { b[48] = 11; }), "label");
  expect_refused(corrupt("count.bin", [](std::string& b) { b[24] = 71; }), "size");
  expect_refused((dir / "absent.bin").string(), "fetch_fashion_mnist.sh");
  std::filesystem::remove_all(dir);
}

TEST(FashionMnistCache, MalformedJsonIsRefusedWithItsPlace) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "levattn_test_fmnist_bad";
  const auto refused = [&](const std::string& body, const std::string& words) {
    std::filesystem::remove_all(dir);
    write_json_dir(dir, 1);
    std::ofstream(dir / "3.json") << body;
    try {
      convert_json(dir.string());
      ADD_FAILURE() << "accepted " << body.substr(0, 40);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::bad_input);
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  };
  std::string short_image = "{\"data\":[[" + std::string("1,", 2 * 0) + "1,2,3]]}";
  refused(short_image, "784 pixels");
  std::string big = "{\"data\":[[";
  for (int p = 0; p < kImagePixels; ++p) big += (p ? "," : "") + std::string(p == 9 ? "256" : "0");
  refused(big + "]]}", "[0, 255]");
  refused("{\"data\":[[1,2", "not valid JSON");
  refused("[1,2,3]", "expected an object");
  std::filesystem::remove_all(dir);
  write_json_dir(dir, 1);
  std::filesystem::remove(dir / "5.json");
  try {
    convert_json(dir.string());
    ADD_FAILURE() << "accepted a missing class file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("5.json"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace levattn::vit
