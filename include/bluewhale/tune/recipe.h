// Tuning from recipes: the `tune:` section, substituting a trial's parameters into a recipe, the DLRM
// objective (trains through train_dlrm_recipe, the library call behind `bluewhale train`) and the advisor
// that proposes a starting configuration and search space from the dataset and the machine.
//
//   tune:
//     algorithm: gp            # gp | tpe | random
//     budget: 30               # trials in the study
//     parallel: 2              # trials at once; the threads are split between them
//     seed: 0
//     n_initial: 0             # random trials before modelling (0: per algorithm)
//     objectives: [...]        # see space.h; DLRM metrics: auc, logloss, accuracy, seconds,
//                              # samples_per_second
//     params: [...]            # see space.h; names are recipe key paths (model.lr, train.batch_size)
//     early_stopping: {type: asha, eta: 3, min_steps: 200, min_trials: 3}   # type none: off
#pragma once

#include <string>
#include <vector>

#include "bluewhale/core/config.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/tune/tuner.h"

namespace bluewhale::tune {

struct TuneSection {
  SearchSpace space;
  std::vector<ObjectiveSpec> objectives;
  TuneOptions options;  // algorithm, budget, parallel, seed, early stopping, optimizer
};

// Parses a `tune:` section; ConfigError naming file:line and the key for unknown keys, bad values, an
// empty or contradictory space, budget < 1.
TuneSection parse_tune_section(const ConfigNode& node);

// The recipe with every parameter of `params` set at its key path ("model.lr" -> model: {lr: ...});
// missing sections and keys are created. Setting model.dim also sets the last bottom-MLP size, which DLRM
// requires to equal the embedding dimension.
ConfigNode with_params(const ConfigNode& recipe, const json& params);

// DLRM metrics a tune objective can name.
const std::vector<std::string>& dlrm_metric_names();

struct DlrmObjectiveOptions {
  fs::path data;                         // prepared dataset
  ConfigNode recipe;                     // base recipe (model: and train: sections used)
  std::vector<ObjectiveSpec> objectives; // names from dlrm_metric_names()
  fs::path trials_dir;                   // each trial trains into trials_dir/trial-<id>
};

// An objective that trains DLRM with the trial's parameters. The first objective is reported after every
// evaluation (train.eval_every) for early stopping; a target on an `auc` objective becomes the training's
// own target_auc unless the recipe sets one. ConfigError at construction for an unknown metric name.
ObjectiveFn dlrm_objective(const DlrmObjectiveOptions& options);

// The machine as the advisor sees it.
struct Hardware {
  int cores = 1;              // available_threads()
  int64_t memory_bytes = 0;   // available memory (cgroup limit when lower)
  int mpi_ranks = 1;          // from the MPI launcher's environment (OMPI_COMM_WORLD_SIZE, PMI_SIZE)
  static Hardware detect();
};

struct AdviceItem {
  std::string key;     // recipe key path, e.g. model.dim
  std::string value;   // YAML text
  std::string reason;  // one line
};

struct Advice {
  std::vector<AdviceItem> items;   // the proposed starting configuration
  std::vector<std::string> notes;  // further one-line remarks (per-table dimensions, time estimate)
  std::string recipe;              // an editable recipe: model, train and tune sections with reasons
};

// Advice for DLRM on a prepared dataset: embedding dimension from the tables' cardinalities, batch size
// and learning rate from the training rows and cores, MLP sizes, evaluation cadence, threads, parallel
// trials fitting in memory, a per-trial step budget from `trial_minutes`, and the search ranges around it.
Advice advise_dlrm(const Dataset& ds, const Hardware& hw, int budget = 30, double trial_minutes = 10);

}  // namespace bluewhale::tune
