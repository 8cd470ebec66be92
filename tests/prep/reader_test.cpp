#include "bluewhale/prep/reader.h"

#include <gtest/gtest.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/parallel.h"
#include "prep/parse_number.h"
#include "prep/reader_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;
using testing::gzip_bytes;
using testing::make_schema;
using testing::write_text;

InputColumn col(std::string name, Role role, char sep = '|') { return InputColumn{std::move(name), role, sep}; }

// The Criteo display-ads layout: label, 13 dense, 26 categorical.
std::vector<InputColumn> criteo_columns() {
  std::vector<InputColumn> c{col("label", Role::kLabel)};
  for (int k = 1; k <= 13; ++k) c.push_back(col("I" + std::to_string(k), Role::kDense));
  for (int k = 1; k <= 26; ++k) c.push_back(col("C" + std::to_string(k), Role::kCategorical));
  return c;
}

std::string render_float(float v) {
  if (std::isnan(v)) return "nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

// One string per row, "name=value;..." in column order, plus the row's global index: a format both the
// reader's output and the naive reference below can produce, so whole tables compare with one EXPECT.
struct Flat {
  std::vector<std::string> rows;
  std::vector<int64_t> global_rows;
};

void flatten_into(const Chunk& c, Flat& flat) {
  for (int64_t r = 0; r < c.rows; ++r) {
    std::string s;
    for (const Column& col : c.columns) {
      s += col.name + "=";
      switch (col.kind) {
        case ColumnKind::kFloat: s += render_float(col.f[r]); break;
        case ColumnKind::kInt: s += col.valid.empty() || col.valid[r] ? std::to_string(col.i[r]) : "-"; break;
        case ColumnKind::kList:
          s += "[";
          for (int64_t k = col.offsets[r]; k < col.offsets[r + 1]; ++k) s += std::to_string(col.i[k]) + ",";
          s += "]";
          break;
      }
      s += ";";
    }
    flat.rows.push_back(s);
    flat.global_rows.push_back(c.global_row(r));
  }
}

struct ReadResult {
  std::vector<TextChunk> texts;
  std::vector<Chunk> chunks;
  BadRowStats stats;
  Flat flat;
};

ReadResult read_all(const std::vector<std::string>& files, const InputSchema& schema, int prefetch = 2) {
  ReadResult res;
  TextReader reader(files, schema, prefetch);
  TextChunk t;
  while (reader.next(t)) res.texts.push_back(std::move(t));
  for (const auto& text : res.texts) {
    Chunk c;
    reader.parse(text, c, res.stats);
    flatten_into(c, res.flat);
    res.chunks.push_back(std::move(c));
  }
  return res;
}

// Runs the whole read and returns the InputError/IoError message ("" when nothing was thrown).
template <class E>
std::string error_of(const std::vector<std::string>& files, const InputSchema& schema) {
  try {
    read_all(files, schema);
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

void expect_same_rows(const Flat& got, const Flat& want) {
  ASSERT_EQ(got.rows.size(), want.rows.size());
  for (std::size_t r = 0; r < got.rows.size(); ++r) {
    ASSERT_EQ(got.rows[r], want.rows[r]) << "row " << r;
    ASSERT_EQ(got.global_rows[r], want.global_rows[r]) << "row " << r;
  }
}

std::string zstd_bytes(const std::string& text) {
  std::string out(ZSTD_compressBound(text.size()), '\0');
  std::size_t n = ZSTD_compress(out.data(), out.size(), text.data(), text.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

// A plain reference for Criteo-layout text: getline, split at the delimiter, strtof/hash per field.
Flat reference_parse(const std::string& path, char delim, bool header, const std::vector<InputColumn>& schema,
                     const std::vector<std::string>& out_order) {
  std::ifstream in(path);
  std::string line;
  std::vector<std::string> names;
  if (header) {
    std::getline(in, line);
    std::stringstream ss(line);
    std::string f;
    while (std::getline(ss, f, delim)) names.push_back(f);
  } else {
    for (const auto& c : schema) names.push_back(c.name);
  }
  Flat flat;
  int64_t row = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::vector<std::string> fields;
    std::size_t start = 0;
    for (;;) {
      std::size_t p = line.find(delim, start);
      fields.push_back(line.substr(start, p == std::string::npos ? std::string::npos : p - start));
      if (p == std::string::npos) break;
      start = p + 1;
    }
    EXPECT_EQ(fields.size(), names.size());
    std::string s;
    for (const auto& name : out_order) {
      std::size_t k = 0;
      while (names[k] != name) ++k;
      const std::string& v = fields[k];
      Role role = Role::kIgnore;
      for (const auto& c : schema)
        if (c.name == name) role = c.role;
      s += name + "=";
      if (role == Role::kLabel || role == Role::kDense) {
        s += v.empty() ? "nan" : render_float(std::strtof(v.c_str(), nullptr));
      } else if (role == Role::kCategorical) {
        s += v.empty() ? "-" : std::to_string(categorical_key(v));
      } else if (role == Role::kId) {
        s += v.empty() ? "-" : std::to_string(std::stoll(v));
      }
      s += ";";
    }
    flat.rows.push_back(s);
    flat.global_rows.push_back(row++);
  }
  return flat;
}

std::vector<std::string> names_of(const std::vector<InputColumn>& cols) {
  std::vector<std::string> out;
  for (const auto& c : cols)
    if (c.role != Role::kIgnore) out.push_back(c.name);
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Field parsing

TEST(ParseFloat, MatchesStrtofReferenceOverEdgeCases) {
  // Reference: strtof over the whole text, rejecting what the reader documents as not a number.
  auto reference = [](const std::string& s, float& out) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    const char* b = s.c_str();
    std::size_t skip = (s[0] == '+' || s[0] == '-') ? 1 : 0;
    if (skip && (s.size() == 1 || s[1] == '+' || s[1] == '-')) return false;
    if (s.find_first_of("xXnN") != std::string::npos) return false;  // hex, nan, inf(inity)
    char* end = nullptr;
    errno = 0;
    double d = std::strtod(b, &end);
    if (end != b + s.size() || !std::isfinite(d) || std::fabs(d) > 3.4028235e38) return false;
    out = std::strtof(b, &end);
    return std::isfinite(out);
  };
  const std::vector<std::string> cases = {
      "0", "-0", "+0", "7", "-7", "+5", "42", "16777217", "123456789", "999999999999999999",
      "9999999999999999999", "123456789012345678901", "-9223372036854775808", "1.5", "-2.25", ".5", "5.",
      "1e5", "1E-3", "3.4028234e38", "1e39", "-1e39", "1e-50", "1e-40", "0.1", "0.30000001192092896",
      "", "-", "+", "--5", "+-5", "1a", "a1", " 1", "1 ", "nan", "NaN", "inf", "-inf", "Infinity", "0x10",
      "1e", "e5", ".", "1..2", "1,5"};
  for (const auto& c : cases) {
    float want = 0, got = 0;
    bool want_ok = reference(c, want);
    bool got_ok = text::parse_float(c.data(), c.data() + c.size(), got);
    EXPECT_EQ(got_ok, want_ok) << "'" << c << "'";
    if (got_ok && want_ok) {
      EXPECT_EQ(got, want) << "'" << c << "'";
      EXPECT_EQ(std::signbit(got), std::signbit(want)) << "'" << c << "'";
    }
  }
}

// The inlined digits-only path against parse_float: wherever it accepts, the value must be bit-identical;
// it must decline signs, dots, exponents, junk, empty and 10+ digit fields (left to parse_float).
TEST(ParseFloatDigits, AgreesWithParseFloatWhereverItAccepts) {
  std::vector<std::string> cases = {"0", "1", "00", "0000000001", "9", "10", "16777216", "16777217", "123456789",
                                    "999999999", "1000000000", "-1", "+1", "1.0", ".5", "1e3", "", "12a", " 1",
                                    "1 ", "abc", "4294967295", "000000000", "99999999999999"};
  std::mt19937_64 rng(11);
  for (int k = 0; k < 20000; ++k) cases.push_back(std::to_string(rng() % (k % 2 ? 100000 : 1000000000)));
  for (int k = 0; k < 2000; ++k) {
    std::string d(1 + rng() % 12, '0');
    for (char& c : d) c = static_cast<char>('0' + rng() % 10);
    cases.push_back(d);
  }
  int accepted = 0;
  for (const std::string& c : cases) {
    float fast = -7.0f, ref = -7.0f;
    const char* b = c.data();
    const char* e = c.data() + c.size();
    const bool plain = !c.empty() && c.size() <= 9 && c.find_first_not_of("0123456789") == std::string::npos;
    ASSERT_EQ(text::parse_float_digits(b, e, fast), plain) << "'" << c << "'";
    if (!plain) continue;
    ++accepted;
    ASSERT_TRUE(text::parse_float(b, e, ref)) << c;
    ASSERT_EQ(std::memcmp(&fast, &ref, sizeof fast), 0) << c << ": " << fast << " vs " << ref;
  }
  EXPECT_GT(accepted, 15000);
}

// The word-at-a-time digits parser against parse_float_digits (its plain reference): same verdict and
// bit-identical value for every field of 0 to 9 bytes, with every byte value at every position and any
// bytes after the field (it reads 8 bytes whatever the length).
TEST(ParseFloatDigits8, AgreesWithParseFloatDigitsOverEveryByteAndLength) {
  std::mt19937_64 rng(12);
  auto check = [](const char* b, std::size_t len) {
    float fast = -7.0f, ref = -7.0f;
    const bool ref_ok = len <= 8 && text::parse_float_digits(b, b + len, ref);
    const bool fast_ok = text::parse_float_digits8(b, b + len, fast);
    ASSERT_EQ(fast_ok, ref_ok) << "'" << std::string(b, len) << "'";
    if (ref_ok) {
      ASSERT_EQ(std::memcmp(&fast, &ref, sizeof fast), 0) << std::string(b, len);
    }
  };
  char buf[24];
  for (std::size_t len = 0; len <= 9; ++len) {
    for (int rep = 0; rep < 200; ++rep) {
      for (char& c : buf) c = static_cast<char>(rng());                        // junk after the field
      for (std::size_t k = 0; k < len; ++k) buf[k] = static_cast<char>('0' + rng() % 10);
      check(buf, len);
      for (std::size_t pos = 0; pos < len; ++pos) {
        const char keep = buf[pos];
        for (int v = 0; v < 256; ++v) {
          buf[pos] = static_cast<char>(v);
          check(buf, len);
        }
        buf[pos] = keep;
      }
    }
  }
  for (const char* c : {"0", "00000000", "99999999", "16777217", "10000000", "1", "9", "12345678"}) {
    std::memset(buf, '7', sizeof buf);
    std::memcpy(buf, c, std::strlen(c));
    check(buf, std::strlen(c));
  }
}

TEST(ParseInt64, AcceptsFullRangeAndRejectsOverflowAndJunk) {
  auto parse = [](const std::string& s, int64_t& v) { return text::parse_int64(s.data(), s.data() + s.size(), v); };
  int64_t v = 0;
  EXPECT_TRUE(parse("0", v));
  EXPECT_EQ(v, 0);
  EXPECT_TRUE(parse("+17", v));
  EXPECT_EQ(v, 17);
  EXPECT_TRUE(parse("9223372036854775807", v));
  EXPECT_EQ(v, INT64_MAX);
  EXPECT_TRUE(parse("-9223372036854775808", v));
  EXPECT_EQ(v, INT64_MIN);
  EXPECT_FALSE(parse("9223372036854775808", v));
  EXPECT_FALSE(parse("99999999999999999999", v));
  EXPECT_FALSE(parse("", v));
  EXPECT_FALSE(parse("-", v));
  EXPECT_FALSE(parse("12a", v));
  EXPECT_FALSE(parse("1.0", v));
  EXPECT_FALSE(parse(" 1", v));
}

// ---------------------------------------------------------------------------------------------------
// Layouts and roles

// Chunk text storage: growth keeps what was there (small to huge-page sizes), copies are deep, moves
// leave the source empty and usable, and equality compares bytes.
TEST(TextBytes, GrowsCopiesAndMovesLikeAString) {
  TextBytes t;
  EXPECT_TRUE(t.empty());
  std::string ref;
  for (int k = 0; k < 300000; ++k) {  // through calloc'd sizes into 2 MiB-mapped ones
    const char c = static_cast<char>('a' + k % 26);
    t.push_back(c);
    ref.push_back(c);
  }
  EXPECT_EQ(t.view(), ref);
  EXPECT_GE(t.capacity(), t.size());
  t.resize(5 << 20);  // grows past a huge page: the old bytes stay, the new ones are unspecified
  EXPECT_EQ(t.view().substr(0, ref.size()), ref);
  t.resize(ref.size());
  TextBytes copy = t;
  EXPECT_EQ(copy, t);
  copy.data()[0] = 'Z';
  EXPECT_EQ(t.view()[0], 'a');  // deep
  EXPECT_FALSE(copy == t);
  TextBytes moved = std::move(t);
  EXPECT_EQ(moved.view(), ref);
  EXPECT_TRUE(t.empty());
  t.assign("again");
  EXPECT_EQ(t.view(), "again");
  EXPECT_EQ(t.back(), 'n');
  moved = std::move(t);
  EXPECT_EQ(moved, TextBytes("again"));
}

TEST(TextReader, ParsesEveryRoleIntoTypedColumnsInSchemaOrder) {
  TempDir dir;
  write_text(dir / "a.tsv",
             "1\t2.5\tabc\tx|y||z\t1700000000\t123\tjunk\tu17\n"
             "0\t\t\t\t\t\tjunk\t\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("tags", Role::kMulti), col("ts", Role::kTimestamp), col("id", Role::kId),
                             col("skipme", Role::kIgnore), col("user", Role::kId)});
  ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  const Chunk& c = r.chunks[0];
  ASSERT_EQ(c.rows, 2);
  ASSERT_EQ(c.columns.size(), 7u);
  EXPECT_EQ(c.first_row, 0);
  EXPECT_EQ(c.first_line, 1);
  EXPECT_TRUE(c.row_index.empty());
  EXPECT_TRUE(c.split.empty());

  const Column& label = c.columns[0];
  EXPECT_EQ(label.name, "label");
  EXPECT_EQ(label.role, Role::kLabel);
  EXPECT_EQ(label.kind, ColumnKind::kFloat);
  EXPECT_EQ(label.f, (std::vector<float>{1, 0}));

  const Column& dense = c.columns[1];
  EXPECT_EQ(dense.f[0], 2.5f);
  EXPECT_TRUE(std::isnan(dense.f[1]));

  const Column& cat = c.columns[2];
  EXPECT_EQ(cat.kind, ColumnKind::kInt);
  EXPECT_EQ(cat.cardinality, 0);
  EXPECT_EQ(cat.i[0], categorical_key("abc"));
  EXPECT_EQ(cat.valid, (std::vector<uint8_t>{1, 0}));

  const Column& tags = c.columns[3];
  EXPECT_EQ(tags.kind, ColumnKind::kList);
  EXPECT_EQ(tags.role, Role::kMulti);
  EXPECT_EQ(tags.offsets, (std::vector<int64_t>{0, 3, 3}));
  EXPECT_EQ(tags.i, (std::vector<int64_t>{categorical_key("x"), categorical_key("y"),
                                          categorical_key("z")}));
  EXPECT_TRUE(tags.is_missing(1));

  const Column& ts = c.columns[4];
  EXPECT_EQ(ts.i[0], 1700000000);
  EXPECT_EQ(ts.valid, (std::vector<uint8_t>{1, 0}));

  const Column& id = c.columns[5];
  EXPECT_EQ(id.i[0], 123);
  EXPECT_EQ(id.valid, (std::vector<uint8_t>{1, 0}));

  EXPECT_EQ(c.columns[6].name, "user");
  EXPECT_EQ(c.columns[6].i[0], static_cast<int64_t>(hash_string("u17")));
  EXPECT_EQ(c.columns[6].valid, (std::vector<uint8_t>{1, 0}));
}

// The reader computes keys with XXH3 compiled into it: categorical and list values must get
// categorical_key and id values hash_string (both over the shared library's XXH3) at every length class of
// XXH3 (1-3, 4-8, 9-16, 17-128, 129-240, longer), the exact 8-byte keys included.
TEST(TextReader, KeysEqualCategoricalKeyAndIdsHashStringAtEveryLength) {
  TempDir dir;
  std::string text;
  std::vector<std::string> values;
  for (int len = 1; len <= 300; ++len) {
    std::string v;
    for (int k = 0; k < len; ++k) v += static_cast<char>('a' + (len * 7 + k * 13) % 26);
    values.push_back(v);
    text += v + "\t" + v + "|" + v + "\t" + v + "\n";
  }
  write_text(dir / "a.tsv", text);
  auto schema = make_schema({col("C1", Role::kCategorical), col("tags", Role::kMulti), col("user", Role::kId)});
  ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
  std::size_t row = 0;
  for (const Chunk& c : r.chunks)
    for (int64_t j = 0; j < c.rows; ++j, ++row) {
      const int64_t want = categorical_key(values[row]);
      ASSERT_EQ(c.columns[0].i[j], want) << values[row].size();
      ASSERT_EQ(c.columns[1].i[c.columns[1].offsets[j]], want) << values[row].size();
      ASSERT_EQ(c.columns[2].i[j], static_cast<int64_t>(hash_string(values[row]))) << values[row].size();
    }
  EXPECT_EQ(row, values.size());
}

TEST(TextReader, SequenceColumnsKeepOrderWithCustomSeparator) {
  TempDir dir;
  write_text(dir / "a.csv", "1,b;a;b\n0,c\n");
  auto schema = make_schema({col("label", Role::kLabel), col("hist", Role::kSequence, ';')}, "csv");
  ReadResult r = read_all({(dir / "a.csv").string()}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  const Column& h = r.chunks[0].columns[1];
  auto hs = [](const char* s) { return categorical_key(s); };
  EXPECT_EQ(h.offsets, (std::vector<int64_t>{0, 3, 4}));
  EXPECT_EQ(h.i, (std::vector<int64_t>{hs("b"), hs("a"), hs("b"), hs("c")}));
}

TEST(TextReader, CrlfLineEndingsAreStripped) {
  TempDir dir;
  write_text(dir / "crlf.tsv", "1\t5\tab\r\n0\t\t\r\n\r\n1\t7\tcd\r\n");
  write_text(dir / "lf.tsv", "1\t5\tab\n0\t\t\n\n1\t7\tcd\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)});
  ReadResult crlf = read_all({(dir / "crlf.tsv").string()}, schema);
  ReadResult lf = read_all({(dir / "lf.tsv").string()}, schema);
  ASSERT_EQ(lf.flat.rows.size(), 3u);
  expect_same_rows(crlf.flat, lf.flat);
  auto csv = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)}, "csv");
  write_text(dir / "crlf.csv", "1,5,\"ab\"\r\n0,,\r\n\r\n1,7,cd\r\n");
  expect_same_rows(read_all({(dir / "crlf.csv").string()}, csv).flat, lf.flat);
}

// Chunks are cut at record ends counted in whole blocks when no line is blank, record by record
// otherwise: rows and line numbers must agree either way, at every chunk size, with or without a final
// line break, with a blank (or lone '\r') unterminated last line.
TEST(TextReader, ChunkCutsAgreeWithAndWithoutBlankLines) {
  TempDir dir;
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical)});
  struct Case {
    std::string text;
    std::vector<std::string> values;  // C1 of each row, in order
  };
  const std::vector<Case> cases = {
      {"1\ta\n0\tbb\n1\tccc", {"a", "bb", "ccc"}},
      {"1\ta\n0\tbb\n1\tccc\n", {"a", "bb", "ccc"}},
      {"1\ta\n0\tbb\n\r", {"a", "bb"}},
      {"\n1\ta\n\n0\tbb\n\r\n1\tccc\n\n", {"a", "bb", "ccc"}},
      {"1\ta\r\n0\tbb\r\n1\tccc\r\n", {"a", "bb", "ccc"}},
  };
  for (const Case& c : cases)
    for (std::size_t chunk : {std::size_t{4}, std::size_t{7}, std::size_t{16}, std::size_t{1} << 20}) {
      write_text(dir / "a.tsv", c.text);
      schema.format.chunk_bytes = chunk;
      ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
      std::vector<int64_t> want;
      for (const auto& v : c.values) want.push_back(categorical_key(v));
      std::vector<int64_t> got;
      for (const Chunk& ch : r.chunks)
        for (int64_t j = 0; j < ch.rows; ++j) got.push_back(ch.columns[1].i[j]);
      EXPECT_EQ(got, want) << "chunk " << chunk << " text '" << c.text << "'";
    }
  // A bad row after blank lines is reported at its own line.
  write_text(dir / "bad.tsv", "1\ta\n\n\r\n0\tb\nx\tc\n");
  schema.format.chunk_bytes = 1 << 20;
  EXPECT_EQ(error_of<InputError>({(dir / "bad.tsv").string()}, schema),
            (dir / "bad.tsv").string() + ":5: column 'label' (field 1 of 2): expected a number, got 'x'");
}

