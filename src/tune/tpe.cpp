// TPE: see include/bluewhale/tune/optimizer.h. Numeric parameters are modelled in their unit coordinate
// (so log parameters get log-space densities) with truncated Gaussian kernels; categoricals with smoothed
// counts.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "bluewhale/tune/optimizer.h"

namespace bluewhale::tune {
namespace {

double normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }

// A Parzen estimator on [0, 1]: the prior N(0.5, 1) plus one truncated Gaussian kernel per observation.
struct Parzen {
  std::vector<double> mu, sigma, weight;

  // obs: unit coordinates in trial order.
  explicit Parzen(const std::vector<double>& obs) {
    // As Optuna's univariate TPE: the prior's centre joins the sorted points; a bandwidth is the larger
    // gap to a neighbour (the domain ends count), except that the outermost points use their inner gap;
    // clipped to [1 / min(100, points + 1), 1]; the prior keeps bandwidth 1.
    const std::size_t n = obs.size();
    mu = obs;
    mu.push_back(0.5);
    std::vector<std::size_t> order(mu.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return mu[a] < mu[b]; });
    std::vector<double> ends{0.0};
    for (std::size_t k : order) ends.push_back(mu[k]);
    ends.push_back(1.0);
    const std::size_t m = mu.size();
    sigma.assign(m, 1.0);
    const double min_sigma = 1.0 / std::min<double>(100.0, 1.0 + static_cast<double>(m));
    for (std::size_t r = 0; r < m; ++r) {
      double s = std::max(ends[r + 1] - ends[r], ends[r + 2] - ends[r + 1]);
      if (ends.size() >= 4 && r == 0) s = ends[2] - ends[1];
      if (ends.size() >= 4 && r + 1 == m) s = ends[m] - ends[m - 1];
      sigma[order[r]] = std::clamp(s, min_sigma, 1.0);
    }
    sigma[n] = 1.0;
    // Weights: older trials fade once there are more than 25 (Optuna's default_weights); the prior
    // weighs as one trial.
    weight.assign(m, 1.0);
    if (n > 25)
      for (std::size_t k = 0; k + 25 < n; ++k)
        weight[k] = 1.0 / static_cast<double>(n) +
                    (1.0 - 1.0 / static_cast<double>(n)) * static_cast<double>(k) / static_cast<double>(std::max<std::size_t>(1, n - 26));
    const double total = std::accumulate(weight.begin(), weight.end(), 0.0);
    for (auto& w : weight) w /= total;
  }

  double sample(Rng& rng) const {
    std::discrete_distribution<std::size_t> pick(weight.begin(), weight.end());
    const std::size_t k = pick(rng);
    std::normal_distribution<double> g(mu[k], sigma[k]);
    for (int t = 0; t < 100; ++t) {
      const double v = g(rng);
      if (v >= 0 && v <= 1) return v;
    }
    return std::clamp(mu[k], 0.0, 1.0);
  }

  double log_pdf(double x) const {
    double p = 0;
    for (std::size_t k = 0; k < mu.size(); ++k) {
      const double z = (x - mu[k]) / sigma[k];
      const double mass = normal_cdf((1.0 - mu[k]) / sigma[k]) - normal_cdf((0.0 - mu[k]) / sigma[k]);
      p += weight[k] * std::exp(-0.5 * z * z) / (sigma[k] * std::sqrt(2 * M_PI) * std::max(mass, 1e-12));
    }
    return std::log(std::max(p, 1e-300));
  }
};

class TpeOptimizer : public Optimizer {
 public:
  TpeOptimizer(const SearchSpace& space, const OptimizerOptions& o) : space_(space), opt_(o) {
    if (opt_.n_initial <= 0) opt_.n_initial = 10;
  }
  std::string name() const override { return "tpe"; }

  json suggest(const std::vector<Observation>& done, const std::vector<json>&, Rng& rng) override {
    if (static_cast<int>(done.size()) < opt_.n_initial) return space_.sample(rng);
    std::vector<std::size_t> order(done.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return done[a].loss < done[b].loss; });
    // gamma(n) = min(ceil(0.1 n), 25), Optuna's default split.
    const std::size_t n_below = std::min<std::size_t>(25, (done.size() + 9) / 10);
    std::vector<bool> below(done.size(), false);
    for (std::size_t r = 0; r < n_below; ++r) below[order[r]] = true;

    json out = json::object();
    for (std::size_t i = 0; i < space_.size(); ++i) {
      if (!space_.is_active(i, out)) continue;
      const ParamSpec& p = space_.params()[i];
      if (p.type == ParamType::kCategorical) {
        const std::size_t k = p.choices.size();
        std::vector<double> lw(k, 1.0), gw(k, 1.0);  // prior weight 1 per choice
        for (std::size_t t = 0; t < done.size(); ++t) {
          auto it = done[t].params.find(p.name);
          if (it == done[t].params.end() || !it->is_string()) continue;
          auto c = std::find(p.choices.begin(), p.choices.end(), it->get<std::string>());
          if (c == p.choices.end()) continue;
          (below[t] ? lw : gw)[c - p.choices.begin()] += 1.0;
        }
        const double ls = std::accumulate(lw.begin(), lw.end(), 0.0), gs = std::accumulate(gw.begin(), gw.end(), 0.0);
        std::discrete_distribution<std::size_t> pick(lw.begin(), lw.end());
        std::size_t best = 0;
        double best_score = -std::numeric_limits<double>::infinity();
        for (int c = 0; c < opt_.n_ei_candidates; ++c) {
          const std::size_t v = pick(rng);
          const double score = std::log(lw[v] / ls) - std::log(gw[v] / gs);
          if (score > best_score) best_score = score, best = v;
        }
        out[p.name] = p.choices[best];
      } else {
        std::vector<double> lo, hi;
        for (std::size_t t = 0; t < done.size(); ++t) {
          auto it = done[t].params.find(p.name);
          if (it == done[t].params.end() || !it->is_number()) continue;
          (below[t] ? lo : hi).push_back(space_.to_unit(i, it->get<double>()));
        }
        const Parzen l(lo), g(hi);
        double best_u = 0.5, best_score = -std::numeric_limits<double>::infinity();
        for (int c = 0; c < opt_.n_ei_candidates; ++c) {
          const double u = l.sample(rng);
          const double score = l.log_pdf(u) - g.log_pdf(u);
          if (score > best_score) best_score = score, best_u = u;
        }
        const double v = space_.from_unit(i, best_u);
        if (p.type == ParamType::kInt) out[p.name] = static_cast<int64_t>(std::clamp(std::round(v), p.low, p.high));
        else out[p.name] = v;
      }
    }
    return out;
  }

 private:
  SearchSpace space_;
  OptimizerOptions opt_;
};

}  // namespace

std::unique_ptr<Optimizer> make_tpe_optimizer(const SearchSpace& space, const OptimizerOptions& options) {
  return std::make_unique<TpeOptimizer>(space, options);
}

}  // namespace bluewhale::tune
