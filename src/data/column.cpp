#include "bluewhale/data/column.h"

#include "bluewhale/core/error.h"

namespace bluewhale {

namespace {
constexpr std::string_view kRoleNames[] = {"label", "dense", "categorical", "multi", "sequence", "timestamp", "id",
                                           "ignore"};
}

std::string_view role_name(Role r) { return kRoleNames[static_cast<int>(r)]; }

Role parse_role(std::string_view name, std::string_view where) {
  for (int i = 0; i < 8; ++i)
    if (kRoleNames[i] == name) return static_cast<Role>(i);
  BW_THROW(ConfigError, where, ": unknown role '", name,
           "'; expected one of label, dense, categorical, multi, sequence, timestamp, id, ignore");
}

ColumnKind kind_for_role(Role r) {
  switch (r) {
    case Role::kLabel:
    case Role::kDense: return ColumnKind::kFloat;
    case Role::kMulti:
    case Role::kSequence: return ColumnKind::kList;
    default: return ColumnKind::kInt;
  }
}

std::string_view split_name(Split s) {
  switch (s) {
    case Split::kTrain: return "train";
    case Split::kValid: return "valid";
    case Split::kTest: return "test";
  }
  return "?";
}

void Column::resize(int64_t rows) {
  switch (kind) {
    case ColumnKind::kFloat: f.resize(rows); break;
    case ColumnKind::kInt: i.resize(rows); valid.resize(rows, 1); break;
    case ColumnKind::kList: offsets.assign(rows + 1, 0); i.clear(); break;
  }
}

Column& Chunk::add_column(std::string name, Role role, ColumnKind kind, int64_t cardinality) {
  Column c;
  c.name = std::move(name);
  c.role = role;
  c.kind = kind;
  c.cardinality = cardinality;
  c.resize(rows);
  columns.push_back(std::move(c));
  return columns.back();
}

Column* Chunk::find(std::string_view name) {
  for (auto& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

const Column* Chunk::find(std::string_view name) const {
  for (const auto& c : columns)
    if (c.name == name) return &c;
  return nullptr;
}

Column& Chunk::get(std::string_view name, std::string_view who) {
  Column* c = find(name);
  BW_CHECK(c, ConfigError, who, ": no column named '", name, "' at this point of the pipeline");
  return *c;
}

const Column& Chunk::get(std::string_view name, std::string_view who) const {
  const Column* c = find(name);
  BW_CHECK(c, ConfigError, who, ": no column named '", name, "' at this point of the pipeline");
  return *c;
}

}  // namespace bluewhale
