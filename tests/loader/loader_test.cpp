#include "bluewhale/loader/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "bluewhale/core/error.h"
#include "bluewhale/core/hash.h"
#include "test_util.h"

namespace bluewhale {
namespace {

using testing::TempDir;

// Row g: label g % 2, dense (g, -g), categorical g % 7, multi list of g % 4 ids (g + j) % 11, id column g.
constexpr int64_t kCat = 7, kMulti = 11;

Chunk make_chunk(int64_t first, int64_t rows) {
  Chunk ch;
  ch.rows = rows;
  ch.first_row = first;
  ch.columns.reserve(6);  // references below must survive later additions
  auto add = [&](const char* name, Role role, ColumnKind kind) -> Column& { return ch.add_column(name, role, kind); };
  Column& label = add("label", Role::kLabel, ColumnKind::kFloat);
  Column& d0 = add("d0", Role::kDense, ColumnKind::kFloat);
  Column& d1 = add("d1", Role::kDense, ColumnKind::kFloat);
  Column& c0 = add("c0", Role::kCategorical, ColumnKind::kInt);
  Column& m0 = add("m0", Role::kMulti, ColumnKind::kList);
  Column& uid = add("uid", Role::kId, ColumnKind::kInt);
  for (int64_t r = 0; r < rows; ++r) {
    int64_t g = first + r;
    label.f[r] = static_cast<float>(g % 2);
    d0.f[r] = static_cast<float>(g);
    d1.f[r] = -static_cast<float>(g);
    c0.i[r] = g % kCat;
    for (int64_t j = 0; j < g % 4; ++j) m0.i.push_back((g + j) % kMulti);
    m0.offsets[r + 1] = static_cast<int64_t>(m0.i.size());
    uid.i[r] = g;
  }
  return ch;
}

DatasetColumn col(std::string name, Role role, int64_t cardinality = 0) {
  DatasetColumn c;
  c.name = std::move(name);
  c.role = role;
  c.cardinality = cardinality;
  return c;
}

std::vector<DatasetColumn> schema() {
  return {col("label", Role::kLabel), col("d0", Role::kDense),       col("d1", Role::kDense),
          col("c0", Role::kCategorical, kCat), col("m0", Role::kMulti, kMulti), col("uid", Role::kId)};
}

// Shards of 37 rows so batches and shuffle blocks straddle shard boundaries.
Dataset make_dataset(const fs::path& dir, int64_t rows, int64_t shard_rows = 37) {
  DatasetWriter w(dir, schema(), {.shard_rows = shard_rows});
  for (int64_t first = 0; first < rows; first += 100) w.append(make_chunk(first, std::min<int64_t>(100, rows - first)));
  w.commit();
  return Dataset::open(dir);
}

// Row ids of one epoch, in delivery order, checking that every field of every row is consistent.
std::vector<int64_t> epoch_rows(Loader& loader, int64_t epoch, std::vector<int64_t>* sizes = nullptr) {
  loader.start_epoch(epoch);
  std::vector<int64_t> rows;
  Batch b;
  while (loader.next(b)) {
    EXPECT_EQ(b.epoch, epoch);
    if (sizes) sizes->push_back(b.size);
    EXPECT_EQ(static_cast<int64_t>(b.labels.size()), b.size);
    EXPECT_EQ(static_cast<int64_t>(b.dense.size()), b.size * 2);
    EXPECT_EQ(b.ids.size(), 2u);
    EXPECT_EQ(b.offsets.size(), 2u);
    for (int64_t k = 0; k < b.size; ++k) {
      int64_t g = static_cast<int64_t>(b.dense[k * 2]);
      rows.push_back(g);
      EXPECT_EQ(b.dense[k * 2 + 1], -static_cast<float>(g));
      EXPECT_EQ(b.labels[k], static_cast<float>(g % 2));
      EXPECT_EQ(b.ids[0][k], g % kCat);
      EXPECT_EQ(b.offsets[0][k], k);
      int32_t begin = b.offsets[1][k], end = b.offsets[1][k + 1];
      EXPECT_EQ(end - begin, g % 4) << "row " << g;
      for (int32_t j = begin; j < end && j - begin < g % 4; ++j) EXPECT_EQ(b.ids[1][j], (g + j - begin) % kMulti);
    }
    EXPECT_EQ(b.offsets[0][b.size], b.size);
    EXPECT_EQ(b.offsets[1][b.size], static_cast<int32_t>(b.ids[1].size()));
  }
  return rows;
}

std::vector<int64_t> iota_rows(int64_t lo, int64_t hi) {
  std::vector<int64_t> v;
  for (int64_t g = lo; g < hi; ++g) v.push_back(g);
  return v;
}

std::vector<int64_t> sorted(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST(Loader, WithoutShuffleRowsComeInDatasetOrder) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 500);
  Loader loader(ds, {.batch_size = 64, .shuffle = false});
  std::vector<int64_t> sizes;
  EXPECT_EQ(epoch_rows(loader, 0, &sizes), iota_rows(0, 500));
  EXPECT_EQ(sizes.size(), 8u);
  EXPECT_EQ(sizes.back(), 500 - 7 * 64);  // last partial batch is returned
  EXPECT_EQ(loader.batches_per_epoch(), 8);
  Batch b;
  EXPECT_FALSE(loader.next(b));  // stays at the end until the next epoch
  EXPECT_EQ(epoch_rows(loader, 1), iota_rows(0, 500));
}

TEST(Loader, ShuffleSeesEveryRowExactlyOncePerEpoch) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 1000);
  Loader loader(ds, {.batch_size = 50, .shuffle_block_rows = 30, .shuffle_buffer_rows = 100});
  std::vector<int64_t> e0 = epoch_rows(loader, 0), e1 = epoch_rows(loader, 1);
  EXPECT_EQ(sorted(e0), iota_rows(0, 1000));
  EXPECT_EQ(sorted(e1), iota_rows(0, 1000));
  EXPECT_NE(e0, iota_rows(0, 1000));
  EXPECT_NE(e0, e1);  // the order depends on the epoch
}

