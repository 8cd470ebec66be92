#include "prep/scan_kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/data/column.h"
#include "test_util.h"

namespace bluewhale::text {
namespace {

// The plain definition: every byte of [begin, min(end rounded up to 64, n)) that is delim or '\n'.
struct Expected {
  std::vector<uint32_t> offsets;
  std::size_t newlines = 0;
  bool quote = false;
};
Expected reference(const std::string& s, std::size_t begin, std::size_t end, char delim, int quote) {
  Expected e;
  const std::size_t stop = std::min((end + 63) / 64 * 64, s.size());
  for (std::size_t i = begin; i < stop; ++i) {
    if (s[i] == delim || s[i] == '\n') e.offsets.push_back(static_cast<uint32_t>(i));
    e.newlines += s[i] == '\n';
    e.quote = e.quote || (quote >= 0 && s[i] == static_cast<char>(quote));
  }
  return e;
}

std::vector<SimdLevel> levels() { return testing::supported_simd_levels(); }

void check_all_levels(const std::string& s, std::size_t begin, std::size_t end, char delim, int quote,
                      const std::string& what) {
  const Expected want = reference(s, begin, end, delim, quote);
  for (SimdLevel level : levels()) {
    // The slack a caller must provide, filled with a marker that may be overwritten.
    std::vector<uint32_t> out((end - begin + 63) / 64 * 64 + kScanSlack, 0xDEADBEEF);
    const ScanResult r = scan_separators_for(level)(s.data(), s.size(), begin, end, delim, quote, out.data());
    SCOPED_TRACE(what + " at level " + std::string(simd_level_name(level)));
    ASSERT_EQ(r.count, want.offsets.size());
    EXPECT_EQ(std::vector<uint32_t>(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(r.count)), want.offsets);
    EXPECT_EQ(r.newlines, want.newlines);
    EXPECT_EQ(r.quote, want.quote);
  }
}

TEST(ScanSeparators, EveryLevelMatchesTheByteByByteDefinition) {
  std::mt19937_64 rng(7);
  // Texts whose length is not a multiple of 64 (a partial last block), with sparse to dense separators,
  // scanned whole and in 64-aligned windows, with and without a quote character.
  for (std::size_t n : {0, 1, 63, 64, 65, 127, 128, 1000, 4096 + 37}) {
    for (int density : {0, 3, 30, 100}) {
      std::string s(n, 'x');
      for (char& c : s) {
        const int u = static_cast<int>(rng() % 100);
        c = u < density / 2 ? '\t' : u < density ? '\n' : u == 99 ? '"' : static_cast<char>('a' + rng() % 26);
      }
      const std::string what = "n " + std::to_string(n) + " density " + std::to_string(density);
      check_all_levels(s, 0, n, '\t', -1, what);
      check_all_levels(s, 0, n, '\t', '"', what + " quote");
      check_all_levels(s, 0, n, ',', '"', what + " comma");
      for (std::size_t b = 0; b < n; b += 64 * (1 + rng() % 3)) {
        const std::size_t e = std::min(n, b + 64 * (1 + rng() % 4) - rng() % 40);
        if (e > b) check_all_levels(s, b, e, '\t', -1, what + " window " + std::to_string(b));
      }
    }
  }
}

TEST(ScanSeparators, AllSeparatorsAndNone) {
  // Every byte a separator: 64 offsets per block, the most the caller's room allows for.
  check_all_levels(std::string(200, '\t'), 0, 200, '\t', -1, "all tabs");
  check_all_levels(std::string(200, '\n'), 0, 200, '\t', -1, "all newlines");
  check_all_levels(std::string(200, 'q'), 0, 200, '\t', -1, "none");
  // High-bit bytes (UTF-8) are never separators, also when compared as signed chars.
  check_all_levels(std::string(130, '\xE9') + "\t\n", 0, 132, '\t', -1, "high bytes");
}

TEST(ScanLines, EveryLevelCountsLinesAndFindsBlankOnes) {
  // The definition, line by line: a line starts at 0 and after each '\n'; it is blank when the '\n'
  // that ends it comes right at its start or after a lone '\r'.
  auto reference = [](const std::string& s) {
    LineScan e;
    std::size_t start = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\n') continue;
      ++e.newlines;
      e.last = i;
      e.blank = e.blank || i == start || (i == start + 1 && s[start] == '\r');
      start = i + 1;
    }
    return e;
  };
  auto check = [&](const std::string& s, const std::string& what) {
    const LineScan want = reference(s);
    for (SimdLevel level : levels()) {
      const LineScan r = scan_lines_for(level)(s.data(), s.size());
      SCOPED_TRACE(what + " at level " + std::string(simd_level_name(level)));
      ASSERT_EQ(r.newlines, want.newlines);
      if (want.newlines) {
        EXPECT_EQ(r.last, want.last);
      }
      EXPECT_EQ(r.blank, want.blank);
    }
  };
  std::mt19937_64 rng(11);
  // Sparse '\n' and '\r' (mostly no blank line) to dense (blank lines everywhere), at every length
  // around the 64-byte blocks, so blank lines straddle block boundaries.
  for (int density : {1, 5, 30}) {
    for (std::size_t n = 0; n < 300; ++n) {
      std::string s(n, 'x');
      for (char& c : s) {
        const int u = static_cast<int>(rng() % 100);
        c = u < density ? '\n' : u < 2 * density ? '\r' : 'a';
      }
      check(s, "density " + std::to_string(density) + " n " + std::to_string(n));
    }
  }
  // Hand-picked: blank lines at the start, across a block boundary, CRLF ones, and lines that only
  // look blank ("\r\r\n", "a\r\n").
  check("\nabc\n", "leading empty line");
  check("\r\nabc\n", "leading CRLF line");
  check("abc\r\r\nxyz\n", "two CRs");
  check("ab\r\na\r\n", "CRLF records");
  check(std::string(63, 'a') + "\n\n", "empty line at 64");
  check(std::string(62, 'a') + "\n\r\n", "CRLF blank line across blocks");
  check(std::string(63, 'a') + "\n\r\n", "CRLF blank line at 64");
  check(std::string(200, 'a'), "no line break");
}

// The run kernels (digits_run, key8_run) against their definitions, written out plainly. A case is a text
// of records and its separator offsets as the reader lists them.
struct RunCase {
  std::string text;             // records of nf fields, '\t' between them, '\n' after each
  std::vector<uint32_t> seps;   // ~0 (before the first record), then every separator's offset
  std::size_t nf = 0;
};

RunCase make_run_case(const std::vector<std::vector<std::string>>& records) {
  RunCase c;
  c.nf = records.empty() ? 1 : records[0].size();
  c.seps.push_back(~uint32_t{0});
  for (const auto& rec : records) {
    for (std::size_t f = 0; f < rec.size(); ++f) {
      c.text += rec[f];
      c.seps.push_back(static_cast<uint32_t>(c.text.size()));
      c.text += f + 1 < rec.size() ? '\t' : '\n';
    }
  }
  // What the reader's region offsets look like past the last record: entries that are not offsets.
  c.seps.resize(c.seps.size() + 64, 0xDEADBEEF);
  return c;
}

// Calls check(f, r, br, trace) for every field f, start record r and end br (all records, or 1, 5 or 9
// from r: runs shorter and longer than one vector of lanes); trace names them for the message.
template <class Check>
void for_each_window(const RunCase& c, std::size_t records, const std::string& what, Check&& check) {
  for (std::size_t f = 0; f < c.nf; ++f)
    for (std::size_t r = 0; r <= records; ++r)
      for (std::size_t br : {records, std::min(records, r + 1), std::min(records, r + 5), std::min(records, r + 9)}) {
        if (br < r) continue;
        check(f, r, br, what + ": field " + std::to_string(f) + " from " + std::to_string(r) + " to " + std::to_string(br));
      }
}

// `records` records of three fields, each made by field(u) from u uniform in [0, 100).
template <class Field>
RunCase random_case(std::mt19937_64& rng, std::size_t records, Field&& field) {
  std::vector<std::vector<std::string>> recs(records);
  for (auto& rec : recs)
    for (int f = 0; f < 3; ++f) rec.push_back(field(static_cast<int>(rng() % 100)));
  return make_run_case(recs);
}

// digits_run: the first record in [r, br) whose field f is not 1 to 8 digits or empty with 8 readable bytes
// at its start, with want[r, that) filled (the value through strtol, kMissingFloat when empty).
std::size_t digits_definition(const RunCase& c, std::size_t f, std::size_t r, std::size_t br, std::vector<float>& want) {
  for (; r < br; ++r) {
    const std::size_t b = static_cast<uint32_t>(c.seps[r * c.nf + f] + 1u), e = c.seps[r * c.nf + f + 1];
    const std::string field = c.text.substr(b, e - b);
    if (field.size() > 8 || b + 8 > c.text.size()) return r;
    bool digits = true;
    for (char ch : field) digits = digits && ch >= '0' && ch <= '9';
    if (!digits) return r;
    want[r] = field.empty() ? kMissingFloat : static_cast<float>(std::strtol(field.c_str(), nullptr, 10));
  }
  return br;
}

void check_digits_all_levels(const RunCase& c, std::size_t records, const std::string& what) {
  for_each_window(c, records, what, [&](std::size_t f, std::size_t r, std::size_t br, const std::string& trace) {
    std::vector<float> want(records + 8, -1.0f);
    const std::size_t want_stop = digits_definition(c, f, r, br, want);
    for (SimdLevel level : levels()) {
      std::vector<float> got(records + 8, -1.0f);
      const std::size_t stop = digits_run_for(level)(c.text.data(), c.text.size(), c.seps.data() + f, c.nf, r, br, got.data());
      SCOPED_TRACE(trace + " at level " + std::string(simd_level_name(level)));
      ASSERT_EQ(stop, want_stop);
      // Bit for bit (NaN included), and nothing written outside [r, stop).
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    }
  });
}

TEST(DigitsRun, EveryLevelMatchesTheDefinition) {
  std::mt19937_64 rng(23);
  // Mostly convertible fields (1 to 8 digits, empty), with every kind of field that stops a run: 9+
  // digits, a sign, a point, the bytes next to '0' and '9' ('/' and ':'), letters, a space.
  const std::vector<std::string> stoppers = {"123456789", "0000000000", "-1", "+7", "1.5", "3/", ":", "/0",
                                             "12a", " 4", "x"};
  for (int bad_percent : {0, 3, 30}) {
    for (std::size_t records : {1, 3, 4, 7, 8, 9, 17, 40}) {
      const RunCase c = random_case(rng, records, [&](int u) {
        if (u < bad_percent) return stoppers[rng() % stoppers.size()];
        std::string field;
        if (u >= bad_percent + 15)
          for (std::size_t i = 0, len = 1 + rng() % 8; i < len; ++i) field += static_cast<char>('0' + rng() % 10);
        return field;
      });
      check_digits_all_levels(c, records, "bad " + std::to_string(bad_percent) + "% records " + std::to_string(records));
    }
  }
}

TEST(DigitsRun, EdgeValuesAndTheTextsEnd) {
  // The largest 8-digit value (rounded to float), leading zeros, single digits, empty fields; the last
  // fields of the text have fewer than 8 bytes after their start and stop the run.
  check_digits_all_levels(make_run_case({{"99999999", "00000001", "0"},
                                            {"", "16777217", "5"},
                                            {"12345678", "", ""},
                                            {"7", "10000000", "42"}}),
                          4, "edge values");
  // One field per record (nf = 1): records are 2 bytes, so many lanes read overlapping words.
  std::vector<std::vector<std::string>> short_recs;
  for (int i = 0; i < 30; ++i) short_recs.push_back({i % 7 == 3 ? std::string() : std::to_string(i % 10)});
  check_digits_all_levels(make_run_case(short_recs), short_recs.size(), "one-field records");
}

// key8_run: a field of exactly 8 bytes is its bytes read big-endian (valid), an empty one 0 (not valid),
// both only with 8 readable bytes at the field's start; anything else stops.
std::size_t key8_definition(const RunCase& c, std::size_t f, std::size_t r, std::size_t br, std::vector<int64_t>& want,
                            std::vector<uint8_t>& want_valid) {
  for (; r < br; ++r) {
    const std::size_t b = static_cast<uint32_t>(c.seps[r * c.nf + f] + 1u), e = c.seps[r * c.nf + f + 1];
    const std::string field = c.text.substr(b, e - b);
    if ((field.size() != 0 && field.size() != 8) || b + 8 > c.text.size()) return r;
    uint64_t key = 0;
    for (char ch : field) key = key << 8 | static_cast<unsigned char>(ch);
    want[r] = static_cast<int64_t>(key);
    want_valid[r] = !field.empty();
  }
  return br;
}

void check_key8_all_levels(const RunCase& c, std::size_t records, const std::string& what) {
  for_each_window(c, records, what, [&](std::size_t f, std::size_t r, std::size_t br, const std::string& trace) {
    std::vector<int64_t> want(records + 8, -1);
    std::vector<uint8_t> want_valid(records + 8, 7);
    const std::size_t want_stop = key8_definition(c, f, r, br, want, want_valid);
    for (SimdLevel level : levels()) {
      std::vector<int64_t> got(records + 8, -1);
      std::vector<uint8_t> got_valid(records + 8, 7);
      const std::size_t stop = key8_run_for(level)(c.text.data(), c.text.size(), c.seps.data() + f, c.nf, r, br,
                                                   got.data(), got_valid.data());
      SCOPED_TRACE(trace + " at level " + std::string(simd_level_name(level)));
      ASSERT_EQ(stop, want_stop);
      // Nothing written outside [r, stop).
      ASSERT_EQ(got, want);
      ASSERT_EQ(got_valid, want_valid);
    }
  });
}

TEST(Key8Run, EveryLevelMatchesTheDefinition) {
  std::mt19937_64 rng(29);
  // Mostly 8-byte values (hex ids, any other bytes too: the key is the bytes) and empty fields, with
  // every length that stops a run.
  for (int bad_percent : {0, 3, 30}) {
    for (std::size_t records : {1, 3, 7, 8, 9, 16, 17, 40}) {
      const RunCase c = random_case(rng, records, [&](int u) {
        if (u < bad_percent) return std::string(rng() % 2 ? 1 + rng() % 7 : 9 + rng() % 4, 'z');
        std::string field;
        if (u >= bad_percent + 20)
          for (int i = 0; i < 8; ++i) field += u % 2 ? "0123456789abcdef"[rng() % 16] : static_cast<char>(0x21 + rng() % 0xDE);
        return field;
      });
      check_key8_all_levels(c, records, "bad " + std::to_string(bad_percent) + "% records " + std::to_string(records));
    }
  }
}

TEST(Key8Run, TheTextsEndAndShortRecords) {
  // The last record's fields have fewer than 8 bytes after their start (an empty last field too) and
  // stop the run there.
  check_key8_all_levels(make_run_case({{"68fd1e64", "", "05db9164"},
                                          {"", "ffffffff", "00000000"},
                                          {"8cf07265", "", ""}}),
                        3, "the text's end");
  // One field per record: many lanes read overlapping words.
  std::vector<std::vector<std::string>> one;
  for (int i = 0; i < 30; ++i) one.push_back({i % 5 == 2 ? std::string() : std::string(8, static_cast<char>('a' + i % 26))});
  check_key8_all_levels(make_run_case(one), one.size(), "one-field records");
}

}  // namespace
}  // namespace bluewhale::text
