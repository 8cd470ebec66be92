// The prep driver: fit staging, splits, caching between passes, determinism, apply-to.
#include "bluewhale/prep/pipeline.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cmath>

#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "bluewhale/core/log.h"
#include "bluewhale/data/dataset.h"
#include "prep/packed_chunk.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;
using testing::write_text;

// Rows "label \t x \t cat \t day" with a skewed categorical column.
std::string make_rows(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s;
  for (int i = 0; i < n; ++i) {
    int cat = static_cast<int>(std::min<uint64_t>(rng() % 64, rng() % 64));
    s += std::to_string(rng() % 4 == 0) + "\t" + (rng() % 10 == 0 ? "" : std::to_string(rng() % 1000)) + "\tv" +
         std::to_string(cat) + "\t" + std::to_string(i / 100) + "\n";
  }
  return s;
}

const char* kSchema =
    "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}, "
    "{name: day, role: timestamp}]\n";

PrepOptions options(const TempDir& dir, std::vector<std::string> inputs, const std::string& out, int threads = 2) {
  PrepOptions o;
  o.inputs = std::move(inputs);
  o.out = dir / out;
  o.threads = threads;
  o.progress = false;
  return o;
}

void write_gzip(const std::string& path, const std::string& text) {
  gzFile gz = gzopen(path.c_str(), "wb");
  ASSERT_NE(gz, nullptr) << path;
  ASSERT_EQ(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  ASSERT_EQ(gzclose(gz), Z_OK);
}

// Every stored byte of every shard, split by split, for dataset equality.
std::string dataset_bytes(const fs::path& root) {
  Dataset ds = Dataset::open(root);
  std::string all;
  for (int s = 0; s < kNumSplits; ++s)
    for (const auto& sh : ds.shards(Split(s))) all += read_file(root / sh.file);
  return all;
}

// The cache between passes packs chunks: unpacking must give back every field, into a fresh chunk and
// into a reused one that held something else (more columns, longer vectors).
TEST(PackedChunk, RoundTripRestoresEveryFieldIntoFreshAndReusedChunks) {
  Chunk c;
  c.rows = 5;
  c.first_row = 1000;
  c.file_index = 2;
  c.first_line = 77;
  Column& f = c.add_column("x", Role::kDense, ColumnKind::kFloat);
  f.f = {1.5f, std::numeric_limits<float>::quiet_NaN(), -0.0f, 3e38f, 0.0f};
  c.add_column("cat", Role::kCategorical, ColumnKind::kInt, 9);
  c.columns[1].i = {std::numeric_limits<int64_t>::min(), -1, 0, 7, std::numeric_limits<int64_t>::max()};
  c.columns[1].valid = {1, 0, 1, 1, 0};
  c.add_column("seq", Role::kSequence, ColumnKind::kList);
  c.columns[2].offsets = {0, 0, 3, 3, 4, 4};
  c.columns[2].i = {5, 6, 7, 8};
  c.add_column("empty", Role::kId, ColumnKind::kInt);
  c.columns[3].i.clear();
  c.columns[3].valid.clear();
  c.split = {0, 1, 2, 0, 0};
  c.row_index = {1000, 1001, 1003, 1004, 1006};

  PackedChunk packed(c);
  EXPECT_GT(packed.bytes(), 0);
  auto expect_same = [&](const Chunk& d) {
    EXPECT_EQ(d.rows, c.rows);
    EXPECT_EQ(d.first_row, c.first_row);
    EXPECT_EQ(d.file_index, c.file_index);
    EXPECT_EQ(d.first_line, c.first_line);
    ASSERT_EQ(d.columns.size(), c.columns.size());
    for (std::size_t k = 0; k < c.columns.size(); ++k) {
      const Column& a = c.columns[k];
      const Column& b = d.columns[k];
      EXPECT_EQ(b.name, a.name);
      EXPECT_EQ(b.role, a.role);
      EXPECT_EQ(b.kind, a.kind);
      EXPECT_EQ(b.cardinality, a.cardinality);
      ASSERT_EQ(b.f.size(), a.f.size());
      for (std::size_t r = 0; r < a.f.size(); ++r)  // bitwise: NaN and -0 included
        EXPECT_EQ(std::memcmp(&a.f[r], &b.f[r], sizeof(float)), 0) << k << " " << r;
      EXPECT_EQ(b.i, a.i);
      EXPECT_EQ(b.valid, a.valid);
      EXPECT_EQ(b.offsets, a.offsets);
    }
    EXPECT_EQ(d.split, c.split);
    EXPECT_EQ(d.row_index, c.row_index);
  };
  Chunk fresh;
  packed.unpack(fresh);
  expect_same(fresh);

  Chunk reused;
  reused.rows = 99;
  for (int k = 0; k < 6; ++k) reused.add_column("old" + std::to_string(k), Role::kDense, ColumnKind::kFloat);
  for (auto& col : reused.columns) {
    col.f.assign(1000, 4.0f);
    col.i.assign(50, 3);
    col.valid.assign(50, 1);
  }
  reused.split.assign(1000, 2);
  packed.unpack(reused);
  expect_same(reused);

  // From an arena: same contents, and chunks packed after it do not disturb it.
  PackArena arena(1 << 12);
  PackedChunk from_arena(c, &arena);
  std::vector<std::unique_ptr<PackedChunk>> others;
  for (int k = 0; k < 40; ++k) others.push_back(std::make_unique<PackedChunk>(reused, &arena));
  Chunk third;
  from_arena.unpack(third);
  expect_same(third);

  Chunk empty;
  PackedChunk packed_empty(empty);
  packed_empty.unpack(reused);
  EXPECT_EQ(reused.rows, 0);
  EXPECT_TRUE(reused.columns.empty());
  EXPECT_TRUE(reused.split.empty());
}

class PrepPipeline : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level(LogLevel::kWarn); }
  TempDir dir;
};