TEST(TextReader, EmptyFilesYieldNoChunks) {
  TempDir dir;
  write_text(dir / "empty.tsv", "");
  write_text(dir / "blank.tsv", "\n\r\n\n");
  write_text(dir / "empty.gz", gzip_bytes(""));
  write_text(dir / "header_only.tsv", "label\tI1\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  for (const char* f : {"empty.tsv", "blank.tsv", "empty.gz"}) {
    ReadResult r = read_all({(dir / f).string()}, schema);
    EXPECT_TRUE(r.texts.empty()) << f;
  }
  schema.format.header = true;
  for (const char* f : {"empty.tsv", "header_only.tsv"}) {
    ReadResult r = read_all({(dir / f).string()}, schema);
    EXPECT_TRUE(r.texts.empty()) << f;
  }
}

TEST(TextReader, FinalLineWithoutNewlineIsARecord) {
  TempDir dir;
  write_text(dir / "a.tsv", "1\t2\n0\t3");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].rows, 2);
  EXPECT_EQ(r.chunks[0].columns[1].f, (std::vector<float>{2, 3}));
  EXPECT_EQ(r.texts[0].text.back(), '\n');
}

TEST(TextReader, BlankLinesAreSkippedButCountInLineNumbers) {
  TempDir dir;
  write_text(dir / "a.tsv", "\n1\t2\n\n\n0\t3\n\n1\tzz\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  EXPECT_EQ(error_of<InputError>({(dir / "a.tsv").string()}, schema),
            (dir / "a.tsv").string() + ":7: column 'I1' (field 2 of 2): expected a number, got 'zz'");
  schema.format.on_bad_rows = "skip";
  ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  EXPECT_EQ(r.chunks[0].rows, 2);
  EXPECT_EQ(r.chunks[0].first_line, 2);
  EXPECT_EQ(r.texts[0].records, 3);
}

