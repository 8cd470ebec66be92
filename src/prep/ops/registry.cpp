#include <algorithm>
#include <cmath>

#include "bluewhale/data/binary_io.h"
#include "bluewhale/prep/ops.h"
#include "bluewhale/prep/schema.h"
#include "prep/ops/op_common.h"

namespace bluewhale {

using namespace prep_ops;

namespace {

const std::vector<OpSpec>& registry() {
  static const std::vector<OpSpec> specs = [] {
    std::vector<OpSpec> all;
    for (auto family : {numeric_op_specs, hashing_op_specs, categorify_op_specs, encode_op_specs, layout_op_specs})
      for (OpSpec& s : family()) all.push_back(s);
    return all;
  }();
  return specs;
}

const OpSpec* find_spec(const std::string& name) {
  for (const OpSpec& s : registry())
    if (name == s.name) return &s;
  return nullptr;
}

std::string unknown_op_message(const std::string& name) {
  std::vector<std::string> names = op_names();
  std::string near = nearest(name, names);
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) list += (i ? ", " : "") + names[i];
  return str_cat("unknown operator '", name, "'", near.empty() ? "" : " (did you mean '" + near + "'?)",
                 "; operators: ", list);
}

const char* kind_word(ColumnKind k) {
  switch (k) {
    case ColumnKind::kFloat: return "float";
    case ColumnKind::kInt: return "integer";
    case ColumnKind::kList: return "list";
  }
  return "?";
}

bool kind_in(ColumnKind k, std::initializer_list<ColumnKind> kinds) {
  return std::find(kinds.begin(), kinds.end(), k) != kinds.end();
}

}  // namespace

ColumnInfo* PlanState::find(const std::string& name) {
  for (auto& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

ColumnInfo& PlanState::get(const std::string& name, const std::string& where) {
  if (ColumnInfo* c = find(name)) return *c;
  std::vector<std::string> names;
  for (const auto& c : columns) names.push_back(c.name);
  std::string near = nearest(name, names);
  BW_THROW(ConfigError, where, ": no column '", name, "'", near.empty() ? "" : " (did you mean '" + near + "'?)");
}

std::unique_ptr<Op> create_op(const ConfigNode& node, const OpContext& ctx) {
  node.as_map();
  const ConfigNode& op = node.at("op");
  const std::string& name = op.as_scalar();
  const OpSpec* spec = find_spec(name);
  BW_CHECK(spec, ConfigError, op.where(), ": ", unknown_op_message(name));
  return spec->make(node, ctx);
}

std::vector<std::string> op_names() {
  std::vector<std::string> names;
  for (const OpSpec& s : registry()) names.push_back(s.name);
  return names;
}

std::string op_help(const std::string& name) {
  const OpSpec* spec = find_spec(name);
  BW_CHECK(spec, ConfigError, unknown_op_message(name));
  return str_cat(spec->name, ": ", spec->summary, "\n", spec->help());
}

namespace prep_ops {

std::string op_where(const ConfigNode& node, const std::string& op_name) {
  return str_cat(node.where(), " (", op_name, ")");
}

std::vector<std::string> parse_columns(const std::vector<std::string>& raw, const std::string& where) {
  std::vector<std::string> cols = expand_column_names(raw, where);
  BW_CHECK(!cols.empty(), ConfigError, where, ": 'columns' is empty; name at least one column");
  for (std::size_t i = 0; i < cols.size(); ++i)
    for (std::size_t j = 0; j < i; ++j)
      BW_CHECK(cols[i] != cols[j], ConfigError, where, ": column '", cols[i], "' is listed twice");
  return cols;
}

std::string describe_column(const ColumnInfo& c) {
  return str_cat(kind_word(c.kind), " (", role_name(c.role), ")");
}

void require_kind(const ColumnInfo& c, std::initializer_list<ColumnKind> kinds, const std::string& where,
                  const std::string& expected) {
  BW_CHECK(kind_in(c.kind, kinds), ConfigError, where, ": column '", c.name, "' is ", describe_column(c),
           "; expected ", expected);
}

const Column& chunk_column(const Chunk& chunk, const std::string& name, std::initializer_list<ColumnKind> kinds,
                           const std::string& where) {
  const Column& c = chunk.get(name, where);
  BW_CHECK(kind_in(c.kind, kinds), ConfigError, where, ": column '", name, "' holds ", kind_word(c.kind),
           " values, which this operator cannot take");
  return c;
}

Column& chunk_column(Chunk& chunk, const std::string& name, std::initializer_list<ColumnKind> kinds,
                     const std::string& where) {
  const Chunk& cc = chunk;
  chunk_column(cc, name, kinds, where);
  return chunk.get(name, where);
}

void plan_add_column(PlanState& state, ColumnInfo info, const std::string& where) {
  BW_CHECK(!state.find(info.name), ConfigError, where, ": output column '", info.name,
           "' already exists; choose another name (suffix/out)");
  state.columns.push_back(std::move(info));
}

void write_state_header(BinaryWriter& out, const std::string& op, uint32_t version,
                        const std::vector<std::string>& columns) {
  out.write_string(op);
  out.write<uint32_t>(version);
  out.write<uint64_t>(columns.size());
  for (const auto& c : columns) out.write_string(c);
}

uint32_t read_state_header(BinaryReader& in, const std::string& op, uint32_t max_version,
                           const std::vector<std::string>& columns) {
  std::string got = in.read_string();
  in.check(got == op, str_cat("operator state holds '", got, "', expected '", op, "'"));
  uint32_t version = in.read<uint32_t>();
  in.check(version >= 1 && version <= max_version, str_cat(op, " state version ", version, " is not supported"));
  uint64_t n = in.read<uint64_t>();
  in.check(n == columns.size(), str_cat(op, " state was fitted on ", n, " columns, the recipe names ", columns.size()));
  for (const auto& c : columns) {
    std::string name = in.read_string();
    in.check(name == c, str_cat(op, " state was fitted on column '", name, "', the recipe names '", c, "'"));
  }
  return version;
}

std::string with_commas(int64_t v) {
  std::string digits = std::to_string(v < 0 ? -v : v), out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

}  // namespace prep_ops
}  // namespace bluewhale
