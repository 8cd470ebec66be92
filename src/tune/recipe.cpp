#include "bluewhale/tune/recipe.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/models/dlrm.h"
#include "bluewhale/train/dlrm_recipe.h"

namespace bluewhale::tune {

// ---- the tune: section -------------------------------------------------------------------------------

TuneSection parse_tune_section(const ConfigNode& node) {
  BW_CHECK(node.is_map(), ConfigError, node.where(), ": expected the tune section as a map");
  node.check_keys({"algorithm", "budget", "parallel", "seed", "n_initial", "objectives", "params", "early_stopping"});
  TuneSection t;
  const ConfigNode* params = node.find("params");
  BW_CHECK(params, ConfigError, node.where(), ": the tune section has no params: the search space is empty");
  t.space = SearchSpace::parse(*params);
  const ConfigNode* obj = node.find("objectives");
  BW_CHECK(obj, ConfigError, node.where(), ": the tune section has no objectives (e.g. [{name: auc, direction: max}])");
  t.objectives = parse_objectives(*obj);
  if (const ConfigNode* a = node.find("algorithm")) {
    t.options.algorithm = a->as_scalar();
    try {
      make_optimizer(t.options.algorithm, t.space);
    } catch (const ConfigError& e) {
      BW_THROW(ConfigError, a->where(), ": ", e.what());
    }
  }
  auto int_in = [&](const char* key, int64_t lo, int64_t def) {
    const ConfigNode* n = node.find(key);
    if (!n) return def;
    const int64_t v = n->as_int();
    BW_CHECK(v >= lo, ConfigError, n->where(), ": expected an integer >= ", lo, ", got '", n->as_scalar(), "'");
    return v;
  };
  t.options.budget = static_cast<int>(int_in("budget", 1, 20));
  t.options.parallel = static_cast<int>(int_in("parallel", 1, 1));
  t.options.seed = static_cast<uint64_t>(int_in("seed", 0, 0));
  t.options.optimizer.n_initial = static_cast<int>(int_in("n_initial", 0, 0));
  if (const ConfigNode* es = node.find("early_stopping")) {
    BW_CHECK(es->is_map(), ConfigError, es->where(), ": expected {type: asha, eta: 3, min_steps: N}");
    es->check_keys({"type", "eta", "min_steps", "min_trials"});
    const std::string type = es->find("type") ? es->at("type").as_scalar() : "asha";
    BW_CHECK(type == "asha" || type == "none", ConfigError, es->at("type").where(), ": expected asha or none, got '",
             type, "'");
    AshaOptions& a = t.options.early_stopping;
    a.enabled = type == "asha";
    if (const ConfigNode* n = es->find("eta")) a.eta = n->as_double();
    if (const ConfigNode* n = es->find("min_steps")) a.min_resource = n->as_int();
    if (const ConfigNode* n = es->find("min_trials")) a.min_trials = static_cast<int>(n->as_int());
    try {
      Asha check(a);
    } catch (const ConfigError& e) {
      BW_THROW(ConfigError, es->where(), ": ", e.what());
    }
  }
  return t;
}

// ---- parameter substitution --------------------------------------------------------------------------

namespace {

std::string yaml_value(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
  return buf;
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream in(path);
  std::string part;
  while (std::getline(in, part, '.')) out.push_back(part);
  return out;
}

ConfigNode set_path(const ConfigNode& node, const std::vector<std::string>& parts, std::size_t i, const ConfigNode& value,
                    const std::string& prefix) {
  if (i == parts.size()) return value;
  BW_CHECK(node.is_map() || node.is_null(), ConfigError, node.where(), ": cannot set tune parameter '",
           str_cat(prefix.empty() ? "" : prefix + ".", parts[i]), "...' inside a ",
           node.is_list() ? "list" : "scalar");
  std::vector<std::pair<std::string, ConfigNode>> entries = node.is_map() ? node.as_map() : decltype(entries){};
  const std::string path = prefix.empty() ? parts[i] : prefix + "." + parts[i];
  bool found = false;
  for (auto& [k, v] : entries)
    if (k == parts[i]) {
      v = set_path(v, parts, i + 1, value, path);
      found = true;
    }
  if (!found) entries.emplace_back(parts[i], set_path(ConfigNode(), parts, i + 1, value, path));
  return ConfigNode::map(std::move(entries), node.source(), node.line(), node.path());
}

}  // namespace

ConfigNode with_params(const ConfigNode& recipe, const json& params) {
  ConfigNode out = recipe;
  for (const auto& [name, v] : params.items()) {
    const auto parts = split_path(name);
    BW_CHECK(!parts.empty(), ConfigError, "tune: empty parameter name");
    out = set_path(out, parts, 0, ConfigNode::scalar(yaml_value(v), "tune parameter", 0, name), "");
  }
  if (params.contains("model.dim")) {
    // DLRM feeds the bottom MLP's output into the dot interaction next to the embeddings, so its last
    // size must follow the tuned dimension.
    const ConfigNode* model = out.find("model");
    std::vector<int64_t> bottom = DlrmConfig().bottom;
    if (model && model->find("bottom")) bottom = config_value<std::vector<int64_t>>(model->at("bottom"));
    bottom.back() = params["model.dim"].get<int64_t>();
    std::vector<ConfigNode> items;
    for (int64_t b : bottom) items.push_back(ConfigNode::scalar(std::to_string(b), "tune parameter", 0, "model.bottom"));
    out = set_path(out, {"model", "bottom"}, 0, ConfigNode::list(std::move(items), "tune parameter", 0, "model.bottom"), "");
  }
  return out;
}

// ---- DLRM objective ----------------------------------------------------------------------------------

const std::vector<std::string>& dlrm_metric_names() {
  static const std::vector<std::string> names{"auc", "logloss", "accuracy", "seconds", "samples_per_second"};
  return names;
}

ObjectiveFn dlrm_objective(const DlrmObjectiveOptions& options) {
  BW_CHECK(!options.objectives.empty(), ConfigError, "tune: DLRM tuning needs at least one objective");
  for (const auto& o : options.objectives) {
    const auto& names = dlrm_metric_names();
    if (std::find(names.begin(), names.end(), o.name) == names.end()) {
      const std::string near = nearest(o.name, names);
      BW_THROW(ConfigError, "tune: objective '", o.name,
               "' is not a DLRM metric; expected auc, logloss, accuracy, seconds or samples_per_second",
               near.empty() ? "" : " (did you mean '" + near + "'?)");
    }
  }
  Dataset::open(options.data);  // fail now, not in every trial
  return [options](TrialContext& ctx) -> std::vector<double> {
    const ConfigNode recipe = with_params(options.recipe, ctx.params());
    const Dataset ds = Dataset::open(options.data);
    const fs::path dir = options.trials_dir / ("trial-" + std::to_string(ctx.id()));
    std::error_code ec;
    fs::remove_all(dir, ec);  // a leftover of an earlier store under the same directory
    ctx.set_model_path(dir.string());
    const ObjectiveSpec& first = options.objectives[0];
    auto metric = [](const std::string& name, const EvalReport& e, const TrainReport* r) {
      if (name == "auc") return e.auc;
      if (name == "logloss") return e.logloss;
      if (name == "accuracy") return e.accuracy;
      if (name == "seconds") return r ? r->seconds : e.seconds;
      return r ? r->samples_per_second : e.samples_per_second;
    };
    DlrmRecipeRun spec;
    spec.model = recipe.find("model");
    spec.train = recipe.find("train");
    spec.threads = ctx.threads();
    spec.adjust = [&](TrainOptions& o) {
      o.log_every_s = std::numeric_limits<double>::infinity();
      for (const auto& obj : options.objectives)
        if (obj.name == "auc" && obj.has_target && o.target_auc == 0) o.target_auc = obj.target;
    };
    spec.run.on_eval = [&](int64_t step, const EvalReport& e) {
      ctx.report(step, metric(first.name, e, nullptr), e.to_json());
    };
    spec.run.should_stop = [&](int64_t, const EvalReport&) { return ctx.pruned(); };
    const TrainReport r = train_dlrm_recipe(ds, dir, spec);
    BW_CHECK(r.has_eval, InputError, "tune: the dataset ", options.data.string(),
             " has no valid or test rows to score the trial on");
    std::vector<double> values;
    for (const auto& o : options.objectives) values.push_back(metric(o.name, r.final_eval, &r));
    return values;
  };
}

// ---- advisor -----------------------------------------------------------------------------------------

namespace {

int64_t memory_available() {
  int64_t bytes = 0;
  std::ifstream mi("/proc/meminfo");
  std::string key;
  int64_t kb;
  std::string unit;
  while (mi >> key >> kb) {
    std::getline(mi, unit);
    if (key == "MemAvailable:") bytes = kb * 1024;
  }
  std::ifstream cg("/sys/fs/cgroup/memory.max");
  std::string lim;
  if (cg >> lim && lim != "max") {
    const int64_t l = std::atoll(lim.c_str());
    if (l > 0 && (bytes == 0 || l < bytes)) bytes = l;
  }
  return bytes;
}

int64_t pow2_round(double v) {
  return int64_t{1} << static_cast<int>(std::lround(std::log2(std::max(1.0, v))));
}

std::string list_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

Hardware Hardware::detect() {
  Hardware h;
  h.cores = available_threads();
  h.memory_bytes = memory_available();
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
    if (const char* v = std::getenv(var); v && std::atoi(v) > 0) {
      h.mpi_ranks = std::atoi(v);
      break;
    }
  return h;
}

Advice advise_dlrm(const Dataset& ds, const Hardware& hw, int budget, double trial_minutes) {
  BW_CHECK(!ds.dense_columns().empty(), ConfigError, "tune advise: DLRM needs at least one dense column in ",
           ds.root().string());
  Advice a;
  const std::vector<int64_t> cards = ds.sparse_cardinalities();
  const std::vector<int> sparse = ds.sparse_columns();
  const int64_t rows = ds.split_rows(Split::kTrain);
  const int64_t num_dense = static_cast<int64_t>(ds.dense_columns().size());
  auto add = [&](std::string key, std::string value, std::string reason) {
    a.items.push_back({std::move(key), std::move(value), std::move(reason)});
  };

  // Embedding dimension: the rule of thumb dim ~ 6 * cardinality^(1/4) (Google's feature-column guide),
  // a power of two in [4, 64]. DLRM shares one dimension across tables, so the row-weighted choice is
  // the dimension of the tables that hold most parameters.
  std::vector<int64_t> per_table;
  double weighted = 0, weight = 0;
  for (std::size_t t = 0; t < cards.size(); ++t) {
    const int64_t d = std::clamp<int64_t>(pow2_round(6.0 * std::pow(static_cast<double>(cards[t]), 0.25)), 4, 64);
    per_table.push_back(d);
    weighted += std::log2(static_cast<double>(d)) * static_cast<double>(cards[t]);
    weight += static_cast<double>(cards[t]);
  }
  int64_t dim = weight > 0 ? std::clamp<int64_t>(int64_t{1} << static_cast<int>(std::lround(weighted / weight)), 4, 64) : 16;
  // Only tables with enough training rows per id can support wide embeddings.
  const int64_t total_ids = std::max<int64_t>(1, std::accumulate(cards.begin(), cards.end(), int64_t{0}));
  while (dim > 4 && static_cast<double>(rows) / static_cast<double>(total_ids) < static_cast<double>(dim) / 16.0) dim /= 2;
  {
    std::string per;
    for (std::size_t t = 0; t < cards.size() && t < 40; ++t)
      per += (t ? ", " : "") + ds.columns()[sparse[t]].name + " " + std::to_string(cards[t]) + "->" + std::to_string(per_table[t]);
    a.notes.push_back("per-table dimension (6 * cardinality^0.25): " + per);
  }
  add("model.dim", std::to_string(dim),
      str_cat("weighted by table size over ", cards.size(), " tables (", format_count(double(total_ids)),
              " ids), halved while there are too few training rows per id"));

  // Per-trial threads and parallel trials: small models scale better across trials than across threads;
  // each trial keeps at least 2 threads, and all trials' models must fit in half the memory.
  const double model_bytes = static_cast<double>(total_ids) * static_cast<double>(dim) * 4.0 * 2.0;  // + optimizer state
  int parallel = std::max(1, hw.cores / 4);
  if (hw.memory_bytes > 0)
    parallel = std::max(1, std::min<int>(parallel, static_cast<int>(0.5 * double(hw.memory_bytes) / std::max(model_bytes, 1.0))));
  const int threads = std::max(1, hw.cores / parallel);
  add("train.threads", std::to_string(threads),
      str_cat(hw.cores, " cores shared by ", parallel, " parallel trial(s)",
              hw.mpi_ranks > 1 ? str_cat(" on each of ", hw.mpi_ranks, " MPI ranks") : std::string()));

  // Batch size: 128 (the DLRM Criteo setting) per 2 threads, so that every thread gets a GEMM large enough
  // to be efficient, but at most 1/200 of the training rows, so an epoch keeps >= 200 updates.
  int64_t batch = std::clamp<int64_t>(pow2_round(64.0 * threads), 128, 4096);
  while (batch > 32 && batch * 200 > rows) batch /= 2;
  add("train.batch_size", std::to_string(batch), str_cat(threads, " threads, ", format_count(double(rows)), " training rows"));
  // Learning rate: SGD 0.1 at batch 128, scaled with sqrt(batch / 128) (Krizhevsky's rule for SGD).
  const double lr = std::min(1.0, 0.1 * std::sqrt(static_cast<double>(batch) / 128.0));
  char lr_text[32];
  std::snprintf(lr_text, sizeof lr_text, "%.3g", lr);
  add("model.lr", lr_text, str_cat("0.1 at batch 128, scaled by sqrt(batch / 128)"));

  // MLPs: the paper's 512-256-64 bottom and 512-256 top need millions of rows; smaller data gets
  // narrower layers that it can fit without overfitting.
  const bool big = rows >= 2000000;
  std::vector<int64_t> bottom = big ? std::vector<int64_t>{512, 256, 64, dim} : std::vector<int64_t>{128, 64, dim};
  std::vector<int64_t> top = big ? std::vector<int64_t>{512, 256, 1} : std::vector<int64_t>{256, 128, 1};
  add("model.bottom", list_text(bottom), str_cat(num_dense, " dense features, ", big ? ">= 2M rows: the paper's sizes" : "< 2M rows: half-width layers"));
  add("model.top", list_text(top), "matches the bottom MLP's scale");

  // Evaluation cadence: about 8 evaluations per epoch gives early stopping a learning curve to judge.
  const int64_t steps_per_epoch = std::max<int64_t>(1, rows / batch);
  const int64_t eval_every = std::max<int64_t>(10, steps_per_epoch / 8);
  add("train.eval_every", std::to_string(eval_every), str_cat(steps_per_epoch, " steps per epoch: ~8 evaluations for early stopping"));

  // Per-trial time budget: estimate the step time from the model's flops at ~2 GFLOP/s per thread (what
  // our kernels sustain on these shapes in bench train) and cap the steps to fit trial_minutes.
  DlrmConfig cfg;
  cfg.dim = dim;
  cfg.bottom = bottom;
  cfg.top = top;
  double flops = 0;
  try {
    DlrmModel probe(cfg, num_dense, std::vector<int64_t>(cards.size(), 1), 1);
    flops = probe.train_flops_per_sample();
  } catch (const Error&) {
    flops = 0;
  }
  const double sec_per_epoch = flops * static_cast<double>(rows) / (2e9 * threads);
  a.notes.push_back(str_cat("estimated ", format_duration(sec_per_epoch), " per epoch per trial (",
                            format_count(flops), " flop/sample at ~2 GFLOP/s per thread)"));
  const int64_t cap = static_cast<int64_t>(trial_minutes * 60.0 / std::max(sec_per_epoch, 1e-9) * static_cast<double>(steps_per_epoch));
  if (sec_per_epoch > trial_minutes * 60.0)
    add("train.max_steps", std::to_string(std::max<int64_t>(eval_every, cap)),
        str_cat("one epoch would take ~", format_duration(sec_per_epoch), ", over the ", trial_minutes, "-minute trial budget"));
  else
    add("train.epochs", "1", str_cat("an epoch fits the ", trial_minutes, "-minute trial budget"));

  // The recipe: model and train sections with the advice, then the tune section with ranges around it.
  std::string r;
  r += "# Written by 'bluewhale tune advise' for " + ds.root().string() + " (" + format_count(double(rows)) +
       " training rows, " + std::to_string(cards.size()) + " tables) on " + std::to_string(hw.cores) + " cores, " +
       format_bytes(double(hw.memory_bytes)) + " memory. Edit freely; every value says why it was chosen.\n";
  std::string model = "model:\n  type: dlrm\n  interaction: dot\n  optimizer: sgd\n  sparse_optimizer: sgd\n";
  std::string train = "train:\n";
  for (const auto& it : a.items) {
    const std::string key = it.key.substr(it.key.find('.') + 1);
    std::string line = "  " + key + ": " + it.value;
    line += std::string(line.size() < 28 ? 28 - line.size() : 1, ' ') + "# " + it.reason + "\n";
    (it.key.rfind("model.", 0) == 0 ? model : train) += line;
  }
  r += model + train;
  char ranges[1024];
  std::snprintf(ranges, sizeof ranges,
                "tune:\n"
                "  algorithm: gp\n"
                "  budget: %d\n"
                "  parallel: %d\n"
                "  objectives:\n"
                "    - {name: auc, direction: max}\n"
                "  early_stopping: {type: asha, eta: 3, min_steps: %lld}\n"
                "  params:\n"
                "    - {name: model.lr, type: float, low: %.3g, high: %.3g, log: true}\n"
                "    - {name: model.dim, type: int, low: %lld, high: %lld, log: true}\n"
                "    - {name: train.batch_size, type: categorical, choices: [%lld, %lld, %lld]}\n"
                "    - {name: model.sparse_optimizer, type: categorical, choices: [sgd, rowwise_adagrad]}\n"
                "    - {name: model.optimizer, type: categorical, choices: [sgd, adagrad]}\n"
                "    - {name: model.weight_decay, type: float, low: 1e-7, high: 1e-3, log: true, when: {model.optimizer: [adagrad]}}\n",
                budget, parallel, static_cast<long long>(eval_every), lr / 10, std::min(3.0, lr * 5),
                static_cast<long long>(std::max<int64_t>(2, dim / 2)), static_cast<long long>(std::min<int64_t>(128, dim * 2)),
                static_cast<long long>(std::max<int64_t>(16, batch / 2)), static_cast<long long>(batch),
                static_cast<long long>(batch * 2));
  r += ranges;
  a.recipe = r;
  return a;
}

}  // namespace bluewhale::tune
