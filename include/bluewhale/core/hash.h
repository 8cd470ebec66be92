// Fast non-cryptographic hashing, shared by checksums, categorical keys and seeded decisions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace bluewhale {

// 64-bit XXH3 of a byte range. Stable across platforms and versions: it is stored in files.
uint64_t hash_bytes(const void* data, std::size_t size, uint64_t seed = 0);

// hash_bytes (seed 0) of a byte sequence fed in pieces: the digest equals hash_bytes of all pieces
// concatenated. Movable, not copyable.
class StreamHash {
 public:
  StreamHash();
  ~StreamHash();
  StreamHash(StreamHash&& o) noexcept;
  StreamHash& operator=(StreamHash&& o) noexcept;
  StreamHash(const StreamHash&) = delete;
  StreamHash& operator=(const StreamHash&) = delete;
  void update(const void* data, std::size_t size);
  uint64_t digest() const;

 private:
  void* state_ = nullptr;  // XXH3_state_t
};
inline uint64_t hash_string(std::string_view s, uint64_t seed = 0) { return hash_bytes(s.data(), s.size(), seed); }

// The int64 key of a categorical value (the text reader's keys for categorical, multi and sequence
// fields, which categorify, hash, cross and the encoders work on). A value of exactly 8 bytes (Criteo's
// hex ids) is its bytes read as a big-endian integer: exact, no hashing, and ordered like the text (for
// ASCII the key is non-negative). Any other length is hash_string of its bytes; that it equals the key of
// an 8-byte value present in the same column is as unlikely as two hash_string values colliding (2^-64).
// Stored dictionaries hold these keys: changing the definition means a new kCategoricalKeyScheme.
// categorical_key of the 8-byte value at p.
inline int64_t categorical_key8(const char* p) {
  uint64_t x;
  __builtin_memcpy(&x, p, 8);
  return static_cast<int64_t>(__builtin_bswap64(x));
}
inline int64_t categorical_key(std::string_view s) {
  return s.size() == 8 ? categorical_key8(s.data()) : static_cast<int64_t>(hash_string(s));
}
// The definition of categorical_key in force; prep stores it with every dataset and --apply-to refuses a
// dataset prepared under another (its dictionaries would map no value).
inline constexpr int kCategoricalKeyScheme = 2;

// Bijective 64-bit mixer (splitmix64 finaliser): spreads integer keys and derives seeded decisions from
// row numbers, e.g. mix64(row ^ seed) for reproducible splits.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Maps a 64-bit hash to a uniform double in [0, 1).
inline double unit_interval(uint64_t h) { return static_cast<double>(h >> 11) * 0x1.0p-53; }

}  // namespace bluewhale
