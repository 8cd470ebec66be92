#include "bluewhale/train/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "bluewhale/core/error.h"
#include "bluewhale/core/metrics.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/train/logistic.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

constexpr int64_t kCard0 = 50, kCard1 = 20;

// A planted logistic problem: label ~ Bernoulli(sigmoid(z)) with z linear in three dense features and
// one weight per id of two categorical columns. Every 5th row goes to valid. Returns the AUC that the
// true z reaches on valid: the best any model can do there.
double make_planted(const fs::path& dir, int64_t rows, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss(0, 1);
  std::uniform_real_distribution<double> unif(0, 1);
  std::vector<double> w0(kCard0), w1(kCard1);
  for (auto& w : w0) w = gauss(rng);
  for (auto& w : w1) w = 0.7 * gauss(rng);
  const double wd[3] = {0.8, -0.5, 0.3};

  Chunk ch;
  ch.rows = rows;
  auto add = [&](const char* name, Role role, ColumnKind kind, int64_t card) { ch.add_column(name, role, kind, card); };
  add("label", Role::kLabel, ColumnKind::kFloat, 0);
  add("d0", Role::kDense, ColumnKind::kFloat, 0);
  add("d1", Role::kDense, ColumnKind::kFloat, 0);
  add("d2", Role::kDense, ColumnKind::kFloat, 0);
  add("c0", Role::kCategorical, ColumnKind::kInt, kCard0);
  add("c1", Role::kCategorical, ColumnKind::kInt, kCard1);
  ch.split.resize(rows);
  std::vector<float> valid_z, valid_y;
  for (int64_t r = 0; r < rows; ++r) {
    double z = -0.4;
    for (int j = 0; j < 3; ++j) {
      const float x = static_cast<float>(gauss(rng));
      ch.columns[1 + j].f[r] = x;
      z += wd[j] * x;
    }
    const int64_t a = static_cast<int64_t>(rng() % kCard0), b = static_cast<int64_t>(rng() % kCard1);
    ch.columns[4].i[r] = a;
    ch.columns[5].i[r] = b;
    z += w0[a] + w1[b];
    const float y = unif(rng) < 1.0 / (1.0 + std::exp(-z)) ? 1.0f : 0.0f;
    ch.columns[0].f[r] = y;
    ch.split[r] = static_cast<uint8_t>(r % 5 == 0 ? Split::kValid : Split::kTrain);
    if (r % 5 == 0) {
      valid_z.push_back(static_cast<float>(z));
      valid_y.push_back(y);
    }
  }
  std::vector<DatasetColumn> cols;
  for (const auto& c : ch.columns) {
    DatasetColumn d;
    d.name = c.name;
    d.role = c.role;
    d.dtype = dtype_for_role(c.role);
    d.cardinality = c.cardinality;
    cols.push_back(d);
  }
  DatasetWriter w(dir, cols, {.shard_rows = 997});
  w.append(ch);
  w.commit();
  return roc_auc(valid_z.data(), valid_y.data(), static_cast<int64_t>(valid_z.size()));
}

TrainRunOptions resume_run() {
  TrainRunOptions r;
  r.resume = true;
  return r;
}

TrainOptions quiet_options() {
  TrainOptions o;
  o.threads = 1;
  o.log_every_s = 1e9;
  return o;
}

std::string model_bytes(const Model& m, const fs::path& dir) {
  const fs::path p = dir / "bytes.bin";
  save_model_file(m, p);
  return read_file(p);
}