TEST(TextReader, HeaderColumnsMayComeInAnyOrderAndMapToSchemaOrder) {
  TempDir dir;
  write_text(dir / "a.csv", "C1,extra,label,I1\nabc,zz,1,4\n");
  write_text(dir / "b.csv", "label,I1,C1\n0,5,def\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("extra", Role::kIgnore)},
                            "csv", true);
  ReadResult r = read_all({(dir / "a.csv").string(), (dir / "b.csv").string()}, schema);
  ASSERT_EQ(r.flat.rows.size(), 2u);
  EXPECT_EQ(r.flat.rows[0], "label=1;I1=4;C1=" + std::to_string(categorical_key("abc")) + ";");
  EXPECT_EQ(r.flat.rows[1], "label=0;I1=5;C1=" + std::to_string(categorical_key("def")) + ";");
  EXPECT_EQ(r.chunks[0].first_line, 2);
  EXPECT_EQ(r.chunks[1].first_line, 2);
  EXPECT_EQ(r.chunks[1].file_index, 1);
}

TEST(TextReader, WithoutHeaderTheFirstLineIsData) {
  TempDir dir;
  write_text(dir / "a.tsv", "1\t4\n0\t5\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  ReadResult r = read_all({(dir / "a.tsv").string()}, schema);
  EXPECT_EQ(r.flat.rows.size(), 2u);
  schema.format.header = true;
  schema.columns = {col("1", Role::kLabel), col("4", Role::kDense)};
  r = read_all({(dir / "a.tsv").string()}, schema);
  ASSERT_EQ(r.flat.rows.size(), 1u);
  EXPECT_EQ(r.flat.rows[0], "1=0;4=5;");
}

// ---------------------------------------------------------------------------------------------------
// Bad input

TEST(TextReader, WrongFieldCountNamesFileLineAndCounts) {
  TempDir dir;
  std::string path = (dir / "day_0.tsv").string();
  write_text(path, "1\t2\tab\n0\t3\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)});
  EXPECT_EQ(error_of<InputError>({path}, schema), path + ":2: expected 3 fields, got 2");
  write_text(path, "1\t2\tab\t\n");
  EXPECT_EQ(error_of<InputError>({path}, schema), path + ":1: expected 3 fields, got 4");
}

TEST(TextReader, NonNumericDenseFieldNamesColumnFieldAndValue) {
  TempDir dir;
  std::string path = (dir / "day_0.tsv").string();
  write_text(path, "1\t2\tab\n0\tzz\tcd\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)});
  EXPECT_EQ(error_of<InputError>({path}, schema), path + ":2: column 'I1' (field 2 of 3): expected a number, got 'zz'");
  write_text(path, "nan\t2\tab\n");
  EXPECT_EQ(error_of<InputError>({path}, schema),
            path + ":1: column 'label' (field 1 of 3): expected a number, got 'nan'");
}

TEST(TextReader, NonNumericTimestampIsAnErrorButNonNumericIdIsHashed) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  write_text(path, "u1\t12x\n");
  auto schema = make_schema({col("id", Role::kId), col("ts", Role::kTimestamp)});
  EXPECT_EQ(error_of<InputError>({path}, schema), path + ":1: column 'ts' (field 2 of 2): expected an integer, got '12x'");
}

TEST(TextReader, UnreadablePathThrowsIoErrorNamingIt) {
  TempDir dir;
  auto schema = make_schema({col("label", Role::kLabel)});
  std::string missing = (dir / "nope.tsv").string();
  try {
    TextReader reader({missing}, schema);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  // A directory is not a readable file either.
  try {
    TextReader reader({dir.path().string()}, schema);
    FAIL() << "no error";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(dir.path().string()), std::string::npos) << e.what();
  }
}

TEST(TextReader, HeaderMissingSchemaColumnThrowsNamingFileAndColumn) {
  TempDir dir;
  std::string path = (dir / "a.csv").string();
  write_text(path, "label,I1\n1,2\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("unused", Role::kIgnore)},
                            "csv", true);
  try {
    TextReader reader({path}, schema);
    FAIL() << "no error";
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("header has no column 'C1'"), std::string::npos) << m;
  }
}

TEST(TextReader, HeaderWithColumnOutsideSchemaThrowsNamingIt) {
  TempDir dir;
  std::string path = (dir / "a.csv").string();
  write_text(path, "label,I1,surprise\n1,2,3\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)}, "csv", true);
  try {
    TextReader reader({path}, schema);
    FAIL() << "no error";
  } catch (const InputError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("header column 'surprise' (field 3 of 3) is not in the schema"), std::string::npos) << m;
  }
  write_text(path, "label,I1,label\n");
  EXPECT_NE(error_of<InputError>({path}, schema).find("names column 'label' twice"), std::string::npos);
}

TEST(TextReader, SkipModeDropsBadRowsCountsThemAndKeepsGlobalRowNumbers) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  write_text(path, "1\t1\n0\tbad\n1\t3\n0\n1\t5\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  schema.format.on_bad_rows = "skip";
  ReadResult r = read_all({path}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  const Chunk& c = r.chunks[0];
  EXPECT_EQ(c.rows, 3);
  EXPECT_EQ(c.columns[1].f, (std::vector<float>{1, 3, 5}));
  EXPECT_EQ(c.row_index, (std::vector<int64_t>{0, 2, 4}));
  EXPECT_EQ(r.stats.skipped, 2);
  EXPECT_EQ(r.stats.first_error, path + ":2: column 'I1' (field 2 of 2): expected a number, got 'bad'");
  EXPECT_EQ(r.stats.first_error_row, 1);
  // Merging per-thread stats keeps the earliest bad row whatever the order.
  BadRowStats later{3, "later", 7}, none;
  BadRowStats total;
  total.add(later);
  total.add(none);
  total.add(r.stats);
  EXPECT_EQ(total.skipped, 5);
  EXPECT_EQ(total.first_error, r.stats.first_error);
  EXPECT_EQ(total.first_error_row, 1);
}

TEST(TextReader, SkipModeRollsBackListValuesOfDroppedRows) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  write_text(path, "a|b\t1\nc|d\tx\ne\t2\n");
  auto schema = make_schema({col("tags", Role::kMulti), col("I1", Role::kDense)});
  schema.format.on_bad_rows = "skip";
  ReadResult r = read_all({path}, schema);
  const Column& tags = r.chunks.at(0).columns[0];
  EXPECT_EQ(tags.offsets, (std::vector<int64_t>{0, 2, 3}));
  EXPECT_EQ(tags.i.back(), categorical_key("e"));
}

// ---------------------------------------------------------------------------------------------------
// CSV quoting

TEST(TextReader, QuotedCsvFieldsKeepDelimitersQuotesAndNewlines) {
  TempDir dir;
  std::string path = (dir / "q.csv").string();
  write_text(path,
             "1,\"a,b\",x\n"
             "0,\"say \"\"hi\"\"\",y\n"
             "1,\"two\nlines\",\"\"\n"
             "0,plain\"quote,z\n"
             "1,ok,w\n");
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical), col("C2", Role::kCategorical)},
                            "csv");
  ReadResult r = read_all({path}, schema);
  ASSERT_EQ(r.chunks.size(), 1u);
  const Column& c1 = r.chunks[0].columns[1];
  ASSERT_EQ(r.chunks[0].rows, 5);
  auto h = [](std::string_view s) { return categorical_key(s); };
  EXPECT_EQ(c1.i, (std::vector<int64_t>{h("a,b"), h("say \"hi\""), h("two\nlines"), h("plain\"quote"), h("ok")}));
  EXPECT_EQ(r.chunks[0].columns[2].valid, (std::vector<uint8_t>{1, 1, 0, 1, 1}));

  // A bad row after the quoted newline reports its true line (6, not 5).
  write_text(path, "1,\"a,b\",x\n0,\"say \"\"hi\"\"\",y\n1,\"two\nlines\",\"\"\n0,ok,w\nbad,ok,w\n");
  EXPECT_EQ(error_of<InputError>({path}, schema), path + ":6: column 'label' (field 1 of 3): expected a number, got 'bad'");
}

