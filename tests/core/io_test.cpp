#include "bluewhale/core/io.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <thread>

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

// write_fully: every byte of a big buffer (a pipe takes 64 KiB at a time: short writes), and false with
// errno set on a bad descriptor.
TEST(WriteFully, WritesEveryByteThroughShortWritesAndReportsErrors) {
  std::string data(3 << 20, 'x');
  for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<char>('a' + k * 7 % 26);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string got;
  std::thread reader([&] {
    char buf[1 << 15];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  });
  EXPECT_TRUE(write_fully(fds[1], data.data(), data.size()));
  ::close(fds[1]);
  reader.join();
  ::close(fds[0]);
  EXPECT_EQ(got, data);
  errno = 0;
  EXPECT_FALSE(write_fully(-1, data.data(), 10));
  EXPECT_EQ(errno, EBADF);
  EXPECT_TRUE(write_fully(-1, data.data(), 0));  // nothing to write
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
