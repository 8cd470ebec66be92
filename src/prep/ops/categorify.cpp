// categorify: raw keys -> dense ids learned from the training rows (0 missing, 1 rare/unseen, 2.. kept).
#include <algorithm>
#include <utility>

#include "bluewhale/core/parallel.h"
#include "bluewhale/data/binary_io.h"
#include "core/radix_sort.h"
#include "prep/ops/flat_map.h"
#include "prep/ops/key_counter.h"
#include "prep/ops/op_common.h"

namespace bluewhale::prep_ops {
namespace {

constexpr int64_t kMissingId = 0;
constexpr int64_t kRareId = 1;
constexpr int64_t kFirstKeptId = 2;

// Decides which keys keep their own id from the merged (key, count, first) stream, in bounded memory
// for the long tail: keys under min_count are dropped on sight and, with max_size, only a heap of the
// max_size best keys is held.
class Selector {
 public:
  Selector(int64_t min_count, int64_t max_size, bool by_first)
      : min_count_(min_count), max_size_(static_cast<std::size_t>(max_size)), by_first_(by_first) {}

  void add(const KeyCount& kc) {
    ++distinct_;
    if (kc.count < min_count_) return;
    if (reserve_ > 0) {
      kept_.reserve(reserve_);
      reserve_ = 0;
    }
    if (max_size_ == 0) {
      kept_.push_back(kc);
    } else if (kept_.size() < max_size_) {
      kept_.push_back(kc);
      std::push_heap(kept_.begin(), kept_.end(), MoreFrequent{});  // front: the least frequent kept key
    } else if (MoreFrequent{}(kc, kept_[0])) {
      std::pop_heap(kept_.begin(), kept_.end(), MoreFrequent{});
      kept_[kept_.size() - 1] = kc;
      std::push_heap(kept_.begin(), kept_.end(), MoreFrequent{});
    }
  }

  // Room for n keys without regrowing (untouched pages of a fresh reservation cost no memory), up to
  // kMaxReserve: a spilled column's bound can be far above what is kept, and the reservation is address
  // space all the same; beyond it the vector grows by doubling. Taken at the first kept key: a column
  // that goes the packed way (keys_by_frequency) reserves nothing.
  void reserve(std::size_t n) {
    constexpr std::size_t kMaxReserve = std::size_t{1} << 22;
    reserve_ = std::min(max_size_ ? std::min(n, max_size_) : n, kMaxReserve);
  }

  // The kept keys in id order.
  std::vector<int64_t> finish() {
    std::vector<int64_t> keys;
    if (by_first_) {
      std::sort(kept_.begin(), kept_.end(), [](const KeyCount& a, const KeyCount& b) {
        return a.first != b.first ? a.first < b.first : a.key < b.key;  // keys of one list row: by key
      });
      keys.reserve(kept_.size());
      for (const KeyCount& kc : kept_) keys.push_back(kc.key);
    } else {
      keys = by_frequency();
    }
    kept_ = PageVector<KeyCount>();
    return keys;
  }
  int64_t distinct() const { return distinct_; }
  std::size_t kept() const { return kept_.size(); }

