// Feature operators against plain std::map references on random chunks (missing values, empty chunks,
// lists, non-training rows), fit determinism over thread counts and chunk orders, the categorify spill
// path, out-of-fold target encoding, state round trips and recipe errors.
#include "bluewhale/prep/ops.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/data/binary_io.h"
#include "prep/ops/fast_math.h"
#include "prep/ops/flat_map.h"
#include "prep/ops/key_counter.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

constexpr int64_t kMinKey = std::numeric_limits<int64_t>::min();

Column make_column(const std::string& name, Role role, ColumnKind kind) {
  Column c;
  c.name = name;
  c.role = role;
  c.kind = kind;
  return c;
}

ConfigNode yaml(const std::string& text) { return ConfigNode::parse_yaml(text, "test.yaml"); }

std::unique_ptr<Op> make_op(const std::string& text, const OpContext& ctx = {}) {
  auto op = create_op(yaml(text), ctx);
  return op;
}

// Random chunks: I1 float (NaN, negatives), C1 int with missing rows and some INT64_MIN keys, C2 int with
// no validity vector, L1 lists of 0-3 keys, label 0/1 with a few NaN, splits 70/15/15. Chunk 0 has no
// split vector (all training rows), one chunk is empty and one uses row_index.
std::vector<Chunk> make_chunks(uint64_t seed, int n_chunks, int64_t max_rows, int64_t key_range) {
  std::mt19937_64 rng(seed);
  std::vector<Chunk> chunks;
  int64_t next_row = 0;
  auto key = [&] {
    // Skewed: small keys are frequent, so counts vary and min_count / max_size matter.
    int64_t a = static_cast<int64_t>(rng() % key_range), b = static_cast<int64_t>(rng() % key_range);
    if (rng() % 100 == 0) return kMinKey;
    return std::min(a, b) - key_range / 3;
  };
  for (int c = 0; c < n_chunks; ++c) {
    Chunk ch;
    ch.rows = c == 2 ? 0 : static_cast<int64_t>(rng() % max_rows) + 1;
    ch.first_row = next_row;
    ch.file_index = c % 2;
    ch.first_line = 1;
    Column i1 = make_column("I1", Role::kDense, ColumnKind::kFloat);
    Column c1 = make_column("C1", Role::kCategorical, ColumnKind::kInt);
    Column c2 = make_column("C2", Role::kCategorical, ColumnKind::kInt);
    Column l1 = make_column("L1", Role::kMulti, ColumnKind::kList);
    Column label = make_column("label", Role::kLabel, ColumnKind::kFloat);
    l1.offsets.push_back(0);
    for (int64_t r = 0; r < ch.rows; ++r) {
      i1.f.push_back(rng() % 10 == 0 ? kMissingFloat : static_cast<float>(static_cast<int64_t>(rng() % 2000) - 300) / 7.0f);
      bool missing = rng() % 10 == 0;
      c1.i.push_back(missing ? static_cast<int64_t>(rng()) : key());
      c1.valid.push_back(missing ? 0 : 1);
      c2.i.push_back(key());
      int n = static_cast<int>(rng() % 4);
      for (int j = 0; j < n; ++j) l1.i.push_back(key());
      l1.offsets.push_back(static_cast<int64_t>(l1.i.size()));
      label.f.push_back(rng() % 50 == 0 ? kMissingFloat : static_cast<float>(rng() % 3 == 0));
      if (c != 0) ch.split.push_back(rng() % 100 < 70 ? 0 : (rng() % 2 ? 1 : 2));
    }
    if (c == 3) {
      for (int64_t r = 0; r < ch.rows; ++r) ch.row_index.push_back(ch.first_row + 2 * r);
    }
    next_row += 2 * ch.rows + 1;
    ch.columns = {std::move(i1), std::move(c1), std::move(c2), std::move(l1), std::move(label)};
    chunks.push_back(std::move(ch));
  }
  return chunks;
}

PlanState plan_of(const std::vector<Chunk>& chunks) {
  PlanState s;
  for (const auto& c : chunks[0].columns) s.columns.push_back(ColumnInfo{c.name, c.role, c.kind, c.cardinality});
  return s;
}

std::vector<std::size_t> identity_order(std::size_t n) {
  std::vector<std::size_t> o(n);
  std::iota(o.begin(), o.end(), 0);
  return o;
}

void fit(Op& op, const std::vector<Chunk>& chunks, int threads, std::vector<std::size_t> order = {},
         OpContext ctx = {}) {
  if (order.empty()) order = identity_order(chunks.size());
  ctx.threads = threads;
  op.begin_fit(ctx);
  parallel_for_dynamic(static_cast<int64_t>(order.size()), threads,
                       [&](int64_t i, int t) { op.fit_chunk(chunks[order[i]], t); });
  op.end_fit();
}

std::vector<Chunk> transform_all(const Op& op, std::vector<Chunk> chunks, bool fitted_rows = false) {
  for (auto& c : chunks) op.transform(c, fitted_rows);
  return chunks;
}

std::string state_bytes(const Op& op, const fs::path& path) {
  BinaryWriter w(path, "op-state", 1);
  op.save_state(w);
  w.close();
  return read_file(path);
}

void load(Op& op, const fs::path& path) {
  BinaryReader r(path, "op-state", 1);
  op.load_state(r);
  r.expect_end();
}

bool train(const Chunk& c, int64_t r) { return c.split.empty() || c.split[r] == 0; }

// Reference categorify: std::map counts over training rows, then the documented selection.
std::map<int64_t, int64_t> reference_dictionary(const std::vector<Chunk>& chunks, const std::string& col,
                                                int64_t min_count, int64_t max_size, bool by_first) {
  std::map<int64_t, std::pair<int64_t, int64_t>> stats;  // key -> (count, first row)
  auto see = [&](int64_t k, int64_t row) {
    auto [it, inserted] = stats.try_emplace(k, 0, row);
    it->second.first += 1;
    it->second.second = std::min(it->second.second, row);
  };
  for (const auto& ch : chunks) {
    const Column& c = *ch.find(col);
    for (int64_t r = 0; r < ch.rows; ++r) {
      if (!train(ch, r)) continue;
      if (c.kind == ColumnKind::kList) {
        for (int64_t j = c.offsets[r]; j < c.offsets[r + 1]; ++j) see(c.i[j], ch.global_row(r));
      } else if (!c.is_missing(r)) {
        see(c.i[r], ch.global_row(r));
      }
    }
  }
  struct E {
    int64_t key, count, first;
  };
  std::vector<E> kept;
  for (auto& [k, v] : stats)
    if (v.first >= min_count) kept.push_back({k, v.first, v.second});
  std::sort(kept.begin(), kept.end(), [](const E& a, const E& b) { return a.count != b.count ? a.count > b.count : a.key < b.key; });
  if (max_size > 0 && static_cast<int64_t>(kept.size()) > max_size) kept.resize(max_size);
  if (by_first)
    std::sort(kept.begin(), kept.end(), [](const E& a, const E& b) { return a.first != b.first ? a.first < b.first : a.key < b.key; });
  std::map<int64_t, int64_t> ids;
  for (std::size_t j = 0; j < kept.size(); ++j) ids[kept[j].key] = 2 + static_cast<int64_t>(j);
  return ids;
}

void expect_categorified(const std::vector<Chunk>& before, const std::vector<Chunk>& after, const std::string& col,
                         const std::map<int64_t, int64_t>& ids) {
  for (std::size_t k = 0; k < before.size(); ++k) {
    const Column& in = *before[k].find(col);
    const Column& out = *after[k].find(col);
    ASSERT_EQ(out.cardinality, static_cast<int64_t>(ids.size()) + 2);
    ASSERT_EQ(in.i.size(), out.i.size());
    for (int64_t r = 0; r < before[k].rows; ++r) {
      auto id_of = [&](int64_t key) {
        auto it = ids.find(key);
        return it == ids.end() ? int64_t{1} : it->second;
      };
      if (in.kind == ColumnKind::kList) {
        for (int64_t j = in.offsets[r]; j < in.offsets[r + 1]; ++j) ASSERT_EQ(out.i[j], id_of(in.i[j])) << col;
      } else {
        ASSERT_EQ(out.i[r], in.is_missing(r) ? 0 : id_of(in.i[r])) << col << " chunk " << k << " row " << r;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Dense operators

TEST(FillMissing, ReplacesOnlyNaN) {
  auto chunks = make_chunks(1, 6, 300, 50);
  auto op = make_op("{op: fill_missing, columns: [I1], value: -7.5}");
  auto out = transform_all(*op, chunks);
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      float x = chunks[k].find("I1")->f[r];
      EXPECT_EQ(out[k].find("I1")->f[r], std::isnan(x) ? -7.5f : x);
    }
}

TEST(MissingIndicator, MarksMissingFloatAndIntegerValuesBeforeAFill) {
  auto chunks = make_chunks(7, 6, 300, 50);
  auto mark = make_op("{op: missing_indicator, columns: [I1, C1]}");
  auto fill = make_op("{op: fill_missing, columns: [I1], value: 0}");
  PlanState plan = plan_of(chunks);
  mark->plan(plan);
  ASSERT_EQ(plan.columns.size(), chunks[0].columns.size() + 2);
  EXPECT_EQ(plan.columns.back().name, "C1_missing");
  EXPECT_EQ(plan.columns.back().kind, ColumnKind::kFloat);
  EXPECT_EQ(plan.columns.back().role, Role::kDense);
  EXPECT_THROW(mark->plan(plan), ConfigError);  // I1_missing already exists
  auto out = transform_all(*fill, transform_all(*mark, chunks));
  int64_t missing_i = 0, missing_c = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      const bool mi = std::isnan(chunks[k].find("I1")->f[r]);
      const bool mc = chunks[k].find("C1")->is_missing(r);
      missing_i += mi;
      missing_c += mc;
      ASSERT_EQ(out[k].find("I1_missing")->f[r], mi ? 1.0f : 0.0f) << "chunk " << k << " row " << r;
      ASSERT_EQ(out[k].find("C1_missing")->f[r], mc ? 1.0f : 0.0f) << "chunk " << k << " row " << r;
      if (mi) {
        EXPECT_EQ(out[k].find("I1")->f[r], 0.0f);  // the fill no longer tells missing from 0
      }
    }
  EXPECT_GT(missing_i, 0);  // the chunks exercise both cases
  EXPECT_GT(missing_c, 0);
  EXPECT_THROW(make_op("{op: missing_indicator, columns: [I1], suffix: ''}"), ConfigError);
}

TEST(Clip, BoundsValuesAndKeepsMissing) {
  auto chunks = make_chunks(2, 6, 300, 50);
  auto op = make_op("{op: clip, columns: I1, min: -10, max: 100}");
  auto out = transform_all(*op, chunks);
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      float x = chunks[k].find("I1")->f[r], y = out[k].find("I1")->f[r];
      if (std::isnan(x)) EXPECT_TRUE(std::isnan(y));
      else EXPECT_EQ(y, std::min(100.0f, std::max(-10.0f, x)));
    }
}

// Float bounds clip through the column kernel, others in double: a bound between two floats must keep
// the values on its side (0.1 is not a float: 0.1f is above it, so 0.1f stays and 0.09999999f becomes
// the float nearest 0.1).
TEST(Clip, BoundsThatAreNotFloatsClipInDouble) {
  Chunk ch;
  ch.rows = 40;
  Column c = make_column("I1", Role::kDense, ColumnKind::kFloat);
  for (int64_t r = 0; r < ch.rows; ++r) c.f.push_back(r % 2 ? 0.1f : std::nextafter(0.1f, 0.0f));
  c.f[7] = kMissingFloat;
  c.f[8] = 5.0f;
  ch.columns.push_back(c);
  make_op("{op: clip, columns: [I1], min: 0.1, max: 4.5}")->transform(ch, false);
  for (int64_t r = 0; r < ch.rows; ++r) {
    const float x = c.f[r], y = ch.columns[0].f[r];
    if (std::isnan(x)) EXPECT_TRUE(std::isnan(y));
    else if (x > 4.5f) EXPECT_EQ(y, 4.5f);
    else if (static_cast<double>(x) < 0.1) EXPECT_EQ(y, 0.1f) << r;
    else EXPECT_EQ(y, x) << r;
  }
  EXPECT_EQ(ch.columns[0].f[1], 0.1f);  // 0.1f > 0.1: unchanged
}

TEST(Log1p, SymmetricForNegativesByDefault) {
  auto chunks = make_chunks(3, 6, 300, 50);
  auto op = make_op("{op: log1p, columns: [I1]}");
  auto out = transform_all(*op, chunks);
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      float x = chunks[k].find("I1")->f[r], y = out[k].find("I1")->f[r];
      if (std::isnan(x)) EXPECT_TRUE(std::isnan(y));
      else EXPECT_FLOAT_EQ(y, x >= 0 ? std::log1p(x) : -std::log1p(-x));
    }
}

TEST(Log1p, NegativeModesMissingAndError) {
  Chunk ch;
  ch.rows = 3;
  ch.first_row = 40;
  Column c = make_column("I1", Role::kDense, ColumnKind::kFloat);
  c.f = {1.0f, -2.0f, kMissingFloat};
  ch.columns.push_back(c);
  Chunk a = ch;
  make_op("{op: log1p, columns: [I1], negative: missing}")->transform(a, false);
  EXPECT_FLOAT_EQ(a.columns[0].f[0], std::log1p(1.0f));
  EXPECT_TRUE(std::isnan(a.columns[0].f[1]));
  Chunk b = ch;
  try {
    make_op("{op: log1p, columns: [I1], negative: error}")->transform(b, false);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("row 41"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("-2"), std::string::npos) << e.what();
  }
}