TEST(Loader, ShuffleBufferLargerThanDataAndBlockOnlyShuffle) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 300);
  Loader big(ds, {.batch_size = 64, .shuffle_buffer_rows = 100000});
  EXPECT_EQ(sorted(epoch_rows(big, 0)), iota_rows(0, 300));
  Loader blocks(ds, {.batch_size = 64, .shuffle_block_rows = 10, .shuffle_buffer_rows = 0});
  std::vector<int64_t> rows = epoch_rows(blocks, 0);
  EXPECT_EQ(sorted(rows), iota_rows(0, 300));
  for (size_t k = 0; k < rows.size(); k += 10)  // whole blocks, each in order
    EXPECT_EQ(rows[k + 9], rows[k] + 9);
}

TEST(Loader, SameSeedSameBatchesDifferentSeedDifferentOrder) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 800);
  LoaderOptions o{.batch_size = 40, .seed = 42, .shuffle_block_rows = 64, .shuffle_buffer_rows = 128};
  Loader a(ds, o), b(ds, o);
  o.seed = 43;
  Loader c(ds, o);
  std::vector<int64_t> ra = epoch_rows(a, 3), rb = epoch_rows(b, 3), rc = epoch_rows(c, 3);
  EXPECT_EQ(ra, rb);
  EXPECT_NE(ra, rc);
  EXPECT_EQ(sorted(ra), sorted(rc));
}

