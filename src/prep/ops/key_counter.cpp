#include "prep/ops/key_counter.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <queue>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale::prep_ops {
namespace {

// More open runs than this are first merged into longer runs, so a tiny budget on a huge column never
// needs thousands of open files or buffers at once.
constexpr std::size_t kMaxFanIn = 64;
constexpr std::size_t kIoRecords = 8192;
// Up to this many threads' tables are combined by lookups (for_each_union), more by merging.
constexpr std::size_t kMaxUnionTables = 4;
// Tables of a column holding at most 1/kAbsorbRatio as many keys as its biggest are merged into it.
constexpr std::size_t kAbsorbRatio = 8;

std::atomic<uint64_t> g_run_serial{0};

class RunWriter {
 public:
  explicit RunWriter(fs::path path) : path_(std::move(path)) {
    file_ = std::fopen(path_.c_str(), "wb");
    if (!file_) BW_THROW(IoError, "cannot create spill file '", path_.string(), "': ", std::strerror(errno));
    buf_.reserve(kIoRecords);
  }
  ~RunWriter() {
    if (file_) {
      std::fclose(file_);
      std::remove(path_.c_str());
    }
  }
  void append(const KeyCount& kc) {
    buf_.push_back(kc);
    if (buf_.size() == kIoRecords) flush();
  }
  RunFile close() {
    flush();
    int rc = std::fclose(file_);
    file_ = nullptr;
    RunFile run(path_, records_);  // owns the file from here: removed even if the check below throws
    if (rc != 0) BW_THROW(IoError, "cannot write spill file '", path_.string(), "': ", std::strerror(errno));
    return run;
  }

 private:
  void flush() {
    if (buf_.empty()) return;
    if (std::fwrite(buf_.data(), sizeof(KeyCount), buf_.size(), file_) != buf_.size())
      BW_THROW(IoError, "cannot write spill file '", path_.string(), "' (disk full?): ", std::strerror(errno));
    records_ += static_cast<int64_t>(buf_.size());
    buf_.clear();
  }
  fs::path path_;
  std::FILE* file_ = nullptr;
  std::vector<KeyCount> buf_;
  int64_t records_ = 0;
};

class Source {
 public:
  virtual ~Source() = default;
  virtual bool next(KeyCount& out) = 0;
};

class VectorSource : public Source {
 public:
  explicit VectorSource(std::vector<KeyCount> v) : v_(std::move(v)) {}
  bool next(KeyCount& out) override {
    if (pos_ == v_.size()) return false;
    out = v_[pos_++];
    return true;
  }

 private:
  std::vector<KeyCount> v_;
  std::size_t pos_ = 0;
};

class FileSource : public Source {
 public:
  explicit FileSource(const RunFile& run) : path_(run.path()), left_(run.records()) {
    file_ = std::fopen(path_.c_str(), "rb");
    if (!file_) BW_THROW(IoError, "cannot open spill file '", path_.string(), "': ", std::strerror(errno));
    buf_.resize(kIoRecords);
  }
  ~FileSource() override { std::fclose(file_); }
  bool next(KeyCount& out) override {
    if (pos_ == len_) {
      if (left_ == 0) return false;
      len_ = static_cast<std::size_t>(std::min<int64_t>(left_, kIoRecords));
      if (std::fread(buf_.data(), sizeof(KeyCount), len_, file_) != len_)
        BW_THROW(IoError, "cannot read spill file '", path_.string(), "' (short read)");
      left_ -= static_cast<int64_t>(len_);
      pos_ = 0;
    }
    out = buf_[pos_++];
    return true;
  }

 private:
  fs::path path_;
  std::FILE* file_ = nullptr;
  std::vector<KeyCount> buf_;
  std::size_t pos_ = 0, len_ = 0;
  int64_t left_;
};

// Merges sources sorted by key into one stream with one record per key (counts summed, first = min).
template <class Out>
void merge_sources(std::vector<std::unique_ptr<Source>>& sources, Out&& out) {
  using Head = std::pair<int64_t, std::size_t>;  // (key, source)
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  std::vector<KeyCount> cur(sources.size());
  for (std::size_t s = 0; s < sources.size(); ++s)
    if (sources[s]->next(cur[s])) heap.push({cur[s].key, s});
  while (!heap.empty()) {
    auto [key, s] = heap.top();
    heap.pop();
    KeyCount acc = cur[s];
    if (sources[s]->next(cur[s])) heap.push({cur[s].key, s});
    while (!heap.empty() && heap.top().first == key) {
      std::size_t t = heap.top().second;
      heap.pop();
      acc.count += cur[t].count;
      acc.first = std::min(acc.first, cur[t].first);
      if (sources[t]->next(cur[t])) heap.push({cur[t].key, t});
    }
    out(acc);
  }
}

}  // namespace

