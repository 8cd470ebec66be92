#include "prep/column_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "bluewhale/core/error.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/parallel.h"

namespace bluewhale {

ColumnSplitFit::ColumnSplitFit(std::vector<Part> parts, std::size_t raw_columns, std::vector<int> always,
                               int64_t input_bytes, Hooks hooks)
    : parts_(std::move(parts)),
      raw_columns_(raw_columns),
      always_(std::move(always)),
      hooks_(std::move(hooks)),
      input_bytes_(input_bytes) {
  for (const Part& p : parts_)
    for (int k : p.columns) BW_ASSERT(k >= 0 && static_cast<std::size_t>(k) < raw_columns_, "part reads column ", k);
  for (int k : always_) BW_ASSERT(k >= 0 && static_cast<std::size_t>(k) < raw_columns_, "always column ", k);
  for (auto& s : sizes_) s.assign(parts_.size(), 0);
  gens_[0] = make_assignment(std::vector<int>(parts_.size(), -1), true);
}

ColumnSplitFit::Assignment ColumnSplitFit::make_assignment(std::vector<int> owner, bool calibration) const {
  Assignment a;
  a.owner = std::move(owner);
  // Who takes each column's statistics: its owner when every part reading it has that one owner, else
  // (shared parts, several owners, no part) the thread that reaches the chunk first.
  constexpr int kFirst = -1, kNone = -2;
  std::vector<int> taker(raw_columns_, kNone);
  for (std::size_t i = 0; i < parts_.size(); ++i)
    for (int k : parts_[i].columns) {
      int& t = taker[static_cast<std::size_t>(k)];
      const int o = a.owner[i];
      t = t == kNone ? (o >= 0 ? o : kFirst) : (t == o ? t : kFirst);
    }
  for (int& t : taker)
    if (t == kNone) t = kFirst;
  for (int tid = 0; tid < kThreads; ++tid)
    for (int first = 0; first < 2; ++first) {
      Role& r = a.roles[static_cast<std::size_t>(tid)][static_cast<std::size_t>(first)];
      r.counted.assign(raw_columns_, 0);
      std::vector<uint8_t> convert(raw_columns_, 0);
      for (std::size_t k = 0; k < raw_columns_; ++k)
        if (taker[k] == tid || (first && taker[k] == kFirst)) r.counted[k] = convert[k] = 1;
      for (std::size_t i = 0; i < parts_.size(); ++i) {
        const int o = a.owner[i];
        if (o != tid && !(first && o < 0)) continue;
        r.fits.emplace_back(i, o == tid);
        for (int k : parts_[i].columns) convert[static_cast<std::size_t>(k)] = 1;
      }
      for (int k : always_) convert[static_cast<std::size_t>(k)] = 1;
      // The first thread always parses (it counts the rows); the other only for parts of its own.
      r.parse = first || !r.fits.empty();
      // Calibration: the first thread converts what the pass reads, as a whole-chunk fit would.
      if (r.parse && !calibration) r.plan = hooks_.plan(convert);
    }
  return a;
}

void ColumnSplitFit::decide() {
  const double n2 = static_cast<double>(calibrated_rows_), n1 = static_cast<double>(half_rows_);
  const double total_rows =
      input_bytes_ > 0 && calibrated_bytes_ > 0
          ? n2 * static_cast<double>(input_bytes_) / static_cast<double>(calibrated_bytes_)
          : n2 * kUnknownInputChunks / static_cast<double>(kCalibrationChunks);
  std::vector<double> keys(parts_.size(), 0.0);
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    double d2 = 0;
    for (const auto& s : sizes_) d2 += static_cast<double>(std::max<int64_t>(s[i], 0));
    const double d1 = static_cast<double>(half_sizes_[i]);
    // Distinct keys grow as rows^beta between the two points and on; no growth seen: none expected.
    double beta = d2 > d1 ? 1.0 : 0.0;
    if (d1 > 0 && d2 > d1 && n2 > n1 && n1 > 0) beta = std::clamp(std::log(d2 / d1) / std::log(n2 / n1), 0.0, 1.0);
    keys[i] = n2 > 0 && total_rows > n2 ? d2 * std::pow(total_rows / n2, beta) : d2;
  }
  std::vector<std::size_t> order(parts_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return keys[a] > keys[b]; });
  std::vector<int> owner(parts_.size(), -1);
  std::array<double, kThreads> load{};
  std::size_t owned = 0;
  for (std::size_t i : order) {
    if (keys[i] <= kSharedKeys) break;
    const int t = load[0] <= load[1] ? 0 : 1;
    owner[i] = t;
    load[static_cast<std::size_t>(t)] += 1.0 + std::log2(keys[i] / kCachedKeys);
    ++owned;
  }
  gens_[1] = make_assignment(owner, false);
  gen_ = 1;
  log_debug("prep: fit by columns: ", owned, " of ", parts_.size(), " parts owned (weights ", load[0], " / ", load[1],
            "), the rest shared");
}

