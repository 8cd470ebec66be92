// Per-ISA embedding kernels behind nn/embedding.h. embedding.cpp does the bookkeeping (checks, grouping of
// duplicate rows, thread partitioning) and calls one of these kernel sets, picked once per call from
// simd_level(). Each set lives in its own translation unit compiled for its ISA.
#pragma once

#include <cstdint>
#include <span>

#include "bluewhale/core/cpu.h"
#include "bluewhale/nn/embedding.h"

namespace bluewhale::embedding_detail {

// Rows ahead of the current lookup whose cache lines a kernel prefetches. A dim-16 row is one cache line
// and a few dozen cycles of work, so ~16 lines in flight are needed to cover DRAM latency.
inline constexpr int64_t kPrefetchRows = 16;

// One table's slice of a forward pass.
struct ForwardTable {
  const float* weights = nullptr;    // (R, D)
  int64_t dim = 0;                   // D
  const int32_t* ids = nullptr;      // (L), already checked
  const int64_t* offsets = nullptr;  // (B+1) or nullptr for one-hot
  float* dst = nullptr;              // (B, ld)
  int64_t ld = 0;
  bool mean = false;
};
// Pools bags [bag_begin, bag_end): dst[b] = scale_b * sum of weights[ids[j]] for j in bag b.
using ForwardFn = void (*)(const ForwardTable& t, int64_t bag_begin, int64_t bag_end);

// One table's slice of a backward pass, with duplicates already grouped by row (CSR).
struct BackwardTable {
  float* weights = nullptr;          // (R, D), updated in place
  float* state = nullptr;            // (R) row-wise Adagrad state, or nullptr for SGD
  int64_t dim = 0;                   // D
  const int32_t* rows = nullptr;     // (U) unique rows touched, in first-appearance order
  const int32_t* starts = nullptr;   // (U+1) contributions of unique row u: bags[starts[u] .. starts[u+1])
  const int32_t* bags = nullptr;     // (L) bag of each contribution, in lookup order within a row
  const float* bag_scale = nullptr;  // (B) 1 / bag length for mean pooling, nullptr for sum
  const float* grad = nullptr;       // (B, ld) gradient of the pooled output
  int64_t ld = 0;
  float decay = 1;                   // each updated row is scaled by this before the step: 1 - lr * weight_decay
};

enum class Optimizer { kSgd, kRowwiseAdagrad };
struct OptimizerParams {
  float lr = 0;
  float eps = 0;
};
// Sums each unique row's gradient in contribution order, then applies one optimizer step to it, for unique
// rows [u_begin, u_end). scratch holds at least D floats (private to the calling thread).
using BackwardFn = void (*)(const BackwardTable& t, int64_t u_begin, int64_t u_end, Optimizer opt,
                            OptimizerParams p, float* scratch);

// Index of the first id outside [0, rows) in ids (n), or -1.
using FindBadIdFn = int64_t (*)(const int32_t* ids, int64_t n, int64_t rows);

struct Kernels {
  ForwardFn forward;
  BackwardFn backward;
  FindBadIdFn find_bad_id;
};

const Kernels& scalar_kernels();
const Kernels& avx2_kernels();    // call only when detected_simd_level() >= kAvx2
const Kernels& avx512_kernels();  // call only when detected_simd_level() >= kAvx512

// The single dispatch point: the kernel set for simd_level() at the time of the call.
const Kernels& kernels_for(SimdLevel level);

// Plain reference of embedding_bag_forward, single-threaded and unchecked, for tests: out[t] (B, D_t).
void embedding_bag_forward_reference(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch,
                                     std::span<const EmbeddingOut> out);

}  // namespace bluewhale::embedding_detail
