// Distance metrics and kernels of the recall indexes.
//
// Every index reports a distance, smaller is nearer:
//   l2      squared Euclidean distance            |a - b|^2
//   ip      negative inner product                -<a, b>          (maximum inner product search)
//   cosine  one minus the cosine similarity       1 - <a, b> / (|a| |b|)  (vectors normalised on add)
// The kernels below pick the widest SIMD level simd_level() allows (AVX-512, AVX2+FMA, scalar) at each
// call; the *_reference versions accumulate in double, for tests.
#pragma once

#include <cstdint>
#include <string_view>

#include "bluewhale/core/cpu.h"

namespace bluewhale {

enum class Metric { kL2 = 0, kInnerProduct = 1, kCosine = 2 };

std::string_view metric_name(Metric m);  // "l2", "ip", "cosine"
// Parses "l2" | "ip" | "cosine"; ConfigError naming `field` and the nearest valid name otherwise.
Metric parse_metric(std::string_view name, std::string_view field = "metric");

// a, b: (dim) floats, any alignment, dim >= 0.
float l2_sq(const float* a, const float* b, int64_t dim);
float dot(const float* a, const float* b, int64_t dim);
double l2_sq_reference(const float* a, const float* b, int64_t dim);
double dot_reference(const float* a, const float* b, int64_t dim);

// Scales v (dim) to unit length in place; returns the original norm (a zero vector is left as is).
float normalize(float* v, int64_t dim);

}  // namespace bluewhale
