#include "bluewhale/nn/dense.h"


#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "bluewhale/core/buffer.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/nn/blas.h"

namespace bluewhale {
namespace {

// Below this many multiply-adds a GEMM or layer is one library call on the caller: waking a worker
// costs more than the work.
constexpr int64_t kParallelMinMacs = int64_t{1} << 18;
// C is cut into at most this many blocks of at least kMinBlock rows (or columns), multiples of
// kBlockAlign so each block keeps whole register tiles. The cut depends on the shape only, never on the
// thread count: OpenBLAS's summation order changes with the size of a call (it picks other kernels for
// small problems), so a thread-dependent cut would make results depend on the thread count.
constexpr int64_t kMaxBlocks = 16;
constexpr int64_t kMinBlock = 64;
constexpr int64_t kBlockAlign = 16;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t x, int64_t to) { return ceil_div(x, to) * to; }

int effective_threads(int threads, int64_t macs) {
  return macs < kParallelMinMacs ? 1 : std::max(1, threads);
}

void blas_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  BW_ASSERT(m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
            "gemm dimensions exceed the BLAS int range: ", m, "x", n, "x", k);
  sgemm_row_major(trans_a, trans_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a,
                  static_cast<int>(lda), b, static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

// Runs fn(begin, end) over the shape-determined blocks of [0, n), spread over `threads`. With
// single_block the whole range is one block (work too small to split).
template <class Fn>
void for_blocks(int64_t n, int threads, bool single_block, Fn&& fn) {
  const int64_t size = single_block ? n : std::max(kMinBlock, round_up(ceil_div(n, kMaxBlocks), kBlockAlign));
  const int64_t blocks = ceil_div(n, size);
  parallel_for(blocks, threads, [&](int64_t p0, int64_t p1, int) {
    for (int64_t p = p0; p < p1; ++p) fn(p * size, std::min(n, (p + 1) * size));
  });
}


// 4 floats in an SSE register: the baseline ISA, so no run-time dispatch is needed for the interaction.
typedef float V4 __attribute__((vector_size(16)));
constexpr int64_t kLanes = 4;

inline V4 load4(const float* p) {
  V4 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
inline void store4(float* p, V4 v) { __builtin_memcpy(p, &v, sizeof(v)); }

// Explicit 4-wide code: at -O2 GCC leaves these loops scalar (and the ReLU as a branch), and they sit
// between GEMMs on every layer, so they cost as much as a sizeable part of the GEMM time.
void bias_act_rows(float* y, const float* bias, int64_t rows, int64_t out, bool relu) {
  if (!bias && !relu) return;
  const V4 zero = {0, 0, 0, 0};
  const int64_t vec_end = out - out % kLanes;
  for (int64_t r = 0; r < rows; ++r) {
    float* yr = y + r * out;
    int64_t j = 0;
    for (; j < vec_end; j += kLanes) {
      V4 v = load4(yr + j);
      if (bias) v += load4(bias + j);
      if (relu) v = v < zero ? zero : v;  // as std::max(v, 0): NaN stays NaN
      store4(yr + j, v);
    }
    for (; j < out; ++j) {
      float v = yr[j] + (bias ? bias[j] : 0.0f);
      yr[j] = relu ? std::max(v, 0.0f) : v;
    }
  }
}

// g[0..n) masked where y <= 0 (when relu) and added into acc[0..n).
void relu_mask_accumulate(float* g, const float* y, float* acc, int64_t n, bool relu) {
  const V4 zero = {0, 0, 0, 0};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    V4 v = load4(g + j);
    if (relu) {
      v = load4(y + j) > zero ? v : zero;
      store4(g + j, v);
    }
    store4(acc + j, load4(acc + j) + v);
  }
  for (; j < n; ++j) {
    if (relu && !(y[j] > 0.0f)) g[j] = 0.0f;
    acc[j] += g[j];
  }
}

// dz[0..n) += s * z[0..n)
inline void axpy(float* dz, float s, const float* z, int64_t n) {
  int64_t d = 0;
  for (; d + kLanes <= n; d += kLanes) store4(dz + d, load4(dz + d) + s * load4(z + d));
  for (; d < n; ++d) dz[d] += s * z[d];
}

}  // namespace

void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        float av = trans_a ? a[p * lda + i] : a[i * lda + p];
        float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        acc += static_cast<double>(av) * bv;
      }
      float prev = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
      c[i * ldc + j] = static_cast<float>(alpha * acc) + prev;
    }
  }
}

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads) {
  if (m <= 0 || n <= 0) return;
  init_blas();
  const bool small = m * n * k < kParallelMinMacs;
  if (small) {
    blas_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // Each C element comes from one call over the full k; blocks run along C's longer side.
  if (m >= n) {
    for_blocks(m, threads, false, [&](int64_t r0, int64_t r1) {
      const float* a_blk = trans_a ? a + r0 : a + r0 * lda;
      blas_sgemm(trans_a, trans_b, r1 - r0, n, k, alpha, a_blk, lda, b, ldb, beta, c + r0 * ldc, ldc);
    });
  } else {
    for_blocks(n, threads, false, [&](int64_t c0, int64_t c1) {
      const float* b_blk = trans_b ? b + c0 * ldb : b + c0;
      blas_sgemm(trans_a, trans_b, m, c1 - c0, k, alpha, a, lda, b_blk, ldb, beta, c + c0, ldc);
    });
  }
}

void linear_forward_reference(const float* x, const float* w, const float* bias, float* y, int64_t batch, int64_t in,
                              int64_t out, bool relu) {
  for (int64_t r = 0; r < batch; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; ++i) acc += static_cast<double>(x[r * in + i]) * w[o * in + i];
      float v = static_cast<float>(acc);
      y[r * out + o] = relu ? std::max(v, 0.0f) : v;
    }
  }
}