// Auto shares the fit by columns only for a round trip in (200, 410] ns: near CPUs, the farther host
// (415-540 ns), and no measure all go by chunks.
TEST(PrepOptions, AutoFitSharingByColumnsOnlyInTheFarBand) {
  EXPECT_FALSE(PrepOptions::columns_for_round_trip(std::nan("")));
  EXPECT_FALSE(PrepOptions::columns_for_round_trip(55));
  EXPECT_FALSE(PrepOptions::columns_for_round_trip(200));
  EXPECT_TRUE(PrepOptions::columns_for_round_trip(201));
  EXPECT_TRUE(PrepOptions::columns_for_round_trip(380));
  EXPECT_TRUE(PrepOptions::columns_for_round_trip(410));
  EXPECT_FALSE(PrepOptions::columns_for_round_trip(415));
  EXPECT_FALSE(PrepOptions::columns_for_round_trip(480));
}

TEST_F(PrepPipeline, SameDatasetForAnyThreadCountChunkSizeAndCacheBudget) {
  write_text(dir / "a.tsv", make_rows(150000, 1));
  write_text(dir / "b.tsv", make_rows(70000, 2));
  std::string recipe_text = std::string(kSchema) +
                            "input: {chunk_mb: 1}\n"
                            "ops:\n"
                            "  - {op: fill_missing, columns: x}\n"
                            "  - {op: log1p, columns: x}\n"
                            "  - {op: categorify, columns: c, min_count: 3}\n"
                            "  - {op: count_encode, columns: c}\n"
                            "split: {by: ratio, valid: 0.1, test: 0.1, seed: 5}\n"
                            "output: {shard_rows: 65536}\n";
  Recipe r = parse_recipe(recipe_text, "r.yaml");
  std::vector<std::string> in = {(dir / "a.tsv").string(), (dir / "b.tsv").string()};
  PrepOptions base = options(dir, in, "t1", 1);
  PrepReport rep = run_prep(r, base);
  EXPECT_EQ(rep.rows, 220000);
  // categorify (fit pass 1) feeds count_encode (fit pass 2), then the write pass.
  EXPECT_EQ(rep.passes, 3);
  std::string reference = dataset_bytes(dir / "t1");

  PrepOptions two = options(dir, in, "t2", 2);
  run_prep(r, two);
  EXPECT_EQ(dataset_bytes(dir / "t2"), reference) << "2 threads";

  PrepOptions nocache = options(dir, in, "t3", 2);
  nocache.cache_mb = 0;
  run_prep(r, nocache);
  EXPECT_EQ(dataset_bytes(dir / "t3"), reference) << "no cache";

  // Plain files are mapped by default (every pass parses the mapping); read(), or only the first mapped.
  PrepOptions unmapped = options(dir, in, "t8", 2);
  unmapped.map_mb = 0;
  run_prep(r, unmapped);
  EXPECT_EQ(dataset_bytes(dir / "t8"), reference) << "read, not mapped";
  PrepOptions first_mapped = options(dir, in, "t9", 2);
  first_mapped.map_mb = static_cast<int64_t>(fs::file_size(in[0]) >> 20) + 1;
  ASSERT_LT(first_mapped.map_mb << 20, static_cast<int64_t>(fs::file_size(in[0]) + fs::file_size(in[1])));
  run_prep(r, first_mapped);
  EXPECT_EQ(dataset_bytes(dir / "t9"), reference) << "first file mapped";

  // Plain text is parsed again in every pass; compressed input is what the between-pass cache holds.
  std::vector<std::string> gz = {(dir / "a.tsv.gz").string(), (dir / "b.tsv.gz").string()};
  write_gzip(gz[0], make_rows(150000, 1));
  write_gzip(gz[1], make_rows(70000, 2));
  PrepOptions cached = options(dir, gz, "t4", 2);
  run_prep(r, cached);
  EXPECT_EQ(dataset_bytes(dir / "t4"), reference) << "compressed input, cached";

  PrepOptions partial = options(dir, gz, "t5", 2);
  partial.cache_mb = 3;  // about one of the four 1 MiB chunks (2 MB parsed each): the rest is re-read
  run_prep(r, partial);
  EXPECT_EQ(dataset_bytes(dir / "t5"), reference) << "compressed input, partial cache";

  PrepOptions gz_nocache = options(dir, gz, "t6", 1);
  gz_nocache.cache_mb = 0;
  run_prep(r, gz_nocache);
  EXPECT_EQ(dataset_bytes(dir / "t6"), reference) << "compressed input, no cache, 1 thread";

  // One plain and one compressed file: the cache is used.
  PrepOptions mixed = options(dir, {in[0], gz[1]}, "t7", 2);
  run_prep(r, mixed);
  EXPECT_EQ(dataset_bytes(dir / "t7"), reference) << "mixed inputs";
}

