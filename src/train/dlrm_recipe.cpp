#include "bluewhale/train/dlrm_recipe.h"

#include <algorithm>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {

DlrmConfig dlrm_config_from_recipe(const ConfigNode* node) {
  static const ConfigNode kNull;
  const ConfigNode& n = node ? *node : kNull;
  if (const ConfigNode* type = n.find("type"))
    BW_CHECK(type->as_scalar() == "dlrm", ConfigError, type->where(), ": unknown model type '", type->as_scalar(),
             "'; available: dlrm");
  DlrmConfig c = DlrmConfig::params().parse(n, {"type"});
  c.validate();
  return c;
}

TrainReport train_dlrm_recipe(const Dataset& ds, const fs::path& out_dir, DlrmRecipeRun spec) {
  static const ConfigNode kNull;
  DlrmConfig cfg = dlrm_config_from_recipe(spec.model);
  TrainOptions topt = TrainOptions::params().parse(spec.train ? *spec.train : kNull);
  if (spec.threads > 0) topt.threads = spec.threads;
  if (spec.adjust) spec.adjust(topt);
  topt.validate();
  const int threads = resolve_threads(topt.threads);
  BW_CHECK(!ds.dense_columns().empty(), ConfigError, "train: DLRM needs at least one dense column in ",
           ds.root().string());
  // Decay fractions become steps for this run: the trainer's loader keeps a short last batch.
  const int64_t train_rows = ds.split_rows(Split::kTrain);
  int64_t total_steps = topt.epochs * std::max<int64_t>(1, (train_rows + topt.batch_size - 1) / topt.batch_size);
  if (topt.max_steps > 0) total_steps = std::min(total_steps, topt.max_steps);
  cfg = cfg.with_total_steps(total_steps);
  const std::vector<int64_t> sizes = ds.sparse_cardinalities();
  DlrmModel model(cfg, static_cast<int64_t>(ds.dense_columns().size()), sizes, threads);
  if (spec.on_model) spec.on_model(model, topt);
  spec.run.model_config = {{"model_yaml", spec.model ? spec.model->to_yaml() : std::string("{}")},
                           {"num_dense", ds.dense_columns().size()},
                           {"table_sizes", sizes}};
  fs::create_directories(out_dir);
  return train(model, ds, topt, out_dir, spec.run);
}

}  // namespace bluewhale
