// Open-addressing hash tables keyed by int64 for the fit and transform hot paths of the operators.
//
// Both use linear probing over a power-of-two slot array, with INT64_MIN as the empty-slot marker and
// that one key kept in a side slot, so every int64 key is storable. std::unordered_map allocates a node
// per key and chases a pointer per lookup, several times slower at 10M keys. Slots hold a key as
// stored_key(key) = key ^ INT64_MIN, so an empty slot is all zero bytes: the slot arrays are ZeroBuffers
// (fresh zero pages, huge pages when large), with no pass that writes an empty marker into every slot.
// Both also have a compact layout for keys of 8 hex digits (see pack_hex_key): one word per slot.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "core/zero_buffer.h"
#include "prep/ops/key_kernels.h"

namespace bluewhale::prep_ops {

inline constexpr int64_t kEmptyKey = std::numeric_limits<int64_t>::min();

// A key as slots store it (its own inverse): INT64_MIN, the one key kept in a side slot, becomes 0,
// the empty slot.
inline int64_t stored_key(int64_t key) { return key ^ kEmptyKey; }

inline std::size_t pow2_at_least(std::size_t n) {
  std::size_t c = 1;
  while (c < n) c <<= 1;
  return c;
}

// Criteo-style ids: categorical_key (core/hash.h) of an 8-character value of lowercase hex digits holds
// 32 bits of information, its hex value; tables store such keys in 4 bytes instead of 8.
// pack_hex_key: false unless every byte of the big-endian key is 0-9 or a-f; else packed = the value.
inline bool pack_hex_key(int64_t key, uint32_t& packed) {
  const uint64_t x = static_cast<uint64_t>(key);
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  // Per byte below 0x80, the high bit of byte + 0x80 - lo says byte >= lo (no carry between bytes).
  auto at_least = [x](uint64_t lo) { return (x + (0x80 - lo) * kOnes) & kHigh; };
  const uint64_t digit = at_least('0') & ~at_least('9' + 1);
  const uint64_t alpha = at_least('a') & ~at_least('f' + 1);
  if ((x & kHigh) != 0 || (digit | alpha) != kHigh) return false;
  uint64_t v = (x & 0x0F0F0F0F0F0F0F0FULL) + (alpha >> 7) * 9;  // each byte: its digit's value
  v = (v | (v >> 4)) & 0x00FF00FF00FF00FFULL;
  v = (v | (v >> 8)) & 0x0000FFFF0000FFFFULL;
  v = (v | (v >> 16)) & 0x00000000FFFFFFFFULL;
  packed = static_cast<uint32_t>(v);
  return true;
}

// The key pack_hex_key packed into p.
inline int64_t unpack_hex_key(uint32_t p) {
  uint64_t v = p;
  v = (v | (v << 16)) & 0x0000FFFF0000FFFFULL;
  v = (v | (v << 8)) & 0x00FF00FF00FF00FFULL;
  v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0FULL;
  const uint64_t alpha = ((v + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;  // digit >= 10
  return static_cast<int64_t>(v + 0x3030303030303030ULL + alpha * ('a' - '0' - 10));
}

// Linear probing in a compact layout's words (packed key in the low half, 0 when empty) from slot
// h & mask: the slot that holds packed key q, or the empty slot where the probe stopped; q = kUnpacked
// (above every packed key) holds in no slot. One branch per step (the min is 0 when the slot is empty
// or holds q): whether a key is found, new or missing is data, and a branch on each mispredicts.
inline std::size_t probe_packed(const uint64_t* words, std::size_t mask, uint64_t q, uint64_t h) {
  std::size_t i = h & mask;
  for (uint64_t w = words[i]; std::min((w & 0xFFFFFFFF) ^ q, w) != 0; w = words[i]) i = (i + 1) & mask;
  return i;
}

// key -> int64 value; built once (fit or load), then read concurrently by const lookups.
//
// Two layouts. Wide: a slot is (stored_key(key), value). Compact (made by assign() when every key packs,
// see pack_hex_key, and every value is in [0, 2^32 - 2]): a slot is one word, (value + 1) << 32 | packed
// key, 0 when empty, with twice the slots per key in the same bytes. The lower load matters more
// than the bytes: a lookup whose probe runs past its first slot is a mispredicted branch, and at the
// wide layout's load (up to 2/3) that was most of the time a lookup took on small tables.
class KeyIndex {
 public:
  // Compact tables bigger than this are filled to 1/2 instead of 1/3 (assign()).
  static constexpr std::size_t kDenseIndexBytes = std::size_t{512} << 10;
  KeyIndex() { rehash(kMinCapacity); }

  // Sizes the table for n keys without rehashing later (wide layout).
  void reserve(std::size_t n) {
    BW_ASSERT(!compact_, "KeyIndex::reserve on a compact index");
    std::size_t cap = pow2_at_least(std::max(kMinCapacity, n + n / 2 + 1));
    if (cap > slots_.size()) rehash(cap);
  }

  // Returns the value stored for key, inserting value_if_new first when absent; second = inserted.
  // Wide layout only.
  std::pair<int64_t*, bool> get_or_add(int64_t key, int64_t value_if_new) {
    BW_ASSERT(!compact_, "KeyIndex::get_or_add on a compact index");
    tiny_ = false;  // the entries copied by assign() no longer cover every key
    if (key == kEmptyKey) {
      bool inserted = !has_empty_key_;
      if (inserted) empty_key_value_ = value_if_new;
      has_empty_key_ = true;
      return {&empty_key_value_, inserted};
    }
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);  // load <= 3/4
    const int64_t sk = stored_key(key);
    std::size_t i = mix64(static_cast<uint64_t>(key)) & mask_;
    for (;;) {
      Slot& s = slots_[i];
      if (s.key == sk) return {&s.value, false};
      if (s.key == 0) {
        s.key = sk;
        s.value = value_if_new;
        ++size_;
        return {&s.value, true};
      }
      i = (i + 1) & mask_;
    }
  }

  // Replaces the contents with keys[j] -> first_value + j for j < n: compact (see the class comment) when
  // every key but INT64_MIN packs and every value is in [0, 2^32 - 2], wide otherwise. Returns false
  // when a key repeats (the contents are then unspecified). The compact layout is filled directly: no
  // wide table is built first (fresh memory, costly on virtual machines).
  bool assign(const int64_t* keys, std::size_t n, int64_t first_value) {
    bool packs = first_value >= 0 && static_cast<int64_t>(n) <= kMaxCompactValue - first_value + 1;
    for (std::size_t j = 0; packs && j < n; ++j) {
      uint32_t p = 0;
      packs = keys[j] == kEmptyKey || pack_hex_key(keys[j], p);
    }
    *this = KeyIndex();
    if (!packs) {
      reserve(n);
      for (std::size_t j = 0; j < n; ++j)
        if (!get_or_add(keys[j], first_value + static_cast<int64_t>(j)).second) return false;
      note_tiny();
      return true;
    }
    // Load <= 1/3; tables past L2 size (where a lookup costs its cache miss, not its mispredicted probe
    // steps) at load <= 1/2: half the memory, which the dataset writer's buffers then reuse.
    std::size_t cap = pow2_at_least(std::max(kMinCapacity, 3 * n + 1));
    if (cap * sizeof(uint64_t) > kDenseIndexBytes) cap = std::max(pow2_at_least(2 * n + 1), kDenseIndexBytes / sizeof(uint64_t));
    words_ = ZeroBuffer<uint64_t>(cap, Pages::kHuge);
    slots_ = ZeroBuffer<Slot>();
    mask_ = cap - 1;
    compact_ = true;
    for (std::size_t j = 0; j < n; ++j) {
      const int64_t value = first_value + static_cast<int64_t>(j);
      if (keys[j] == kEmptyKey) {
        if (has_empty_key_) return false;
        has_empty_key_ = true;
        empty_key_value_ = value;
        continue;
      }
      uint32_t p = 0;
      pack_hex_key(keys[j], p);
      std::size_t i = mix64(static_cast<uint64_t>(keys[j])) & mask_;
      for (; words_[i] != 0; i = (i + 1) & mask_)
        if (static_cast<uint32_t>(words_[i]) == p) return false;
      words_[i] = (static_cast<uint64_t>(value) + 1) << 32 | p;
      ++size_;
    }
    while (words_[empty_slot_] != 0) ++empty_slot_;  // there is one: the load is at most 1/2
    note_tiny();
    return true;
  }
  // Whether assign() chose the compact layout (for tests).
  bool is_compact() const { return compact_; }
  // Whether find_batch compares keys with a list of entries (for tests).
  bool is_tiny() const { return tiny_; }

  int64_t find(int64_t key, int64_t not_found) const {
    if (key == kEmptyKey) return has_empty_key_ ? empty_key_value_ : not_found;
    const uint64_t h = mix64(static_cast<uint64_t>(key));
    if (!compact_) return probe(key, h, not_found);
    uint32_t p = 0;
    return pack_hex_key(key, p) ? probe_compact(words_.data(), mask_, p, h, not_found) : not_found;
  }

  // out[j] = find(keys[j], not_found) for j < n; out may alias keys. Keys are hashed (and packed, for a
  // compact index) a block at a time (key_kernels.h). Large tables miss the cache on almost every lookup,
  // so the slot of key j + kAhead is prefetched while key j is probed: the misses then overlap instead of
  // being paid one after the other. A table that fits in L1/L2 skips that. An index that assign() gave at
  // most kTinyKeys keys compares every key with its entries instead (FindTinyFn, key_kernels.h).
  void find_batch(const int64_t* keys, std::size_t n, int64_t* out, int64_t not_found) const {
    if (tiny_)
      find_tiny_for(simd_level())(keys, n, tiny_keys_.data(), tiny_values_.data(), tiny_keys_.size(), not_found, out);
    else if (compact_)
      find_batch_impl<true>(keys, n, out, not_found);
    else
      find_batch_impl<false>(keys, n, out, not_found);
  }

  std::size_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }
  std::size_t bytes() const { return compact_ ? words_.size() * sizeof(uint64_t) : slots_.size() * sizeof(Slot); }

  // Visits every (key, value) in slot order (not a meaningful order: callers sort when it matters).
  template <class F>
  void for_each(F&& f) const {
    if (has_empty_key_) f(kEmptyKey, empty_key_value_);
    if (compact_) {
      for (const uint64_t w : words_)
        if (w != 0) f(unpack_hex_key(static_cast<uint32_t>(w)), static_cast<int64_t>(w >> 32) - 1);
      return;
    }
    for (const Slot& s : slots_)
      if (s.key != 0) f(stored_key(s.key), s.value);
  }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  static constexpr std::size_t kCachedBytes = std::size_t{64} << 10;
  static constexpr int64_t kMaxCompactValue = (int64_t{1} << 32) - 2;
  struct Slot {
    int64_t key;  // stored_key(key); 0: empty
    int64_t value;
  };

  template <bool kCompact>
  void find_batch_impl(const int64_t* keys, std::size_t n, int64_t* out, int64_t not_found) const {
    constexpr std::size_t kAhead = 64;
    constexpr std::size_t kBlock = 256;
    const HashKeysFn hash = hash_keys_for(simd_level());
    const HashPackKeysFn hash_pack = hash_pack_keys_for(simd_level());
    const bool ahead = bytes() > kCachedBytes;
    // Hashes (and packed keys) of the current block and of the next one, computed before the current
    // block's results overwrite anything (out may alias keys), so prefetches run ahead across blocks.
    uint64_t hb[2][kBlock];
    uint64_t qb[kCompact ? 2 : 1][kCompact ? kBlock : 1];
    auto prepare = [&](std::size_t begin, std::size_t m, int buf) {
      if constexpr (kCompact)
        hash_pack(keys + begin, m, hb[buf], qb[buf]);
      else
        hash(keys + begin, m, hb[buf]);
    };
    // The table's fields in locals: `out` is int64_t, which may alias them (size_t and pointers
    // included, as far as the compiler knows), and they were loaded again after every store.
    const uint64_t* const words = words_.data();
    const std::size_t mask = mask_;
    const uint64_t empty_slot = empty_slot_;
    auto prefetch = [&](uint64_t h) {
      if constexpr (kCompact)
        __builtin_prefetch(&words[h & mask]);
      else
        __builtin_prefetch(&slots_[h & mask]);
    };
    auto look = [&](int64_t key, int buf, std::size_t j) {
      if constexpr (kCompact) {
        if (key == kEmptyKey) [[unlikely]]
          return has_empty_key_ ? empty_key_value_ : not_found;
        // A key that does not pack (a missing value's 0 among them: 40 % of some columns' rows) starts at
        // an empty slot, so it leaves the probe at the first step like any other key, not after a walk
        // through whatever cluster its hash lands in. Selected by a mask: as a conditional, GCC made it
        // a branch on whether the value is missing.
        const uint64_t q = qb[buf][j];
        const uint64_t unpacked = uint64_t{0} - static_cast<uint64_t>(q == kUnpacked);
        const uint64_t h = (hb[buf][j] & ~unpacked) | (empty_slot & unpacked);
        return probe_compact(words, mask, q, h, not_found);
      } else {
        return probe(key, hb[buf][j], not_found);
      }
    };
    int cur = 0;
    if (n > 0) prepare(0, std::min(n, kBlock), cur);
    if (ahead)
      for (std::size_t j = 0; j < std::min({n, kAhead, kBlock}); ++j) prefetch(hb[cur][j]);
    if constexpr (kCompact) {
      // Where gathers are (AVX-512), eight lookups at a time (FindCompactFn), kGroup keys per call, the
      // slots of the keys kAhead on prefetched before each call. An index holding INT64_MIN (in its side
      // slot, which the kernel does not see) stays with the loop below, which checks every key for it.
      // A loop of its own, not a branch inside the one below: one block loop for both (a review's merge)
      // took 33-39 ms more pass 2 CPU on 1M Criteo rows (ab.py, 10 and 12 pairs).
      constexpr std::size_t kGroup = 32;
      const FindCompactFn find_compact = simd_level() >= SimdLevel::kAvx512 ? find_compact_for(simd_level()) : nullptr;
      if (find_compact && !has_empty_key_) {
        for (std::size_t b = 0; b < n; b += kBlock) {
          const std::size_t m = std::min(kBlock, n - b);
          const std::size_t m_next = b + m < n ? std::min(kBlock, n - b - m) : 0;
          if (m_next > 0) prepare(b + m, m_next, 1 - cur);
          for (std::size_t j = 0; j < m; j += kGroup) {
            const std::size_t g = std::min(kGroup, m - j);
            if (ahead)
              for (std::size_t a = j + kAhead; a < j + kAhead + g; ++a) {
                if (a < m)
                  prefetch(hb[cur][a]);
                else if (a - m < m_next)
                  prefetch(hb[1 - cur][a - m]);
              }
            find_compact(words, mask, hb[cur] + j, qb[cur] + j, g, not_found, out + b + j);
          }
          cur = 1 - cur;
        }
        return;
      }
    }
    for (std::size_t b = 0; b < n; b += kBlock) {
      const std::size_t m = std::min(kBlock, n - b);
      const std::size_t m_next = b + m < n ? std::min(kBlock, n - b - m) : 0;
      if (m_next > 0) prepare(b + m, m_next, 1 - cur);
      if (ahead) {
        for (std::size_t j = 0; j < m; ++j) {
          const std::size_t a = j + kAhead;
          if (a < m)
            prefetch(hb[cur][a]);
          else if (a - m < m_next)
            prefetch(hb[1 - cur][a - m]);
          out[b + j] = look(keys[b + j], cur, j);
        }
      } else {
        for (std::size_t j = 0; j < m; ++j) out[b + j] = look(keys[b + j], cur, j);
      }
      cur = 1 - cur;
    }
  }

  int64_t probe(int64_t key, uint64_t h, int64_t not_found) const {
    if (key == kEmptyKey) [[unlikely]]
      return has_empty_key_ ? empty_key_value_ : not_found;
    const int64_t sk = stored_key(key);
    std::size_t i = h & mask_;
    for (;;) {
      const Slot& s = slots_[i];
      if (s.key == sk) return s.value;
      if (s.key == 0) return not_found;
      i = (i + 1) & mask_;
    }
  }

  // q: the packed key, or kUnpacked (matches no slot) for a key that does not pack. The result is picked
  // without a branch too (with the two branches of a plain probe, Criteo's lookups took 5-10 % more
  // cycles).
  static int64_t probe_compact(const uint64_t* words, std::size_t mask, uint64_t q, uint64_t h, int64_t not_found) {
    const uint64_t w = words[probe_packed(words, mask, q, h)];
    return w == 0 ? not_found : static_cast<int64_t>(w >> 32) - 1;
  }

  void rehash(std::size_t capacity) {
    ZeroBuffer<Slot> old = std::move(slots_);
    slots_ = ZeroBuffer<Slot>(capacity, Pages::kHuge);
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.key == 0) continue;
      std::size_t i = mix64(static_cast<uint64_t>(stored_key(s.key))) & mask_;
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  // After assign(): the keys and values as lists for find_batch when there are at most kTinyKeys.
  void note_tiny() {
    tiny_keys_.clear();
    tiny_values_.clear();
    tiny_ = size() <= kTinyKeys;
    if (!tiny_) return;
    for_each([&](int64_t k, int64_t v) {
      tiny_keys_.push_back(k);
      tiny_values_.push_back(v);
    });
  }

  ZeroBuffer<Slot> slots_;
  ZeroBuffer<uint64_t> words_;  // the compact layout's slots (slots_ is then empty)
  std::vector<int64_t> tiny_keys_, tiny_values_;  // see note_tiny
  bool tiny_ = false;
  std::size_t mask_ = 0, size_ = 0;
  std::size_t empty_slot_ = 0;  // compact layout: an empty slot, where keys that do not pack start
  bool compact_ = false;
  bool has_empty_key_ = false;
  int64_t empty_key_value_ = 0;
};

// One distinct key seen during a fit: how often, and the smallest global row it appeared in.
struct KeyCount {
  int64_t key;
  int64_t count;
  int64_t first;
};

// Occurrence counter for one column on one thread. The caller checks full() before add() and either
// grows or spills (release_sorted) the table, which is how the memory budget is enforced.
//
// Two slot layouts over one array of 64-bit words. Compact (while every key counted packs, see
// pack_hex_key): one word per slot, count << 32 | packed key, 0 when empty (an entry's count is >= 1).
// Wide: two words per slot, stored_key(key) and count (0 key: empty). A table starts compact unless it
// tracks first rows, and turns wide for good (same capacity, every entry at the same slot: positions come
// from mix64 of the full key in both layouts) at its first key that does not pack or when a count would
// pass 2^32 - 2. Criteo's 26 columns all stay compact, which halves the counting memory: fewer cache
// misses, and less fresh memory (page zeroing is a large cost on the virtual machines prep runs on).
// The first rows live in a parallel array that exists only for a table made with track_first (order:
// first needs them; counting by frequency does not). Without track_first every KeyCount::first reads 0.
class CountTable {
  static constexpr uint64_t kTaken = 0xFFFFFFFF;     // compact count of an entry take() took
  static constexpr uint64_t kMaxCompact = kTaken - 1;  // the largest compact count