// Six categorical columns of different sizes, some values missing, for the fit-by-parts tests.
std::string make_wide_rows(int n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const uint64_t sizes[] = {3, 40, 700, 9000, 60000, 200000};
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += std::to_string(rng() % 4 == 0) + "\t" + std::to_string(rng() % 1000);
    for (uint64_t size : sizes) {
      s += '\t';
      if (rng() % 9 == 0) continue;
      const uint64_t v = std::min(rng() % size, rng() % size);
      // Criteo-like 8-hex-digit values in some columns, short strings in others.
      char buf[16];
      std::snprintf(buf, sizeof buf, size % 2 ? "%08llx" : "k%llu", static_cast<unsigned long long>(v * 2654435761u % (1ull << 32)));
      s += buf;
    }
    s += '\n';
  }
  return s;
}

const char* kWideSchema =
    "schema: [{name: y, role: label}, {name: x, role: dense}, {names: c1..c6, role: categorical}]\n";

TEST_F(PrepPipeline, FitByPartsGivesTheSameDatasetForAnyThreadCountAndBudget) {
  // With two threads or more, categorify's columns are counted by parts: each column by one owner thread,
  // whichever thread parsed the chunk. Two categorify operators (frequency and first-appearance order), a
  // fit without parts in the same pass (bucketize) and a split; more threads than parts; a budget small
  // enough to spill: every run gives the single-thread dataset.
  write_text(dir / "a.tsv", make_wide_rows(90000, 3));
  write_text(dir / "b.tsv", make_wide_rows(40000, 4));
  auto recipe = [](int memory_mb) {
    return parse_recipe(std::string(kWideSchema) + "input: {chunk_mb: 1}\n" +
                            "ops:\n"
                            "  - {op: bucketize, columns: x, num_buckets: 8}\n"
                            "  - {op: categorify, columns: c1..c4, min_count: 2, memory_mb: " +
                            std::to_string(memory_mb) +
                            "}\n"
                            "  - {op: categorify, columns: [c5, c6], min_count: 1, order: first, memory_mb: " +
                            std::to_string(memory_mb) +
                            "}\n"
                            "split: {by: ratio, valid: 0.1, test: 0.1, seed: 9}\n"
                            "output: {shard_rows: 16384}\n",
                        "w.yaml");
  };
  std::vector<std::string> in = {(dir / "a.tsv").string(), (dir / "b.tsv").string()};
  PrepReport ref = run_prep(recipe(0), options(dir, in, "t1", 1));
  EXPECT_EQ(ref.rows, 130000);
  const std::string reference = dataset_bytes(dir / "t1");
  for (int threads : {2, 3, 8}) {
    const std::string out = "t" + std::to_string(threads);
    PrepReport rep = run_prep(recipe(0), options(dir, in, out, threads));
    EXPECT_TRUE(dataset_bytes(dir / out) == reference) << threads << " threads";
    ASSERT_EQ(rep.columns.size(), ref.columns.size());
    for (std::size_t k = 0; k < rep.columns.size(); ++k)
      EXPECT_EQ(rep.columns[k].cardinality, ref.columns[k].cardinality) << rep.columns[k].name << ", " << threads;
  }
  PrepReport spilled1 = run_prep(recipe(1), options(dir, in, "spilled1", 1));
  EXPECT_TRUE(dataset_bytes(dir / "spilled1") == reference) << "1 MiB counting budget, 1 thread";
  PrepReport spilled = run_prep(recipe(1), options(dir, in, "spilled", 3));
  EXPECT_TRUE(dataset_bytes(dir / "spilled") == reference) << "1 MiB counting budget";
  bool any_spill = false;
  for (const std::string& s : spilled.op_summaries) any_spill = any_spill || s.find("spill runs") != std::string::npos;
  EXPECT_TRUE(any_spill) << "the budget was meant to force spills";
}