// The column kernels (math_kernels.h) leave negative values to the operator: each mode must see them at
// every SIMD level, in vector bodies and in the scalar tail.
TEST(Log1p, NegativeModesAtEverySimdLevel) {
  Chunk ch;
  ch.rows = 37;
  ch.first_row = 100;
  Column c = make_column("I1", Role::kDense, ColumnKind::kFloat);
  for (int64_t r = 0; r < ch.rows; ++r) c.f.push_back(r % 4 == 1 ? static_cast<float>(r) * 0.5f : static_cast<float>(r));
  c.f[3] = -7.0f;
  c.f[17] = -0.25f;
  c.f[35] = -3000.0f;
  c.f[9] = kMissingFloat;
  ch.columns.push_back(c);
  const prep_ops::Log1pTable& t = prep_ops::Log1pTable::instance();
  const SimdLevel before = simd_level();
  for (SimdLevel level : testing::supported_simd_levels()) {
    set_simd_level(level);
    const std::string at = std::string(simd_level_name(level));
    Chunk a = ch, b = ch, e = ch;
    make_op("{op: log1p, columns: [I1]}")->transform(a, false);
    make_op("{op: log1p, columns: [I1], negative: missing}")->transform(b, false);
    for (int64_t r = 0; r < ch.rows; ++r) {
      const float x = ch.columns[0].f[r];
      if (std::isnan(x)) {
        EXPECT_TRUE(std::isnan(a.columns[0].f[r]) && std::isnan(b.columns[0].f[r])) << at << " row " << r;
      } else if (x < 0) {
        EXPECT_EQ(a.columns[0].f[r], -t(-x)) << at << " row " << r;
        EXPECT_TRUE(std::isnan(b.columns[0].f[r])) << at << " row " << r;
      } else {
        EXPECT_EQ(a.columns[0].f[r], t(x)) << at << " row " << r;
        EXPECT_EQ(b.columns[0].f[r], t(x)) << at << " row " << r;
      }
    }
    try {
      make_op("{op: log1p, columns: [I1], negative: error}")->transform(e, false);
      ADD_FAILURE() << "negative value accepted at " << at;
    } catch (const InputError& err) {
      EXPECT_NE(std::string(err.what()).find("row 103"), std::string::npos) << err.what();
      EXPECT_NE(std::string(err.what()).find("-7"), std::string::npos) << err.what();
    }
  }
  set_simd_level(before);
}

TEST(Bucketize, FixedBoundariesMatchLinearScan) {
  auto chunks = make_chunks(4, 6, 300, 50);
  auto op = make_op("{op: bucketize, columns: [I1], boundaries: [-10, 0, 0.5, 30]}");
  EXPECT_FALSE(op->needs_fit());
  PlanState ps = plan_of(chunks);
  op->plan(ps);
  EXPECT_EQ(ps.find("I1")->kind, ColumnKind::kInt);
  EXPECT_EQ(ps.find("I1")->cardinality, 6);
  auto out = transform_all(*op, chunks);
  std::vector<double> b = {-10, 0, 0.5, 30};
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const Column& o = *out[k].find("I1");
    EXPECT_EQ(o.kind, ColumnKind::kInt);
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      float x = chunks[k].find("I1")->f[r];
      int64_t expected = 0;
      if (!std::isnan(x)) {
        expected = 1;
        for (double e : b) expected += x >= e ? 1 : 0;
      }
      EXPECT_EQ(o.i[r], expected);
      EXPECT_EQ(o.is_missing(r), std::isnan(x));
    }
  }
}

TEST(Bucketize, FittedQuantilesFromTrainingRowsOnly) {
  auto chunks = make_chunks(5, 8, 400, 50);
  // sample_size above the number of rows: the sample is every training value, so edges are exact quantiles.
  auto op = make_op("{op: bucketize, columns: [I1], num_buckets: 4, sample_size: 100000}");
  fit(*op, chunks, 2);
  std::vector<float> v;
  for (const auto& ch : chunks)
    for (int64_t r = 0; r < ch.rows; ++r)
      if (train(ch, r) && !std::isnan(ch.find("I1")->f[r])) v.push_back(ch.find("I1")->f[r]);
  std::sort(v.begin(), v.end());
  std::vector<double> edges;
  for (int b = 1; b < 4; ++b) edges.push_back(v[b * v.size() / 4]);
  auto out = transform_all(*op, chunks);
  std::vector<int64_t> per_bucket(6, 0);
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      float x = chunks[k].find("I1")->f[r];
      int64_t expected = std::isnan(x) ? 0 : 1 + (std::upper_bound(edges.begin(), edges.end(), x) - edges.begin());
      ASSERT_EQ(out[k].find("I1")->i[r], expected);
      per_bucket[expected]++;
    }
  for (int b = 1; b <= 4; ++b) EXPECT_GT(per_bucket[b], 0);
  EXPECT_EQ(out[0].find("I1")->cardinality, 5);
}

TEST(Bucketize, SampledFitIsIndependentOfThreadsAndOrder) {
  auto chunks = make_chunks(6, 12, 500, 50);
  TempDir dir;
  std::string ref;
  for (int threads : {1, 2, 4}) {
    auto op = make_op("{op: bucketize, columns: [I1], num_buckets: 10, sample_size: 300}");
    auto order = identity_order(chunks.size());
    std::shuffle(order.begin(), order.end(), std::mt19937(threads));
    fit(*op, chunks, threads, order);
    std::string s = state_bytes(*op, dir / "b.state");
    if (ref.empty()) ref = s;
    EXPECT_EQ(s, ref) << threads << " threads";
  }
}

// ---------------------------------------------------------------------------------------------------
// Hash and cross

TEST(Hash, MapsKeysIntoBucketsWithZeroForMissing) {
  auto chunks = make_chunks(7, 6, 300, 1000);
  auto op = make_op("{op: hash, columns: [C1, L1], buckets: 100, seed: 9}");
  auto out = transform_all(*op, chunks);
  auto h = [](int64_t k) { return 1 + static_cast<int64_t>(mix64(static_cast<uint64_t>(k) ^ 9u) % 99); };
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const Column &in = *chunks[k].find("C1"), &o = *out[k].find("C1");
    EXPECT_EQ(o.cardinality, 100);
    for (int64_t r = 0; r < chunks[k].rows; ++r) EXPECT_EQ(o.i[r], in.is_missing(r) ? 0 : h(in.i[r]));
    const Column &li = *chunks[k].find("L1"), &lo = *out[k].find("L1");
    EXPECT_EQ(li.offsets, lo.offsets);
    for (std::size_t j = 0; j < li.i.size(); ++j) EXPECT_EQ(lo.i[j], h(li.i[j]));
  }
}

TEST(Cross, CombinesColumnsAndMarksMissing) {
  auto chunks = make_chunks(8, 6, 300, 1000);
  auto op = make_op("{op: cross, columns: [C1, C2], buckets: 1000}");
  EXPECT_EQ(op->outputs(), std::vector<std::string>{"C1_x_C2"});
  PlanState ps = plan_of(chunks);
  op->plan(ps);
  ASSERT_TRUE(ps.find("C1_x_C2"));
  EXPECT_EQ(ps.find("C1_x_C2")->cardinality, 1000);
  auto out = transform_all(*op, chunks);
  for (std::size_t k = 0; k < chunks.size(); ++k) {
    const Column &a = *chunks[k].find("C1"), &b = *chunks[k].find("C2"), &o = *out[k].find("C1_x_C2");
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      uint64_t h = mix64(mix64(mix64(0) ^ static_cast<uint64_t>(a.i[r])) ^ static_cast<uint64_t>(b.i[r]));
      EXPECT_EQ(o.i[r], a.is_missing(r) ? 0 : 1 + static_cast<int64_t>(h % 999));
    }
  }
  // Swapping the inputs is a different cross.
  auto swapped = transform_all(*make_op("{op: cross, columns: [C2, C1], buckets: 1000, out: X}"), chunks);
  int same = 0, total = 0;
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r, ++total)
      same += swapped[k].find("X")->i[r] == out[k].find("C1_x_C2")->i[r];
  EXPECT_LT(same, total / 2 + 1);
}

// ---------------------------------------------------------------------------------------------------
// Categorify

struct CategorifyCase {
  std::string params;
  int64_t min_count, max_size;
  bool by_first;
};

const std::vector<CategorifyCase> kCategorifyCases = {
    {"", 1, 0, false},
    {"min_count: 3", 3, 0, false},
    {"max_size: 20", 1, 20, false},
    {"order: first", 1, 0, true},
    {"order: first, min_count: 2, max_size: 15", 2, 15, true},
};

TEST(Categorify, MatchesReferenceForIntAndListColumns) {
  auto chunks = make_chunks(10, 10, 400, 200);
  for (const auto& tc : kCategorifyCases) {
    SCOPED_TRACE(tc.params);
    auto op = make_op("{op: categorify, columns: [C1, C2, L1]" + (tc.params.empty() ? "" : ", " + tc.params) + "}");
    fit(*op, chunks, 2);
    auto out = transform_all(*op, chunks);
    for (const char* col : {"C1", "C2", "L1"})
      expect_categorified(chunks, out, col, reference_dictionary(chunks, col, tc.min_count, tc.max_size, tc.by_first));
  }
}

TEST(Categorify, RareValuesMapToOovBucketAndUnseenToo) {
  // Key 5 seen 3 times, key 7 once, key 9 twice but only in a validation row; id 0 for missing.
  Chunk ch;
  ch.rows = 7;
  Column c = make_column("C1", Role::kCategorical, ColumnKind::kInt);
  c.i = {5, 7, 5, 9, 5, 9, 123};
  c.valid = {1, 1, 1, 1, 1, 1, 0};
  ch.columns.push_back(c);
  ch.split = {0, 0, 0, 1, 0, 1, 0};
  auto op = make_op("{op: categorify, columns: C1, min_count: 2}");
  fit(*op, std::vector<Chunk>{ch}, 1);
  Chunk t = ch;
  t.columns[0].i[6] = 5;  // a value under a missing flag stays missing
  op->transform(t, false);
  EXPECT_EQ(t.columns[0].i, (std::vector<int64_t>{2, 1, 2, 1, 2, 1, 0}));
  EXPECT_EQ(t.columns[0].cardinality, 3);
  EXPECT_NE(op->summary().find("categorify C1: 2 distinct, 1 kept (min_count 2)"), std::string::npos)
      << op->summary();
}

TEST(Categorify, FrequencyOrderBreaksTiesByKeyAndFirstOrderByRow) {
  Chunk ch;
  ch.rows = 6;
  ch.first_row = 100;
  Column c = make_column("C1", Role::kCategorical, ColumnKind::kInt);
  c.i = {30, 20, 10, 20, 10, 30};
  ch.columns.push_back(c);
  auto freq = make_op("{op: categorify, columns: [C1]}");
  fit(*freq, std::vector<Chunk>{ch}, 1);
  Chunk a = ch;
  freq->transform(a, false);
  EXPECT_EQ(a.columns[0].i, (std::vector<int64_t>{4, 3, 2, 3, 2, 4}));
  auto first = make_op("{op: categorify, columns: [C1], order: first}");
  fit(*first, std::vector<Chunk>{ch}, 1);
  Chunk b = ch;
  first->transform(b, false);
  EXPECT_EQ(b.columns[0].i, (std::vector<int64_t>{2, 3, 4, 3, 4, 2}));
}

// Ids by descending count with ties by key, where counts are spread over both sides of the threshold
// below which the fit sorts by placing keys per count (4096): equal counts on each side, negative keys,
// keys dropped by min_count, and with max_size.
TEST(Categorify, FrequencyOrderHoldsForSmallAndLargeCounts) {
  const std::vector<std::pair<int64_t, int64_t>> counts = {
      {7, 5000}, {-7, 5000}, {3, 4096}, {-9, 4095}, {9, 4095}, {11, 4095}, {-2, 3}, {2, 3}, {5, 2}, {6, 1}, {8, 1}};
  Chunk ch;
  Column c = make_column("C1", Role::kCategorical, ColumnKind::kInt);
  for (const auto& [key, n] : counts) c.i.insert(c.i.end(), static_cast<std::size_t>(n), key);
  std::shuffle(c.i.begin(), c.i.end(), std::mt19937_64(4));
  c.valid.assign(c.i.size(), 1);
  ch.rows = static_cast<int64_t>(c.i.size());
  ch.columns.push_back(c);
  const std::vector<Chunk> chunks{ch};
  for (const auto& tc : std::vector<CategorifyCase>{{"min_count: 2", 2, 0, false}, {"max_size: 5", 1, 5, false}}) {
    SCOPED_TRACE(tc.params);
    auto op = make_op("{op: categorify, columns: [C1], " + tc.params + "}");
    fit(*op, chunks, 2);
    auto out = transform_all(*op, chunks);
    const auto want = reference_dictionary(chunks, "C1", tc.min_count, tc.max_size, false);
    expect_categorified(chunks, out, "C1", want);
  }
  // Spelled out for min_count 2: 5000 x2 (by key), 4096, 4095 x3 (by key), 3 x2, 2.
  auto op = make_op("{op: categorify, columns: [C1], min_count: 2}");
  fit(*op, chunks, 1);
  Chunk probe;
  Column p = make_column("C1", Role::kCategorical, ColumnKind::kInt);
  p.i = {-7, 7, 3, -9, 9, 11, -2, 2, 5, 6, 8};
  p.valid.assign(p.i.size(), 1);
  probe.rows = static_cast<int64_t>(p.i.size());
  probe.columns.push_back(p);
  op->transform(probe, false);
  EXPECT_EQ(probe.columns[0].i, (std::vector<int64_t>{2, 3, 4, 5, 6, 7, 8, 9, 10, 1, 1}));
}

