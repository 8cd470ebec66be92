// Nearest-neighbour indexes over float vectors with 64-bit item ids: the recall stage of serving.
//
//   auto index = make_index({.kind = IndexKind::kHnsw, .metric = Metric::kInnerProduct, .dim = 64});
//   index->add(items.data.data(), items.rows, item_ids.data(), /*threads=*/4);
//   SearchResult hits = index->search(users.data.data(), users.rows, {.k = 100, .ef = 200, .threads = 4});
//   index->save("items.idx");  auto again = load_index("items.idx");
//
// Kinds:
//   flat    exact: a fused register-tiled kernel for batches of queries (OpenBLAS GEMM with
//           SearchOptions::flat_blas), a SIMD scan for a few queries
//   hnsw    graph (Hierarchical Navigable Small World): multi-threaded build, quality knob ef
//   ivf_sq8 inverted file (k-means lists) with 8-bit scalar-quantised codes, re-ranked exactly;
//           quality knobs nprobe and rerank
// Distances follow recall/distance.h (smaller is nearer). All kinds support remove() (the item is never
// returned again) and an allowed-id filter per search.
//
// Thread safety: search() and the accessors may run concurrently with each other; add(), remove() and
// load/save need exclusive access. add() and search() parallelise internally with the given thread count.
//
// Errors: a wrong dimension, a non-finite value, a duplicate or unknown id, k above the number of live
// items or a search on an empty index throw InputError; bad options throw ConfigError; an index file that
// is truncated, corrupted, foreign or too new throws FormatError.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bluewhale/core/io.h"
#include "bluewhale/recall/distance.h"
#include "bluewhale/recall/vectors.h"

namespace bluewhale {

class BinaryReader;
class BinaryWriter;
class ProgressReporter;

enum class IndexKind { kFlat = 0, kHnsw = 1, kIvfSq8 = 2 };
std::string_view index_kind_name(IndexKind k);  // "flat", "hnsw", "ivf_sq8"
IndexKind parse_index_kind(std::string_view name, std::string_view field = "kind");

struct IndexOptions {
  IndexKind kind = IndexKind::kHnsw;
  Metric metric = Metric::kL2;
  int64_t dim = 0;
  // hnsw: links per node on the upper layers (2*M on the base layer) and the beam width while building.
  int m = 16;
  int ef_construction = 200;
  // ivf_sq8: number of k-means lists (0 = about 4 * sqrt(n) at the first add, at least 1).
  int nlist = 0;
  uint64_t seed = 1;
};

// Items a search may return. Ids not in the index are ignored.
using IdFilter = std::unordered_set<int64_t>;

struct SearchOptions {
  int64_t k = 10;
  int ef = 0;          // hnsw beam width; 0 = max(k, 64); values below k are raised to k
  int nprobe = 0;      // ivf lists visited; 0 = max(1, nlist / 16)
  int rerank = 4;      // ivf: k * rerank quantised candidates re-scored exactly (>= 1)
  int threads = 1;     // <= 0: all available
  // flat: batches of queries through OpenBLAS sgemm plus a selection pass instead of the fused exact
  // kernel (the default, faster); kept for comparison. Same results up to float rounding.
  bool flat_blas = false;
  const IdFilter* filter = nullptr;  // not owned; nullptr = every live item
};

// (queries, k) row-major ids and distances, nearest first. Rows with fewer than k matches (a filter)
// are padded with id -1 and distance +inf.
struct SearchResult {
  int64_t queries = 0;
  int64_t k = 0;
  std::vector<int64_t> ids;
  std::vector<float> distances;
  const int64_t* ids_of(int64_t q) const { return ids.data() + q * k; }
  const float* distances_of(int64_t q) const { return distances.data() + q * k; }
};

class Index {
 public:
  virtual ~Index();
  Index(const Index&) = delete;
  Index& operator=(const Index&) = delete;

  IndexKind kind() const { return opts_.kind; }
  Metric metric() const { return opts_.metric; }
  int64_t dim() const { return opts_.dim; }
  const IndexOptions& options() const { return opts_; }
  // Live items (added and not removed).
  int64_t size() const { return int64_t(labels_.size()) - removed_; }
  bool contains(int64_t id) const;
  // Bytes held by vectors, codes and links (not counting allocator slack).
  virtual int64_t memory_bytes() const;

  // Adds n vectors (n, dim). ids: n unique item ids not already present, or nullptr for consecutive ids
  // after the largest id so far (0, 1, 2, ... for an empty index). The index is unchanged if a check
  // fails. `progress` (optional) is advanced by one row per inserted vector.
  void add(const float* data, int64_t n, const int64_t* ids, int threads = 1, ProgressReporter* progress = nullptr);
  // As above, and checks v.dim == dim() (InputError naming both).
  void add(const Vectors& v, int threads = 1, ProgressReporter* progress = nullptr);
  // Marks an item removed; returns false if the id is unknown or already removed.
  bool remove(int64_t id);

  // queries: (nq, dim).
  SearchResult search(const float* queries, int64_t nq, const SearchOptions& o) const;
  SearchResult search(const Vectors& q, const SearchOptions& o) const;

  // Versioned, checksummed, written atomically.
  void save(const fs::path& path) const;

 protected:
  explicit Index(const IndexOptions& o) : opts_(o) {}
  // Vectors [first, first + n) of data_ are new (already normalised for cosine): link them in.
  virtual void add_impl(int64_t first, int64_t n, int threads, ProgressReporter* progress) = 0;
  // q: (nq, dim), prepared. allowed: (labels) 0/1 mask or nullptr for all. Fills out (nq * k) pairs per
  // query, sorted, padded with (+inf, -1); labels, not ids.
  virtual void search_impl(const float* q, int64_t nq, int64_t k, const SearchOptions& o, const uint8_t* allowed,
                           float* dist, int64_t* labels) const = 0;
  virtual void save_impl(BinaryWriter& w) const = 0;
  virtual void load_impl(BinaryReader& r) = 0;
  friend std::unique_ptr<Index> load_index(const fs::path& path);

  const float* vec(int64_t label) const { return data_.data() + label * opts_.dim; }
  int64_t count() const { return int64_t(labels_.size()); }  // every label, removed ones included

  IndexOptions opts_;
  std::vector<float> data_;          // (count, dim) in label order
  std::vector<int64_t> labels_;      // label -> item id
  std::vector<uint8_t> removed_mask_;  // (count) 1 = removed
  std::vector<uint8_t> live_;          // (count) 1 = not removed; the search mask when there is no filter
  int64_t removed_ = 0;
  std::unordered_map<int64_t, int64_t> id_to_label_;
};

// Creates an empty index. ConfigError on a bad option (dim outside 1..kMaxVectorDim, m < 2, ...).
std::unique_ptr<Index> make_index(const IndexOptions& o);
// Reads an index written by save(); the file is untrusted (FormatError on any inconsistency).
std::unique_ptr<Index> load_index(const fs::path& path);

// Fraction of the first k true neighbours (truth rows, k <= truth.dim) found among the first k results.
double recall_at_k(const SearchResult& r, const IntVectors& truth, int64_t k);

}  // namespace bluewhale
