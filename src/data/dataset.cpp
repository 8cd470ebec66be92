#include "bluewhale/data/dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/version.h"
#include "core/zero_buffer.h"
#include "data/direct_file.h"
#include "data/id_kernels.h"

namespace bluewhale {

using json = nlohmann::json;

namespace {

constexpr char kShardMagic[8] = {'B', 'W', 'S', 'H', 'A', 'R', 'D', '\0'};
constexpr uint64_t kHeaderBytes = 64;
constexpr uint64_t kEntryBytes = 32;
constexpr uint64_t kAlign = 64;
const std::string kCreatedBy = std::string("bluewhale ") + kVersion;
constexpr const char* kSplitNames[kNumSplits] = {"train", "valid", "test"};

// On-disk header and directory entry. Fixed-width fields only, copied with memcpy, so the layout is the
// same on every little-endian platform we build for.
struct ShardHeader {
  char magic[8];
  uint32_t version;
  uint32_t num_columns;
  int64_t rows;
  uint32_t num_blocks;
  uint32_t reserved;
  uint64_t dir_xxh3;
  uint8_t pad[24];
};
static_assert(sizeof(ShardHeader) == kHeaderBytes);

struct DirEntry {
  uint32_t column;
  uint8_t dtype;
  uint8_t part;  // 0: data (fixed column or list values), 1: list offsets
  uint16_t reserved;
  uint64_t offset;
  uint64_t bytes;
  uint64_t xxh3;
};
static_assert(sizeof(DirEntry) == kEntryBytes);

uint64_t align_up(uint64_t x, uint64_t a = kAlign) { return (x + a - 1) / a * a; }

// Writes the shard header into head[0, 64), given the directory already in head[64, head_bytes).
void put_shard_header(char* head, std::size_t head_bytes, std::size_t columns, int64_t rows, std::size_t blocks) {
  ShardHeader h{};
  std::memcpy(h.magic, kShardMagic, sizeof h.magic);
  h.version = kDatasetFormatVersion;
  h.num_columns = static_cast<uint32_t>(columns);
  h.rows = rows;
  h.num_blocks = static_cast<uint32_t>(blocks);
  h.dir_xxh3 = hash_bytes(head + kHeaderBytes, head_bytes - kHeaderBytes);
  std::memcpy(head, &h, kHeaderBytes);
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

int blocks_of(DType t) { return t == DType::kListI32 ? 2 : 1; }

// Physical element type and size of block `part` of a column stored as `t`.
DType part_dtype(DType t, int part) {
  if (t == DType::kListI32) return part == 0 ? DType::kI32 : DType::kI64;
  return t;
}
uint64_t elem_size(DType t) { return t == DType::kF32 || t == DType::kI32 ? 4 : 8; }

bool is_id_role(Role r) { return r == Role::kCategorical || r == Role::kMulti || r == Role::kSequence; }

std::string_view kind_name(ColumnKind k) {
  switch (k) {
    case ColumnKind::kFloat: return "float";
    case ColumnKind::kInt: return "int";
    case ColumnKind::kList: return "list";
  }
  return "?";
}

// Id columns up to this cardinality mark the ids they hold in a byte map (a plain store per value)
// rather than the bitmap (a read-modify-write per value, one after the other when ids repeat: the most
// frequent ids are the most common values).
inline constexpr int64_t kMaxByteMapCardinality = int64_t{1} << 20;
// A missing int64 value on disk.
inline constexpr int64_t kMissingI64 = std::numeric_limits<int64_t>::min();

// Running statistics of one column; `present` counts the values min/max/mean are over.
struct StatAcc {
  int64_t rows = 0, missing = 0, present = 0;
  double sum = 0, min = std::numeric_limits<double>::infinity(), max = -std::numeric_limits<double>::infinity();
  std::vector<uint64_t> seen;       // id bitmap for distinct counts (large cardinalities)
  std::vector<uint8_t> seen_bytes;  // or one byte per id (up to kMaxByteMapCardinality), plus a spare one
  uint64_t low_marks = 0;           // bit v: id v < 64 occurred (from the id kernels, at no extra cost)
  // Ids in [present_from, cardinality) are known to occur (DatasetWriter::assume_ids_present): only the
  // low marks are kept. -1: not known.
  int64_t present_from = -1;
  // Whether distinct ids come from low_marks alone, without the per-id marks.
  bool low_only(int64_t card) const { return present_from >= 0 || card <= 64; }

  void add(double v) {
    ++present;
    sum += v;
    min = std::min(min, v);
    max = std::max(max, v);
  }
  ColumnStats finish(const DatasetColumn& c) const {
    ColumnStats s;
    s.rows = rows;
    s.missing = missing;
    if (present > 0) {
      s.min = min;
      s.max = max;
      s.mean = sum / static_cast<double>(present);
    }
    if (is_id_role(c.role) && low_only(c.cardinality)) {
      const int64_t from = present_from >= 0 ? present_from : 64;  // ids below `from` counted from the marks
      const uint64_t below = from >= 64 ? ~uint64_t{0} : (uint64_t{1} << from) - 1;
      s.distinct = std::popcount(low_marks & below) + std::max<int64_t>(c.cardinality - from, 0);
    } else if (is_id_role(c.role) && c.cardinality <= kMaxDistinctCardinality) {
      s.distinct = 0;
      for (uint64_t w : seen) s.distinct += std::popcount(w);
      for (std::size_t k = 0; k + 1 < seen_bytes.size(); ++k) s.distinct += seen_bytes[k];  // the last: spare
    }
    return s;
  }
};

// Missing count (NaN), sum, min and max of n floats into st, in four interleaved lanes: one running sum
// was a chain of dependent additions, and the sum, min and max stored back to st for every value.
// Four lanes, element k going to lane k % 4; the final sum adds the lanes as (0 + 1) + (2 + 3). The SSE2
// loop does exactly the scalar loop's operations in the same order (so the statistics do not depend on
// the build): the dense columns' statistics ran once per value on the writer thread, a scalar NaN test,
// add, min and max each.
void float_stats(const float* x, int64_t n, StatAcc& st) {
  double sum[4] = {0, 0, 0, 0};
  float lo[4], hi[4];
  int64_t nan[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; ++j) {
    lo[j] = std::numeric_limits<float>::infinity();
    hi[j] = -std::numeric_limits<float>::infinity();
  }
  int64_t k = 0;
#if defined(__SSE2__)
  {
    __m128d s01 = _mm_setzero_pd(), s23 = _mm_setzero_pd();
    __m128 vlo = _mm_loadu_ps(lo), vhi = _mm_loadu_ps(hi);
    __m128i missing = _mm_setzero_si128();  // per lane, minus the count (flushed before it can overflow)
    int64_t pending = 0;
    for (; k + 4 <= n; k += 4) {
      const __m128 v = _mm_loadu_ps(x + k);
      const __m128 miss = _mm_cmpunord_ps(v, v);
      missing = _mm_add_epi32(missing, _mm_castps_si128(miss));
      const __m128 kept = _mm_andnot_ps(miss, v);  // NaN -> +0.0, added as the scalar loop adds 0.0
      s01 = _mm_add_pd(s01, _mm_cvtps_pd(kept));
      s23 = _mm_add_pd(s23, _mm_cvtps_pd(_mm_movehl_ps(kept, kept)));
      vlo = _mm_min_ps(v, vlo);  // v < lo ? v : lo: NaN keeps lo
      vhi = _mm_max_ps(v, vhi);
      if (++pending == (int64_t{1} << 30)) {
        alignas(16) int32_t m[4];
        _mm_store_si128(reinterpret_cast<__m128i*>(m), missing);
        for (int j = 0; j < 4; ++j) nan[j] -= m[j];
        missing = _mm_setzero_si128();
        pending = 0;
      }
    }
    alignas(16) int32_t m[4];
    _mm_store_si128(reinterpret_cast<__m128i*>(m), missing);
    for (int j = 0; j < 4; ++j) nan[j] -= m[j];
    _mm_storeu_pd(sum, s01);
    _mm_storeu_pd(sum + 2, s23);
    _mm_storeu_ps(lo, vlo);
    _mm_storeu_ps(hi, vhi);
  }
#else
  for (; k + 4 <= n; k += 4)
    for (int j = 0; j < 4; ++j) {
      const float v = x[k + j];
      const bool miss = v != v;
      nan[j] += miss;
      sum[j] += miss ? 0.0 : static_cast<double>(v);
      lo[j] = v < lo[j] ? v : lo[j];  // false for NaN: skipped
      hi[j] = v > hi[j] ? v : hi[j];
    }
#endif
  for (; k < n; ++k) {
    const float v = x[k];
    const bool miss = v != v;
    nan[0] += miss;
    sum[0] += miss ? 0.0 : static_cast<double>(v);
    lo[0] = v < lo[0] ? v : lo[0];
    hi[0] = v > hi[0] ? v : hi[0];
  }
  const int64_t missing = nan[0] + nan[1] + nan[2] + nan[3];
  st.missing += missing;
  st.present += n - missing;
  st.sum += (sum[0] + sum[1]) + (sum[2] + sum[3]);
  for (int j = 0; j < 4; ++j) {
    if (lo[j] <= hi[j]) {  // the lane saw a value
      st.min = std::min(st.min, static_cast<double>(lo[j]));
      st.max = std::max(st.max, static_cast<double>(hi[j]));
    }
  }
}

// Statistics of n categorical ids of column dc, chunk rows row0 .. row0 + n (present where valid[k] != 0,
// or all when valid is null), stored to dst as int32 (missing ones as 0) through the ISA-level kernel
// (data/id_kernels.h), then the distinct-id marks, random stores, once the range is checked. Throws
// InputError naming the first id outside [0, cardinality).
void id_stats(const DatasetColumn& dc, const Chunk& chunk, const int64_t* src, const uint8_t* valid, int64_t n,
              int64_t row0, int32_t* dst, StatAcc& st) {
  const int64_t card = dc.cardinality;
  const bool low_only = st.low_only(card);
  if (st.seen.empty() && st.seen_bytes.empty() && !low_only) {
    if (card <= kMaxByteMapCardinality) st.seen_bytes.assign(static_cast<std::size_t>(card) + 1, 0);
    else if (card <= kMaxDistinctCardinality) st.seen.assign((card + 63) / 64, 0);
  }
  const IdStretch got = store_ids_for(simd_level())(src, valid, n, static_cast<uint64_t>(card), dst);
  if (got.out_of_range) {
    for (int64_t k = 0; k < n; ++k) {
      const int64_t v = src[k];
      BW_CHECK((valid && !valid[k]) || static_cast<uint64_t>(v) < static_cast<uint64_t>(card), InputError, "column '",
               dc.name, "': id ", v, " outside [0, ", card, ") at input row ", chunk.global_row(row0 + k),
               " (input file #", chunk.file_index, ")");
    }
  }
  st.low_marks |= got.low_marks;
  // (Neither map exists when the low marks are enough.)
  if (!st.seen_bytes.empty()) {
    uint8_t* seen_bytes = st.seen_bytes.data();
    if (valid) {
      // Missing rows (stored as 0) mark the spare byte past the ids: index 0 + card, without a branch.
      for (int64_t k = 0; k < n; ++k) seen_bytes[dst[k] + (card & -static_cast<int64_t>(valid[k] == 0))] = 1;
    } else {
      for (int64_t k = 0; k < n; ++k) seen_bytes[dst[k]] = 1;
    }
  } else if (!st.seen.empty()) {
    uint64_t* seen = st.seen.data();
    for (int64_t k = 0; k < n; ++k) {
      const uint32_t v = static_cast<uint32_t>(dst[k]);
      const uint64_t m = valid ? (valid[k] != 0) : 1;
      seen[v >> 6] |= m << (v & 63);
    }
  }
  st.missing += n - got.present;
  if (got.present > 0) {
    st.present += got.present;
    st.sum += static_cast<double>(got.sum);
    st.min = std::min(st.min, static_cast<double>(got.lo));
    st.max = std::max(st.max, static_cast<double>(got.hi));
  }
}

// Statistics of n int64 values, missing where valid[k] == 0 (valid may be null) or equal to INT64_MIN (the
// missing marker on disk).
void i64_stats(const int64_t* x, const uint8_t* valid, int64_t n, StatAcc& st) {
  for (int64_t k = 0; k < n; ++k) {
    if ((valid && !valid[k]) || x[k] == kMissingI64)
      ++st.missing;
    else
      st.add(static_cast<double>(x[k]));
  }
}

// Statistics of the lists of chunk rows first .. first + n of column dc (lengths; distinct ids); throws
// InputError naming the first id outside [0, cardinality).
void list_stats(const DatasetColumn& dc, const Chunk& chunk, const Column& col, int64_t first, int64_t n,
                StatAcc& st) {
  const int64_t card = dc.cardinality;
  const bool low_only = st.low_only(card);
  if (st.seen.empty() && card <= kMaxDistinctCardinality && !low_only) st.seen.assign((card + 63) / 64, 0);
  const bool track = !st.seen.empty();
  uint64_t low_marks = 0;
  const int64_t* so = col.offsets.data();
  for (int64_t r = first; r < first + n; ++r) {
    const int64_t len = so[r + 1] - so[r];
    const int64_t* sv = col.i.data() + so[r];
    for (int64_t j = 0; j < len; ++j) {
      const int64_t v = sv[j];
      BW_CHECK(static_cast<uint64_t>(v) < static_cast<uint64_t>(card), InputError, "column '", dc.name, "': id ", v,
               " outside [0, ", card, ") at input row ", chunk.global_row(r), " (input file #", chunk.file_index, ")");
      low_marks |= static_cast<uint64_t>(v < 64) << (v & 63);
      if (track) st.seen[v >> 6] |= uint64_t{1} << (v & 63);
    }
    if (len == 0)
      ++st.missing;
    else
      st.add(static_cast<double>(len));
  }
  st.low_marks |= low_marks;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

}  // namespace

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::kF32: return "f32";
    case DType::kI32: return "i32";
    case DType::kI64: return "i64";
    case DType::kListI32: return "list<i32>";
  }
  return "?";
}

DType dtype_for_role(Role role) {
  switch (role) {
    case Role::kLabel:
    case Role::kDense: return DType::kF32;
    case Role::kCategorical: return DType::kI32;
    case Role::kMulti:
    case Role::kSequence: return DType::kListI32;
    case Role::kTimestamp:
    case Role::kId: return DType::kI64;
    case Role::kIgnore: break;
  }
  BW_ASSERT(false, "ignore-role columns have no storage type");
  return DType::kF32;
}

// ------------------------------------------------------------------------------------------------ writer

struct DatasetWriter::Impl {
  // Buffered rows of one column of one split; which buffer is used depends on the column's dtype.
  // PageVectors (mapped, capacity kept from shard to shard, no zero fill before the values are copied
  // in): the buffers of a 262144-row shard are ~1 MiB per column, and on the machines prep runs on every
  // fresh page is a costly fault.
  struct ColBuf {
    ColBuf() { offsets.push_back(0); }
    PageVector<float> f;
    PageVector<int32_t> i32;
    PageVector<int64_t> i64;
    PageVector<int64_t> offsets;
    // The value buffer of a fixed-width (f32/i32/i64) column: its bytes and its capacity in bytes.
    char* bytes(DType t) {
      switch (t) {
        case DType::kF32: return reinterpret_cast<char*>(f.data());
        case DType::kI32: return reinterpret_cast<char*>(i32.data());
        case DType::kI64: return reinterpret_cast<char*>(i64.data());
        case DType::kListI32: break;
      }
      BW_ASSERT(false, "dataset writer: a list column has no single value buffer");
      return nullptr;
    }
    uint64_t capacity_bytes(DType t) const {
      switch (t) {
        case DType::kF32: return f.capacity() * 4;
        case DType::kI32: return i32.capacity() * 4;
        case DType::kI64: return i64.capacity() * 8;
        case DType::kListI32: break;
      }
      return 0;
    }
    // Room for `rows` values of a fixed-width column.
    void reserve_fixed(DType t, std::size_t rows) {
      switch (t) {
        case DType::kF32: f.reserve(rows); return;
        case DType::kI32: i32.reserve(rows); return;
        case DType::kI64: i64.reserve(rows); return;
        case DType::kListI32: break;
      }
      BW_ASSERT(false, "dataset writer: list column in a streamed shard");
    }
  };
  // Column buffers of a streamed slice (256 or 512 KiB each: pieces of shared huge pages, see
  // core/zero_buffer.h, cut from the memory the fit's count tables gave back).
  struct BufSet {
    std::vector<ColBuf> cols;
  };
  struct SplitBuf {
    int64_t buffered = 0;  // rows of the current shard appended so far
    int64_t total = 0;
    std::vector<ColBuf> cols;  // whole-shard mode: the shard's rows; streamed: rows [slice_begin, buffered)
    std::deque<ShardInfo> shards;  // a deque: the flusher fills entries while more are added
    int64_t expected = -1;     // streamed mode: rows this split gets in total; -1: whole-shard mode
    int64_t slice_begin = 0;   // streamed: first shard row held in cols
  };
  // Rows handed to the flusher thread: a whole shard, or (streamed) a slice of one.
  struct FlushJob {
    int split = 0;
    std::string name;
    int64_t shard_rows = 0;   // rows of the whole shard
    int64_t begin = 0, rows = 0;  // the slice: shard rows [begin, begin + rows)
    bool streamed = false, last = false;
    bool split_end = false;  // the split's last slice (streamed mode)
    std::vector<ColBuf> cols;
    ShardInfo* info = nullptr;  // filled in by the flusher when the shard is complete
  };
  // A streamed shard being written (flusher thread only).
  struct OpenShard {
    PositionalFileWriter file;
    std::vector<uint64_t> offset;    // per column block
    std::vector<StreamHash> hash;    // per column block
    uint64_t head_bytes = 0, end = 0;
  };
  // Streamed slices: 65536 rows, or kBigSliceRows for a dataset of at least kBigSliceFrom rows; either way
  // every slice but a shard's last is a whole number of 4 KiB pages of each column (4 or 8 bytes a value)
  // and the buffers (256 KiB+) are page aligned. Bigger slices write bigger blocks (512 instead of 256 KiB
  // a 4-byte column; this VM's disk takes O_DIRECT writes at ~0.95 GB/s in 256 KiB and ~1.1 GB/s in 1 MiB):
  // at 5M Criteo rows, where the write pass waits for the disk, it took 1,100-1,136 ms instead of
  // 1,238-1,309; at 1M, where it does not, the bigger buffers and the longer last slice cost 20-30 ms.
  static constexpr int64_t kSliceRows = 65536;
  static constexpr int64_t kBigSliceRows = 131072;
  static constexpr int64_t kBigSliceFrom = int64_t{1} << 21;
  int64_t slice_rows = kSliceRows;

