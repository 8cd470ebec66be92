// Synthetic vector collections for recall benchmarks and tests, deterministic in the seed (same bytes
// for any thread count).
//   clustered  a mixture: `clusters` centres ~ N(0, 1)^dim; a point is its centre plus spread times
//              (a rank dim/8 Gaussian factor shared by all clusters + 0.2 N(0, 1) isotropic noise)
//   embedding  learned-embedding-like: low-rank latent factors with a decaying spectrum plus a little
//              noise, then scaled to unit length (as two-tower model outputs usually are)
#pragma once

#include <cstdint>
#include <string>

#include "bluewhale/recall/distance.h"
#include "bluewhale/recall/vectors.h"

namespace bluewhale {

struct VectorGenOptions {
  int64_t rows = 0;
  int64_t dim = 128;
  std::string kind = "clustered";  // clustered | embedding
  int64_t clusters = 0;            // clustered: 0 = about sqrt(rows)
  float spread = 1.0f;             // clustered: scale of the within-cluster variation
  int64_t rank = 0;                // embedding: latent rank; 0 = dim / 2
  uint64_t seed = 1;
  int threads = 1;
};

// ConfigError on bad options. Ids are the row numbers (Vectors::ids left empty).
Vectors generate_vectors(const VectorGenOptions& o);

// Exact k nearest neighbours of every query (ids = row numbers of base), through the flat index.
IntVectors exact_neighbours(const Vectors& base, const Vectors& queries, int64_t k, Metric metric,
                            int threads);

}  // namespace bluewhale
