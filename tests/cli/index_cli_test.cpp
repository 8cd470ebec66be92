// End-to-end tests of `bluewhale gen vectors` and `bluewhale index build | search | bench` through the
// built binary: generated data with exact ground truth, the real SIFT sample, TSV ids, and error exits.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "bluewhale/core/io.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::run_cli;
using testing::TempDir;
using testing::write_text;

// The recall column of the table row "| threads | knob | recall | QPS |".
double recall_in(const std::string& out, int threads, int knob) {
  std::smatch m;
  std::regex row("\\| " + std::to_string(threads) + " \\| " + std::to_string(knob) + " \\| ([0-9.]+) \\| [0-9]+ \\|");
  return std::regex_search(out, m, row) ? std::stod(m[1]) : -1;
}

TEST(IndexCli, GeneratedVectorsBuildSearchAndBench) {
  TempDir dir;
  const std::string base = (dir / "emb.fvecs").string();
  auto g = run_cli("gen vectors --rows 3000 --dim 32 --kind embedding --queries 50 --truth 10 --metric ip --out " +
                   base + " --threads 2");
  ASSERT_EQ(g.exit_code, 0) << g.output;
  ASSERT_TRUE(fs::exists(dir / "emb_query.fvecs") && fs::exists(dir / "emb_groundtruth.ivecs")) << g.output;
  const std::string idx = (dir / "emb.idx").string();
  auto b = run_cli("index build --vectors " + base + " --metric ip --kind hnsw --out " + idx + " --threads 2");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  EXPECT_NE(b.output.find("built hnsw index (ip, dim 32) of 3000 vectors"), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("index build:"), std::string::npos) << "progress line missing: " << b.output;
  auto s = run_cli("index search --index " + idx + " --queries " + (dir / "emb_query.fvecs").string() +
                   " -k 7 --ef 100 --out " + (dir / "hits.tsv").string());
  ASSERT_EQ(s.exit_code, 0) << s.output;
  std::ifstream hits(dir / "hits.tsv");
  std::string line;
  int lines = 0;
  while (std::getline(hits, line)) {
    std::istringstream ls(line);
    long long q, rank, id;
    double d;
    ASSERT_TRUE(static_cast<bool>(ls >> q >> rank >> id >> d)) << line;
    EXPECT_EQ(rank, lines % 7 + 1);
    EXPECT_TRUE(id >= 0 && id < 3000);
    ++lines;
  }
  EXPECT_EQ(lines, 50 * 7);
  auto bench = run_cli("index bench --index " + idx + " --queries " + (dir / "emb_query.fvecs").string() + " --truth " +
                       (dir / "emb_groundtruth.ivecs").string() + " --ef-list 16,200 --threads 1,2 --min-seconds 0");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_GE(recall_in(bench.output, 1, 200), 0.95) << bench.output;
  EXPECT_GE(recall_in(bench.output, 2, 200), 0.95) << bench.output;
  // The exact index reaches recall 1 on its own ground truth and reports the bound it runs against.
  const std::string flat = (dir / "flat.idx").string();
  ASSERT_EQ(run_cli("index build --kind flat --metric ip --quiet --vectors " + base + " --out " + flat).exit_code, 0);
  auto fb = run_cli("index bench --index " + flat + " --queries " + (dir / "emb_query.fvecs").string() + " --truth " +
                    (dir / "emb_groundtruth.ivecs").string() + " --threads 1 --min-seconds 0 --roofline");
  ASSERT_EQ(fb.exit_code, 0) << fb.output;
  EXPECT_EQ(recall_in(fb.output, 1, 0), 1.0) << fb.output;
  EXPECT_NE(fb.output.find("-bound"), std::string::npos) << fb.output;
  // Both exact paths side by side, the per-core peak, and the best of --rounds.
  auto fr = run_cli("index bench --index " + flat + " --queries " + (dir / "emb_query.fvecs").string() + " --truth " +
                    (dir / "emb_groundtruth.ivecs").string() + " --threads 1 --min-seconds 0 --roofline --rounds 2");
  ASSERT_EQ(fr.exit_code, 0) << fr.output;
  for (const char* want : {"FMA peak per core: ", "fastest batch of 2 rounds", "threads 1, fused: ", "threads 1, blas: ",
                           "per busy CPU-second"})
    EXPECT_NE(fr.output.find(want), std::string::npos) << want << "\n" << fr.output;
  // The OpenBLAS path, selected by --flat-blas, finds the same neighbours.
  auto fbl = run_cli("index bench --index " + flat + " --queries " + (dir / "emb_query.fvecs").string() + " --truth " +
                     (dir / "emb_groundtruth.ivecs").string() + " --threads 2 --min-seconds 0 --flat-blas");
  ASSERT_EQ(fbl.exit_code, 0) << fbl.output;
  EXPECT_EQ(recall_in(fbl.output, 2, 0), 1.0) << fbl.output;
  auto bad = run_cli("index bench --index " + flat + " --queries " + (dir / "emb_query.fvecs").string() + " --truth " +
                     (dir / "emb_groundtruth.ivecs").string() + " --rounds 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--rounds must be in 1..1000, got 0"), std::string::npos) << bad.output;
}

