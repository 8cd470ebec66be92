// End-to-end tests of `bluewhale tune` through the built binary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "bluewhale/core/io.h"
#include "bluewhale/tune/tuner.h"
#include "test_util.h"
#include "tune/mpi_api.h"
#include "tune/png_reader.h"

namespace bluewhale {
namespace {

using testing::run_cli;
using testing::TempDir;
using testing::write_text;

double number_after(const std::string& out, const std::string& pattern) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex(pattern + "([0-9.]+)"))) return -1;
  return std::stod(m[1]);
}

TEST(TuneCli, AdviseTuneStatusBestExportReportAndTrainTheBest) {
  TempDir dir;
  const std::string d = dir.path().string();
  ASSERT_EQ(run_cli("gen criteo --rows 40000 --seed 5 --out " + d + "/day.tsv").exit_code, 0);
  auto p = run_cli("prep --recipe " + std::string(BW_SOURCE_DIR) + "/recipes/dlrm-criteo.yaml --input " + d +
                   "/day.tsv --out " + d + "/ds --quiet");
  ASSERT_EQ(p.exit_code, 0) << p.output;

  auto a = run_cli("tune advise --data " + d + "/ds --out " + d + "/adv.yaml --budget 4 --threads 2");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_NE(a.output.find("model.dim"), std::string::npos) << a.output;
  EXPECT_NE(a.output.find("train.batch_size"), std::string::npos);
  EXPECT_NE(a.output.find("note: per-table dimension"), std::string::npos);
  std::string adv = read_file(d + "/adv.yaml");
  EXPECT_NE(adv.find("tune:"), std::string::npos);
  // Keep the test quick: small MLPs and dimensions.
  adv = std::regex_replace(adv, std::regex("bottom: \\[[0-9, ]+\\]"), "bottom: [16, 8]");
  adv = std::regex_replace(adv, std::regex("top: \\[[0-9, ]+\\]"), "top: [16, 1]");
  adv = std::regex_replace(adv, std::regex("  dim: [0-9]+"), "  dim: 8");
  adv = std::regex_replace(adv, std::regex("name: model.dim, type: int, low: [0-9]+, high: [0-9]+"),
                           "name: model.dim, type: int, low: 4, high: 8");
  write_text(d + "/adv.yaml", adv);

  auto t = run_cli("tune --recipe " + d + "/adv.yaml --data " + d + "/ds --out " + d + "/study --parallel 2 --threads 2");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  // Two trials run at once, so they may end in any order: each trial ends once, and the done counts
  // go 1/4 .. 4/4.
  std::set<int> ended, done;
  const std::regex trial_line("\\btrial ([0-9]+) \\(([0-9]+)/4\\) (complete|pruned)");
  for (std::sregex_iterator it(t.output.begin(), t.output.end(), trial_line), end; it != end; ++it) {
    EXPECT_TRUE(ended.insert(std::stoi((*it)[1])).second) << (*it)[0] << "\n" << t.output;
    EXPECT_TRUE(done.insert(std::stoi((*it)[2])).second) << (*it)[0] << "\n" << t.output;
  }
  EXPECT_EQ(ended, (std::set<int>{1, 2, 3, 4})) << t.output;
  EXPECT_EQ(done, (std::set<int>{1, 2, 3, 4})) << t.output;
  const double best_auc = number_after(t.output, "best: trial [0-9]+: auc ");
  EXPECT_GT(best_auc, 0.6) << t.output;

  auto s = run_cli("tune status " + d + "/study");
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_NE(s.output.find("4 trials"), std::string::npos) << s.output;
  EXPECT_NEAR(number_after(s.output, "best: trial [0-9]+: auc "), best_auc, 1e-4) << s.output;

  // A finished study run again does nothing more.
  auto again = run_cli("tune --recipe " + d + "/adv.yaml --data " + d + "/ds --out " + d + "/study");
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("0 run now"), std::string::npos) << again.output;

  auto b = run_cli("tune best " + d + "/study --out " + d + "/best.yaml");
  ASSERT_EQ(b.exit_code, 0) << b.output;
  // The best recipe trains with `bluewhale train` (it carries the dataset's prep sections too) to the
  // same AUC as its trial.
  auto tr = run_cli("train --recipe " + d + "/best.yaml --data " + d + "/ds --out " + d + "/best_run");
  ASSERT_EQ(tr.exit_code, 0) << tr.output;
  EXPECT_NEAR(number_after(tr.output, "valid: AUC "), best_auc, 2e-3) << tr.output;

  auto csv = run_cli("tune export " + d + "/study --format csv");
  ASSERT_EQ(csv.exit_code, 0);
  EXPECT_EQ(csv.output.rfind("id,status,seconds,model.lr,", 0), 0u) << csv.output;
  EXPECT_EQ(std::count(csv.output.begin(), csv.output.end(), '\n'), 5);
  ASSERT_EQ(run_cli("tune export " + d + "/study --format json --out " + d + "/t.json").exit_code, 0);
  auto j = nlohmann::json::parse(read_file(d + "/t.json"));
  EXPECT_EQ(j["trials"].size(), 4u);
  EXPECT_FALSE(j["trials"][0]["intermediate"].empty());

  auto r = run_cli("tune report " + d + "/study");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string html = read_file(d + "/study/report.html");
  EXPECT_GE(std::count(html.begin(), html.end(), '\n'), 1);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Convergence"), std::string::npos);
  EXPECT_EQ(html.find("http://") == std::string::npos || html.find("xmlns='http://www.w3.org/2000/svg'") != std::string::npos, true);
  // One PNG per plot (one objective: no Pareto front), 560 x 322 logical pixels at the default scale 2; the
  // importances are 22 high per parameter + 10, below the 22-pixel title band.
  EXPECT_NE(r.output.find("3 PNG plots written to " + d + "/study/plots/ (convergence.png, importances.png, "
                          "learning_curves.png)"),
            std::string::npos)
      << r.output;
  for (const char* name : {"convergence", "importances", "learning_curves"}) {
    const auto png = testing::decode_png(read_file(d + "/study/plots/" + name + ".png"));
    EXPECT_EQ(png.width, 1120) << name;
    const int params = static_cast<int>(j["study"]["space"].size());
    EXPECT_EQ(png.height, name == std::string("importances") ? 2 * (22 * params + 10 + 22) : 644) << name;
  }
}

