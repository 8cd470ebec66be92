#include "bluewhale/gen/criteo.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <nlohmann/json.hpp>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/metrics.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"

namespace bluewhale {
namespace {

constexpr int kFields39 = kCriteoDense + kCriteoCategorical;

// ---------------------------------------------------------------------------------------------------
// Marginals fitted to the public Criteo sample (13,229 rows of the Kaggle DAC training set).

constexpr std::array<int64_t, kCriteoCategorical> kVocab = {
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572};

constexpr std::array<double, kFields39> kMissingRate = {
    0.4527, 0.0000, 0.2067, 0.2106, 0.0390, 0.2418, 0.0477, 0.0008, 0.0477, 0.4527, 0.0477, 0.7738, 0.2106,
    0.0000, 0.0000, 0.0330, 0.0330, 0.0000, 0.1289, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0330, 0.0000,
    0.0000, 0.0000, 0.0330, 0.0000, 0.0000, 0.4457, 0.4457, 0.0330, 0.7958, 0.0000, 0.0330, 0.4457, 0.4457};

// Fields missing together in the sample share one uniform draw per row, so their missing sets nest
// (I5 c I6 c I1 = I10 c I12; C3 = C4 = C12 = ...). -1: never missing.
constexpr int kMissingGroups = 8;
constexpr std::array<int8_t, kFields39> kMissingGroup = {
    0, -1, 3, 1, 0, 0, 2, 4, 2, 0, 2, 0, 1,                                    // I1..I13
    -1, -1, 5, 5, -1, 7, -1, -1, -1, -1, -1, 5, -1, -1, -1, 5, -1, -1, 6, 6,  // C1..C20
    5, 7, -1, 5, 6, 6};                                                       // C21..C26

// Category frequencies: P(rank k) ~ (k + q)^-s for k = 1..V, plus extra mass m0 on rank 1. (s, q) fit the
// sample's distinct count and top-value share; m0 covers columns whose top value dominates beyond any
// power law (C9, C10, C19). s is capped at 4 for the tiny vocabularies, which are not power laws.
struct ZipfParams {
  double s, q, m0;
};
constexpr std::array<ZipfParams, kCriteoCategorical> kZipf = {{
    {1.952, 0.341, 0.0}, {1.890, 6.145, 0.0},  {1.025, 0.954, 0.0},  {1.106, 1.380, 0.0},  {2.683, 0.437, 0.0},
    {4.000, 3.359, 0.0}, {1.147, 17.929, 0.0}, {2.289, 0.373, 0.0},  {0.300, 0.0, 0.826},  {1.067, 0.0, 0.158},
    {1.316, 18.869, 0.0}, {1.042, 1.234, 0.0}, {1.332, 20.458, 0.0}, {4.000, 5.886, 0.0},  {1.505, 32.211, 0.0},
    {1.077, 1.870, 0.0}, {4.000, 4.332, 0.0},  {1.626, 14.439, 0.0}, {1.204, 0.0, 0.492},  {4.000, 14.984, 0.0},
    {1.057, 1.502, 0.0}, {4.000, 2.818, 0.0},  {4.000, 4.139, 0.0},  {1.235, 2.816, 0.0},  {4.000, 8.272, 0.0},
    {1.142, 1.106, 0.0},
}};

// Integer columns: the sample's quantiles (of present values) at kKnotP. Values between knots are
// interpolated in sign(v) * log1p(|v|) space and rounded, which keeps the point masses at 0 and 1 and the
// heavy tails.
constexpr int kKnots = 37;
constexpr std::array<double, kKnots> kKnotP = {
    0.0,     0.03125, 0.0625, 0.09375, 0.125,   0.15625, 0.1875, 0.21875, 0.25,    0.28125,
    0.3125,  0.34375, 0.375,  0.40625, 0.4375,  0.46875, 0.5,    0.53125, 0.5625,  0.59375,
    0.625,   0.65625, 0.6875, 0.71875, 0.75,    0.78125, 0.8125, 0.84375, 0.875,   0.90625,
    0.9375,  0.96875, 0.98,   0.99,    0.995,   0.999,   1.0};
constexpr int32_t kDenseKnots[kCriteoDense][kKnots] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 6, 7, 9, 13, 22, 29, 44, 59, 95,
     214},
    {-2, -1, -1, -1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 3, 4, 6, 8, 11, 15, 21, 27, 35, 48, 63, 90, 132, 202, 384,
     921, 1449, 2361, 2865, 3600, 18522},
    {0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 6, 6, 7, 8, 9, 11, 12, 14, 16, 19, 22, 26, 32, 40, 52, 74, 126,
     166, 278, 490, 2815, 65535},
    {0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 8, 9, 10, 11, 13, 15, 17, 20, 24, 32, 37, 43,
     51, 76, 280},
    {0, 1, 4, 11, 24, 50, 96, 171, 296, 489, 738, 1131, 1409, 1522, 1738, 2103, 2810, 3054, 3715, 4415, 5307, 6167,
     7351, 8811, 10330, 12378, 15916, 20129, 26771, 33920, 42098, 105328, 171519, 318738, 493257, 886646, 1669366},
    {0, 0, 0, 1, 2, 4, 5, 7, 9, 11, 14, 17, 20, 23, 27, 32, 37, 42, 49, 56, 65, 74, 86, 100, 119, 141, 170, 207, 255,
     329, 457, 743, 978, 1526, 2136, 3828, 12167},
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 5, 6, 7, 8, 9, 11, 13, 16, 20, 25, 33, 50, 85, 122, 202,
     314, 557, 1658},
    {0, 0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 7, 8, 10, 11, 12, 14, 16, 18, 20, 22, 25, 28, 31, 35, 39, 45, 47,
     48, 49, 52, 547},
    {0, 0, 1, 2, 3, 4, 6, 8, 10, 13, 16, 19, 22, 26, 30, 35, 40, 46, 53, 60, 68, 78, 89, 103, 118, 138, 163, 197, 243,
     303, 413, 629, 806, 1125, 1501, 3037, 5820},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 4, 6},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 5, 6, 8, 13, 16, 23, 32, 52,
     84},
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 3, 6, 9, 16, 24, 42,
     98},
    {0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 7, 7, 8, 9, 11, 12, 14, 16, 18, 21, 26, 31, 42, 48, 64,
     88, 197, 770},
};