std::vector<nlohmann::json> read_metrics(const fs::path& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Metrics lines without the wall-clock field, for run-to-run comparisons.
std::vector<nlohmann::json> timeless(std::vector<nlohmann::json> v) {
  for (auto& j : v) j.erase("seconds");
  return v;
}

// Returns a NaN loss at one chosen step, finite otherwise.
class NanAtStepModel final : public Model {
 public:
  explicit NanAtStepModel(int64_t bad_step) : bad_step_(bad_step) {}
  std::string name() const override { return "nan-stub"; }
  void predict(const Batch& batch, float* logits, int) override { std::fill(logits, logits + batch.size, 0.0f); }
  double train_step(const Batch&, int64_t step, int) override { return step == bad_step_ ? NAN : 0.5; }
  void save(BinaryWriter& out) const override { out.write<int64_t>(bad_step_); }
  void load(BinaryReader& in) override { bad_step_ = in.read<int64_t>(); }
  int64_t parameter_count() const override { return 0; }
  double train_flops_per_sample() const override { return 0; }

 private:
  int64_t bad_step_;
};

TEST(Trainer, LogisticOnPlantedProblemReachesNearOptimalAuc) {
  TempDir tmp;
  const double best = make_planted(tmp / "data", 30000);
  Dataset ds = Dataset::open(tmp / "data");
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.5});
  TrainOptions opt = quiet_options();
  opt.epochs = 4;
  opt.batch_size = 64;
  TrainReport r = train(model, ds, opt, tmp / "run");
  ASSERT_TRUE(r.has_eval);
  EXPECT_EQ(r.final_eval.split, "valid");
  EXPECT_EQ(r.final_eval.rows, 6000);
  EXPECT_GT(best, 0.75);
  EXPECT_NEAR(r.final_eval.auc, best, 0.01) << "planted optimum " << best;
  EXPECT_EQ(r.steps, 4 * ((24000 + 63) / 64));
  EXPECT_EQ(r.samples, 4 * 24000);
}

TEST(Trainer, MetricsJsonlHasOneLinePerEvaluationAndModelDirectoryIsComplete) {
  TempDir tmp;
  make_planted(tmp / "data", 5000);
  Dataset ds = Dataset::open(tmp / "data");
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.3});
  TrainOptions opt = quiet_options();
  opt.batch_size = 32;
  opt.epochs = 3;
  opt.max_steps = 220;
  opt.eval_every = 50;
  TrainRunOptions run;
  run.model_config = {{"lr", 0.3}};
  TrainReport r = train(model, ds, opt, tmp / "run", run);
  EXPECT_EQ(r.steps, 220);
  const auto lines = read_metrics(tmp / "run" / "metrics.jsonl");
  ASSERT_EQ(lines.size(), 5u);  // steps 50, 100, 150, 200 and the final 220
  EXPECT_EQ(r.evaluations, 5);
  const int64_t want[] = {50, 100, 150, 200, 220};
  for (std::size_t i = 0; i < lines.size(); ++i) {
    for (const char* k : {"step", "samples", "seconds", "epoch", "auc", "logloss", "accuracy", "train_loss"})
      EXPECT_TRUE(lines[i].contains(k)) << k;
    EXPECT_EQ(lines[i]["step"].get<int64_t>(), want[i]);
    EXPECT_EQ(lines[i]["samples"].get<int64_t>(), want[i] * 32);
    EXPECT_GT(lines[i]["auc"].get<double>(), 0.5);
    EXPECT_NEAR(lines[i]["epoch"].get<double>(), want[i] * 32 / 4000.0, 1e-9);
  }
  EXPECT_DOUBLE_EQ(lines.back()["auc"].get<double>(), r.final_eval.auc);

  const auto meta = nlohmann::json::parse(read_file(tmp / "run" / "model.json"));
  EXPECT_EQ(meta["model"], "logistic");
  EXPECT_EQ(meta["config"]["lr"], 0.3);
  EXPECT_EQ(meta["format_version"], kTrainFormatVersion);
  EXPECT_EQ(meta["steps"], 220);
  EXPECT_DOUBLE_EQ(meta["metrics"]["auc"].get<double>(), r.final_eval.auc);
  EXPECT_TRUE(meta["dataset"]["path"].get<std::string>().ends_with("data"));
  EXPECT_TRUE(meta["dataset"].contains("pipeline"));

  LogisticModel reloaded = LogisticModel::for_dataset(ds);
  load_model_file(reloaded, tmp / "run" / "model.bin");
  EXPECT_EQ(model_bytes(reloaded, tmp.path()), model_bytes(model, tmp.path()));
  // A model file of another shape is refused.
  LogisticModel other({7}, 3);
  EXPECT_THROW(load_model_file(other, tmp / "run" / "model.bin"), FormatError);
}