 private:
  // A function object, not a function pointer: std::sort then inlines the comparison (the sort of the
  // kept keys is part of the fit's mostly serial end).
  struct MoreFrequent {
    bool operator()(const KeyCount& a, const KeyCount& b) const {
      return a.count != b.count ? a.count > b.count : a.key < b.key;
    }
  };
  // The order of MoreFrequent without comparing records: most kept keys have small counts, so keys are
  // placed by count (a counting sort, descending) and only each count's keys are sorted, as plain
  // integers; the few keys with large counts are sorted with the comparator and go first.
  std::vector<int64_t> by_frequency() const {
    constexpr int64_t kSmall = 4096;
    std::vector<KeyCount> big;
    std::vector<std::size_t> at(kSmall + 1, 0);  // at[c]: keys with count > c (then: next slot of count c)
    for (const KeyCount& kc : kept_) {
      if (kc.count >= kSmall) big.push_back(kc);
      else ++at[static_cast<std::size_t>(kc.count)];
    }
    std::sort(big.begin(), big.end(), MoreFrequent{});
    std::size_t pos = big.size();
    for (int64_t c = kSmall - 1; c >= 0; --c) {
      const std::size_t n = at[static_cast<std::size_t>(c)];
      at[static_cast<std::size_t>(c)] = pos;
      pos += n;
    }
    std::vector<int64_t> keys(kept_.size());
    for (std::size_t j = 0; j < big.size(); ++j) keys[j] = big[j].key;
    for (const KeyCount& kc : kept_)
      if (kc.count < kSmall) keys[at[static_cast<std::size_t>(kc.count)]++] = kc.key;
    // Now at[c] is the end of count c's keys, which start where count c + 1's end (or after `big`).
    std::size_t begin = big.size();
    for (int64_t c = kSmall - 1; c >= 0; --c) {
      const std::size_t end = at[static_cast<std::size_t>(c)];
      std::sort(keys.begin() + static_cast<std::ptrdiff_t>(begin), keys.begin() + static_cast<std::ptrdiff_t>(end));
      begin = end;
    }
    return keys;
  }

  int64_t min_count_;
  std::size_t max_size_;
  bool by_first_;
  int64_t distinct_ = 0;
  std::size_t reserve_ = 0;
  // Mapped memory (core/zero_buffer.h), not a std::vector: the big columns keep hundreds of thousands of
  // keys, and a vector's growth copied them and zero-filled fresh pages first.
  PageVector<KeyCount> kept_;
};

// The kept keys in id order (descending count, ties by ascending key, at most max_size of them) from a
// column's packed counts (CountTable::release_packed, entries already at least min_count): the order
// Selector gives for the same totals. A packed key orders as its key does (pack_hex_key keeps the order
// of hex digits), so one sort of count-then-key words gives it; the empty key (the smallest int64)
// comes first among keys of its count.
std::vector<int64_t> keys_by_frequency(CountTable::Packed& counts, int64_t min_count, std::size_t max_size) {
  const std::size_t n = counts.n;
  uint64_t* w = counts.words.data();
  // Ascending words: larger counts first, then smaller packed keys.
  for (std::size_t i = 0; i < n; ++i) w[i] = (uint64_t{0xFFFFFFFF} - (w[i] >> 32)) << 32 | (w[i] & 0xFFFFFFFF);
  // The slots past n are free: they hold the sort's second buffer when there are enough of them. One
  // thread: the columns are finished in parallel already.
  ZeroBuffer<uint64_t> own;
  uint64_t* tmp = w + n;
  if (counts.words.size() < 2 * n) {
    own = ZeroBuffer<uint64_t>(n);
    tmp = own.data();
  }
  w = radix_sort(w, tmp, static_cast<int64_t>(n), 0, 64, 1);
  const bool empty_kept = counts.has_empty_key && counts.empty_key.count >= min_count;
  std::size_t total = n + (empty_kept ? 1 : 0);
  if (max_size > 0) total = std::min(total, max_size);
  std::vector<int64_t> keys;
  keys.reserve(total);
  std::size_t i = 0;
  if (empty_kept) {
    const uint64_t count = static_cast<uint64_t>(counts.empty_key.count);
    // Keys with larger counts come before it (a count past 2^32 - 2 never stays in a compact table).
    while (i < n && keys.size() < total && uint64_t{0xFFFFFFFF} - (w[i] >> 32) > count)
      keys.push_back(unpack_hex_key(static_cast<uint32_t>(w[i++])));
    if (keys.size() < total) keys.push_back(kEmptyKey);
  }
  for (; i < n && keys.size() < total; ++i) keys.push_back(unpack_hex_key(static_cast<uint32_t>(w[i])));
  return keys;
}

class CategorifyOp : public ColumnsOp {
 public:
  struct Params {
    std::vector<std::string> columns;
    int64_t min_count, max_size, memory_mb;
    std::string order;
    static const ParamTable<Params>& params() {
      static const auto t =
          ParamTable<Params>("categorify")
              .required("columns", &Params::columns, "integer or list columns (ranges like C1..C26 allowed)")
              .add("min_count", &Params::min_count, int64_t{1},
                   "values seen fewer times in training rows share the rare id 1")
              .min(1)
              .add("max_size", &Params::max_size, int64_t{0},
                   "keep at most this many values per column, the most frequent (0 = no limit)")
              .min(0)
              .add("order", &Params::order, std::string("frequency"),
                   "id order of kept values: frequency (most frequent first, ties by key) or first (first "
                   "appearance)")
              .choices({"frequency", "first"})
              .add("memory_mb", &Params::memory_mb, int64_t{0},
                   "counting memory before spilling to temp files, MiB (0 = the run's budget)")
              .min(0);
      return t;
    }
  };