RunFile::~RunFile() {
  if (!path_.empty()) std::remove(path_.c_str());
}

RunFile& RunFile::operator=(RunFile&& o) noexcept {
  if (this != &o) {
    if (!path_.empty()) std::remove(path_.c_str());
    path_ = std::move(o.path_);
    records_ = o.records_;
    o.path_.clear();
  }
  return *this;
}

KeyCounter::KeyCounter(std::string label) : label_(std::move(label)) {}

KeyCounter::~KeyCounter() = default;

void KeyCounter::begin(std::size_t columns, int threads, int64_t budget_bytes, const std::string& temp_dir,
                       bool track_first) {
  BW_ASSERT(threads >= 1);
  columns_ = columns;
  threads_.clear();
  for (int t = 0; t < threads; ++t) {
    auto ts = std::make_unique<ThreadState>();
    ts->tables.reserve(columns_);
    for (std::size_t c = 0; c < columns_; ++c) {
      ts->tables.emplace_back(CountTable::kDeferred, track_first);
      ts->tables.back().set_pool(&ts->pool);
    }
    ts->runs.resize(columns_);
    ts->progress.resize(columns_);
    if (!track_first) {
      ts->tiny.resize(columns_);
      ts->tiny_on.assign(columns_, 1);
    }
    for (const CountTable& t : ts->tables) ts->bytes += t.bytes();
    threads_.push_back(std::move(ts));
  }
  share_bytes_ = static_cast<std::size_t>(std::max<int64_t>(budget_bytes, 1)) / static_cast<std::size_t>(threads);
  temp_dir_ = temp_dir;
}

void KeyCounter::note_progress(std::size_t col, int thread, int64_t bytes) {
  if (input_bytes_ <= 0) return;
  ThreadState& ts = *threads_[thread];
  ThreadState::Progress& p = ts.progress[col];
  p.bytes += bytes;  // make_room reads it too
  if (p.sized) return;
  CountTable& t = ts.tables[col];
  if (p.distinct_at_first == 0) {
    if (p.bytes * 16 >= input_bytes_) {
      p.bytes_at_first = p.bytes;
      p.distinct_at_first = static_cast<int64_t>(t.size());
      p.sized = p.distinct_at_first == 0;  // nothing counted yet: nothing to extrapolate
    }
    return;
  }
  if (p.bytes * 8 < input_bytes_) return;
  p.sized = true;
  if (!ts.runs[col].empty() || p.bytes >= input_bytes_) return;
  // Distinct keys grow as bytes^beta (Heaps' law, beta in [0, 1]) between the two points and on.
  const double d1 = static_cast<double>(p.distinct_at_first), d2 = static_cast<double>(t.size());
  const double ratio = static_cast<double>(p.bytes) / static_cast<double>(p.bytes_at_first);
  if (d2 <= d1 || ratio <= 1.0) return;
  const double beta = std::clamp(std::log(d2 / d1) / std::log(ratio), 0.0, 1.0);
  const double estimate = d2 * std::pow(static_cast<double>(input_bytes_) / static_cast<double>(p.bytes), beta);
  // A little under the estimate (it ran 5-20 % high on Criteo's columns): a short table grows once
  // more as usual, an oversized one would cost memory and cache misses for the whole pass.
  const double keys = 0.85 * estimate;
  const std::size_t cap = pow2_at_least(static_cast<std::size_t>(keys * 10 / 7) + 1);
  constexpr std::size_t kMinSizedBytes = std::size_t{512} << 10;
  const std::size_t bytes_per_slot = t.bytes() / std::max<std::size_t>(t.capacity(), 1);
  if (cap <= t.capacity() || cap * bytes_per_slot < kMinSizedBytes) return;
  if (ts.bytes - t.bytes() + cap * bytes_per_slot > share_bytes_) return;
  const std::size_t before = t.bytes();
  t.rehash(cap);
  ts.bytes = ts.bytes - before + t.bytes();
}

