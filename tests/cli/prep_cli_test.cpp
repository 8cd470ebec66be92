// End-to-end tests of `bluewhale prep` / `inspect` through the built binary, on the real Criteo sample
// and on small hand-written inputs.
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <map>
#include <sstream>

#include "bluewhale/core/hash.h"
#include "bluewhale/data/dataset.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::run_cli;
using testing::TempDir;
using testing::write_text;

const std::string kCriteoSchema =
    "schema:\n"
    "  - {name: label, role: label}\n"
    "  - {names: I1..I13, role: dense}\n"
    "  - {names: C1..C26, role: categorical}\n";

const std::string kCriteoOps =
    "ops:\n"
    "  - {op: fill_missing, columns: I1..I13, value: 0}\n"
    "  - {op: clip, columns: I1..I13, min: 0}\n"
    "  - {op: log1p, columns: I1..I13}\n"
    "  - {op: categorify, columns: C1..C26, min_count: 2, order: frequency}\n";

std::vector<std::vector<std::string>> read_tsv(const fs::path& p) {
  std::ifstream f(p);
  std::vector<std::vector<std::string>> rows;
  std::string line;
  while (std::getline(f, line)) {
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (;;) {
      std::size_t tab = line.find('\t', start);
      fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
      if (tab == std::string::npos) break;
      start = tab + 1;
    }
    rows.push_back(fields);
  }
  return rows;
}

bool no_partial_left(const fs::path& dir) {
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".partial-") != std::string::npos) return false;
  return true;
}

TEST(PrepCli, RealCriteoSampleCardinalitiesMatchAnIndependentCount) {
  fs::path data = testing::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent: skipping the real Criteo sample test";
  fs::path tsv = data / "criteo" / "criteo_dac_13k.tsv";
  TempDir dir;
  write_text(dir / "r.yaml", kCriteoSchema + kCriteoOps + "split: {by: none}\n");
  auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + tsv.string() + " --out " +
                   (dir / "ds").string() + " --threads 2 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  auto rows = read_tsv(tsv);
  Dataset ds = Dataset::open(dir / "ds");
  ASSERT_EQ(ds.split_rows(Split::kTrain), static_cast<int64_t>(rows.size()));
  // Independent count: values seen at least twice are kept; ids 0 (missing) and 1 (rare) are reserved.
  for (int c = 0; c < 26; ++c) {
    std::map<std::string, int64_t> counts;
    for (const auto& row : rows)
      if (!row[14 + c].empty()) counts[row[14 + c]]++;
    int64_t kept = 0;
    for (const auto& [v, n] : counts) kept += n >= 2;
    int col = ds.find("C" + std::to_string(c + 1));
    ASSERT_GE(col, 0);
    EXPECT_EQ(ds.columns()[col].cardinality, kept + 2) << "C" << c + 1;
  }
  // Row-level check on C1 and I5: the most frequent value gets id 2, missing gets 0, log1p(max(x,0)).
  std::map<std::string, int64_t> c1;
  for (const auto& row : rows)
    if (!row[14].empty()) c1[row[14]]++;
  std::string top;
  int64_t top_n = -1;
  for (const auto& [v, n] : c1)
    if (n > top_n) top = v, top_n = n;
  int64_t seen = 0;
  int ci = ds.find("C1"), ii = ds.find("I5"), li = ds.label_column();
  for (int s = 0; s < ds.num_shards(Split::kTrain); ++s) {
    ShardView v = ds.open_shard(Split::kTrain, s);
    for (int64_t r = 0; r < v.rows(); ++r, ++seen) {
      const auto& row = rows[seen];
      int32_t id = v.ids(ci)[r];
      if (row[14].empty()) EXPECT_EQ(id, 0);
      else if (row[14] == top) EXPECT_EQ(id, 2);
      else if (c1[row[14]] < 2) EXPECT_EQ(id, 1);
      else EXPECT_GT(id, 2);
      double x = row[5].empty() ? 0.0 : std::max(0.0, std::stod(row[5]));
      EXPECT_NEAR(v.f32(ii)[r], std::log1p(x), 1e-5 * (1 + std::log1p(x)));
      EXPECT_EQ(v.f32(li)[r], std::stof(row[0]));
    }
  }
  EXPECT_EQ(seen, static_cast<int64_t>(rows.size()));

  auto ins = run_cli("inspect " + (dir / "ds").string() + " --rows 2 --verify");
  EXPECT_EQ(ins.exit_code, 0) << ins.output;
  EXPECT_NE(ins.output.find("categorify"), std::string::npos) << ins.output;
  EXPECT_NE(ins.output.find("verified"), std::string::npos) << ins.output;
}

