// Simple regret of our optimizers on standard test functions: one JSON line per (function, algorithm,
// seed) with the regret after every evaluation. bench/tune/run.sh runs it next to Optuna's TPE
// (optuna_bench.py) and summarises both (summarize.py).
//
//   tune_bench [--functions branin,hartmann6,rosenbrock4-noisy] [--algorithms gp,tpe,random]
//              [--seeds 10] [--evals 50]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/tune/test_functions.h"

using namespace bluewhale;
using namespace bluewhale::tune;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) out.push_back(part);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::string functions = "branin,hartmann6,rosenbrock4-noisy", algorithms = "gp,tpe,random";
  int seeds = 10, evals = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--functions")) functions = argv[i + 1];
    else if (!std::strcmp(argv[i], "--algorithms")) algorithms = argv[i + 1];
    else if (!std::strcmp(argv[i], "--seeds")) seeds = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--evals")) evals = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "tune_bench: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  try {
    for (const auto& fname : split(functions)) {
      const TestFunction f = test_function(fname);
      for (const auto& algo : split(algorithms))
        for (int s = 0; s < seeds; ++s) {
          const auto t0 = std::chrono::steady_clock::now();
          const std::vector<double> trace = regret_trace(f, algo, evals, static_cast<uint64_t>(s));
          const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          std::printf("{\"function\": \"%s\", \"algorithm\": \"bluewhale-%s\", \"seed\": %d, \"seconds\": %.3f, \"regret\": [",
                      fname.c_str(), algo.c_str(), s, secs);
          for (std::size_t i = 0; i < trace.size(); ++i) std::printf("%s%.10g", i ? ", " : "", trace[i]);
          std::printf("]}\n");
          std::fflush(stdout);
        }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "tune_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
