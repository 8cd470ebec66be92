#include "bluewhale/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "bluewhale/core/buffer.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "core/radix_sort.h"

namespace bluewhale {
namespace {

// Item layout: bit 0 = label, bits 1..32 = order-preserving key of the score.
constexpr int kKeyShift = 1;
constexpr int kKeyBits = 33;

void check_label(float y, int64_t i) {
  BW_CHECK(y == 0.0f || y == 1.0f, InputError, "label at row ", i, " is ", y, "; expected 0 or 1");
}

void check_inputs(const float* preds, const float* labels, int64_t n, const char* what) {
  BW_CHECK(n >= 0, InputError, what, ": negative row count ", n);
  for (int64_t i = 0; i < n; ++i) {
    check_label(labels[i], i);
    BW_CHECK(!std::isnan(preds[i]), InputError, what, ": prediction at row ", i, " is NaN");
  }
}

// Unsigned key whose integer order is the float order: negatives have all bits flipped (so larger
// magnitudes sort lower), non-negatives get the sign bit set. Zero of either sign maps to one key.
inline uint32_t order_key(float v) {
  if (v == 0.0f) v = 0.0f;
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}

}  // namespace

double roc_auc(const float* scores, const float* labels, int64_t n, int threads) {
  check_inputs(scores, labels, n, "roc_auc");
  threads = resolve_threads(threads);
  AlignedBuffer<uint64_t> items(static_cast<std::size_t>(n)), tmp(static_cast<std::size_t>(n));
  int64_t positives = 0;
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t y = labels[i] == 1.0f;
    positives += static_cast<int64_t>(y);
    items[i] = (static_cast<uint64_t>(order_key(scores[i])) << kKeyShift) | y;
  }
  const int64_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return std::numeric_limits<double>::quiet_NaN();

  const uint64_t* sorted = radix_sort(items.data(), tmp.data(), n, kKeyShift, kKeyBits, threads);
  // Walk groups of equal score in ascending order: each positive beats every negative below its group
  // and ties half of the negatives inside it. Counts stay integers (doubled for the half) until the end
  // so the sum is exact for any n that fits in memory.
  uint64_t twice_wins = 0;
  int64_t neg_below = 0;
  for (int64_t i = 0; i < n;) {
    const uint64_t key = sorted[i] >> kKeyShift;
    int64_t pos = 0, neg = 0;
    for (; i < n && (sorted[i] >> kKeyShift) == key; ++i) {
      const int64_t y = static_cast<int64_t>(sorted[i] & 1);
      pos += y;
      neg += 1 - y;
    }
    twice_wins += static_cast<uint64_t>(pos) * static_cast<uint64_t>(2 * neg_below + neg);
    neg_below += neg;
  }
  return static_cast<double>(twice_wins) / 2.0 / static_cast<double>(positives) / static_cast<double>(negatives);
}

double log_loss(const float* probs, const float* labels, int64_t n, double eps) {
  check_inputs(probs, labels, n, "log_loss");
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double p = std::clamp(static_cast<double>(probs[i]), eps, 1.0 - eps);
    sum -= labels[i] == 1.0f ? std::log(p) : std::log1p(-p);
  }
  return sum / static_cast<double>(n);
}

double accuracy(const float* probs, const float* labels, int64_t n, double threshold) {
  check_inputs(probs, labels, n, "accuracy");
  if (n == 0) return std::numeric_limits<double>::quiet_NaN();
  int64_t right = 0;
  for (int64_t i = 0; i < n; ++i) right += ((probs[i] >= threshold) == (labels[i] == 1.0f));
  return static_cast<double>(right) / static_cast<double>(n);
}

}  // namespace bluewhale
