#include "bluewhale/data/dataset.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/error.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using json = nlohmann::json;
using testing::TempDir;

constexpr int64_t kMissingI64 = std::numeric_limits<int64_t>::min();

// Every role, each value a function of the global row index g so any row can be checked on read-back.
DatasetColumn col(std::string name, Role role, int64_t cardinality = 0) {
  DatasetColumn c;
  c.name = std::move(name);
  c.role = role;
  c.cardinality = cardinality;
  return c;
}

std::vector<DatasetColumn> all_roles_schema() {
  return {col("label", Role::kLabel),          col("d0", Role::kDense),  col("c0", Role::kCategorical, 10),
          col("m0", Role::kMulti, 5),          col("s0", Role::kSequence, 1000), col("ts", Role::kTimestamp),
          col("uid", Role::kId)};
}

float label_of(int64_t g) { return static_cast<float>(g % 2); }
float dense_of(int64_t g) { return g % 5 == 3 ? kMissingFloat : static_cast<float>(g) * 0.5f; }
bool cat_missing(int64_t g) { return g % 11 == 4; }
int32_t cat_of(int64_t g) { return cat_missing(g) ? 0 : static_cast<int32_t>(g % 10); }
int64_t mlen(int64_t g) { return g % 4; }  // 0: empty list
int32_t mval(int64_t g, int64_t j) { return static_cast<int32_t>((g + j) % 5); }
int64_t slen(int64_t g) { return g % 3 + 1; }
int32_t sval(int64_t g, int64_t j) { return static_cast<int32_t>((g * 7 + j) % 1000); }
bool ts_missing(int64_t g) { return g % 6 == 1; }
int64_t ts_of(int64_t g) { return 1'600'000'000'000 + g; }

// Rows [first, first+rows) of the synthetic input; split of row g given by split_of (nullptr: no split).
Chunk make_chunk(int64_t first, int64_t rows, uint8_t (*split_of)(int64_t) = nullptr) {
  Chunk ch;
  ch.rows = rows;
  ch.first_row = first;
  auto add = [&](const char* name, Role role, ColumnKind kind) -> Column& { return ch.add_column(name, role, kind); };
  Column& label = add("label", Role::kLabel, ColumnKind::kFloat);
  for (int64_t r = 0; r < rows; ++r) label.f[r] = label_of(first + r);
  Column& d0 = add("d0", Role::kDense, ColumnKind::kFloat);
  for (int64_t r = 0; r < rows; ++r) d0.f[r] = dense_of(first + r);
  Column& c0 = add("c0", Role::kCategorical, ColumnKind::kInt);
  for (int64_t r = 0; r < rows; ++r) {
    c0.i[r] = cat_missing(first + r) ? 123456 : cat_of(first + r);
    c0.valid[r] = !cat_missing(first + r);
  }
  Column& m0 = add("m0", Role::kMulti, ColumnKind::kList);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < mlen(first + r); ++j) m0.i.push_back(mval(first + r, j));
    m0.offsets[r + 1] = static_cast<int64_t>(m0.i.size());
  }
  Column& s0 = add("s0", Role::kSequence, ColumnKind::kList);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < slen(first + r); ++j) s0.i.push_back(sval(first + r, j));
    s0.offsets[r + 1] = static_cast<int64_t>(s0.i.size());
  }
  Column& ts = add("ts", Role::kTimestamp, ColumnKind::kInt);
  for (int64_t r = 0; r < rows; ++r) {
    ts.i[r] = ts_of(first + r);
    ts.valid[r] = !ts_missing(first + r);
  }
  Column& uid = add("uid", Role::kId, ColumnKind::kInt);
  uid.valid.clear();  // all present
  for (int64_t r = 0; r < rows; ++r) uid.i[r] = first + r;
  // A column the writer does not store: ignored.
  add("extra", Role::kDense, ColumnKind::kFloat);
  if (split_of) {
    ch.split.resize(rows);
    for (int64_t r = 0; r < rows; ++r) ch.split[r] = split_of(first + r);
  }
  return ch;
}

uint8_t split_train_valid(int64_t g) { return g % 3 == 2 ? 1 : 0; }

// Writes rows [0, n) in chunks of `chunk` rows.
void write_dataset(const fs::path& out, int64_t n, int64_t chunk, DatasetWriterOptions o,
                   uint8_t (*split_of)(int64_t) = nullptr, json pipeline = json::object()) {
  DatasetWriter w(out, all_roles_schema(), o);
  for (int64_t first = 0; first < n; first += chunk) w.append(make_chunk(first, std::min(chunk, n - first), split_of));
  w.commit(std::move(pipeline));
}

// Checks every row of a split against the generator, given the global row ids expected in order. The
// dataset has all_roles_schema() or, without its two list columns, fixed_schema() (defined below).
void expect_split_matches(const Dataset& ds, Split split, const std::vector<int64_t>& expected_rows) {
  const bool lists = ds.columns().size() == 7;
  const int ts_col = lists ? 5 : 3, uid_col = lists ? 6 : 4;
  int64_t k = 0;
  for (int s = 0; s < ds.num_shards(split); ++s) {
    ShardView v = ds.open_shard(split, s);
    auto label = v.f32(0), d0 = v.f32(1);
    auto c0 = v.ids(2);
    auto ts = v.i64(ts_col), uid = v.i64(uid_col);
    ASSERT_EQ(static_cast<int64_t>(label.size()), v.rows());
    ASSERT_EQ(static_cast<int64_t>(uid.size()), v.rows());
    for (int64_t r = 0; r < v.rows(); ++r, ++k) {
      ASSERT_LT(k, static_cast<int64_t>(expected_rows.size()));
      int64_t g = expected_rows[k];
      ASSERT_EQ(uid[r], g);
      ASSERT_EQ(label[r], label_of(g));
      if (std::isnan(dense_of(g)))
        ASSERT_TRUE(std::isnan(d0[r]));
      else
        ASSERT_EQ(d0[r], dense_of(g));
      ASSERT_EQ(c0[r], cat_of(g));
      ASSERT_EQ(ts[r], ts_missing(g) ? kMissingI64 : ts_of(g));
      if (!lists) continue;
      auto mo = v.offsets(3), so = v.offsets(4);
      auto mv = v.values(3), sv = v.values(4);
      ASSERT_EQ(static_cast<int64_t>(mo.size()), v.rows() + 1);
      ASSERT_EQ(mo[r + 1] - mo[r], mlen(g));
      for (int64_t j = 0; j < mlen(g); ++j) ASSERT_EQ(mv[mo[r] + j], mval(g, j));
      ASSERT_EQ(so[r + 1] - so[r], slen(g));
      for (int64_t j = 0; j < slen(g); ++j) ASSERT_EQ(sv[so[r] + j], sval(g, j));
    }
  }
  EXPECT_EQ(k, static_cast<int64_t>(expected_rows.size()));
}

