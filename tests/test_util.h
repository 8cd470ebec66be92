// Helpers shared by the tests: temporary directories, the shared real-data folder, running the CLI.
#pragma once

#include <filesystem>
#include <string>

namespace bluewhale::testing {

// A fresh empty directory under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// ../shared/data relative to the source tree (or $BW_SHARED_DATA); empty path when absent.
std::filesystem::path shared_data_dir();

// Writes text to a file (creating parents).
void write_text(const std::filesystem::path& path, const std::string& text);

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs the built `bluewhale` binary with the given argument string through /bin/sh.
CommandResult run_cli(const std::string& args);

}  // namespace bluewhale::testing