// ---------------------------------------------------------------------------------------------------
// Planted click model. The weights below set the relative strength of the parts of the signal; the whole
// signal is then multiplied by a per-seed scale chosen so that the best AUC is kTargetBestAuc (Criteo's
// best public models reach ~0.80-0.81), and shifted by a bias for the click rate.

constexpr double kTargetClickRate = 0.245;
constexpr double kTargetBestAuc = 0.80;
// Main-effect scale per categorical column; 0 = the column carries no signal (as several Criteo columns).
constexpr std::array<double, kCriteoCategorical> kCatWeight = {
    0.35, 0.45, 0.40, 0.40, 0.30, 0.30, 0.35, 0.25, 0.00, 0.30, 0.35, 0.30, 0.35,
    0.45, 0.35, 0.30, 0.25, 0.30, 0.25, 0.00, 0.30, 0.00, 0.30, 0.30, 0.25, 0.00};
// Per-value effects shrink from 1x for the head to kTailShare for ranks >> kHeadRanks: frequent values
// carry learnable signal, the long tail mostly noise that no model can learn from few rows.
constexpr double kHeadRanks = 32;
constexpr double kTailShare = 0.3;
constexpr double kDenseWeight = 0.35;
// I1 missing lowers the click rate in the sample (0.17 vs 0.29); other missing indicators get random
// effects.
constexpr double kI1MissingEffect = -0.55;
// Rank-4 dot interactions <u(a, ka), u(b, kb)> between categorical pairs (0-based columns).
constexpr int kLatentDim = 4;
constexpr int kPairs = 3;
constexpr int kPairA[kPairs] = {1, 7, 3};    // C2, C8, C4
constexpr int kPairB[kPairs] = {13, 16, 12}; // C14, C17, C13
constexpr double kPairWeight = 0.9;
// Dense x categorical interaction: log1p(I7) scales a per-value effect of C6.
constexpr int kCrossDense = 6, kCrossCat = 5;
constexpr double kCrossWeight = 0.25;

constexpr uint64_t kStreamTag = 0x43726974656f5267ull;  // row streams
constexpr uint64_t kCalibTag = 0x43616c6962726174ull;   // scale and bias calibration stream
constexpr uint64_t kHexTag = 0x48657856616c7565ull;     // seed-independent value spellings
constexpr int64_t kCalibRows = 4 * kCriteoBlockRows;

// Sequential 64-bit generator (splitmix64): one add and one mix per draw, good enough for sampling and
// cheap to seed per block.
class Rng {
 public:
  explicit Rng(uint64_t state) : state_(state) {}
  uint64_t next() {
    state_ += 0x9E3779B97F4A7C15ull;
    return mix64(state_);
  }
  double uniform() { return unit_interval(next()); }

 private:
  uint64_t state_;
};

// Approximately standard normal from one hash: the sum of four 16-bit uniforms (Irwin-Hall), rescaled
// to unit variance. Bounded at +-3.5, which keeps single effects from dominating.
inline double hash_gauss(uint64_t h) {
  const double sum = static_cast<double>((h & 0xffff) + ((h >> 16) & 0xffff) + ((h >> 32) & 0xffff) + (h >> 48));
  return (sum * (1.0 / 65536.0) - 2.0) * 1.7320508075688772;
}

// Bijection on 32 bits (xorshifts and odd multipliers are each invertible), so distinct ranks of one
// column always get distinct hex spellings.
inline uint32_t mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Draws 0-based ranks of a Zipf-Mandelbrot law over V values in O(1): the first kHead ranks by an exact
// cumulative table with a guide table, the rest by inverting the continuous integral of (x + q)^-s (the
// midpoint rule is accurate to ~1e-5 relative that far from the head). The head is kept small so that
// each guide bucket holds about one rank (short scans) and all 26 tables stay in L2. Immutable after construction, so
// one instance per column is shared by all threads.
class ZipfSampler {
 public:
  static constexpr int64_t kHead = 256;
  static constexpr int kGuide = 1024;

