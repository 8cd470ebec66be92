// The interface between trainable CTR models (src/models) and the trainer (src/train).
//
// A model consumes loader batches (include/bluewhale/loader/loader.h): labels (B), dense (B, num_dense)
// row-major, and per sparse table ids + offsets (B + 1). Models own their parameters and optimizer state;
// they are not thread-safe (one trainer drives one model), but each call parallelises internally over the
// explicit `threads` it is given.
#pragma once

#include <cstdint>
#include <string>

#include "bluewhale/loader/loader.h"

namespace bluewhale {

class BinaryWriter;
class BinaryReader;

class Model {
 public:
  virtual ~Model() = default;

  // "dlrm", "logistic", ...
  virtual std::string name() const = 0;

  // Writes batch.size logits (pre-sigmoid scores) to `logits`. Ids outside a table raise InputError.
  virtual void predict(const Batch& batch, float* logits, int threads) = 0;

  // One step of training on the batch: forward, mean binary cross-entropy against batch.labels, backward,
  // and the parameter update for optimizer step `step` (1-based, drives learning-rate schedules). Returns
  // the mean loss of the batch before the update (NaN/inf is returned as is: the trainer decides).
  virtual double train_step(const Batch& batch, int64_t step, int threads) = 0;

  // Parameters and optimizer state, for checkpoints and the final model. load() validates what it reads
  // against the model's configuration and throws FormatError on any mismatch.
  virtual void save(BinaryWriter& out) const = 0;
  virtual void load(BinaryReader& in) = 0;

  virtual int64_t parameter_count() const = 0;
  // Floating-point operations of one training step per sample (forward + backward), for GFLOP/s reports.
  virtual double train_flops_per_sample() const = 0;
};

}  // namespace bluewhale
