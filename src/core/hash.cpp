#include "bluewhale/core/hash.h"

#include <new>
#include <utility>

#include <xxhash.h>

namespace bluewhale {

uint64_t hash_bytes(const void* data, std::size_t size, uint64_t seed) {
  return seed == 0 ? XXH3_64bits(data, size) : XXH3_64bits_withSeed(data, size, seed);
}

StreamHash::StreamHash() : state_(XXH3_createState()) {
  if (!state_) throw std::bad_alloc();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}
StreamHash::~StreamHash() {
  if (state_) XXH3_freeState(static_cast<XXH3_state_t*>(state_));
}
StreamHash::StreamHash(StreamHash&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
StreamHash& StreamHash::operator=(StreamHash&& o) noexcept {
  std::swap(state_, o.state_);
  return *this;
}
void StreamHash::update(const void* data, std::size_t size) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, size);
}
uint64_t StreamHash::digest() const { return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_)); }

}  // namespace bluewhale
