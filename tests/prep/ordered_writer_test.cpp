// The write pass's hand-over: chunks put by several workers in any order reach the dataset in index
// order, appended by the workers themselves; a writer error reaches every worker without a hang.
#include "prep/ordered_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

constexpr int64_t kCard = 1000;

std::vector<DatasetColumn> schema() {
  DatasetColumn y, c;
  y.name = "y";
  y.role = Role::kLabel;
  c.name = "c";
  c.role = Role::kCategorical;
  c.cardinality = kCard;
  return {y, c};
}

// Chunk `index` of `rows` rows: label = global row, id = global row % kCard, or an id out of range
// (the writer's InputError) when `bad`.
Chunk make_chunk(int64_t index, int64_t rows, bool bad = false) {
  Chunk ch;
  ch.rows = rows;
  ch.first_row = index * rows;
  ch.columns.reserve(2);
  Column& y = ch.add_column("y", Role::kLabel, ColumnKind::kFloat);
  for (int64_t r = 0; r < rows; ++r) y.f[r] = static_cast<float>(ch.first_row + r);
  Column& c = ch.add_column("c", Role::kCategorical, ColumnKind::kInt);
  for (int64_t r = 0; r < rows; ++r) c.i[r] = (ch.first_row + r) % kCard;
  if (bad) c.i[rows / 2] = kCard + 5;
  return ch;
}

// Workers take chunk indices from a shared counter (as the prep workers do), sleep a random little
// while so that they finish out of order, and put; returns the first exception each worker saw. Chunk
// bad_index holds an id the writer refuses; the worker that takes chunk fail_index throws before its put
// (a parse error) and aborts the run, as prep's workers do.
std::vector<std::exception_ptr> run_workers(OrderedWriter& ow, int workers, int64_t chunks, int64_t rows,
                                            int64_t bad_index, uint64_t seed, int64_t fail_index = -1) {
  std::atomic<int64_t> next{0};
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(workers));
  std::vector<std::thread> ts;
  for (int w = 0; w < workers; ++w)
    ts.emplace_back([&, w] {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(w));
      try {
        for (int64_t i = next++; i < chunks; i = next++) {
          Chunk c = ow.take_free(w);
          c = make_chunk(i, rows, i == bad_index);
          std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
          if (i == fail_index) throw InputError("chunk " + std::to_string(i) + " does not parse");
          if (!ow.put(static_cast<std::size_t>(i), std::move(c), w)) return;
        }
        ow.done(w);
      } catch (...) {
        errors[static_cast<std::size_t>(w)] = std::current_exception();
        ow.abort();
      }
    });
  for (auto& t : ts) t.join();
  return errors;
}

TEST(OrderedWriter, ChunksPutOutOfOrderByManyWorkersAreWrittenInIndexOrder) {
  for (int workers : {1, 2, 5}) {
    TempDir tmp;
    const int64_t chunks = 60, rows = 37;
    {
      DatasetWriter w(tmp / "ds", schema(), {.shard_rows = 500});
      OrderedWriter ow(&w, 3, workers);
      auto errors = run_workers(ow, workers, chunks, rows, -1, 7);
      for (const auto& e : errors) EXPECT_FALSE(e) << workers << " workers";
      ow.finish(static_cast<std::size_t>(chunks));
      w.commit();
    }
    Dataset ds = Dataset::open(tmp / "ds");
    ASSERT_EQ(ds.split_rows(Split::kTrain), chunks * rows);
    int64_t g = 0;
    for (int s = 0; s < ds.num_shards(Split::kTrain); ++s) {
      ShardView v = ds.open_shard(Split::kTrain, s);
      for (int64_t r = 0; r < v.rows(); ++r, ++g) {
        ASSERT_EQ(v.f32(0)[r], static_cast<float>(g)) << workers << " workers, row " << g;
        ASSERT_EQ(v.ids(1)[r], g % kCard) << workers << " workers, row " << g;
      }
    }
    EXPECT_EQ(g, chunks * rows);
  }
}

TEST(OrderedWriter, WriterErrorReachesTheWorkersWithoutHanging) {
  for (int workers : {1, 2, 4}) {
    TempDir tmp;
    DatasetWriter w(tmp / "ds", schema(), {.shard_rows = 500});
    OrderedWriter ow(&w, 2, workers);
    auto errors = run_workers(ow, workers, 40, 25, 11, 3);
    // The worker that appended chunk 11 got the writer's message; the others either stopped on the
    // same error or returned when the run was aborted.
    int with_message = 0;
    for (const auto& e : errors) {
      if (!e) continue;
      try {
        std::rethrow_exception(e);
      } catch (const InputError& ex) {
        EXPECT_NE(std::string(ex.what()).find("'c'"), std::string::npos) << ex.what();
        ++with_message;
      }
    }
    EXPECT_GE(with_message, 1) << workers << " workers";
    EXPECT_THROW(ow.finish(40), InputError);
  }
}