// Criteo-like keys (8 hex digits) counted in one compact table take the packed end (the table's kept
// entries sorted as words, no per-key stream); the same rows fitted on several threads take the union and
// the Selector. Both must give the reference ids: counts on both sides of every byte of the sort words
// (1 to 70000), ties broken by key, the empty key (INT64_MIN, counted apart) tied with packed keys and
// alone, missing values, with min_count and max_size cutting through ties.
TEST(Categorify, PackedCountsGiveTheSelectorOrder) {
  std::mt19937_64 rng(21);
  auto hex_key = [](uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08x", v);
    return categorical_key(std::string_view(buf, 8));
  };
  std::vector<std::pair<int64_t, int64_t>> counts;  // (key, occurrences)
  for (int k = 0; k < 3000; ++k) {
    const int64_t n = k % 5 == 0 ? 1 : k % 7 == 0 ? 2 : static_cast<int64_t>(1 + rng() % (k % 3 == 0 ? 300 : 20));
    counts.emplace_back(hex_key(static_cast<uint32_t>(rng())), n);
  }
  counts.emplace_back(hex_key(0), 2);
  counts.emplace_back(hex_key(0xFFFFFFFFu), 2);
  counts.emplace_back(hex_key(0x10u), 70000);  // a count with three non-zero bytes
  counts.emplace_back(hex_key(0x11u), 256);
  for (int64_t empty_count : {int64_t{0}, int64_t{2}, int64_t{256}, int64_t{90000}}) {
    SCOPED_TRACE("empty key seen " + std::to_string(empty_count) + " times");
    std::vector<std::pair<int64_t, int64_t>> all = counts;
    if (empty_count > 0) all.emplace_back(prep_ops::kEmptyKey, empty_count);
    Column c = make_column("C1", Role::kCategorical, ColumnKind::kInt);
    for (const auto& [key, n] : all) c.i.insert(c.i.end(), static_cast<std::size_t>(n), key);
    std::shuffle(c.i.begin(), c.i.end(), rng);
    for (std::size_t r = 0; r < c.i.size(); ++r) c.valid.push_back(r % 11 != 0);  // missing rows too
    std::vector<Chunk> chunks;
    for (std::size_t at = 0; at < c.i.size(); at += 50000) {
      Chunk ch;
      ch.first_row = static_cast<int64_t>(at);
      const std::size_t n = std::min<std::size_t>(50000, c.i.size() - at);
      ch.rows = static_cast<int64_t>(n);
      Column part = make_column("C1", Role::kCategorical, ColumnKind::kInt);
      part.i.assign(c.i.begin() + static_cast<std::ptrdiff_t>(at), c.i.begin() + static_cast<std::ptrdiff_t>(at + n));
      part.valid.assign(c.valid.begin() + static_cast<std::ptrdiff_t>(at), c.valid.begin() + static_cast<std::ptrdiff_t>(at + n));
      ch.columns.push_back(part);
      chunks.push_back(ch);
    }
    for (const auto& tc : std::vector<CategorifyCase>{{"min_count: 1", 1, 0, false},
                                                       {"min_count: 2", 2, 0, false},
                                                       {"min_count: 3, max_size: 700", 3, 700, false},
                                                       {"max_size: 1", 1, 1, false}}) {
      SCOPED_TRACE(tc.params);
      const auto want = reference_dictionary(chunks, "C1", tc.min_count, tc.max_size, false);
      for (int threads : {1, 3}) {
        auto op = make_op("{op: categorify, columns: [C1], " + tc.params + "}");
        fit(*op, chunks, threads);
        expect_categorified(chunks, transform_all(*op, chunks), "C1", want);
        if (::testing::Test::HasFailure()) return;
      }
    }
  }
}

TEST(Categorify, FitIsIdenticalAcrossThreadCountsAndChunkOrders) {
  auto chunks = make_chunks(11, 16, 500, 300);
  TempDir dir;
  for (const auto& tc : kCategorifyCases) {
    SCOPED_TRACE(tc.params);
    std::string ref;
    for (int threads : {1, 2, 4}) {
      for (int shuffle = 0; shuffle < 2; ++shuffle) {
        auto op = make_op("{op: categorify, columns: [C1, L1]" + (tc.params.empty() ? "" : ", " + tc.params) + "}");
        auto order = identity_order(chunks.size());
        if (shuffle) std::shuffle(order.begin(), order.end(), std::mt19937(threads * 7 + shuffle));
        else std::reverse(order.begin(), order.end());
        fit(*op, chunks, threads, order);
        std::string s = state_bytes(*op, dir / "c.state");
        if (ref.empty()) ref = s;
        EXPECT_EQ(s, ref) << threads << " threads, shuffle " << shuffle;
      }
    }
  }
}

TEST(Categorify, SpillingToDiskGivesTheInMemoryResult) {
  // ~60k distinct keys per column; a 64 KiB budget forces hundreds of runs per column (more than one
  // merge pass), with two threads and an unordered schedule.
  auto chunks = make_chunks(12, 24, 6000, 120000);
  TempDir dir;
  for (const auto& tc : kCategorifyCases) {
    SCOPED_TRACE(tc.params);
    std::string recipe = "{op: categorify, columns: [C1, L1]" + (tc.params.empty() ? "" : ", " + tc.params) + "}";
    auto mem = make_op(recipe);
    fit(*mem, chunks, 1);
    EXPECT_EQ(mem->summary().find("spill"), std::string::npos);
    auto disk = make_op(recipe);
    OpContext small;
    small.memory_budget = 64 << 10;
    small.temp_dir = dir.path().string();
    auto order = identity_order(chunks.size());
    std::shuffle(order.begin(), order.end(), std::mt19937(3));
    fit(*disk, chunks, 2, order, small);
    EXPECT_NE(disk->summary().find("spill runs"), std::string::npos) << disk->summary();
    EXPECT_EQ(state_bytes(*disk, dir / "disk.state"), state_bytes(*mem, dir / "mem.state"));
    auto out = transform_all(*disk, chunks);
    expect_categorified(chunks, out, "C1", reference_dictionary(chunks, "C1", tc.min_count, tc.max_size, tc.by_first));
  }
  // Spill files are removed after the fit.
  std::size_t leftover = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) leftover += e.path().extension() == ".run";
  EXPECT_EQ(leftover, 0u);
}

TEST(Categorify, PlanReportsFittedCardinalityAndRejectsFloatColumns) {
  auto chunks = make_chunks(13, 4, 200, 50);
  auto op = make_op("{op: categorify, columns: [C1]}");
  PlanState ps = plan_of(chunks);
  op->plan(ps);
  EXPECT_EQ(ps.find("C1")->cardinality, 0);
  fit(*op, chunks, 1);
  PlanState after = plan_of(chunks);
  op->plan(after);
  EXPECT_EQ(after.find("C1")->cardinality, static_cast<int64_t>(reference_dictionary(chunks, "C1", 1, 0, false).size()) + 2);

  auto bad = make_op("{op: categorify, columns: [C1, I1]}");
  PlanState ps2 = plan_of(chunks);
  try {
    bad->plan(ps2);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("test.yaml"), std::string::npos) << m;
    EXPECT_NE(m.find("(categorify)"), std::string::npos) << m;
    EXPECT_NE(m.find("'I1' is float (dense)"), std::string::npos) << m;
    EXPECT_NE(m.find("bucketize"), std::string::npos) << m;
  }
}

// ---------------------------------------------------------------------------------------------------
// Count, frequency and target encoding

TEST(CountEncode, AddsTrainingCountsAndFrequencies) {
  auto chunks = make_chunks(20, 10, 300, 100);
  auto count = make_op("{op: count_encode, columns: [C1, C2]}");
  auto freq = make_op("{op: frequency_encode, columns: [C1], suffix: _f}");
  fit(*count, chunks, 2);
  fit(*freq, chunks, 3);
  std::map<int64_t, int64_t> c1, c2;
  int64_t train_rows = 0;
  for (const auto& ch : chunks)
    for (int64_t r = 0; r < ch.rows; ++r) {
      if (!train(ch, r)) continue;
      ++train_rows;
      if (!ch.find("C1")->is_missing(r)) c1[ch.find("C1")->i[r]]++;
      c2[ch.find("C2")->i[r]]++;
    }
  auto oc = transform_all(*count, chunks);
  auto of = transform_all(*freq, chunks);
  auto get = [](const std::map<int64_t, int64_t>& m, int64_t k) {
    auto it = m.find(k);
    return it == m.end() ? int64_t{0} : it->second;
  };
  for (std::size_t k = 0; k < chunks.size(); ++k)
    for (int64_t r = 0; r < chunks[k].rows; ++r) {
      const Column& in1 = *chunks[k].find("C1");
      int64_t n1 = in1.is_missing(r) ? 0 : get(c1, in1.i[r]);
      EXPECT_EQ(oc[k].find("C1_count")->f[r], static_cast<float>(n1));
      EXPECT_EQ(oc[k].find("C2_count")->f[r], static_cast<float>(get(c2, chunks[k].find("C2")->i[r])));
      EXPECT_FLOAT_EQ(of[k].find("C1_f")->f[r], static_cast<float>(static_cast<double>(n1) / train_rows));
      EXPECT_EQ(oc[k].find("C1")->i, in1.i);  // the input column is unchanged
    }
}

TEST(TargetEncode, OutOfFoldStatisticsMatchBruteForce) {
  auto chunks = make_chunks(21, 8, 400, 40);
  const int folds = 4;
  const double m = 3.5;
  auto op = make_op("{op: target_encode, columns: [C1, C2], target: label, folds: 4, smoothing: 3.5, seed: 11}");
  fit(*op, chunks, 2);
  auto fitted = transform_all(*op, chunks, true);
  auto fresh = transform_all(*op, chunks, false);
  auto fold_of = [&](int64_t row) { return static_cast<int>(mix64(static_cast<uint64_t>(row) ^ 11u) % folds); };
  double sum = 0, n = 0;
  for (const auto& ch : chunks)
    for (int64_t r = 0; r < ch.rows; ++r)
      if (train(ch, r) && !std::isnan(ch.find("label")->f[r])) sum += ch.find("label")->f[r], n += 1;
  const double prior = sum / n;
  for (const char* col : {"C1", "C2"}) {
    for (std::size_t k = 0; k < chunks.size(); ++k) {
      const Chunk& ch = chunks[k];
      const Column& c = *ch.find(col);
      for (int64_t r = 0; r < ch.rows; ++r) {
        auto brute = [&](bool exclude_own_fold) {
          double s = 0, cnt = 0;
          if (c.is_missing(r)) return prior;
          for (const auto& other : chunks) {
            const Column& oc = *other.find(col);
            const Column& y = *other.find("label");
            for (int64_t q = 0; q < other.rows; ++q) {
              if (!train(other, q) || std::isnan(y.f[q]) || oc.is_missing(q) || oc.i[q] != c.i[r]) continue;
              if (exclude_own_fold && fold_of(other.global_row(q)) == fold_of(ch.global_row(r))) continue;
              s += y.f[q];
              cnt += 1;
            }
          }
          return (s + m * prior) / (cnt + m);
        };
        std::string out = std::string(col) + "_te";
        ASSERT_NEAR(fitted[k].find(out)->f[r], brute(train(ch, r)), 1e-5) << col << " chunk " << k << " row " << r;
        ASSERT_NEAR(fresh[k].find(out)->f[r], brute(false), 1e-5);
      }
    }
  }
}

TEST(TargetEncode, FitIsIdenticalAcrossThreadCountsAndChunkOrders) {
  auto chunks = make_chunks(22, 16, 300, 100);
  TempDir dir;
  std::string ref;
  for (int threads : {1, 2, 4}) {
    auto op = make_op("{op: target_encode, columns: [C1, C2], target: label}");
    auto order = identity_order(chunks.size());
    std::shuffle(order.begin(), order.end(), std::mt19937(threads));
    fit(*op, chunks, threads, order);
    std::string s = state_bytes(*op, dir / "t.state");
    if (ref.empty()) ref = s;
    EXPECT_EQ(s, ref) << threads << " threads";
  }
}

// ---------------------------------------------------------------------------------------------------
// State files

void expect_same_chunks(const std::vector<Chunk>& a, const std::vector<Chunk>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) {
    ASSERT_EQ(a[k].columns.size(), b[k].columns.size());
    for (std::size_t j = 0; j < a[k].columns.size(); ++j) {
      const Column &x = a[k].columns[j], &y = b[k].columns[j];
      EXPECT_EQ(x.name, y.name);
      EXPECT_EQ(x.kind, y.kind);
      EXPECT_EQ(x.cardinality, y.cardinality);
      EXPECT_EQ(x.i, y.i);
      ASSERT_EQ(x.f.size(), y.f.size());
      for (std::size_t r = 0; r < x.f.size(); ++r)
        EXPECT_TRUE(x.f[r] == y.f[r] || (std::isnan(x.f[r]) && std::isnan(y.f[r])));
    }
  }
}

