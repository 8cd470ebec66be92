// The search space and objectives of a tuning study, parsed from a recipe's `tune:` section:
//
//   tune:
//     objectives:                       # one or more; the first drives early stopping
//       - {name: auc, direction: max, target: 0.80}
//       - {name: seconds, direction: min}
//     params:
//       - {name: model.lr, type: float, low: 0.001, high: 0.5, log: true}
//       - {name: model.dim, type: int, low: 4, high: 32, log: true}
//       - {name: model.optimizer, type: categorical, choices: [sgd, adagrad]}
//       - {name: model.weight_decay, type: float, low: 1e-6, high: 0.01, log: true,
//          when: {model.optimizer: [adagrad]}}     # conditional: active only for these parent values
//
// A configuration ("params") is a JSON object {name: value} holding the active parameters only: integers
// as JSON integers, floats as numbers, categorical choices as strings.
//
// Optimizers work on the unit cube: every numeric parameter is one coordinate in [0, 1] (log-scaled when
// `log: true`; an integer owns an equal-width cell per value), every categorical parameter is a one-hot
// block of `choices.size()` coordinates. Inactive parameters encode to a fixed value (0.5, or an all-zero
// one-hot block) so that configurations that both lack a parameter do not differ in it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bluewhale/core/config.h"

namespace bluewhale::tune {

using json = nlohmann::json;
using Rng = std::mt19937_64;

enum class ParamType { kInt, kFloat, kCategorical };

struct ParamSpec {
  std::string name;                    // key path in the recipe ("model.lr") or any name for the C++ API
  ParamType type = ParamType::kFloat;
  double low = 0, high = 1;            // inclusive bounds (int/float); low < high
  bool log = false;                    // search log(value) uniformly; needs low > 0
  std::vector<std::string> choices;    // categorical: >= 1 distinct values
  // Conditional parameter: active only when `parent` (an earlier categorical parameter) is active and
  // holds one of parent_values. Empty parent: always active.
  std::string parent;
  std::vector<std::string> parent_values;

  static ParamSpec integer(std::string name, int64_t low, int64_t high, bool log = false);
  static ParamSpec real(std::string name, double low, double high, bool log = false);
  static ParamSpec categorical(std::string name, std::vector<std::string> choices);
  // Returns a copy made conditional on `parent` having one of `values`.
  ParamSpec when(std::string parent_name, std::vector<std::string> values) const;
};

class SearchSpace {
 public:
  SearchSpace() = default;
  // Validates (ConfigError naming the parameter): at least one parameter, unique names, low < high,
  // log bounds > 0, integer bounds whole, distinct choices, parents declared earlier, categorical, and
  // parent values among the parent's choices.
  explicit SearchSpace(std::vector<ParamSpec> params);
  // Parses a `params:` list node (errors name file:line and the key).
  static SearchSpace parse(const ConfigNode& params_node);

  const std::vector<ParamSpec>& params() const { return params_; }
  std::size_t size() const { return params_.size(); }
  // Number of unit-cube coordinates (numeric: 1, categorical: choices).
  std::size_t encoded_dim() const { return dim_; }
  // First coordinate of parameter i.
  std::size_t offset(std::size_t i) const { return offsets_[i]; }
  int index_of(const std::string& name) const;  // -1 when absent

  // Whether parameter i is active given the (partially decided) values of earlier parameters.
  bool is_active(std::size_t i, const json& params) const;

  // Unit-cube point (length encoded_dim()) -> configuration: rounds integers, picks the largest one-hot
  // entry, clamps to [0, 1], drops inactive parameters.
  json decode(const std::vector<double>& u) const;
  // Configuration -> unit-cube point; ConfigError when a value is missing, of the wrong type or out of
  // bounds (a stored or user-given configuration that no longer fits the space).
  std::vector<double> encode(const json& params) const;
  // decode then encode: the nearest point that a real configuration maps to (integers snapped to their
  // cell centre, one-hot blocks made exact). Optimizers evaluate their models on projected points.
  std::vector<double> project(const std::vector<double>& u) const;
  // A configuration drawn uniformly (in log space for log parameters).
  json sample(Rng& rng) const;

  // Unit coordinate of numeric parameter i's value, and back (no rounding).
  double to_unit(std::size_t i, double value) const;
  double from_unit(std::size_t i, double u) const;

  json to_json() const;
  static SearchSpace from_json(const json& j);

 private:
  std::vector<ParamSpec> params_;
  std::vector<std::size_t> offsets_;
  std::size_t dim_ = 0;
};

enum class Direction { kMinimize, kMaximize };

struct ObjectiveSpec {
  std::string name;                        // metric name: auc, logloss, seconds, ... or any for the API
  Direction direction = Direction::kMaximize;
  // Optional goal: a trial reaching it is "good enough" (for DLRM the training stops there).
  bool has_target = false;
  double target = 0;
  // value as a loss: minimised by every optimizer (negated for kMaximize).
  double loss(double value) const { return direction == Direction::kMaximize ? -value : value; }
  bool better(double a, double b) const { return loss(a) < loss(b); }
};

// Parses an `objectives:` list ({name, direction: max|min, target}); ConfigError for an empty list,
// duplicate names or a bad direction.
std::vector<ObjectiveSpec> parse_objectives(const ConfigNode& node);
json objectives_to_json(const std::vector<ObjectiveSpec>& objectives);
std::vector<ObjectiveSpec> objectives_from_json(const json& j);

}  // namespace bluewhale::tune
