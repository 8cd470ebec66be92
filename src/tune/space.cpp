#include "bluewhale/tune/space.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "bluewhale/core/error.h"

namespace bluewhale::tune {
namespace {

const char* type_name(ParamType t) {
  switch (t) {
    case ParamType::kInt: return "int";
    case ParamType::kFloat: return "float";
    case ParamType::kCategorical: return "categorical";
  }
  return "?";
}

// Numeric range in the search coordinate (log or linear), integers widened by half a cell on each side
// so that every integer value owns an equal share of [0, 1].
std::pair<double, double> search_range(const ParamSpec& p) {
  double lo = p.low, hi = p.high;
  if (p.type == ParamType::kInt) lo -= 0.5, hi += 0.5;
  if (p.log) return {std::log(lo), std::log(hi)};
  return {lo, hi};
}

std::string choice_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

}  // namespace

ParamSpec ParamSpec::integer(std::string name, int64_t low, int64_t high, bool log) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kInt;
  p.low = static_cast<double>(low);
  p.high = static_cast<double>(high);
  p.log = log;
  return p;
}

ParamSpec ParamSpec::real(std::string name, double low, double high, bool log) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kFloat;
  p.low = low;
  p.high = high;
  p.log = log;
  return p;
}

ParamSpec ParamSpec::categorical(std::string name, std::vector<std::string> choices) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kCategorical;
  p.choices = std::move(choices);
  return p;
}

ParamSpec ParamSpec::when(std::string parent_name, std::vector<std::string> values) const {
  ParamSpec p = *this;
  p.parent = std::move(parent_name);
  p.parent_values = std::move(values);
  return p;
}

SearchSpace::SearchSpace(std::vector<ParamSpec> params) : params_(std::move(params)) {
  BW_CHECK(!params_.empty(), ConfigError, "tune: the search space is empty; declare at least one parameter");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const ParamSpec& p = params_[i];
    const std::string where = "tune parameter '" + p.name + "'";
    BW_CHECK(!p.name.empty(), ConfigError, "tune: parameter ", i + 1, " has no name");
    BW_CHECK(seen.insert(p.name).second, ConfigError, where, ": declared twice");
    if (p.type == ParamType::kCategorical) {
      BW_CHECK(!p.choices.empty(), ConfigError, where, ": expected at least one choice");
      std::set<std::string> c(p.choices.begin(), p.choices.end());
      BW_CHECK(c.size() == p.choices.size(), ConfigError, where, ": choices must be distinct");
      BW_CHECK(!p.log, ConfigError, where, ": log applies to int and float parameters only");
    } else {
      BW_CHECK(std::isfinite(p.low) && std::isfinite(p.high), ConfigError, where, ": bounds must be finite");
      BW_CHECK(p.low < p.high, ConfigError, where, ": expected low < high, got low ", p.low, " and high ", p.high,
               " (a fixed value belongs in the recipe, not in the search space)");
      BW_CHECK(!p.log || p.low > 0, ConfigError, where, ": log scale needs low > 0, got ", p.low);
      if (p.type == ParamType::kInt)
        BW_CHECK(p.low == std::floor(p.low) && p.high == std::floor(p.high), ConfigError, where,
                 ": integer bounds must be whole numbers, got ", p.low, " and ", p.high);
      BW_CHECK(p.choices.empty(), ConfigError, where, ": choices apply to categorical parameters only");
    }
    if (!p.parent.empty()) {
      int parent = -1;
      for (std::size_t j = 0; j < i; ++j)
        if (params_[j].name == p.parent) parent = static_cast<int>(j);
      BW_CHECK(parent >= 0, ConfigError, where, ": condition on '", p.parent,
               "', which is not a parameter declared before it");
      const ParamSpec& pp = params_[parent];
      BW_CHECK(pp.type == ParamType::kCategorical, ConfigError, where, ": condition on '", p.parent,
               "', which is not categorical");
      BW_CHECK(!p.parent_values.empty(), ConfigError, where, ": condition on '", p.parent, "' lists no values");
      for (const auto& v : p.parent_values)
        BW_CHECK(std::find(pp.choices.begin(), pp.choices.end(), v) != pp.choices.end(), ConfigError, where,
                 ": condition value '", v, "' is not a choice of '", p.parent, "'",
                 nearest(v, pp.choices).empty() ? "" : " (did you mean '" + nearest(v, pp.choices) + "'?)");
    }
    offsets_.push_back(dim_);
    dim_ += p.type == ParamType::kCategorical ? p.choices.size() : 1;
  }
}

