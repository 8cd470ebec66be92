// Read-only mappings of plain-text input files, made once per prep run and shared by its passes.
//
// Reading a file with read() copies every byte out of the page cache, once per pass: on the 2-core VMs
// prep runs on that copy took ~34 ms per pass for 243 MB (1M Criteo rows), ~7 % of the run's CPU over
// its two passes, under the reader's lock. A mapping lets the parser read the page cache's pages in
// place; its page-table entries are made once, in the first pass (~19 ms for the same file), and the
// second pass finds them made.
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
  InputMaps(const std::vector<std::string>& files, const std::string& compression, int64_t max_bytes);
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

 private:
  struct Map {
    void* addr = nullptr;
    std::size_t size = 0;
    int slot = -1;  // index in the SIGBUS handler's table, -1 when not mapped
  };
  std::vector<std::string> files_;
  std::vector<Map> maps_;
  int64_t mapped_bytes_ = 0;
};

}  // namespace bluewhale
