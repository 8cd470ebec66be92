#include "core/radix_sort.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {
namespace {

constexpr int kRadixBits = 11;
constexpr int kRadixSize = 1 << kRadixBits;
// Below this size threads cost more than they save.
constexpr int64_t kParallelMin = 1 << 16;

}  // namespace

uint64_t* radix_sort(uint64_t* src, uint64_t* tmp, int64_t n, int first_bit, int bits, int threads) {
  BW_ASSERT(first_bit >= 0 && bits >= 1 && first_bit + bits <= 64, "radix_sort: bits out of range");
  const int slices = n < kParallelMin ? 1 : std::max(1, threads);
  const int passes = (bits + kRadixBits - 1) / kRadixBits;
  std::vector<int64_t> hist(static_cast<std::size_t>(slices) * kRadixSize);
  auto slice_begin = [&](int s) { return n * s / slices; };
  auto digit_mask = [&](int pass) { return (uint64_t{1} << std::min(kRadixBits, bits - pass * kRadixBits)) - 1; };
  // In one slice a digit's counts do not change as the items move: all passes' counts come from one read.
  std::vector<int64_t> all;
  if (slices == 1) {
    all.assign(static_cast<std::size_t>(passes) * kRadixSize, 0);
    for (int64_t i = 0; i < n; ++i)
      for (int pass = 0; pass < passes; ++pass)
        ++all[static_cast<std::size_t>(pass) * kRadixSize + ((src[i] >> (first_bit + pass * kRadixBits)) & digit_mask(pass))];
  }
  for (int pass = 0; pass < passes; ++pass) {
    const int shift = first_bit + pass * kRadixBits;
    const uint64_t mask = digit_mask(pass);
    if (slices == 1) {
      std::copy_n(all.begin() + static_cast<std::ptrdiff_t>(pass) * kRadixSize, kRadixSize, hist.begin());
    } else {
      std::fill(hist.begin(), hist.end(), 0);
      parallel_for(slices, slices, [&](int64_t sb, int64_t se, int) {
        for (int64_t s = sb; s < se; ++s) {
          int64_t* h = &hist[static_cast<std::size_t>(s) * kRadixSize];
          for (int64_t i = slice_begin(static_cast<int>(s)); i < slice_begin(static_cast<int>(s) + 1); ++i)
            ++h[(src[i] >> shift) & mask];
        }
      });
    }
    // A pass where every item has the same digit moves nothing (probabilities in (0, 1) share their top
    // bits, small counts their high ones): skipped.
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
        const int64_t c = h;
        h = pos;
        pos += c;
      }
    }
    parallel_for(slices, slices, [&](int64_t sb, int64_t se, int) {
      for (int64_t s = sb; s < se; ++s) {
        int64_t* off = &hist[static_cast<std::size_t>(s) * kRadixSize];
        for (int64_t i = slice_begin(static_cast<int>(s)); i < slice_begin(static_cast<int>(s) + 1); ++i)
          tmp[off[(src[i] >> shift) & mask]++] = src[i];
      }
    });
    std::swap(src, tmp);
  }
  return src;
}

}  // namespace bluewhale