TEST(Dataset, RoundTripEveryRoleAcrossSplitsWithEmptySplit) {
  TempDir tmp;
  const int64_t n = 1000;
  write_dataset(tmp / "ds", n, 97, {.shard_rows = 64}, split_train_valid, json{{"ops", json::array({"x"})}});
  Dataset ds = Dataset::open(tmp / "ds");
  ASSERT_EQ(ds.columns().size(), 7u);
  EXPECT_EQ(ds.columns()[2].dtype, DType::kI32);
  EXPECT_EQ(ds.columns()[3].dtype, DType::kListI32);
  EXPECT_EQ(ds.columns()[5].dtype, DType::kI64);
  EXPECT_EQ(ds.pipeline()["ops"][0], "x");
  std::vector<int64_t> train, valid;
  for (int64_t g = 0; g < n; ++g) (split_train_valid(g) ? valid : train).push_back(g);
  EXPECT_EQ(ds.split_rows(Split::kTrain), static_cast<int64_t>(train.size()));
  EXPECT_EQ(ds.split_rows(Split::kValid), static_cast<int64_t>(valid.size()));
  EXPECT_EQ(ds.split_rows(Split::kTest), 0);
  EXPECT_EQ(ds.num_shards(Split::kTest), 0);
  expect_split_matches(ds, Split::kTrain, train);
  expect_split_matches(ds, Split::kValid, valid);

  EXPECT_EQ(ds.label_column(), 0);
  EXPECT_EQ(ds.dense_columns(), std::vector<int>({1}));
  EXPECT_EQ(ds.categorical_columns(), std::vector<int>({2}));
  EXPECT_EQ(ds.multi_columns(), std::vector<int>({3, 4}));
  EXPECT_EQ(ds.sparse_columns(), std::vector<int>({2, 3, 4}));
  EXPECT_EQ(ds.sparse_cardinalities(), std::vector<int64_t>({10, 5, 1000}));
  EXPECT_EQ(ds.aux_columns(), std::vector<int>({5, 6}));
}

TEST(Dataset, StatsCoverAllSplits) {
  TempDir tmp;
  const int64_t n = 300;
  write_dataset(tmp / "ds", n, 50, {}, split_train_valid);
  Dataset ds = Dataset::open(tmp / "ds");
  double sum = 0, lo = 1e30, hi = -1e30;
  int64_t missing = 0, present = 0;
  for (int64_t g = 0; g < n; ++g) {
    float v = dense_of(g);
    if (std::isnan(v)) {
      ++missing;
      continue;
    }
    ++present;
    sum += v;
    lo = std::min<double>(lo, v);
    hi = std::max<double>(hi, v);
  }
  const ColumnStats& d = ds.columns()[1].stats;
  EXPECT_EQ(d.rows, n);
  EXPECT_EQ(d.missing, missing);
  EXPECT_DOUBLE_EQ(d.min, lo);
  EXPECT_DOUBLE_EQ(d.max, hi);
  EXPECT_NEAR(d.mean, sum / present, 1e-9);
  EXPECT_EQ(d.distinct, -1);
  const ColumnStats& c = ds.columns()[2].stats;
  int64_t cmiss = 0;
  for (int64_t g = 0; g < n; ++g) cmiss += cat_missing(g);
  EXPECT_EQ(c.missing, cmiss);
  EXPECT_EQ(c.distinct, 10);
  EXPECT_EQ(c.min, 0);
  EXPECT_EQ(c.max, 9);
  const ColumnStats& m = ds.columns()[3].stats;  // list lengths 0..3; empty lists are missing
  EXPECT_EQ(m.missing, n / 4);
  EXPECT_EQ(m.min, 1);
  EXPECT_EQ(m.max, 3);
  EXPECT_EQ(m.distinct, 5);
  int64_t tmiss = 0;
  for (int64_t g = 0; g < n; ++g) tmiss += ts_missing(g);
  EXPECT_EQ(ds.columns()[5].stats.missing, tmiss);
}

// Dense statistics against their definition, written out plainly: per appended chunk, value k in lane
// k % 4 (NaN counted as missing and left out of the sum, min and max), the lane sums added as (0 + 1) +
// (2 + 3), so the writer's vector loop must match bit for bit: exact sums and means, signed zeros,
// denormals, values near the float range's ends, chunk lengths that leave a tail.
TEST(Dataset, DenseStatsMatchTheirDefinitionExactly) {
  TempDir tmp;
  DatasetWriter w(tmp / "ds", {col("x", Role::kDense)}, {});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  double sum = 0, lo = std::numeric_limits<double>::infinity(), hi = -lo;
  int64_t missing = 0, rows = 0;
  for (int64_t len : {1, 3, 4, 5, 17, 1000, 4097}) {
    Chunk ch;
    ch.rows = len;
    ch.first_row = rows;
    Column& c = ch.add_column("x", Role::kDense, ColumnKind::kFloat);
    for (int64_t r = 0; r < len; ++r) {
      const int64_t g = rows + r;
      // Mostly exact eighths; +-3e16 (ulp 4 as a double) now and then, so that the sum's rounding depends
      // on its order; a unique minimum and maximum each followed by a NaN in the same lane; signed zeros,
      // a denormal.
      float v = static_cast<float>(g * 7919 % 1000) / 8.0f;
      if (g % 37 == 11) v = nan;
      if (g % 97 == 3) v = 3e16f;
      if (g % 97 == 51) v = -3e16f;
      if (g % 101 == 7) v = -0.0f;
      if (g % 103 == 8) v = 1e-40f;
      if (len == 4097 && (r == 9 || r == 10)) v = nan;
      if (len == 4097 && r == 5) v = -3e38f;
      if (len == 4097 && r == 6) v = 3e38f;
      c.f[r] = v;
      if (std::isnan(v)) {
        ++missing;
        continue;
      }
      lo = std::min<double>(lo, v);
      hi = std::max<double>(hi, v);
    }
    // The lanes: whole groups of four, then the tail into lane 0.
    double lane[4] = {0, 0, 0, 0};
    const int64_t whole = len / 4 * 4;
    for (int64_t r = 0; r < len; ++r) lane[r < whole ? r % 4 : 0] += std::isnan(c.f[r]) ? 0.0 : static_cast<double>(c.f[r]);
    sum += (lane[0] + lane[1]) + (lane[2] + lane[3]);
    rows += len;
    w.append(ch);
  }
  w.commit();
  const Dataset ds = Dataset::open(tmp / "ds");
  const ColumnStats& st = ds.columns()[0].stats;
  EXPECT_EQ(st.rows, rows);
  EXPECT_EQ(st.missing, missing);
  EXPECT_EQ(st.min, -3e38f);
  EXPECT_EQ(st.max, 3e38f);
  EXPECT_EQ(st.min, lo);
  EXPECT_EQ(st.max, hi);
  EXPECT_EQ(st.mean, sum / static_cast<double>(rows - missing));
}