void KeyCounter::make_room(ThreadState& ts, std::size_t col) {
  // Leaves room for at least CountTable::kBlock new keys in the table of `col`.
  CountTable& t = ts.tables[col];
  // In the last 5 % of the input (as note_progress has it), a full table fills further instead of
  // doubling: distinct keys grow slower than the input, so a few percent of it brings a few percent
  // more keys (Criteo's C16 at 5M rows passed 0.7 of its sized table at 97 % and doubled to 16 MiB).
  const ThreadState::Progress& p = ts.progress[col];
  if (input_bytes_ > 0 && p.bytes * 20 >= input_bytes_ * 19 && t.allow_late_load() && t.has_room(CountTable::kBlock))
    return;
  while (ts.bytes + t.bytes() > share_bytes_) {
    // Spill the biggest table: that frees the most memory per run written. A table still at minimum
    // capacity frees nothing when emptied, so then the growing table itself goes out.
    std::size_t victim = col;
    for (std::size_t c = 0; c < columns_; ++c)
      if (ts.tables[c].size() > 0 && ts.tables[c].bytes() > ts.tables[victim].bytes()) victim = c;
    if (ts.tables[victim].capacity() == CountTable::kMinCapacity) victim = col;
    CountTable& vt = ts.tables[victim];
    std::size_t before = vt.bytes();
    // The growing table keeps its size (it is about to refill); others shrink to give memory back.
    std::size_t keep = victim == col ? vt.capacity() : CountTable::kMinCapacity;
    std::vector<KeyCount> sorted = vt.release_sorted(keep);
    ts.runs[victim].push_back(write_run(sorted));
    ts.bytes = ts.bytes - before + vt.bytes();
    if (victim == col) return;
  }
  const std::size_t before = t.bytes();
  t.grow();
  ts.bytes += t.bytes() - before;
}

void KeyCounter::tiny_to_table(ThreadState& ts, std::size_t col) {
  CountTable& t = ts.tables[col];
  ts.tiny[col].for_each([&](int64_t key, int64_t count) {
    if (!t.has_room(1)) make_room(ts, col);
    const std::size_t before = t.bytes();
    t.add_n(key, count, 0);
    ts.bytes += t.bytes() - before;  // a key that does not pack turns the table wide
  });
  ts.tiny[col] = TinyCounts();
  ts.tiny_on[col] = 0;
}

RunFile KeyCounter::write_run(const std::vector<KeyCount>& sorted) {
  fs::path path = temp_dir_ / str_cat("bw-", label_, "-", ::getpid(), "-", g_run_serial++, ".run");
  RunWriter w(path);
  for (const KeyCount& kc : sorted) w.append(kc);
  return w.close();
}

int64_t KeyCounter::spilled_runs() const {
  int64_t n = 0;
  for (const auto& ts : threads_)
    for (const auto& r : ts->runs) n += static_cast<int64_t>(r.size());
  return n;
}

std::size_t KeyCounter::distinct_upper_bound(std::size_t col) const {
  std::size_t n = 0;
  for (std::size_t t = 0; t < threads_.size(); ++t) n += distinct_on(col, static_cast<int>(t));
  return n;
}

std::size_t KeyCounter::distinct_on(std::size_t col, int thread) const {
  const ThreadState& ts = *threads_[static_cast<std::size_t>(thread)];
  std::size_t n = ts.tables[col].size();
  if (!ts.tiny_on.empty() && ts.tiny_on[col]) n += ts.tiny[col].size();
  for (const RunFile& r : ts.runs[col]) n += static_cast<std::size_t>(r.records());
  return n;
}

void KeyCounter::finish(int threads, const std::function<void(std::size_t, const KeyCount&)>& sink,
                        int64_t packed_min_count, const PackedSink& packed) {
  // The arrays the tables grew out of are of no more use: freed now, their memory (kept by the process,
  // see core/zero_buffer.h) serves what the caller builds from the totals instead of fresh pages.
  for (auto& ts : threads_) ts->pool.release();
  for (auto& ts : threads_)
    for (std::size_t c = 0; c < ts->tiny_on.size(); ++c)
      if (ts->tiny_on[c]) tiny_to_table(*ts, c);
  // Biggest columns first: a few columns hold most keys, and one of them started last would leave the
  // other threads idle at the end (the fit's end is a serial stretch of the run).
  std::vector<std::size_t> order(columns_);
  std::vector<std::size_t> keys(columns_, 0);
  for (std::size_t c = 0; c < columns_; ++c) {
    order[c] = c;
    for (const auto& ts : threads_) keys[c] += ts->tables[c].size() + ts->runs[c].size() * CountTable::kMinCapacity;
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] > keys[b]; });
  parallel_for_dynamic(static_cast<int64_t>(columns_), threads,
                       [&](int64_t i, int) { finish_column(order[static_cast<std::size_t>(i)], sink, packed_min_count, packed); });
  threads_.clear();
}