 public:
  static constexpr std::size_t kMinCapacity = 1024;

  // Slot arrays that tables gave up when they grew, kept (one per size, from kPoolMinBytes up) for the
  // next table that grows to that size. Zeroing memory the process already touched (a memset, ~16 GB/s)
  // is far cheaper than fresh pages (~0.5 GB/s on the virtual machines prep runs on), and the columns of
  // one thread grow through the same sizes: a column's old 4 MiB array becomes another's new one. Holds
  // at most one array per size, so less than twice its largest. Not thread-safe: one per thread,
  // declared before the tables that use it (it must outlive them).
  class Pool {
   public:
    static constexpr std::size_t kPoolMinBytes = kHugeThreshold;  // smaller arrays: malloc recycles them
    ZeroBuffer<uint64_t> take(std::size_t words) {
      for (std::size_t k = 0; k < free_.size(); ++k)
        if (free_[k].size() == words) {
          ZeroBuffer<uint64_t> out = std::move(free_[k]);
          free_[k] = std::move(free_.back());
          free_.pop_back();
          std::memset(static_cast<void*>(out.data()), 0, words * sizeof(uint64_t));
          ++reused_;
          return out;
        }
      return ZeroBuffer<uint64_t>(words, Pages::kHuge);
    }
    void give(ZeroBuffer<uint64_t>&& b) {
      if (b.size() * sizeof(uint64_t) < kPoolMinBytes) return;
      for (const auto& f : free_)
        if (f.size() == b.size()) return;  // one per size is enough; this one is released
      free_.push_back(std::move(b));
    }
    std::size_t reused() const { return reused_; }  // take() calls served from the pool, for tests
    void release() { free_.clear(); }                // frees the arrays held (tables keep using the pool)

