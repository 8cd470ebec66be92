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
// No thread of its own: workers append, each the chunks it parsed itself. An appending thread of its own
// read every chunk on whichever core it ran, and a worker that appended whatever was next in order read a
// third of the other's chunks (2 threads, 1M Criteo rows): on the 2-vCPU VMs prep runs on, lines moving
// between cores cost up to ~350 ns a round trip when the vCPUs sit on different core complexes. So the
// next chunk is appended by the worker that parsed it, when it next comes to put() (or done()); another
// worker appends it only while that one is not parsing (waiting in put() or done). Workers that run too
// far ahead of the next chunk to write wait (bounded memory); written chunks are recycled, preferably to
// the worker that parsed them.
class OrderedWriter {
 public:
  // `workers`: the tids that will put (0 .. workers-1), each parsing from the start.
  OrderedWriter(DatasetWriter* writer, std::size_t max_ahead, int workers)
      : writer_(writer), max_ahead_(max_ahead), parsing_(static_cast<std::size_t>(workers), 1) {}

  // Hands over chunk `index`, parsed by worker `tid` (every index from 0 up must be put exactly once),
  // and appends what is next in order and this worker's (or a waiting worker's) unless another worker is
  // appending. Throws the writer's error; false once the run was aborted (the caller stops: a chunk it
  // waits for may never come).
  [[nodiscard]] bool put(std::size_t index, Chunk&& chunk, int tid) {
    BW_ASSERT(tid >= 0 && static_cast<std::size_t>(tid) < parsing_.size(), "OrderedWriter: worker ", tid);
    std::unique_lock<std::mutex> lk(mu_);
    parsing_[tid] = 0;  // until it returns, its chunks are anyone's to append
    for (;;) {
      if (error_) std::rethrow_exception(error_);
      if (aborted_) return false;
      if (index < next_ + max_ahead_) break;
      if (!appending_ && next_is_for(tid)) {
        append_in_order(lk, tid);
        continue;
      }
      cv_.wait(lk);
    }
    pending_.emplace(index, Owned{tid, std::move(chunk)});
    if (!appending_) append_in_order(lk, tid);
    parsing_[tid] = 1;
    return !aborted_;
  }

  // Worker `tid` puts nothing more: appends what it can now, and leaves its chunks still waiting to the
  // others. Every worker calls it when it runs out of chunks (else a chunk of its could wait forever).
  void done(int tid) {
    BW_ASSERT(tid >= 0 && static_cast<std::size_t>(tid) < parsing_.size(), "OrderedWriter: worker ", tid);
    std::unique_lock<std::mutex> lk(mu_);
    parsing_[tid] = 0;
    if (!appending_ && !aborted_ && !error_) append_in_order(lk, tid);
    cv_.notify_all();
    if (error_) std::rethrow_exception(error_);
  }

  // Chunks appended so far, for tests.
  std::size_t written() {
    std::lock_guard<std::mutex> lk(mu_);
    return next_;
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

  // After every worker returned (and called done): checks that `count` chunks were written; rethrows a
  // writer error.
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
  // The next chunk to write is waiting and worker tid may append it (its own, or its parser's not parsing).
  bool next_is_for(int tid) const {
    const auto it = pending_.find(next_);
    return it != pending_.end() && (it->second.tid == tid || !parsing_[static_cast<std::size_t>(it->second.tid)]);
  }
  // Appends, as worker tid, chunks in order while next_is_for(tid). Under lk, released while appending.
  void append_in_order(std::unique_lock<std::mutex>& lk, int tid) {
    appending_ = true;
    while (!aborted_ && next_is_for(tid)) {
      const auto it = pending_.find(next_);
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
    cv_.notify_all();
  }

  DatasetWriter* writer_;
  const std::size_t max_ahead_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::size_t, Owned> pending_;
  std::vector<Owned> free_;
  std::vector<uint8_t> parsing_;  // per worker: between put()s, so its chunks wait for it
  std::size_t next_ = 0;
  bool appending_ = false;
  std::exception_ptr error_;
  bool aborted_ = false;
};

}  // namespace bluewhale