TEST(OrderedWriter, AWorkerThatFailsBeforeItsPutStopsTheOthers) {
  // The chunk after the failed one is at most max_ahead chunks away for the others: without the abort
  // they would wait for it forever.
  for (int workers : {2, 3}) {
    TempDir tmp;
    DatasetWriter w(tmp / "ds", schema());
    OrderedWriter ow(&w, 2, workers);
    auto errors = run_workers(ow, workers, 200, 10, -1, 9, 7);
    int failed = 0;
    for (const auto& e : errors) failed += e ? 1 : 0;
    EXPECT_EQ(failed, 1) << workers << " workers";
    EXPECT_FALSE(ow.put(300, make_chunk(300, 10), 0)) << "a put after the abort is refused";
  }
}

TEST(OrderedWriter, ReusedChunksGoBackToTheWorkerThatParsedThem) {
  TempDir tmp;
  DatasetWriter w(tmp / "ds", schema());
  OrderedWriter ow(&w, 4, 2);
  // Worker 0 puts chunk 1 (it waits), worker 1 puts chunk 0 and appends it; worker 0 appends chunk 1 when
  // it is done.
  Chunk a = make_chunk(1, 10), b = make_chunk(0, 10);
  EXPECT_TRUE(ow.put(1, std::move(a), 0));
  EXPECT_TRUE(ow.put(0, std::move(b), 1));
  ow.done(0);
  ow.done(1);
  Chunk for1 = ow.take_free(1);   // asked first: not simply the last one freed (chunk 1)
  Chunk for0 = ow.take_free(0);
  EXPECT_EQ(for1.first_row, 0);   // chunk 0's buffers, parsed by worker 1
  EXPECT_EQ(for0.first_row, 10);
  EXPECT_EQ(ow.take_free(0).rows, 0);  // none left: an empty chunk
  ow.finish(2);
}

TEST(OrderedWriter, EachWorkerAppendsItsOwnChunksWhileTheOtherParses) {
  // A chunk that is next in order waits for the worker that parsed it (its next put or done), unless that
  // worker is waiting itself; then another one appends it.
  TempDir tmp;
  DatasetWriter w(tmp / "ds", schema());
  OrderedWriter ow(&w, 8, 2);
  EXPECT_TRUE(ow.put(1, make_chunk(1, 10), 0));  // not next: waits
  EXPECT_TRUE(ow.put(0, make_chunk(0, 10), 1));  // next: worker 1 appends it, not worker 0's chunk 1
  EXPECT_EQ(ow.written(), 1u);
  EXPECT_TRUE(ow.put(2, make_chunk(2, 10), 1));  // worker 0 is parsing: chunk 1 still waits for it
  EXPECT_EQ(ow.written(), 1u);
  EXPECT_TRUE(ow.put(3, make_chunk(3, 10), 0));  // worker 0 appends its chunk 1, then stops at worker 1's 2
  EXPECT_EQ(ow.written(), 2u);
  ow.done(1);  // worker 1 appends its chunk 2; chunk 3 waits for worker 0 (between puts: parsing)
  EXPECT_EQ(ow.written(), 3u);
  ow.done(0);
  EXPECT_EQ(ow.written(), 4u);
  ow.finish(4);

  // A worker waiting for room (too far ahead) lets the other append its chunks.
  TempDir tmp2;
  DatasetWriter w2(tmp2 / "ds", schema());
  OrderedWriter ow2(&w2, 2, 2);
  EXPECT_TRUE(ow2.put(1, make_chunk(1, 10), 0));
  std::thread ahead([&] { EXPECT_TRUE(ow2.put(2, make_chunk(2, 10), 0)); });  // 2 >= 0 + max_ahead: waits
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(ow2.put(0, make_chunk(0, 10), 1));  // appends 0, then worker 0's chunk 1 (worker 0 waits)
  ahead.join();
  ow2.done(0);
  ow2.done(1);
  EXPECT_EQ(ow2.written(), 3u);
  ow2.finish(3);
}

TEST(OrderedWriter, ChunksAddedFromAnEarlierPassAreHandedOutFirst) {
  TempDir tmp;
  DatasetWriter w(tmp / "ds", schema());
  OrderedWriter ow(&w, 2, 1);
  // A fit pass's chunks (their buffers already touched) serve the write pass instead of new ones.
  ow.add_free(make_chunk(10, 7), 0);  // first_row 70
  ow.add_free(make_chunk(20, 9), 1);  // first_row 180
  EXPECT_EQ(ow.take_free(1).first_row, 180);
  EXPECT_EQ(ow.take_free(0).first_row, 70);
  EXPECT_EQ(ow.take_free(0).rows, 0);
  // No more than the most chunks ever in flight (2 * max_ahead) are kept.
  for (int k = 0; k < 6; ++k) ow.add_free(make_chunk(k, 3), 0);
  int handed = 0;
  while (ow.take_free(0).rows > 0) ++handed;
  EXPECT_EQ(handed, 4);
  ow.finish(0);
}

}  // namespace
}  // namespace bluewhale
