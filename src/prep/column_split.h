// Private to the prep driver: a fit pass on two threads that share the fit by column instead of by chunk.
#pragma once

#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bluewhale/data/column.h"
#include "bluewhale/prep/reader.h"

namespace bluewhale {

// Both threads read every chunk, and each converts only the columns of the fit parts it counts there:
// the parts it owns (each costly part has one owner for the rest of the pass) in every chunk, and the
// shared parts (the cheap ones) in the chunks it reaches first. Nothing one thread parsed is read by
// the other. The by-chunk alternative, where a thread counts its parts of chunks the other parsed, moves
// every parsed key between cores: on the 2-vCPU VMs prep runs on, when the vCPUs sit on different core
// complexes (~350 ns a cache-line round trip instead of ~55), that cost its fit pass 35-50 % (2026-12-05).
// The price is that both threads scan every chunk for separators.
//
// The owners come from the first kCalibrationChunks chunks, which the thread that reaches one first fits
// whole (every part, on its own state). Each part's size then (Hooks::size: distinct keys, for a count)
// at half and at the end of those chunks gives its growth (Heaps' law, as KeyCounter::note_progress
// does), extrapolated to the whole input. Parts expected to stay within kSharedKeys stay shared: kept on
// both threads they cost little memory, and whichever thread is ahead reaches more chunks first and so
// takes more of them, which evens the threads out. The others get owners, biggest first, each to the
// thread with less so far, weighed by 1 + log2(keys / kCachedKeys): a table past the caches costs a miss
// per key, a few times a cached one's work. A part counted on several threads (the calibration chunks,
// the shared parts) is merged by the fit itself (fit_chunk_part's `sole` false).
//
// Needs two threads running at once: run() must not be called from inside a parallel region.
class ColumnSplitFit {
 public:
  static constexpr int kThreads = 2;
  static constexpr std::size_t kCalibrationChunks = 4;
  static constexpr double kSharedKeys = 65536;
  static constexpr double kCachedKeys = 16384;
  // A thread runs at most this many chunks ahead of the other (their texts are kept until both are done).
  static constexpr std::size_t kMaxAhead = 8;

  struct Part {
    int op = 0, part = 0;       // which Op, and which of its fit_parts()
    std::vector<int> columns;   // the raw columns (indexes into Chunk::columns) it reads
  };
  struct Hooks {
    // The next chunk of text and its index in the input; false after the last one.
    std::function<bool(TextChunk& text, std::size_t& at)> next;
    // A parse plan that converts the raw columns marked in `convert` (others may be left unconverted).
    std::function<std::shared_ptr<const TextReader::ParsePlan>(const std::vector<uint8_t>& convert)> plan;
    // Parses `text` into c with `plan` (null: every column the pass reads) and assigns c's split.
    std::function<void(const TextChunk& text, std::size_t at, Chunk& c, int tid, const TextReader::ParsePlan* plan)> parse;
    // After each parse: `counted` marks the raw columns whose per-column statistics this thread takes
    // for this chunk (every column goes to exactly one thread per chunk); `first`: this thread reached the
    // chunk first (row counts and progress go there).
    std::function<void(const Chunk& c, const TextChunk& text, int tid, const std::vector<uint8_t>& counted, bool first)>
        parsed;
    // Fits part p of c on thread tid (Op::fit_chunk_part).
    std::function<void(const Chunk& c, const Part& p, int tid, bool sole)> fit;
    // The size of part p's state on thread tid (Op::fit_part_size; < 0: unknown, taken as 0).
    std::function<int64_t(const Part& p, int tid)> size;
  };

  // `always`: raw columns every parse converts (a time split's column). Columns no part reads are
  // converted by the thread that reaches the chunk first. input_bytes: the text the pass reads in all
  // (0: not known, then the input is taken as kUnknownInputChunks chunks like the first ones).
  ColumnSplitFit(std::vector<Part> parts, std::size_t raw_columns, std::vector<int> always, int64_t input_bytes,
                 Hooks hooks);
  static constexpr double kUnknownInputChunks = 256;

  // Runs the pass on two threads, parsing into c0 and c1. Rethrows the first error (a hook's); the other
  // thread then stops at its next chunk.
  void run(Chunk& c0, Chunk& c1);

  // After run(): the owner of each part (-1: shared), in the order given; all -1 when the input had
  // fewer chunks than the calibration.
  std::vector<int> owners() const;

 private:
  // What a thread does with a chunk, by whether it reached the chunk first.
  struct Role {
    std::shared_ptr<const TextReader::ParsePlan> plan;  // null: the reader's own
    std::vector<std::pair<std::size_t, bool>> fits;     // (part index, sole)
    std::vector<uint8_t> counted;                        // see Hooks::parsed
    bool parse = false;
  };
  struct Assignment {
    std::vector<int> owner;  // per part, -1 shared
    std::array<std::array<Role, 2>, kThreads> roles;  // [thread][first]
  };
  struct Slot {
    TextChunk text;
    std::size_t at = 0;
    int left = kThreads;  // threads yet to be done with it
    int first = 0;        // the thread that fetched it
    int gen = 0;          // assignment it was fetched under
  };

  void worker(int tid, Chunk& c);
  void work(Slot& s, Chunk& c, int tid);
  // calibration: every part shared, and the first thread converts what the pass reads (no plan).
  Assignment make_assignment(std::vector<int> owner, bool calibration) const;
  void decide();  // under mu_

  std::vector<Part> parts_;
  std::size_t raw_columns_;
  std::vector<int> always_;
  Hooks hooks_;
  std::array<Assignment, 2> gens_;  // 0: calibration (all shared, fitted whole by the first thread), 1: owners

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Slot> slots_;  // from chunk base_ on
  std::size_t base_ = 0;
  std::vector<TextChunk> free_texts_;
  bool fetching_ = false, done_ = false, failed_ = false;
  int gen_ = 0;
  int64_t input_bytes_;
  std::size_t calibrated_ = 0;  // calibration chunks fitted
  int64_t calibrated_rows_ = 0, calibrated_bytes_ = 0;
  std::array<std::vector<int64_t>, kThreads> sizes_;  // per thread, its parts' sizes after its last calibration chunk
  std::vector<int64_t> half_sizes_;                   // all threads' at half the calibration
  int64_t half_rows_ = 0;
};

}  // namespace bluewhale