TEST_F(PrepPipeline, FitSharedByColumnsGivesTheSameDatasetAsByChunksAndOneThread) {
  // Two threads share the counting of categorify's columns by chunks, or by columns (both read every
  // chunk, each converts its own columns; prep/column_split.h). Chunks of 64 KiB, so that the first few
  // calibrate and the big columns get owners. Frequency and first-appearance order, a ratio split, a time
  // split (its column converted by every parse), a counting budget small enough to spill: every run gives
  // the single-thread dataset, cardinalities and missing rates, and reports how the fit was shared.
  write_text(dir / "a.tsv", make_wide_rows(90000, 3));
  write_text(dir / "b.tsv", make_wide_rows(40000, 4));
  auto recipe = [](const std::string& schema, const std::string& split, int memory_mb) {
    Recipe r = parse_recipe(schema + "ops:\n  - {op: categorify, columns: c1..c4, min_count: 2, memory_mb: " +
                                std::to_string(memory_mb) + "}\n  - {op: categorify, columns: [c5, c6], order: first, memory_mb: " +
                                std::to_string(memory_mb) + "}\n" + split + "output: {shard_rows: 16384}\n",
                            "w.yaml");
    r.input.format.chunk_bytes = 64 << 10;
    return r;
  };
  const std::string timed_schema =
      "schema: [{name: y, role: label}, {name: x, role: timestamp}, {names: c1..c6, role: categorical}]\n";
  const std::vector<Recipe> recipes = {
      recipe(kWideSchema, "split: {by: ratio, valid: 0.1, test: 0.1, seed: 9}\n", 0),
      recipe(timed_schema, "split: {by: time, column: x, valid_from: 800, test_from: 900}\n", 0),
      recipe(kWideSchema, "", 1)};
  std::vector<std::string> in = {(dir / "a.tsv").string(), (dir / "b.tsv").string()};
  for (std::size_t k = 0; k < recipes.size(); ++k) {
    PrepReport ref = run_prep(recipes[k], options(dir, in, "one" + std::to_string(k), 1));
    EXPECT_EQ(ref.fit_sharing, "");
    const std::string reference = dataset_bytes(dir / ("one" + std::to_string(k)));
    for (auto sharing : {PrepOptions::FitSharing::kChunks, PrepOptions::FitSharing::kColumns}) {
      const std::string name = sharing == PrepOptions::FitSharing::kColumns ? "columns" : "chunks";
      const std::string out = name + std::to_string(k);
      PrepOptions o = options(dir, in, out, 2);
      o.fit_sharing = sharing;
      PrepReport rep = run_prep(recipes[k], o);
      EXPECT_EQ(rep.fit_sharing, name) << k;
      EXPECT_TRUE(dataset_bytes(dir / out) == reference) << "recipe " << k << ", by " << name;
      ASSERT_EQ(rep.columns.size(), ref.columns.size());
      for (std::size_t c = 0; c < rep.columns.size(); ++c) {
        EXPECT_EQ(rep.columns[c].cardinality, ref.columns[c].cardinality) << rep.columns[c].name << ", by " << name;
        EXPECT_EQ(rep.columns[c].missing_rate, ref.columns[c].missing_rate) << rep.columns[c].name << ", by " << name;
      }
    }
  }
  // By columns over text that is read (not mapped) and over gzip input with no cache between the passes:
  // the chunks' texts are then buffers the two threads share until both are done with them.
  write_gzip((dir / "a.tsv.gz").string(), make_wide_rows(90000, 3));
  write_gzip((dir / "b.tsv.gz").string(), make_wide_rows(40000, 4));
  for (bool gz : {false, true}) {
    const std::string out = gz ? "columns_gz" : "columns_read";
    PrepOptions o = options(dir, gz ? std::vector<std::string>{(dir / "a.tsv.gz").string(), (dir / "b.tsv.gz").string()} : in,
                            out, 2);
    o.fit_sharing = PrepOptions::FitSharing::kColumns;
    o.map_mb = 0;
    o.cache_mb = 0;
    EXPECT_EQ(run_prep(recipes[0], o).fit_sharing, "columns") << out;
    EXPECT_TRUE(dataset_bytes(dir / out) == dataset_bytes(dir / "one0")) << out;
  }
  // Where sharing by columns does not apply, it goes by chunks: a fit without parts in the pass
  // (bucketize), three threads.
  Recipe mixed = parse_recipe(std::string(kWideSchema) +
                                  "ops:\n  - {op: bucketize, columns: x, num_buckets: 4}\n  - {op: categorify, columns: c1..c6}\n",
                              "m.yaml");
  PrepReport one = run_prep(mixed, options(dir, in, "m1", 1));
  PrepOptions o2 = options(dir, in, "m2", 2);
  o2.fit_sharing = PrepOptions::FitSharing::kColumns;
  EXPECT_EQ(run_prep(mixed, o2).fit_sharing, "chunks");
  EXPECT_TRUE(dataset_bytes(dir / "m2") == dataset_bytes(dir / "m1"));
  PrepOptions o3 = options(dir, in, "m3", 3);
  o3.fit_sharing = PrepOptions::FitSharing::kColumns;
  EXPECT_EQ(run_prep(recipes[0], o3).fit_sharing, "chunks");
  EXPECT_TRUE(dataset_bytes(dir / "m3") == dataset_bytes(dir / "one0"));
  EXPECT_EQ(one.rows, 130000);
}

