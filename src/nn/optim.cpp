#include "bluewhale/nn/optim.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {
namespace {

// Tensors smaller than this are updated on the caller: a wake-up costs more than the work.
constexpr int64_t kParallelMinElements = int64_t{1} << 15;
// LAMB norms are summed per chunk of this size, then over chunks in order: the same sums for any thread
// count.
constexpr int64_t kNormChunk = 4096;

int threads_for(int64_t n, int threads) { return n < kParallelMinElements ? 1 : std::max(1, threads); }

template <class Fn>
void for_elements(int64_t n, int threads, Fn&& fn) {
  parallel_for(n, threads_for(n, threads), [&](int64_t b, int64_t e, int) { fn(b, e); });
}

}  // namespace

void LrSchedule::validate() const {
  BW_CHECK(std::isfinite(base_lr) && base_lr >= 0, ConfigError, "lr schedule: base_lr must be finite and >= 0, got ",
           base_lr);
  BW_CHECK(std::isfinite(min_lr) && min_lr >= 0, ConfigError, "lr schedule: min_lr must be finite and >= 0, got ",
           min_lr);
  BW_CHECK(warmup_steps >= 0, ConfigError, "lr schedule: warmup_steps must be >= 0, got ", warmup_steps);
  BW_CHECK(decay_start >= 0 && decay_end >= 0, ConfigError, "lr schedule: decay_start and decay_end must be >= 0, got ",
           decay_start, " and ", decay_end);
  if (decay_end > 0) {
    BW_CHECK(decay_start >= warmup_steps, ConfigError, "lr schedule: decay_start (", decay_start,
             ") must not come before the end of warmup (warmup_steps = ", warmup_steps, ")");
    BW_CHECK(decay_end > decay_start, ConfigError, "lr schedule: decay_end (", decay_end,
             ") must be after decay_start (", decay_start, ")");
    BW_CHECK(std::isfinite(power) && power > 0, ConfigError, "lr schedule: power must be > 0, got ", power);
  }
}

float LrSchedule::lr(int64_t step) const {
  if (step < warmup_steps) return base_lr * static_cast<float>(static_cast<double>(step) / warmup_steps);
  if (decay_end <= 0 || step < decay_start) return base_lr;
  if (step >= decay_end) return min_lr;
  const double left = static_cast<double>(decay_end - step) / static_cast<double>(decay_end - decay_start);
  return std::max(min_lr, static_cast<float>(base_lr * std::pow(left, static_cast<double>(power))));
}

OptimizerKind parse_optimizer_kind(std::string_view name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adagrad") return OptimizerKind::kAdagrad;
  if (name == "adam") return OptimizerKind::kAdam;
  if (name == "lamb") return OptimizerKind::kLamb;
  BW_THROW(ConfigError, "optimizer: unknown name '", std::string(name), "', expected sgd, adagrad, adam or lamb");
}

void OptimizerConfig::validate() const {
  schedule.validate();
  BW_CHECK(beta1 >= 0 && beta1 < 1, ConfigError, "optimizer: beta1 must be in [0, 1), got ", beta1);
  BW_CHECK(beta2 >= 0 && beta2 < 1, ConfigError, "optimizer: beta2 must be in [0, 1), got ", beta2);
  BW_CHECK(std::isfinite(eps) && eps > 0, ConfigError, "optimizer: eps must be > 0, got ", eps);
  BW_CHECK(std::isfinite(weight_decay) && weight_decay >= 0, ConfigError,
           "optimizer: weight_decay must be >= 0, got ", weight_decay);
  BW_CHECK(std::isfinite(adagrad_initial_accumulator) && adagrad_initial_accumulator >= 0, ConfigError,
           "optimizer: adagrad_initial_accumulator must be >= 0, got ", adagrad_initial_accumulator);
}

std::unique_ptr<DenseOptimizer> DenseOptimizer::create(const OptimizerConfig& config, std::vector<DenseParam> params) {
  config.validate();
  return std::unique_ptr<DenseOptimizer>(new DenseOptimizer(config, std::move(params)));
}

DenseOptimizer::DenseOptimizer(const OptimizerConfig& config, std::vector<DenseParam> params)
    : config_(config), params_(std::move(params)) {
  for (const DenseParam& p : params_) BW_ASSERT(p.size >= 0 && (p.size == 0 || (p.value && p.grad)));
  const int slots = state_slots();
  for (int s = 0; s < slots; ++s) {
    const float init = config_.kind == OptimizerKind::kAdagrad ? config_.adagrad_initial_accumulator : 0.0f;
    for (const DenseParam& p : params_) state_[s].emplace_back(p.size, init);
  }
}

