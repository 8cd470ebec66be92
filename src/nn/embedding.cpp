#include "bluewhale/nn/embedding.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"
#include "nn/embedding_kernels.h"

namespace bluewhale {
namespace embedding_detail {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Scalar kernels: the fallback level, same structure as the SIMD ones.

void forward_scalar(const ForwardTable& t, int64_t bag_begin, int64_t bag_end) {
  const int64_t dim = t.dim;
  const int64_t last = t.offsets ? t.offsets[bag_end] : bag_end;
  for (int64_t b = bag_begin; b < bag_end; ++b) {
    const int64_t begin = t.offsets ? t.offsets[b] : b, end = t.offsets ? t.offsets[b + 1] : b + 1;
    float* dst = t.dst + b * t.ld;
    std::fill(dst, dst + dim, 0.0f);
    for (int64_t j = begin; j < end; ++j) {
      if (j + kPrefetchRows < last) __builtin_prefetch(t.weights + int64_t{t.ids[j + kPrefetchRows]} * dim);
      const float* row = t.weights + int64_t{t.ids[j]} * dim;
      for (int64_t d = 0; d < dim; ++d) dst[d] += row[d];
    }
    // Multiplying by the reciprocal (not dividing) keeps every level rounding the same way.
    if (t.mean && end > begin) {
      const float scale = 1.0f / static_cast<float>(end - begin);
      for (int64_t d = 0; d < dim; ++d) dst[d] *= scale;
    }
  }
}

void backward_scalar(const BackwardTable& t, int64_t u_begin, int64_t u_end, Optimizer opt, OptimizerParams p,
                     float* g) {
  const int64_t dim = t.dim;
  for (int64_t u = u_begin; u < u_end; ++u) {
    if (u + kPrefetchRows < u_end) __builtin_prefetch(t.weights + int64_t{t.rows[u + kPrefetchRows]} * dim, 1);
    std::fill(g, g + dim, 0.0f);
    for (int32_t k = t.starts[u]; k < t.starts[u + 1]; ++k) {
      const int32_t b = t.bags[k];
      const float s = t.bag_scale ? t.bag_scale[b] : 1.0f;
      const float* src = t.grad + int64_t{b} * t.ld;
      for (int64_t d = 0; d < dim; ++d) g[d] += s * src[d];
    }
    float* w = t.weights + int64_t{t.rows[u]} * dim;
    float step = p.lr;
    if (opt == Optimizer::kRowwiseAdagrad) {
      float ss = 0;
      for (int64_t d = 0; d < dim; ++d) ss += g[d] * g[d];
      float& state = t.state[t.rows[u]];
      state += ss / static_cast<float>(dim);
      step = p.lr / (std::sqrt(state) + p.eps);
    }
    for (int64_t d = 0; d < dim; ++d) w[d] = w[d] * t.decay - step * g[d];
  }
}

int64_t find_bad_id_scalar(const int32_t* ids, int64_t n, int64_t rows) {
  const uint32_t limit = static_cast<uint32_t>(std::min<int64_t>(rows, int64_t{1} << 31));
  // A negative id wraps to >= 2^31 >= limit, so one unsigned compare covers both ends.
  for (int64_t i = 0; i < n; ++i)
    if (static_cast<uint32_t>(ids[i]) >= limit) return i;
  return -1;
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k{forward_scalar, backward_scalar, find_bad_id_scalar};
  return k;
}

const Kernels& kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return avx512_kernels();
    case SimdLevel::kAvx2: return avx2_kernels();
    case SimdLevel::kScalar: break;
  }
  return scalar_kernels();
}

void embedding_bag_forward_reference(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch,
                                     std::span<const EmbeddingOut> out) {
  for (size_t t = 0; t < tables.size(); ++t) {
    const EmbeddingTable& table = tables[t];
    const EmbeddingBags& bags = batch.bags[t];
    for (int64_t b = 0; b < batch.batch; ++b) {
      const int64_t begin = bags.offsets ? bags.offsets[b] : b, end = bags.offsets ? bags.offsets[b + 1] : b + 1;
      float* dst = out[t].data + b * out[t].ld;
      for (int64_t d = 0; d < table.dim; ++d) {
        float sum = 0;
        for (int64_t j = begin; j < end; ++j) sum += table.weights[bags.ids[j] * table.dim + d];
        if (batch.mode == PoolingMode::kMean && end > begin) sum *= 1.0f / static_cast<float>(end - begin);
        dst[d] = sum;
      }
    }
  }
}

}  // namespace embedding_detail

