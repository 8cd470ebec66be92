// IVF-SQ8: k-means lists (the coarse quantiser is an exact index over the centroids) holding 8-bit
// scalar-quantised codes. A search scores the codes of the nprobe nearest lists with the SIMD sq8 kernel,
// keeps k * rerank candidates and re-scores those exactly from the stored vectors, so quantisation error
// costs candidates, not precision.
#include <algorithm>
#include <cmath>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/recall/topk.h"
#include "recall/index_impl.h"

namespace bluewhale::recall_detail {
namespace {

constexpr int kKmeansIters = 10;
constexpr int64_t kTrainPointsPerList = 64;

class IvfIndex final : public Index {
 public:
  explicit IvfIndex(const IndexOptions& o) : Index(o) {}

  int64_t memory_bytes() const override {
    int64_t b = Index::memory_bytes() + int64_t(centroids_.size() * 4);
    for (std::size_t l = 0; l < lists_.size(); ++l) b += int64_t(lists_[l].capacity() * 4 + codes_[l].capacity());
    return b;
  }

 private:
  int64_t nlist() const { return int64_t(lists_.size()); }

  // Nearest centroid of each of n vectors (n, dim), by the index metric.
  std::vector<int64_t> assign(const float* x, int64_t n, int64_t nprobe, int threads) const {
    SearchOptions so;
    so.k = nprobe;
    so.threads = threads;
    SearchResult r = quantizer_->search(x, n, so);
    return r.ids;
  }

  void rebuild_quantizer() {
    IndexOptions qo;
    qo.kind = IndexKind::kFlat;
    // Cosine vectors are already unit length: their lists are found by inner product.
    qo.metric = opts_.metric == Metric::kL2 ? Metric::kL2 : Metric::kInnerProduct;
    qo.dim = opts_.dim;
    quantizer_ = make_index(qo);
    quantizer_->add(centroids_.data(), int64_t(centroids_.size()) / opts_.dim, nullptr, 1);
  }

  // Lloyd's k-means (L2) on a strided sample of the first vectors, then the per-dimension range of the
  // scalar quantiser over the same sample.
  void train(int64_t n, int threads) {
    const int64_t dim = opts_.dim;
    int64_t want = opts_.nlist > 0 ? opts_.nlist : int64_t(std::lround(4.0 * std::sqrt(double(n))));
    want = std::clamp<int64_t>(want, 1, n);
    const int64_t samples = std::min(n, want * kTrainPointsPerList);
    std::vector<float> sample(std::size_t(samples * dim));
    for (int64_t i = 0; i < samples; ++i) {
      const int64_t src = i * n / samples;
      std::copy(vec(src), vec(src) + dim, sample.begin() + i * dim);
    }
    centroids_.resize(std::size_t(want * dim));
    // Strided initial centroids: the sample is itself strided over the input, so this spreads them.
    for (int64_t c = 0; c < want; ++c) {
      const int64_t pick = c * samples / want;
      std::copy(sample.begin() + pick * dim, sample.begin() + (pick + 1) * dim, centroids_.begin() + c * dim);
    }
    IndexOptions qo;
    qo.kind = IndexKind::kFlat;
    qo.metric = Metric::kL2;
    qo.dim = dim;
    std::vector<double> sum(std::size_t(want * dim));
    std::vector<int64_t> cnt(static_cast<std::size_t>(want));
    for (int it = 0; it < kKmeansIters; ++it) {
      auto q = make_index(qo);
      q->add(centroids_.data(), want, nullptr, 1);
      SearchOptions so;
      so.k = 1;
      so.threads = threads;
      SearchResult r = q->search(sample.data(), samples, so);
      std::fill(sum.begin(), sum.end(), 0.0);
      std::fill(cnt.begin(), cnt.end(), 0);
      for (int64_t i = 0; i < samples; ++i) {
        const int64_t c = r.ids[std::size_t(i)];
        ++cnt[std::size_t(c)];
        for (int64_t j = 0; j < dim; ++j) sum[std::size_t(c * dim + j)] += sample[std::size_t(i * dim + j)];
      }
      for (int64_t c = 0; c < want; ++c) {
        // An empty cluster takes a sample point so that no list stays empty forever.
        if (cnt[std::size_t(c)] == 0) {
          const int64_t pick = int64_t(mix64(opts_.seed + uint64_t(it) * 7919 + uint64_t(c)) % uint64_t(samples));
          std::copy(sample.begin() + pick * dim, sample.begin() + (pick + 1) * dim, centroids_.begin() + c * dim);
          continue;
        }
        for (int64_t j = 0; j < dim; ++j)
          centroids_[std::size_t(c * dim + j)] = float(sum[std::size_t(c * dim + j)] / double(cnt[std::size_t(c)]));
      }
    }
    lo_.assign(std::size_t(dim), 0.0f);
    step_.assign(std::size_t(dim), 0.0f);
    for (int64_t j = 0; j < dim; ++j) {
      float mn = sample[std::size_t(j)], mx = mn;
      for (int64_t i = 1; i < samples; ++i) {
        mn = std::min(mn, sample[std::size_t(i * dim + j)]);
        mx = std::max(mx, sample[std::size_t(i * dim + j)]);
      }
      lo_[std::size_t(j)] = mn;
      step_[std::size_t(j)] = (mx - mn) / 255.0f;
    }
    lists_.assign(std::size_t(want), {});
    codes_.assign(std::size_t(want), {});
    rebuild_quantizer();
  }

  void encode(const float* x, uint8_t* code) const {
    for (int64_t j = 0; j < opts_.dim; ++j) {
      const float s = step_[std::size_t(j)];
      const float v = s > 0 ? std::round((x[j] - lo_[std::size_t(j)]) / s) : 0.0f;
      code[j] = uint8_t(std::clamp(v, 0.0f, 255.0f));
    }
  }

