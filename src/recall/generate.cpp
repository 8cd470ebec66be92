#include "bluewhale/recall/generate.h"

#include <cmath>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/recall/index.h"

namespace bluewhale {
namespace {

// A standard normal from a counter: Box-Muller on two hashed uniforms, so any element can be generated
// independently (and so in parallel) from (seed, stream, index).
float normal(uint64_t seed, uint64_t stream, uint64_t i) {
  const uint64_t h = mix64(seed ^ mix64(stream * 0x9E3779B97F4A7C15ull + i));
  const double u1 = std::max(unit_interval(h), 1e-300), u2 = unit_interval(mix64(h));
  return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
}

}  // namespace

Vectors generate_vectors(const VectorGenOptions& o) {
  BW_CHECK(o.rows > 0, ConfigError, "gen vectors: rows must be positive, got ", o.rows);
  BW_CHECK(o.dim >= 1 && o.dim <= kMaxVectorDim, ConfigError, "gen vectors: dim must be in 1..", kMaxVectorDim,
           ", got ", o.dim);
  BW_CHECK(o.kind == "clustered" || o.kind == "embedding", ConfigError, "gen vectors: unknown kind '", o.kind,
           "'; expected clustered | embedding");
  Vectors v;
  v.rows = o.rows;
  v.dim = o.dim;
  v.data.resize(std::size_t(o.rows * o.dim));
  const int64_t dim = o.dim;
  if (o.kind == "clustered") {
    const int64_t clusters = o.clusters > 0 ? o.clusters : std::max<int64_t>(1, int64_t(std::sqrt(double(o.rows))));
    std::vector<float> centres(std::size_t(clusters * dim));
    for (int64_t i = 0; i < clusters * dim; ++i) centres[std::size_t(i)] = normal(o.seed, 1, uint64_t(i));
    // Within a cluster, points vary mostly along a few shared directions (rank dim/8) plus a little
    // isotropic noise: real features (SIFT, embeddings) have a low intrinsic dimension, and isotropic
    // 128-d clusters would make every index look bad for reasons no user meets.
    const int64_t rank = std::max<int64_t>(1, dim / 8);
    std::vector<float> w(std::size_t(dim * rank));
    for (int64_t i = 0; i < dim * rank; ++i) w[std::size_t(i)] = normal(o.seed, 6, uint64_t(i)) / std::sqrt(float(rank));
    parallel_for(o.rows, o.threads, [&](int64_t b, int64_t e, int) {
      std::vector<float> z(static_cast<std::size_t>(rank));
      for (int64_t r = b; r < e; ++r) {
        const int64_t c = int64_t(mix64(o.seed ^ mix64(uint64_t(r) + 7)) % uint64_t(clusters));
        for (int64_t k = 0; k < rank; ++k) z[std::size_t(k)] = normal(o.seed, 7, uint64_t(r * rank + k));
        for (int64_t j = 0; j < dim; ++j) {
          float s = 0.2f * normal(o.seed, 2, uint64_t(r * dim + j));
          for (int64_t k = 0; k < rank; ++k) s += w[std::size_t(j * rank + k)] * z[std::size_t(k)];
          v.data[std::size_t(r * dim + j)] = centres[std::size_t(c * dim + j)] + o.spread * s;
        }
      }
    });
  } else {
    const int64_t rank = o.rank > 0 ? std::min(o.rank, dim) : std::max<int64_t>(1, dim / 2);
    std::vector<float> w(std::size_t(dim * rank));
    // Column k of the factor matrix scaled by 1/sqrt(k+1): a few strong directions and a long tail.
    for (int64_t j = 0; j < dim; ++j)
      for (int64_t k = 0; k < rank; ++k)
        w[std::size_t(j * rank + k)] = normal(o.seed, 3, uint64_t(j * rank + k)) / std::sqrt(float(k + 1));
    parallel_for(o.rows, o.threads, [&](int64_t b, int64_t e, int) {
      std::vector<float> z(static_cast<std::size_t>(rank));
      for (int64_t r = b; r < e; ++r) {
        for (int64_t k = 0; k < rank; ++k) z[std::size_t(k)] = normal(o.seed, 4, uint64_t(r * rank + k));
        float* x = v.data.data() + r * dim;
        for (int64_t j = 0; j < dim; ++j) {
          float s = 0.05f * normal(o.seed, 5, uint64_t(r * dim + j));
          for (int64_t k = 0; k < rank; ++k) s += w[std::size_t(j * rank + k)] * z[std::size_t(k)];
          x[j] = s;
        }
        normalize(x, dim);
      }
    });
  }
  return v;
}

IntVectors exact_neighbours(const Vectors& base, const Vectors& queries, int64_t k, Metric metric, int threads) {
  IndexOptions io;
  io.kind = IndexKind::kFlat;
  io.metric = metric;
  io.dim = base.dim;
  auto flat = make_index(io);
  flat->add(base, threads);
  SearchOptions so;
  so.k = k;
  so.threads = threads;
  SearchResult r = flat->search(queries, so);
  IntVectors gt;
  gt.rows = r.queries;
  gt.dim = k;
  gt.data.resize(r.ids.size());
  for (std::size_t i = 0; i < r.ids.size(); ++i) gt.data[i] = int32_t(r.ids[i]);
  return gt;
}

}  // namespace bluewhale
