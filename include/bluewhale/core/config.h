// Configuration: a parsed recipe tree that remembers where each value came from, and parameter tables in
// which every parameter is declared once (type, default, bounds, description).
//
//   struct ClipParams {
//     double min, max;
//     static const ParamTable<ClipParams>& params() {
//       static const auto t = ParamTable<ClipParams>("clip")
//           .add("min", &ClipParams::min, -HUGE_VAL, "values below become min")
//           .add("max", &ClipParams::max, HUGE_VAL, "values above become max");
//       return t;
//     }
//   };
//   ClipParams p = ClipParams::params().parse(node);   // unknown keys, bad types, bounds -> ConfigError
//
// Error messages name the file, line and key path: "recipes/x.yaml:14: ops[2].min_count: expected an
// integer >= 1, got '0'"; an unknown key names the nearest valid key.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bluewhale/core/error.h"

namespace bluewhale {

// An immutable YAML-like tree: null, scalar (kept as text), list or map (keys in file order). Each node
// knows its source (file name, 1-based line) and its key path from the root ("ops[2].min_count").
class ConfigNode {
 public:
  enum class Kind { kNull, kScalar, kList, kMap };

  ConfigNode() = default;
  static ConfigNode scalar(std::string value, std::string source = "", int line = 0, std::string path = "");
  static ConfigNode list(std::vector<ConfigNode> items, std::string source = "", int line = 0, std::string path = "");
  static ConfigNode map(std::vector<std::pair<std::string, ConfigNode>> entries, std::string source = "", int line = 0,
                        std::string path = "");

  // Parses YAML text; `source` names it in errors. Throws ConfigError on syntax errors.
  static ConfigNode parse_yaml(std::string_view text, const std::string& source);
  static ConfigNode parse_yaml_file(const std::string& path);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_scalar() const { return kind_ == Kind::kScalar; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_map() const { return kind_ == Kind::kMap; }

  // Accessors throw ConfigError (naming where()) when the kind is wrong.
  const std::string& as_scalar() const;
  const std::vector<ConfigNode>& as_list() const;
  const std::vector<std::pair<std::string, ConfigNode>>& as_map() const;

  // Typed scalar conversions with bounds in the error message.
  int64_t as_int() const;
  double as_double() const;
  bool as_bool() const;

  // Map lookup; nullptr when absent or when this is not a map.
  const ConfigNode* find(std::string_view key) const;
  // Map lookup that throws ConfigError naming the missing key.
  const ConfigNode& at(std::string_view key) const;

  // "file:line: path" for error messages (parts that are unknown are left out).
  std::string where() const;
  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  int line() const { return line_; }

  // Throws ConfigError if this map has a key outside `allowed`, naming the nearest allowed key.
  void check_keys(const std::vector<std::string>& allowed) const;

  // Serialises back to YAML flow text (used to store fitted recipes next to datasets).
  std::string to_yaml() const;

 private:
  Kind kind_ = Kind::kNull;
  std::string scalar_;
  std::vector<ConfigNode> list_;
  std::vector<std::pair<std::string, ConfigNode>> map_;
  std::string source_, path_;
  int line_ = 0;
};

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);
// The candidate closest to `key`, or "" when none is reasonably close.
std::string nearest(std::string_view key, const std::vector<std::string>& candidates);

// Value conversions used by ParamTable; specialised for the supported parameter types.
template <class V> V config_value(const ConfigNode& node);
template <> bool config_value<bool>(const ConfigNode& node);
template <> int config_value<int>(const ConfigNode& node);
template <> int64_t config_value<int64_t>(const ConfigNode& node);
template <> double config_value<double>(const ConfigNode& node);
template <> float config_value<float>(const ConfigNode& node);
template <> std::string config_value<std::string>(const ConfigNode& node);
// Lists accept a YAML list or a single scalar (one element); string lists also accept "a,b,c".
template <> std::vector<std::string> config_value<std::vector<std::string>>(const ConfigNode& node);
template <> std::vector<double> config_value<std::vector<double>>(const ConfigNode& node);
template <> std::vector<int64_t> config_value<std::vector<int64_t>>(const ConfigNode& node);

// Description of one declared parameter (for --help and docs).
struct ParamInfo {
  std::string name, type, default_text, bounds_text, description;
  bool required = false;
};

// The declared parameters of one config struct T. Build once (a function-local static), then parse().
template <class T>
class ParamTable {
 public:
  explicit ParamTable(std::string name) : name_(std::move(name)) {}

  // Declares a parameter stored in `member` with a default.
  template <class V, class D>
  ParamTable& add(std::string key, V T::*member, D def, std::string description) {
    Entry e;
    e.info.name = key;
    e.info.type = type_name<V>();
    e.info.default_text = to_text(V(def));
    e.info.description = std::move(description);
    V dv(def);
    e.set_default = [member, dv](T& obj) { obj.*member = dv; };
    e.set = [member](T& obj, const ConfigNode& node) { obj.*member = config_value<V>(node); };
    entries_.push_back(std::move(e));
    return *this;
  }

  // Declares a parameter without a default: parse() fails when it is missing.
  template <class V>
  ParamTable& required(std::string key, V T::*member, std::string description) {
    Entry e;
    e.info.name = key;
    e.info.type = type_name<V>();
    e.info.required = true;
    e.info.description = std::move(description);
    e.set_default = [](T&) {};
    e.set = [member](T& obj, const ConfigNode& node) { obj.*member = config_value<V>(node); };
    entries_.push_back(std::move(e));
    return *this;
  }

