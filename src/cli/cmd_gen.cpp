#include <cstdio>
#include <string>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/gen/criteo.h"
#include "commands.h"

namespace bluewhale::cli {

int cmd_gen(int argc, char** argv) {
  if (argc > 2 && std::string(argv[2]) == "vectors") return cmd_gen_vectors(argc, argv);
  Args args("bluewhale gen", "bluewhale gen criteo --rows N --out FILE [options]",
            "Generates synthetic data with a planted model, so that training quality can be judged against a\n"
            "known optimum.\n"
            "  criteo   Kaggle Display Advertising Challenge layout (label, I1..I13, C1..C26 as 8 hex digits,\n"
            "           tab separated), power-law categorical frequencies and Criteo-like missing rates. Reports\n"
            "           the click rate and the best achievable AUC (the AUC of the true click probabilities)\n"
            "           over all rows and over the last --test-fraction of rows; writes FILE.truth.json.\n"
            "           FILE ending in .gz is gzip-compressed.");
  args.positional("KIND", "what to generate: criteo (vectors: see 'bluewhale gen vectors --help')")
      .option("rows", "number of rows")
      .option("out", "output file")
      .option("seed", "random seed (same seed, same bytes, for any thread count)", "1")
      .option("test-fraction", "tail fraction of rows whose best AUC is reported separately", "0.1")
      .option("gzip-level", "zlib level 1..9 for a .gz output", "1")
      .option("threads", "worker threads (0 = all available)", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale gen: expected one KIND (criteo); see --help");
  BW_CHECK(args.positionals()[0] == "criteo", ConfigError, "bluewhale gen: unknown kind '", args.positionals()[0],
           "'; available: criteo, vectors");
  CriteoGenOptions o;
  args.require("rows");
  o.rows = args.get_int("rows");
  BW_CHECK(o.rows > 0, ConfigError, "bluewhale gen: --rows must be positive");
  o.out = args.require("out");
  o.seed = static_cast<uint64_t>(args.get_int("seed"));
  o.threads = static_cast<int>(args.get_int("threads"));
  o.test_fraction = args.get_double("test-fraction");
  o.gzip_level = static_cast<int>(args.get_int("gzip-level"));
  CriteoGenReport r = generate_criteo(o);
  std::printf("generated %s: %lld rows, %s, click rate %.4f\n", o.out.string().c_str(), (long long)r.rows,
              format_bytes(double(r.bytes)).c_str(), r.click_rate);
  std::printf("best achievable AUC (true probabilities): %.4f on all rows, %.4f on the last %.0f%% (test tail)\n",
              r.best_auc_all, r.best_auc_test, 100 * o.test_fraction);
  std::printf("truth written to %s\n", r.truth_path.string().c_str());
  std::printf("time %s, %s rows/s\n", format_duration(r.seconds).c_str(),
              format_count(r.seconds > 0 ? double(r.rows) / r.seconds : 0).c_str());
  return 0;
}

}  // namespace bluewhale::cli