   private:
    std::vector<ZeroBuffer<uint64_t>> free_;
    std::size_t reused_ = 0;
  };

  // Slot arrays of later growth come from `pool` and go back to it (nullptr: fresh arrays each time).
  void set_pool(Pool* pool) { pool_ = pool; }

  // capacity kDeferred: no slots until the first growth (has_room() is false, so callers grow before they
  // add). KeyCounter starts every column's table on every thread that way: most are never used (a thread
  // counts its own columns; a column of a few values counts in TinyCounts), and each fresh 4 KiB page
  // costs ~11 us on the virtual machines prep runs on (making 52 tables and 52 tiny counters took 2-3 ms
  // of a 1M Criteo run's serial set-up).
  static constexpr std::size_t kDeferred = 0;
  explicit CountTable(std::size_t capacity = kMinCapacity, bool track_first = true) : track_first_(track_first) {
    if (capacity == kDeferred)
      compact_ = !track_first_;
    else
      reset(capacity);
  }

  bool track_first() const { return track_first_; }
  // Whether entries are in the compact layout (for tests and summaries).
  bool compact() const { return compact_; }
  bool full() const { return has_room(1) == false; }
  // Whether m more distinct keys fit under the load limit: 0.7, or 0.85 after allow_late_load().
  bool has_room(std::size_t m) const { return (size_ + m) * 20 <= cap_ * load_limit_20ths_; }
  // Lets the table fill to 0.85 before it grows, for the last keys of an input: a table that passes
  // 0.7 near the end would otherwise double (fresh memory and a rehash of every key, ~50 ms for a
  // 1M-slot table on the VMs prep runs on) for a few percent more keys. Probes at 0.85 are longer, but
  // only for what is left. False when already allowed.
  bool allow_late_load() {
    if (load_limit_20ths_ == kLateLoad20ths) return false;
    load_limit_20ths_ = kLateLoad20ths;
    return true;
  }
  std::size_t bytes() const { return w_.size() * sizeof(uint64_t) + first_.size() * sizeof(int64_t); }
  std::size_t capacity() const { return cap_; }
  std::size_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }

  void add(int64_t key, int64_t row) {
    if (key == kEmptyKey) {
      absorb_empty(KeyCount{key, 1, track_first_ ? row : 0});
      return;
    }
    BW_ASSERT(!full(), "CountTable::add on a full table");
    insert(key, mix64(static_cast<uint64_t>(key)), 1, row);
  }

  // Keys per block of KeyCounter::add_many between room checks.
  static constexpr std::size_t kBlock = 16;

  // Adds n >= 1 occurrences of key at once (first seen at `row`); room checked by the caller.
  void add_n(int64_t key, int64_t n, int64_t row) {
    BW_ASSERT(n >= 1);
    if (key == kEmptyKey) {
      absorb_empty(KeyCount{key, n, track_first_ ? row : 0});
      return;
    }
    insert(key, mix64(static_cast<uint64_t>(key)), n, row);
  }

  // Starts pulling the slot a key with hash h (mix64 of the key) probes first into the cache.
  // Always inlined: a function whose body is only prefetches looks free of side effects to GCC's
  // interprocedural analysis, which then deletes the calls before inlining them (GCC 12 at -O2 left
  // KeyCounter::add_many's loop with no prefetch at all).
  [[gnu::always_inline]] void prefetch(uint64_t h) const {
    __builtin_prefetch(slot_word(h & mask_), 1);
    if (track_first_) __builtin_prefetch(&first_[h & mask_], 1);
  }

  // add() for a key whose hash h = mix64(key) is already known (room checked by the caller). Without
  // kTrackFirst `row` is ignored (callers that never read KeyCount::first).
  template <bool kTrackFirst>
  void add_hashed(int64_t key, uint64_t h, int64_t row) {
    if (key == kEmptyKey) [[unlikely]] {
      add(key, kTrackFirst ? row : 0);
      return;
    }
    insert(key, h, 1, kTrackFirst ? row : 0);
  }