TEST(TuneCli, CommandTuningResumesAfterAKillAndBadInputIsClear) {
  TempDir dir;
  const std::string d = dir.path().string();
  write_text(d + "/r.yaml",
             "tune:\n  algorithm: tpe\n  budget: 4\n  objectives: [{name: loss, direction: min}]\n"
             "  params:\n    - {name: x, type: float, low: -2, high: 2}\n");
  // The first run is killed while its second trial sleeps.
  const std::string cmd = std::string(BW_CLI_PATH) + " tune --recipe " + d + "/r.yaml --out " + d +
                          "/study --command 'if [ -f " + d + "/slow ]; then sleep 8; fi; touch " + d +
                          "/slow; echo {x}' > " + d + "/log.txt 2>&1";
  const int rc = std::system(("timeout -s KILL 3 sh -c \"" + std::regex_replace(cmd, std::regex("\""), "\\\"") + "\"").c_str());
  EXPECT_NE(rc, 0);
  auto s = run_cli("tune status " + d + "/study");
  ASSERT_EQ(s.exit_code, 0) << s.output;
  EXPECT_NE(s.output.find("2 trials: 1 complete"), std::string::npos) << s.output;
  EXPECT_NE(s.output.find("1 running"), std::string::npos) << s.output;
  // The second run reruns the interrupted trial first, then finishes the budget.
  fs::remove(d + "/slow");
  auto t = run_cli("tune --recipe " + d + "/r.yaml --out " + d + "/study --command 'echo {x}'");
  ASSERT_EQ(t.exit_code, 0) << t.output;
  s = run_cli("tune status " + d + "/study");
  EXPECT_NE(s.output.find("5 trials: 4 complete, 0 pruned, 0 failed, 0 running, 1 interrupted"), std::string::npos)
      << s.output;
  // Report: --png-scale is checked before anything is written; --no-png writes the HTML only.
  for (const char* bad : {"0", "9", "-1"}) {
    auto r = run_cli("tune report " + d + "/study --png-scale " + bad);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--png-scale must be 1..8, got " + std::string(bad)), std::string::npos) << r.output;
  }
  auto word = run_cli("tune report " + d + "/study --png-scale two");
  EXPECT_EQ(word.exit_code, 2);
  EXPECT_NE(word.output.find("--png-scale expects an integer, got 'two'"), std::string::npos) << word.output;
  EXPECT_FALSE(fs::exists(d + "/study/report.html"));
  auto nopng = run_cli("tune report " + d + "/study --no-png");
  ASSERT_EQ(nopng.exit_code, 0) << nopng.output;
  EXPECT_TRUE(fs::exists(d + "/study/report.html"));
  EXPECT_FALSE(fs::exists(d + "/study/plots"));
  EXPECT_EQ(nopng.output.find("PNG"), std::string::npos) << nopng.output;
  // --out into folders that do not exist yet creates them; under a regular file it is a clear error.
  auto small = run_cli("tune report " + d + "/study --png-scale 1 --out " + d + "/pages/a/r.html");
  ASSERT_EQ(small.exit_code, 0) << small.output;
  EXPECT_NE(small.output.find("written to " + d + "/pages/a/plots/"), std::string::npos) << small.output;
  const auto conv = testing::decode_png(read_file(d + "/pages/a/plots/convergence.png"));
  EXPECT_EQ(conv.width, 560);
  EXPECT_EQ(conv.height, 322);
  EXPECT_TRUE(fs::exists(d + "/pages/a/plots/importances.png"));
  auto under_file = run_cli("tune report " + d + "/study --out " + d + "/pages/a/r.html/x/r.html");
  EXPECT_NE(under_file.exit_code, 0);
  EXPECT_NE(under_file.output.find("cannot create directory '" + d + "/pages/a/r.html/x'"), std::string::npos)
      << under_file.output;
  auto exported = run_cli("tune export " + d + "/study --format csv --out " + d + "/exports/deep/t.csv");
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_NE(read_file(d + "/exports/deep/t.csv").find("id"), std::string::npos);
  auto help = run_cli("tune report --help");
  EXPECT_NE(help.output.find("--png-scale"), std::string::npos) << help.output;
  EXPECT_NE(help.output.find("--no-png"), std::string::npos) << help.output;

  auto best = run_cli("tune best " + d + "/study");
  EXPECT_NE(best.exit_code, 0);
  EXPECT_NE(best.output.find("tuned a command"), std::string::npos) << best.output;

  // Bad input: budget zero, a corrupted store, an empty space, an unknown subcommand.
  auto z = run_cli("tune --recipe " + d + "/r.yaml --out " + d + "/z --command 'echo 1' --budget 0");
  EXPECT_EQ(z.exit_code, 2);
  EXPECT_NE(z.output.find("--budget must be at least 1"), std::string::npos) << z.output;
  write_text(d + "/bad/trials.db", "not a database at all, but long enough to look like a file header........");
  auto c = run_cli("tune --recipe " + d + "/r.yaml --out " + d + "/bad --command 'echo 1'");
  EXPECT_EQ(c.exit_code, 1);
  EXPECT_NE(c.output.find("not a BlueWhale trial store, or corrupted"), std::string::npos) << c.output;
  EXPECT_EQ(read_file(d + "/bad/trials.db"), "not a database at all, but long enough to look like a file header........");
  write_text(d + "/empty.yaml", "tune:\n  objectives: [{name: loss, direction: min}]\n  params: []\n");
  auto e = run_cli("tune --recipe " + d + "/empty.yaml --out " + d + "/e --command 'echo 1'");
  EXPECT_EQ(e.exit_code, 2);
  EXPECT_NE(e.output.find("empty.yaml:3"), std::string::npos) << e.output;
  EXPECT_NE(e.output.find("search space is empty"), std::string::npos) << e.output;
  auto u = run_cli("tune stauts " + d + "/study");
  EXPECT_EQ(u.exit_code, 2);
  EXPECT_NE(u.output.find("did you mean 'status'"), std::string::npos) << u.output;
}

}  // namespace
}  // namespace bluewhale