  StagedDirectory staged;
  std::vector<DatasetColumn> columns;
  DatasetWriterOptions options;
  std::array<SplitBuf, kNumSplits> splits;
  std::vector<StatAcc> stats;
  bool committed = false;
  // Scratch for routing rows of mixed-split chunks.
  std::array<std::vector<int64_t>, kNumSplits> routed;
  std::vector<std::vector<int32_t>> routed_ids;  // per id column: the chunk's ids as stored
  std::vector<const Column*> src;
  SequentialFileWriter file;  // whole-shard mode: shard files, one at a time; flusher thread only
  WriteModeChoice write_mode;  // flusher thread only
  std::array<std::unique_ptr<OpenShard>, kNumSplits> open_shards;  // streamed mode, per split; flusher only
  SyncQueue syncs;  // flusher thread, then commit() once the flusher is idle

  // Shards are hashed and written on a thread of their own: writing is copying into the page cache or
  // waiting for the disk (O_DIRECT, see write_mode), either of which would otherwise stall the whole prep
  // pipeline behind the one thread that appends.
  // Whole shards are handed over one at a time (the appender waits for the write: a second shard-sized
  // buffer would cost more fresh memory than the wait). Streamed slices are small: one is written while
  // another fills, and the written one's buffers come back for the next.
  std::mutex fmu;
  std::condition_variable fcv;
  std::deque<FlushJob> fqueue;
  bool fbusy = false, fstop = false;
  std::exception_ptr ferror;
  std::vector<BufSet> spare;
  std::thread flusher;