TEST(TextReader, CsvTextAfterClosingQuoteAndUnterminatedQuoteAreErrors) {
  TempDir dir;
  std::string path = (dir / "q.csv").string();
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical)}, "csv");
  write_text(path, "1,\"ab\"c\n");
  EXPECT_EQ(error_of<InputError>({path}, schema),
            path + ":1: column 'C1' (field 2 of 2): expected a delimiter after the closing quote, got 'c'");
  write_text(path, "1,ok\n0,\"never\nclosed\n");
  EXPECT_EQ(error_of<InputError>({path}, schema),
            path + ":2: column 'C1' (field 2 of 2): quoted field is not closed before the end of the file");
}

// ---------------------------------------------------------------------------------------------------
// Compression

TEST(TextReader, GzipAndZstdInputsGiveTheSameChunksAsPlainText) {
  TempDir dir;
  std::string text;
  for (int k = 0; k < 3000; ++k) text += std::to_string(k % 2) + "\t" + std::to_string(k) + "\tv" + std::to_string(k % 97) + "\n";
  write_text(dir / "a.tsv", text);
  write_text(dir / "a.tsv.gz", gzip_bytes(text));
  write_text(dir / "a.tsv.zst", zstd_bytes(text));
  // Multi-member gzip and multi-frame zstd: what pigz, bgzip and `cat a.gz b.gz` produce.
  std::size_t half = text.find('\n', text.size() / 2) + 1;
  write_text(dir / "multi.gz", gzip_bytes(text.substr(0, half)) + gzip_bytes(text.substr(half)));
  write_text(dir / "multi.zst", zstd_bytes(text.substr(0, half)) + zstd_bytes(text.substr(half)));
  write_text(dir / "noext", gzip_bytes(text));
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)});
  schema.format.chunk_bytes = 4096;
  ReadResult plain = read_all({(dir / "a.tsv").string()}, schema);
  ASSERT_EQ(plain.flat.rows.size(), 3000u);
  for (const char* f : {"a.tsv.gz", "a.tsv.zst", "multi.gz", "multi.zst", "noext"}) {
    SCOPED_TRACE(f);
    ReadResult r = read_all({(dir / f).string()}, schema);
    expect_same_rows(r.flat, plain.flat);
    ASSERT_EQ(r.texts.size(), plain.texts.size());
    int64_t raw = 0;
    for (std::size_t k = 0; k < r.texts.size(); ++k) {
      EXPECT_EQ(r.texts[k].text, plain.texts[k].text);
      EXPECT_EQ(r.texts[k].first_line, plain.texts[k].first_line);
      raw += r.texts[k].raw_bytes;
    }
    EXPECT_EQ(raw, bluewhale::file_size(dir / f));
    EXPECT_EQ(TextReader({(dir / f).string()}, schema).total_bytes(), bluewhale::file_size(dir / f));
  }
  // Forcing the compression works too.
  schema.format.compression = "zstd";
  expect_same_rows(read_all({(dir / "a.tsv.zst").string()}, schema).flat, plain.flat);
}

TEST(TextReader, TruncatedGzipThrowsNamingTheFile) {
  TempDir dir;
  std::string text;
  for (int k = 0; k < 2000; ++k) text += "1\t" + std::to_string(k) + "\n";
  std::string gz = gzip_bytes(text);
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  std::string path = (dir / "cut.gz").string();
  for (std::size_t keep : {gz.size() / 2, gz.size() - 4}) {
    write_text(path, gz.substr(0, keep));
    EXPECT_EQ(error_of<InputError>({path}, schema).rfind(path + ": truncated gzip stream", 0), 0u) << keep;
  }
  std::string corrupt = gz;
  for (std::size_t k = 20; k < 60; ++k) corrupt[k] = static_cast<char>(corrupt[k] ^ 0x5a);
  write_text(path, corrupt);
  EXPECT_EQ(error_of<InputError>({path}, schema).rfind(path + ": corrupt gzip stream", 0), 0u);
}

TEST(TextReader, TruncatedZstdThrowsNamingTheFile) {
  TempDir dir;
  std::string text;
  for (int k = 0; k < 2000; ++k) text += "1\t" + std::to_string(k) + "\n";
  std::string zst = zstd_bytes(text);
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  std::string path = (dir / "cut.zst").string();
  for (std::size_t keep : {zst.size() / 2, zst.size() - 1}) {
    write_text(path, zst.substr(0, keep));
    EXPECT_EQ(error_of<InputError>({path}, schema).rfind(path + ": truncated zstd stream", 0), 0u) << keep;
  }
}