TEST(OpState, SaveLoadRoundTripGivesIdenticalTransforms) {
  auto chunks = make_chunks(30, 8, 300, 100);
  TempDir dir;
  for (const char* recipe : {"{op: categorify, columns: [C1, L1], min_count: 2}",
                             "{op: categorify, columns: [C2], order: first, max_size: 10}",
                             "{op: bucketize, columns: [I1], num_buckets: 8}",
                             "{op: count_encode, columns: [C1]}", "{op: frequency_encode, columns: [C2]}",
                             "{op: target_encode, columns: [C1], target: label, folds: 3}"}) {
    SCOPED_TRACE(recipe);
    auto op = make_op(recipe);
    fit(*op, chunks, 2);
    state_bytes(*op, dir / "s.state");
    auto loaded = make_op(recipe);
    load(*loaded, dir / "s.state");
    expect_same_chunks(transform_all(*op, chunks, true), transform_all(*loaded, chunks, true));
    expect_same_chunks(transform_all(*op, chunks, false), transform_all(*loaded, chunks, false));
    EXPECT_EQ(loaded->summary(), op->summary());
  }
}

TEST(OpState, CorruptedOrForeignStateIsFormatError) {
  auto chunks = make_chunks(31, 4, 200, 50);
  TempDir dir;
  auto op = make_op("{op: categorify, columns: [C1]}");
  fit(*op, chunks, 1);
  std::string bytes = state_bytes(*op, dir / "ok.state");

  // A flipped byte fails the checksum.
  std::string bad = bytes;
  bad[bad.size() / 2] ^= 0x20;
  write_file_atomic(dir / "flip.state", bad);
  EXPECT_THROW(load(*make_op("{op: categorify, columns: [C1]}"), dir / "flip.state"), FormatError);

  // A state fitted on other columns or by another operator.
  EXPECT_THROW(load(*make_op("{op: categorify, columns: [C2]}"), dir / "ok.state"), FormatError);
  EXPECT_THROW(load(*make_op("{op: count_encode, columns: [C1]}"), dir / "ok.state"), FormatError);

  // Well-checksummed nonsense: an absurd vector length, then a duplicated dictionary entry. Each file is
  // a categorify state for C1 (10 distinct values) whose dictionary is written by `keys`.
  auto write_c1_state = [&](const char* file, const std::function<void(BinaryWriter&)>& keys) {
    BinaryWriter w(dir / file, "op-state", 1);
    w.write_string("categorify");
    w.write<uint32_t>(1);
    w.write<uint64_t>(1);
    w.write_string("C1");
    w.write<int64_t>(10);
    keys(w);
    w.close();
  };
  write_c1_state("len.state", [](BinaryWriter& w) { w.write<uint64_t>(uint64_t{1} << 60); });
  EXPECT_THROW(load(*make_op("{op: categorify, columns: [C1]}"), dir / "len.state"), FormatError);
  write_c1_state("dup.state", [](BinaryWriter& w) { w.write_vector(std::vector<int64_t>{4, 8, 4}); });
  // The same with Criteo-style values, whose dictionary takes the compact layout (KeyIndex::assign).
  write_c1_state("dup_hex.state", [](BinaryWriter& w) {
    w.write_vector(std::vector<int64_t>{categorical_key("0000abcd"), categorical_key("68fd1e64"),
                                        categorical_key("0000abcd")});
  });
  for (const char* file : {"dup.state", "dup_hex.state"}) {
    try {
      load(*make_op("{op: categorify, columns: [C1]}"), dir / file);
      FAIL() << "expected FormatError from " << file;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("appears twice"), std::string::npos) << e.what();
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Recipes

std::string config_error(const std::string& recipe) {
  try {
    auto op = make_op(recipe);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(OpRecipe, UnknownOperatorSuggestsNearest) {
  std::string m = config_error("{op: categorfy, columns: [C1]}");
  EXPECT_NE(m.find("unknown operator 'categorfy'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'categorify'"), std::string::npos) << m;
  EXPECT_NE(m.find("test.yaml"), std::string::npos) << m;
}

TEST(OpRecipe, UnknownKeySuggestsNearest) {
  std::string m = config_error("{op: categorify, columns: [C1], min_cout: 2}");
  EXPECT_NE(m.find("unknown key 'min_cout'"), std::string::npos) << m;
  EXPECT_NE(m.find("did you mean 'min_count'"), std::string::npos) << m;
}

TEST(OpRecipe, BoundsAndChoicesAreChecked) {
  EXPECT_NE(config_error("{op: categorify, columns: [C1], min_count: 0}").find(">= 1"), std::string::npos);
  EXPECT_NE(config_error("{op: categorify, columns: [C1], order: freq}").find("one of frequency, first"),
            std::string::npos);
  EXPECT_NE(config_error("{op: hash, columns: [C1], buckets: 1}").find(">= 2"), std::string::npos);
  EXPECT_NE(config_error("{op: hash, columns: [C1]}").find("missing required key 'buckets'"), std::string::npos);
  EXPECT_NE(config_error("{op: clip, columns: [I1], min: 3, max: 1}").find("must not exceed"), std::string::npos);
  EXPECT_NE(config_error("{op: bucketize, columns: [I1], boundaries: [1, 3], num_buckets: 4}").find("exactly one"),
            std::string::npos);
  EXPECT_NE(config_error("{op: bucketize, columns: [I1], boundaries: [3, 1]}").find("strictly increasing"),
            std::string::npos);
  EXPECT_NE(config_error("{op: cross, columns: [C1], buckets: 10}").find("at least two"), std::string::npos);
  EXPECT_NE(config_error("{op: target_encode, columns: [C1], target: label, folds: 1}").find(">= 2"),
            std::string::npos);
  EXPECT_NE(config_error("{op: categorify, columns: [C1, C1]}").find("listed twice"), std::string::npos);
}

TEST(OpRecipe, ColumnRangesExpand) {
  auto op = make_op("{op: hash, columns: [C1..C3, L1], buckets: 10}");
  EXPECT_EQ(op->inputs(), (std::vector<std::string>{"C1", "C2", "C3", "L1"}));
}

TEST(OpRecipe, PlanRejectsWrongKindsAndMissingColumns) {
  auto chunks = make_chunks(40, 2, 10, 10);
  auto expect_plan_error = [&](const std::string& recipe, const std::string& part) {
    PlanState ps = plan_of(chunks);
    try {
      make_op(recipe)->plan(ps);
      ADD_FAILURE() << recipe << ": expected ConfigError";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
  };
  expect_plan_error("{op: log1p, columns: [C1]}", "column 'C1' is integer (categorical)");
  expect_plan_error("{op: fill_missing, columns: [L1]}", "column 'L1' is list (multi)");
  expect_plan_error("{op: missing_indicator, columns: [L1]}", "one value per row");
  expect_plan_error("{op: count_encode, columns: [L1]}", "one value per row");
  expect_plan_error("{op: target_encode, columns: [C1], target: C2}", "float target");
  expect_plan_error("{op: cross, columns: [C1, I1], buckets: 10}", "'I1' is float");
  expect_plan_error("{op: hash, columns: [C11], buckets: 10}", "no column 'C11' (did you mean 'C1'?)");
  expect_plan_error("{op: cross, columns: [C1, C2], buckets: 10, out: I1}", "'I1' already exists");
}

TEST(OpRecipe, SelectAndDropShapeThePlanAndChunks) {
  auto chunks = make_chunks(41, 3, 20, 10);
  auto sel = make_op("{op: select, columns: [label, C2, I1]}");
  PlanState ps = plan_of(chunks);
  sel->plan(ps);
  ASSERT_EQ(ps.columns.size(), 3u);
  EXPECT_EQ(ps.columns[0].name, "label");
  EXPECT_EQ(ps.columns[1].name, "C2");
  auto out = transform_all(*sel, chunks);
  EXPECT_EQ(out[1].columns[1].name, "C2");
  EXPECT_EQ(out[1].columns[1].i, chunks[1].find("C2")->i);

  auto drop = make_op("{op: drop, columns: [C1, L1]}");
  PlanState pd = plan_of(chunks);
  drop->plan(pd);
  ASSERT_EQ(pd.columns.size(), 3u);
  auto dropped = transform_all(*drop, chunks);
  EXPECT_EQ(dropped[0].columns.size(), 3u);
  EXPECT_EQ(dropped[0].find("C1"), nullptr);
}

TEST(OpRecipe, HelpListsEveryOperatorAndItsParameters) {
  auto names = op_names();
  for (const char* n : {"fill_missing", "clip", "log1p", "missing_indicator", "bucketize", "hash", "categorify", "count_encode",
                        "frequency_encode", "target_encode", "cross", "select", "drop"})
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  std::string h = op_help("categorify");
  EXPECT_NE(h.find("min_count (integer, default 1, >= 1)"), std::string::npos) << h;
  EXPECT_NE(h.find("order"), std::string::npos);
  EXPECT_THROW(op_help("nope"), ConfigError);
}

// ---------------------------------------------------------------------------------------------------
// The hash tables' batched paths against the plain ones: prefetched lookups (small and large tables,
// absent keys, the INT64_MIN key) and merging one count table into another.

TEST(FlatMap, FindBatchMatchesFind) {
  // At every SIMD level (the keys are hashed by the level's kernel), from batches within one block to
  // many blocks, small tables (no prefetch) and large ones.
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (level > detected_simd_level()) continue;
    set_simd_level(level);
    SCOPED_TRACE(std::string(simd_level_name(level)));
    std::mt19937_64 rng(5);
    for (std::size_t n : {0, 3, 100, 255, 256, 257, 5000, 200000}) {
      prep_ops::KeyIndex idx;
      std::vector<int64_t> keys;
      for (std::size_t j = 0; j < n; ++j)
        keys.push_back(j % 3 == 0 ? static_cast<int64_t>(j) : static_cast<int64_t>(rng()));
      if (n > 50) keys[7] = prep_ops::kEmptyKey;
      for (std::size_t j = 0; j < keys.size(); ++j) idx.get_or_add(keys[j], static_cast<int64_t>(j) + 2);
      std::vector<int64_t> q = keys;
      for (std::size_t j = 0; j < n + 37; ++j)
        q.push_back(j % 2 ? static_cast<int64_t>(rng()) : static_cast<int64_t>(j));
      std::shuffle(q.begin(), q.end(), rng);
      std::vector<int64_t> out(q.size());
      idx.find_batch(q.data(), q.size(), out.data(), 1);
      for (std::size_t j = 0; j < q.size(); ++j) ASSERT_EQ(out[j], idx.find(q[j], 1)) << n << " " << j;
      idx.find_batch(q.data(), q.size(), q.data(), 1);  // in place
      EXPECT_EQ(q, out);
    }
  }
  set_simd_level(detected_simd_level());
}

// Slots store key ^ INT64_MIN (0 = empty), so the keys next to that encoding's edges must behave like any.
TEST(FlatMap, EdgeKeysAreStoredFoundAndCounted) {
  const std::vector<int64_t> edge = {
      0, -1, 1, prep_ops::kEmptyKey, std::numeric_limits<int64_t>::max(), prep_ops::kEmptyKey + 1};
  prep_ops::KeyIndex idx;
  for (std::size_t j = 0; j < edge.size(); ++j) EXPECT_TRUE(idx.get_or_add(edge[j], 10 + int64_t(j)).second);
  for (std::size_t j = 0; j < 5000; ++j) idx.get_or_add(int64_t(j) * 7919 + 3, 1);  // forces rehashes
  for (std::size_t j = 0; j < edge.size(); ++j) EXPECT_EQ(idx.find(edge[j], -5), 10 + int64_t(j)) << edge[j];
  EXPECT_EQ(idx.find(2, -5), -5);
  std::vector<std::pair<int64_t, int64_t>> seen;
  idx.for_each([&](int64_t k, int64_t v) {
    if (v >= 10) seen.emplace_back(k, v);
  });
  std::sort(seen.begin(), seen.end(), [](auto& x, auto& y) { return x.second < y.second; });
  ASSERT_EQ(seen.size(), edge.size());
  for (std::size_t j = 0; j < edge.size(); ++j) EXPECT_EQ(seen[j].first, edge[j]);

  prep_ops::CountTable t;
  for (int rep = 0; rep < 3; ++rep)
    for (std::size_t j = 0; j < edge.size(); ++j) {
      if (t.full()) t.grow();
      t.add(edge[j], 100 - rep);
    }
  for (int64_t k = 0; k < 3000; ++k) {  // grows the table several times
    if (t.full()) t.grow();
    t.add(k * 31 + 1000000, k);
  }
  std::vector<prep_ops::KeyCount> sorted = t.release_sorted(0);
  ASSERT_EQ(sorted.size(), edge.size() + 3000);
  EXPECT_TRUE(std::is_sorted(sorted.begin(), sorted.end(), [](auto& x, auto& y) { return x.key < y.key; }));
  for (int64_t k : edge) {
    auto it = std::find_if(sorted.begin(), sorted.end(), [&](auto& kc) { return kc.key == k; });
    ASSERT_NE(it, sorted.end()) << k;
    EXPECT_EQ(it->count, 3) << k;
    EXPECT_EQ(it->first, 98) << k;
  }
  EXPECT_EQ(t.size(), 0u);
}

TEST(FlatMap, CountTableMergeMatchesOneTable) {
  // With track_first the first rows are kept; without, counts are the same and every first reads 0.
  for (bool track : {true, false}) {
    std::mt19937_64 rng(9);
    prep_ops::CountTable a(prep_ops::CountTable::kMinCapacity, track), b(prep_ops::CountTable::kMinCapacity, track),
        all;
    auto add = [](prep_ops::CountTable& t, int64_t key, int64_t row) {
      if (t.full()) t.grow();
      t.add(key, row);
    };
    for (int64_t r = 0; r < 60000; ++r) {
      int64_t key = r % 11 == 0 ? prep_ops::kEmptyKey : static_cast<int64_t>(rng() % (r % 2 ? 5000 : 40000));
      add(r % 3 ? a : b, key, r + 5);
      add(all, key, r + 5);
    }
    auto sorted = [&](prep_ops::CountTable& t, bool keep_first) {
      std::vector<std::tuple<int64_t, int64_t, int64_t>> v;
      t.for_each([&](const prep_ops::KeyCount& kc) { v.emplace_back(kc.key, kc.count, keep_first ? kc.first : 0); });
      std::sort(v.begin(), v.end());
      return v;
    };
    a.merge_from(b);
    EXPECT_EQ(a.size(), all.size());
    EXPECT_EQ(sorted(a, true), sorted(all, track)) << track;
  }
}

// Tables that grow through a shared Pool (slot arrays of other tables, used and re-zeroed) count exactly
// what tables with fresh arrays count, and the pool does serve their growth.
TEST(FlatMap, CountTablesGrowingThroughAPoolMatchFreshTables) {
  for (bool track : {true, false}) {
    prep_ops::CountTable::Pool pool;
    std::vector<prep_ops::CountTable> pooled, fresh;
    for (int c = 0; c < 4; ++c) {
      pooled.emplace_back(prep_ops::CountTable::kMinCapacity, track);
      pooled.back().set_pool(&pool);
      fresh.emplace_back(prep_ops::CountTable::kMinCapacity, track);
    }
    auto add = [](prep_ops::CountTable& t, int64_t key, int64_t row) {
      if (t.full()) t.grow();
      t.add(key, row);
    };
    std::mt19937_64 rng(21);
    // Column c sees up to 10000 << c distinct keys, the biggest column first, so that each column grows
    // into arrays a bigger one has left (columns growing in lockstep would find none).
    for (int c = 3; c >= 0; --c)
      for (int64_t r = 0; r < 100000; ++r) {
        const int64_t key = r % 19 == 0 ? prep_ops::kEmptyKey : static_cast<int64_t>(rng() % (uint64_t{10000} << c));
        add(pooled[c], key, r);
        add(fresh[c], key, r);
      }
    auto sorted = [](const prep_ops::CountTable& t) {
      std::vector<std::tuple<int64_t, int64_t, int64_t>> v;
      t.for_each([&](const prep_ops::KeyCount& kc) { v.emplace_back(kc.key, kc.count, kc.first); });
      std::sort(v.begin(), v.end());
      return v;
    };
    for (int c = 0; c < 4; ++c) {
      EXPECT_EQ(pooled[c].capacity(), fresh[c].capacity());
      EXPECT_EQ(sorted(pooled[c]), sorted(fresh[c])) << "column " << c << " track " << track;
    }
    EXPECT_GT(pool.reused(), 0u);
  }
}

// for_each_union against the plain reference (every input counted into one table): one to four tables,
// with and without first rows, the INT64_MIN key in some tables only, keys in one table only, in all, and
// empty tables. Keys the first tables take out of the later ones are reported once, with all counts.
TEST(FlatMap, UnionOfTablesMatchesOneTable) {
  for (bool track : {true, false}) {
    for (std::size_t T = 1; T <= 4; ++T) {
      std::mt19937_64 rng(100 + T);
      std::vector<prep_ops::CountTable> parts;
      for (std::size_t t = 0; t < T; ++t) parts.emplace_back(prep_ops::CountTable::kMinCapacity, track);
      prep_ops::CountTable all(prep_ops::CountTable::kMinCapacity, track);
      auto add = [](prep_ops::CountTable& t, int64_t key, int64_t row) {
        if (t.full()) t.grow();
        t.add(key, row);
      };
      const int64_t rows = T == 3 ? 0 : 50000;  // T = 3: all tables empty
      for (int64_t r = 0; r < rows; ++r) {
        int64_t key = static_cast<int64_t>(rng() % (r % 2 ? 3000 : 60000));
        if (r % 13 == 0) key = prep_ops::kEmptyKey;
        if (r % 17 == 0) key = -1 - r;  // seen once
        // The last table stays empty for T = 4; the empty key goes to the first table only.
        std::size_t t = key == prep_ops::kEmptyKey ? 0 : rng() % (T == 4 ? T - 1 : T);
        add(parts[t], key, 1000 - r % 977);
        add(all, key, 1000 - r % 977);
      }
      std::vector<prep_ops::CountTable*> view;
      for (auto& p : parts) view.push_back(&p);
      std::vector<std::tuple<int64_t, int64_t, int64_t>> got, want;
      prep_ops::for_each_union(view, [&](const prep_ops::KeyCount& kc) { got.emplace_back(kc.key, kc.count, kc.first); });
      all.for_each([&](const prep_ops::KeyCount& kc) { want.emplace_back(kc.key, kc.count, kc.first); });
      std::sort(got.begin(), got.end());
      std::sort(want.begin(), want.end());
      EXPECT_EQ(got.size(), want.size()) << "T " << T << " track " << track;
      EXPECT_EQ(got, want) << "T " << T << " track " << track;
    }
  }
}

// 8-character lowercase hex values (Criteo's ids) pack into 32 bits exactly: the packed value is the
// number the digits spell, unpacking gives the key back, and any other byte at any position does not pack.
TEST(FlatMap, HexKeysPackExactly) {
  std::mt19937_64 rng(31);
  for (int k = 0; k < 20000; ++k) {
    const uint32_t v = k < 3 ? std::array<uint32_t, 3>{0u, 0xFFFFFFFFu, 0x0000000Au}[k] : static_cast<uint32_t>(rng());
    char text[9];
    std::snprintf(text, sizeof text, "%08x", v);
    const int64_t key = categorical_key(std::string_view(text, 8));
    uint32_t p = 0;
    ASSERT_TRUE(prep_ops::pack_hex_key(key, p)) << text;
    EXPECT_EQ(p, v) << text;
    EXPECT_EQ(prep_ops::unpack_hex_key(p), key) << text;
  }
  for (int pos = 0; pos < 8; ++pos)
    for (int b = 0; b < 256; ++b) {
      std::string s = "0123abcd";
      s[pos] = static_cast<char>(b);
      uint32_t p = 0;
      const bool hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
      EXPECT_EQ(prep_ops::pack_hex_key(categorical_key(s), p), hex) << "byte " << b << " at " << pos;
    }
  uint32_t p = 0;
  EXPECT_FALSE(prep_ops::pack_hex_key(prep_ops::kEmptyKey, p));
  EXPECT_FALSE(prep_ops::pack_hex_key(categorical_key("0123ABCD"), p));  // upper case is another value
}

namespace {
int64_t hex_key(uint64_t v) { return prep_ops::unpack_hex_key(static_cast<uint32_t>(v)); }
using Counts = std::map<int64_t, int64_t>;
Counts counts_of(const prep_ops::CountTable& t) {
  Counts c;
  t.for_each([&](const prep_ops::KeyCount& kc) {
    EXPECT_EQ(c.count(kc.key), 0u) << "key visited twice";
    c[kc.key] = kc.count;
  });
  return c;
}
}  // namespace

// Tables of packing keys stay compact and count exactly what the plain reference counts; the first key
// that does not pack (or INT64_MIN, kept aside) and a count past 2^32 - 2 turn a table wide with every
// count kept; merges and unions across layouts agree; a released table is compact again.
TEST(FlatMap, CompactCountTablesCountExactlyAndWidenWhenNeeded) {
  std::mt19937_64 rng(41);
  auto add = [](prep_ops::CountTable& t, int64_t key, Counts& ref) {
    if (t.full()) t.grow();
    t.add(key, 0);
    ++ref[key];
  };
  // Hex keys only (with INT64_MIN now and then): compact throughout, through several growths.
  prep_ops::CountTable a(prep_ops::CountTable::kMinCapacity, false);
  Counts ra;
  for (int r = 0; r < 50000; ++r) add(a, r % 101 == 0 ? prep_ops::kEmptyKey : hex_key(rng() % 20000), ra);
  EXPECT_TRUE(a.compact());
  EXPECT_EQ(counts_of(a), ra);
  // add_packed is add() for keys the caller packed.
  prep_ops::CountTable ap(prep_ops::CountTable::kMinCapacity, false);
  Counts rap;
  for (int r = 0; r < 50000; ++r) {
    const int64_t key = hex_key(rng() % 20000);
    uint32_t p = 0;
    ASSERT_TRUE(prep_ops::pack_hex_key(key, p));
    if (ap.full()) ap.grow();
    ap.add_packed(p, mix64(static_cast<uint64_t>(key)));
    ++rap[key];
  }
  EXPECT_TRUE(ap.compact());
  EXPECT_EQ(counts_of(ap), rap);
  // A key that does not pack, midway: wide from then on, nothing lost.
  prep_ops::CountTable b(prep_ops::CountTable::kMinCapacity, false);
  Counts rb;
  for (int r = 0; r < 50000; ++r) add(b, r == 30000 ? int64_t{12345} : hex_key(rng() % 30000), rb);
  EXPECT_FALSE(b.compact());
  EXPECT_EQ(counts_of(b), rb);
  int64_t count = 0, first = 0;
  EXPECT_TRUE(b.find(12345, mix64(12345), count, first));
  EXPECT_EQ(count, 1);
  // Merges both ways across layouts.
  prep_ops::CountTable c(prep_ops::CountTable::kMinCapacity, false);
  Counts rc;
  for (int r = 0; r < 20000; ++r) add(c, hex_key(rng() % 25000), rc);
  auto sum = [](Counts x, const Counts& y) {
    for (auto& [k, n] : y) x[k] += n;
    return x;
  };
  const Counts rbc = sum(rb, rc);
  // A copy of `into` merged with `from`: the counts of both, in the layout expected.
  auto expect_merge = [&](const prep_ops::CountTable& into, const prep_ops::CountTable& from, const Counts& want,
                          bool compact_after, const char* what) {
    prep_ops::CountTable m = into;
    m.merge_from(from);
    EXPECT_EQ(m.compact(), compact_after) << what;
    EXPECT_EQ(counts_of(m), want) << what;
  };
  expect_merge(c, b, rbc, false, "compact <- wide: turns wide");
  expect_merge(b, c, rbc, false, "wide <- compact");
  expect_merge(a, c, sum(ra, rc), true, "compact <- compact: stays compact");
  // The union of a compact and a wide table (take() marks entries in both layouts).
  {
    prep_ops::CountTable u1 = c, u2 = b;
    std::vector<prep_ops::CountTable*> view = {&u1, &u2};
    Counts got;
    prep_ops::for_each_union(view, [&](const prep_ops::KeyCount& kc) { got[kc.key] += kc.count; });
    EXPECT_EQ(got, rbc);
  }
  // Counts past the compact limit (2^32 - 2): exact, in the wide layout.
  prep_ops::CountTable d(prep_ops::CountTable::kMinCapacity, false);
  const int64_t big = int64_t{0xFFFFFFF0};
  d.add_n(hex_key(7), big, 0);
  EXPECT_TRUE(d.compact());
  for (int k = 0; k < 100; ++k) d.add(hex_key(7), 0);
  d.add(hex_key(8), 0);
  EXPECT_FALSE(d.compact());
  EXPECT_EQ(counts_of(d), (Counts{{hex_key(7), big + 100}, {hex_key(8), 1}}));
  // Released tables sort by key and start over compact.
  std::vector<prep_ops::KeyCount> sorted = b.release_sorted(0);
  EXPECT_TRUE(b.compact());
  ASSERT_EQ(sorted.size(), rb.size());
  std::size_t j = 0;
  for (auto& [k, n] : rb) {
    EXPECT_EQ(sorted[j].key, k);
    EXPECT_EQ(sorted[j].count, n);
    ++j;
  }
}

// Small compact tables count through lanes (CountTable::add_packed_lane, add_lanes): equal keys in a
// row, INT64_MIN among them, and batches of any length give the counts of plain add(); the lanes are
// zero again after add_lanes; a count passing the compact limit there turns the table wide, exactly.
// Through KeyCounter: columns of 3, 300 and 1,200 values (lanes throughout) and of 5,000 (a table that
// outgrows the lanes inside a batch) match the reference at every SIMD level, with 1 and 2 threads.
TEST(FlatMap, SmallTablesCountThroughLanesExactly) {
  std::mt19937_64 rng(5);
  std::vector<uint32_t> lanes(4 * prep_ops::CountTable::kLaneSlots, 0);
  prep_ops::CountTable t(prep_ops::CountTable::kMinCapacity, false);
  ASSERT_TRUE(t.counts_through_lanes());
  Counts ref;
  for (std::size_t batch : {std::size_t{1}, std::size_t{3}, std::size_t{4}, std::size_t{5}, std::size_t{4097}}) {
    for (std::size_t j = 0; j < batch; ++j) {
      // Runs of one key (the store-to-load case the lanes are for), then a skewed draw of 60 values.
      const int64_t key = j % 7 < 4 ? hex_key(9) : hex_key(rng() % (1 + rng() % 60));
      uint32_t p = 0;
      ASSERT_TRUE(prep_ops::pack_hex_key(key, p));
      t.add_packed_lane(p, mix64(static_cast<uint64_t>(key)), lanes.data() + (j & 3) * t.capacity());
      ++ref[key];
    }
    t.add_lanes(lanes.data());
    EXPECT_EQ(counts_of(t), ref) << batch;
    EXPECT_TRUE(std::all_of(lanes.begin(), lanes.end(), [](uint32_t v) { return v == 0; }));
    EXPECT_TRUE(t.compact());
  }
  // Past the compact limit (2^32 - 2) inside add_lanes: wide, nothing lost.
  prep_ops::CountTable d(prep_ops::CountTable::kMinCapacity, false);
  const int64_t big = int64_t{0xFFFFFFF0};
  d.add_n(hex_key(7), big, 0);
  uint32_t p7 = 0, p8 = 0;
  ASSERT_TRUE(prep_ops::pack_hex_key(hex_key(7), p7) && prep_ops::pack_hex_key(hex_key(8), p8));
  for (std::size_t j = 0; j < 100; ++j)
    d.add_packed_lane(p7, mix64(static_cast<uint64_t>(hex_key(7))), lanes.data() + (j & 3) * d.capacity());
  d.add_packed_lane(p8, mix64(static_cast<uint64_t>(hex_key(8))), lanes.data());
  d.add_lanes(lanes.data());
  EXPECT_FALSE(d.compact());
  EXPECT_EQ(counts_of(d), (Counts{{hex_key(7), big + 100}, {hex_key(8), 1}}));
  EXPECT_TRUE(std::all_of(lanes.begin(), lanes.end(), [](uint32_t v) { return v == 0; }));

  const std::vector<uint64_t> sizes = {3, 300, 1200, 5000};
  std::vector<std::vector<std::vector<int64_t>>> batches(sizes.size());
  std::vector<Counts> refs(sizes.size());
  for (std::size_t c = 0; c < sizes.size(); ++c)
    for (int b = 0; b < 12; ++b) {
      std::vector<int64_t> keys;
      const std::size_t rows = b == 0 ? 5000 : 1 + rng() % 3000;
      for (std::size_t r = 0; r < rows; ++r) {
        const uint64_t v = rng() % sizes[c];
        keys.push_back(r % 41 == 0 ? prep_ops::kEmptyKey : hex_key(v * v / sizes[c]));  // skewed to small v
        ++refs[c][keys.back()];
      }
      batches[c].push_back(std::move(keys));
    }
  TempDir dir;
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512})
    for (int threads : {1, 2}) {
      if (level > detected_simd_level()) continue;
      set_simd_level(level);
      prep_ops::KeyCounter kc("test");
      kc.begin(sizes.size(), threads, int64_t{1} << 30, dir.path().string(), false);
      for (std::size_t c = 0; c < sizes.size(); ++c)
        for (std::size_t b = 0; b < batches[c].size(); ++b)
          kc.add_many(c, static_cast<int>(b % static_cast<std::size_t>(threads)), batches[c][b].data(), nullptr,
                      batches[c][b].size());
      std::vector<Counts> got(sizes.size());
      std::mutex mu;
      kc.finish(threads, [&](std::size_t col, const prep_ops::KeyCount& kc_) {
        std::lock_guard<std::mutex> lk(mu);
        got[col][kc_.key] += kc_.count;
      });
      for (std::size_t c = 0; c < sizes.size(); ++c)
        EXPECT_EQ(got[c], refs[c]) << sizes[c] << " values, " << threads << " threads, " << simd_level_name(level);
    }
  set_simd_level(detected_simd_level());
}

// The compact dictionary layout (KeyIndex::assign of 8-hex-digit keys) against the wide one: the same
// answers from find and find_batch (every SIMD level) for present keys, absent hex keys, keys that do
// not pack (0, the parse's missing value, other integers) and INT64_MIN; the same (key, value) pairs
// from for_each, values at both ends of the compact range included; the wide layout when a key does
// not pack or a value does not fit; repeated keys refused in both layouts.
// probe_packed, the compact layouts' probe: it stops at the slot holding the packed key or at the first
// empty one, wrapping around the table; kUnpacked (a key that does not pack, the missing value's 0
// among them) holds in no slot, not even in one whose key packs to 0 ("00000000"), whose low half
// equals kUnpacked's.
TEST(FlatMap, ProbePackedStopsAtTheKeyOrAnEmptySlot) {
  // Slots 6, 7, 0 taken (packed keys 0, 5, 9; values in the high half), the rest empty.
  std::vector<uint64_t> words(8, 0);
  words[6] = uint64_t{3} << 32 | 0;
  words[7] = uint64_t{4} << 32 | 5;
  words[0] = uint64_t{7} << 32 | 9;
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, 0, 6), 6u);
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, 5, 6), 7u);
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, 9, 6), 0u) << "wraps around";
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, 9, 14), 0u) << "h is masked";
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, 11, 7), 1u) << "absent: the first empty slot";
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, prep_ops::kUnpacked, 6), 1u) << "no match on key 0";
  EXPECT_EQ(prep_ops::probe_packed(words.data(), 7, prep_ops::kUnpacked, 3), 3u);
  // Through the index: a stored "00000000" and keys that do not pack, from every start slot.
  std::vector<int64_t> keys = {hex_key(0)};
  for (uint64_t v = 1; keys.size() < 5; ++v) keys.push_back(hex_key(v * 977));
  prep_ops::KeyIndex idx;
  ASSERT_TRUE(idx.assign(keys.data(), keys.size(), 2));
  ASSERT_TRUE(idx.is_compact());
  std::vector<int64_t> q = {0, -1, 12345, categorical_key("abc"), hex_key(0)};
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (level > detected_simd_level()) continue;
    set_simd_level(level);
    std::vector<int64_t> got(q.size());
    idx.find_batch(q.data(), q.size(), got.data(), -7);
    EXPECT_EQ(got, (std::vector<int64_t>{-7, -7, -7, -7, 2})) << simd_level_name(level);
  }
  set_simd_level(detected_simd_level());
}