  // add() of one occurrence of a key that packs to p (pack_hex_key; its hash h = mix64(key)) into a
  // compact table without first rows (room checked by the caller). KeyCounter packs a whole batch of keys
  // in one vectorisable loop before counting them, so the probe loop here is all that runs per key.
  void add_packed(uint32_t p, uint64_t h) {
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      uint64_t& w = w_[i];
      if (w == 0) {
        w = uint64_t{1} << 32 | p;
        ++size_;
        return;
      }
      if (static_cast<uint32_t>(w) == p) {
        if ((w >> 32) == kMaxCompact) [[unlikely]] {
          insert(unpack_hex_key(p), h, 1, 0);  // turns the table wide first
          return;
        }
        w += uint64_t{1} << 32;
        return;
      }
    }
  }

  // Small tables count through lanes. Most of a small column's keys are a few frequent values, so the
  // same slot comes back every few keys, and an increment of a slot the previous key just incremented
  // waits for that store (store-to-load forwarding, ~6 cycles a key on a table in L1). A compact table of
  // at most kLaneSlots slots instead keeps its slots for the keys (and new entries, count 1) during a
  // batch, and the batch's counts go to four lanes of per-slot counters, key j's to lane j % 4, so that
  // equal keys in a row update different counters. add_lanes() adds the lanes into the counts and zeroes
  // them; slots move when the table grows, so it runs before any growth. Larger tables gain nothing:
  // their keys repeat less often, and adding the lanes in costs a pass over the table.
  static constexpr std::size_t kLaneSlots = 2048;
  bool counts_through_lanes() const { return compact_ && cap_ <= kLaneSlots; }

  // Counts one occurrence of a key that packs to p (its hash h) in lanes[slot] (one lane of cap_
  // counters), or as a new entry of count 1; room checked by the caller.
  void add_packed_lane(uint32_t p, uint64_t h, uint32_t* lane) {
    BW_ASSERT(counts_through_lanes());
    const std::size_t i = probe_packed(w_.data(), mask_, p, h);
    if (w_[i] == 0) [[unlikely]] {
      w_[i] = uint64_t{1} << 32 | p;
      ++size_;
      return;
    }
    ++lane[i];
  }

  // Adds lanes[k * cap_ + i] (k < 4) to slot i's count and zeroes them (4 * capacity() counters). A count
  // past the compact limit turns the table wide first.
  void add_lanes(uint32_t* lanes) {
    BW_ASSERT(counts_through_lanes());
    const std::size_t cap = cap_;
    uint32_t* l1 = lanes + cap;
    uint32_t* l2 = lanes + 2 * cap;
    uint32_t* l3 = lanes + 3 * cap;
    uint64_t most = 0;
    for (std::size_t i = 0; i < cap; ++i) {
      lanes[i] += l1[i] + l2[i] + l3[i];  // at most a batch's keys: no overflow
      most = std::max(most, (w_[i] >> 32) + lanes[i]);
    }
    if (most > kMaxCompact) [[unlikely]] {
      widen();
      for (std::size_t i = 0; i < cap; ++i) w_[2 * i + 1] += lanes[i];
    } else {
      for (std::size_t i = 0; i < cap; ++i) w_[i] += uint64_t{lanes[i]} << 32;
    }
    std::memset(lanes, 0, 4 * cap * sizeof(uint32_t));
  }

  // Turns a compact table wide for good (same capacity, every entry at the same slot), as its first key
  // that does not pack does; a no-op on a wide table.
  void widen() {
    if (!compact_) return;
    ZeroBuffer<uint64_t> wide = take_words(2 * cap_);
    for (std::size_t i = 0; i < cap_; ++i) {
      const uint64_t w = w_[i];
      if (w == 0) continue;
      const uint64_t c = w >> 32;
      wide[2 * i] = static_cast<uint64_t>(stored_key(unpack_hex_key(static_cast<uint32_t>(w))));
      wide[2 * i + 1] = c == kTaken ? 0 : c;
    }
    ZeroBuffer<uint64_t> old = std::move(w_);
    w_ = std::move(wide);
    compact_ = false;
    if (pool_) pool_->give(std::move(old));
  }

  // Adds every entry of `other` (counts summed, first = the smaller), growing as needed; the result is
  // what counting both tables' inputs into one table gives. Both tables must agree on track_first.
  void merge_from(const CountTable& other) {
    BW_ASSERT(track_first_ == other.track_first_, "CountTable::merge_from across track_first modes");
    // Grows only when the union needs it: the tables of two threads share most keys, and sizing for the
    // sum of both (the old way) doubled the biggest tables for nothing.
    if (other.has_empty_key_) absorb_empty(other.empty_key_);
    if (cap_ == 0 && other.size() > 0) grow();  // slots to prefetch into (a deferred table has none)
    // Entries of `other` come in slot order, which is random in this table: prefetch kAhead ahead.
    constexpr std::size_t kAhead = 16;
    KeyCount ring[kAhead];
    uint64_t ring_h[kAhead];
    std::size_t pending = 0, head = 0;
    auto absorb = [&](const KeyCount& kc, uint64_t h) {
      if (!has_room(1)) grow();
      insert(kc.key, h, kc.count, kc.first);
    };
    other.for_each_slot([&](std::size_t, const KeyCount& kc) {
      if (kc.count == 0) return;
      uint64_t h = mix64(static_cast<uint64_t>(kc.key));
      prefetch(h);
      if (pending == kAhead) {
        absorb(ring[head], ring_h[head]);
        head = (head + 1) % kAhead;
        --pending;
      }
      std::size_t at = (head + pending) % kAhead;
      ring[at] = kc;
      ring_h[at] = h;
      ++pending;
    });
    for (; pending > 0; --pending, head = (head + 1) % kAhead) absorb(ring[head], ring_h[head]);
  }

  // find() that also takes the entry out of later visits: its count becomes 0 (for_each still visits it,
  // with count 0; lookups of other keys are unaffected). For for_each_union, on tables about to go.
  bool take(int64_t key, uint64_t h, int64_t& count, int64_t& first) {
    if (key == kEmptyKey) [[unlikely]] {
      if (!has_empty_key_ || empty_key_.count == 0) return false;
      count = empty_key_.count;
      first = empty_key_.first;
      empty_key_.count = 0;
      return true;
    }
    const std::size_t i = locate(key, h);
    if (i == kNotFound) return false;
    if (compact_) {
      uint64_t& w = w_[i];
      if ((w >> 32) == kTaken) return false;
      count = static_cast<int64_t>(w >> 32);
      w |= kTaken << 32;
    } else {
      if (w_[2 * i + 1] == 0) return false;
      count = static_cast<int64_t>(w_[2 * i + 1]);
      w_[2 * i + 1] = 0;
    }
    first = track_first_ ? first_[i] : 0;
    return true;
  }

  // Count and first row of key, whose hash h = mix64(key) is known; false when the key is absent.
  bool find(int64_t key, uint64_t h, int64_t& count, int64_t& first) const {
    if (key == kEmptyKey) [[unlikely]] {
      if (!has_empty_key_) return false;
      count = empty_key_.count;
      first = empty_key_.first;
      return true;
    }
    const std::size_t i = locate(key, h);
    if (i == kNotFound) return false;
    count = compact_ ? static_cast<int64_t>(w_[i] >> 32) : static_cast<int64_t>(w_[2 * i + 1]);
    if (compact_ && count == static_cast<int64_t>(kTaken)) count = 0;
    first = track_first_ ? first_[i] : 0;
    return true;
  }

  void grow() { rehash(cap_ == 0 ? kMinCapacity : cap_ * 2); }

  // Moves the entries into `cap` slots (a power of two, enough for size() under the load limit).
  void rehash(std::size_t cap) {
    const bool compact = compact_;
    const std::size_t old_cap = cap_;
    ZeroBuffer<uint64_t> old = std::move(w_);
    ZeroBuffer<int64_t> old_first = std::move(first_);
    cap_ = cap;
    mask_ = cap - 1;
    w_ = take_words(cap * (compact ? 1 : 2));
    if (track_first_) first_ = ZeroBuffer<int64_t>(cap, Pages::kHuge);
    for (std::size_t j = 0; j < old_cap; ++j) {
      uint64_t a, b = 0;
      if (compact) {
        a = old[j];
        if (a == 0) continue;
      } else {
        a = old[2 * j];
        b = old[2 * j + 1];
        if (a == 0) continue;
      }
      const int64_t key = compact ? unpack_hex_key(static_cast<uint32_t>(a)) : stored_key(static_cast<int64_t>(a));
      std::size_t i = mix64(static_cast<uint64_t>(key)) & mask_;
      if (compact) {
        while (w_[i] != 0) i = (i + 1) & mask_;
        w_[i] = a;
      } else {
        while (w_[2 * i] != 0) i = (i + 1) & mask_;
        w_[2 * i] = a;
        w_[2 * i + 1] = b;
      }
      if (track_first_) first_[i] = old_first[j];
    }
    if (pool_) pool_->give(std::move(old));
  }

  // The entries of a compact table without first rows with count >= min_count, handed over in the
  // table's own slot array: words[0, n) hold count << 32 | packed key, in slot order (what lies past n
  // is unspecified); distinct counts every entry, those under min_count too. The empty key's entry,
  // which has no packed form, comes apart. The table is left empty (no slots; reset() before reuse).
  struct Packed {
    ZeroBuffer<uint64_t> words;
    std::size_t n = 0;
    int64_t distinct = 0;
    bool has_empty_key = false;
    KeyCount empty_key{kEmptyKey, 0, 0};
  };
  bool packable() const { return compact_ && !track_first_; }
  Packed release_packed(int64_t min_count) {
    BW_ASSERT(packable(), "CountTable::release_packed on a wide table or one with first rows");
    Packed out;
    out.distinct = static_cast<int64_t>(size());
    out.has_empty_key = has_empty_key_;
    out.empty_key = empty_key_;
    // In place: the write position never passes the read position.
    const uint64_t min = static_cast<uint64_t>(std::max<int64_t>(min_count, 1));
    std::size_t n = 0;
    for (std::size_t i = 0; i < cap_; ++i) {
      const uint64_t w = w_[i];
      const uint64_t c = w >> 32;
      w_[n] = w;
      n += (c >= min && c != kTaken) ? 1 : 0;
    }
    out.n = n;
    out.words = std::move(w_);
    cap_ = mask_ = size_ = 0;
    has_empty_key_ = false;
    return out;
  }

  // Returns the entries sorted by key and leaves the table empty with `new_capacity` slots (compact again
  // when it tracks no first rows: the next keys may all pack).
  std::vector<KeyCount> release_sorted(std::size_t new_capacity) {
    std::vector<KeyCount> out;
    out.reserve(size());
    for_each([&](const KeyCount& kc) { out.push_back(kc); });
    std::sort(out.begin(), out.end(), [](const KeyCount& a, const KeyCount& b) { return a.key < b.key; });
    reset(new_capacity);
    return out;
  }

  // Visits every entry (with its real key) in slot order.
  template <class F>
  void for_each(F&& f) const {
    if (has_empty_key_) f(empty_key_);
    for_each_slot([&](std::size_t, const KeyCount& kc) { f(kc); });
  }

  void reset(std::size_t capacity) {
    capacity = pow2_at_least(std::max(capacity, kMinCapacity));
    compact_ = !track_first_;
    cap_ = capacity;
    mask_ = capacity - 1;
    w_ = ZeroBuffer<uint64_t>(capacity * (compact_ ? 1 : 2), Pages::kHuge);
    first_ = track_first_ ? ZeroBuffer<int64_t>(capacity, Pages::kHuge) : ZeroBuffer<int64_t>();
    size_ = 0;
    has_empty_key_ = false;
    load_limit_20ths_ = kLoad20ths;
  }

 private:
  static constexpr std::size_t kNotFound = ~std::size_t{0};
  static constexpr std::size_t kLoad20ths = 14, kLateLoad20ths = 17;
  std::size_t load_limit_20ths_ = kLoad20ths;

  const void* slot_word(std::size_t i) const { return w_.data() + (compact_ ? i : 2 * i); }

  ZeroBuffer<uint64_t> take_words(std::size_t words) { return pool_ ? pool_->take(words) : ZeroBuffer<uint64_t>(words, Pages::kHuge); }

  // Every entry but the empty key's, with its slot, in slot order (count 0 once taken).
  template <class F>
  void for_each_slot(F&& f) const {
    if (compact_) {
      for (std::size_t i = 0; i < cap_; ++i) {
        const uint64_t w = w_[i];
        if (w == 0) continue;
        const uint64_t c = w >> 32;
        f(i, KeyCount{unpack_hex_key(static_cast<uint32_t>(w)), c == kTaken ? 0 : static_cast<int64_t>(c),
                      track_first_ ? first_[i] : 0});
      }
      return;
    }
    for (std::size_t i = 0; i < cap_; ++i)
      if (w_[2 * i] != 0)
        f(i, KeyCount{stored_key(static_cast<int64_t>(w_[2 * i])), static_cast<int64_t>(w_[2 * i + 1]),
                      track_first_ ? first_[i] : 0});
  }

  // The slot of key (not kEmptyKey; its hash h), or kNotFound.
  std::size_t locate(int64_t key, uint64_t h) const {
    if (cap_ == 0) return kNotFound;  // deferred, or released
    if (compact_) {
      uint32_t p;
      if (!pack_hex_key(key, p)) return kNotFound;  // every key in a compact table packs
      for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
        const uint64_t w = w_[i];
        if (w == 0) return kNotFound;
        if (static_cast<uint32_t>(w) == p) return i;
      }
    }
    const uint64_t sk = static_cast<uint64_t>(stored_key(key));
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t w = w_[2 * i];
      if (w == 0) return kNotFound;
      if (w == sk) return i;
    }
  }

  // Adds `count` occurrences of key (not kEmptyKey; its hash h), first seen at `row`.
  void insert(int64_t key, uint64_t h, int64_t count, int64_t row) {
    if (compact_) {
      insert_compact(key, h, count, row);
      return;
    }
    insert_wide(key, h, count, row);
  }
  // insert() into a compact table: there, or into the table made wide when key does not pack or the
  // count would pass the compact limit. Out of line: counting compact tables goes through add_packed.
  __attribute__((noinline)) void insert_compact(int64_t key, uint64_t h, int64_t count, int64_t row) {
    uint32_t p;
    if (pack_hex_key(key, p)) [[likely]] {
      for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
        uint64_t& w = w_[i];
        if (w == 0) {
          if (static_cast<uint64_t>(count) > kMaxCompact) break;  // to the wide layout
          w = static_cast<uint64_t>(count) << 32 | p;
          if (track_first_) first_[i] = row;
          ++size_;
          return;
        }
        if (static_cast<uint32_t>(w) == p) {
          const uint64_t c = (w >> 32) + static_cast<uint64_t>(count);
          if (c > kMaxCompact) break;
          w = c << 32 | p;
          if (track_first_ && row < first_[i]) first_[i] = row;
          return;
        }
      }
    }
    widen();
    insert_wide(key, h, count, row);
  }
  void insert_wide(int64_t key, uint64_t h, int64_t count, int64_t row) {
    const uint64_t sk = static_cast<uint64_t>(stored_key(key));
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      uint64_t& k = w_[2 * i];
      if (k == sk) {
        w_[2 * i + 1] += static_cast<uint64_t>(count);
        if (track_first_ && row < first_[i]) first_[i] = row;
        return;
      }
      if (k == 0) {
        k = sk;
        w_[2 * i + 1] = static_cast<uint64_t>(count);
        if (track_first_) first_[i] = row;
        ++size_;
        return;
      }
    }
  }
  void absorb_empty(const KeyCount& kc) {
    if (!has_empty_key_) {
      empty_key_ = kc;
      has_empty_key_ = true;
      return;
    }
    empty_key_.count += kc.count;
    empty_key_.first = std::min(empty_key_.first, kc.first);
  }

  bool track_first_ = true;
  bool compact_ = false;
  Pool* pool_ = nullptr;
  ZeroBuffer<uint64_t> w_;     // the slots, in either layout
  ZeroBuffer<int64_t> first_;  // per slot, only with track_first_
  std::size_t cap_ = 0, mask_ = 0, size_ = 0;
  bool has_empty_key_ = false;
  KeyCount empty_key_{kEmptyKey, 0, 0};
};