int DenseOptimizer::state_slots() const {
  switch (config_.kind) {
    case OptimizerKind::kSgd: return 0;
    case OptimizerKind::kAdagrad: return 1;
    case OptimizerKind::kAdam:
    case OptimizerKind::kLamb: return 2;
  }
  return 0;
}

std::span<float> DenseOptimizer::state(int64_t param, int slot) {
  BW_ASSERT(param >= 0 && param < static_cast<int64_t>(params_.size()) && slot >= 0 && slot < 2);
  if (slot >= state_slots()) return {};
  return state_[slot][param];
}

void DenseOptimizer::step(int threads) {
  ++step_;
  const float lr = config_.schedule.lr(step_);
  const float wd = config_.weight_decay, eps = config_.eps, b1 = config_.beta1, b2 = config_.beta2;
  // Bias corrections in double: beta2^t for t in the millions underflows float precision of 1 - x early.
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), static_cast<double>(step_)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), static_cast<double>(step_)));
  for (int64_t p = 0; p < static_cast<int64_t>(params_.size()); ++p) {
    float* w = params_[p].value;
    const float* g = params_[p].grad;
    const int64_t n = params_[p].size;
    switch (config_.kind) {
      case OptimizerKind::kSgd:
        for_elements(n, threads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) w[i] -= lr * (g[i] + wd * w[i]);
        });
        break;
      case OptimizerKind::kAdagrad: {
        float* h = state_[0][p].data();
        for_elements(n, threads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const float gi = g[i] + wd * w[i];
            h[i] += gi * gi;
            w[i] -= lr * gi / (std::sqrt(h[i]) + eps);
          }
        });
        break;
      }
      case OptimizerKind::kAdam: {
        float *m = state_[0][p].data(), *v = state_[1][p].data();
        for_elements(n, threads, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const float gi = g[i] + wd * w[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            w[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
          }
        });
        break;
      }
      case OptimizerKind::kLamb:
        step_lamb(p, lr, threads);
        break;
    }
  }
}

void DenseOptimizer::step_lamb(int64_t p, float lr, int threads) {
  float* w = params_[p].value;
  const float* g = params_[p].grad;
  const int64_t n = params_[p].size;
  float *m = state_[0][p].data(), *v = state_[1][p].data();
  const float wd = config_.weight_decay, eps = config_.eps, b1 = config_.beta1, b2 = config_.beta2;
  const float bc1 = static_cast<float>(1.0 - std::pow(static_cast<double>(b1), static_cast<double>(step_)));
  const float bc2 = static_cast<float>(1.0 - std::pow(static_cast<double>(b2), static_cast<double>(step_)));
  auto update = [&](int64_t i) { return (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps) + wd * w[i]; };

  // Pass 1: moments, and the squared norms of w and of the update, per fixed chunk.
  const int64_t chunks = (n + kNormChunk - 1) / kNormChunk;
  std::vector<double> w_sq(chunks), u_sq(chunks);
  parallel_for(chunks, threads_for(n, threads), [&](int64_t c0, int64_t c1, int) {
    for (int64_t c = c0; c < c1; ++c) {
      double ws = 0, us = 0;
      for (int64_t i = c * kNormChunk, e = std::min(n, (c + 1) * kNormChunk); i < e; ++i) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        const double u = update(i);
        ws += static_cast<double>(w[i]) * w[i];
        us += u * u;
      }
      w_sq[c] = ws;
      u_sq[c] = us;
    }
  });
  double w_norm = 0, u_norm = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    w_norm += w_sq[c];
    u_norm += u_sq[c];
  }
  w_norm = std::sqrt(w_norm);
  u_norm = std::sqrt(u_norm);
  // A zero norm (fresh zero bias, zero gradient) leaves the plain Adam-style step, as in the LAMB paper's
  // reference implementations.
  const float trust = w_norm > 0 && u_norm > 0 ? static_cast<float>(w_norm / u_norm) : 1.0f;
  const float scaled_lr = lr * trust;
  // Pass 2: apply, recomputing the update from the stored moments instead of keeping an n-float buffer.
  for_elements(n, threads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) w[i] -= scaled_lr * update(i);
  });
}

}  // namespace bluewhale
