// AVX-512 (F/BW/DQ/VL) embedding kernels. Compiled everywhere, called only when detected_simd_level()
// reports AVX-512, so nothing here may run (or be inlined into code that runs) on a lesser CPU.
#include <immintrin.h>

// GCC 12's own AVX-512 headers pass _mm512_undefined_*() as the merge source of masked builtins, which
// -Wmaybe-uninitialized reports at every inlined use (GCC bug 105593); nothing here is uninitialised.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <cmath>

#include "nn/embedding_kernels.h"

namespace bluewhale::embedding_detail {
namespace {

// Helpers are local rather than std:: templates: an out-of-line instantiation compiled here with wider
// ISA flags could be picked by the linker for callers in baseline code.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lanes [0, n) for n in [1, 16]: masked loads never fault on the lanes past a row's end.
inline __mmask16 tail_mask(int64_t n) { return static_cast<__mmask16>((1u << n) - 1u); }

// Always inlined: GCC may delete calls to a function that only prefetches (it looks free of side
// effects), as it did to the count tables' prefetch in prep (tests/prep/codegen_test.cpp).
[[gnu::always_inline]] inline void prefetch_row(const float* row, int64_t dim, int hint_write) {
  for (int64_t off = 0; off < dim; off += 16) {
    if (hint_write) __builtin_prefetch(row + off, 1, 3);
    else __builtin_prefetch(row + off, 0, 3);
  }
}

// kDim > 0: compile-time dim, a multiple of 16, accumulators in registers.
// kDim == 0: any dim, columns in blocks of up to kBlock vectors, the last one masked.
constexpr int kBlock = 8;

template <int kDim>
void forward_table(const ForwardTable& t, int64_t bag_begin, int64_t bag_end) {
  const int64_t dim = kDim > 0 ? kDim : t.dim;
  const int64_t last = t.offsets ? t.offsets[bag_end] : bag_end;
  const float* w = t.weights;
  const int32_t* ids = t.ids;
  for (int64_t b = bag_begin; b < bag_end; ++b) {
    const int64_t begin = t.offsets ? t.offsets[b] : b, end = t.offsets ? t.offsets[b + 1] : b + 1;
    float* dst = t.dst + b * t.ld;
    const __m512 scale = _mm512_set1_ps(t.mean && end > begin ? 1.0f / static_cast<float>(end - begin) : 1.0f);
    if constexpr (kDim > 0) {
      constexpr int kVec = kDim / 16;
      __m512 acc[kVec];
      for (int v = 0; v < kVec; ++v) acc[v] = _mm512_setzero_ps();
      for (int64_t j = begin; j < end; ++j) {
        if (j + kPrefetchRows < last) prefetch_row(w + int64_t{ids[j + kPrefetchRows]} * kDim, kDim, 0);
        const float* row = w + int64_t{ids[j]} * kDim;
        for (int v = 0; v < kVec; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(row + 16 * v));
      }
      for (int v = 0; v < kVec; ++v) _mm512_storeu_ps(dst + 16 * v, _mm512_mul_ps(acc[v], scale));
    } else {
      for (int64_t c = 0; c < dim; c += 16 * kBlock) {
        const int64_t width = min64(16 * kBlock, dim - c);
        const int nvec = static_cast<int>((width + 15) / 16);
        const __mmask16 mask = tail_mask(width - 16 * (nvec - 1));
        __m512 acc[kBlock];
        for (int v = 0; v < kBlock; ++v) acc[v] = _mm512_setzero_ps();
        for (int64_t j = begin; j < end; ++j) {
          if (c == 0 && j + kPrefetchRows < last) prefetch_row(w + int64_t{ids[j + kPrefetchRows]} * dim, dim, 0);
          const float* row = w + int64_t{ids[j]} * dim + c;
          for (int v = 0; v < nvec - 1; ++v) acc[v] = _mm512_add_ps(acc[v], _mm512_loadu_ps(row + 16 * v));
          acc[nvec - 1] = _mm512_add_ps(acc[nvec - 1], _mm512_maskz_loadu_ps(mask, row + 16 * (nvec - 1)));
        }
        for (int v = 0; v < nvec - 1; ++v) _mm512_storeu_ps(dst + c + 16 * v, _mm512_mul_ps(acc[v], scale));
        _mm512_mask_storeu_ps(dst + c + 16 * (nvec - 1), mask, _mm512_mul_ps(acc[nvec - 1], scale));
      }
    }
  }
}

void forward_avx512(const ForwardTable& t, int64_t bag_begin, int64_t bag_end) {
  switch (t.dim) {
    case 16: return forward_table<16>(t, bag_begin, bag_end);
    case 32: return forward_table<32>(t, bag_begin, bag_end);
    case 64: return forward_table<64>(t, bag_begin, bag_end);
    case 128: return forward_table<128>(t, bag_begin, bag_end);
    default: return forward_table<0>(t, bag_begin, bag_end);
  }
}

// Fixed dim (multiple of 16): the row gradient stays in registers from accumulation to update.
template <int kDim, Optimizer kOpt>
void backward_fixed(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p) {
  constexpr int kVec = kDim / 16;
  for (int64_t u = u_begin; u < u_end; ++u) {
    if (u + kPrefetchRows < u_end) prefetch_row(t.weights + int64_t{t.rows[u + kPrefetchRows]} * kDim, kDim, 1);
    __m512 g[kVec];
    for (int v = 0; v < kVec; ++v) g[v] = _mm512_setzero_ps();
    for (int32_t k = t.starts[u]; k < t.starts[u + 1]; ++k) {
      const int32_t b = t.bags[k];
      const __m512 s = _mm512_set1_ps(t.bag_scale ? t.bag_scale[b] : 1.0f);
      const float* src = t.grad + int64_t{b} * t.ld;
      for (int v = 0; v < kVec; ++v) g[v] = _mm512_fmadd_ps(s, _mm512_loadu_ps(src + 16 * v), g[v]);
    }
    const int32_t row = t.rows[u];
    float* w = t.weights + int64_t{row} * kDim;
    float step = p.lr;
    if constexpr (kOpt == Optimizer::kRowwiseAdagrad) {
      __m512 ss = _mm512_setzero_ps();
      for (int v = 0; v < kVec; ++v) ss = _mm512_fmadd_ps(g[v], g[v], ss);
      float& state = t.state[row];
      state += _mm512_reduce_add_ps(ss) / static_cast<float>(kDim);
      step = p.lr / (std::sqrt(state) + p.eps);
    }
    const __m512 neg_step = _mm512_set1_ps(-step);
    const __m512 decay = _mm512_set1_ps(t.decay);
    for (int v = 0; v < kVec; ++v)
      _mm512_storeu_ps(w + 16 * v, _mm512_fmadd_ps(neg_step, g[v], _mm512_mul_ps(decay, _mm512_loadu_ps(w + 16 * v))));
  }
}

// Any dim: the row gradient is accumulated in scratch (D floats rounded up to 16), the last vector masked.
template <Optimizer kOpt>
void backward_any(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p, float* g) {
  const int64_t dim = t.dim;
  const int64_t nvec = (dim + 15) / 16, lv = 16 * (nvec - 1);
  const __mmask16 mask = tail_mask(dim - lv);
  for (int64_t u = u_begin; u < u_end; ++u) {
    if (u + kPrefetchRows < u_end) prefetch_row(t.weights + int64_t{t.rows[u + kPrefetchRows]} * dim, dim, 1);
    for (int64_t v = 0; v < nvec; ++v) _mm512_storeu_ps(g + 16 * v, _mm512_setzero_ps());
    for (int32_t k = t.starts[u]; k < t.starts[u + 1]; ++k) {
      const int32_t b = t.bags[k];
      const __m512 s = _mm512_set1_ps(t.bag_scale ? t.bag_scale[b] : 1.0f);
      const float* src = t.grad + int64_t{b} * t.ld;
      for (int64_t v = 0; v < nvec - 1; ++v)
        _mm512_storeu_ps(g + 16 * v, _mm512_fmadd_ps(s, _mm512_loadu_ps(src + 16 * v), _mm512_loadu_ps(g + 16 * v)));
      _mm512_storeu_ps(g + lv, _mm512_fmadd_ps(s, _mm512_maskz_loadu_ps(mask, src + lv), _mm512_loadu_ps(g + lv)));
    }
    const int32_t row = t.rows[u];
    float* w = t.weights + int64_t{row} * dim;
    float step = p.lr;
    if constexpr (kOpt == Optimizer::kRowwiseAdagrad) {
      // Masked-out lanes of g stayed zero, so they add nothing to the sum of squares.
      __m512 ss = _mm512_setzero_ps();
      for (int64_t v = 0; v < nvec; ++v) {
        const __m512 x = _mm512_loadu_ps(g + 16 * v);
        ss = _mm512_fmadd_ps(x, x, ss);
      }
      float& state = t.state[row];
      state += _mm512_reduce_add_ps(ss) / static_cast<float>(dim);
      step = p.lr / (std::sqrt(state) + p.eps);
    }
    const __m512 neg_step = _mm512_set1_ps(-step);
    const __m512 decay = _mm512_set1_ps(t.decay);
    for (int64_t v = 0; v < nvec - 1; ++v)
      _mm512_storeu_ps(w + 16 * v,
                       _mm512_fmadd_ps(neg_step, _mm512_loadu_ps(g + 16 * v), _mm512_mul_ps(decay, _mm512_loadu_ps(w + 16 * v))));
    _mm512_mask_storeu_ps(w + lv, mask,
                          _mm512_fmadd_ps(neg_step, _mm512_loadu_ps(g + lv), _mm512_mul_ps(decay, _mm512_maskz_loadu_ps(mask, w + lv))));
  }
}

template <Optimizer kOpt>
void backward_dim(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p, float* g) {
  switch (t.dim) {
    case 16: return backward_fixed<16, kOpt>(t, u_begin, u_end, p);
    case 32: return backward_fixed<32, kOpt>(t, u_begin, u_end, p);
    case 64: return backward_fixed<64, kOpt>(t, u_begin, u_end, p);
    default: return backward_any<kOpt>(t, u_begin, u_end, p, g);
  }
}

void backward_avx512(const BackwardTable& t, int64_t u_begin, int64_t u_end, Optimizer opt, OptimizerParams p,
                     float* g) {
  if (opt == Optimizer::kSgd) backward_dim<Optimizer::kSgd>(t, u_begin, u_end, p, g);
  else backward_dim<Optimizer::kRowwiseAdagrad>(t, u_begin, u_end, p, g);
}

int64_t find_bad_id_avx512(const int32_t* ids, int64_t n, int64_t rows) {
  const uint32_t limit = static_cast<uint32_t>(min64(rows, int64_t{1} << 31));
  // One unsigned compare per lane catches negative ids too (they wrap to >= 2^31); lanes are OR-ed per
  // chunk and only a failing chunk is rescanned for the exact position.
  const __m512i lim = _mm512_set1_epi32(static_cast<int>(limit));
  constexpr int64_t kChunk = 256;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = min64(kChunk, n - i);
    __mmask16 bad = 0;
    int64_t k = 0;
    for (; k + 16 <= m; k += 16) bad |= _mm512_cmpge_epu32_mask(_mm512_loadu_si512(ids + i + k), lim);
    if (k < m) bad |= _mm512_mask_cmpge_epu32_mask(tail_mask(m - k), _mm512_maskz_loadu_epi32(tail_mask(m - k), ids + i + k), lim);
    if (bad)
      for (int64_t q = i; q < i + m; ++q)
        if (static_cast<uint32_t>(ids[q]) >= limit) return q;
  }
  return -1;
}

}  // namespace

const Kernels& avx512_kernels() {
  static const Kernels k{forward_avx512, backward_avx512, find_bad_id_avx512};
  return k;
}

}  // namespace bluewhale::embedding_detail
