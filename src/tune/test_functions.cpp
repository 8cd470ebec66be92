#include "bluewhale/tune/test_functions.h"

#include <cmath>

#include "bluewhale/core/error.h"

namespace bluewhale::tune {
namespace {

double branin(const std::vector<double>& x) {
  const double a = 1, b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, r = 6, s = 10, t = 1 / (8 * M_PI);
  const double u = x[1] - b * x[0] * x[0] + c * x[0] - r;
  return a * u * u + s * (1 - t) * std::cos(x[0]) + s;
}

double hartmann6(const std::vector<double>& x) {
  static const double alpha[4] = {1.0, 1.2, 3.0, 3.2};
  static const double A[4][6] = {{10, 3, 17, 3.5, 1.7, 8},
                                 {0.05, 10, 17, 0.1, 8, 14},
                                 {3, 3.5, 1.7, 10, 17, 8},
                                 {17, 8, 0.05, 10, 0.1, 14}};
  static const double P[4][6] = {{0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886},
                                 {0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991},
                                 {0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650},
                                 {0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381}};
  double s = 0;
  for (int i = 0; i < 4; ++i) {
    double e = 0;
    for (int j = 0; j < 6; ++j) e += A[i][j] * (x[j] - P[i][j]) * (x[j] - P[i][j]);
    s += alpha[i] * std::exp(-e);
  }
  return -s;
}

double rosenbrock(const std::vector<double>& x) {
  double s = 0;
  for (std::size_t i = 0; i + 1 < x.size(); ++i)
    s += 100 * std::pow(x[i + 1] - x[i] * x[i], 2) + std::pow(1 - x[i], 2);
  return s;
}

SearchSpace box(const std::vector<std::pair<double, double>>& bounds) {
  std::vector<ParamSpec> p;
  for (std::size_t i = 0; i < bounds.size(); ++i)
    p.push_back(ParamSpec::real("x" + std::to_string(i), bounds[i].first, bounds[i].second));
  return SearchSpace(p);
}

}  // namespace

TestFunction test_function(const std::string& name) {
  if (name == "branin") return {name, box({{-5, 10}, {0, 15}}), 0.397887357729738, branin, 0};
  if (name == "hartmann6") return {name, box(std::vector<std::pair<double, double>>(6, {0, 1})), -3.32236801141551, hartmann6, 0};
  if (name == "rosenbrock4" || name == "rosenbrock4-noisy")
    return {name, box(std::vector<std::pair<double, double>>(4, {-2, 2})), 0.0, rosenbrock,
            name == "rosenbrock4" ? 0.0 : 1.0};
  BW_THROW(ConfigError, "unknown test function '", name, "'; expected branin, hartmann6, rosenbrock4 or rosenbrock4-noisy");
}

std::vector<double> test_point(const TestFunction& fn, const json& params) {
  std::vector<double> x;
  for (const auto& p : fn.space.params()) x.push_back(params.at(p.name).get<double>());
  return x;
}

std::vector<double> regret_trace(const TestFunction& fn, const std::string& algorithm, int evals, uint64_t seed,
                                 const OptimizerOptions& options) {
  auto opt = make_optimizer(algorithm, fn.space, options);
  Rng rng(seed), noise_rng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::vector<Observation> done;
  std::vector<double> trace;
  double best = std::numeric_limits<double>::infinity();
  for (int e = 0; e < evals; ++e) {
    json params = opt->suggest(done, {}, rng);
    const double v = fn.f(test_point(fn, params));
    best = std::min(best, v);
    done.push_back({params, v + fn.noise_sd * noise(noise_rng)});
    trace.push_back(best - fn.minimum);
  }
  return trace;
}

}  // namespace bluewhale::tune
