// Fused exact search: the blocking, threading and top-k selection around the per-ISA micro-kernels
// (exact_search_avx2.cpp, exact_search_avx512.cpp), the scalar micro-kernel, and the plain reference.
#include "recall/exact_search.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/recall/topk.h"
#include "recall/index_impl.h"

namespace bluewhale::recall_detail {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// Scalar micro-kernel: 4 rows x 8 queries of accumulators, one multiply-add chain per pair in dimension
// order, the same order the SIMD kernels use.
constexpr int kScalarLanes = 8;
constexpr int kScalarRows = 4;

void block_scalar(const ExactBlockArgs& a) {
  for (int64_t r0 = 0; r0 < a.n_rows; r0 += kScalarRows) {
    const int rows = int(std::min<int64_t>(kScalarRows, a.n_rows - r0));
    float acc[kScalarRows][kScalarLanes] = {};
    for (int64_t k = 0; k < a.dim; ++k) {
      const float* p = a.panel + k * kScalarLanes;
      for (int r = 0; r < rows; ++r) {
        const float xv = a.rows[(r0 + r) * a.dim + k];
        for (int l = 0; l < kScalarLanes; ++l) acc[r][l] += xv * p[l];
      }
    }
    for (int r = 0; r < rows; ++r) {
      const float b = a.bias[r0 + r];
      for (int l = 0; l < kScalarLanes; ++l) {
        const float d = b + a.scale * acc[r][l];
        if (d < a.thr[l]) {
          const int64_t at = int64_t(l) * a.n_rows + a.count[l]++;
          a.cand_row[at] = uint32_t(r0 + r);
          a.cand_dist[at] = d;
        }
      }
    }
  }
}

// Query panels are read with aligned vector loads.
struct AlignedFree {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], AlignedFree>;
AlignedFloats aligned_floats(int64_t n) {
  const std::size_t bytes = (std::size_t(n) * sizeof(float) + 63) / 64 * 64;
  float* p = static_cast<float*>(std::aligned_alloc(64, std::max<std::size_t>(bytes, 64)));
  BW_ASSERT(p != nullptr, "out of memory for ", n, " floats");
  return AlignedFloats(p);
}

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Row blocks of about this many bytes stay in L2 (1 MiB or more on current x86 cores) next to the query
// block while every query panel passes over them.
constexpr int64_t kRowBlockBytes = 192 << 10;
// Queries per work item: rows are streamed from memory once per query block, and at 512 queries that is
// 256 flops per byte read, far above the ~10 flops per byte where an FMA-bound core would start to wait
// on memory; the first query panel over a row block still reads it from memory, so more panels per block
// amortise that better (d = 64: ~5% faster at 512 than at 256). The planner goes down to 256 to give
// parallel_for_dynamic two items per thread (on a shared machine one thread is often slowed down).
constexpr int64_t kMaxQueryBlock = 512;
constexpr int64_t kMinQueryBlock = 256;
// Rows per part below which splitting the rows across threads is not worth the merge.
constexpr int64_t kMinRowsPerPart = 4096;

void check_args(int64_t nq, int64_t n, int64_t dim, int64_t k) {
  BW_CHECK(nq >= 0, InputError, "exact search: negative number of queries ", nq);
  BW_CHECK(n > 0, InputError, "exact search: no rows to search (empty database)");
  BW_CHECK(dim >= 1, InputError, "exact search: dimension must be >= 1, got ", dim);
  BW_CHECK(k >= 1, InputError, "exact search: k must be >= 1, got ", k);
  BW_CHECK(k <= n, InputError, "exact search: k = ", k, " is larger than the number of rows (", n, ")");
}

}  // namespace

const ExactKernel& exact_kernel_scalar() {
  static const ExactKernel k{kScalarLanes, kScalarRows, block_scalar};
  return k;
}

const ExactKernel& exact_kernel_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return exact_kernel_avx512();
    case SimdLevel::kAvx2: return exact_kernel_avx2();
    default: return exact_kernel_scalar();
  }
}

