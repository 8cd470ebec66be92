// Open-addressing hash tables keyed by int64 for the fit and transform hot paths of the operators.
//
// Both use linear probing over a power-of-two slot array, with INT64_MIN as the empty-slot marker and
// that one key kept in a side slot, so every int64 key is storable. std::unordered_map allocates a node
// per key and chases a pointer per lookup, several times slower at 10M keys. Slots hold a key as
// stored_key(key) = key ^ INT64_MIN, so an empty slot is all zero bytes: the slot arrays are ZeroBuffers
// (fresh zero pages, huge pages when large), with no pass that writes an empty marker into every slot.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "core/zero_buffer.h"

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

// key -> int64 value; built once (fit or load), then read concurrently by const lookups.
class KeyIndex {
 public:
  KeyIndex() { rehash(kMinCapacity); }

  // Sizes the table for n keys without rehashing later.
  void reserve(std::size_t n) {
    std::size_t cap = pow2_at_least(std::max(kMinCapacity, n + n / 2 + 1));
    if (cap > slots_.size()) rehash(cap);
  }

  // Returns the value stored for key, inserting value_if_new first when absent; second = inserted.
  std::pair<int64_t*, bool> get_or_add(int64_t key, int64_t value_if_new) {
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

  int64_t find(int64_t key, int64_t not_found) const {
    if (key == kEmptyKey) return has_empty_key_ ? empty_key_value_ : not_found;
    return probe(key, mix64(static_cast<uint64_t>(key)), not_found);
  }

  // out[j] = find(keys[j], not_found) for j < n; out may alias keys. Large tables miss the cache on
  // almost every lookup, so the slot of key j + kAhead is prefetched while key j is probed: the misses
  // then overlap instead of being paid one after the other. A table that fits in L1/L2 skips that.
  void find_batch(const int64_t* keys, std::size_t n, int64_t* out, int64_t not_found) const {
    if (slots_.size() * sizeof(Slot) <= kCachedBytes) {
      for (std::size_t j = 0; j < n; ++j) out[j] = probe(keys[j], mix64(static_cast<uint64_t>(keys[j])), not_found);
      return;
    }
    constexpr std::size_t kAhead = 32;
    constexpr std::size_t kBlock = 256;
    uint64_t h[kBlock + kAhead];  // hashes of keys [b, filled) at h[0 ..)
    std::size_t filled = std::min(n, kAhead);
    for (std::size_t j = 0; j < filled; ++j) {
      h[j] = mix64(static_cast<uint64_t>(keys[j]));
      __builtin_prefetch(&slots_[h[j] & mask_]);
    }
    for (std::size_t b = 0; b < n; b += kBlock) {
      std::size_t m = std::min(kBlock, n - b);
      std::size_t end = std::min(n, b + m + kAhead);
      // h[0 .. filled - b) holds the hashes of keys [b, filled); extend to `end`, prefetching each.
      for (std::size_t j = filled; j < end; ++j) {
        uint64_t x = mix64(static_cast<uint64_t>(keys[j]));
        h[j - b] = x;
        __builtin_prefetch(&slots_[x & mask_]);
      }
      filled = end;
      for (std::size_t j = 0; j < m; ++j) out[b + j] = probe(keys[b + j], h[j], not_found);
      // Carry the already-computed hashes of the next block's first keys to the front.
      for (std::size_t j = b + m; j < filled; ++j) h[j - b - m] = h[j - b];
    }
  }

  std::size_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }
  std::size_t bytes() const { return slots_.size() * sizeof(Slot); }

  // Visits every (key, value) in slot order (not a meaningful order: callers sort when it matters).
  template <class F>
  void for_each(F&& f) const {
    if (has_empty_key_) f(kEmptyKey, empty_key_value_);
    for (const Slot& s : slots_)
      if (s.key != 0) f(stored_key(s.key), s.value);
  }

 private:
  static constexpr std::size_t kMinCapacity = 16;
  static constexpr std::size_t kCachedBytes = std::size_t{64} << 10;
  struct Slot {
    int64_t key;  // stored_key(key); 0: empty
    int64_t value;
  };

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

  void rehash(std::size_t capacity) {
    ZeroBuffer<Slot> old = std::move(slots_);
    slots_ = ZeroBuffer<Slot>(capacity);
    mask_ = capacity - 1;
    for (const Slot& s : old) {
      if (s.key == 0) continue;
      std::size_t i = mix64(static_cast<uint64_t>(stored_key(s.key))) & mask_;
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = s;
    }
  }

  ZeroBuffer<Slot> slots_;
  std::size_t mask_ = 0, size_ = 0;
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
// Slots are (stored_key(key), count) pairs, 16 bytes (0 key: empty), so a probe touches one cache line.
// The first rows live in a parallel array that exists only for a table made with track_first (order:
// first needs them; counting by frequency does not, and 24-byte slots cost a third more memory, page
// zeroing and cache misses). Without track_first every KeyCount::first reads 0.
class CountTable {
  struct Slot {
    int64_t key;  // stored_key(key); 0: empty
    int64_t count;
  };

