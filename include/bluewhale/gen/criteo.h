// `bluewhale gen criteo`: a synthetic click log in the Criteo Kaggle DAC text format, with a planted
// click model whose best achievable AUC is known.
//
// Output: one row per line, 40 tab-separated fields:
//   label (0/1) \t I1..I13 (decimal integers, I2 may be negative) \t C1..C26 (8 lowercase hex digits)
// An empty field is a missing value. The marginals follow the public Criteo sample: per-column missing
// rates (with the real co-missing groups, e.g. I1 and I10 always missing together), integer quantiles
// (many zeros and small counts, heavy tails), and per-column vocabularies as large as the Kaggle
// cardinalities with Zipf-Mandelbrot frequencies (exponents ~1.0-1.3 on the big columns) fitted to the
// sample's top-value share and distinct count.
//
// Labels are Bernoulli(p) with logit(p) = bias + per-value effects of 22 categorical columns (larger for
// frequent values, small for the tail) + effects of log1p(I) and of missing I values + three rank-4 dot
// interactions between categorical pairs (what DLRM's interaction layer can learn) + one dense x
// categorical interaction. Per seed, the signal is scaled so that the expected best AUC is 0.80 and the
// bias is set so that the click rate is 0.245 (both calibrated on a fixed 65,536-row sample).
//
// Determinism: rows are generated in blocks of kCriteoBlockRows with a random stream per (seed, block),
// so the file is byte-identical for any thread count, and the first N rows of a longer run equal an
// N-row run with the same seed.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace bluewhale {

namespace fs = std::filesystem;

inline constexpr int kCriteoDense = 13;
inline constexpr int kCriteoCategorical = 26;
inline constexpr int kCriteoFields = 1 + kCriteoDense + kCriteoCategorical;
// Rows per generation block (the unit of parallel work and of random streams). Part of the output
// definition: changing it changes every file.
inline constexpr int64_t kCriteoBlockRows = 16384;

struct CriteoGenOptions {
  int64_t rows = 0;            // rows to write, >= 1
  uint64_t seed = 1;           // selects the click model and the sampled rows
  int threads = 0;             // <= 0: all available; the output does not depend on it
  double test_fraction = 0.1;  // the last fraction of rows that best_auc_test is computed on, in [0, 1)
  fs::path out;                // output file; ".gz" suffix -> gzip (one member per block), else plain text
  int gzip_level = 1;          // zlib level 1..9 for .gz output; 1 is several times faster than 6
  bool progress = true;        // print a progress line on stderr (log level info)
};

// What was generated; also written as JSON to "<out>.truth.json" (see criteo_report_json()).
struct CriteoGenReport {
  fs::path out, truth_path;
  uint64_t seed = 0;
  int64_t rows = 0;
  int64_t test_rows = 0;             // rows in the trailing test split
  double click_rate = 0;             // fraction of label 1 over all rows
  double click_rate_test = 0;        // same over the test split
  double bias = 0;                   // calibrated intercept of the click model (logit units)
  double signal_scale = 0;           // calibrated multiplier of the planted signal (sets the best AUC)
  double best_auc_all = 0;           // roc_auc(true p, labels) over all rows: the ceiling for any model
  double best_auc_test = 0;          // same over the test split (NaN when it has one class or no rows)
  double best_log_loss_test = 0;     // log loss of the true p on the test split
  double seconds = 0;                // wall time of generate_criteo
  int64_t bytes = 0;                 // size of the written file (compressed size for .gz)
  int64_t text_bytes = 0;            // size of the uncompressed text
  std::vector<double> missing_rate;  // per field I1..I13, C1..C26 (39), observed fraction of empty fields
  std::vector<int64_t> vocab_per_column;     // C1..C26: target cardinality (the Kaggle cardinalities)
  std::vector<int64_t> distinct_per_column;  // C1..C26: distinct values present in this file
};

// Generates the file described by opts. Writes to "<out>.tmp.<pid>" and renames over `out`, so readers
// never see a partial file; then writes the sidecar "<out>.truth.json" the same way.
// Throws ConfigError for rows < 1, test_fraction outside [0, 1) or a bad gzip level; IoError when the
// output cannot be created or written (the temporary file is removed).
// Memory: 8 bytes per row (true probabilities and labels for the AUC) plus ~40 MB per thread (block
// buffers and a distinct-value bitmap).
CriteoGenReport generate_criteo(const CriteoGenOptions& opts);

// The report as the JSON object stored in the sidecar file (pretty-printed).
std::string criteo_report_json(const CriteoGenReport& report);

// The planted truth without writing anything: for rows [0, rows) of the stream for `seed`, the true
// click probability and the label (0/1) of each row, exactly as generate_criteo() draws them. For tests
// and for checking a trained model against the ceiling. threads <= 0: all available.
struct CriteoTruth {
  std::vector<float> prob;   // (rows) true P(click)
  std::vector<float> label;  // (rows) 0 or 1
  double bias = 0;           // the calibrated intercept
  double scale = 0;          // the calibrated signal multiplier
};
CriteoTruth criteo_truth(int64_t rows, uint64_t seed, int threads = 0);

// Target missing rate of each field I1..I13, C1..C26 (39 values), measured on the public sample.
const std::array<double, kCriteoDense + kCriteoCategorical>& criteo_target_missing_rates();
// Target cardinality of C1..C26.
const std::array<int64_t, kCriteoCategorical>& criteo_vocab_sizes();

}  // namespace bluewhale