ExactPlan exact_search_plan(int64_t nq, int64_t n, int64_t dim, int threads, SimdLevel level,
                            const ExactTuning& tuning) {
  const ExactKernel& kern = exact_kernel_for(level);
  const int64_t lanes = kern.lanes;
  threads = std::max(1, threads);
  ExactPlan p;
  p.row_block = tuning.row_block > 0 ? tuning.row_block
                                     : std::clamp<int64_t>(kRowBlockBytes / (dim * 4) / kern.tile_rows * kern.tile_rows,
                                                           kern.tile_rows, 4096);
  const int64_t panels = std::max<int64_t>(1, (nq + lanes - 1) / lanes);
  // Enough query panels for every thread: split the queries; otherwise split the rows too.
  if (tuning.row_parts > 0)
    p.row_parts = std::min(tuning.row_parts, n);
  else
    p.row_parts = panels >= 2 * threads ? 1 : std::clamp<int64_t>(n / kMinRowsPerPart, 1, threads);
  const int64_t max_block = tuning.query_block > 0 ? round_up(tuning.query_block, lanes) : kMaxQueryBlock;
  int64_t blocks = std::max<int64_t>(1, (nq + max_block - 1) / max_block);
  if (tuning.query_block <= 0 && threads > 1 && p.row_parts == 1)
    blocks = std::max(blocks, std::min<int64_t>(2 * threads, (nq + kMinQueryBlock - 1) / kMinQueryBlock));
  if (p.row_parts * blocks < threads) blocks = std::min<int64_t>(panels, (threads + p.row_parts - 1) / p.row_parts);
  p.query_block = std::max<int64_t>(lanes, round_up((nq + blocks - 1) / blocks, lanes));
  p.query_blocks = std::max<int64_t>(1, (nq + p.query_block - 1) / p.query_block);
  return p;
}

