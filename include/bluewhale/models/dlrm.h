// DLRM (Naumov et al. 2019, the dlrm_s_pytorch.py reference): a bottom MLP over the dense features, one
// embedding bag per sparse table, a pairwise-dot or concatenation interaction, and a top MLP ending in one
// logit trained with binary cross-entropy.
//
//   z0 = bottom_mlp(dense)                 (B, num_dense) -> (B, dim), every layer linear + ReLU
//   e_t = sum of table t's rows in bag b   (B, dim) per table
//   x = interaction(z0, e_1..e_T)          dot: (B, dim + T(T+1)/2), cat: (B, (T+1) dim)
//   logit = top_mlp(x)                     linear + ReLU, last layer linear to (B, 1)
//
// Dense features are used as given: the dataset's prep fills missing values, so a NaN reaching the model
// propagates to the loss (the trainer stops on a NaN loss). Ids out of a table's range raise InputError.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bluewhale/core/buffer.h"
#include "bluewhale/core/config.h"
#include "bluewhale/models/model.h"
#include "bluewhale/nn/embedding.h"
#include "bluewhale/nn/optim.h"

namespace bluewhale {

// The `model:` section of a recipe (type dlrm). Table sizes and the number of dense features come from the
// dataset, not from here.
struct DlrmConfig {
  std::vector<int64_t> bottom{512, 256, 64, 16};  // bottom MLP output sizes after the dense input; last == dim
  std::vector<int64_t> top{512, 256, 1};          // top MLP output sizes after the interaction; last == 1
  int64_t dim = 16;                               // embedding dimension
  std::string interaction = "dot";                // dot | cat
  std::string optimizer = "sgd";                  // MLPs: sgd | adagrad | adam | lamb
  std::string sparse_optimizer = "sgd";           // embeddings: sgd | rowwise_adagrad
  double lr = 0.1;                                // base learning rate of both optimizers
  int64_t warmup_steps = 0;                       // LrSchedule (nn/optim.h), shared by both optimizers
  int64_t decay_start = 0;
  int64_t decay_end = 0;                          // 0: no decay
  double decay_power = 2.0;
  double min_lr = 0.0;
  // Instead of decay_start/decay_end: where the decay starts and ends as fractions of the run's steps
  // (epochs x batches per epoch, capped by max_steps), so one recipe fits any data size. Resolved into
  // decay_start/decay_end by with_total_steps() when training starts; 0 = unused.
  double decay_start_fraction = 0.0;
  double decay_end_fraction = 0.0;
  double eps = 1e-8;                              // Adagrad/Adam/LAMB and row-wise Adagrad epsilon
  double weight_decay = 0.0;                      // MLP optimizer only
  double embedding_weight_decay = 0.0;            // EmbeddingTable::weight_decay of every table (nn/embedding.h)
  int64_t seed = 0;                               // initialisation

  static const ParamTable<DlrmConfig>& params();
  // Cross-field checks the table cannot express (MLP ends, schedule): ConfigError naming the key.
  void validate() const;
  OptimizerConfig dense_optimizer_config() const;
  // A copy with decay_start/decay_end set from the fractions for a run of total_steps (>= 1) steps; the
  // same config when no fraction is given. ConfigError when the result is not a valid schedule.
  DlrmConfig with_total_steps(int64_t total_steps) const;
  LrSchedule schedule() const;
};

class DlrmModel : public Model {
 public:
  // num_dense >= 1 dense features; table_sizes: rows of every sparse table, in Batch::ids order.
  // Validates the config (ConfigError naming the key) and initialises as the DLRM reference code.
  DlrmModel(const DlrmConfig& config, int64_t num_dense, std::vector<int64_t> table_sizes, int threads);
  ~DlrmModel() override;

  std::string name() const override { return "dlrm"; }
  void predict(const Batch& batch, float* logits, int threads) override;
  double train_step(const Batch& batch, int64_t step, int threads) override;
  void save(BinaryWriter& out) const override;
  void load(BinaryReader& in) override;
  int64_t parameter_count() const override;
  // Linear layers 2*in*out forward and 4*in*out backward (2*in*out for the first bottom layer, which has no
  // input gradient), the dot interaction 2*dim per pair forward and twice that backward, and 1 add per
  // pooled element forward plus a multiply-add per element backward, counting one id per table and sample.
  // Optimizer and elementwise work (bias, ReLU, loss) are not counted.
  double train_flops_per_sample() const override;

  // Mean loss of the batch without any update (forward only).
  double loss(const Batch& batch, int threads);
  // Bytes of parameters plus optimizer state now held (row-wise Adagrad state appears after its first step).
  int64_t state_bytes() const;

  // Every parameter tensor, for tests and tools: "bottom.0.weight", "top.1.bias", "embedding.3", ...
  struct ParamView {
    std::string name;
    float* data;
    int64_t size;
  };
  std::vector<ParamView> parameters();

  const DlrmConfig& config() const { return config_; }
  int64_t num_dense() const { return num_dense_; }
  const std::vector<int64_t>& table_sizes() const { return table_sizes_; }

 private:
  struct Layer {
    int64_t in = 0, out = 0;
    bool relu = true;
    AlignedBuffer<float> w, b, dw, db;  // (out, in), (out)
    AlignedBuffer<float> y, dy;         // (capacity, out): output and its gradient
  };

  void check_batch(const Batch& batch, bool need_labels) const;
  void reserve(int64_t batch);
  void prepare_bags(const Batch& batch);
  // Forward to the logits in top_.back().y.
  void forward(const Batch& batch, int threads);
  void write_shape(BinaryWriter& out) const;

  DlrmConfig config_;
  int64_t num_dense_ = 0, dim_ = 0, width_ = 0;  // width_: interaction output
  bool dot_ = true, rowwise_adagrad_ = false;
  std::vector<int64_t> table_sizes_;
  std::vector<Layer> bottom_, top_;
  std::vector<EmbeddingTable> tables_;
  std::unique_ptr<DenseOptimizer> optimizer_;
  LrSchedule sparse_schedule_;
  EmbeddingWorkspace workspace_;

  int64_t capacity_ = 0;
  AlignedBuffer<float> emb_, demb_;      // (capacity, T * dim): table t at columns [t*dim, (t+1)*dim)
  AlignedBuffer<float> inter_, dinter_;  // (capacity, width_)
  AlignedBuffer<float> dlogits_;         // (capacity)
  std::vector<std::vector<int64_t>> offsets_;  // int64 copies of Batch::offsets, (capacity + 1) per table
  std::vector<EmbeddingBags> bags_;
};

}  // namespace bluewhale
