// IVF-SQ8: recall against the exact index as nprobe grows, re-ranking making the distances exact,
// filters and removals, and the SIFT sample against its provided ground truth.
#include <gtest/gtest.h>

#include <cmath>

#include "bluewhale/recall/generate.h"
#include "bluewhale/recall/index.h"
#include "recall_test_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

std::unique_ptr<Index> ivf(Metric m, int64_t dim, int nlist = 0) {
  IndexOptions o;
  o.kind = IndexKind::kIvfSq8;
  o.metric = m;
  o.dim = dim;
  o.nlist = nlist;
  return make_index(o);
}

TEST(IvfIndex, RecallGrowsWithNprobeAndReachesExactWithAllLists) {
  for (Metric m : {Metric::kL2, Metric::kInnerProduct, Metric::kCosine}) {
    SCOPED_TRACE(std::string(metric_name(m)));
    VectorGenOptions g;
    g.rows = 5000;
    g.dim = 40;
    g.kind = m == Metric::kL2 ? "clustered" : "embedding";
    Vectors base = generate_vectors(g);
    g.rows = 50;
    g.seed = 5;
    Vectors queries = generate_vectors(g);
    IntVectors gt = exact_neighbours(base, queries, 10, m, 2);
    auto idx = ivf(m, g.dim, 64);
    idx->add(base, 2);
    SearchOptions so;
    so.k = 10;
    so.threads = 2;
    so.nprobe = 1;
    const double r1 = recall_at_k(idx->search(queries, so), gt, 10);
    so.nprobe = 16;
    const double r16 = recall_at_k(idx->search(queries, so), gt, 10);
    so.nprobe = 64;
    SearchResult all = idx->search(queries, so);
    EXPECT_LE(r1, r16);
    EXPECT_GE(r16, 0.9);
    // Every list visited: only the 8-bit codes can lose a neighbour, and re-ranking 4k candidates recovers it.
    EXPECT_GE(recall_at_k(all, gt, 10), 0.99);
    // Re-ranked distances are exact.
    for (int64_t q = 0; q < 5; ++q) {
      const int64_t id = all.ids_of(q)[0];
      EXPECT_NEAR(all.distances_of(q)[0], testing::reference_distance(m, queries.row(q), base.row(id), g.dim),
                  1e-4 * (1 + std::abs(all.distances_of(q)[0])));
    }
  }
}

TEST(IvfIndex, SiftSampleAgainstProvidedGroundTruth) {
  auto data = testing::shared_data_dir();
  if (data.empty() || !fs::exists(data / "ann" / "sift5k_split_base.fvecs")) GTEST_SKIP() << "no ../shared/data/ann";
  Vectors base = read_vectors(data / "ann" / "sift5k_split_base.fvecs");
  Vectors queries = read_vectors(data / "ann" / "sift5k_split_query.fvecs");
  IntVectors gt = read_ivecs(data / "ann" / "sift5k_split_groundtruth.ivecs");
  auto idx = ivf(Metric::kL2, base.dim);  // nlist 0: about 4 sqrt(n) = 280 lists
  idx->add(base, 2);
  SearchOptions so;
  so.k = 10;
  so.nprobe = 32;
  EXPECT_GE(recall_at_k(idx->search(queries, so), gt, 10), 0.95);
}

TEST(IvfIndex, FilterRemovalAndLaterAdds) {
  Vectors base = testing::random_vectors(2000, 12, 51), queries = testing::random_vectors(20, 12, 52);
  auto idx = ivf(Metric::kL2, 12, 8);
  idx->add(base.row(0), 1000, nullptr, 2);
  idx->add(base.row(1000), 1000, nullptr, 2);  // into the lists trained on the first batch
  IdFilter allowed;
  for (int64_t i = 0; i < 2000; i += 4) allowed.insert(i);
  for (int64_t i = 0; i < 2000; i += 8) idx->remove(i);  // half the allowed ones are removed
  SearchOptions so;
  so.k = 5;
  so.nprobe = 8;
  so.filter = &allowed;
  SearchResult r = idx->search(queries, so);
  for (int64_t q = 0; q < queries.rows; ++q) {
    auto ref = testing::brute_knn(Metric::kL2, base, queries.row(q), 5, [](int64_t i) { return i % 4 == 0 && i % 8 != 0; });
    EXPECT_GE(testing::overlap(ref, r.ids_of(q), 5), 0.99) << q;
  }
}

}  // namespace
}  // namespace bluewhale