void exact_search(const float* queries, int64_t nq, const float* rows, const float* sq_norms, int64_t n,
                  int64_t dim, Metric metric, int64_t k, const uint8_t* allowed, int threads, float* dist,
                  int64_t* labels, const ExactTuning& tuning) {
  check_args(nq, n, dim, k);
  if (nq == 0) return;
  const bool l2 = metric == Metric::kL2;
  BW_ASSERT(!l2 || sq_norms != nullptr, "l2 exact search needs the rows' squared norms");
  threads = std::max(1, threads);
  const SimdLevel level = simd_level();
  const ExactKernel& kern = exact_kernel_for(level);
  const ExactPlan plan = exact_search_plan(nq, n, dim, threads, level, tuning);
  const int64_t lanes = kern.lanes;

  // distance = bias + scale * <q, x>; excluded rows get +inf, which no threshold admits.
  std::vector<float> bias_store;
  const float* bias = sq_norms;
  if (!l2 || allowed) {
    bias_store.resize(std::size_t(n));
    for (int64_t i = 0; i < n; ++i)
      bias_store[std::size_t(i)] = allowed && !allowed[i] ? kInf : l2 ? sq_norms[i] : 0.0f;
    bias = bias_store.data();
  }
  const float scale = l2 ? -2.0f : -1.0f;

  // Top-k of every (row part, query); with one part they are written straight to the output.
  const int64_t parts = plan.row_parts;
  std::vector<std::vector<std::pair<float, int64_t>>> partial(parts > 1 ? std::size_t(parts * nq) : 0);
  const PairFn dot_fn = kernels_for(level).dot;
  auto finish_row = [&](int64_t q, std::vector<std::pair<float, int64_t>> hits) {
    if (l2) {
      const float qn = dot_fn(queries + q * dim, queries + q * dim, dim);
      for (auto& h : hits) h.first += qn;
    }
    write_row(hits, k, dist + q * k, labels + q * k);
  };

  parallel_for_dynamic(plan.query_blocks * parts, threads, [&](int64_t item, int) {
    const int64_t blk = item / parts, part = item % parts;
    const int64_t q0 = blk * plan.query_block, q1 = std::min(nq, q0 + plan.query_block), m = q1 - q0;
    const int64_t r_begin = n * part / parts, r_end = n * (part + 1) / parts;
    const int64_t panels = (m + lanes - 1) / lanes;
    // Queries in panels of `lanes`, dimension-major; missing lanes of the last panel stay zero.
    AlignedFloats pack = aligned_floats(panels * lanes * dim);
    std::fill(pack.get(), pack.get() + panels * lanes * dim, 0.0f);
    for (int64_t i = 0; i < m; ++i) {
      float* dst = pack.get() + (i / lanes) * lanes * dim + i % lanes;
      const float* src = queries + (q0 + i) * dim;
      for (int64_t j = 0; j < dim; ++j) dst[j * lanes] = src[j];
    }
    std::vector<TopK> top(std::size_t(m), TopK{k});
    std::vector<float> thr(static_cast<std::size_t>(lanes));
    std::vector<int32_t> count(static_cast<std::size_t>(lanes));
    const int64_t cap = std::min(plan.row_block, r_end - r_begin);
    std::vector<uint32_t> cand_row(std::size_t(lanes * cap));
    std::vector<float> cand_dist(std::size_t(lanes * cap));
    // Until a query holds k hits its threshold is +inf and every row leaves the registers as a candidate.
    // The first blocks therefore start at about k rows and double up to the row block: a query's threshold
    // is then the k-th best of all rows before the block, and a block of s rows after s rows yields about
    // k candidates per query instead of s.
    int64_t ramp = round_up(std::max<int64_t>(k, kern.tile_rows), kern.tile_rows);
    for (int64_t r0 = r_begin, nr = 0; r0 < r_end; r0 += nr, ramp = std::min(2 * ramp, plan.row_block)) {
      nr = std::min({plan.row_block, ramp, r_end - r0});
      for (int64_t p = 0; p < panels; ++p) {
        const int64_t used = std::min(lanes, m - p * lanes);
        for (int64_t l = 0; l < lanes; ++l)
          thr[std::size_t(l)] = l < used ? top[std::size_t(p * lanes + l)].threshold() : -kInf;
        std::fill(count.begin(), count.end(), 0);
        ExactBlockArgs a;
        a.panel = pack.get() + p * lanes * dim;
        a.rows = rows + r0 * dim;
        a.bias = bias + r0;
        a.n_rows = nr;
        a.dim = dim;
        a.scale = scale;
        a.thr = thr.data();
        a.count = count.data();
        a.cand_row = cand_row.data();
        a.cand_dist = cand_dist.data();
        kern.block(a);
        // Candidates come in increasing row order, so equal distances keep the lower row.
        for (int64_t l = 0; l < used; ++l) {
          TopK& t = top[std::size_t(p * lanes + l)];
          const uint32_t* cr = cand_row.data() + l * nr;
          const float* cd = cand_dist.data() + l * nr;
          for (int32_t c = 0; c < count[std::size_t(l)]; ++c)
            if (cd[c] < t.threshold()) t.push(cd[c], r0 + int64_t(cr[c]));
        }
      }
    }
    for (int64_t i = 0; i < m; ++i) {
      if (parts == 1)
        finish_row(q0 + i, top[std::size_t(i)].take_sorted());
      else
        partial[std::size_t(part * nq + q0 + i)] = top[std::size_t(i)].take_sorted();
    }
  });
  if (parts > 1) {
    // Parts in row order: a tie between parts keeps the lower row, as a single pass would.
    parallel_for(nq, threads, [&](int64_t b, int64_t e, int) {
      for (int64_t q = b; q < e; ++q) {
        TopK all(k);
        for (int64_t part = 0; part < parts; ++part)
          for (const auto& [d, r] : partial[std::size_t(part * nq + q)])
            if (d < all.threshold()) all.push(d, r);
        finish_row(q, all.take_sorted());
      }
    });
  }
}

void exact_search_reference(const float* queries, int64_t nq, const float* rows, int64_t n, int64_t dim,
                            Metric metric, int64_t k, const uint8_t* allowed, float* dist, int64_t* labels) {
  check_args(nq, n, dim, k);
  std::vector<std::pair<float, int64_t>> all;
  for (int64_t q = 0; q < nq; ++q) {
    const float* qv = queries + q * dim;
    all.clear();
    for (int64_t i = 0; i < n; ++i) {
      if (allowed && !allowed[i]) continue;
      const double d = metric == Metric::kL2 ? l2_sq_reference(qv, rows + i * dim, dim)
                                             : -dot_reference(qv, rows + i * dim, dim);
      if (!std::isnan(d)) all.emplace_back(float(d), i);
    }
    std::sort(all.begin(), all.end());
    write_row(all, k, dist + q * k, labels + q * k);
  }
}

}  // namespace bluewhale::recall_detail