void ColumnSplitFit::run(Chunk& c0, Chunk& c1) {
  parallel_for(kThreads, kThreads, [&](int64_t, int64_t, int tid) {
    try {
      worker(tid, tid == 0 ? c0 : c1);
    } catch (...) {
      {
        std::lock_guard<std::mutex> lk(mu_);
        failed_ = true;
      }
      cv_.notify_all();
      throw;
    }
  });
}

void ColumnSplitFit::worker(int tid, Chunk& c) {
  std::size_t seq = 0;  // the next chunk this thread takes
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    if (failed_) return;
    if (seq < base_ + slots_.size()) {
      Slot& s = slots_[seq - base_];  // stays put: a deque's other ends change, this slot is not done
      lk.unlock();
      work(s, c, tid);
      lk.lock();
      ++seq;
      if (--s.left == 0) {
        while (!slots_.empty() && slots_.front().left == 0) {
          free_texts_.push_back(std::move(slots_.front().text));
          slots_.pop_front();
          ++base_;
        }
        cv_.notify_all();
      }
      continue;
    }
    if (done_) return;
    if (fetching_ || slots_.size() >= kMaxAhead) {
      cv_.wait(lk);
      continue;
    }
    fetching_ = true;
    TextChunk text;
    if (!free_texts_.empty()) {
      text = std::move(free_texts_.back());
      free_texts_.pop_back();
    }
    std::size_t at = 0;
    lk.unlock();
    bool got = false;
    try {
      got = hooks_.next(text, at);
    } catch (...) {
      lk.lock();
      fetching_ = false;
      throw;
    }
    lk.lock();
    fetching_ = false;
    if (got) {
      Slot s;
      s.text = std::move(text);
      s.at = at;
      s.first = tid;
      s.gen = gen_;
      slots_.push_back(std::move(s));
    } else {
      done_ = true;
    }
    cv_.notify_all();
  }
}

void ColumnSplitFit::work(Slot& s, Chunk& c, int tid) {
  const bool first = s.first == tid;
  const Role& r = gens_[static_cast<std::size_t>(s.gen)].roles[static_cast<std::size_t>(tid)][first ? 1 : 0];
  if (!r.parse) return;
  hooks_.parse(s.text, s.at, c, tid, r.plan.get());
  hooks_.parsed(c, s.text, tid, r.counted, first);
  for (const auto& [i, sole] : r.fits) hooks_.fit(c, parts_[i], tid, sole);
  if (s.gen > 0) return;
  // A calibration chunk: this thread's part sizes now (its own state, read on its own thread).
  std::vector<int64_t> sizes(parts_.size());
  for (std::size_t i = 0; i < parts_.size(); ++i) sizes[i] = hooks_.size(parts_[i], tid);
  std::lock_guard<std::mutex> lk(mu_);
  sizes_[static_cast<std::size_t>(tid)] = std::move(sizes);
  calibrated_rows_ += c.rows;
  calibrated_bytes_ += static_cast<int64_t>(s.text.text.size());
  if (++calibrated_ == kCalibrationChunks / 2) {
    half_sizes_.assign(parts_.size(), 0);
    for (const auto& t : sizes_)
      for (std::size_t i = 0; i < parts_.size(); ++i) half_sizes_[i] += std::max<int64_t>(t[i], 0);
    half_rows_ = calibrated_rows_;
  }
  if (calibrated_ == kCalibrationChunks) decide();
}

std::vector<int> ColumnSplitFit::owners() const { return gen_ > 0 ? gens_[1].owner : gens_[0].owner; }

}  // namespace bluewhale
