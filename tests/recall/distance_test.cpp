// Distance kernels at every SIMD level the CPU supports, against double-precision references, over
// dimensions that exercise every tail; and the top-k selector against a full sort.
#include "bluewhale/recall/distance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/recall/topk.h"
#include "recall/distance_kernels.h"
#include "test_util.h"

namespace bluewhale {
namespace {

class Distance : public testing::SimdLevelTest {};

const int64_t kDims[] = {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 100, 128, 129, 200, 960};

// Offsets by one float, so the kernels see unaligned rows as they do inside a matrix.
std::vector<float> random_vec(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(std::size_t(n) + 1);
  for (auto& x : v) x = nd(rng);
  return v;
}

TEST_P(Distance, PairKernelsMatchReferenceOnEveryTail) {
  const auto& k = recall_detail::kernels_for(GetParam());
  std::mt19937 rng(7);
  for (int64_t dim : kDims) {
    auto a = random_vec(rng, dim), b = random_vec(rng, dim);
    const float* pa = a.data() + 1;
    const float* pb = b.data() + 1;
    const double l2 = l2_sq_reference(pa, pb, dim), ip = dot_reference(pa, pb, dim);
    const double tol = 1e-5 * (1.0 + double(dim));
    EXPECT_NEAR(k.l2_sq(pa, pb, dim), l2, tol * std::max(1.0, l2 / double(std::max<int64_t>(dim, 1)))) << dim;
    EXPECT_NEAR(k.dot(pa, pb, dim), ip, tol) << dim;
    EXPECT_NEAR(k.neg_dot(pa, pb, dim), -ip, tol) << dim;
    // The public entry points dispatch to the level in force.
    EXPECT_EQ(l2_sq(pa, pb, dim), k.l2_sq(pa, pb, dim)) << dim;
    EXPECT_EQ(dot(pa, pb, dim), k.dot(pa, pb, dim)) << dim;
  }
}

TEST_P(Distance, Sq8KernelsMatchDecodedReference) {
  const auto& k = recall_detail::kernels_for(GetParam());
  std::mt19937 rng(11);
  for (int64_t dim : kDims) {
    auto q = random_vec(rng, dim), lo = random_vec(rng, dim), step = random_vec(rng, dim);
    std::vector<uint8_t> code(std::size_t(dim) + 1);
    for (auto& c : code) c = uint8_t(rng());
    std::vector<float> x(static_cast<std::size_t>(dim));
    for (int64_t j = 0; j < dim; ++j) x[std::size_t(j)] = lo[std::size_t(j)] + float(code[std::size_t(j)]) * step[std::size_t(j)];
    const double l2 = l2_sq_reference(q.data(), x.data(), dim), ip = dot_reference(q.data(), x.data(), dim);
    EXPECT_NEAR(k.sq8_l2_sq(q.data(), code.data(), lo.data(), step.data(), dim), l2, 1e-4 * (1 + l2)) << dim;
    EXPECT_NEAR(k.sq8_neg_dot(q.data(), code.data(), lo.data(), step.data(), dim), -ip, 1e-4 * (1 + std::abs(ip)) * 10)
        << dim;
  }
}

TEST_P(Distance, BelowThresholdScanMatchesScalarSelection) {
  const auto& k = recall_detail::kernels_for(GetParam());
  std::mt19937 rng(13);
  for (int64_t n : {0, 1, 7, 8, 9, 16, 17, 100, 515}) {
    auto p = random_vec(rng, n), norms = random_vec(rng, n);
    for (auto& x : norms) x = std::abs(x) * 3;
    for (bool l2 : {true, false}) {
      for (float thr : {-1.0f, 0.5f, 3.0f, std::numeric_limits<float>::infinity()}) {
        std::vector<uint32_t> idx(std::size_t(n) + 1);
        std::vector<float> dist(std::size_t(n) + 1);
        const int64_t c = k.below(p.data(), l2 ? norms.data() : nullptr, n, thr, idx.data(), dist.data());
        int64_t want = 0;
        for (int64_t j = 0; j < n; ++j) {
          const float d = l2 ? norms[std::size_t(j)] - 2.0f * p[std::size_t(j)] : -p[std::size_t(j)];
          if (!(d < thr)) continue;
          ASSERT_LT(want, c) << n;
          EXPECT_EQ(idx[std::size_t(want)], uint32_t(j));
          EXPECT_NEAR(dist[std::size_t(want)], d, 1e-5f * (1 + std::abs(d)));
          ++want;
        }
        EXPECT_EQ(c, want) << "n " << n << " thr " << thr;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllSimdLevels, Distance, testing::kAllSimdLevels, testing::SimdLevelName());

TEST(Metric, ParseNamesTheNearestValidMetric) {
  EXPECT_EQ(parse_metric("l2"), Metric::kL2);
  EXPECT_EQ(parse_metric("ip"), Metric::kInnerProduct);
  EXPECT_EQ(parse_metric("cosine"), Metric::kCosine);
  try {
    parse_metric("cosin", "--metric");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--metric"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("did you mean 'cosine'"), std::string::npos) << e.what();
  }
}

TEST(Normalize, ScalesToUnitLengthAndLeavesZeroAlone) {
  std::vector<float> v{3, 4};
  EXPECT_FLOAT_EQ(normalize(v.data(), 2), 5.0f);
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  std::vector<float> z{0, 0};
  EXPECT_EQ(normalize(z.data(), 2), 0.0f);
  EXPECT_EQ(z[0], 0.0f);
}

TEST(TopK, KeepsTheKSmallestSortedLikeAFullSort) {
  std::mt19937 rng(3);
  for (int64_t k : {1, 5, 64}) {
    for (int n : {0, 3, 64, 1000}) {
      std::vector<std::pair<float, int64_t>> all;
      TopK top(k);
      for (int i = 0; i < n; ++i) {
        // Few distinct values, so ties are common and must resolve to the smaller label.
        float d = float(rng() % 50);
        all.emplace_back(d, i);
        top.push(d, i);
      }
      std::sort(all.begin(), all.end());
      all.resize(std::min<std::size_t>(all.size(), std::size_t(k)));
      EXPECT_EQ(top.take_sorted(), all) << "k " << k << " n " << n;
    }
  }
}

}  // namespace
}  // namespace bluewhale
