// HNSW (Malkov & Yashunin, 2016): a hierarchy of proximity graphs; a search descends greedily through
// the sparse upper layers and runs a beam search of width ef on the dense base layer.
//
// Layout: the base layer's links live in one flat array, (1 + 2M) uint32 per node (count, then ids), so a
// node's neighbour list is one or two cache lines next to nothing else; the few nodes above layer 0 keep
// their upper lists in a small vector each. Vectors stay in the base class's label-ordered matrix.
//
// Parallel build: each thread inserts nodes (handed out in order); a node's neighbour list is read and
// written under its striped lock, and a thread never holds two list locks at once, so there is no lock
// order to get wrong. A node that raises the top layer holds the global lock for its whole insertion.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/binary_io.h"
#include "recall/index_impl.h"

namespace bluewhale::recall_detail {
namespace {

constexpr int kMaxLevel = 31;
constexpr std::size_t kLockStripes = 1 << 16;

using Cand = std::pair<float, uint32_t>;
struct Closer {
  bool operator()(const Cand& a, const Cand& b) const { return a.first > b.first; }
};
struct Farther {
  bool operator()(const Cand& a, const Cand& b) const { return a.first < b.first; }
};

// Per-thread search state: visited tags (an epoch counter avoids clearing the array per query) and the
// two heaps' storage, reused across queries.
struct Scratch {
  std::vector<uint16_t> tags;
  uint16_t epoch = 0;
  std::vector<Cand> top, cand;  // max-heap by distance (results), min-heap (frontier)
  std::vector<uint32_t> nbrs;
  void begin(std::size_t n) {
    if (tags.size() < n) tags.resize(n, 0);
    if (++epoch == 0) {
      std::fill(tags.begin(), tags.end(), 0);
      epoch = 1;
    }
    top.clear();
    cand.clear();
  }
};

class HnswIndex final : public Index {
 public:
  explicit HnswIndex(const IndexOptions& o)
      : Index(o), m_(o.m), m0_(2 * o.m), mult_(1.0 / std::log(double(o.m))), locks_(kLockStripes) {}

  int64_t memory_bytes() const override {
    int64_t b = Index::memory_bytes() + int64_t(links0_.capacity() * 4 + levels_.capacity());
    for (const auto& u : upper_) b += int64_t(u.capacity() * 4 + sizeof(u));
    return b;
  }

 private:
  uint32_t* links(uint32_t node, int level) {
    return level == 0 ? links0_.data() + std::size_t(node) * (m0_ + 1)
                      : upper_[node].data() + std::size_t(level - 1) * (m_ + 1);
  }
  const uint32_t* links(uint32_t node, int level) const { return const_cast<HnswIndex*>(this)->links(node, level); }
  std::mutex& lock_of(uint32_t node) const { return locks_[node & (kLockStripes - 1)]; }

  int random_level(int64_t label) const {
    const double u = unit_interval(mix64(opts_.seed * 0x9E3779B97F4A7C15ull ^ uint64_t(label)));
    return std::min(kMaxLevel, int(-std::log(std::max(u, 1e-300)) * mult_));
  }