TEST(FlatMap, CompactKeyIndexAnswersAsTheWideOne) {
  std::mt19937_64 rng(21);
  // With INT64_MIN among the keys (kept in a side slot) and without (then AVX-512 looks up through
  // find_compact's gathers).
  for (bool with_min : {true, false}) {
    for (std::size_t n : {0, 1, 5, 700, 30000, 32767})
      for (int64_t first : {int64_t{0}, (int64_t{1} << 32) - 1 - static_cast<int64_t>(n)}) {
        std::vector<int64_t> keys;
        std::set<int64_t> distinct;
        while (keys.size() < n) {
          const int64_t k = keys.size() == 2 && n > 3 && with_min ? prep_ops::kEmptyKey : hex_key(rng());
          if (distinct.insert(k).second) keys.push_back(k);
        }
        prep_ops::KeyIndex wide, compact;
        std::map<int64_t, int64_t> want;
        for (std::size_t j = 0; j < n; ++j) {
          ASSERT_TRUE(wide.get_or_add(keys[j], first + static_cast<int64_t>(j)).second);
          want[keys[j]] = first + static_cast<int64_t>(j);
        }
        ASSERT_TRUE(compact.assign(keys.data(), n, first));
        EXPECT_TRUE(compact.is_compact());
        // Load <= 1/3, or <= 1/2 for a table past kDenseIndexBytes (32767 keys: 65536 slots, just below 1/2).
        const std::size_t slots = compact.bytes() / sizeof(uint64_t);
        const bool dense = (3 * n + 1) * sizeof(uint64_t) > prep_ops::KeyIndex::kDenseIndexBytes;
        EXPECT_GE(slots, (dense ? 2 : 3) * n + 1) << n;
        if (n >= 30000) {
          EXPECT_LE(compact.bytes(), prep_ops::KeyIndex::kDenseIndexBytes) << n;
        }
        EXPECT_FALSE(wide.is_compact());
        EXPECT_EQ(compact.size(), n);
        std::map<int64_t, int64_t> seen;
        compact.for_each([&](int64_t k, int64_t v) { EXPECT_TRUE(seen.emplace(k, v).second); });
        EXPECT_EQ(seen, want);

        std::vector<int64_t> q = keys;
        for (int j = 0; j < 500; ++j) q.push_back(hex_key(rng()));  // mostly absent
        for (int64_t k : {int64_t{0}, int64_t{-1}, int64_t{12345}, std::numeric_limits<int64_t>::max(),
                          categorical_key("abc"), prep_ops::kEmptyKey})
          q.push_back(k);
        std::shuffle(q.begin(), q.end(), rng);
        for (int64_t k : q) ASSERT_EQ(compact.find(k, -7), wide.find(k, -7)) << k;
        for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
          if (level > detected_simd_level()) continue;
          set_simd_level(level);
          std::vector<int64_t> got(q.size()), expect(q.size());
          compact.find_batch(q.data(), q.size(), got.data(), -7);
          wide.find_batch(q.data(), q.size(), expect.data(), -7);
          EXPECT_EQ(got, expect) << n << " keys from " << first << ", " << simd_level_name(level);
        }
        set_simd_level(detected_simd_level());
      }
  }
  // Wide instead: a key that does not pack, a negative value, a value past 2^32 - 2.
  const std::vector<int64_t> mixed = {hex_key(1), categorical_key("abc"), hex_key(2)};
  const std::vector<int64_t> hex = {hex_key(1), hex_key(2), hex_key(3)};
  for (const auto& [keys, first] :
       std::vector<std::pair<std::vector<int64_t>, int64_t>>{{mixed, 2}, {hex, -1}, {hex, (int64_t{1} << 32) - 3}}) {
    prep_ops::KeyIndex idx;
    ASSERT_TRUE(idx.assign(keys.data(), keys.size(), first));
    EXPECT_FALSE(idx.is_compact()) << first;
    for (std::size_t j = 0; j < keys.size(); ++j) EXPECT_EQ(idx.find(keys[j], 0), first + static_cast<int64_t>(j));
  }
  // A repeated key, in either layout (and INT64_MIN twice).
  for (const std::vector<int64_t>& keys :
       {std::vector<int64_t>{hex_key(7), hex_key(8), hex_key(7)},
        std::vector<int64_t>{hex_key(7), categorical_key("abc"), hex_key(7)},
        std::vector<int64_t>{prep_ops::kEmptyKey, hex_key(1), prep_ops::kEmptyKey}}) {
    prep_ops::KeyIndex idx;
    EXPECT_FALSE(idx.assign(keys.data(), keys.size(), 2));
  }
}

