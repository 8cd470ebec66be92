// The training-side reader of a dataset: shuffled, sharded, prefetched mini-batches.
//
//   Dataset ds = Dataset::open("out/criteo");
//   Loader loader(ds, {.batch_size = 4096, .seed = 7});
//   for (int64_t e = 0; e < epochs; ++e) {
//     loader.start_epoch(e);
//     Batch b;
//     while (loader.next(b)) train_step(b);
//   }
//
// Order of rows. The split's rows are numbered in dataset order (shard 0 first). Worker k of N owns rows
// [k*R/N, (k+1)*R/N) and sees each of them exactly once per epoch. Without shuffle they come in that
// order. With shuffle the worker's range is cut into blocks of shuffle_block_rows consecutive rows, the
// block order is permuted, and rows stream through a shuffle buffer of shuffle_buffer_rows (each incoming
// row replaces a uniformly chosen buffered one, which is emitted); blocks keep reads sequential while the
// buffer mixes rows across blocks. Everything random derives from (seed, epoch, worker): the same options
// give the same batches on every run and every machine.
//
// Threads. A prefetch thread owned by the Loader assembles up to prefetch_batches batches ahead (with
// `threads` threads through parallel_for); shards are mapped and verified by that thread the first time
// they are needed, so a corrupted shard surfaces as the FormatError rethrown by next(). A Loader is used
// from one consumer thread.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "bluewhale/data/dataset.h"

namespace bluewhale {

struct LoaderOptions {
  Split split = Split::kTrain;
  int64_t batch_size = 2048;            // rows per batch, >= 1
  bool shuffle = true;
  uint64_t seed = 0;
  int64_t shuffle_block_rows = 65536;   // rows read consecutively before jumping elsewhere, >= 1
  // Rows mixed in the shuffle buffer (0: block shuffle only). It holds decoded rows: about
  // shuffle_buffer_rows * (8 + 4 * (1 + dense + categorical columns)) bytes.
  int64_t shuffle_buffer_rows = 262144;
  int worker = 0, num_workers = 1;      // this process's part of the split: 0 <= worker < num_workers
  // Keep the first full epoch's batches in memory (about (4 + 4*dense + 8*tables + 4*ids) bytes a row) and
  // serve later epochs from there, in a batch order permuted by (seed, epoch) when shuffling. Batches
  // keep the composition (and, with drop_last, the dropped rows) of the epoch that filled the cache.
  bool cache = false;
  int prefetch_batches = 4;             // batches assembled ahead, >= 1
  bool drop_last = false;               // drop the last batch of an epoch when it has < batch_size rows
  int threads = 1;                      // threads assembling one batch (<= 0: all available)
  bool verify = true;                   // verify shard checksums and id ranges when first mapped
  bool aux = false;                     // also fill Batch::aux (timestamp and id columns)
};

// One mini-batch; B = size. Owned by the caller; next() reuses its buffers' capacity.
struct Batch {
  int64_t size = 0;
  int64_t epoch = 0;
  std::vector<float> labels;  // (B) from the dataset's first label column; empty when it has none
  std::vector<float> dense;   // (B, num_dense) row-major, dense columns in dataset order; NaN = missing
  // Per sparse table (Dataset::sparse_columns(): categorical columns, then multi/sequence columns):
  std::vector<std::vector<int32_t>> ids;      // concatenated ids of the batch's rows, in [0, cardinality)
  std::vector<std::vector<int32_t>> offsets;  // (B + 1): row b's ids are ids[offsets[b] .. offsets[b+1]);
                                              // one-hot (categorical) tables: 0, 1, ..., B
  // With LoaderOptions::aux: per aux column (Dataset::aux_columns()), (B) int64, INT64_MIN = missing.
  std::vector<std::vector<int64_t>> aux;
};

struct LoaderStats {
  int64_t rows = 0;              // rows delivered by next() since construction
  int64_t batches = 0;           // batches delivered
  double produce_seconds = 0;    // prefetch thread busy assembling batches (not waiting for queue space)
  double wait_seconds = 0;       // consumer blocked inside next() waiting for a batch
  double elapsed_seconds = 0;    // from the first next() call to the latest return of next()
  double rows_per_second = 0;    // rows / elapsed_seconds: the rate the consumer actually sustained
};

class Loader {
 public:
  // Checks the options (ConfigError naming the option) and starts prefetching epoch 0. The dataset's
  // metadata is copied; its shard files must stay in place while the Loader lives.
  Loader(const Dataset& dataset, LoaderOptions options);
  ~Loader();  // stops and joins the prefetch thread
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Fills `batch` with the next batch of the current epoch; false once the epoch is exhausted (and on
  // every later call until start_epoch()). Rethrows an exception raised while assembling (FormatError for
  // a corrupted shard, IoError), after the batches assembled before it were delivered.
  bool next(Batch& batch);

  // Abandons the rest of the current epoch and starts `epoch` (the shuffle order depends on it). Starting
  // the epoch that is already running and untouched costs nothing.
  void start_epoch(int64_t epoch);
  int64_t epoch() const;

  int64_t rows_per_epoch() const;     // rows this worker delivers per epoch (after drop_last)
  int64_t batches_per_epoch() const;
  LoaderStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Rows per second a consumer that does nothing else gets from a Loader built with `options` over the first
// `max_batches` batches (crossing epochs if needed), including startup (mapping and verifying shards).
double measure_loader_throughput(const Dataset& dataset, LoaderOptions options, int64_t max_batches);

}  // namespace bluewhale