  // Beam search of width ef on one layer from entry points already in s.cand / s.top (visited marked).
  // kLocked: lists may change under us (during build), so copy each under its lock. allowed: nodes that
  // may enter the results (nullptr = all); others are still walked through.
  template <bool kLocked, bool kFiltered>
  void search_layer(const float* q, int level, std::size_t ef, PairFn dist, const uint8_t* allowed,
                    Scratch& s) const {
    const int64_t dim = opts_.dim;
    uint16_t* tags = s.tags.data();
    const uint16_t epoch = s.epoch;
    float bound = s.top.empty() ? std::numeric_limits<float>::infinity() : s.top.front().first;
    while (!s.cand.empty()) {
      const Cand c = s.cand.front();
      if (c.first > bound && s.top.size() >= ef) break;
      std::pop_heap(s.cand.begin(), s.cand.end(), Closer());
      s.cand.pop_back();
      const uint32_t* list;
      uint32_t cnt;
      if constexpr (kLocked) {
        std::lock_guard<std::mutex> lk(lock_of(c.second));
        const uint32_t* l = links(c.second, level);
        s.nbrs.assign(l + 1, l + 1 + l[0]);
        list = s.nbrs.data();
        cnt = uint32_t(s.nbrs.size());
      } else {
        const uint32_t* l = links(c.second, level);
        cnt = l[0];
        list = l + 1;
      }
      // Touch the visited tags first, then the vectors of the unvisited, a step ahead of use.
      for (uint32_t j = 0; j < cnt; ++j) __builtin_prefetch(tags + list[j]);
      if (cnt) __builtin_prefetch(vec(list[0]));
      for (uint32_t j = 0; j < cnt; ++j) {
        const uint32_t nb = list[j];
        if (j + 1 < cnt) {
          __builtin_prefetch(vec(list[j + 1]));
          __builtin_prefetch(vec(list[j + 1]) + 16);
        }
        if (tags[nb] == epoch) continue;
        tags[nb] = epoch;
        const float d = dist(q, vec(nb), dim);
        if (s.top.size() < ef || d < bound) {
          s.cand.emplace_back(d, nb);
          std::push_heap(s.cand.begin(), s.cand.end(), Closer());
          // The frontier's best is likely the next node expanded: start fetching its list (3 lines).
          const uint32_t* next = links(s.cand.front().second, level);
          __builtin_prefetch(next);
          __builtin_prefetch(next + 16);
          if (!kFiltered || allowed[nb]) {
            s.top.emplace_back(d, nb);
            std::push_heap(s.top.begin(), s.top.end(), Farther());
            if (s.top.size() > ef) {
              std::pop_heap(s.top.begin(), s.top.end(), Farther());
              s.top.pop_back();
            }
            bound = s.top.front().first;
          }
        }
      }
    }
  }

  // Greedy walk on one upper layer: move to the nearest neighbour until none is nearer.
  template <bool kLocked>
  uint32_t greedy(const float* q, uint32_t ep, float& d_ep, int level, PairFn dist, Scratch& s) const {
    for (bool moved = true; moved;) {
      moved = false;
      const uint32_t* l;
      if constexpr (kLocked) {
        std::lock_guard<std::mutex> lk(lock_of(ep));
        const uint32_t* src = links(ep, level);
        s.nbrs.assign(src + 1, src + 1 + src[0]);
        l = s.nbrs.data();
      } else {
        l = links(ep, level) + 1;
      }
      const uint32_t cnt = kLocked ? uint32_t(s.nbrs.size()) : l[-1];
      for (uint32_t j = 0; j < cnt; ++j) {
        const float d = dist(q, vec(l[j]), opts_.dim);
        if (d < d_ep) {
          d_ep = d;
          ep = l[j];
          moved = true;
        }
      }
    }
    return ep;
  }

  // The diversity heuristic: walk candidates nearest first and keep one only if it is nearer to the base
  // point than to every neighbour kept so far. cands is sorted ascending on entry; the kept ones are
  // returned in place.
  void select_neighbors(std::vector<Cand>& cands, std::size_t m, PairFn dist) const {
    if (cands.size() <= m) return;
    std::size_t kept = 0;
    for (std::size_t i = 0; i < cands.size() && kept < m; ++i) {
      bool good = true;
      for (std::size_t j = 0; j < kept; ++j) {
        if (dist(vec(cands[i].second), vec(cands[j].second), opts_.dim) < cands[i].first) {
          good = false;
          break;
        }
      }
      if (good) cands[kept++] = cands[i];
    }
    cands.resize(kept);
  }

