// AVX2 + FMA embedding kernels (compiled with -mavx2 -mfma; called only when the CPU has them).
#include <immintrin.h>

#include <cmath>

#include "nn/embedding_kernels.h"

namespace bluewhale::embedding_detail {
namespace {

// Helpers are local rather than std:: templates: an out-of-line instantiation compiled here with wider
// ISA flags could be picked by the linker for callers in baseline code.
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Lane mask for the first n (< 8) lanes: maskload/maskstore never touch the lanes past a row's end, so a
// dim-17 row does not read its neighbour (or past the end of the table).
inline __m256i tail_mask(int64_t n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Always inlined: GCC may delete calls to a function that only prefetches (it looks free of side
// effects), as it did to the count tables' prefetch in prep (tests/prep/codegen_test.cpp).
[[gnu::always_inline]] inline void prefetch_row(const float* row, int64_t dim, int hint_write) {
  // One prefetch per cache line of the row; rows of dim 16 are exactly one line.
  for (int64_t off = 0; off < dim; off += 16) {
    if (hint_write) __builtin_prefetch(row + off, 1, 3);
    else __builtin_prefetch(row + off, 0, 3);
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// kDim > 0: a compile-time dim, a multiple of 8, whose accumulators all live in registers.
// kDim == 0: any dim, columns in blocks of up to kBlock vectors, the last vector masked.
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
    const __m256 scale = _mm256_set1_ps(t.mean && end > begin ? 1.0f / static_cast<float>(end - begin) : 1.0f);
    if constexpr (kDim > 0) {
      constexpr int kVec = kDim / 8;
      __m256 acc[kVec];
      for (int v = 0; v < kVec; ++v) acc[v] = _mm256_setzero_ps();
      for (int64_t j = begin; j < end; ++j) {
        if (j + kPrefetchRows < last) prefetch_row(w + int64_t{ids[j + kPrefetchRows]} * kDim, kDim, 0);
        const float* row = w + int64_t{ids[j]} * kDim;
        for (int v = 0; v < kVec; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(row + 8 * v));
      }
      for (int v = 0; v < kVec; ++v) _mm256_storeu_ps(dst + 8 * v, _mm256_mul_ps(acc[v], scale));
    } else {
      for (int64_t c = 0; c < dim; c += 8 * kBlock) {
        const int64_t width = min64(8 * kBlock, dim - c);
        const int nvec = static_cast<int>((width + 7) / 8);
        const __m256i mask = tail_mask(width - 8 * (nvec - 1));
        __m256 acc[kBlock];
        for (int v = 0; v < kBlock; ++v) acc[v] = _mm256_setzero_ps();
        for (int64_t j = begin; j < end; ++j) {
          if (c == 0 && j + kPrefetchRows < last) prefetch_row(w + int64_t{ids[j + kPrefetchRows]} * dim, dim, 0);
          const float* row = w + int64_t{ids[j]} * dim + c;
          for (int v = 0; v < nvec - 1; ++v) acc[v] = _mm256_add_ps(acc[v], _mm256_loadu_ps(row + 8 * v));
          acc[nvec - 1] = _mm256_add_ps(acc[nvec - 1], _mm256_maskload_ps(row + 8 * (nvec - 1), mask));
        }
        for (int v = 0; v < nvec - 1; ++v) _mm256_storeu_ps(dst + c + 8 * v, _mm256_mul_ps(acc[v], scale));
        _mm256_maskstore_ps(dst + c + 8 * (nvec - 1), mask, _mm256_mul_ps(acc[nvec - 1], scale));
      }
    }
  }
}

void forward_avx2(const ForwardTable& t, int64_t bag_begin, int64_t bag_end) {
  switch (t.dim) {
    case 8: return forward_table<8>(t, bag_begin, bag_end);
    case 16: return forward_table<16>(t, bag_begin, bag_end);
    case 32: return forward_table<32>(t, bag_begin, bag_end);
    case 64: return forward_table<64>(t, bag_begin, bag_end);
    case 128: return forward_table<128>(t, bag_begin, bag_end);
    default: return forward_table<0>(t, bag_begin, bag_end);
  }
}

// Fixed dim (multiple of 8): the row gradient stays in registers from accumulation to update.
template <int kDim, Optimizer kOpt>
void backward_fixed(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p) {
  constexpr int kVec = kDim / 8;
  for (int64_t u = u_begin; u < u_end; ++u) {
    if (u + kPrefetchRows < u_end) prefetch_row(t.weights + int64_t{t.rows[u + kPrefetchRows]} * kDim, kDim, 1);
    __m256 g[kVec];
    for (int v = 0; v < kVec; ++v) g[v] = _mm256_setzero_ps();
    for (int32_t k = t.starts[u]; k < t.starts[u + 1]; ++k) {
      const int32_t b = t.bags[k];
      const __m256 s = _mm256_set1_ps(t.bag_scale ? t.bag_scale[b] : 1.0f);
      const float* src = t.grad + int64_t{b} * t.ld;
      for (int v = 0; v < kVec; ++v) g[v] = _mm256_fmadd_ps(s, _mm256_loadu_ps(src + 8 * v), g[v]);
    }
    const int32_t row = t.rows[u];
    float* w = t.weights + int64_t{row} * kDim;
    float step = p.lr;
    if constexpr (kOpt == Optimizer::kRowwiseAdagrad) {
      __m256 ss = _mm256_setzero_ps();
      for (int v = 0; v < kVec; ++v) ss = _mm256_fmadd_ps(g[v], g[v], ss);
      float& state = t.state[row];
      state += hsum(ss) / static_cast<float>(kDim);
      step = p.lr / (std::sqrt(state) + p.eps);
    }
    const __m256 neg_step = _mm256_set1_ps(-step);
    const __m256 decay = _mm256_set1_ps(t.decay);
    for (int v = 0; v < kVec; ++v)
      _mm256_storeu_ps(w + 8 * v, _mm256_fmadd_ps(neg_step, g[v], _mm256_mul_ps(decay, _mm256_loadu_ps(w + 8 * v))));
  }
}

// Any dim: the row gradient is accumulated in scratch (D floats, L1-resident), the last vector masked.
template <Optimizer kOpt>
void backward_any(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p, float* g) {
  const int64_t dim = t.dim;
  const int64_t nvec = (dim + 7) / 8, lv = 8 * (nvec - 1);
  const __m256i mask = tail_mask(dim - lv);
  for (int64_t u = u_begin; u < u_end; ++u) {
    if (u + kPrefetchRows < u_end) prefetch_row(t.weights + int64_t{t.rows[u + kPrefetchRows]} * dim, dim, 1);
    for (int64_t v = 0; v < nvec; ++v) _mm256_storeu_ps(g + 8 * v, _mm256_setzero_ps());
    for (int32_t k = t.starts[u]; k < t.starts[u + 1]; ++k) {
      const int32_t b = t.bags[k];
      const __m256 s = _mm256_set1_ps(t.bag_scale ? t.bag_scale[b] : 1.0f);
      const float* src = t.grad + int64_t{b} * t.ld;
      for (int64_t v = 0; v < nvec - 1; ++v)
        _mm256_storeu_ps(g + 8 * v, _mm256_fmadd_ps(s, _mm256_loadu_ps(src + 8 * v), _mm256_loadu_ps(g + 8 * v)));
      _mm256_storeu_ps(g + lv, _mm256_fmadd_ps(s, _mm256_maskload_ps(src + lv, mask), _mm256_loadu_ps(g + lv)));
    }
    const int32_t row = t.rows[u];
    float* w = t.weights + int64_t{row} * dim;
    float step = p.lr;
    if constexpr (kOpt == Optimizer::kRowwiseAdagrad) {
      // Masked-out lanes of g stayed zero, so they add nothing to the sum of squares.
      __m256 ss = _mm256_setzero_ps();
      for (int64_t v = 0; v < nvec; ++v) {
        const __m256 x = _mm256_loadu_ps(g + 8 * v);
        ss = _mm256_fmadd_ps(x, x, ss);
      }
      float& state = t.state[row];
      state += hsum(ss) / static_cast<float>(dim);
      step = p.lr / (std::sqrt(state) + p.eps);
    }
    const __m256 neg_step = _mm256_set1_ps(-step);
    const __m256 decay = _mm256_set1_ps(t.decay);
    for (int64_t v = 0; v < nvec - 1; ++v)
      _mm256_storeu_ps(w + 8 * v, _mm256_fmadd_ps(neg_step, _mm256_loadu_ps(g + 8 * v), _mm256_mul_ps(decay, _mm256_loadu_ps(w + 8 * v))));
    _mm256_maskstore_ps(w + lv, mask,
                        _mm256_fmadd_ps(neg_step, _mm256_loadu_ps(g + lv), _mm256_mul_ps(decay, _mm256_maskload_ps(w + lv, mask))));
  }
}

template <Optimizer kOpt>
void backward_dim(const BackwardTable& t, int64_t u_begin, int64_t u_end, OptimizerParams p, float* g) {
  switch (t.dim) {
    case 8: return backward_fixed<8, kOpt>(t, u_begin, u_end, p);
    case 16: return backward_fixed<16, kOpt>(t, u_begin, u_end, p);
    case 32: return backward_fixed<32, kOpt>(t, u_begin, u_end, p);
    case 64: return backward_fixed<64, kOpt>(t, u_begin, u_end, p);
    default: return backward_any<kOpt>(t, u_begin, u_end, p, g);
  }
}

void backward_avx2(const BackwardTable& t, int64_t u_begin, int64_t u_end, Optimizer opt, OptimizerParams p,
                   float* g) {
  if (opt == Optimizer::kSgd) backward_dim<Optimizer::kSgd>(t, u_begin, u_end, p, g);
  else backward_dim<Optimizer::kRowwiseAdagrad>(t, u_begin, u_end, p, g);
}

int64_t find_bad_id_avx2(const int32_t* ids, int64_t n, int64_t rows) {
  const uint32_t limit = static_cast<uint32_t>(min64(rows, int64_t{1} << 31));
  // Unsigned max over a chunk: a negative id becomes >= 2^31 >= limit, so one compare per chunk covers
  // both ends; only a failing chunk is rescanned to find the exact position.
  constexpr int64_t kChunk = 256;
  for (int64_t i = 0; i < n; i += kChunk) {
    const int64_t m = min64(kChunk, n - i);
    __m256i vmax = _mm256_setzero_si256();
    int64_t k = 0;
    for (; k + 8 <= m; k += 8)
      vmax = _mm256_max_epu32(vmax, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ids + i + k)));
    alignas(32) uint32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vmax);
    uint32_t mx = 0;
    for (uint32_t lane : lanes) mx = lane > mx ? lane : mx;
    for (; k < m; ++k) mx = static_cast<uint32_t>(ids[i + k]) > mx ? static_cast<uint32_t>(ids[i + k]) : mx;
    if (mx >= limit)
      for (int64_t q = i; q < i + m; ++q)
        if (static_cast<uint32_t>(ids[q]) >= limit) return q;
  }
  return -1;
}

}  // namespace

const Kernels& avx2_kernels() {
  static const Kernels k{forward_avx2, backward_avx2, find_bad_id_avx2};
  return k;
}

}  // namespace bluewhale::embedding_detail