namespace bluewhale {
namespace {

TEST(TuneCli, MpiRanksRunTrialsOfOneStudy) {
  if (!tune::MpiSession::compiled()) GTEST_SKIP() << "built without MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "mpirun is not installed";
  TempDir dir;
  const std::string d = dir.path().string();
  write_text(d + "/r.yaml",
             "tune:\n  algorithm: gp\n  budget: 8\n  objectives: [{name: loss, direction: min}]\n"
             "  params:\n    - {name: x, type: float, low: -2, high: 2}\n");
  // OpenMPI leaks at MPI_Finalize from its dlopen'ed components (frames LeakSanitizer cannot name, so no
  // suppression file can match them); leak checking is off for the ranks only, ASan/UBSan still run.
  const std::string cmd = "ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe -n 3 "
                          "-x ASAN_OPTIONS " + std::string(BW_CLI_PATH) +
                          " tune --recipe " + d + "/r.yaml --out " + d + "/study --command 'sleep 0.1; echo {x}' > " + d +
                          "/log.txt 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_file(d + "/log.txt");
  const std::string log = read_file(d + "/log.txt");
  EXPECT_NE(log.find("2 worker ranks"), std::string::npos) << log;
  auto j = run_cli("tune export " + d + "/study --format json --out " + d + "/t.json");
  ASSERT_EQ(j.exit_code, 0) << j.output;
  auto trials = nlohmann::json::parse(read_file(d + "/t.json"))["trials"];
  ASSERT_EQ(trials.size(), 8u);
  std::set<int> workers;
  for (const auto& t : trials) {
    EXPECT_EQ(t["status"], "complete");
    EXPECT_NEAR(t["values"][0].get<double>(), t["params"]["x"].get<double>(), 1e-9);
    workers.insert(t["worker"].get<int>());
  }
  EXPECT_EQ(workers, (std::set<int>{1, 2}));  // rank 0 coordinates, ranks 1 and 2 run trials
}

// MPI is loaded only by `tune` under a launcher (src/tune/mpi_api.h): the binary does not link it, and a
// launched process whose module cannot be loaded fails naming the file and how to point at another.
TEST(TuneCli, MpiModuleIsLoadedOnlyUnderALauncher) {
  if (!tune::MpiSession::compiled()) GTEST_SKIP() << "built without MPI";
  TempDir dir;
  const std::string d = dir.path().string();
  if (std::system("command -v ldd >/dev/null 2>&1") == 0) {
    ASSERT_EQ(std::system(("ldd " + std::string(BW_CLI_PATH) + " > " + d + "/ldd.txt 2>&1").c_str()), 0);
    const std::string libs = read_file(d + "/ldd.txt");
    EXPECT_NE(libs.find("libc.so"), std::string::npos) << libs;
    EXPECT_EQ(libs.find("libmpi"), std::string::npos) << libs;
  }
  write_text(d + "/r.yaml",
             "tune:\n  algorithm: random\n  budget: 2\n  objectives: [{name: loss, direction: min}]\n"
             "  params:\n    - {name: x, type: float, low: -2, high: 2}\n");
  const std::string args = "tune --recipe " + d + "/r.yaml --out " + d + "/study --command 'echo {x}'";
  // Without a launcher's environment no module is needed: a one-rank study.
  auto plain = run_cli(args, "BW_MPI_MODULE=/nonexistent/libbluewhale_mpi.so");
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  auto missing = run_cli(args + "2", "OMPI_COMM_WORLD_SIZE=2 BW_MPI_MODULE=/nonexistent/libbluewhale_mpi.so");
  EXPECT_NE(missing.exit_code, 0);
  for (const char* part : {"MPI module cannot be loaded", "/nonexistent/libbluewhale_mpi.so", "BW_MPI_MODULE"})
    EXPECT_NE(missing.output.find(part), std::string::npos) << part << "\n" << missing.output;
  // A shared object that is not the module (zlib, which every build links).
  auto other = run_cli(args + "3", "OMPI_COMM_WORLD_SIZE=2 BW_MPI_MODULE=libz.so.1");
  EXPECT_NE(other.exit_code, 0);
  for (const char* part : {"'libz.so.1' is not this build's MPI module", "no bw_mpi_api"})
    EXPECT_NE(other.output.find(part), std::string::npos) << part << "\n" << other.output;
  // A module of another interface version (built with the tests), refused before any of its calls.
  const std::string stale = (fs::path(BW_CLI_PATH).parent_path() / "libtest_mpi_module_other_version.so").string();
  auto version = run_cli(args + "4", "OMPI_COMM_WORLD_SIZE=2 BW_MPI_MODULE=" + stale);
  EXPECT_NE(version.exit_code, 0);
  for (const std::string& part : {"'" + stale + "' is not this build's MPI module",
                                 "interface version " + std::to_string(BW_MPI_API_VERSION + 1)})
    EXPECT_NE(version.output.find(part), std::string::npos) << part << "\n" << version.output;
  // The study directories of the failed runs were never created.
  for (const char* suffix : {"2", "3", "4"}) EXPECT_FALSE(fs::exists(d + "/study" + suffix)) << suffix;
}

}  // namespace
}  // namespace bluewhale