// Indexes of up to kTinyKeys keys answer find_batch by comparing with their entries: in both layouts,
// with INT64_MIN among the keys or not, at every level the same as find(); one key more and they probe.
// A key added after assign() turns the entry list off (it would miss that key).
TEST(FlatMap, TinyKeyIndexesAnswerAsTheProbe) {
  std::mt19937_64 rng(41);
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{5}, prep_ops::kTinyKeys, prep_ops::kTinyKeys + 1})
    for (bool hex : {true, false})
      for (bool with_min : {false, true}) {
        std::vector<int64_t> keys;
        std::set<int64_t> distinct;
        while (keys.size() < n) {
          int64_t k = with_min && keys.size() == n / 2 ? prep_ops::kEmptyKey : hex_key(rng());
          if (!hex && keys.size() == 0) k = categorical_key("not-hex");
          if (distinct.insert(k).second) keys.push_back(k);
        }
        prep_ops::KeyIndex idx;
        ASSERT_TRUE(idx.assign(keys.data(), n, 2));
        EXPECT_EQ(idx.is_tiny(), n <= prep_ops::kTinyKeys) << n;
        EXPECT_EQ(idx.is_compact(), hex || n == 0) << n;
        std::vector<int64_t> q = keys;
        for (int j = 0; j < 300; ++j) q.push_back(j % 3 == 0 ? hex_key(rng()) : keys.empty() ? 0 : keys[rng() % n] ^ 1);
        for (int64_t k : {int64_t{0}, int64_t{-1}, std::numeric_limits<int64_t>::max(), prep_ops::kEmptyKey}) q.push_back(k);
        std::shuffle(q.begin(), q.end(), rng);
        for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
          if (level > detected_simd_level()) continue;
          set_simd_level(level);
          std::vector<int64_t> got(q.size());
          idx.find_batch(q.data(), q.size(), got.data(), 1);
          for (std::size_t j = 0; j < q.size(); ++j)
            ASSERT_EQ(got[j], idx.find(q[j], 1)) << n << " keys, " << simd_level_name(level) << ", query " << j;
        }
        set_simd_level(detected_simd_level());
        if (!hex && n > 0) {  // wide: keys can still be added
          const int64_t extra = categorical_key("added later");
          idx.get_or_add(extra, 99);
          EXPECT_FALSE(idx.is_tiny());
          int64_t got = 0;
          idx.find_batch(&extra, 1, &got, 1);
          EXPECT_EQ(got, 99);
        }
      }
}