TEST(Trainer, EarlyStopAtTargetAucStopsBeforeTheBudget) {
  TempDir tmp;
  const double best = make_planted(tmp / "data", 10000);
  Dataset ds = Dataset::open(tmp / "data");
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.5});
  TrainOptions opt = quiet_options();
  opt.batch_size = 32;
  opt.epochs = 5;
  opt.eval_every = 20;
  opt.target_auc = best - 0.05;
  TrainReport r = train(model, ds, opt, tmp / "run");
  EXPECT_TRUE(r.stopped_early);
  EXPECT_LT(r.steps, 5 * 250);
  EXPECT_EQ(r.steps % 20, 0);
  EXPECT_GE(r.final_eval.auc, opt.target_auc);
  const auto lines = read_metrics(tmp / "run" / "metrics.jsonl");
  ASSERT_FALSE(lines.empty());
  EXPECT_EQ(lines.back()["step"].get<int64_t>(), r.steps);
  for (std::size_t i = 0; i + 1 < lines.size(); ++i) EXPECT_LT(lines[i]["auc"].get<double>(), opt.target_auc);
}

TEST(Trainer, CallerStopEndsTrainingAfterThatEvaluation) {
  TempDir tmp;
  make_planted(tmp / "data", 5000);
  Dataset ds = Dataset::open(tmp / "data");
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.5});
  TrainOptions opt = quiet_options();
  opt.batch_size = 32;
  opt.epochs = 3;
  opt.eval_every = 10;
  std::vector<int64_t> seen;
  TrainRunOptions run;
  run.on_eval = [&](int64_t step, const EvalReport&) { seen.push_back(step); };
  run.should_stop = [](int64_t step, const EvalReport& e) { return step >= 30 && e.rows > 0; };
  TrainReport r = train(model, ds, opt, tmp / "run", run);
  EXPECT_TRUE(r.stopped_by_caller);
  EXPECT_FALSE(r.stopped_early);
  EXPECT_EQ(r.steps, 30);
  EXPECT_EQ(seen, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(read_metrics(tmp / "run" / "metrics.jsonl").size(), 3u);
  EXPECT_TRUE(fs::exists(tmp / "run" / "model.json"));
}

TEST(Trainer, NanLossStopsWithInputErrorNamingTheStep) {
  TempDir tmp;
  make_planted(tmp / "data", 2000);
  Dataset ds = Dataset::open(tmp / "data");
  TrainOptions opt = quiet_options();
  opt.batch_size = 16;
  opt.checkpoint_every = 5;
  NanAtStepModel stub(7);
  try {
    train(stub, ds, opt, tmp / "run");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 7"), std::string::npos) << msg;
    EXPECT_NE(msg.find("lower learning rate"), std::string::npos) << msg;
  }
  // The checkpoint written before the failure is intact and resumable up to the bad step.
  BinaryReader ok(tmp / "run" / "checkpoint.bin", kCheckpointTag, kTrainFormatVersion);
  EXPECT_FALSE(fs::exists(tmp / "run" / "model.json"));

  // A real divergence: an absurd learning rate.
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 1e38});
  TrainOptions wild = quiet_options();
  wild.batch_size = 1;  // per-row gradients near 1: the weights overflow float within a few steps
  try {
    train(model, ds, wild, tmp / "run2");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("lower learning rate"), std::string::npos) << e.what();
  }
}

TrainOptions resume_options() {
  TrainOptions opt = quiet_options();
  opt.batch_size = 32;  // 1600 training rows: 50 batches an epoch
  opt.epochs = 4;
  opt.seed = 3;
  opt.eval_every = 40;
  opt.checkpoint_every = 70;
  return opt;
}

