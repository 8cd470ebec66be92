#include "bluewhale/models/dlrm.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/models/bench_train.h"
#include "test_util.h"

namespace bluewhale {
namespace {

constexpr char kTag[] = "dlrm-test";

DlrmConfig tiny_config(const std::string& interaction) {
  DlrmConfig c;
  c.bottom = {4, 3};
  c.top = {5, 1};
  c.dim = 3;
  c.interaction = interaction;
  c.seed = 11;
  return c;
}

// B rows over the given tables: dense N(0, 1), multi-hot bags of 0..max_len ids (row 0 empty in every table
// and a repeated id in row 1, so both edge cases are present), labels alternating.
Batch random_batch(int64_t B, int64_t num_dense, const std::vector<int64_t>& tables, int max_len, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Batch b;
  b.size = B;
  for (int64_t i = 0; i < B; ++i) b.labels.push_back(static_cast<float>(i % 2));
  for (int64_t i = 0; i < B * num_dense; ++i) b.dense.push_back(normal(rng));
  for (int64_t rows : tables) {
    std::vector<int32_t> ids, offsets{0};
    for (int64_t i = 0; i < B; ++i) {
      int len = max_len == 0 ? 1 : (i == 0 ? 0 : 1 + static_cast<int>(rng() % static_cast<uint64_t>(max_len)));
      for (int k = 0; k < len; ++k) ids.push_back(static_cast<int32_t>(rng() % static_cast<uint64_t>(rows)));
      if (i == 1 && max_len > 0) ids.push_back(ids.back());
      offsets.push_back(static_cast<int32_t>(ids.size()));
    }
    b.ids.push_back(std::move(ids));
    b.offsets.push_back(std::move(offsets));
  }
  return b;
}

std::vector<std::vector<float>> snapshot(DlrmModel& m) {
  std::vector<std::vector<float>> out;
  for (const auto& p : m.parameters()) out.emplace_back(p.data, p.data + p.size);
  return out;
}

// Exact AUC by sorting (ties count one half).
double auc(const std::vector<float>& score, const std::vector<float>& label) {
  std::vector<std::size_t> idx(score.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) { return score[a] < score[b]; });
  double pos = 0, neg = 0, rank_sum = 0;
  for (std::size_t i = 0; i < idx.size();) {
    std::size_t j = i;
    while (j < idx.size() && score[idx[j]] == score[idx[i]]) ++j;
    const double mid = (static_cast<double>(i) + static_cast<double>(j) + 1) / 2;
    for (std::size_t k = i; k < j; ++k)
      if (label[idx[k]] > 0.5f) rank_sum += mid, ++pos;
      else ++neg;
    i = j;
  }
  return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}

class DlrmGradient : public ::testing::TestWithParam<std::string> {};

// The update train_step applies with SGD at lr 1 is exactly minus the gradient; compare it with central
// differences of the forward loss for parameters of every layer and every table.
TEST_P(DlrmGradient, TrainStepAppliesTheFiniteDifferenceGradient) {
  DlrmConfig c = tiny_config(GetParam());
  c.lr = 1.0;
  const std::vector<int64_t> tables{5, 7, 3};
  const Batch batch = random_batch(6, 2, tables, 3, 5);
  DlrmModel trained(c, 2, tables, 1), probe(c, 2, tables, 1);
  const auto before = snapshot(trained);
  trained.train_step(batch, 1, 1);
  const auto after = snapshot(trained);

  auto params = probe.parameters();
  int checked_nonzero = 0;
  for (std::size_t p = 0; p < params.size(); ++p) {
    for (int64_t i = 0; i < params[p].size; ++i) {
      const double analytic = static_cast<double>(before[p][i]) - after[p][i];
      float& w = params[p].data[i];
      const float w0 = w;
      const float eps = 1e-3f;
      w = w0 + eps;
      const double up = probe.loss(batch, 1);
      w = w0 - eps;
      const double down = probe.loss(batch, 1);
      w = w0;
      const double numeric = (up - down) / (2.0 * static_cast<double>(eps));
      EXPECT_NEAR(analytic, numeric, 1e-3 + 2e-2 * std::abs(numeric)) << params[p].name << "[" << i << "]";
      if (std::abs(numeric) > 1e-4) ++checked_nonzero;
    }
  }
  EXPECT_GT(checked_nonzero, 40);  // the check is not vacuous
}

INSTANTIATE_TEST_SUITE_P(Interactions, DlrmGradient, ::testing::Values("dot", "cat"));

// Label = whether table 0's id is even: separable through one embedding, noise in the other features.
Batch separable_batch(int64_t B, uint64_t seed) {
  Batch b = random_batch(B, 2, {10, 7, 3}, 0, seed);
  for (int64_t i = 0; i < B; ++i) b.labels[i] = static_cast<float>(b.ids[0][i] % 2 == 0);
  return b;
}

TEST(Dlrm, LearnsASeparableProblemToNearZeroLossAndHighAuc) {
  for (const std::string sparse : {"sgd", "rowwise_adagrad"}) {
    DlrmConfig c = tiny_config("dot");
    c.bottom = {8, 3};
    c.top = {8, 1};
    c.sparse_optimizer = sparse;
    c.optimizer = sparse == "sgd" ? "sgd" : "adam";
    c.lr = sparse == "sgd" ? 0.5 : 0.05;
    DlrmModel m(c, 2, {10, 7, 3}, 1);
    const Batch test = separable_batch(512, 999);
    const double initial = m.loss(test, 1);
    for (int64_t step = 1; step <= 400; ++step) m.train_step(separable_batch(64, step), step, 1);
    const double final_loss = m.loss(test, 1);
    std::vector<float> logits(512);
    m.predict(test, logits.data(), 1);
    EXPECT_LT(final_loss, 0.05) << sparse << ", initial " << initial;
    EXPECT_GT(auc(logits, test.labels), 0.95) << sparse;
  }
}

TEST(Dlrm, OneAndTwoThreadsGiveBitwiseIdenticalTraining) {
  for (const std::string interaction : {"dot", "cat"}) {
    DlrmConfig c;
    c.bottom = {64, 32, 8};
    c.top = {64, 1};
    c.dim = 8;
    c.interaction = interaction;
    c.optimizer = "adagrad";
    c.sparse_optimizer = "rowwise_adagrad";
    const std::vector<int64_t> tables{100, 50, 7, 1000};
    DlrmModel a(c, 5, tables, 1), b(c, 5, tables, 2);
    for (int64_t step = 1; step <= 5; ++step) {
      const Batch batch = random_batch(300, 5, tables, step % 2 ? 0 : 3, step);
      EXPECT_EQ(a.train_step(batch, step, 1), b.train_step(batch, step, 2)) << interaction << " step " << step;
    }
    EXPECT_EQ(snapshot(a), snapshot(b)) << interaction;
  }
}

TEST(Dlrm, SaveLoadRoundTripGivesIdenticalPredictionsAndContinuedTraining) {
  bluewhale::testing::TempDir dir;
  DlrmConfig c = tiny_config("dot");
  c.optimizer = "adam";
  c.sparse_optimizer = "rowwise_adagrad";
  c.lr = 0.01;
  const std::vector<int64_t> tables{5, 7, 3};
  DlrmModel a(c, 2, tables, 1);
  for (int64_t step = 1; step <= 3; ++step) a.train_step(random_batch(16, 2, tables, 2, step), step, 1);
  {
    BinaryWriter w(dir / "m.bin", kTag, 1);
    a.save(w);
    w.close();
  }
  DlrmConfig other_seed = c;
  other_seed.seed = 99;
  DlrmModel b(other_seed, 2, tables, 1);
  BinaryReader r(dir / "m.bin", kTag, 1);
  b.load(r);
  const Batch test = random_batch(32, 2, tables, 2, 77);
  std::vector<float> pa(32), pb(32);
  a.predict(test, pa.data(), 1);
  b.predict(test, pb.data(), 1);
  EXPECT_EQ(pa, pb);
  for (int64_t step = 4; step <= 6; ++step) {
    const Batch batch = random_batch(16, 2, tables, 2, step);
    EXPECT_EQ(a.train_step(batch, step, 1), b.train_step(batch, step, 1));
  }
  EXPECT_EQ(snapshot(a), snapshot(b));
}

TEST(Dlrm, CorruptTruncatedOrMismatchedFilesRaiseFormatError) {
  bluewhale::testing::TempDir dir;
  const std::vector<int64_t> tables{5, 7, 3};
  DlrmModel a(tiny_config("dot"), 2, tables, 1);
  {
    BinaryWriter w(dir / "m.bin", kTag, 1);
    a.save(w);
    w.close();
  }
  // Flipped byte in the payload: the checksum catches it.
  {
    std::fstream f(dir / "m.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(200);
    char x = 0;
    f.read(&x, 1);
    f.seekp(200);
    x = static_cast<char>(x ^ 0x5a);
    f.write(&x, 1);
  }
  EXPECT_THROW(BinaryReader(dir / "m.bin", kTag, 1), FormatError);

  // A well-formed file whose payload stops after the shapes.
  {
    BinaryWriter w(dir / "short.bin", kTag, 1);
    DlrmModel full(tiny_config("dot"), 2, tables, 1);
    bluewhale::testing::TempDir tmp;
    BinaryWriter all(tmp / "all.bin", kTag, 1);
    full.save(all);
    all.close();
    BinaryReader r(tmp / "all.bin", kTag, 1);
    std::vector<char> head(r.remaining() / 2);
    r.read_bytes(head.data(), head.size());
    w.write_bytes(head.data(), head.size());
    w.close();
  }
  {
    BinaryReader r(dir / "short.bin", kTag, 1);
    const auto before = snapshot(a);
    EXPECT_THROW(a.load(r), FormatError);
    EXPECT_EQ(snapshot(a), before);  // nothing changed by the failed load
  }

  // Shapes that differ from the model's: each names the field.
  auto expect_mismatch = [&](const DlrmConfig& c, int64_t num_dense, std::vector<int64_t> sizes, const char* field) {
    DlrmModel other(c, num_dense, sizes, 1);
    BinaryWriter w(dir / "o.bin", kTag, 1);
    other.save(w);
    w.close();
    BinaryReader r(dir / "o.bin", kTag, 1);
    try {
      a.load(r);
      ADD_FAILURE() << "no error for a different " << field;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  DlrmConfig top = tiny_config("dot");
  top.top = {6, 1};
  expect_mismatch(top, 2, tables, "top MLP");
  expect_mismatch(tiny_config("cat"), 2, tables, "interaction");
  expect_mismatch(tiny_config("dot"), 2, {5, 8, 3}, "table sizes");
  expect_mismatch(tiny_config("dot"), 3, tables, "dense feature count");
  DlrmConfig adagrad = tiny_config("dot");
  adagrad.optimizer = "adagrad";
  expect_mismatch(adagrad, 2, tables, "optimizer");

  // A file of another kind under the same tag.
  {
    BinaryWriter w(dir / "x.bin", kTag, 1);
    w.write_string("something-else");
    w.close();
  }
  BinaryReader r(dir / "x.bin", kTag, 1);
  EXPECT_THROW(a.load(r), FormatError);
}

void expect_config_error(const std::string& yaml, const std::string& key, int64_t num_dense = 2) {
  try {
    DlrmConfig c = DlrmConfig::params().parse(ConfigNode::parse_yaml(yaml, "recipe.yaml"));
    DlrmModel m(c, num_dense, {5, 7}, 1);
    ADD_FAILURE() << "no ConfigError for " << yaml;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

// Decoupled embedding decay changes exactly the touched embedding rows, by -lr * wd * (their old value);
// the MLPs and untouched rows train as without it.
TEST(Dlrm, EmbeddingWeightDecayShrinksTouchedRowsOnly) {
  for (const std::string sparse : {"sgd", "rowwise_adagrad"}) {
    DlrmConfig c = tiny_config("dot");
    c.sparse_optimizer = sparse;
    const std::vector<int64_t> tables{40, 6};
    DlrmModel plain(c, 2, tables, 1);
    c.embedding_weight_decay = 2.0;
    DlrmModel decayed(c, 2, tables, 1);
    const auto before = snapshot(plain);
    const Batch batch = random_batch(16, 2, tables, 0, 3);
    EXPECT_EQ(plain.train_step(batch, 1, 1), decayed.train_step(batch, 1, 1));
    const auto a = snapshot(plain), b = snapshot(decayed);
    const auto params = plain.parameters();
    int touched_rows = 0;
    for (size_t p = 0; p < params.size(); ++p) {
      const bool embedding = params[p].name.rfind("embedding.", 0) == 0;
      if (!embedding) {
        EXPECT_EQ(a[p], b[p]) << params[p].name;
        continue;
      }
      const size_t t = static_cast<size_t>(std::stoi(params[p].name.substr(10)));
      std::vector<bool> touched(static_cast<size_t>(tables[t]), false);
      for (int32_t id : batch.ids[t]) touched[static_cast<size_t>(id)] = true;
      for (int64_t r = 0; r < tables[t]; ++r) {
        for (int64_t d = 0; d < c.dim; ++d) {
          const size_t i = static_cast<size_t>(r * c.dim + d);
          if (!touched[static_cast<size_t>(r)]) {
            EXPECT_EQ(a[p][i], b[p][i]) << params[p].name << " untouched row " << r;
          } else {
            EXPECT_NEAR(b[p][i] - a[p][i], -c.lr * 2.0 * before[p][i], 1e-6) << sparse << " " << params[p].name;
          }
        }
        touched_rows += touched[static_cast<size_t>(r)];
      }
    }
    EXPECT_GT(touched_rows, 6);
  }
}

TEST(DlrmConfig, BadValuesRaiseConfigErrorNamingTheKey) {
  expect_config_error("bottom: [8, 4]\ndim: 3", "bottom");
  expect_config_error("top: [8, 2]", "top");
  expect_config_error("top: [8, 0, 1]", "top");
  expect_config_error("interaction: dott", "interaction");
  expect_config_error("optimizer: adamw", "optimizer");
  expect_config_error("sparse_optimizer: adam", "sparse_optimizer");
  expect_config_error("lr: -1", "lr");
  expect_config_error("dim: 0", "dim");
  expect_config_error("embedding_weight_decay: -1", "embedding_weight_decay");
  expect_config_error("embedding_weight_decay: 20\nlr: 0.1", "embedding_weight_decay");
  expect_config_error("embedding_dim: 4", "embedding_dim");
  expect_config_error("lr: 0.1", "dense", 0);
}

TEST(DlrmConfig, DecayFractionsResolveToStepsOfTheRun) {
  DlrmConfig c = DlrmConfig::params().parse(ConfigNode::parse_yaml(
      "lr: 0.1\ndecay_start_fraction: 0.5\ndecay_end_fraction: 1.0\ndecay_power: 2", "r"));
  c.validate();
  EXPECT_EQ(c.decay_end, 0);  // unresolved until the run's length is known
  DlrmConfig r = c.with_total_steps(28123);
  EXPECT_EQ(r.decay_start, 14062);  // llround(0.5 * 28123)
  EXPECT_EQ(r.decay_end, 28123);
  EXPECT_FLOAT_EQ(r.schedule().lr(14062), 0.1f);
  EXPECT_FLOAT_EQ(r.schedule().lr(28123), 0.0f);
  EXPECT_GT(r.schedule().lr(20000), 0.0f);
  EXPECT_LT(r.schedule().lr(20000), 0.1f);
  // A run shorter than the fractions can express still gets one step of decay.
  DlrmConfig one = c.with_total_steps(1);
  EXPECT_EQ(one.decay_start, 1);
  EXPECT_EQ(one.decay_end, 2);
  // Without fractions the config is unchanged.
  DlrmConfig plain;
  plain.decay_start = 10;
  plain.decay_end = 20;
  EXPECT_EQ(plain.with_total_steps(5).decay_end, 20);
  // Fractions and steps together, reversed fractions, or a warmup longer than the decay start: errors.
  expect_config_error("decay_start_fraction: 0.5\ndecay_end_fraction: 1\ndecay_end: 100", "not both");
  expect_config_error("decay_start_fraction: 0.8\ndecay_end_fraction: 0.5", "decay_end_fraction");
  expect_config_error("decay_end_fraction: 1.5", "decay_end_fraction");
  DlrmConfig w = c;
  w.warmup_steps = 20000;
  try {
    (void)w.with_total_steps(28123);
    ADD_FAILURE() << "no ConfigError for a warmup past the decay start";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("of 28123 steps"), std::string::npos) << e.what();
  }
}

TEST(DlrmConfig, ParsesARecipeSection) {
  DlrmConfig c = DlrmConfig::params().parse(ConfigNode::parse_yaml(
      "bottom: [64, 8]\ntop: [32, 1]\ndim: 8\ninteraction: cat\nsparse_optimizer: rowwise_adagrad\nlr: 0.02", "r"));
  EXPECT_EQ(c.bottom, (std::vector<int64_t>{64, 8}));
  EXPECT_EQ(c.top, (std::vector<int64_t>{32, 1}));
  EXPECT_EQ(c.interaction, "cat");
  EXPECT_DOUBLE_EQ(c.lr, 0.02);
  DlrmModel m(c, 13, {10, 20}, 1);
  EXPECT_EQ(m.parameter_count(), 13 * 64 + 64 + 64 * 8 + 8 + 24 * 32 + 32 + 32 + 1 + 30 * 8);
}

TEST(Dlrm, BadBatchesRaiseInputError) {
  const std::vector<int64_t> tables{5, 7, 3};
  DlrmModel m(tiny_config("dot"), 2, tables, 1);
  Batch b = random_batch(4, 2, tables, 0, 1);
  b.ids[1][2] = 7;  // out of table 1's range
  EXPECT_THROW(m.train_step(b, 1, 1), InputError);
  b = random_batch(4, 2, tables, 0, 1);
  b.dense.pop_back();
  EXPECT_THROW(m.train_step(b, 1, 1), InputError);
  b = random_batch(4, 2, tables, 0, 1);
  b.labels.clear();
  EXPECT_THROW(m.train_step(b, 1, 1), InputError);
  std::vector<float> logits(4);
  EXPECT_NO_THROW(m.predict(b, logits.data(), 1));  // prediction needs no labels
}

TEST(BenchTrain, ReportsConsistentFigures) {
  BenchTrainOptions o;
  o.table_sizes = {100, 1000, 10};
  o.num_dense = 4;
  o.model.bottom = {16, 8};
  o.model.top = {16, 1};
  o.model.dim = 8;
  o.batch = 64;
  o.steps = 5;
  o.warmup_steps = 1;
  o.id_power_law = 1.05;
  BenchTrainReport r = bench_train(o);
  EXPECT_GT(r.samples_per_second, 0);
  EXPECT_NEAR(r.samples_per_second * r.step_ms / 1e3, 64, 1e-6);
  EXPECT_NEAR(r.gflops, r.flops_per_sample * r.samples_per_second / 1e9, 1e-9);
  EXPECT_EQ(r.parameter_count, 4 * 16 + 16 + 16 * 8 + 8 + (8 + 6) * 16 + 16 + 17 + 1110 * 8);
  EXPECT_EQ(r.state_bytes, r.parameter_count * 4);  // SGD keeps no state
  EXPECT_GT(r.peak_rss_bytes, r.state_bytes);
  o.batch = 0;
  EXPECT_THROW(bench_train(o), ConfigError);
}

// The Criteo Kaggle shape of the DLRM paper (2.2 GB of embeddings); run by hand:
//   models_dlrm_test --gtest_also_run_disabled_tests --gtest_filter='*CriteoKaggle*'
TEST(BenchTrain, DISABLED_CriteoKaggleShape) {
  BenchTrainOptions o;
  o.table_sizes = {1460,  583,   10131227, 2202608, 305, 24, 12517, 633, 3,  93145, 5683,   8351593, 3194,
                   27,    14992, 5461306,  10,      5652, 2173, 4,   7046547, 18, 15, 286181, 105,     142572};
  o.model.lr = 0.1;
  o.threads = 2;
  o.steps = 200;
  for (int64_t batch : {128, 2048}) {
    o.batch = batch;
    BenchTrainReport r = bench_train(o);
    std::printf("batch %ld threads %d: %.0f samples/s, %.3f ms/step (min %.3f), %.2f GFLOP/s (%.0f flop/sample), "
                "init %.1f s, state %.2f GB, peak RSS %.2f GB\n",
                static_cast<long>(batch), r.threads, r.samples_per_second, r.step_ms, r.step_ms_min, r.gflops,
                r.flops_per_sample, r.init_seconds, r.state_bytes / 1e9, r.peak_rss_bytes / 1e9);
  }
}

}  // namespace
}  // namespace bluewhale
