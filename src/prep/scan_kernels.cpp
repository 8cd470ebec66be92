#include "prep/scan_kernels.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>

namespace bluewhale::text {
namespace {

// Set bits of x (no POPCNT instruction on baseline x86-64: __builtin_popcountll would be a libgcc call).
inline std::size_t popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555;
  x = (x & 0x3333333333333333) + ((x >> 2) & 0x3333333333333333);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0F;
  return static_cast<std::size_t>((x * 0x0101010101010101) >> 56);
}

}  // namespace

ScanResult scan_separators_baseline(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                    int quote, uint32_t* out) {
  ScanResult r;
  uint32_t* o = out;
  for (std::size_t at = begin; at < end; at += 64) {
    uint64_t m = 0, nl = 0, q = 0;
#if defined(__SSE2__)
    if (at + 64 <= n) {
      const __m128i d = _mm_set1_epi8(delim), nv = _mm_set1_epi8('\n'), qv = _mm_set1_epi8(static_cast<char>(quote));
      for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at + 16 * k));
        const __m128i isnl = _mm_cmpeq_epi8(x, nv);
        const __m128i hit = _mm_or_si128(_mm_cmpeq_epi8(x, d), isnl);
        m |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(hit))) << (16 * k);
        nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(isnl))) << (16 * k);
        if (quote >= 0) q |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, qv))));
      }
    } else
#endif
    {
      for (std::size_t i = at, e = std::min(at + 64, n); i < e; ++i) {
        const char c = s[i];
        if (c == delim || c == '\n') m |= uint64_t{1} << (i - at);
        if (c == '\n') nl |= uint64_t{1} << (i - at);
        if (quote >= 0 && c == static_cast<char>(quote)) q = 1;
      }
    }
    r.quote = r.quote || q != 0;
    r.newlines += popcount64(nl);
    const std::size_t cnt = popcount64(m);
    const uint32_t base = static_cast<uint32_t>(at);
    // Eight offsets at a time whether or not that many bits are set (tzcnt of 0 writes junk past the
    // count, overwritten later): fewer mispredicted loop exits than one bit per iteration.
    for (std::size_t i = 0; i < cnt; i += 8)
      for (int u = 0; u < 8; ++u) {
        o[i + u] = base + static_cast<uint32_t>(__builtin_ctzll(m | uint64_t{1} << 63));
        m &= m - 1;
      }
    o += cnt;
  }
  r.count = static_cast<std::size_t>(o - out);
  return r;
}

LineScan scan_lines_baseline(const char* s, std::size_t n) {
  LineScan r;
  uint64_t prev_nl = uint64_t{1} << 63, prev_cr = 0;
  for (std::size_t at = 0; at < n; at += 64) {
    uint64_t nl = 0, cr = 0;
#if defined(__SSE2__)
    if (at + 64 <= n) {
      const __m128i nv = _mm_set1_epi8('\n'), rv = _mm_set1_epi8('\r');
      for (int k = 0; k < 4; ++k) {
        const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at + 16 * k));
        nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, nv)))) << (16 * k);
        cr |= static_cast<uint64_t>(static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, rv)))) << (16 * k);
      }
    } else
#endif
    {
      for (std::size_t i = at, e = std::min(at + 64, n); i < e; ++i) {
        nl |= static_cast<uint64_t>(s[i] == '\n') << (i - at);
        cr |= static_cast<uint64_t>(s[i] == '\r') << (i - at);
      }
    }
    if (nl) {
      r.newlines += popcount64(nl);
      r.last = at + 63 - static_cast<std::size_t>(__builtin_clzll(nl));
      r.blank = r.blank || blank_line_in_block(nl, cr, prev_nl, prev_cr);
    }
    prev_nl = nl;
    prev_cr = cr;
  }
  return r;
}

ScanLinesFn scan_lines_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return scan_lines_avx512;
    case SimdLevel::kAvx2: return scan_lines_avx2;
    case SimdLevel::kScalar: break;
  }
  return scan_lines_baseline;
}

ScanSeparatorsFn scan_separators_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return scan_separators_avx512;
    case SimdLevel::kAvx2: return scan_separators_avx2;
    case SimdLevel::kScalar: break;
  }
  return scan_separators_baseline;
}

}  // namespace bluewhale::text