  void insert(uint32_t node, PairFn dist, Scratch& s) {
    const int level = levels_[node];
    std::unique_lock<std::mutex> top_lock(global_);
    if (entry_ < 0) {
      entry_ = node;
      max_level_ = level;
      return;
    }
    // Only a node that raises the top layer keeps the global lock while it links itself in.
    if (level <= max_level_) top_lock.unlock();
    uint32_t ep = uint32_t(entry_);
    const int top = max_level_;
    const float* q = vec(node);
    float d_ep = dist(q, vec(ep), opts_.dim);
    for (int lc = top; lc > level; --lc) ep = greedy<true>(q, ep, d_ep, lc, dist, s);
    std::vector<Cand> sel, back;
    for (int lc = std::min(level, top); lc >= 0; --lc) {
      s.begin(std::size_t(count()));
      s.tags[ep] = s.epoch;
      s.cand.emplace_back(d_ep, ep);
      s.top.emplace_back(d_ep, ep);
      search_layer<true, false>(q, lc, std::size_t(opts_.ef_construction), dist, nullptr, s);
      sel.assign(s.top.begin(), s.top.end());
      std::sort(sel.begin(), sel.end(), Farther());
      ep = sel.front().second;
      d_ep = sel.front().first;
      select_neighbors(sel, std::size_t(m_), dist);
      {
        std::lock_guard<std::mutex> lk(lock_of(node));
        uint32_t* l = links(node, lc);
        l[0] = uint32_t(sel.size());
        for (std::size_t i = 0; i < sel.size(); ++i) l[1 + i] = sel[i].second;
      }
      const std::size_t cap = std::size_t(lc == 0 ? m0_ : m_);
      for (const Cand& c : sel) {
        std::lock_guard<std::mutex> lk(lock_of(c.second));
        uint32_t* l = links(c.second, lc);
        if (l[0] < cap) {
          l[1 + l[0]] = node;
          ++l[0];
          continue;
        }
        // Full: re-select among the old neighbours and the new node.
        const float* base = vec(c.second);
        back.clear();
        back.emplace_back(c.first, node);
        for (uint32_t j = 0; j < l[0]; ++j) back.emplace_back(dist(base, vec(l[1 + j]), opts_.dim), l[1 + j]);
        std::sort(back.begin(), back.end(), Farther());
        select_neighbors(back, cap, dist);
        l[0] = uint32_t(back.size());
        for (std::size_t j = 0; j < back.size(); ++j) l[1 + j] = back[j].second;
      }
    }
    if (level > top) {
      entry_ = node;
      max_level_ = level;
    }
  }

  void add_impl(int64_t first, int64_t n, int threads, ProgressReporter* progress) override {
    const int64_t total = first + n;
    links0_.resize(std::size_t(total) * (m0_ + 1), 0);
    levels_.resize(std::size_t(total));
    upper_.resize(std::size_t(total));
    for (int64_t i = first; i < total; ++i) {
      const int lv = random_level(labels_[std::size_t(i)]);
      levels_[std::size_t(i)] = uint8_t(lv);
      upper_[std::size_t(i)].assign(std::size_t(lv) * (m_ + 1), 0);
    }
    const PairFn dist = distance_fn(opts_.metric, kernels_for(simd_level()));
    std::vector<Scratch> scratch(static_cast<std::size_t>(threads));
    int64_t start = first;
    if (entry_ < 0) insert(uint32_t(start++), dist, scratch[0]);
    // Chunks of 16 nodes keep the hand-out counter off the hot path without unbalancing the threads.
    constexpr int64_t kChunk = 16;
    const int64_t chunks = (total - start + kChunk - 1) / kChunk;
    parallel_for_dynamic(chunks, threads, [&](int64_t c, int t) {
      const int64_t b = start + c * kChunk, e = std::min(total, b + kChunk);
      for (int64_t i = b; i < e; ++i) insert(uint32_t(i), dist, scratch[std::size_t(t)]);
      if (progress) progress->add(e - b, (e - b) * opts_.dim * 4);
    });
    if (progress && start > first) progress->add(1, opts_.dim * 4);
  }

  Scratch* acquire() const {
    std::lock_guard<std::mutex> lk(pool_mu_);
    if (pool_.empty()) return new Scratch();
    Scratch* s = pool_.back().release();
    pool_.pop_back();
    return s;
  }
  void release(Scratch* s) const {
    std::lock_guard<std::mutex> lk(pool_mu_);
    pool_.emplace_back(s);
  }

  template <bool kFiltered>
  void search_one(const float* q, int64_t k, std::size_t ef, PairFn dist, const uint8_t* allowed, Scratch& s,
                  float* out_d, int64_t* out_l) const {
    uint32_t ep = uint32_t(entry_);
    float d_ep = dist(q, vec(ep), opts_.dim);
    for (int lc = max_level_; lc > 0; --lc) ep = greedy<false>(q, ep, d_ep, lc, dist, s);
    s.begin(std::size_t(count()));
    s.tags[ep] = s.epoch;
    s.cand.emplace_back(d_ep, ep);
    if (!kFiltered || allowed[ep]) s.top.emplace_back(d_ep, ep);
    search_layer<false, kFiltered>(q, 0, ef, dist, allowed, s);
    std::sort(s.top.begin(), s.top.end(), Farther());
    std::vector<std::pair<float, int64_t>> hits;
    hits.reserve(std::size_t(k));
    for (std::size_t i = 0; i < s.top.size() && int64_t(i) < k; ++i) hits.emplace_back(s.top[i].first, s.top[i].second);
    write_row(hits, k, out_d, out_l);
  }

