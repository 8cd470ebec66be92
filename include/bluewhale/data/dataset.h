// The BlueWhale dataset: what `bluewhale prep` writes and training reads.
//
// A dataset is a directory
//   meta.json                   written last (its presence marks a complete dataset): format_version,
//                               created_by, the output columns with their stats, per split the rows and
//                               the shard list {file, rows, bytes, xxh3}, and the prep driver's opaque
//                               "pipeline" object (the driver also writes files under pipeline/ itself)
//   train/shard-00000.bwd ...   row shards of each split, in input order; valid/ and test/ alike
//
// Storage types by role (one physical block per column, two for multi-valued columns):
//   label, dense          f32      NaN = missing
//   categorical           i32      ids in [0, cardinality); a missing input value is stored as id 0
//   multi, sequence       offsets i64 (rows + 1, offsets[0] == 0, non-decreasing) + values i32 ids in
//                         [0, cardinality); row r owns values[offsets[r] .. offsets[r+1]), empty = missing
//   timestamp, id         i64      INT64_MIN = missing
//
// Shard file (.bwd), little-endian, memory-mappable:
//   [0, 64)          header: "BWSHARD\0" | u32 version | u32 num_columns | i64 rows | u32 num_blocks |
//                    u32 reserved | u64 XXH3 of the directory bytes | zero padding
//   [64, 64+32*nb)   directory, one 32-byte entry per block in column order (a multi column: values
//                    block (part 0), then offsets block (part 1)): u32 column | u8 dtype (f32/i32/i64) |
//                    u8 part | u16 reserved | u64 offset | u64 byte length | u64 XXH3 of the block's bytes
//   blocks           each starting at a multiple of 64 bytes, in directory order, zero padding between;
//                    the file ends where the last block ends (the writer's streamed shards, see
//                    DatasetWriter::expect_rows, start every block at a multiple of 4096)
// meta.json's per-shard "xxh3" is the XXH3 of the header and directory (64 + 32*nb bytes); since the
// directory holds every block's XXH3 it identifies the whole content, and it binds the file to meta.json.
//
// Column stats in meta.json are over all splits together (descriptive; fitted statistics live in the
// pipeline's operators).
//
// Every file is untrusted on read: meta.json problems and shard corruption raise FormatError naming the
// file, the key or the column.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

#include "bluewhale/core/io.h"
#include "bluewhale/data/column.h"

