#include "prep/ops/fast_math.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace bluewhale::prep_ops {
namespace {

// Distance in units in the last place between two finite floats of the same sign.
int64_t ulps(float a, float b) {
  int32_t ia, ib;
  std::memcpy(&ia, &a, 4);
  std::memcpy(&ib, &b, 4);
  return std::llabs(static_cast<int64_t>(ia) - ib);
}

TEST(Log1pNonneg, WithinOneUlpOfReferenceOverAllScales) {
  int64_t worst = 0;
  float worst_x = 0;
  auto check = [&](float x) {
    float ref = static_cast<float>(std::log1p(static_cast<double>(x)));
    int64_t d = ulps(log1p_nonneg(x), ref);
    if (d > worst) worst = d, worst_x = x;
  };
  // Every small integer (Criteo's dense features are counts), the boundaries of the branches, and a
  // log-uniform sweep from denormals to FLT_MAX.
  for (int i = 0; i <= 100000; ++i) check(static_cast<float>(i));
  for (float x : {0.0f, 1e-30f, 1e-8f, 9.99e-5f, 1e-4f, 1.0001e-4f, 0.41421356f, 0.41421357f, 1.0f, 3.0e38f,
                  std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()})
    check(x);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> exp10(-40, 38.5);
  for (int i = 0; i < 1000000; ++i) check(static_cast<float>(std::pow(10.0, exp10(rng))));
  EXPECT_LE(worst, 1) << "worst at x = " << worst_x;
}

TEST(Log1pNonneg, InfinityAndNaNPassThrough) {
  EXPECT_EQ(log1p_nonneg(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(log1p_nonneg(std::numeric_limits<float>::quiet_NaN())));
}

}  // namespace
}  // namespace bluewhale::prep_ops

namespace bluewhale::prep_ops {
namespace {

TEST(Log1pTable, AgreesWithTheFunctionEverywhere) {
  const Log1pTable& t = Log1pTable::instance();
  for (int i = 0; i < Log1pTable::kSize + 10; ++i) {
    float x = static_cast<float>(i);
    EXPECT_EQ(t(x), log1p_nonneg(x)) << x;
    EXPECT_EQ(t(x + 0.5f), log1p_nonneg(x + 0.5f)) << x + 0.5f;
  }
  EXPECT_EQ(t(1e9f), log1p_nonneg(1e9f));
}

}  // namespace
}  // namespace bluewhale::prep_ops
