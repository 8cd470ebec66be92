// Shared plumbing of the operator families: registry entries, recipe parsing, schema checks and the
// per-operator state header.
#pragma once

#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "bluewhale/prep/ops.h"

namespace bluewhale {
class BinaryWriter;
class BinaryReader;
}  // namespace bluewhale

namespace bluewhale::prep_ops {

// An operator over a list of columns that it reads and modifies in place.
class ColumnsOp : public Op {
 public:
  std::vector<std::string> inputs() const override { return columns_; }
  std::vector<std::string> outputs() const override { return columns_; }

 protected:
  std::vector<std::string> columns_;
};

// One registered operator: its recipe name, a one-line description, its factory and its parameter help.
struct OpSpec {
  const char* name;
  const char* summary;
  std::unique_ptr<Op> (*make)(const ConfigNode& node, const OpContext& ctx);
  std::string (*help)();
};

// OpT has a constructor (const ConfigNode&, const OpContext&) and a nested Params with params().
template <class OpT>
OpSpec make_spec(const char* name, const char* summary) {
  return OpSpec{name, summary,
                [](const ConfigNode& node, const OpContext& ctx) -> std::unique_ptr<Op> {
                  return std::make_unique<OpT>(node, ctx);
                },
                [] { return OpT::Params::params().help(); }};
}

// The families, one per source file.
std::vector<OpSpec> numeric_op_specs();      // fill_missing, clip, log1p, missing_indicator, bucketize
std::vector<OpSpec> hashing_op_specs();      // hash, cross
std::vector<OpSpec> categorify_op_specs();   // categorify
std::vector<OpSpec> encode_op_specs();       // count_encode, frequency_encode, target_encode
std::vector<OpSpec> layout_op_specs();       // select, drop

// "recipes/x.yaml:14: ops[3] (categorify)".
std::string op_where(const ConfigNode& node, const std::string& op_name);

// Expands ranges ("C1..C26"), rejects an empty list and duplicates.
std::vector<std::string> parse_columns(const std::vector<std::string>& raw, const std::string& where);

inline bool is_train_row(const Chunk& chunk, int64_t r) { return chunk.split.empty() || chunk.split[r] == 0; }

// "float (dense)", "integer (categorical)", "list (multi)".
std::string describe_column(const ColumnInfo& c);

// Throws ConfigError "<where>: column 'x' is float (dense); <op> expects <expected>" unless c.kind is
// one of `kinds`.
void require_kind(const ColumnInfo& c, std::initializer_list<ColumnKind> kinds, const std::string& where,
                  const std::string& expected);

// Same check on a chunk column at fit/transform time (a pipeline that skipped plan()).
const Column& chunk_column(const Chunk& chunk, const std::string& name, std::initializer_list<ColumnKind> kinds,
                           const std::string& where);
Column& chunk_column(Chunk& chunk, const std::string& name, std::initializer_list<ColumnKind> kinds,
                     const std::string& where);

// Adds a new column to the plan; ConfigError when the name is taken.
void plan_add_column(PlanState& state, ColumnInfo info, const std::string& where);

// Every op's saved state starts with its name, a version and its columns, so loading the state of a
// different recipe fails with a clear FormatError instead of mapping the wrong columns.
void write_state_header(BinaryWriter& out, const std::string& op, uint32_t version,
                        const std::vector<std::string>& columns);
uint32_t read_state_header(BinaryReader& in, const std::string& op, uint32_t max_version,
                           const std::vector<std::string>& columns);

// 1234567 -> "1,234,567".
std::string with_commas(int64_t v);

}  // namespace bluewhale::prep_ops