  Impl(fs::path out, std::vector<DatasetColumn> cols, DatasetWriterOptions opts)
      : staged(std::move(out), opts.overwrite),
        columns(std::move(cols)),
        options(opts),
        write_mode(opts.page_cache_limit_ns_per_mib) {
    flusher = std::thread([this] { flush_loop(); });
  }
  ~Impl() {
    {
      std::lock_guard<std::mutex> lk(fmu);
      fstop = true;
      fcv.notify_all();
    }
    flusher.join();
  }

  // The statistics of every column over the whole chunk (checking its ids), for a chunk whose rows go to
  // more than one split: its ids are stored to routed_ids, from which append_rows() gathers each split's.
  void chunk_stats(const Chunk& chunk);
  void append_rows(SplitBuf& sb, const Chunk& chunk, const int64_t* rows, int64_t first, int64_t n);
  // Rows of the current shard of split s (streamed mode: known in advance).
  int64_t shard_target(const SplitBuf& sb) const {
    if (sb.expected < 0) return options.shard_rows;
    return std::min(options.shard_rows, sb.expected - (sb.total - sb.buffered));
  }
  // Hands the buffered rows of split s to the flusher: the split's next shard (whole-shard mode), or the
  // next slice of its current shard (streamed).
  void flush(int split);
  void write_shard(FlushJob& job);
  void write_slice(FlushJob& job);
  // Runs write(), which writes n bytes to a file going `direct` or not; a buffered write is timed for
  // write_mode until it has decided.
  template <class Write>
  void write_timed(bool direct, std::size_t n, Write&& write);
  BufSet new_slice_set() const {
    BufSet set;
    set.cols.resize(columns.size());
    for (std::size_t c = 0; c < columns.size(); ++c) set.cols[c].reserve_fixed(columns[c].dtype, static_cast<std::size_t>(slice_rows));
    return set;
  }
  void flush_loop();
  // Waits until every shard handed over is written; rethrows the flusher's error.
  void wait_flushed();
  void check_flusher();
};

namespace {

// Validates the schema before the staging directory is created, so a bad recipe leaves nothing behind.
std::vector<DatasetColumn> checked_columns(std::vector<DatasetColumn> columns, const DatasetWriterOptions& o) {
  BW_CHECK(o.shard_rows >= 1, ConfigError, "dataset writer: shard_rows must be >= 1, got ", o.shard_rows);
  BW_CHECK(o.page_cache_limit_ns_per_mib >= 0, ConfigError,
           "dataset writer: page_cache_limit_ns_per_mib must be >= 0 (infinity: always the page cache), got ",
           o.page_cache_limit_ns_per_mib);
  BW_CHECK(!columns.empty(), ConfigError, "dataset writer: no output columns");
  std::set<std::string> names;
  for (auto& c : columns) {
    BW_CHECK(!c.name.empty(), ConfigError, "dataset writer: an output column has an empty name");
    BW_CHECK(names.insert(c.name).second, ConfigError, "dataset writer: duplicate output column '", c.name, "'");
    BW_CHECK(c.role != Role::kIgnore, ConfigError, "dataset writer: column '", c.name,
             "' has role ignore and cannot be stored");
    c.dtype = dtype_for_role(c.role);
    if (is_id_role(c.role)) {
      BW_CHECK(c.cardinality > 0, ConfigError, "column '", c.name, "' has role ", role_name(c.role),
               " but its values were never mapped to ids (cardinality 0): add a categorify or hash op for it");
      BW_CHECK(c.cardinality <= std::numeric_limits<int32_t>::max(), ConfigError, "column '", c.name,
               "': cardinality ", c.cardinality, " exceeds the int32 id range; hash it into fewer buckets");
    } else {
      c.cardinality = 0;
    }
    c.stats = {};
  }
  return columns;
}

}  // namespace

DatasetWriter::DatasetWriter(fs::path out, std::vector<DatasetColumn> columns, DatasetWriterOptions options) {
  columns = checked_columns(std::move(columns), options);
  impl_ = std::make_unique<Impl>(std::move(out), std::move(columns), options);
  for (auto& sb : impl_->splits) sb.cols.resize(impl_->columns.size());
  impl_->stats.resize(impl_->columns.size());
  for (int s = 0; s < kNumSplits; ++s) {
    std::error_code ec;
    fs::path dir = impl_->staged.path() / kSplitNames[s];
    fs::create_directory(dir, ec);
    BW_CHECK(!ec, IoError, "cannot create directory '", dir.string(), "': ", ec.message());
  }
}

DatasetWriter::~DatasetWriter() = default;

fs::path DatasetWriter::staging_path() const { return impl_->staged.path(); }

void DatasetWriter::assume_ids_present(const std::string& name, int64_t from) {
  Impl& m = *impl_;
  std::size_t c = 0;
  while (c < m.columns.size() && m.columns[c].name != name) ++c;
  BW_CHECK(c < m.columns.size(), ConfigError, "dataset writer: assume_ids_present: no column '", name, "'");
  BW_CHECK(is_id_role(m.columns[c].role), ConfigError, "dataset writer: assume_ids_present: column '", name,
           "' (role ", role_name(m.columns[c].role), ") holds no ids");
  BW_CHECK(from >= 0 && from <= 64, ConfigError, "dataset writer: assume_ids_present: column '", name,
           "': from must be in [0, 64], got ", from);
  BW_ASSERT(m.stats[c].rows == 0, "assume_ids_present() after append()");
  m.stats[c].present_from = from;
}

void DatasetWriter::expect_rows(const std::array<int64_t, kNumSplits>& rows) {
  Impl& m = *impl_;
  for (const DatasetColumn& dc : m.columns)
    if (dc.dtype == DType::kListI32) return;
  int64_t total = 0;
  for (int s = 0; s < kNumSplits; ++s) total += rows[s];
  m.slice_rows = total >= Impl::kBigSliceFrom ? Impl::kBigSliceRows : Impl::kSliceRows;
  for (int s = 0; s < kNumSplits; ++s) {
    Impl::SplitBuf& sb = m.splits[s];
    BW_ASSERT(sb.total == 0, "expect_rows() after append()");
    BW_ASSERT(rows[s] >= 0);
    sb.expected = rows[s];
    if (rows[s] == 0) continue;
    Impl::BufSet set = m.new_slice_set();
    sb.cols = std::move(set.cols);
  }
}

int64_t DatasetWriter::rows(Split split) const { return impl_->splits[static_cast<int>(split)].total; }

void DatasetWriter::append(const Chunk& chunk) {
  Impl& m = *impl_;
  BW_ASSERT(!m.committed, "append() after commit()");
  if (chunk.rows == 0) return;
  m.check_flusher();
  BW_ASSERT(chunk.split.empty() || static_cast<int64_t>(chunk.split.size()) == chunk.rows);
  m.src.resize(m.columns.size());
  for (size_t c = 0; c < m.columns.size(); ++c) {
    const DatasetColumn& dc = m.columns[c];
    const Column* col = chunk.find(dc.name);
    BW_CHECK(col, ConfigError, "dataset writer: output column '", dc.name, "' is missing from the data");
    ColumnKind want = kind_for_role(dc.role);
    BW_CHECK(col->kind == want, ConfigError, "dataset writer: column '", dc.name, "' (role ", role_name(dc.role),
             ") must hold ", kind_name(want), " values but holds ", kind_name(col->kind));
    switch (col->kind) {
      case ColumnKind::kFloat: BW_ASSERT(static_cast<int64_t>(col->f.size()) >= chunk.rows); break;
      case ColumnKind::kInt:
        BW_ASSERT(static_cast<int64_t>(col->i.size()) >= chunk.rows);
        BW_ASSERT(col->valid.empty() || static_cast<int64_t>(col->valid.size()) >= chunk.rows);
        break;
      case ColumnKind::kList:
        BW_ASSERT(static_cast<int64_t>(col->offsets.size()) == chunk.rows + 1);
        BW_ASSERT(col->offsets[chunk.rows] <= static_cast<int64_t>(col->i.size()));
        break;
    }
    m.src[c] = col;
  }

  // Rows keep their input order inside each split; a shard is cut exactly at shard_rows.
  auto feed = [&](int s, const int64_t* rows, int64_t n) {
    Impl::SplitBuf& sb = m.splits[s];
    int64_t done = 0;
    while (done < n) {
      const int64_t target = m.shard_target(sb);
      int64_t room = target - sb.buffered;
      if (sb.expected >= 0) room = std::min(room, m.slice_rows - (sb.buffered - sb.slice_begin));
      BW_CHECK(room > 0, InputError, "dataset writer: split ", kSplitNames[s], " gets more rows than the ", sb.expected,
               " promised (did the input change while it was being read?)");
      int64_t take = std::min(n - done, room);
      m.append_rows(sb, chunk, rows, done, take);
      done += take;
      if (sb.buffered == target || (sb.expected >= 0 && sb.buffered - sb.slice_begin == m.slice_rows)) m.flush(s);
    }
  };

  bool uniform = true;
  for (int64_t r = 1; r < static_cast<int64_t>(chunk.split.size()) && uniform; ++r)
    uniform = chunk.split[r] == chunk.split[0];
  if (uniform) {
    int s = chunk.split.empty() ? 0 : chunk.split[0];
    BW_ASSERT(s < kNumSplits, "split id ", s);
    feed(s, nullptr, chunk.rows);
    return;
  }
  // Statistics over the whole chunk in the column kernels, rather than row by row as each split's rows are
  // gathered (a chunk of a ratio split has all three splits' rows interleaved).
  m.chunk_stats(chunk);
  for (auto& v : m.routed) v.clear();
  for (int64_t r = 0; r < chunk.rows; ++r) {
    BW_ASSERT(chunk.split[r] < kNumSplits, "split id ", int(chunk.split[r]));
    m.routed[chunk.split[r]].push_back(r);
  }
  for (int s = 0; s < kNumSplits; ++s)
    if (!m.routed[s].empty()) feed(s, m.routed[s].data(), static_cast<int64_t>(m.routed[s].size()));
}

void DatasetWriter::Impl::chunk_stats(const Chunk& chunk) {
  const int64_t n = chunk.rows;
  if (routed_ids.size() < columns.size()) routed_ids.resize(columns.size());
  for (size_t c = 0; c < columns.size(); ++c) {
    const DatasetColumn& dc = columns[c];
    const Column& col = *src[c];
    StatAcc& st = stats[c];
    st.rows += n;
    switch (dc.dtype) {
      case DType::kF32: float_stats(col.f.data(), n, st); break;
      case DType::kI32: {
        std::vector<int32_t>& ids = routed_ids[c];
        if (static_cast<int64_t>(ids.size()) < n) ids.resize(static_cast<size_t>(n));
        id_stats(dc, chunk, col.i.data(), col.valid.empty() ? nullptr : col.valid.data(), n, 0, ids.data(), st);
        break;
      }
      case DType::kI64: i64_stats(col.i.data(), col.valid.empty() ? nullptr : col.valid.data(), n, st); break;
      case DType::kListI32: list_stats(dc, chunk, col, 0, n, st); break;
    }
  }
}

// Appends rows[first .. first+n) (or rows first .. first+n of the chunk when rows is null) to sb. With rows,
// chunk_stats() has taken the statistics of the whole chunk (and checked its ids) already: only the values
// are copied.
void DatasetWriter::Impl::append_rows(SplitBuf& sb, const Chunk& chunk, const int64_t* rows, int64_t first,
                                      int64_t n) {
  auto row_at = [&](int64_t k) { return rows ? rows[first + k] : first + k; };
  // A shard's buffers are sized for a whole shard on first use (kept across shards): growing them by
  // doubling copied every value several times. Capped so a huge shard_rows does not reserve gigabytes
  // up front; untouched reserved pages cost nothing.
  const size_t reserve_rows =
      static_cast<size_t>(sb.expected >= 0 ? slice_rows : std::min<int64_t>(options.shard_rows, int64_t{1} << 22));
  auto ensure = [&](auto& vec, size_t want) {
    if (vec.capacity() < want) vec.reserve(std::max(want, reserve_rows));
  };
  const int64_t* at = rows ? rows + first : nullptr;
  for (size_t c = 0; c < columns.size(); ++c) {
    const DatasetColumn& dc = columns[c];
    const Column& col = *src[c];
    ColBuf& buf = sb.cols[c];
    StatAcc& st = stats[c];
    if (!rows) st.rows += n;
    switch (dc.dtype) {
      case DType::kF32: {
        size_t base = buf.f.size();
        ensure(buf.f, base + n);
        buf.f.resize_for_overwrite(base + n);
        float* dst = buf.f.data() + base;
        const float* s = col.f.data();
        if (!rows) {
          std::memcpy(dst, s + first, n * sizeof(float));
          float_stats(dst, n, st);
        } else {
          for (int64_t k = 0; k < n; ++k) dst[k] = s[at[k]];
        }
        break;
      }
      case DType::kI32: {
        size_t base = buf.i32.size();
        ensure(buf.i32, base + n);
        buf.i32.resize_for_overwrite(base + n);
        int32_t* dst = buf.i32.data() + base;
        if (!rows) {
          id_stats(dc, chunk, col.i.data() + first, col.valid.empty() ? nullptr : col.valid.data() + first, n, first,
                   dst, st);
        } else {
          const int32_t* ids = routed_ids[c].data();  // stored by chunk_stats, missing ones as 0
          for (int64_t k = 0; k < n; ++k) dst[k] = ids[at[k]];
        }
        break;
      }
      case DType::kI64: {
        size_t base = buf.i64.size();
        ensure(buf.i64, base + n);
        buf.i64.resize_for_overwrite(base + n);
        int64_t* dst = buf.i64.data() + base;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t r = row_at(k);
          dst[k] = !col.valid.empty() && !col.valid[r] ? kMissingI64 : col.i[r];
        }
        if (!rows) i64_stats(dst, nullptr, n, st);
        break;
      }
      case DType::kListI32: {
        if (!rows) list_stats(dc, chunk, col, first, n, st);
        const int64_t* so = col.offsets.data();
        int64_t total = 0;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t r = row_at(k);
          total += so[r + 1] - so[r];
        }
        size_t vbase = buf.i32.size();
        buf.i32.resize_for_overwrite(vbase + total);
        int32_t* w = buf.i32.data() + vbase;
        size_t obase = buf.offsets.size();
        buf.offsets.resize_for_overwrite(obase + n);
        int64_t* odst = buf.offsets.data() + obase;
        int64_t pos = static_cast<int64_t>(vbase);
        for (int64_t k = 0; k < n; ++k) {
          const int64_t r = row_at(k);
          const int64_t len = so[r + 1] - so[r];
          const int64_t* sv = col.i.data() + so[r];
          for (int64_t j = 0; j < len; ++j) w[j] = static_cast<int32_t>(sv[j]);  // checked by list_stats
          w += len;
          pos += len;
          odst[k] = pos;
        }
        break;
      }
    }
  }
  sb.buffered += n;
  sb.total += n;
}