  ZipfSampler(int64_t vocab, ZipfParams p) : vocab_(vocab), s_(p.s), q_(p.q) {
    head_ = std::min(vocab, kHead);
    cdf_.resize(static_cast<std::size_t>(head_));
    double z = 0;
    for (int64_t k = 1; k <= head_; ++k) z += std::pow(static_cast<double>(k) + q_, -s_);
    double tail = 0;
    if (vocab_ > head_) {
      tail_lo_ = integral(static_cast<double>(head_) + 0.5 + q_);
      tail_hi_ = integral(static_cast<double>(vocab_) + 0.5 + q_);
      tail = tail_hi_ - tail_lo_;
    }
    double acc = 0;
    for (int64_t k = 1; k <= head_; ++k) {
      acc += std::pow(static_cast<double>(k) + q_, -s_) / (z + tail);
      cdf_[static_cast<std::size_t>(k - 1)] = p.m0 + (1 - p.m0) * acc;
    }
    head_mass_ = vocab_ > head_ ? cdf_.back() : 1.0;
    if (vocab_ == head_) cdf_.back() = 1.0;  // no rounding gap at the very end
    guide_.resize(kGuide);
    int64_t k = 0;
    for (int g = 0; g < kGuide; ++g) {
      const double u = static_cast<double>(g) / kGuide;
      while (k < head_ && cdf_[static_cast<std::size_t>(k)] <= u) ++k;
      guide_[g] = static_cast<int32_t>(k);
    }
  }

  // u in [0, 1) -> rank in [0, vocab).
  int64_t sample(double u) const {
    int64_t k = guide_[static_cast<int>(u * kGuide)];
    while (k < head_ && cdf_[static_cast<std::size_t>(k)] <= u) ++k;
    if (k < head_) return k;
    const double t = (u - head_mass_) / (1.0 - head_mass_);
    const double x = inverse_integral(tail_lo_ + t * (tail_hi_ - tail_lo_)) - q_;
    return std::clamp<int64_t>(std::llround(x), head_ + 1, vocab_) - 1;
  }

 private:
  // Antiderivative of (x)^-s (the shift by q is applied by the callers) and its inverse.
  double integral(double x) const { return s_ == 1.0 ? std::log(x) : std::pow(x, 1 - s_) / (1 - s_); }
  double inverse_integral(double y) const {
    return s_ == 1.0 ? std::exp(y) : std::exp(std::log((1 - s_) * y) / (1 - s_));
  }

  int64_t vocab_, head_ = 0;
  double s_, q_, head_mass_ = 1, tail_lo_ = 0, tail_hi_ = 0;
  std::vector<double> cdf_;
  std::vector<int32_t> guide_;
};

// One sampled row before formatting.
struct Row {
  bool dense_present[kCriteoDense];
  int64_t dense[kCriteoDense];
  int64_t cat[kCriteoCategorical];  // 0-based rank, -1 = missing
  double logit;                     // the signal, before the calibrated scale and bias
};

// Everything that defines the distribution for one seed. Immutable after construction; shared.
class CriteoModel {
 public:
  explicit CriteoModel(uint64_t seed) {
    for (int c = 0; c < kCriteoCategorical; ++c) {
      samplers_.emplace_back(kVocab[c], kZipf[c]);
      const uint64_t h = mix64(kHexTag + static_cast<uint64_t>(c));
      hex_mul_[c] = static_cast<uint32_t>(h) | 1u;
      hex_add_[c] = static_cast<uint32_t>(h >> 32);
      salt_[c] = mix64(mix64(seed ^ 0x5eedc47e90000000ull) + static_cast<uint64_t>(c));
      missing_effect_cat_[c] = kCatWeight[c] * 0.5 * hash_gauss(mix64(salt_[c] ^ 0xfeedull));
    }
    for (int j = 0; j < kCriteoDense; ++j) {
      for (int i = 0; i < kKnots; ++i) {
        const double v = kDenseKnots[j][i];
        knot_t_[j][i] = v < 0 ? -std::log1p(-v) : std::log1p(v);
      }
      // Scale by the 90% quantile so each column's typical contribution is comparable.
      const double scale = std::log1p(std::max(1, kDenseKnots[j][29]));
      const uint64_t h = mix64(mix64(seed ^ 0xde45e00000000000ull) + static_cast<uint64_t>(j));
      // Random sign, magnitude within 2x: no seed gets a column that swamps the others.
      dense_coef_[j] = ((h & 1) ? 1 : -1) * kDenseWeight * (0.5 + 0.5 * unit_interval(mix64(h ^ 1))) / scale;
      missing_effect_dense_[j] = 0.25 * hash_gauss(mix64(h));
    }
    missing_effect_dense_[0] = kI1MissingEffect;
    for (int v = 0; v < kLog1pTable; ++v) log1p_table_[v] = std::log1p(static_cast<double>(v));
    for (int j = 0; j < kCriteoDense; ++j)
      for (int i = 0; i <= kDenseCells; ++i) dense_body_[j][i] = dense_quantile(j, kDenseBodyP * i / kDenseCells);
    for (int c = 0; c < kCriteoCategorical; ++c) {
      for (int k = 0; k < kHeadTable; ++k) {
        main_head_[c][k] = compute_main(c, k);
        for (int d = 0; d < kLatentDim; ++d) latent_head_[c][k][d] = compute_latent(c, k, d);
      }
    }
  }

