// File helpers: whole-file reads, atomic writes, read-only memory maps, staged directories.
//
// Every failure throws IoError naming the path and the OS reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace bluewhale {

namespace fs = std::filesystem;

std::string read_file(const fs::path& path);
int64_t file_size(const fs::path& path);

// Writes all n bytes to fd at its offset, going on after signals and short writes. False, with errno set,
// on an error.
bool write_fully(int fd, const void* data, std::size_t n);

// Writes bytes to path.tmp.<pid>, fsyncs, then renames over path: readers see the old or the new file,
// never a partial one.
void write_file_atomic(const fs::path& path, std::string_view bytes);

// A read-only memory map of a whole file. Move-only; unmaps on destruction. An empty file maps to
// data() == nullptr, size() == 0.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path);
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  std::size_t size() const { return size_; }
  const fs::path& path() const { return path_; }

 private:
  void reset();
  const uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
  fs::path path_;
};

// A directory built under a temporary name next to its final path and renamed into place by commit().
// If commit() is never reached (an exception, a crash), the destructor removes the temporary directory,
// so a dataset either appears complete or not at all. A leftover from a killed process has a name ending
// in ".partial-<pid>" and is never mistaken for a dataset.
class StagedDirectory {
 public:
  // Fails if `final_path` exists, unless overwrite is true (then it is replaced at commit()).
  StagedDirectory(fs::path final_path, bool overwrite);
  ~StagedDirectory();
  StagedDirectory(const StagedDirectory&) = delete;
  StagedDirectory& operator=(const StagedDirectory&) = delete;

  // Where to write the contents before commit().
  const fs::path& path() const { return tmp_; }
  const fs::path& final_path() const { return final_; }
  void commit();

 private:
  fs::path final_, tmp_;
  bool overwrite_, committed_ = false;
};

}  // namespace bluewhale
