// Optimizers for dense parameter tensors (MLP weights and biases) and the learning-rate schedule of the
// MLPerf DLRM setup. Embedding tables have their own sparse, fused update in nn/embedding*.
//
// Updates are applied in place to caller-owned tensors. Each update is elementwise, except LAMB's
// per-tensor trust ratio, whose norms are summed over fixed-size chunks in a fixed order, so results do
// not depend on the thread count.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

namespace bluewhale {

// Learning rate as a function of the 1-based update count `step` (the k-th update uses lr(k)), as the
// DLRM reference's LRPolicyScheduler:
//   step < warmup_steps:                  base_lr * step / warmup_steps           (linear warmup)
//   up to decay_start:                    base_lr                                 (constant)
//   decay_start <= step < decay_end:      base_lr * ((decay_end - step) / (decay_end - decay_start))^power,
//                                         at least min_lr                         (polynomial decay)
//   step >= decay_end:                    min_lr
// decay_end == 0 disables the decay. MLPerf DLRM uses power 2.
struct LrSchedule {
  float base_lr = 0.1f;
  int64_t warmup_steps = 0;
  int64_t decay_start = 0;
  int64_t decay_end = 0;
  float power = 2.0f;
  float min_lr = 0.0f;

  // Throws ConfigError naming the field when the schedule is inconsistent (negative lengths, decay
  // starting before warmup ends, non-positive power, ...).
  void validate() const;
  float lr(int64_t step) const;
};

enum class OptimizerKind { kSgd, kAdagrad, kAdam, kLamb };

// "sgd" | "adagrad" | "adam" | "lamb"; throws ConfigError naming the accepted values otherwise.
OptimizerKind parse_optimizer_kind(std::string_view name);

struct OptimizerConfig {
  OptimizerKind kind = OptimizerKind::kSgd;
  LrSchedule schedule;
  // Adam / LAMB moment decay rates, in [0, 1).
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  // Added to the root of the second moment (Adagrad's sum of squares, Adam/LAMB's v-hat).
  float eps = 1e-8f;
  // SGD, Adagrad, Adam: L2 penalty added to the gradient (PyTorch semantics). LAMB: decoupled decay,
  // part of the update the trust ratio scales.
  float weight_decay = 0.0f;
  // Adagrad: starting value of the sum of squared gradients.
  float adagrad_initial_accumulator = 0.0f;

  // Throws ConfigError naming the field when a value is out of range.
  void validate() const;
};

// One parameter tensor: `size` floats of value and gradient, both owned by the caller and alive as long as
// the optimizer is used. The gradient is read during step() only.
struct DenseParam {
  float* value = nullptr;
  const float* grad = nullptr;
  int64_t size = 0;
};

// Applies one optimizer to a fixed list of dense tensors, keeping the per-element state (Adagrad sum of
// squares, Adam/LAMB first and second moments) it needs. Not thread-safe: one caller at a time.
class DenseOptimizer {
 public:
  // Validates the config (ConfigError) and allocates zeroed state for every tensor.
  static std::unique_ptr<DenseOptimizer> create(const OptimizerConfig& config, std::vector<DenseParam> params);

  // One update of every tensor from its current gradient, with lr = schedule.lr(step_count() + 1).
  // Elementwise work is spread over `threads` for big tensors.
  void step(int threads);

  // Updates applied so far.
  int64_t step_count() const { return step_; }
  // Learning rate the next step() will use.
  float next_lr() const { return config_.schedule.lr(step_ + 1); }
  const OptimizerConfig& config() const { return config_; }

  // For checkpoints: the optimizer state of tensor `param` (empty for SGD): slot 0 is Adagrad's sum of
  // squares or Adam/LAMB's first moment, slot 1 Adam/LAMB's second moment. Restore by writing into the
  // spans and calling set_step_count.
  int state_slots() const;
  std::span<float> state(int64_t param, int slot);
  void set_step_count(int64_t step) { step_ = step; }

 private:
  DenseOptimizer(const OptimizerConfig& config, std::vector<DenseParam> params);
  void step_lamb(int64_t p, float lr, int threads);

  OptimizerConfig config_;
  std::vector<DenseParam> params_;
  std::vector<std::vector<float>> state_[2];
  int64_t step_ = 0;
};

}  // namespace bluewhale
