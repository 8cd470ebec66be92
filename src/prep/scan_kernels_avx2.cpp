// scan_separators for AVX2: 32-byte compares, offsets extracted eight bits at a time (see the baseline).
#include <immintrin.h>

#include <algorithm>

#include "prep/scan_kernels.h"

namespace bluewhale::text {

ScanResult scan_separators_avx2(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                int quote, uint32_t* out) {
  ScanResult r;
  uint32_t* o = out;
  const __m256i d = _mm256_set1_epi8(delim), nv = _mm256_set1_epi8('\n'), qv = _mm256_set1_epi8(static_cast<char>(quote));
  for (std::size_t at = begin; at < end; at += 64) {
    uint64_t m = 0, nl = 0, q = 0;
    if (at + 64 <= n) {
      for (int k = 0; k < 2; ++k) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + at + 32 * k));
        const __m256i isnl = _mm256_cmpeq_epi8(x, nv);
        const __m256i hit = _mm256_or_si256(_mm256_cmpeq_epi8(x, d), isnl);
        m |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(hit))) << (32 * k);
        nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(isnl))) << (32 * k);
        if (quote >= 0) q |= static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, qv)));
      }
    } else {
      for (std::size_t i = at, e = std::min(at + 64, n); i < e; ++i) {
        const char c = s[i];
        if (c == delim || c == '\n') m |= uint64_t{1} << (i - at);
        if (c == '\n') nl |= uint64_t{1} << (i - at);
        if (quote >= 0 && c == static_cast<char>(quote)) q = 1;
      }
    }
    r.quote = r.quote || q != 0;
    r.newlines += static_cast<std::size_t>(__builtin_popcountll(nl));
    const std::size_t cnt = static_cast<std::size_t>(__builtin_popcountll(m));
    const uint32_t base = static_cast<uint32_t>(at);
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

LineScan scan_lines_avx2(const char* s, std::size_t n) {
  LineScan r;
  uint64_t prev_nl = uint64_t{1} << 63, prev_cr = 0;
  for (std::size_t at = 0; at < n; at += 64) {
    uint64_t nl = 0, cr = 0;
    if (at + 64 <= n) {
      const __m256i nv = _mm256_set1_epi8('\n'), rv = _mm256_set1_epi8('\r');
      for (int k = 0; k < 2; ++k) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + at + 32 * k));
        nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, nv)))) << (32 * k);
        cr |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, rv)))) << (32 * k);
      }
    } else {
      for (std::size_t i = at; i < n; ++i) {
        nl |= static_cast<uint64_t>(s[i] == '\n') << (i - at);
        cr |= static_cast<uint64_t>(s[i] == '\r') << (i - at);
      }
    }
    if (nl) {
      r.newlines += static_cast<std::size_t>(__builtin_popcountll(nl));
      r.last = at + 63 - static_cast<std::size_t>(__builtin_clzll(nl));
      r.blank = r.blank || blank_line_in_block(nl, cr, prev_nl, prev_cr);
    }
    prev_nl = nl;
    prev_cr = cr;
  }
  return r;
}

}  // namespace bluewhale::text
