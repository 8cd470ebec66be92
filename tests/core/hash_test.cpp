// StreamHash: pieces hashed one after another give hash_bytes of the whole.
#include "bluewhale/core/hash.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

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

TEST(CategoricalKey, EightByteValuesAreTheirBigEndianBytesOthersTheirHash) {
  // Criteo's ids: exact, from the bytes alone.
  EXPECT_EQ(categorical_key("68fd1e64"), 0x3638666431653634LL);
  EXPECT_EQ(categorical_key(std::string_view("\0\0\0\0\0\0\0\x01", 8)), 1);
  // Ordered like the text for ASCII values, and distinct for distinct values (no collisions at all).
  std::mt19937_64 rng(5);
  std::vector<std::string> v;
  for (int k = 0; k < 2000; ++k) {
    std::string s(8, ' ');
    for (char& c : s) c = static_cast<char>(0x20 + rng() % 95);
    v.push_back(s);
  }
  v.push_back("00000000");
  v.push_back("0000000:");
  for (std::size_t a = 1; a < v.size(); ++a) {
    EXPECT_GE(categorical_key(v[a]), 0);
    EXPECT_EQ(v[a - 1] < v[a], categorical_key(v[a - 1]) < categorical_key(v[a])) << v[a - 1] << " " << v[a];
    EXPECT_EQ(v[a - 1] == v[a], categorical_key(v[a - 1]) == categorical_key(v[a]));
  }
  // Every other length is hashed.
  for (std::string_view s : {"", "a", "1234567", "123456789", "abcdefghijklmnop"})
    EXPECT_EQ(categorical_key(s), static_cast<int64_t>(hash_string(s))) << s;
}

}  // namespace
}  // namespace bluewhale