  // Draws one row's features and its signal (row.logit). The number of draws depends only on the row's
  // own values, so every row of a block is reproducible from the block's stream.
  void draw(Rng& rng, Row& row) const {
    double groups[kMissingGroups];
    for (double& g : groups) g = rng.uniform();
    double logit = 0;
    for (int j = 0; j < kCriteoDense; ++j) {
      const int g = kMissingGroup[j];
      row.dense_present[j] = g < 0 || groups[g] >= kMissingRate[j];
      if (!row.dense_present[j]) {
        logit += missing_effect_dense_[j];
        continue;
      }
      row.dense[j] = sample_dense(j, rng.uniform());
      logit += dense_coef_[j] * log1p_count(row.dense[j]);
    }
    for (int c = 0; c < kCriteoCategorical; ++c) {
      const int g = kMissingGroup[kCriteoDense + c];
      if (g >= 0 && groups[g] < kMissingRate[kCriteoDense + c]) {
        row.cat[c] = -1;
        logit += missing_effect_cat_[c];
        continue;
      }
      const int64_t k = samplers_[c].sample(rng.uniform());
      row.cat[c] = k;
      logit += k < kHeadTable ? main_head_[c][k] : compute_main(c, k);
    }
    for (int p = 0; p < kPairs; ++p) {
      const int64_t ka = row.cat[kPairA[p]], kb = row.cat[kPairB[p]];
      if (ka < 0 || kb < 0) continue;
      double dot = 0;
      for (int d = 0; d < kLatentDim; ++d) dot += latent(kPairA[p], ka, d) * latent(kPairB[p], kb, d);
      logit += kPairWeight * dot / kLatentDim;
    }
    if (row.dense_present[kCrossDense] && row.cat[kCrossCat] >= 0) {
      const double x = log1p_count(row.dense[kCrossDense]);
      logit += kCrossWeight * x * hash_gauss(value_hash(kCrossCat, row.cat[kCrossCat], 7));
    }
    row.logit = logit;
  }

  uint32_t hex_value(int c, int64_t rank) const {
    return mix32(static_cast<uint32_t>(rank) * hex_mul_[c] + hex_add_[c]);
  }

 private:
  // log1p(max(v, 0)); most counts are small, so they come from a table.
  double log1p_count(int64_t v) const {
    if (v < 0) return 0;
    return v < kLog1pTable ? log1p_table_[v] : std::log1p(static_cast<double>(v));
  }
  double compute_main(int c, int64_t k) const {
    return kCatWeight[c] * head_weight(k) * hash_gauss(value_hash(c, k, 0));
  }
  // Coordinate d of the interaction vector of value k; frequent values get longer vectors.
  double compute_latent(int c, int64_t k, int d) const { return head_weight(k) * hash_gauss(value_hash(c, k, 1 + d)); }
  double latent(int c, int64_t k, int d) const {
    return k < kHeadTable ? latent_head_[c][k][d] : compute_latent(c, k, d);
  }
  static double head_weight(int64_t rank) {
    return kTailShare + (1 - kTailShare) * kHeadRanks / (kHeadRanks + static_cast<double>(rank));
  }
  uint64_t value_hash(int c, int64_t rank, int slot) const {
    return mix64(salt_[c] ^ (static_cast<uint64_t>(rank) << 3 | static_cast<uint64_t>(slot)));
  }
  // Quantile function of integer column j at u: interpolated in signed log space between the knots.
  double dense_quantile(int j, double u) const {
    int i = std::min(static_cast<int>(u * 32), 31);
    while (i < kKnots - 2 && u >= kKnotP[i + 1]) ++i;
    const int32_t lo = kDenseKnots[j][i], hi = kDenseKnots[j][i + 1];
    if (lo == hi) return lo;
    const double f = (u - kKnotP[i]) / (kKnotP[i + 1] - kKnotP[i]);
    const double t = knot_t_[j][i] + f * (knot_t_[j][i + 1] - knot_t_[j][i]);
    return t < 0 ? -std::expm1(-t) : std::expm1(t);
  }
  // The body (u < 31/32) is read from a table of the quantile function with linear interpolation between
  // cells, which avoids an expm1 per value; the table is fine enough (32 cells per knot segment) that
  // log-space and linear interpolation agree to well under one unit where it matters. The tail keeps the
  // exact path.
  int64_t sample_dense(int j, double u) const {
    double v;
    if (u < kDenseBodyP) {
      const double x = u * (kDenseCells / kDenseBodyP);
      const int i = static_cast<int>(x);
      const double a = dense_body_[j][i], b = dense_body_[j][i + 1];
      v = a == b ? a : a + (x - i) * (b - a);
    } else {
      v = dense_quantile(j, u);
    }
    return v < 0 ? -static_cast<int64_t>(0.5 - v) : static_cast<int64_t>(v + 0.5);
  }