// Runs categorify over `good` with line `line` changed by `edit` (given the text and where the line
// starts) on 2 and 3 threads: each run must stop with an InputError naming "bad.tsv:<line>: " + what,
// leave no dataset behind, and not hang.
void expect_bad_line_stops(const TempDir& dir, const std::string& good, int line,
                           const std::function<void(std::string&, std::size_t)>& edit, const std::string& what) {
  std::string text = good;
  std::size_t at = 0;
  for (int l = 1; l < line; ++l) at = text.find('\n', at) + 1;
  edit(text, at);
  write_text(dir / "bad.tsv", text);
  Recipe r = parse_recipe(std::string(kWideSchema) + "input: {chunk_mb: 1}\nops: [{op: categorify, columns: c1..c6}]\n",
                          "b.yaml");
  for (int threads : {2, 3, -2}) {  // -2: two threads sharing the fit by columns
    try {
      PrepOptions o = options(dir, {(dir / "bad.tsv").string()}, "bad", std::abs(threads));
      if (threads < 0) o.fit_sharing = PrepOptions::FitSharing::kColumns;
      run_prep(r, o);
      ADD_FAILURE() << "line " << line << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.tsv:" + std::to_string(line) + ": " + what), std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(fs::exists(dir / "bad"));
  }
}

TEST_F(PrepPipeline, FitByPartsStopsOnABadRowWithoutHanging) {
  // A bad row in the fit pass stops every thread (some may be waiting for others to count their parts)
  // and names its line; no dataset is left behind. Bad rows early, in the middle and in the last chunk.
  const std::string good = make_wide_rows(60000, 5);
  for (int line : {3, 30000, 59990})
    expect_bad_line_stops(
        dir, good, line, [](std::string& t, std::size_t at) { t.insert(t.find('\n', at), "\textra"); },
        "expected 8 fields, got 9");
}

TEST_F(PrepPipeline, BadValueFoundInTheWritePassStopsEveryWorkerWithoutHanging) {
  // x is read by no fitted operator, so the fit pass leaves it unparsed and its bad value surfaces in
  // the write pass, on one worker, while the others run ahead; with more chunks than the writer lets
  // them run ahead (about 17 chunks of 1 MiB here), they used to wait forever for the failed chunk.
  const std::string good = make_wide_rows(300000, 6);
  for (int line : {5, 150000, 299990})
    expect_bad_line_stops(
        dir, good, line,
        [](std::string& t, std::size_t at) {
          const std::size_t x = t.find('\t', at) + 1;
          t.replace(x, t.find('\t', x) - x, "abc");
        },
        "column 'x'");
}

TEST_F(PrepPipeline, FitPassRowCountsLetTheWriterStreamShards) {
  // After a fit pass the driver promises each split's rows (DatasetWriter::expect_rows): shards are then
  // streamed, their blocks at 4096-byte offsets. A recipe that fits nothing writes in one pass and keeps
  // whole-shard buffering (64-byte offsets). Both hold the same rows.
  write_text(dir / "a.tsv", make_rows(5000, 7));
  const std::string split = "split: {by: ratio, valid: 0.2, test: 0.1, seed: 3}\noutput: {shard_rows: 1024}\n";
  Recipe fitted = parse_recipe(std::string(kSchema) + "ops:\n  - {op: categorify, columns: c}\n" + split, "f.yaml");
  Recipe stateless = parse_recipe(std::string(kSchema) + "ops:\n  - {op: hash, columns: c, buckets: 1000}\n" + split, "s.yaml");
  PrepReport rf = run_prep(fitted, options(dir, {(dir / "a.tsv").string()}, "fitted"));
  PrepReport rs = run_prep(stateless, options(dir, {(dir / "a.tsv").string()}, "stateless"));
  EXPECT_EQ(rf.passes, 2);
  EXPECT_EQ(rs.passes, 1);
  auto block_offsets = [](const fs::path& shard) {
    std::string b = read_file(shard);
    std::vector<uint64_t> offs;
    for (int k = 0; k < 4; ++k) {
      uint64_t off;
      std::memcpy(&off, b.data() + 64 + 32 * k + 8, 8);
      offs.push_back(off);
    }
    return offs;
  };
  for (const char* split_dir : {"train", "valid", "test"}) {
    for (uint64_t off : block_offsets(dir / "fitted" / split_dir / "shard-00000.bwd")) EXPECT_EQ(off % 4096, 0u) << split_dir;
    bool all_pages = true;
    for (uint64_t off : block_offsets(dir / "stateless" / split_dir / "shard-00000.bwd")) all_pages = all_pages && off % 4096 == 0;
    EXPECT_FALSE(all_pages) << split_dir;
  }
  Dataset f = Dataset::open(dir / "fitted"), st = Dataset::open(dir / "stateless");
  for (Split sp : {Split::kTrain, Split::kValid, Split::kTest}) {
    ASSERT_EQ(f.num_shards(sp), st.num_shards(sp));
    for (int k = 0; k < f.num_shards(sp); ++k) {
      ShardView a = f.open_shard(sp, k), b = st.open_shard(sp, k);
      ASSERT_EQ(a.rows(), b.rows());
      for (int64_t r = 0; r < a.rows(); ++r) {
        ASSERT_EQ(a.f32(0)[r], b.f32(0)[r]);  // label
        ASSERT_EQ(a.i64(3)[r], b.i64(3)[r]);  // day
      }
    }
  }
}

TEST_F(PrepPipeline, MissingRatesEqualAnIndependentCount) {
  // Categorical and dense values missing at several rates (runs of missing rows included), row counts that
  // are not multiples of 8 (the missing counter reads eight validity bytes at a time), one and two threads.
  for (int rows : {1, 7, 1003, 30011}) {
    std::mt19937_64 rng(static_cast<uint64_t>(rows));
    std::string text;
    int64_t missing_c = 0, missing_x = 0;
    for (int i = 0; i < rows; ++i) {
      const bool no_c = (i / 50) % 3 == 0 ? rng() % 10 != 0 : rng() % 7 == 0;
      const bool no_x = rng() % 5 == 0;
      missing_c += no_c;
      missing_x += no_x;
      text += "1\t" + (no_x ? std::string() : std::to_string(rng() % 100)) + "\t" +
              (no_c ? std::string() : "v" + std::to_string(rng() % 40)) + "\t1\n";
    }
    write_text(dir / "m.tsv", text);
    Recipe r = parse_recipe(std::string(kSchema) + "ops:\n  - {op: categorify, columns: c, min_count: 1}\n", "m.yaml");
    for (int threads : {1, 2}) {
      const std::string out = "m" + std::to_string(rows) + "_" + std::to_string(threads);
      PrepReport rep = run_prep(r, options(dir, {(dir / "m.tsv").string()}, out, threads));
      for (const auto& c : rep.columns) {
        if (c.name == "c") {
          EXPECT_EQ(c.missing_rate, static_cast<double>(missing_c) / rows) << rows << " rows";
        }
        if (c.name == "x") {
          EXPECT_EQ(c.missing_rate, static_cast<double>(missing_x) / rows) << rows << " rows";
        }
      }
    }
  }
}

TEST_F(PrepPipeline, FitPassSkipsUnreadColumnsWithoutChangingResultsOrErrors) {
  // Under on_bad_rows: error the fit pass leaves x and y unparsed (categorify reads only c; the time split
  // reads day); under skip it parses everything. Same dataset, same missing rates (x's are counted in
  // the write pass instead).
  write_text(dir / "a.tsv", make_rows(30000, 11));
  const std::string rest = "ops:\n"
                           "  - {op: fill_missing, columns: x}\n"
                           "  - {op: log1p, columns: x}\n"
                           "  - {op: categorify, columns: c, min_count: 2}\n"
                           "split: {by: time, column: day, valid_from: 200, test_from: 250}\n"
                           "output: {shard_rows: 4096}\n";
  Recipe strict = parse_recipe(std::string(kSchema) + "input: {on_bad_rows: error, chunk_mb: 1}\n" + rest, "e.yaml");
  Recipe lenient = parse_recipe(std::string(kSchema) + "input: {on_bad_rows: skip, chunk_mb: 1}\n" + rest, "s.yaml");
  PrepReport re = run_prep(strict, options(dir, {(dir / "a.tsv").string()}, "e"));
  PrepReport rs = run_prep(lenient, options(dir, {(dir / "a.tsv").string()}, "s"));
  EXPECT_EQ(dataset_bytes(dir / "e"), dataset_bytes(dir / "s"));
  EXPECT_EQ(re.split_rows, rs.split_rows);
  EXPECT_EQ(re.split_rows[2], 5000);
  ASSERT_EQ(re.columns.size(), rs.columns.size());
  for (std::size_t k = 0; k < re.columns.size(); ++k) {
    EXPECT_EQ(re.columns[k].missing_rate, rs.columns[k].missing_rate) << re.columns[k].name;
    EXPECT_EQ(re.columns[k].cardinality, rs.columns[k].cardinality) << re.columns[k].name;
  }
  const auto x = std::find_if(re.columns.begin(), re.columns.end(), [](const auto& c) { return c.name == "x"; });
  ASSERT_NE(x, re.columns.end());
  EXPECT_GT(x->missing_rate, 0.05);
  EXPECT_LT(x->missing_rate, 0.15);

  // A bad value in a column the fit pass skipped is still an error naming file, line and column (from the
  // write pass), and no dataset is left behind.
  std::string text = make_rows(20000, 12);
  std::size_t at = 0;
  for (int line = 1; line < 15000; ++line) at = text.find('\n', at) + 1;
  text.replace(text.find('\t', at), 1, "\tzz");  // line 15000: x = "zz<digits>" or "zz"
  write_text(dir / "bad.tsv", text);
  try {
    run_prep(strict, options(dir, {(dir / "bad.tsv").string()}, "bad"));
    ADD_FAILURE() << "a non-numeric dense value was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.tsv:15000: column 'x'"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "bad"));
  for (const auto& entry : fs::directory_iterator(dir.path()))
    EXPECT_EQ(entry.path().filename().string().find("bad.partial"), std::string::npos) << entry.path();
}

