#include "bluewhale/loader/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <numeric>
#include <thread>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Rows travel through the shuffle buffer as (shard, row in shard) packed into one word.
constexpr int kLocalBits = 40;
constexpr uint64_t kLocalMask = (uint64_t{1} << kLocalBits) - 1;
constexpr int64_t kMaxShards = int64_t{1} << (64 - kLocalBits);
// Rows decoded into records per step: small enough to stay in L1/L2, large enough to stream each column.
constexpr int64_t kDecodeRun = 256;

// splitmix64 stream: tiny state, identical output on every platform (unlike std distributions).
class Rng {
 public:
  explicit Rng(uint64_t key) : state_(key) {}
  uint64_t next() {
    uint64_t r = mix64(state_);
    state_ += 0x9E3779B97F4A7C15ull;
    return r;
  }
  // Uniform in [0, n) by multiply-shift; the bias for n << 2^64 is far below anything observable.
  uint64_t below(uint64_t n) { return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }

 private:
  uint64_t state_;
};

uint64_t stream_key(uint64_t seed, int64_t epoch, int worker, uint64_t purpose) {
  return mix64(mix64(mix64(seed) ^ static_cast<uint64_t>(epoch)) ^ (static_cast<uint64_t>(worker) << 8 | purpose));
}

}  // namespace

struct Loader::Impl {
  Dataset ds;
  LoaderOptions opt;
  int threads = 1;

  // Column layout.
  int label = -1;
  std::vector<int> dense, cat, multi, aux;

  // Shards of the split and the worker's row range [lo, hi) in split order.
  std::vector<int64_t> shard_start;  // (num_shards + 1)
  int64_t lo = 0, hi = 0;

  // Producer-only state: mapped shards and flat per-(shard, column) base pointers.
  std::vector<ShardView> views;
  std::vector<char> opened;
  std::vector<const float*> label_ptr, dense_ptr;
  std::vector<const int32_t*> cat_ptr, multi_val;
  std::vector<const int64_t*> multi_off, aux_ptr;
  // The shuffle buffer holds rows as fixed-size records, decoded from the columns while reading a block
  // sequentially, so drawing a random row touches one or two cache lines instead of one per column.
  // Record: packed (shard, local) u64 | aux i64[na] | label f32 | dense f32[nd] | categorical i32[nc].
  struct RecordLayout {
    size_t aux = 8, label = 0, dense = 0, cat = 0, bytes = 0;
  } rec;
  std::vector<uint32_t> row_shard;
  std::vector<uint64_t> row_local;

  // Cache of the first complete epoch (producer-only until complete, then read-only).
  std::vector<Batch> cache;
  bool cache_complete = false;

  // Producer/consumer hand-off.
  mutable std::mutex mu;
  std::condition_variable cv_ready, cv_space;
  std::deque<Batch> queue;
  std::vector<Batch> pool;  // spent batches whose buffers the producer reuses
  bool done = false, stop = false, touched = false;
  std::exception_ptr error;
  int64_t epoch = 0;
  std::thread producer;

  LoaderStats st;
  bool timing = false;
  Clock::time_point first_call;

  void open_shard(int s);
  void build(Batch& b, const uint64_t* rows, const uint8_t* recs, int64_t n, int64_t epoch_id);
  void decode_records(int s, uint64_t local, int64_t n, uint8_t* dst);
  bool push(Batch&& b, double busy);
  Batch take_spare();
  void produce(int64_t epoch_id);
  void produce_from_cache(int64_t epoch_id);
  void launch(int64_t epoch_id);
  void halt();
};

void Loader::Impl::open_shard(int s) {
  if (opened[s]) return;
  views[s] = ds.open_shard(opt.split, s, opt.verify);
  const ShardView& v = views[s];
  if (label >= 0) label_ptr[s] = v.f32(label).data();
  for (size_t d = 0; d < dense.size(); ++d) dense_ptr[s * dense.size() + d] = v.f32(dense[d]).data();
  for (size_t t = 0; t < cat.size(); ++t) cat_ptr[s * cat.size() + t] = v.ids(cat[t]).data();
  for (size_t t = 0; t < multi.size(); ++t) {
    multi_off[s * multi.size() + t] = v.offsets(multi[t]).data();
    multi_val[s * multi.size() + t] = v.values(multi[t]).data();
  }
  for (size_t a = 0; a < aux.size(); ++a) aux_ptr[s * aux.size() + a] = v.i64(aux[a]).data();
  opened[s] = 1;
}

