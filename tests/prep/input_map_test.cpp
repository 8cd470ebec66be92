#include "bluewhale/prep/input_map.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/prep/reader.h"
#include "prep/reader_util.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::error_of;
using testing::gzip_bytes;
using testing::make_schema;
using testing::TempDir;
using testing::write_text;

// Everything a reader hands out for `files`, chunk by chunk, in a form that compares with ==.
struct Read {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> numbers;  // file_index, first_line, first_row, records per chunk
  int64_t raw_bytes = 0;
  std::vector<std::string> values;  // every parsed value, rendered
  int borrowed = 0;                 // chunks whose text is a view of a mapping
};

// With `cuts_out`: the reader's cuts() once done. With `replay`: the reader replays those cuts.
Read read_all(const std::vector<std::string>& files, const InputSchema& schema, const InputMaps* maps,
              std::optional<std::vector<ChunkCut>>* cuts_out = nullptr, const std::vector<ChunkCut>* replay = nullptr) {
  Read out;
  TextReader reader(files, schema, 2, maps);
  if (replay) reader.replay(*replay);
  TextChunk t;
  BadRowStats bad;
  while (reader.next(t)) {
    EXPECT_EQ(t.index, out.texts.size());  // numbered in input order
    out.texts.emplace_back(t.text.view());
    out.numbers.push_back({t.file_index, t.first_line, t.first_row, t.records});
    out.raw_bytes += t.raw_bytes;
    out.borrowed += t.text.borrowed();
    Chunk c;
    reader.parse(t, c, bad);
    for (int64_t r = 0; r < c.rows; ++r)
      for (const Column& col : c.columns)
        out.values.push_back(col.kind == ColumnKind::kFloat ? std::to_string(col.f[r])
                                                            : (col.valid.empty() || col.valid[r] ? std::to_string(col.i[r]) : "-"));
  }
  if (cuts_out) *cuts_out = reader.cuts();
  return out;
}

// The chunks and values of `got` are those of `want` (the read() path's).
void expect_same_read(const Read& got, const Read& want, const std::string& where) {
  EXPECT_EQ(got.texts, want.texts) << where;
  EXPECT_EQ(got.numbers, want.numbers) << where;
  EXPECT_EQ(got.raw_bytes, want.raw_bytes) << where;
  EXPECT_EQ(got.values, want.values) << where;
}

TEST(TextBytes, BorrowedViewsCopyBeforeAnyChange) {
  const std::string source = "1\tab\n0\tcd";
  TextBytes t = TextBytes::borrow(source.data(), source.size());
  EXPECT_TRUE(t.borrowed());
  EXPECT_EQ(t.data(), source.data());  // no copy while only read
  EXPECT_EQ(t.view(), source);
  TextBytes moved = std::move(t);
  EXPECT_TRUE(moved.borrowed());
  EXPECT_EQ(moved.data(), source.data());

  TextBytes copy = moved;  // a copy owns its bytes
  EXPECT_FALSE(copy.borrowed());
  EXPECT_NE(copy.data(), source.data());
  EXPECT_EQ(copy, moved);

  moved.push_back('\n');  // the case of a last record without '\n'
  EXPECT_FALSE(moved.borrowed());
  EXPECT_EQ(moved.view(), source + "\n");
  EXPECT_EQ(source, "1\tab\n0\tcd");  // the borrowed bytes were not written

  TextBytes shrunk = TextBytes::borrow(source.data(), source.size());
  shrunk.resize(3);
  EXPECT_FALSE(shrunk.borrowed());
  EXPECT_EQ(shrunk.view(), "1\ta");
  TextBytes assigned = TextBytes::borrow(source.data(), source.size());
  assigned.assign("xyz");
  EXPECT_EQ(assigned.view(), "xyz");
  EXPECT_EQ(source, "1\tab\n0\tcd");
  TextBytes emptied = TextBytes::borrow(source.data(), source.size());
  emptied.resize(0);
  EXPECT_FALSE(emptied.borrowed());
  EXPECT_TRUE(emptied.empty());
}

