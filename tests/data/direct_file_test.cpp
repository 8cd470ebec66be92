#include "data/direct_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One file's worth of pieces: a put or a run of zeros, as the shard writer issues them.
struct Piece {
  std::string bytes;  // empty: zeros
  std::size_t zeros = 0;
};

std::vector<Piece> make_pieces(std::size_t total, std::size_t max_piece, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Piece> out;
  std::size_t have = 0;
  while (have < total) {
    std::size_t n = std::min<std::size_t>(total - have, 1 + rng() % max_piece);
    Piece p;
    if (rng() % 4 == 0) {
      p.zeros = n;
    } else {
      p.bytes.resize(n);
      for (char& c : p.bytes) c = static_cast<char>(rng());
    }
    out.push_back(std::move(p));
    have += n;
  }
  return out;
}

std::string write_with(SequentialFileWriter& w, const fs::path& path, const std::vector<Piece>& pieces) {
  w.open(path);
  std::string expect;
  for (const Piece& p : pieces) {
    if (p.bytes.empty()) {
      w.put_zeros(p.zeros);
      expect.append(p.zeros, '\0');
    } else {
      w.put(p.bytes.data(), p.bytes.size());
      expect += p.bytes;
    }
    EXPECT_EQ(w.written(), expect.size());
  }
  w.close();
  return expect;
}

// Sizes around the staging buffer and the direct-I/O block: empty, a byte, one block +-1, a whole
// staging buffer +-1, several buffers with a ragged tail.
TEST(SequentialFileWriter, DirectAndBufferedWriteTheSameBytes) {
  TempDir tmp;
  const std::size_t B = SequentialFileWriter::kDirectAlign, S = SequentialFileWriter::kStagingBytes;
  const std::vector<std::size_t> sizes = {0, 1, 63, B - 1, B, B + 1, S - 1, S, S + 1, 2 * S + 12345, 3 * S + B};
  SequentialFileWriter direct(true), plain(false);
  uint32_t seed = 1;
  for (std::size_t total : sizes) {
    for (std::size_t max_piece : {std::size_t{7}, std::size_t{5000}, S + 3}) {
      if (max_piece < 100 && total > 100000) continue;  // tiny pieces over megabytes: slow, adds nothing
      auto pieces = make_pieces(total, max_piece, seed++);
      const std::string a = write_with(direct, tmp / "direct.bin", pieces);
      const std::string b = write_with(plain, tmp / "plain.bin", pieces);
      ASSERT_EQ(a, b);
      EXPECT_EQ(read_all(tmp / "direct.bin"), a) << "size " << total << ", pieces up to " << max_piece;
      EXPECT_EQ(read_all(tmp / "plain.bin"), a) << "size " << total << ", pieces up to " << max_piece;
    }
  }
}

// One writer, many files (the staging buffer is reused): a long file followed by a short one must not
// carry bytes of the first into the second.
TEST(SequentialFileWriter, ReusedForShorterFile) {
  TempDir tmp;
  SequentialFileWriter w;
  std::string big(3 * SequentialFileWriter::kDirectAlign + 17, 'x'), small = "abc";
  w.open(tmp / "f.bin");
  w.put(big.data(), big.size());
  w.close();
  w.open(tmp / "f.bin");
  w.put(small.data(), small.size());
  w.close();
  EXPECT_EQ(read_all(tmp / "f.bin"), small);
}

TEST(SequentialFileWriter, UncreatableFileIsIoError) {
  TempDir tmp;
  SequentialFileWriter w;
  EXPECT_THROW(w.open(tmp / "no" / "such" / "dir" / "f.bin"), IoError);
}

// Blocks written out of order at aligned offsets, the file then cut to a size inside the last block:
// the same bytes direct or buffered, and the sync queue closes them (close_syncing_later) before wait(),
// an interim sync_later on the way changing nothing.
TEST(PositionalFileWriter, OutOfOrderBlocksDirectAndBufferedGiveTheSameFile) {
  TempDir tmp;
  const std::size_t B = PositionalFileWriter::kDirectAlign;
  ZeroBuffer<char> block(std::size_t{8} << 20);  // page aligned (mapped)
  std::mt19937 rng(9);
  SyncQueue syncs;
  std::string expect(7 * B, '\0');
  for (bool try_direct : {true, false}) {
    PositionalFileWriter w(try_direct);
    const fs::path path = tmp / (try_direct ? "direct.bin" : "plain.bin");
    w.open(path);
    for (std::size_t k : {std::size_t{4}, std::size_t{0}, std::size_t{2}, std::size_t{5}}) {  // blocks 1, 3 never written
      const std::size_t n = (k == 5 ? 2 : 1) * B;
      for (std::size_t j = 0; j < n; ++j) block[j] = static_cast<char>(k * 31 + j % 251);
      w.write_at(block.data(), n, k * B);
      if (try_direct) std::memcpy(expect.data() + k * B, block.data(), n);
      if (k == 0) w.sync_later(syncs);  // an interim flush: the file stays open for the blocks after it
    }
    w.close_syncing_later(6 * B + 100, syncs);  // cuts most of the last block
  }
  syncs.wait();
  expect.resize(6 * B + 100);
  EXPECT_EQ(read_all(tmp / "direct.bin"), expect);
  EXPECT_EQ(read_all(tmp / "plain.bin"), expect);
}