// Visits every distinct key of the union of `tables` once, with its totals (counts summed, first = the
// smallest): the entries merge_from would leave in one table, in another order, without building that
// table. Merging grew the biggest table of a column (fresh memory, a rehash, a scan of twice the slots)
// on one thread while the others waited; here each table's entries are looked up in the later tables,
// with the probes of a block of entries prefetched together so their cache misses overlap. A key is
// reported by the first table holding it, which takes it out of the later ones (CountTable::take), so
// those skip it without a lookup. Consumes the tables: afterwards they are only fit to be destroyed or
// reset. O(T^2) lookups per key at worst: meant for a few tables (one per thread).
template <class F>
void for_each_union(const std::vector<CountTable*>& tables, F&& f) {
  constexpr std::size_t kBlock = 32;
  const std::size_t T = tables.size();
  struct Pending {
    KeyCount kc;
    uint64_t h;
  };
  Pending block[kBlock];
  std::size_t filled = 0;
  std::size_t owner = 0;  // the table whose entries are in `block`
  auto resolve = [&] {
    for (std::size_t j = 0; j < filled; ++j) {
      KeyCount kc = block[j].kc;
      for (std::size_t t = owner + 1; t < T; ++t) {
        int64_t count = 0, first = 0;
        if (!tables[t]->take(kc.key, block[j].h, count, first)) continue;
        kc.count += count;
        kc.first = std::min(kc.first, first);
      }
      f(kc);
    }
    filled = 0;
  };
  for (owner = 0; owner < T; ++owner) {
    tables[owner]->for_each([&](const KeyCount& kc) {
      if (kc.count == 0) return;  // taken by an earlier table
      if (owner + 1 == T) {  // the last table: nothing left to look up
        f(kc);
        return;
      }
      const uint64_t h = mix64(static_cast<uint64_t>(kc.key));
      for (std::size_t t = owner + 1; t < T; ++t) tables[t]->prefetch(h);
      block[filled++] = Pending{kc, h};
      if (filled == kBlock) resolve();
    });
    resolve();
  }
}

