// Bounded selection of the k smallest distances, the inner loop of every index's search.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace bluewhale {

// Keeps the k (distance, label) pairs with the smallest distances seen so far in a max-heap; push() is
// one compare when the candidate is worse than the current k-th (the common case in a scan). Ties keep
// the label seen first. Not thread-safe; one per query and thread.
class TopK {
 public:
  explicit TopK(int64_t k = 0) { reset(k); }
  void reset(int64_t k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(std::size_t(k));
  }
  // The distance a candidate must beat to enter (+inf until k are held).
  float threshold() const {
    return int64_t(heap_.size()) < k_ ? std::numeric_limits<float>::infinity() : heap_.front().first;
  }
  void push(float dist, int64_t label) {
    if (int64_t(heap_.size()) < k_) {
      heap_.emplace_back(dist, label);
      std::push_heap(heap_.begin(), heap_.end(), Less{});
    } else if (k_ > 0 && dist < heap_.front().first) {
      std::pop_heap(heap_.begin(), heap_.end(), Less{});
      heap_.back() = {dist, label};
      std::push_heap(heap_.begin(), heap_.end(), Less{});
    }
  }
  int64_t size() const { return int64_t(heap_.size()); }
  // Sorted by distance (then label), nearest first; the heap is consumed.
  std::vector<std::pair<float, int64_t>> take_sorted() {
    std::sort(heap_.begin(), heap_.end(), Less{});
    return std::move(heap_);
  }

 private:
  // A function object rather than a function pointer, so that the heap algorithms inline the comparison
  // (the pointer was not inlined and showed up as its own symbol in exact-search profiles).
  struct Less {
    bool operator()(const std::pair<float, int64_t>& a, const std::pair<float, int64_t>& b) const {
      return a.first < b.first || (a.first == b.first && a.second < b.second);
    }
  };
  int64_t k_ = 0;
  std::vector<std::pair<float, int64_t>> heap_;
};

}  // namespace bluewhale
