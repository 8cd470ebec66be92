#include "data/direct_file.h"

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <random>
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

}  // namespace
}  // namespace bluewhale
