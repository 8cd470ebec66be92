// The fused exact search kernel at every SIMD level the CPU supports, against the plain reference:
// every tile and block tail (n, nq and dim not multiples of the tile), d = 1, k = 1, k = n, k above a row
// block, ties, masks, NaN rows and bad input; and the flat index's fused and OpenBLAS paths against each
// other.
#include "recall/exact_search.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/recall/index.h"
#include "recall_test_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using recall_detail::exact_search;
using recall_detail::exact_search_reference;
using recall_detail::ExactTuning;

class ExactSearch : public testing::SimdLevelTest {};

// Small integers: every product and sum is exact in float, whatever the order, so the kernel must match
// the reference bit for bit, ties included (and small values make ties frequent).
std::vector<float> integer_data(int64_t rows, int64_t dim, uint32_t seed, int range = 3) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(-range, range);
  std::vector<float> v(std::size_t(rows * dim));
  for (auto& x : v) x = float(u(rng));
  return v;
}

std::vector<float> sq_norms(const std::vector<float>& rows, int64_t dim) {
  std::vector<float> n(rows.size() / std::size_t(dim));
  for (std::size_t i = 0; i < n.size(); ++i) n[i] = float(dot_reference(rows.data() + i * std::size_t(dim), rows.data() + i * std::size_t(dim), dim));
  return n;
}

struct Result {
  std::vector<float> dist;
  std::vector<int64_t> labels;
};

Result run_fused(const std::vector<float>& q, int64_t nq, const std::vector<float>& rows, int64_t dim, Metric m,
                 int64_t k, const uint8_t* allowed, int threads, const ExactTuning& t = {}) {
  Result r;
  r.dist.assign(std::size_t(nq * k), -1.0f);
  r.labels.assign(std::size_t(nq * k), -2);
  const int64_t n = int64_t(rows.size()) / dim;
  const auto norms = sq_norms(rows, dim);
  exact_search(q.data(), nq, rows.data(), norms.data(), n, dim, m, k, allowed, threads, r.dist.data(),
               r.labels.data(), t);
  return r;
}

Result run_reference(const std::vector<float>& q, int64_t nq, const std::vector<float>& rows, int64_t dim, Metric m,
                     int64_t k, const uint8_t* allowed) {
  Result r;
  r.dist.assign(std::size_t(nq * k), -1.0f);
  r.labels.assign(std::size_t(nq * k), -2);
  exact_search_reference(q.data(), nq, rows.data(), int64_t(rows.size()) / dim, dim, m, k, allowed, r.dist.data(),
                         r.labels.data());
  return r;
}

void expect_identical(const Result& got, const Result& want, const std::string& what) {
  ASSERT_EQ(got.labels.size(), want.labels.size()) << what;
  for (std::size_t i = 0; i < want.labels.size(); ++i) {
    ASSERT_EQ(got.labels[i], want.labels[i]) << what << " at " << i;
    ASSERT_EQ(got.dist[i], want.dist[i]) << what << " at " << i;
  }
}

const ExactTuning kTunings[] = {
    {},                                                      // the planner's choice
    {.query_block = 1, .row_block = 7, .row_parts = 1},      // many query blocks, rows not a tile multiple
    {.query_block = 40, .row_block = 13, .row_parts = 3},    // rows split in parts, merged afterwards
};

TEST_P(ExactSearch, MatchesReferenceExactlyOnEveryTail) {
  // n and nq around the tile sizes of every level (4/6/12 rows, 8/16/32 queries), odd and tiny d.
  const int64_t kDims[] = {1, 2, 3, 7, 16, 17, 33, 64, 129};
  const std::pair<int64_t, int64_t> kShapes[] = {{1, 1}, {5, 8}, {13, 17}, {37, 33}, {100, 70}};
  uint32_t seed = 1;
  for (int64_t dim : kDims) {
    for (auto [n, nq] : kShapes) {
      const auto rows = integer_data(n, dim, seed++), q = integer_data(nq, dim, seed++);
      for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
        for (int64_t k : {int64_t{1}, std::min<int64_t>(5, n), n}) {
          const Result want = run_reference(q, nq, rows, dim, m, k, nullptr);
          for (std::size_t t = 0; t < std::size(kTunings); ++t) {
            for (int threads : {1, 2}) {
              const std::string what = "dim " + std::to_string(dim) + " n " + std::to_string(n) + " nq " +
                                       std::to_string(nq) + " " + std::string(metric_name(m)) + " k " +
                                       std::to_string(k) + " tuning " + std::to_string(t) + " threads " +
                                       std::to_string(threads);
              expect_identical(run_fused(q, nq, rows, dim, m, k, nullptr, threads, kTunings[t]), want, what);
            }
          }
        }
      }
    }
  }
}