void linear_forward(const float* x, const float* w, const float* bias, float* y, int64_t batch, int64_t in,
                    int64_t out, bool relu, int threads) {
  if (batch <= 0 || out <= 0) return;
  init_blas();
  const bool small = batch * in * out < kParallelMinMacs;
  // Bias and ReLU run on each block right after its GEMM, while the block is still in L1/L2.
  for_blocks(batch, small ? 1 : threads, small, [&](int64_t r0, int64_t r1) {
    blas_sgemm(false, true, r1 - r0, out, in, 1.0f, x + r0 * in, in, w, in, 0.0f, y + r0 * out, out);
    bias_act_rows(y + r0 * out, bias, r1 - r0, out, relu);
  });
}

void linear_backward_reference(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw,
                               float* dbias, int64_t batch, int64_t in, int64_t out, bool relu) {
  if (relu) {
    for (int64_t t = 0; t < batch * out; ++t)
      if (!(y[t] > 0.0f)) dy[t] = 0.0f;
  }
  if (dbias) {
    for (int64_t o = 0; o < out; ++o) {
      double acc = 0;
      for (int64_t r = 0; r < batch; ++r) acc += dy[r * out + o];
      dbias[o] = static_cast<float>(acc);
    }
  }
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) {
      double acc = 0;
      for (int64_t r = 0; r < batch; ++r) acc += static_cast<double>(dy[r * out + o]) * x[r * in + i];
      dw[o * in + i] = static_cast<float>(acc);
    }
  }
  if (dx) {
    for (int64_t r = 0; r < batch; ++r) {
      for (int64_t i = 0; i < in; ++i) {
        double acc = 0;
        for (int64_t o = 0; o < out; ++o) acc += static_cast<double>(dy[r * out + o]) * w[o * in + i];
        dx[r * in + i] = static_cast<float>(acc);
      }
    }
  }
}

void linear_backward(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw, float* dbias,
                     int64_t batch, int64_t in, int64_t out, bool relu, int threads) {
  if (out <= 0) return;
  if (batch <= 0) {
    std::fill(dw, dw + out * in, 0.0f);
    if (dbias) std::fill(dbias, dbias + out, 0.0f);
    return;
  }
  if (relu || dbias) {
    // Mask and bias sum in one pass. Threads own columns, and each column is summed over rows in order,
    // so dbias does not depend on the thread count.
    const bool small = batch * out * 16 < kParallelMinMacs;
    for_blocks(out, small ? 1 : threads, small, [&](int64_t c0, int64_t c1) {
      std::vector<float> acc(c1 - c0, 0.0f);
      for (int64_t r = 0; r < batch; ++r) {
        float* g = dy + r * out;
        const float* yr = y + r * out;
        relu_mask_accumulate(g + c0, yr + c0, acc.data(), c1 - c0, relu);
      }
      if (dbias) std::copy(acc.begin(), acc.end(), dbias + c0);
    });
  }
  gemm(true, false, out, in, batch, 1.0f, dy, out, x, in, 0.0f, dw, in, threads);
  if (dx) gemm(false, false, batch, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in, threads);
}

int64_t dot_interaction_width(int64_t tables, int64_t dim) { return dim + (tables + 1) * tables / 2; }

