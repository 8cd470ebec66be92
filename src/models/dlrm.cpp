#include "bluewhale/models/dlrm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bluewhale/core/error.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/nn/dense.h"

namespace bluewhale {
namespace {

// Bumped whenever the layout written by save() changes.
constexpr uint32_t kDlrmStateVersion = 1;
constexpr char kDlrmStateMagic[] = "dlrm-state";

// Distinct seeds per layer and table so that no two tensors share a random stream.
uint64_t layer_seed(uint64_t seed, uint64_t group, uint64_t index) {
  return seed * 0x9e3779b97f4a7c15ull + group * 0x100000001b3ull + index + 1;
}

std::string list_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

const ParamTable<DlrmConfig>& DlrmConfig::params() {
  static const auto t =
      ParamTable<DlrmConfig>("dlrm")
          .add("bottom", &DlrmConfig::bottom, std::vector<int64_t>{512, 256, 64, 16},
               "bottom MLP layer sizes after the dense input; the last equals dim")
          .min(1)
          .add("top", &DlrmConfig::top, std::vector<int64_t>{512, 256, 1},
               "top MLP layer sizes after the interaction; the last is 1 (the logit)")
          .min(1)
          .add("dim", &DlrmConfig::dim, int64_t{16}, "embedding dimension")
          .min(1)
          .max(1 << 16)
          .add("interaction", &DlrmConfig::interaction, std::string("dot"),
               "feature interaction: pairwise dot products or concatenation")
          .choices({"dot", "cat"})
          .add("optimizer", &DlrmConfig::optimizer, std::string("sgd"), "optimizer of the MLPs")
          .choices({"sgd", "adagrad", "adam", "lamb"})
          .add("sparse_optimizer", &DlrmConfig::sparse_optimizer, std::string("sgd"),
               "optimizer of the embedding tables, fused into their backward pass")
          .choices({"sgd", "rowwise_adagrad"})
          .add("lr", &DlrmConfig::lr, 0.1, "base learning rate")
          .min(0)
          .add("warmup_steps", &DlrmConfig::warmup_steps, int64_t{0}, "linear learning-rate warmup steps")
          .min(0)
          .add("decay_start", &DlrmConfig::decay_start, int64_t{0}, "step where polynomial decay starts")
          .min(0)
          .add("decay_end", &DlrmConfig::decay_end, int64_t{0}, "step where decay reaches min_lr (0: no decay)")
          .min(0)
          .add("decay_power", &DlrmConfig::decay_power, 2.0, "polynomial decay power")
          .add("min_lr", &DlrmConfig::min_lr, 0.0, "learning rate after decay_end")
          .min(0)
          .add("decay_start_fraction", &DlrmConfig::decay_start_fraction, 0.0,
               "instead of decay_start: fraction of the run's steps where the decay starts")
          .min(0)
          .max(1)
          .add("decay_end_fraction", &DlrmConfig::decay_end_fraction, 0.0,
               "instead of decay_end: fraction of the run's steps where the decay reaches min_lr (0: unused)")
          .min(0)
          .max(1)
          .add("eps", &DlrmConfig::eps, 1e-8, "epsilon of Adagrad, Adam, LAMB and row-wise Adagrad")
          .min(0)
          .add("weight_decay", &DlrmConfig::weight_decay, 0.0, "MLP weight decay")
          .min(0)
          .add("embedding_weight_decay", &DlrmConfig::embedding_weight_decay, 0.0,
               "decoupled L2 decay of the embedding rows a batch touches, per unit of learning rate")
          .min(0)
          .add("seed", &DlrmConfig::seed, int64_t{0}, "initialisation seed")
          .min(0);
  return t;
}

LrSchedule DlrmConfig::schedule() const {
  LrSchedule s;
  s.base_lr = static_cast<float>(lr);
  s.warmup_steps = warmup_steps;
  s.decay_start = decay_start;
  s.decay_end = decay_end;
  s.power = static_cast<float>(decay_power);
  s.min_lr = static_cast<float>(min_lr);
  return s;
}

DlrmConfig DlrmConfig::with_total_steps(int64_t total_steps) const {
  BW_ASSERT(total_steps >= 1, "with_total_steps: total_steps ", total_steps);
  DlrmConfig c = *this;
  if (decay_end_fraction > 0) {
    const auto at = [&](double f) { return static_cast<int64_t>(std::llround(f * static_cast<double>(total_steps))); };
    c.decay_start = at(decay_start_fraction);
    // At least one step of decay, so that a very short run still has a valid schedule.
    c.decay_end = std::max(at(decay_end_fraction), c.decay_start + 1);
    c.decay_start_fraction = c.decay_end_fraction = 0;
    try {
      c.validate();
    } catch (const ConfigError& e) {
      BW_THROW(ConfigError, "dlrm: decay fractions ", decay_start_fraction, "..", decay_end_fraction, " of ",
               total_steps, " steps: ", e.what());
    }
  }
  return c;
}

OptimizerConfig DlrmConfig::dense_optimizer_config() const {
  OptimizerConfig c;
  c.kind = parse_optimizer_kind(optimizer);
  c.schedule = schedule();
  c.eps = static_cast<float>(eps);
  c.weight_decay = static_cast<float>(weight_decay);
  return c;
}

void DlrmConfig::validate() const {
  // The table checks these when parsing a recipe; configs built in code reach here unchecked.
  BW_CHECK(dim >= 1, ConfigError, "dlrm: dim must be >= 1, got ", dim);
  BW_CHECK(!bottom.empty(), ConfigError, "dlrm: bottom must list at least one layer size");
  BW_CHECK(!top.empty(), ConfigError, "dlrm: top must list at least one layer size");
  for (int64_t v : bottom) BW_CHECK(v >= 1, ConfigError, "dlrm: bottom sizes must be >= 1, got ", list_text(bottom));
  for (int64_t v : top) BW_CHECK(v >= 1, ConfigError, "dlrm: top sizes must be >= 1, got ", list_text(top));
  // The interaction pairs z0 with embedding vectors, so the bottom MLP must end at the embedding width.
  BW_CHECK(bottom.back() == dim, ConfigError, "dlrm: bottom must end with dim (", dim, "), got ", list_text(bottom));
  BW_CHECK(top.back() == 1, ConfigError, "dlrm: top must end with 1 (the logit), got ", list_text(top));
  BW_CHECK(lr * embedding_weight_decay < 1, ConfigError, "dlrm: embedding_weight_decay * lr must be below 1, got ",
           embedding_weight_decay, " * ", lr);
  BW_CHECK(interaction == "dot" || interaction == "cat", ConfigError,
           "dlrm: interaction must be dot or cat, got '", interaction, "'");
  BW_CHECK(sparse_optimizer == "sgd" || sparse_optimizer == "rowwise_adagrad", ConfigError,
           "dlrm: sparse_optimizer must be sgd or rowwise_adagrad, got '", sparse_optimizer, "'");
  BW_CHECK(lr >= 0, ConfigError, "dlrm: lr must be >= 0, got ", lr);
  if (decay_start_fraction > 0 || decay_end_fraction > 0) {
    BW_CHECK(decay_start == 0 && decay_end == 0, ConfigError,
             "dlrm: give the decay either in steps (decay_start, decay_end) or as fractions of the run "
             "(decay_start_fraction, decay_end_fraction), not both");
    BW_CHECK(decay_end_fraction > decay_start_fraction, ConfigError, "dlrm: decay_end_fraction (",
             decay_end_fraction, ") must be greater than decay_start_fraction (", decay_start_fraction, ")");
    BW_CHECK(decay_start_fraction >= 0 && decay_end_fraction <= 1, ConfigError,
             "dlrm: decay fractions must be within [0, 1], got ", decay_start_fraction, " and ", decay_end_fraction);
  }
  try {
    dense_optimizer_config().validate();
  } catch (const ConfigError& e) {
    BW_THROW(ConfigError, "dlrm: optimizer: ", e.what());
  }
}

DlrmModel::DlrmModel(const DlrmConfig& config, int64_t num_dense, std::vector<int64_t> table_sizes, int threads)
    : config_(config), num_dense_(num_dense), dim_(config.dim), table_sizes_(std::move(table_sizes)) {
  config_.validate();
  BW_CHECK(num_dense_ >= 1, ConfigError, "dlrm: the dataset has no dense features (the bottom MLP needs >= 1)");
  BW_CHECK(!table_sizes_.empty(), ConfigError, "dlrm: the dataset has no sparse tables");
  dot_ = config_.interaction == "dot";
  rowwise_adagrad_ = config_.sparse_optimizer == "rowwise_adagrad";
  const auto T = static_cast<int64_t>(table_sizes_.size());
  width_ = dot_ ? dot_interaction_width(T, dim_) : (T + 1) * dim_;
  const uint64_t seed = static_cast<uint64_t>(config_.seed);

  auto make_layers = [&](std::vector<Layer>& layers, const std::vector<int64_t>& sizes, int64_t in, bool last_relu,
                         uint64_t group) {
    layers.resize(sizes.size());
    for (std::size_t l = 0; l < sizes.size(); ++l) {
      Layer& L = layers[l];
      L.in = in;
      L.out = sizes[l];
      L.relu = l + 1 < sizes.size() || last_relu;
      L.w.resize(static_cast<std::size_t>(L.in * L.out));
      L.b.resize(static_cast<std::size_t>(L.out));
      L.dw.resize(L.w.size());
      L.db.resize(L.b.size());
      dlrm_linear_init(L.w.data(), L.b.data(), L.in, L.out, layer_seed(seed, group, l));
      in = L.out;
    }
  };
  // As the reference: every bottom layer ends in ReLU (z0 included); the top MLP's last layer is the logit.
  make_layers(bottom_, config_.bottom, num_dense_, true, 1);
  make_layers(top_, config_.top, width_, false, 2);

  tables_.reserve(table_sizes_.size());
  for (std::size_t t = 0; t < table_sizes_.size(); ++t) {
    try {
      tables_.push_back(make_embedding_table(table_sizes_[t], dim_, layer_seed(seed, 3, t), threads));
      tables_.back().weight_decay = static_cast<float>(config_.embedding_weight_decay);
    } catch (const ConfigError& e) {
      BW_THROW(ConfigError, "dlrm: table ", t, ": ", e.what());
    }
  }

  std::vector<DenseParam> params;
  for (auto* layers : {&bottom_, &top_})
    for (Layer& L : *layers) {
      params.push_back({L.w.data(), L.dw.data(), static_cast<int64_t>(L.w.size())});
      params.push_back({L.b.data(), L.db.data(), static_cast<int64_t>(L.b.size())});
    }
  optimizer_ = DenseOptimizer::create(config_.dense_optimizer_config(), std::move(params));
  sparse_schedule_ = config_.schedule();
  offsets_.resize(table_sizes_.size());
  bags_.resize(table_sizes_.size());
}

DlrmModel::~DlrmModel() = default;

void DlrmModel::check_batch(const Batch& batch, bool need_labels) const {
  const int64_t B = batch.size;
  BW_CHECK(B >= 0, InputError, "dlrm: batch size ", B, " is negative");
  BW_CHECK(static_cast<int64_t>(batch.dense.size()) == B * num_dense_, InputError, "dlrm: batch has ",
           batch.dense.size(), " dense values, expected ", B, " rows x ", num_dense_, " features");
  BW_CHECK(batch.ids.size() == table_sizes_.size() && batch.offsets.size() == table_sizes_.size(), InputError,
           "dlrm: batch has ", batch.ids.size(), " sparse tables, the model ", table_sizes_.size());
  if (need_labels)
    BW_CHECK(static_cast<int64_t>(batch.labels.size()) == B, InputError, "dlrm: batch has ", batch.labels.size(),
             " labels for ", B, " rows");
  for (std::size_t t = 0; t < table_sizes_.size(); ++t) {
    const auto& off = batch.offsets[t];
    BW_CHECK(static_cast<int64_t>(off.size()) == B + 1, InputError, "dlrm: table ", t, ": ", off.size(),
             " offsets for ", B, " rows (expected ", B + 1, ")");
    // Order of the offsets is the embedding kernel's check; their ends must fit the ids it is given.
    BW_CHECK(off[0] >= 0 && static_cast<std::size_t>(off[B]) <= batch.ids[t].size(), InputError, "dlrm: table ", t,
             ": offsets end at ", off[B], " but there are ", batch.ids[t].size(), " ids");
  }
}

void DlrmModel::reserve(int64_t batch) {
  if (batch <= capacity_) return;
  const auto n = static_cast<std::size_t>(batch);
  const auto T = static_cast<std::size_t>(table_sizes_.size());
  for (auto* layers : {&bottom_, &top_})
    for (Layer& L : *layers) {
      L.y.resize(n * static_cast<std::size_t>(L.out));
      L.dy.resize(n * static_cast<std::size_t>(L.out));
    }
  emb_.resize(n * T * static_cast<std::size_t>(dim_));
  demb_.resize(emb_.size());
  inter_.resize(n * static_cast<std::size_t>(width_));
  dinter_.resize(inter_.size());
  dlogits_.resize(n);
  for (auto& o : offsets_) o.resize(n + 1);
  capacity_ = batch;
}

void DlrmModel::prepare_bags(const Batch& batch) {
  const int64_t B = batch.size;
  for (std::size_t t = 0; t < table_sizes_.size(); ++t) {
    const auto& off = batch.offsets[t];
    int64_t* dst = offsets_[t].data();
    bool one_hot = static_cast<int64_t>(batch.ids[t].size()) == B;
    for (int64_t b = 0; b <= B; ++b) {
      dst[b] = off[b];
      one_hot = one_hot && off[b] == b;
    }
    // One-hot tables (all categorical columns) take the kernels' offset-free path.
    bags_[t] = {batch.ids[t].data(), one_hot ? nullptr : dst};
  }
}

void DlrmModel::forward(const Batch& batch, int threads) {
  const int64_t B = batch.size;
  const auto T = static_cast<int64_t>(table_sizes_.size());
  reserve(B);
  prepare_bags(batch);

  const float* x = batch.dense.data();
  for (Layer& L : bottom_) {
    linear_forward(x, L.w.data(), L.b.data(), L.y.data(), B, L.in, L.out, L.relu, threads);
    x = L.y.data();
  }
  EmbeddingBatch eb;
  eb.batch = B;
  eb.bags = bags_;
  eb.mode = PoolingMode::kSum;
  embedding_bag_forward(tables_, eb, emb_.data(), T * dim_, threads);

  const float* z0 = bottom_.back().y.data();
  const StridedVectors emb{emb_.data(), T * dim_, dim_};
  if (dot_)
    dot_interaction_forward(z0, emb, inter_.data(), B, T, dim_, threads);
  else
    concat_interaction_forward(z0, emb, inter_.data(), B, T, dim_, threads);

  x = inter_.data();
  for (Layer& L : top_) {
    linear_forward(x, L.w.data(), L.b.data(), L.y.data(), B, L.in, L.out, L.relu, threads);
    x = L.y.data();
  }
}

void DlrmModel::predict(const Batch& batch, float* logits, int threads) {
  check_batch(batch, false);
  if (batch.size == 0) return;
  forward(batch, threads);
  std::memcpy(logits, top_.back().y.data(), static_cast<std::size_t>(batch.size) * sizeof(float));
}

double DlrmModel::loss(const Batch& batch, int threads) {
  check_batch(batch, true);
  if (batch.size == 0) return 0.0;
  forward(batch, threads);
  return bce_with_logits_forward(top_.back().y.data(), batch.labels.data(), batch.size);
}

double DlrmModel::train_step(const Batch& batch, int64_t step, int threads) {
  check_batch(batch, true);
  BW_CHECK(step >= 1, InputError, "dlrm: optimizer steps are 1-based, got ", step);
  if (batch.size == 0) return 0.0;
  const int64_t B = batch.size;
  const auto T = static_cast<int64_t>(table_sizes_.size());
  forward(batch, threads);
  const float* logits = top_.back().y.data();
  const double loss = bce_with_logits_forward(logits, batch.labels.data(), B);
  bce_with_logits_backward(logits, batch.labels.data(), top_.back().dy.data(), B);

  // Top MLP, last layer first; layer l's input gradient is layer l-1's output gradient.
  for (std::size_t l = top_.size(); l-- > 0;) {
    Layer& L = top_[l];
    const float* in = l ? top_[l - 1].y.data() : inter_.data();
    float* din = l ? top_[l - 1].dy.data() : dinter_.data();
    linear_backward(in, L.w.data(), L.y.data(), L.dy.data(), din, L.dw.data(), L.db.data(), B, L.in, L.out, L.relu,
                    threads);
  }
  const float* z0 = bottom_.back().y.data();
  float* dz0 = bottom_.back().dy.data();
  const StridedGrads demb{demb_.data(), T * dim_, dim_};
  if (dot_)
    dot_interaction_backward(z0, StridedVectors{emb_.data(), T * dim_, dim_}, dinter_.data(), dz0, demb, B, T, dim_,
                             threads);
  else
    concat_interaction_backward(dinter_.data(), dz0, demb, B, T, dim_, threads);
  for (std::size_t l = bottom_.size(); l-- > 0;) {
    Layer& L = bottom_[l];
    const float* in = l ? bottom_[l - 1].y.data() : batch.dense.data();
    float* din = l ? bottom_[l - 1].dy.data() : nullptr;  // no gradient for the input features
    linear_backward(in, L.w.data(), L.y.data(), L.dy.data(), din, L.dw.data(), L.db.data(), B, L.in, L.out, L.relu,
                    threads);
  }

  // The trainer's step number drives the schedule, so a resumed run continues the same learning rates.
  optimizer_->set_step_count(step - 1);
  optimizer_->step(threads);
  EmbeddingBatch eb;
  eb.batch = B;
  eb.bags = bags_;
  eb.mode = PoolingMode::kSum;
  const float lr = sparse_schedule_.lr(step);
  if (rowwise_adagrad_)
    embedding_bag_backward_rowwise_adagrad(tables_, eb, demb_.data(), T * dim_, lr, static_cast<float>(config_.eps),
                                           threads, &workspace_);
  else
    embedding_bag_backward_sgd(tables_, eb, demb_.data(), T * dim_, lr, threads, &workspace_);
  return loss;
}

int64_t DlrmModel::parameter_count() const {
  int64_t n = 0;
  for (const auto* layers : {&bottom_, &top_})
    for (const Layer& L : *layers) n += L.in * L.out + L.out;
  for (int64_t r : table_sizes_) n += r * dim_;
  return n;
}

int64_t DlrmModel::state_bytes() const {
  int64_t dense = 0;
  for (const auto* layers : {&bottom_, &top_})
    for (const Layer& L : *layers) dense += L.in * L.out + L.out;
  int64_t floats = parameter_count() + dense * optimizer_->state_slots();
  for (const auto& t : tables_) floats += static_cast<int64_t>(t.adagrad_state.size());
  return floats * static_cast<int64_t>(sizeof(float));
}

double DlrmModel::train_flops_per_sample() const {
  double flops = 0;
  for (std::size_t l = 0; l < bottom_.size(); ++l) {
    const double mac = static_cast<double>(bottom_[l].in) * static_cast<double>(bottom_[l].out);
    flops += 2 * mac + (l == 0 ? 2 : 4) * mac;
  }
  for (const Layer& L : top_) flops += 6.0 * static_cast<double>(L.in) * static_cast<double>(L.out);
  const auto T = static_cast<double>(table_sizes_.size());
  const auto D = static_cast<double>(dim_);
  if (dot_) flops += 3 * (2 * D) * (T * (T + 1) / 2);
  flops += T * D + 2 * T * D;
  return flops;
}

std::vector<DlrmModel::ParamView> DlrmModel::parameters() {
  std::vector<ParamView> out;
  for (std::size_t l = 0; l < bottom_.size(); ++l) {
    out.push_back({"bottom." + std::to_string(l) + ".weight", bottom_[l].w.data(), static_cast<int64_t>(bottom_[l].w.size())});
    out.push_back({"bottom." + std::to_string(l) + ".bias", bottom_[l].b.data(), static_cast<int64_t>(bottom_[l].b.size())});
  }
  for (std::size_t l = 0; l < top_.size(); ++l) {
    out.push_back({"top." + std::to_string(l) + ".weight", top_[l].w.data(), static_cast<int64_t>(top_[l].w.size())});
    out.push_back({"top." + std::to_string(l) + ".bias", top_[l].b.data(), static_cast<int64_t>(top_[l].b.size())});
  }
  for (std::size_t t = 0; t < tables_.size(); ++t)
    out.push_back({"embedding." + std::to_string(t), tables_[t].weights.data(),
                   static_cast<int64_t>(tables_[t].weights.size())});
  return out;
}

// Layout: magic, version, shapes (num_dense, table sizes, dim, bottom, top, interaction, optimizers), then
// per dense tensor (bottom layers, top layers; weight then bias) its values, the optimizer step count and
// its state slots, then per table its weights and row-wise Adagrad state (length 0 when not yet allocated).
void DlrmModel::write_shape(BinaryWriter& out) const {
  out.write_string(kDlrmStateMagic);
  out.write<uint32_t>(kDlrmStateVersion);
  out.write<int64_t>(num_dense_);
  out.write_vector(table_sizes_);
  out.write<int64_t>(dim_);
  out.write_vector(config_.bottom);
  out.write_vector(config_.top);
  out.write_string(config_.interaction);
  out.write_string(config_.optimizer);
  out.write_string(config_.sparse_optimizer);
}

void DlrmModel::save(BinaryWriter& out) const {
  write_shape(out);
  auto write_floats = [&](const float* p, std::size_t n) {
    out.write<uint64_t>(n);
    out.write_bytes(p, n * sizeof(float));
  };
  for (const auto* layers : {&bottom_, &top_})
    for (const Layer& L : *layers) {
      write_floats(L.w.data(), L.w.size());
      write_floats(L.b.data(), L.b.size());
    }
  out.write<int64_t>(optimizer_->step_count());
  const int slots = optimizer_->state_slots();
  out.write<int32_t>(slots);
  const int64_t n_params = 2 * static_cast<int64_t>(bottom_.size() + top_.size());
  for (int64_t p = 0; p < n_params; ++p)
    for (int s = 0; s < slots; ++s) {
      auto st = optimizer_->state(p, s);
      write_floats(st.data(), st.size());
    }
  for (const auto& t : tables_) {
    write_floats(t.weights.data(), t.weights.size());
    write_floats(t.adagrad_state.data(), t.adagrad_state.size());
  }
}

void DlrmModel::load(BinaryReader& in) {
  auto fail = [&](const std::string& what) { in.check(false, what); };
  in.check(in.read_string() == kDlrmStateMagic, "not a DLRM model state");
  const auto version = in.read<uint32_t>();
  in.check(version >= 1 && version <= kDlrmStateVersion,
           str_cat("DLRM state version ", version, " (this build reads up to ", kDlrmStateVersion, ")"));
  const auto num_dense = in.read<int64_t>();
  const auto tables = in.read_vector<int64_t>();
  const auto dim = in.read<int64_t>();
  const auto bottom = in.read_vector<int64_t>();
  const auto top = in.read_vector<int64_t>();
  const auto interaction = in.read_string();
  const auto optimizer = in.read_string();
  const auto sparse_optimizer = in.read_string();
  auto expect = [&](bool ok, const std::string& field, const std::string& file, const std::string& model) {
    if (!ok) fail(str_cat("DLRM ", field, " is ", file, " in the file but ", model, " in this model"));
  };
  expect(num_dense == num_dense_, "dense feature count", std::to_string(num_dense), std::to_string(num_dense_));
  expect(tables == table_sizes_, "table sizes", list_text(tables), list_text(table_sizes_));
  expect(dim == dim_, "dim", std::to_string(dim), std::to_string(dim_));
  expect(bottom == config_.bottom, "bottom MLP", list_text(bottom), list_text(config_.bottom));
  expect(top == config_.top, "top MLP", list_text(top), list_text(config_.top));
  expect(interaction == config_.interaction, "interaction", interaction, config_.interaction);
  expect(optimizer == config_.optimizer, "optimizer", optimizer, config_.optimizer);
  expect(sparse_optimizer == config_.sparse_optimizer, "sparse_optimizer", sparse_optimizer,
         config_.sparse_optimizer);

  // Everything is read into temporaries first: a file that fails half-way leaves the model untouched.
  auto read_floats = [&](std::size_t expected, const std::string& what, bool allow_empty) {
    const auto n = in.read<uint64_t>();
    if (!(n == expected || (allow_empty && n == 0)))
      fail(str_cat(what, " has ", n, " values, expected ", expected));
    in.check(n <= in.remaining() / sizeof(float), what);
    AlignedBuffer<float> v(static_cast<std::size_t>(n));
    in.read_bytes(v.data(), static_cast<std::size_t>(n) * sizeof(float));
    return v;
  };
  std::vector<AlignedBuffer<float>> dense;
  for (const auto* layers : {&bottom_, &top_})
    for (const Layer& L : *layers) {
      dense.push_back(read_floats(L.w.size(), "layer weight", false));
      dense.push_back(read_floats(L.b.size(), "layer bias", false));
    }
  const auto step = in.read<int64_t>();
  in.check(step >= 0, "optimizer step count");
  const auto slots = in.read<int32_t>();
  in.check(slots == optimizer_->state_slots(), "optimizer state slot count");
  std::vector<AlignedBuffer<float>> state;
  for (std::size_t p = 0; p < dense.size(); ++p)
    for (int s = 0; s < slots; ++s) state.push_back(read_floats(dense[p].size(), "optimizer state", false));
  std::vector<AlignedBuffer<float>> weights, adagrad;
  for (std::size_t t = 0; t < tables_.size(); ++t) {
    weights.push_back(read_floats(tables_[t].weights.size(), str_cat("table ", t, " weights"), false));
    adagrad.push_back(read_floats(static_cast<std::size_t>(tables_[t].rows), str_cat("table ", t, " adagrad state"),
                                  true));
  }
  in.expect_end();

  std::size_t i = 0;
  for (auto* layers : {&bottom_, &top_})
    for (Layer& L : *layers) {
      std::memcpy(L.w.data(), dense[i].data(), L.w.size() * sizeof(float));
      std::memcpy(L.b.data(), dense[i + 1].data(), L.b.size() * sizeof(float));
      i += 2;
    }
  optimizer_->set_step_count(step);
  i = 0;
  for (std::size_t p = 0; p < dense.size(); ++p)
    for (int s = 0; s < slots; ++s, ++i) {
      auto dst = optimizer_->state(static_cast<int64_t>(p), s);
      std::memcpy(dst.data(), state[i].data(), dst.size() * sizeof(float));
    }
  for (std::size_t t = 0; t < tables_.size(); ++t) {
    tables_[t].weights = std::move(weights[t]);
    tables_[t].adagrad_state = std::move(adagrad[t]);
  }
}

}  // namespace bluewhale
