#include "bluewhale/recall/distance.h"

#include <cmath>
#include <string>

#include "bluewhale/core/config.h"
#include "bluewhale/core/error.h"
#include "recall/distance_kernels.h"

namespace bluewhale {
namespace recall_detail {
namespace {

// Four independent accumulators, the same association pattern as the SIMD kernels keep per lane, so that
// the compiler can overlap the adds without -ffast-math.
float l2_sq_scalar(const float* a, const float* b, int64_t dim) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    float d0 = a[i] - b[i], d1 = a[i + 1] - b[i + 1], d2 = a[i + 2] - b[i + 2], d3 = a[i + 3] - b[i + 3];
    s0 += d0 * d0;
    s1 += d1 * d1;
    s2 += d2 * d2;
    s3 += d3 * d3;
  }
  for (; i < dim; ++i) {
    float d = a[i] - b[i];
    s0 += d * d;
  }
  return (s0 + s1) + (s2 + s3);
}

float dot_scalar(const float* a, const float* b, int64_t dim) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= dim; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < dim; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

float neg_dot_scalar(const float* a, const float* b, int64_t dim) { return -dot_scalar(a, b, dim); }

float sq8_l2_sq_scalar(const float* q, const uint8_t* code, const float* lo, const float* step, int64_t dim) {
  float s = 0;
  for (int64_t i = 0; i < dim; ++i) {
    float d = q[i] - (lo[i] + float(code[i]) * step[i]);
    s += d * d;
  }
  return s;
}

float sq8_neg_dot_scalar(const float* q, const uint8_t* code, const float* lo, const float* step, int64_t dim) {
  float s = 0;
  for (int64_t i = 0; i < dim; ++i) s += q[i] * (lo[i] + float(code[i]) * step[i]);
  return -s;
}

int64_t below_scalar(const float* p, const float* norms, int64_t n, float thr, uint32_t* idx, float* dist) {
  int64_t c = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float d = norms ? norms[j] - 2.0f * p[j] : -p[j];
    if (d < thr) {
      idx[c] = uint32_t(j);
      dist[c++] = d;
    }
  }
  return c;
}

}  // namespace

const Kernels& scalar_kernels() {
  static const Kernels k{l2_sq_scalar, dot_scalar, neg_dot_scalar, sq8_l2_sq_scalar, sq8_neg_dot_scalar, below_scalar};
  return k;
}

const Kernels& kernels_for(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return avx512_kernels();
    case SimdLevel::kAvx2: return avx2_kernels();
    default: return scalar_kernels();
  }
}

}  // namespace recall_detail

std::string_view metric_name(Metric m) {
  switch (m) {
    case Metric::kL2: return "l2";
    case Metric::kInnerProduct: return "ip";
    case Metric::kCosine: return "cosine";
  }
  return "?";
}

Metric parse_metric(std::string_view name, std::string_view field) {
  if (name == "l2") return Metric::kL2;
  if (name == "ip") return Metric::kInnerProduct;
  if (name == "cosine") return Metric::kCosine;
  std::string near = nearest(std::string(name), {"l2", "ip", "cosine"});
  BW_THROW(ConfigError, field, ": unknown metric '", name, "'; expected l2 | ip | cosine",
           near.empty() ? "" : " (did you mean '" + near + "'?)");
}

float l2_sq(const float* a, const float* b, int64_t dim) {
  return recall_detail::kernels_for(simd_level()).l2_sq(a, b, dim);
}
float dot(const float* a, const float* b, int64_t dim) { return recall_detail::kernels_for(simd_level()).dot(a, b, dim); }

double l2_sq_reference(const float* a, const float* b, int64_t dim) {
  double s = 0;
  for (int64_t i = 0; i < dim; ++i) {
    double d = double(a[i]) - double(b[i]);
    s += d * d;
  }
  return s;
}

double dot_reference(const float* a, const float* b, int64_t dim) {
  double s = 0;
  for (int64_t i = 0; i < dim; ++i) s += double(a[i]) * double(b[i]);
  return s;
}

float normalize(float* v, int64_t dim) {
  double n = std::sqrt(dot_reference(v, v, dim));
  if (n > 0) {
    const float inv = float(1.0 / n);
    for (int64_t i = 0; i < dim; ++i) v[i] *= inv;
  }
  return float(n);
}

}  // namespace bluewhale