TEST(InputMaps, MapsOnlyRegularPlainFilesWithinTheBudget) {
  TempDir dir;
  write_text(dir / "a.tsv", std::string(100, 'a'));
  write_text(dir / "b.tsv", std::string(100, 'b'));
  write_text(dir / "c.tsv.gz", gzip_bytes("1\tx\n"));
  write_text(dir / "empty.tsv", "");
  const std::vector<std::string> files = {(dir / "a.tsv").string(), (dir / "c.tsv.gz").string(),
                                          (dir / "empty.tsv").string(), (dir / "b.tsv").string(), "/dev/null"};
  InputMaps maps(files, "auto", 150);
  EXPECT_EQ(maps.view(0).size, 100u);
  ASSERT_NE(maps.view(0).data, nullptr);
  EXPECT_EQ(std::string(maps.view(0).data, 100), std::string(100, 'a'));
  EXPECT_EQ(maps.view(1).data, nullptr) << "gzip";
  EXPECT_EQ(maps.view(2).data, nullptr) << "empty";
  EXPECT_EQ(maps.view(3).data, nullptr) << "past the budget";
  EXPECT_EQ(maps.view(4).data, nullptr) << "not a regular file";
  EXPECT_EQ(maps.mapped_bytes(), 100);
  maps.check_all();

  InputMaps both(files, "auto", 200);
  EXPECT_NE(both.view(3).data, nullptr);
  EXPECT_EQ(both.mapped_bytes(), 200);
  InputMaps none(files, "auto", 0);
  EXPECT_EQ(none.view(0).data, nullptr);

  const std::string missing = (dir / "missing.tsv").string();
  EXPECT_EQ(error_of<IoError>([&] { InputMaps m({missing}, "auto", 1 << 20); }).find(missing) != std::string::npos, true);
}

// Files of kProbeBytes or more are mapped only when their first touch is cheap enough: a limit of 0 ns
// a page leaves a big file to read() (same rows, nothing borrowed from a mapping), an infinite one maps
// it; small files are not probed.
TEST(InputMaps, BigFilesAreMappedOnlyWhenTheirFirstTouchIsCheap) {
  TempDir dir;
  std::string big;
  for (int64_t r = 0; big.size() < 3 * InputMaps::kProbeBytes; ++r) big += std::to_string(r % 2) + "\t" + std::to_string(r * 7) + "\n";
  write_text(dir / "big.tsv", big);
  write_text(dir / "small.tsv", "1\t5\n0\t6\n");
  const std::vector<std::string> files = {(dir / "big.tsv").string(), (dir / "small.tsv").string()};
  const auto schema = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}});

  InputMaps never(files, "auto", int64_t{1} << 30, 0.0);
  EXPECT_GT(never.touch_ns(0), 0.0);
  EXPECT_EQ(never.view(0).data, nullptr) << "a first touch dearer than the limit";
  EXPECT_EQ(never.touch_ns(1), -1.0) << "not probed";
  EXPECT_NE(never.view(1).data, nullptr);
  EXPECT_EQ(never.mapped_bytes(), static_cast<int64_t>(std::filesystem::file_size(files[1])));

  InputMaps always(files, "auto", int64_t{1} << 30, std::numeric_limits<double>::infinity());
  EXPECT_GT(always.touch_ns(0), 0.0);
  ASSERT_NE(always.view(0).data, nullptr);
  EXPECT_EQ(std::string(always.view(0).data, always.view(0).size), big);

  const Read plain = read_all(files, schema, nullptr);
  const Read half = read_all(files, schema, &never);
  const Read mapped = read_all(files, schema, &always);
  EXPECT_EQ(half.values, plain.values);
  EXPECT_EQ(mapped.values, plain.values);
  EXPECT_GT(plain.values.size(), 400000u);
  EXPECT_EQ(half.borrowed, 1) << "only the small file's chunk is a view";
  EXPECT_EQ(mapped.borrowed, static_cast<int>(mapped.texts.size()));
}

