// Dense layers of DLRM-style models: GEMM, fully connected layers with fused bias and ReLU, the DLRM
// feature interactions (pairwise dot and concatenation), sigmoid + binary cross-entropy from logits, and
// the DLRM reference initialisation.
//
// Conventions (as llm.c's train_gpt2.c): kernels come in forward/backward pairs over raw row-major float
// arrays owned by the caller; shapes are given in comments as (rows, cols). Backward kernels overwrite
// their gradient outputs (no accumulation). `threads` is an explicit count, used through parallel_for
// only; results do not depend on it (tests check 1 against 2 threads bit for bit).
// Every fast kernel has a *_reference twin: plain loops, single thread, for tests.
#pragma once

#include <cstdint>

namespace bluewhale {

// C (m, n) = alpha * op(A) op(B) + beta * C, all row-major. op(A) is (m, k): A is stored (m, k) with
// leading dimension lda, or (k, m) when trans_a. op(B) is (k, n): B is (k, n), or (n, k) when trans_b.
// Runs on OpenBLAS with one library thread per call: C's longer side is cut into blocks that depend on
// the shape only, spread over `threads` through parallel_for, so the library never runs a thread pool
// next to ours and the result is the same for any thread count. beta == 0 ignores C's previous contents
// (NaNs included).
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc, int threads);
void gemm_reference(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                    int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// Fully connected layer: y = act(x w^T + bias).
//   x (batch, in), w (out, in), bias (out) or nullptr -> y (batch, out).
// act is ReLU when relu, identity otherwise; bias and ReLU are applied in one pass over each block of y
// while it is still in cache.
void linear_forward(const float* x, const float* w, const float* bias, float* y, int64_t batch, int64_t in,
                    int64_t out, bool relu, int threads);
void linear_forward_reference(const float* x, const float* w, const float* bias, float* y, int64_t batch, int64_t in,
                              int64_t out, bool relu);

// Backward of linear_forward.
//   x (batch, in), w (out, in), y (batch, out) the forward output (post-activation; read only for the
//   ReLU mask), dy (batch, out) -> dx (batch, in) or nullptr (first layer), dw (out, in), dbias (out) or
//   nullptr.
// When relu, dy is overwritten in place with the pre-activation gradient dy * (y > 0): the caller's dy
// is dead after this call, and reusing it saves a (batch, out) buffer per layer.
void linear_backward(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw, float* dbias,
                     int64_t batch, int64_t in, int64_t out, bool relu, int threads);
void linear_backward_reference(const float* x, const float* w, const float* y, float* dy, float* dx, float* dw,
                               float* dbias, int64_t batch, int64_t in, int64_t out, bool relu);

// The T sparse-feature vectors of a batch, each of width dim, at any strides: vector t of sample b starts
// at data + b * sample_stride + t * table_stride. (batch, T, dim) contiguous has sample_stride = T * dim,
// table_stride = dim; (T, batch, dim) has sample_stride = dim, table_stride = batch * dim.
struct StridedVectors {
  const float* data = nullptr;
  int64_t sample_stride = 0;
  int64_t table_stride = 0;
};
// The same layout, writable, for gradients.
struct StridedGrads {
  float* data = nullptr;
  int64_t sample_stride = 0;
  int64_t table_stride = 0;
};

// Width of the dot interaction's output: dim + (tables + 1) * tables / 2.
int64_t dot_interaction_width(int64_t tables, int64_t dim);

// DLRM pairwise dot interaction (dlrm_s_pytorch.py interact_features, arch_interaction_op "dot",
// no self-interaction). Per sample, Z = [z0; e_1; ...; e_T] is (T + 1, dim) and
//   out = [z0, Z_1.Z_0, Z_2.Z_0, Z_2.Z_1, Z_3.Z_0, ...]
// i.e. z0 followed by the pairs (i, j), i > j, row-major over i.
//   z0 (batch, dim), emb T x (batch, dim) strided -> out (batch, dot_interaction_width(T, dim)).
void dot_interaction_forward(const float* z0, StridedVectors emb, float* out, int64_t batch, int64_t tables,
                             int64_t dim, int threads);
void dot_interaction_forward_reference(const float* z0, StridedVectors emb, float* out, int64_t batch,
                                       int64_t tables, int64_t dim);
// Backward: z0, emb as in forward, dout (batch, width) -> dz0 (batch, dim), demb T x (batch, dim).
void dot_interaction_backward(const float* z0, StridedVectors emb, const float* dout, float* dz0, StridedGrads demb,
                              int64_t batch, int64_t tables, int64_t dim, int threads);
void dot_interaction_backward_reference(const float* z0, StridedVectors emb, const float* dout, float* dz0,
                                        StridedGrads demb, int64_t batch, int64_t tables, int64_t dim);

// Concatenation interaction ("cat"): out = [z0, e_1, ..., e_T].
//   z0 (batch, dim), emb T x (batch, dim) -> out (batch, (T + 1) * dim).
void concat_interaction_forward(const float* z0, StridedVectors emb, float* out, int64_t batch, int64_t tables,
                                int64_t dim, int threads);
//   dout (batch, (T + 1) * dim) -> dz0 (batch, dim), demb T x (batch, dim).
void concat_interaction_backward(const float* dout, float* dz0, StridedGrads demb, int64_t batch, int64_t tables,
                                 int64_t dim, int threads);

// Logistic function, exact to float rounding for any x (no overflow of exp for large |x|).
float stable_sigmoid(float x);

// Mean binary cross-entropy of sigmoid(logits) against labels in [0, 1]:
//   logits (n), labels (n) -> mean over n of max(x, 0) - x * y + log1p(exp(-|x|)), accumulated in double.
// Finite for any finite logit. n == 0 gives 0.
double bce_with_logits_forward(const float* logits, const float* labels, int64_t n);
// dlogits (n) = (sigmoid(x) - y) / n, the gradient of the mean above.
void bce_with_logits_backward(const float* logits, const float* labels, float* dlogits, int64_t n);

// DLRM reference initialisation of a Linear(in, out) layer (dlrm_s_pytorch.py create_mlp):
//   w (out, in) ~ N(0, sqrt(2 / (in + out))), bias (out) ~ N(0, sqrt(1 / out)).
// Same seed, same values on every platform (own normal sampler on a 64-bit Mersenne Twister).
void dlrm_linear_init(float* w, float* bias, int64_t in, int64_t out, uint64_t seed);

}  // namespace bluewhale
