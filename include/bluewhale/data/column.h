// In-memory columnar chunks: what readers produce, operators transform and the dataset writer stores.
//
// A Chunk holds `rows` consecutive rows of one input file. Each Column is one of three kinds:
//   kFloat  f[rows]                    float32; NaN marks a missing value
//   kInt    i[rows], valid[rows]       int64 (hashed categorical keys, ids after categorify, timestamps);
//                                      valid[r] == 0 marks a missing value (valid empty: all present)
//   kList   offsets[rows+1], i[...]    multi-valued rows: values of row r are i[offsets[r] .. offsets[r+1]);
//                                      an empty list is a missing value
// Columns are plain std::vectors: a chunk is owned by one thread at a time.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace bluewhale {

// What a column means to the model. Parsed from the recipe's schema; operators may change it (bucketize
// turns dense into categorical, count encoding adds a dense column).
enum class Role : uint8_t {
  kLabel,        // target, stored as float32
  kDense,        // numeric feature, float32
  kCategorical,  // one value per row; ids in [0, cardinality) once categorified/hashed/bucketized
  kMulti,        // several categorical values per row (a separator inside the field)
  kSequence,     // ordered history of categorical values (a separator inside the field)
  kTimestamp,    // int64 (seconds or any integer time), kept as an auxiliary column
  kId,           // int64 row/user/item id kept as an auxiliary column; non-numeric ids are hashed
  kIgnore,       // parsed away, never stored
};

std::string_view role_name(Role r);
// Throws ConfigError listing the valid names when `name` is not one.
Role parse_role(std::string_view name, std::string_view where);

enum class ColumnKind : uint8_t { kFloat, kInt, kList };

// The in-memory kind a role is parsed into: label/dense -> kFloat, multi/sequence -> kList, others kInt.
ColumnKind kind_for_role(Role r);

inline constexpr float kMissingFloat = std::numeric_limits<float>::quiet_NaN();

struct Column {
  std::string name;
  Role role = Role::kDense;
  ColumnKind kind = ColumnKind::kFloat;
  // > 0 once values are dense ids in [0, cardinality); 0 while they are raw hashed keys or plain integers.
  int64_t cardinality = 0;

  std::vector<float> f;
  std::vector<int64_t> i;
  std::vector<uint8_t> valid;
  std::vector<int64_t> offsets;

  bool is_missing(int64_t r) const {
    switch (kind) {
      case ColumnKind::kFloat: return std::isnan(f[r]);
      case ColumnKind::kInt: return !valid.empty() && valid[r] == 0;
      case ColumnKind::kList: return offsets[r + 1] == offsets[r];
    }
    return false;
  }
  // Resizes storage for `rows` rows of this column's kind (lists get offsets only, values empty).
  void resize(int64_t rows);
};

// Which part of the dataset a row belongs to.
enum class Split : uint8_t { kTrain = 0, kValid = 1, kTest = 2 };
inline constexpr int kNumSplits = 3;
std::string_view split_name(Split s);

struct Chunk {
  int64_t rows = 0;
  // Global index of the first row over all input files (in input order, header excluded, bad rows
  // skipped rows included so that numbering does not depend on errors), for seeded per-row decisions.
  int64_t first_row = 0;
  int file_index = 0;
  int64_t first_line = 0;  // 1-based line in that file of the first row
  // Bytes of input text the rows were parsed from (0 when not known), for fits that size their state
  // from how much of the input they have seen (OpContext::input_bytes).
  int64_t text_bytes = 0;
  std::vector<Column> columns;
  // Per-row split assignment; empty means all rows are kTrain.
  std::vector<uint8_t> split;
  // Per-row global row index when rows were dropped inside the chunk (on_bad_rows: skip); empty means
  // row r has index first_row + r.
  std::vector<int64_t> row_index;

  int64_t global_row(int64_t r) const { return row_index.empty() ? first_row + r : row_index[r]; }
  // Appends a column sized for `rows` rows of `kind` (zeroed; ints valid; lists empty) and returns it. The
  // reference is valid until the next column is added (reserve columns first to keep several).
  Column& add_column(std::string name, Role role, ColumnKind kind, int64_t cardinality = 0);
  Column* find(std::string_view name);
  const Column* find(std::string_view name) const;
  // Like find() but throws ConfigError naming the operator and the missing column.
  Column& get(std::string_view name, std::string_view who);
  const Column& get(std::string_view name, std::string_view who) const;
};

}  // namespace bluewhale