 public:
  static constexpr std::size_t kMinCapacity = 1024;

  // Slot arrays that tables gave up when they grew, kept (one per size, from kPoolMinBytes up) for the
  // next table that grows to that size. Zeroing memory the process already touched (a memset, ~16 GB/s)
  // is far cheaper than fresh pages (~0.5 GB/s on the virtual machines prep runs on), and the columns of
  // one thread grow through the same sizes: a column's old 4 MiB array becomes another's new one. Holds
  // at most one array per power of two, so less than twice its largest. Not thread-safe: one per thread,
  // declared before the tables that use it (it must outlive them).
  class Pool {
   public:
    static constexpr std::size_t kPoolMinBytes = kHugeThreshold;  // smaller arrays: malloc recycles them
    ZeroBuffer<Slot> take(std::size_t n) {
      for (std::size_t k = 0; k < free_.size(); ++k)
        if (free_[k].size() == n) {
          ZeroBuffer<Slot> out = std::move(free_[k]);
          free_[k] = std::move(free_.back());
          free_.pop_back();
          std::memset(static_cast<void*>(out.data()), 0, n * sizeof(Slot));
          ++reused_;
          return out;
        }
      return ZeroBuffer<Slot>(n);
    }
    void give(ZeroBuffer<Slot>&& b) {
      if (b.size() * sizeof(Slot) < kPoolMinBytes) return;
      for (const auto& f : free_)
        if (f.size() == b.size()) return;  // one per size is enough; this one is released
      free_.push_back(std::move(b));
    }
    std::size_t reused() const { return reused_; }  // take() calls served from the pool, for tests
    void release() { free_.clear(); }                // frees the arrays held (tables keep using the pool)

   private:
    std::vector<ZeroBuffer<Slot>> free_;
    std::size_t reused_ = 0;
  };

  // Slot arrays of later growth come from `pool` and go back to it (nullptr: fresh arrays each time).
  void set_pool(Pool* pool) { pool_ = pool; }

  explicit CountTable(std::size_t capacity = kMinCapacity, bool track_first = true) : track_first_(track_first) {
    reset(capacity);
  }

  bool track_first() const { return track_first_; }
  bool full() const { return has_room(1) == false; }
  // Whether m more distinct keys fit under the 0.7 load limit.
  bool has_room(std::size_t m) const { return (size_ + m) * 10 <= slots_.size() * 7; }
  std::size_t bytes() const { return slots_.size() * sizeof(Slot) + first_.size() * sizeof(int64_t); }
  std::size_t capacity() const { return slots_.size(); }
  std::size_t size() const { return size_ + (has_empty_key_ ? 1 : 0); }

  void add(int64_t key, int64_t row) {
    if (key == kEmptyKey) {
      if (!has_empty_key_) empty_key_ = KeyCount{key, 0, track_first_ ? row : 0};
      has_empty_key_ = true;
      ++empty_key_.count;
      if (track_first_) empty_key_.first = std::min(empty_key_.first, row);
      return;
    }
    BW_ASSERT(!full(), "CountTable::add on a full table");
    insert(key, mix64(static_cast<uint64_t>(key)), 1, row);
  }

  // add() for n keys (n <= kBlock, has_room(n) checked by the caller). The probe starts of the whole
  // block are prefetched first so that their cache misses overlap: counting 10M distinct keys is bound
  // by memory latency, not by arithmetic.
  static constexpr std::size_t kBlock = 16;
  void add_block(const int64_t* keys, const int64_t* rows, std::size_t n) {
    uint64_t h[kBlock];
    for (std::size_t j = 0; j < n; ++j) {
      h[j] = mix64(static_cast<uint64_t>(keys[j]));
      prefetch(h[j]);
    }
    for (std::size_t j = 0; j < n; ++j) {
      if (keys[j] == kEmptyKey) {
        add(keys[j], rows[j]);
        continue;
      }
      insert(keys[j], h[j], 1, rows[j]);
    }
  }

  // Starts pulling the slot a key with hash h (mix64 of the key) probes first into the cache.
  void prefetch(uint64_t h) const {
    __builtin_prefetch(&slots_[h & mask_], 1);
    if (track_first_) __builtin_prefetch(&first_[h & mask_], 1);
  }

  // prefetch() for a lookup only.
  void prefetch_read(uint64_t h) const {
    __builtin_prefetch(&slots_[h & mask_], 0);
    if (track_first_) __builtin_prefetch(&first_[h & mask_], 0);
  }

  // add() for a key whose hash h = mix64(key) is already known (room checked by the caller). Without
  // kTrackFirst `row` is ignored (callers that never read KeyCount::first).
  template <bool kTrackFirst>
  void add_hashed(int64_t key, uint64_t h, int64_t row) {
    if (key == kEmptyKey) [[unlikely]] {
      add(key, kTrackFirst ? row : 0);
      return;
    }
    if constexpr (kTrackFirst) {
      insert(key, h, 1, row);
    } else {
      insert(key, h, 1, 0);
    }
  }

