// Encoders that add a dense column per categorical column: count_encode, frequency_encode, target_encode.
#include <algorithm>
#include <cmath>

#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/data/binary_io.h"
#include "prep/ops/flat_map.h"
#include "prep/ops/key_counter.h"
#include "prep/ops/op_common.h"

namespace bluewhale::prep_ops {
namespace {

const char* kIntKeysExpected = "integer keys (categorical, id); one value per row";

// Keys looked up for one column of a chunk; -1 where the row is missing or the key unseen.
std::vector<int64_t> lookup_rows(const KeyIndex& index, const Column& c) {
  std::vector<int64_t> idx(c.i.size());
  index.find_batch(c.i.data(), c.i.size(), idx.data(), -1);
  for (std::size_t r = 0; r < c.valid.size(); ++r)
    if (!c.valid[r]) idx[r] = -1;
  return idx;
}

struct CountParams {
  std::vector<std::string> columns;
  std::string suffix;
  static const ParamTable<CountParams>& params() {
    static const auto t = ParamTable<CountParams>("count_encode")
                              .required("columns", &CountParams::columns, "integer key columns (ranges allowed)")
                              .add("suffix", &CountParams::suffix, std::string("_count"), "new column = name + suffix");
    return t;
  }
};

struct FreqParams {
  std::vector<std::string> columns;
  std::string suffix;
  static const ParamTable<FreqParams>& params() {
    static const auto t = ParamTable<FreqParams>("frequency_encode")
                              .required("columns", &FreqParams::columns, "integer key columns (ranges allowed)")
                              .add("suffix", &FreqParams::suffix, std::string("_freq"), "new column = name + suffix");
    return t;
  }
};

// count_encode writes the training count of the row's value; frequency_encode divides it by the
// number of training rows. Missing and unseen values get 0.
template <class P, bool kFrequency>
class CountEncodeOp : public Op {
 public:
  using Params = P;

  CountEncodeOp(const ConfigNode& node, const OpContext&) : counter_(kFrequency ? "frequency_encode" : "count_encode") {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    BW_CHECK(!p_.suffix.empty(), ConfigError, where(), ": suffix must not be empty");
  }
  std::string name() const override { return kFrequency ? "frequency_encode" : "count_encode"; }
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override {
    std::vector<std::string> out;
    for (const auto& c : columns_) out.push_back(c + p_.suffix);
    return out;
  }

  void plan(PlanState& state) const override {
    for (const auto& c : columns_) require_kind(state.get(c, where()), {ColumnKind::kInt}, where(), kIntKeysExpected);
    for (const auto& c : columns_)
      plan_add_column(state, ColumnInfo{c + p_.suffix, Role::kDense, ColumnKind::kFloat, 0}, where());
  }

