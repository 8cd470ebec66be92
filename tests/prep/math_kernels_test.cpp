#include "prep/ops/math_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "prep/ops/fast_math.h"
#include "test_util.h"

namespace bluewhale::prep_ops {
namespace {

std::vector<SimdLevel> levels() { return testing::supported_simd_levels(); }

uint32_t bits_of(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// Every level over in[offset, offset + n) against the definition, bit for bit: Log1pTable (the log1p
// operator's function before the kernels) for values >= 0, everything else untouched; the flag says
// whether a negative value was there.
void check(const std::vector<float>& in, std::size_t offset, std::size_t n, const std::string& what) {
  std::vector<float> want(in.begin() + static_cast<std::ptrdiff_t>(offset),
                          in.begin() + static_cast<std::ptrdiff_t>(offset + n));
  bool want_negative = false;
  for (float& x : want) {
    want_negative = want_negative || x < 0.0f;
    if (x >= 0.0f) x = Log1pTable::instance()(x);
  }
  for (SimdLevel level : levels()) {
    std::vector<float> got(in.begin() + static_cast<std::ptrdiff_t>(offset),
                           in.begin() + static_cast<std::ptrdiff_t>(offset + n));
    const bool negative = log1p_column_for(level)(got.data(), n);
    const std::string at = what + " at " + std::string(simd_level_name(level)) + ", offset " +
                           std::to_string(offset) + ", n " + std::to_string(n);
    EXPECT_EQ(negative, want_negative) << at;
    for (std::size_t k = 0; k < n; ++k)
      ASSERT_EQ(bits_of(got[k]), bits_of(want[k])) << at << ", value " << in[offset + k] << " at " << k;
  }
}

TEST(MathKernels, Log1pColumnEqualsTheScalarFunctionBitForBit) {
  std::mt19937 rng(11);
  std::vector<float> v;
  // Whole numbers around the table's end, fractions, every scale, tiny values (the Taylor branch),
  // subnormals, signed zeros, infinity, NaN, negatives.
  for (int i = 0; i < Log1pTable::kSize + 300; i += 7) v.push_back(static_cast<float>(i));
  for (int i = 0; i < 200; ++i) v.push_back(std::uniform_real_distribution<float>(0.0f, 10.0f)(rng));
  for (int e = -40; e <= 38; ++e) v.push_back(std::ldexp(1.37f, e));
  for (float x : {0.0f, -0.0f, 1e-4f, 9.99e-5f, 1.0001e-4f, 1e-30f, 1e-42f, 0.5f, 4095.0f, 4095.5f, 4096.0f, 4097.0f,
                  1e7f, 3.4e38f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                  -1.0f, -0.5f, -1e-30f, -std::numeric_limits<float>::infinity(), 2147483648.0f, 1.5e10f})
    v.push_back(x);
  std::shuffle(v.begin(), v.end(), rng);
  check(v, 0, v.size(), "mixed values");
  // Vector bodies and scalar tails: every length up to 40 at four offsets, with and without negatives.
  std::vector<float> pos, neg;
  for (int i = 0; i < 48; ++i) {
    pos.push_back(i % 3 == 0 ? static_cast<float>(i * 13) : static_cast<float>(i) * 0.73f);
    neg.push_back(i % 11 == 5 ? -static_cast<float>(i) : static_cast<float>(i) * 1.9f);
  }
  for (std::size_t n = 0; n <= 40; ++n)
    for (std::size_t offset = 0; offset < 4; ++offset) {
      check(pos, offset, n, "no negatives");
      check(neg, offset, n, "some negatives");
    }
}

// fill_nan, clip and count_nan at every level against their scalar definitions, bit for bit (signed
// zeros and infinities included), over lengths 0-40 from four offsets.
TEST(MathKernels, FillClipAndCountNanEqualTheDefinitions) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  std::vector<float> v = {nan, 0.0f, -0.0f, 1.5f, -3.0f, inf, -inf, 7.0f, nan, 100.0f, -0.5f, 2e30f, -2e30f, nan, 5.0f};
  std::mt19937 rng(3);
  while (v.size() < 48) v.push_back(rng() % 5 == 0 ? nan : std::uniform_real_distribution<float>(-20.0f, 20.0f)(rng));
  const std::pair<float, float> bounds[] = {{0.0f, inf}, {-10.0f, 10.0f}, {-0.0f, 0.0f}, {0.0f, -0.0f}, {-inf, 2.0f}, {3.0f, 3.0f}};
  for (std::size_t n = 0; n <= 40; ++n)
    for (std::size_t offset = 0; offset < 4; ++offset) {
      const float* in = v.data() + offset;
      int64_t want_nan = 0;
      std::vector<float> want_fill(in, in + n);
      for (float& x : want_fill) {
        want_nan += std::isnan(x) ? 1 : 0;
        if (std::isnan(x)) x = -1.25f;
      }
      for (SimdLevel level : levels()) {
        const std::string at = std::string(simd_level_name(level)) + ", n " + std::to_string(n) + ", offset " +
                               std::to_string(offset);
        EXPECT_EQ(count_nan_for(level)(in, n), want_nan) << at;
        std::vector<float> got(in, in + n);
        fill_nan_for(level)(got.data(), n, -1.25f);
        for (std::size_t k = 0; k < n; ++k) ASSERT_EQ(bits_of(got[k]), bits_of(want_fill[k])) << at << " fill at " << k;
        for (const auto& [lo, hi] : bounds) {
          std::vector<float> want(in, in + n), clipped(in, in + n);
          for (float& x : want) {
            const float y = x < lo ? lo : x;
            x = y > hi ? hi : y;
          }
          clip_for(level)(clipped.data(), n, lo, hi);
          for (std::size_t k = 0; k < n; ++k)
            ASSERT_EQ(bits_of(clipped[k]), bits_of(want[k])) << at << " clip [" << lo << ", " << hi << "] at " << k
                                                                << " of " << in[k];
        }
      }
    }
}

}  // namespace
}  // namespace bluewhale::prep_ops