  // Bounds for the last declared numeric parameter (inclusive).
  ParamTable& min(double lo) { return bound(lo, true); }
  ParamTable& max(double hi) { return bound(hi, false); }
  // Allowed values for the last declared string (or string list) parameter.
  ParamTable& choices(std::vector<std::string> allowed) {
    BW_ASSERT(!entries_.empty());
    Entry& e = entries_.back();
    e.choices = std::move(allowed);
    e.info.bounds_text = "one of " + join(e.choices);
    return *this;
  }

  // Fills a T from a map node: defaults first, then the given keys. `extra_keys` are accepted and ignored
  // (they belong to an enclosing object, e.g. an op's "op" and "columns").
  T parse(const ConfigNode& node, const std::vector<std::string>& extra_keys = {}) const {
    T obj{};
    apply(node, obj, extra_keys);
    return obj;
  }

  void apply(const ConfigNode& node, T& obj, const std::vector<std::string>& extra_keys = {}) const {
    for (const auto& e : entries_) e.set_default(obj);
    if (node.is_null()) {
      for (const auto& e : entries_)
        BW_CHECK(!e.info.required, ConfigError, node.where(), ": ", name_, ": missing required key '", e.info.name, "'");
      return;
    }
    std::vector<std::string> allowed = extra_keys;
    for (const auto& e : entries_) allowed.push_back(e.info.name);
    node.check_keys(allowed);
    for (const auto& e : entries_) {
      const ConfigNode* v = node.find(e.info.name);
      if (!v) {
        BW_CHECK(!e.info.required, ConfigError, node.where(), ": ", name_, ": missing required key '", e.info.name,
                 "' (", e.info.description, ")");
        continue;
      }
      e.set(obj, *v);
      check_bounds(e, *v);
    }
  }

  const std::string& name() const { return name_; }
  std::vector<ParamInfo> info() const {
    std::vector<ParamInfo> out;
    for (const auto& e : entries_) out.push_back(e.info);
    return out;
  }
  // A help block: one line per parameter with type, default, bounds and description.
  std::string help() const {
    std::string out;
    for (const auto& e : entries_) {
      out += "  " + e.info.name + " (" + e.info.type + (e.info.required ? ", required" : ", default " + e.info.default_text) +
             (e.info.bounds_text.empty() ? "" : ", " + e.info.bounds_text) + "): " + e.info.description + "\n";
    }
    return out;
  }

 private:
  struct Entry {
    ParamInfo info;
    std::function<void(T&)> set_default;
    std::function<void(T&, const ConfigNode&)> set;
    std::optional<double> lo, hi;
    std::vector<std::string> choices;
  };

  ParamTable& bound(double v, bool lower) {
    BW_ASSERT(!entries_.empty());
    Entry& e = entries_.back();
    (lower ? e.lo : e.hi) = v;
    std::string b;
    if (e.lo) b += ">= " + trim_num(*e.lo);
    if (e.hi) b += std::string(b.empty() ? "" : " and ") + "<= " + trim_num(*e.hi);
    e.info.bounds_text = b;
    return *this;
  }

  void check_bounds(const Entry& e, const ConfigNode& v) const {
    if (e.lo || e.hi) {
      auto check_one = [&](const ConfigNode& n) {
        double x = n.as_double();
        BW_CHECK((!e.lo || x >= *e.lo) && (!e.hi || x <= *e.hi), ConfigError, n.where(), ": expected ", e.info.type,
                 " ", e.info.bounds_text, ", got '", n.as_scalar(), "'");
      };
      if (v.is_list()) for (const auto& n : v.as_list()) check_one(n);
      else check_one(v);
    }
    if (!e.choices.empty()) {
      auto check_one = [&](const std::string& s, const ConfigNode& n) {
        bool ok = false;
        for (const auto& c : e.choices) ok = ok || c == s;
        if (!ok) {
          std::string near = nearest(s, e.choices);
          BW_THROW(ConfigError, n.where(), ": expected one of ", join(e.choices), ", got '", s, "'",
                   near.empty() ? "" : " (did you mean '" + near + "'?)");
        }
      };
      if (v.is_list()) for (const auto& n : v.as_list()) check_one(n.as_scalar(), n);
      else check_one(v.as_scalar(), v);
    }
  }

  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
  }
  static std::string trim_num(double v) {
    // Whole-number bounds print exactly ("1048576", not "1.04858e+06").
    if (v == static_cast<double>(static_cast<int64_t>(v)) && v > -9e18 && v < 9e18)
      return std::to_string(static_cast<int64_t>(v));
    return str_cat(v);
  }
  template <class V> static std::string type_name() {
    if constexpr (std::is_same_v<V, bool>) return "bool";
    else if constexpr (std::is_integral_v<V>) return "integer";
    else if constexpr (std::is_floating_point_v<V>) return "number";
    else if constexpr (std::is_same_v<V, std::string>) return "string";
    else if constexpr (std::is_same_v<V, std::vector<std::string>>) return "list of strings";
    else if constexpr (std::is_same_v<V, std::vector<int64_t>>) return "list of integers";
    else return "list of numbers";
  }
  template <class V> static std::string to_text(const V& v) {
    if constexpr (std::is_same_v<V, bool>) return v ? "true" : "false";
    else if constexpr (std::is_arithmetic_v<V>) return str_cat(v);
    else if constexpr (std::is_same_v<V, std::string>) return "'" + v + "'";
    else {
      std::string s = "[";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + str_cat(v[i]);
      return s + "]";
    }
  }

  std::string name_;
  std::vector<Entry> entries_;
};

}  // namespace bluewhale