void DatasetWriter::Impl::check_flusher() {
  std::lock_guard<std::mutex> lk(fmu);
  if (ferror) std::rethrow_exception(ferror);
}

void DatasetWriter::Impl::wait_flushed() {
  std::unique_lock<std::mutex> lk(fmu);
  fcv.wait(lk, [&] { return (fqueue.empty() && !fbusy) || ferror; });
  if (ferror) std::rethrow_exception(ferror);
}

void DatasetWriter::Impl::flush_loop() {
  std::unique_lock<std::mutex> lk(fmu);
  for (;;) {
    fcv.wait(lk, [&] { return fstop || !fqueue.empty(); });
    if (fqueue.empty()) return;
    FlushJob job = std::move(fqueue.front());
    fqueue.pop_front();
    fbusy = true;
    const bool stopping = fstop;  // the writer is being destroyed uncommitted: nothing more is written
    lk.unlock();
    std::exception_ptr err;
    try {
      if (!stopping) {
        if (job.streamed)
          write_slice(job);
        else
          write_shard(job);
      }
    } catch (...) {
      err = std::current_exception();
    }
    for (ColBuf& b : job.cols) {
      b.f.clear();
      b.i32.clear();
      b.i64.clear();
      b.offsets.clear();
      b.offsets.push_back(0);
    }
    lk.lock();
    if (err && !ferror) ferror = err;
    spare.push_back(BufSet{std::move(job.cols)});
    fbusy = false;
    fcv.notify_all();
  }
}

