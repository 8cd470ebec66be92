// Stateless categorical operators: hash (keys -> a fixed number of buckets) and cross (feature crosses).
#include "bluewhale/core/hash.h"
#include "prep/ops/op_common.h"

namespace bluewhale::prep_ops {
namespace {

const char* kKeysExpected = "integer keys (categorical, id) or a list (multi, sequence)";

// Bucket 0 is reserved for missing, so keys spread over 1 .. buckets-1.
inline int64_t bucket_of(uint64_t h, int64_t buckets) {
  return 1 + static_cast<int64_t>(h % static_cast<uint64_t>(buckets - 1));
}

class HashOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    int64_t buckets, seed;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("hash")
              .required("columns", &Params::columns, "integer or list columns (ranges like C1..C26 allowed)")
              .required("buckets", &Params::buckets, "ids per column including 0 = missing")
              .min(2)
              .max(static_cast<double>(int64_t{1} << 62))
              .add("seed", &Params::seed, int64_t{0}, "changes which keys collide");
      return t;
    }
  };

  HashOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
  }
  std::string name() const override { return "hash"; }
  void plan(PlanState& state) const override {
    for (const auto& c : columns_) {
      ColumnInfo& info = state.get(c, where());
      require_kind(info, {ColumnKind::kInt, ColumnKind::kList}, where(), kKeysExpected);
      if (info.kind == ColumnKind::kInt) info.role = Role::kCategorical;
      info.cardinality = p_.buckets;
    }
  }
  void transform(Chunk& chunk, bool) const override {
    const uint64_t seed = static_cast<uint64_t>(p_.seed);
    for (const auto& name : columns_) {
      Column& c = chunk_column(chunk, name, {ColumnKind::kInt, ColumnKind::kList}, where());
      for (int64_t& k : c.i) k = bucket_of(mix64(static_cast<uint64_t>(k) ^ seed), p_.buckets);
      if (c.kind == ColumnKind::kInt) {
        for (std::size_t r = 0; r < c.valid.size(); ++r)
          if (!c.valid[r]) c.i[r] = 0;
        c.role = Role::kCategorical;
      }
      c.cardinality = p_.buckets;
    }
  }

 private:
  Params p_;
};

class CrossOp : public Op {
 public:
  struct Params {
    std::vector<std::string> columns;
    int64_t buckets, seed;
    std::string out;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("cross")
              .required("columns", &Params::columns, "two or more integer columns to cross")
              .required("buckets", &Params::buckets, "ids of the crossed column including 0 = missing")
              .min(2)
              .max(static_cast<double>(int64_t{1} << 62))
              .add("out", &Params::out, std::string(), "name of the new column (default A_x_B)")
              .add("seed", &Params::seed, int64_t{0}, "changes which combinations collide");
      return t;
    }
  };

  CrossOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    columns_ = parse_columns(p_.columns, where());
    BW_CHECK(columns_.size() >= 2, ConfigError, where(), ": cross needs at least two columns, got ", columns_.size());
    out_ = p_.out;
    if (out_.empty())
      for (std::size_t i = 0; i < columns_.size(); ++i) out_ += (i ? "_x_" : "") + columns_[i];
  }
  std::string name() const override { return "cross"; }
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override { return {out_}; }

  void plan(PlanState& state) const override {
    for (const auto& c : columns_)
      require_kind(state.get(c, where()), {ColumnKind::kInt}, where(), "integer columns (categorical, id)");
    plan_add_column(state, ColumnInfo{out_, Role::kCategorical, ColumnKind::kInt, p_.buckets}, where());
  }

  void transform(Chunk& chunk, bool) const override {
    std::vector<const Column*> in;
    for (const auto& c : columns_) in.push_back(&chunk_column(chunk, c, {ColumnKind::kInt}, where()));
    Column out;
    out.name = out_;
    out.role = Role::kCategorical;
    out.kind = ColumnKind::kInt;
    out.cardinality = p_.buckets;
    out.i.resize(chunk.rows);
    out.valid.assign(chunk.rows, 1);
    for (int64_t r = 0; r < chunk.rows; ++r) {
      uint64_t h = mix64(static_cast<uint64_t>(p_.seed));
      bool missing = false;
      for (const Column* c : in) {
        missing = missing || c->is_missing(r);
        h = mix64(h ^ static_cast<uint64_t>(c->i[r]));
      }
      out.i[r] = missing ? 0 : bucket_of(h, p_.buckets);
      out.valid[r] = missing ? 0 : 1;
    }
    chunk.columns.push_back(std::move(out));  // invalidates `in`, which is not used after this
  }

 private:
  Params p_;
  std::vector<std::string> columns_;
  std::string out_;
};

}  // namespace

std::vector<OpSpec> hashing_op_specs() {
  return {make_spec<HashOp>("hash", "keys -> 1 + hash % (buckets - 1), 0 = missing"),
          make_spec<CrossOp>("cross", "new categorical column hashing the combination of several columns")};
}

}  // namespace bluewhale::prep_ops