  bool needs_fit() const override { return true; }
  void begin_fit(const OpContext& ctx) override {
    threads_ = ctx.threads;
    counter_.begin(columns_.size(), ctx.threads, ctx.memory_budget, ctx.temp_dir);
    rows_.assign(static_cast<std::size_t>(ctx.threads), PaddedCount{});
  }
  void fit_chunk(const Chunk& chunk, int thread_id) override {
    int64_t train = 0;
    for (int64_t r = 0; r < chunk.rows; ++r) train += is_train_row(chunk, r) ? 1 : 0;
    rows_[thread_id].n += train;
    std::vector<int64_t> keys, rows;
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      const Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kInt}, where());
      keys.clear();
      rows.clear();
      for (int64_t r = 0; r < chunk.rows; ++r)
        if (is_train_row(chunk, r) && (c.valid.empty() || c.valid[r])) {
          keys.push_back(c.i[r]);
          rows.push_back(chunk.global_row(r));
        }
      counter_.add_many(ci, thread_id, keys.data(), rows.data(), keys.size());
    }
  }
  void end_fit() override {
    std::vector<KeyIndex> counts(columns_.size());
    counter_.finish(threads_, [&](std::size_t col, const KeyCount& kc) { counts[col].get_or_add(kc.key, kc.count); });
    train_rows_ = 0;
    for (const auto& r : rows_) train_rows_ += r.n;
    counts_ = std::move(counts);
    fitted_ = true;
  }

  void transform(Chunk& chunk, bool) const override {
    BW_ASSERT(fitted_, name(), " transform before fit");
    const double scale = kFrequency ? (train_rows_ > 0 ? 1.0 / static_cast<double>(train_rows_) : 0.0) : 1.0;
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      Column out;
      {
        const Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kInt}, where());
        std::vector<int64_t> n = lookup_rows(counts_[ci], c);
        out.f.resize(n.size());
        for (std::size_t r = 0; r < n.size(); ++r)
          out.f[r] = n[r] < 0 ? 0.0f : static_cast<float>(static_cast<double>(n[r]) * scale);
      }
      out.name = columns_[ci] + p_.suffix;
      out.role = Role::kDense;
      out.kind = ColumnKind::kFloat;
      chunk.columns.push_back(std::move(out));
    }
  }

  void save_state(BinaryWriter& out) const override {
    BW_ASSERT(fitted_, name(), " save_state before fit");
    write_state_header(out, name(), 1, columns_);
    out.write<int64_t>(train_rows_);
    for (const KeyIndex& idx : counts_) {
      std::vector<std::pair<int64_t, int64_t>> kv;
      idx.for_each([&](int64_t k, int64_t v) { kv.emplace_back(k, v); });
      std::sort(kv.begin(), kv.end());  // the same fit always writes the same bytes
      std::vector<int64_t> keys, vals;
      for (auto& [k, v] : kv) {
        keys.push_back(k);
        vals.push_back(v);
      }
      out.write_vector(keys);
      out.write_vector(vals);
    }
  }
  void load_state(BinaryReader& in) override {
    read_state_header(in, name(), 1, columns_);
    int64_t rows = in.read<int64_t>();
    in.check(rows >= 0, "negative row count");
    std::vector<KeyIndex> counts(columns_.size());
    for (KeyIndex& idx : counts) {
      std::vector<int64_t> keys = in.read_vector<int64_t>();
      std::vector<int64_t> vals = in.read_vector<int64_t>();
      in.check(keys.size() == vals.size(), "count table: key and count lengths differ");
      idx.reserve(keys.size());
      for (std::size_t j = 0; j < keys.size(); ++j) {
        in.check(vals[j] > 0 && vals[j] <= rows, "count table: count out of range");
        in.check(idx.get_or_add(keys[j], vals[j]).second, "count table: a value appears twice");
      }
    }
    train_rows_ = rows;
    counts_ = std::move(counts);
    fitted_ = true;
  }

  std::string summary() const override {
    std::string s;
    for (std::size_t ci = 0; ci < counts_.size(); ++ci)
      s += str_cat(ci ? "; " : "", name(), " ", columns_[ci], ": ", with_commas(static_cast<int64_t>(counts_[ci].size())),
                   " distinct over ", with_commas(train_rows_), " training rows");
    return s;
  }

 private:
  struct alignas(64) PaddedCount {
    int64_t n = 0;
  };
  Params p_;
  std::vector<std::string> columns_;
  KeyCounter counter_;
  int threads_ = 1;
  std::vector<PaddedCount> rows_;
  std::vector<KeyIndex> counts_;  // per column: key -> training count
  int64_t train_rows_ = 0;
  bool fitted_ = false;
};

// Labels are summed in fixed point (2^-24 steps, 128-bit sums): integer addition does not depend on the
// order in which threads met the chunks, so fitted statistics are bit-identical for any schedule.
using Int128 = __int128;
constexpr double kFixedScale = 16777216.0;  // 2^24
constexpr double kMaxAbsLabel = 68719476736.0;  // 2^36: |label| * 2^24 stays below 2^60

