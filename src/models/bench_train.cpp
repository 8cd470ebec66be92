#include "bluewhale/models/bench_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>
#include <string>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// Inverse CDF of the continuous density ~ x^-s on [1, rows + 1], shifted to ids in [0, rows).
int32_t power_law_id(double u, double rows, double s) {
  double x;
  if (std::abs(s - 1.0) < 1e-9) {
    x = std::exp(u * std::log(rows + 1.0));
  } else {
    const double a = 1.0 - s;
    x = std::pow(u * (std::pow(rows + 1.0, a) - 1.0) + 1.0, 1.0 / a);
  }
  return static_cast<int32_t>(std::clamp(x - 1.0, 0.0, rows - 1.0));
}

Batch random_batch(const BenchTrainOptions& o, int64_t index) {
  std::mt19937_64 rng(o.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(index) + 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  Batch b;
  b.size = o.batch;
  b.labels.resize(static_cast<std::size_t>(o.batch));
  for (auto& y : b.labels) y = unit(rng) < 0.5 ? 0.0f : 1.0f;
  b.dense.resize(static_cast<std::size_t>(o.batch * o.num_dense));
  for (auto& x : b.dense) x = static_cast<float>(unit(rng));
  b.ids.resize(o.table_sizes.size());
  b.offsets.resize(o.table_sizes.size());
  for (std::size_t t = 0; t < o.table_sizes.size(); ++t) {
    const auto rows = static_cast<double>(o.table_sizes[t]);
    auto& ids = b.ids[t];
    ids.resize(static_cast<std::size_t>(o.batch * o.bag_size));
    for (auto& id : ids) {
      const double u = unit(rng);
      id = o.id_power_law > 0 ? power_law_id(u, rows, o.id_power_law)
                              : static_cast<int32_t>(std::min(rows - 1.0, std::floor(u * rows)));
    }
    auto& off = b.offsets[t];
    off.resize(static_cast<std::size_t>(o.batch + 1));
    for (int64_t i = 0; i <= o.batch; ++i) off[static_cast<std::size_t>(i)] = static_cast<int32_t>(i * o.bag_size);
  }
  return b;
}

}  // namespace

int64_t peak_rss_bytes() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;  // reported in kB
  }
  return 0;
}

BenchTrainReport bench_train(const BenchTrainOptions& o) {
  BW_CHECK(!o.table_sizes.empty(), ConfigError, "bench train: table_sizes must list at least one table");
  BW_CHECK(o.num_dense >= 1, ConfigError, "bench train: num_dense must be >= 1, got ", o.num_dense);
  BW_CHECK(o.batch >= 1, ConfigError, "bench train: batch must be >= 1, got ", o.batch);
  BW_CHECK(o.steps >= 1, ConfigError, "bench train: steps must be >= 1, got ", o.steps);
  BW_CHECK(o.warmup_steps >= 0, ConfigError, "bench train: warmup_steps must be >= 0, got ", o.warmup_steps);
  BW_CHECK(o.distinct_batches >= 1, ConfigError, "bench train: distinct_batches must be >= 1, got ",
           o.distinct_batches);
  BW_CHECK(o.bag_size >= 1, ConfigError, "bench train: bag_size must be >= 1, got ", o.bag_size);
  BW_CHECK(o.batch * o.bag_size < (int64_t{1} << 31), ConfigError, "bench train: batch * bag_size must be < 2^31");
  BW_CHECK(o.id_power_law >= 0 && std::isfinite(o.id_power_law), ConfigError,
           "bench train: id_power_law must be >= 0, got ", o.id_power_law);
  const int threads = resolve_threads(o.threads);

  BenchTrainReport r;
  r.steps = o.steps;
  r.batch = o.batch;
  r.threads = threads;
  auto t0 = Clock::now();
  DlrmModel model(o.model, o.num_dense, o.table_sizes, threads);
  r.init_seconds = seconds_since(t0);
  std::vector<Batch> batches;
  for (int64_t i = 0; i < o.distinct_batches; ++i) batches.push_back(random_batch(o, i));

  int64_t step = 1;
  for (int64_t i = 0; i < o.warmup_steps; ++i, ++step)
    model.train_step(batches[static_cast<std::size_t>(step % o.distinct_batches)], step, threads);
  double min_step = HUGE_VAL;
  t0 = Clock::now();
  for (int64_t i = 0; i < o.steps; ++i, ++step) {
    const auto ts = Clock::now();
    const double loss = model.train_step(batches[static_cast<std::size_t>(step % o.distinct_batches)], step, threads);
    min_step = std::min(min_step, seconds_since(ts));
    if (i == 0) r.first_loss = loss;
    r.last_loss = loss;
  }
  r.seconds = seconds_since(t0);
  r.samples_per_second = static_cast<double>(o.steps * o.batch) / r.seconds;
  r.step_ms = 1e3 * r.seconds / static_cast<double>(o.steps);
  r.step_ms_min = 1e3 * min_step;
  r.flops_per_sample = model.train_flops_per_sample();
  r.gflops = r.flops_per_sample * r.samples_per_second / 1e9;
  r.parameter_count = model.parameter_count();
  r.state_bytes = model.state_bytes();
  r.peak_rss_bytes = peak_rss_bytes();
  return r;
}

}  // namespace bluewhale
