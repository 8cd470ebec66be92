// The scan kernels for AVX-512: one 64-byte compare per block, and the offsets of each 16-byte quarter
// written by one compress of the quarter's byte positions instead of a bit-by-bit loop (a Criteo row has
// a separator every ~6 bytes, so that loop ran ~10 times per block).
#include <immintrin.h>

#include "prep/scan_kernels.h"
#include "prep/scan_kernels_impl.h"

namespace bluewhale::text {
namespace {

struct Avx512 {
  static std::size_t popcount(uint64_t x) { return static_cast<std::size_t>(__builtin_popcountll(x)); }
  static void separator_masks(const char* p, char delim, int quote, uint64_t& sep, uint64_t& nl, bool& quote_seen) {
    const __m512i x = _mm512_loadu_si512(p);
    nl = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n'));
    sep = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(delim)) | nl;
    if (quote >= 0) quote_seen = quote_seen || _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(static_cast<char>(quote))) != 0;
  }
  static void line_masks(const char* p, uint64_t& nl, uint64_t& cr) {
    const __m512i x = _mm512_loadu_si512(p);
    nl = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n'));
    cr = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r'));
  }
  static uint32_t* write_offsets(uint64_t sep, uint32_t base, uint32_t* out) {
    __m512i pos = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                   _mm512_set1_epi32(static_cast<int>(base)));
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) {
      const __mmask16 mk = static_cast<__mmask16>(sep >> (16 * k));
      // Compress into a register and store all 16 lanes (the memory form of compress is microcoded and
      // slow on some cores); lanes past the count are the slack the caller provides.
      _mm512_storeu_si512(out, _mm512_maskz_compress_epi32(mk, pos));
      out += __builtin_popcount(mk);
      pos = _mm512_add_epi32(pos, _mm512_set1_epi32(16));
    }
    return out;
  }
};

}  // namespace

ScanResult scan_separators_avx512(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim,
                                  int quote, uint32_t* out) {
  return scan_impl::scan_separators<Avx512>(s, n, begin, end, delim, quote, out);
}

LineScan scan_lines_avx512(const char* s, std::size_t n) { return scan_impl::scan_lines<Avx512>(s, n); }

}  // namespace bluewhale::text
