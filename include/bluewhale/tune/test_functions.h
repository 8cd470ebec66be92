// Standard optimisation test functions for the tuner's tests and bench/tune (all minimised):
//   branin       2-D on [-5, 10] x [0, 15], minimum 0.397887 (three global minima)
//   hartmann6    6-D on [0, 1]^6, minimum -3.32237
//   rosenbrock4  4-D on [-2, 2]^4, minimum 0 at (1, 1, 1, 1); optional Gaussian observation noise
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "bluewhale/tune/optimizer.h"

namespace bluewhale::tune {

struct TestFunction {
  std::string name;
  SearchSpace space;                                  // parameters x0, x1, ... (float)
  double minimum;                                     // the true global minimum
  std::function<double(const std::vector<double>&)> f;  // noiseless value at a point
  double noise_sd = 0;                                // observation noise of the benchmarked version
};

// "branin", "hartmann6", "rosenbrock4" (noise_sd 0) or "rosenbrock4-noisy" (noise_sd 1);
// ConfigError for another name.
TestFunction test_function(const std::string& name);

// The point of a configuration of a test function's space (x0, x1, ... in order).
std::vector<double> test_point(const TestFunction& fn, const json& params);

// Runs `evals` sequential suggestions of `algorithm` on fn with the given seed; the observed loss carries
// the function's noise. Returns the simple regret after each evaluation: the noiseless value of the best
// point evaluated so far minus the minimum (best judged on noiseless values, as benchmarks do).
std::vector<double> regret_trace(const TestFunction& fn, const std::string& algorithm, int evals, uint64_t seed,
                                 const OptimizerOptions& options = {});

}  // namespace bluewhale::tune