TEST(InputMaps, ChunksAndValuesMatchTheReadPathOverEdgeCases) {
  TempDir dir;
  const auto two = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}});
  struct Case {
    std::string name, text;
    InputSchema schema;
  };
  std::string big;
  for (int i = 0; i < 3000; ++i) big += std::to_string(i % 2) + "\t" + std::to_string(i * 7919 % 1000) + "abcd\n";
  auto csv = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}}, "csv");
  auto header = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}}, "tsv", true);
  const std::vector<Case> cases = {
      {"plain.tsv", "1\ta\n0\tbb\n1\tccc\n", two},
      {"no_final_newline.tsv", "1\ta\n0\tbb\n1\tccc", two},
      {"blank_lines.tsv", "\n1\ta\n\n0\tbb\n\r\n1\tccc\n\n", two},
      {"crlf.tsv", "1\ta\r\n0\tbb\r\n1\tccc\r\n", two},
      {"bom.tsv", "\xEF\xBB\xBF" "1\ta\n0\tbb\n", two},
      {"header.tsv", "C1\tlabel\nx\t1\ny\t0\n", header},
      {"quoted.csv", "1,\"a,b\"\n0,\"line\nbreak\"\n1,c\n", csv},
      {"big.tsv", big, two},
  };
  for (const Case& c : cases)
    for (int64_t chunk : {int64_t{4}, int64_t{7}, int64_t{64}, int64_t{1} << 20}) {
      write_text(dir / c.name, c.text);
      InputSchema schema = c.schema;
      schema.format.chunk_bytes = chunk;
      const std::vector<std::string> files = {(dir / c.name).string()};
      InputMaps maps(files, "auto", 1 << 30);
      ASSERT_NE(maps.view(0).data, nullptr) << c.name;
      std::optional<std::vector<ChunkCut>> cuts;
      const Read mapped = read_all(files, schema, &maps, &cuts);
      std::optional<std::vector<ChunkCut>> read_cuts;
      const Read read = read_all(files, schema, nullptr, &read_cuts);
      const std::string where = c.name + ", chunk_bytes " + std::to_string(chunk);
      // Read (not mapped), the cuts are the same, and replaying them reads each chunk at its offset.
      ASSERT_TRUE(read_cuts.has_value()) << where;
      ASSERT_EQ(read_cuts->size(), cuts->size()) << where;
      for (std::size_t k = 0; k < cuts->size(); ++k) {
        EXPECT_EQ((*read_cuts)[k].offset, (*cuts)[k].offset) << where << ", cut " << k;
        EXPECT_EQ((*read_cuts)[k].size, (*cuts)[k].size) << where << ", cut " << k;
        EXPECT_EQ((*read_cuts)[k].raw_bytes, (*cuts)[k].raw_bytes) << where << ", cut " << k;
      }
      const Read reread = read_all(files, schema, nullptr, nullptr, &*read_cuts);
      expect_same_read(reread, read, where + ", replayed by reading");
      EXPECT_EQ(reread.borrowed, 0) << where;
      // A second pass over the same maps replays the first one's cuts: the same chunks, no scan.
      ASSERT_TRUE(cuts.has_value()) << where;
      EXPECT_EQ(cuts->size(), mapped.texts.size()) << where;
      const Read replayed = read_all(files, schema, &maps, nullptr, &*cuts);
      expect_same_read(replayed, read, where + ", replayed");
      EXPECT_EQ(replayed.borrowed, mapped.borrowed) << where;
      expect_same_read(mapped, read, where);
      EXPECT_FALSE(mapped.values.empty()) << where;
      EXPECT_EQ(read.borrowed, 0) << where;
      // Every chunk borrows its text, except a last one that needed the '\n' it lacked.
      const int copied = c.name == "no_final_newline.tsv" ? 1 : 0;
      EXPECT_EQ(mapped.borrowed, static_cast<int>(mapped.texts.size()) - copied) << where;
    }

  // Several files, mapped, compressed and unmapped by budget, in one reader.
  write_text(dir / "z.tsv.gz", gzip_bytes("0\tzz\n1\tyy\n"));
  const std::vector<std::string> files = {(dir / "plain.tsv").string(), (dir / "z.tsv.gz").string(),
                                          (dir / "big.tsv").string(), (dir / "crlf.tsv").string()};
  InputSchema schema = two;
  schema.format.chunk_bytes = 4096;
  InputMaps maps(files, "auto", static_cast<int64_t>(std::filesystem::file_size(files[0]) + std::filesystem::file_size(files[2])));
  EXPECT_NE(maps.view(2).data, nullptr);
  EXPECT_EQ(maps.view(3).data, nullptr);
  std::optional<std::vector<ChunkCut>> cuts;
  const Read mapped = read_all(files, schema, &maps, &cuts);
  const Read read = read_all(files, schema, nullptr);
  expect_same_read(mapped, read, "four files");
  EXPECT_GT(mapped.borrowed, 1);
  EXPECT_FALSE(cuts.has_value()) << "two of the files are not mapped: nothing to replay";

  // Mapped, but not read to the end: no cuts either.
  InputMaps two_maps({files[0], files[2]}, "auto", 1 << 30);
  TextReader reader({files[0], files[2]}, schema, 2, &two_maps);
  TextChunk t;
  ASSERT_TRUE(reader.next(t));
  EXPECT_FALSE(reader.cuts().has_value());
  while (reader.next(t)) {
  }
  const std::optional<std::vector<ChunkCut>> done = reader.cuts();
  ASSERT_TRUE(done.has_value());
  int64_t rows = 0;
  for (const ChunkCut& k : *done) rows += k.records;
  EXPECT_EQ(rows, 3 + 3000);
}

