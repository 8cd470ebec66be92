// Helpers of the recall tests: random collections and a brute-force reference search in double.
#pragma once

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "bluewhale/recall/distance.h"
#include "bluewhale/recall/index.h"

namespace bluewhale::testing {

inline Vectors random_vectors(int64_t rows, int64_t dim, uint32_t seed) {
  Vectors v;
  v.rows = rows;
  v.dim = dim;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd;
  v.data.resize(std::size_t(rows * dim));
  for (auto& x : v.data) x = nd(rng);
  return v;
}

// The metric's distance, in double, as the indexes define it (distance.h).
inline double reference_distance(Metric m, const float* a, const float* b, int64_t dim) {
  if (m == Metric::kL2) return l2_sq_reference(a, b, dim);
  if (m == Metric::kInnerProduct) return -dot_reference(a, b, dim);
  const double na = std::sqrt(dot_reference(a, a, dim)), nb = std::sqrt(dot_reference(b, b, dim));
  return 1.0 - dot_reference(a, b, dim) / (na * nb);
}

// Sorted (distance, row) of the k nearest rows of base to q among rows where allowed(row).
template <class Allowed>
std::vector<std::pair<double, int64_t>> brute_knn(Metric m, const Vectors& base, const float* q, int64_t k,
                                                  Allowed allowed) {
  std::vector<std::pair<double, int64_t>> all;
  for (int64_t i = 0; i < base.rows; ++i)
    if (allowed(i)) all.emplace_back(reference_distance(m, q, base.row(i), base.dim), i);
  std::sort(all.begin(), all.end());
  all.resize(std::min<std::size_t>(all.size(), std::size_t(k)));
  return all;
}

// Fraction of the reference's ids found in the result row.
inline double overlap(const std::vector<std::pair<double, int64_t>>& ref, const int64_t* ids, int64_t k) {
  int64_t hit = 0;
  for (const auto& r : ref) hit += std::count(ids, ids + k, r.second);
  return ref.empty() ? 1.0 : double(hit) / double(ref.size());
}

}  // namespace bluewhale::testing
