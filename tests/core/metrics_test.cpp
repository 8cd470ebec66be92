#include "bluewhale/core/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

// The definition itself: every (positive, negative) pair, ties worth 1/2.
double pairwise_auc(const std::vector<float>& s, const std::vector<float>& y) {
  double wins = 0;
  int64_t pairs = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (y[i] != 1.0f) continue;
    for (std::size_t j = 0; j < s.size(); ++j) {
      if (y[j] != 0.0f) continue;
      ++pairs;
      wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
  }
  return pairs ? wins / static_cast<double>(pairs) : std::numeric_limits<double>::quiet_NaN();
}

TEST(RocAuc, MatchesPairwiseReferenceWithTiesAndSignedScores) {
  std::mt19937_64 rng(7);
  for (int n : {2, 3, 17, 257, 3000}) {
    for (int levels : {2, 5, 100, 0}) {  // few distinct scores -> many ties; 0 -> continuous
      std::vector<float> s(n), y(n);
      std::uniform_int_distribution<int> level(0, std::max(levels, 1) - 1);
      std::normal_distribution<float> noise(0.0f, 3.0f);
      for (int i = 0; i < n; ++i) {
        y[i] = static_cast<float>(rng() % 3 == 0);
        s[i] = levels ? static_cast<float>(level(rng)) - levels / 2.0f + 0.25f * y[i] * (rng() % 2) : noise(rng) + y[i];
      }
      y[0] = 0.0f;
      y[1] = 1.0f;
      const double ref = pairwise_auc(s, y);
      for (int threads : {1, 2, 3})
        EXPECT_NEAR(roc_auc(s.data(), y.data(), n, threads), ref, 1e-12) << "n=" << n << " levels=" << levels;
    }
  }
}

TEST(RocAuc, LargeInputIsIndependentOfThreadsAndMatchesReferenceOnSubset) {
  // Above the parallel threshold, so the sliced radix sort really runs on several threads.
  const int64_t n = 300000;
  std::mt19937_64 rng(11);
  std::vector<float> s(n), y(n);
  for (int64_t i = 0; i < n; ++i) {
    y[i] = static_cast<float>(rng() % 4 == 0);
    s[i] = static_cast<float>(static_cast<int>(rng() % 1000) + (y[i] ? 150 : 0)) / 1000.0f;
  }
  const double a1 = roc_auc(s.data(), y.data(), n, 1);
  EXPECT_EQ(roc_auc(s.data(), y.data(), n, 2), a1);
  EXPECT_EQ(roc_auc(s.data(), y.data(), n, 4), a1);
  std::vector<float> s2(s.begin(), s.begin() + 2000), y2(y.begin(), y.begin() + 2000);
  EXPECT_NEAR(roc_auc(s2.data(), y2.data(), 2000, 2), pairwise_auc(s2, y2), 1e-12);
  EXPECT_GT(a1, 0.55);
  EXPECT_LT(a1, 0.7);
}

TEST(RocAuc, PerfectInvertedAndConstantScores) {
  std::vector<float> y = {0, 0, 1, 1};
  std::vector<float> up = {0.1f, 0.2f, 0.3f, 0.4f}, down = {0.4f, 0.3f, 0.2f, 0.1f}, flat(4, 0.5f);
  EXPECT_DOUBLE_EQ(roc_auc(up.data(), y.data(), 4), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(down.data(), y.data(), 4), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(flat.data(), y.data(), 4), 0.5);
  // -0 and +0 are the same score; infinities sort at the ends.
  std::vector<float> zeros = {0.0f, -0.0f, -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::infinity()};
  std::vector<float> y2 = {1, 0, 0, 1};
  EXPECT_DOUBLE_EQ(roc_auc(zeros.data(), y2.data(), 4), (0.5 + 1 + 1 + 1) / 4);
}

TEST(RocAuc, OneClassAbsentGivesNan) {
  std::vector<float> s = {0.1f, 0.9f}, ones = {1, 1}, zeros = {0, 0};
  EXPECT_TRUE(std::isnan(roc_auc(s.data(), ones.data(), 2)));
  EXPECT_TRUE(std::isnan(roc_auc(s.data(), zeros.data(), 2)));
  EXPECT_TRUE(std::isnan(roc_auc(s.data(), zeros.data(), 0)));
}

TEST(RocAuc, BadLabelOrNanScoreIsInputErrorNamingTheRow) {
  std::vector<float> s = {0.1f, 0.2f, 0.3f}, y = {0, 1, 0.5f};
  try {
    roc_auc(s.data(), y.data(), 3);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("row 2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("0.5"), std::string::npos) << e.what();
  }
  std::vector<float> y_ok = {0, 1, 0}, s_nan = {0.1f, std::nanf(""), 0.3f};
  EXPECT_THROW(roc_auc(s_nan.data(), y_ok.data(), 3), InputError);
  EXPECT_THROW(log_loss(s.data(), y.data(), 3), InputError);
  EXPECT_THROW(accuracy(s.data(), y.data(), 3), InputError);
}

TEST(LogLoss, MatchesFormulaAndClampsConfidentMistakes) {
  std::vector<float> p = {0.9f, 0.2f, 0.5f}, y = {1, 0, 1};
  const double expected = -(std::log(0.9f) + std::log(1 - 0.2f) + std::log(0.5f)) / 3;
  EXPECT_NEAR(log_loss(p.data(), y.data(), 3), expected, 1e-7);
  std::vector<float> wrong = {0.0f, 1.0f}, y2 = {1, 0};
  EXPECT_NEAR(log_loss(wrong.data(), y2.data(), 2, 1e-7), -std::log(1e-7), 1e-6);
  EXPECT_TRUE(std::isfinite(log_loss(wrong.data(), y2.data(), 2)));
  EXPECT_TRUE(std::isnan(log_loss(p.data(), y.data(), 0)));
}

TEST(Accuracy, ThresholdIsInclusive) {
  std::vector<float> p = {0.5f, 0.49f, 0.8f, 0.1f}, y = {1, 0, 0, 0};
  EXPECT_DOUBLE_EQ(accuracy(p.data(), y.data(), 4), 0.75);
  EXPECT_DOUBLE_EQ(accuracy(p.data(), y.data(), 4, 0.9), 0.75);
  EXPECT_DOUBLE_EQ(accuracy(p.data(), y.data(), 4, 0.05), 0.25);
}

}  // namespace
}  // namespace bluewhale
