// The scan kernels for AVX-512: one 64-byte compare per block, and the offsets of each 16-byte quarter
// written by one compress of the quarter's byte positions instead of a bit-by-bit loop (a Criteo row has
// a separator every ~6 bytes, so that loop ran ~10 times per block). Digit fields eight records at a
// time, one per 64-bit lane.
#include <immintrin.h>

// GCC 12's AVX-512 headers pass _mm512_undefined_*() as the merge source of masked builtins, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593); nothing here is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "bluewhale/data/column.h"

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

namespace {

// The run kernels' lanes: fields r .. r + 7 of the records (f's entries in the separator offsets at
// stride nf), each field's start offset (modulo 2^32, as the offsets) and length, from one gather of the
// separators before and after it (e[j * nf] | e[j * nf + 1] << 32). Lanes past br are masked off, loads
// included (offsets past the region's last record are not valid data).
struct FieldLanes {
  __mmask8 active;
  __m512i start, len;
};
struct FieldGather {
  explicit FieldGather(std::size_t nf)
      : nf_(nf), step_(_mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int>(nf)))) {}
  FieldLanes at(const uint32_t* e, std::size_t r, std::size_t br) const {
    FieldLanes l;
    l.active = br - r >= 8 ? __mmask8{0xFF} : static_cast<__mmask8>((1u << (br - r)) - 1);
    const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(r * nf_)), step_);
    const __m512i pair = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), l.active, idx, e, 4);
    l.start = _mm512_and_si512(_mm512_add_epi64(pair, _mm512_set1_epi64(1)), _mm512_set1_epi64(0xFFFFFFFF));
    l.len = _mm512_sub_epi64(_mm512_srli_epi64(pair, 32), l.start);
    return l;
  }
  std::size_t nf_;
  __m256i step_;
};

}  // namespace

// The baseline's SWAR conversion (parse_number.h: digits8) in eight lanes: the field's bytes moved to the
// top of its word and padded below with '0', checked to be digits, then combined by multiply-adds of
// byte pairs (x10), word pairs (x100) and the two halves (x10000).
std::size_t digits_run_avx512(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                              std::size_t br, float* dst) {
  const FieldGather fields(nf);
  const __m512i eight = _mm512_set1_epi64(8);
  const __m512i limit = _mm512_set1_epi64(static_cast<long long>(n));
  const __m512i zeros = _mm512_set1_epi64(0x3030303030303030), high_nibbles = _mm512_set1_epi64(static_cast<long long>(0xF0F0F0F0F0F0F0F0));
  const __m512i sixes = _mm512_set1_epi64(0x0606060606060606), threes = _mm512_set1_epi64(0x3333333333333333);
  const __m512i x10 = _mm512_set1_epi16(0x010A), x100 = _mm512_set1_epi32(0x00010064), x10000 = _mm512_set1_epi64(10000);
  const __m256 missing = _mm256_set1_ps(kMissingFloat);
  for (; r < br; r += 8) {
    const FieldLanes l = fields.at(e, r, br);
    const __mmask8 active = l.active;
    const __m512i vb = l.start, len = l.len;
    __mmask8 bad = _mm512_mask_cmpgt_epu64_mask(active, len, eight) |
                   _mm512_mask_cmpgt_epu64_mask(active, _mm512_add_epi64(vb, eight), limit);
    __m512i x = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), static_cast<__mmask8>(active & ~bad), vb, s, 1);
    const __m512i bits = _mm512_slli_epi64(len, 3);
    x = _mm512_or_si512(_mm512_sllv_epi64(x, _mm512_sub_epi64(_mm512_set1_epi64(64), bits)), _mm512_srlv_epi64(zeros, bits));
    const __m512i hi = _mm512_and_si512(x, high_nibbles);
    const __m512i carry = _mm512_and_si512(_mm512_add_epi64(x, sixes), high_nibbles);
    bad |= _mm512_mask_cmpneq_epi64_mask(active, _mm512_or_si512(hi, _mm512_srli_epi64(carry, 4)), threes);
    x = _mm512_sub_epi64(x, zeros);
    x = _mm512_madd_epi16(_mm512_maddubs_epi16(x, x10), x100);  // per lane: [first 4 digits, last 4 digits]
    x = _mm512_add_epi64(_mm512_mul_epu32(x, x10000), _mm512_srli_epi64(x, 32));
    __m256 f = _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(x));
    f = _mm256_mask_blend_ps(_mm512_cmpeq_epi64_mask(len, _mm512_setzero_si512()), f, missing);
    if (bad) {
      const unsigned first = static_cast<unsigned>(__builtin_ctz(bad));
      _mm256_mask_storeu_ps(dst + r, static_cast<__mmask8>(active & ((1u << first) - 1)), f);
      return r + first;
    }
    _mm256_mask_storeu_ps(dst + r, active, f);
  }
  return br;
}

// key8_run in eight lanes: the separators' pairs and the fields' 8 bytes gathered (missing fields' lanes
// not loaded: they stay 0), the bytes reversed within each lane (categorical_key8 reads them big-endian).
std::size_t key8_run_avx512(const char* s, std::size_t n, const uint32_t* e, std::size_t nf, std::size_t r,
                            std::size_t br, int64_t* dst, uint8_t* valid) {
  const FieldGather fields(nf);
  const __m512i one = _mm512_set1_epi64(1), eight = _mm512_set1_epi64(8);
  const __m512i limit = _mm512_set1_epi64(static_cast<long long>(n));
  // Byte indices within each 128-bit lane: 7..0 for its first word, 15..8 for its second.
  const __m512i reverse = _mm512_set_epi64(0x08090A0B0C0D0E0F, 0x0001020304050607, 0x08090A0B0C0D0E0F, 0x0001020304050607,
                                           0x08090A0B0C0D0E0F, 0x0001020304050607, 0x08090A0B0C0D0E0F, 0x0001020304050607);
  for (; r < br; r += 8) {
    const FieldLanes l = fields.at(e, r, br);
    const __mmask8 active = l.active;
    const __m512i vb = l.start, len = l.len;
    const __mmask8 bad = _mm512_mask_cmpneq_epu64_mask(active, _mm512_or_si512(len, eight), eight) |
                         _mm512_mask_cmpgt_epu64_mask(active, _mm512_add_epi64(vb, eight), limit);
    const __mmask8 present = _mm512_mask_cmpneq_epu64_mask(active & ~bad, len, _mm512_setzero_si512());
    __m512i x = _mm512_mask_i64gather_epi64(_mm512_setzero_si512(), present, vb, s, 1);
    x = _mm512_shuffle_epi8(x, reverse);
    const __m128i v = _mm512_cvtepi64_epi8(_mm512_maskz_mov_epi64(present, one));
    const __mmask8 store = bad ? static_cast<__mmask8>(active & ((1u << __builtin_ctz(bad)) - 1)) : active;
    _mm512_mask_storeu_epi64(dst + r, store, x);
    _mm_mask_storeu_epi8(valid + r, store, v);
    if (bad) return r + static_cast<unsigned>(__builtin_ctz(bad));
  }
  return br;
}

}  // namespace bluewhale::text