TEST(PrepCli, ApplyToMapsNewFilesWithTheFittedDictionaries) {
  TempDir dir;
  // The fit file: 'a' three times, 'b' twice, 'c' once (rare); the new file has an unseen 'z'.
  write_text(dir / "fit.tsv", "1\t5\ta\n0\t\tb\n1\t2\ta\n0\t-3\tb\n1\t1\ta\n0\t1\tc\n");
  write_text(dir / "new.tsv", "0\t7\tb\n1\t0\tz\n0\t1\ta\n1\t\t\n");
  write_text(dir / "r.yaml",
             "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}]\n"
             "ops:\n"
             "  - {op: fill_missing, columns: x}\n"
             "  - {op: clip, columns: x, min: 0}\n"
             "  - {op: log1p, columns: x}\n"
             "  - {op: categorify, columns: c, min_count: 2}\n"
             "split: {by: none}\n");
  auto a = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "fit.tsv").string() + " --out " +
                   (dir / "fit").string() + " --quiet");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  auto b = run_cli("prep --apply-to " + (dir / "fit").string() + " --input " + (dir / "new.tsv").string() + " --out " +
                   (dir / "new").string() + " --quiet");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  Dataset fit = Dataset::open(dir / "fit"), nw = Dataset::open(dir / "new");
  EXPECT_EQ(fit.columns()[fit.find("c")].cardinality, 4);  // missing, rare, a, b
  EXPECT_EQ(nw.columns()[nw.find("c")].cardinality, 4);
  ASSERT_EQ(nw.split_rows(Split::kTest), 4);
  ShardView v = nw.open_shard(Split::kTest, 0);
  std::vector<int32_t> ids(v.ids(nw.find("c")).begin(), v.ids(nw.find("c")).end());
  EXPECT_EQ(ids, (std::vector<int32_t>{3, 1, 2, 0}));  // b, unseen z -> rare, a, missing
  EXPECT_NEAR(v.f32(nw.find("x"))[0], std::log1p(7.0), 1e-6);

  // A dataset whose categorical keys were made under another scheme (an older bluewhale hashed every
  // value) is refused: its dictionaries would map no new value.
  EXPECT_EQ(fit.pipeline().value("categorical_keys", 0), kCategoricalKeyScheme);
  nlohmann::json meta = nlohmann::json::parse(read_file(dir / "fit" / "meta.json"));
  meta["pipeline"].erase("categorical_keys");
  write_text(dir / "fit" / "meta.json", meta.dump(1));
  auto c = run_cli("prep --apply-to " + (dir / "fit").string() + " --input " + (dir / "new.tsv").string() + " --out " +
                   (dir / "old").string() + " --quiet");
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.output.find("meta.json: pipeline.categorical_keys"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("scheme 1, this build uses 2"), std::string::npos) << c.output;
  EXPECT_FALSE(fs::exists(dir / "old"));
  meta["pipeline"]["categorical_keys"] = "two";
  write_text(dir / "fit" / "meta.json", meta.dump(1));
  c = run_cli("prep --apply-to " + (dir / "fit").string() + " --input " + (dir / "new.tsv").string() + " --out " +
              (dir / "old").string() + " --quiet");
  EXPECT_NE(c.exit_code, 0);
  EXPECT_NE(c.output.find("pipeline.categorical_keys: expected an integer, got \"two\""), std::string::npos)
      << c.output;
  EXPECT_FALSE(fs::exists(dir / "old"));
}

TEST(PrepCli, BadRowFailsNamingFileLineColumnAndLeavesNoDataset) {
  TempDir dir;
  write_text(dir / "in.tsv", "1\t5\ta\n0\tfive\tb\n");
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}]\n"
                             "ops: [{op: categorify, columns: c}]\n");
  auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out " +
                   (dir / "ds").string() + " --quiet");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("in.tsv:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'x'"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("five"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "ds"));
  EXPECT_TRUE(no_partial_left(dir.path()));

  write_text(dir / "short.tsv", "1\t5\ta\n0\t1\n");
  r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "short.tsv").string() + " --out " +
              (dir / "ds").string() + " --quiet");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("short.tsv:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("3"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "ds"));
}