TEST(TextReader, ChunksBeforeADecompressionErrorAreDeliveredFirst) {
  TempDir dir;
  std::string text;
  for (int k = 0; k < 20000; ++k) text += "1\t" + std::to_string(k) + "\n";
  std::string gz = gzip_bytes(text);
  std::string path = (dir / "cut.gz").string();
  write_text(path, gz.substr(0, gz.size() * 3 / 4));
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  schema.format.chunk_bytes = 1024;
  TextReader reader({path}, schema);
  TextChunk t;
  int chunks = 0;
  try {
    while (reader.next(t)) ++chunks;
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos);
  }
  EXPECT_GT(chunks, 10);
  EXPECT_THROW(reader.next(t), InputError);
}

// ---------------------------------------------------------------------------------------------------
// Chunking and numbering

TEST(TextReader, TinyChunksGiveIdenticalRowsAndLineNumbers) {
  TempDir dir;
  std::string path = (dir / "q.csv").string();
  std::string text = "label,C1,tags\r\n\r\n";
  std::vector<int64_t> record_line;  // where each record starts, counted while writing
  int64_t line = 3;
  for (int k = 0; k < 300; ++k) {
    record_line.push_back(line);
    text += std::to_string(k % 2) + ",";
    if (k % 7 == 0) text += "\"multi\nline \"\"" + std::to_string(k) + "\"\"\"";
    else if (k % 5 == 0) text += "\"a,b" + std::to_string(k) + "\"";
    else text += "v" + std::to_string(k);
    text += "," + std::string(k % 3 ? "x|y" : "") + (k % 11 == 0 ? "\r\n" : "\n");
    line += k % 7 == 0 ? 2 : 1;
    if (k % 13 == 0) {
      text += "\n";
      ++line;
    }
  }
  record_line.push_back(line);
  text += "9,last,z";  // no final newline
  write_text(path, text);
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical), col("tags", Role::kMulti)},
                            "csv", true);
  schema.format.chunk_bytes = 1 << 20;
  ReadResult whole = read_all({path}, schema);
  ASSERT_EQ(whole.chunks.size(), 1u);
  ASSERT_EQ(whole.flat.rows.size(), 301u);
  EXPECT_EQ(whole.chunks[0].first_line, 3);
  for (int64_t cb : {1, 2, 3, 5, 17, 64, 100, 333}) {
    SCOPED_TRACE(cb);
    schema.format.chunk_bytes = cb;
    ReadResult r = read_all({path}, schema, 1);
    EXPECT_GT(r.chunks.size(), 10u);
    expect_same_rows(r.flat, whole.flat);
    for (const Chunk& c : r.chunks) EXPECT_EQ(c.first_line, record_line.at(c.first_row)) << "row " << c.first_row;
  }
}

// The streaming loop the prep driver runs: one TextChunk passed to next() again and again (its text is
// taken back and its memory reused for later chunks) and one Chunk parsed into again and again (its
// arrays are not cleared first). Rows must equal those of fresh objects per chunk, at any chunk size.
TEST(TextReader, ReusedTextAndChunkObjectsGiveTheSameRows) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  std::string text;
  for (int k = 0; k < 3000; ++k) {
    text += std::to_string(k % 2) + "\t" + (k % 7 ? std::to_string(k * 3) : "") + "\t" +
            (k % 5 ? "c" + std::to_string(k % 97) : "") + "\t" + (k % 3 ? "x|y" : "") + "\n";
    if (k % 400 == 0) text += std::string(3000, 'z') + "\t1\tlong\t\n";  // one long record now and then
  }
  write_text(path, text);
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("tags", Role::kMulti)});
  schema.format.on_bad_rows = "skip";  // the long records are bad rows: skipped rows exercise reuse too
  for (int64_t cb : {int64_t{256}, int64_t{4096}, int64_t{16384}}) {
    SCOPED_TRACE(cb);
    schema.format.chunk_bytes = cb;
    ReadResult fresh = read_all({path}, schema, 2);
    TextReader reader({path}, schema, 2);
    TextChunk t;
    Chunk c;
    Flat reused;
    BadRowStats stats;
    while (reader.next(t)) {
      reader.parse(t, c, stats);
      flatten_into(c, reused);
    }
    expect_same_rows(reused, fresh.flat);
    EXPECT_EQ(stats.skipped, fresh.stats.skipped);
    EXPECT_GT(fresh.chunks.size(), 3u);
  }
}

TEST(TextReader, LineNumbersStayRightAcrossTinyChunks) {
  TempDir dir;
  std::string path = (dir / "a.csv").string();
  std::string text = "x,y\n";
  for (int k = 0; k < 50; ++k) text += "\"q\n\",1\n\n";
  text += "\"q\n\",bad\n";
  write_text(path, text);
  auto schema = make_schema({col("x", Role::kCategorical), col("y", Role::kDense)}, "csv", true);
  for (int64_t cb : {1, 7, 1000}) {
    schema.format.chunk_bytes = cb;
    // 1 header line, 50 records of 3 lines each, then the bad record starting on line 152.
    EXPECT_EQ(error_of<InputError>({path}, schema),
              path + ":152: column 'y' (field 2 of 2): expected a number, got 'bad'") << cb;
  }
}

TEST(TextReader, FirstRowNumbersContinueAcrossFiles) {
  TempDir dir;
  write_text(dir / "a.tsv", "label\tI1\n1\t1\n\n0\t2\n");
  write_text(dir / "b.tsv", "\nI1\tlabel\n3\t1\n4\t0\n5\t1\n");
  write_text(dir / "c.tsv", "label\tI1\n");
  write_text(dir / "d.tsv", "label\tI1\n1\t6\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)}, "tsv", true);
  std::vector<std::string> files;
  for (const char* f : {"a.tsv", "b.tsv", "c.tsv", "d.tsv"}) files.push_back((dir / f).string());
  ReadResult r = read_all(files, schema);
  ASSERT_EQ(r.chunks.size(), 3u);
  EXPECT_EQ(r.chunks[0].first_row, 0);
  EXPECT_EQ(r.chunks[1].first_row, 2);
  EXPECT_EQ(r.chunks[1].file_index, 1);
  EXPECT_EQ(r.chunks[1].first_line, 3);
  EXPECT_EQ(r.chunks[2].first_row, 5);
  EXPECT_EQ(r.chunks[2].file_index, 3);
  EXPECT_EQ(r.flat.global_rows, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  std::vector<float> i1;
  for (const auto& c : r.chunks) i1.insert(i1.end(), c.columns[1].f.begin(), c.columns[1].f.end());
  EXPECT_EQ(i1, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(TextReader, RecordLongerThanTheChunkGrowsTheChunk) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  std::string big(100000, 'x');
  write_text(path, "1\ta\n0\t" + big + "\n1\tb\n");
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical)});
  schema.format.chunk_bytes = 16;
  ReadResult r = read_all({path}, schema);
  ASSERT_EQ(r.flat.rows.size(), 3u);
  EXPECT_EQ(r.chunks[1].columns[1].i[0], categorical_key(big));
}

TEST(TextReader, ParseReusesChunksAndIsSafeFromManyThreads) {
  TempDir dir;
  std::string path = (dir / "a.tsv").string();
  std::string text;
  for (int k = 0; k < 20000; ++k) text += std::to_string(k % 2) + "\t" + std::to_string(k) + "\tc" + std::to_string(k) + "\ta|b\n";
  write_text(path, text);
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("t", Role::kMulti)});
  schema.format.chunk_bytes = 10000;
  ReadResult serial = read_all({path}, schema);
  TextReader reader({path}, schema);
  std::vector<TextChunk> texts;
  TextChunk t;
  while (reader.next(t)) texts.push_back(std::move(t));
  std::vector<Chunk> chunks(texts.size());
  std::vector<BadRowStats> stats(4);
  parallel_for_dynamic(static_cast<int64_t>(texts.size()), 4, [&](int64_t k, int tid) {
    // Parse twice into the same Chunk: the second parse must not see leftovers of the first.
    reader.parse(texts[(k + 1) % texts.size()], chunks[k], stats[tid]);
    reader.parse(texts[k], chunks[k], stats[tid]);
  });
  Flat flat;
  for (const auto& c : chunks) flatten_into(c, flat);
  expect_same_rows(flat, serial.flat);
}