  static constexpr int kLog1pTable = 1024;
  static constexpr int kDenseCells = 1024;
  static constexpr double kDenseBodyP = 31.0 / 32.0;
  static constexpr int kHeadTable = 256;
  std::vector<ZipfSampler> samplers_;
  double dense_body_[kCriteoDense][kDenseCells + 1];
  // Effects of the kHeadTable most frequent values of each column (most draws), precomputed.
  double main_head_[kCriteoCategorical][kHeadTable];
  double latent_head_[kCriteoCategorical][kHeadTable][kLatentDim];
  double log1p_table_[kLog1pTable];
  uint32_t hex_mul_[kCriteoCategorical], hex_add_[kCriteoCategorical];
  uint64_t salt_[kCriteoCategorical];
  double missing_effect_cat_[kCriteoCategorical];
  double knot_t_[kCriteoDense][kKnots];
  double dense_coef_[kCriteoDense], missing_effect_dense_[kCriteoDense];
};

inline Rng block_rng(uint64_t seed, uint64_t tag, int64_t block) {
  return Rng(mix64(mix64(seed ^ tag) + static_cast<uint64_t>(block)));
}

inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// logit(p) = scale * signal + bias.
struct Calibration {
  double scale = 1, bias = 0;
  double logit(double signal) const { return scale * signal + bias; }
};

// Chooses scale and bias on a fixed calibration sample drawn from its own stream (so they depend on the
// seed only, not on rows or threads): bias makes the mean click probability kTargetClickRate, and scale
// makes the expected AUC of the true probabilities kTargetBestAuc. The expected AUC needs no labels: with
// rows sorted by signal, sum_i p_i * sum_{j below i} (1 - p_j) / (sum p * sum (1 - p)); the order does not
// depend on scale or bias, so one sort serves the whole search.
Calibration calibrate(const CriteoModel& model, uint64_t seed, int threads) {
  std::vector<double> signal(kCalibRows);
  const int64_t blocks = kCalibRows / kCriteoBlockRows;
  parallel_for_dynamic(blocks, threads, [&](int64_t b, int) {
    Rng rng = block_rng(seed, kCalibTag, b);
    Row row;
    for (int64_t i = b * kCriteoBlockRows; i < (b + 1) * kCriteoBlockRows; ++i) {
      model.draw(rng, row);
      signal[static_cast<std::size_t>(i)] = row.logit;
    }
  });
  std::sort(signal.begin(), signal.end());
  double mean_signal = 0;
  for (double x : signal) mean_signal += x / kCalibRows;

  // Newton on the bias: the mean probability is increasing in it and its derivative is mean p(1 - p).
  auto fit_bias = [&](double scale) {
    double bias = std::log(kTargetClickRate / (1 - kTargetClickRate)) - scale * mean_signal;
    for (int it = 0; it < 50; ++it) {
      double sum = 0, slope = 0;
      for (double x : signal) {
        const double p = sigmoid(scale * x + bias);
        sum += p;
        slope += p * (1 - p);
      }
      const double step = (sum - kTargetClickRate * kCalibRows) / slope;
      bias -= std::clamp(step, -2.0, 2.0);
      if (std::abs(step) < 1e-9) break;
    }
    return bias;
  };
  auto expected_auc = [&](double scale, double bias) {
    double wins = 0, pos = 0, neg_below = 0;
    for (double x : signal) {
      const double p = sigmoid(scale * x + bias);
      wins += p * neg_below;
      pos += p;
      neg_below += 1 - p;
    }
    return wins / (pos * neg_below);
  };
  double lo = 0.01, hi = 8;
  for (int it = 0; it < 30; ++it) {
    const double mid = 0.5 * (lo + hi);
    (expected_auc(mid, fit_bias(mid)) < kTargetBestAuc ? lo : hi) = mid;
  }
  Calibration cal;
  cal.scale = 0.5 * (lo + hi);
  cal.bias = fit_bias(cal.scale);
  return cal;
}

// ---------------------------------------------------------------------------------------------------
// Text formatting without printf: these run ~40 times per row.

constexpr char kDigitPairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
constexpr char kHexDigits[] = "0123456789abcdef";
// Upper bound of one formatted row: label, 13 x (tab + sign + 19 digits), 26 x (tab + 8), newline.
constexpr int64_t kMaxRowBytes = 1 + kCriteoDense * 21 + kCriteoCategorical * 9 + 1;

inline char* put_uint(char* p, uint64_t v) {
  char tmp[20];
  char* t = tmp + sizeof tmp;
  while (v >= 100) {
    const auto d = static_cast<std::size_t>(v % 100) * 2;
    v /= 100;
    *--t = kDigitPairs[d + 1];
    *--t = kDigitPairs[d];
  }
  if (v >= 10) {
    *--t = kDigitPairs[v * 2 + 1];
    *--t = kDigitPairs[v * 2];
  } else {
    *--t = static_cast<char>('0' + v);
  }
  const auto len = static_cast<std::size_t>(tmp + sizeof tmp - t);
  std::memcpy(p, t, len);
  return p + len;
}

inline char* put_int(char* p, int64_t v) {
  if (v < 0) {
    *p++ = '-';
    return put_uint(p, static_cast<uint64_t>(0) - static_cast<uint64_t>(v));
  }
  return put_uint(p, static_cast<uint64_t>(v));
}

