// GP-EI: see include/bluewhale/tune/optimizer.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bluewhale/core/error.h"
#include "bluewhale/tune/optimizer.h"

namespace bluewhale::tune {
namespace detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Hyperparameter box in log space. Length scales below 0.01 of the unit cube would fit noise; above 20 a
// coordinate is effectively ignored, which is all a larger value could say.
constexpr double kLogLenLo = -4.6, kLogLenHi = 3.0;
constexpr double kLogSigLo = -3.0, kLogSigHi = 3.0;
constexpr double kLogNoiseLo = -13.8, kLogNoiseHi = 0.0;  // 1e-6 .. 1 of the standardised variance

double scaled_dist(const double* a, const double* b, const double* len, std::size_t d) {
  double s = 0;
  for (std::size_t k = 0; k < d; ++k) {
    const double t = (a[k] - b[k]) / len[k];
    s += t * t;
  }
  return std::sqrt(s);
}

// Solves L z = b in place (L lower triangular, row-major).
void forward_sub(const std::vector<double>& l, std::size_t n, double* b) {
  for (std::size_t i = 0; i < n; ++i) {
    double s = b[i];
    for (std::size_t k = 0; k < i; ++k) s -= l[i * n + k] * b[k];
    b[i] = s / l[i * n + i];
  }
}
void backward_sub(const std::vector<double>& l, std::size_t n, double* b) {
  for (std::size_t i = n; i-- > 0;) {
    double s = b[i];
    for (std::size_t k = i + 1; k < n; ++k) s -= l[k * n + i] * b[k];
    b[i] = s / l[i * n + i];
  }
}

}  // namespace

double matern52(double r) {
  const double s5r = std::sqrt(5.0) * r;
  return (1.0 + s5r + 5.0 / 3.0 * r * r) * std::exp(-s5r);
}

bool cholesky(std::vector<double>& a, std::size_t n) {
  for (std::size_t j = 0; j < n; ++j) {
    double s = a[j * n + j];
    for (std::size_t k = 0; k < j; ++k) s -= a[j * n + k] * a[j * n + k];
    if (!(s > 0)) return false;
    const double ljj = std::sqrt(s);
    a[j * n + j] = ljj;
    for (std::size_t i = j + 1; i < n; ++i) {
      double t = a[i * n + j];
      for (std::size_t k = 0; k < j; ++k) t -= a[i * n + k] * a[j * n + k];
      a[i * n + j] = t / ljj;
    }
    for (std::size_t k = j + 1; k < n; ++k) a[j * n + k] = 0;
  }
  return true;
}

double GaussianProcess::nll(const std::vector<double>& th) const {
  const std::size_t n = n_;
  std::vector<double> len(d_);
  for (std::size_t k = 0; k < d_; ++k) len[k] = std::exp(th[k]);
  const double sig = std::exp(th[d_]), noise = std::exp(th[d_ + 1]);
  std::vector<double> k(n * n);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j <= i; ++j) {
      double v = sig * matern52(scaled_dist(&x_[i * d_], &x_[j * d_], len.data(), d_));
      if (i == j) v += noise + 1e-9;
      k[i * n + j] = k[j * n + i] = v;
    }
  if (!cholesky(k, n)) return kInf;
  std::vector<double> a(y_);
  forward_sub(k, n, a.data());
  double q = 0, logdet = 0;
  for (std::size_t i = 0; i < n; ++i) q += a[i] * a[i], logdet += std::log(k[i * n + i]);
  // A weak log-normal prior on the length scales (centred on half the cube) keeps the fit sane with few
  // points, where the likelihood alone is flat along many directions.
  double prior = 0;
  for (std::size_t j = 0; j < d_; ++j) prior += 0.5 * std::pow((th[j] - std::log(0.5)) / 1.5, 2);
  return 0.5 * q + logdet + prior;
}

