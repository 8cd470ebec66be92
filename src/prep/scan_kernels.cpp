#include "prep/scan_kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cstring>

#include "bluewhale/core/hash.h"
#include "bluewhale/data/column.h"
#include "prep/parse_number.h"
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

// Up to 8 plain digits or missing (NaN): no data-dependent branch (missing reads as "0" and selects NaN).
std::size_t digits_run_baseline(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                                std::size_t br, float* dst) {
  for (e += r * nf; r < br; ++r, e += nf) {
    const std::size_t vb = static_cast<uint32_t>(e[0] + 1u);
    const std::size_t len = e[1] - vb;
    if (len > 8 || vb + 8 > n) break;
    uint64_t word;
    std::memcpy(&word, s + vb, 8);
    uint32_t d = 0;
    if (!digits8(len ? word : uint64_t{'0'}, len ? len : 1, d)) break;
    const float x = static_cast<float>(static_cast<int64_t>(d));  // as parse_float_digits
    dst[r] = len ? x : kMissingFloat;
  }
  return r;
}

// A mask, not a conditional, for missing values: the compiler made that a branch around the load,
// mispredicted on columns with many missing values.
std::size_t key8_run_baseline(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                              std::size_t br, int64_t* dst, uint8_t* valid) {
  for (e += r * nf; r < br; ++r, e += nf) {
    const std::size_t vb = static_cast<uint32_t>(e[0] + 1u);
    const std::size_t len = e[1] - vb;
    if ((len | 8) != 8 || vb + 8 > n) break;
    dst[r] = categorical_key8(s + vb) & -static_cast<int64_t>(len != 0);
    valid[r] = len != 0;
  }
  return r;
}

Key8RunFn key8_run_for(SimdLevel level) {
  // AVX2 (four-lane gathers) not tried: the scalar loop there.
  return simd_pick(level, key8_run_baseline, key8_run_baseline, key8_run_avx512);
}

DigitsRunFn digits_run_for(SimdLevel level) {
  return simd_pick(level, digits_run_baseline, digits_run_avx2, digits_run_avx512);
}

ScanLinesFn scan_lines_for(SimdLevel level) {
  return simd_pick(level, scan_lines_baseline, scan_lines_avx2, scan_lines_avx512);
}

ScanSeparatorsFn scan_separators_for(SimdLevel level) {
  return simd_pick(level, scan_separators_baseline, scan_separators_avx2, scan_separators_avx512);
}

}  // namespace bluewhale::text
