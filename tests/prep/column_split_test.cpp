// Two threads sharing a fit pass by column (prep/column_split.h): every part of every chunk fitted once,
// every column's statistics taken once per chunk, owners from the parts' growth, errors end the run.
#include "prep/column_split.h"

#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <tuple>

namespace bluewhale {
namespace {

// A fake input of `chunks` chunks of `rows` rows and parts whose state grows by `ratio` distinct keys per
// row fitted (on the thread that fits them), recording what the hooks see.
struct Harness {
  int chunks = 40;
  int64_t rows = 10000;
  std::size_t raw_columns = 8;
  std::vector<double> ratio;  // per part
  bool sizes_known = true;
  int throw_in_fit_at = -1, throw_in_next_at = -1;

  std::mutex mu;
  int handed = 0;
  struct Fit {
    int tid;
    bool sole;
  };
  std::map<std::pair<int, std::size_t>, std::vector<Fit>> fits;  // (chunk, part) -> who fitted it
  std::map<std::pair<int, std::size_t>, int> counted;              // (chunk, column) -> times taken
  std::map<int, int> firsts;                                       // chunk -> threads that counted its rows
  std::vector<std::vector<uint8_t>> plans;                         // masks the plan hook got
  std::map<std::pair<std::size_t, int>, double> state;             // (part, tid) -> fake distinct keys

  std::vector<ColumnSplitFit::Part> parts() const {
    std::vector<ColumnSplitFit::Part> p;
    for (std::size_t i = 0; i < ratio.size(); ++i) p.push_back({0, static_cast<int>(i), {static_cast<int>(i + 1)}});
    return p;
  }

  ColumnSplitFit::Hooks hooks() {
    ColumnSplitFit::Hooks h;
    h.next = [this](TextChunk& t, std::size_t& at) {
      std::lock_guard<std::mutex> lk(mu);
      if (handed == throw_in_next_at) throw std::runtime_error("next failed");
      if (handed >= chunks) return false;
      at = static_cast<std::size_t>(handed++);
      t.text.assign(std::string(1000, 'x'));
      t.records = rows;
      return true;
    };
    h.plan = [this](const std::vector<uint8_t>& convert) {
      std::lock_guard<std::mutex> lk(mu);
      plans.push_back(convert);
      return std::shared_ptr<const TextReader::ParsePlan>();
    };
    h.parse = [this](const TextChunk&, std::size_t at, Chunk& c, int, const TextReader::ParsePlan*) {
      c.rows = rows;
      c.first_row = static_cast<int64_t>(at);  // the chunk's index, for the records
    };
    h.parsed = [this](const Chunk& c, const TextChunk&, int, const std::vector<uint8_t>& take, bool first) {
      std::lock_guard<std::mutex> lk(mu);
      EXPECT_EQ(take.size(), raw_columns);
      for (std::size_t k = 0; k < take.size(); ++k) counted[{static_cast<int>(c.first_row), k}] += take[k];
      firsts[static_cast<int>(c.first_row)] += first;
    };
    h.fit = [this](const Chunk& c, const ColumnSplitFit::Part& p, int tid, bool sole) {
      std::lock_guard<std::mutex> lk(mu);
      const int chunk = static_cast<int>(c.first_row);
      if (chunk == throw_in_fit_at) throw std::runtime_error("fit failed");
      fits[{chunk, static_cast<std::size_t>(p.part)}].push_back({tid, sole});
      state[{static_cast<std::size_t>(p.part), tid}] += ratio[static_cast<std::size_t>(p.part)] * static_cast<double>(c.rows);
    };
    h.size = [this](const ColumnSplitFit::Part& p, int tid) -> int64_t {
      std::lock_guard<std::mutex> lk(mu);
      return sizes_known ? static_cast<int64_t>(state[{static_cast<std::size_t>(p.part), tid}]) : -1;
    };
    return h;
  }

  // Runs the pass; returns the owners.
  std::vector<int> run(std::vector<int> always = {}) {
    ColumnSplitFit fit(parts(), raw_columns, std::move(always), int64_t{1000} * chunks, hooks());
    Chunk c0, c1;
    fit.run(c0, c1);
    return fit.owners();
  }