namespace bluewhale {

// Version written into meta.json and each shard header; readers accept this version and older.
inline constexpr int kDatasetFormatVersion = 1;

// Physical element type of a stored column.
enum class DType : uint8_t {
  kF32 = 1,      // float
  kI32 = 2,      // int32_t ids
  kI64 = 3,      // int64_t
  kListI32 = 4,  // offsets i64 (rows + 1) + values i32
};
std::string_view dtype_name(DType t);  // "f32", "i32", "i64", "list<i32>"
// The storage type of a role; BW_ASSERT on kIgnore (never stored).
DType dtype_for_role(Role role);

// Descriptive statistics of one column over every row written (all splits together).
struct ColumnStats {
  int64_t rows = 0;     // rows written
  int64_t missing = 0;  // NaN (f32), INT64_MIN (i64), invalid input (categorical), empty list (multi)
  // Over present values: f32/i64 values, categorical ids, multi/sequence list lengths. 0 when nothing is
  // present; NaN when read back from a file that stored a non-finite value.
  double min = 0, max = 0, mean = 0;
  // Categorical/multi/sequence: distinct ids seen; -1 when not counted (other roles, or cardinality above
  // kMaxDistinctCardinality, where the bitmap would cost too much memory).
  int64_t distinct = -1;
};
inline constexpr int64_t kMaxDistinctCardinality = int64_t{1} << 28;  // bitmap up to 32 MiB

// One stored column.
struct DatasetColumn {
  std::string name;
  Role role = Role::kDense;
  // Storage type; the writer sets it from role (dtype_for_role), the reader checks they agree.
  DType dtype = DType::kF32;
  // Categorical/multi/sequence: number of ids, in [1, INT32_MAX]; 0 for other roles.
  int64_t cardinality = 0;
  ColumnStats stats;  // filled by the writer at commit(); read back from meta.json
};

struct DatasetWriterOptions {
  int64_t shard_rows = int64_t{1} << 20;  // rows per shard file (the last shard of a split may be shorter)
  bool overwrite = false;                 // replace an existing dataset at `out` on commit()
  // Shards are written through the page cache while that costs at most this many ns per MiB (the median
  // of the first blocks' write calls), else around it (O_DIRECT) where the file system allows: fresh
  // page-cache memory is dear on some virtual machines. 0: O_DIRECT after the first measurements;
  // infinity: always the page cache. The bytes written are the same either way.
  double page_cache_limit_ns_per_mib = 500'000;
};

// Writes a dataset. append() routes rows to their splits and writes a shard whenever a split has buffered
// shard_rows rows; commit() flushes the rest, writes meta.json and renames the staging directory into
// place. Until commit() returns nothing exists at `out` (an existing dataset there stays intact); if the
// writer is destroyed without commit() (an exception, an abort), the staging directory is removed.
// Not thread-safe: one thread appends, in input order.
class DatasetWriter {
 public:
  // Throws ConfigError for an unusable schema (no columns, duplicate or empty names, an ignore-role
  // column, a categorical/multi/sequence column with cardinality 0 or above INT32_MAX, shard_rows < 1),
  // IoError when `out` exists and overwrite is false or the staging directory cannot be created.
  DatasetWriter(fs::path out, std::vector<DatasetColumn> columns, DatasetWriterOptions options = {});
  ~DatasetWriter();
  DatasetWriter(const DatasetWriter&) = delete;
  DatasetWriter& operator=(const DatasetWriter&) = delete;

  // Appends chunk.rows rows. Every writer column must be present in the chunk by name, with the kind its
  // role needs (kFloat for label/dense, kInt for categorical/timestamp/id, kList for multi/sequence), else
  // ConfigError. Extra chunk columns are ignored. An id outside [0, cardinality) raises InputError naming
  // the column and the input row. chunk.split (one entry per row, values < kNumSplits) picks each row's
  // split; empty means train.
  void append(const Chunk& chunk);

  // Promises how many rows each split will get in total (before the first append). Shards of those sizes
  // are then laid out in advance (blocks at 4096-byte offsets, allowed by the format) and written piece by
  // piece as they fill, with no shard-sized buffers. Ignored when a multi/sequence column exists (their
  // block sizes are unknown in advance). Other counts raise InputError (append() past the promise,
  // commit() short of it): in prep, the input changed between its passes.
  void expect_rows(const std::array<int64_t, kNumSplits>& rows);

  // Promises that every id in [from, cardinality) of id column `name` (categorical, multi or sequence)
  // occurs in the rows that will be appended (before the first append), as for a dictionary fitted on
  // these very rows: the distinct count (ColumnStats::distinct) then tracks only the ids below `from`,
  // which the id kernels mark at no cost, instead of marking every id (a random store per value).
  // ConfigError for an unknown or non-id column, or `from` outside [0, 64]. A broken promise gives a
  // wrong distinct count, nothing else.
  void assume_ids_present(const std::string& name, int64_t from);

  // The staging directory; the prep driver writes pipeline/ files here before commit().
  fs::path staging_path() const;

  // Writes the remaining rows, meta.json (with `pipeline` stored verbatim under "pipeline") and moves
  // the dataset into place. The writer accepts nothing afterwards.
  void commit(nlohmann::json pipeline = nlohmann::json::object());

  // How the shards went to disk (DatasetWriterOptions::page_cache_limit_ns_per_mib), read after commit():
  // direct when the writer chose O_DIRECT (where the file system refused it the page cache was used
  // anyway), and the median cost of the buffered writes that decided it in ns per MiB (NaN when the
  // dataset was too small to measure: then the page cache).
  struct WriteMode {
    bool direct = false;
    double page_cache_ns_per_mib = 0;
  };
  WriteMode write_mode() const;

