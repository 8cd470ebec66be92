// Read-only mappings of plain-text input files, made once per prep run and shared by its passes.
//
// Reading a file with read() copies every byte out of the page cache, once per pass: on the 2-core VMs
// prep runs on that copy took ~34 ms per pass for 243 MB (1M Criteo rows), ~7 % of the run's CPU over
// its two passes, under the reader's lock. A mapping lets the parser read the page cache's pages in
// place; its page-table entries are made once, in the first pass (~19 ms for the same file), and the
// second pass finds them made.
//
// Whether mapping pays depends on how the page cache holds the file. On the VMs prep runs on, the first
// touch of each 4 KiB page through a new mapping costs ~2 us when the file sits in 4 KiB folios (written
// in small pieces) and ~0.03-0.3 us in 2 MiB ones (written in large pieces, or copied by cp or dd): a
// first pass over the 243 MB file then costs ~100-150 ms of page touches against ~10-35, where read()
// copies it in ~40-55 ms either way (2026-12-05). So a file of at least kProbeBytes is mapped only when
// touching its first kProbeBytes (one load a page, work the first pass would do anyway) costs at most
// a given limit per page; otherwise it is unmapped again and left to read().
//
// A mapped file that shrinks while mapped (rewritten or truncated by another program) would kill the
// process with SIGBUS when the parser reaches the lost pages. Instead a process-wide SIGBUS handler
// replaces the rest of that mapping with zero pages and marks it: the reader then raises IoError naming
// the file (TextReader checks after cutting and parsing each chunk), the run fails like any other read
// error and no dataset is committed. Faults at other addresses go to the handler installed before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bluewhale {

class InputMaps {
 public:
  // Maps each of `files` that is a regular, non-empty file of plain text (`compression` is the recipe's:
  // none, or auto and no gzip/zstd magic bytes), in order, while the mapped total stays at most
  // max_bytes; the others (compressed, pipes, empty, past the budget) are left to read(). Throws IoError
  // naming a path that cannot be opened; a file that cannot be mapped is left to read() as well.
  // Files of kProbeBytes or more are mapped only when the first touch of their first kProbeBytes costs
  // at most touch_limit_ns per 4 KiB page (infinity: always).
  InputMaps(const std::vector<std::string>& files, const std::string& compression, int64_t max_bytes,
            double touch_limit_ns = kTouchLimitNs);
  static constexpr std::size_t kProbeBytes = std::size_t{1} << 20;
  // Per 4 KiB page: above ~0.2-0.25 us (read()'s copy of a page) mapping costs more than it saves; 2 MiB
  // folios measured ~0.03-0.3 us, and up to ~1.3 us for a file just written; 4 KiB folios 2 us and more.
  static constexpr double kTouchLimitNs = 500;
  ~InputMaps();  // unmaps
  InputMaps(const InputMaps&) = delete;
  InputMaps& operator=(const InputMaps&) = delete;

  // The bytes of files[i] as mapped (the file's size when mapped), or {nullptr, 0} when it is not mapped.
  struct View {
    const char* data = nullptr;
    std::size_t size = 0;
  };
  View view(std::size_t i) const;
  // Throws IoError naming files[i] when its mapping lost pages (the file shrank while mapped).
  void check(std::size_t i) const;
  void check_all() const;  // check(i) for every file
  bool shrunk(std::size_t i) const;
  const std::vector<std::string>& files() const { return files_; }
  int64_t mapped_bytes() const { return mapped_bytes_; }
  // The first touch's cost measured for files[i] in ns per page (mapped or not), or -1 when not probed
  // (not mapped at all, or smaller than kProbeBytes).
  double touch_ns(std::size_t i) const { return touch_ns_.at(i); }

 private:
  struct Map {
    void* addr = nullptr;
    std::size_t size = 0;
    int slot = -1;  // index in the SIGBUS handler's table, -1 when not mapped
  };
  std::vector<std::string> files_;
  std::vector<Map> maps_;
  std::vector<double> touch_ns_;
  int64_t mapped_bytes_ = 0;
};

}  // namespace bluewhale