TEST(Loader, ThreeWorkersAreDisjointAndComplete) {
  TempDir tmp;
  const int64_t n = 1001;
  Dataset ds = make_dataset(tmp / "ds", n);
  for (bool shuffle : {false, true}) {
    std::vector<int64_t> all;
    for (int k = 0; k < 3; ++k) {
      Loader loader(ds, {.batch_size = 32, .shuffle = shuffle, .shuffle_block_rows = 50, .shuffle_buffer_rows = 70,
                         .worker = k, .num_workers = 3});
      std::vector<int64_t> rows = epoch_rows(loader, 0);
      EXPECT_EQ(sorted(rows), iota_rows(k * n / 3, (k + 1) * n / 3)) << "worker " << k;
      EXPECT_EQ(loader.rows_per_epoch(), static_cast<int64_t>(rows.size()));
      all.insert(all.end(), rows.begin(), rows.end());
    }
    EXPECT_EQ(sorted(all), iota_rows(0, n));
  }
}

TEST(Loader, DropLastDropsOnlyTheShortBatch) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 250);
  for (bool shuffle : {false, true}) {
    Loader loader(ds, {.batch_size = 64, .shuffle = shuffle, .drop_last = true});
    std::vector<int64_t> sizes;
    std::vector<int64_t> rows = epoch_rows(loader, 0, &sizes);
    EXPECT_EQ(sizes, std::vector<int64_t>({64, 64, 64}));
    EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), 192u);
    EXPECT_EQ(loader.rows_per_epoch(), 192);
    EXPECT_EQ(loader.batches_per_epoch(), 3);
  }
}

TEST(Loader, MultiValuedTableShapes) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 20);
  Loader loader(ds, {.batch_size = 8, .shuffle = false, .aux = true});
  Batch b;
  ASSERT_TRUE(loader.next(b));
  ASSERT_EQ(b.size, 8);
  // Rows 0..7 have lists of length g % 4: 0 1 2 3 0 1 2 3.
  EXPECT_EQ(b.offsets[1], std::vector<int32_t>({0, 0, 1, 3, 6, 6, 7, 9, 12}));
  EXPECT_EQ(b.ids[1], std::vector<int32_t>({1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9}));
  EXPECT_EQ(b.offsets[0], std::vector<int32_t>({0, 1, 2, 3, 4, 5, 6, 7, 8}));
  ASSERT_EQ(b.aux.size(), 1u);
  EXPECT_EQ(b.aux[0], std::vector<int64_t>({0, 1, 2, 3, 4, 5, 6, 7}));
}

// Rows of each batch of one epoch, as a sorted list of sorted batches (batch contents, not batch order).
std::vector<std::vector<int64_t>> batch_sets(Loader& loader, int64_t epoch, std::vector<int64_t>* order = nullptr) {
  loader.start_epoch(epoch);
  std::vector<std::vector<int64_t>> out;
  Batch b;
  while (loader.next(b)) {
    std::vector<int64_t> rows;
    for (int64_t k = 0; k < b.size; ++k) rows.push_back(static_cast<int64_t>(b.dense[k * 2]));
    if (order) order->insert(order->end(), rows.begin(), rows.end());
    out.push_back(sorted(rows));
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Loader, CacheServesTheSameRowsEveryEpoch) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 700);
  LoaderOptions o{.batch_size = 64, .seed = 5, .shuffle_block_rows = 50, .shuffle_buffer_rows = 100};
  Loader plain(ds, o);
  o.cache = true;
  Loader cached(ds, o);
  for (int64_t e = 0; e < 3; ++e) {
    std::vector<int64_t> c = epoch_rows(cached, e), p = epoch_rows(plain, e);
    EXPECT_EQ(sorted(c), sorted(p)) << "epoch " << e;
    EXPECT_EQ(sorted(c), iota_rows(0, 700));
  }
  // Served from memory, later epochs hold the batches of the epoch that filled the cache, in an order
  // that depends on the epoch.
  Loader fresh(ds, o);
  std::vector<int64_t> order0, order1;
  auto filled = batch_sets(fresh, 0, &order0);
  EXPECT_EQ(batch_sets(fresh, 1, &order1), filled);
  EXPECT_EQ(batch_sets(fresh, 2), filled);
  EXPECT_NE(order1, order0);
}

