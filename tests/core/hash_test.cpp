// StreamHash: pieces hashed one after another give hash_bytes of the whole.
#include "bluewhale/core/hash.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace bluewhale {
namespace {

TEST(StreamHash, PiecesGiveTheHashOfTheWhole) {
  std::mt19937 rng(3);
  for (std::size_t total : {std::size_t{0}, std::size_t{1}, std::size_t{240}, std::size_t{100000}}) {
    std::string data(total, '\0');
    for (char& c : data) c = static_cast<char>(rng());
    for (int trial = 0; trial < 5; ++trial) {
      StreamHash h;
      std::size_t at = 0;
      while (at < total) {
        std::size_t n = std::min<std::size_t>(total - at, rng() % 5000);  // empty pieces too
        h.update(data.data() + at, n);
        at += n;
      }
      EXPECT_EQ(h.digest(), hash_bytes(data.data(), total)) << total;
    }
  }
  StreamHash a;
  a.update("abc", 3);
  StreamHash b = std::move(a);
  b.update("def", 3);
  EXPECT_EQ(b.digest(), hash_string("abcdef"));
  EXPECT_NE(b.digest(), hash_string("abcdeg"));
}

}  // namespace
}  // namespace bluewhale
