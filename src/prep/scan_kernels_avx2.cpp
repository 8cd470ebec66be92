// The scan kernels for AVX2: 32-byte compares, offsets extracted eight bits at a time; digit fields four
// records at a time, one per 64-bit lane.
#include <immintrin.h>

#include "bluewhale/data/column.h"

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

// digits_run_avx512 in four lanes (see there); lane masks are vectors here, and the values are small
// enough (offsets below 2^32) for AVX2's signed 64-bit compares.
std::size_t digits_run_avx2(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                            std::size_t br, float* dst) {
  const __m128i lane_step = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(static_cast<int>(nf)));
  const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3), zero = _mm256_setzero_si256();
  const __m256i one = _mm256_set1_epi64x(1), low32 = _mm256_set1_epi64x(0xFFFFFFFF), eight = _mm256_set1_epi64x(8);
  const __m256i limit = _mm256_set1_epi64x(static_cast<long long>(n)), sixty_four = _mm256_set1_epi64x(64);
  const __m256i zeros = _mm256_set1_epi64x(0x3030303030303030), high_nibbles = _mm256_set1_epi64x(static_cast<long long>(0xF0F0F0F0F0F0F0F0));
  const __m256i sixes = _mm256_set1_epi64x(0x0606060606060606), threes = _mm256_set1_epi64x(0x3333333333333333);
  const __m256i x10 = _mm256_set1_epi16(0x010A), x100 = _mm256_set1_epi32(0x00010064), x10000 = _mm256_set1_epi64x(10000);
  const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
  const __m128i lane_bits = _mm_setr_epi32(1, 2, 4, 8);
  const __m128 missing = _mm_set1_ps(kMissingFloat);
  const auto* words = reinterpret_cast<const long long*>(s);
  for (; r < br; r += 4) {
    const __m256i active = _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(br - r)), lane);
    const __m128i idx = _mm_add_epi32(_mm_set1_epi32(static_cast<int>(r * nf)), lane_step);
    const __m256i pair = _mm256_mask_i32gather_epi64(zero, reinterpret_cast<const long long*>(e), idx, active, 4);
    const __m256i vb = _mm256_and_si256(_mm256_add_epi64(pair, one), low32);
    const __m256i len = _mm256_sub_epi64(_mm256_srli_epi64(pair, 32), vb);
    __m256i bad = _mm256_and_si256(
        active, _mm256_or_si256(_mm256_cmpgt_epi64(len, eight), _mm256_cmpgt_epi64(_mm256_add_epi64(vb, eight), limit)));
    __m256i x = _mm256_mask_i64gather_epi64(zero, words, vb, _mm256_andnot_si256(bad, active), 1);
    const __m256i bits = _mm256_slli_epi64(len, 3);
    x = _mm256_or_si256(_mm256_sllv_epi64(x, _mm256_sub_epi64(sixty_four, bits)), _mm256_srlv_epi64(zeros, bits));
    const __m256i hi = _mm256_and_si256(x, high_nibbles);
    const __m256i carry = _mm256_and_si256(_mm256_add_epi64(x, sixes), high_nibbles);
    bad = _mm256_or_si256(bad, _mm256_andnot_si256(_mm256_cmpeq_epi64(_mm256_or_si256(hi, _mm256_srli_epi64(carry, 4)), threes), active));
    x = _mm256_sub_epi64(x, zeros);
    x = _mm256_madd_epi16(_mm256_maddubs_epi16(x, x10), x100);  // per lane: [first 4 digits, last 4 digits]
    x = _mm256_add_epi64(_mm256_mul_epu32(x, x10000), _mm256_srli_epi64(x, 32));
    __m128 f = _mm_cvtepi32_ps(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(x, low_halves)));
    const __m256i empty = _mm256_cmpeq_epi64(len, zero);
    f = _mm_blendv_ps(f, missing, _mm_castsi128_ps(_mm256_castsi256_si128(_mm256_permutevar8x32_epi32(empty, low_halves))));
    const unsigned bad_lanes = static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(bad)));
    const unsigned active_lanes = static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(active)));
    const unsigned store = bad_lanes ? active_lanes & ((1u << __builtin_ctz(bad_lanes)) - 1) : active_lanes;
    const __m128i store_mask = _mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32(static_cast<int>(store)), lane_bits), lane_bits);
    _mm_maskstore_ps(dst + r, store_mask, f);
    if (bad_lanes) return r + static_cast<unsigned>(__builtin_ctz(bad_lanes));
  }
  return br;
}

}  // namespace bluewhale::text