// Plain files are cut by the threads that call next() (into the memory of the text each one parsed
// last), compressed ones on the background thread: either way, several threads that each reuse their
// own TextChunk get between them exactly the chunks one thread gets, across files, headers, blank lines
// and records longer than a chunk.
TEST(TextReader, NextFromSeveralThreadsCutsTheChunksOneThreadCuts) {
  TempDir dir;
  std::mt19937_64 rng(5);
  std::vector<std::string> plain, gz;
  for (int f = 0; f < 4; ++f) {
    std::string text = "label\tC1\n";
    for (int k = 0; k < 400 * (f + 1); ++k) {
      if (rng() % 50 == 0) text += "\n";
      text += std::to_string(k % 2) + "\t" + std::string(1 + rng() % (rng() % 40 == 0 ? 3000 : 30), 'a' + f) + "\n";
    }
    const std::string name = "f" + std::to_string(f) + ".tsv";
    write_text(dir / name, text);
    write_text(dir / (name + ".gz"), gzip_bytes(text));
    plain.push_back((dir / name).string());
    gz.push_back((dir / (name + ".gz")).string());
  }
  write_text(dir / "empty.tsv", "label\tC1\n");
  plain.insert(plain.begin() + 2, (dir / "empty.tsv").string());
  gz.insert(gz.begin() + 2, (dir / "empty.tsv").string());
  auto schema = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical)}, "tsv", true);
  schema.format.chunk_bytes = 2000;
  for (const auto* files : {&plain, &gz}) {
    const ReadResult one = read_all(*files, schema);
    ASSERT_GT(one.texts.size(), 20u);
    for (int threads : {2, 3}) {
      TextReader reader(*files, schema, 2);
      std::mutex mu;
      std::vector<TextChunk> got;
      std::vector<std::thread> ts;
      for (int w = 0; w < threads; ++w)
        ts.emplace_back([&] {
          TextChunk t;  // reused, as prep's workers do: next() reads into its memory
          while (reader.next(t)) {
            TextChunk copy;
            copy.text.assign(t.text.view());
            copy.file_index = t.file_index;
            copy.first_line = t.first_line;
            copy.first_row = t.first_row;
            copy.records = t.records;
            std::lock_guard<std::mutex> lk(mu);
            got.push_back(std::move(copy));
          }
        });
      for (auto& t : ts) t.join();
      std::sort(got.begin(), got.end(), [](const TextChunk& a, const TextChunk& b) {
        return std::tie(a.file_index, a.first_line) < std::tie(b.file_index, b.first_line);
      });
      ASSERT_EQ(got.size(), one.texts.size()) << threads;
      for (std::size_t k = 0; k < got.size(); ++k) {
        ASSERT_EQ(got[k].text, one.texts[k].text) << "chunk " << k;
        EXPECT_EQ(got[k].file_index, one.texts[k].file_index) << "chunk " << k;
        EXPECT_EQ(got[k].first_line, one.texts[k].first_line) << "chunk " << k;
        EXPECT_EQ(got[k].first_row, one.texts[k].first_row) << "chunk " << k;
        EXPECT_EQ(got[k].records, one.texts[k].records) << "chunk " << k;
      }
    }
  }
}

TEST(TextReader, DestroyingTheReaderEarlyStopsTheBackgroundThread) {
  // Compressed input: plain files have no background thread (next() reads them).
  TempDir dir;
  std::string path = (dir / "a.tsv.gz").string();
  std::string text;
  for (int k = 0; k < 50000; ++k) text += "1\t" + std::to_string(k) + "\n";
  write_text(path, gzip_bytes(text));
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense)});
  schema.format.chunk_bytes = 256;
  TextReader reader({path}, schema, 1);
  TextChunk t;
  ASSERT_TRUE(reader.next(t));
  // The destructor runs here while the producer waits on a full queue; the test hangs if it does not stop.
}

TEST(TextReader, InconsistentSchemaIsAConfigError) {
  TempDir dir;
  write_text(dir / "a.tsv", "1\n");
  auto schema = make_schema({col("label", Role::kLabel)});
  schema.format.compression = "lz4";
  EXPECT_THROW(TextReader({(dir / "a.tsv").string()}, schema), ConfigError);
  schema = make_schema({});
  EXPECT_THROW(TextReader({(dir / "a.tsv").string()}, schema), ConfigError);
  schema = make_schema({col("a", Role::kLabel), col("a", Role::kDense)});
  EXPECT_THROW(TextReader({(dir / "a.tsv").string()}, schema), ConfigError);
}

// ---------------------------------------------------------------------------------------------------
// The fast path (parse_chunk_fast) against the general loop, its plain reference

// Everything parse() produces over a whole read, or the error it threw.
struct Outcome {
  Flat flat;
  std::vector<int64_t> first_lines, rows, row_index;
  BadRowStats stats;
  std::string error;
  int64_t chunks = 0, fast_chunks = 0;
};

Outcome parse_outcome(const std::vector<std::string>& files, const InputSchema& schema, bool fast) {
  Outcome o;
  try {
    TextReader reader(files, schema, 2);
    reader.set_fast_path(fast);
    TextChunk t;
    Chunk c;  // reused across chunks, as the pipeline does
    while (reader.next(t)) {
      ++o.chunks;
      reader.parse(t, c, o.stats);
      flatten_into(c, o.flat);
      o.first_lines.push_back(c.first_line);
      o.rows.push_back(c.rows);
      o.row_index.insert(o.row_index.end(), c.row_index.begin(), c.row_index.end());
      EXPECT_TRUE(c.split.empty());
    }
    o.fast_chunks = reader.fast_path_chunks();
  } catch (const InputError& e) {
    o.error = e.what();
  }
  return o;
}

// Requires identical outcomes with and without the fast path; returns the chunks it took.
int64_t expect_same_outcome(const std::vector<std::string>& files, const InputSchema& schema, const std::string& what) {
  SCOPED_TRACE(what);
  const Outcome ref = parse_outcome(files, schema, false);
  const Outcome got = parse_outcome(files, schema, true);
  EXPECT_EQ(ref.fast_chunks, 0);
  EXPECT_EQ(got.error, ref.error);
  expect_same_rows(got.flat, ref.flat);
  EXPECT_EQ(got.first_lines, ref.first_lines);
  EXPECT_EQ(got.rows, ref.rows);
  EXPECT_EQ(got.row_index, ref.row_index);
  EXPECT_EQ(got.stats.skipped, ref.stats.skipped);
  EXPECT_EQ(got.stats.first_error, ref.stats.first_error);
  EXPECT_EQ(got.stats.first_error_row, ref.stats.first_error_row);
  return got.fast_chunks;
}

// Random text in a given layout where each field and record may be unusual with probability `odd`.
std::string random_text(std::mt19937_64& rng, const std::vector<InputColumn>& cols, char delim, int rows, double odd,
                        bool quotes) {
  std::uniform_real_distribution<double> u(0, 1);
  auto pick = [&](std::initializer_list<const char*> l) { return std::string(l.begin()[rng() % l.size()]); };
  auto digits = [&](int n) {
    std::string d;
    for (int k = 0; k < n; ++k) d += static_cast<char>('0' + rng() % 10);
    return d;
  };
  std::string text;
  for (int r = 0; r < rows; ++r) {
    std::string rec;
    int nf = static_cast<int>(cols.size());
    if (u(rng) < odd / 4) nf += rng() % 2 ? 1 : -1;  // wrong field count
    for (int f = 0; f < nf; ++f) {
      const Role role = cols[std::min<std::size_t>(f, cols.size() - 1)].role;
      std::string v;
      const bool unusual = u(rng) < odd;
      if (role == Role::kLabel || role == Role::kDense || role == Role::kTimestamp) {
        if (u(rng) < 0.3) v = "";
        else v = digits(1 + static_cast<int>(rng() % 5));
        if (unusual)
          v = pick({"-5", "+3", "1.5", "-0", "1e3", ".5", "123456789", "1234567890123", "00000001", "99999999", "abc",
                    " 1", "1 ", "nan", "inf", "-", "9x", "--1", "0x10", "1\r2"});
      } else if (role == Role::kId) {
        v = u(rng) < 0.2 ? "" : digits(1 + static_cast<int>(rng() % 12));
        if (unusual) v = pick({"u17", "-4", "99999999999999999999", "a b", "+"});
      } else {
        if (u(rng) < 0.3) {
          v = "";
        } else {
          char buf[16];
          std::snprintf(buf, sizeof buf, "%08x", static_cast<unsigned>(rng()));
          v = buf;
        }
        if (unusual) v = pick({"a", "abc", "1234567", "123456789", "x\ry", "a\"b", "\"q\"", "longer value here",
                               "'", "\xEF\xBB\xBF", "7"});
      }
      if (quotes && unusual && u(rng) < 0.3) v = "\"" + v + "\"";
      rec += v;
      if (f + 1 < nf) rec += delim;
    }
    const double e = u(rng);
    if (e < odd / 8) rec += "\r";  // CRLF
    text += rec + "\n";
    if (u(rng) < odd / 8) text += pick({"\n", "\r\n"});  // blank lines
  }
  if (!text.empty() && u(rng) < 0.5) text.pop_back();  // no final newline
  return text;
}

