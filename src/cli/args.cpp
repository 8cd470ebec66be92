#include "args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "bluewhale/core/config.h"
#include "bluewhale/core/error.h"

namespace bluewhale::cli {

Args& Args::option(std::string name, std::string help, std::string default_value, bool multi) {
  opts_.push_back(Opt{std::move(name), std::move(help), std::move(default_value), false, multi});
  return *this;
}

Args& Args::flag(std::string name, std::string help) {
  opts_.push_back(Opt{std::move(name), std::move(help), "", true, false});
  return *this;
}

Args& Args::positional(std::string name, std::string help) {
  positional_help_.emplace_back(std::move(name), std::move(help));
  return *this;
}

const Args::Opt* Args::find(const std::string& name) const {
  for (const auto& o : opts_)
    if (o.name == name) return &o;
  return nullptr;
}

bool Args::parse(int argc, char** argv, int first) {
  for (int i = first; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (a.rfind("--", 0) != 0 || a.size() == 2) {
      positional_values_.push_back(a);
      continue;
    }
    std::string name = a.substr(2), inline_value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      inline_value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    const Opt* o = find(name);
    if (!o) {
      std::vector<std::string> names;
      for (const auto& x : opts_) names.push_back(x.name);
      std::string near = nearest(name, names);
      BW_THROW(ConfigError, command_, ": unknown option '--", name, "'", near.empty() ? "" : " (did you mean '--" + near + "'?)",
               "; see '", command_, " --help'");
    }
    auto& vals = values_[name];
    if (o->is_flag) {
      BW_CHECK(!has_inline, ConfigError, command_, ": option '--", name, "' takes no value");
      vals.push_back("1");
      continue;
    }
    if (has_inline) {
      vals.push_back(inline_value);
      continue;
    }
    int taken = 0;
    while (i + 1 < argc && (std::string(argv[i + 1]).rfind("--", 0) != 0 || std::string(argv[i + 1]).size() == 2)) {
      vals.push_back(argv[++i]);
      ++taken;
      if (!o->multi) break;
    }
    BW_CHECK(taken > 0, ConfigError, command_, ": option '--", name, "' needs a value");
  }
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end() && !it->second.empty()) return it->second.back();
  const Opt* o = find(name);
  return o ? o->def : "";
}

const std::vector<std::string>& Args::values(const std::string& name) const {
  static const std::vector<std::string> kEmpty;
  auto it = values_.find(name);
  return it == values_.end() ? kEmpty : it->second;
}

int64_t Args::get_int(const std::string& name) const {
  std::string v = get(name);
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  BW_CHECK(!v.empty() && *end == '\0' && errno == 0, ConfigError, command_, ": --", name, " expects an integer, got '", v, "'");
  return x;
}

double Args::get_double(const std::string& name) const {
  std::string v = get(name);
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  BW_CHECK(!v.empty() && *end == '\0', ConfigError, command_, ": --", name, " expects a number, got '", v, "'");
  return x;
}

std::string Args::require(const std::string& name) const {
  BW_CHECK(has(name) && !get(name).empty(), ConfigError, command_, ": missing required option --", name,
           "; see '", command_, " --help'");
  return get(name);
}

std::string Args::help() const {
  std::string s = "usage: " + usage_ + "\n\n" + description_ + "\n";
  if (!positional_help_.empty()) {
    s += "\narguments:\n";
    for (const auto& [n, h] : positional_help_) s += "  " + n + std::string(n.size() < 22 ? 22 - n.size() : 1, ' ') + h + "\n";
  }
  s += "\noptions:\n";
  for (const auto& o : opts_) {
    std::string left = "--" + o.name + (o.is_flag ? "" : o.multi ? " VALUE..." : " VALUE");
    s += "  " + left + std::string(left.size() < 22 ? 22 - left.size() : 1, ' ') + o.help;
    if (!o.def.empty()) s += " (default " + o.def + ")";
    s += "\n";
  }
  s += "  --help                show this help\n";
  return s;
}

void create_parent_dirs(const std::string& file) {
  const std::filesystem::path parent = std::filesystem::path(file).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(parent, ec);
  BW_CHECK(!ec, IoError, "cannot create directory '", parent.string(), "' for '", file, "': ", ec.message());
}

}  // namespace bluewhale::cli