// Callers that take turns with their TextChunks (two parsing threads) hand a view of a mapped file's text
// back while the reader cuts a file it reads: that view must never be read into (it is the read-only
// mapping), whether the text is cut by the callers (plain input) or ahead by the reader's thread.
TEST(InputMaps, TextsOfAMappedFileAreNotReusedForAReadOne) {
  TempDir dir;
  std::string a, b;
  for (int i = 0; i < 400; ++i) a += std::to_string(i % 2) + "\ta" + std::to_string(i) + "\n";
  for (int i = 0; i < 400; ++i) b += std::to_string(i % 2) + "\tb" + std::to_string(i * 7) + "\n";
  write_text(dir / "a.tsv", a);
  write_text(dir / "b.tsv", b);
  write_text(dir / "c.tsv.gz", gzip_bytes("1\tc\n"));
  auto schema = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}});
  schema.format.chunk_bytes = 64;
  for (bool compressed : {false, true}) {
    // Plain: callers cut the text. With a gzip file first: the reader's thread cuts all of it.
    std::vector<std::string> files = {(dir / "a.tsv").string(), (dir / "b.tsv").string()};
    if (compressed) files.insert(files.begin(), (dir / "c.tsv.gz").string());
    InputMaps maps(files, "auto", static_cast<int64_t>(a.size()));  // a mapped, b read
    ASSERT_NE(maps.view(compressed ? 1 : 0).data, nullptr);
    ASSERT_EQ(maps.view(compressed ? 2 : 1).data, nullptr);
    TextReader reader(files, schema, 2, &maps);
    TextChunk t[2];
    std::string all;
    int borrowed = 0;
    for (int k = 0; reader.next(t[k % 2]); ++k) {
      all += t[k % 2].text.view();
      borrowed += t[k % 2].text.borrowed();
    }
    EXPECT_EQ(all, (compressed ? std::string("1\tc\n") : std::string()) + a + b) << compressed;
    EXPECT_GT(borrowed, 2) << compressed;
  }
}

// Threads pulling chunks at once (the prep workers take no lock of their own around next()) get each
// chunk once, numbered in input order: cut from the files, replayed by reading, replayed from a mapping.
TEST(TextReader, ChunksPulledByThreadsAtOnceAreNumberedInInputOrder) {
  TempDir dir;
  std::vector<std::string> paths;
  std::string all;
  for (int f = 0; f < 3; ++f) {
    std::string text;
    for (int i = 0; i < 4000 + 1000 * f; ++i) text += std::to_string(i % 2) + "\tk" + std::to_string(f * 100000 + i) + "\n";
    paths.push_back((dir / ("f" + std::to_string(f) + ".tsv")).string());
    write_text(paths.back(), text);
    all += text;
  }
  auto schema = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}});
  schema.format.chunk_bytes = 1024;
  InputMaps maps(paths, "auto", 1 << 30);  // small files: mapped without a probe
  for (const InputMaps* m : std::initializer_list<const InputMaps*>{nullptr, &maps}) {
    std::optional<std::vector<ChunkCut>> cuts;
    read_all(paths, schema, m, &cuts);
    ASSERT_TRUE(cuts.has_value());
    for (bool replay : {false, true}) {
      const std::string where = std::string(m ? "mapped" : "read") + (replay ? ", replayed" : ", cut");
      TextReader reader(paths, schema, 2, m);
      if (replay) reader.replay(*cuts);
      struct Got {
        std::size_t index;
        int64_t first_row;
        std::string text;
      };
      std::vector<Got> got[2];
      auto pull = [&](int k) {
        TextChunk t;
        while (reader.next(t)) got[k].push_back({t.index, t.first_row, std::string(t.text.view())});
      };
      std::thread other(pull, 1);
      pull(0);
      other.join();
      std::vector<Got> in_order;
      for (auto& g : got) in_order.insert(in_order.end(), g.begin(), g.end());
      std::sort(in_order.begin(), in_order.end(), [](const Got& a, const Got& b) { return a.index < b.index; });
      ASSERT_EQ(in_order.size(), cuts->size()) << where;
      std::string joined;
      for (std::size_t k = 0; k < in_order.size(); ++k) {
        EXPECT_EQ(in_order[k].index, k) << where;
        EXPECT_EQ(in_order[k].first_row, (*cuts)[k].first_row) << where;
        joined += in_order[k].text;
      }
      EXPECT_EQ(joined, all) << where;
    }
  }
}

