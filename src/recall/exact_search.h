// Fused exact k-nearest-neighbour search: query x row dot products in register tiles, turned into
// distances and selected into per-query top-k in the same pass, so the (queries, rows) distance matrix
// never exists in memory. The flat index's batched search (flat_index.cpp).
//
// Shape of the computation, per work item (a block of queries x a range of rows):
//   pack the query block into panels of `lanes` queries, dimension-major: panel[k * lanes + l] = q_l[k]
//   for each block of `row_block` rows (kept in L2 while every query panel passes over it):
//     for each query panel (d x lanes floats, in L1 for d <= 256 at 32 lanes):
//       micro-kernel over groups of `tile_rows` rows: acc[r][l] = <x_r, q_l> over the whole dimension in
//       registers (row values broadcast straight from the row-major index data, so rows are never packed),
//       then dist = bias_r + scale * acc, compared with the lane's top-k threshold; only rows that beat it
//       leave the registers, as candidates pushed into that query's TopK.
// The first row blocks of a work item start near k rows and double up to `row_block`, so that queries get
// finite thresholds before whole blocks of rows turn into candidates. Work items are spread over threads
// with parallel_for_dynamic; when there are too few queries to keep every thread busy, the rows are split
// too and the per-part top-k merged (ties still keep the lower row).
#pragma once

#include <cstdint>

#include "bluewhale/core/cpu.h"
#include "bluewhale/recall/distance.h"

namespace bluewhale::recall_detail {

// One candidate-producing pass of a query panel over consecutive rows (the per-ISA micro-kernel driver).
struct ExactBlockArgs {
  const float* panel = nullptr;  // (dim, lanes) queries, dimension-major, padded lanes zero
  const float* rows = nullptr;   // (n_rows, dim) row-major, any alignment
  const float* bias = nullptr;   // (n_rows) added to every distance of the row; +inf excludes the row
  int64_t n_rows = 0;
  int64_t dim = 0;
  float scale = -1.0f;           // distance = bias + scale * <x, q>: -2 (squared L2 without |q|^2) or -1
  const float* thr = nullptr;    // (lanes) a row is a candidate of lane l when distance < thr[l] (-inf: none)
  int32_t* count = nullptr;      // (lanes) candidates written per lane (the kernel appends)
  uint32_t* cand_row = nullptr;  // (lanes, n_rows) candidate rows of lane l at [l * n_rows, ...), increasing
  float* cand_dist = nullptr;    // (lanes, n_rows) their distances
};
using ExactBlockFn = void (*)(const ExactBlockArgs& a);

struct ExactKernel {
  int lanes;      // queries per panel (multiple of the vector width)
  int tile_rows;  // rows per register tile
  ExactBlockFn block;
};

const ExactKernel& exact_kernel_scalar();
const ExactKernel& exact_kernel_avx2();    // only when detected_simd_level() >= kAvx2
const ExactKernel& exact_kernel_avx512();  // only when detected_simd_level() >= kAvx512
const ExactKernel& exact_kernel_for(SimdLevel level);

// Block sizes; 0 = chosen from the dimension, the query count and the thread count. Tests set small
// values to cross every block boundary on small inputs.
struct ExactTuning {
  int64_t query_block = 0;  // queries per work item (rounded up to the kernel's lanes)
  int64_t row_block = 0;    // rows per L2 block
  int64_t row_parts = 0;    // row ranges the rows are split into (merged afterwards)
};

// The plan exact_search() follows, for benchmarks (bytes moved) and tests.
struct ExactPlan {
  int64_t query_block = 0;
  int64_t query_blocks = 0;
  int64_t row_block = 0;
  int64_t row_parts = 0;
};
ExactPlan exact_search_plan(int64_t nq, int64_t n, int64_t dim, int threads, SimdLevel level,
                            const ExactTuning& tuning = {});

// The k nearest rows of `rows` to each query, at simd_level().
//   queries (nq, dim), rows (n, dim), row-major, finite (the index checks; a NaN distance never enters).
//   sq_norms (n): squared norms of the rows, needed for l2 (may be nullptr for ip and cosine).
//   allowed (n): 0/1 per row, or nullptr for all.
//   metric: l2 gives |q - x|^2 = |q|^2 + |x|^2 - 2 <q, x>; ip gives -<q, x>; cosine gives -<q, x> too and
//   expects unit-length rows and queries (the index normalises on add and search and adds the 1).
//   threads: worker threads through parallel_for_dynamic (values below 1 mean 1).
// Writes (nq, k) distances and row numbers, nearest first, ties in increasing row order; slots that no
// allowed row fills are (+inf, -1). InputError for n == 0, dim < 1, k < 1, k > n or nq < 0.
void exact_search(const float* queries, int64_t nq, const float* rows, const float* sq_norms, int64_t n,
                  int64_t dim, Metric metric, int64_t k, const uint8_t* allowed, int threads, float* dist,
                  int64_t* labels, const ExactTuning& tuning = {});

// Plain reference: every distance in double (rounded to float), a full sort by (distance, row); NaN
// distances are skipped. Same contract and errors as exact_search().
void exact_search_reference(const float* queries, int64_t nq, const float* rows, int64_t n, int64_t dim,
                            Metric metric, int64_t k, const uint8_t* allowed, float* dist, int64_t* labels);

}  // namespace bluewhale::recall_detail
