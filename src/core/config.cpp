#include "bluewhale/core/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "bluewhale/core/io.h"

namespace bluewhale {
namespace {

const char* kind_name(ConfigNode::Kind k) {
  switch (k) {
    case ConfigNode::Kind::kNull: return "nothing";
    case ConfigNode::Kind::kScalar: return "a value";
    case ConfigNode::Kind::kList: return "a list";
    case ConfigNode::Kind::kMap: return "a mapping";
  }
  return "?";
}

ConfigNode convert(const YAML::Node& n, const std::string& source, const std::string& path) {
  int line = n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
  switch (n.Type()) {
    case YAML::NodeType::Scalar: return ConfigNode::scalar(n.Scalar(), source, line, path);
    case YAML::NodeType::Sequence: {
      std::vector<ConfigNode> items;
      for (std::size_t i = 0; i < n.size(); ++i) items.push_back(convert(n[i], source, path + "[" + std::to_string(i) + "]"));
      return ConfigNode::list(std::move(items), source, line, path);
    }
    case YAML::NodeType::Map: {
      std::vector<std::pair<std::string, ConfigNode>> entries;
      for (auto it = n.begin(); it != n.end(); ++it) {
        std::string key = it->first.Scalar();
        for (const auto& e : entries)
          BW_CHECK(e.first != key, ConfigError, source, ":", it->first.Mark().line + 1, ": duplicate key '", key, "'");
        entries.emplace_back(key, convert(it->second, source, path.empty() ? key : path + "." + key));
      }
      return ConfigNode::map(std::move(entries), source, line, path);
    }
    default: {
      ConfigNode c = ConfigNode::scalar("", source, line, path);
      return ConfigNode();
    }
  }
}

void emit(const ConfigNode& n, std::string& out) {
  switch (n.kind()) {
    case ConfigNode::Kind::kNull: out += "null"; break;
    case ConfigNode::Kind::kScalar: {
      YAML::Emitter e;
      e << YAML::DoubleQuoted << n.as_scalar();
      out += e.c_str();
      break;
    }
    case ConfigNode::Kind::kList: {
      out += "[";
      bool first = true;
      for (const auto& c : n.as_list()) {
        if (!first) out += ", ";
        first = false;
        emit(c, out);
      }
      out += "]";
      break;
    }
    case ConfigNode::Kind::kMap: {
      out += "{";
      bool first = true;
      for (const auto& [k, c] : n.as_map()) {
        if (!first) out += ", ";
        first = false;
        YAML::Emitter e;
        e << YAML::DoubleQuoted << k;
        out += e.c_str();
        out += ": ";
        emit(c, out);
      }
      out += "}";
      break;
    }
  }
}

}  // namespace

ConfigNode ConfigNode::scalar(std::string value, std::string source, int line, std::string path) {
  ConfigNode n;
  n.kind_ = Kind::kScalar;
  n.scalar_ = std::move(value);
  n.source_ = std::move(source);
  n.line_ = line;
  n.path_ = std::move(path);
  return n;
}

ConfigNode ConfigNode::list(std::vector<ConfigNode> items, std::string source, int line, std::string path) {
  ConfigNode n;
  n.kind_ = Kind::kList;
  n.list_ = std::move(items);
  n.source_ = std::move(source);
  n.line_ = line;
  n.path_ = std::move(path);
  return n;
}

ConfigNode ConfigNode::map(std::vector<std::pair<std::string, ConfigNode>> entries, std::string source, int line,
                           std::string path) {
  ConfigNode n;
  n.kind_ = Kind::kMap;
  n.map_ = std::move(entries);
  n.source_ = std::move(source);
  n.line_ = line;
  n.path_ = std::move(path);
  return n;
}

ConfigNode ConfigNode::parse_yaml(std::string_view text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    BW_THROW(ConfigError, source, ":", e.mark.line + 1, ":", e.mark.column + 1, ": invalid YAML: ", e.msg);
  }
  return convert(root, source, "");
}

ConfigNode ConfigNode::parse_yaml_file(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const IoError& e) {
    BW_THROW(ConfigError, "cannot read recipe: ", e.what());
  }
  return parse_yaml(text, path);
}

const std::string& ConfigNode::as_scalar() const {
  BW_CHECK(kind_ == Kind::kScalar, ConfigError, where(), ": expected a value, got ", kind_name(kind_));
  return scalar_;
}

const std::vector<ConfigNode>& ConfigNode::as_list() const {
  BW_CHECK(kind_ == Kind::kList, ConfigError, where(), ": expected a list, got ", kind_name(kind_));
  return list_;
}