TEST_P(ExactSearch, TiesKeepTheLowerRow) {
  // Every row equal: any k rows are nearest; the contract picks rows 0..k-1, also across blocks and parts.
  const int64_t n = 50, dim = 5, nq = 3, k = 20;
  std::vector<float> rows(std::size_t(n * dim), 1.0f), q(std::size_t(nq * dim), 2.0f);
  for (const auto& t : kTunings) {
    for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
      const Result r = run_fused(q, nq, rows, dim, m, k, nullptr, 2, t);
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t j = 0; j < k; ++j) {
          EXPECT_EQ(r.labels[std::size_t(i * k + j)], j);
          EXPECT_EQ(r.dist[std::size_t(i * k + j)], m == Metric::kL2 ? 5.0f : -10.0f);
        }
    }
  }
}

TEST_P(ExactSearch, KLargerThanARowBlock) {
  // dim 128: the planner's row block is a few hundred rows; k = 700 keeps thresholds at +inf across blocks.
  const int64_t n = 1000, dim = 128, nq = 40, k = 700;
  const auto rows = integer_data(n, dim, 21, 2), q = integer_data(nq, dim, 22, 2);
  ASSERT_LT(recall_detail::exact_search_plan(nq, n, dim, 1, GetParam()).row_block, k);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
    const Result want = run_reference(q, nq, rows, dim, m, k, nullptr);
    expect_identical(run_fused(q, nq, rows, dim, m, k, nullptr, 1), want, "default blocks");
    expect_identical(run_fused(q, nq, rows, dim, m, k, nullptr, 2, {.query_block = 16, .row_block = 64, .row_parts = 2}),
                     want, "small blocks, two parts");
  }
}

TEST_P(ExactSearch, HundredsOfRowBlocks) {
  // Row blocks start near k rows and double: with a tiny row block there are hundreds of them, and the
  // growth must stop at the block size.
  const int64_t n = 2000, dim = 3, nq = 10;
  const auto rows = integer_data(n, dim, 81), q = integer_data(nq, dim, 82);
  for (int64_t k : {int64_t{1}, int64_t{30}}) {
    const Result want = run_reference(q, nq, rows, dim, Metric::kL2, k, nullptr);
    expect_identical(run_fused(q, nq, rows, dim, Metric::kL2, k, nullptr, 1, {.row_block = 5}), want, "row block 5");
    expect_identical(run_fused(q, nq, rows, dim, Metric::kL2, k, nullptr, 2, {.row_block = 1, .row_parts = 2}), want,
                     "row block 1");
  }
}

TEST_P(ExactSearch, AllowedMaskAndPadding) {
  const int64_t n = 300, dim = 9, nq = 20;
  const auto rows = integer_data(n, dim, 31), q = integer_data(nq, dim, 32);
  std::vector<uint8_t> allowed(std::size_t(n), 0);
  for (int64_t i = 0; i < n; i += 3) allowed[std::size_t(i)] = 1;
  for (const auto& t : kTunings) {
    for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
      expect_identical(run_fused(q, nq, rows, dim, m, 10, allowed.data(), 2, t),
                       run_reference(q, nq, rows, dim, m, 10, allowed.data()), "every third row");
    }
  }
  // Fewer allowed rows than k: the rest of each row is (+inf, -1).
  std::vector<uint8_t> two(std::size_t(n), 0);
  two[7] = two[250] = 1;
  const Result r = run_fused(q, nq, rows, dim, Metric::kL2, 5, two.data(), 1);
  for (int64_t i = 0; i < nq; ++i) {
    EXPECT_TRUE((r.labels[std::size_t(i * 5)] == 7 && r.labels[std::size_t(i * 5 + 1)] == 250) ||
                (r.labels[std::size_t(i * 5)] == 250 && r.labels[std::size_t(i * 5 + 1)] == 7));
    for (int64_t j = 2; j < 5; ++j) {
      EXPECT_EQ(r.labels[std::size_t(i * 5 + j)], -1);
      EXPECT_TRUE(std::isinf(r.dist[std::size_t(i * 5 + j)]));
    }
  }
}

