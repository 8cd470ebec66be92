// scan_separators for AVX-512: one 64-byte compare per block, and the offsets of each 16-byte quarter
// written by one compress of the quarter's byte positions instead of a bit-by-bit loop (a Criteo row has a
// separator every ~6 bytes, so that loop ran ~10 times per block).
#include <immintrin.h>

#include "prep/scan_kernels.h"

namespace bluewhale::text {

ScanResult scan_separators_avx512(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                  int quote, uint32_t* out) {
  ScanResult r;
  uint32_t* o = out;
  const __m512i d = _mm512_set1_epi8(delim), nv = _mm512_set1_epi8('\n'), qv = _mm512_set1_epi8(static_cast<char>(quote));
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i sixteen = _mm512_set1_epi32(16);
  bool q = false;
  for (std::size_t at = begin; at < end; at += 64) {
    __mmask64 m = 0, nl = 0;
    if (at + 64 <= n) {
      const __m512i x = _mm512_loadu_si512(s + at);
      nl = _mm512_cmpeq_epi8_mask(x, nv);
      m = _mm512_cmpeq_epi8_mask(x, d) | nl;
      if (quote >= 0) q = q || _mm512_cmpeq_epi8_mask(x, qv) != 0;
    } else {
      // The text's last partial block: byte by byte (a masked vector load would be correct but is a
      // 64-byte access to the address sanitizer).
      for (std::size_t i = at; i < n; ++i) {
        const char c = s[i];
        if (c == delim || c == '\n') m |= __mmask64{1} << (i - at);
        if (c == '\n') nl |= __mmask64{1} << (i - at);
        if (quote >= 0 && c == static_cast<char>(quote)) q = true;
      }
    }
    r.newlines += static_cast<std::size_t>(__builtin_popcountll(nl));
    __m512i pos = _mm512_add_epi32(iota, _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(at))));
    for (int k = 0; k < 4; ++k) {
      const __mmask16 mk = static_cast<__mmask16>(m >> (16 * k));
      // Compress into a register and store all 16 lanes (the memory form of compress is microcoded and
      // slow on some cores); lanes past the count are the slack the caller provides.
      _mm512_storeu_si512(o, _mm512_maskz_compress_epi32(mk, pos));
      o += __builtin_popcount(mk);
      pos = _mm512_add_epi32(pos, sixteen);
    }
  }
  r.quote = q;
  r.count = static_cast<std::size_t>(o - out);
  return r;
}

LineScan scan_lines_avx512(const char* s, std::size_t n) {
  LineScan r;
  uint64_t prev_nl = uint64_t{1} << 63, prev_cr = 0;
  for (std::size_t at = 0; at < n; at += 64) {
    uint64_t nl = 0, cr = 0;
    if (at + 64 <= n) {
      const __m512i x = _mm512_loadu_si512(s + at);
      nl = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n'));
      cr = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r'));
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
