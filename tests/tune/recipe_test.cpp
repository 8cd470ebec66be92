#include "bluewhale/tune/recipe.h"

#include <gtest/gtest.h>

#include <cmath>

#include "bluewhale/gen/criteo.h"
#include "bluewhale/models/dlrm.h"
#include "bluewhale/prep/pipeline.h"
#include "bluewhale/train/trainer.h"
#include "test_util.h"

using namespace bluewhale;
using namespace bluewhale::tune;
using bluewhale::testing::TempDir;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_tune_section(ConfigNode::parse_yaml(yaml, "r.yaml").at("tune"));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

// A small prepared Criteo-like dataset, made once for the whole file.
const fs::path& tiny_criteo() {
  static TempDir dir;
  static fs::path ds = [] {
    CriteoGenOptions g;
    g.rows = 40000;
    g.seed = 3;
    g.threads = 2;
    g.out = dir / "day.tsv";
    g.progress = false;
    generate_criteo(g);
    Recipe r = load_recipe(std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml");
    PrepOptions p;
    p.inputs = {(dir / "day.tsv").string()};
    p.out = dir / "ds";
    p.threads = 2;
    p.progress = false;
    run_prep(r, p);
    return dir / "ds";
  }();
  return ds;
}

const char* kTinyModel = R"(
model: {type: dlrm, dim: 4, bottom: [16, 4], top: [16, 1], lr: 0.05, optimizer: adagrad, sparse_optimizer: rowwise_adagrad}
train: {epochs: 1, batch_size: 128, eval_every: 50, threads: 1}
)";

}  // namespace