// A file cut short while mapped: reading its lost pages would raise SIGBUS; the reader fails with an
// IoError that names the file instead.
TEST(InputMaps, AFileThatShrinksWhileMappedFailsWithIoError) {
  TempDir dir;
  const std::string path = (dir / "a.tsv").string();
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "1\tabcdefgh\n";  // 200 KB: many pages past the cut
  write_text(path, text);
  const auto schema = make_schema({{"label", Role::kLabel, '|'}, {"C1", Role::kCategorical, '|'}});

  {
    InputMaps maps({path}, "auto", 1 << 30);
    ASSERT_NE(maps.view(0).data, nullptr);
    ASSERT_EQ(truncate(path.c_str(), 5000), 0);
    // A byte on a lost page reads as zero instead of ending the process.
    const volatile char* p = maps.view(0).data;
    EXPECT_EQ(p[100000], 0);
    EXPECT_TRUE(maps.shrunk(0));
    const std::string msg = error_of<IoError>([&] { maps.check(0); });
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("shrank"), std::string::npos) << msg;
    EXPECT_NE(msg.find("5000 bytes now"), std::string::npos) << msg;
  }

  write_text(path, text);
  InputMaps maps({path}, "auto", 1 << 30);
  ASSERT_EQ(truncate(path.c_str(), 5000), 0);
  const std::string msg = error_of<IoError>([&] { read_all({path}, schema, &maps); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("shrank"), std::string::npos) << msg;

  // Read instead of mapped: replaying the first pass's cuts over a file cut short since fails the same way.
  write_text(path, text);
  std::optional<std::vector<ChunkCut>> cuts;
  read_all({path}, schema, nullptr, &cuts);
  ASSERT_TRUE(cuts.has_value());
  ASSERT_EQ(truncate(path.c_str(), 5000), 0);
  const std::string reread = error_of<IoError>([&] { read_all({path}, schema, nullptr, nullptr, &*cuts); });
  EXPECT_NE(reread.find(path), std::string::npos) << reread;
  EXPECT_NE(reread.find("shrank"), std::string::npos) << reread;
  // Removed since: the replay cannot open it, and says which file.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  const std::string gone = error_of<IoError>([&] { read_all({path}, schema, nullptr, nullptr, &*cuts); });
  EXPECT_NE(gone.find("cannot open input file '" + path + "'"), std::string::npos) << gone;

  // A file that keeps its size reads as usual through a new mapping.
  write_text(path, text);
  InputMaps again({path}, "auto", 1 << 30);
  EXPECT_FALSE(again.shrunk(0));
  EXPECT_EQ(read_all({path}, schema, &again).values.size(), 40000u);
}

// The handler repairs only the mappings it guards: a SIGBUS anywhere else still ends the process, as it
// would without it (the previous handler, or the default action, takes it).
TEST(InputMapsDeathTest, ASigbusOutsideTheGuardedMappingsStillEndsTheProcess) {
  TempDir dir;
  const std::string guarded = (dir / "guarded.tsv").string(), other = (dir / "other.tsv").string();
  write_text(guarded, std::string(1 << 16, 'a'));
  write_text(other, std::string(1 << 16, 'b'));
  InputMaps maps({guarded}, "auto", 1 << 30);  // installs the handler
  ASSERT_NE(maps.view(0).data, nullptr);
  EXPECT_DEATH(
      {
        const int fd = ::open(other.c_str(), O_RDONLY);
        auto* p = static_cast<const volatile char*>(mmap(nullptr, 1 << 16, PROT_READ, MAP_PRIVATE, fd, 0));
        if (p == MAP_FAILED || ::ftruncate(::open(other.c_str(), O_WRONLY), 0) != 0) std::abort();
        std::fprintf(stderr, "%d", p[40000]);  // past the end of the truncated file: SIGBUS
        std::exit(0);  // not reached
      },
      "");
  EXPECT_FALSE(maps.shrunk(0));
}

}  // namespace
}  // namespace bluewhale
