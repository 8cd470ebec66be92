// Training the DLRM a recipe describes: what `bluewhale train` runs, as a library call so that other
// drivers (the tuner) train exactly the same way.
#pragma once

#include <functional>

#include "bluewhale/core/config.h"
#include "bluewhale/models/dlrm.h"
#include "bluewhale/train/trainer.h"

namespace bluewhale {

// The recipe's `model:` section as a validated DlrmConfig (nullptr or null node: the defaults). `type`,
// when present, must be dlrm (ConfigError naming the line otherwise).
DlrmConfig dlrm_config_from_recipe(const ConfigNode* model_node);

struct DlrmRecipeRun {
  const ConfigNode* model = nullptr;  // the recipe's model: section (nullptr: defaults)
  const ConfigNode* train = nullptr;  // the recipe's train: section (nullptr: defaults)
  int threads = 0;                    // > 0 overrides train.threads
  TrainRunOptions run;                // resume, callbacks (model_config is filled in here)
  // Called with the parsed options before validation (e.g. a tuner turning off live progress).
  std::function<void(TrainOptions&)> adjust;
  // Called once the model is built, before training (e.g. to print its size).
  std::function<void(const DlrmModel&, const TrainOptions&)> on_model;
};

// Builds the DLRM for the dataset (dense count and table sizes from it) and trains it into out_dir.
// ConfigError for bad sections or a dataset without dense columns; the trainer's errors pass through.
TrainReport train_dlrm_recipe(const Dataset& ds, const fs::path& out_dir, DlrmRecipeRun spec);

}  // namespace bluewhale