void GaussianProcess::fit(const std::vector<double>& x, const std::vector<double>& y, std::size_t d, Rng& rng) {
  BW_ASSERT(d > 0 && x.size() == y.size() * d);
  d_ = d;
  n_ = y.size();
  x_ = x;
  y_mean_ = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(n_);
  double var = 0;
  for (double v : y) var += (v - y_mean_) * (v - y_mean_);
  y_sd_ = n_ > 1 ? std::sqrt(var / static_cast<double>(n_ - 1)) : 1.0;
  if (!(y_sd_ > 1e-12)) y_sd_ = 1.0;
  y_.resize(n_);
  for (std::size_t i = 0; i < n_; ++i) y_[i] = (y[i] - y_mean_) / y_sd_;

  const std::size_t p = d + 2;
  std::vector<double> lo(p, kLogLenLo), hi(p, kLogLenHi);
  lo[d] = kLogSigLo, hi[d] = kLogSigHi, lo[d + 1] = kLogNoiseLo, hi[d + 1] = kLogNoiseHi;
  // Maximum likelihood by compass search from a default start and a few random ones: derivative-free,
  // robust to the non-PD corners of the box, and cheap at the sizes a tuner sees (n <= a few hundred).
  std::vector<std::vector<double>> starts;
  std::vector<double> s0(p, std::log(0.3));
  s0[d] = 0.0, s0[d + 1] = std::log(1e-3);
  starts.push_back(s0);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  for (int r = 0; r < 2; ++r) {
    std::vector<double> s(p);
    for (std::size_t j = 0; j < p; ++j) s[j] = lo[j] + unit(rng) * (hi[j] - lo[j]);
    s[d] = 0.0;
    starts.push_back(s);
  }
  std::vector<double> best_th;
  double best = kInf;
  for (auto th : starts) {
    double f = nll(th);
    double step = 1.0;
    for (int it = 0; it < 60 && step > 0.02; ++it) {
      bool improved = false;
      for (std::size_t j = 0; j < p; ++j)
        for (double dir : {1.0, -1.0}) {
          std::vector<double> t = th;
          t[j] = std::clamp(t[j] + dir * step, lo[j], hi[j]);
          if (t[j] == th[j]) continue;
          const double ft = nll(t);
          if (ft < f) {
            f = ft, th = t, improved = true;
            break;
          }
        }
      if (!improved) step *= 0.5;
    }
    if (f < best) best = f, best_th = th;
  }
  if (best_th.empty()) best_th = s0;  // nothing was positive definite: fall back with a large noise
  length_.resize(d);
  for (std::size_t j = 0; j < d; ++j) length_[j] = std::exp(best_th[j]);
  signal_ = std::exp(best_th[d]);
  noise_ = std::max(std::exp(best_th[d + 1]), best == kInf ? 0.1 : 0.0);
  factor();
}

void GaussianProcess::condition_on(const std::vector<double>& x, const std::vector<double>& y) {
  BW_ASSERT(x.size() == y.size() * d_);
  x_.insert(x_.end(), x.begin(), x.end());
  for (double v : y) y_.push_back((v - y_mean_) / y_sd_);
  n_ = y_.size();
  factor();
}

void GaussianProcess::factor() {
  const std::size_t n = n_;
  for (double jitter = 1e-9;; jitter *= 10) {
    chol_.assign(n * n, 0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j <= i; ++j) {
        double v = signal_ * matern52(scaled_dist(&x_[i * d_], &x_[j * d_], length_.data(), d_));
        if (i == j) v += noise_ + jitter;
        chol_[i * n + j] = chol_[j * n + i] = v;
      }
    if (cholesky(chol_, n)) break;
    BW_ASSERT(jitter < 1, "GP covariance not positive definite even with jitter");
  }
  alpha_ = y_;
  forward_sub(chol_, n, alpha_.data());
  backward_sub(chol_, n, alpha_.data());
}

void GaussianProcess::predict(const double* x, double& mean, double& sd) const {
  std::vector<double> k(n_);
  for (std::size_t i = 0; i < n_; ++i) k[i] = signal_ * matern52(scaled_dist(x, &x_[i * d_], length_.data(), d_));
  double m = 0;
  for (std::size_t i = 0; i < n_; ++i) m += k[i] * alpha_[i];
  forward_sub(chol_, n_, k.data());
  double v = signal_;
  for (double t : k) v -= t * t;
  mean = y_mean_ + y_sd_ * m;
  sd = y_sd_ * std::sqrt(std::max(v, 1e-12));
}

}  // namespace detail