TEST(Loader, InterruptedFirstEpochDoesNotLeaveAPartialCache) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 300);
  Loader loader(ds, {.batch_size = 32, .cache = true});
  Batch b;
  ASSERT_TRUE(loader.next(b));
  EXPECT_EQ(sorted(epoch_rows(loader, 1)), iota_rows(0, 300));
  EXPECT_EQ(sorted(epoch_rows(loader, 2)), iota_rows(0, 300));
}

TEST(Loader, ParallelAssemblyMatchesSerial) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 5000);
  Loader one(ds, {.batch_size = 1024, .seed = 9, .threads = 1});
  Loader four(ds, {.batch_size = 1024, .seed = 9, .threads = 4});
  Batch a, b;
  while (one.next(a)) {
    ASSERT_TRUE(four.next(b));
    EXPECT_EQ(a.labels, b.labels);
    EXPECT_EQ(a.dense, b.dense);
    EXPECT_EQ(a.ids, b.ids);
    EXPECT_EQ(a.offsets, b.offsets);
  }
  EXPECT_FALSE(four.next(b));
}

TEST(Loader, CorruptShardFoundByPrefetchThreadIsRethrownByNext) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 370, 37);  // 10 shards
  // Corrupt shard 5 after the dataset was opened: the loader maps it only when it reaches row 185.
  fs::path shard = tmp / "ds" / "train" / "shard-00005.bwd";
  std::string bytes = read_file(shard);
  bytes[bytes.size() - 3] ^= 0x10;
  {
    std::ofstream f(shard, std::ios::binary | std::ios::trunc);
    f << bytes;
  }
  Loader loader(ds, {.batch_size = 10, .shuffle = false});
  Batch b;
  int64_t delivered = 0;
  try {
    while (loader.next(b)) delivered += b.size;
    FAIL() << "corruption not reported";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("shard-00005.bwd"), std::string::npos) << e.what();
  }
  EXPECT_EQ(delivered, 180);  // every batch assembled before the bad shard arrived
  EXPECT_THROW(loader.next(b), FormatError);
  // A new epoch retries and fails the same way; the loader stays usable and destructs cleanly.
  loader.start_epoch(1);
  EXPECT_THROW(while (loader.next(b)) {}, FormatError);
}

TEST(Loader, EmptySplitEndsAtOnce) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 50);
  Loader loader(ds, {.split = Split::kTest});
  Batch b;
  EXPECT_FALSE(loader.next(b));
  EXPECT_EQ(loader.rows_per_epoch(), 0);
  EXPECT_EQ(measure_loader_throughput(ds, {.split = Split::kTest}, 10), 0);
}

TEST(Loader, BadOptionsAreConfigErrors) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 10);
  EXPECT_THROW(Loader(ds, {.batch_size = 0}), ConfigError);
  EXPECT_THROW(Loader(ds, {.worker = 3, .num_workers = 3}), ConfigError);
  EXPECT_THROW(Loader(ds, {.prefetch_batches = 0}), ConfigError);
  EXPECT_THROW(Loader(ds, {.shuffle_block_rows = 0}), ConfigError);
}

TEST(Loader, StatsCountDeliveredRows) {
  TempDir tmp;
  Dataset ds = make_dataset(tmp / "ds", 333);
  Loader loader(ds, {.batch_size = 100});
  epoch_rows(loader, 0);
  LoaderStats s = loader.stats();
  EXPECT_EQ(s.rows, 333);
  EXPECT_EQ(s.batches, 4);
  EXPECT_GE(s.produce_seconds, 0);
  EXPECT_GE(s.elapsed_seconds, s.wait_seconds);
}

