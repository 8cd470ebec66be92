// Counting distinct int64 keys per column over many threads within a memory budget.
//
// Each thread counts into its own CountTable per column. When growing a table would take the thread's
// tables past its share of the budget (budget / threads), the thread's largest table is written to a
// temporary file as a run sorted by key and emptied. finish() merges, per column, the runs and what is
// left in memory with a k-way merge that sums counts and keeps the smallest first row (or, when nothing
// was spilled, hashes the threads' tables into the largest one, with no sort), so the result is the same
// whatever the chunk order, the thread count and the budget (all sums are integers).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bluewhale/core/io.h"
#include "prep/ops/flat_map.h"
#include "prep/ops/key_kernels.h"

namespace bluewhale::prep_ops {

// A sorted run of KeyCount records in a temporary file, removed when the object dies.
class RunFile {
 public:
  RunFile(fs::path path, int64_t records) : path_(std::move(path)), records_(records) {}
  RunFile(RunFile&& o) noexcept : path_(std::move(o.path_)), records_(o.records_) { o.path_.clear(); }
  RunFile& operator=(RunFile&& o) noexcept;
  RunFile(const RunFile&) = delete;
  ~RunFile();
  const fs::path& path() const { return path_; }
  int64_t records() const { return records_; }

 private:
  fs::path path_;
  int64_t records_;
};

class KeyCounter {
 public:
  // `label` names the owner in spill file names ("categorify").
  explicit KeyCounter(std::string label);
  ~KeyCounter();

  // Drops anything counted before. budget_bytes: all tables of all threads together. Without
  // track_first the tables keep no first rows (smaller, faster) and every KeyCount::first is 0.
  void begin(std::size_t columns, int threads, int64_t budget_bytes, const std::string& temp_dir,
             bool track_first = true);

  // Counts one occurrence of key in column col, seen at global row `row`, on thread `thread`.
  void add(std::size_t col, int thread, int64_t key, int64_t row) {
    ThreadState& ts = *threads_[thread];
    CountTable& t = ts.tables[col];
    if (t.full()) make_room(ts, col);
    const std::size_t before = t.bytes();
    t.add(key, row);
    ts.bytes += t.bytes() - before;  // a compact table may turn wide (see add_many)
  }

  // add() for n keys with their rows; faster on large tables (prefetched probes). rows may be null
  // when the caller never reads KeyCount::first (it is then left 0); a column's calls must agree.
  void add_many(std::size_t col, int thread, const int64_t* keys, const int64_t* rows, std::size_t n) {
    if (rows)
      add_many_impl<true>(col, thread, keys, rows, n);
    else
      add_many_impl<false>(col, thread, keys, rows, n);
  }

  // Sizing the big tables ahead of their growth. With the input's total size known (set_input_bytes,
  // 0: unknown), a caller that hands every key of a column to one thread reports after each batch how
  // many bytes of input that batch came from (note_progress); once an eighth of the input is in, the
  // column's table is rehashed once to the size its distinct keys extrapolate to (Heaps' law from the
  // counts at a sixteenth and an eighth, a little under the estimate), instead of doubling its way
  // there: each doubling rehashed every key and took fresh memory, ~20 % of the fit pass on Criteo.
  // Only tables that would be large (>= 512 KiB), within the thread's memory share, and never spilled.
  void set_input_bytes(int64_t total) { input_bytes_ = total; }
  void note_progress(std::size_t col, int thread, int64_t bytes);

  // Visits every distinct key of every column once with its totals; columns are processed in parallel
  // on up to `threads` threads, each column's calls come from one thread, in no particular key order.
  // Releases all counting memory and temporary files.
  //
  // With `packed`, a column whose counts are all in one compact table without first rows (nothing
  // spilled; with fits by parts, every column of Criteo-like data) goes to packed instead, once, as the
  // table's entries with count >= packed_min_count (CountTable::release_packed): no per-key calls, and
  // the caller builds from the table's own memory.
  using PackedSink = std::function<void(std::size_t col, CountTable::Packed&& counts)>;
  void finish(int threads, const std::function<void(std::size_t col, const KeyCount& kc)>& sink,
              int64_t packed_min_count = 1, const PackedSink& packed = {});

  // At least the number of distinct keys finish() will visit in column col (no more than the keys
  // counted so far, merged runs included), for sizing what the visits fill.
  std::size_t distinct_upper_bound(std::size_t col) const;
  // Distinct keys of column col counted on thread `thread` so far (spilled runs included: an upper
  // bound). Call it from that thread, or while it does not count.
  std::size_t distinct_on(std::size_t col, int thread) const;

  // Runs written so far (all columns and threads), for tests and summaries.
  int64_t spilled_runs() const;
  // Slots of column col's table on thread `thread`, for tests.
  std::size_t capacity(std::size_t col, int thread) const { return threads_[thread]->tables[col].capacity(); }

 private:
  struct ThreadState {
    CountTable::Pool pool;  // the tables' grown-out slot arrays (declared first: outlives the tables)
    std::vector<CountTable> tables;
    std::vector<std::vector<RunFile>> runs;  // per column
    std::size_t bytes = 0;
    std::vector<uint64_t> hashes;  // add_many scratch
    std::vector<uint64_t> packed;  // add_many scratch
    std::vector<uint32_t> lanes;   // add_many_lanes' counters: 4 * CountTable::kLaneSlots, zero between calls
    // Without first rows, every column counts in a TinyCounts until it has more than kTinyKeys distinct
    // keys; then its counts move to its table (tiny_to_table), where the column counts from then on.
    std::vector<TinyCounts> tiny;
    std::vector<uint8_t> tiny_on;   // per column: still counting in tiny
    std::vector<int64_t> tiny_rest;  // TinyCounts::add_many's keys left over
    struct Progress {
      int64_t bytes = 0, bytes_at_first = 0, distinct_at_first = 0;
      bool sized = false;
    };
    std::vector<Progress> progress;  // per column, see note_progress
  };

