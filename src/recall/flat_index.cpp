// Exact search. Batches go through the fused register-tiled kernel (exact_search.h): dot products, the
// distance (|x|^2 - 2 <q, x>, +|q|^2 at the end, for l2) and the top-k threshold test in one pass, with no
// distance matrix in memory. SearchOptions::flat_blas selects the earlier path instead: for a block of
// queries Q and a block of rows X, Q X^T from OpenBLAS sgemm, then a SIMD threshold scan of the products.
// A handful of queries scan the rows with the SIMD pair kernel, split across threads.

#include <algorithm>
#include <vector>

#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/nn/blas.h"
#include "bluewhale/recall/topk.h"
#include "recall/exact_search.h"
#include "recall/index_impl.h"

namespace bluewhale::recall_detail {
namespace {

// Below this many queries the blocked paths cannot fill their tiles or amortise GEMM packing; the scan is as
// fast and parallelises over rows.
constexpr int64_t kGemmMinQueries = 8;
// Query and row block sizes: up to 1024 queries per GEMM call, where OpenBLAS sgemm with K = dim reaches
// its plateau (~80% of the 256-bit FMA peak on the development machine, against ~73% at 256 and ~40%
// at 64); 256 rows keep the (1024 x 256) block of products (1 MiB) in L2 while it is selected.
constexpr int64_t kQueryBlock = 1024;
constexpr int64_t kRowBlock = 256;
// Rows per thread below which the scan stays on one thread.
constexpr int64_t kMinRowsPerThread = 4096;

class FlatIndex final : public Index {
 public:
  explicit FlatIndex(const IndexOptions& o) : Index(o) {}

  int64_t memory_bytes() const override { return Index::memory_bytes() + int64_t(norms_.capacity() * 4); }

 private:
  void add_impl(int64_t first, int64_t n, int threads, ProgressReporter* progress) override {
    norms_.resize(std::size_t(first + n));
    const PairFn dot = kernels_for(simd_level()).dot;
    parallel_for(n, threads, [&](int64_t b, int64_t e, int) {
      for (int64_t i = first + b; i < first + e; ++i) norms_[std::size_t(i)] = dot(vec(i), vec(i), opts_.dim);
    });
    if (progress) progress->add(n, n * opts_.dim * 4);
  }

  void search_impl(const float* q, int64_t nq, int64_t k, const SearchOptions& o, const uint8_t* allowed,
                   float* dist, int64_t* labels) const override {
    if (nq < kGemmMinQueries) {
      for (int64_t i = 0; i < nq; ++i) scan(q + i * opts_.dim, k, o.threads, allowed, dist + i * k, labels + i * k);
    } else if (o.flat_blas) {
      gemm_search(q, nq, k, o.threads, allowed, dist, labels);
    } else {
      exact_search(q, nq, data_.data(), norms_.data(), count(), opts_.dim, opts_.metric, k, allowed, o.threads, dist,
                   labels);
    }
  }

  void scan(const float* q, int64_t k, int threads, const uint8_t* allowed, float* dist, int64_t* labels) const {
    const int64_t n = count(), dim = opts_.dim;
    const PairFn fn = distance_fn(opts_.metric, kernels_for(simd_level()));
    threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, n / kMinRowsPerThread)));
    std::vector<TopK> part(std::size_t(threads), TopK{k});
    parallel_for(n, threads, [&](int64_t b, int64_t e, int t) {
      TopK& top = part[std::size_t(t)];
      for (int64_t i = b; i < e; ++i) {
        if (allowed && !allowed[i]) continue;
        const float d = fn(q, vec(i), dim);
        if (d < top.threshold()) top.push(d, i);
      }
    });
    TopK all(k);
    for (auto& p : part)
      for (auto& [d, l] : p.take_sorted()) all.push(d, l);
    write_row(all.take_sorted(), k, dist, labels);
  }

  void gemm_search(const float* q, int64_t nq, int64_t k, int threads, const uint8_t* allowed, float* dist,
                   int64_t* labels) const {
    init_blas();  // one BLAS thread per call: our threads split the queries
    const int64_t n = count(), dim = opts_.dim;
    const bool l2 = opts_.metric == Metric::kL2;
    const int64_t qb = std::clamp<int64_t>((nq + threads - 1) / threads, 1, kQueryBlock);
    const int64_t blocks = (nq + qb - 1) / qb;
    const PairFn dot = kernels_for(simd_level()).dot;
    const BelowFn below = kernels_for(simd_level()).below;
    parallel_for_dynamic(blocks, threads, [&](int64_t blk, int) {
      const int64_t q0 = blk * qb, q1 = std::min(nq, q0 + qb), m = q1 - q0;
      std::vector<float> prod(std::size_t(m * kRowBlock));
      std::vector<TopK> top(std::size_t(m), TopK{k});
      std::vector<uint32_t> cand_idx(static_cast<std::size_t>(kRowBlock));
      std::vector<float> cand_dist(static_cast<std::size_t>(kRowBlock));
      for (int64_t r0 = 0; r0 < n; r0 += kRowBlock) {
        const int64_t rb = std::min(kRowBlock, n - r0);
        sgemm_row_major(false, true, int(m), int(rb), int(dim), 1.0f, q + q0 * dim, int(dim), vec(r0), int(dim), 0.0f,
                        prod.data(), int(rb));
        for (int64_t i = 0; i < m; ++i) {
          TopK& t = top[std::size_t(i)];
          // A filter is rare on this path: scalar loop; otherwise the SIMD threshold scan.
          if (allowed) {
            const float* p = prod.data() + i * rb;
            for (int64_t j = 0; j < rb; ++j) {
              const float d = l2 ? norms_[std::size_t(r0 + j)] - 2.0f * p[j] : -p[j];
              if (d < t.threshold() && allowed[r0 + j]) t.push(d, r0 + j);
            }
            continue;
          }
          const int64_t c = below(prod.data() + i * rb, l2 ? norms_.data() + r0 : nullptr, rb, t.threshold(),
                                  cand_idx.data(), cand_dist.data());
          for (int64_t j = 0; j < c; ++j)
            if (cand_dist[std::size_t(j)] < t.threshold()) t.push(cand_dist[std::size_t(j)], r0 + cand_idx[std::size_t(j)]);
        }
      }
      for (int64_t i = 0; i < m; ++i) {
        auto hits = top[std::size_t(i)].take_sorted();
        if (l2) {
          const float qn = dot(q + (q0 + i) * dim, q + (q0 + i) * dim, dim);
          for (auto& h : hits) h.first += qn;
        }
        write_row(hits, k, dist + (q0 + i) * k, labels + (q0 + i) * k);
      }
    });
  }

  void save_impl(BinaryWriter&) const override {}
  void load_impl(BinaryReader&) override {
    norms_.resize(std::size_t(count()));
    const PairFn dot = kernels_for(simd_level()).dot;
    for (int64_t i = 0; i < count(); ++i) norms_[std::size_t(i)] = dot(vec(i), vec(i), opts_.dim);
  }

  std::vector<float> norms_;  // (count) squared norms, for the GEMM form of L2
};

}  // namespace

std::unique_ptr<Index> make_flat_index(const IndexOptions& o) { return std::make_unique<FlatIndex>(o); }

}  // namespace bluewhale::recall_detail