SearchSpace SearchSpace::parse(const ConfigNode& node) {
  BW_CHECK(node.is_list(), ConfigError, node.where(), ": expected a list of parameters");
  BW_CHECK(!node.as_list().empty(), ConfigError, node.where(),
           ": the search space is empty; declare at least one parameter");
  std::vector<ParamSpec> params;
  for (const ConfigNode& n : node.as_list()) {
    BW_CHECK(n.is_map(), ConfigError, n.where(), ": expected a parameter {name, type, ...}");
    n.check_keys({"name", "type", "low", "high", "log", "choices", "when"});
    ParamSpec p;
    p.name = n.at("name").as_scalar();
    const ConfigNode& t = n.at("type");
    const std::string ts = t.as_scalar();
    if (ts == "int") p.type = ParamType::kInt;
    else if (ts == "float") p.type = ParamType::kFloat;
    else if (ts == "categorical") p.type = ParamType::kCategorical;
    else {
      std::string near = nearest(ts, {"int", "float", "categorical"});
      BW_THROW(ConfigError, t.where(), ": expected int, float or categorical, got '", ts, "'",
               near.empty() ? "" : " (did you mean '" + near + "'?)");
    }
    auto context = [&](const ConfigNode& at) { return at.where(); };
    try {
      if (p.type == ParamType::kCategorical) {
        BW_CHECK(!n.find("low") && !n.find("high"), ConfigError, context(n),
                 ": a categorical parameter takes choices, not low/high");
        p.choices = config_value<std::vector<std::string>>(n.at("choices"));
      } else {
        p.low = n.at("low").as_double();
        p.high = n.at("high").as_double();
        if (const ConfigNode* l = n.find("log")) p.log = l->as_bool();
      }
      if (const ConfigNode* w = n.find("when")) {
        BW_CHECK(w->is_map() && w->as_map().size() == 1, ConfigError, w->where(),
                 ": expected {parent: [values]} with exactly one parent");
        p.parent = w->as_map()[0].first;
        p.parent_values = config_value<std::vector<std::string>>(w->as_map()[0].second);
      }
      params.push_back(p);
      // Validate incrementally so that the error names this parameter's line.
      SearchSpace check(params);
    } catch (const ConfigError& e) {
      if (std::string(e.what()).find(n.where()) != std::string::npos) throw;
      BW_THROW(ConfigError, n.where(), ": ", e.what());
    }
  }
  return SearchSpace(std::move(params));
}

int SearchSpace::index_of(const std::string& name) const {
  for (std::size_t i = 0; i < params_.size(); ++i)
    if (params_[i].name == name) return static_cast<int>(i);
  return -1;
}

bool SearchSpace::is_active(std::size_t i, const json& params) const {
  const ParamSpec& p = params_[i];
  if (p.parent.empty()) return true;
  auto it = params.find(p.parent);
  if (it == params.end()) return false;  // the parent is itself inactive
  const std::string v = choice_text(*it);
  return std::find(p.parent_values.begin(), p.parent_values.end(), v) != p.parent_values.end();
}

double SearchSpace::to_unit(std::size_t i, double value) const {
  const ParamSpec& p = params_[i];
  auto [lo, hi] = search_range(p);
  const double x = p.log ? std::log(value) : value;
  return std::clamp((x - lo) / (hi - lo), 0.0, 1.0);
}

double SearchSpace::from_unit(std::size_t i, double u) const {
  const ParamSpec& p = params_[i];
  auto [lo, hi] = search_range(p);
  const double x = lo + std::clamp(u, 0.0, 1.0) * (hi - lo);
  return std::clamp(p.log ? std::exp(x) : x, p.type == ParamType::kInt ? p.low - 0.5 : p.low,
                    p.type == ParamType::kInt ? p.high + 0.5 : p.high);
}

json SearchSpace::decode(const std::vector<double>& u) const {
  BW_ASSERT(u.size() == dim_, "decode: ", u.size(), " coordinates for a space of ", dim_);
  json out = json::object();
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!is_active(i, out)) continue;
    const ParamSpec& p = params_[i];
    const std::size_t o = offsets_[i];
    if (p.type == ParamType::kCategorical) {
      std::size_t best = 0;
      for (std::size_t c = 1; c < p.choices.size(); ++c)
        if (u[o + c] > u[o + best]) best = c;
      out[p.name] = p.choices[best];
    } else if (p.type == ParamType::kInt) {
      const double v = std::clamp(std::round(from_unit(i, u[o])), p.low, p.high);
      out[p.name] = static_cast<int64_t>(v);
    } else {
      out[p.name] = from_unit(i, u[o]);
    }
  }
  return out;
}