void KeyCounter::finish_column(std::size_t col, const std::function<void(std::size_t, const KeyCount&)>& sink,
                               int64_t packed_min_count, const PackedSink& packed) {
  std::vector<RunFile> runs;
  std::vector<CountTable*> tables;
  for (auto& ts : threads_) {
    for (auto& r : ts->runs[col]) runs.push_back(std::move(r));
    ts->runs[col].clear();
    if (ts->tables[col].size() > 0) tables.push_back(&ts->tables[col]);
  }
  // Counted mostly on one thread, with a few chunks on others (a fit shared by columns that counted its
  // first chunks whole): the small tables go into the big one, which then takes the packed path (no
  // per-key calls; the union of two large tables below costs more than merging them).
  if (runs.empty() && tables.size() > 1) {
    std::size_t big = 0, rest = 0;
    for (std::size_t i = 1; i < tables.size(); ++i)
      if (tables[i]->size() > tables[big]->size()) big = i;
    for (std::size_t i = 0; i < tables.size(); ++i) rest += i == big ? 0 : tables[i]->size();
    if (rest * kAbsorbRatio <= tables[big]->size()) {
      for (std::size_t i = 0; i < tables.size(); ++i)
        if (i != big) {
          tables[big]->merge_from(*tables[i]);
          *tables[i] = CountTable(CountTable::kDeferred);
        }
      tables = {tables[big]};
    }
  }
  if (packed && runs.empty() && tables.size() == 1 && tables[0]->packable()) {
    CountTable::Packed counts = tables[0]->release_packed(packed_min_count);
    for (auto& ts : threads_) ts->tables[col] = CountTable(CountTable::kDeferred);
    packed(col, std::move(counts));
    return;
  }
  // Nothing on disk: the totals come straight from the threads' tables (for_each_union; with more
  // threads, the other tables are hashed into the largest one), no sort needed (the sink sees the same
  // set of totals as the merge below would give, in another order).
  if (runs.empty() && tables.size() <= kMaxUnionTables) {
    for_each_union(tables, [&](const KeyCount& kc) { sink(col, kc); });
    for (auto& ts : threads_) ts->tables[col] = CountTable(CountTable::kDeferred);
    return;
  }
  if (runs.empty()) {
    if (!tables.empty()) {
      std::size_t big = 0;
      for (std::size_t i = 1; i < tables.size(); ++i)
        if (tables[i]->size() > tables[big]->size()) big = i;
      for (std::size_t i = 0; i < tables.size(); ++i)
        if (i != big) {
          tables[big]->merge_from(*tables[i]);
          *tables[i] = CountTable(CountTable::kDeferred);
        }
      tables[big]->for_each([&](const KeyCount& kc) { sink(col, kc); });
    }
    for (auto& ts : threads_) ts->tables[col] = CountTable(CountTable::kDeferred);
    return;
  }
  while (runs.size() > kMaxFanIn) {
    std::vector<std::unique_ptr<Source>> group;
    for (std::size_t i = 0; i < kMaxFanIn; ++i) group.push_back(std::make_unique<FileSource>(runs[i]));
    fs::path path = temp_dir_ / str_cat("bw-", label_, "-", ::getpid(), "-", g_run_serial++, ".run");
    RunWriter w(path);
    merge_sources(group, [&](const KeyCount& kc) { w.append(kc); });
    RunFile merged = w.close();
    group.clear();
    runs.erase(runs.begin(), runs.begin() + kMaxFanIn);
    runs.push_back(std::move(merged));
  }
  std::vector<std::unique_ptr<Source>> sources;
  for (const RunFile& r : runs) sources.push_back(std::make_unique<FileSource>(r));
  for (CountTable* t : tables) sources.push_back(std::make_unique<VectorSource>(t->release_sorted(0)));
  merge_sources(sources, [&](const KeyCount& kc) { sink(col, kc); });
  for (auto& ts : threads_) ts->tables[col] = CountTable(CountTable::kDeferred);
}

}  // namespace bluewhale::prep_ops