TEST(PrepCli, SkipModeCountsBadRows) {
  TempDir dir;
  write_text(dir / "in.tsv", "1\t5\ta\n0\tfive\tb\n1\t2\n0\t3\ta\n");
  write_text(dir / "r.yaml", "input: {on_bad_rows: skip}\n"
                             "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}]\n"
                             "ops: [{op: categorify, columns: c}]\nsplit: {by: none}\n");
  auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out " +
                   (dir / "ds").string() + " --report " + (dir / "rep.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("skipped 2"), std::string::npos) << r.output;
  EXPECT_EQ(Dataset::open(dir / "ds").split_rows(Split::kTrain), 2);
  std::ifstream rep(dir / "rep.json");
  std::stringstream ss;
  ss << rep.rdbuf();
  EXPECT_NE(ss.str().find("\"skipped_rows\": 2"), std::string::npos) << ss.str();
  // Two rows are too few to measure what writing through the page cache costs: the page cache, no figure.
  EXPECT_NE(ss.str().find("\"shard_writes\": \"page cache\""), std::string::npos) << ss.str();
  EXPECT_EQ(ss.str().find("page_cache_us_per_mib"), std::string::npos) << ss.str();
}

TEST(PrepCli, RecipeMistakesNameTheNearestKey) {
  TempDir dir;
  write_text(dir / "in.tsv", "1\t5\n");
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}]\nsplitt: {by: none}\n");
  auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out " +
                   (dir / "ds").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("r.yaml:2"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("did you mean 'split'"), std::string::npos) << r.output;

  write_text(dir / "r2.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}]\n"
                              "ops: [{op: log1p, columns: x, bogus: 1}]\n");
  r = run_cli("prep --recipe " + (dir / "r2.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out " +
              (dir / "ds").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("bogus"), std::string::npos) << r.output;

  r = run_cli("prep --recipe " + (dir / "r2.yaml").string() + " --inptu x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("did you mean '--input'"), std::string::npos) << r.output;

  r = run_cli("prep --recipe " + (dir / "nope.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out x");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("nope.yaml"), std::string::npos) << r.output;
}

TEST(PrepCli, UnreadableInputIsNamedAndNothingIsWritten) {
  TempDir dir;
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}]\n");
  auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "missing.tsv").string() +
                   " --out " + (dir / "ds").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("missing.tsv"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "ds"));
}

TEST(PrepCli, PipedInputIsRefusedWithAClearError) {
  // Each input is read more than once; a pipe used to give a misleading field-count error on its line 1.
  TempDir dir;
  write_text(dir / "in.tsv", "1\t5\n0\t7\n");
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}]\n");
  auto piped = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input /dev/stdin --out " +
                           (dir / "ds").string(),
                       "cat " + (dir / "in.tsv").string() + " |");
  EXPECT_NE(piped.exit_code, 0);
  EXPECT_NE(piped.output.find("'/dev/stdin' is not a regular file (a pipe or a device)"), std::string::npos) << piped.output;
  EXPECT_FALSE(fs::exists(dir / "ds"));
  // Redirected from a file, standard input is that file: accepted.
  auto redirected = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input /dev/stdin --out " +
                            (dir / "ds2").string() + " --quiet < " + (dir / "in.tsv").string());
  EXPECT_EQ(redirected.exit_code, 0) << redirected.output;
  EXPECT_EQ(Dataset::open(dir / "ds2").split_rows(Split::kTrain), 2);
  // A device too.
  auto device = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input /dev/null --out " + (dir / "ds3").string());
  EXPECT_NE(device.exit_code, 0);
  EXPECT_NE(device.output.find("'/dev/null' is not a regular file"), std::string::npos) << device.output;
}

TEST(PrepCli, FitSharingByColumnsOrChunksGivesTheSameDataset) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i)
    text += std::to_string(i % 2) + "\tv" + std::to_string(i * 7919 % 15000) + "\tw" + std::to_string(i % 13) + "\n";
  write_text(dir / "in.tsv", text);
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: a, role: categorical}, {name: b, role: categorical}]\n"
                             "ops: [{op: categorify, columns: [a, b]}]\n");
  for (const char* how : {"columns", "chunks"}) {
    auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() + " --out " +
                     (dir / how).string() + " --threads 2 --quiet --fit-sharing " + how + " --report " +
                     (dir / (std::string(how) + ".json")).string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(read_file(dir / (std::string(how) + ".json")).find(std::string("\"fit_sharing\": \"") + how + "\""),
              std::string::npos)
        << how;
  }
  Dataset a = Dataset::open(dir / "columns"), b = Dataset::open(dir / "chunks");
  ShardView va = a.open_shard(Split::kTrain, 0), vb = b.open_shard(Split::kTrain, 0);
  for (const char* c : {"a", "b"}) {
    auto ia = va.ids(a.find(c)), ib = vb.ids(b.find(c));
    EXPECT_TRUE(std::equal(ia.begin(), ia.end(), ib.begin(), ib.end())) << c;
  }
  auto bad = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() +
                     " --out " + (dir / "bad").string() + " --fit-sharing rows");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--fit-sharing expects auto, chunks or columns, got 'rows'"), std::string::npos) << bad.output;
}