TEST_F(PrepPipeline, StagedFitSeesTheOutputOfEarlierFittedOperators) {
  // count_encode after categorify counts the categorified ids: rare values share id 1, so their counts add up.
  write_text(dir / "a.tsv", "1\t1\ta\t0\n0\t1\ta\t0\n1\t1\tb\t0\n0\t1\tc\t0\n1\t1\ta\t0\n");
  Recipe r = parse_recipe(std::string(kSchema) +
                              "ops:\n"
                              "  - {op: categorify, columns: c, min_count: 2}\n"
                              "  - {op: count_encode, columns: c}\n"
                              "split: {by: none}\n",
                          "r.yaml");
  run_prep(r, options(dir, {(dir / "a.tsv").string()}, "ds"));
  Dataset ds = Dataset::open(dir / "ds");
  ShardView v = ds.open_shard(Split::kTrain, 0);
  auto counts = v.f32(ds.find("c_count"));
  std::vector<float> got(counts.begin(), counts.end());
  EXPECT_EQ(got, (std::vector<float>{3, 3, 2, 2, 3}));  // a x3; b and c are both rare (id 1) x2
}

TEST_F(PrepPipeline, SplitByFileAndByTime) {
  write_text(dir / "d0.tsv", make_rows(500, 3));
  write_text(dir / "d1.tsv", make_rows(300, 4));
  Recipe by_file = parse_recipe(std::string(kSchema) +
                                    "ops: [{op: categorify, columns: c}]\n"
                                    "split: {by: file, test_files: [d1.tsv]}\n",
                                "r.yaml");
  run_prep(by_file, options(dir, {(dir / "d0.tsv").string(), (dir / "d1.tsv").string()}, "f"));
  Dataset f = Dataset::open(dir / "f");
  EXPECT_EQ(f.split_rows(Split::kTrain), 500);
  EXPECT_EQ(f.split_rows(Split::kTest), 300);

  // day = row / 100 within each file: d0 has days 0..4, d1 days 0..2.
  Recipe by_time = parse_recipe(std::string(kSchema) +
                                    "ops: [{op: categorify, columns: c}]\n"
                                    "split: {by: time, column: day, valid_from: 3, test_from: 4}\n",
                                "r.yaml");
  run_prep(by_time, options(dir, {(dir / "d0.tsv").string(), (dir / "d1.tsv").string()}, "t"));
  Dataset t = Dataset::open(dir / "t");
  EXPECT_EQ(t.split_rows(Split::kTrain), 300 + 300);
  EXPECT_EQ(t.split_rows(Split::kValid), 100);
  EXPECT_EQ(t.split_rows(Split::kTest), 100);
  ShardView v = t.open_shard(Split::kTest, 0);
  for (int64_t d : v.i64(t.find("day"))) EXPECT_EQ(d, 4);
}

