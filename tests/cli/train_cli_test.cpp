// End-to-end tests of `bluewhale train`, `eval` and `bench train` through the built binary.
#include <gtest/gtest.h>

#include <cstdio>

#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "bluewhale/core/io.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/nn/blas.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::run_cli;
using testing::TempDir;
using testing::write_text;

double auc_in(const std::string& out) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("test: AUC ([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

TEST(TrainCli, RealCriteoSampleTrainsAndEvalReproducesTheFinalAuc) {
  fs::path data = testing::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent: skipping the real Criteo training test";
  TempDir dir;
  // The standard recipe with an 80/20 split and three epochs over the 10.6k training rows.
  std::string recipe = read_file(std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml");
  recipe = std::regex_replace(recipe, std::regex("  valid: 0.05"), "  valid: 0.0");
  recipe = std::regex_replace(recipe, std::regex("  test: 0.05"), "  test: 0.2");
  recipe = std::regex_replace(recipe, std::regex("  epochs: 1"), "  epochs: 3");
  write_text(dir / "r.yaml", recipe);
  auto p = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " +
                   (data / "criteo" / "criteo_dac_13k.tsv").string() + " --out " + (dir / "ds").string() + " --quiet");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  auto t = run_cli("train --data " + (dir / "ds").string() + " --out " + (dir / "run").string() + " --threads 2");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  double train_auc = auc_in(t.output);
  EXPECT_GT(train_auc, 0.70) << t.output;
  // One metrics line per evaluation (only the final one here), and the model files.
  std::ifstream metrics(dir / "run" / "metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j.contains("auc") && j.contains("logloss") && j.contains("step"));
    ++lines;
  }
  EXPECT_EQ(lines, 1);
  auto e = run_cli("eval --model " + (dir / "run").string() + " --data " + (dir / "ds").string() + " --split test");
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NEAR(auc_in(e.output), train_auc, 1e-4) << e.output;

  // predict applies the dataset's fitted pipeline to raw rows and scores them in input order.
  auto pr = run_cli("predict --model " + (dir / "run").string() + " --input " +
                    (data / "criteo" / "criteo_dac_13k.tsv").string() + " --out " + (dir / "scores.tsv").string());
  ASSERT_EQ(pr.exit_code, 0) << pr.output;
  std::ifstream scores(dir / "scores.tsv");
  int n = 0;
  double sum = 0;
  while (std::getline(scores, line)) {
    double p = std::stod(line);
    EXPECT_GT(p, 0.0);
    EXPECT_LT(p, 1.0);
    sum += p;
    ++n;
  }
  EXPECT_EQ(n, 13229);
  EXPECT_NEAR(sum / n, 0.236, 0.08);  // the sample's click rate
  write_text(dir / "bad.tsv", "0\t1\t2\n");
  auto bad = run_cli("predict --model " + (dir / "run").string() + " --input " + (dir / "bad.tsv").string() +
                     " --out " + (dir / "bad_scores.tsv").string());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("bad.tsv:1"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "bad_scores.tsv"));

  // A second train into the same directory is refused instead of overwriting the model.
  auto again = run_cli("train --data " + (dir / "ds").string() + " --out " + (dir / "run").string());
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
}

