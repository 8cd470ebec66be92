#include "bluewhale/core/hash.h"

#include <xxhash.h>

namespace bluewhale {

uint64_t hash_bytes(const void* data, std::size_t size, uint64_t seed) {
  return seed == 0 ? XXH3_64bits(data, size) : XXH3_64bits_withSeed(data, size, seed);
}

}  // namespace bluewhale