TEST_F(PrepPipeline, FitUsesTrainingRowsOnly) {
  // 'only_test' appears only in the test file: it must not enter the dictionary.
  write_text(dir / "train.tsv", "1\t1\ta\t0\n0\t1\ta\t0\n");
  write_text(dir / "test.tsv", "1\t1\tonly_test\t0\n0\t1\tonly_test\t0\n0\t1\ta\t0\n");
  Recipe r = parse_recipe(std::string(kSchema) +
                              "ops: [{op: categorify, columns: c}]\n"
                              "split: {by: file, test_files: [test.tsv]}\n",
                          "r.yaml");
  run_prep(r, options(dir, {(dir / "train.tsv").string(), (dir / "test.tsv").string()}, "ds"));
  Dataset ds = Dataset::open(dir / "ds");
  EXPECT_EQ(ds.columns()[ds.find("c")].cardinality, 3);  // missing, rare, a
  ShardView v = ds.open_shard(Split::kTest, 0);
  auto ids = v.ids(ds.find("c"));
  EXPECT_EQ(std::vector<int32_t>(ids.begin(), ids.end()), (std::vector<int32_t>{1, 1, 2}));
}

// meta.json's distinct ids per id column against a count over the stored shards. The write pass of a run
// that fitted categorify counts only the ids below its first kept id (the rest all occur: the writer's
// assume_ids_present); the rare and missing ids occur or not depending on the split and the threshold
// (in valid/test rows only, say). A hash after categorify on the same column, a categorify column that
// is hashed into another, list columns and --apply-to take the counting path.
TEST_F(PrepPipeline, DistinctIdsInMetaEqualACountOverTheShards) {
  // Columns: y, x, c (categorical, skewed), m (multi, '|'), day. c is missing in some rows (not in
  // every variant).
  auto rows = [](int n, uint64_t seed, bool missing) {
    std::mt19937_64 rng(seed);
    std::string s;
    for (int i = 0; i < n; ++i) {
      const int c = static_cast<int>(std::min<uint64_t>(rng() % 300, rng() % 300));
      std::string m;
      for (int k = 0, len = static_cast<int>(rng() % 3); k < len; ++k) m += (k ? "|t" : "t") + std::to_string(rng() % 50);
      s += std::to_string(rng() % 2) + "\t" + std::to_string(rng() % 100) + "\t" +
           (missing && rng() % 9 == 0 ? std::string() : "v" + std::to_string(c)) + "\t" + m + "\t" +
           std::to_string(i / 100) + "\n";
    }
    return s;
  };
  const std::string schema =
      "schema: [{name: y, role: label}, {name: x, role: dense}, {name: c, role: categorical}, "
      "{name: m, role: multi, separator: '|'}, {name: day, role: timestamp}]\n";
  struct Variant {
    const char* name;
    const char* ops;
    const char* split;
    bool missing;
    bool bad_rows = false;  // on_bad_rows: skip, with rows whose only fault is x (values found nowhere else)
  };
  const std::vector<Variant> variants = {
      {"ratio", "[{op: categorify, columns: [c, m], min_count: 2}]", "{by: ratio, valid: 0.1, test: 0.1}", true},
      {"no-rare-no-missing", "[{op: categorify, columns: [c, m]}]", "{by: ratio, valid: 0, test: 0}", false},
      // Rare values in training rows are few with this threshold: the rare id may occur in test rows only.
      {"by-file", "[{op: categorify, columns: [c, m], min_count: 1}]", "{by: file, test_files: [b.tsv]}", false},
      {"max-size-first", "[{op: categorify, columns: [c, m], max_size: 20, order: first}]", "{by: ratio, valid: 0.2, test: 0}", true},
      {"hashed-after", "[{op: categorify, columns: [c, m], min_count: 3}, {op: hash, columns: c, buckets: 5000}]",
       "{by: ratio, valid: 0.1, test: 0.1}", true},
      {"crossed", "[{op: categorify, columns: c, min_count: 2}, {op: hash, columns: m, buckets: 1000}, "
       "{op: cross, columns: [c, day], buckets: 97, out: cd}]", "{by: ratio, valid: 0.1, test: 0.1}", true},
      {"bad-rows", "[{op: categorify, columns: [c, m], min_count: 1}]", "{by: ratio, valid: 0.1, test: 0.1}", true,
       true}};
  for (const Variant& v : variants) {
    std::string bad;
    for (int k = 0; v.bad_rows && k < 5; ++k) bad += "1\tnot-a-number\tonly-here" + std::to_string(k) + "\tt99|t98\t1\n";
    write_text(dir / "a.tsv", rows(1500, 1, v.missing) + bad + rows(1500, 4, v.missing));
    write_text(dir / "b.tsv", rows(700, 2, v.missing));
    Recipe r = parse_recipe(schema + (v.bad_rows ? "input: {on_bad_rows: skip}\n" : "") + "ops: " + v.ops +
                                "\nsplit: " + v.split + "\n",
                            "r.yaml");
    const std::vector<std::string> inputs = {(dir / "a.tsv").string(), (dir / "b.tsv").string()};
    const std::string out = std::string("ds-") + v.name;
    run_prep(r, options(dir, inputs, out));
    PrepOptions apply = options(dir, inputs, out + "-applied");
    apply.apply_to = (dir / out).string();
    write_text(dir / "b.tsv", rows(900, 3, true));  // values the fit never saw, and missing ones
    run_prep(r, apply);
    for (const std::string& name : {out, out + "-applied"}) {
      Dataset ds = Dataset::open(dir / name);
      int id_columns = 0;
      for (std::size_t c = 0; c < ds.columns().size(); ++c) {
        const DatasetColumn& dc = ds.columns()[c];
        if (dc.role != Role::kCategorical && dc.role != Role::kMulti) continue;
        ++id_columns;
        // Id 0 is the missing id of categorify, hash and cross: those rows count as missing, not as an id.
        std::set<int32_t> ids;
        int64_t zeros = 0;
        for (int s = 0; s < kNumSplits; ++s)
          for (std::size_t k = 0; k < ds.shards(Split(s)).size(); ++k) {
            ShardView view = ds.open_shard(Split(s), k);
            if (dc.role == Role::kCategorical) {
              for (int32_t id : view.ids(static_cast<int>(c))) {
                zeros += id == 0;
                if (id != 0) ids.insert(id);
              }
            } else {
              for (int32_t id : view.values(static_cast<int>(c))) ids.insert(id);
            }
          }
        EXPECT_EQ(dc.stats.distinct, static_cast<int64_t>(ids.size())) << name << " column " << dc.name;
        if (dc.role == Role::kCategorical) {
          EXPECT_EQ(dc.stats.missing, zeros) << name << " column " << dc.name;
        }
      }
      EXPECT_GE(id_columns, 2) << name;
    }
  }
}

