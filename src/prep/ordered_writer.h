// Private to the prep driver: the write pass's hand-over of parsed chunks to the dataset writer.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <map>
#include <mutex>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/data/column.h"
#include "bluewhale/data/dataset.h"

namespace bluewhale {

// Takes finished chunks from the workers in any order and appends them to the dataset in input order.
// No thread of its own: the worker that hands over the next chunk to write appends it, and every later
// chunk already waiting, while the others go on parsing. An appending thread of its own read every
// chunk on whichever core it ran (on the 2-vCPU VMs prep runs on, lines moving between cores cost up
// to ~350 ns a round trip when the vCPUs sit on different core complexes); this way a worker mostly
// appends what it parsed itself. Workers that run too far ahead of the next chunk to write wait
// (bounded memory); written chunks are recycled, preferably to the worker that parsed them.
class OrderedWriter {
 public:
  OrderedWriter(DatasetWriter* writer, std::size_t max_ahead) : writer_(writer), max_ahead_(max_ahead) {}

  // Hands over chunk `index`, parsed by worker `tid` (every index from 0 up must be put exactly once),
  // and appends what is next in order unless another worker is appending. Throws the writer's error;
  // false once the run was aborted (the caller stops: a chunk it waits for may never come).
  [[nodiscard]] bool put(std::size_t index, Chunk&& chunk, int tid) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait(lk, [&] { return index < next_ + max_ahead_ || error_ || aborted_; });
    if (error_) std::rethrow_exception(error_);
    if (aborted_) return false;
    pending_.emplace(index, Owned{tid, std::move(chunk)});
    if (appending_) return true;  // the appending worker takes this one too when its turn comes
    appending_ = true;
    for (auto it = pending_.find(next_); it != pending_.end() && !aborted_; it = pending_.find(next_)) {
      Owned c = std::move(it->second);
      pending_.erase(it);
      lk.unlock();
      try {
        writer_->append(c.chunk);
      } catch (...) {
        lk.lock();
        error_ = std::current_exception();
        appending_ = false;
        cv_.notify_all();
        throw;
      }
      lk.lock();
      // Kept for reuse up to the most chunks ever in flight (max_ahead_ waiting or being written, one
      // per worker being parsed): a chunk dropped here was soon replaced by a fresh one from
      // take_free(), whose ~1 MB of new pages cost more than its parse on those virtual machines.
      if (free_.size() < 2 * max_ahead_) free_.push_back(std::move(c));
      ++next_;
      cv_.notify_all();
    }
    appending_ = false;
    return !aborted_;
  }

  // Adds a chunk whose buffers take_free() may hand out (an earlier pass's, instead of fresh memory).
  void add_free(Chunk&& chunk, int tid) {
    std::lock_guard<std::mutex> lk(mu_);
    if (free_.size() < 2 * max_ahead_) free_.push_back(Owned{tid, std::move(chunk)});
  }

  // A chunk whose buffers can be reused, the last one worker `tid` parsed into if there is one (its
  // lines may still be in that core's cache), or an empty one.
  Chunk take_free(int tid) {
    std::lock_guard<std::mutex> lk(mu_);
    if (free_.empty()) return Chunk{};
    std::size_t k = free_.size() - 1;
    for (std::size_t j = free_.size(); j-- > 0;)
      if (free_[j].tid == tid) {
        k = j;
        break;
      }
    Chunk c = std::move(free_[k].chunk);
    free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(k));
    return c;
  }

  // Stops the run (a worker failed): waiting and later put()s return false, what was not written is
  // dropped.
  void abort() {
    std::lock_guard<std::mutex> lk(mu_);
    aborted_ = true;
    cv_.notify_all();
  }

  // After every worker returned: checks that `count` chunks were written; rethrows a writer error.
  void finish(std::size_t count) {
    std::lock_guard<std::mutex> lk(mu_);
    if (error_) std::rethrow_exception(error_);
    BW_ASSERT(next_ == count && pending_.empty() && !appending_, "ordered writer wrote ", next_, " of ", count,
              " chunks, ", pending_.size(), " left waiting");
  }

 private:
  struct Owned {
    int tid = 0;
    Chunk chunk;
  };
  DatasetWriter* writer_;
  const std::size_t max_ahead_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::size_t, Owned> pending_;
  std::vector<Owned> free_;
  std::size_t next_ = 0;
  bool appending_ = false;
  std::exception_ptr error_;
  bool aborted_ = false;
};

}  // namespace bluewhale