// The writer accumulates id statistics with a branch-free loop for contiguous rows and a plain one for
// rows routed to several splits: the same rows must give the same stats either way (stats cover all
// splits together).
// Distinct ids are marked as bits of one word for columns of up to 64 ids, in a byte map up to 2^20 ids
// and in a bitmap above (append_rows): all give the reference counts, for contiguous rows and for rows
// routed to two splits (every SIMD level's id kernel, per stretch or per chunk); missing rows and out-of-range values under a missing
// flag mark nothing (id 0 never occurs as a present value here, so a mark left by a missing row would
// show).
TEST(Dataset, DistinctIdsCountTheSameInWordByteMapAndBitmap) {
  // At every SIMD level: contiguous rows go through that level's id kernel (data/id_kernels.h), which must
  // ignore what missing rows hold (0 or out of range here) in the range check, sum, min and max too.
  const SimdLevel before = simd_level();
  struct Spec {
    const char* name;
    int64_t card, span;  // ids in [1, span]
  };
  const std::vector<Spec> specs = {{"tiny", 40, 39},       {"word", 64, 63},        {"small", 5000, 4999},
                                   {"mid", 50000, 49999}, {"large", (int64_t{1} << 20) + 7, 49999}};
  for (SimdLevel level : testing::supported_simd_levels())
    for (bool routed : {false, true}) {
      set_simd_level(level);
      const std::string at = std::string(simd_level_name(level)) + (routed ? ", routed" : "");
      TempDir tmp;
      std::vector<DatasetColumn> cols;
      for (const Spec& sp : specs) cols.push_back(col(sp.name, Role::kCategorical, sp.card));
      DatasetWriter w(tmp / "ds", cols, {});
      std::vector<std::vector<bool>> seen;
      for (const Spec& sp : specs) seen.emplace_back(static_cast<std::size_t>(sp.span) + 1, false);
      std::vector<int64_t> present(specs.size(), 0), lo(specs.size(), INT64_MAX), hi(specs.size(), INT64_MIN);
      std::vector<double> sum(specs.size(), 0);
      for (int64_t first = 0; first < 30000; first += 7000) {
        Chunk ch;
        ch.rows = std::min<int64_t>(7000, 30000 - first);
        ch.first_row = first;
        if (routed)
          for (int64_t r = 0; r < ch.rows; ++r) ch.split.push_back(static_cast<uint8_t>((first + r) % 3 == 0));
        for (std::size_t k = 0; k < specs.size(); ++k) {
          Column& c = ch.add_column(specs[k].name, Role::kCategorical, ColumnKind::kInt);
          for (int64_t r = 0; r < ch.rows; ++r) {
            const int64_t g = first + r;
            const bool missing = g % 7 == 0;
            // Frequent small ids and a spread over the whole span, as categorify's frequency order gives.
            const int64_t v = g % 4 ? g % 37 + 1 : (g * g) % specs[k].span + 1;
            c.i[r] = missing ? (g % 2 ? 0 : 999999999) : v;
            c.valid[r] = !missing;
            if (missing) continue;
            seen[k][static_cast<std::size_t>(v)] = true;
            ++present[k];
            sum[k] += static_cast<double>(v);
            lo[k] = std::min(lo[k], v);
            hi[k] = std::max(hi[k], v);
          }
        }
        w.append(ch);
      }
      w.commit();
      Dataset ds = Dataset::open(tmp / "ds");
      for (std::size_t k = 0; k < specs.size(); ++k) {
        const int64_t want = std::count(seen[k].begin(), seen[k].end(), true);
        EXPECT_GT(want, std::min<int64_t>(1000, specs[k].span / 2));
        const ColumnStats& st = ds.columns()[k].stats;
        EXPECT_EQ(st.distinct, want) << at << " column " << specs[k].name;
        EXPECT_EQ(st.missing, 30000 - present[k]) << at << " column " << specs[k].name;
        EXPECT_EQ(st.min, static_cast<double>(lo[k])) << at << " column " << specs[k].name;
        EXPECT_EQ(st.max, static_cast<double>(hi[k])) << at << " column " << specs[k].name;
        EXPECT_DOUBLE_EQ(st.mean, sum[k] / static_cast<double>(present[k])) << at << " column " << specs[k].name;
      }
    }
  set_simd_level(before);
}