TEST(TuneSection, ParsesEveryKey) {
  TuneSection t = parse_tune_section(ConfigNode::parse_yaml(R"(
tune:
  algorithm: tpe
  budget: 12
  parallel: 2
  seed: 4
  objectives: [{name: auc, direction: max, target: 0.8}, {name: seconds, direction: min}]
  early_stopping: {type: asha, eta: 2, min_steps: 50}
  params:
    - {name: model.lr, type: float, low: 0.01, high: 1, log: true}
)", "r.yaml").at("tune"));
  EXPECT_EQ(t.options.algorithm, "tpe");
  EXPECT_EQ(t.options.budget, 12);
  EXPECT_EQ(t.options.parallel, 2);
  EXPECT_EQ(t.options.seed, 4u);
  EXPECT_TRUE(t.options.early_stopping.enabled);
  EXPECT_EQ(t.options.early_stopping.eta, 2);
  EXPECT_EQ(t.options.early_stopping.min_resource, 50);
  ASSERT_EQ(t.objectives.size(), 2u);
  EXPECT_EQ(t.space.size(), 1u);
}

TEST(TuneSection, BadSectionsNameTheLine) {
  const std::string head = "tune:\n  objectives: [{name: auc, direction: max}]\n  params: [{name: a, type: float, low: 0, high: 1}]\n";
  std::string e = error_of(head + "  budget: 0\n");
  EXPECT_NE(e.find("r.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("expected an integer >= 1, got '0'"), std::string::npos) << e;
  e = error_of(head + "  budgte: 5\n");
  EXPECT_NE(e.find("did you mean 'budget'"), std::string::npos) << e;
  e = error_of(head + "  algorithm: bayes\n");
  EXPECT_NE(e.find("r.yaml:4"), std::string::npos) << e;
  EXPECT_NE(e.find("unknown algorithm 'bayes'"), std::string::npos) << e;
  e = error_of(head + "  early_stopping: {type: asha, eta: 1}\n");
  EXPECT_NE(e.find("eta: expected a number > 1"), std::string::npos) << e;
  e = error_of("tune:\n  objectives: [{name: auc, direction: max}]\n");
  EXPECT_NE(e.find("search space is empty"), std::string::npos) << e;
  e = error_of("tune:\n  objectives: [{name: auc, direction: max}]\n  params: []\n");
  EXPECT_NE(e.find("r.yaml:3"), std::string::npos) << e;
}

TEST(WithParams, SetsAndCreatesKeysAndKeepsDimConsistent) {
  ConfigNode base = ConfigNode::parse_yaml(kTinyModel, "base.yaml");
  ConfigNode r = with_params(base, {{"model.lr", 0.025}, {"model.dim", 8}, {"train.batch_size", "128"}, {"eval.x", 1}});
  EXPECT_EQ(r.at("model").at("lr").as_double(), 0.025);
  EXPECT_EQ(r.at("train").at("batch_size").as_int(), 128);
  EXPECT_EQ(r.at("train").at("eval_every").as_int(), 50);  // untouched keys stay
  EXPECT_EQ(r.at("eval").at("x").as_int(), 1);             // created
  DlrmConfig c = DlrmConfig::params().parse(r.at("model"), {"type"});
  EXPECT_EQ(c.dim, 8);
  EXPECT_EQ(c.bottom, (std::vector<int64_t>{16, 8}));
  EXPECT_NO_THROW(c.validate());
  // The original keeps its values and where they came from.
  EXPECT_EQ(base.at("model").at("lr").as_double(), 0.05);
  EXPECT_NE(r.at("train").at("eval_every").where().find("base.yaml"), std::string::npos);
  EXPECT_THROW(with_params(base, {{"model.bottom.x", 1}}), ConfigError);
}

TEST(DlrmObjective, TrialsTrainReportAndFailuresAreRecorded) {
  const fs::path& data = tiny_criteo();
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::categorical("model.lr", {"0.05", "1e12"}),
                                           ParamSpec::integer("model.dim", 2, 8, true)});
  std::vector<ObjectiveSpec> obj{{"auc", Direction::kMaximize}, {"seconds", Direction::kMinimize}};
  DlrmObjectiveOptions o;
  o.data = data;
  o.recipe = ConfigNode::parse_yaml(kTinyModel, "tiny.yaml");
  o.objectives = obj;
  o.trials_dir = dir / "trials";
  ObjectiveFn fn = dlrm_objective(o);
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, obj));
  TuneOptions opt;
  opt.algorithm = "random";
  opt.budget = 6;
  opt.seed = 2;
  opt.parallel = 2;
  opt.threads = 2;
  TuneSummary s = run_study(space, obj, fn, *store, opt);
  EXPECT_EQ(s.trials, 6);
  int ok = 0, failed = 0;
  for (const Trial& t : store->trials()) {
    if (t.params["model.lr"] == "0.05") {
      ASSERT_EQ(t.status, TrialStatus::kComplete) << t.error;
      EXPECT_GT(t.values[0], 0.6);  // the planted signal is learnable
      EXPECT_LT(t.values[0], 0.85);
      EXPECT_GT(t.values[1], 0);
      EXPECT_GE(t.intermediate.size(), 5u);  // eval_every 50 over ~280 steps
      EXPECT_TRUE(fs::exists(fs::path(t.model_path) / "model.json"));
      const auto meta = nlohmann::json::parse(read_file(fs::path(t.model_path) / "model.json"));
      const ConfigNode m = ConfigNode::parse_yaml(meta["config"]["model_yaml"].get<std::string>(), "model_yaml");
      EXPECT_EQ(m.at("dim").as_int(), t.params["model.dim"].get<int>());
      EXPECT_EQ(config_value<std::vector<int64_t>>(m.at("bottom")).back(), t.params["model.dim"].get<int>());
      ++ok;
    } else {
      EXPECT_EQ(t.status, TrialStatus::kFailed);
      EXPECT_FALSE(t.error.empty());
      ++failed;
    }
  }
  EXPECT_GT(ok, 0);
  EXPECT_GT(failed, 0);
}

TEST(DlrmObjective, UnknownMetricIsAConfigError) {
  DlrmObjectiveOptions o;
  o.data = tiny_criteo();
  o.objectives = {{"acu", Direction::kMaximize}};
  try {
    dlrm_objective(o);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'auc'"), std::string::npos) << e.what();
  }
}