  // Rows appended so far to a split.
  int64_t rows(Split split) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A memory-mapped, validated shard. Cheap to copy (the mapping is shared and lives as long as any copy).
// Spans point into the mapping and stay valid while a ShardView referring to it exists. Read-only and
// safe to use from several threads.
class ShardView {
 public:
  ShardView() = default;
  int64_t rows() const { return rows_; }
  const fs::path& path() const;

  // Typed access by dataset column index; BW_ASSERT when the column's storage type differs.
  std::span<const float> f32(int column) const;       // label/dense: (rows)
  std::span<const int32_t> ids(int column) const;     // categorical: (rows), in [0, cardinality)
  std::span<const int64_t> i64(int column) const;     // timestamp/id: (rows)
  std::span<const int64_t> offsets(int column) const; // multi/sequence: (rows + 1), values index
  std::span<const int32_t> values(int column) const;  // multi/sequence: (offsets[rows]) ids

 private:
  friend class Dataset;
  struct Block {
    const uint8_t* data = nullptr;
    uint64_t bytes = 0;
  };
  std::shared_ptr<const MappedFile> map_;
  std::vector<DType> dtypes_;
  std::vector<std::array<Block, 2>> blocks_;  // per column: [0] values/fixed data, [1] list offsets
  int64_t rows_ = 0;
};

// Descriptor of one shard in meta.json.
struct ShardInfo {
  std::string file;  // relative to the dataset root: "train/shard-00000.bwd"
  int64_t rows = 0;
  int64_t bytes = 0;
  uint64_t xxh3 = 0;  // XXH3 of header + directory (see the layout above)
};

// An opened dataset: the parsed, validated meta.json. Shards are opened on demand with open_shard().
// Copyable; const methods are thread-safe.
class Dataset {
 public:
  // Reads and validates <root>/meta.json. Throws IoError if root does not exist, FormatError if meta.json
  // is missing (not a dataset, or an unfinished one), unparsable, of a newer format_version, or has a
  // missing/mistyped/out-of-range key (the message names the key path, e.g. "splits.train.shards[2].rows").
  static Dataset open(const fs::path& root);

  const fs::path& root() const { return root_; }
  const std::vector<DatasetColumn>& columns() const { return columns_; }
  // Index of the column named `name`, or -1.
  int find(std::string_view name) const;
  const nlohmann::json& pipeline() const { return pipeline_; }
  int format_version() const { return format_version_; }
  const std::string& created_by() const { return created_by_; }

  int64_t split_rows(Split split) const;
  int num_shards(Split split) const;
  const std::vector<ShardInfo>& shards(Split split) const;

  // Maps and validates shard `index` of `split`: size against meta.json, header, directory (types,
  // 64-byte alignment, bounds, block sizes against rows), header+directory XXH3 against meta.json, list
  // offsets (start at 0, non-decreasing, end at the values count). With verify, also each block's XXH3 and
  // every id within [0, cardinality): then nothing read through the view can be out of range. Without
  // verify the caller trusts the content (e.g. verified earlier in this process). Throws FormatError
  // naming the file (and the column where one is at fault), IoError when the file cannot be mapped.
  ShardView open_shard(Split split, int index, bool verify = true) const;

  // Column indices by role, in dataset order.
  int label_column() const;                  // first label column, -1 if none
  std::vector<int> dense_columns() const;     // dense
  std::vector<int> categorical_columns() const;  // categorical (one id per row)
  std::vector<int> multi_columns() const;     // multi and sequence (lists of ids)
  std::vector<int> aux_columns() const;       // timestamp and id
  // The loader's embedding tables: categorical columns then multi/sequence columns, and their sizes.
  std::vector<int> sparse_columns() const;
  std::vector<int64_t> sparse_cardinalities() const;

 private:
  fs::path root_;
  int format_version_ = 0;
  std::string created_by_;
  std::vector<DatasetColumn> columns_;
  std::array<std::vector<ShardInfo>, kNumSplits> shards_;
  std::array<int64_t, kNumSplits> split_rows_{};
  nlohmann::json pipeline_;
};

}  // namespace bluewhale