namespace {

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
double normal_pdf(double z) { return std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI); }

class GpOptimizer : public Optimizer {
 public:
  GpOptimizer(const SearchSpace& space, const OptimizerOptions& o) : space_(space), opt_(o) {
    if (opt_.n_initial <= 0) opt_.n_initial = std::max<int>(5, static_cast<int>(space.encoded_dim()) + 2);
  }
  std::string name() const override { return "gp"; }

  json suggest(const std::vector<Observation>& done, const std::vector<json>& pending, Rng& rng) override {
    if (static_cast<int>(done.size()) < opt_.n_initial) return space_.sample(rng);
    const std::size_t d = space_.encoded_dim();
    std::vector<double> x, y;
    for (const auto& o : done) {
      std::vector<double> u = space_.encode(o.params);
      x.insert(x.end(), u.begin(), u.end());
      y.push_back(o.loss);
    }
    detail::GaussianProcess gp;
    gp.fit(x, y, d, rng);
    // The incumbent is the best posterior mean at an observed point: with noisy losses the lowest raw
    // observation is often a lucky draw, and EI around it would stop exploring.
    double best = std::numeric_limits<double>::infinity();
    for (std::size_t i = 0; i < done.size(); ++i) {
      double m, s;
      gp.predict(&x[i * d], m, s);
      best = std::min(best, m);
    }
    if (!pending.empty()) {
      std::vector<double> px, py;
      const double lie = std::accumulate(y.begin(), y.end(), 0.0) / static_cast<double>(y.size());
      for (const auto& p : pending) {
        std::vector<double> u = space_.encode(p);
        px.insert(px.end(), u.begin(), u.end());
        py.push_back(lie);
      }
      gp.condition_on(px, py);
    }
    auto ei = [&](const std::vector<double>& u) {
      double m, s;
      gp.predict(u.data(), m, s);
      const double z = (best - m) / s;
      return (best - m) * normal_cdf(z) + s * normal_pdf(z);
    };

    std::uniform_real_distribution<double> unit(0.0, 1.0);
    std::normal_distribution<double> gauss(0.0, 1.0);
    std::vector<std::pair<double, std::vector<double>>> cands;
    auto add = [&](std::vector<double> u) {
      u = space_.project(u);
      cands.emplace_back(ei(u), std::move(u));
    };
    for (int c = 0; c < opt_.gp_candidates; ++c) {
      std::vector<double> u(d);
      for (auto& v : u) v = unit(rng);
      add(std::move(u));
    }
    // Candidates near the best observed points, where EI is usually highest late in a search.
    std::vector<std::size_t> order(done.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return y[a] < y[b]; });
    for (std::size_t r = 0; r < std::min<std::size_t>(5, order.size()); ++r)
      for (int c = 0; c < 100; ++c) {
        std::vector<double> u(x.begin() + order[r] * d, x.begin() + (order[r] + 1) * d);
        for (auto& v : u) v = std::clamp(v + 0.05 * gauss(rng), 0.0, 1.0);
        add(std::move(u));
      }
    std::sort(cands.begin(), cands.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    // Local refinement of the best few by shrinking random perturbations.
    const std::size_t top = std::min<std::size_t>(5, cands.size());
    for (std::size_t t = 0; t < top; ++t) {
      auto& [f, u] = cands[t];
      double sigma = 0.1;
      for (int it = 0; it < 60; ++it) {
        std::vector<double> v = u;
        for (auto& c : v) c = std::clamp(c + sigma * gauss(rng), 0.0, 1.0);
        v = space_.project(v);
        const double fv = ei(v);
        if (fv > f) f = fv, u = std::move(v);
        else if (it % 10 == 9) sigma *= 0.5;
      }
    }
    std::size_t arg = 0;
    for (std::size_t t = 1; t < top; ++t)
      if (cands[t].first > cands[arg].first) arg = t;
    return space_.decode(cands[arg].second);
  }

 private:
  SearchSpace space_;
  OptimizerOptions opt_;
};

}  // namespace

std::unique_ptr<Optimizer> make_gp_optimizer(const SearchSpace& space, const OptimizerOptions& options) {
  return std::make_unique<GpOptimizer>(space, options);
}

}  // namespace bluewhale::tune