// KeyCounter over hex keys (compact tables) and mixed keys (tables turning wide inside add_many), with
// budgets that force spills or not and 1-3 threads: finish() reports exactly the reference counts.
TEST(FlatMap, KeyCounterWithCompactTablesMatchesReference) {
  TempDir dir;
  std::mt19937_64 rng(77);
  std::vector<std::vector<int64_t>> batches;
  Counts hex_ref, mixed_ref;
  std::vector<std::vector<int64_t>> mixed;
  for (int b = 0; b < 40; ++b) {
    std::vector<int64_t> keys, mix;
    for (int r = 0; r < 3000; ++r) {
      keys.push_back(r % 53 == 0 ? prep_ops::kEmptyKey : hex_key(rng() % 40000));
      mix.push_back(b >= 20 && r % 97 == 0 ? static_cast<int64_t>(rng()) : keys.back());
      ++hex_ref[keys.back()];
      ++mixed_ref[mix.back()];
    }
    batches.push_back(std::move(keys));
    mixed.push_back(std::move(mix));
  }
  // Every SIMD level hashes and packs the batches with its own kernels (key_kernels.h).
  for (SimdLevel level : {SimdLevel::kScalar, SimdLevel::kAvx2, SimdLevel::kAvx512})
    for (int threads : {1, 2, 3})
      for (int64_t budget : {int64_t{64} << 10, int64_t{1} << 30}) {
        if (level > detected_simd_level()) continue;
        set_simd_level(level);
        prep_ops::KeyCounter kc("test");
        kc.begin(2, threads, budget, dir.path().string(), false);
        for (std::size_t b = 0; b < batches.size(); ++b) {
          const int t = static_cast<int>(b % static_cast<std::size_t>(threads));
          kc.add_many(0, t, batches[b].data(), nullptr, batches[b].size());
          kc.add_many(1, t, mixed[b].data(), nullptr, mixed[b].size());
        }
        if (budget < (int64_t{1} << 20)) {
          EXPECT_GT(kc.spilled_runs(), 0);
        }
        std::vector<Counts> got(2);
        std::mutex mu;
        kc.finish(threads, [&](std::size_t col, const prep_ops::KeyCount& c) {
          std::lock_guard<std::mutex> lk(mu);
          EXPECT_EQ(got[col].count(c.key), 0u);
          got[col][c.key] = c.count;
        });
        EXPECT_EQ(got[0], hex_ref) << threads << " threads, budget " << budget << ", " << simd_level_name(level);
        EXPECT_EQ(got[1], mixed_ref) << threads << " threads, budget " << budget << ", " << simd_level_name(level);
      }
  set_simd_level(detected_simd_level());
}

// TinyCounts counts exactly while it has at most kMaxEntries keys (INT64_MIN, 0, -1, INT64_MAX and keys
// that share their top bytes among them), in batches of every size around its blocks; a key past that
// in the middle of a block leaves what it counted, `rest` and the keys after the return value together
// equal to the input; nothing more is counted once full.
TEST(FlatMap, TinyCountsCountExactlyUntilFull) {
  std::mt19937_64 rng(43);
  std::vector<int64_t> pool = {prep_ops::kEmptyKey, 0, -1, std::numeric_limits<int64_t>::max(), 1, 2, 3};
  while (pool.size() < prep_ops::TinyCounts::kMaxEntries) pool.push_back(static_cast<int64_t>(rng() % 1000) << 40 | 7);
  std::sort(pool.begin(), pool.end());
  pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
  ASSERT_LE(pool.size(), prep_ops::TinyCounts::kMaxEntries);
  prep_ops::TinyCounts tc;
  std::map<int64_t, int64_t> want;
  std::vector<int64_t> rest;
  std::size_t step = 0;
  for (std::size_t n : {0, 1, 3, 255, 256, 257, 511, 1000, 4096}) {
    std::vector<int64_t> keys;
    for (std::size_t j = 0; j < n; ++j) {
      // New keys appear over time: the multiplier is found again mid-stream.
      const std::size_t reach = std::min(pool.size(), 4 + step++ / 40);
      keys.push_back(pool[rng() % 3 == 0 ? rng() % reach : rng() % std::min<std::size_t>(reach, 3)]);
      ++want[keys.back()];
    }
    ASSERT_EQ(tc.add_many(keys.data(), keys.size(), rest), n);
    ASSERT_FALSE(tc.full());
    EXPECT_TRUE(rest.empty());
    std::map<int64_t, int64_t> got;
    tc.for_each([&](int64_t k, int64_t c) { EXPECT_TRUE(got.emplace(k, c).second); });
    ASSERT_EQ(got, want) << n;
  }
  EXPECT_EQ(tc.size(), want.size());

  // Past kMaxEntries: fresh keys from the middle of the second block on, then more blocks.
  prep_ops::TinyCounts small;
  std::vector<int64_t> keys;
  for (std::size_t j = 0; j < 2000; ++j)
    keys.push_back(j < 300 ? pool[j % pool.size()] : j % 2 ? pool[j % 5] : static_cast<int64_t>(1000 + j % 70));
  const std::size_t ret = small.add_many(keys.data(), keys.size(), rest);
  EXPECT_TRUE(small.full());
  EXPECT_LT(ret, keys.size());
  EXPECT_FALSE(rest.empty());
  std::map<int64_t, int64_t> all, seen;
  for (int64_t k : keys) ++all[k];
  small.for_each([&](int64_t k, int64_t c) { seen[k] += c; });
  EXPECT_EQ(small.size(), prep_ops::TinyCounts::kMaxEntries);
  for (int64_t k : rest) ++seen[k];
  for (std::size_t j = ret; j < keys.size(); ++j) ++seen[keys[j]];
  EXPECT_EQ(seen, all);
  EXPECT_EQ(small.add_many(keys.data(), keys.size(), rest), 0u);  // full: takes nothing more
  EXPECT_TRUE(rest.empty());
}

// KeyCounter without first rows counts every column in a TinyCounts until it passes kTinyKeys keys:
// columns that stay tiny, one that passes it in the middle of a batch (some of its keys not hex), one
// that mixes single add()s in, on 1-3 threads, with spills or not; finish() reports the reference
// counts, through the per-key sink and the packed one, and distinct_upper_bound covers them.
TEST(FlatMap, KeyCounterCountsTinyColumnsExactly) {
  TempDir dir;
  std::mt19937_64 rng(47);
  constexpr std::size_t kCols = 4;
  std::vector<std::vector<std::vector<int64_t>>> batches(kCols);
  std::vector<Counts> ref(kCols);
  for (int b = 0; b < 30; ++b)
    for (std::size_t c = 0; c < kCols; ++c) {
      std::vector<int64_t> keys;
      for (int r = 0; r < 1500; ++r) {
        int64_t k = 0;
        if (c == 0) k = hex_key(rng() % 3);
        if (c == 1) k = r % 11 == 0 ? prep_ops::kEmptyKey : hex_key(rng() % 30);
        if (c == 2) k = b < 12 || r < 700 ? hex_key(rng() % 20) : r % 5 ? hex_key(rng() % 5000) : categorical_key("x" + std::to_string(rng() % 9));
        if (c == 3) k = hex_key(rng() % 25);
        keys.push_back(k);
        ++ref[c][k];
      }
      batches[c].push_back(std::move(keys));
    }
  for (int threads : {1, 2, 3})
    for (int64_t budget : {int64_t{64} << 10, int64_t{1} << 30})
      for (bool packed : {false, true}) {
        prep_ops::KeyCounter kc("test");
        kc.begin(kCols, threads, budget, dir.path().string(), false);
        for (std::size_t b = 0; b < batches[0].size(); ++b) {
          const int t = static_cast<int>(b % static_cast<std::size_t>(threads));
          for (std::size_t c = 0; c < kCols; ++c) {
            const std::vector<int64_t>& keys = batches[c][b];
            if (c == 3 && b % 4 == 1) {
              for (int64_t k : keys) kc.add(c, t, k, 0);
            } else {
              kc.add_many(c, t, keys.data(), nullptr, keys.size());
            }
          }
        }
        for (std::size_t c = 0; c < kCols; ++c) EXPECT_GE(kc.distinct_upper_bound(c), ref[c].size()) << c;
        std::vector<Counts> got(kCols);
        std::mutex mu;
        auto sink = [&](std::size_t col, const prep_ops::KeyCount& c) {
          std::lock_guard<std::mutex> lk(mu);
          EXPECT_EQ(got[col].count(c.key), 0u);
          got[col][c.key] = c.count;
        };
        prep_ops::KeyCounter::PackedSink packed_sink;
        if (packed)
          packed_sink = [&](std::size_t col, prep_ops::CountTable::Packed&& p) {
            std::lock_guard<std::mutex> lk(mu);
            for (std::size_t j = 0; j < p.n; ++j) {
              const int64_t k = prep_ops::unpack_hex_key(static_cast<uint32_t>(p.words[j]));
              EXPECT_EQ(got[col].count(k), 0u);
              got[col][k] = static_cast<int64_t>(p.words[j] >> 32);
            }
            if (p.has_empty_key) got[col][prep_ops::kEmptyKey] = p.empty_key.count;
          };
        kc.finish(threads, sink, 1, packed_sink);
        for (std::size_t c = 0; c < kCols; ++c)
          EXPECT_EQ(got[c], ref[c]) << "column " << c << ", " << threads << " threads, budget " << budget
                                    << (packed ? ", packed" : "");
      }
}

// A table made with kDeferred holds no slots (nothing to touch) until it grows; it then counts like any
// other, merges either way, and a lookup or a visit before that finds nothing. KeyCounter starts every
// table deferred: after counting, a thread's tables for columns it never counted, or that stayed within
// TinyCounts, still hold no slots, and a column of missing values only still reports its count.
TEST(FlatMap, DeferredCountTablesHoldNoSlotsUntilTheyGrow) {
  for (bool track : {true, false}) {
    prep_ops::CountTable d(prep_ops::CountTable::kDeferred, track);
    EXPECT_EQ(d.capacity(), 0u);
    EXPECT_EQ(d.bytes(), 0u);
    EXPECT_EQ(d.size(), 0u);
    EXPECT_TRUE(d.full());
    EXPECT_FALSE(d.has_room(1));
    EXPECT_EQ(d.compact(), !track);
    int64_t count = -1, first = -1;
    EXPECT_FALSE(d.find(hex_key(5), mix64(static_cast<uint64_t>(hex_key(5))), count, first));
    EXPECT_TRUE(counts_of(d).empty());
    EXPECT_TRUE(d.release_sorted(prep_ops::CountTable::kDeferred).empty());
    EXPECT_EQ(d.capacity(), prep_ops::CountTable::kMinCapacity);  // release_sorted leaves a usable table

    // Grown from nothing: counts as a table made with slots does, wide keys included.
    prep_ops::CountTable g(prep_ops::CountTable::kDeferred, track), ref(prep_ops::CountTable::kMinCapacity, track);
    g.grow();
    EXPECT_EQ(g.capacity(), prep_ops::CountTable::kMinCapacity);
    std::mt19937_64 rng(5);
    for (int64_t r = 0; r < 5000; ++r) {
      const int64_t key = r % 7 == 0   ? prep_ops::kEmptyKey
                          : r % 13 == 0 ? categorical_key("v" + std::to_string(rng() % 50))
                                        : hex_key(rng() % 3000);
      for (prep_ops::CountTable* t : {&g, &ref}) {
        if (t->full()) t->grow();
        t->add(key, r);
      }
    }
    EXPECT_EQ(counts_of(g), counts_of(ref)) << track;

    // Merging into and from a deferred table.
    prep_ops::CountTable into(prep_ops::CountTable::kDeferred, track), empty(prep_ops::CountTable::kDeferred, track);
    into.merge_from(ref);
    EXPECT_EQ(counts_of(into), counts_of(ref)) << track;
    into.merge_from(empty);
    EXPECT_EQ(counts_of(into), counts_of(ref)) << track;
  }

  // Nor does a TinyCounts hold its counters before its first keys (the object itself is small).
  EXPECT_LT(sizeof(prep_ops::TinyCounts), std::size_t{512});

  TempDir dir;
  constexpr std::size_t kCols = 3;  // 0: a few values, 1: many, 2: missing only
  std::vector<Counts> ref(kCols);
  std::vector<std::vector<std::vector<int64_t>>> batches(kCols);
  std::mt19937_64 rng(6);
  for (int b = 0; b < 8; ++b)
    for (std::size_t c = 0; c < kCols; ++c) {
      std::vector<int64_t> keys;
      for (int r = 0; r < 1000; ++r) {
        const int64_t k = c == 0 ? hex_key(rng() % 4) : c == 1 ? hex_key(rng() % 100000) : prep_ops::kEmptyKey;
        keys.push_back(k);
        ++ref[c][k];
      }
      batches[c].push_back(std::move(keys));
    }
  // Thread 0 counts everything, thread 1 nothing.
  auto count_all = [&](prep_ops::KeyCounter& kc) {
    for (std::size_t b = 0; b < batches[0].size(); ++b)
      for (std::size_t c = 0; c < kCols; ++c) kc.add_many(c, 0, batches[c][b].data(), nullptr, batches[c][b].size());
  };
  prep_ops::KeyCounter kc("test");
  kc.begin(kCols, 2, int64_t{1} << 30, dir.path().string(), false);
  for (std::size_t c = 0; c < kCols; ++c)
    for (int t = 0; t < 2; ++t) EXPECT_EQ(kc.capacity(c, t), 0u) << c << " " << t;
  count_all(kc);
  EXPECT_EQ(kc.capacity(0, 0), 0u);  // still in TinyCounts
  EXPECT_GE(kc.capacity(1, 0), std::size_t{8192});
  EXPECT_EQ(kc.capacity(2, 0), 0u);
  for (std::size_t c = 0; c < kCols; ++c) EXPECT_EQ(kc.capacity(c, 1), 0u) << c;
  for (bool packed : {false, true}) {
    prep_ops::KeyCounter k2("test");
    k2.begin(kCols, 2, int64_t{1} << 30, dir.path().string(), false);
    count_all(k2);
    std::vector<Counts> got(kCols);
    std::mutex mu;
    auto sink = [&](std::size_t col, const prep_ops::KeyCount& c) {
      std::lock_guard<std::mutex> lk(mu);
      got[col][c.key] = c.count;
    };
    prep_ops::KeyCounter::PackedSink packed_sink;
    if (packed)
      packed_sink = [&](std::size_t col, prep_ops::CountTable::Packed&& p) {
        std::lock_guard<std::mutex> lk(mu);
        for (std::size_t j = 0; j < p.n; ++j)
          got[col][prep_ops::unpack_hex_key(static_cast<uint32_t>(p.words[j]))] = static_cast<int64_t>(p.words[j] >> 32);
        if (p.has_empty_key) got[col][prep_ops::kEmptyKey] = p.empty_key.count;
      };
    k2.finish(2, sink, 1, packed_sink);
    for (std::size_t c = 0; c < kCols; ++c) EXPECT_EQ(got[c], ref[c]) << "column " << c << (packed ? ", packed" : "");
  }
}

