#include "prep/scan_kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "prep/scan_kernels_impl.h"

namespace bluewhale::text {
namespace {

struct Baseline {
  // No POPCNT instruction on baseline x86-64: __builtin_popcountll would be a libgcc call.
  static std::size_t popcount(uint64_t x) {
    x -= (x >> 1) & 0x5555555555555555;
    x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F;
    return static_cast<std::size_t>((x * 0x0101010101010101) >> 56);
  }
  static void separator_masks(const char* p, char delim, int quote, uint64_t& sep, uint64_t& nl, bool& quote_seen) {
#if defined(__SSE2__)
    const __m128i d = _mm_set1_epi8(delim), nv = _mm_set1_epi8('\n'), qv = _mm_set1_epi8(static_cast<char>(quote));
    for (int k = 0; k < 4; ++k) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
      const __m128i isnl = _mm_cmpeq_epi8(x, nv);
      sep |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, d), isnl))))
             << (16 * k);
      nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(isnl))) << (16 * k);
      if (quote >= 0) quote_seen = quote_seen || _mm_movemask_epi8(_mm_cmpeq_epi8(x, qv)) != 0;
    }
#else
    scan_impl::tail_separator_masks(p, 0, 64, delim, quote, sep, nl, quote_seen);
#endif
  }
  static void line_masks(const char* p, uint64_t& nl, uint64_t& cr) {
#if defined(__SSE2__)
    const __m128i nv = _mm_set1_epi8('\n'), rv = _mm_set1_epi8('\r');
    for (int k = 0; k < 4; ++k) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * k));
      nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, nv)))) << (16 * k);
      cr |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, rv)))) << (16 * k);
    }
#else
    scan_impl::tail_line_masks(p, 0, 64, nl, cr);
#endif
  }
  static uint32_t* write_offsets(uint64_t sep, uint32_t base, uint32_t* out) {
    return scan_impl::write_offsets_by_bits(sep, popcount(sep), base, out);
  }
};

}  // namespace

ScanResult scan_separators_baseline(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                    int quote, uint32_t* out) {
  return scan_impl::scan_separators<Baseline>(s, n, begin, end, delim, quote, out);
}

LineScan scan_lines_baseline(const char* s, std::size_t n) { return scan_impl::scan_lines<Baseline>(s, n); }

ScanLinesFn scan_lines_for(SimdLevel level) {
  return simd_pick(level, scan_lines_baseline, scan_lines_avx2, scan_lines_avx512);
}

ScanSeparatorsFn scan_separators_for(SimdLevel level) {
  return simd_pick(level, scan_separators_baseline, scan_separators_avx2, scan_separators_avx512);
}

}  // namespace bluewhale::text