TEST(Trainer, ResumeFromCheckpointReachesTheSameParametersAndMetrics) {
  TempDir tmp;
  make_planted(tmp / "data", 2000);
  Dataset ds = Dataset::open(tmp / "data");
  TrainOptions opt = resume_options();
  opt.max_steps = 170;  // crosses into epoch 4

  LogisticModel full = LogisticModel::for_dataset(ds, {.lr = 0.3});
  TrainReport rf = train(full, ds, opt, tmp / "full");

  // Interrupted at step 70 (mid epoch 2, after its checkpoint), then resumed by a fresh model.
  TrainOptions first = opt;
  first.max_steps = 70;
  LogisticModel part = LogisticModel::for_dataset(ds, {.lr = 0.3});
  train(part, ds, first, tmp / "part");
  ASSERT_TRUE(fs::exists(tmp / "part" / "checkpoint.bin"));
  LogisticModel resumed = LogisticModel::for_dataset(ds, {.lr = 0.3});
  TrainReport rr = train(resumed, ds, opt, tmp / "part", resume_run());

  EXPECT_EQ(rr.resumed_from_step, 70);
  EXPECT_EQ(rr.steps, rf.steps);
  EXPECT_EQ(rr.samples, rf.samples);
  EXPECT_EQ(model_bytes(resumed, tmp.path()), model_bytes(full, tmp.path()));
  EXPECT_EQ(rr.final_eval.auc, rf.final_eval.auc);
  EXPECT_EQ(timeless(read_metrics(tmp / "part" / "metrics.jsonl")), timeless(read_metrics(tmp / "full" / "metrics.jsonl")));
}

TEST(Trainer, TruncatedForeignOrMismatchedCheckpointIsRefusedAndNothingIsDamaged) {
  TempDir tmp;
  make_planted(tmp / "data", 2000);
  Dataset ds = Dataset::open(tmp / "data");
  TrainOptions opt = resume_options();
  opt.max_steps = 70;
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.3});
  train(model, ds, opt, tmp / "run");
  const fs::path ckpt = tmp / "run" / "checkpoint.bin";
  const std::string good = read_file(ckpt), metrics = read_file(tmp / "run" / "metrics.jsonl"),
                    meta = read_file(tmp / "run" / "model.json");
  auto expect_untouched = [&] {
    EXPECT_EQ(read_file(tmp / "run" / "metrics.jsonl"), metrics);
    EXPECT_EQ(read_file(tmp / "run" / "model.json"), meta);
  };
  opt.max_steps = 100;

  testing::write_text(ckpt, good.substr(0, good.size() / 2));
  LogisticModel fresh = LogisticModel::for_dataset(ds, {.lr = 0.3});
  EXPECT_THROW(train(fresh, ds, opt, tmp / "run", resume_run()), FormatError);
  expect_untouched();

  {  // A binary file of another kind.
    BinaryWriter w(ckpt, "op-state", 1);
    w.write<int64_t>(1);
    w.close();
  }
  EXPECT_THROW(train(fresh, ds, opt, tmp / "run", resume_run()), FormatError);
  testing::write_text(ckpt, "not a checkpoint at all");
  EXPECT_THROW(train(fresh, ds, opt, tmp / "run", resume_run()), FormatError);
  expect_untouched();

  // Another model type's checkpoint, and a checkpoint of another shape.
  testing::write_text(ckpt, good);
  NanAtStepModel stub(-1);
  EXPECT_THROW(train(stub, ds, opt, tmp / "run", resume_run()), FormatError);
  LogisticModel wrong_shape({kCard0, kCard1 + 1}, 3);
  EXPECT_THROW(train(wrong_shape, ds, opt, tmp / "run", resume_run()), FormatError);
  expect_untouched();

  // Options the batch order depends on must match.
  TrainOptions other = opt;
  other.batch_size = 64;
  try {
    train(fresh, ds, other, tmp / "run", resume_run());
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("train.batch_size"), std::string::npos) << e.what();
  }
  expect_untouched();
  EXPECT_EQ(read_file(ckpt), good);
}

