#include "bluewhale/train/logistic.h"

#include <cmath>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/data/binary_io.h"

namespace bluewhale {

namespace {
// Below this many rows a batch is scored on the caller: waking workers would cost more.
constexpr int64_t kMinParallelRows = 4096;
}  // namespace

const ParamTable<LogisticOptions>& LogisticOptions::params() {
  static const auto t = ParamTable<LogisticOptions>("logistic")
                            .add("lr", &LogisticOptions::lr, 0.1, "SGD learning rate")
                            .min(0);
  return t;
}

LogisticModel::LogisticModel(std::vector<int64_t> cardinalities, int64_t num_dense, LogisticOptions options)
    : options_(options), num_dense_(num_dense) {
  BW_CHECK(num_dense >= 0, ConfigError, "logistic: num_dense must be >= 0, got ", num_dense);
  BW_CHECK(std::isfinite(options.lr) && options.lr >= 0, ConfigError, "logistic: lr must be a finite number >= 0, got ",
           options.lr);
  for (std::size_t t = 0; t < cardinalities.size(); ++t) {
    BW_CHECK(cardinalities[t] >= 1 && cardinalities[t] <= INT32_MAX, ConfigError, "logistic: table ", t,
             " cardinality must be in [1, ", INT32_MAX, "], got ", cardinalities[t]);
    tables_.emplace_back(static_cast<std::size_t>(cardinalities[t]), 0.0f);
  }
  dense_.assign(static_cast<std::size_t>(num_dense), 0.0f);
}

LogisticModel LogisticModel::for_dataset(const Dataset& ds, LogisticOptions options) {
  return LogisticModel(ds.sparse_cardinalities(), static_cast<int64_t>(ds.dense_columns().size()), options);
}

void LogisticModel::check_batch(const Batch& batch) const {
  const int64_t b = batch.size;
  BW_CHECK(batch.ids.size() == tables_.size() && batch.offsets.size() == tables_.size(), InputError,
           "logistic: batch has ", batch.ids.size(), " sparse tables, the model was built for ", tables_.size());
  BW_CHECK(static_cast<int64_t>(batch.dense.size()) == b * num_dense_, InputError, "logistic: batch has ",
           batch.dense.size(), " dense values for ", b, " rows, the model expects ", num_dense_, " per row");
  for (std::size_t t = 0; t < tables_.size(); ++t) {
    const auto& off = batch.offsets[t];
    const auto& ids = batch.ids[t];
    BW_CHECK(static_cast<int64_t>(off.size()) == b + 1 && off[0] == 0 && off[b] == static_cast<int64_t>(ids.size()),
             InputError, "logistic: table ", t, ": offsets do not describe ", b, " rows over ", ids.size(), " ids");
    const auto card = static_cast<int64_t>(tables_[t].size());
    for (std::size_t i = 0; i < ids.size(); ++i)
      BW_CHECK(ids[i] >= 0 && ids[i] < card, InputError, "logistic: table ", t, ": id ", ids[i],
               " outside [0, ", card, ") (batch position ", i, ")");
  }
}

void LogisticModel::predict(const Batch& batch, float* logits, int threads) {
  check_batch(batch);
  const int64_t b = batch.size;
  const int nt = b < kMinParallelRows ? 1 : resolve_threads(threads);
  parallel_for(b, nt, [&](int64_t begin, int64_t end, int) {
    for (int64_t r = begin; r < end; ++r) {
      double z = bias_;
      const float* x = batch.dense.data() + r * num_dense_;
      for (int64_t j = 0; j < num_dense_; ++j)
        if (!std::isnan(x[j])) z += static_cast<double>(dense_[j]) * x[j];
      for (std::size_t t = 0; t < tables_.size(); ++t) {
        const auto& off = batch.offsets[t];
        for (int32_t k = off[r]; k < off[r + 1]; ++k) z += tables_[t][batch.ids[t][k]];
      }
      logits[r] = static_cast<float>(z);
    }
  });
}

double LogisticModel::train_step(const Batch& batch, int64_t, int threads) {
  const int64_t b = batch.size;
  if (b == 0) return 0;
  BW_CHECK(static_cast<int64_t>(batch.labels.size()) == b, InputError, "logistic: batch has no labels");
  logits_.resize(static_cast<std::size_t>(b));
  predict(batch, logits_.data(), threads);

  // Loss and gradient are computed from the pre-update weights; logits_ becomes dL/dlogit.
  double loss = 0;
  const double inv_b = 1.0 / static_cast<double>(b);
  for (int64_t r = 0; r < b; ++r) {
    const double z = logits_[r], y = batch.labels[r];
    // log(1 + e^z) - y z, written so that neither exp overflows.
    loss += std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
    logits_[r] = static_cast<float>((1.0 / (1.0 + std::exp(-z)) - y) * inv_b);
  }
  const float lr = static_cast<float>(options_.lr);
  float gbias = 0;
  for (int64_t r = 0; r < b; ++r) gbias += logits_[r];
  bias_ -= lr * gbias;
  for (int64_t j = 0; j < num_dense_; ++j) {
    float g = 0;
    for (int64_t r = 0; r < b; ++r) {
      const float x = batch.dense[r * num_dense_ + j];
      if (!std::isnan(x)) g += logits_[r] * x;
    }
    dense_[j] -= lr * g;
  }
  // Tables are disjoint, so updating them on different threads is race-free, and within a table the
  // order is fixed: the result does not depend on the thread count. A row repeated in the batch gets
  // every occurrence's gradient.
  parallel_for(static_cast<int64_t>(tables_.size()), b < kMinParallelRows ? 1 : resolve_threads(threads),
               [&](int64_t begin, int64_t end, int) {
                 for (int64_t t = begin; t < end; ++t) {
                   const auto& off = batch.offsets[t];
                   for (int64_t r = 0; r < b; ++r)
                     for (int32_t k = off[r]; k < off[r + 1]; ++k) tables_[t][batch.ids[t][k]] -= lr * logits_[r];
                 }
               });
  return loss * inv_b;
}

void LogisticModel::save(BinaryWriter& out) const {
  out.write<uint64_t>(tables_.size());
  for (const auto& t : tables_) out.write_vector(t);
  out.write_vector(dense_);
  out.write(bias_);
}

void LogisticModel::load(BinaryReader& in) {
  const auto n = in.read<uint64_t>();
  in.check(n == tables_.size(), str_cat("logistic: ", n, " tables stored, the model has ", tables_.size()));
  // Read everything before touching the model, so a mismatch leaves it as it was.
  std::vector<std::vector<float>> tables(tables_.size());
  for (std::size_t t = 0; t < tables_.size(); ++t) {
    tables[t] = in.read_vector<float>();
    in.check(tables[t].size() == tables_[t].size(), str_cat("logistic: table ", t, " has ", tables[t].size(),
                                                            " rows stored, the model has ", tables_[t].size()));
  }
  auto dense = in.read_vector<float>();
  in.check(dense.size() == dense_.size(),
           str_cat("logistic: ", dense.size(), " dense weights stored, the model has ", dense_.size()));
  const float bias = in.read<float>();
  tables_ = std::move(tables);
  dense_ = std::move(dense);
  bias_ = bias;
}

int64_t LogisticModel::parameter_count() const {
  int64_t n = 1 + num_dense_;
  for (const auto& t : tables_) n += static_cast<int64_t>(t.size());
  return n;
}

double LogisticModel::train_flops_per_sample() const {
  // Forward: one multiply-add per dense feature and one add per table; backward mirrors it.
  return 4.0 * static_cast<double>(num_dense_) + 2.0 * static_cast<double>(tables_.size()) + 10.0;
}

}  // namespace bluewhale