TEST(IndexCli, RealSiftSampleReachesTheProvidedGroundTruth) {
  fs::path data = testing::shared_data_dir();
  if (data.empty() || !fs::exists(data / "ann" / "sift5k_split_base.fvecs")) GTEST_SKIP() << "no ../shared/data/ann";
  TempDir dir;
  const std::string idx = (dir / "sift.idx").string();
  auto b = run_cli("index build --quiet --vectors " + (data / "ann" / "sift5k_split_base.fvecs").string() +
                   " --out " + idx + " --threads 2");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  auto bench = run_cli("index bench --index " + idx + " --queries " + (data / "ann" / "sift5k_split_query.fvecs").string() +
                       " --truth " + (data / "ann" / "sift5k_split_groundtruth.ivecs").string() +
                       " --ef-list 100 --threads 1 --min-seconds 0");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_GE(recall_in(bench.output, 1, 100), 0.98) << bench.output;
}

TEST(IndexCli, TsvIdsFilterAndErrors) {
  TempDir dir;
  write_text(dir / "items.tsv", "1001\t1 0 0\n1002\t0 1 0\n1003\t0 0 1\n1004\t1 1 0\n");
  write_text(dir / "q.tsv", "7\t1 0.9 0\n");
  const std::string idx = (dir / "i.idx").string();
  ASSERT_EQ(run_cli("index build --quiet --kind flat --vectors " + (dir / "items.tsv").string() + " --out " + idx).exit_code, 0);
  write_text(dir / "allowed.txt", "1002\n1003\n");
  auto s = run_cli("index search --index " + idx + " --queries " + (dir / "q.tsv").string() + " -k 2 --filter " +
                   (dir / "allowed.txt").string() + " --out " + (dir / "h.tsv").string());
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_EQ(read_file(dir / "h.tsv"), "7\t1\t1002\t1.01\n7\t2\t1003\t2.81\n");

  // k larger than the collection, dimension mismatch, NaN, empty, truncated and foreign index files.
  auto r = run_cli("index search --index " + idx + " --queries " + (dir / "q.tsv").string() + " -k 9 --out " +
                   (dir / "x.tsv").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("k = 9 is larger than the collection (4 live vectors)"), std::string::npos) << r.output;
  write_text(dir / "q2.tsv", "7\t1 0.9\n");
  r = run_cli("index search --index " + idx + " --queries " + (dir / "q2.tsv").string() + " --out " + (dir / "x.tsv").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("dimension 2"), std::string::npos) << r.output;
  write_text(dir / "nan.tsv", "1\t1 nan 0\n");
  r = run_cli("index build --vectors " + (dir / "nan.tsv").string() + " --out " + (dir / "n.idx").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("nan.tsv line 1"), std::string::npos) << r.output;
  write_text(dir / "empty.tsv", "# nothing\n");
  r = run_cli("index build --vectors " + (dir / "empty.tsv").string() + " --out " + (dir / "n.idx").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("empty collection"), std::string::npos) << r.output;
  const std::string bytes = read_file(idx);
  write_text(dir / "cut.idx", bytes.substr(0, bytes.size() / 2));
  r = run_cli("index search --index " + (dir / "cut.idx").string() + " --queries " + (dir / "q.tsv").string() +
              " --out " + (dir / "x.tsv").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cut.idx"), std::string::npos) << r.output;
  r = run_cli("index search --index " + (dir / "items.tsv").string() + " --queries " + (dir / "q.tsv").string() +
              " --out " + (dir / "x.tsv").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("items.tsv"), std::string::npos) << r.output;
  r = run_cli("index build --vectors " + (dir / "items.tsv").string() + " --kind hnws --out " + idx);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("did you mean 'hnsw'"), std::string::npos) << r.output;
  r = run_cli("index serch");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("did you mean 'search'"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace bluewhale