std::vector<std::vector<InputColumn>> fast_path_layouts() {
  return {criteo_columns(),
          {col("C1", Role::kCategorical)},
          {col("I1", Role::kDense)},
          {col("label", Role::kLabel), col("ts", Role::kTimestamp), col("drop", Role::kIgnore), col("id", Role::kId),
           col("C1", Role::kCategorical), col("I1", Role::kDense)},
          {col("C1", Role::kCategorical), col("C2", Role::kCategorical), col("I1", Role::kDense)}};
}

// Over random text with every kind of oddity (wrong field counts, CRLF, blank lines, signs, decimals, long
// numbers, junk, quotes, no final newline), in both bad-row modes, tsv and csv, several chunk sizes: the
// fast path gives exactly the general loop's rows, line numbers, skipped rows and error messages.
TEST(TextReaderFastPath, MatchesGeneralLoopOverRandomEdgeCases) {
  TempDir dir;
  std::mt19937_64 rng(2024);
  int64_t fast = 0;
  int cases = 0;
  const auto layouts = fast_path_layouts();
  for (std::size_t li = 0; li < layouts.size(); ++li)
    for (const char* fmt : {"tsv", "csv"})
      for (double odd : {0.0, 0.001, 0.02, 0.3})
        for (const char* mode : {"skip", "error"})
          for (int64_t chunk : {int64_t{300}, int64_t{4096}, int64_t{1} << 20}) {
            const bool csv = std::string(fmt) == "csv";
            const std::string path = (dir / ("f" + std::to_string(cases++) + "." + fmt)).string();
            write_text(path, random_text(rng, layouts[li], csv ? ',' : '\t', 1500, odd, csv));
            auto schema = make_schema(layouts[li], fmt);
            schema.format.on_bad_rows = mode;
            schema.format.chunk_bytes = chunk;
            fast += expect_same_outcome({path}, schema,
                                        str_cat("layout ", li, " ", fmt, " odd ", odd, " ", mode, " chunk ", chunk));
            if (::testing::Test::HasFailure()) return;
          }
  EXPECT_GT(fast, 100);  // the clean inputs went through the fast path
}

// Hand-picked shapes that a separator count alone would take for records: a short record followed by a
// blank line (its '\n' would end the record), CRLF, '\r' alone, quotes in tsv and csv, a BOM, a lone
// delimiter, trailing delimiters.
TEST(TextReaderFastPath, MatchesGeneralLoopOnShapesThatLookLikeRecords) {
  TempDir dir;
  const std::vector<std::string> texts = {
      "1\tab\t3\n0\tcd\n\n1\tef\t5\n",     // short record, then a blank line
      "1\tab\t3\n0\tcd\n\r\n1\tef\t5\n",   // short record, then a CRLF blank line
      "1\tab\n\n\n1\tef\t5\n",              // short record, blank lines
      "1\tab\t3\n0\tcd\t4\t\n1\tef\n",      // one long, one short
      "1\tab\t3\r\n0\tcd\t4\r\n",           // CRLF
      "1\tab\t3\r\n0\tcd\t\r\n",            // CRLF after an empty last field
      "1\ta\rb\t3\n",                       // '\r' inside a field
      "1\t\"ab\"\t3\n",                     // quotes are bytes in tsv
      "1,\"a,b\",3\n0,cd,4\n",              // a quoted delimiter in csv
      "1,a\"b,3\n",                         // a quote inside an unquoted csv field
      "\xEF\xBB\xBF" "1\tab\t3\n",          // byte order mark
      "\t\t\n",                             // all missing
      "1\tab\t3",                           // no final newline
      "1\tab\t3\t\n",                       // trailing delimiter
      "\n\n1\tab\t3\n\n",                   // blank lines around
      "1\tab\t12345678\n1\tab\t123456789\n1\tab\t-12345678\n1\tab\t1.5e2\n1\tab\t+1\n",
  };
  auto cols = std::vector<InputColumn>{col("label", Role::kLabel), col("C1", Role::kCategorical), col("I1", Role::kDense)};
  for (std::size_t k = 0; k < texts.size(); ++k)
    for (const char* mode : {"skip", "error"}) {
      const bool csv = texts[k].find(',') != std::string::npos;
      const std::string path = (dir / ("s" + std::to_string(k) + (csv ? ".csv" : ".tsv"))).string();
      write_text(path, texts[k]);
      auto schema = make_schema(cols, csv ? "csv" : "tsv");
      schema.format.on_bad_rows = mode;
      expect_same_outcome({path}, schema, str_cat("text ", k, " ", mode));
    }
}

// Clean Criteo-layout text takes the fast path for every chunk, with values at the edges of its word
// parsers (1-8 digits, 9+ digits, negatives, the last field of the text) and keys of every length.
TEST(TextReaderFastPath, CleanTextTakesItForEveryChunkWithIdenticalValues) {
  TempDir dir;
  std::string text;
  std::mt19937_64 rng(5);
  const char* dense[] = {"0", "1", "9", "10", "12345678", "99999999", "123456789", "4294967296", "-1", "-0", "+7",
                         "2.5", "1e3", "", "00000000", "16777217"};
  for (int r = 0; r < 4000; ++r) {
    std::string rec = std::to_string(r % 2);
    for (int k = 0; k < 13; ++k) rec += std::string("\t") + dense[(r + k * 5) % 16];
    for (int k = 0; k < 26; ++k) {
      const int len = (r + k) % 20;  // 0 = missing, 8 = Criteo's ids, others through XXH3's other paths
      std::string v;
      for (int j = 0; j < len; ++j) v += static_cast<char>('a' + rng() % 26);
      rec += "\t" + v;
    }
    text += rec + "\n";
  }
  write_text(dir / "a.tsv", text);
  auto schema = make_schema(criteo_columns());
  schema.format.chunk_bytes = 64 << 10;
  const Outcome got = parse_outcome({(dir / "a.tsv").string()}, schema, true);
  EXPECT_EQ(got.error, "");
  EXPECT_GT(got.chunks, 5);
  EXPECT_EQ(got.fast_chunks, got.chunks);
  expect_same_outcome({(dir / "a.tsv").string()}, schema, "clean");
  // And against the naive reference (strtof, categorical_key).
  expect_same_rows(got.flat, reference_parse((dir / "a.tsv").string(), '\t', false, criteo_columns(),
                                             names_of(criteo_columns())));

  // A dense last field within 8 bytes of the end of the text, and records longer than the fast path's
  // 16 KiB region.
  std::string tail = "1\t" + std::string(20000, 'k') + "\t12\n0\t\t7\n1\tab\t-3\n0\tcd\t123456789";
  write_text(dir / "b.tsv", tail);
  auto small = make_schema({col("label", Role::kLabel), col("C1", Role::kCategorical), col("I1", Role::kDense)});
  EXPECT_EQ(expect_same_outcome({(dir / "b.tsv").string()}, small, "tail"), 1);
}

// parse() of every chunk with skip_values(skip), or with a plan_skipping(skip) (by_plan), the skipped
// columns left out of the rows; each skipped column must still have one slot per row.
Flat parse_skipping(const std::vector<std::string>& files, const InputSchema& schema, bool fast,
                    const std::vector<std::string>& skip, bool by_plan = false) {
  TextReader reader(files, schema, 2);
  reader.set_fast_path(fast);
  std::shared_ptr<const TextReader::ParsePlan> plan;
  if (by_plan) plan = reader.plan_skipping(skip);
  else reader.skip_values(skip);
  TextChunk t;
  Chunk c;
  BadRowStats stats;
  Flat flat;
  while (reader.next(t)) {
    reader.parse(t, c, stats, plan.get());
    Chunk kept = c;
    kept.columns.clear();
    for (const Column& col : c.columns) {
      if (std::find(skip.begin(), skip.end(), col.name) == skip.end()) {
        kept.columns.push_back(col);
        continue;
      }
      const std::size_t slots = col.kind == ColumnKind::kFloat ? col.f.size() : col.i.size();
      EXPECT_EQ(slots, static_cast<std::size_t>(c.rows)) << col.name;
    }
    flatten_into(kept, flat);
  }
  return flat;
}