void dot_interaction_forward_reference(const float* z0, StridedVectors emb, float* out, int64_t batch,
                                       int64_t tables, int64_t dim) {
  const int64_t width = dot_interaction_width(tables, dim);
  for (int64_t b = 0; b < batch; ++b) {
    auto vec = [&](int64_t i) {
      return i == 0 ? z0 + b * dim : emb.data + b * emb.sample_stride + (i - 1) * emb.table_stride;
    };
    float* o = out + b * width;
    for (int64_t d = 0; d < dim; ++d) o[d] = z0[b * dim + d];
    int64_t p = dim;
    for (int64_t i = 1; i <= tables; ++i) {
      for (int64_t j = 0; j < i; ++j) {
        float acc = 0;
        for (int64_t d = 0; d < dim; ++d) acc += vec(i)[d] * vec(j)[d];
        o[p++] = acc;
      }
    }
  }
}

void dot_interaction_forward(const float* z0, StridedVectors emb, float* out, int64_t batch, int64_t tables,
                             int64_t dim, int threads) {
  const int64_t width = dot_interaction_width(tables, dim);
  const int64_t rows = tables + 1;
  const int64_t padded = round_up(rows, kLanes);
  threads = effective_threads(threads, batch * rows * rows * dim / 2);
  parallel_for(batch, threads, [&](int64_t b0, int64_t b1, int) {
    // Z transposed, (dim, padded) with zero padding: for a fixed row i, the dots with rows j = 4q..4q+3
    // are four independent lanes, each summed over d in order (the reference's order, so the results are
    // identical to it), with no horizontal reduction.
    AlignedBuffer<float> zt(dim * padded);
    for (int64_t b = b0; b < b1; ++b) {
      auto vec = [&](int64_t i) {
        return i == 0 ? z0 + b * dim : emb.data + b * emb.sample_stride + (i - 1) * emb.table_stride;
      };
      for (int64_t i = 0; i < rows; ++i) {
        const float* v = vec(i);
        for (int64_t d = 0; d < dim; ++d) zt[d * padded + i] = v[d];
      }
      float* o = out + b * width;
      std::copy(z0 + b * dim, z0 + (b + 1) * dim, o);
      float* pairs = o + dim;
      for (int64_t i = 1; i < rows; ++i) {
        const float* zi = vec(i);
        for (int64_t j0 = 0; j0 < i; j0 += kLanes) {
          V4 acc = {0, 0, 0, 0};
          for (int64_t d = 0; d < dim; ++d) {
            V4 col;
            __builtin_memcpy(&col, &zt[d * padded + j0], sizeof(col));
            acc += zi[d] * col;
          }
          const int64_t n = std::min(kLanes, i - j0);
          for (int64_t l = 0; l < n; ++l) pairs[l] = acc[l];
          pairs += n;
        }
      }
    }
  });
}

void dot_interaction_backward_reference(const float* z0, StridedVectors emb, const float* dout, float* dz0,
                                        StridedGrads demb, int64_t batch, int64_t tables, int64_t dim) {
  const int64_t width = dot_interaction_width(tables, dim);
  std::vector<double> dz((tables + 1) * dim);
  for (int64_t b = 0; b < batch; ++b) {
    auto vec = [&](int64_t i) {
      return i == 0 ? z0 + b * dim : emb.data + b * emb.sample_stride + (i - 1) * emb.table_stride;
    };
    const float* g = dout + b * width;
    std::fill(dz.begin(), dz.end(), 0.0);
    for (int64_t d = 0; d < dim; ++d) dz[d] = g[d];
    int64_t p = dim;
    for (int64_t i = 1; i <= tables; ++i) {
      for (int64_t j = 0; j < i; ++j, ++p) {
        for (int64_t d = 0; d < dim; ++d) {
          dz[i * dim + d] += static_cast<double>(g[p]) * vec(j)[d];
          dz[j * dim + d] += static_cast<double>(g[p]) * vec(i)[d];
        }
      }
    }
    for (int64_t d = 0; d < dim; ++d) dz0[b * dim + d] = static_cast<float>(dz[d]);
    for (int64_t t = 0; t < tables; ++t) {
      float* dst = demb.data + b * demb.sample_stride + t * demb.table_stride;
      for (int64_t d = 0; d < dim; ++d) dst[d] = static_cast<float>(dz[(t + 1) * dim + d]);
    }
  }
}

