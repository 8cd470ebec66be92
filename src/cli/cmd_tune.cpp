// bluewhale tune: Bayesian optimisation of a recipe's model and train sections (or of any command line)
// with early stopping and a SQLite trial store; status, best, advise and export read or prepare studies.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/prep/pipeline.h"
#include "bluewhale/tune/recipe.h"
#include "bluewhale/tune/report.h"
#include "commands.h"

namespace bluewhale::cli {
namespace {

using json = nlohmann::json;
using namespace bluewhale::tune;

constexpr const char* kStoreName = "trials.db";

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.4g", v.get<double>());
    return buf;
  }
  return v.dump();
}

std::string params_text(const json& p) {
  std::string s;
  for (const auto& [k, v] : p.items()) s += (s.empty() ? "" : " ") + k + "=" + value_text(v);
  return s;
}

std::string values_text(const Trial& t, const std::vector<ObjectiveSpec>& obj) {
  std::string s;
  for (std::size_t i = 0; i < obj.size() && i < t.values.size(); ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%s %.4f", i ? ", " : "", obj[i].name.c_str(), t.values[i]);
    s += buf;
  }
  return s;
}

fs::path store_path(const std::string& dir) { return fs::path(dir) / kStoreName; }

// The dataset's stored recipe with `tuned`'s model and train sections: a recipe that `bluewhale train
// --recipe` accepts even when the tuning recipe held only model/train/tune sections.
ConfigNode trainable_recipe(const ConfigNode& tuned, const std::string& data) {
  if (tuned.find("schema") || data.empty() || !fs::exists(fs::path(data) / "meta.json")) return tuned;
  ConfigNode base = load_dataset_recipe(data).root;
  std::vector<std::pair<std::string, ConfigNode>> entries;
  for (const auto& [k, v] : base.as_map())
    if (k != "model" && k != "train" && k != "tune") entries.emplace_back(k, v);
  for (const char* k : {"model", "train"})
    if (const ConfigNode* n = tuned.find(k)) entries.emplace_back(k, *n);
  return ConfigNode::map(std::move(entries), base.source(), base.line(), base.path());
}

