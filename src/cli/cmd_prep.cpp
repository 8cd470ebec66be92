#include <malloc.h>

#include <cstdio>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/log.h"
#include "bluewhale/prep/ops.h"
#include "bluewhale/prep/pipeline.h"
#include "core/zero_buffer.h"
#include "commands.h"

namespace bluewhale::cli {

int cmd_prep(int argc, char** argv) {
  // prep allocates and frees chunk-sized buffers (text, parsed columns) pass after pass. glibc serves
  // those from fresh mappings and returns them at free(), so each pass paid first-touch page faults again
  // (~2k faults, microseconds each on virtual machines). Kept in the heap instead, later passes reuse
  // them. A batch process: holding freed memory until exit costs nothing.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // The parsed chunks' columns and the other heap buffers on huge pages where ordinary fresh pages cost
  // more (core/zero_buffer.h); before any worker thread exists.
  const HeapAdvice heap = advise_heap_huge_pages(std::size_t{64} << 20);
  Args args("bluewhale prep",
            "bluewhale prep --recipe RECIPE.yaml --input FILE... --out DIR [options]\n"
            "       bluewhale prep --apply-to DATASET --input FILE... --out DIR [options]",
            "Streams raw click logs through the recipe's schema and operators on all threads and writes a\n"
            "columnar dataset (meta.json + checksummed shards + the fitted pipeline). Inputs may be larger\n"
            "than memory and gzip or zstd compressed; they must be files, not pipes (each is read once per\n"
            "pass). With --apply-to, the dictionaries and statistics\n"
            "fitted for an earlier dataset are reused unchanged (nothing is refitted).");
  args.option("recipe", "recipe YAML with input, schema, ops, split and output sections")
      .option("input", "raw input files, in order", "", true)
      .option("out", "output dataset directory (written atomically)")
      .option("apply-to", "reuse the fitted pipeline of this dataset instead of fitting")
      .option("split-as", "with --apply-to: the split every row goes to (train, valid, test)", "test")
      .option("threads", "worker threads (0 = all available)", "0")
      .option("memory-mb", "fit-state budget per operator before it spills to disk", "4096")
      .option("cache-mb",
              "compressed input only: parsed rows kept in memory between passes instead of decompressing "
              "again, MiB (default: a quarter of RAM; plain text is parsed again)")
      .option("map-mb",
              "plain input only: files mapped into memory and parsed in place, shared by the passes, up to "
              "this total, MiB; the rest is read, as is a file whose pages cost more to touch through a "
              "mapping than to read (default: half of RAM; 0: read every file)")
      .option("fit-sharing",
              "how two threads share the first fit pass: chunks, columns, or auto (columns when the two CPUs "
              "are far apart, e.g. vCPUs on two core complexes, but within 410 ns a cache-line round trip); "
              "same results",
              "auto")
      .option("temp-dir", "directory for spill files (default: next to --out)")
      .option("report", "also write the summary as JSON to this file")
      .flag("overwrite", "replace --out if it exists")
      .flag("quiet", "no progress lines")
      .flag("list-ops", "list the recipe operators with their parameters, then exit");
  if (!args.parse(argc, argv, 2)) return 0;
  if (args.flag_set("list-ops")) {
    for (const auto& name : op_names()) std::printf("%s\n%s\n", name.c_str(), op_help(name).c_str());
    return 0;
  }
  BW_CHECK(args.positionals().empty(), ConfigError, "bluewhale prep: unexpected argument '", args.positionals()[0],
           "' (input files go after --input)");

  PrepOptions opt;
  opt.inputs = args.values("input");
  BW_CHECK(!opt.inputs.empty(), ConfigError, "bluewhale prep: missing required option --input FILE...");
  opt.out = args.require("out");
  opt.threads = static_cast<int>(args.get_int("threads"));
  opt.overwrite = args.flag_set("overwrite");
  opt.memory_mb = args.get_int("memory-mb");
  BW_CHECK(opt.memory_mb >= 16, ConfigError, "bluewhale prep: --memory-mb must be at least 16");
  opt.temp_dir = args.get("temp-dir");
  // MiB budgets, turned into bytes (<< 20) later: 2^40 MiB (an exbibyte) is past any machine and keeps
  // that shift in range.
  auto mib_budget = [&](const char* name, int64_t& value) {
    if (args.has(name)) value = args.get_int(name);
    BW_CHECK(value >= 0 && value <= (int64_t{1} << 40), ConfigError, "bluewhale prep: --", name,
             " must be between 0 and 2^40 MiB, got ", value);
  };
  mib_budget("cache-mb", opt.cache_mb);
  mib_budget("map-mb", opt.map_mb);
  const std::string sharing = args.get("fit-sharing");
  BW_CHECK(sharing == "auto" || sharing == "chunks" || sharing == "columns", ConfigError,
           "bluewhale prep: --fit-sharing expects auto, chunks or columns, got '", sharing, "'");
  opt.fit_sharing = sharing == "chunks"    ? PrepOptions::FitSharing::kChunks
                    : sharing == "columns" ? PrepOptions::FitSharing::kColumns
                                           : PrepOptions::FitSharing::kAuto;
  opt.progress = !args.flag_set("quiet");
  if (opt.progress == false) set_log_level(LogLevel::kWarn);

  Recipe recipe;
  if (args.has("apply-to")) {
    opt.apply_to = args.get("apply-to");
    std::string s = args.get("split-as");
    BW_CHECK(s == "train" || s == "valid" || s == "test", ConfigError,
             "bluewhale prep: --split-as expects train, valid or test, got '", s, "'");
    opt.apply_split = s == "train" ? Split::kTrain : s == "valid" ? Split::kValid : Split::kTest;
    recipe = load_dataset_recipe(opt.apply_to);
    if (args.has("recipe")) log_warn("prep: --recipe ignored: the recipe stored in ", opt.apply_to.string(), " is used");
  } else {
    recipe = load_recipe(args.require("recipe"));
  }

  log_debug("prep: a fresh page cost ", static_cast<int64_t>(heap.ns_per_page), " ns: heap ",
            heap.advised ? "advised for huge pages" : "left on ordinary pages");
  PrepReport report = run_prep(recipe, opt);
  std::printf("prepared %s\n%s", opt.out.string().c_str(), report.to_text().c_str());
  if (args.has("report")) write_file_atomic(args.get("report"), report.to_json() + "\n");
  return 0;
}

}  // namespace bluewhale::cli