void DatasetWriter::Impl::flush(int s) {
  SplitBuf& sb = splits[s];
  if (sb.buffered == sb.slice_begin) return;
  FlushJob job;
  job.split = s;
  job.streamed = sb.expected >= 0;
  job.shard_rows = job.streamed ? shard_target(sb) : sb.buffered;
  job.begin = sb.slice_begin;
  job.rows = sb.buffered - sb.slice_begin;
  job.last = sb.buffered == job.shard_rows;
  job.split_end = sb.expected >= 0 && sb.total == sb.expected;
  char name[64];
  std::snprintf(name, sizeof name, "%s/shard-%05zu.bwd", kSplitNames[s], sb.shards.size() - (job.begin > 0 ? 1 : 0));
  job.name = name;
  if (job.begin == 0) sb.shards.push_back(ShardInfo{name, job.shard_rows, 0, 0});
  job.info = &sb.shards.back();
  std::unique_lock<std::mutex> lk(fmu);
  // Streamed: one slice written while the next fills. Whole shards: the flusher must be idle.
  fcv.wait(lk, [&] { return (fqueue.empty() && !fbusy) || ferror; });
  if (ferror) std::rethrow_exception(ferror);
  job.cols = std::move(sb.cols);
  if (!spare.empty()) {
    sb.cols = std::move(spare.back().cols);
    spare.pop_back();
  } else if (job.streamed) {
    BufSet set = new_slice_set();
    sb.cols = std::move(set.cols);
  } else {
    sb.cols = std::vector<ColBuf>(columns.size());
  }
  if (job.last) {
    sb.buffered = 0;
    sb.slice_begin = 0;
  } else {
    sb.slice_begin = sb.buffered;
  }
  const bool whole = !job.streamed;
  fqueue.push_back(std::move(job));
  fcv.notify_all();
  if (whole) {
    // Wait for the write and take the buffers back: the next shard reuses them.
    fcv.wait(lk, [&] { return (fqueue.empty() && !fbusy) || ferror; });
    if (ferror) std::rethrow_exception(ferror);
    if (!spare.empty()) {
      std::swap(sb.cols, spare.back().cols);
    }
  }
}

template <class Write>
void DatasetWriter::Impl::write_timed(bool direct, std::size_t n, Write&& write) {
  if (direct || write_mode.decided()) {
    write();
    return;
  }
  const int64_t t0 = WriteModeChoice::now_ns();
  write();
  write_mode.note_buffered(n, WriteModeChoice::now_ns() - t0);
  if (write_mode.decided())
    log_debug("dataset writer: page-cache writes cost ", static_cast<int64_t>(write_mode.measured_ns_per_mib() / 1000),
              " us a MiB: shards go ", write_mode.direct() ? "around the page cache (O_DIRECT)" : "through the page cache");
}

