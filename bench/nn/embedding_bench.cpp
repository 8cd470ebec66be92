// Embedding-bag forward and fused backward (SGD, row-wise Adagrad) at the Criteo Kaggle DLRM shape:
// 26 tables with the Kaggle cardinalities, dim 16, one-hot lookups with a power-law skew.
//
//   nn_embedding_bench [--benchmark_filter=...]   (BW_SIMD=scalar|avx2 to pin a level)
//
// The full tables are 33.8M rows x 16 floats = 2.2 GB (+135 MB of Adagrad state), built once.
// Counters: rows/s = lookups per second over all tables; GB/s = embedding-row bytes moved per second
// (forward reads each looked-up row once; backward reads and writes each, approximated per lookup).
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "bluewhale/core/cpu.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/nn/embedding.h"

namespace bluewhale {
namespace {

constexpr int64_t kDim = 16;
constexpr int kBatchesInPool = 16;  // distinct random batches cycled through, so caches do not see one batch
// u^kSkew concentrates draws near 0: with 3, about a fifth of all lookups hit the lowest 1% of ids.
constexpr double kSkew = 3.0;

const std::vector<int64_t>& criteo_kaggle_rows() {
  static const std::vector<int64_t> rows = {1460,    583,   10131227, 2202608, 305,   24,      12517, 633,  3,
                                            93145,   5683,  8351593,  3194,    27,    14992,   5461306, 10,
                                            5652,    2173,  4,        7046547, 18,    15,      286181,  105,
                                            142572};
  return rows;
}

std::vector<EmbeddingTable>& tables() {
  static std::vector<EmbeddingTable> t = [] {
    std::vector<EmbeddingTable> v;
    for (size_t i = 0; i < criteo_kaggle_rows().size(); ++i)
      v.push_back(make_embedding_table(criteo_kaggle_rows()[i], kDim, 1000 + i, 2));
    return v;
  }();
  return t;
}

// kBatchesInPool batches of one-hot ids per table; hot ids are scattered over the table by a hash so
// that the skew does not also mean locality.
struct IdPool {
  int64_t batch;
  std::vector<std::vector<int32_t>> ids;  // [pool * T + t] -> (batch)
};

const IdPool& id_pool(int64_t batch) {
  static std::vector<IdPool> pools;
  for (const IdPool& p : pools)
    if (p.batch == batch) return p;
  IdPool p{batch, {}};
  const auto& rows = criteo_kaggle_rows();
  uint64_t counter = 0;
  for (int k = 0; k < kBatchesInPool; ++k)
    for (size_t t = 0; t < rows.size(); ++t) {
      std::vector<int32_t> ids(static_cast<size_t>(batch));
      for (int32_t& id : ids) {
        const double u = unit_interval(mix64(++counter));
        const uint64_t rank = static_cast<uint64_t>(std::pow(u, kSkew) * static_cast<double>(rows[t]));
        id = static_cast<int32_t>(mix64(rank ^ (t << 40)) % static_cast<uint64_t>(rows[t]));
      }
      p.ids.push_back(std::move(ids));
    }
  pools.push_back(std::move(p));
  return pools.back();
}

struct Batches {
  std::vector<std::vector<EmbeddingBags>> bags;  // per pooled batch, (T)
  std::vector<EmbeddingBatch> batches;
};

Batches make_batches(int64_t batch) {
  const IdPool& pool = id_pool(batch);
  const size_t ntables = criteo_kaggle_rows().size();
  Batches b;
  b.bags.resize(kBatchesInPool);
  for (int k = 0; k < kBatchesInPool; ++k)
    for (size_t t = 0; t < ntables; ++t) b.bags[k].push_back({pool.ids[k * ntables + t].data(), nullptr});
  for (int k = 0; k < kBatchesInPool; ++k) b.batches.push_back({batch, b.bags[k], PoolingMode::kSum, true});
  return b;
}

void set_counters(benchmark::State& state, int64_t batch, double row_bytes_per_lookup) {
  const double lookups = static_cast<double>(batch) * static_cast<double>(criteo_kaggle_rows().size());
  const double iters = static_cast<double>(state.iterations());
  state.counters["rows/s"] = benchmark::Counter(lookups * iters, benchmark::Counter::kIsRate);
  state.counters["GB/s"] = benchmark::Counter(lookups * iters * row_bytes_per_lookup * 1e-9,
                                              benchmark::Counter::kIsRate);
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(batch) * iters, benchmark::Counter::kIsRate);
  state.SetLabel(std::string(simd_level_name(simd_level())));
}

void BM_EmbeddingForward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  auto& t = tables();
  Batches b = make_batches(batch);
  const int64_t ld = kDim * static_cast<int64_t>(t.size());
  std::vector<float> out(static_cast<size_t>(batch * ld));
  size_t k = 0;
  for (auto _ : state) {
    embedding_bag_forward(t, b.batches[k++ % kBatchesInPool], out.data(), ld, threads);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, batch, kDim * sizeof(float));
}

template <bool kAdagrad>
void BM_EmbeddingBackward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  auto& t = tables();
  Batches b = make_batches(batch);
  const int64_t ld = kDim * static_cast<int64_t>(t.size());
  std::vector<float> grad(static_cast<size_t>(batch * ld));
  for (size_t i = 0; i < grad.size(); ++i) grad[i] = static_cast<float>(unit_interval(mix64(i)) - 0.5) * 1e-3f;
  EmbeddingWorkspace ws;
  auto step = [&](const EmbeddingBatch& eb) {
    if constexpr (kAdagrad) embedding_bag_backward_rowwise_adagrad(t, eb, grad.data(), ld, 0.01f, 1e-8f, threads, &ws);
    else embedding_bag_backward_sgd(t, eb, grad.data(), ld, 0.01f, threads, &ws);
  };
  step(b.batches[0]);  // allocates the Adagrad state and the workspace outside the timed loop
  size_t k = 0;
  for (auto _ : state) {
    step(b.batches[k++ % kBatchesInPool]);
    benchmark::ClobberMemory();
  }
  set_counters(state, batch, 2.0 * kDim * sizeof(float) + (kAdagrad ? 2.0 * sizeof(float) : 0.0));
}

void criteo_args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {128, 2048})
    for (int64_t threads : {1, 2}) b->Args({batch, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime();
}

BENCHMARK(BM_EmbeddingForward)->Apply(criteo_args);
BENCHMARK_TEMPLATE(BM_EmbeddingBackward, false)->Name("BM_EmbeddingBackwardSgd")->Apply(criteo_args);
BENCHMARK_TEMPLATE(BM_EmbeddingBackward, true)->Name("BM_EmbeddingBackwardRowwiseAdagrad")->Apply(criteo_args);

}  // namespace
}  // namespace bluewhale

BENCHMARK_MAIN();