// The small-sample recipe against the quality bar of a logistic regression on one-hot features. Measured
// (single thread, so the run is reproducible): 0.746 on split seed 0; other split seeds give 0.724 (1) and
// 0.734 (2), where an L2-tuned logistic regression gets 0.740 and 0.754 (see the issue-3 note).
// The bar: test AUC >= 0.74 on a random 80/20 split of the real sample, where a logistic regression
// gets about 0.747. Three split seeds, because one split's AUC moves by +-0.01 with the split alone (the
// logistic regression itself gets 0.737 to 0.758 over seeds 0..9): each split clears 0.735, their mean 0.74.
TEST(TrainCli, SmallRecipeReachesTheLogisticBaselineOnTheRealSample) {
  fs::path data = testing::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent: skipping the real Criteo quality test";
  TempDir dir;
  const std::string recipe = read_file(std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo-small.yaml");
  const std::string seed_line = "\nsplit:\n  by: ratio\n  valid: 0.0\n  test: 0.2\n  seed: 0\n";
  ASSERT_NE(recipe.find(seed_line), std::string::npos) << "the split section of dlrm-criteo-small.yaml changed";
  double sum = 0;
  for (int seed : {0, 1, 2}) {
    SCOPED_TRACE(seed);
    std::string r = recipe;
    r.replace(r.find(seed_line), seed_line.size(),
              seed_line.substr(0, seed_line.size() - 2) + std::to_string(seed) + "\n");
    const fs::path rp = dir / ("small-" + std::to_string(seed) + ".yaml");
    write_text(rp, r);
    const fs::path ds = dir / ("ds" + std::to_string(seed));
    auto p = run_cli("prep --recipe " + rp.string() + " --input " + (data / "criteo" / "criteo_dac_13k.tsv").string() +
                     " --out " + ds.string() + " --quiet");
    ASSERT_EQ(p.exit_code, 0) << p.output;
    auto t = run_cli("train --data " + ds.string() + " --out " + (dir / ("run" + std::to_string(seed))).string() +
                     " --recipe " + rp.string() + " --threads 1");
    ASSERT_EQ(t.exit_code, 0) << t.output;
    const double auc = auc_in(t.output);
    EXPECT_GE(auc, 0.735) << t.output;
    sum += auc;
  }
  EXPECT_GE(sum / 3, 0.74);
}

// Every shipped DLRM recipe prepares Criteo-format logs and trains from its own sections.
TEST(TrainCli, ShippedDlrmRecipesPrepareAndTrain) {
  TempDir dir;
  auto g = run_cli("gen criteo --rows 6000 --seed 3 --out " + (dir / "day.tsv").string());
  ASSERT_EQ(g.exit_code, 0) << g.output;
  for (const std::string name : {"dlrm-criteo", "dlrm-criteo-small", "dlrm-criteo-large-batch", "dlrm-criteo-quality"}) {
    SCOPED_TRACE(name);
    const std::string recipe = std::string(BW_SOURCE_DIR) + "/recipes/" + name + ".yaml";
    auto p = run_cli("prep --recipe " + recipe + " --input " + (dir / "day.tsv").string() + " --out " +
                     (dir / name).string() + " --quiet");
    ASSERT_EQ(p.exit_code, 0) << p.output;
    auto t = run_cli("train --data " + (dir / name).string() + " --out " + (dir / (name + "-run")).string() +
                     " --threads 2");
    ASSERT_EQ(t.exit_code, 0) << t.output;
    EXPECT_NE(t.output.find(": AUC "), std::string::npos) << t.output;
    EXPECT_TRUE(fs::exists(dir / (name + "-run") / "model.json"));
  }
  // The quality recipe adds I1_missing..I13_missing as dense inputs, and predict rebuilds them from raw rows.
  Dataset q = Dataset::open(dir / "dlrm-criteo-quality");
  ASSERT_EQ(q.dense_columns().size(), 26u);
  EXPECT_EQ(q.columns()[q.dense_columns()[13]].name, "I1_missing");
  auto pr = run_cli("predict --model " + (dir / "dlrm-criteo-quality-run").string() + " --input " +
                    (dir / "day.tsv").string() + " --out " + (dir / "scores.tsv").string());
  ASSERT_EQ(pr.exit_code, 0) << pr.output;
  std::ifstream scores(dir / "scores.tsv");
  std::string line;
  int64_t n = 0;
  while (std::getline(scores, line)) ++n;
  EXPECT_GE(n, 6000);
}

TEST(TrainCli, EvalRejectsAForeignModelDirectory) {
  TempDir dir;
  write_text(dir / "m" / "model.json", "{\"model\": \"something\"}");
  auto e = run_cli("eval --model " + (dir / "m").string() + " --data " + (dir / "nope").string());
  EXPECT_NE(e.exit_code, 0);
  write_text(dir / "m" / "model.json", "not json");
  e = run_cli("eval --model " + (dir / "m").string() + " --data " + (dir / "nope").string());
  EXPECT_NE(e.exit_code, 0);
}

// The kernels named on `bluewhale version`'s "blas:" line.
std::string reported_blas_core(const std::string& out) {
  std::smatch m;
  return std::regex_search(out, m, std::regex("blas: OpenBLAS, '([A-Za-z0-9]*)' kernels")) ? m[1].str() : "?";
}

TEST(BlasCli, RestartsWithTheWidestKernelsUnlessTheUserChose) {
  // A user's OPENBLAS_CORETYPE is kept, even a slow one.
  auto forced = run_cli("version", "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(forced.exit_code, 0) << forced.output;
  if (reported_blas_core(forced.output) != "Prescott")
    GTEST_SKIP() << "this OpenBLAS does not choose kernels at run time (no DYNAMIC_ARCH): " << forced.output;
  // Left to itself, the command runs kernels as wide as the CPU allows (restarting once when OpenBLAS's
  // own choice was narrower).
  auto own = run_cli("version", "env -u OPENBLAS_CORETYPE");
  ASSERT_EQ(own.exit_code, 0) << own.output;
  const std::string core = reported_blas_core(own.output);
  EXPECT_EQ(blas_core_to_request(core, detected_simd_level()), "") << own.output;
  // The restart keeps the arguments and the result.
  auto r = run_cli("bench train --model dlrm --table-sizes 50,20 --dim 4 --bottom 3-8-4 --top 8-1 --batch 16 "
                   "--steps 3 --threads 1", "env -u OPENBLAS_CORETYPE");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("samples/s"), std::string::npos) << r.output;
}

TEST(BlasCli, RunsBlasOnOneThreadPerCall) {
  // The command stops the pool OpenBLAS starts at load (one thread per CPU unless the user says otherwise);
  // without that, this machine's CPU count would show here.
  auto r = run_cli("version", "env -u OPENBLAS_NUM_THREADS");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("kernels, 1 thread(s) per call"), std::string::npos) << r.output;
}

TEST(BenchCli, TrainOnRandomDataReportsThroughput) {
  auto r = run_cli("bench train --model dlrm --table-sizes 100,50,7 --dim 8 --bottom 4-16-8 --top 16-1 --batch 64 "
                   "--steps 5 --threads 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("samples/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GFLOP/s"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("peak RSS"), std::string::npos) << r.output;
  // The step's share of the measured FMA peak: positive and below 100% (a tiny model is far below it).
  double peak = 0, pct = 0;
  const auto at = r.output.find("FP32 FMA peak");
  ASSERT_NE(at, std::string::npos) << r.output;
  ASSERT_EQ(std::sscanf(r.output.c_str() + at, "FP32 FMA peak %lf GFLOP/s measured on 2 thread(s): the training step reaches %lf%%",
                        &peak, &pct), 2)
      << r.output;
  EXPECT_GT(peak, 0.5) << r.output;
  EXPECT_GT(pct, 0.0) << r.output;
  EXPECT_LT(pct, 100.0) << r.output;
  auto bad = run_cli("bench train --table-sizes 100 --dim 8 --bottom 4-16-9 --top 16-1");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("bottom"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace bluewhale
