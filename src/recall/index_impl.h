// Constructors of the index kinds behind recall/index.h (one translation unit each), and helpers they
// share.
#pragma once

#include <memory>

#include "bluewhale/recall/index.h"
#include "recall/distance_kernels.h"

namespace bluewhale::recall_detail {

std::unique_ptr<Index> make_flat_index(const IndexOptions& o);
std::unique_ptr<Index> make_hnsw_index(const IndexOptions& o);
std::unique_ptr<Index> make_ivf_index(const IndexOptions& o);

// The kernel computing the metric's internal distance: l2_sq for l2, neg_dot for ip and cosine (vectors
// and queries are unit length for cosine, so 1 + neg_dot is 1 - cos; the constant is added on output).
inline PairFn distance_fn(Metric m, const Kernels& k) { return m == Metric::kL2 ? k.l2_sq : k.neg_dot; }

// Copies sorted (distance, label) pairs into a result row of k entries, padding with (+inf, -1).
void write_row(const std::vector<std::pair<float, int64_t>>& hits, int64_t k, float* dist, int64_t* labels);

}  // namespace bluewhale::recall_detail