void DatasetWriter::Impl::write_slice(FlushJob& job) {
  // Layout of a streamed shard: header + directory, then one block per column at 4096-byte offsets
  // (every column is f32/i32/i64 here), each block followed by zeros up to the next offset.
  if (job.begin == 0) {
    BW_ASSERT(!open_shards[job.split], "dataset writer: a streamed shard left open");
    auto sh = std::make_unique<OpenShard>();
    const uint64_t a = PositionalFileWriter::kDirectAlign;
    sh->head_bytes = kHeaderBytes + kEntryBytes * columns.size();
    uint64_t pos = align_up(sh->head_bytes, a);
    for (const DatasetColumn& dc : columns) {
      sh->offset.push_back(pos);
      sh->hash.emplace_back();
      sh->end = pos + elem_size(dc.dtype) * static_cast<uint64_t>(job.shard_rows);
      pos = align_up(sh->end, a);
    }
    sh->file.open(staged.path() / job.name);
    open_shards[job.split] = std::move(sh);
  }
  OpenShard& sh = *open_shards[job.split];
  const uint64_t a = PositionalFileWriter::kDirectAlign;
  // A split's last slice is what the commit waits for, and often short (1M rows leave 16,960 in it: 40
  // blocks of 68 KiB). Through O_DIRECT each block waited for the disk, ~0.1 ms apiece, ~4.5 ms in all on
  // the 2-core VM; through the page cache they are copied in ~1 ms and the shard's sync sends them at once
  // (~2.5 ms). Longer blocks go as write_mode chose.
  sh.file.set_direct(write_mode.direct() && !(job.split_end && job.rows < kSliceRows / 2));
  for (size_t c = 0; c < columns.size(); ++c) {
    const DType t = columns[c].dtype;
    char* data = job.cols[c].bytes(t);
    const uint64_t elem = elem_size(t);
    const uint64_t bytes = elem * static_cast<uint64_t>(job.rows);
    const uint64_t padded = align_up(bytes, a);
    BW_ASSERT(padded <= job.cols[c].capacity_bytes(t), "dataset writer: slice buffer too small for its padding");
    std::memset(data + bytes, 0, padded - bytes);  // the format's zero padding between blocks
    sh.hash[c].update(data, bytes);
    write_timed(sh.file.direct(), padded,
                [&] { sh.file.write_at(data, padded, sh.offset[c] + elem * static_cast<uint64_t>(job.begin)); });
  }
  if (!job.last) {
    sh.file.sync_later(syncs);
    return;
  }

  std::string head((sh.offset[0]), '\0');  // header page(s): header, directory, zeros
  for (size_t c = 0; c < columns.size(); ++c) {
    DirEntry e{};
    e.column = static_cast<uint32_t>(c);
    e.dtype = static_cast<uint8_t>(columns[c].dtype);
    e.part = 0;
    e.offset = sh.offset[c];
    e.bytes = elem_size(columns[c].dtype) * static_cast<uint64_t>(job.shard_rows);
    e.xxh3 = sh.hash[c].digest();
    std::memcpy(head.data() + kHeaderBytes + c * kEntryBytes, &e, kEntryBytes);
  }
  put_shard_header(head.data(), sh.head_bytes, columns.size(), job.shard_rows, columns.size());
  // O_DIRECT wants aligned memory: stage the header page(s) in a page-aligned buffer.
  ZeroBuffer<char> page(std::max<std::size_t>(head.size(), kHugeThreshold));
  std::memcpy(page.data(), head.data(), head.size());
  sh.file.write_at(page.data(), head.size(), 0);
  sh.file.close_syncing_later(sh.end, syncs);
  job.info->bytes = static_cast<int64_t>(sh.end);
  job.info->xxh3 = hash_bytes(head.data(), sh.head_bytes);
  open_shards[job.split].reset();
}

void DatasetWriter::Impl::write_shard(FlushJob& job) {
  fs::path path = staged.path() / job.name;

  struct Block {
    const void* data;
    uint64_t bytes;
    DType dtype;
    uint32_t column;
    uint8_t part;
  };
  std::vector<Block> blocks;
  for (size_t c = 0; c < columns.size(); ++c) {
    ColBuf& b = job.cols[c];
    auto col = static_cast<uint32_t>(c);
    switch (columns[c].dtype) {
      case DType::kF32: blocks.push_back({b.f.data(), b.f.size() * 4, DType::kF32, col, 0}); break;
      case DType::kI32: blocks.push_back({b.i32.data(), b.i32.size() * 4, DType::kI32, col, 0}); break;
      case DType::kI64: blocks.push_back({b.i64.data(), b.i64.size() * 8, DType::kI64, col, 0}); break;
      case DType::kListI32:
        blocks.push_back({b.i32.data(), b.i32.size() * 4, DType::kI32, col, 0});
        blocks.push_back({b.offsets.data(), b.offsets.size() * 8, DType::kI64, col, 1});
        break;
    }
  }

  std::string head(kHeaderBytes + kEntryBytes * blocks.size(), '\0');
  uint64_t pos = align_up(head.size());
  for (size_t k = 0; k < blocks.size(); ++k) {
    DirEntry e{};
    e.column = blocks[k].column;
    e.dtype = static_cast<uint8_t>(blocks[k].dtype);
    e.part = blocks[k].part;
    e.offset = pos;
    e.bytes = blocks[k].bytes;
    e.xxh3 = hash_bytes(blocks[k].data, blocks[k].bytes);
    std::memcpy(head.data() + kHeaderBytes + k * kEntryBytes, &e, kEntryBytes);
    pos = align_up(pos + blocks[k].bytes);
  }
  put_shard_header(head.data(), head.size(), columns.size(), job.rows, blocks.size());

  file.open(path, write_mode.direct());
  file.put(head.data(), head.size());
  for (const Block& b : blocks) {
    file.put_zeros(align_up(file.written()) - file.written());
    write_timed(file.direct(), b.bytes, [&] { file.put(b.data, b.bytes); });
  }
  const uint64_t written = file.written();
  file.close_syncing_later(syncs);  // synced before commit() writes meta.json
  job.info->bytes = static_cast<int64_t>(written);
  job.info->xxh3 = hash_bytes(head.data(), head.size());
}

DatasetWriter::WriteMode DatasetWriter::write_mode() const {
  const Impl& m = *impl_;
  BW_ASSERT(m.committed, "DatasetWriter::write_mode() before commit()");
  return WriteMode{m.write_mode.direct(), m.write_mode.measured_ns_per_mib()};
}

void DatasetWriter::commit(json pipeline) {
  Impl& m = *impl_;
  BW_ASSERT(!m.committed, "commit() called twice");
  BW_CHECK(pipeline.is_object(), ConfigError, "dataset writer: the pipeline description must be a JSON object");
  for (int s = 0; s < kNumSplits; ++s) {
    const Impl::SplitBuf& sb = m.splits[s];
    BW_CHECK(sb.expected < 0 || sb.total == sb.expected, InputError, "dataset writer: split ", kSplitNames[s], " got ",
             sb.total, " rows, ", sb.expected, " were promised (did the input change while it was being read?)");
    m.flush(s);
  }
  m.wait_flushed();
  m.syncs.wait();

  json meta = json::object();
  meta["format"] = "bluewhale-dataset";
  meta["format_version"] = kDatasetFormatVersion;
  meta["created_by"] = kCreatedBy;
  json cols = json::array();
  for (size_t c = 0; c < m.columns.size(); ++c) {
    DatasetColumn& dc = m.columns[c];
    dc.stats = m.stats[c].finish(dc);
    cols.push_back({{"name", dc.name},
                    {"role", role_name(dc.role)},
                    {"dtype", dtype_name(dc.dtype)},
                    {"cardinality", dc.cardinality},
                    {"stats",
                     {{"rows", dc.stats.rows},
                      {"missing", dc.stats.missing},
                      {"min", number_or_null(dc.stats.min)},
                      {"max", number_or_null(dc.stats.max)},
                      {"mean", number_or_null(dc.stats.mean)},
                      {"distinct", dc.stats.distinct}}}});
  }
  meta["columns"] = std::move(cols);
  json splits = json::object();
  for (int s = 0; s < kNumSplits; ++s) {
    json shards = json::array();
    for (const ShardInfo& si : m.splits[s].shards)
      shards.push_back({{"file", si.file}, {"rows", si.rows}, {"bytes", si.bytes}, {"xxh3", hex64(si.xxh3)}});
    splits[kSplitNames[s]] = {{"rows", m.splits[s].total}, {"shards", std::move(shards)}};
  }
  meta["splits"] = std::move(splits);
  meta["pipeline"] = std::move(pipeline);
  write_file_atomic(m.staged.path() / "meta.json", meta.dump(1));
  m.staged.commit();
  m.committed = true;
}

// ------------------------------------------------------------------------------------------------ reader

namespace {

// Typed access to meta.json that names the offending key path in every error.
class MetaParser {
 public:
  explicit MetaParser(fs::path file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    BW_THROW(FormatError, file_.string(), ": ", key, ": ", what);
  }
  const json& field(const json& obj, const std::string& where, const char* key) const {
    std::string path = where.empty() ? key : where + "." + key;
    if (!obj.is_object()) fail(where.empty() ? "(top level)" : where, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(path, "missing");
    return *it;
  }
  int64_t integer(const json& obj, const std::string& where, const char* key, int64_t lo, int64_t hi) const {
    std::string path = where.empty() ? key : where + "." + key;
    const json& v = field(obj, where, key);
    int64_t x;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      if (u > static_cast<uint64_t>(hi)) fail(path, str_cat("value ", u, " out of range [", lo, ", ", hi, "]"));
      x = static_cast<int64_t>(u);
    } else if (v.is_number_integer()) {
      x = v.get<int64_t>();
    } else {
      fail(path, str_cat("expected an integer, got ", v.type_name()));
    }
    if (x < lo || x > hi) fail(path, str_cat("value ", x, " out of range [", lo, ", ", hi, "]"));
    return x;
  }
  std::string string(const json& obj, const std::string& where, const char* key) const {
    const json& v = field(obj, where, key);
    if (!v.is_string()) fail(where + "." + key, str_cat("expected a string, got ", v.type_name()));
    return v.get<std::string>();
  }
  double real_or_null(const json& obj, const std::string& where, const char* key) const {
    const json& v = field(obj, where, key);
    if (v.is_null()) return std::numeric_limits<double>::quiet_NaN();
    if (!v.is_number()) fail(where + "." + key, str_cat("expected a number, got ", v.type_name()));
    return v.get<double>();
  }
  const json& array(const json& obj, const std::string& where, const char* key) const {
    const json& v = field(obj, where, key);
    if (!v.is_array()) fail(where + "." + key, str_cat("expected an array, got ", v.type_name()));
    return v;
  }

