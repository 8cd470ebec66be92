// Vector file readers: round trips of every format and the errors for malformed files.
#include "bluewhale/recall/vectors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "bluewhale/core/error.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;
using testing::write_text;

template <class T>
std::string xvecs_bytes(int32_t dim, const std::vector<T>& values) {
  std::string s;
  for (std::size_t i = 0; i < values.size(); i += std::size_t(dim)) {
    s.append(reinterpret_cast<const char*>(&dim), 4);
    s.append(reinterpret_cast<const char*>(values.data() + i), std::size_t(dim) * sizeof(T));
  }
  return s;
}

// Runs fn, expects ErrorType, and checks the message contains every fragment.
template <class ErrorType, class Fn>
void expect_error(Fn fn, std::initializer_list<std::string> fragments) {
  try {
    fn();
    ADD_FAILURE() << "no exception";
  } catch (const ErrorType& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what();
  }
}

TEST(Vectors, FvecsRoundTripAndBvecsIvecsRead) {
  TempDir dir;
  Vectors v;
  v.rows = 3;
  v.dim = 5;
  for (int i = 0; i < 15; ++i) v.data.push_back(float(i) * 0.5f);
  write_fvecs(dir / "a.fvecs", v);
  Vectors r = read_vectors(dir / "a.fvecs");
  EXPECT_EQ(r.rows, 3);
  EXPECT_EQ(r.dim, 5);
  EXPECT_EQ(r.data, v.data);
  EXPECT_TRUE(r.ids.empty());

  write_text(dir / "b.bvecs", xvecs_bytes<uint8_t>(2, {1, 2, 250, 255}));
  Vectors b = read_vectors(dir / "b.bvecs");
  EXPECT_EQ(b.rows, 2);
  EXPECT_EQ(b.data, (std::vector<float>{1, 2, 250, 255}));

  IntVectors gt;
  gt.rows = 2;
  gt.dim = 3;
  gt.data = {1, 2, 3, 4, 5, -6};
  write_ivecs(dir / "g.ivecs", gt);
  IntVectors g = read_ivecs(dir / "g.ivecs");
  EXPECT_EQ(g.rows, 2);
  EXPECT_EQ(g.data, gt.data);
}

TEST(Vectors, RawAndTsvWithIds) {
  TempDir dir;
  std::vector<float> m{1, 2, 3, 4, 5, 6};
  write_text(dir / "m.f32", std::string(reinterpret_cast<const char*>(m.data()), m.size() * 4));
  Vectors r = read_vectors(dir / "m.f32", "auto", 3);
  EXPECT_EQ(r.rows, 2);
  EXPECT_EQ(r.data, m);
  expect_error<InputError>([&] { read_raw_f32(dir / "m.f32", 4); }, {"m.f32", "not a multiple"});
  expect_error<ConfigError>([&] { read_vectors(dir / "m.f32"); }, {"dimension"});

  write_text(dir / "v.tsv", "# id vector\n9000000000000\t1.5\t2\n-3\t0.25,4\n\n7\t 1e3 -1\n");
  Vectors t = read_vectors(dir / "v.tsv");
  EXPECT_EQ(t.rows, 3);
  EXPECT_EQ(t.dim, 2);
  EXPECT_EQ(t.ids, (std::vector<int64_t>{9000000000000, -3, 7}));
  EXPECT_EQ(t.data, (std::vector<float>{1.5f, 2, 0.25f, 4, 1000, -1}));
}

TEST(Vectors, MalformedFilesNameTheFileAndRecord) {
  TempDir dir;
  // Record 1 claims dimension 3 where record 0 had 2 (same byte count as two 2-d records + 4 bytes).
  std::string bad = xvecs_bytes<float>(2, {1, 2}) + xvecs_bytes<float>(3, {1, 2, 3});
  write_text(dir / "mixed.fvecs", bad.substr(0, 24));
  expect_error<InputError>([&] { read_fvecs(dir / "mixed.fvecs"); }, {"mixed.fvecs", "record 1", "dimension 3"});
  // Truncated in the middle of record 2.
  std::string ok = xvecs_bytes<float>(4, std::vector<float>(12, 1.0f));
  write_text(dir / "cut.fvecs", ok.substr(0, ok.size() - 5));
  expect_error<InputError>([&] { read_fvecs(dir / "cut.fvecs"); }, {"cut.fvecs", "record 2", "truncated"});
  write_text(dir / "empty.fvecs", "");
  expect_error<InputError>([&] { read_fvecs(dir / "empty.fvecs"); }, {"empty.fvecs", "empty"});
  // A text file is not an fvecs file: its first 4 bytes decode to an absurd dimension.
  write_text(dir / "text.fvecs", "hello world, not vectors\n");
  expect_error<InputError>([&] { read_fvecs(dir / "text.fvecs"); }, {"text.fvecs", "record 0", "dimension"});
  // NaN values are refused by read_vectors, naming row and component.
  write_text(dir / "nan.fvecs", xvecs_bytes<float>(2, {1, 2, 3, std::numeric_limits<float>::quiet_NaN()}));
  expect_error<InputError>([&] { read_vectors(dir / "nan.fvecs"); }, {"nan.fvecs", "row 1", "component 1", "NaN"});
  expect_error<ConfigError>([&] { read_vectors(dir / "x.parquet"); }, {"x.parquet", "extension"});
  expect_error<IoError>([&] { read_fvecs(dir / "missing.fvecs"); }, {"missing.fvecs"});
}

TEST(Vectors, MalformedTsvNamesLineAndField) {
  TempDir dir;
  write_text(dir / "a.tsv", "1\t1 2\n2\t1 x\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "a.tsv"); }, {"a.tsv line 2", "value 2", "'x'"});
  write_text(dir / "b.tsv", "1\t1 2\n2\t1 2 3\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "b.tsv"); }, {"b.tsv line 2", "3 values, expected 2"});
  write_text(dir / "c.tsv", "1\t1 2\n1\t3 4\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "c.tsv"); }, {"c.tsv line 2", "duplicate id 1"});
  write_text(dir / "d.tsv", "abc\t1 2\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "d.tsv"); }, {"d.tsv line 1", "id"});
  write_text(dir / "e.tsv", "1 2 3\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "e.tsv"); }, {"e.tsv line 1", "TAB"});
  write_text(dir / "f.tsv", "1\tnan 2\n");
  expect_error<InputError>([&] { read_tsv_vectors(dir / "f.tsv"); }, {"f.tsv line 1", "not finite"});
}

TEST(Vectors, RealSiftSampleReadsWithGroundTruth) {
  auto data = testing::shared_data_dir();
  if (data.empty() || !fs::exists(data / "ann" / "sift5k_split_base.fvecs")) GTEST_SKIP() << "no ../shared/data/ann";
  Vectors base = read_vectors(data / "ann" / "sift5k_split_base.fvecs");
  IntVectors gt = read_ivecs(data / "ann" / "sift5k_split_groundtruth.ivecs");
  EXPECT_EQ(base.dim, 128);
  EXPECT_EQ(base.rows, 4900);
  EXPECT_EQ(gt.rows, 100);
  for (int32_t id : gt.data) EXPECT_TRUE(id >= 0 && id < base.rows);
}

}  // namespace
}  // namespace bluewhale
