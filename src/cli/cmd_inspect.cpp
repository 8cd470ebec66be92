#include <cmath>
#include <cstdio>
#include <string>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/loader/loader.h"
#include "commands.h"

namespace bluewhale::cli {
namespace {

Split parse_split(const std::string& s) {
  if (s == "train") return Split::kTrain;
  if (s == "valid") return Split::kValid;
  if (s == "test") return Split::kTest;
  BW_THROW(ConfigError, "bluewhale inspect: --split expects train, valid or test, got '", s, "'");
}

std::string stat_text(const DatasetColumn& c) {
  const ColumnStats& s = c.stats;
  char buf[160];
  double miss = s.rows ? 100.0 * double(s.missing) / double(s.rows) : 0.0;
  if (c.role == Role::kCategorical || c.role == Role::kMulti || c.role == Role::kSequence) {
    std::snprintf(buf, sizeof buf, "ids seen %-9s missing %5.1f%%", s.distinct >= 0 ? std::to_string(s.distinct).c_str() : "-",
                  miss);
  } else {
    std::snprintf(buf, sizeof buf, "min %-10.4g max %-10.4g mean %-10.4g missing %5.1f%%", s.min, s.max, s.mean, miss);
  }
  return buf;
}

void print_rows(const Dataset& ds, Split split, int64_t n) {
  if (ds.num_shards(split) == 0 || n <= 0) return;
  ShardView v = ds.open_shard(split, 0);
  n = std::min(n, v.rows());
  std::printf("\nfirst %lld rows of %s (ids after the fitted pipeline):\n", (long long)n, std::string(split_name(split)).c_str());
  for (int64_t r = 0; r < n; ++r) {
    std::string line = "  ";
    for (std::size_t k = 0; k < ds.columns().size(); ++k) {
      const DatasetColumn& c = ds.columns()[k];
      int col = static_cast<int>(k);
      std::string val;
      switch (c.dtype) {
        case DType::kF32: {
          char b[32];
          std::snprintf(b, sizeof b, "%.4g", v.f32(col)[r]);
          val = b;
          break;
        }
        case DType::kI32: val = std::to_string(v.ids(col)[r]); break;
        case DType::kI64: {
          int64_t x = v.i64(col)[r];
          val = x == INT64_MIN ? "NA" : std::to_string(x);
          break;
        }
        case DType::kListI32: {
          auto off = v.offsets(col);
          auto vals = v.values(col);
          val = "[";
          for (int64_t j = off[r]; j < off[r + 1]; ++j) val += (j > off[r] ? "," : "") + std::to_string(vals[j]);
          val += "]";
          break;
        }
      }
      line += c.name + "=" + val + (k + 1 < ds.columns().size() ? " " : "");
    }
    std::printf("%s\n", line.c_str());
  }
}

}  // namespace

int cmd_inspect(int argc, char** argv) {
  Args args("bluewhale inspect", "bluewhale inspect DATASET [options]",
            "Shows a dataset written by 'bluewhale prep': format, splits and shards, columns with their role,\n"
            "storage type, cardinality and statistics, the fitted pipeline, and a few decoded rows.");
  args.positional("DATASET", "dataset directory")
      .option("rows", "decoded rows to show", "5")
      .option("split", "split to show rows from and to benchmark the loader on", "train")
      .flag("verify", "verify every shard's checksums and id ranges")
      .flag("loader-bench", "measure the loader's sustained rows/s on the split")
      .option("batch", "batch size for --loader-bench", "2048")
      .option("threads", "threads for --verify", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale inspect: expected one DATASET directory; see --help");
  Dataset ds = Dataset::open(args.positionals()[0]);
  Split split = parse_split(args.get("split"));

  std::printf("dataset %s (format %d, %s)\n", ds.root().string().c_str(), ds.format_version(), ds.created_by().c_str());
  int64_t total_bytes = 0;
  for (int s = 0; s < kNumSplits; ++s) {
    int64_t bytes = 0;
    for (const auto& sh : ds.shards(Split(s))) bytes += sh.bytes;
    total_bytes += bytes;
    std::printf("  %-5s %12lld rows  %4d shard(s)  %s\n", std::string(split_name(Split(s))).c_str(),
                (long long)ds.split_rows(Split(s)), ds.num_shards(Split(s)), format_bytes(double(bytes)).c_str());
  }
  std::printf("  total %s on disk\n\ncolumns (%zu):\n", format_bytes(double(total_bytes)).c_str(), ds.columns().size());
  for (const auto& c : ds.columns()) {
    std::printf("  %-18s %-12s %-9s %-12s %s\n", c.name.c_str(), std::string(role_name(c.role)).c_str(),
                std::string(dtype_name(c.dtype)).c_str(), c.cardinality ? std::to_string(c.cardinality).c_str() : "",
                stat_text(c).c_str());
  }
  const auto& p = ds.pipeline();
  if (p.is_object() && p.contains("ops") && p["ops"].is_array()) {
    std::printf("\npipeline:");
    for (const auto& op : p["ops"])
      if (op.is_object() && op.contains("op") && op["op"].is_string()) std::printf(" %s", op["op"].get<std::string>().c_str());
    std::printf("\n");
    if (p.contains("inputs") && p["inputs"].is_array()) {
      std::printf("fitted on:");
      for (const auto& f : p["inputs"])
        if (f.is_string()) std::printf(" %s", f.get<std::string>().c_str());
      std::printf("\n");
    }
  }
  print_rows(ds, split, args.get_int("rows"));

  if (args.flag_set("verify")) {
    int threads = resolve_threads(static_cast<int>(args.get_int("threads")));
    int64_t checked = 0;
    for (int s = 0; s < kNumSplits; ++s) {
      parallel_for_dynamic(ds.num_shards(Split(s)), threads, [&](int64_t i, int) { ds.open_shard(Split(s), static_cast<int>(i), true); });
      checked += ds.num_shards(Split(s));
    }
    std::printf("\nverified %lld shard(s): checksums and id ranges ok\n", (long long)checked);
  }
  if (args.flag_set("loader-bench")) {
    LoaderOptions lo;
    lo.split = split;
    lo.batch_size = args.get_int("batch");
    BW_CHECK(lo.batch_size > 0, ConfigError, "bluewhale inspect: --batch must be positive");
    BW_CHECK(ds.split_rows(split) > 0, ConfigError, "bluewhale inspect: split '", split_name(split), "' is empty");
    int64_t batches = (ds.split_rows(split) + lo.batch_size - 1) / lo.batch_size;
    double rps = measure_loader_throughput(ds, lo, batches);
    std::printf("\nloader: %s rows/s sustained (split %s, batch %lld, shuffled, prefetching)\n", format_count(rps).c_str(),
                std::string(split_name(split)).c_str(), (long long)lo.batch_size);
  }
  return 0;
}

}  // namespace bluewhale::cli
