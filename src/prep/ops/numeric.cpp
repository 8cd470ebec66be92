// Operators on dense float columns: fill_missing, clip, log1p, missing_indicator, bucketize.
#include <algorithm>
#include <cmath>

#include "bluewhale/core/hash.h"
#include "bluewhale/data/binary_io.h"
#include "prep/ops/fast_math.h"
#include "prep/ops/math_kernels.h"
#include "prep/ops/op_common.h"

namespace bluewhale::prep_ops {
namespace {

const char* kFloatExpected = "a float column (dense or label)";

class FillMissingOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    double value;
    static const ParamTable<Params>& params() {
      static const auto t = ParamTable<Params>("fill_missing")
                                .required("columns", &Params::columns, "float columns (ranges like I1..I13 allowed)")
                                .add("value", &Params::value, 0.0, "the value that replaces missing (NaN) entries");
      return t;
    }
  };

  FillMissingOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
  }
  std::string name() const override { return "fill_missing"; }
  void plan(PlanState& state) const override {
    for (const auto& c : columns_) require_kind(state.get(c, where()), {ColumnKind::kFloat}, where(), kFloatExpected);
  }
  void transform(Chunk& chunk, bool) const override {
    const float v = static_cast<float>(p_.value);
    for (const auto& name : columns_) {
      Column& c = chunk_column(chunk, name, {ColumnKind::kFloat}, where());
      fill_nan_for(simd_level())(c.f.data(), c.f.size(), v);
    }
  }

 private:
  Params p_;
};

class ClipOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    double min, max;
    static const ParamTable<Params>& params() {
      static const auto t = ParamTable<Params>("clip")
                                .required("columns", &Params::columns, "float columns (ranges like I1..I13 allowed)")
                                .add("min", &Params::min, -HUGE_VAL, "values below become min")
                                .add("max", &Params::max, HUGE_VAL, "values above become max");
      return t;
    }
  };

  ClipOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    BW_CHECK(p_.min <= p_.max, ConfigError, where(), ": min (", p_.min, ") must not exceed max (", p_.max, ")");
  }
  std::string name() const override { return "clip"; }
  void plan(PlanState& state) const override {
    for (const auto& c : columns_) require_kind(state.get(c, where()), {ColumnKind::kFloat}, where(), kFloatExpected);
  }
  void transform(Chunk& chunk, bool) const override {
    // Bounds that are floats (0, whole numbers, infinities: most) clip through the column kernel; others
    // are applied in double, so that a bound that is not a float still clips the right way.
    const float lo = static_cast<float>(p_.min), hi = static_cast<float>(p_.max);
    const bool float_bounds = static_cast<double>(lo) == p_.min && static_cast<double>(hi) == p_.max;
    for (const auto& name : columns_) {
      Column& c = chunk_column(chunk, name, {ColumnKind::kFloat}, where());
      if (float_bounds) {
        clip_for(simd_level())(c.f.data(), c.f.size(), lo, hi);
        continue;
      }
      for (float& x : c.f) {
        // Branch-free (vectorises); NaN compares false both times and stays NaN.
        const double d = x;
        float y = d < p_.min ? lo : x;
        y = d > p_.max ? hi : y;
        x = y;
      }
    }
  }

 private:
  Params p_;
};

class Log1pOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    std::string negative;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("log1p")
              .required("columns", &Params::columns, "float columns (ranges like I1..I13 allowed)")
              .add("negative", &Params::negative, std::string("symmetric"),
                   "values below 0: symmetric maps x to -log1p(-x); missing makes them NaN; error stops the run")
              .choices({"symmetric", "missing", "error"});
      return t;
    }
  };

  Log1pOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
  }
  std::string name() const override { return "log1p"; }
  void plan(PlanState& state) const override {
    for (const auto& c : columns_) require_kind(state.get(c, where()), {ColumnKind::kFloat}, where(), kFloatExpected);
  }
  void transform(Chunk& chunk, bool) const override {
    for (const auto& name : columns_) {
      Column& c = chunk_column(chunk, name, {ColumnKind::kFloat}, where());
      const Log1pTable& log1p = Log1pTable::instance();
      // Values >= 0 through the column kernel (math_kernels.h; NaN stays NaN); negative ones, which it
      // leaves alone and reports, here.
      if (!log1p_column_for(simd_level())(c.f.data(), c.f.size())) continue;
      for (int64_t r = 0; r < static_cast<int64_t>(c.f.size()); ++r) {
        float& x = c.f[r];
        if (!(x < 0)) continue;
        if (p_.negative == "symmetric") {
          x = -log1p(-x);
        } else if (p_.negative == "missing") {
          x = kMissingFloat;
        } else {
          BW_THROW(InputError, where(), ": column '", name, "', row ", chunk.global_row(r), " (line ",
                   chunk.first_line + r, " of input file ", chunk.file_index, "): log1p of negative value ", x,
                   "; clip it first (clip min: 0) or set negative: symmetric or missing");
        }
      }
    }
  }

 private:
  Params p_;
};

