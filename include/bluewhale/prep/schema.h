// The input side of a recipe: how raw text files are laid out and what each column means.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bluewhale/core/config.h"
#include "bluewhale/data/column.h"

namespace bluewhale {

struct InputColumn {
  std::string name;
  Role role = Role::kDense;
  // kMulti / kSequence: the byte that separates values inside the field (default '|').
  char separator = '|';
};

// How the reader turns text into Chunks. Field parse rules by role:
//   label, dense         float (empty field = missing, NaN); anything else non-numeric is an error
//   categorical          the field's bytes as an int64 key (categorical_key: 8-byte values exact, others
//                        hashed); empty = missing
//   multi, sequence      the field split at `separator`, each part keyed so; empty field = empty list
//   timestamp            int64 decimal; empty = missing; non-numeric is an error
//   id                   int64 decimal when numeric, else the hashed bytes; empty = missing
//   ignore               skipped without parsing
struct InputFormat {
  std::string format = "tsv";        // tsv | csv
  char delimiter = '\t';             // default '\t' for tsv, ',' for csv
  bool header = false;               // first line of every file holds column names
  char quote = '"';                  // csv only: fields may be quoted, "" is an escaped quote
  std::string compression = "auto";  // auto (by extension and magic bytes) | none | gzip | zstd
  std::string on_bad_rows = "error"; // error | skip (count, report, go on)
  int64_t chunk_bytes = 1 << 20;     // text handed to one parser task
};

struct InputSchema {
  InputFormat format;
  std::vector<InputColumn> columns;  // in file order when there is no header

  const InputColumn* find(const std::string& name) const {
    for (const auto& c : columns)
      if (c.name == name) return &c;
    return nullptr;
  }
};

// Expands "I1..I13" into I1, I2, ..., I13 (prefix, then an integer range); other names pass through.
std::vector<std::string> expand_column_names(const std::vector<std::string>& names, const std::string& where);

// Parses a recipe's `input:` and `schema:` sections:
//   input:  {format: tsv, header: false, compression: auto, on_bad_rows: error}
//   schema:
//     - {name: label, role: label}
//     - {names: I1..I13, role: dense}
//     - {names: C1..C26, role: categorical}
//     - {name: tags, role: multi, separator: "|"}
InputSchema parse_input_schema(const ConfigNode& input, const ConfigNode& schema);

}  // namespace bluewhale
