// Command-line options of one subcommand, each declared once with its help text.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace bluewhale::cli {

class Args {
 public:
  Args(std::string command, std::string usage, std::string description)
      : command_(std::move(command)), usage_(std::move(usage)), description_(std::move(description)) {}

  // A valued option "--name VALUE"; multi = true collects every value up to the next option.
  Args& option(std::string name, std::string help, std::string default_value = "", bool multi = false);
  // A switch "--name" (no value).
  Args& flag(std::string name, std::string help);
  // Positional arguments (collected in order) with their help line.
  Args& positional(std::string name, std::string help);

  // Parses argv[first..]; throws ConfigError on unknown options (naming the nearest) or missing values.
  // Returns false when --help was asked (help already printed to stdout).
  bool parse(int argc, char** argv, int first);

  bool has(const std::string& name) const;
  std::string get(const std::string& name) const;
  const std::vector<std::string>& values(const std::string& name) const;
  int64_t get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool flag_set(const std::string& name) const { return has(name); }
  const std::vector<std::string>& positionals() const { return positional_values_; }
  // Fails with ConfigError unless the option was given.
  std::string require(const std::string& name) const;

  std::string help() const;

 private:
  struct Opt {
    std::string name, help, def;
    bool is_flag = false, multi = false;
  };
  const Opt* find(const std::string& name) const;
  std::string command_, usage_, description_;
  std::vector<Opt> opts_;
  std::vector<std::pair<std::string, std::string>> positional_help_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_values_;
};

// Creates the directories above an output file named on the command line (a user asking for
// runs/a/report.html expects runs/a/ to appear); IoError naming the directory when that fails.
void create_parent_dirs(const std::string& file);

}  // namespace bluewhale::cli