void dot_interaction_backward(const float* z0, StridedVectors emb, const float* dout, float* dz0, StridedGrads demb,
                              int64_t batch, int64_t tables, int64_t dim, int threads) {
  const int64_t width = dot_interaction_width(tables, dim);
  const int64_t rows = tables + 1;
  threads = effective_threads(threads, batch * rows * rows * dim);
  parallel_for(batch, threads, [&](int64_t b0, int64_t b1, int) {
    // dZ = S Z with S the symmetric (rows, rows) matrix of pair gradients, zero diagonal. Building S
    // turns the scatter over pairs into row-wise axpys that run along d, contiguous in every operand.
    std::vector<float> s(rows * rows), dz(dim);
    for (int64_t b = b0; b < b1; ++b) {
      auto vec = [&](int64_t i) {
        return i == 0 ? z0 + b * dim : emb.data + b * emb.sample_stride + (i - 1) * emb.table_stride;
      };
      const float* g = dout + b * width + dim;
      for (int64_t i = 0; i < rows; ++i) s[i * rows + i] = 0.0f;
      for (int64_t i = 1, p = 0; i < rows; ++i) {
        for (int64_t j = 0; j < i; ++j, ++p) s[i * rows + j] = s[j * rows + i] = g[p];
      }
      for (int64_t i = 0; i < rows; ++i) {
        std::fill(dz.begin(), dz.end(), 0.0f);
        const float* si = &s[i * rows];
        for (int64_t j = 0; j < rows; ++j) {
          const float sij = si[j];
          const float* zj = vec(j);
          axpy(dz.data(), sij, zj, dim);
        }
        if (i == 0) {
          const float* g0 = dout + b * width;
          for (int64_t d = 0; d < dim; ++d) dz0[b * dim + d] = g0[d] + dz[d];
        } else {
          std::copy(dz.begin(), dz.end(), demb.data + b * demb.sample_stride + (i - 1) * demb.table_stride);
        }
      }
    }
  });
}

void concat_interaction_forward(const float* z0, StridedVectors emb, float* out, int64_t batch, int64_t tables,
                                int64_t dim, int threads) {
  const int64_t width = (tables + 1) * dim;
  threads = effective_threads(threads, batch * width * 4);
  parallel_for(batch, threads, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      float* o = out + b * width;
      std::copy(z0 + b * dim, z0 + (b + 1) * dim, o);
      for (int64_t t = 0; t < tables; ++t) {
        const float* src = emb.data + b * emb.sample_stride + t * emb.table_stride;
        std::copy(src, src + dim, o + (t + 1) * dim);
      }
    }
  });
}

void concat_interaction_backward(const float* dout, float* dz0, StridedGrads demb, int64_t batch, int64_t tables,
                                 int64_t dim, int threads) {
  const int64_t width = (tables + 1) * dim;
  threads = effective_threads(threads, batch * width * 4);
  parallel_for(batch, threads, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* g = dout + b * width;
      std::copy(g, g + dim, dz0 + b * dim);
      for (int64_t t = 0; t < tables; ++t) {
        std::copy(g + (t + 1) * dim, g + (t + 2) * dim, demb.data + b * demb.sample_stride + t * demb.table_stride);
      }
    }
  });
}

float stable_sigmoid(float x) {
  // exp of a non-positive argument never overflows; for x < 0 the e / (1 + e) form keeps tiny results
  // instead of rounding 1 - 1/(1 + e^-x) to 0.
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

double bce_with_logits_forward(const float* logits, const float* labels, int64_t n) {
  if (n <= 0) return 0.0;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double x = logits[i], y = labels[i];
    // log(1 + e^x) - x y rewritten so exp never sees a positive argument.
    sum += std::max(x, 0.0) - x * y + std::log1p(std::exp(-std::abs(x)));
  }
  return sum / static_cast<double>(n);
}

void bce_with_logits_backward(const float* logits, const float* labels, float* dlogits, int64_t n) {
  const float inv_n = n > 0 ? 1.0f / static_cast<float>(n) : 0.0f;
  for (int64_t i = 0; i < n; ++i) dlogits[i] = (stable_sigmoid(logits[i]) - labels[i]) * inv_n;
}

void dlrm_linear_init(float* w, float* bias, int64_t in, int64_t out, uint64_t seed) {
  BW_CHECK(in > 0 && out > 0, ConfigError, "linear layer shape must be positive, got in=", in, " out=", out);
  std::mt19937_64 rng(seed);
  // Box-Muller on our own uniforms: std::normal_distribution differs between standard libraries, and a
  // seed must give the same model everywhere.
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
  auto normal = [&] {
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  };
  const double w_std = std::sqrt(2.0 / static_cast<double>(in + out));
  for (int64_t t = 0; t < in * out; ++t) w[t] = static_cast<float>(w_std * normal());
  if (bias) {
    const double b_std = std::sqrt(1.0 / static_cast<double>(out));
    for (int64_t o = 0; o < out; ++o) bias[o] = static_cast<float>(b_std * normal());
  }
}

}  // namespace bluewhale