using namespace embedding_detail;

namespace {

// Below this many lookups in a call, waking a second thread costs more than it saves.
constexpr int64_t kMinParallelLookups = 1024;

int64_t lookups_of(const EmbeddingBags& bags, int64_t batch) {
  return bags.offsets ? bags.offsets[batch] - bags.offsets[0] : batch;
}

int64_t bag_of_lookup(const EmbeddingBags& bags, int64_t batch, int64_t j) {
  if (!bags.offsets) return j;
  // The bag holding lookup j is the last b with offsets[b] <= j (empty bags before it share its offset).
  return std::upper_bound(bags.offsets, bags.offsets + batch + 1, j) - bags.offsets - 1;
}

[[noreturn]] void throw_bad_id(const EmbeddingTable& table, const EmbeddingBags& bags, int64_t batch, size_t t,
                               int64_t j) {
  BW_THROW(InputError, "embedding table ", t, " (", table.rows, " rows), bag ", bag_of_lookup(bags, batch, j),
           ": id ", bags.ids[j], " out of range [0, ", table.rows, ")");
}

// Offsets are user data too: a decreasing pair would make kernels read backwards past the ids.
void check_offsets(const EmbeddingBags& bags, int64_t bag_begin, int64_t bag_end, size_t t) {
  if (!bags.offsets) return;
  BW_CHECK(bags.offsets[0] >= 0, InputError, "embedding table ", t, ": offsets[0] is ", bags.offsets[0],
           ", expected >= 0");
  for (int64_t b = bag_begin; b < bag_end; ++b)
    BW_CHECK(bags.offsets[b] <= bags.offsets[b + 1], InputError, "embedding table ", t, ", bag ", b,
             ": offsets decrease from ", bags.offsets[b], " to ", bags.offsets[b + 1]);
}

void check_shapes(size_t tables, const EmbeddingBatch& batch, size_t views) {
  BW_CHECK(batch.bags.size() == tables, InputError, "embedding batch has lookups for ", batch.bags.size(),
           " tables, the model has ", tables);
  BW_CHECK(views == tables, InputError, "embedding batch has ", views, " output/gradient views for ", tables,
           " tables");
  BW_CHECK(batch.batch >= 0, InputError, "embedding batch size is ", batch.batch, ", expected >= 0");
}

// Column offsets of the concatenated (B, sum D) layout.
template <class View, class Ptr>
std::vector<View> concat_views(std::span<const EmbeddingTable> tables, Ptr base, int64_t ld) {
  std::vector<View> views(tables.size());
  int64_t col = 0;
  for (size_t t = 0; t < tables.size(); ++t) {
    views[t] = View{base + col, ld};
    col += tables[t].dim;
  }
  BW_ASSERT(col <= ld, "concatenated embedding width ", col, " exceeds ld ", ld);
  return views;
}

}  // namespace

EmbeddingTable make_embedding_table(int64_t rows, int64_t dim, uint64_t seed, int threads) {
  BW_CHECK(rows >= 1 && rows <= (int64_t{1} << 31), ConfigError, "embedding table rows ", rows,
           " out of range [1, 2^31] (ids are int32)");
  BW_CHECK(dim >= 1 && dim <= (int64_t{1} << 20), ConfigError, "embedding dim ", dim, " out of range [1, 2^20]");
  EmbeddingTable table;
  table.rows = rows;
  table.dim = dim;
  table.weights.resize(static_cast<size_t>(rows * dim));
  const float bound = static_cast<float>(std::sqrt(1.0 / static_cast<double>(rows)));
  const uint64_t key = mix64(seed ^ 0x656d6265645f7462ull);
  float* w = table.weights.data();
  // Counter-based: element i draws from mix64(key + i), so slices are independent of the thread count.
  parallel_for(rows * dim, resolve_threads(threads), [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i)
      w[i] = bound * static_cast<float>(2.0 * unit_interval(mix64(key + static_cast<uint64_t>(i))) - 1.0);
  });
  return table;
}

