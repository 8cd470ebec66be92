// `bluewhale prep`: raw text logs -> fitted feature pipeline -> columnar dataset.
//
// A recipe (YAML) has the sections
//   input:  how the text is laid out (see InputFormat)       schema: column names and roles
//   ops:    the operators, applied in order (see prep/ops.h)  split:  train/valid/test assignment
//   output: dataset options                                  model, train, ...: read by other commands
// run_prep() streams the inputs once per fit stage (an operator that needs the output of another fitted
// operator waits one pass) and once more to transform and write; memory stays bounded by the chunk size,
// the threads, and the operators' fitted state, whatever the input size.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bluewhale/core/config.h"
#include "bluewhale/core/io.h"
#include "bluewhale/data/column.h"
#include "bluewhale/prep/schema.h"

namespace bluewhale {

// How rows are assigned to train/valid/test.
struct SplitSpec {
  std::string by = "ratio";  // ratio | file | time | none
  double valid = 0.0, test = 0.0;           // by ratio: fractions, chosen per row by a seeded hash
  uint64_t seed = 0;
  std::vector<std::string> valid_files, test_files;  // by file: input paths or basenames
  std::string column;                       // by time: a timestamp-role column
  int64_t valid_from = 0, test_from = 0;    // by time: rows with time >= test_from are test, >= valid_from valid
};

struct Recipe {
  std::string path;        // where it was read from ("" for a recipe stored in a dataset)
  std::string text;        // the YAML text, stored with the dataset
  ConfigNode root;
  InputSchema input;
  std::vector<ConfigNode> ops;
  SplitSpec split;
  int64_t shard_rows = 1 << 20;
};

// Parses and validates the prep sections of a recipe (unknown top-level keys are errors naming the nearest
// one). Operators are checked for existence and parameters here, before any data is read.
Recipe parse_recipe(const std::string& text, const std::string& source);
Recipe load_recipe(const std::string& path);

// A quarter of physical memory (or of the cgroup memory limit when lower), in MiB.
int64_t default_cache_mb();

struct PrepOptions {
  std::vector<std::string> inputs;
  fs::path out;
  int threads = 0;               // <= 0: all available
  bool overwrite = false;
  fs::path apply_to;             // non-empty: reuse this dataset's fitted pipeline, fit nothing
  Split apply_split = Split::kTest;  // with apply_to: every row goes to this split
  int64_t memory_mb = 4096;      // fit-state budget per operator before spilling
  // Parsed rows kept in memory between the fit and the write pass (MiB); what does not fit is read and
  // parsed again. Default: a quarter of the memory this process may use.
  int64_t cache_mb = default_cache_mb();
  // Plain input files mapped into memory (InputMaps: parsed in place, the mapping shared by the passes)
  // while their total stays within this many MiB; the rest is read with read(). 0: read every file.
  // Default: half the memory this process may use.
  int64_t map_mb = 2 * default_cache_mb();
  std::string temp_dir;          // spill directory; default: next to the output
  bool progress = true;
  // How two threads share a first fit pass whose fits split into parts (categorify's columns). By chunks:
  // each thread parses chunks in turn and counts its own columns of every chunk, whoever parsed it. By
  // columns (prep/column_split.h): both read every chunk and parse only their own columns; nothing moves
  // between their cores, at the price of scanning every chunk twice. Auto: by columns when the process
  // has two CPUs that are far apart right now, but not farther than kColumnsUpToNs (cpu_round_trip_ns in
  // (kFarRoundTripNs, kColumnsUpToNs]), else by chunks. Other thread counts always go by chunks. Results
  // are the same. Why the upper bound: on one host, whose vCPUs read 340-410 ns apart when on two core
  // complexes, by columns saved ~20 % of the pass; on another, reading 430-510 ns, by chunks was 12-18 %
  // faster (1M and 5M rows, read or mapped input; 2026-12-05/06). Nothing else measured told them apart.
  // The bound was 420 until the second host's readings dipped to 415-420 in some runs (2 of a bench's 3
  // at 1M chose columns, ~11 ms slower there): 410 is the first host's highest reading.
  enum class FitSharing { kAuto, kChunks, kColumns };
  FitSharing fit_sharing = FitSharing::kAuto;
  static constexpr double kFarRoundTripNs = 200;
  static constexpr double kColumnsUpToNs = 410;
  // Auto's choice for a measured round trip (NaN: not measured): true for by columns.
  static bool columns_for_round_trip(double ns) { return ns > kFarRoundTripNs && ns <= kColumnsUpToNs; }
};

struct PrepColumnSummary {
  std::string name, role;
  int64_t cardinality = 0;
  double missing_rate = 0;  // in the raw input, before any operator
};

struct PrepReport {
  int64_t rows = 0;                 // rows written
  std::array<int64_t, kNumSplits> split_rows{};
  int64_t skipped_rows = 0;         // on_bad_rows: skip
  std::string first_skip_error;
  int64_t input_bytes = 0;
  int passes = 0;
  double seconds = 0, fit_seconds = 0, write_seconds = 0;
  // How the threads shared the first fit pass (PrepOptions::FitSharing): "chunks" or "columns"; empty
  // when it was not shared (one thread, or nothing fitted by parts).
  std::string fit_sharing;
  // How the shards were written (DatasetWriter::write_mode): "page cache" or "direct", and the cost of
  // the page-cache writes measured to choose, in us per MiB (NaN when too little was written).
  std::string shard_writes;
  double page_cache_us_per_mib = 0;
  std::vector<PrepColumnSummary> columns;  // output columns
  std::vector<std::string> op_summaries;
  std::string to_json() const;
  std::string to_text() const;
};

PrepReport run_prep(const Recipe& recipe, const PrepOptions& options);

// Loads the recipe stored with a dataset (for --apply-to and for commands that start from a dataset).
Recipe load_dataset_recipe(const fs::path& dataset);

}  // namespace bluewhale