// Counts of a column's keys while it has at most kMaxEntries distinct ones (Criteo has seven such
// columns: 3 to 29 values), for KeyCounter. A key's entry is found by a perfect hash: a multiplier under
// which the entries' keys land in distinct slots of kSlots (found again whenever an entry is added; a
// slot without an entry holds a key that does not hash to it), so counting a key is a multiply, a load,
// a compare and an increment, with no probe loop and no branch on the data (through a compact count
// table such a column cost ~7 cycles a key: hashing, packing and the probe's branches). The increments
// go to four lanes of per-slot counters (key j's to lane j % 4: equal keys in a row do not wait on each
// other's stores, see CountTable::kLaneSlots) and a miss to a spare counter; the lanes are added into the
// entries after every block, and a block with misses is gone through again for them.
class TinyCounts {
 public:
  static constexpr std::size_t kMaxEntries = kTinyKeys;

  // Counts keys[0, n) in blocks while at most kMaxEntries distinct keys are seen. Returns n when every
  // key was counted. Otherwise the counts turned full (full() is then true): the return value is where
  // the blocks not looked at start, and `rest` (cleared first) holds the keys of the blocks looked at
  // that were not counted, in order; the caller counts those and keys[ret, n) elsewhere.
  std::size_t add_many(const int64_t* keys, std::size_t n, std::vector<int64_t>& rest) {
    rest.clear();
    if (full_) return 0;
    if (lanes_.empty()) {  // first keys: the counters and slots come now, not with the (often unused) object
      lanes_.assign(kLanes * kLane, 0);
      slot_key_ = filled_with_misses();
    }
    std::size_t b = 0;
    while (b < n) {
      const std::size_t m = std::min(kBlock, n - b);
      const int64_t* k = keys + b;
      uint32_t* lanes = lanes_.data();
      const int64_t* slot_key = slot_key_.data();
      const uint64_t mult = mult_;
      for (std::size_t j = 0; j < m; ++j) {
        const uint64_t s = slot_of(k[j], mult);
        const uint64_t c = slot_key[s] == k[j] ? s : kSlots;  // a miss: the spare counter
        ++lanes[(j & (kLanes - 1)) * kLane + c];
      }
      uint32_t misses = 0;
      for (std::size_t l = 0; l < kLanes; ++l) misses |= lanes[l * kLane + kSlots];
      fold();
      if (misses != 0) add_missed(k, m, rest);
      b += m;
      if (full_) return b;
    }
    return n;
  }