  CategorifyOp(const ConfigNode& node, const OpContext&) : counter_("categorify") {
    set_where(op_where(node, name()));
    p_ = Params::params().parse(node, {"op"});
    by_first_ = p_.order == "first";
    columns_ = parse_columns(p_.columns, where());
  }
  std::string name() const override { return "categorify"; }

  // Before fit the vocabulary size is unknown and the cardinality stays 0; after end_fit() or
  // load_state() a new plan() reports it.
  void plan(PlanState& state) const override {
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      ColumnInfo& info = state.get(columns_[ci], where());
      require_kind(info, {ColumnKind::kInt, ColumnKind::kList}, where(),
                   "integer keys (categorical, id) or a list (multi, sequence); use bucketize for float columns");
      if (info.kind == ColumnKind::kInt) info.role = Role::kCategorical;
      info.cardinality = fitted_ ? cardinality(ci) : 0;
    }
  }

  bool needs_fit() const override { return true; }

  void begin_fit(const OpContext& ctx) override {
    threads_ = ctx.threads;
    scratch_.assign(static_cast<std::size_t>(ctx.threads), FitScratch{});
    int64_t budget = p_.memory_mb > 0 ? p_.memory_mb << 20 : ctx.memory_budget;
    counter_.begin(columns_.size(), ctx.threads, budget, ctx.temp_dir, by_first_);
    counter_.set_input_bytes(ctx.input_bytes);
  }

  void fit_chunk(const Chunk& chunk, int thread_id) override {
    // Every chunk of a column on one thread only when there is one thread: then the counter may size
    // the tables from the progress (KeyCounter::note_progress), else each thread sees a share of it.
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) fit_column(chunk, ci, thread_id, threads_ == 1);
  }

  int fit_parts() const override { return static_cast<int>(columns_.size()); }
  std::vector<std::string> fit_part_inputs(int part) const override { return {columns_[static_cast<std::size_t>(part)]}; }
  int64_t fit_part_size(int part, int thread_id) const override {
    return static_cast<int64_t>(counter_.distinct_on(static_cast<std::size_t>(part), thread_id));
  }
  void fit_chunk_part(const Chunk& chunk, int part, int thread_id, bool sole) override {
    fit_column(chunk, static_cast<std::size_t>(part), thread_id, sole);
  }

