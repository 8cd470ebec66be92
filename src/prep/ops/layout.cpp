// Column layout operators: select (keep and order) and drop.
#include <algorithm>

#include "prep/ops/op_common.h"

namespace bluewhale::prep_ops {
namespace {

class SelectOp : public Op {
 public:
  struct Params {
    std::vector<std::string> columns;
    static const ParamTable<Params>& params() {
      static const auto t = ParamTable<Params>("select").required(
          "columns", &Params::columns, "the columns to keep, in output order (ranges like C1..C26 allowed)");
      return t;
    }
  };

  SelectOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    columns_ = parse_columns(Params::params().parse(node, {"op"}).columns, where());
  }
  std::string name() const override { return "select"; }
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override { return {}; }

  void plan(PlanState& state) const override {
    std::vector<ColumnInfo> kept;
    for (const auto& c : columns_) kept.push_back(state.get(c, where()));
    state.columns = std::move(kept);
  }
  void transform(Chunk& chunk, bool) const override {
    std::vector<Column> kept;
    kept.reserve(columns_.size());
    for (const auto& c : columns_) kept.push_back(std::move(chunk.get(c, where())));
    chunk.columns = std::move(kept);
  }

 private:
  std::vector<std::string> columns_;
};

class DropOp : public Op {
 public:
  struct Params {
    std::vector<std::string> columns;
    static const ParamTable<Params>& params() {
      static const auto t = ParamTable<Params>("drop").required(
          "columns", &Params::columns, "the columns to remove (ranges like C1..C26 allowed)");
      return t;
    }
  };

  DropOp(const ConfigNode& node, const OpContext&) {
    set_where(op_where(node, name()));
    columns_ = parse_columns(Params::params().parse(node, {"op"}).columns, where());
  }
  std::string name() const override { return "drop"; }
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override { return {}; }

  void plan(PlanState& state) const override {
    for (const auto& c : columns_) state.get(c, where());
    std::erase_if(state.columns, [&](const ColumnInfo& c) {
      return std::find(columns_.begin(), columns_.end(), c.name) != columns_.end();
    });
  }
  void transform(Chunk& chunk, bool) const override {
    for (const auto& c : columns_) chunk.get(c, where());
    std::erase_if(chunk.columns, [&](const Column& c) {
      return std::find(columns_.begin(), columns_.end(), c.name) != columns_.end();
    });
  }

 private:
  std::vector<std::string> columns_;
};

}  // namespace

std::vector<OpSpec> layout_op_specs() {
  return {make_spec<SelectOp>("select", "keep only the named columns, in the given order"),
          make_spec<DropOp>("drop", "remove the named columns")};
}

}  // namespace bluewhale::prep_ops