  // Every part of every chunk fitted exactly once; every column's statistics and every chunk's rows
  // taken exactly once; an owned part on its owner only (sole) after the calibration chunks.
  void expect_each_once(const std::vector<int>& owners) {
    for (int k = 0; k < chunks; ++k) {
      EXPECT_EQ(firsts[k], 1) << "chunk " << k;
      for (std::size_t col = 0; col < raw_columns; ++col) EXPECT_EQ((counted[{k, col}]), 1) << "chunk " << k << " column " << col;
      for (std::size_t p = 0; p < ratio.size(); ++p) {
        const auto& f = fits[{k, p}];
        ASSERT_EQ(f.size(), 1u) << "chunk " << k << " part " << p;
        if (f[0].sole) {
          EXPECT_EQ(f[0].tid, owners[p]) << "chunk " << k << " part " << p;
        }
        if (owners[p] < 0) {
          EXPECT_FALSE(f[0].sole) << "chunk " << k << " part " << p;
        }
        // Chunks fetched once the calibration chunks were done (a thread runs at most kMaxAhead ahead).
        if (k >= static_cast<int>(ColumnSplitFit::kCalibrationChunks + ColumnSplitFit::kMaxAhead) && owners[p] >= 0) {
          EXPECT_TRUE(f[0].sole && f[0].tid == owners[p]) << "chunk " << k << " part " << p;
        }
      }
    }
  }
};

TEST(ColumnSplitFit, GrowingPartsGetOwnersSmallOnesStayShared) {
  // 400,000 rows: parts growing 0.9, 0.8 and 0.5 keys a row extrapolate past kSharedKeys and get owners,
  // the biggest first, each to the thread with less so far; the others stay shared.
  Harness h;
  h.ratio = {0.9, 0.001, 0.8, 0.01, 0.5, 0.0};
  const std::vector<int> owners = h.run();
  EXPECT_EQ(owners, (std::vector<int>{0, -1, 1, -1, 1, -1}));
  h.expect_each_once(owners);
  // Columns no part reads (0, 7) and shared parts' columns are converted by the first thread only; each
  // owner converts its parts' columns in every chunk.
  bool owner0 = false, owner1 = false;
  for (const auto& m : h.plans) {
    owner0 = owner0 || (m[1] && !m[3] && !m[5]);
    owner1 = owner1 || (!m[1] && m[3] && m[5]);
  }
  EXPECT_TRUE(owner0 && owner1);
}

TEST(ColumnSplitFit, FewerChunksThanTheCalibrationAreFittedWholeByTheFirstThread) {
  for (int chunks : {0, 1, 3}) {
    Harness h;
    h.chunks = chunks;
    h.ratio = {0.9, 0.8, 0.1};
    const std::vector<int> owners = h.run();
    EXPECT_EQ(owners, (std::vector<int>{-1, -1, -1})) << chunks;
    h.expect_each_once(owners);
    EXPECT_TRUE(h.plans.empty()) << "the whole-chunk fit converts what the reader does";
  }
}

TEST(ColumnSplitFit, PartsOfUnknownSizeStayShared) {
  Harness h;
  h.ratio = {0.9, 0.8};
  h.sizes_known = false;
  const std::vector<int> owners = h.run();
  EXPECT_EQ(owners, (std::vector<int>{-1, -1}));
  h.expect_each_once(owners);
}

TEST(ColumnSplitFit, AlwaysColumnsAreConvertedByEveryParse) {
  Harness h;
  h.ratio = {0.9, 0.8, 0.0};
  const std::vector<int> owners = h.run({7});
  EXPECT_EQ(owners, (std::vector<int>{0, 1, -1}));
  h.expect_each_once(owners);  // column 7: statistics still taken once per chunk
  ASSERT_FALSE(h.plans.empty());
  for (const auto& m : h.plans) EXPECT_EQ(m[7], 1);
}

TEST(ColumnSplitFit, AnErrorInAHookEndsTheRunWithoutHanging) {
  for (int at : {0, 2, 5, 17, 39}) {
    Harness fit_fails;
    fit_fails.ratio = {0.9, 0.8, 0.0};
    fit_fails.throw_in_fit_at = at;
    EXPECT_THROW(fit_fails.run(), std::runtime_error) << "fit, chunk " << at;
    Harness next_fails;
    next_fails.ratio = {0.9, 0.8, 0.0};
    next_fails.throw_in_next_at = at;
    EXPECT_THROW(next_fails.run(), std::runtime_error) << "next, chunk " << at;
  }
}

}  // namespace
}  // namespace bluewhale