TEST(PrepCli, GzipAndReadInputGiveTheSameDatasetAsMappedPlainText) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += std::to_string(i % 2) + "\t" + std::to_string(i % 17) + "\tv" + std::to_string(i % 11) + "\n";
  write_text(dir / "in.tsv", text);
  gzFile gz = gzopen((dir / "in.tsv.gz").c_str(), "wb");
  gzwrite(gz, text.data(), static_cast<unsigned>(text.size()));
  gzclose(gz);
  write_text(dir / "r.yaml", "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}]\n"
                             "ops: [{op: categorify, columns: c}]\nsplit: {by: ratio, valid: 0.2, seed: 3}\n");
  // Plain text is mapped by default; --map-mb 0 reads it with read().
  const std::vector<std::pair<std::string, std::string>> runs = {
      {"in.tsv", "in.tsv.ds"}, {"in.tsv.gz", "in.tsv.gz.ds"}, {"in.tsv --map-mb 0", "read.ds"}};
  for (const auto& [in, out] : runs) {
    auto r = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / in).string() + " --out " +
                     (dir / out).string() + " --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  Dataset a = Dataset::open(dir / "in.tsv.ds");
  for (const char* other : {"in.tsv.gz.ds", "read.ds"}) {
    Dataset b = Dataset::open(dir / other);
    for (Split s : {Split::kTrain, Split::kValid}) {
      ASSERT_EQ(a.split_rows(s), b.split_rows(s)) << other;
      ShardView va = a.open_shard(s, 0), vb = b.open_shard(s, 0);
      auto ia = va.ids(a.find("c")), ib = vb.ids(b.find("c"));
      EXPECT_TRUE(std::equal(ia.begin(), ia.end(), ib.begin(), ib.end())) << other;
    }
  }
  auto neg = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() +
                     " --out " + (dir / "neg.ds").string() + " --map-mb -1");
  EXPECT_NE(neg.exit_code, 0);
  EXPECT_NE(neg.output.find("--map-mb must be between 0 and 2^40 MiB, got -1"), std::string::npos) << neg.output;
  auto huge = run_cli("prep --recipe " + (dir / "r.yaml").string() + " --input " + (dir / "in.tsv").string() +
                      " --out " + (dir / "huge.ds").string() + " --cache-mb 9000000000000");
  EXPECT_NE(huge.exit_code, 0);
  EXPECT_NE(huge.output.find("--cache-mb must be between 0 and 2^40 MiB, got 9000000000000"), std::string::npos)
      << huge.output;
  EXPECT_GT(a.split_rows(Split::kValid), 450);
  EXPECT_LT(a.split_rows(Split::kValid), 750);
}