void embedding_bag_forward(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch,
                           std::span<const EmbeddingOut> out, int threads) {
  check_shapes(tables.size(), batch, out.size());
  const int64_t nbags = batch.batch;
  const int64_t total = static_cast<int64_t>(tables.size()) * nbags;
  if (total == 0) return;
  int64_t lookups = 0;
  for (size_t t = 0; t < tables.size(); ++t)
    lookups += batch.bags[t].offsets ? batch.bags[t].offsets[nbags] : nbags;
  threads = lookups < kMinParallelLookups ? 1 : resolve_threads(threads);
  const Kernels& k = kernels_for(simd_level());

  // Work items are (table, bag) pairs flattened table-major, so a slice covers a few tables' bag ranges and
  // every thread gets the same number of bags whatever the table sizes.
  parallel_for(total, threads, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end;) {
      const size_t t = static_cast<size_t>(i / nbags);
      const int64_t b0 = i % nbags, b1 = std::min(nbags, b0 + (end - i));
      const EmbeddingTable& table = tables[t];
      const EmbeddingBags& bags = batch.bags[t];
      if (batch.check_ids) {
        check_offsets(bags, b0, b1, t);
        const int64_t j0 = bags.offsets ? bags.offsets[b0] : b0, j1 = bags.offsets ? bags.offsets[b1] : b1;
        const int64_t bad = k.find_bad_id(bags.ids + j0, j1 - j0, table.rows);
        if (bad >= 0) throw_bad_id(table, bags, nbags, t, j0 + bad);
      }
      k.forward(ForwardTable{table.weights.data(), table.dim, bags.ids, bags.offsets, out[t].data, out[t].ld,
                             batch.mode == PoolingMode::kMean},
                b0, b1);
      i += b1 - b0;
    }
  });
}

void embedding_bag_forward(std::span<const EmbeddingTable> tables, const EmbeddingBatch& batch, float* out,
                           int64_t ld, int threads) {
  const auto views = concat_views<EmbeddingOut>(tables, out, ld);
  embedding_bag_forward(tables, batch, views, threads);
}

// ---------------------------------------------------------------------------------------------------------
// Backward: group lookups by row per table (serial per table, so the order of duplicates is fixed), then
// update unique rows in parallel slices. No two threads ever touch the same row.

struct EmbeddingWorkspace::Impl {
  struct Table {
    std::vector<int32_t> slot_row;  // open-addressing map row -> unique index; -1 = empty
    std::vector<int32_t> slot_uid;
    std::vector<int32_t> lookup_uid;  // (L) unique index of each lookup
    std::vector<int32_t> rows;        // (U)
    std::vector<int32_t> starts;      // (U+1)
    std::vector<int32_t> bags;        // (L)
    std::vector<float> bag_scale;     // (B) for mean pooling
  };
  std::vector<Table> tables;
  std::vector<float> scratch;  // per thread, padded to a cache line so threads never share one
};

EmbeddingWorkspace::EmbeddingWorkspace() : impl_(std::make_unique<Impl>()) {}
EmbeddingWorkspace::~EmbeddingWorkspace() = default;
EmbeddingWorkspace::EmbeddingWorkspace(EmbeddingWorkspace&&) noexcept = default;
EmbeddingWorkspace& EmbeddingWorkspace::operator=(EmbeddingWorkspace&&) noexcept = default;

