// Benchmark mode of DLRM training on random data (as the DLRM reference code's --data-generation=random):
// no dataset needed, so any implementation can be compared on the same shapes. Backs
// `bluewhale bench train --model dlrm ...`.
#pragma once

#include <cstdint>
#include <vector>

#include "bluewhale/models/dlrm.h"

namespace bluewhale {

struct BenchTrainOptions {
  std::vector<int64_t> table_sizes;  // rows of every embedding table (--table-sizes), at least one
  int64_t num_dense = 13;            // dense features (the first number of --bottom on the CLI)
  DlrmConfig model;                  // MLPs, dim, interaction, optimizers, lr, seed
  int64_t batch = 2048;              // samples per step, >= 1
  int64_t steps = 200;               // timed steps, >= 1
  int64_t warmup_steps = 10;         // untimed steps first (buffers, caches, page faults), >= 0
  int threads = 1;                   // as parallel.h (<= 0: all available)
  uint64_t seed = 0;                 // random batches
  int64_t distinct_batches = 4;      // batches generated before timing and reused in turn, >= 1
  // Ids per table: uniform over the rows when 0, else a power law p(id) ~ (id + 1)^-id_power_law (rows
  // numbered by popularity), closer to real click logs: fewer unique rows per batch, better cache reuse.
  double id_power_law = 0.0;
  int64_t bag_size = 1;              // ids per bag (1: one-hot, as Criteo), >= 1
};

struct BenchTrainReport {
  int64_t steps = 0, batch = 0;
  int threads = 0;
  double init_seconds = 0;          // model construction and initialisation
  double seconds = 0;               // wall time of the timed steps
  double samples_per_second = 0;    // steps * batch / seconds
  double step_ms = 0;               // mean wall time of one step, milliseconds
  double step_ms_min = 0;           // fastest step
  double gflops = 0;                // train_flops_per_sample * samples_per_second / 1e9 (see DlrmModel)
  double flops_per_sample = 0;
  int64_t parameter_count = 0;
  int64_t state_bytes = 0;          // parameters + optimizer state after the run
  int64_t peak_rss_bytes = 0;       // VmHWM of the process (includes the generated batches; 0 if unknown)
  double first_loss = 0, last_loss = 0;  // loss of the first and last timed steps (sanity, random labels)
};

// Builds the model, generates the batches, runs warmup then timed train steps. Throws ConfigError naming
// the option or model key when they are out of range.
BenchTrainReport bench_train(const BenchTrainOptions& options);

// Peak resident set size of this process in bytes (VmHWM), 0 where /proc is unavailable.
int64_t peak_rss_bytes();

}  // namespace bluewhale