  void search_impl(const float* q, int64_t nq, int64_t k, const SearchOptions& o, const uint8_t* allowed,
                   float* dist_out, int64_t* labels_out) const override {
    const std::size_t ef = std::size_t(std::max<int64_t>(k, o.ef > 0 ? o.ef : 64));
    const PairFn dist = distance_fn(opts_.metric, kernels_for(simd_level()));
    const int threads = int(std::min<int64_t>(o.threads, nq));
    std::vector<Scratch*> scratch(static_cast<std::size_t>(threads));
    for (auto& s : scratch) s = acquire();
    auto run = [&](int64_t i, int t) {
      Scratch& s = *scratch[std::size_t(t)];
      if (allowed) search_one<true>(q + i * opts_.dim, k, ef, dist, allowed, s, dist_out + i * k, labels_out + i * k);
      else search_one<false>(q + i * opts_.dim, k, ef, dist, allowed, s, dist_out + i * k, labels_out + i * k);
    };
    try {
      parallel_for_dynamic(nq, threads, run);
    } catch (...) {
      for (auto* s : scratch) release(s);
      throw;
    }
    for (auto* s : scratch) release(s);
  }

  void save_impl(BinaryWriter& w) const override {
    w.write<int64_t>(entry_);
    w.write<int32_t>(max_level_);
    w.write_vector(levels_);
    w.write_vector(links0_);
    std::vector<uint32_t> up;
    for (const auto& u : upper_) up.insert(up.end(), u.begin(), u.end());
    w.write_vector(up);
  }

  void load_impl(BinaryReader& r) override {
    const int64_t n = count();
    entry_ = r.read<int64_t>();
    max_level_ = r.read<int32_t>();
    levels_ = r.read_vector<uint8_t>();
    links0_ = r.read_vector<uint32_t>();
    std::vector<uint32_t> up = r.read_vector<uint32_t>();
    r.check(int64_t(levels_.size()) == n, "hnsw level count");
    r.check(links0_.size() == std::size_t(n) * (m0_ + 1), "hnsw base layer size");
    r.check(n == 0 ? entry_ == -1 : (entry_ >= 0 && entry_ < n), "hnsw entry point");
    r.check(n == 0 || max_level_ == levels_[std::size_t(entry_)], "hnsw top level");
    std::size_t need = 0;
    for (uint8_t lv : levels_) {
      r.check(lv <= kMaxLevel && int(lv) <= max_level_, "hnsw node level");
      need += std::size_t(lv) * (m_ + 1);
    }
    r.check(up.size() == need, "hnsw upper layer size");
    upper_.assign(std::size_t(n), {});
    std::size_t pos = 0;
    for (int64_t i = 0; i < n; ++i) {
      const std::size_t len = std::size_t(levels_[std::size_t(i)]) * (m_ + 1);
      upper_[std::size_t(i)].assign(up.begin() + pos, up.begin() + pos + len);
      pos += len;
    }
    // Every list must fit its slot and point at a node that exists on that layer: the search follows
    // these ids without further checks.
    for (int64_t i = 0; i < n; ++i) {
      for (int lc = 0; lc <= levels_[std::size_t(i)]; ++lc) {
        const uint32_t* l = links(uint32_t(i), lc);
        r.check(l[0] <= uint32_t(lc == 0 ? m0_ : m_), "hnsw neighbour count");
        for (uint32_t j = 0; j < l[0]; ++j)
          r.check(l[1 + j] < uint64_t(n) && levels_[l[1 + j]] >= lc, "hnsw neighbour id");
      }
    }
  }

  int m_, m0_;
  double mult_;
  std::vector<uint32_t> links0_;             // (count, 1 + 2M)
  std::vector<std::vector<uint32_t>> upper_;  // per node: levels 1..L, (1 + M) each
  std::vector<uint8_t> levels_;
  int64_t entry_ = -1;
  int max_level_ = -1;
  std::mutex global_;
  mutable std::vector<std::mutex> locks_;
  mutable std::mutex pool_mu_;
  mutable std::vector<std::unique_ptr<Scratch>> pool_;
};

}  // namespace

std::unique_ptr<Index> make_hnsw_index(const IndexOptions& o) { return std::make_unique<HnswIndex>(o); }

}  // namespace bluewhale::recall_detail