  template <bool kTrackFirst>
  void add_many_impl(std::size_t col, int thread, const int64_t* keys, const int64_t* rows, std::size_t n) {
    ThreadState& ts = *threads_[thread];
    if constexpr (!kTrackFirst) {
      if (!ts.tiny_on.empty() && ts.tiny_on[col]) {
        const std::size_t done = ts.tiny[col].add_many(keys, n, ts.tiny_rest);
        if (!ts.tiny[col].full()) return;
        tiny_to_table(ts, col);
        if (!ts.tiny_rest.empty()) {
          std::vector<int64_t> rest = std::move(ts.tiny_rest);
          add_many_impl<false>(col, thread, rest.data(), nullptr, rest.size());
          ts.tiny_rest = std::move(rest);  // kept for its capacity
        }
        keys += done;
        n -= done;
      }
    }
    CountTable& t = ts.tables[col];
    // Hashes (and, for a compact table, packed keys) of the whole batch first (key_kernels.h), then probes
    // with the slot of key j + kAhead prefetched while key j is counted, so that cache misses on big tables
    // overlap. The table may grow or spill between blocks; a prefetch of the old slots is harmless.
    constexpr std::size_t kAhead = 64;
    std::vector<uint64_t>& h = ts.hashes;
    if (h.size() < n) h.resize(n);
    bool packed = false;
    if (t.compact()) {
      std::vector<uint64_t>& p = ts.packed;
      if (p.size() < n) p.resize(n);
      packed = hash_pack_keys_for(simd_level())(keys, n, h.data(), p.data());
      if (!packed) {  // a key that does not pack: the table turns wide, twice the slot memory
        const std::size_t before = t.bytes();
        t.widen();
        ts.bytes += t.bytes() - before;
      }
    } else {
      hash_keys_for(simd_level())(keys, n, h.data());
    }
    const std::size_t start = packed && t.counts_through_lanes() ? add_many_lanes(ts, col, keys, n) : 0;
    // A table that fits in L2 (most columns: a few thousand distinct values) gains nothing from prefetch.
    constexpr std::size_t kCachedBytes = std::size_t{256} << 10;
    const bool ahead = t.bytes() > kCachedBytes;
    if (ahead)
      for (std::size_t j = start; j < std::min(n, start + kAhead); ++j) t.prefetch(h[j]);
    for (std::size_t b = start; b < n; b += CountTable::kBlock) {
      std::size_t m = std::min(CountTable::kBlock, n - b);
      if (!t.has_room(m)) make_room(ts, col);
      const std::size_t before = t.bytes();
      for (std::size_t j = b; j < b + m; ++j) {
        if (ahead && j + kAhead < n) t.prefetch(h[j + kAhead]);
        // The table's layout is read again per key: a count past the compact limit turns it wide.
        if (packed && t.compact() && keys[j] != kEmptyKey)
          t.add_packed(static_cast<uint32_t>(ts.packed[j]), h[j]);
        else
          t.add_hashed<kTrackFirst>(keys[j], h[j], kTrackFirst ? rows[j] : 0);
      }
      ts.bytes += t.bytes() - before;  // a table that turned wide holds twice the slot memory
    }
  }

  // add_many's keys [0, n) of column col, packed in ts.packed, hashed in ts.hashes, counted through the
  // table's lanes (CountTable::counts_through_lanes) until the table outgrows them; returns the index of
  // the first key not counted (n when all were).
  std::size_t add_many_lanes(ThreadState& ts, std::size_t col, const int64_t* keys, std::size_t n) {
    CountTable& t = ts.tables[col];
    if (ts.lanes.empty()) ts.lanes.assign(4 * CountTable::kLaneSlots, 0);
    std::size_t j = 0;
    while (j < n) {
      const std::size_t end = std::min(n, j + CountTable::kBlock);
      if (!t.has_room(end - j)) {
        const std::size_t before = t.bytes();
        t.add_lanes(ts.lanes.data());
        ts.bytes += t.bytes() - before;
        make_room(ts, col);
        if (!t.counts_through_lanes()) return j;
      }
      uint32_t* lanes = ts.lanes.data();
      const std::size_t cap = t.capacity();
      for (; j < end; ++j) {
        if (keys[j] == kEmptyKey) [[unlikely]]
          t.add(keys[j], 0);
        else
          t.add_packed_lane(static_cast<uint32_t>(ts.packed[j]), ts.hashes[j], lanes + (j & 3) * cap);
      }
    }
    const std::size_t before = t.bytes();
    t.add_lanes(ts.lanes.data());
    ts.bytes += t.bytes() - before;  // a count past the compact limit turns the table wide
    return n;
  }
  void make_room(ThreadState& ts, std::size_t col);
  // Moves column col's tiny counts into its table, where the column counts from then on.
  void tiny_to_table(ThreadState& ts, std::size_t col);
  RunFile write_run(const std::vector<KeyCount>& sorted);
  void finish_column(std::size_t col, const std::function<void(std::size_t, const KeyCount&)>& sink,
                     int64_t packed_min_count, const PackedSink& packed);

  std::size_t columns_ = 0;
  std::string label_;
  std::vector<std::unique_ptr<ThreadState>> threads_;
  std::size_t share_bytes_ = 0;
  int64_t input_bytes_ = 0;
  fs::path temp_dir_;
};

}  // namespace bluewhale::prep_ops