// Assembles n rows into b. Rows are given either as packed (shard, local) indices, gathered from the
// mapped columns, or as row records (see RecordLayout) already holding every fixed-width value; list
// columns are always gathered from the mapping. Shards referenced must be open.
void Loader::Impl::build(Batch& b, const uint64_t* rows, const uint8_t* recs, int64_t n, int64_t epoch_id) {
  b.size = n;
  b.epoch = epoch_id;
  row_shard.resize(n);
  row_local.resize(n);
  for (int64_t k = 0; k < n; ++k) {
    uint64_t packed;
    if (recs)
      std::memcpy(&packed, recs + k * rec.bytes, 8);
    else
      packed = rows[k];
    row_shard[k] = static_cast<uint32_t>(packed >> kLocalBits);
    row_local[k] = packed & kLocalMask;
  }
  const size_t nd = dense.size(), nc = cat.size(), nm = multi.size(), na = opt.aux ? aux.size() : 0;
  b.labels.resize(label >= 0 ? n : 0);
  b.dense.resize(n * nd);
  b.ids.resize(nc + nm);
  b.offsets.resize(nc + nm);
  b.aux.resize(na);
  for (size_t t = 0; t < nc; ++t) {
    b.ids[t].resize(n);
    b.offsets[t].resize(n + 1);
    std::iota(b.offsets[t].begin(), b.offsets[t].end(), 0);
  }
  // Bag offsets need a prefix sum over the whole batch before rows can be copied in parallel.
  for (size_t t = 0; t < nm; ++t) {
    auto& off = b.offsets[nc + t];
    off.resize(n + 1);
    off[0] = 0;
    int64_t total = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t* o = multi_off[row_shard[k] * nm + t];
      total += o[row_local[k] + 1] - o[row_local[k]];
      BW_CHECK(total <= std::numeric_limits<int32_t>::max(), ConfigError, "loader: table '",
               ds.columns()[multi[t]].name, "' has more than 2^31 ids in one batch; lower batch_size");
      off[k + 1] = static_cast<int32_t>(total);
    }
    b.ids[nc + t].resize(total);
  }
  for (size_t a = 0; a < na; ++a) b.aux[a].resize(n);

  parallel_for(n, threads, [&](int64_t begin, int64_t end, int) {
    const uint32_t* sh = row_shard.data();
    const uint64_t* lc = row_local.data();
    if (recs) {
      for (int64_t k = begin; k < end; ++k) {
        const uint8_t* r = recs + k * rec.bytes;
        if (label >= 0) std::memcpy(&b.labels[k], r + rec.label, 4);
        if (nd > 0) std::memcpy(&b.dense[k * nd], r + rec.dense, 4 * nd);
        for (size_t t = 0; t < nc; ++t) std::memcpy(&b.ids[t][k], r + rec.cat + 4 * t, 4);
        for (size_t a = 0; a < na; ++a) std::memcpy(&b.aux[a][k], r + rec.aux + 8 * a, 8);
      }
    } else {
    if (label >= 0) {
      float* dst = b.labels.data();
      for (int64_t k = begin; k < end; ++k) dst[k] = label_ptr[sh[k]][lc[k]];
    }
    // Row-major dense: write each output row contiguously, reading nd column streams.
    if (nd > 0) {
      float* dst = b.dense.data();
      for (int64_t k = begin; k < end; ++k) {
        const float* const* src = &dense_ptr[sh[k] * nd];
        float* out = dst + k * nd;
        for (size_t d = 0; d < nd; ++d) out[d] = src[d][lc[k]];
      }
    }
    for (size_t t = 0; t < nc; ++t) {
      int32_t* dst = b.ids[t].data();
      for (int64_t k = begin; k < end; ++k) dst[k] = cat_ptr[sh[k] * nc + t][lc[k]];
    }
    for (size_t a = 0; a < na; ++a) {
      int64_t* dst = b.aux[a].data();
      for (int64_t k = begin; k < end; ++k) dst[k] = aux_ptr[sh[k] * aux.size() + a][lc[k]];
    }
    }
    for (size_t t = 0; t < nm; ++t) {
      int32_t* dst = b.ids[nc + t].data();
      const int32_t* off = b.offsets[nc + t].data();
      for (int64_t k = begin; k < end; ++k) {
        const int64_t* o = multi_off[sh[k] * nm + t];
        const int32_t* v = multi_val[sh[k] * nm + t];
        std::copy(v + o[lc[k]], v + o[lc[k] + 1], dst + off[k]);
      }
    }
  });
}