  void add_impl(int64_t first, int64_t n, int threads, ProgressReporter* progress) override {
    if (lists_.empty()) train(first + n, threads);
    const int64_t dim = opts_.dim;
    std::vector<int64_t> list = assign(vec(first), n, 1, threads);
    std::vector<uint8_t> codes(std::size_t(n * dim));
    parallel_for(n, threads, [&](int64_t b, int64_t e, int) {
      for (int64_t i = b; i < e; ++i) encode(vec(first + i), codes.data() + i * dim);
    });
    for (int64_t i = 0; i < n; ++i) {
      const std::size_t l = std::size_t(list[std::size_t(i)]);
      lists_[l].push_back(uint32_t(first + i));
      codes_[l].insert(codes_[l].end(), codes.begin() + i * dim, codes.begin() + (i + 1) * dim);
    }
    if (progress) progress->add(n, n * dim * 4);
  }

  void search_impl(const float* q, int64_t nq, int64_t k, const SearchOptions& o, const uint8_t* allowed,
                   float* dist_out, int64_t* labels_out) const override {
    const int64_t dim = opts_.dim;
    const int64_t nprobe = std::clamp<int64_t>(o.nprobe > 0 ? o.nprobe : std::max<int64_t>(1, nlist() / 16), 1, nlist());
    const int64_t cand = k * std::max(1, o.rerank);
    const std::vector<int64_t> probes = assign(q, nq, nprobe, o.threads);
    const Kernels& kern = kernels_for(simd_level());
    const Sq8Fn sq = opts_.metric == Metric::kL2 ? kern.sq8_l2_sq : kern.sq8_neg_dot;
    const PairFn exact = distance_fn(opts_.metric, kern);
    parallel_for_dynamic(nq, o.threads, [&](int64_t i, int) {
      const float* qi = q + i * dim;
      TopK coarse(cand);
      for (int64_t p = 0; p < nprobe; ++p) {
        const int64_t l = probes[std::size_t(i * nprobe + p)];
        if (l < 0) continue;
        const auto& ids = lists_[std::size_t(l)];
        const uint8_t* codes = codes_[std::size_t(l)].data();
        for (std::size_t j = 0; j < ids.size(); ++j) {
          if (allowed && !allowed[ids[j]]) continue;
          const float d = sq(qi, codes + j * std::size_t(dim), lo_.data(), step_.data(), dim);
          if (d < coarse.threshold()) coarse.push(d, ids[j]);
        }
      }
      TopK fine(k);
      for (const auto& [d, label] : coarse.take_sorted()) fine.push(exact(qi, vec(label), dim), label);
      write_row(fine.take_sorted(), k, dist_out + i * k, labels_out + i * k);
    });
  }

  void save_impl(BinaryWriter& w) const override {
    w.write_vector(centroids_);
    w.write_vector(lo_);
    w.write_vector(step_);
    w.write<uint64_t>(lists_.size());
    for (std::size_t l = 0; l < lists_.size(); ++l) {
      w.write_vector(lists_[l]);
      w.write_vector(codes_[l]);
    }
  }

  void load_impl(BinaryReader& r) override {
    const int64_t dim = opts_.dim, n = count();
    centroids_ = r.read_vector<float>();
    lo_ = r.read_vector<float>();
    step_ = r.read_vector<float>();
    const uint64_t nl = r.read<uint64_t>();
    // Each list costs at least its two 8-byte length fields, which bounds nl by the bytes left.
    r.check(nl <= r.remaining() / 16 && nl <= (1u << 20), "ivf list count");
    r.check(centroids_.size() == nl * uint64_t(dim), "ivf centroid count");
    r.check(nl == 0 ? lo_.empty() && step_.empty() && n == 0
                    : lo_.size() == std::size_t(dim) && step_.size() == std::size_t(dim), "ivf quantiser size");
    for (float x : centroids_) r.check(std::isfinite(x), "ivf centroid value");
    for (std::size_t j = 0; j < lo_.size(); ++j)
      r.check(std::isfinite(lo_[j]) && std::isfinite(step_[j]) && step_[j] >= 0, "ivf quantiser value");
    lists_.assign(std::size_t(nl), {});
    codes_.assign(std::size_t(nl), {});
    std::vector<uint8_t> seen(std::size_t(n), 0);
    for (std::size_t l = 0; l < nl; ++l) {
      lists_[l] = r.read_vector<uint32_t>();
      codes_[l] = r.read_vector<uint8_t>();
      r.check(codes_[l].size() == lists_[l].size() * std::size_t(dim), "ivf code length");
      for (uint32_t id : lists_[l]) {
        r.check(id < uint64_t(n) && !seen[id], "ivf list entry");
        seen[id] = 1;
      }
    }
    r.check(std::all_of(seen.begin(), seen.end(), [](uint8_t s) { return s == 1; }), "ivf list coverage");
    if (nl > 0) rebuild_quantizer();
  }

  std::vector<float> centroids_;  // (nlist, dim)
  std::vector<float> lo_, step_;  // (dim) x = lo + code * step
  std::vector<std::vector<uint32_t>> lists_;  // labels per list
  std::vector<std::vector<uint8_t>> codes_;   // (list size, dim) codes per list
  std::unique_ptr<Index> quantizer_;          // exact index over the centroids
};

}  // namespace

std::unique_ptr<Index> make_ivf_index(const IndexOptions& o) { return std::make_unique<IvfIndex>(o); }

}  // namespace bluewhale::recall_detail
