// Logistic regression over one-hot (and multi-hot) ids plus dense features: the baseline Model.
//
//   logit(row) = bias + sum_j w_dense[j] * x_j + sum_t sum_{id in row's ids of table t} w_t[id]
//
// A missing dense value (NaN) contributes 0. Trained with plain SGD on the mean binary cross-entropy of
// the batch; deterministic for any thread count (updates are applied in a fixed order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bluewhale/core/config.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/models/model.h"

namespace bluewhale {

struct LogisticOptions {
  double lr = 0.1;   // SGD learning rate

  static const ParamTable<LogisticOptions>& params();
};

class LogisticModel final : public Model {
 public:
  // cardinalities: ids per sparse table (>= 1 each); num_dense >= 0. Weights start at zero.
  LogisticModel(std::vector<int64_t> cardinalities, int64_t num_dense, LogisticOptions options = {});
  // Shaped after a dataset's loader batches (Dataset::sparse_cardinalities(), dense columns).
  static LogisticModel for_dataset(const Dataset& ds, LogisticOptions options = {});

  std::string name() const override { return "logistic"; }
  void predict(const Batch& batch, float* logits, int threads) override;
  double train_step(const Batch& batch, int64_t step, int threads) override;
  void save(BinaryWriter& out) const override;
  void load(BinaryReader& in) override;
  int64_t parameter_count() const override;
  double train_flops_per_sample() const override;

  float bias() const { return bias_; }
  const std::vector<float>& dense_weights() const { return dense_; }
  const std::vector<float>& table_weights(int table) const { return tables_[table]; }

 private:
  // InputError unless the batch has this model's tables and dense width and ids within range.
  void check_batch(const Batch& batch) const;

  LogisticOptions options_;
  int64_t num_dense_;
  std::vector<std::vector<float>> tables_;  // per table (cardinality)
  std::vector<float> dense_;                // (num_dense)
  float bias_ = 0;
  std::vector<float> logits_;               // scratch (B)
};

}  // namespace bluewhale