Batch Loader::Impl::take_spare() {
  std::lock_guard lock(mu);
  if (pool.empty()) return {};
  Batch b = std::move(pool.back());
  pool.pop_back();
  return b;
}

// Blocks while the queue is full; false when asked to stop.
bool Loader::Impl::push(Batch&& b, double busy) {
  std::unique_lock lock(mu);
  st.produce_seconds += busy;
  cv_space.wait(lock, [&] { return stop || static_cast<int>(queue.size()) < opt.prefetch_batches; });
  if (stop) return false;
  queue.push_back(std::move(b));
  cv_ready.notify_one();
  return true;
}

// Writes rows [local, local + n) of open shard s as records into dst (n * rec.bytes), one column at a
// time so each column is read sequentially.
void Loader::Impl::decode_records(int s, uint64_t local, int64_t n, uint8_t* dst) {
  const size_t R = rec.bytes, nd = dense.size(), nc = cat.size(), na = opt.aux ? aux.size() : 0;
  uint64_t packed = static_cast<uint64_t>(s) << kLocalBits | local;
  for (int64_t i = 0; i < n; ++i, ++packed) std::memcpy(dst + i * R, &packed, 8);
  for (size_t a = 0; a < na; ++a) {
    const int64_t* src = aux_ptr[s * aux.size() + a] + local;
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * R + rec.aux + 8 * a, src + i, 8);
  }
  if (label >= 0) {
    const float* src = label_ptr[s] + local;
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * R + rec.label, src + i, 4);
  }
  for (size_t d = 0; d < nd; ++d) {
    const float* src = dense_ptr[s * nd + d] + local;
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * R + rec.dense + 4 * d, src + i, 4);
  }
  for (size_t t = 0; t < nc; ++t) {
    const int32_t* src = cat_ptr[s * nc + t] + local;
    for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * R + rec.cat + 4 * t, src + i, 4);
  }
}