TEST(PrepCli, GeneratedLogsThroughTheStandardRecipeAndInspect) {
  TempDir dir;
  auto g = run_cli("gen criteo --rows 30000 --seed 3 --threads 2 --out " + (dir / "day.tsv.gz").string());
  ASSERT_EQ(g.exit_code, 0) << g.output;
  EXPECT_NE(g.output.find("best achievable AUC"), std::string::npos) << g.output;
  EXPECT_TRUE(fs::exists(dir / "day.tsv.gz.truth.json"));
  auto p = run_cli("prep --recipe " + std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml --input " +
                   (dir / "day.tsv.gz").string() + " --out " + (dir / "ds").string() + " --threads 2");
  ASSERT_EQ(p.exit_code, 0) << p.output;
  // The progress lines and the summary.
  EXPECT_NE(p.output.find("rows/s"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("rows: 30000"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("categorify C3"), std::string::npos) << p.output;
  Dataset ds = Dataset::open(dir / "ds");
  EXPECT_EQ(ds.split_rows(Split::kTrain) + ds.split_rows(Split::kValid) + ds.split_rows(Split::kTest), 30000);
  EXPECT_EQ(ds.categorical_columns().size(), 26u);
  EXPECT_EQ(ds.dense_columns().size(), 13u);
  auto i = run_cli("inspect " + (dir / "ds").string() + " --rows 1 --loader-bench --batch 512");
  ASSERT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("loader:"), std::string::npos) << i.output;
  EXPECT_NE(i.output.find("C26"), std::string::npos) << i.output;

  // A corrupted shard is caught by inspect --verify, naming the file.
  fs::path shard = dir / "ds" / ds.shards(Split::kTrain)[0].file;
  std::string bytes = read_file(shard);
  bytes[bytes.size() - 100] ^= 0x55;
  write_file_atomic(shard, bytes);
  auto v = run_cli("inspect " + (dir / "ds").string() + " --verify --rows 0");
  EXPECT_NE(v.exit_code, 0);
  EXPECT_NE(v.output.find("shard-00000"), std::string::npos) << v.output;
}

// gen, prep and inspect never load OpenBLAS (bluewhale/nn/blas.h): they run with BW_OPENBLAS naming a
// library that is not there, where a command that needs it fails with an error that says so.
TEST(PrepCli, PrepGenAndInspectRunWithoutOpenBlas) {
  TempDir dir;
  const std::string env = "BW_OPENBLAS=/nonexistent/libopenblas.so.0";
  auto g = run_cli("gen criteo --rows 2000 --seed 5 --out " + (dir / "day.tsv").string(), env);
  ASSERT_EQ(g.exit_code, 0) << g.output;
  auto p = run_cli("prep --recipe " + std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml --input " +
                       (dir / "day.tsv").string() + " --out " + (dir / "ds").string() + " --threads 2",
                   env);
  ASSERT_EQ(p.exit_code, 0) << p.output;
  auto i = run_cli("inspect " + (dir / "ds").string() + " --rows 1", env);
  ASSERT_EQ(i.exit_code, 0) << i.output;
  auto v = run_cli("version", env);
  EXPECT_EQ(v.exit_code, 1) << v.output;
  EXPECT_NE(v.output.find("bluewhale version: error: cannot load OpenBLAS"), std::string::npos) << v.output;
  EXPECT_NE(v.output.find("/nonexistent/libopenblas.so.0"), std::string::npos) << v.output;
}

TEST(PrepCli, KilledRunLeavesTheExistingDatasetIntact) {
  TempDir dir;
  auto g = run_cli("gen criteo --rows 400000 --seed 4 --out " + (dir / "day.tsv").string());
  ASSERT_EQ(g.exit_code, 0) << g.output;
  std::string recipe = std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml";
  auto first = run_cli("prep --recipe " + recipe + " --input " + (dir / "day.tsv").string() + " --out " +
                       (dir / "ds").string() + " --quiet --threads 1");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  std::string before = read_file(dir / "ds" / "meta.json");
  // A second run over the same output, killed with SIGKILL part-way (or, on a fast machine, finished):
  // either way the output directory holds one complete, readable dataset.
  auto killed = run_cli("prep --recipe " + recipe + " --input " + (dir / "day.tsv").string() + " --out " +
                        (dir / "ds").string() + " --overwrite --quiet --threads 1 & pid=$!; sleep 0.3; kill -9 $pid; wait $pid");
  Dataset ds = Dataset::open(dir / "ds");
  EXPECT_EQ(ds.split_rows(Split::kTrain) + ds.split_rows(Split::kValid) + ds.split_rows(Split::kTest), 400000);
  for (int s = 0; s < kNumSplits; ++s)
    for (int i = 0; i < ds.num_shards(Split(s)); ++i) EXPECT_NO_THROW(ds.open_shard(Split(s), i, true));
  if (killed.exit_code != 0) {
    EXPECT_EQ(read_file(dir / "ds" / "meta.json"), before) << "killed run changed the dataset";
  }
}

TEST(Cli, HelpAndUnknownCommand) {
  auto r = run_cli("prep --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--recipe"), std::string::npos);
  EXPECT_NE(r.output.find("--threads"), std::string::npos);
  r = run_cli("prpe");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("did you mean 'prep'"), std::string::npos) << r.output;
  for (const char* cmd : {"gen criteo --help", "inspect --help", "train --help", "eval --help", "predict --help",
                          "bench train --help", "index build --help", "index search --help", "index bench --help",
                          "gen vectors --help", "tune --help", "tune advise --help", "tune status --help"}) {
    r = run_cli(cmd);
    EXPECT_EQ(r.exit_code, 0) << cmd << r.output;
    EXPECT_NE(r.output.find("--threads"), std::string::npos) << cmd;
  }
}

}  // namespace
}  // namespace bluewhale
