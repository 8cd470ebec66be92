// Stable LSD radix sort of 64-bit items by a range of their bits: the AUC's sort of (score key, label)
// items (core/metrics.cpp) and categorify's sort of (count, key) words (prep/ops/categorify.cpp).
#pragma once

#include <cstdint>

namespace bluewhale {

// Sorts n items of src by their bits [first_bit, first_bit + bits) as an unsigned number, stably (items
// with equal bits keep their order), 11 bits a pass; a pass whose digit is the same in every item moves
// nothing and is skipped. From 2^16 items on, each pass counts and scatters in up to `threads` slices in
// slice order, so the result is the same for any thread count. tmp has room for n items; both buffers
// are overwritten. Returns the one that holds the sorted items (src or tmp).
// Requires first_bit >= 0, bits >= 1 and first_bit + bits <= 64.
uint64_t* radix_sort(uint64_t* src, uint64_t* tmp, int64_t n, int first_bit, int bits, int threads = 1);

}  // namespace bluewhale