TEST_F(PrepPipeline, RecipeErrorsSurfaceBeforeAnyDataIsRead) {
  auto error_of = [](const std::string& text) {
    try {
      parse_recipe(text, "r.yaml");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of(std::string(kSchema) + "ops: [{op: categorfy, columns: c}]\n").find("did you mean 'categorify'"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kSchema) + "split: {by: ratio, valid: 0.6, test: 0.5}\n").find("valid + test"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kSchema) + "split: {by: time, column: x}\n").find("timestamp column"), std::string::npos);
  EXPECT_NE(error_of("schema: [{name: y, role: lable}]\n").find("did you mean 'label'"), std::string::npos);
  EXPECT_NE(error_of("schema: [{names: I1..Ix, role: dense}]\n").find("I1..I13"), std::string::npos);

  // A categorical column that nothing turns into ids is caught before reading.
  write_text(dir / "a.tsv", "1\t1\ta\t0\n");
  Recipe r = parse_recipe(std::string(kSchema) + "ops: [{op: log1p, columns: x}]\n", "r.yaml");
  try {
    run_prep(r, options(dir, {(dir / "a.tsv").string()}, "ds"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("add {op: categorify, columns: c}"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "ds"));
}

TEST_F(PrepPipeline, RealCsvWithHeaderAndIdColumn) {
  fs::path data = testing::shared_data_dir();
  if (data.empty()) GTEST_SKIP() << "../shared/data is absent";
  Recipe r = parse_recipe(
      "input: {format: csv, header: true}\n"
      "schema:\n"
      "  - {name: Id, role: id}\n"
      "  - {name: Label, role: label}\n"
      "  - {names: I1..I13, role: dense}\n"
      "  - {names: C1..C26, role: categorical}\n"
      "ops:\n"
      "  - {op: fill_missing, columns: I1..I13}\n"
      "  - {op: clip, columns: I1..I13, min: 0}\n"
      "  - {op: log1p, columns: I1..I13}\n"
      "  - {op: categorify, columns: C1..C26, min_count: 2}\n"
      "  - {op: target_encode, columns: [C1, C2], target: Label, folds: 5}\n"
      "  - {op: cross, columns: [C1, C2], buckets: 1000}\n"
      "split: {by: ratio, valid: 0.2, seed: 1}\n",
      "csv.yaml");
  PrepReport rep = run_prep(r, options(dir, {(data / "criteo" / "criteo_with_header_4k.csv").string()}, "ds"));
  EXPECT_EQ(rep.rows, 4584);
  Dataset ds = Dataset::open(dir / "ds");
  EXPECT_EQ(ds.split_rows(Split::kTrain) + ds.split_rows(Split::kValid), 4584);
  ASSERT_GE(ds.find("C1_te"), 0);
  ASSERT_GE(ds.find("C1_x_C2"), 0);
  EXPECT_EQ(ds.columns()[ds.find("C1_x_C2")].cardinality, 1000);
  ShardView v = ds.open_shard(Split::kTrain, 0);
  for (float te : v.f32(ds.find("C1_te"))) {
    EXPECT_GE(te, 0.0f);
    EXPECT_LE(te, 1.0f);
  }
  // Ids are the CSV's Id column, kept as an auxiliary int64 column.
  EXPECT_GT(v.i64(ds.find("Id"))[0], 10000000);
}

}  // namespace
}  // namespace bluewhale
