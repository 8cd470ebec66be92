// The trial store of a tuning study: one SQLite database (default <out>/trials.db).
//
// Tables (schema version kStoreSchemaVersion, in `meta`):
//   meta(key, value)              format "bluewhale-tune", schema_version, study (JSON: space, objectives,
//                                 options and whatever the caller stores, e.g. the base recipe)
//   trials(id, status, params, values_json, error, started, finished, seconds, model_path, worker)
//                                 params/values_json are JSON text; times are Unix seconds
//   intermediate(trial_id, step, value, metrics)
//                                 one row per reported evaluation; value is the first objective
//
// Durability: WAL journal, every change is its own transaction, so a killed run loses at most the
// trial being written; readers (status, best, export) run while a tuning run writes. Concurrent
// tuning runs on one store are refused through an advisory lock file (<db>.lock).
// Thread safety: every method may be called from any thread (one connection behind a mutex).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

struct sqlite3;

namespace bluewhale::tune {

namespace fs = std::filesystem;
using json = nlohmann::json;

inline constexpr int kStoreSchemaVersion = 1;

enum class TrialStatus { kRunning, kComplete, kPruned, kFailed, kInterrupted };
const char* status_name(TrialStatus s);
TrialStatus parse_status(const std::string& s);  // FormatError for unknown text

struct Trial {
  int64_t id = 0;                     // 1, 2, ... in start order
  TrialStatus status = TrialStatus::kRunning;
  json params = json::object();
  std::vector<double> values;         // final value per objective (empty unless complete or pruned)
  std::string error;                  // failed: why
  double started = 0, finished = 0;   // Unix seconds (finished 0 while running)
  double seconds = 0;                 // wall time of the trial
  std::string model_path;             // where the trial's artefacts are (may be empty)
  int worker = 0;                     // parallel slot that ran it
  std::vector<std::pair<int64_t, double>> intermediate;  // (step, first objective), in step order
};

class TrialStore {
 public:
  // Opens the store at `path`, creating it (with `study`) when absent. An existing store must have been
  // created with the same space and objectives (study["space"], study["objectives"]); ConfigError
  // otherwise. FormatError for a corrupted or foreign file, IoError when it cannot be opened or stays
  // locked past the busy timeout.
  static std::unique_ptr<TrialStore> open_or_create(const fs::path& path, const json& study);
  // Opens an existing store (IoError when absent). The connection is read-write even for readers (WAL
  // needs it); readers simply do not write.
  static std::unique_ptr<TrialStore> open(const fs::path& path, bool read_only = true);
  ~TrialStore();

  // Takes the advisory run lock (<db>.lock, held until destruction); IoError naming the holder's pid when
  // another tuning run holds it.
  void lock_for_run();

  const json& study() const { return study_; }
  const fs::path& path() const { return path_; }

  // A new running trial; returns its id.
  int64_t begin_trial(const json& params, int worker);
  void report(int64_t id, int64_t step, double value, const json& metrics = json::object());
  void finish(int64_t id, TrialStatus status, const std::vector<double>& values, const std::string& error = "",
              const std::string& model_path = "");
  // Trials left running by a killed run become kInterrupted; returns how many.
  int mark_interrupted();
  std::vector<Trial> trials() const;

  // Every trial: id, status, seconds, one column per parameter and per objective, error.
  std::string export_csv() const;
  json export_json() const;

 private:
  TrialStore() = default;
  void exec(const std::string& sql) const;
  void load_study();
  fs::path path_;
  sqlite3* db_ = nullptr;
  json study_;
  int lock_fd_ = -1;
  mutable std::mutex mu_;
};

}  // namespace bluewhale::tune