// assume_ids_present: ids from `from` up are promised to occur, so only the ids below are marked (the id
// kernels' low marks). The count equals the one of a writer without the promise whether ids 0 and 1 occur
// or not, for contiguous and routed rows and a list column; bad arguments name the column.
TEST(Dataset, PromisedIdsCountAsTheMarkedOnes) {
  for (bool routed : {false, true})
    for (int low : {0, 1, 2, 3}) {  // which of ids 0 and 1 occur as present values: bit 0 and bit 1
      TempDir tmp;
      const std::string at = std::string(routed ? "routed" : "contiguous") + ", low " + std::to_string(low);
      auto write = [&](const fs::path& out, bool promise) {
        DatasetWriter w(out, {col("c", Role::kCategorical, 3000), col("m", Role::kMulti, 70)}, {});
        if (promise) {
          w.assume_ids_present("c", 2);
          w.assume_ids_present("m", 2);
        }
        for (int64_t first = 0; first < 20000; first += 4999) {
          Chunk ch;
          ch.rows = std::min<int64_t>(4999, 20000 - first);
          ch.first_row = first;
          if (routed)
            for (int64_t r = 0; r < ch.rows; ++r) ch.split.push_back(static_cast<uint8_t>((first + r) % 5 % 3));
          ch.add_column("c", Role::kCategorical, ColumnKind::kInt);
          Column& m = ch.add_column("m", Role::kMulti, ColumnKind::kList);  // (moves c)
          Column& c = *ch.find("c");
          m.offsets.assign(1, 0);
          for (int64_t r = 0; r < ch.rows; ++r) {
            const int64_t g = first + r;
            const int64_t v = g % 3000 < 2 ? ((low >> (g % 3000)) & 1 ? g % 3000 : 5) : g % 3000;  // every id >= 2
            c.i[r] = g % 13 == 0 ? 0 : v;  // missing rows hold 0: not id 0
            c.valid[r] = g % 13 != 0;
            for (int64_t k = 0; k < g % 3; ++k) m.i.push_back(g % 70 < 2 && !((low >> (g % 70)) & 1) ? 9 : g % 70);
            m.offsets.push_back(static_cast<int64_t>(m.i.size()));
          }
          w.append(ch);
        }
        w.commit();
      };
      write(tmp / "marked", false);
      write(tmp / "promised", true);
      Dataset a = Dataset::open(tmp / "marked"), b = Dataset::open(tmp / "promised");
      const int64_t low_ids = std::popcount(static_cast<unsigned>(low));
      EXPECT_EQ(a.columns()[0].stats.distinct, 2998 + low_ids) << at;
      EXPECT_EQ(b.columns()[0].stats.distinct, 2998 + low_ids) << at;
      EXPECT_EQ(a.columns()[1].stats.distinct, 68 + low_ids) << at;
      EXPECT_EQ(b.columns()[1].stats.distinct, 68 + low_ids) << at;
      EXPECT_EQ(a.columns()[0].stats.missing, b.columns()[0].stats.missing) << at;
      EXPECT_EQ(a.columns()[0].stats.mean, b.columns()[0].stats.mean) << at;
    }
  TempDir tmp;
  DatasetWriter w(tmp / "ds", all_roles_schema(), {});
  auto error_of = [&](const std::string& name, int64_t from) {
    try {
      w.assume_ids_present(name, from);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of("nope", 2).find("no column 'nope'"), std::string::npos) << error_of("nope", 2);
  EXPECT_NE(error_of("d0", 2).find("column 'd0' (role dense) holds no ids"), std::string::npos) << error_of("d0", 2);
  EXPECT_NE(error_of("c0", 65).find("from must be in [0, 64], got 65"), std::string::npos) << error_of("c0", 65);
  EXPECT_NE(error_of("m0", -1).find("got -1"), std::string::npos) << error_of("m0", -1);
  EXPECT_EQ(error_of("s0", 64), "no error");
}

// Contiguous rows go through the id kernel of the SIMD level in force (data/id_kernels.h) as they are
// appended, a chunk of routed rows through it before its rows are gathered into their splits: at every
// level both give the same stats, and the known ones for c0.
TEST(Dataset, StatsOfRoutedRowsEqualStatsOfContiguousRows) {
  TempDir tmp;
  const int64_t n = 1000;
  write_dataset(tmp / "routed", n, 128, {}, split_train_valid);
  Dataset b = Dataset::open(tmp / "routed");
  int64_t cmiss = 0;
  double csum = 0;
  for (int64_t g = 0; g < n; ++g) {
    cmiss += cat_missing(g);
    csum += cat_missing(g) ? 0 : cat_of(g);
  }
  const SimdLevel before = simd_level();
  for (SimdLevel level : testing::supported_simd_levels()) {
    set_simd_level(level);
    const std::string at(simd_level_name(level));
    write_dataset(tmp / ("contiguous-" + at), n, 128, {}, nullptr);
    Dataset a = Dataset::open(tmp / ("contiguous-" + at));
    ASSERT_EQ(a.columns().size(), b.columns().size());
    for (std::size_t k = 0; k < a.columns().size(); ++k) {
      const ColumnStats& x = a.columns()[k].stats;
      const ColumnStats& y = b.columns()[k].stats;
      EXPECT_EQ(x.rows, y.rows) << at << " column " << k;
      EXPECT_EQ(x.missing, y.missing) << at << " column " << k;
      EXPECT_EQ(x.distinct, y.distinct) << at << " column " << k;
      EXPECT_EQ(x.min, y.min) << at << " column " << k;
      EXPECT_EQ(x.max, y.max) << at << " column " << k;
      EXPECT_DOUBLE_EQ(x.mean, y.mean) << at << " column " << k;  // float sums may run in another order
    }
    const ColumnStats& c = a.columns()[2].stats;  // categorical c0: ids g % 10, missing when g % 11 == 4
    EXPECT_EQ(c.missing, cmiss) << at;
    EXPECT_EQ(c.distinct, 10) << at;
    EXPECT_EQ(c.min, 0) << at;
    EXPECT_EQ(c.max, 9) << at;
    EXPECT_DOUBLE_EQ(c.mean, csum / static_cast<double>(n - cmiss)) << at;
  }
  set_simd_level(before);
}

TEST(Dataset, ShardRolloverAtShardRows) {
  TempDir tmp;
  // Chunks of 7 rows do not line up with shards of 10: shards must still be cut at exactly 10 rows.
  write_dataset(tmp / "ds", 25, 7, {.shard_rows = 10});
  Dataset ds = Dataset::open(tmp / "ds");
  ASSERT_EQ(ds.num_shards(Split::kTrain), 3);
  EXPECT_EQ(ds.shards(Split::kTrain)[0].rows, 10);
  EXPECT_EQ(ds.shards(Split::kTrain)[1].rows, 10);
  EXPECT_EQ(ds.shards(Split::kTrain)[2].rows, 5);
  EXPECT_EQ(ds.shards(Split::kTrain)[2].file, "train/shard-00002.bwd");
  EXPECT_TRUE(fs::exists(tmp / "ds" / "train" / "shard-00002.bwd"));
  std::vector<int64_t> all(25);
  for (int64_t g = 0; g < 25; ++g) all[g] = g;
  expect_split_matches(ds, Split::kTrain, all);
}

TEST(Dataset, ShardBlocksAre64ByteAligned) {
  TempDir tmp;
  write_dataset(tmp / "ds", 13, 13, {});
  Dataset ds = Dataset::open(tmp / "ds");
  ShardView v = ds.open_shard(Split::kTrain, 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.f32(0).data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.values(3).data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.offsets(3).data()) % 64, 0u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.i64(6).data()) % 64, 0u);
}