// Switching a file between O_DIRECT and the page cache between blocks changes no byte; where the file
// system refused O_DIRECT at open, asking for it changes nothing.
TEST(PositionalFileWriter, SwitchingModesBetweenBlocksGivesTheSameFile) {
  TempDir tmp;
  const std::size_t B = PositionalFileWriter::kDirectAlign;
  ZeroBuffer<char> block(std::size_t{2} << 20);
  SyncQueue syncs;
  std::string expect(12 * B, '\0');
  PositionalFileWriter w;
  w.open(tmp / "mixed.bin");
  const bool direct_at_open = w.direct();
  for (std::size_t k = 0; k < 12; ++k) {
    w.set_direct(k % 3 != 1);
    EXPECT_EQ(w.direct(), direct_at_open && k % 3 != 1) << k;
    for (std::size_t j = 0; j < B; ++j) block[j] = static_cast<char>(k * 17 + j % 239);
    w.write_at(block.data(), B, (11 - k) * B);
    std::memcpy(expect.data() + (11 - k) * B, block.data(), B);
  }
  w.close_syncing_later(11 * B + 7, syncs);
  syncs.wait();
  expect.resize(11 * B + 7);
  EXPECT_EQ(read_all(tmp / "mixed.bin"), expect);

  PositionalFileWriter never(false);
  never.open(tmp / "plain.bin");
  never.set_direct(true);
  EXPECT_FALSE(never.direct());
  never.close_syncing_later(0, syncs);
  syncs.wait();
}

// The choice is the median cost of the first kSamples blocks of kMinBlock bytes or more, against the
// limit: a few slow (preempted) writes do not decide it, smaller blocks are not counted.
TEST(WriteModeChoice, MedianOfTheFirstBigBlocksAgainstTheLimit) {
  const std::size_t big = WriteModeChoice::kMinBlock, n = WriteModeChoice::kSamples;
  {
    WriteModeChoice cheap(500'000);  // ns per MiB
    EXPECT_FALSE(cheap.direct());
    EXPECT_FALSE(cheap.decided());
    EXPECT_TRUE(std::isnan(cheap.measured_ns_per_mib()));
    for (std::size_t k = 0; k < n - 1; ++k) {
      // 64 KiB in 10 us: 160 us a MiB; every fourth write stalled 50 ms (4e8 ns a MiB).
      cheap.note_buffered(big, k % 4 == 0 ? 50'000'000 : 10'000);
      cheap.note_buffered(big - 1, 1'000'000'000);  // too small to count
    }
    EXPECT_FALSE(cheap.decided());
    cheap.note_buffered(2 * big, 20'000);
    EXPECT_TRUE(cheap.decided());
    EXPECT_FALSE(cheap.direct());
    EXPECT_DOUBLE_EQ(cheap.measured_ns_per_mib(), 160'000);
    cheap.note_buffered(big, 1'000'000'000);  // decided once
    EXPECT_FALSE(cheap.direct());
  }
  {
    WriteModeChoice dear(500'000);
    for (std::size_t k = 0; k < n; ++k) dear.note_buffered(big, k % 4 == 0 ? 10'000 : 100'000);  // 1.6 ms a MiB
    EXPECT_TRUE(dear.decided());
    EXPECT_TRUE(dear.direct());
    EXPECT_DOUBLE_EQ(dear.measured_ns_per_mib(), 1'600'000);
  }
  {
    WriteModeChoice always(std::numeric_limits<double>::infinity()), never(0);
    for (std::size_t k = 0; k < n; ++k) {
      always.note_buffered(big, 1'000'000'000);
      never.note_buffered(big, 1);
    }
    EXPECT_FALSE(always.direct());
    EXPECT_TRUE(never.direct());
  }
}

TEST(SyncQueue, ManyFilesAllSyncedAndClosed) {
  TempDir tmp;
  SyncQueue syncs;
  SequentialFileWriter w;
  for (int k = 0; k < 9; ++k) {  // more than the queue keeps in flight
    w.open(tmp / ("f" + std::to_string(k)));
    std::string text = "file " + std::to_string(k);
    w.put(text.data(), text.size());
    w.close_syncing_later(syncs);
  }
  EXPECT_NO_THROW(syncs.wait());
  for (int k = 0; k < 9; ++k) EXPECT_EQ(read_all(tmp / ("f" + std::to_string(k))), "file " + std::to_string(k));
  EXPECT_NO_THROW(syncs.wait());  // nothing pending: a no-op

  // The non-waiting form: taken whenever fewer than its limit are running (none here); a refusal would
  // leave the descriptor to the caller.
  const int fd = ::open((tmp / "f0").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(syncs.try_sync_and_close(fd, tmp / "f0"));
  EXPECT_NO_THROW(syncs.wait());
  int accepted = 0;
  for (int k = 0; k < 12; ++k) {
    const int d = ::open((tmp / "f1").c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(d, 0);
    if (syncs.try_sync_and_close(d, tmp / "f1")) ++accepted;
    else ::close(d);
  }
  EXPECT_GE(accepted, 4);
  EXPECT_NO_THROW(syncs.wait());
}

}  // namespace
}  // namespace bluewhale
