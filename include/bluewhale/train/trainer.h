// The model-agnostic trainer: drives any Model (include/bluewhale/models/model.h) over a Dataset with the
// Loader, evaluates, checkpoints and writes the final model directory.
//
//   TrainOptions opt = TrainOptions::params().parse(recipe.at("train"));
//   TrainReport r = train(model, Dataset::open("data/criteo"), opt, "runs/dlrm1", {.model_config = cfg});
//
// Output directory (created if missing):
//   metrics.jsonl    one JSON object per evaluation, appended as they happen:
//                    {"step","samples","seconds","epoch","auc","logloss","accuracy","train_loss"}
//                    (epoch: fractional epochs of training samples seen; train_loss: mean training loss
//                    over the steps since the previous evaluation)
//   checkpoint.bin   every checkpoint_every steps, atomically replaced: model state + trainer state
//   model.bin        the final parameters (kModelFileTag, model name, then Model::save)
//   model.json       written last (its presence marks a finished run): model name and config, dataset
//                    path and pipeline reference, final metrics, options, format version
//
// Determinism: batches come from the Loader seeded by TrainOptions::seed, so with a model that is
// deterministic for its thread count (threads = 1 always is) a run is reproducible, and a run resumed
// from a checkpoint reaches the same parameters and metrics as an uninterrupted one.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "bluewhale/core/config.h"
#include "bluewhale/core/io.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/models/model.h"

namespace bluewhale {

// Version of checkpoint.bin, model.bin and model.json; readers accept this version and older.
inline constexpr uint32_t kTrainFormatVersion = 1;
inline constexpr const char* kCheckpointTag = "train-checkpoint";
inline constexpr const char* kModelFileTag = "model";

// The recipe's `train:` section.
struct TrainOptions {
  int64_t epochs = 1;
  int64_t max_steps = 0;          // 0: no step limit (epochs decide)
  int64_t batch_size = 128;
  int64_t eval_batch_size = 16384;
  int threads = 0;                // <= 0: all available
  int64_t seed = 0;               // loader shuffle seed
  bool shuffle = true;
  int64_t eval_every = 0;         // steps between evaluations; 0: only at the end
  std::string eval_split = "valid";  // valid falls back to test when the dataset's valid split is empty
  double target_auc = 0;          // > 0: stop once an evaluation reaches it
  int64_t checkpoint_every = 0;   // steps between checkpoints; 0: none
  double log_every_s = 10;        // seconds between live progress lines (rewritten in place on a terminal)

  static const ParamTable<TrainOptions>& params();
  // Checks cross-field constraints ParamTable cannot express; ConfigError naming the option.
  void validate() const;
  nlohmann::json to_json() const;
};

// Scores of one split.
struct EvalReport {
  std::string split;       // "valid", "test", "train"
  int64_t rows = 0;
  double auc = 0;          // exact ROC AUC (NaN when one class is absent)
  double logloss = 0;      // mean binary cross-entropy, nats
  double accuracy = 0;     // at threshold 0.5
  double seconds = 0;
  double samples_per_second = 0;
  nlohmann::json to_json() const;
};

// Scores every row of `split` in dataset order (no shuffle) with model.predict in batches of batch_size.
// InputError when the dataset has no label column or the split is empty; the metrics' own InputErrors
// (labels other than 0/1, NaN scores) pass through.
EvalReport evaluate(Model& model, const Dataset& ds, Split split, int64_t batch_size, int threads);

// The split that eval_split names for this dataset (valid falls back to test when valid is empty);
// nullopt when the chosen split has no rows.
std::optional<Split> resolve_eval_split(const Dataset& ds, const std::string& eval_split);

struct TrainRunOptions {
  // Continue from out_dir/checkpoint.bin when it exists (a fresh run otherwise). The checkpoint must come
  // from the same model type, batch_size, seed and shuffle setting (ConfigError naming the option).
  bool resume = false;
  // Stored verbatim as "config" in model.json, so that the model can be rebuilt for eval/predict.
  nlohmann::json model_config = nlohmann::json::object();
  // Called after every evaluation (for tuners); not part of the checkpointed state.
  std::function<void(int64_t step, const EvalReport&)> on_eval;
  // Called after on_eval; returning true ends training after this evaluation, with the model written as
  // usual and TrainReport::stopped_by_caller set (a tuner stopping an unpromising trial).
  std::function<bool(int64_t step, const EvalReport&)> should_stop;
};

struct TrainReport {
  int64_t steps = 0;             // global steps done (including those before a resume)
  int64_t samples = 0;           // training samples consumed
  int64_t resumed_from_step = 0; // 0 when the run started fresh
  double epochs = 0;             // fractional epochs of training data seen
  double seconds = 0;            // wall time of this call
  double samples_per_second = 0; // over the steps of this call
  double train_loss = 0;         // mean training loss since the previous evaluation
  int evaluations = 0;           // lines in metrics.jsonl
  bool stopped_early = false;    // target_auc reached
  bool stopped_by_caller = false;  // TrainRunOptions::should_stop returned true
  bool has_eval = false;         // false when the dataset has no evaluation rows
  EvalReport final_eval;         // the last evaluation
};

// Trains `model` (see the file comment). Throws ConfigError for bad options, InputError for data problems
// and for a NaN/infinite loss (naming the step and suggesting a lower learning rate; the last checkpoint
// stays intact), FormatError for a truncated, corrupted or foreign checkpoint when resuming (nothing in
// out_dir is modified then).
TrainReport train(Model& model, const Dataset& ds, const TrainOptions& opt, const fs::path& out_dir,
                  const TrainRunOptions& run = {});

// Writes out_dir/model.bin (model name + Model::save), atomically.
void save_model_file(const Model& model, const fs::path& path);
// Reads a model.bin written by save_model_file into `model`; FormatError when it belongs to another model
// type, is truncated, foreign or of a newer version.
void load_model_file(Model& model, const fs::path& path);

}  // namespace bluewhale
