// The scan kernels for AVX2: 32-byte compares, offsets extracted eight bits at a time.
#include <immintrin.h>

#include "prep/scan_kernels.h"
#include "prep/scan_kernels_impl.h"

namespace bluewhale::text {
namespace {

struct Avx2 {
  static std::size_t popcount(uint64_t x) { return static_cast<std::size_t>(__builtin_popcountll(x)); }
  static void separator_masks(const char* p, char delim, int quote, uint64_t& sep, uint64_t& nl, bool& quote_seen) {
    const __m256i d = _mm256_set1_epi8(delim), nv = _mm256_set1_epi8('\n'),
                  qv = _mm256_set1_epi8(static_cast<char>(quote));
    for (int k = 0; k < 2; ++k) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * k));
      const __m256i isnl = _mm256_cmpeq_epi8(x, nv);
      sep |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_or_si256(_mm256_cmpeq_epi8(x, d), isnl))))
             << (32 * k);
      nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(isnl))) << (32 * k);
      if (quote >= 0) quote_seen = quote_seen || _mm256_movemask_epi8(_mm256_cmpeq_epi8(x, qv)) != 0;
    }
  }
  static void line_masks(const char* p, uint64_t& nl, uint64_t& cr) {
    const __m256i nv = _mm256_set1_epi8('\n'), rv = _mm256_set1_epi8('\r');
    for (int k = 0; k < 2; ++k) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * k));
      nl |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, nv)))) << (32 * k);
      cr |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, rv)))) << (32 * k);
    }
  }
  static uint32_t* write_offsets(uint64_t sep, uint32_t base, uint32_t* out) {
    return scan_impl::write_offsets_by_bits(sep, popcount(sep), base, out);
  }
};

}  // namespace

ScanResult scan_separators_avx2(const char* s, std::size_t n, std::size_t begin, std::size_t end, char delim, int quote,
                                uint32_t* out) {
  return scan_impl::scan_separators<Avx2>(s, n, begin, end, delim, quote, out);
}

LineScan scan_lines_avx2(const char* s, std::size_t n) { return scan_impl::scan_lines<Avx2>(s, n); }

}  // namespace bluewhale::text
