// The exact index against a brute-force double-precision reference, on both of its search paths (GEMM
// batches and the single-query scan), every metric, filters, removals and every bad-input error.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "bluewhale/core/error.h"
#include "bluewhale/recall/index.h"
#include "recall_test_util.h"

namespace bluewhale {
namespace {

using testing::brute_knn;
using testing::random_vectors;

std::unique_ptr<Index> flat(Metric m, int64_t dim) {
  IndexOptions o;
  o.kind = IndexKind::kFlat;
  o.metric = m;
  o.dim = dim;
  return make_index(o);
}

// Each returned distance must equal the reference distance at the same rank (up to float rounding), and
// each returned id must really be at that distance: this accepts either order of exact ties.
void expect_matches_reference(const Index& idx, const Vectors& base, const Vectors& queries, const SearchResult& r,
                              const std::function<bool(int64_t)>& allowed) {
  for (int64_t q = 0; q < queries.rows; ++q) {
    auto ref = brute_knn(idx.metric(), base, queries.row(q), r.k, allowed);
    for (int64_t i = 0; i < r.k; ++i) {
      if (i >= int64_t(ref.size())) {
        EXPECT_EQ(r.ids_of(q)[i], -1);
        continue;
      }
      const double tol = 1e-4 * (1.0 + std::abs(ref[std::size_t(i)].first));
      EXPECT_NEAR(r.distances_of(q)[i], ref[std::size_t(i)].first, tol) << "query " << q << " rank " << i;
      const int64_t id = r.ids_of(q)[i];
      ASSERT_TRUE(id >= 0 && id < base.rows && allowed(id)) << id;
      EXPECT_NEAR(testing::reference_distance(idx.metric(), queries.row(q), base.row(id), base.dim),
                  ref[std::size_t(i)].first, tol);
    }
  }
}

TEST(FlatIndex, BatchAndSingleQueriesMatchBruteForceForEveryMetric) {
  // dim 37: not a multiple of any vector width; 2500 rows: several GEMM row blocks plus a partial one.
  const Vectors base = random_vectors(2500, 37, 1), queries = random_vectors(40, 37, 2);
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    SCOPED_TRACE(std::string(metric_name(m)));
    auto idx = flat(m, 37);
    idx->add(base, 2);
    EXPECT_EQ(idx->size(), 2500);
    for (int threads : {1, 2}) {
      SearchOptions so;
      so.k = 10;
      so.threads = threads;
      auto all = [](int64_t) { return true; };
      expect_matches_reference(*idx, base, queries, idx->search(queries, so), all);  // GEMM path
      Vectors few = queries;
      few.rows = 3;
      expect_matches_reference(*idx, base, few, idx->search(few, so), all);  // scan path
    }
  }
}

TEST(FlatIndex, FilterAndRemovalRestrictTheResults) {
  const Vectors base = random_vectors(3000, 16, 3), queries = random_vectors(20, 16, 4);
  auto idx = flat(Metric::kL2, 16);
  idx->add(base, 2);
  IdFilter allowed;
  for (int64_t i = 0; i < base.rows; i += 7) allowed.insert(i);
  allowed.insert(123456);  // unknown ids are ignored
  for (int64_t nq : {int64_t{20}, int64_t{1}}) {
    Vectors q = queries;
    q.rows = nq;
    SearchOptions so;
    so.k = 5;
    so.filter = &allowed;
    expect_matches_reference(*idx, base, q, idx->search(q, so), [](int64_t i) { return i % 7 == 0; });
  }
  // Remove every even id: none is returned again, the rest still match the reference.
  for (int64_t i = 0; i < base.rows; i += 2) EXPECT_TRUE(idx->remove(i));
  EXPECT_FALSE(idx->remove(0));
  EXPECT_FALSE(idx->remove(99999));
  EXPECT_EQ(idx->size(), 1500);
  EXPECT_FALSE(idx->contains(0));
  EXPECT_TRUE(idx->contains(1));
  SearchOptions so;
  so.k = 8;
  expect_matches_reference(*idx, base, queries, idx->search(queries, so), [](int64_t i) { return i % 2 == 1; });
  // A filter with fewer matches than k pads with -1 / +inf.
  IdFilter two{1, 3};
  so.filter = &two;
  SearchResult r = idx->search(queries, so);
  EXPECT_EQ(r.ids_of(0)[2], -1);
  EXPECT_TRUE(std::isinf(r.distances_of(0)[2]));
}

TEST(FlatIndex, ExplicitIdsAreReturned) {
  Vectors base = random_vectors(100, 8, 5);
  for (int64_t i = 0; i < 100; ++i) base.ids.push_back(int64_t{1} << 40 | (i * 3));
  auto idx = flat(Metric::kInnerProduct, 8);
  idx->add(base);
  SearchOptions so;
  so.k = 1;
  // Inner product of a vector with itself is not always the maximum, so query with a scaled-up row.
  Vectors q;
  q.rows = 1;
  q.dim = 8;
  q.data.assign(base.row(17), base.row(17) + 8);
  auto ref = brute_knn(Metric::kInnerProduct, base, q.row(0), 1, [](int64_t) { return true; });
  EXPECT_EQ(idx->search(q, so).ids[0], base.ids[std::size_t(ref[0].second)]);
}

template <class ErrorType, class Fn>
void expect_error(Fn fn, const std::string& fragment) {
  try {
    fn();
    ADD_FAILURE() << "no exception, expected one mentioning '" << fragment << "'";
  } catch (const ErrorType& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(FlatIndex, BadInputGivesClearErrors) {
  auto idx = flat(Metric::kL2, 4);
  Vectors q = random_vectors(2, 4, 6);
  SearchOptions so;
  so.k = 1;
  expect_error<InputError>([&] { idx->search(q, so); }, "index is empty");
  idx->add(random_vectors(5, 4, 7));
  so.k = 6;
  expect_error<InputError>([&] { idx->search(q, so); }, "larger than the collection (5 live vectors)");
  so.k = 0;
  expect_error<InputError>([&] { idx->search(q, so); }, "k must be >= 1");
  so.k = 1;
  expect_error<InputError>([&] { idx->search(random_vectors(2, 5, 8), so); }, "dimension 5");
  expect_error<InputError>([&] { idx->add(random_vectors(2, 3, 8)); }, "dimension 3");
  Vectors nan = random_vectors(3, 4, 9);
  nan.data[6] = std::numeric_limits<float>::quiet_NaN();
  expect_error<InputError>([&] { idx->add(nan); }, "row 1, component 2 is NaN");
  expect_error<InputError>([&] { idx->search(nan, so); }, "row 1, component 2 is NaN");
  EXPECT_EQ(idx->size(), 5);  // the failed adds changed nothing
  Vectors dup = random_vectors(2, 4, 10);
  dup.ids = {3, 100};
  expect_error<InputError>([&] { idx->add(dup); }, "id 3 (vector 0) is already in the index");
  dup.ids = {100, 100};
  expect_error<InputError>([&] { idx->add(dup); }, "id 100 appears twice");
  auto cos = flat(Metric::kCosine, 2);
  Vectors zero;
  zero.rows = 1;
  zero.dim = 2;
  zero.data = {0, 0};
  expect_error<InputError>([&] { cos->add(zero); }, "all zeros");
  IndexOptions o;
  o.dim = 0;
  expect_error<ConfigError>([&] { make_index(o); }, "dim must be in 1..");
  expect_error<ConfigError>([&] { parse_index_kind("hnws"); }, "did you mean 'hnsw'");
}

}  // namespace
}  // namespace bluewhale