TEST_P(ExactSearch, GaussianDataWithinRounding) {
  // Real-valued data: distances within float rounding of the double reference; a differing id is allowed
  // only where the reference distances of the two ids are equally close (a near-tie).
  for (int64_t dim : {1, 31, 128, 300}) {
    const int64_t n = 1500, nq = 45, k = 10;
    Vectors base = testing::random_vectors(n, dim, 41), queries = testing::random_vectors(nq, dim, 42);
    for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
      if (m == Metric::kCosine) {
        for (int64_t i = 0; i < n; ++i) normalize(base.data.data() + i * dim, dim);
        for (int64_t i = 0; i < nq; ++i) normalize(queries.data.data() + i * dim, dim);
      }
      const Metric km = m == Metric::kCosine ? Metric::kInnerProduct : m;
      const Result got = run_fused(queries.data, nq, base.data, dim, m, k, nullptr, 2);
      const Result want = run_reference(queries.data, nq, base.data, dim, km, k, nullptr);
      for (int64_t i = 0; i < nq * k; ++i) {
        const float wd = want.dist[std::size_t(i)];
        const double tol = 2e-5 * (1.0 + double(dim) + std::abs(wd));
        EXPECT_NEAR(got.dist[std::size_t(i)], wd, tol) << metric_name(m) << " dim " << dim << " at " << i;
        const int64_t g = got.labels[std::size_t(i)], w = want.labels[std::size_t(i)];
        if (g != w) {
          const float* qv = queries.row(i / k);
          const double dg = km == Metric::kL2 ? l2_sq_reference(qv, base.row(g), dim) : -dot_reference(qv, base.row(g), dim);
          EXPECT_NEAR(dg, wd, tol) << "id " << g << " instead of " << w;
        }
      }
    }
  }
}

TEST_P(ExactSearch, NanRowsAreNeverReturned) {
  // The index rejects non-finite vectors; the kernel itself never admits a NaN distance either.
  const int64_t n = 40, dim = 6, nq = 9, k = 39;
  auto rows = integer_data(n, dim, 51), q = integer_data(nq, dim, 52);
  rows[std::size_t(3 * dim + 2)] = std::numeric_limits<float>::quiet_NaN();
  rows[std::size_t(30 * dim)] = std::numeric_limits<float>::quiet_NaN();
  for (Metric m : {Metric::kL2, Metric::kInnerProduct}) {
    const Result want = run_reference(q, nq, rows, dim, m, k, nullptr);
    const Result got = run_fused(q, nq, rows, dim, m, k, nullptr, 1);
    expect_identical(got, want, "NaN rows");
    for (int64_t i = 0; i < nq; ++i) {
      EXPECT_EQ(got.labels[std::size_t(i * k + k - 1)], -1);  // 39 asked, 38 finite rows: the NaN ones are left out
      for (int64_t j = 0; j < k; ++j) {
        EXPECT_NE(got.labels[std::size_t(i * k + j)], 3);
        EXPECT_NE(got.labels[std::size_t(i * k + j)], 30);
      }
    }
  }
}

