// Pieces of the study loop shared by the in-process tuner (tuner.cpp) and the MPI coordinator (mpi.cpp).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "bluewhale/tune/tuner.h"

namespace bluewhale::tune::detail {

bool usable(const Trial& t, std::size_t n_obj);
// Finished trials as optimizer observations (see tuner.cpp for how objectives become one loss).
std::vector<Observation> observations(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& obj,
                                      const SearchSpace& space, Rng& rng);

// A study opened for running: the run lock taken, interrupted trials marked and queued for a rerun,
// early-stopping rungs restored from the store, the rng positioned after the stored trials.
struct StudyStart {
  std::vector<Trial> history;
  std::vector<json> requeue;  // configurations to run again first
  int counted = 0;            // stored trials that count towards the budget
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<Asha> asha;
  Rng rng;
};
StudyStart begin_study(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, TrialStore& store,
                       const TuneOptions& opt);

// A trial's status from what its objective returned (failed with `error` for a wrong count or a NaN).
TrialStatus classify(const std::vector<ObjectiveSpec>& objectives, const std::vector<double>& values, bool pruned,
                     std::string& error);

void finish_summary(TuneSummary& summary, const std::vector<Trial>& history, const std::vector<ObjectiveSpec>& objectives);

}  // namespace bluewhale::tune::detail
