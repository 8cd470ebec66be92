// The tuning loop and the objective API: anything that can be run with a configuration and report
// metrics can be tuned the same way (DLRM training, a user's command line, a test function).
//
//   SearchSpace space = SearchSpace::parse(recipe.at("tune").at("params"));
//   auto store = TrialStore::open_or_create("tune/trials.db", study_json(space, objectives));
//   TuneSummary s = run_study(space, objectives, [](TrialContext& t) {
//     for (int epoch = 1; epoch <= 10; ++epoch)
//       if (t.report(epoch, validation_auc())) break;   // early stopping asked to stop
//     return std::vector<double>{final_auc, seconds};
//   }, *store, {.algorithm = "gp", .budget = 30, .parallel = 2});
//
// Trials that throw, or return a NaN/infinite value, are recorded as failed and the search goes on.
// A study resumes from its store: the budget counts the trials already there, and trials a killed run
// left running are run again first with the same configuration.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "bluewhale/tune/optimizer.h"
#include "bluewhale/tune/space.h"
#include "bluewhale/tune/store.h"

namespace bluewhale::tune {

// Asynchronous successive halving (Li et al. 2018, the stopping variant): rung k is reached after
// min_resource * eta^k units of work (steps, epochs, ...). A trial reaching a rung continues only when its
// loss there ranks in the best max(1, floor(n / eta)) of the n trials that have reached that rung so
// far; rungs with fewer than min_trials entries let every trial through.
struct AshaOptions {
  bool enabled = false;
  int64_t min_resource = 1;  // > 0
  double eta = 3;            // > 1
  int min_trials = 3;        // >= 1
};

class Asha {
 public:
  explicit Asha(const AshaOptions& options);  // ConfigError for bad options
  // Records the trial's loss (lower is better) after `step` units and returns true when it should stop.
  // Thread safe.
  bool should_stop(int64_t trial, int64_t step, double loss);
  // Resource of rung k.
  int64_t rung_resource(int k) const;

 private:
  AshaOptions opt_;
  std::mutex mu_;
  std::vector<std::vector<double>> rungs_;   // losses recorded per rung
  std::vector<std::pair<int64_t, int>> next_rung_;  // (trial, next rung index)
};

// What a running trial sees.
class TrialContext {
 public:
  // Reports go to the store and early stopping decides (the in-process tuner).
  TrialContext(int64_t id, json params, int threads, std::vector<int> cpus, TrialStore* store,
               const ObjectiveSpec* first_objective, Asha* asha);
  // Reports go to `reporter`, which returns true when the trial should stop (an MPI worker forwarding
  // them to the coordinator).
  using Reporter = std::function<bool(int64_t step, double value, const json& metrics)>;
  TrialContext(int64_t id, json params, int threads, std::vector<int> cpus, Reporter reporter);
  int64_t id() const { return id_; }
  const json& params() const { return params_; }
  // Threads this trial may use (the tuner's threads split between parallel trials).
  int threads() const { return threads_; }
  // CPUs this trial's thread is pinned to (empty when not pinned).
  const std::vector<int>& cpus() const { return cpus_; }
  // Reports the first objective's value after `step` units of work (stored as an intermediate value).
  // Returns true when early stopping wants the trial to stop now; the objective should then return its
  // current values (the trial is recorded as pruned).
  bool report(int64_t step, double value, const json& metrics = json::object());
  bool pruned() const { return pruned_; }
  void set_model_path(std::string path) { model_path_ = std::move(path); }
  const std::string& model_path() const { return model_path_; }

 private:
  int64_t id_;
  json params_;
  int threads_;
  std::vector<int> cpus_;
  Reporter reporter_;
  bool pruned_ = false;
  std::string model_path_;
};

// Returns one value per objective, in the study's order.
using ObjectiveFn = std::function<std::vector<double>(TrialContext&)>;

struct TuneOptions {
  std::string algorithm = "gp";   // gp | tpe | random
  int budget = 20;                // trials in the study in all (those already in the store count), >= 1
  int parallel = 1;               // trials at once, >= 1
  uint64_t seed = 0;
  int threads = 0;                // threads shared by the parallel trials; <= 0: available_threads()
  bool pin = true;                // pin each trial's thread to its share of the CPUs (when there are enough)
  AshaOptions early_stopping;
  OptimizerOptions optimizer;
  // Called (under the tuner's lock, from a worker thread) after every trial; for progress lines.
  std::function<void(const Trial&, int done, int budget)> on_trial_end;
};

struct TuneSummary {
  int trials = 0;           // in the store at the end
  int run_now = 0;          // trials this call ran
  int complete = 0, pruned = 0, failed = 0;
  int rerun = 0;            // interrupted trials run again
  double seconds = 0;
  std::optional<Trial> best;  // best complete trial by the first objective
};

// The JSON study description stored in the trial store (space, objectives, plus `extra` keys).
json study_json(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, const json& extra = json::object());

// Runs the study (see the file comment). ConfigError for bad options; the store's errors pass through.
TuneSummary run_study(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, const ObjectiveFn& objective,
                      TrialStore& store, const TuneOptions& options);

// Across machines: under mpirun, rank 0 coordinates (store, optimizer, early stopping) and every other
// rank runs trials one at a time with `objective`, exchanging configurations, intermediate reports and
// results with rank 0 over MPI. `store` is used on rank 0 only (nullptr elsewhere). Without MPI support
// compiled in, or in a one-rank world, this is run_study. Every rank returns when the study is done; the
// summary is complete on rank 0. Trial threads per rank: options.threads (<= 0: available) divided by the
// ranks on that node.
TuneSummary run_study_mpi(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                          const ObjectiveFn& objective, TrialStore* store, const TuneOptions& options);

// MPI for the lifetime of the object when the process was started by an MPI launcher and MPI support is
// compiled in (BW_HAVE_MPI); otherwise a one-rank world.
class MpiSession {
 public:
  MpiSession();
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;
  int rank() const { return rank_; }
  int size() const { return size_; }
  static bool compiled();  // whether this build has MPI support

 private:
  int rank_ = 0, size_ = 1;
  bool initialized_ = false;
};

// The best complete trial by the first objective (pruned ones only when none completed).
std::optional<Trial> best_trial(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& objectives);
// The complete trials no other complete trial dominates (all objectives at least as good, one better),
// ordered by the first objective.
std::vector<Trial> pareto_front(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& objectives);

// An objective that runs a shell command for each trial: "{name}" in `command` becomes the parameter's
// value (empty for inactive ones). Every output line ending in a number is an intermediate report
// (step = 1, 2, ...); the last number printed is the trial's value (single-objective studies). A pruned
// trial's command is terminated. InputError when the command fails or prints no number; ConfigError at
// construction when a placeholder names no parameter.
ObjectiveFn command_objective(const std::string& command, const SearchSpace& space);

}  // namespace bluewhale::tune
