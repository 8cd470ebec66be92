#include "bluewhale/recall/index.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>

#include "bluewhale/core/config.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/data/binary_io.h"
#include "recall/index_impl.h"

namespace bluewhale {
namespace {

constexpr std::string_view kIndexTag = "bluewhale-index";
constexpr uint32_t kIndexVersion = 1;

}  // namespace

namespace recall_detail {

void write_row(const std::vector<std::pair<float, int64_t>>& hits, int64_t k, float* dist, int64_t* labels) {
  const int64_t n = std::min<int64_t>(k, int64_t(hits.size()));
  for (int64_t i = 0; i < n; ++i) {
    dist[i] = hits[std::size_t(i)].first;
    labels[i] = hits[std::size_t(i)].second;
  }
  for (int64_t i = n; i < k; ++i) {
    dist[i] = std::numeric_limits<float>::infinity();
    labels[i] = -1;
  }
}

}  // namespace recall_detail

std::string_view index_kind_name(IndexKind k) {
  switch (k) {
    case IndexKind::kFlat: return "flat";
    case IndexKind::kHnsw: return "hnsw";
    case IndexKind::kIvfSq8: return "ivf_sq8";
  }
  return "?";
}

IndexKind parse_index_kind(std::string_view name, std::string_view field) {
  if (name == "flat") return IndexKind::kFlat;
  if (name == "hnsw") return IndexKind::kHnsw;
  if (name == "ivf_sq8" || name == "ivf") return IndexKind::kIvfSq8;
  std::string near = nearest(std::string(name), {"flat", "hnsw", "ivf_sq8"});
  BW_THROW(ConfigError, field, ": unknown index kind '", name, "'; expected flat | hnsw | ivf_sq8",
           near.empty() ? "" : " (did you mean '" + near + "'?)");
}

Index::~Index() = default;

bool Index::contains(int64_t id) const {
  auto it = id_to_label_.find(id);
  return it != id_to_label_.end() && !removed_mask_[std::size_t(it->second)];
}

int64_t Index::memory_bytes() const {
  // The hash map costs roughly a node (key, value, next pointer, hash) plus a bucket pointer per id.
  return int64_t(data_.capacity() * sizeof(float) + labels_.capacity() * sizeof(int64_t) +
                 removed_mask_.capacity() + id_to_label_.size() * 40);
}

void Index::add(const float* data, int64_t n, const int64_t* ids, int threads, ProgressReporter* progress) {
  BW_CHECK(n >= 0, InputError, "add: negative number of vectors ", n);
  if (n == 0) return;
  BW_CHECK(data != nullptr, InputError, "add: no vector data for ", n, " vectors");
  BW_CHECK(count() + n <= int64_t(std::numeric_limits<uint32_t>::max()) - 1, InputError, "add: ", count() + n,
           " vectors exceed the index limit of 2^32 - 2");
  const int64_t dim = opts_.dim;
  check_finite(data, n, dim, "add: vectors");
  // Default ids continue after the largest id so far, so they never collide with explicit ones.
  int64_t next_id = 0;
  if (!ids)
    for (int64_t id : labels_) next_id = std::max(next_id, id + 1);
  std::unordered_set<int64_t> fresh;
  fresh.reserve(std::size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids ? ids[i] : next_id + i;
    BW_CHECK(!id_to_label_.count(id), InputError, "add: id ", id, " (vector ", i, ") is already in the index");
    BW_CHECK(fresh.insert(id).second, InputError, "add: id ", id, " appears twice (vector ", i, ")");
  }
  const int64_t first = count();
  data_.insert(data_.end(), data, data + n * dim);
  if (opts_.metric == Metric::kCosine) {
    for (int64_t i = 0; i < n; ++i) {
      float norm = normalize(data_.data() + (first + i) * dim, dim);
      if (norm == 0) {
        data_.resize(std::size_t(first * dim));
        BW_THROW(InputError, "add: vector ", i, " is all zeros; the cosine metric needs non-zero vectors");
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t id = ids ? ids[i] : next_id + i;
    labels_.push_back(id);
    removed_mask_.push_back(0);
    live_.push_back(1);
    id_to_label_.emplace(id, first + i);
  }
  add_impl(first, n, resolve_threads(threads), progress);
}

void Index::add(const Vectors& v, int threads, ProgressReporter* progress) {
  BW_CHECK(v.dim == opts_.dim || v.rows == 0, InputError, "add: vectors of dimension ", v.dim, " into an index of dimension ",
           opts_.dim);
  add(v.data.data(), v.rows, v.ids.empty() ? nullptr : v.ids.data(), threads, progress);
}

SearchResult Index::search(const Vectors& q, const SearchOptions& o) const {
  BW_CHECK(q.dim == opts_.dim || q.rows == 0, InputError, "search: queries of dimension ", q.dim,
           " against an index of dimension ", opts_.dim);
  return search(q.data.data(), q.rows, o);
}

bool Index::remove(int64_t id) {
  auto it = id_to_label_.find(id);
  if (it == id_to_label_.end() || removed_mask_[std::size_t(it->second)]) return false;
  removed_mask_[std::size_t(it->second)] = 1;
  live_[std::size_t(it->second)] = 0;
  ++removed_;
  return true;
}

SearchResult Index::search(const float* queries, int64_t nq, const SearchOptions& o) const {
  BW_CHECK(nq >= 0, InputError, "search: negative number of queries ", nq);
  BW_CHECK(o.k >= 1, InputError, "search: k must be >= 1, got ", o.k);
  BW_CHECK(size() > 0, InputError, "search: the index is empty (", index_kind_name(kind()), ", ", count(),
           " vectors added, ", removed_, " removed)");
  BW_CHECK(o.k <= size(), InputError, "search: k = ", o.k, " is larger than the collection (", size(),
           " live vectors)");
  BW_CHECK(o.ef >= 0 && o.nprobe >= 0 && o.rerank >= 0, InputError,
           "search: ef, nprobe and rerank must be >= 0, got ef ", o.ef, ", nprobe ", o.nprobe, ", rerank ", o.rerank);
  SearchResult r;
  r.queries = nq;
  r.k = o.k;
  r.ids.assign(std::size_t(nq * o.k), -1);
  r.distances.assign(std::size_t(nq * o.k), std::numeric_limits<float>::infinity());
  if (nq == 0) return r;
  BW_CHECK(queries != nullptr, InputError, "search: no query data for ", nq, " queries");
  const int64_t dim = opts_.dim;
  check_finite(queries, nq, dim, "search: queries");
  std::vector<float> normalized;
  if (opts_.metric == Metric::kCosine) {
    normalized.assign(queries, queries + nq * dim);
    for (int64_t q = 0; q < nq; ++q) normalize(normalized.data() + q * dim, dim);
    queries = normalized.data();
  }
  std::vector<uint8_t> mask;
  if (o.filter) {
    mask.assign(std::size_t(count()), 0);
    for (int64_t id : *o.filter) {
      auto it = id_to_label_.find(id);
      if (it != id_to_label_.end() && !removed_mask_[std::size_t(it->second)]) mask[std::size_t(it->second)] = 1;
    }
  }
  // Without a filter, removed items are masked by live_, kept up to date by add and remove, so that a
  // single-query search costs no O(n) mask construction.
  const uint8_t* allowed = o.filter ? mask.data() : removed_ > 0 ? live_.data() : nullptr;
  SearchOptions so = o;
  so.threads = resolve_threads(o.threads);
  search_impl(queries, nq, o.k, so, allowed, r.distances.data(), r.ids.data());
  const float offset = opts_.metric == Metric::kCosine ? 1.0f : 0.0f;
  for (std::size_t i = 0; i < r.ids.size(); ++i) {
    if (r.ids[i] < 0) continue;
    BW_ASSERT(r.ids[i] < count(), "label ", r.ids[i], " out of range");
    r.ids[i] = labels_[std::size_t(r.ids[i])];
    // Rounding can make a squared distance of a point to itself slightly negative.
    r.distances[i] = opts_.metric == Metric::kL2 ? std::max(0.0f, r.distances[i]) : r.distances[i] + offset;
  }
  return r;
}

void Index::save(const fs::path& path) const {
  BinaryWriter w(path, kIndexTag, kIndexVersion);
  w.write<uint32_t>(uint32_t(opts_.kind));
  w.write<uint32_t>(uint32_t(opts_.metric));
  w.write<int64_t>(opts_.dim);
  w.write<int32_t>(opts_.m);
  w.write<int32_t>(opts_.ef_construction);
  w.write<int32_t>(opts_.nlist);
  w.write<uint64_t>(opts_.seed);
  w.write_vector(labels_);
  w.write_vector(removed_mask_);
  w.write_vector(data_);
  save_impl(w);
  w.close();
}

std::unique_ptr<Index> load_index(const fs::path& path) {
  BinaryReader r(path, kIndexTag, kIndexVersion);
  IndexOptions o;
  const uint32_t kind = r.read<uint32_t>(), metric = r.read<uint32_t>();
  r.check(kind <= uint32_t(IndexKind::kIvfSq8), "index kind");
  r.check(metric <= uint32_t(Metric::kCosine), "metric");
  o.kind = IndexKind(kind);
  o.metric = Metric(metric);
  o.dim = r.read<int64_t>();
  r.check(o.dim >= 1 && o.dim <= kMaxVectorDim, "dimension");
  o.m = r.read<int32_t>();
  o.ef_construction = r.read<int32_t>();
  o.nlist = r.read<int32_t>();
  o.seed = r.read<uint64_t>();
  r.check(o.m >= 2 && o.m <= 1024 && o.ef_construction >= 1 && o.nlist >= 0, "index options");
  std::unique_ptr<Index> idx = make_index(o);
  idx->labels_ = r.read_vector<int64_t>();
  idx->removed_mask_ = r.read_vector<uint8_t>();
  idx->data_ = r.read_vector<float>();
  const std::size_t n = idx->labels_.size();
  r.check(idx->removed_mask_.size() == n, "removed mask length");
  r.check(idx->data_.size() / std::size_t(o.dim) == n && idx->data_.size() % std::size_t(o.dim) == 0,
          "vector data length");
  idx->live_.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    r.check(idx->removed_mask_[i] <= 1, "removed mask value");
    idx->live_[i] = uint8_t(1 - idx->removed_mask_[i]);
    idx->removed_ += idx->removed_mask_[i];
    r.check(idx->id_to_label_.emplace(idx->labels_[i], int64_t(i)).second, "duplicate item id");
  }
  for (float x : idx->data_) r.check(std::isfinite(x), "vector value");
  idx->load_impl(r);
  r.expect_end();
  return idx;
}

std::unique_ptr<Index> make_index(const IndexOptions& o) {
  BW_CHECK(o.dim >= 1 && o.dim <= kMaxVectorDim, ConfigError, "index: dim must be in 1..", kMaxVectorDim, ", got ",
           o.dim);
  BW_CHECK(o.m >= 2 && o.m <= 1024, ConfigError, "index: m must be in 2..1024, got ", o.m);
  BW_CHECK(o.ef_construction >= 1, ConfigError, "index: ef_construction must be >= 1, got ", o.ef_construction);
  BW_CHECK(o.nlist >= 0 && o.nlist <= (1 << 20), ConfigError, "index: nlist must be in 0..2^20, got ", o.nlist);
  switch (o.kind) {
    case IndexKind::kFlat: return recall_detail::make_flat_index(o);
    case IndexKind::kHnsw: return recall_detail::make_hnsw_index(o);
    case IndexKind::kIvfSq8: return recall_detail::make_ivf_index(o);
  }
  BW_THROW(ConfigError, "index: unknown kind ", int(o.kind));
}

double recall_at_k(const SearchResult& r, const IntVectors& truth, int64_t k) {
  BW_CHECK(truth.rows == r.queries, InputError, "recall: ", truth.rows, " ground-truth rows for ", r.queries,
           " queries");
  BW_CHECK(k >= 1 && k <= truth.dim && k <= r.k, InputError, "recall@", k, ": needs k <= ground-truth width ",
           truth.dim, " and <= search k ", r.k);
  int64_t hit = 0;
  for (int64_t q = 0; q < r.queries; ++q) {
    std::unordered_set<int64_t> want(truth.row(q), truth.row(q) + k);
    for (int64_t i = 0; i < k; ++i) hit += want.count(r.ids_of(q)[i]);
  }
  return r.queries ? double(hit) / double(r.queries * k) : 0.0;
}

}  // namespace bluewhale