const std::vector<std::pair<std::string, ConfigNode>>& ConfigNode::as_map() const {
  BW_CHECK(kind_ == Kind::kMap, ConfigError, where(), ": expected a mapping (key: value), got ", kind_name(kind_));
  return map_;
}

int64_t ConfigNode::as_int() const {
  const std::string& s = as_scalar();
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  BW_CHECK(!s.empty() && end && *end == '\0' && errno == 0, ConfigError, where(), ": expected an integer, got '", s, "'");
  return v;
}

double ConfigNode::as_double() const {
  const std::string& s = as_scalar();
  if (s == ".inf" || s == "inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-inf") return -HUGE_VAL;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  BW_CHECK(!s.empty() && end && *end == '\0' && errno == 0 && !std::isnan(v), ConfigError, where(),
           ": expected a number, got '", s, "'");
  return v;
}

bool ConfigNode::as_bool() const {
  const std::string& s = as_scalar();
  if (s == "true" || s == "True" || s == "yes" || s == "on" || s == "1") return true;
  if (s == "false" || s == "False" || s == "no" || s == "off" || s == "0") return false;
  BW_THROW(ConfigError, where(), ": expected true or false, got '", s, "'");
}

const ConfigNode* ConfigNode::find(std::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  for (const auto& e : map_)
    if (e.first == key) return &e.second;
  return nullptr;
}

const ConfigNode& ConfigNode::at(std::string_view key) const {
  as_map();
  const ConfigNode* n = find(key);
  BW_CHECK(n, ConfigError, where(), ": missing required key '", key, "'");
  return *n;
}

std::string ConfigNode::where() const {
  std::string w = source_.empty() ? "<config>" : source_;
  if (line_ > 0) w += ":" + std::to_string(line_);
  if (!path_.empty()) w += ": " + path_;
  return w;
}

void ConfigNode::check_keys(const std::vector<std::string>& allowed) const {
  for (const auto& [k, v] : as_map()) {
    if (std::find(allowed.begin(), allowed.end(), k) != allowed.end()) continue;
    std::string near = nearest(k, allowed);
    std::string list;
    for (std::size_t i = 0; i < allowed.size(); ++i) list += (i ? ", " : "") + allowed[i];
    BW_THROW(ConfigError, v.where(), ": unknown key '", k, "'",
             near.empty() ? "" : " (did you mean '" + near + "'?)", "; valid keys: ", list);
  }
}

std::string ConfigNode::to_yaml() const {
  std::string out;
  emit(*this, out);
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string nearest(std::string_view key, const std::vector<std::string>& candidates) {
  std::string best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& c : candidates) {
    std::size_t d = edit_distance(key, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  // Suggest only when at most about a third of the characters differ.
  if (best_d > std::max<std::size_t>(2, key.size() / 3)) return "";
  return best;
}

template <> bool config_value<bool>(const ConfigNode& n) { return n.as_bool(); }
template <> int64_t config_value<int64_t>(const ConfigNode& n) { return n.as_int(); }
template <> int config_value<int>(const ConfigNode& n) {
  int64_t v = n.as_int();
  BW_CHECK(v >= INT32_MIN && v <= INT32_MAX, ConfigError, n.where(), ": integer out of range: ", v);
  return static_cast<int>(v);
}
template <> double config_value<double>(const ConfigNode& n) { return n.as_double(); }
template <> float config_value<float>(const ConfigNode& n) { return static_cast<float>(n.as_double()); }
template <> std::string config_value<std::string>(const ConfigNode& n) { return n.as_scalar(); }

template <> std::vector<std::string> config_value<std::vector<std::string>>(const ConfigNode& n) {
  std::vector<std::string> out;
  if (n.is_list()) {
    for (const auto& c : n.as_list()) out.push_back(c.as_scalar());
    return out;
  }
  const std::string& s = n.as_scalar();
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t comma = s.find(',', start);
    std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

template <> std::vector<double> config_value<std::vector<double>>(const ConfigNode& n) {
  std::vector<double> out;
  if (n.is_list())
    for (const auto& c : n.as_list()) out.push_back(c.as_double());
  else
    out.push_back(n.as_double());
  return out;
}

template <> std::vector<int64_t> config_value<std::vector<int64_t>>(const ConfigNode& n) {
  std::vector<int64_t> out;
  if (n.is_list())
    for (const auto& c : n.as_list()) out.push_back(c.as_int());
  else
    out.push_back(n.as_int());
  return out;
}

}  // namespace bluewhale