TEST(Trainer, OneThreadRunsAreReproducible) {
  TempDir tmp;
  make_planted(tmp / "data", 3000);
  Dataset ds = Dataset::open(tmp / "data");
  TrainOptions opt = quiet_options();
  opt.batch_size = 16;
  opt.epochs = 2;
  opt.seed = 11;
  opt.eval_every = 60;
  LogisticModel a = LogisticModel::for_dataset(ds, {.lr = 0.2}), b = LogisticModel::for_dataset(ds, {.lr = 0.2});
  train(a, ds, opt, tmp / "a");
  train(b, ds, opt, tmp / "b");
  EXPECT_EQ(model_bytes(a, tmp.path()), model_bytes(b, tmp.path()));
  EXPECT_EQ(timeless(read_metrics(tmp / "a" / "metrics.jsonl")), timeless(read_metrics(tmp / "b" / "metrics.jsonl")));
  // Another seed gives another order, hence other parameters.
  opt.seed = 12;
  LogisticModel c = LogisticModel::for_dataset(ds, {.lr = 0.2});
  train(c, ds, opt, tmp / "c");
  EXPECT_NE(model_bytes(a, tmp.path()), model_bytes(c, tmp.path()));
}

TEST(Trainer, EvaluateAucEqualsRocAucOfTheModelScores) {
  TempDir tmp;
  make_planted(tmp / "data", 8000);
  Dataset ds = Dataset::open(tmp / "data");
  LogisticModel model = LogisticModel::for_dataset(ds, {.lr = 0.3});
  TrainOptions opt = quiet_options();
  opt.batch_size = 64;
  train(model, ds, opt, tmp / "run");

  // Scores computed row by row from the weights, independently of the loader and predict().
  std::vector<float> scores, labels;
  const int lab = ds.label_column();
  const auto dense = ds.dense_columns();
  const auto cats = ds.categorical_columns();
  for (int s = 0; s < ds.num_shards(Split::kValid); ++s) {
    ShardView v = ds.open_shard(Split::kValid, s);
    for (int64_t r = 0; r < v.rows(); ++r) {
      double z = model.bias();
      for (std::size_t j = 0; j < dense.size(); ++j) z += double(model.dense_weights()[j]) * v.f32(dense[j])[r];
      for (std::size_t t = 0; t < cats.size(); ++t) z += model.table_weights(static_cast<int>(t))[v.ids(cats[t])[r]];
      scores.push_back(static_cast<float>(z));
      labels.push_back(v.f32(lab)[r]);
    }
  }
  const int64_t n = static_cast<int64_t>(scores.size());
  for (int64_t batch : {int64_t{1000}, int64_t{16384}}) {
    EvalReport e = evaluate(model, ds, Split::kValid, batch, 2);
    EXPECT_EQ(e.rows, n);
    EXPECT_NEAR(e.auc, roc_auc(scores.data(), labels.data(), n), 1e-9);
    std::vector<float> probs(scores.size());
    for (std::size_t i = 0; i < probs.size(); ++i) probs[i] = 1.0f / (1.0f + std::exp(-scores[i]));
    EXPECT_NEAR(e.logloss, log_loss(probs.data(), labels.data(), n), 1e-5);
    EXPECT_NEAR(e.accuracy, accuracy(probs.data(), labels.data(), n), 2.0 / n);
    EXPECT_GT(e.samples_per_second, 0);
  }
  EXPECT_THROW(evaluate(model, ds, Split::kTest, 100, 1), InputError);  // empty split
}

TEST(Trainer, OptionsAreReadFromTheRecipeTrainSection) {
  const auto node = ConfigNode::parse_yaml("epochs: 3\nbatch_size: 256\neval_every: 100\ntarget_auc: 0.8\n", "r.yaml");
  TrainOptions o = TrainOptions::params().parse(node);
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.batch_size, 256);
  EXPECT_EQ(o.eval_every, 100);
  EXPECT_EQ(o.eval_batch_size, 16384);
  EXPECT_EQ(o.eval_split, "valid");
  EXPECT_TRUE(o.shuffle);
  EXPECT_THROW(TrainOptions::params().parse(ConfigNode::parse_yaml("batch_size: 0\n", "r.yaml")), ConfigError);
  EXPECT_THROW(TrainOptions::params().parse(ConfigNode::parse_yaml("eval_split: valdi\n", "r.yaml")), ConfigError);
  EXPECT_THROW(TrainOptions::params().parse(ConfigNode::parse_yaml("epoch: 2\n", "r.yaml")), ConfigError);
}

}  // namespace
}  // namespace bluewhale