  // Adds every entry of `other` (counts summed, first = the smaller), growing as needed; the result is
  // what counting both tables' inputs into one table gives. Both tables must agree on track_first.
  void merge_from(const CountTable& other) {
    BW_ASSERT(track_first_ == other.track_first_, "CountTable::merge_from across track_first modes");
    // Grows only when the union needs it: the tables of two threads share most keys, and sizing for the
    // sum of both (the old way) doubled the biggest tables for nothing.
    if (other.has_empty_key_) absorb_empty(other.empty_key_);
    // Entries of `other` come in slot order, which is random in this table: prefetch kAhead ahead.
    constexpr std::size_t kAhead = 16;
    std::size_t ring_key[kAhead];
    uint64_t ring_h[kAhead];
    std::size_t pending = 0, head = 0;
    const Slot* src = other.slots_.data();
    auto absorb = [&](std::size_t i, uint64_t h) {
      if (!has_room(1)) grow();
      insert(stored_key(src[i].key), h, src[i].count, track_first_ ? other.first_[i] : 0);
    };
    for (std::size_t i = 0, n = other.slots_.size(); i < n; ++i) {
      if (src[i].key == 0) continue;
      uint64_t h = mix64(static_cast<uint64_t>(stored_key(src[i].key)));
      prefetch(h);
      if (pending == kAhead) {
        absorb(ring_key[head], ring_h[head]);
        head = (head + 1) % kAhead;
        --pending;
      }
      std::size_t at = (head + pending) % kAhead;
      ring_key[at] = i;
      ring_h[at] = h;
      ++pending;
    }
    for (; pending > 0; --pending, head = (head + 1) % kAhead) absorb(ring_key[head], ring_h[head]);
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
    const int64_t sk = stored_key(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.key == sk) {
        if (s.count == 0) return false;
        count = s.count;
        first = track_first_ ? first_[i] : 0;
        s.count = 0;
        return true;
      }
      if (s.key == 0) return false;
    }
  }

  // Count and first row of key, whose hash h = mix64(key) is known; false when the key is absent.
  bool find(int64_t key, uint64_t h, int64_t& count, int64_t& first) const {
    if (key == kEmptyKey) [[unlikely]] {
      if (!has_empty_key_) return false;
      count = empty_key_.count;
      first = empty_key_.first;
      return true;
    }
    const int64_t sk = stored_key(key);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == sk) {
        count = s.count;
        first = track_first_ ? first_[i] : 0;
        return true;
      }
      if (s.key == 0) return false;
    }
  }

  void grow() { rehash(slots_.size() * 2); }

  // Moves the entries into `cap` slots (a power of two, enough for size() under the load limit).
  void rehash(std::size_t cap) {
    ZeroBuffer<Slot> old = std::move(slots_);
    ZeroBuffer<int64_t> old_first = std::move(first_);
    slots_ = pool_ ? pool_->take(cap) : ZeroBuffer<Slot>(cap);
    if (track_first_) first_ = ZeroBuffer<int64_t>(cap);
    mask_ = cap - 1;
    for (std::size_t j = 0; j < old.size(); ++j) {
      if (old[j].key == 0) continue;
      std::size_t i = mix64(static_cast<uint64_t>(stored_key(old[j].key))) & mask_;
      while (slots_[i].key != 0) i = (i + 1) & mask_;
      slots_[i] = old[j];
      if (track_first_) first_[i] = old_first[j];
    }
    if (pool_) pool_->give(std::move(old));
  }

  // Returns the entries sorted by key and leaves the table empty with `new_capacity` slots.
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
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (slots_[i].key != 0) f(KeyCount{stored_key(slots_[i].key), slots_[i].count, track_first_ ? first_[i] : 0});
  }

  void reset(std::size_t capacity) {
    capacity = pow2_at_least(std::max(capacity, kMinCapacity));
    slots_ = ZeroBuffer<Slot>(capacity);
    first_ = track_first_ ? ZeroBuffer<int64_t>(capacity) : ZeroBuffer<int64_t>();
    mask_ = capacity - 1;
    size_ = 0;
    has_empty_key_ = false;
  }

 private:
  // Adds `count` occurrences of key (not kEmptyKey; its hash h), first seen at `row`.
  void insert(int64_t key, uint64_t h, int64_t count, int64_t row) {
    const int64_t sk = stored_key(key);
    std::size_t i = h & mask_;
    for (;;) {
      Slot& s = slots_[i];
      if (s.key == sk) {
        s.count += count;
        if (track_first_ && row < first_[i]) first_[i] = row;
        return;
      }
      if (s.key == 0) {
        s = Slot{sk, count};
        if (track_first_) first_[i] = row;
        ++size_;
        return;
      }
      i = (i + 1) & mask_;
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
  Pool* pool_ = nullptr;
  ZeroBuffer<Slot> slots_;
  ZeroBuffer<int64_t> first_;  // per slot, only with track_first_
  std::size_t mask_ = 0, size_ = 0;
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

}  // namespace bluewhale::prep_ops
