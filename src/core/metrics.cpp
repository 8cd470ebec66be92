#include "bluewhale/core/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "bluewhale/core/buffer.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {
namespace {

constexpr int kRadixBits = 11;
constexpr int kRadixSize = 1 << kRadixBits;
// Item layout: bit 0 = label, bits 1..32 = order-preserving key of the score.
constexpr int kKeyShift = 1;
constexpr int kPasses = 3;  // 3 x 11 bits cover key bits 1..33
// Below this size threads cost more than they save.
constexpr int64_t kParallelMin = 1 << 16;

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

// Stable LSD radix sort of items by bits [kKeyShift, kKeyShift + 33). Every pass counts per slice and
// scatters per slice in slice order, so the result is the same for any thread count. Returns the buffer
// holding the sorted items (src or tmp).
uint64_t* radix_sort(uint64_t* src, uint64_t* tmp, int64_t n, int threads) {
  const int slices = n < kParallelMin ? 1 : threads;
  std::vector<int64_t> hist(static_cast<std::size_t>(slices) * kRadixSize);
  auto slice_begin = [&](int s) { return n * s / slices; };
  for (int pass = 0; pass < kPasses; ++pass) {
    const int shift = kKeyShift + pass * kRadixBits;
    std::fill(hist.begin(), hist.end(), 0);
    parallel_for(slices, slices, [&](int64_t sb, int64_t se, int) {
      for (int64_t s = sb; s < se; ++s) {
        int64_t* h = &hist[static_cast<std::size_t>(s) * kRadixSize];
        for (int64_t i = slice_begin(static_cast<int>(s)); i < slice_begin(static_cast<int>(s) + 1); ++i)
          ++h[(src[i] >> shift) & (kRadixSize - 1)];
      }
    });
    // A pass where every item has the same digit moves nothing; probabilities in (0, 1) share their top
    // bits, so this usually saves a whole pass.
    bool trivial = false;
    for (int d = 0; d < kRadixSize && !trivial; ++d) {
      int64_t total = 0;
      for (int s = 0; s < slices; ++s) total += hist[static_cast<std::size_t>(s) * kRadixSize + d];
      if (total == n) trivial = true;
      else if (total != 0) break;
    }
    if (trivial) continue;
    // Exclusive prefix over (digit, slice) turns counts into scatter offsets.
    int64_t pos = 0;
    for (int d = 0; d < kRadixSize; ++d) {
      for (int s = 0; s < slices; ++s) {
        int64_t& h = hist[static_cast<std::size_t>(s) * kRadixSize + d];
        int64_t c = h;
        h = pos;
        pos += c;
      }
    }
    parallel_for(slices, slices, [&](int64_t sb, int64_t se, int) {
      for (int64_t s = sb; s < se; ++s) {
        int64_t* off = &hist[static_cast<std::size_t>(s) * kRadixSize];
        for (int64_t i = slice_begin(static_cast<int>(s)); i < slice_begin(static_cast<int>(s) + 1); ++i)
          tmp[off[(src[i] >> shift) & (kRadixSize - 1)]++] = src[i];
      }
    });
    std::swap(src, tmp);
  }
  return src;
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

  const uint64_t* sorted = radix_sort(items.data(), tmp.data(), n, threads);
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
