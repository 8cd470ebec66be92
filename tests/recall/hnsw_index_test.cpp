// HNSW recall against the provided SIFT ground truth and against the exact index on generated data;
// filters and removals; multi-threaded builds.
#include <gtest/gtest.h>

#include <unordered_set>

#include "bluewhale/recall/generate.h"
#include "bluewhale/recall/index.h"
#include "recall_test_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

std::unique_ptr<Index> hnsw(Metric m, int64_t dim, int M = 16, int efc = 200) {
  IndexOptions o;
  o.kind = IndexKind::kHnsw;
  o.metric = m;
  o.dim = dim;
  o.m = M;
  o.ef_construction = efc;
  return make_index(o);
}

TEST(HnswIndex, SiftSampleRecallAgainstProvidedGroundTruth) {
  auto data = testing::shared_data_dir();
  if (data.empty() || !fs::exists(data / "ann" / "sift5k_split_base.fvecs")) GTEST_SKIP() << "no ../shared/data/ann";
  Vectors base = read_vectors(data / "ann" / "sift5k_split_base.fvecs");
  Vectors queries = read_vectors(data / "ann" / "sift5k_split_query.fvecs");
  IntVectors gt = read_ivecs(data / "ann" / "sift5k_split_groundtruth.ivecs");
  auto idx = hnsw(Metric::kL2, base.dim);
  idx->add(base, 2);
  SearchOptions so;
  so.k = 10;
  so.threads = 2;
  so.ef = 16;
  const double low = recall_at_k(idx->search(queries, so), gt, 10);
  so.ef = 100;
  const double high = recall_at_k(idx->search(queries, so), gt, 10);
  RecordProperty("recall_at_10_ef16", std::to_string(low));
  RecordProperty("recall_at_10_ef100", std::to_string(high));
  EXPECT_GE(high, 0.98);
  EXPECT_GE(high, low);  // the quality knob works
}

TEST(HnswIndex, GeneratedDataRecallAgainstExactIndexForEveryMetric) {
  for (const char* kind : {"clustered", "embedding"}) {
    VectorGenOptions g;
    g.rows = 4000;
    g.dim = 48;
    g.kind = kind;
    g.threads = 2;
    Vectors base = generate_vectors(g);
    g.rows = 50;
    g.seed = 99;
    Vectors queries = generate_vectors(g);
    for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
      SCOPED_TRACE(std::string(kind) + " " + std::string(metric_name(m)));
      IntVectors gt = exact_neighbours(base, queries, 10, m, 2);
      auto idx = hnsw(m, g.dim);
      idx->add(base, 2);
      SearchOptions so;
      so.k = 10;
      so.ef = 128;
      so.threads = 2;
      EXPECT_GE(recall_at_k(idx->search(queries, so), gt, 10), 0.95);
    }
  }
}

TEST(HnswIndex, FilterAndRemovalNeverReturnExcludedItems) {
  Vectors base = testing::random_vectors(3000, 24, 21), queries = testing::random_vectors(30, 24, 22);
  auto idx = hnsw(Metric::kL2, 24);
  idx->add(base, 2);
  IdFilter allowed;
  for (int64_t i = 0; i < base.rows; i += 5) allowed.insert(i);
  SearchOptions so;
  so.k = 10;
  so.ef = 200;
  so.filter = &allowed;
  SearchResult r = idx->search(queries, so);
  double rec = 0;
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int64_t i = 0; i < 10; ++i) EXPECT_TRUE(allowed.count(r.ids_of(q)[i])) << r.ids_of(q)[i];
    auto ref = testing::brute_knn(Metric::kL2, base, queries.row(q), 10, [](int64_t i) { return i % 5 == 0; });
    rec += testing::overlap(ref, r.ids_of(q), 10);
  }
  EXPECT_GE(rec / double(queries.rows), 0.9);

  for (int64_t i = 0; i < base.rows; i += 3) idx->remove(i);
  so.filter = nullptr;
  r = idx->search(queries, so);
  rec = 0;
  for (int64_t q = 0; q < queries.rows; ++q) {
    for (int64_t i = 0; i < 10; ++i) EXPECT_NE(r.ids_of(q)[i] % 3, 0) << r.ids_of(q)[i];
    auto ref = testing::brute_knn(Metric::kL2, base, queries.row(q), 10, [](int64_t i) { return i % 3 != 0; });
    rec += testing::overlap(ref, r.ids_of(q), 10);
  }
  EXPECT_GE(rec / double(queries.rows), 0.9);
}

TEST(HnswIndex, IncrementalAddsAndThreadCountsGiveEquallyGoodGraphs) {
  Vectors base = testing::random_vectors(3000, 16, 31), queries = testing::random_vectors(40, 16, 32);
  IntVectors gt = exact_neighbours(base, queries, 10, Metric::kL2, 2);
  for (int threads : {1, 2}) {
    auto idx = hnsw(Metric::kL2, 16, 12, 100);
    // Three adds: the first into an empty graph, then two more batches linking into it.
    for (int64_t b = 0; b < 3000; b += 1000) {
      idx->add(base.row(b), 1000, nullptr, threads);
    }
    EXPECT_EQ(idx->size(), 3000);
    SearchOptions so;
    so.k = 10;
    so.ef = 100;
    EXPECT_GE(recall_at_k(idx->search(queries, so), gt, 10), 0.95) << threads << " threads";
  }
}

}  // namespace
}  // namespace bluewhale
