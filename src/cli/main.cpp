// The `bluewhale` command: one binary, one subcommand per capability.
#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <string>

#include "bluewhale/core/error.h"
#include "bluewhale/core/config.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/version.h"
#include "bluewhale/nn/blas.h"
#include "commands.h"

namespace {

constexpr const char* kUsage =
    "usage: bluewhale COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  prep      raw click logs (TSV/CSV, gzip, zstd) -> fitted features -> columnar dataset\n"
    "  gen       generate synthetic data: click logs with a known best AUC (gen criteo), vectors (gen vectors)\n"
    "  inspect   show a dataset: schema, sizes, cardinalities, statistics, a few decoded rows\n"
    "  train     train the recipe's model (DLRM) on a dataset: metrics, checkpoints, final model\n"
    "  eval      exact AUC, logloss and accuracy of a trained model on a dataset split\n"
    "  predict   score raw rows with a trained model (applies the fitted prep pipeline first)\n"
    "  index     nearest-neighbour indexes for recall: build, search, bench (hnsw, flat, ivf_sq8)\n"
    "  bench     time DLRM training steps on random data (bench train)\n"
    "  tune      tune a recipe (or a command) by Bayesian optimisation: tune, tune status|best|export|report|advise\n"
    "  version   print the version\n"
    "\n"
    "Run 'bluewhale COMMAND --help' for the options of a command.\n";

}  // namespace

int main(int argc, char** argv) {
  using namespace bluewhale;
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  // Commands that run dense layers or exact search load OpenBLAS here, before any thread starts (a restart
  // replaces the process, see bluewhale/nn/blas.h); the others never load it.
  const bool uses_blas = cmd == "train" || cmd == "eval" || cmd == "bench" || cmd == "predict" || cmd == "index" ||
                         cmd == "tune" || cmd == "version" || cmd == "--version";
  try {
    if (uses_blas) {
      blas_restart_with_better_kernels(argv);
      blas_single_thread();
    }
    if (cmd == "prep") return cli::cmd_prep(argc, argv);
    if (cmd == "gen") return cli::cmd_gen(argc, argv);
    if (cmd == "inspect") return cli::cmd_inspect(argc, argv);
    if (cmd == "train") return cli::cmd_train(argc, argv);
    if (cmd == "eval") return cli::cmd_eval(argc, argv);
    if (cmd == "bench") return cli::cmd_bench(argc, argv);
    if (cmd == "predict") return cli::cmd_predict(argc, argv);
    if (cmd == "index") return cli::cmd_index(argc, argv);
    if (cmd == "tune") return cli::cmd_tune(argc, argv);
    if (cmd == "version" || cmd == "--version") {
      std::printf("bluewhale %s\nsimd: %s\nblas: OpenBLAS, '%s' kernels, %d thread(s) per call\n", kVersion,
                  std::string(simd_level_name(simd_level())).c_str(), std::string(blas_core()).c_str(),
                  blas_threads());
      return 0;
    }
    std::string near =
        nearest(cmd, {"prep", "gen", "inspect", "train", "eval", "predict", "index", "bench", "tune", "version"});
    std::fprintf(stderr, "bluewhale: unknown command '%s'%s\n\n%s", cmd.c_str(),
                 near.empty() ? "" : (" (did you mean '" + near + "'?)").c_str(), kUsage);
    return 2;
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "bluewhale %s: error: %s\n", cmd.c_str(), e.what());
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "bluewhale %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "bluewhale %s: error: out of memory\n", cmd.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bluewhale %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}
