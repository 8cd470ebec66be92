// Embedding bags over many tables at once: the sparse half of DLRM.
//
// Shapes (T tables, B bags per table, D = a table's dim, L_t = lookups of table t):
//   forward:  ids (L_t), offsets (B+1) or none, table (R, D) -> out (B, D) per table
//   backward: ids (L_t), offsets (B+1) or none, grad_out (B, D) per table -> table (R, D) updated in place
// The backward pass is fused with the optimizer: it never builds a dense (R, D) gradient. It sums the
// gradient of every row touched by the batch (duplicates within and across bags summed in lookup order) and
// applies exactly one optimizer step per unique row, as PyTorch's sparse SGD / row-wise Adagrad do on a
// coalesced sparse gradient. Results are bitwise identical for any thread count at a given SIMD level.
//
// Kernels are chosen once per call from simd_level() (core/cpu.h): scalar, AVX2 or AVX-512.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "bluewhale/core/buffer.h"

namespace bluewhale {

// One embedding table. Plain data; the kernels read and write it in place.
struct EmbeddingTable {
  int64_t rows = 0;                    // R; ids are int32, so R <= 2^31
  int64_t dim = 0;                     // D
  AlignedBuffer<float> weights;        // (R, D) row-major
  AlignedBuffer<float> adagrad_state;  // (R) row-wise Adagrad accumulator; empty until the first Adagrad step
  // Decoupled L2 regularisation (as AdamW): every update of a row first scales it by (1 - lr * weight_decay).
  // Lazy: only rows the batch touches decay, so a rare row is not shrunk towards zero between its uses.
  // 0 (the default) leaves the update bit-identical to plain SGD / row-wise Adagrad.
  float weight_decay = 0;
};

// A table of rows x dim with weights uniform in (-sqrt(1/rows), sqrt(1/rows)), the DLRM reference
// initialisation. Element (r, c) depends only on (seed, r, c): the same for any thread count.
// Throws ConfigError when rows is not in [1, 2^31] or dim < 1.
EmbeddingTable make_embedding_table(int64_t rows, int64_t dim, uint64_t seed, int threads);

// Pooling of the rows in one bag.
enum class PoolingMode {
  kSum,   // out = sum of rows
  kMean,  // out = sum of rows / bag length; an empty bag gives zeros in both modes
};

// The lookups of one table for a batch. Not owned.
struct EmbeddingBags {
  const int32_t* ids = nullptr;      // (L); bag b is ids[offsets[b] .. offsets[b+1])
  const int64_t* offsets = nullptr;  // (B+1), non-decreasing, offsets[0] >= 0; nullptr means one-hot:
                                     // L = B and bag b is {ids[b]}
};

// A batch of lookups over T tables.
struct EmbeddingBatch {
  int64_t batch = 0;                    // B, bags per table
  std::span<const EmbeddingBags> bags;  // (T), bags[t] indexes tables[t]
  PoolingMode mode = PoolingMode::kSum;
  // Forward checks every id against its table's rows (one vectorised pass) and the offsets for order,
  // throwing InputError that names the table, bag and id. Set false only when the loader has verified them:
  // bad ids then read out of bounds. The backward pass always checks (it writes in place, so it checks
  // every table before it updates any).
  bool check_ids = true;
};

// Row-major (B, ld) matrix of floats: bag b of one table lives at data + b * ld (D floats). Not owned.
struct EmbeddingOut {
  float* data = nullptr;
  int64_t ld = 0;
};
struct EmbeddingGradOut {
  const float* data = nullptr;
  int64_t ld = 0;
};

// Pools every bag of every table: out[t] (B, D_t) with leading stride out[t].ld. Parallel over
// (table, bag) pairs; `threads` as in parallel.h. On InputError the outputs are partly written.
void embedding_bag_forward(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch,
                           std::span<const EmbeddingOut> out, int threads);

// Same with one concatenated output out (B, ld), table t at columns [sum of D_s for s < t, + D_t).
void embedding_bag_forward(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch, float* out,
                           int64_t ld, int threads);

// Reusable scratch of the backward passes (hash maps, per-row gradient lists, per-thread buffers). Keep one
// per trainer to avoid reallocating every step; not safe to share between concurrent calls.
class EmbeddingWorkspace {
 public:
  EmbeddingWorkspace();
  ~EmbeddingWorkspace();
  EmbeddingWorkspace(EmbeddingWorkspace&&) noexcept;
  EmbeddingWorkspace& operator=(EmbeddingWorkspace&&) noexcept;

 private:
  friend struct EmbeddingBackwardRunner;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Backward of embedding_bag_forward fused with plain SGD on the touched rows:
//   g_r = sum over lookups of r of grad_out[t][bag] * (1 or 1/bag length);
//   w_r = w_r * (1 - lr * table.weight_decay) - lr * g_r.
// ConfigError when a table's weight_decay is negative, not finite, or lr * weight_decay >= 1.
// grad_out[t] is (B, D_t) with stride ld. Throws InputError (table, bag, id) before any update when an id
// is out of range or offsets are out of order. `workspace` may be null (a temporary one is used).
void embedding_bag_backward_sgd(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                std::span<const EmbeddingGradOut> grad_out, float lr, int threads,
                                EmbeddingWorkspace* workspace = nullptr);

// Same, with row-wise Adagrad (one accumulator per row, allocated zeroed on first use):
//   state_r += mean over d of g_r[d]^2;  w_r = w_r * (1 - lr * weight_decay) - lr * g_r / (sqrt(state_r) + eps).
void embedding_bag_backward_rowwise_adagrad(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                            std::span<const EmbeddingGradOut> grad_out, float lr, float eps,
                                            int threads, EmbeddingWorkspace* workspace = nullptr);

// Concatenated-gradient forms: grad_out (B, ld) with table t at the same columns as the concatenated forward.
void embedding_bag_backward_sgd(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                const float* grad_out, int64_t ld, float lr, int threads,
                                EmbeddingWorkspace* workspace = nullptr);
void embedding_bag_backward_rowwise_adagrad(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                            const float* grad_out, int64_t ld, float lr, float eps, int threads,
                                            EmbeddingWorkspace* workspace = nullptr);

}  // namespace bluewhale
