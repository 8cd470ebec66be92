#include "bluewhale/data/binary_io.h"

#include <gtest/gtest.h>

#include "bluewhale/core/error.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

TEST(BinaryIo, RoundTripsValues) {
  TempDir dir;
  BinaryWriter w(dir / "s.bin", "op-state", 1);
  w.write<int64_t>(-5);
  w.write_string("categorify");
  w.write_vector(std::vector<uint64_t>{1, 2, 3});
  w.close();
  BinaryReader r(dir / "s.bin", "op-state", 1);
  EXPECT_EQ(r.read<int64_t>(), -5);
  EXPECT_EQ(r.read_string(), "categorify");
  EXPECT_EQ(r.read_vector<uint64_t>(), (std::vector<uint64_t>{1, 2, 3}));
  r.expect_end();
}

TEST(BinaryIo, CorruptionTruncationForeignTagAndVersionAreDetected) {
  TempDir dir;
  BinaryWriter w(dir / "s.bin", "op-state", 2);
  w.write_vector(std::vector<double>(100, 1.5));
  w.close();
  std::string bytes = read_file(dir / "s.bin");
  auto expect_format_error = [&](const std::string& content, const char* what) {
    write_file_atomic(dir / "bad.bin", content);
    try {
      BinaryReader r(dir / "bad.bin", "op-state", 2);
      FAIL() << "no error for " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.bin"), std::string::npos) << e.what();
    }
  };
  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;
  expect_format_error(flipped, "flipped byte");
  expect_format_error(bytes.substr(0, bytes.size() - 9), "truncated");
  expect_format_error("not a binary file at all, just some text here", "foreign");
  EXPECT_THROW(BinaryReader(dir / "s.bin", "checkpoint", 2), FormatError);
  EXPECT_THROW(BinaryReader(dir / "s.bin", "op-state", 1), FormatError);
  {
    BinaryWriter never(dir / "n.bin", "op-state", 1);
    never.write<int>(1);
  }
  EXPECT_FALSE(fs::exists(dir / "n.bin"));
}

TEST(BinaryIo, CorruptedLengthCannotAllocateHugeVectors) {
  TempDir dir;
  BinaryWriter w(dir / "s.bin", "t", 1);
  w.write<uint64_t>(uint64_t{1} << 60);  // a "length" far beyond the file
  w.close();
  BinaryReader r(dir / "s.bin", "t", 1);
  EXPECT_THROW(r.read_vector<double>(), FormatError);
}

}  // namespace
}  // namespace bluewhale
