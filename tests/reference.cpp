#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

namespace levattn::test {

MatD Floats::to_double() const {
  MatD m(rows, cols);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) m(i, j) = data[i * cols + j];
  return m;
}

namespace {

Floats from_double(const MatD& m) {
  Floats f{m.rows(), m.cols(), std::vector<float>(static_cast<size_t>(m.size()))};
  for (index_t i = 0; i < m.rows(); ++i)
    for (index_t j = 0; j < m.cols(); ++j) f.data[i * m.cols() + j] = static_cast<float>(m(i, j));
  return f;
}

MatD gaussian(index_t rows, index_t cols, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  MatD m(rows, cols);
  for (index_t i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

MatD orthonormal(index_t rows, index_t cols, std::mt19937_64& rng) {
  Eigen::HouseholderQR<MatD> qr(gaussian(rows, cols, rng));
  return qr.householderQ() * MatD::Identity(rows, cols);
}

}  // namespace

const std::vector<std::string>& kinds() {
  static const std::vector<std::string> all{"gaussian", "low_rank", "duplicated", "heavy_tailed", "badly_scaled",
                                            "huge",     "tiny",     "cond1e3",    "cond1e6",      "zero_column"};
  return all;
}

index_t built_rank(const std::string& kind, index_t d) {
  if (kind == "low_rank") return std::max<index_t>(1, d / 4);
  if (kind == "zero_column") return d - 1;
  return d;
}

Floats normal_matrix(index_t rows, index_t cols, std::uint64_t seed, double scale) {
  Floats f{rows, cols, std::vector<float>(static_cast<size_t>(rows * cols))};
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  for (float& x : f.data) x = static_cast<float>(scale * normal(rng));
  return f;
}

Floats make_conditioned(index_t n, index_t d, double cond, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const MatD U = orthonormal(n, d, rng), V = orthonormal(d, d, rng);
  Eigen::VectorXd sigma(d);
  for (index_t i = 0; i < d; ++i)
    sigma(i) = std::pow(cond, -static_cast<double>(i) / static_cast<double>(std::max<index_t>(d - 1, 1)));
  return from_double(U * sigma.asDiagonal() * V.transpose());
}

Floats make_keys(const std::string& kind, index_t n, index_t d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  if (kind == "gaussian") return from_double(gaussian(n, d, rng));
  if (kind == "low_rank") {
    const index_t r = built_rank(kind, d);
    return from_double(gaussian(n, r, rng) * gaussian(r, d, rng));
  }
  if (kind == "duplicated") {  // a few distinct rows, each repeated many times, plus noise rows
    const MatD distinct = gaussian(std::max<index_t>(d, n / 8), d, rng);
    MatD k(n, d);
    std::uniform_int_distribution<index_t> pick(0, distinct.rows() - 1);
    for (index_t i = 0; i < n; ++i) k.row(i) = distinct.row(pick(rng));
    return from_double(k);
  }
  if (kind == "heavy_tailed") {  // Student t with 1 degree of freedom (Cauchy) entries
    std::cauchy_distribution<double> cauchy;
    MatD k(n, d);
    for (index_t i = 0; i < k.size(); ++i) k.data()[i] = std::clamp(cauchy(rng), -1e15, 1e15);
    return from_double(k);
  }
  if (kind == "badly_scaled") {  // columns scaled by 10^U[-2.5, 2.5], rows by 10^U[-3, 3]
    std::uniform_real_distribution<double> column_expo(-2.5, 2.5), row_expo(-3.0, 3.0);
    MatD k = gaussian(n, d, rng);
    for (index_t j = 0; j < d; ++j) k.col(j) *= std::pow(10.0, column_expo(rng));
    for (index_t i = 0; i < n; ++i) k.row(i) *= std::pow(10.0, row_expo(rng));
    return from_double(k);
  }
  if (kind == "huge") return from_double(gaussian(n, d, rng) * 1e30);
  if (kind == "tiny") return from_double(gaussian(n, d, rng) * 1e-30);
  if (kind == "cond1e3") return make_conditioned(n, d, 1e3, seed);
  if (kind == "cond1e6") return make_conditioned(n, d, 1e6, seed);
  if (kind == "zero_column") {
    MatD k = gaussian(n, d, rng);
    k.col(d / 2).setZero();
    return from_double(k);
  }
  throw std::invalid_argument("unknown key kind " + kind);
}

Floats make_queries(const Floats& keys, index_t m, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  const index_t n = keys.rows, d = keys.cols;
  const MatD K = keys.to_double();
  const MatD G = K.transpose() * K;
  const Eigen::CompleteOrthogonalDecomposition<MatD> pinv(G);
  MatD q = gaussian(m, d, rng);
  std::uniform_int_distribution<index_t> pick(0, n - 1);
  for (index_t i = 0; i < m; ++i) {
    switch (i % 6) {
      case 0:
        break;  // random direction
      case 1:
        q.row(i) = K.row(pick(rng));
        break;  // a key itself
      case 2:
        q.row(i) = pinv.solve(K.row(pick(rng)).transpose()).transpose();
        break;  // maximiser
      case 3:
        q.row(i) *= (i % 12 == 3) ? 1e20 : 1e-20;
        break;  // huge or tiny query
      case 4:
        q.row(i) = K.row(pick(rng)) + 1e-3 * K.row(pick(rng));
        break;
      case 5:
        if (i == 5) q.row(i).setZero();
        break;  // one zero query
    }
    if (!q.row(i).allFinite() || q.row(i).cwiseAbs().maxCoeff() > 1e30) q.row(i) = gaussian(1, d, rng);
  }
  // Keep every value representable in float.
  const double top = q.cwiseAbs().maxCoeff();
  if (top > 1e36) q *= 1e36 / top;
  return from_double(q);
}

std::vector<double> leverage_reference(const Floats& K, double rcond, index_t rank) {
  const Eigen::BDCSVD<Eigen::MatrixXd> svd(Eigen::MatrixXd(K.to_double()), Eigen::ComputeThinU);
  const Eigen::VectorXd& s = svd.singularValues();
  index_t r = rank;
  if (r < 0) {
    r = 0;
    while (r < s.size() && s(r) > rcond * s(0)) ++r;
  }
  std::vector<double> tau(static_cast<size_t>(K.rows));
  for (index_t j = 0; j < K.rows; ++j) tau[j] = svd.matrixU().row(j).head(r).squaredNorm();
  return tau;
}

std::vector<double> ridge_reference(const Floats& K, double lambda) {
  const index_t n = K.rows, d = K.cols;
  MatD A(n + d, d);
  A.topRows(n) = K.to_double();
  A.bottomRows(d) = std::sqrt(lambda) * MatD::Identity(d, d);
  Eigen::HouseholderQR<MatD> qr(A);
  const MatD Q = qr.householderQ() * MatD::Identity(n + d, d);
  std::vector<double> tau(static_cast<size_t>(n));
  for (index_t j = 0; j < n; ++j) tau[j] = Q.row(j).squaredNorm();
  return tau;
}

std::vector<double> lewis_reference(const Floats& K, double p) {
  const MatD k = K.to_double();
  Eigen::VectorXd w = Eigen::VectorXd::Ones(k.rows());
  for (int iteration = 0; iteration < 500; ++iteration) {
    const Eigen::VectorXd u = w.array().pow(1.0 - 2.0 / p);
    const Eigen::LDLT<MatD> ldlt(k.transpose() * u.asDiagonal() * k);
    const Eigen::VectorXd quad = (k.array() * ldlt.solve(k.transpose()).transpose().array()).rowwise().sum();
    const Eigen::VectorXd next = quad.array().pow(p / 2.0);
    const double change = ((next - w).array().abs() / next.array()).maxCoeff();
    w = next;
    if (change < 1e-13) break;
  }
  return {w.data(), w.data() + w.size()};
}

MatD attention_reference(const Floats& Q, const Floats& K) {
  MatD S = Q.to_double() * K.to_double().transpose();
  for (index_t i = 0; i < S.rows(); ++i) {
    const double total = S.row(i).squaredNorm();
    S.row(i) =
        total > 0.0 ? (S.row(i).array().square() / total).matrix().eval() : Eigen::RowVectorXd::Zero(S.cols()).eval();
  }
  return S;
}

MatD power_attention_reference(const Floats& Q, const Floats& K, double p) {
  MatD S = Q.to_double() * K.to_double().transpose();
  for (index_t i = 0; i < S.rows(); ++i) {
    const double top = S.row(i).cwiseAbs().maxCoeff();
    if (top == 0.0) {
      S.row(i).setZero();
      continue;
    }
    const Eigen::ArrayXd a = (S.row(i).array().abs() / top).pow(p);
    S.row(i) = (a / a.sum()).matrix().transpose();
  }
  return S;
}

Floats keys_with_a_cut_direction() {
  Floats raw = normal_matrix(800, 6, 2);
  for (index_t i = 0; i < raw.rows; ++i) raw.data[i * 6 + 5] = raw.data[i * 6 + 4];
  raw.data[4] = 0.0f, raw.data[5] = 0x1p-20f;
  return raw;
}

Floats queries_along_the_cut(const Floats& keys) {
  Floats Q = make_queries(keys, 50, 3);
  for (index_t i = 0; i < Q.rows; i += 2) {
    std::fill(Q.data.begin() + i * 6, Q.data.begin() + i * 6 + 6, 0.0f);
    Q.data[i * 6 + 4] = -1.0f, Q.data[i * 6 + 5] = 1.0f;
  }
  return Q;
}

AttentionRows attention_rows_reference(const Floats& Q, const Floats& K, const Floats& V,
                                       const std::vector<index_t>& rows, const AttentionSpec& spec) {
  AttentionRows r;
  r.out = MatD::Zero(static_cast<index_t>(rows.size()), V.cols);
  const MatD Vd = V.to_double();
  for (size_t t = 0; t < rows.size(); ++t) {
    const index_t i = rows[t];
    std::vector<double> s(K.rows, 0.0);
    std::vector<char> vis(K.rows, 0), kep(K.rows, 0);
    const double kNegInf = -std::numeric_limits<double>::infinity();
    double top = kNegInf, top_kept = kNegInf;  // largest visible and largest kept term
    for (index_t j = 0; j < K.rows; ++j) {
      vis[j] = !spec.visible || spec.visible(i, j);
      kep[j] = vis[j] && (!spec.kept || spec.kept(i, j));
      double dot = 0.0;
      for (index_t c = 0; c < K.cols; ++c) dot += static_cast<double>(Q.data[i * Q.cols + c]) * K.data[j * K.cols + c];
      s[j] = spec.softmax ? spec.scale * dot : std::abs(spec.scale * dot);
      if (vis[j]) top = std::max(top, s[j]);
      if (kep[j]) top_kept = std::max(top_kept, s[j]);
    }
    // Terms relative to the largest one of their sum, so that neither exp nor the power
    // overflows or underflows: w(s, m) = f(s)/f(m).
    const auto w = [&](double x, double m) {
      return spec.softmax ? std::exp(x - m) : (m > 0 ? std::pow(x / m, spec.p) : 0.0);
    };
    const auto log_f = [&](double m) { return spec.softmax ? m : spec.p * std::log(m); };
    double all = 0.0, kept = 0.0;
    Eigen::RowVectorXd acc = Eigen::RowVectorXd::Zero(V.cols);
    for (index_t j = 0; j < K.rows; ++j) {
      if (vis[j]) all += w(s[j], top);
      if (kep[j]) {
        kept += w(s[j], top_kept);
        acc += w(s[j], top_kept) * Vd.row(j);
      }
    }
    const bool any_kept = kept > 0 && (spec.softmax || top_kept > 0);
    const double lse = any_kept ? log_f(top_kept) + std::log(kept) : kNegInf;
    const double lse_all = all > 0 && (spec.softmax || top > 0) ? log_f(top) + std::log(all) : kNegInf;
    r.lse.push_back(lse);
    const double mass = any_kept && std::isfinite(lse_all) ? std::exp(lse - lse_all) : 0.0;
    r.kept_mass.push_back(mass);
    if (any_kept) r.out.row(t) = spec.normalise_over_kept ? (acc / kept).eval() : (acc / kept * mass).eval();
  }
  return r;
}

AttentionSpec attention_spec(const AttentionOptions& o, index_t d, index_t n_q, index_t n_k) {
  AttentionSpec spec;
  spec.softmax = o.f.kind == ScoreKind::softmax;
  spec.p = o.f.p;
  spec.scale = effective_scale(o, d);
  if (o.causal) spec.visible = [off = n_k - n_q](index_t i, index_t j) { return j <= i + off; };
  return spec;
}

std::vector<index_t> sample_rows(index_t n, index_t count) {
  std::vector<index_t> rows;
  const index_t step = std::max<index_t>(1, n / std::max<index_t>(1, count - 1));
  for (index_t i = 0; i < n; i += step) rows.push_back(i);
  if (rows.back() != n - 1) rows.push_back(n - 1);
  return rows;
}

}  // namespace levattn::test