// Not an assertion: prints the loader's sustained rate on a Criteo-shaped dataset (13 dense, 26 categorical).
TEST(LoaderThroughput, CriteoShaped2MRows) {
  TempDir tmp;
  const int64_t n = int64_t{2} << 20, chunk_rows = 1 << 16;
  std::vector<DatasetColumn> cols = {col("label", Role::kLabel)};
  for (int d = 0; d < 13; ++d) cols.push_back(col("I" + std::to_string(d + 1), Role::kDense));
  std::vector<int64_t> card(26);
  for (int c = 0; c < 26; ++c) {
    card[c] = int64_t{10} << (c % 18);  // 10 .. 1.3M ids, Criteo-like spread
    cols.push_back(col("C" + std::to_string(c + 1), Role::kCategorical, card[c]));
  }
  auto t0 = std::chrono::steady_clock::now();
  {
    DatasetWriter w(tmp / "criteo", cols, {.shard_rows = 1 << 19});
    Chunk ch;
    ch.columns.resize(cols.size());
    for (size_t c = 0; c < cols.size(); ++c) {
      ch.columns[c].name = cols[c].name;
      ch.columns[c].role = cols[c].role;
      ch.columns[c].kind = c <= 13 ? ColumnKind::kFloat : ColumnKind::kInt;
      ch.columns[c].resize(chunk_rows);
      ch.columns[c].valid.clear();
    }
    for (int64_t first = 0; first < n; first += chunk_rows) {
      ch.rows = chunk_rows;
      ch.first_row = first;
      for (int64_t r = 0; r < chunk_rows; ++r) {
        uint64_t h = mix64(static_cast<uint64_t>(first + r));
        ch.columns[0].f[r] = static_cast<float>(h & 1);
        for (int d = 0; d < 13; ++d) ch.columns[1 + d].f[r] = static_cast<float>((h >> (d * 4)) & 255);
        for (int c = 0; c < 26; ++c) ch.columns[14 + c].i[r] = static_cast<int64_t>(mix64(h + c) % card[c]);
      }
      w.append(ch);
    }
    w.commit();
  }
  double write_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  Dataset ds = Dataset::open(tmp / "criteo");
  ASSERT_EQ(ds.split_rows(Split::kTrain), n);
  const int64_t batches = n / 2048;
  double shuffled = measure_loader_throughput(ds, {.batch_size = 2048}, batches);
  double ordered = measure_loader_throughput(ds, {.batch_size = 2048, .shuffle = false}, batches);
  double cached = measure_loader_throughput(ds, {.batch_size = 2048, .cache = true}, 3 * batches);
  double two_threads = measure_loader_throughput(ds, {.batch_size = 2048, .threads = 2}, batches);
  std::printf("[ throughput ] writer: %.2f M rows/s (%lld rows incl. fsync)\n", n / write_s / 1e6,
              static_cast<long long>(n));
  std::printf("[ throughput ] loader, batch 2048, 13 dense + 26 categorical: shuffled %.2f M rows/s, "
              "in order %.2f M rows/s, cached (3 epochs) %.2f M rows/s, shuffled 2 threads %.2f M rows/s\n",
              shuffled / 1e6, ordered / 1e6, cached / 1e6, two_threads / 1e6);
  // The producer's own rate (busy time only) is less sensitive to other processes on a shared machine.
  Loader loader(ds, {.batch_size = 2048});
  Batch b;
  while (loader.next(b)) {
  }
  LoaderStats st = loader.stats();
  std::printf("[ throughput ] one shuffled epoch: %.2f M rows/s sustained, producer busy %.3f s (%.2f M rows/s), "
              "consumer waited %.3f s\n",
              st.rows_per_second / 1e6, st.produce_seconds, st.rows / st.produce_seconds / 1e6, st.wait_seconds);
  EXPECT_EQ(st.rows, n);
  EXPECT_GT(shuffled, 0);
}

}  // namespace
}  // namespace bluewhale