inline char* put_hex8(char* p, uint32_t v) {
  for (int i = 7; i >= 0; --i) {
    p[i] = kHexDigits[v & 15];
    v >>= 4;
  }
  return p + 8;
}

// Per-thread tallies merged after the run.
struct Tally {
  int64_t missing[kFields39] = {};
  std::vector<uint64_t> seen;  // one bit per (column, rank), columns at vocab_offset
};

struct BlockSlot {
  std::string text;  // formatted rows (capacity reused across waves)
  std::string gz;    // gzip member of text when compressing
  std::size_t text_len = 0;
  bool ready = false;
};

// Compresses text into one complete gzip member; concatenated members form a valid .gz file that gzip,
// zcat and zlib's gzread read as one stream.
void gzip_member(const char* data, std::size_t len, int level, std::string& out) {
  z_stream zs{};
  BW_ASSERT(deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  out.resize(deflateBound(&zs, static_cast<uLong>(len)));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  zs.avail_in = static_cast<uInt>(len);
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  BW_ASSERT(rc == Z_STREAM_END, "deflate returned ", rc);
  out.resize(zs.total_out);
  deflateEnd(&zs);
}

bool ends_with_gz(const fs::path& p) {
  const std::string s = p.string();
  return s.size() >= 3 && s.compare(s.size() - 3, 3, ".gz") == 0;
}

// The output file under its temporary name; removed unless commit() renamed it into place.
class TempOutput {
 public:
  explicit TempOutput(const fs::path& final_path) : final_(final_path) {
    tmp_ = final_path;
    tmp_ += ".tmp." + std::to_string(::getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    BW_CHECK(fd_ >= 0, IoError, "gen criteo: cannot create '", tmp_.string(), "' (for '", final_.string(),
             "'): ", std::strerror(errno));
  }
  ~TempOutput() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  TempOutput(const TempOutput&) = delete;
  TempOutput& operator=(const TempOutput&) = delete;

  // Bytes go to the file in whole, aligned pieces of kPiece: the page cache then holds the file in 2 MiB
  // folios, which a reader that maps the file (prep) touches at a fraction of the cost of 4 KiB ones on
  // virtual machines (each new page a fault into the hypervisor: a first pass over a 243 MB file mapped
  // took ~100-150 ms of page faults from 4 KiB folios against ~10-35 ms from 2 MiB ones, 2026-12-05).
  // The generator's blocks are a few MB of no particular alignment.
  void write(const char* p, std::size_t n) {
    pending_.append(p, n);
    written_ += static_cast<int64_t>(n);
    if (pending_.size() >= 2 * kPiece) drain(pending_.size() / kPiece * kPiece);
  }
  // No fsync: the rename already hides partial files from readers, and a generated file can be
  // regenerated from its seed, so paying ~0.5 s per GB for durability buys nothing.
  void commit() {
    drain(pending_.size());
    const int fd = std::exchange(fd_, -1);
    BW_CHECK(::close(fd) == 0, IoError, "gen criteo: cannot flush '", tmp_.string(), "': ", std::strerror(errno));
    BW_CHECK(::rename(tmp_.c_str(), final_.c_str()) == 0, IoError, "gen criteo: cannot rename '", tmp_.string(),
             "' to '", final_.string(), "': ", std::strerror(errno));
    committed_ = true;
  }
  int64_t written() const { return written_; }

 private:
  static constexpr std::size_t kPiece = std::size_t{2} << 20;

  // Writes the first n pending bytes.
  void drain(std::size_t n) {
    BW_CHECK(write_fully(fd_, pending_.data(), n), IoError, "gen criteo: cannot write '", tmp_.string(), "': ",
             std::strerror(errno));
    pending_.erase(0, n);
  }

  fs::path final_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  int64_t written_ = 0;  // bytes handed to write(), pending ones included
  std::string pending_;  // bytes not yet written, fewer than 2 * kPiece between calls
};

int64_t block_count(int64_t rows) { return (rows + kCriteoBlockRows - 1) / kCriteoBlockRows; }

}  // namespace

const std::array<double, kCriteoDense + kCriteoCategorical>& criteo_target_missing_rates() { return kMissingRate; }
const std::array<int64_t, kCriteoCategorical>& criteo_vocab_sizes() { return kVocab; }

CriteoTruth criteo_truth(int64_t rows, uint64_t seed, int threads) {
  BW_CHECK(rows >= 1, ConfigError, "gen criteo: rows must be >= 1, got ", rows);
  threads = resolve_threads(threads);
  // ~400 KB of tables: on the heap, not the stack.
  const auto model_ptr = std::make_unique<const CriteoModel>(seed);
  const CriteoModel& model = *model_ptr;
  CriteoTruth truth;
  const Calibration cal = calibrate(model, seed, threads);
  truth.bias = cal.bias;
  truth.scale = cal.scale;
  truth.prob.resize(static_cast<std::size_t>(rows));
  truth.label.resize(static_cast<std::size_t>(rows));
  parallel_for_dynamic(block_count(rows), threads, [&](int64_t b, int) {
    Rng rng = block_rng(seed, kStreamTag, b);
    Row row;
    for (int64_t i = b * kCriteoBlockRows; i < std::min(rows, (b + 1) * kCriteoBlockRows); ++i) {
      model.draw(rng, row);
      const double p = sigmoid(cal.logit(row.logit));
      truth.prob[static_cast<std::size_t>(i)] = static_cast<float>(p);
      truth.label[static_cast<std::size_t>(i)] = rng.uniform() < p ? 1.0f : 0.0f;
    }
  });
  return truth;
}

CriteoGenReport generate_criteo(const CriteoGenOptions& opts) {
  const auto start = std::chrono::steady_clock::now();
  BW_CHECK(opts.rows >= 1, ConfigError, "gen criteo: rows must be >= 1, got ", opts.rows);
  BW_CHECK(opts.test_fraction >= 0 && opts.test_fraction < 1, ConfigError,
           "gen criteo: test_fraction must be in [0, 1), got ", opts.test_fraction);
  BW_CHECK(!opts.out.empty(), ConfigError, "gen criteo: no output path given");
  const bool gz = ends_with_gz(opts.out);
  BW_CHECK(!gz || (opts.gzip_level >= 1 && opts.gzip_level <= 9), ConfigError,
           "gen criteo: gzip_level must be in 1..9, got ", opts.gzip_level);
  const int64_t rows = opts.rows;
  // More threads than blocks would only cost per-thread buffers.
  const int threads = static_cast<int>(std::min<int64_t>(resolve_threads(opts.threads), block_count(rows)));

  TempOutput file(opts.out);
  const auto model_ptr = std::make_unique<const CriteoModel>(opts.seed);
  const CriteoModel& model = *model_ptr;
  const Calibration cal = calibrate(model, opts.seed, threads);

  std::array<int64_t, kCriteoCategorical + 1> vocab_offset{};
  for (int c = 0; c < kCriteoCategorical; ++c) vocab_offset[c + 1] = vocab_offset[c] + kVocab[c];
  std::vector<Tally> tallies(static_cast<std::size_t>(threads));
  for (Tally& t : tallies) t.seen.assign(static_cast<std::size_t>(vocab_offset.back() / 64 + 1), 0);

  std::vector<float> prob(static_cast<std::size_t>(rows)), label(static_cast<std::size_t>(rows));
  std::optional<ProgressReporter> progress;
  if (opts.progress) progress.emplace("gen criteo", 0);
  const int64_t blocks = block_count(rows);
  // Blocks are generated a wave at a time so that memory stays bounded (~8 MB per slot); inside
  // a wave, whichever thread completes the next block in file order writes it and any later ready ones.
  const int64_t wave = 4 * static_cast<int64_t>(threads);
  std::vector<BlockSlot> slots(static_cast<std::size_t>(std::min(wave, blocks)));
  std::mutex write_mu;
  int64_t text_bytes = 0;

  for (int64_t w0 = 0; w0 < blocks; w0 += wave) {
    const int64_t nw = std::min(wave, blocks - w0);
    int64_t next_write = 0;
    for (auto& s : slots) s.ready = false;
    parallel_for_dynamic(nw, threads, [&](int64_t i, int tid) {
      const int64_t b = w0 + i;
      const int64_t r0 = b * kCriteoBlockRows, r1 = std::min(rows, r0 + kCriteoBlockRows);
      BlockSlot& slot = slots[static_cast<std::size_t>(i)];
      if (slot.text.size() < static_cast<std::size_t>(kCriteoBlockRows * kMaxRowBytes))
        slot.text.resize(static_cast<std::size_t>(kCriteoBlockRows * kMaxRowBytes));
      Tally& tally = tallies[static_cast<std::size_t>(tid)];
      Rng rng = block_rng(opts.seed, kStreamTag, b);
      Row row;
      char* p = slot.text.data();
      for (int64_t r = r0; r < r1; ++r) {
        model.draw(rng, row);
        const double pr = sigmoid(cal.logit(row.logit));
        const bool click = rng.uniform() < pr;
        prob[static_cast<std::size_t>(r)] = static_cast<float>(pr);
        label[static_cast<std::size_t>(r)] = click ? 1.0f : 0.0f;
        *p++ = click ? '1' : '0';
        for (int j = 0; j < kCriteoDense; ++j) {
          *p++ = '\t';
          if (row.dense_present[j]) p = put_int(p, row.dense[j]);
          else ++tally.missing[j];
        }
        for (int c = 0; c < kCriteoCategorical; ++c) {
          *p++ = '\t';
          const int64_t k = row.cat[c];
          if (k < 0) {
            ++tally.missing[kCriteoDense + c];
            continue;
          }
          p = put_hex8(p, model.hex_value(c, k));
          const auto bit = static_cast<uint64_t>(vocab_offset[c] + k);
          tally.seen[bit >> 6] |= uint64_t{1} << (bit & 63);
        }
        *p++ = '\n';
      }
      slot.text_len = static_cast<std::size_t>(p - slot.text.data());
      if (gz) gzip_member(slot.text.data(), slot.text_len, opts.gzip_level, slot.gz);

      std::lock_guard<std::mutex> lock(write_mu);
      slot.ready = true;
      while (next_write < nw && slots[static_cast<std::size_t>(next_write)].ready) {
        BlockSlot& s = slots[static_cast<std::size_t>(next_write)];
        if (gz) file.write(s.gz.data(), s.gz.size());
        else file.write(s.text.data(), s.text_len);
        text_bytes += static_cast<int64_t>(s.text_len);
        const int64_t wb = w0 + next_write;
        if (progress) progress->add(std::min(rows, (wb + 1) * kCriteoBlockRows) - wb * kCriteoBlockRows,
                     static_cast<int64_t>(gz ? s.gz.size() : s.text_len));
        ++next_write;
      }
    });
  }
  file.commit();
  if (progress) progress->finish();

  CriteoGenReport rep;
  rep.out = opts.out;
  rep.truth_path = opts.out;
  rep.truth_path += ".truth.json";
  rep.seed = opts.seed;
  rep.rows = rows;
  rep.test_rows = static_cast<int64_t>(std::floor(static_cast<double>(rows) * opts.test_fraction));
  rep.bias = cal.bias;
  rep.signal_scale = cal.scale;
  rep.bytes = file.written();
  rep.text_bytes = text_bytes;
  int64_t clicks = 0, test_clicks = 0;
  const int64_t test_begin = rows - rep.test_rows;
  for (int64_t r = 0; r < rows; ++r) {
    const auto y = static_cast<int64_t>(label[static_cast<std::size_t>(r)]);
    clicks += y;
    if (r >= test_begin) test_clicks += y;
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  rep.click_rate = static_cast<double>(clicks) / static_cast<double>(rows);
  rep.click_rate_test = rep.test_rows ? static_cast<double>(test_clicks) / static_cast<double>(rep.test_rows) : nan;
  rep.best_auc_all = roc_auc(prob.data(), label.data(), rows, threads);
  rep.best_auc_test = rep.test_rows ? roc_auc(prob.data() + test_begin, label.data() + test_begin, rep.test_rows, threads) : nan;
  rep.best_log_loss_test = rep.test_rows ? log_loss(prob.data() + test_begin, label.data() + test_begin, rep.test_rows) : nan;

  rep.missing_rate.assign(kFields39, 0.0);
  for (int f = 0; f < kFields39; ++f) {
    int64_t m = 0;
    for (const Tally& t : tallies) m += t.missing[f];
    rep.missing_rate[f] = static_cast<double>(m) / static_cast<double>(rows);
  }
  rep.vocab_per_column.assign(kVocab.begin(), kVocab.end());
  rep.distinct_per_column.assign(kCriteoCategorical, 0);
  for (std::size_t w = 0; w < tallies[0].seen.size(); ++w) {
    uint64_t bits = 0;
    for (const Tally& t : tallies) bits |= t.seen[w];
    while (bits) {
      const int64_t bit = static_cast<int64_t>(w) * 64 + __builtin_ctzll(bits);
      bits &= bits - 1;
      const int c = static_cast<int>(std::upper_bound(vocab_offset.begin(), vocab_offset.end(), bit) - vocab_offset.begin()) - 1;
      ++rep.distinct_per_column[static_cast<std::size_t>(c)];
    }
  }
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  write_file_atomic(rep.truth_path, criteo_report_json(rep) + "\n");
  return rep;
}

std::string criteo_report_json(const CriteoGenReport& r) {
  nlohmann::json j;
  j["generator"] = "bluewhale gen criteo";
  j["format"] = "label, I1..I13, C1..C26 tab-separated; empty = missing";
  j["out"] = r.out.string();
  j["seed"] = r.seed;
  j["rows"] = r.rows;
  j["test_rows"] = r.test_rows;
  j["click_rate"] = r.click_rate;
  j["click_rate_test"] = r.click_rate_test;
  j["bias"] = r.bias;
  j["signal_scale"] = r.signal_scale;
  j["best_auc_all"] = r.best_auc_all;
  j["best_auc_test"] = r.best_auc_test;
  j["best_log_loss_test"] = r.best_log_loss_test;
  j["seconds"] = r.seconds;
  j["bytes"] = r.bytes;
  j["text_bytes"] = r.text_bytes;
  nlohmann::json miss = nlohmann::json::object(), target = nlohmann::json::object();
  for (int f = 0; f < kFields39 && f < static_cast<int>(r.missing_rate.size()); ++f) {
    const std::string name = f < kCriteoDense ? "I" + std::to_string(f + 1) : "C" + std::to_string(f - kCriteoDense + 1);
    miss[name] = r.missing_rate[static_cast<std::size_t>(f)];
    target[name] = kMissingRate[static_cast<std::size_t>(f)];
  }
  j["missing_rate"] = miss;
  j["target_missing_rate"] = target;
  nlohmann::json vocab = nlohmann::json::object(), distinct = nlohmann::json::object();
  for (std::size_t c = 0; c < r.vocab_per_column.size(); ++c) vocab["C" + std::to_string(c + 1)] = r.vocab_per_column[c];
  for (std::size_t c = 0; c < r.distinct_per_column.size(); ++c)
    distinct["C" + std::to_string(c + 1)] = r.distinct_per_column[c];
  j["target_cardinality"] = vocab;
  j["distinct_per_column"] = distinct;
  return j.dump(2);
}

}  // namespace bluewhale