// Streamed shards (expect_rows): no multi/sequence column, so every block's size is known in advance.
std::vector<DatasetColumn> fixed_schema() {
  return {col("label", Role::kLabel), col("d0", Role::kDense), col("c0", Role::kCategorical, 10),
          col("ts", Role::kTimestamp), col("uid", Role::kId)};
}

DatasetWriter::WriteMode write_fixed(const fs::path& out, int64_t n, int64_t chunk, DatasetWriterOptions o,
                                     uint8_t (*split_of)(int64_t), bool promise) {
  DatasetWriter w(out, fixed_schema(), o);
  if (promise) {
    std::array<int64_t, kNumSplits> rows{};
    for (int64_t g = 0; g < n; ++g) rows[split_of ? split_of(g) : 0]++;
    w.expect_rows(rows);
  }
  for (int64_t first = 0; first < n; first += chunk) w.append(make_chunk(first, std::min(chunk, n - first), split_of));
  w.commit();
  return w.write_mode();
}

uint8_t split_three_ways(int64_t g) { return g % 10 == 3 ? 2 : g % 3 == 1 ? 1 : 0; }

// Streamed (st) and buffered (bu) shards of rows 0 .. n-1 split three ways hold those rows, split by split,
// in shards of the same sizes.
void expect_same_splits(const Dataset& st, const Dataset& bu, int64_t n) {
  for (Split sp : {Split::kTrain, Split::kValid, Split::kTest}) {
    std::vector<int64_t> rows;
    for (int64_t g = 0; g < n; ++g)
      if (split_three_ways(g) == static_cast<uint8_t>(sp)) rows.push_back(g);
    expect_split_matches(st, sp, rows);
    expect_split_matches(bu, sp, rows);
    ASSERT_EQ(st.num_shards(sp), bu.num_shards(sp));
    for (int s = 0; s < st.num_shards(sp); ++s) EXPECT_EQ(st.shards(sp)[s].rows, bu.shards(sp)[s].rows);
  }
}

// Streamed and buffered shards of the same rows give the same column statistics.
void expect_same_stats(const Dataset& st, const Dataset& bu) {
  ASSERT_EQ(st.columns().size(), bu.columns().size());
  for (std::size_t c = 0; c < st.columns().size(); ++c) {
    EXPECT_EQ(st.columns()[c].stats.rows, bu.columns()[c].stats.rows);
    EXPECT_EQ(st.columns()[c].stats.missing, bu.columns()[c].stats.missing);
    EXPECT_DOUBLE_EQ(st.columns()[c].stats.mean, bu.columns()[c].stats.mean);
    EXPECT_EQ(st.columns()[c].stats.distinct, bu.columns()[c].stats.distinct);
  }
}

TEST(DatasetWriter, StreamedShardsHoldTheSameRowsAsBufferedOnes) {
  // Shards of 150000 rows are written in 65536-row slices; chunks of 7001 rows line up with neither,
  // and rows are routed to three splits, so slices and shards end mid-chunk in every split.
  TempDir tmp;
  const int64_t n = 400000;
  write_fixed(tmp / "streamed", n, 7001, {.shard_rows = 150000}, split_three_ways, true);
  write_fixed(tmp / "buffered", n, 7001, {.shard_rows = 150000}, split_three_ways, false);
  Dataset st = Dataset::open(tmp / "streamed"), bu = Dataset::open(tmp / "buffered");
  expect_same_splits(st, bu, n);
  // Same stats; blocks of streamed shards start at 4096-byte offsets and the file ends with the last one.
  expect_same_stats(st, bu);
  const std::string bytes = read_file(tmp / "streamed" / "train" / "shard-00001.bwd");
  uint64_t last_end = 0;
  for (int k = 0; k < 5; ++k) {
    uint64_t off, len;
    std::memcpy(&off, bytes.data() + 64 + 32 * k + 8, 8);
    std::memcpy(&len, bytes.data() + 64 + 32 * k + 16, 8);
    EXPECT_EQ(off % 4096, 0u) << k;
    last_end = off + len;
  }
  EXPECT_EQ(last_end, bytes.size());
}

// From 2^21 rows in all the writer streams slices of 131072 rows (bigger disk writes): shards of 300000
// rows then end mid-slice, and the split's last slice is short; the rows and stats are those of buffered
// shards.
TEST(DatasetWriter, BigDatasetsStreamBigSlicesWithTheSameRows) {
  TempDir tmp;
  const int64_t n = (int64_t{1} << 21) + 4099;
  write_fixed(tmp / "streamed", n, 65537, {.shard_rows = 300000}, split_three_ways, true);
  write_fixed(tmp / "buffered", n, 65537, {.shard_rows = 300000}, split_three_ways, false);
  Dataset st = Dataset::open(tmp / "streamed"), bu = Dataset::open(tmp / "buffered");
  expect_same_splits(st, bu, n);
  EXPECT_EQ(st.num_shards(Split::kTrain), 5);  // 1,260,751 rows
  expect_same_stats(st, bu);
}

// Share of a file's pages held in the page cache.
double cached_share(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  const std::size_t size = fs::file_size(path), page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) return -1;
  std::vector<unsigned char> in((size + page - 1) / page);
  const int rc = ::mincore(p, size, in.data());
  ::munmap(p, size);
  if (rc != 0) return -1;
  return static_cast<double>(std::count_if(in.begin(), in.end(), [](unsigned char c) { return c & 1; })) /
         static_cast<double>(in.size());
}

// Whether files in `dir` take O_DIRECT writes (not on tmpfs, for one; some file systems accept the flag
// at open and refuse the writes).
bool takes_direct(const fs::path& dir) {
#ifdef O_DIRECT
  const fs::path probe = dir / "direct-probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0644);
  if (fd < 0) return false;
  void* page = std::aligned_alloc(4096, 4096);
  std::memset(page, 0, 4096);
  const bool ok = ::pwrite(fd, page, 4096, 0) == 4096;
  std::free(page);
  ::close(fd);
  fs::remove(probe);
  return ok;
#else
  (void)dir;
  return false;
#endif
}