template <class Fn>
void expect_input_error(Fn fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "no exception, expected one mentioning '" << fragment << "'";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST_P(ExactSearch, BadInputGivesClearErrors) {
  const auto rows = integer_data(4, 3, 61), q = integer_data(2, 3, 62);
  const auto norms = sq_norms(rows, 3);
  std::vector<float> dist(100);
  std::vector<int64_t> labels(100);
  auto fused = [&](int64_t n, int64_t dim, int64_t k) {
    exact_search(q.data(), 2, rows.data(), norms.data(), n, dim, Metric::kL2, k, nullptr, 1, dist.data(),
                 labels.data());
  };
  auto ref = [&](int64_t n, int64_t dim, int64_t k) {
    exact_search_reference(q.data(), 2, rows.data(), n, dim, Metric::kL2, k, nullptr, dist.data(), labels.data());
  };
  for (auto fn : {std::function<void(int64_t, int64_t, int64_t)>(fused), std::function<void(int64_t, int64_t, int64_t)>(ref)}) {
    expect_input_error([&] { fn(0, 3, 1); }, "empty database");
    expect_input_error([&] { fn(4, 3, 5); }, "k = 5 is larger than the number of rows (4)");
    expect_input_error([&] { fn(4, 3, 0); }, "k must be >= 1");
    expect_input_error([&] { fn(4, 0, 1); }, "dimension must be >= 1");
  }
}

// The flat index's fused default and its OpenBLAS path give the same neighbours.
TEST_P(ExactSearch, FlatIndexFusedAndBlasPathsAgree) {
  for (int64_t dim : {37, 64}) {
    const Vectors base = testing::random_vectors(5000, dim, 71), queries = testing::random_vectors(100, dim, 72);
    for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
      IndexOptions o;
      o.kind = IndexKind::kFlat;
      o.metric = m;
      o.dim = dim;
      auto idx = make_index(o);
      idx->add(base, 2);
      for (int64_t i = 0; i < base.rows; i += 11) idx->remove(i);
      IdFilter filter;
      for (int64_t i = 0; i < base.rows; i += 2) filter.insert(i);
      for (const IdFilter* f : {static_cast<const IdFilter*>(nullptr), static_cast<const IdFilter*>(&filter)}) {
        for (int threads : {1, 2}) {
          SearchOptions so;
          so.k = 20;
          so.threads = threads;
          so.filter = f;
          const SearchResult fused = idx->search(queries, so);
          so.flat_blas = true;
          const SearchResult blas = idx->search(queries, so);
          for (int64_t q = 0; q < queries.rows; ++q) {
            for (int64_t j = 0; j < so.k; ++j) {
              const float fd = fused.distances_of(q)[j], bd = blas.distances_of(q)[j];
              const double tol = 1e-4 * (1.0 + std::abs(bd));
              ASSERT_NEAR(fd, bd, tol) << metric_name(m) << " dim " << dim << " query " << q << " rank " << j;
              const int64_t fi = fused.ids_of(q)[j], bi = blas.ids_of(q)[j];
              ASSERT_TRUE(fi >= 0 && fi % 11 != 0 && (!f || fi % 2 == 0)) << fi;
              if (fi != bi) {
                // Only a near-tie may swap two ids: both at the same reference distance.
                const double a = testing::reference_distance(m, queries.row(q), base.row(fi), dim),
                             b = testing::reference_distance(m, queries.row(q), base.row(bi), dim);
                EXPECT_NEAR(a, b, tol) << "query " << q << " rank " << j << ": " << fi << " vs " << bi;
              }
            }
          }
        }
      }
    }
  }
  // NaN queries are rejected before either path runs (the index's contract).
  IndexOptions o;
  o.kind = IndexKind::kFlat;
  o.dim = 4;
  auto idx = make_index(o);
  idx->add(testing::random_vectors(50, 4, 73));
  Vectors nan = testing::random_vectors(20, 4, 74);
  nan.data[9] = std::numeric_limits<float>::quiet_NaN();
  SearchOptions so;
  expect_input_error([&] { idx->search(nan, so); }, "row 2, component 1 is NaN");
}

INSTANTIATE_TEST_SUITE_P(AllSimdLevels, ExactSearch, testing::kAllSimdLevels, testing::SimdLevelName());

}  // namespace
}  // namespace bluewhale