TEST(DlrmObjective, AucTargetStopsTheTrainingEarly) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("model.lr", 0.05, 0.1)});
  std::vector<ObjectiveSpec> obj{{"auc", Direction::kMaximize, true, 0.6}};
  DlrmObjectiveOptions o;
  o.data = tiny_criteo();
  o.recipe = ConfigNode::parse_yaml(kTinyModel, "tiny.yaml");
  o.objectives = obj;
  o.trials_dir = dir / "trials";
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, obj));
  TuneOptions opt;
  opt.algorithm = "random";
  opt.budget = 1;
  run_study(space, obj, dlrm_objective(o), *store, opt);
  const Trial t = store->trials().at(0);
  ASSERT_EQ(t.status, TrialStatus::kComplete) << t.error;
  const auto meta = nlohmann::json::parse(read_file(fs::path(t.model_path) / "model.json"));
  EXPECT_TRUE(meta["stopped_early"].get<bool>());
  EXPECT_GE(t.values[0], 0.6);
  EXPECT_LT(t.intermediate.back().first, 280);  // stopped before the end of the epoch
}

TEST(Advisor, ProposesAConsistentEditableRecipe) {
  Dataset ds = Dataset::open(tiny_criteo());
  Hardware hw;
  hw.cores = 8;
  hw.memory_bytes = int64_t{16} << 30;
  Advice a = advise_dlrm(ds, hw, 20, 10);
  std::map<std::string, std::string> items;
  for (const auto& it : a.items) {
    items[it.key] = it.value;
    EXPECT_FALSE(it.reason.empty()) << it.key;
  }
  ASSERT_TRUE(items.count("model.dim") && items.count("train.batch_size") && items.count("model.lr") &&
              items.count("train.threads") && items.count("train.eval_every"));
  const int64_t dim = std::stoll(items["model.dim"]);
  EXPECT_GE(dim, 4);
  EXPECT_LE(dim, 64);
  EXPECT_EQ(dim & (dim - 1), 0);
  // ~36k training rows: the batch leaves >= 200 steps per epoch.
  EXPECT_LE(std::stoll(items["train.batch_size"]) * 200, ds.split_rows(Split::kTrain));
  EXPECT_EQ(items["train.threads"], "4");  // 8 cores, 2 parallel trials
  // The recipe parses: its model and train sections are valid, and so is its tune section.
  ConfigNode r = ConfigNode::parse_yaml(a.recipe, "advice.yaml");
  DlrmConfig c = DlrmConfig::params().parse(r.at("model"), {"type"});
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.dim, dim);
  TrainOptions to = TrainOptions::params().parse(r.at("train"));
  EXPECT_NO_THROW(to.validate());
  TuneSection t = parse_tune_section(r.at("tune"));
  EXPECT_EQ(t.options.budget, 20);
  EXPECT_EQ(t.options.parallel, 2);
  EXPECT_TRUE(t.options.early_stopping.enabled);
  // The advised values lie inside the advised ranges.
  json start = {{"model.lr", std::stod(items["model.lr"])}, {"model.dim", dim},
                {"train.batch_size", items["train.batch_size"]}, {"model.sparse_optimizer", "sgd"}, {"model.optimizer", "sgd"}};
  EXPECT_NO_THROW(t.space.encode(start));
  EXPECT_NE(a.recipe.find("# "), std::string::npos);
}

TEST(TuneSection, ShippedTuneRecipeParsesAndItsStartIsInItsSpace) {
  ConfigNode r = ConfigNode::parse_yaml_file(std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo-tune.yaml");
  TuneSection t = parse_tune_section(r.at("tune"));
  EXPECT_EQ(t.objectives.size(), 2u);
  EXPECT_TRUE(t.objectives[0].has_target);
  EXPECT_NO_THROW(DlrmConfig::params().parse(r.at("model"), {"type"}).validate());
  Rng rng(1);
  for (int i = 0; i < 20; ++i) {
    ConfigNode tr = with_params(r, t.space.sample(rng));
    EXPECT_NO_THROW(DlrmConfig::params().parse(tr.at("model"), {"type"}).validate());
    EXPECT_NO_THROW(TrainOptions::params().parse(tr.at("train")).validate());
  }
}