// Adds a dense 0/1 column per input column that says whether the value was missing in the input, so that
// a later fill_missing does not erase the difference between "missing" and the fill value (Criteo's
// integer features: a missing count and a count of 0 both become 0 after the standard preparation).
class MissingIndicatorOp : public Op {
 public:
  struct Params {
    std::vector<std::string> columns;
    std::string suffix;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("missing_indicator")
              .required("columns", &Params::columns, "float or integer columns (ranges like I1..I13 allowed)")
              .add("suffix", &Params::suffix, std::string("_missing"),
                   "new dense column = name + suffix: 1 where the value is missing, else 0");
      return t;
    }
  };

  MissingIndicatorOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    BW_CHECK(!p_.suffix.empty(), ConfigError, where(), ": suffix must not be empty");
  }
  std::string name() const override { return "missing_indicator"; }
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override {
    std::vector<std::string> out;
    for (const auto& c : columns_) out.push_back(c + p_.suffix);
    return out;
  }
  void plan(PlanState& state) const override {
    for (const auto& c : columns_)
      require_kind(state.get(c, where()), {ColumnKind::kFloat, ColumnKind::kInt}, where(),
                   "a float or integer column (one value per row)");
    for (const auto& c : columns_)
      plan_add_column(state, ColumnInfo{c + p_.suffix, Role::kDense, ColumnKind::kFloat, 0}, where());
  }
  void transform(Chunk& chunk, bool) const override {
    for (const auto& name : columns_) {
      Column out;
      {
        const Column& c = chunk_column(chunk, name, {ColumnKind::kFloat, ColumnKind::kInt}, where());
        out.f.resize(static_cast<std::size_t>(chunk.rows));
        for (int64_t r = 0; r < chunk.rows; ++r) out.f[r] = c.is_missing(r) ? 1.0f : 0.0f;
      }
      out.name = name + p_.suffix;
      out.role = Role::kDense;
      out.kind = ColumnKind::kFloat;
      chunk.columns.push_back(std::move(out));
    }
  }

 private:
  Params p_;
  std::vector<std::string> columns_;
};

class BucketizeOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    std::vector<double> boundaries;
    int64_t num_buckets, sample_size, seed;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("bucketize")
              .required("columns", &Params::columns, "float columns (ranges like I1..I13 allowed)")
              .add("boundaries", &Params::boundaries, std::vector<double>{},
                   "fixed increasing bucket edges; x goes to 1 + (number of edges <= x)")
              .add("num_buckets", &Params::num_buckets, int64_t{0},
                   "instead of boundaries: this many buckets at quantiles fitted on training rows")
              .min(0)
              .max(1 << 20)
              .add("sample_size", &Params::sample_size, int64_t{100000},
                   "num_buckets: training values sampled per column to place the quantiles")
              .min(16)
              .max(int64_t{1} << 26)
              .add("seed", &Params::seed, int64_t{0}, "num_buckets: seed of the row sample");
      return t;
    }
  };

  BucketizeOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    bool fixed = !p_.boundaries.empty(), fitted = p_.num_buckets > 0;
    BW_CHECK(fixed != fitted, ConfigError, where(), ": give exactly one of 'boundaries' (fixed edges) or 'num_buckets' (",
             fixed ? "both were given" : "neither was given", ")");
    BW_CHECK(!fitted || p_.num_buckets >= 2, ConfigError, where(), ": num_buckets must be at least 2, got ",
             p_.num_buckets);
    for (std::size_t i = 1; i < p_.boundaries.size(); ++i)
      BW_CHECK(p_.boundaries[i - 1] < p_.boundaries[i], ConfigError, where(),
               ": boundaries must be strictly increasing, got ", p_.boundaries[i - 1], " then ", p_.boundaries[i]);
    if (fixed) edges_.assign(columns_.size(), p_.boundaries);
  }
  std::string name() const override { return "bucketize"; }

  int64_t cardinality() const {
    return p_.num_buckets > 0 ? p_.num_buckets + 1 : static_cast<int64_t>(p_.boundaries.size()) + 2;
  }

  void plan(PlanState& state) const override {
    for (const auto& c : columns_) {
      ColumnInfo& info = state.get(c, where());
      require_kind(info, {ColumnKind::kFloat}, where(), kFloatExpected);
      info.kind = ColumnKind::kInt;
      info.role = Role::kCategorical;
      info.cardinality = cardinality();
    }
  }

  bool needs_fit() const override { return p_.num_buckets > 0; }

  void begin_fit(const OpContext& ctx) override {
    samples_.assign(static_cast<std::size_t>(ctx.threads), std::vector<std::vector<Sample>>(columns_.size()));
  }

  // A bottom-k sample by row hash: the k rows with the smallest mix64(row ^ seed) are a uniform sample,
  // and the union of per-thread bottom-k sets has the same bottom-k, so the result does not depend on
  // how chunks were spread over threads.
  void fit_chunk(const Chunk& chunk, int thread_id) override {
    auto& mine = samples_[thread_id];
    const std::size_t k = static_cast<std::size_t>(p_.sample_size);
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      const Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kFloat}, where());
      auto& heap = mine[ci];
      for (int64_t r = 0; r < chunk.rows; ++r) {
        if (!is_train_row(chunk, r) || std::isnan(c.f[r])) continue;
        Sample s{mix64(static_cast<uint64_t>(chunk.global_row(r)) ^ static_cast<uint64_t>(p_.seed)), c.f[r]};
        if (heap.size() < k) {
          heap.push_back(s);
          std::push_heap(heap.begin(), heap.end());
        } else if (s < heap.front()) {
          std::pop_heap(heap.begin(), heap.end());
          heap.back() = s;
          std::push_heap(heap.begin(), heap.end());
        }
      }
    }
  }

  void end_fit() override {
    edges_.assign(columns_.size(), {});
    const std::size_t k = static_cast<std::size_t>(p_.sample_size);
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      std::vector<Sample> all;
      for (auto& t : samples_) all.insert(all.end(), t[ci].begin(), t[ci].end());
      if (all.size() > k) {
        std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(k), all.end());
        all.resize(k);
      }
      std::vector<float> v;
      for (const Sample& s : all) v.push_back(s.value);
      std::sort(v.begin(), v.end());
      std::vector<double>& e = edges_[ci];
      const std::size_t n = v.size();
      for (int64_t b = 1; b < p_.num_buckets && n > 0; ++b) {
        double q = v[static_cast<std::size_t>(static_cast<unsigned __int128>(b) * n / p_.num_buckets)];
        // Equal quantiles (a value repeated over several buckets) collapse into one edge.
        if (e.empty() || e.back() < q) e.push_back(q);
      }
    }
    samples_.clear();
  }

  void transform(Chunk& chunk, bool) const override {
    BW_ASSERT(edges_.size() == columns_.size(), "bucketize transform before fit");
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kFloat}, where());
      const std::vector<double>& e = edges_[ci];
      const int64_t rows = static_cast<int64_t>(c.f.size());
      c.i.resize(rows);
      c.valid.assign(rows, 1);
      for (int64_t r = 0; r < rows; ++r) {
        float x = c.f[r];
        if (std::isnan(x)) {
          c.i[r] = 0;
          c.valid[r] = 0;
        } else {
          c.i[r] = 1 + (std::upper_bound(e.begin(), e.end(), static_cast<double>(x)) - e.begin());
        }
      }
      c.f.clear();
      c.f.shrink_to_fit();
      c.kind = ColumnKind::kInt;
      c.role = Role::kCategorical;
      c.cardinality = cardinality();
    }
  }

  void save_state(BinaryWriter& out) const override {
    write_state_header(out, name(), 1, columns_);
    for (const auto& e : edges_) out.write_vector(e);
  }
  void load_state(BinaryReader& in) override {
    read_state_header(in, name(), 1, columns_);
    std::vector<std::vector<double>> edges;
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      std::vector<double> e = in.read_vector<double>();
      in.check(static_cast<int64_t>(e.size()) + 2 <= cardinality(), "bucketize: more edges than buckets");
      for (std::size_t i = 0; i < e.size(); ++i)
        in.check(!std::isnan(e[i]) && (i == 0 || e[i - 1] < e[i]), "bucketize: edges not increasing");
      edges.push_back(std::move(e));
    }
    edges_ = std::move(edges);
  }

  std::string summary() const override {
    std::string s = "bucketize";
    for (std::size_t ci = 0; ci < columns_.size() && ci < edges_.size(); ++ci)
      s += str_cat(ci ? "," : "", " ", columns_[ci], ": ", edges_[ci].size() + 1, " buckets");
    return s;
  }

 private:
  struct Sample {
    uint64_t hash;
    float value;
    bool operator<(const Sample& o) const { return hash != o.hash ? hash < o.hash : value < o.value; }
  };
  Params p_;
  std::vector<std::vector<double>> edges_;                 // per column
  std::vector<std::vector<std::vector<Sample>>> samples_;  // [thread][column] max-heaps of the k smallest
};

}  // namespace

std::vector<OpSpec> numeric_op_specs() {
  return {make_spec<FillMissingOp>("fill_missing", "replace missing float values by a constant"),
          make_spec<ClipOp>("clip", "bound float values to [min, max]"),
          make_spec<Log1pOp>("log1p", "x -> log(1 + x) on float columns (sign-symmetric for x < 0 by default)"),
          make_spec<MissingIndicatorOp>("missing_indicator",
                                        "adds a dense 0/1 column per column: 1 where the value is missing"),
          make_spec<BucketizeOp>("bucketize", "float -> categorical bucket ids (1..), 0 = missing")};
}

}  // namespace bluewhale::prep_ops
