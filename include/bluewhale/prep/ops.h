// Feature-engineering operators: fit on the training rows, then transform any rows the same way.
//
// Life of an operator inside the prep pipeline (src/prep/pipeline.cpp):
//   1. create_op() builds it from its recipe entry ({op: categorify, columns: [...], min_count: 2, ...});
//   2. plan() updates the column layout it will see (names, roles, kinds, cardinality) so that later
//      operators and the dataset writer know the output schema before any data is read;
//   3. if needs_fit(): begin_fit(threads), then fit_chunk(chunk, thread_id) from several threads on
//      different chunks (in any order; results must not depend on the order), or, for a fit split into
//      parts (fit_parts() > 0) on several threads, fit_chunk_part(chunk, part, thread, sole) for every
//      chunk and part, each part mostly on one owner thread; then end_fit();
//   4. transform(chunk) from several threads at once (const, no shared mutable state).
//   5. save_state()/load_state() persist what fit learned, with the dataset, so `--apply-to` maps new
//      files with the same dictionaries and statistics.
// Operators see chunks that already went through every earlier operator.
//
// The operators (`bluewhale prep --help-op NAME` prints each one's parameters, from op_help()):
//   fill_missing {columns, value=0}        kFloat: NaN -> value
//   clip {columns, min, max}               kFloat: bound to [min, max]; NaN stays NaN
//   log1p {columns, negative=symmetric}    kFloat: x -> log(1+x) for x >= 0. Negative values (Criteo's I2
//                                          has some) are not an error by default: `symmetric` maps x < 0 to
//                                          -log(1-x), monotonic and continuous at 0; `missing` makes them
//                                          NaN; `error` throws InputError naming column, row and value.
//   missing_indicator {columns, suffix=_missing}
//                                          kFloat/kInt -> adds kFloat name+suffix: 1 where the value is missing
//                                          (NaN, or invalid for kInt), else 0. Put it before fill_missing.
//   bucketize {columns, boundaries | num_buckets, sample_size, seed}
//                                          kFloat -> kInt categorical: 0 missing, else 1 + (number of edges
//                                          <= x). num_buckets places edges at quantiles of a bottom-k row
//                                          sample (smallest mix64(global_row ^ seed)) of training rows.
//   hash {columns, buckets, seed}          kInt/kList keys -> 0 missing, else 1 + mix64(key ^ seed) % (buckets-1)
//   categorify {columns, min_count, max_size, order, memory_mb}
//                                          kInt/kList keys -> 0 missing, 1 rare or unseen, 2.. kept values by
//                                          descending training count (ties: smaller key) or by first
//                                          appearance (smallest global row; ties: smaller key). Counting
//                                          spills sorted runs to OpContext::temp_dir past its budget.
//   count_encode / frequency_encode {columns, suffix}
//                                          kInt -> adds kFloat name+suffix: training count (or count / training
//                                          rows) of the value; 0 when missing or unseen
//   target_encode {columns, target, folds, smoothing, seed, suffix}
//                                          kInt -> adds kFloat name+suffix: (sum_y + smoothing * prior) /
//                                          (count + smoothing); out-of-fold (fold = mix64(global_row ^ seed) %
//                                          folds) for training rows when transform(fitted_rows = true); the
//                                          prior (and missing/unseen values) = mean target of training rows
//   cross {columns (>= 2 kInt), buckets, out, seed}
//                                          adds kInt categorical `out` (default A_x_B): 0 if any input is
//                                          missing, else 1 + chain-mixed keys % (buckets - 1)
//   select {columns} / drop {columns}      keep (in the given order) / remove columns
// Fitted results are identical for any thread count and chunk order (integer accumulators, sorted
// merges, deterministic tie-breaks).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bluewhale/core/config.h"
#include "bluewhale/data/column.h"