 private:
  fs::path file_;
};

constexpr int64_t kMaxI64 = std::numeric_limits<int64_t>::max();

}  // namespace

Dataset Dataset::open(const fs::path& root) {
  std::error_code ec;
  BW_CHECK(fs::exists(root, ec), IoError, "dataset '", root.string(), "' does not exist");
  fs::path meta_path = root / "meta.json";
  BW_CHECK(fs::is_regular_file(meta_path, ec), FormatError, "'", root.string(),
           "' is not a BlueWhale dataset: no meta.json (an unfinished prep run leaves none)");
  json meta;
  try {
    meta = json::parse(read_file(meta_path));
  } catch (const json::exception& e) {
    BW_THROW(FormatError, meta_path.string(), ": not valid JSON: ", e.what());
  }
  MetaParser p(meta_path);
  if (!meta.is_object()) p.fail("(top level)", "expected an object");

  if (p.string(meta, "", "format") != "bluewhale-dataset") p.fail("format", "not 'bluewhale-dataset'");
  Dataset ds;
  ds.root_ = root;
  int64_t version = p.integer(meta, "", "format_version", 1, kMaxI64);
  if (version > kDatasetFormatVersion)
    p.fail("format_version", str_cat(version, " is newer than this build supports (", kDatasetFormatVersion,
                                      "); upgrade bluewhale"));
  ds.format_version_ = static_cast<int>(version);
  ds.created_by_ = p.string(meta, "", "created_by");

  const json& cols = p.array(meta, "", "columns");
  if (cols.empty()) p.fail("columns", "no columns");
  std::set<std::string> names;
  for (size_t c = 0; c < cols.size(); ++c) {
    std::string where = str_cat("columns[", c, "]");
    DatasetColumn dc;
    dc.name = p.string(cols[c], where, "name");
    if (dc.name.empty()) p.fail(where + ".name", "empty");
    if (!names.insert(dc.name).second) p.fail(where + ".name", "duplicate column '" + dc.name + "'");
    std::string role = p.string(cols[c], where, "role");
    bool known = false;
    for (Role r : {Role::kLabel, Role::kDense, Role::kCategorical, Role::kMulti, Role::kSequence, Role::kTimestamp,
                   Role::kId})
      if (role_name(r) == role) {
        dc.role = r;
        known = true;
      }
    if (!known) p.fail(where + ".role", "unknown role '" + role + "'");
    dc.dtype = dtype_for_role(dc.role);
    std::string dtype = p.string(cols[c], where, "dtype");
    if (dtype != dtype_name(dc.dtype))
      p.fail(where + ".dtype", str_cat("'", dtype, "' does not match role ", role, " (expected ",
                                       dtype_name(dc.dtype), ")"));
    if (is_id_role(dc.role))
      dc.cardinality = p.integer(cols[c], where, "cardinality", 1, std::numeric_limits<int32_t>::max());
    else
      dc.cardinality = p.integer(cols[c], where, "cardinality", 0, 0);
    std::string sw = where + ".stats";
    const json& st = p.field(cols[c], where, "stats");
    dc.stats.rows = p.integer(st, sw, "rows", 0, kMaxI64);
    dc.stats.missing = p.integer(st, sw, "missing", 0, dc.stats.rows);
    dc.stats.min = p.real_or_null(st, sw, "min");
    dc.stats.max = p.real_or_null(st, sw, "max");
    dc.stats.mean = p.real_or_null(st, sw, "mean");
    dc.stats.distinct = p.integer(st, sw, "distinct", -1, kMaxI64);
    ds.columns_.push_back(std::move(dc));
  }

  const json& splits = p.field(meta, "", "splits");
  for (int s = 0; s < kNumSplits; ++s) {
    std::string where = str_cat("splits.", kSplitNames[s]);
    const json& sp = p.field(splits, "splits", kSplitNames[s]);
    int64_t rows = p.integer(sp, where, "rows", 0, kMaxI64);
    const json& shards = p.array(sp, where, "shards");
    int64_t sum = 0;
    for (size_t k = 0; k < shards.size(); ++k) {
      std::string sw = str_cat(where, ".shards[", k, "]");
      ShardInfo si;
      si.file = p.string(shards[k], sw, "file");
      fs::path rel(si.file);
      bool safe = !si.file.empty() && rel.is_relative();
      for (const auto& part : rel) safe = safe && part != "..";
      if (!safe) p.fail(sw + ".file", "'" + si.file + "' is not a path inside the dataset");
      si.rows = p.integer(shards[k], sw, "rows", 1, kMaxI64);
      si.bytes = p.integer(shards[k], sw, "bytes", static_cast<int64_t>(kHeaderBytes), kMaxI64);
      std::string h = p.string(shards[k], sw, "xxh3");
      char* end = nullptr;
      si.xxh3 = std::strtoull(h.c_str(), &end, 16);
      if (h.size() != 16 || end != h.c_str() + 16) p.fail(sw + ".xxh3", "expected 16 hex digits, got '" + h + "'");
      if (si.rows > kMaxI64 - sum) p.fail(sw + ".rows", "row count overflows");
      sum += si.rows;
      ds.shards_[s].push_back(std::move(si));
    }
    if (sum != rows)
      p.fail(where + ".rows", str_cat(rows, " but its shards hold ", sum, " rows"));
    ds.split_rows_[s] = rows;
  }
  const json& pipeline = p.field(meta, "", "pipeline");
  if (!pipeline.is_object()) p.fail("pipeline", str_cat("expected an object, got ", pipeline.type_name()));
  ds.pipeline_ = pipeline;
  return ds;
}

int Dataset::find(std::string_view name) const {
  for (size_t c = 0; c < columns_.size(); ++c)
    if (columns_[c].name == name) return static_cast<int>(c);
  return -1;
}

int64_t Dataset::split_rows(Split split) const { return split_rows_[static_cast<int>(split)]; }
int Dataset::num_shards(Split split) const { return static_cast<int>(shards_[static_cast<int>(split)].size()); }
const std::vector<ShardInfo>& Dataset::shards(Split split) const { return shards_[static_cast<int>(split)]; }

namespace {
std::vector<int> columns_with(const std::vector<DatasetColumn>& cols, std::initializer_list<Role> roles) {
  std::vector<int> out;
  for (size_t c = 0; c < cols.size(); ++c)
    if (std::find(roles.begin(), roles.end(), cols[c].role) != roles.end()) out.push_back(static_cast<int>(c));
  return out;
}
}  // namespace

int Dataset::label_column() const {
  auto v = columns_with(columns_, {Role::kLabel});
  return v.empty() ? -1 : v[0];
}
std::vector<int> Dataset::dense_columns() const { return columns_with(columns_, {Role::kDense}); }
std::vector<int> Dataset::categorical_columns() const { return columns_with(columns_, {Role::kCategorical}); }
std::vector<int> Dataset::multi_columns() const { return columns_with(columns_, {Role::kMulti, Role::kSequence}); }
std::vector<int> Dataset::aux_columns() const { return columns_with(columns_, {Role::kTimestamp, Role::kId}); }
std::vector<int> Dataset::sparse_columns() const {
  std::vector<int> out = categorical_columns();
  for (int c : multi_columns()) out.push_back(c);
  return out;
}
std::vector<int64_t> Dataset::sparse_cardinalities() const {
  std::vector<int64_t> out;
  for (int c : sparse_columns()) out.push_back(columns_[c].cardinality);
  return out;
}

