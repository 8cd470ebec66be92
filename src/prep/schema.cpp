#include "bluewhale/prep/schema.h"

#include <cctype>

namespace bluewhale {
namespace {

struct SchemaEntry {
  std::string name;
  std::vector<std::string> names;
  std::string role;
  std::string separator;
  static const ParamTable<SchemaEntry>& params() {
    static const auto t = ParamTable<SchemaEntry>("schema entry")
                              .add("name", &SchemaEntry::name, std::string(), "one column name")
                              .add("names", &SchemaEntry::names, std::vector<std::string>{},
                                   "several column names sharing a role; 'I1..I13' expands to a range")
                              .required("role", &SchemaEntry::role,
                                        "label, dense, categorical, multi, sequence, timestamp, id or ignore")
                              .choices({"label", "dense", "categorical", "multi", "sequence", "timestamp", "id", "ignore"})
                              .add("separator", &SchemaEntry::separator, std::string("|"),
                                   "multi/sequence: the one character between values inside a field");
    return t;
  }
};

struct InputParams {
  std::string format, delimiter, compression, on_bad_rows;
  bool header;
  int64_t chunk_mb;
  static const ParamTable<InputParams>& params() {
    static const auto t =
        ParamTable<InputParams>("input")
            .add("format", &InputParams::format, std::string("tsv"), "text layout of the raw files")
            .choices({"tsv", "csv"})
            .add("delimiter", &InputParams::delimiter, std::string(),
                 "field separator, one character (default: tab for tsv, comma for csv)")
            .add("header", &InputParams::header, false, "the first line of every file holds the column names")
            .add("compression", &InputParams::compression, std::string("auto"),
                 "auto detects gzip/zstd by magic bytes")
            .choices({"auto", "none", "gzip", "zstd"})
            .add("on_bad_rows", &InputParams::on_bad_rows, std::string("error"),
                 "error stops at the first malformed row; skip counts and reports them")
            .choices({"error", "skip"})
            .add("chunk_mb", &InputParams::chunk_mb, int64_t{1}, "MiB of text per parallel parse task")
            .min(1)
            .max(1024);
    return t;
  }
};

char one_char(const std::string& s, const ConfigNode& where, const char* what) {
  std::string v = s;
  if (v == "\\t" || v == "tab") v = "\t";
  BW_CHECK(v.size() == 1, ConfigError, where.where(), ": ", what, " must be one character, got '", s, "'");
  return v[0];
}

}  // namespace

std::vector<std::string> expand_column_names(const std::vector<std::string>& names, const std::string& where) {
  std::vector<std::string> out;
  for (const auto& n : names) {
    auto dots = n.find("..");
    if (dots == std::string::npos) {
      out.push_back(n);
      continue;
    }
    // "I1..I13": prefix I, range 1..13. The part after ".." may repeat the prefix or be a bare number.
    std::string lhs = n.substr(0, dots), rhs = n.substr(dots + 2);
    std::size_t d = lhs.size();
    while (d > 0 && std::isdigit(static_cast<unsigned char>(lhs[d - 1]))) --d;
    std::string prefix = lhs.substr(0, d), first = lhs.substr(d);
    if (rhs.compare(0, prefix.size(), prefix) == 0) rhs = rhs.substr(prefix.size());
    bool ok = !first.empty() && !rhs.empty();
    for (char c : rhs) ok = ok && std::isdigit(static_cast<unsigned char>(c));
    BW_CHECK(ok, ConfigError, where, ": cannot expand column range '", n, "'; expected a form like I1..I13");
    long a = std::stol(first), b = std::stol(rhs);
    BW_CHECK(a <= b && b - a < 100000, ConfigError, where, ": bad column range '", n, "'");
    for (long k = a; k <= b; ++k) out.push_back(prefix + std::to_string(k));
  }
  return out;
}

InputSchema parse_input_schema(const ConfigNode& input, const ConfigNode& schema) {
  InputSchema s;
  InputParams ip = InputParams::params().parse(input);
  s.format.format = ip.format;
  s.format.delimiter = ip.delimiter.empty() ? (ip.format == "csv" ? ',' : '\t') : one_char(ip.delimiter, input, "delimiter");
  s.format.header = ip.header;
  s.format.compression = ip.compression;
  s.format.on_bad_rows = ip.on_bad_rows;
  s.format.chunk_bytes = ip.chunk_mb << 20;

  BW_CHECK(schema.is_list() && !schema.as_list().empty(), ConfigError, schema.where(),
           ": schema must be a non-empty list of {name|names, role} entries");
  for (const auto& node : schema.as_list()) {
    SchemaEntry e = SchemaEntry::params().parse(node);
    BW_CHECK(e.name.empty() != e.names.empty(), ConfigError, node.where(), ": give exactly one of 'name' or 'names'");
    std::vector<std::string> names = e.name.empty() ? expand_column_names(e.names, node.where()) : std::vector{e.name};
    Role role = parse_role(e.role, node.where());
    char sep = one_char(e.separator, node, "separator");
    for (auto& n : names) {
      BW_CHECK(!s.find(n), ConfigError, node.where(), ": column '", n, "' is declared twice");
      s.columns.push_back(InputColumn{n, role, sep});
    }
  }
  return s;
}

}  // namespace bluewhale