// A column counted on one thread but for a few batches on another (a fit shared by columns after its
// calibration chunks; prep/column_split.h) reaches finish() as one big table and a small one: the small
// one is merged into the big one, which goes to the packed sink whole, with the reference counts. Columns
// counted in turn on both threads (two big tables) still go through the per-key sink. distinct_on counts
// one thread's keys.
TEST(FlatMap, KeyCounterMergesAColumnsSmallTablesIntoItsBigOne) {
  TempDir dir;
  std::mt19937_64 rng(91);
  std::vector<Counts> ref(2);
  prep_ops::KeyCounter kc("test");
  kc.begin(2, 2, int64_t{1} << 30, dir.path().string(), false);
  for (int b = 0; b < 60; ++b) {
    std::vector<int64_t> keys(2000);
    for (int64_t& k : keys) k = rng() % 97 == 0 ? prep_ops::kEmptyKey : hex_key(rng() % 150000);
    for (std::size_t c = 0; c < 2; ++c) {
      for (int64_t k : keys) ++ref[c][k];
      const int t = c == 0 ? (b < 3 ? 0 : 1) : b % 2;
      kc.add_many(c, t, keys.data(), nullptr, keys.size());
    }
  }
  EXPECT_LE(kc.distinct_on(0, 0), 6000u);
  EXPECT_GE(kc.distinct_on(0, 1), 8 * kc.distinct_on(0, 0));
  EXPECT_EQ(kc.distinct_upper_bound(0), kc.distinct_on(0, 0) + kc.distinct_on(0, 1));
  std::vector<Counts> got(2);
  std::vector<int> per_key(2, 0), packed_calls(2, 0);
  std::mutex mu;
  kc.finish(
      2,
      [&](std::size_t col, const prep_ops::KeyCount& c) {
        std::lock_guard<std::mutex> lk(mu);
        EXPECT_EQ(got[col].count(c.key), 0u);
        got[col][c.key] = c.count;
        ++per_key[col];
      },
      1,
      [&](std::size_t col, prep_ops::CountTable::Packed&& p) {
        std::lock_guard<std::mutex> lk(mu);
        ++packed_calls[col];
        for (std::size_t j = 0; j < p.n; ++j)
          got[col][prep_ops::unpack_hex_key(static_cast<uint32_t>(p.words[j]))] = static_cast<int64_t>(p.words[j] >> 32);
        if (p.has_empty_key) got[col][prep_ops::kEmptyKey] = p.empty_key.count;
      });
  EXPECT_EQ(packed_calls, (std::vector<int>{1, 0}));
  EXPECT_EQ(per_key[0], 0);
  EXPECT_GT(per_key[1], 0);
  EXPECT_EQ(got, ref);
}

// ---------------------------------------------------------------------------------------------------
// Throughput (printed, not asserted): 10M distinct keys over 50M values, fit in memory and spilling,
// then transform lookups on one thread. BW_OPS_PERF_SCALE=0.1 shrinks it.

// Sizing a table from the progress through the input (KeyCounter::note_progress): once an eighth of the
// input is in, a column whose distinct keys grow like a real one's (heavy-tailed draws) gets close to
// its final size at once, not past twice what doubling reaches; the counts are those of an unsized
// count, through the per-key stream and the packed end; nothing is sized when the input's size is
// unknown, for a column that spilled, or past the memory share.
TEST(FlatMap, KeyCounterSizesTablesFromTheInputsProgress) {
  TempDir dir;
  std::mt19937_64 rng(5);
  std::vector<std::vector<int64_t>> batches;
  Counts ref;
  for (int b = 0; b < 64; ++b) {
    std::vector<int64_t> keys;
    for (int r = 0; r < 8000; ++r) {
      // P(value > v) ~ v^-0.2: ~83,000 distinct keys, growing like n^0.84.
      const double u = (static_cast<double>(rng() >> 11) + 1) * 0x1.0p-53, v = std::pow(u, -5.0);
      keys.push_back(hex_key((v < 1e18 ? static_cast<uint64_t>(v) : rng()) % 4000000));
      ++ref[keys.back()];
    }
    batches.push_back(std::move(keys));
  }
  const int64_t batch_bytes = 1000, total = batch_bytes * static_cast<int64_t>(batches.size());
  // capacities[k]: the table's slots after batch k; then the counts.
  auto run = [&](int64_t input_bytes, int64_t budget, std::vector<std::size_t>& capacities) {
    prep_ops::KeyCounter kc("test");
    kc.begin(1, 1, budget, dir.path().string(), false);
    kc.set_input_bytes(input_bytes);
    capacities.clear();
    for (const auto& keys : batches) {
      kc.add_many(0, 0, keys.data(), nullptr, keys.size());
      kc.note_progress(0, 0, batch_bytes);
      capacities.push_back(kc.capacity(0, 0));
    }
    Counts got;
    kc.finish(1, [&](std::size_t, const prep_ops::KeyCount& c) { got[c.key] = c.count; });
    return got;
  };
  std::vector<std::size_t> plain, sized, unknown, spilled;
  EXPECT_EQ(run(0, int64_t{1} << 30, plain), ref);
  EXPECT_EQ(run(total, int64_t{1} << 30, sized), ref);
  EXPECT_EQ(run(0, int64_t{1} << 30, unknown), ref);
  EXPECT_EQ(unknown, plain);
  const std::size_t eighth = batches.size() / 8;  // the batch that completes an eighth of the input
  EXPECT_GT(sized[eighth - 1], 2 * plain[eighth - 1]) << "sized at an eighth of the input";
  EXPECT_GE(2 * sized[eighth - 1], plain.back()) << "to within a doubling of the final size";
  EXPECT_LE(sized.back(), 2 * plain.back());
  for (std::size_t k = 0; k + 1 < eighth; ++k) EXPECT_EQ(sized[k], plain[k]) << "batch " << k;
  // A budget the sized table would pass: no sizing (the table spills as it grows, as without sizing).
  EXPECT_EQ(run(total, int64_t{256} << 10, spilled), ref);
  EXPECT_LE(*std::max_element(spilled.begin(), spilled.end()) * sizeof(uint64_t), std::size_t{256} << 10);
  // Through the packed end as well: the same totals.
  prep_ops::KeyCounter kc("test");
  kc.begin(1, 1, int64_t{1} << 30, dir.path().string(), false);
  kc.set_input_bytes(total);
  for (const auto& keys : batches) {
    kc.add_many(0, 0, keys.data(), nullptr, keys.size());
    kc.note_progress(0, 0, batch_bytes);
  }
  Counts packed;
  kc.finish(1, [&](std::size_t, const prep_ops::KeyCount&) { ADD_FAILURE() << "a per-key call"; }, 1,
            [&](std::size_t, prep_ops::CountTable::Packed&& counts) {
              for (std::size_t j = 0; j < counts.n; ++j)
                packed[prep_ops::unpack_hex_key(static_cast<uint32_t>(counts.words[j]))] =
                    static_cast<int64_t>(counts.words[j] >> 32);
              EXPECT_EQ(counts.distinct, static_cast<int64_t>(ref.size()));
            });
  EXPECT_EQ(packed, ref);
}

// In the last 5 % of an input of known size a full table fills to 0.85 instead of doubling
// (KeyCounter::make_room, CountTable::allow_late_load); earlier, with the size unknown, or past 0.85
// it doubles as before; the counts are exact either way.
TEST(FlatMap, KeyCounterLetsTablesFillFurtherAtTheInputsEnd) {
  TempDir dir;
  // 100 batches of 1000 bytes: 1,400 distinct keys in the first 95 (a 2,048-slot table at 0.68), then
  // `late` more in the last 5.
  auto run = [&](int64_t input_bytes, int late, std::size_t& cap_at_95, std::size_t& cap_at_end) {
    std::vector<std::vector<int64_t>> batches(100);
    Counts ref;
    for (int b = 0; b < 100; ++b)
      for (int r = 0; r < 300; ++r) {
        const int64_t key = b < 95 ? hex_key(static_cast<uint64_t>((b * 300 + r) % 1400))
                                   : hex_key(static_cast<uint64_t>(r < late / 5 ? 5000 + (b - 95) * (late / 5) + r : r));
        batches[static_cast<std::size_t>(b)].push_back(key);
        ++ref[key];
      }
    prep_ops::KeyCounter kc("test");
    kc.begin(1, 1, int64_t{1} << 30, dir.path().string(), false);
    kc.set_input_bytes(input_bytes);
    for (int b = 0; b < 100; ++b) {
      const auto& keys = batches[static_cast<std::size_t>(b)];
      kc.add_many(0, 0, keys.data(), nullptr, keys.size());
      kc.note_progress(0, 0, 1000);
      if (b == 94) cap_at_95 = kc.capacity(0, 0);
    }
    cap_at_end = kc.capacity(0, 0);
    Counts got;
    kc.finish(1, [&](std::size_t, const prep_ops::KeyCount& c) { got[c.key] = c.count; });
    EXPECT_EQ(got, ref) << input_bytes << " bytes, " << late << " late keys";
  };
  std::size_t at95 = 0, end = 0;
  run(100000, 200, at95, end);  // 1,600 keys: 0.78 of 2,048
  EXPECT_EQ(at95, 2048u);
  EXPECT_EQ(end, 2048u);
  run(0, 200, at95, end);  // input size unknown: doubles
  EXPECT_EQ(end, 4096u);
  run(100000, 400, at95, end);  // 1,800 keys: 0.88, past the late limit
  EXPECT_EQ(end, 4096u);
  run(2000000, 200, at95, end);  // the same keys at 5 % of a larger input: doubles
  EXPECT_EQ(end, 4096u);
}

TEST(CategorifyPerf, TenMillionDistinctFitAndLookupThroughput) {
  // A throughput figure, not a check: it runs only on request so that `make test` stays quick.
  const char* env = std::getenv("BW_OPS_PERF_SCALE");
  if (!env) GTEST_SKIP() << "set BW_OPS_PERF_SCALE=1 to measure categorify on 10M distinct keys";
  double scale = std::atof(env);
  const int64_t distinct = static_cast<int64_t>(10'000'000 * scale), values = 5 * distinct;
  const int64_t chunk_rows = 1 << 20;
  std::vector<Chunk> chunks;
  for (int64_t first = 0; first < values; first += chunk_rows) {
    Chunk ch;
    ch.rows = std::min(chunk_rows, values - first);
    ch.first_row = first;
    Column c = make_column("C1", Role::kCategorical, ColumnKind::kInt);
    c.i.resize(ch.rows);
    // Every key appears 5 times, spread over the whole input (row i holds key i mod distinct).
    for (int64_t r = 0; r < ch.rows; ++r) c.i[r] = static_cast<int64_t>(mix64(static_cast<uint64_t>((first + r) % distinct)));
    ch.columns.push_back(std::move(c));
    chunks.push_back(std::move(ch));
  }
  TempDir dir;
  auto timed_fit = [&](int64_t budget, int threads) {
    OpContext ctx;
    ctx.memory_budget = budget;
    ctx.temp_dir = dir.path().string();
    auto op = make_op("{op: categorify, columns: [C1]}");
    auto t0 = std::chrono::steady_clock::now();
    fit(*op, chunks, threads, {}, ctx);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("[ perf ] categorify fit %s distinct / %s values, budget %lld MiB, %d threads: %.2f s  (%s)\n",
                std::to_string(distinct).c_str(), std::to_string(values).c_str(),
                static_cast<long long>(budget >> 20), threads, s, op->summary().c_str());
    return op;
  };
  auto op = timed_fit(OpContext{}.memory_budget, 1);
  timed_fit(OpContext{}.memory_budget, 2);
  timed_fit(int64_t{64} << 20, 2);

  auto t0 = std::chrono::steady_clock::now();
  for (auto& ch : chunks) op->transform(ch, false);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ perf ] categorify transform, 1 thread: %.1f M lookups/s (%lld lookups in %.2f s)\n",
              static_cast<double>(values) / s / 1e6, static_cast<long long>(values), s);
  EXPECT_EQ(chunks[0].columns[0].cardinality, distinct + 2);
}

}  // namespace
}  // namespace bluewhale