std::vector<double> SearchSpace::encode(const json& params) const {
  BW_CHECK(params.is_object(), ConfigError, "tune: a configuration must be a JSON object, got ", params.dump());
  std::vector<double> u(dim_, 0.0);
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const ParamSpec& p = params_[i];
    const std::size_t o = offsets_[i];
    if (!is_active(i, params)) {
      if (p.type != ParamType::kCategorical) u[o] = 0.5;
      continue;
    }
    auto it = params.find(p.name);
    BW_CHECK(it != params.end(), ConfigError, "tune: configuration ", params.dump(), " lacks parameter '", p.name, "'");
    if (p.type == ParamType::kCategorical) {
      const std::string v = choice_text(*it);
      auto c = std::find(p.choices.begin(), p.choices.end(), v);
      BW_CHECK(c != p.choices.end(), ConfigError, "tune: parameter '", p.name, "': '", v, "' is not one of its choices");
      u[o + (c - p.choices.begin())] = 1.0;
    } else {
      BW_CHECK(it->is_number(), ConfigError, "tune: parameter '", p.name, "': expected a number, got ", it->dump());
      const double v = it->get<double>();
      BW_CHECK(v >= p.low && v <= p.high, ConfigError, "tune: parameter '", p.name, "': ", v, " is outside [", p.low,
               ", ", p.high, "]");
      u[o] = to_unit(i, v);
    }
  }
  return u;
}

std::vector<double> SearchSpace::project(const std::vector<double>& u) const { return encode(decode(u)); }

json SearchSpace::sample(Rng& rng) const {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<double> u(dim_);
  for (auto& x : u) x = unit(rng);
  return decode(u);
}

json SearchSpace::to_json() const {
  json arr = json::array();
  for (const auto& p : params_) {
    json j = {{"name", p.name}, {"type", type_name(p.type)}};
    if (p.type == ParamType::kCategorical) j["choices"] = p.choices;
    else j["low"] = p.low, j["high"] = p.high, j["log"] = p.log;
    if (!p.parent.empty()) j["when"] = {{p.parent, p.parent_values}};
    arr.push_back(j);
  }
  return arr;
}

SearchSpace SearchSpace::from_json(const json& j) {
  BW_CHECK(j.is_array(), FormatError, "tune: stored search space is not a list");
  std::vector<ParamSpec> params;
  try {
    for (const auto& e : j) {
      ParamSpec p;
      p.name = e.at("name").get<std::string>();
      const std::string t = e.at("type").get<std::string>();
      p.type = t == "int" ? ParamType::kInt : t == "float" ? ParamType::kFloat : ParamType::kCategorical;
      if (p.type == ParamType::kCategorical) p.choices = e.at("choices").get<std::vector<std::string>>();
      else p.low = e.at("low").get<double>(), p.high = e.at("high").get<double>(), p.log = e.at("log").get<bool>();
      if (e.contains("when")) {
        p.parent = e["when"].begin().key();
        p.parent_values = e["when"].begin().value().get<std::vector<std::string>>();
      }
      params.push_back(std::move(p));
    }
  } catch (const json::exception& e) {
    BW_THROW(FormatError, "tune: stored search space is malformed: ", e.what());
  }
  return SearchSpace(std::move(params));
}

std::vector<ObjectiveSpec> parse_objectives(const ConfigNode& node) {
  BW_CHECK(node.is_list() && !node.as_list().empty(), ConfigError, node.where(),
           ": expected a list of objectives [{name, direction: max|min, target}]");
  std::vector<ObjectiveSpec> out;
  for (const ConfigNode& n : node.as_list()) {
    BW_CHECK(n.is_map(), ConfigError, n.where(), ": expected {name, direction, target}");
    n.check_keys({"name", "direction", "target"});
    ObjectiveSpec o;
    o.name = n.at("name").as_scalar();
    for (const auto& prev : out)
      BW_CHECK(prev.name != o.name, ConfigError, n.where(), ": objective '", o.name, "' declared twice");
    const ConfigNode& d = n.at("direction");
    const std::string ds = d.as_scalar();
    if (ds == "max" || ds == "maximize") o.direction = Direction::kMaximize;
    else if (ds == "min" || ds == "minimize") o.direction = Direction::kMinimize;
    else BW_THROW(ConfigError, d.where(), ": expected max or min, got '", ds, "'");
    if (const ConfigNode* t = n.find("target")) {
      o.has_target = true;
      o.target = t->as_double();
    }
    out.push_back(o);
  }
  return out;
}

json objectives_to_json(const std::vector<ObjectiveSpec>& objectives) {
  json arr = json::array();
  for (const auto& o : objectives) {
    json j = {{"name", o.name}, {"direction", o.direction == Direction::kMaximize ? "max" : "min"}};
    if (o.has_target) j["target"] = o.target;
    arr.push_back(j);
  }
  return arr;
}

std::vector<ObjectiveSpec> objectives_from_json(const json& j) {
  std::vector<ObjectiveSpec> out;
  try {
    for (const auto& e : j) {
      ObjectiveSpec o;
      o.name = e.at("name").get<std::string>();
      o.direction = e.at("direction").get<std::string>() == "max" ? Direction::kMaximize : Direction::kMinimize;
      if (e.contains("target")) o.has_target = true, o.target = e["target"].get<double>();
      out.push_back(o);
    }
  } catch (const json::exception& e) {
    BW_THROW(FormatError, "tune: stored objectives are malformed: ", e.what());
  }
  BW_CHECK(!out.empty(), FormatError, "tune: the store names no objective");
  return out;
}

}  // namespace bluewhale::tune
