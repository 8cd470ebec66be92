// Study analysis and the HTML report of `bluewhale tune report`.
#pragma once

#include <string>
#include <vector>

#include "bluewhale/tune/space.h"
#include "bluewhale/tune/store.h"

namespace bluewhale::tune {

// Importance of each parameter for the first objective over the complete trials, normalised to sum 1
// (all zero with fewer than 3 usable trials): |Spearman correlation| between a numeric parameter's unit
// coordinate and the loss, the correlation ratio (eta, between-group over total spread) for a categorical
// one. A first look, not a causal measure: correlated parameters share their importance.
std::vector<double> parameter_importances(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                                          const std::vector<Trial>& trials);

// Best value of the first objective after each trial (in id order), NaN before the first usable trial.
std::vector<double> convergence(const std::vector<ObjectiveSpec>& objectives, const std::vector<Trial>& trials);

// A self-contained HTML page (no external resources): summary, best configuration, convergence curve,
// Pareto front (two or more objectives), parameter importances, learning curves and the trial table,
// plots as inline SVG. `study` is TrialStore::study().
std::string html_report(const json& study, const std::vector<Trial>& trials);

}  // namespace bluewhale::tune