  // Counts column ci's training keys of one chunk on thread thread_id; `whole`: this thread counts every
  // chunk of the column.
  void fit_column(const Chunk& chunk, std::size_t ci, int thread_id, bool whole) {
    count_column(chunk, ci, thread_id);
    if (whole) counter_.note_progress(ci, thread_id, chunk.text_bytes);
  }
  void count_column(const Chunk& chunk, std::size_t ci, int thread_id) {
    // Only order: first reads KeyCount::first; frequency order skips the row numbers altogether.
    const bool by_first = by_first_;
    const bool all_train = chunk.split.empty();
    const std::size_t rows_n = static_cast<std::size_t>(chunk.rows);
    // Per-thread buffers, kept between chunks: allocated and zeroed per chunk they cost ~1.5 % of a run.
    FitScratch& scratch = scratch_[static_cast<std::size_t>(thread_id)];
    std::vector<int64_t>& keys = scratch.keys;
    std::vector<int64_t>& kept_rows = scratch.kept_rows;
    const Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kInt, ColumnKind::kList}, where());
    if (c.kind == ColumnKind::kInt) {
      if (all_train && c.valid.empty() && !by_first) {  // every row counts: the column itself is the key array
        counter_.add_many(ci, thread_id, c.i.data(), nullptr, rows_n);
        return;
      }
      // The counted rows' keys, without a branch per row (missing values and held-out rows are common
      // and unpredictable): the key kernel (key_kernels.h), or with first rows a plain loop.
      if (keys.size() < rows_n + kCompactKeysSlack) keys.resize(rows_n + kCompactKeysSlack);
      const uint8_t* split = all_train ? nullptr : chunk.split.data();
      const uint8_t* valid = c.valid.empty() ? nullptr : c.valid.data();
      std::size_t n = 0;
      if (!by_first) {
        n = compact_keys_for(simd_level())(c.i.data(), valid, split, rows_n, keys.data());
      } else {
        if (kept_rows.size() < rows_n) kept_rows.resize(rows_n);
        for (std::size_t r = 0; r < rows_n; ++r) {
          keys[n] = c.i[r];
          kept_rows[n] = chunk.global_row(static_cast<int64_t>(r));
          n += ((!split || split[r] == 0) && (!valid || valid[r] != 0)) ? 1 : 0;
        }
      }
      counter_.add_many(ci, thread_id, keys.data(), by_first ? kept_rows.data() : nullptr, n);
    } else {
      keys.clear();
      kept_rows.clear();
      for (std::size_t r = 0; r < rows_n; ++r) {
        if (!is_train_row(chunk, static_cast<int64_t>(r))) continue;
        for (int64_t j = c.offsets[r]; j < c.offsets[r + 1]; ++j) {
          keys.push_back(c.i[j]);
          if (by_first) kept_rows.push_back(chunk.global_row(static_cast<int64_t>(r)));
        }
      }
      counter_.add_many(ci, thread_id, keys.data(), by_first ? kept_rows.data() : nullptr, keys.size());
    }
  }

  void end_fit() override {
    last_spilled_runs_ = counter_.spilled_runs();
    std::vector<Selector> sel;
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      sel.emplace_back(p_.min_count, p_.max_size, p_.order == "first");
      sel.back().reserve(counter_.distinct_upper_bound(ci));
    }
    std::vector<Dictionary> dicts(columns_.size());
    // Columns counted in one compact table (Criteo's, when counted by parts) skip the per-key stream: the
    // table's kept entries are sorted in its own memory and the dictionary is built at once, inside the
    // parallel finish, after the table is gone (its memory then serves the lookup table).
    std::vector<char> built(columns_.size(), 0);
    KeyCounter::PackedSink packed;
    if (!by_first_)
      packed = [&](std::size_t col, CountTable::Packed&& counts) {
        dicts[col].distinct = counts.distinct;
        std::vector<int64_t> keys = keys_by_frequency(counts, p_.min_count, static_cast<std::size_t>(p_.max_size));
        counts = CountTable::Packed();
        build(dicts[col], std::move(keys));
        built[col] = 1;
      };
    counter_.finish(threads_, [&](std::size_t col, const KeyCount& kc) { sel[col].add(kc); }, p_.min_count, packed);
    // Sorting the kept keys and building the lookup tables of the other columns is per column: one column
    // per task, the biggest first so that no large column starts last.
    std::vector<std::size_t> order;
    for (std::size_t ci = 0; ci < columns_.size(); ++ci)
      if (!built[ci]) order.push_back(ci);
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return sel[a].kept() > sel[b].kept(); });
    parallel_for_dynamic(static_cast<int64_t>(order.size()), threads_, [&](int64_t i, int) {
      const std::size_t ci = order[static_cast<std::size_t>(i)];
      dicts[ci].distinct = sel[ci].distinct();
      build(dicts[ci], sel[ci].finish());
    });
    dicts_ = std::move(dicts);
    fitted_ = true;
    fitted_here_ = true;
  }

  // Every kept value occurs in the training rows (at least min_count times), so every id from the first
  // kept one up occurs in their transform.
  int64_t ids_present_from(const std::string& column) const override {
    if (!fitted_here_) return -1;
    for (const auto& c : columns_)
      if (c == column) return kFirstKeptId;
    return -1;
  }

  void transform(Chunk& chunk, bool) const override {
    BW_ASSERT(fitted_, "categorify transform before fit or load_state");
    for (std::size_t ci = 0; ci < columns_.size(); ++ci) {
      Column& c = chunk_column(chunk, columns_[ci], {ColumnKind::kInt, ColumnKind::kList}, where());
      dicts_[ci].index.find_batch(c.i.data(), c.i.size(), c.i.data(), kRareId);
      if (c.kind == ColumnKind::kInt) {
        // Without a branch (the key kernels'): missing values are common and unpredictable in many
        // columns (40 % in some of Criteo's), and a branch per row mispredicted often enough to cost as
        // much as the lookups' share.
        static_assert(kMissingId == 0, "zero_missing writes 0 for missing values");
        if (!c.valid.empty()) zero_missing_for(simd_level())(c.i.data(), c.valid.data(), c.valid.size());
        c.role = Role::kCategorical;
      }
      c.cardinality = cardinality(ci);
    }
  }

  void save_state(BinaryWriter& out) const override {
    BW_ASSERT(fitted_, "categorify save_state before fit");
    write_state_header(out, name(), 1, columns_);
    for (const Dictionary& d : dicts_) {
      out.write<int64_t>(d.distinct);
      out.write_vector(d.keys);
    }
  }

  void load_state(BinaryReader& in) override {
    read_state_header(in, name(), 1, columns_);
    std::vector<Dictionary> dicts(columns_.size());
    for (Dictionary& d : dicts) {
      d.distinct = in.read<int64_t>();
      std::vector<int64_t> keys = in.read_vector<int64_t>();
      in.check(d.distinct >= static_cast<int64_t>(keys.size()), "categorify: more kept values than distinct values");
      in.check(build(d, std::move(keys)), "categorify: a value appears twice in the dictionary");
    }
    dicts_ = std::move(dicts);
    fitted_ = true;
    fitted_here_ = false;
  }

  std::string summary() const override {
    std::string s;
    for (std::size_t ci = 0; ci < dicts_.size(); ++ci)
      s += str_cat(ci ? "; " : "", "categorify ", columns_[ci], ": ", with_commas(dicts_[ci].distinct), " distinct, ",
                   with_commas(static_cast<int64_t>(dicts_[ci].keys.size())), " kept (min_count ", p_.min_count,
                   p_.max_size ? str_cat(", max_size ", p_.max_size) : "", ")");
    if (last_spilled_runs_ > 0) s += str_cat("; ", last_spilled_runs_, " spill runs");
    return s;
  }

 private:
  struct Dictionary {
    int64_t distinct = 0;
    std::vector<int64_t> keys;  // kept keys in id order: keys[j] has id kFirstKeptId + j
    KeyIndex index;             // key -> id
  };

  static bool build(Dictionary& d, std::vector<int64_t> keys) {
    d.keys = std::move(keys);
    // Criteo's 8-hex-digit values get the compact layout: one word per slot, shorter probes (flat_map.h).
    return d.index.assign(d.keys.data(), d.keys.size(), kFirstKeptId);
  }
  int64_t cardinality(std::size_t ci) const { return kFirstKeptId + static_cast<int64_t>(dicts_[ci].keys.size()); }

  struct FitScratch {
    std::vector<int64_t> keys, kept_rows;
  };

  Params p_;
  KeyCounter counter_;
  std::vector<FitScratch> scratch_;  // per fit thread
  int threads_ = 1;
  bool by_first_ = false;
  std::vector<Dictionary> dicts_;
  bool fitted_ = false;
  bool fitted_here_ = false;  // by end_fit(), from this run's rows (not load_state)
  int64_t last_spilled_runs_ = 0;
};

}  // namespace

std::vector<OpSpec> categorify_op_specs() {
  return {make_spec<CategorifyOp>("categorify",
                                  "keys -> dense ids from training counts: 0 missing, 1 rare/unseen, 2.. kept values")};
}

}  // namespace bluewhale::prep_ops