void Loader::Impl::produce(int64_t epoch_id) {
  const bool filling = opt.cache && !cache_complete;
  if (filling) cache.clear();
  const int64_t B = opt.batch_size;
  const int64_t range = hi - lo;
  const int64_t block = opt.shuffle ? opt.shuffle_block_rows : std::max<int64_t>(range, 1);
  const int64_t nblocks = (range + block - 1) / block;
  std::vector<int64_t> order(nblocks);
  std::iota(order.begin(), order.end(), 0);
  Rng rng(stream_key(opt.seed, epoch_id, opt.worker, 1));
  if (opt.shuffle)
    for (int64_t i = nblocks - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  const int64_t cap = opt.shuffle ? std::min(opt.shuffle_buffer_rows, range) : 0;
  const size_t R = rec.bytes;

  // Without a shuffle buffer rows go straight to the batch as packed indices; with one, as records.
  std::vector<uint64_t> pending;
  std::vector<uint8_t> staged, slots, incoming;
  int64_t npending = 0, filled = 0;
  if (cap == 0) {
    pending.resize(B);
  } else {
    staged.resize(B * R);
    slots.resize(cap * R);
    incoming.resize(kDecodeRun * R);
  }
  auto t0 = Clock::now();

  auto emit_batch = [&]() -> bool {
    Batch b = take_spare();
    build(b, cap == 0 ? pending.data() : nullptr, cap == 0 ? nullptr : staged.data(), npending, epoch_id);
    npending = 0;
    if (filling) cache.push_back(b);
    double busy = seconds_since(t0);
    bool ok = push(std::move(b), busy);
    t0 = Clock::now();
    return ok;
  };

  for (int64_t bi = 0; bi < nblocks; ++bi) {
    int64_t g = lo + order[bi] * block;
    int64_t end = std::min(g + block, hi);
    // The shard holding global row g: the last shard starting at or before it.
    int s = static_cast<int>(std::upper_bound(shard_start.begin(), shard_start.end(), g) - shard_start.begin()) - 1;
    while (g < end) {
      open_shard(s);
      int64_t stop_at = std::min(end, shard_start[s + 1]);
      uint64_t local = static_cast<uint64_t>(g - shard_start[s]);
      if (cap == 0) {
        uint64_t packed = static_cast<uint64_t>(s) << kLocalBits | local;
        for (; g < stop_at; ++g, ++packed) {
          pending[npending++] = packed;
          if (npending == B && !emit_batch()) return;
        }
      }
      while (g < stop_at) {
        int64_t n = std::min<int64_t>(kDecodeRun, stop_at - g);
        decode_records(s, local, n, incoming.data());
        for (int64_t i = 0; i < n; ++i) {
          const uint8_t* row = incoming.data() + i * R;
          if (filled < cap) {
            std::memcpy(slots.data() + filled++ * R, row, R);
            continue;
          }
          // The incoming row takes the place of a uniformly chosen buffered row, which is emitted.
          uint8_t* slot = slots.data() + rng.below(static_cast<uint64_t>(cap)) * R;
          std::memcpy(staged.data() + npending++ * R, slot, R);
          std::memcpy(slot, row, R);
          if (npending == B && !emit_batch()) return;
        }
        g += n;
        local += static_cast<uint64_t>(n);
      }
      ++s;
    }
    std::lock_guard lock(mu);
    if (stop) return;
  }
  // Drain the buffer in random order.
  for (int64_t i = filled; i > 0; --i) {
    uint8_t* pick = slots.data() + rng.below(static_cast<uint64_t>(i)) * R;
    std::memcpy(staged.data() + npending++ * R, pick, R);
    std::memcpy(pick, slots.data() + (i - 1) * R, R);
    if (npending == B && !emit_batch()) return;
  }
  if (npending > 0 && !opt.drop_last && !emit_batch()) return;
  if (filling) cache_complete = true;
}

void Loader::Impl::produce_from_cache(int64_t epoch_id) {
  std::vector<size_t> order(cache.size());
  std::iota(order.begin(), order.end(), 0);
  if (opt.shuffle) {
    Rng rng(stream_key(opt.seed, epoch_id, opt.worker, 2));
    for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  }
  for (size_t i : order) {
    auto t0 = Clock::now();
    Batch b = take_spare();
    b = cache[i];  // copy-assign reuses b's capacity
    b.epoch = epoch_id;
    if (!push(std::move(b), seconds_since(t0))) return;
  }
}

void Loader::Impl::launch(int64_t epoch_id) {
  {
    std::lock_guard lock(mu);
    epoch = epoch_id;
    done = stop = touched = false;
    error = nullptr;
  }
  producer = std::thread([this, epoch_id] {
    try {
      if (opt.cache && cache_complete)
        produce_from_cache(epoch_id);
      else
        produce(epoch_id);
    } catch (...) {
      // An epoch that failed half-way must not leave a partial cache behind.
      if (!cache_complete) cache.clear();
      std::lock_guard lock(mu);
      error = std::current_exception();
    }
    std::lock_guard lock(mu);
    done = true;
    cv_ready.notify_all();
  });
}

void Loader::Impl::halt() {
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv_space.notify_all();
  if (producer.joinable()) producer.join();
  // A stopped filling epoch is incomplete: forget it so the next epoch fills the cache again.
  if (!cache_complete) cache.clear();
  std::lock_guard lock(mu);
  while (!queue.empty()) {
    pool.push_back(std::move(queue.front()));
    queue.pop_front();
  }
}

Loader::Loader(const Dataset& dataset, LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.ds = dataset;
  m.opt = options;
  const LoaderOptions& o = m.opt;
  BW_CHECK(o.batch_size >= 1, ConfigError, "loader: batch_size must be >= 1, got ", o.batch_size);
  BW_CHECK(o.shuffle_block_rows >= 1, ConfigError, "loader: shuffle_block_rows must be >= 1, got ",
           o.shuffle_block_rows);
  BW_CHECK(o.shuffle_buffer_rows >= 0, ConfigError, "loader: shuffle_buffer_rows must be >= 0, got ",
           o.shuffle_buffer_rows);
  BW_CHECK(o.num_workers >= 1, ConfigError, "loader: num_workers must be >= 1, got ", o.num_workers);
  BW_CHECK(o.worker >= 0 && o.worker < o.num_workers, ConfigError, "loader: worker must be in [0, ",
           o.num_workers, "), got ", o.worker);
  BW_CHECK(o.prefetch_batches >= 1, ConfigError, "loader: prefetch_batches must be >= 1, got ", o.prefetch_batches);
  m.threads = resolve_threads(o.threads);

  m.label = dataset.label_column();
  m.dense = dataset.dense_columns();
  m.cat = dataset.categorical_columns();
  m.multi = dataset.multi_columns();
  m.aux = dataset.aux_columns();

  m.rec.aux = 8;
  m.rec.label = m.rec.aux + 8 * (o.aux ? m.aux.size() : 0);
  m.rec.dense = m.rec.label + (m.label >= 0 ? 4 : 0);
  m.rec.cat = m.rec.dense + 4 * m.dense.size();
  m.rec.bytes = (m.rec.cat + 4 * m.cat.size() + 7) / 8 * 8;

  const auto& shards = dataset.shards(o.split);
  BW_CHECK(static_cast<int64_t>(shards.size()) < kMaxShards, FormatError, "dataset '", dataset.root().string(),
           "': too many shards (", shards.size(), ")");
  m.shard_start.assign(1, 0);
  for (const ShardInfo& s : shards) m.shard_start.push_back(m.shard_start.back() + s.rows);
  const int64_t total = m.shard_start.back();
  // R*k/N without overflow for any row count: split into quotient and remainder.
  auto bound = [&](int64_t k) { return total / o.num_workers * k + total % o.num_workers * k / o.num_workers; };
  m.lo = bound(o.worker);
  m.hi = bound(o.worker + 1);

  const size_t ns = shards.size();
  m.views.resize(ns);
  m.opened.assign(ns, 0);
  m.label_ptr.resize(ns);
  m.dense_ptr.resize(ns * m.dense.size());
  m.cat_ptr.resize(ns * m.cat.size());
  m.multi_off.resize(ns * m.multi.size());
  m.multi_val.resize(ns * m.multi.size());
  m.aux_ptr.resize(ns * m.aux.size());
  m.launch(0);
}

Loader::~Loader() { impl_->halt(); }

bool Loader::next(Batch& batch) {
  Impl& m = *impl_;
  auto t0 = Clock::now();
  std::unique_lock lock(m.mu);
  if (!m.timing) {
    m.timing = true;
    m.first_call = t0;
  }
  m.touched = true;
  m.cv_ready.wait(lock, [&] { return !m.queue.empty() || m.done; });
  auto t1 = Clock::now();
  m.st.wait_seconds += std::chrono::duration<double>(t1 - t0).count();
  m.st.elapsed_seconds = std::chrono::duration<double>(t1 - m.first_call).count();
  if (m.queue.empty()) {
    if (m.error) std::rethrow_exception(m.error);
    return false;
  }
  std::swap(batch, m.queue.front());
  // The caller's previous batch goes back to the producer so its buffers are reused, not reallocated.
  if (static_cast<int>(m.pool.size()) < m.opt.prefetch_batches + 1) m.pool.push_back(std::move(m.queue.front()));
  m.queue.pop_front();
  m.cv_space.notify_one();
  m.st.rows += batch.size;
  m.st.batches += 1;
  return true;
}

void Loader::start_epoch(int64_t epoch) {
  Impl& m = *impl_;
  {
    std::lock_guard lock(m.mu);
    if (epoch == m.epoch && !m.touched && !m.error) return;
  }
  m.halt();
  m.launch(epoch);
}

int64_t Loader::epoch() const {
  std::lock_guard lock(impl_->mu);
  return impl_->epoch;
}

int64_t Loader::rows_per_epoch() const {
  int64_t r = impl_->hi - impl_->lo;
  return impl_->opt.drop_last ? r / impl_->opt.batch_size * impl_->opt.batch_size : r;
}

int64_t Loader::batches_per_epoch() const {
  int64_t r = impl_->hi - impl_->lo, b = impl_->opt.batch_size;
  return impl_->opt.drop_last ? r / b : (r + b - 1) / b;
}

LoaderStats Loader::stats() const {
  std::lock_guard lock(impl_->mu);
  LoaderStats s = impl_->st;
  s.rows_per_second = s.elapsed_seconds > 0 ? static_cast<double>(s.rows) / s.elapsed_seconds : 0;
  return s;
}

double measure_loader_throughput(const Dataset& dataset, LoaderOptions options, int64_t max_batches) {
  auto t0 = Clock::now();
  Loader loader(dataset, options);
  Batch b;
  int64_t rows = 0, batches = 0, in_epoch = 0, epoch = 0;
  while (batches < max_batches) {
    if (loader.next(b)) {
      rows += b.size;
      ++batches;
      ++in_epoch;
      continue;
    }
    if (in_epoch == 0) break;  // an empty split would loop forever
    in_epoch = 0;
    loader.start_epoch(++epoch);
  }
  double s = seconds_since(t0);
  return s > 0 ? static_cast<double>(rows) / s : 0;
}

}  // namespace bluewhale
