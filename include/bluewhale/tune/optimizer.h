// Optimizers propose configurations of a SearchSpace from the trials seen so far. Every optimizer
// minimises one scalar loss per trial (the tuner turns maximised and multiple objectives into it).
//
//   random  uniform sampling (log parameters uniform in log space): the baseline
//   gp      Gaussian-process Bayesian optimisation: Matern 5/2 kernel with one length scale per unit-cube
//           coordinate, signal and noise variances fitted by maximising the marginal likelihood; expected
//           improvement maximised over random and local candidates. Candidates are projected onto real
//           configurations (integers rounded, categoricals one-hot), so the model never scores points
//           that cannot be run. Running trials enter as "constant liars" (the mean observed loss), which
//           spreads parallel proposals apart.
//   tpe     Tree-structured Parzen estimator (Bergstra et al. 2011), univariate as in Optuna's default:
//           per parameter, a Parzen density of the best gamma(n) trials over that of the rest; the best
//           of n_ei_candidates draws from the good density wins. Conditional parameters use only the
//           trials in which they were active.
//
// Suggestions are deterministic for a given seed, history and pending list.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bluewhale/tune/space.h"

namespace bluewhale::tune {

// One finished trial as the optimizer sees it.
struct Observation {
  json params;   // an active-parameter configuration of the space
  double loss;   // finite; lower is better
};

struct OptimizerOptions {
  int n_initial = 0;        // random proposals before modelling; 0: per algorithm (gp: max(5, dims + 2), tpe: 10)
  int n_ei_candidates = 24; // tpe: draws scored per parameter
  int gp_candidates = 2000; // gp: random candidates per proposal before local refinement
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // Proposes the next configuration. `pending`: configurations being evaluated now.
  virtual json suggest(const std::vector<Observation>& done, const std::vector<json>& pending, Rng& rng) = 0;
};

// "random", "gp" or "tpe"; ConfigError naming the nearest for anything else.
std::unique_ptr<Optimizer> make_optimizer(const std::string& name, const SearchSpace& space,
                                          const OptimizerOptions& options = {});
const std::vector<std::string>& optimizer_names();

// Internals exposed for tests.
namespace detail {
// Matern 5/2 correlation at scaled distance r >= 0.
double matern52(double r);
// In-place Cholesky of a symmetric positive-definite n x n row-major matrix (lower triangle written);
// false when not positive definite.
bool cholesky(std::vector<double>& a, std::size_t n);

// A fitted GP over unit-cube points (exposed so tests can check the fit).
class GaussianProcess {
 public:
  // x: n points of dimension d (row-major, n*d), y: n losses. Standardises y and fits the hyperparameters.
  void fit(const std::vector<double>& x, const std::vector<double>& y, std::size_t d, Rng& rng);
  // Adds points with fixed hyperparameters (constant liars).
  void condition_on(const std::vector<double>& x, const std::vector<double>& y);
  // Posterior mean and standard deviation of the loss (original units) at one point.
  void predict(const double* x, double& mean, double& sd) const;
  const std::vector<double>& length_scales() const { return length_; }
  double noise() const { return noise_; }
  // Negative log marginal likelihood of the standardised data for log hyperparameters
  // (d length scales, signal variance, noise variance); +inf when the matrix is not positive definite.
  double nll(const std::vector<double>& log_theta) const;
  double y_mean() const { return y_mean_; }
  double y_sd() const { return y_sd_; }

 private:
  void factor();
  std::size_t d_ = 0, n_ = 0;
  std::vector<double> x_, y_;  // y_ standardised
  std::vector<double> length_;
  double signal_ = 1, noise_ = 1e-4, y_mean_ = 0, y_sd_ = 1;
  std::vector<double> chol_, alpha_;
};
}  // namespace detail

}  // namespace bluewhale::tune
