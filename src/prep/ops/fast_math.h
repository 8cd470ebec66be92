// Elementwise math for the prep hot path, with std:: versions as the reference (tests/prep/fast_math_test).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace bluewhale::prep_ops {

// log(1 + x) for float x >= 0, within 1 ulp of std::log1p. glibc's log1pf was 9% of a whole Criteo prep
// run; this is a branch-light double-precision evaluation: u = 1 + x = m * 2^e with m in [sqrt(1/2),
// sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, whose odd series converges to far below
// float precision in 7 terms. 1 + x is exact in double for every float x >= 2^-29; below 1e-4 a Taylor
// polynomial is used instead.
inline float log1p_nonneg(float xf) {
  double x = xf;
  if (x < 1e-4) return static_cast<float>(x * (1.0 - x * (0.5 - x * (1.0 / 3.0))));
  if (!(x < 1e300)) return xf;  // +inf stays +inf (x is a float, so never above 3.4e38 otherwise)
  double u = 1.0 + x;
  uint64_t bits;
  std::memcpy(&bits, &u, sizeof bits);
  int e = static_cast<int>((bits >> 52) & 0x7ff) - 1023;
  bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
  double m;
  std::memcpy(&m, &bits, sizeof m);
  if (m > 1.4142135623730951) {
    m *= 0.5;
    e += 1;
  }
  double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (1.0 / 13))))));
  return static_cast<float>(e * 0.69314718055994530942 + 2.0 * s * p);
}

// log1p_nonneg with a table for small whole numbers, which is what count features (Criteo's I1..I13)
// mostly hold: the table lookup replaces a double division on the common path, same results.
class Log1pTable {
 public:
  static constexpr int kSize = 4096;
  Log1pTable() {
    for (int i = 0; i < kSize; ++i) table_[i] = log1p_nonneg(static_cast<float>(i));
  }
  float operator()(float x) const {
    if (x >= 0.0f && x < static_cast<float>(kSize)) {
      int i = static_cast<int>(x);
      if (static_cast<float>(i) == x) return table_[i];
    }
    return log1p_nonneg(x);
  }
  static const Log1pTable& instance() {
    static const Log1pTable t;
    return t;
  }
  const float* data() const { return table_; }  // kSize values, for the vector kernels' gathers

 private:
  float table_[kSize];
};

}  // namespace bluewhale::prep_ops
