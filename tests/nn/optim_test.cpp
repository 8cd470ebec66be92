#include "bluewhale/nn/optim.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {
namespace {

TEST(LrSchedule, WarmupConstantAndPolynomialDecayAtKeySteps) {
  LrSchedule s{.base_lr = 1.0f, .warmup_steps = 4, .decay_start = 10, .decay_end = 20, .power = 2.0f, .min_lr = 0.0f};
  s.validate();
  EXPECT_FLOAT_EQ(s.lr(1), 0.25f);
  EXPECT_FLOAT_EQ(s.lr(3), 0.75f);
  EXPECT_FLOAT_EQ(s.lr(4), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(9), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(10), 1.0f);
  EXPECT_FLOAT_EQ(s.lr(15), 0.25f);  // ((20 - 15) / 10)^2
  EXPECT_FLOAT_EQ(s.lr(19), 0.01f);
  EXPECT_FLOAT_EQ(s.lr(20), 0.0f);
  EXPECT_FLOAT_EQ(s.lr(1000), 0.0f);
  s.min_lr = 0.05f;
  EXPECT_FLOAT_EQ(s.lr(19), 0.05f);
  EXPECT_FLOAT_EQ(s.lr(25), 0.05f);
  LrSchedule constant{.base_lr = 0.1f};
  EXPECT_FLOAT_EQ(constant.lr(1), 0.1f);
  EXPECT_FLOAT_EQ(constant.lr(1000000), 0.1f);
}

TEST(LrSchedule, InconsistentValuesThrowNamingTheField) {
  auto message = [](const LrSchedule& s) {
    try {
      s.validate();
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({.warmup_steps = -1}).find("warmup_steps"), std::string::npos);
  EXPECT_NE(message({.warmup_steps = 10, .decay_start = 5, .decay_end = 20}).find("decay_start"), std::string::npos);
  EXPECT_NE(message({.decay_start = 20, .decay_end = 20}).find("decay_end"), std::string::npos);
  EXPECT_NE(message({.decay_start = 1, .decay_end = 20, .power = 0}).find("power"), std::string::npos);
  EXPECT_NE(message({.base_lr = -1}).find("base_lr"), std::string::npos);
  OptimizerConfig c;
  c.beta2 = 1.0f;
  EXPECT_THROW(DenseOptimizer::create(c, {}), ConfigError);
  EXPECT_THROW(parse_optimizer_kind("adamw"), ConfigError);
  EXPECT_EQ(parse_optimizer_kind("lamb"), OptimizerKind::kLamb);
}

// One tensor of two elements, stepped with fixed gradients; expectations are written out by hand.
struct Fixture {
  std::vector<float> w = {1.0f, -2.0f};
  std::vector<float> g = {0.5f, 0.25f};
  std::unique_ptr<DenseOptimizer> make(OptimizerConfig c) { return DenseOptimizer::create(c, {{w.data(), g.data(), 2}}); }
};

TEST(DenseOptimizer, SgdWithWeightDecay) {
  Fixture f;
  OptimizerConfig c;
  c.schedule.base_lr = 0.1f;
  c.weight_decay = 0.01f;
  auto opt = f.make(c);
  opt->step(1);
  EXPECT_FLOAT_EQ(f.w[0], 1.0f - 0.1f * (0.5f + 0.01f));
  EXPECT_FLOAT_EQ(f.w[1], -2.0f - 0.1f * (0.25f - 0.02f));
  EXPECT_EQ(opt->step_count(), 1);
}

TEST(DenseOptimizer, AdagradAccumulatesSquares) {
  Fixture f;
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdagrad;
  c.schedule.base_lr = 0.1f;
  c.eps = 1e-10f;
  c.adagrad_initial_accumulator = 0.1f;
  auto opt = f.make(c);
  opt->step(1);
  // h = 0.1 + 0.25 = 0.35; w = 1 - 0.1 * 0.5 / sqrt(0.35)
  double w0 = 1.0 - 0.1 * 0.5 / std::sqrt(0.35);
  EXPECT_NEAR(f.w[0], w0, 1e-6);
  f.g[0] = -1.0f;
  opt->step(1);
  // h = 1.35
  EXPECT_NEAR(f.w[0], w0 + 0.1 / std::sqrt(1.35), 1e-6);
  EXPECT_NEAR(opt->state(0, 0)[0], 1.35f, 1e-6);
}

TEST(DenseOptimizer, AdamAppliesBiasCorrection) {
  Fixture f;
  OptimizerConfig c;
  c.kind = OptimizerKind::kAdam;
  c.schedule.base_lr = 0.01f;
  c.eps = 1e-8f;
  auto opt = f.make(c);
  opt->step(1);
  // Step 1: m-hat = g, v-hat = g^2, so each weight moves by lr * sign(g).
  EXPECT_NEAR(f.w[0], 1.0 - 0.01, 1e-6);
  EXPECT_NEAR(f.w[1], -2.0 - 0.01, 1e-6);
  f.g = {-1.0f, 0.25f};
  opt->step(1);
  // Step 2, element 0: m = 0.9 * 0.05 - 0.1 = -0.055, v = 0.999 * 0.00025 + 0.001 = 0.00124975,
  // m-hat = -0.055 / 0.19, v-hat = 0.00124975 / 0.001999.
  const double mh = -0.055 / 0.19, vh = 0.00124975 / (1 - 0.999 * 0.999);
  EXPECT_NEAR(f.w[0], 0.99 - 0.01 * mh / (std::sqrt(vh) + 1e-8), 1e-6);
  // Element 1 sees the same gradient twice: still lr * sign(g) per step.
  EXPECT_NEAR(f.w[1], -2.02, 1e-6);
}

TEST(DenseOptimizer, LambScalesByPerTensorTrustRatio) {
  Fixture f;
  OptimizerConfig c;
  c.kind = OptimizerKind::kLamb;
  c.schedule.base_lr = 0.1f;
  c.eps = 1e-6f;
  c.weight_decay = 0.01f;
  auto opt = f.make(c);
  opt->step(1);
  // Step 1: m-hat / (sqrt(v-hat) + eps) = g / (|g| + eps) ~ sign(g); u = that + wd * w.
  const double u0 = 0.5 / (0.5 + 1e-6) + 0.01 * 1.0, u1 = 0.25 / (0.25 + 1e-6) + 0.01 * -2.0;
  const double trust = std::sqrt(1.0 + 4.0) / std::sqrt(u0 * u0 + u1 * u1);
  EXPECT_NEAR(f.w[0], 1.0 - 0.1 * trust * u0, 1e-6);
  EXPECT_NEAR(f.w[1], -2.0 - 0.1 * trust * u1, 1e-6);
}

TEST(DenseOptimizer, LambZeroWeightsUseTrustOne) {
  std::vector<float> w = {0.0f, 0.0f}, g = {1.0f, -1.0f};
  OptimizerConfig c;
  c.kind = OptimizerKind::kLamb;
  c.schedule.base_lr = 0.1f;
  auto opt = DenseOptimizer::create(c, {{w.data(), g.data(), 2}});
  opt->step(1);
  EXPECT_NEAR(w[0], -0.1, 1e-6);
  EXPECT_NEAR(w[1], 0.1, 1e-6);
}

TEST(DenseOptimizer, ScheduleDrivesStepLearningRate) {
  Fixture f;
  OptimizerConfig c;
  c.schedule = {.base_lr = 1.0f, .warmup_steps = 2};
  auto opt = f.make(c);
  EXPECT_FLOAT_EQ(opt->next_lr(), 0.5f);
  opt->step(1);
  EXPECT_FLOAT_EQ(f.w[0], 1.0f - 0.5f * 0.5f);
  EXPECT_FLOAT_EQ(opt->next_lr(), 1.0f);
}

TEST(DenseOptimizer, ResultsIdenticalForOneAndTwoThreads) {
  const int64_t n = 100003;  // above the parallel threshold, not a multiple of the norm chunk
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  std::vector<float> w0(n), g(n), small_w0(37), small_g(37);
  for (auto& v : w0) v = nd(rng);
  for (auto& v : g) v = nd(rng);
  for (auto& v : small_w0) v = nd(rng);
  for (auto& v : small_g) v = nd(rng);
  for (auto kind : {OptimizerKind::kSgd, OptimizerKind::kAdagrad, OptimizerKind::kAdam, OptimizerKind::kLamb}) {
    std::vector<float> w[2] = {w0, w0}, sw[2] = {small_w0, small_w0};
    for (int t = 0; t < 2; ++t) {
      OptimizerConfig c;
      c.kind = kind;
      c.weight_decay = 0.001f;
      c.schedule = {.base_lr = 0.01f, .warmup_steps = 2, .decay_start = 2, .decay_end = 5};
      auto opt = DenseOptimizer::create(c, {{w[t].data(), g.data(), n}, {sw[t].data(), small_g.data(), 37}});
      for (int s = 0; s < 4; ++s) opt->step(t + 1);
    }
    EXPECT_EQ(w[0], w[1]) << "kind " << static_cast<int>(kind);
    EXPECT_EQ(sw[0], sw[1]);
    EXPECT_NE(w[0], w0);
  }
}

}  // namespace
}  // namespace bluewhale