// Leaving columns unparsed changes nothing in the others, on both parse paths, over random text (error
// mode: any bad value or field count in the columns that are parsed still throws, so only clean text and
// text whose oddities are all in skipped columns are compared).
TEST(TextReader, SkippedValuesLeaveTheOtherColumnsAsTheyWere) {
  TempDir dir;
  std::mt19937_64 rng(77);
  std::vector<std::string> dense{"label"};
  for (int k = 1; k <= 13; ++k) dense.push_back("I" + std::to_string(k));
  for (int rep = 0; rep < 4; ++rep) {
    const std::string path = (dir / ("r" + std::to_string(rep) + ".tsv")).string();
    write_text(path, random_text(rng, criteo_columns(), '\t', 3000, 0.0, false));
    auto schema = make_schema(criteo_columns());
    schema.format.chunk_bytes = rep % 2 ? 8 << 10 : 1 << 20;
    Flat ref;
    {
      const Outcome all = parse_outcome({path}, schema, true);
      ASSERT_EQ(all.error, "");
      for (const std::string& row : all.flat.rows) {
        std::string kept;  // "name=value;" pairs of the C columns only
        std::size_t pos = 0;
        while (pos < row.size()) {
          const std::size_t end = row.find(';', pos) + 1;
          if (row[pos] == 'C') kept += row.substr(pos, end - pos);
          pos = end;
        }
        ref.rows.push_back(kept);
      }
      ref.global_rows = all.flat.global_rows;
    }
    for (bool fast : {false, true})
      for (bool by_plan : {false, true}) {
        SCOPED_TRACE(std::string(fast ? "fast path" : "general loop") + (by_plan ? ", plan_skipping" : ", skip_values"));
        expect_same_rows(parse_skipping({path}, schema, fast, dense, by_plan), ref);
      }
  }

  // A value that is not a number in a skipped column goes unnoticed; parsed, it is an error.
  const std::string bad = (dir / "bad.tsv").string();
  write_text(bad, "1\tzz\tab\n0\t3\tcd\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical)});
  for (bool fast : {false, true}) {
    const Flat got = parse_skipping({bad}, schema, fast, {"I1"});
    ASSERT_EQ(got.rows.size(), 2u);
    EXPECT_EQ(got.rows[0], "label=1;C1=" + std::to_string(categorical_key("ab")) + ";");
  }
  EXPECT_NE(error_of<InputError>({bad}, schema).find("column 'I1'"), std::string::npos);
}

// A plan made by plan_skipping adds its columns to what skip_values left out, for the parses given it
// only: the reader's own parse still converts them, and several plans coexist.
TEST(TextReader, PlansSkipForTheParsesGivenThemOnly) {
  TempDir dir;
  const std::string path = (dir / "a.tsv").string();
  write_text(path, "1\t5\tab\tcd\n0\t7\tef\tgh\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("C1", Role::kCategorical),
                             col("C2", Role::kCategorical)});
  for (bool fast : {false, true}) {
    TextReader reader({path}, schema, 2);
    reader.set_fast_path(fast);
    reader.skip_values({"I1"});
    const auto no_c1 = reader.plan_skipping({"C1"});
    const auto no_c2 = reader.plan_skipping({"C2", "label"});
    TextChunk t;
    ASSERT_TRUE(reader.next(t));
    BadRowStats stats;
    Chunk own, a, b;
    reader.parse(t, own, stats);
    reader.parse(t, a, stats, no_c1.get());
    reader.parse(t, b, stats, no_c2.get());
    for (const Chunk* c : {&own, &a, &b}) ASSERT_EQ(c->rows, 2);
    EXPECT_EQ(own.columns[2].i[1], categorical_key("ef"));
    EXPECT_EQ(own.columns[3].i[1], categorical_key("gh"));
    EXPECT_EQ(own.columns[0].f[1], 0.0f);
    EXPECT_EQ(a.columns[3].i[1], categorical_key("gh"));  // C2 converted, C1 not (not checked: unspecified)
    EXPECT_EQ(a.columns[0].f[0], 1.0f);
    EXPECT_EQ(b.columns[2].i[0], categorical_key("ab"));  // C1 converted; C2 and label not
  }
}

TEST(TextReader, SkippingValuesIsRefusedWhereItWouldChangeResults) {
  TempDir dir;
  const std::string path = (dir / "a.tsv").string();
  write_text(path, "1\t2\ta|b\tx\n");
  auto schema = make_schema({col("label", Role::kLabel), col("I1", Role::kDense), col("tags", Role::kMulti),
                             col("drop", Role::kIgnore)});
  // skip_values and plan_skipping refuse the same columns with the same messages.
  for (bool by_plan : {false, true}) {
    SCOPED_TRACE(by_plan ? "plan_skipping" : "skip_values");
    auto error = [&](const InputSchema& s, const std::string& name) -> std::string {
      TextReader reader({path}, s, 2);
      try {
        if (by_plan) reader.plan_skipping({name});
        else reader.skip_values({name});
      } catch (const ConfigError& e) {
        return e.what();
      }
      return "";
    };
    InputSchema strict = schema;
    EXPECT_EQ(error(strict, "I1"), "");
    EXPECT_NE(error(strict, "I9").find("no such schema column"), std::string::npos);
    EXPECT_NE(error(strict, "tags").find("only scalar columns"), std::string::npos);
    EXPECT_NE(error(strict, "drop").find("only scalar columns"), std::string::npos);
    InputSchema lenient = schema;
    lenient.format.on_bad_rows = "skip";
    EXPECT_NE(error(lenient, "I1").find("on_bad_rows: error"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------------
// Real samples

TEST(TextReader, RealCriteoTsvSampleMatchesNaiveReference) {
  auto data = testing::shared_data_dir();
  if (data.empty() || !std::filesystem::exists(data / "criteo" / "criteo_dac_13k.tsv")) {
    GTEST_SKIP() << "shared data folder with criteo/criteo_dac_13k.tsv not found";
  }
  std::string path = (data / "criteo" / "criteo_dac_13k.tsv").string();
  auto cols = criteo_columns();
  auto schema = make_schema(cols);
  schema.format.chunk_bytes = 256 << 10;  // several chunks
  ReadResult r = read_all({path}, schema);
  EXPECT_GT(r.chunks.size(), 5u);
  ASSERT_EQ(r.flat.rows.size(), 13229u);
  EXPECT_EQ(r.stats.skipped, 0);
  expect_same_rows(r.flat, reference_parse(path, '\t', false, cols, names_of(cols)));
}

TEST(TextReader, RealCriteoCsvWithHeaderMatchesNaiveReference) {
  auto data = testing::shared_data_dir();
  if (data.empty() || !std::filesystem::exists(data / "criteo" / "criteo_with_header_4k.csv")) {
    GTEST_SKIP() << "shared data folder with criteo/criteo_with_header_4k.csv not found";
  }
  std::string path = (data / "criteo" / "criteo_with_header_4k.csv").string();
  // The schema lists Id last; the file has it first.
  auto cols = criteo_columns();
  cols[0].name = "Label";
  cols.push_back(col("Id", Role::kId));
  auto schema = make_schema(cols, "csv", true);
  schema.format.chunk_bytes = 128 << 10;
  ReadResult r = read_all({path}, schema);
  ASSERT_EQ(r.flat.rows.size(), 4584u);
  EXPECT_EQ(r.chunks[0].first_line, 2);
  expect_same_rows(r.flat, reference_parse(path, ',', true, cols, names_of(cols)));
}

// Throughput of parse() on one thread. Skipped unless BW_READER_BENCH_FILE names a Criteo-layout TSV,
// e.g. the 13k sample repeated 200 times:
//   for i in $(seq 200); do cat criteo_dac_13k.tsv; done > /tmp/criteo_200x.tsv
//   BW_READER_BENCH_FILE=/tmp/criteo_200x.tsv ./prep_reader_test --gtest_filter='*Throughput*'
// It times the general loop and the fast one (TextReader::set_fast_path), best of BW_READER_BENCH_REPS.
TEST(TextReaderBench, ParseThroughputPerThread) {
  const char* file = std::getenv("BW_READER_BENCH_FILE");
  if (!file) {
    GTEST_SKIP() << "set BW_READER_BENCH_FILE to a Criteo TSV to measure";
  }
  auto schema = make_schema(criteo_columns());
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  TextReader reader({file}, schema, 4);
  std::vector<TextChunk> texts;
  TextChunk t;
  int64_t bytes = 0;
  while (reader.next(t)) {
    bytes += static_cast<int64_t>(t.text.size());
    texts.push_back(std::move(t));
  }
  double read_s = std::chrono::duration<double>(Clock::now() - t0).count();
  Chunk c;
  BadRowStats stats;
  std::printf("read+split: %.0f MB/s (%.1f MB in %.2f s)\n", bytes / 1e6 / read_s, bytes / 1e6, read_s);
  const char* reps_env = std::getenv("BW_READER_BENCH_REPS");  // best of this many passes (3)
  const int reps = reps_env ? std::max(1, std::atoi(reps_env)) : 3;
  for (bool fast : {false, true}) {
    reader.set_fast_path(fast);
    int64_t rows = 0;
    double best = 1e30;
    for (int rep = 0; rep < reps; ++rep) {
      auto t1 = Clock::now();
      for (const auto& text : texts) {
        reader.parse(text, c, stats);
        rows += c.rows;
      }
      best = std::min(best, std::chrono::duration<double>(Clock::now() - t1).count());
    }
    std::printf("parse (%s loop), 1 thread: %.0f MB/s (%.3f s, %lld rows per pass)\n", fast ? "fast" : "general",
                bytes / 1e6 / best, best, static_cast<long long>(rows / reps));
  }
  EXPECT_EQ(stats.skipped, 0);
}

}  // namespace
}  // namespace bluewhale