// Shards written through the page cache (a limit no write exceeds) and around it (limit 0: O_DIRECT once
// the first blocks were measured) hold the same bytes, streamed and whole; the page cache holds the first
// kind and not the later shards of the second, where the file system takes O_DIRECT.
TEST(DatasetWriter, PageCacheAndDirectWritesGiveTheSameShards) {
  TempDir tmp;
  const int64_t n = 800000;  // 8 shards; streamed, each in two slices of 5 blocks: the choice falls in the 4th
  const double inf = std::numeric_limits<double>::infinity();
  for (bool promise : {true, false}) {
    const std::string kind = promise ? "streamed" : "whole";
    const DatasetWriter::WriteMode cached_mode = write_fixed(
        tmp / (kind + "-cached"), n, 65536, {.shard_rows = 100000, .page_cache_limit_ns_per_mib = inf}, nullptr, promise);
    const DatasetWriter::WriteMode direct_mode = write_fixed(
        tmp / (kind + "-direct"), n, 65536, {.shard_rows = 100000, .page_cache_limit_ns_per_mib = 0}, nullptr, promise);
    EXPECT_FALSE(cached_mode.direct) << kind;
    EXPECT_TRUE(direct_mode.direct) << kind;
    EXPECT_GT(cached_mode.page_cache_ns_per_mib, 0) << kind;  // measured, whichever way it went
    EXPECT_GT(direct_mode.page_cache_ns_per_mib, 0) << kind;
    // Too few rows to measure: the page cache, no figure.
    const DatasetWriter::WriteMode small = write_fixed(tmp / (kind + "-small"), 1000, 100, {.page_cache_limit_ns_per_mib = 0},
                                                       nullptr, promise);
    EXPECT_FALSE(small.direct) << kind;
    EXPECT_TRUE(std::isnan(small.page_cache_ns_per_mib)) << kind;
    // Residency first: opening a dataset reads its shards.
    if (takes_direct(tmp.path())) {
      const std::string last = "train/shard-00007.bwd";
      EXPECT_GT(cached_share(tmp / (kind + "-cached") / last), 0.9) << kind;
      EXPECT_LT(cached_share(tmp / (kind + "-direct") / last), 0.1) << kind;
    }
    Dataset cached = Dataset::open(tmp / (kind + "-cached")), direct = Dataset::open(tmp / (kind + "-direct"));
    ASSERT_EQ(cached.num_shards(Split::kTrain), 8) << kind;
    ASSERT_EQ(direct.num_shards(Split::kTrain), 8) << kind;
    for (int s = 0; s < 8; ++s) {
      const fs::path a = tmp / (kind + "-cached") / cached.shards(Split::kTrain)[s].file;
      const fs::path b = tmp / (kind + "-direct") / direct.shards(Split::kTrain)[s].file;
      EXPECT_TRUE(read_file(a) == read_file(b)) << kind << " shard " << s;
    }
    std::vector<int64_t> rows(n);
    for (int64_t g = 0; g < n; ++g) rows[g] = g;
    expect_split_matches(direct, Split::kTrain, rows);
  }
}

TEST(DatasetWriter, StreamedSplitsOfExactShardMultiplesAndEmptySplits) {
  TempDir tmp;
  // All rows train, exactly two shards of 65536 (one slice each); valid and test empty.
  write_fixed(tmp / "ds", 131072, 4096, {.shard_rows = 65536}, nullptr, true);
  Dataset ds = Dataset::open(tmp / "ds");
  EXPECT_EQ(ds.num_shards(Split::kTrain), 2);
  EXPECT_EQ(ds.num_shards(Split::kValid), 0);
  EXPECT_EQ(ds.num_shards(Split::kTest), 0);
  std::vector<int64_t> all(131072);
  for (int64_t g = 0; g < 131072; ++g) all[g] = g;
  expect_split_matches(ds, Split::kTrain, all);
  // A handful of rows: one slice far below a page per column.
  write_fixed(tmp / "tiny", 3, 2, {.shard_rows = 65536}, nullptr, true);
  expect_split_matches(Dataset::open(tmp / "tiny"), Split::kTrain, {0, 1, 2});
}

TEST(DatasetWriter, ExpectRowsWithListColumnsKeepsBufferedShards) {
  // Multi/sequence blocks have sizes known only at the shard's end: the promise is not used, and the
  // files are byte for byte those of a writer never told.
  TempDir tmp;
  for (bool promise : {false, true}) {
    DatasetWriter w(tmp / (promise ? "p" : "q"), all_roles_schema(), {.shard_rows = 100});
    if (promise) w.expect_rows({250, 0, 0});
    for (int64_t first = 0; first < 250; first += 60) w.append(make_chunk(first, std::min<int64_t>(60, 250 - first)));
    w.commit();
  }
  for (const char* f : {"train/shard-00000.bwd", "train/shard-00001.bwd", "train/shard-00002.bwd"})
    EXPECT_EQ(read_file(tmp / "p" / f), read_file(tmp / "q" / f)) << f;
}

TEST(DatasetWriter, StreamedShardCorruptionIsDetected) {
  TempDir tmp;
  write_fixed(tmp / "ds", 70000, 5000, {.shard_rows = 100000}, nullptr, true);
  const fs::path f = tmp / "ds" / "train" / "shard-00000.bwd";
  std::string b = read_file(f);
  uint64_t off;
  std::memcpy(&off, b.data() + 64 + 32 * 2 + 8, 8);  // block 2: c0
  b[off + 65536 * 4 + 5] ^= 0x10;                    // in the second slice
  {
    std::ofstream o(f, std::ios::binary | std::ios::trunc);
    o << b;
  }
  try {
    Dataset::open(tmp / "ds").open_shard(Split::kTrain, 0);
    ADD_FAILURE() << "corruption not detected";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("'c0'"), std::string::npos) << e.what();
  }
}