class TargetEncodeOp : public Op {
 public:
  struct Params {
    std::vector<std::string> columns;
    std::string target, suffix;
    int64_t folds, seed;
    double smoothing;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("target_encode")
              .required("columns", &Params::columns, "integer key columns (ranges allowed)")
              .required("target", &Params::target, "the float label column whose mean is encoded")
              .add("folds", &Params::folds, int64_t{5},
                   "training rows of the prep run get statistics computed without their own fold")
              .min(2)
              .max(1000)
              .add("smoothing", &Params::smoothing, 20.0,
                   "weight of the prior: (sum + smoothing * prior) / (count + smoothing)")
              .min(0)
              .add("seed", &Params::seed, int64_t{0}, "fold of a row = mix64(global_row ^ seed) % folds")
              .add("suffix", &Params::suffix, std::string("_te"), "new column = name + suffix");
      return t;
    }
  };

  TargetEncodeOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    BW_CHECK(!p_.suffix.empty(), ConfigError, where(), ": suffix must not be empty");
    for (const auto& c : columns_)
      BW_CHECK(c != p_.target, ConfigError, where(), ": the target '", c, "' cannot also be an encoded column");
  }
  std::string name() const override { return "target_encode"; }
  std::vector<std::string> inputs() const override {
    std::vector<std::string> in = columns_;
    in.push_back(p_.target);
    return in;
  }
  std::vector<std::string> outputs() const override {
    std::vector<std::string> out;
    for (const auto& c : columns_) out.push_back(c + p_.suffix);
    return out;
  }

  void plan(PlanState& state) const override {
    for (const auto& c : columns_) require_kind(state.get(c, where()), {ColumnKind::kInt}, where(), kIntKeysExpected);
    require_kind(state.get(p_.target, where()), {ColumnKind::kFloat}, where(), "a float target (label) column");
    for (const auto& c : columns_)
      plan_add_column(state, ColumnInfo{c + p_.suffix, Role::kDense, ColumnKind::kFloat, 0}, where());
  }

  bool needs_fit() const override { return true; }
  void begin_fit(const OpContext& ctx) override {
    threads_ = ctx.threads;
    acc_.clear();
    for (int t = 0; t < ctx.threads; ++t) {
      auto a = std::make_unique<ThreadAcc>();
      a->cols.resize(columns_.size());
      acc_.push_back(std::move(a));
    }
  }

  void fit_chunk(const Chunk& chunk, int thread_id) override {
    ThreadAcc& a = *acc_[thread_id];
    const Column& y = chunk_column(chunk, p_.target, {ColumnKind::kFloat}, where());
    const std::size_t folds = static_cast<std::size_t>(p_.folds);
    std::vector<const Column*> cols;
    for (const auto& c : columns_) cols.push_back(&chunk_column(chunk, c, {ColumnKind::kInt}, where()));
    for (int64_t r = 0; r < chunk.rows; ++r) {
      if (!is_train_row(chunk, r) || std::isnan(y.f[r])) continue;
      BW_CHECK(std::fabs(y.f[r]) <= kMaxAbsLabel, InputError, where(), ": target '", p_.target, "' at row ",
               chunk.global_row(r), " is ", y.f[r], "; target encoding supports |target| <= 2^36");
      const int64_t q = std::llround(static_cast<double>(y.f[r]) * kFixedScale);
      const std::size_t f = fold_of(chunk.global_row(r));
      a.n += 1;
      a.sum += q;
      for (std::size_t ci = 0; ci < cols.size(); ++ci) {
        const Column& c = *cols[ci];
        if (!c.valid.empty() && !c.valid[r]) continue;
        Stats& s = a.cols[ci];
        auto [slot, inserted] = s.index.get_or_add(c.i[r], static_cast<int64_t>(s.keys.size()));
        if (inserted) {
          s.keys.push_back(c.i[r]);
          s.n.resize(s.n.size() + folds, 0);
          s.sum.resize(s.sum.size() + folds, 0);
        }
        s.n[*slot * folds + f] += 1;
        s.sum[*slot * folds + f] += q;
      }
    }
  }

  void end_fit() override {
    int64_t n = 0;
    Int128 sum = 0;
    for (const auto& a : acc_) {
      n += a->n;
      sum += a->sum;
    }
    n_rows_ = n;
    prior_ = n > 0 ? static_cast<double>(sum) / kFixedScale / static_cast<double>(n) : 0.0;
    std::vector<Final> finals(columns_.size());
    parallel_for_dynamic(static_cast<int64_t>(columns_.size()), threads_,
                         [&](int64_t ci, int) { finals[ci] = merge_column(static_cast<std::size_t>(ci)); });
    acc_.clear();
    finals_ = std::move(finals);
    for (Final& f : finals_) compute_table(f);
    fitted_ = true;
  }

  void transform(Chunk& chunk, bool fitted_rows) const override {
    BW_ASSERT(fitted_, "target_encode transform before fit");
    const std::size_t stride = static_cast<std::size_t>(p_.folds) + 1;
    const float prior = static_cast<float>(prior_);
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      Column out;
      {
        const Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kInt}, where());
        const Final& fin = finals_[ci];
        std::vector<int64_t> idx = lookup_rows(fin.index, c);
        out.f.resize(idx.size());
        for (std::size_t r = 0; r < idx.size(); ++r) {
          if (idx[r] < 0) {
            out.f[r] = prior;
            continue;
          }
          const int64_t row = static_cast<int64_t>(r);
          const std::size_t f = fitted_rows && is_train_row(chunk, row) ? fold_of(chunk.global_row(row))
                                                                         : static_cast<std::size_t>(p_.folds);
          out.f[r] = fin.table[static_cast<std::size_t>(idx[r]) * stride + f];
        }
      }
      out.name = columns_[ci] + p_.suffix;
      out.role = Role::kDense;
      out.kind = ColumnKind::kFloat;
      chunk.columns.push_back(std::move(out));
    }
  }

  void save_state(BinaryWriter& out) const override {
    BW_ASSERT(fitted_, "target_encode save_state before fit");
    write_state_header(out, name(), 1, columns_);
    out.write<int64_t>(p_.folds);
    out.write<int64_t>(n_rows_);
    out.write<double>(prior_);
    for (const Final& f : finals_) {
      out.write_vector(f.keys);
      out.write_vector(f.n);
      out.write_vector(f.sum);
    }
  }

  void load_state(BinaryReader& in) override {
    read_state_header(in, name(), 1, columns_);
    int64_t folds = in.read<int64_t>();
    in.check(folds == p_.folds, str_cat("target_encode state was fitted with folds ", folds, ", the recipe says ", p_.folds));
    int64_t n_rows = in.read<int64_t>();
    double prior = in.read<double>();
    in.check(n_rows >= 0 && std::isfinite(prior), "target_encode: bad prior");
    prior_ = prior;  // compute_table() below reads it
    n_rows_ = n_rows;
    fitted_ = false;
    std::vector<Final> finals(columns_.size());
    for (Final& f : finals) {
      f.keys = in.read_vector<int64_t>();
      f.n = in.read_vector<int64_t>();
      f.sum = in.read_vector<double>();
      in.check(f.n.size() == f.keys.size() * static_cast<std::size_t>(folds) && f.sum.size() == f.n.size(),
               "target_encode: statistics do not match the number of values");
      for (int64_t v : f.n) in.check(v >= 0 && v <= n_rows, "target_encode: count out of range");
      for (double v : f.sum) in.check(std::isfinite(v), "target_encode: sum is not finite");
      f.index.reserve(f.keys.size());
      for (std::size_t j = 0; j < f.keys.size(); ++j)
        in.check(f.index.get_or_add(f.keys[j], static_cast<int64_t>(j)).second, "target_encode: a value appears twice");
      compute_table(f);
    }
    finals_ = std::move(finals);
    fitted_ = true;
  }

  std::string summary() const override {
    std::string s = str_cat("target_encode on '", p_.target, "' (prior ", prior_, " over ", with_commas(n_rows_),
                            " rows, ", p_.folds, " folds)");
    for (std::size_t ci = 0; ci < finals_.size(); ++ci)
      s += str_cat("; ", columns_[ci], ": ", with_commas(static_cast<int64_t>(finals_[ci].keys.size())), " values");
    return s;
  }

 private:
  struct Stats {  // one column on one thread
    KeyIndex index;  // key -> position in keys
    std::vector<int64_t> keys;
    std::vector<int64_t> n;  // [position * folds + fold]
    std::vector<Int128> sum;
  };
  struct ThreadAcc {
    std::vector<Stats> cols;
    int64_t n = 0;
    Int128 sum = 0;
  };
  struct Final {
    std::vector<int64_t> keys;  // sorted
    std::vector<int64_t> n;     // [j * folds + fold]
    std::vector<double> sum;    // [j * folds + fold], label units
    KeyIndex index;             // key -> j
    std::vector<float> table;   // [j * (folds + 1) + f]: out-of-fold value for fold f, all folds at f = folds
  };

  std::size_t fold_of(int64_t global_row) const {
    return static_cast<std::size_t>(mix64(static_cast<uint64_t>(global_row) ^ static_cast<uint64_t>(p_.seed)) %
                                    static_cast<uint64_t>(p_.folds));
  }

  Final merge_column(std::size_t ci) const {
    const std::size_t folds = static_cast<std::size_t>(p_.folds);
    Final f;
    for (const auto& a : acc_)
      for (int64_t k : a->cols[ci].keys) f.keys.push_back(k);
    std::sort(f.keys.begin(), f.keys.end());
    f.keys.erase(std::unique(f.keys.begin(), f.keys.end()), f.keys.end());
    f.index.reserve(f.keys.size());
    for (std::size_t j = 0; j < f.keys.size(); ++j) f.index.get_or_add(f.keys[j], static_cast<int64_t>(j));
    f.n.assign(f.keys.size() * folds, 0);
    std::vector<Int128> sum(f.keys.size() * folds, 0);
    for (const auto& a : acc_) {
      const Stats& s = a->cols[ci];
      for (std::size_t p = 0; p < s.keys.size(); ++p) {
        std::size_t j = static_cast<std::size_t>(f.index.find(s.keys[p], -1));
        for (std::size_t k = 0; k < folds; ++k) {
          f.n[j * folds + k] += s.n[p * folds + k];
          sum[j * folds + k] += s.sum[p * folds + k];
        }
      }
    }
    f.sum.resize(sum.size());
    for (std::size_t i = 0; i < sum.size(); ++i) f.sum[i] = static_cast<double>(sum[i]) / kFixedScale;
    return f;
  }

  void compute_table(Final& f) const {
    const std::size_t folds = static_cast<std::size_t>(p_.folds);
    const double m = p_.smoothing;
    auto encode = [&](double n, double s) { return n + m > 0 ? (s + m * prior_) / (n + m) : prior_; };
    f.table.assign(f.keys.size() * (folds + 1), 0.0f);
    for (std::size_t j = 0; j < f.keys.size(); ++j) {
      int64_t n_all = 0;
      double s_all = 0;
      for (std::size_t k = 0; k < folds; ++k) {
        n_all += f.n[j * folds + k];
        s_all += f.sum[j * folds + k];
      }
      for (std::size_t k = 0; k < folds; ++k)
        f.table[j * (folds + 1) + k] = static_cast<float>(
            encode(static_cast<double>(n_all - f.n[j * folds + k]), s_all - f.sum[j * folds + k]));
      f.table[j * (folds + 1) + folds] = static_cast<float>(encode(static_cast<double>(n_all), s_all));
    }
  }

  Params p_;
  std::vector<std::string> columns_;
  int threads_ = 1;
  std::vector<std::unique_ptr<ThreadAcc>> acc_;
  std::vector<Final> finals_;
  int64_t n_rows_ = 0;
  double prior_ = 0;
  bool fitted_ = false;
};

}  // namespace

std::vector<OpSpec> encode_op_specs() {
  return {make_spec<CountEncodeOp<CountParams, false>>("count_encode",
                                                       "adds name_count = training count of the row's value"),
          make_spec<CountEncodeOp<FreqParams, true>>("frequency_encode",
                                                     "adds name_freq = training count / training rows"),
          make_spec<TargetEncodeOp>("target_encode",
                                    "adds name_te = smoothed mean target of the value, out-of-fold on training rows")};
}

}  // namespace bluewhale::prep_ops