int tune_run(int argc, char** argv) {
  Args args("bluewhale tune",
            "bluewhale tune --recipe RECIPE.yaml --data DATASET --out DIR [--budget N --parallel N] [options]\n"
            "       bluewhale tune status DIR | best DIR | export DIR | report DIR | advise --data DATASET",
            "Tunes the recipe's model and train sections on a prepared dataset: trials train DLRM through the\n"
            "same library call as 'bluewhale train', proposed by Bayesian optimisation (the recipe's tune:\n"
            "section; without one, the advisor's ranges), stopped early by successive halving, and recorded in\n"
            "DIR/trials.db. Run the same command again to resume a stopped study. With --command, each trial\n"
            "runs a shell command instead ({name} becomes a parameter's value; the last number it prints is\n"
            "the objective). Under 'mpirun -n K', rank 0 keeps the study and the other ranks run trials (MPI\n"
            "is loaded from libbluewhale_mpi.so next to this binary, or the file BW_MPI_MODULE names).\n"
            "  status DIR    progress, best trial and Pareto front of a study\n"
            "  best DIR      writes the best configuration as a recipe for 'bluewhale train' (DIR/best.yaml)\n"
            "  export DIR    every trial as CSV or JSON\n"
            "  report DIR    a self-contained HTML report with plots (DIR/report.html, DIR/plots/*.png)\n"
            "  advise        proposes a starting configuration and search space for a dataset");
  args.option("recipe", "recipe with model, train and tune sections")
      .option("data", "prepared dataset directory")
      .option("out", "study directory (trials.db, trials/, best.yaml)")
      .option("budget", "trials in the study (default: the recipe's tune.budget)")
      .option("parallel", "trials at once (default: the recipe's tune.parallel)")
      .option("algorithm", "gp, tpe or random (default: the recipe's tune.algorithm)")
      .option("seed", "optimizer seed (default: the recipe's tune.seed)")
      .option("command", "tune this shell command instead of DLRM training")
      .flag("no-early-stopping", "run every trial to its end")
      .option("threads", "threads shared by the parallel trials (0 = all available)", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  // Under mpirun: rank 0 coordinates and keeps the store, every other rank runs trials.
  MpiSession mpi;
  const bool worker = mpi.rank() != 0;
  BW_CHECK(args.positionals().empty(), ConfigError, "bluewhale tune: unexpected argument '", args.positionals()[0],
           "'; expected status, best, export, report or advise, or options (see --help)");
  const fs::path out = args.require("out");
  const bool command_mode = args.has("command");
  ConfigNode recipe = args.has("recipe") ? ConfigNode::parse_yaml_file(args.get("recipe")) : ConfigNode();
  BW_CHECK(command_mode || args.has("data"), ConfigError, "bluewhale tune: missing required option --data DATASET");
  const ConfigNode* tune_node = recipe.find("tune");
  ConfigNode advised;
  if (!tune_node) {
    BW_CHECK(!command_mode, ConfigError, "bluewhale tune: --command needs a recipe with a tune: section");
    Advice a = advise_dlrm(Dataset::open(args.get("data")), Hardware::detect());
    advised = ConfigNode::parse_yaml(a.recipe, "advice for " + args.get("data"));
    tune_node = advised.find("tune");
    if (!worker)
      std::printf("%s has no tune: section; using the advisor's search space (see 'bluewhale tune advise')\n",
                  args.has("recipe") ? args.get("recipe").c_str() : "no recipe given:");
    if (!recipe.find("model") && !recipe.find("train")) recipe = advised;
  }
  TuneSection section = parse_tune_section(*tune_node);
  TuneOptions& opt = section.options;
  auto positive = [&](const char* name) {
    const int64_t v = args.get_int(name);
    BW_CHECK(v >= 1, ConfigError, "bluewhale tune: --", name, " must be at least 1, got ", v);
    return static_cast<int>(v);
  };
  if (args.has("budget")) opt.budget = positive("budget");
  if (args.has("parallel")) opt.parallel = positive("parallel");
  if (args.has("algorithm")) opt.algorithm = args.get("algorithm");
  if (args.has("seed")) opt.seed = static_cast<uint64_t>(args.get_int("seed"));
  if (args.flag_set("no-early-stopping")) opt.early_stopping.enabled = false;
  opt.threads = static_cast<int>(args.get_int("threads"));

  ObjectiveFn objective;
  json extra = {{"kind", command_mode ? "command" : "dlrm"}, {"recipe", recipe.to_yaml()}, {"algorithm", opt.algorithm}};
  if (command_mode) {
    BW_CHECK(section.objectives.size() == 1, ConfigError,
             "bluewhale tune: --command reads one number per trial; the recipe names ", section.objectives.size(),
             " objectives");
    objective = command_objective(args.get("command"), section.space);
    extra["command"] = args.get("command");
  } else {
    extra["data"] = fs::absolute(args.get("data")).lexically_normal().string();
    DlrmObjectiveOptions o;
    o.data = args.get("data");
    o.recipe = recipe;
    o.objectives = section.objectives;
    o.trials_dir = out / "trials";
    objective = dlrm_objective(o);
  }
  if (worker) {
    set_log_level(LogLevel::kWarn);
    run_study_mpi(section.space, section.objectives, objective, nullptr, opt);
    return 0;
  }
  auto store = TrialStore::open_or_create(store_path(out.string()), study_json(section.space, section.objectives, extra));
  const auto before = store->trials();
  std::printf("tune: %s, budget %d trials (%zu in the store), %d at once, %zu parameters, objective%s",
              opt.algorithm.c_str(), opt.budget, before.size(), opt.parallel, section.space.size(),
              section.objectives.size() > 1 ? "s" : "");
  for (const auto& o : section.objectives)
    std::printf(" %s %s", o.direction == Direction::kMaximize ? "max" : "min", o.name.c_str());
  std::printf("%s\n", opt.early_stopping.enabled ? ", early stopping (ASHA)" : "");
  if (mpi.size() > 1) std::printf("tune: MPI: rank 0 coordinates, %d worker ranks run one trial each at a time\n", mpi.size() - 1);
  std::fflush(stdout);
  // Trials train quietly; the tuner prints one line per trial instead.
  if (log_level() < LogLevel::kWarn) set_log_level(LogLevel::kWarn);
  const auto& objs = section.objectives;
  opt.on_trial_end = [&](const Trial& t, int done, int budget) {
    auto best = best_trial(store->trials(), objs);
    std::printf("trial %lld (%d/%d) %s in %s: %s%s%s | best: %s\n", (long long)t.id, done, budget, status_name(t.status),
                format_duration(t.seconds).c_str(),
                t.status == TrialStatus::kFailed ? t.error.c_str() : values_text(t, objs).c_str(),
                t.params.empty() ? "" : " | ", params_text(t.params).c_str(),
                best ? values_text(*best, objs).c_str() : "none yet");
    std::fflush(stdout);
  };
  TuneSummary s = run_study_mpi(section.space, objs, objective, store.get(), opt);
  std::printf("tune: %d trials (%d complete, %d pruned, %d failed) in the store; %d run now in %s\n", s.trials,
              s.complete, s.pruned, s.failed, s.run_now, format_duration(s.seconds).c_str());
  if (s.best) {
    std::printf("best: trial %lld: %s | %s\n", (long long)s.best->id, values_text(*s.best, objs).c_str(),
                params_text(s.best->params).c_str());
    if (!command_mode) {
      ConfigNode best = trainable_recipe(with_params(recipe, s.best->params), args.get("data"));
      write_file_atomic(out / "best.yaml", "# best trial " + std::to_string(s.best->id) + " of " + store->path().string() +
                                               ": " + values_text(*s.best, objs) + "\n" + best.to_yaml() + "\n");
      std::printf("best recipe written to %s\n", (out / "best.yaml").string().c_str());
    }
  }
  return 0;
}

struct OpenedStudy {
  std::unique_ptr<TrialStore> store;
  std::vector<ObjectiveSpec> objectives;
  std::vector<Trial> trials;
};

OpenedStudy open_study(const std::string& dir) {
  OpenedStudy s;
  s.store = TrialStore::open(store_path(dir));
  s.objectives = objectives_from_json(s.store->study().value("objectives", json::array()));
  s.trials = s.store->trials();
  return s;
}

int tune_status(int argc, char** argv) {
  Args args("bluewhale tune status", "bluewhale tune status DIR", "Progress, best trial and Pareto front of a study.");
  args.positional("DIR", "study directory").option("threads", "unused; accepted for uniformity", "0");
  if (!args.parse(argc, argv, 3)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale tune status: expected one study directory");
  OpenedStudy s = open_study(args.positionals()[0]);
  int counts[5] = {0, 0, 0, 0, 0};
  double secs = 0;
  for (const auto& t : s.trials) ++counts[static_cast<int>(t.status)], secs += t.seconds;
  std::printf("study %s: %zu trials: %d complete, %d pruned, %d failed, %d running, %d interrupted; %s of trial time\n",
              s.store->path().string().c_str(), s.trials.size(), counts[1], counts[2], counts[3], counts[0], counts[4],
              format_duration(secs).c_str());
  for (const auto& t : s.trials)
    if (t.status == TrialStatus::kRunning)
      std::printf("  running: trial %lld | %s\n", (long long)t.id, params_text(t.params).c_str());
  auto best = best_trial(s.trials, s.objectives);
  if (!best) {
    std::printf("no complete trial yet\n");
    return 0;
  }
  std::printf("best: trial %lld: %s | %s\n", (long long)best->id, values_text(*best, s.objectives).c_str(),
              params_text(best->params).c_str());
  if (s.objectives.size() > 1) {
    std::printf("Pareto front:\n");
    for (const auto& t : pareto_front(s.trials, s.objectives))
      std::printf("  trial %lld: %s | %s\n", (long long)t.id, values_text(t, s.objectives).c_str(),
                  params_text(t.params).c_str());
  }
  return 0;
}

int tune_best(int argc, char** argv) {
  Args args("bluewhale tune best", "bluewhale tune best DIR [--out RECIPE.yaml]",
            "Writes the best trial's configuration as a recipe ready for 'bluewhale train --recipe'.");
  args.positional("DIR", "study directory")
      .option("out", "recipe to write (default DIR/best.yaml)")
      .option("threads", "unused; accepted for uniformity", "0");
  if (!args.parse(argc, argv, 3)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale tune best: expected one study directory");
  const std::string dir = args.positionals()[0];
  OpenedStudy s = open_study(dir);
  auto best = best_trial(s.trials, s.objectives);
  BW_CHECK(best, InputError, "bluewhale tune best: ", s.store->path().string(), " has no complete trial yet");
  const json& study = s.store->study();
  BW_CHECK(study.value("kind", "") == "dlrm" && study.contains("recipe"), InputError, "bluewhale tune best: ",
           s.store->path().string(), " tuned a command, not a recipe; its best parameters: ", params_text(best->params));
  ConfigNode base = ConfigNode::parse_yaml(study["recipe"].get<std::string>(), s.store->path().string() + " (recipe)");
  ConfigNode r = trainable_recipe(with_params(base, best->params), study.value("data", ""));
  const fs::path out = args.has("out") ? fs::path(args.get("out")) : fs::path(dir) / "best.yaml";
  create_parent_dirs(out.string());
  write_file_atomic(out, "# best trial " + std::to_string(best->id) + " of " + s.store->path().string() + ": " +
                             values_text(*best, s.objectives) + "\n" + r.to_yaml() + "\n");
  std::printf("best: trial %lld: %s | %s\nrecipe written to %s\n", (long long)best->id,
              values_text(*best, s.objectives).c_str(), params_text(best->params).c_str(), out.string().c_str());
  return 0;
}

int tune_export(int argc, char** argv) {
  Args args("bluewhale tune export", "bluewhale tune export DIR [--format csv|json] [--out FILE]",
            "Every trial of a study (parameters, values, status, timing; JSON adds intermediate values).");
  args.positional("DIR", "study directory")
      .option("format", "csv or json", "csv")
      .option("out", "output file (default: stdout)")
      .option("threads", "unused; accepted for uniformity", "0");
  if (!args.parse(argc, argv, 3)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale tune export: expected one study directory");
  const std::string fmt = args.get("format");
  BW_CHECK(fmt == "csv" || fmt == "json", ConfigError, "bluewhale tune export: --format expects csv or json, got '", fmt, "'");
  auto store = TrialStore::open(store_path(args.positionals()[0]));
  const std::string text = fmt == "csv" ? store->export_csv() : store->export_json().dump(2) + "\n";
  if (args.has("out")) {
    create_parent_dirs(args.get("out"));
    write_file_atomic(args.get("out"), text);
  }
  else std::fputs(text.c_str(), stdout);
  return 0;
}

int tune_report(int argc, char** argv) {
  Args args("bluewhale tune report", "bluewhale tune report DIR [--out report.html] [--no-png] [--png-scale N]",
            "A self-contained HTML page: best configuration, Pareto front, convergence curve, parameter\n"
            "importances, learning curves (inline SVG plots). Each plot is also written as a PNG image,\n"
            "plots/<name>.png next to the HTML file (DIR/plots/ by default).");
  args.positional("DIR", "study directory")
      .option("out", "HTML file (default DIR/report.html)")
      .flag("no-png", "write the HTML page only, no PNG images")
      .option("png-scale", "pixels per SVG pixel in the PNG images, 1..8 (2: 1120 pixels wide)", "2")
      .option("threads", "unused; accepted for uniformity", "0");
  if (!args.parse(argc, argv, 3)) return 0;
  BW_CHECK(args.positionals().size() == 1, ConfigError, "bluewhale tune report: expected one study directory");
  const int64_t scale = args.get_int("png-scale");
  BW_CHECK(scale >= 1 && scale <= kMaxPlotScale, ConfigError, "bluewhale tune report: --png-scale must be 1..",
           kMaxPlotScale, ", got ", scale);
  const std::string dir = args.positionals()[0];
  auto store = TrialStore::open(store_path(dir));
  const fs::path out = args.has("out") ? fs::path(args.get("out")) : fs::path(dir) / "report.html";
  const json study = store->study();
  const std::vector<Trial> trials = store->trials();
  create_parent_dirs(out.string());
  write_file_atomic(out, html_report(study, trials));
  std::printf("report written to %s\n", out.string().c_str());
  if (!args.flag_set("no-png")) {
    const fs::path plots = out.parent_path() / "plots";
    const auto written = write_report_pngs(study, trials, plots, static_cast<int>(scale));
    std::string names;
    for (const auto& p : written) names += (names.empty() ? "" : ", ") + p.filename().string();
    std::printf("%zu PNG plot%s written to %s/ (%s)\n", written.size(), written.size() == 1 ? "" : "s",
                plots.string().c_str(), names.c_str());
  }
  return 0;
}

int tune_advise(int argc, char** argv) {
  Args args("bluewhale tune advise", "bluewhale tune advise --data DATASET [--out RECIPE.yaml] [options]",
            "Proposes a DLRM configuration and search space from the dataset (rows, per-table cardinality) and\n"
            "this machine (cores, memory, MPI ranks), one reason per choice, and writes it as an editable\n"
            "recipe for 'bluewhale tune --recipe'.");
  args.option("data", "prepared dataset directory")
      .option("out", "recipe to write (default: print only)")
      .option("budget", "trials the written tune section asks for", "30")
      .option("trial-minutes", "time budget of one trial", "10")
      .option("threads", "cores to plan for (0 = all available)", "0");
  if (!args.parse(argc, argv, 3)) return 0;
  Hardware hw = Hardware::detect();
  if (args.get_int("threads") > 0) hw.cores = static_cast<int>(args.get_int("threads"));
  const int64_t budget = args.get_int("budget");
  BW_CHECK(budget >= 1, ConfigError, "bluewhale tune advise: --budget must be at least 1, got ", budget);
  const double minutes = args.get_double("trial-minutes");
  BW_CHECK(minutes > 0, ConfigError, "bluewhale tune advise: --trial-minutes must be positive");
  Dataset ds = Dataset::open(args.require("data"));
  Advice a = advise_dlrm(ds, hw, static_cast<int>(budget), minutes);
  std::printf("advice for %s on %d cores, %s memory%s:\n", ds.root().string().c_str(), hw.cores,
              format_bytes(double(hw.memory_bytes)).c_str(),
              hw.mpi_ranks > 1 ? (", " + std::to_string(hw.mpi_ranks) + " MPI ranks").c_str() : "");
  for (const auto& it : a.items) std::printf("  %-18s %-16s %s\n", it.key.c_str(), it.value.c_str(), it.reason.c_str());
  for (const auto& n : a.notes) std::printf("  note: %s\n", n.c_str());
  if (args.has("out")) {
    create_parent_dirs(args.get("out"));
    write_file_atomic(args.get("out"), a.recipe);
    std::printf("recipe written to %s (edit it, then: bluewhale tune --recipe %s --data %s --out DIR)\n",
                args.get("out").c_str(), args.get("out").c_str(), args.get("data").c_str());
  } else {
    std::printf("\n%s", a.recipe.c_str());
  }
  return 0;
}

}  // namespace

int cmd_tune(int argc, char** argv) {
  if (argc > 2) {
    const std::string sub = argv[2];
    if (sub == "status") return tune_status(argc, argv);
    if (sub == "best") return tune_best(argc, argv);
    if (sub == "export") return tune_export(argc, argv);
    if (sub == "report") return tune_report(argc, argv);
    if (sub == "advise") return tune_advise(argc, argv);
    if (sub.rfind("--", 0) != 0) {
      const std::string near = nearest(sub, {"status", "best", "export", "report", "advise"});
      BW_THROW(ConfigError, "bluewhale tune: unknown subcommand '", sub, "'",
               near.empty() ? "" : " (did you mean '" + near + "'?)", "; expected status, best, export, report or advise");
    }
  }
  return tune_run(argc, argv);
}

}  // namespace bluewhale::cli