struct EmbeddingBackwardRunner {
  static void run(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                  std::span<const EmbeddingGradOut> grad, Optimizer opt, OptimizerParams p, int threads,
                  EmbeddingWorkspace* workspace) {
    check_shapes(tables.size(), batch, grad.size());
    const int64_t nbags = batch.batch;
    const size_t ntables = tables.size();
    if (ntables == 0 || nbags == 0) return;
    EmbeddingWorkspace local;
    EmbeddingWorkspace::Impl& ws = *(workspace ? workspace : &local)->impl_;
    ws.tables.resize(std::max(ws.tables.size(), ntables));

    int64_t lookups = 0;
    for (size_t t = 0; t < ntables; ++t) {
      check_offsets(batch.bags[t], 0, nbags, t);
      const float wd = tables[t].weight_decay;
      BW_CHECK(std::isfinite(wd) && wd >= 0 && static_cast<double>(p.lr) * wd < 1.0, ConfigError, "embedding table ",
               t, ": weight_decay must be finite, >= 0 and below 1/lr (", 1.0 / p.lr, "), got ", wd);
      lookups += lookups_of(batch.bags[t], nbags);
      BW_CHECK(lookups_of(batch.bags[t], nbags) < (int64_t{1} << 30), InputError, "embedding table ", t, ": ",
               lookups_of(batch.bags[t], nbags), " lookups in one batch, at most 2^30 supported");
    }
    threads = lookups < kMinParallelLookups ? 1 : resolve_threads(threads);

    // Phase 1, one table per task: validate ids and build the row -> contributions lists. Nothing is
    // written to the tables until every table has passed, so a bad id leaves the model untouched.
    parallel_for_dynamic(static_cast<int64_t>(ntables), threads, [&](int64_t ti, int) {
      const size_t t = static_cast<size_t>(ti);
      group_table(tables[t], batch.bags[t], nbags, batch.mode, t, ws.tables[t]);
    });

    if (opt == Optimizer::kRowwiseAdagrad)
      for (EmbeddingTable& table : tables)
        if (table.adagrad_state.size() != static_cast<size_t>(table.rows))
          table.adagrad_state.resize(static_cast<size_t>(table.rows));

    std::vector<int64_t> first_unique(ntables + 1, 0);
    int64_t max_dim = 1;
    for (size_t t = 0; t < ntables; ++t) {
      first_unique[t + 1] = first_unique[t] + static_cast<int64_t>(ws.tables[t].rows.size());
      max_dim = std::max(max_dim, tables[t].dim);
    }
    const int64_t padded = (max_dim + 15) / 16 * 16;
    ws.scratch.resize(static_cast<size_t>(padded * threads));
    const Kernels& k = kernels_for(simd_level());

    // Phase 2: unique rows of all tables flattened; each slice sums and updates its own rows.
    parallel_for(first_unique[ntables], threads, [&](int64_t begin, int64_t end, int tid) {
      float* scratch = ws.scratch.data() + padded * tid;
      size_t t = static_cast<size_t>(std::upper_bound(first_unique.begin(), first_unique.end(), begin) -
                                     first_unique.begin() - 1);
      for (int64_t i = begin; i < end; ++t) {
        const int64_t u0 = i - first_unique[t], u1 = std::min(end, first_unique[t + 1]) - first_unique[t];
        if (u1 <= u0) continue;
        const EmbeddingWorkspace::Impl::Table& g = ws.tables[t];
        EmbeddingTable& table = tables[t];
        const BackwardTable bt{table.weights.data(),
                               opt == Optimizer::kRowwiseAdagrad ? table.adagrad_state.data() : nullptr,
                               table.dim,
                               g.rows.data(),
                               g.starts.data(),
                               g.bags.data(),
                               batch.mode == PoolingMode::kMean ? g.bag_scale.data() : nullptr,
                               grad[t].data,
                               grad[t].ld,
                               1.0f - p.lr * table.weight_decay};
        k.backward(bt, u0, u1, opt, p, scratch);
        i += u1 - u0;
      }
    });
  }