ShardView Dataset::open_shard(Split split, int index, bool verify) const {
  const auto& list = shards_[static_cast<int>(split)];
  BW_CHECK(index >= 0 && index < static_cast<int>(list.size()), ConfigError, "dataset '", root_.string(), "': ",
           split_name(split), " split has ", list.size(), " shards, no shard ", index);
  const ShardInfo& info = list[index];
  fs::path path = root_ / info.file;
  std::error_code ec;
  BW_CHECK(fs::is_regular_file(path, ec), FormatError, path.string(), ": shard file listed in meta.json is missing");
  auto map = std::make_shared<const MappedFile>(path);
  const uint8_t* base = map->data();
  const uint64_t size = map->size();
  auto fail = [&](const std::string& what) -> void { BW_THROW(FormatError, path.string(), ": ", what); };
  auto fail_col = [&](size_t c, const std::string& what) -> void {
    BW_THROW(FormatError, path.string(), ": column '", columns_[c].name, "': ", what);
  };

  if (size != static_cast<uint64_t>(info.bytes))
    fail(str_cat("size ", size, " bytes but meta.json says ", info.bytes, " (truncated or replaced)"));
  if (size < kHeaderBytes) fail("too small for a shard header");
  ShardHeader h;
  std::memcpy(&h, base, kHeaderBytes);
  if (std::memcmp(h.magic, kShardMagic, sizeof h.magic) != 0) fail("not a BlueWhale shard (bad magic)");
  if (h.version < 1 || h.version > static_cast<uint32_t>(kDatasetFormatVersion))
    fail(str_cat("shard format version ", h.version, " is not supported (this build reads up to ",
                 kDatasetFormatVersion, ")"));
  if (h.num_columns != columns_.size())
    fail(str_cat("header says ", h.num_columns, " columns, meta.json has ", columns_.size()));
  if (h.rows != info.rows) fail(str_cat("header says ", h.rows, " rows, meta.json says ", info.rows));
  uint64_t expect_blocks = 0;
  for (const auto& c : columns_) expect_blocks += blocks_of(c.dtype);
  if (h.num_blocks != expect_blocks)
    fail(str_cat("header says ", h.num_blocks, " blocks, the schema needs ", expect_blocks));
  const uint64_t dir_end = kHeaderBytes + kEntryBytes * expect_blocks;
  if (size < dir_end) fail("truncated column directory");
  if (hash_bytes(base + kHeaderBytes, dir_end - kHeaderBytes) != h.dir_xxh3) fail("column directory checksum mismatch");

  ShardView view;
  view.rows_ = h.rows;
  view.dtypes_.resize(columns_.size());
  view.blocks_.resize(columns_.size());
  const uint64_t rows = static_cast<uint64_t>(h.rows);
  uint64_t prev_end = dir_end, k = 0;
  std::vector<uint64_t> sums;
  for (size_t c = 0; c < columns_.size(); ++c) {
    view.dtypes_[c] = columns_[c].dtype;
    for (int part = 0; part < blocks_of(columns_[c].dtype); ++part, ++k) {
      DirEntry e;
      std::memcpy(&e, base + kHeaderBytes + k * kEntryBytes, kEntryBytes);
      DType want = part_dtype(columns_[c].dtype, part);
      if (e.column != c || e.part != part || e.dtype != static_cast<uint8_t>(want))
        fail_col(c, str_cat("directory entry ", k, " does not match the schema (column ", e.column, ", part ",
                            int(e.part), ", dtype ", int(e.dtype), ")"));
      if (e.offset % kAlign != 0) fail_col(c, str_cat("block offset ", e.offset, " is not 64-byte aligned"));
      if (e.offset < prev_end || e.offset > size || e.bytes > size - e.offset)
        fail_col(c, str_cat("block [", e.offset, ", +", e.bytes, ") overlaps another or lies outside the file (",
                            size, " bytes)"));
      uint64_t es = elem_size(want);
      bool is_offsets = columns_[c].dtype == DType::kListI32 && part == 1;
      uint64_t want_elems = is_offsets ? rows + 1 : rows;
      bool size_ok = e.bytes % es == 0 &&
                     (columns_[c].dtype == DType::kListI32 && part == 0 ? true : e.bytes / es == want_elems);
      if (!size_ok) fail_col(c, str_cat("block of ", e.bytes, " bytes does not hold ", want_elems, " ",
                                        dtype_name(want), " values"));
      view.blocks_[c][part] = {base + e.offset, e.bytes};
      sums.push_back(e.xxh3);
      prev_end = e.offset + e.bytes;
    }
  }
  if (prev_end != size) fail(str_cat("unexpected bytes after the last block (", size - prev_end, " bytes)"));
  if (hash_bytes(base, dir_end) != info.xxh3)
    fail("header checksum does not match meta.json (the file belongs to another dataset or was modified)");

  k = 0;
  for (size_t c = 0; c < columns_.size(); ++c) {
    const DatasetColumn& dc = columns_[c];
    if (verify) {
      for (int part = 0; part < blocks_of(dc.dtype); ++part) {
        const auto& b = view.blocks_[c][part];
        if (hash_bytes(b.data, b.bytes) != sums[k + part]) fail_col(c, "checksum mismatch (corrupted data)");
      }
    }
    k += blocks_of(dc.dtype);
    if (dc.dtype == DType::kListI32) {
      // Offsets are always checked: the loader indexes values through them.
      auto off = view.offsets(static_cast<int>(c));
      int64_t nvalues = static_cast<int64_t>(view.blocks_[c][0].bytes / 4);
      if (off[0] != 0) fail_col(c, "list offsets do not start at 0");
      bool mono = true;
      for (uint64_t r = 0; r < rows; ++r) mono &= off[r + 1] >= off[r];
      if (!mono) fail_col(c, "list offsets decrease");
      if (off[rows] != nvalues)
        fail_col(c, str_cat("list offsets end at ", off[rows], " but the values block holds ", nvalues));
    }
    if (verify && (dc.dtype == DType::kI32 || dc.dtype == DType::kListI32)) {
      auto ids = dc.dtype == DType::kI32 ? view.ids(static_cast<int>(c)) : view.values(static_cast<int>(c));
      const auto card = static_cast<uint32_t>(dc.cardinality);
      bool ok = true;
      // Unsigned compare also rejects negatives; branch-free so the loop vectorizes.
      for (int32_t v : ids) ok &= static_cast<uint32_t>(v) < card;
      if (!ok) fail_col(c, str_cat("id outside [0, ", dc.cardinality, ")"));
    }
  }
  view.map_ = std::move(map);
  return view;
}

const fs::path& ShardView::path() const {
  static const fs::path kEmpty;
  return map_ ? map_->path() : kEmpty;
}

std::span<const float> ShardView::f32(int column) const {
  BW_ASSERT(column >= 0 && column < static_cast<int>(dtypes_.size()) && dtypes_[column] == DType::kF32);
  const Block& b = blocks_[column][0];
  return {reinterpret_cast<const float*>(b.data), b.bytes / 4};
}
std::span<const int32_t> ShardView::ids(int column) const {
  BW_ASSERT(column >= 0 && column < static_cast<int>(dtypes_.size()) && dtypes_[column] == DType::kI32);
  const Block& b = blocks_[column][0];
  return {reinterpret_cast<const int32_t*>(b.data), b.bytes / 4};
}
std::span<const int64_t> ShardView::i64(int column) const {
  BW_ASSERT(column >= 0 && column < static_cast<int>(dtypes_.size()) && dtypes_[column] == DType::kI64);
  const Block& b = blocks_[column][0];
  return {reinterpret_cast<const int64_t*>(b.data), b.bytes / 8};
}
std::span<const int64_t> ShardView::offsets(int column) const {
  BW_ASSERT(column >= 0 && column < static_cast<int>(dtypes_.size()) && dtypes_[column] == DType::kListI32);
  const Block& b = blocks_[column][1];
  return {reinterpret_cast<const int64_t*>(b.data), b.bytes / 8};
}
std::span<const int32_t> ShardView::values(int column) const {
  BW_ASSERT(column >= 0 && column < static_cast<int>(dtypes_.size()) && dtypes_[column] == DType::kListI32);
  const Block& b = blocks_[column][0];
  return {reinterpret_cast<const int32_t*>(b.data), b.bytes / 4};
}

}  // namespace bluewhale