namespace bluewhale {

class BinaryWriter;
class BinaryReader;

// The schema as it flows through the pipeline: one entry per live column, in output order.
struct ColumnInfo {
  std::string name;
  Role role = Role::kDense;
  ColumnKind kind = ColumnKind::kFloat;
  int64_t cardinality = 0;  // see Column::cardinality
};

struct PlanState {
  std::vector<ColumnInfo> columns;
  ColumnInfo* find(const std::string& name);
  // Throws ConfigError "<where>: no column 'x' (did you mean 'y'?)".
  ColumnInfo& get(const std::string& name, const std::string& where);
};

// Options shared by all operators, fixed for one prep run.
struct OpContext {
  int threads = 1;
  // Directory for spill files of fits that exceed their memory budget.
  std::string temp_dir = "/tmp";
  // Memory budget in bytes for one operator's fit state before it spills to temp_dir.
  int64_t memory_budget = int64_t{4} << 30;
  // Bytes of input text the fit will see in all (plain text inputs: their sizes), 0 when not known
  // (compressed input). With Chunk::text_bytes it tells a fit how far through the input it is.
  int64_t input_bytes = 0;
};

class Op {
 public:
  virtual ~Op() = default;
  // The operator's recipe name ("categorify").
  virtual std::string name() const = 0;
  // "recipes/x.yaml:14: ops[3] (categorify)": where this operator was declared, for error messages.
  const std::string& where() const { return where_; }

  // Columns read and written (written = created or modified), for fit staging.
  virtual std::vector<std::string> inputs() const = 0;
  virtual std::vector<std::string> outputs() const = 0;

  // Throws ConfigError (naming where()) for a missing column or a column of the wrong kind. Operators
  // whose output cardinality is learned (categorify) report 0 before fit; calling plan() again after
  // end_fit() or load_state() reports the fitted cardinality.
  virtual void plan(PlanState& state) const = 0;

  virtual bool needs_fit() const { return false; }
  virtual void begin_fit(const OpContext& /*ctx*/) {}
  // Only rows whose split is kTrain (chunk.split empty or == 0) are to be counted.
  virtual void fit_chunk(const Chunk& /*chunk*/, int /*thread_id*/) {}
  // A fit whose state splits into independent parts (categorify: one per column) may report them here;
  // the pipeline then hands each chunk to the fit part by part, through fit_chunk_part instead of
  // fit_chunk. Mostly a part has one owner thread that counts it in every chunk (`sole`: this thread
  // gets every later chunk of the part), so that each part's state is built by one thread (one counting
  // table per column instead of one per column and thread); a part may also go to whichever thread has
  // the chunk (`sole` false), as with fit_chunk. 0: fit_chunk only.
  virtual int fit_parts() const { return 0; }
  // The columns part `part` reads, all of them; empty when not known. A pipeline may then parse only
  // those columns of a chunk for the thread that fits the part.
  virtual std::vector<std::string> fit_part_inputs(int /*part*/) const { return {}; }
  // How many entries part `part`'s fit state holds on thread `thread_id` so far (categorify: distinct
  // keys counted), -1 when not known; a pipeline may share the parts out by it. Called from that thread.
  virtual int64_t fit_part_size(int /*part*/, int /*thread_id*/) const { return -1; }
  virtual void fit_chunk_part(const Chunk& /*chunk*/, int /*part*/, int /*thread_id*/, bool /*sole*/) {}
  virtual void end_fit() {}

  // `fitted_rows` is true when transforming the very rows fit() saw (the prep run itself): operators
  // that use labels (target encoding) then use out-of-fold statistics for training rows.
  virtual void transform(Chunk& chunk, bool fitted_rows) const = 0;

  virtual void save_state(BinaryWriter& /*out*/) const {}
  virtual void load_state(BinaryReader& /*in*/) {}

  // After fit() in this run (not load_state): an id from which every id of output `column` up to its
  // cardinality occurs in the values transform(chunk, true) gives over all the rows fit() saw, so the
  // dataset writer need not mark those ids to count them (DatasetWriter::assume_ids_present); -1 when
  // not known. Categorify: 2, every kept value occurring in the training rows.
  virtual int64_t ids_present_from(const std::string& /*column*/) const { return -1; }

  // A short human summary of what fit learned ("C3: 1.2M values kept of 10.1M, min_count 2").
  virtual std::string summary() const { return ""; }

  void set_where(std::string w) { where_ = std::move(w); }

 private:
  std::string where_;
};

// Builds an operator from its recipe entry (a map with key `op`). Throws ConfigError for unknown
// operators (naming the nearest) or bad parameters.
std::unique_ptr<Op> create_op(const ConfigNode& node, const OpContext& ctx);

// Names of all registered operators, for --help and suggestions.
std::vector<std::string> op_names();
// Parameter help text for one operator.
std::string op_help(const std::string& name);

}  // namespace bluewhale