TEST(DatasetWriter, RowsOtherThanPromisedAreInputErrorsAndLeaveNothing) {
  TempDir tmp;
  {
    DatasetWriter w(tmp / "more", fixed_schema(), {.shard_rows = 1000});
    w.expect_rows({10, 0, 0});
    EXPECT_THROW(w.append(make_chunk(0, 11)), InputError);
  }
  {
    DatasetWriter w(tmp / "fewer", fixed_schema(), {.shard_rows = 1000});
    w.expect_rows({10, 0, 0});
    w.append(make_chunk(0, 9));
    try {
      w.commit();
      ADD_FAILURE() << "short split accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("got 9 rows, 10 were promised"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(tmp / "more"));
  EXPECT_FALSE(fs::exists(tmp / "fewer"));
}

TEST(DatasetWriter, ShardWriteErrorOnTheFlusherThreadSurfacesAndLeavesNothing) {
  // Shards are written on a thread of the writer's own: a failure there (here the split's directory
  // vanished, so the shard file cannot be created) must come back to the caller as the IoError naming the
  // file, from append() or at the latest commit(), in both whole-shard and streamed mode.
  TempDir tmp;
  for (bool streamed : {false, true}) {
    const fs::path out = tmp / (streamed ? "streamed" : "whole");
    bool thrown = false;
    {
      DatasetWriter w(out, fixed_schema(), {.shard_rows = 100});
      if (streamed) w.expect_rows({250, 0, 0});
      fs::remove_all(w.staging_path() / "train");
      try {
        for (int64_t first = 0; first < 250; first += 50) w.append(make_chunk(first, 50));
        w.commit();
      } catch (const IoError& e) {
        thrown = true;
        EXPECT_NE(std::string(e.what()).find("shard-00000.bwd"), std::string::npos) << e.what();
      }
    }
    EXPECT_TRUE(thrown) << (streamed ? "streamed" : "whole");
    EXPECT_FALSE(fs::exists(out));
  }
}

TEST(DatasetWriter, StagingPathFilesAreCommittedWithTheDataset) {
  TempDir tmp;
  DatasetWriter w(tmp / "ds", all_roles_schema());
  w.append(make_chunk(0, 5));
  testing::write_text(w.staging_path() / "pipeline" / "state.bin", "fitted");
  EXPECT_FALSE(fs::exists(tmp / "ds"));
  w.commit();
  EXPECT_EQ(read_file(tmp / "ds" / "pipeline" / "state.bin"), "fitted");
  EXPECT_EQ(Dataset::open(tmp / "ds").split_rows(Split::kTrain), 5);
}

TEST(DatasetWriter, DestroyedWithoutCommitLeavesNothing) {
  TempDir tmp;
  {
    DatasetWriter w(tmp / "ds", all_roles_schema(), {.shard_rows = 4});
    w.append(make_chunk(0, 20));  // several shards already on disk in the staging directory
    EXPECT_TRUE(fs::exists(w.staging_path() / "train" / "shard-00000.bwd"));
  }
  EXPECT_FALSE(fs::exists(tmp / "ds"));
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(DatasetWriter, ExceptionDuringAppendLeavesNothing) {
  TempDir tmp;
  try {
    DatasetWriter w(tmp / "ds", all_roles_schema());
    Chunk bad = make_chunk(0, 10);
    bad.columns[2].i[7] = 10;  // categorical c0 has cardinality 10
    bad.columns[2].valid[7] = 1;
    w.append(bad);
    FAIL() << "out-of-range id accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("'c0'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("id 10 outside [0, 10)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("input row 7"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(DatasetWriter, MultiValueOutOfRangeIsInputError) {
  TempDir tmp;
  DatasetWriter w(tmp / "ds", all_roles_schema());
  Chunk bad = make_chunk(0, 10);
  bad.columns[3].i[0] = -1;
  EXPECT_THROW(w.append(bad), InputError);
}

TEST(DatasetWriter, ExistingOutputWithoutOverwriteIsRejected) {
  TempDir tmp;
  write_dataset(tmp / "ds", 10, 10, {});
  EXPECT_THROW(DatasetWriter(tmp / "ds", all_roles_schema()), IoError);
  write_dataset(tmp / "ds", 30, 10, {.overwrite = true});
  EXPECT_EQ(Dataset::open(tmp / "ds").split_rows(Split::kTrain), 30);
}

TEST(DatasetWriter, CategoricalWithoutCardinalityIsConfigError) {
  TempDir tmp;
  auto cols = all_roles_schema();
  cols[2].cardinality = 0;
  try {
    DatasetWriter w(tmp / "ds", cols);
    FAIL() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("'c0'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("categorify or hash"), std::string::npos) << e.what();
  }
  cols = all_roles_schema();
  cols[3].cardinality = int64_t{1} << 31;
  EXPECT_THROW(DatasetWriter(tmp / "ds", cols), ConfigError);
  EXPECT_TRUE(fs::is_empty(tmp.path()));  // checked before anything is created
}

TEST(DatasetWriter, SchemaProblemsAreConfigErrors) {
  TempDir tmp;
  auto cols = all_roles_schema();
  cols[1].name = "label";
  EXPECT_THROW(DatasetWriter(tmp / "a", cols), ConfigError);
  EXPECT_THROW(DatasetWriter(tmp / "b", all_roles_schema(), {.shard_rows = 0}), ConfigError);
  for (double limit : {-1.0, std::nan("")}) {
    const std::string msg = testing::error_of<ConfigError>(
        [&] { DatasetWriter(tmp / "b", all_roles_schema(), {.page_cache_limit_ns_per_mib = limit}); });
    EXPECT_NE(msg.find("page_cache_limit_ns_per_mib must be >= 0"), std::string::npos) << msg;
  }
  DatasetWriter w(tmp / "c", all_roles_schema());
  Chunk ch = make_chunk(0, 3);
  ch.columns[1].kind = ColumnKind::kInt;  // dense column arriving as integers
  EXPECT_THROW(w.append(ch), ConfigError);
  Chunk missing = make_chunk(0, 3);
  missing.columns.erase(missing.columns.begin() + 6);
  EXPECT_THROW(w.append(missing), ConfigError);
}

// ---------------------------------------------------------------------------------- meta.json validation

class MetaValidation : public ::testing::Test {
 protected:
  void SetUp() override {
    write_dataset(tmp_ / "ds", 40, 40, {.shard_rows = 16});
    meta_ = json::parse(read_file(tmp_ / "ds" / "meta.json"));
  }
  // Writes a mutated meta.json and expects FormatError mentioning `needle`.
  void expect_rejected(const json& meta, const std::string& needle) {
    testing::write_text(tmp_ / "ds" / "meta.json", meta.dump());
    try {
      Dataset::open(tmp_ / "ds");
      ADD_FAILURE() << "accepted meta.json expected to fail with " << needle;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("meta.json"), std::string::npos) << e.what();
    }
  }
  TempDir tmp_;
  json meta_;
};

TEST_F(MetaValidation, OriginalOpens) { EXPECT_EQ(Dataset::open(tmp_ / "ds").num_shards(Split::kTrain), 3); }

TEST_F(MetaValidation, NewerFormatVersion) {
  json m = meta_;
  m["format_version"] = kDatasetFormatVersion + 1;
  expect_rejected(m, "format_version");
}

TEST_F(MetaValidation, MissingKeys) {
  json m = meta_;
  m.erase("columns");
  expect_rejected(m, "columns: missing");
  m = meta_;
  m["splits"].erase("valid");
  expect_rejected(m, "splits.valid: missing");
  m = meta_;
  m["splits"]["train"]["shards"][1].erase("xxh3");
  expect_rejected(m, "splits.train.shards[1].xxh3: missing");
  m = meta_;
  m.erase("pipeline");
  expect_rejected(m, "pipeline");
}

TEST_F(MetaValidation, WrongTypes) {
  json m = meta_;
  m["splits"]["train"]["rows"] = "forty";
  expect_rejected(m, "splits.train.rows: expected an integer");
  m = meta_;
  m["columns"][0]["name"] = 3;
  expect_rejected(m, "columns[0].name: expected a string");
  m = meta_;
  m["columns"][2]["dtype"] = "f32";
  expect_rejected(m, "columns[2].dtype");
  m = meta_;
  m["columns"][1]["role"] = "banana";
  expect_rejected(m, "columns[1].role");
  m = meta_;
  m["pipeline"] = json::array();
  expect_rejected(m, "pipeline");
}

TEST_F(MetaValidation, NegativeAndInconsistentCounts) {
  json m = meta_;
  m["splits"]["train"]["shards"][0]["rows"] = -5;
  expect_rejected(m, "splits.train.shards[0].rows");
  m = meta_;
  m["splits"]["train"]["rows"] = 41;
  expect_rejected(m, "splits.train.rows");
  m = meta_;
  m["columns"][2]["cardinality"] = 0;
  expect_rejected(m, "columns[2].cardinality");
  m = meta_;
  m["splits"]["train"]["shards"][0]["file"] = "../../etc/passwd";
  expect_rejected(m, "splits.train.shards[0].file");
}

TEST_F(MetaValidation, NotJsonOrNotADataset) {
  testing::write_text(tmp_ / "ds" / "meta.json", "{\"format\": ");
  EXPECT_THROW(Dataset::open(tmp_ / "ds"), FormatError);
  fs::create_directories(tmp_ / "empty");
  EXPECT_THROW(Dataset::open(tmp_ / "empty"), FormatError);
  EXPECT_THROW(Dataset::open(tmp_ / "nothing-here"), IoError);
}

// ------------------------------------------------------------------------------------------ corrupted shards

class CorruptShard : public ::testing::Test {
 protected:
  void SetUp() override {
    write_dataset(tmp_ / "ds", 200, 50, {.shard_rows = 100});
    ds_ = Dataset::open(tmp_ / "ds");
    file_ = tmp_ / "ds" / "train" / "shard-00001.bwd";
    bytes_ = read_file(file_);
  }
  void rewrite(const std::string& b) {
    std::ofstream f(file_, std::ios::binary | std::ios::trunc);
    f << b;
  }
  // Expects FormatError from opening shard 1 whose message holds every needle.
  void expect_corrupt(std::initializer_list<std::string> needles, bool verify = true) {
    try {
      ds_.open_shard(Split::kTrain, 1, verify);
      ADD_FAILURE() << "corruption not detected";
    } catch (const FormatError& e) {
      for (const auto& n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
    }
  }
  // Byte offset of block k's data, from the directory.
  uint64_t block_offset(int k) {
    uint64_t off;
    std::memcpy(&off, bytes_.data() + 64 + 32 * k + 8, 8);
    return off;
  }
  TempDir tmp_;
  Dataset ds_;
  fs::path file_;
  std::string bytes_;
};

TEST_F(CorruptShard, FlippedDataByteNamesFileAndColumn) {
  std::string b = bytes_;
  b[block_offset(1) + 17] ^= 0x40;  // block 1 = column d0
  rewrite(b);
  expect_corrupt({"shard-00001.bwd", "'d0'", "checksum"});
  EXPECT_NO_THROW(ds_.open_shard(Split::kTrain, 0));  // other shards unaffected
  // Without verification a flipped float is not noticed: that is what the flag trades away.
  EXPECT_NO_THROW(ds_.open_shard(Split::kTrain, 1, /*verify=*/false));
}

TEST_F(CorruptShard, FlippedListOffsetIsCaughtEvenWithoutVerify) {
  std::string b = bytes_;
  // Directory: label, d0, c0, m0 values, m0 offsets (block 4). Make offsets decrease at row 50.
  uint64_t off = block_offset(4) + 8 * 50;
  int64_t v;
  std::memcpy(&v, b.data() + off, 8);
  v += 1000;
  std::memcpy(b.data() + off, &v, 8);
  rewrite(b);
  expect_corrupt({"shard-00001.bwd", "'m0'"}, /*verify=*/false);
}

TEST_F(CorruptShard, FlippedDirectoryByte) {
  std::string b = bytes_;
  b[64 + 32 * 2 + 9] ^= 0x01;  // offset of block 2
  rewrite(b);
  expect_corrupt({"shard-00001.bwd", "directory"});
}

TEST_F(CorruptShard, Truncated) {
  rewrite(bytes_.substr(0, bytes_.size() - 100));
  expect_corrupt({"shard-00001.bwd", "truncated"});
  rewrite(bytes_.substr(0, 30));
  expect_corrupt({"shard-00001.bwd"});
  rewrite("");
  expect_corrupt({"shard-00001.bwd"});
}

TEST_F(CorruptShard, WrongMagic) {
  std::string b = bytes_;
  b[0] = 'X';
  rewrite(b);
  expect_corrupt({"shard-00001.bwd", "magic"});
}

TEST_F(CorruptShard, ShardSwappedWithAnotherOfSameSize) {
  // Shards 0 and 1 have the same size and structure; only the meta.json checksum tells them apart.
  fs::copy_file(tmp_ / "ds" / "train" / "shard-00000.bwd", file_, fs::copy_options::overwrite_existing);
  expect_corrupt({"shard-00001.bwd", "meta.json"});
}

TEST_F(CorruptShard, MissingFile) {
  fs::remove(file_);
  expect_corrupt({"shard-00001.bwd", "missing"});
}

}  // namespace
}  // namespace bluewhale