  static void group_table(const EmbeddingTable& table, const EmbeddingBags& bags, int64_t nbags, PoolingMode mode,
                          size_t t, EmbeddingWorkspace::Impl::Table& g) {
    const int64_t n = lookups_of(bags, nbags);
    const int64_t j0 = bags.offsets ? bags.offsets[0] : 0;
    const int32_t* ids = bags.ids + j0;
    const uint32_t limit = static_cast<uint32_t>(std::min<int64_t>(table.rows, int64_t{1} << 31));
    for (int64_t j = 0; j < n; ++j)
      if (static_cast<uint32_t>(ids[j]) >= limit) throw_bad_id(table, bags, nbags, t, j0 + j);

    // Load factor <= 1/2 keeps probe chains short; the map is sized by lookups, not by table rows. A table
    // no larger than that map (most Criteo tables) is indexed by row directly: no hashing, no probing.
    size_t cap = 16;
    while (cap < static_cast<size_t>(2 * n)) cap *= 2;
    const bool direct = table.rows <= static_cast<int64_t>(cap);
    if (direct) cap = static_cast<size_t>(table.rows);
    g.slot_row.assign(cap, -1);
    g.slot_uid.resize(cap);
    g.lookup_uid.resize(static_cast<size_t>(n));
    g.rows.clear();
    g.starts.assign(1, 0);
    std::vector<int32_t>& count = g.starts;  // count[u + 1] during the first pass, then prefix sums
    const size_t mask = cap - 1;
    for (int64_t j = 0; j < n; ++j) {
      const int32_t row = ids[j];
      size_t s;
      if (direct) {
        s = static_cast<size_t>(row);
      } else {
        s = static_cast<size_t>(mix64(static_cast<uint64_t>(row))) & mask;
        while (g.slot_row[s] != row && g.slot_row[s] != -1) s = (s + 1) & mask;
      }
      if (g.slot_row[s] == -1) {
        g.slot_row[s] = row;
        g.slot_uid[s] = static_cast<int32_t>(g.rows.size());
        g.rows.push_back(row);
        count.push_back(0);
      }
      const int32_t u = g.slot_uid[s];
      g.lookup_uid[static_cast<size_t>(j)] = u;
      ++count[static_cast<size_t>(u) + 1];
    }
    for (size_t u = 1; u < count.size(); ++u) count[u] += count[u - 1];

    // Contributions in lookup order within each row: the fixed summation order behind determinism.
    g.bags.resize(static_cast<size_t>(n));
    std::vector<int32_t> fill(g.starts.begin(), g.starts.end() - 1);
    if (mode == PoolingMode::kMean) g.bag_scale.resize(static_cast<size_t>(nbags));
    for (int64_t b = 0; b < nbags; ++b) {
      const int64_t begin = bags.offsets ? bags.offsets[b] - j0 : b, end = bags.offsets ? bags.offsets[b + 1] - j0 : b + 1;
      if (mode == PoolingMode::kMean)
        g.bag_scale[static_cast<size_t>(b)] = end > begin ? 1.0f / static_cast<float>(end - begin) : 0.0f;
      for (int64_t j = begin; j < end; ++j)
        g.bags[static_cast<size_t>(fill[static_cast<size_t>(g.lookup_uid[static_cast<size_t>(j)])]++)] =
            static_cast<int32_t>(b);
    }
  }
};

void embedding_bag_backward_sgd(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                std::span<const EmbeddingGradOut> grad_out, float lr, int threads,
                                EmbeddingWorkspace* workspace) {
  EmbeddingBackwardRunner::run(tables, batch, grad_out, Optimizer::kSgd, OptimizerParams{lr, 0}, threads, workspace);
}

void embedding_bag_backward_rowwise_adagrad(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                            std::span<const EmbeddingGradOut> grad_out, float lr, float eps,
                                            int threads, EmbeddingWorkspace* workspace) {
  EmbeddingBackwardRunner::run(tables, batch, grad_out, Optimizer::kRowwiseAdagrad, OptimizerParams{lr, eps},
                               threads, workspace);
}

void embedding_bag_backward_sgd(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                const float* grad_out, int64_t ld, float lr, int threads,
                                EmbeddingWorkspace* workspace) {
  const auto views = concat_views<EmbeddingGradOut>(tables, grad_out, ld);
  embedding_bag_backward_sgd(tables, batch, views, lr, threads, workspace);
}

void embedding_bag_backward_rowwise_adagrad(std::span<EmbeddingTable> tables, const EmbeddingBatch& batch,
                                            const float* grad_out, int64_t ld, float lr, float eps, int threads,
                                            EmbeddingWorkspace* workspace) {
  const auto views = concat_views<EmbeddingGradOut>(tables, grad_out, ld);
  embedding_bag_backward_rowwise_adagrad(tables, batch, views, lr, eps, threads, workspace);
}

}  // namespace bluewhale
