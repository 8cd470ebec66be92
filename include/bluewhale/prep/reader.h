// The raw text reader of `bluewhale prep`: streams TSV/CSV click logs (plain, gzip or zstd, larger than
// memory) into columnar Chunks.
//
// Two stages, so that parsing scales over threads while file reading stays sequential:
//   next()   reads the files in order and cuts the text into TextChunks of whole records (about
//            chunk_bytes each), numbered by line and by global row: plain files on the calling thread
//            (the text is then read on the core that parses it), compressed ones on a background
//            thread that decompresses ahead;
//   parse()  any number of threads turn TextChunks into Chunks, concurrently, in any order.
//
//   TextReader reader(files, schema, 2 * threads);
//   TextChunk t;
//   while (reader.next(t)) { Chunk c; BadRowStats bad; reader.parse(t, c, bad); ... }
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bluewhale/data/column.h"
#include "bluewhale/prep/schema.h"

namespace bluewhale {

class InputMaps;  // bluewhale/prep/input_map.h

// A growable byte array for chunk text. Unlike std::string its memory starts on a 2 MiB boundary with
// huge pages advised (and comes from the process's cache of freed big buffers, see
// src/core/zero_buffer.h): a 1 MiB chunk costs one page fault instead of 256, on virtual machines where
// each costs microseconds. Bytes added by resize() are unspecified. Copyable (deep) and movable.
// It may instead borrow read-only bytes it does not own (borrow(): a view of a mapped input file); the
// first change of size (resize, reserve, push_back, assign) copies them into owned memory.
class TextBytes {
 public:
  TextBytes() = default;
  explicit TextBytes(std::string_view s) { assign(s); }
  // A view of [p, p + n), which must outlive it and every move of it.
  static TextBytes borrow(const char* p, std::size_t n);
  bool borrowed() const { return pages_ == kBorrowed; }
  TextBytes(const TextBytes& o) { assign(o.view()); }
  TextBytes(TextBytes&& o) noexcept;
  TextBytes& operator=(TextBytes o) noexcept;
  ~TextBytes();

  char* data() { return p_; }
  const char* data() const { return p_; }
  std::size_t size() const { return n_; }
  std::size_t capacity() const { return cap_; }
  bool empty() const { return n_ == 0; }
  char back() const { return p_[n_ - 1]; }
  std::string_view view() const { return {p_, n_}; }
  void reserve(std::size_t cap);
  void resize(std::size_t n) {
    if (n > cap_ || borrowed()) reserve(n);
    n_ = n;
  }
  void push_back(char c) {
    if (n_ >= cap_ || borrowed()) reserve(std::max({2 * cap_, n_ + 1, std::size_t{64}}));
    p_[n_++] = c;
  }
  void assign(std::string_view s);
  friend bool operator==(const TextBytes& a, const TextBytes& b) { return a.view() == b.view(); }

 private:
  static constexpr unsigned char kBorrowed = 0xFF;
  char* p_ = nullptr;
  std::size_t n_ = 0, cap_ = 0;  // cap_ of a borrowed view: n_
  unsigned char pages_ = 0;  // the kind of memory p_ came from (core/zero_buffer.h: Pages), for freeing it,
                             // or kBorrowed
};

// Whole records of one input file, decompressed. `text` starts with a record (never a blank line) and
// every record in it ends with '\n' (the reader adds one after a final line that has none). Blank lines
// and the header count in line numbers only. A chunk holds at least one record.
struct TextChunk {
  TextBytes text;           // complete records, CRLF kept as is (parse() strips the '\r')
  int file_index = 0;       // index into TextReader::files()
  int64_t first_line = 0;   // 1-based line number in that file of the first record (= first byte of `text`)
  int64_t first_row = 0;    // global index of the first record over all files (headers, blank lines excluded)
  int64_t records = 0;      // records in `text` (blank lines excluded, bad rows included)
  int64_t raw_bytes = 0;    // on-disk (compressed) bytes read since the previous chunk, for progress
  std::size_t index = 0;    // the chunk's place in input order: next() hands out 0, 1, 2, ...
};

// Where next() cut a chunk out of a plain file, so that a later reader over the same file hands out the
// same chunks without scanning the text for records again (TextReader::replay).
struct ChunkCut {
  int file_index = 0;
  std::size_t offset = 0, size = 0;  // the chunk's text: bytes [offset, offset + size) of the file
  int64_t first_line = 0, first_row = 0, records = 0, raw_bytes = 0;  // as in its TextChunk
};

// Rows dropped by parse() under on_bad_rows: skip. Keep one per thread and add() them up at the end:
// first_error is then the message of the earliest bad row in input order, whatever the thread schedule.
struct BadRowStats {
  int64_t skipped = 0;
  std::string first_error;       // message of the earliest skipped row (lowest global row) seen so far
  int64_t first_error_row = -1;  // its global row index; -1 while none

