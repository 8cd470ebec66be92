#include "bluewhale/core/io.h"

#include <gtest/gtest.h>

#include "bluewhale/core/error.h"
#include "bluewhale/core/progress.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

TEST(WriteFileAtomic, ReplacesContentAndLeavesNoTemporary) {
  TempDir dir;
  write_file_atomic(dir / "a.txt", "one");
  write_file_atomic(dir / "a.txt", "two");
  EXPECT_EQ(read_file(dir / "a.txt"), "two");
  int files = 0;
  for (auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(ReadFile, MissingPathNamesIt) {
  TempDir dir;
  try {
    read_file(dir / "nope.txt");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("nope.txt"), std::string::npos);
  }
}

TEST(MappedFile, MapsContentAndEmptyFiles) {
  TempDir dir;
  write_file_atomic(dir / "m", "hello");
  MappedFile m(dir / "m");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m.data()), 5), "hello");
  write_file_atomic(dir / "e", "");
  MappedFile e(dir / "e");
  EXPECT_EQ(e.size(), 0u);
}

TEST(StagedDirectory, NothingAppearsWithoutCommit) {
  TempDir dir;
  {
    StagedDirectory s(dir / "ds", false);
    write_file_atomic(s.path() / "x", "1");
  }
  EXPECT_FALSE(fs::exists(dir / "ds"));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(StagedDirectory, CommitRenamesAndRefusesExistingWithoutOverwrite) {
  TempDir dir;
  {
    StagedDirectory s(dir / "ds", false);
    write_file_atomic(s.path() / "x", "1");
    s.commit();
  }
  EXPECT_EQ(read_file(dir / "ds" / "x"), "1");
  EXPECT_THROW(StagedDirectory(dir / "ds", false), IoError);
  {
    StagedDirectory s(dir / "ds", true);
    write_file_atomic(s.path() / "y", "2");
    s.commit();
  }
  EXPECT_FALSE(fs::exists(dir / "ds" / "x"));
  EXPECT_EQ(read_file(dir / "ds" / "y"), "2");
}

TEST(Progress, LineShowsRowsRatesAndPercent) {
  ProgressReporter p("prep", 1000, 3600);
  p.add(100, 500);
  std::string l = p.line();
  EXPECT_NE(l.find("prep: 100 rows"), std::string::npos) << l;
  EXPECT_NE(l.find("rows/s"), std::string::npos) << l;
  EXPECT_NE(l.find("50.0%"), std::string::npos) << l;
  EXPECT_NE(l.find("ETA"), std::string::npos) << l;
  p.finish();
  EXPECT_EQ(format_bytes(2.5e6), "2.5 MB");
  EXPECT_EQ(format_count(1234567), "1.23 M");
  EXPECT_EQ(format_duration(65), "1m05s");
}

}  // namespace
}  // namespace bluewhale