  bool full() const { return full_; }
  std::size_t size() const { return keys_.size(); }
  // Visits every (key, count) counted, in no meaningful order.
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t e = 0; e < keys_.size(); ++e) f(keys_[e], counts_[e]);
  }

 private:
  static constexpr std::size_t kSlots = 256;
  static constexpr std::size_t kLane = kSlots + 1;  // a lane's counters: one per slot, then the misses'
  static constexpr std::size_t kBlock = 256;        // keys per block (lane counters stay far below 2^32)
  static constexpr std::size_t kLanes = 4;

  static uint64_t slot_of(int64_t key, uint64_t mult) { return (static_cast<uint64_t>(key) * mult) >> 56; }

  // Adds the lanes into the entries' counts and zeroes them (the misses' counters included).
  void fold() {
    for (std::size_t e = 0; e < keys_.size(); ++e) {
      const std::size_t s = slot_[e];
      for (std::size_t l = 0; l < kLanes; ++l) {
        counts_[e] += lanes_[l * kLane + s];
        lanes_[l * kLane + s] = 0;
      }
    }
    for (std::size_t l = 0; l < kLanes; ++l) lanes_[l * kLane + kSlots] = 0;
  }

  // The keys of a block that missed, in order: counted in their entry (added when new, while there is
  // room), else (full) kept in rest. Which keys missed is decided under the hash the block was counted
  // with; entries added here change the hash, so their keys are then found by a scan of the entries.
  void add_missed(const int64_t* k, std::size_t m, std::vector<int64_t>& rest) {
    missed_.clear();
    for (std::size_t j = 0; j < m; ++j)
      if (slot_key_[slot_of(k[j], mult_)] != k[j]) missed_.push_back(k[j]);
    for (const int64_t key : missed_) {
      const std::size_t e = static_cast<std::size_t>(std::find(keys_.begin(), keys_.end(), key) - keys_.begin());
      if (e < keys_.size()) {
        ++counts_[e];
      } else if (!full_ && add_entry(key)) {
        counts_.back() = 1;
      } else {
        full_ = true;
        rest.push_back(key);
      }
    }
  }

  // Adds key as a new entry (count 0) and finds a multiplier that keeps every entry in a slot of its
  // own; false (nothing changed) when there is no room or no such multiplier turns up.
  bool add_entry(int64_t key) {
    if (keys_.size() == kMaxEntries) return false;
    keys_.push_back(key);
    std::array<uint8_t, kSlots> taken{};
    for (uint64_t attempt = 0; attempt < kMaxAttempts; ++attempt) {
      const uint64_t mult = mix64(seed_++) | 1;
      taken.fill(0);
      bool ok = true;
      for (std::size_t e = 0; e < keys_.size() && ok; ++e) {
        const uint64_t s = slot_of(keys_[e], mult);
        ok = taken[s] == 0;
        taken[s] = 1;
      }
      if (!ok) continue;
      mult_ = mult;
      slot_.resize(keys_.size());
      for (std::size_t s = 0; s < kSlots; ++s) {
        // A key that hashes elsewhere, so that no key can match a slot without an entry.
        int64_t filler = static_cast<int64_t>(s) + 1;
        while (slot_of(filler, mult) == s) ++filler;
        slot_key_[s] = filler;
      }
      for (std::size_t e = 0; e < keys_.size(); ++e) {
        slot_[e] = static_cast<uint16_t>(slot_of(keys_[e], mult));
        slot_key_[slot_[e]] = keys_[e];
      }
      counts_.push_back(0);
      return true;
    }
    keys_.pop_back();
    return false;
  }

  static constexpr uint64_t kMaxAttempts = 4096;  // 32 keys in 256 slots: ~1 multiplier in 8 fits

  std::vector<int64_t> keys_, counts_;
  std::vector<uint16_t> slot_;  // entry e's slot
  std::vector<int64_t> slot_key_;  // kSlots keys from the first add_many on
  std::vector<uint32_t> lanes_;    // kLanes * kLane counters from the first add_many on
  uint64_t mult_ = 1;
  uint64_t seed_ = 0;
  std::vector<int64_t> missed_;  // add_missed's scratch
  bool full_ = false;

  // Before any entry (multiplier 1: slot = key >> 56): slot s holds a key whose top byte is not s.
  static std::vector<int64_t> filled_with_misses() {
    std::vector<int64_t> a(kSlots);
    for (std::size_t s = 0; s < kSlots; ++s) a[s] = static_cast<int64_t>(((s + 1) & 0xFF) << 56);
    return a;
  }
};

}  // namespace bluewhale::prep_ops