  void add(const BadRowStats& other) {
    skipped += other.skipped;
    if (other.first_error_row >= 0 && (first_error_row < 0 || other.first_error_row < first_error_row)) {
      first_error = other.first_error;
      first_error_row = other.first_error_row;
    }
  }
};

class TextReader {
 public:
  struct ParsePlan;  // see plan_skipping
  // Opens every file up front, detects its compression and reads its header (once; streaming reopens the
  // files in turn, on next()'s callers or the background thread, so only one is open at a time). Errors:
  //   IoError      a path cannot be opened or read (the message names it);
  //   InputError   with format.header, a header that lacks a non-ignored schema column, names a column
  //                twice or names one the schema does not have (the message names the file and column);
  //   ConfigError  an inconsistent schema (no columns, unknown format/compression/on_bad_rows, bad
  //                delimiter or quote, chunk_bytes < 1).
  // Without a header every record must have exactly schema.columns.size() fields, in schema order. With a
  // header the columns may come in any order per file and ignored schema columns may be absent.
  // prefetch_chunks (>= 1) bounds the TextChunks a background thread reads ahead (compressed input), so
  // memory stays about (prefetch_chunks + chunks being parsed) * chunk_bytes whatever the file sizes.
  // `maps` (optional; made for the same `files`, must outlive the reader): the files it mapped are cut
  // into chunks that borrow the mapping's bytes instead of copies (TextBytes::borrow), and a file that
  // shrinks meanwhile fails next() or parse() with IoError naming it.
  TextReader(std::vector<std::string> files, InputSchema schema, int prefetch_chunks = 4,
             const InputMaps* maps = nullptr);
  // Stops the background thread, if any, and joins it.
  ~TextReader();
  TextReader(const TextReader&) = delete;
  TextReader& operator=(const TextReader&) = delete;

  // Moves the next chunk of records into `out` (files in order, chunks in order); false once every file
  // is done. Reads plain files itself, into the memory of the text `out` held before; blocks while the
  // background thread reads compressed ones. A read error (IoError on a failed read, InputError on a
  // truncated or corrupt gzip/zstd stream, both naming the file) is thrown after the chunks produced
  // before it, and again on every later call. Callable from several threads at once: chunks are taken
  // in turn inside (out.index says which one a caller got), and a replayed chunk is read or viewed
  // outside that turn. The text `out` held before is taken back and its memory reused for
  // a later chunk, so a loop that passes the same TextChunk each time allocates no new text buffers
  // once running.
  bool next(TextChunk& out);

  // With every file plain (none compressed): the cuts of the chunks next() handed out, in order, once
  // next() has returned false (every file cut); otherwise (compressed input, or not done) an empty optional.
  std::optional<std::vector<ChunkCut>> cuts() const;
  // Hands out the chunks `cuts` describes (the cuts() of an earlier reader over the same files) instead
  // of cutting the files: no scan of the text. A mapped file's chunks are views of the mapping; the others
  // are read (pread at the cut's offset) by the thread that calls next(), outside the reader's lock.
  // IoError when a file is shorter than its cuts. Requires plain files; call before next().
  void replay(std::vector<ChunkCut> cuts);

  // Parses `in` into `out`, reusing out's vectors. Thread-safe (const, no shared mutable state): call it
  // from many threads on different chunks, each with its own `out` and `stats`.
  // `out` gets one Column per non-ignored schema column, in schema order, named and typed by role:
  //   label, dense               kFloat, NaN when empty
  //   categorical                kInt categorical_key(field) (core/hash.h), valid 0 when empty
  //   multi, sequence            kList, categorical_key of each non-empty part between separators; empty
  //                              field = []
  //   timestamp                  kInt decimal int64, valid 0 when empty
  //   id                         kInt decimal int64, or hash_string(field) when not a decimal int64
  // out.rows, first_row, file_index, first_line (line of the first stored row) are set, split is cleared;
  // out.row_index is filled only when rows were skipped.
  // A malformed row (wrong field count, a value that does not parse, text after a closing quote, an
  // unterminated quote) throws InputError under on_bad_rows: error, e.g.
  //   "day_0.tsv:1207: column 'I3' (field 4 of 40): expected a number, got 'zz'"
  //   "day_0.tsv:1208: expected 40 fields, got 39"
  // and under on_bad_rows: skip is dropped, counted in stats.skipped, its message kept in
  // stats.first_error when it comes before every bad row `stats` has seen. Fields are parsed strictly: no spaces are trimmed, and "nan" or
  // "inf" are not numbers.
  //
  // With `plan` (from plan_skipping), the columns it skips are left unconverted too.
  void parse(const TextChunk& in, Chunk& out, BadRowStats& stats, const ParsePlan* plan = nullptr) const;

  // parse() takes a specialised loop for chunks of the common shape (no quotes, no CRLF, the expected
  // field count on every record, well-formed numbers, no multi/sequence columns) and the general one for
  // everything else, with identical results. false forces the general loop (tests compare the two;
  // benchmarks measure both). Set it before parsing, not while other threads parse.
  void set_fast_path(bool enabled);
  // Chunks parse() has taken through the specialised loop so far.
  int64_t fast_path_chunks() const;

  // Columns whose values the caller will not read (a fit pass that needs only some of them): their
  // fields are delimited but not converted, so a bad value there goes unnoticed; parse() still gives their
  // Column the usual size, with unspecified values. Requires on_bad_rows: error (dropping bad rows needs
  // every field checked) and scalar columns of the schema (not ignored, not multi/sequence); throws
  // ConfigError otherwise. Call before the first parse(), not while other threads parse.
  void skip_values(const std::vector<std::string>& columns);

  // A parse() that also leaves `columns` unconverted, for callers that each need other columns of the same
  // chunks (threads that share a fit by columns): the reader's plans as they stand (skip_values included)
  // with these columns skipped as skip_values would, and the same checks. Immutable once made; parse()
  // may use it from many threads. Make it after skip_values(), and only while no thread parses.
  std::shared_ptr<const ParsePlan> plan_skipping(const std::vector<std::string>& columns) const;

  // Sum of the on-disk sizes of all files in bytes. Every chunk's raw_bytes add up to it, except the bytes
  // of trailing files that hold no record (they have no later chunk to be reported with).
  int64_t total_bytes() const;
  const InputSchema& schema() const;
  const std::vector<std::string>& files() const;


 private:
  // The cutting cursor, the background thread and its bounded queue (compressed input), per-file field
  // plans; defined in src/prep/reader.cpp.
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bluewhale
