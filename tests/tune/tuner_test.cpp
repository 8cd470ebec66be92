#include "bluewhale/tune/tuner.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <chrono>
#include <cmath>
#include <thread>

#include "bluewhale/core/parallel.h"
#include "bluewhale/tune/test_functions.h"
#include "test_util.h"

using namespace bluewhale;
using namespace bluewhale::tune;
using bluewhale::testing::TempDir;

namespace {

std::vector<ObjectiveSpec> minimize(const std::string& name = "f") { return {ObjectiveSpec{name, Direction::kMinimize}}; }

ObjectiveFn branin_objective() {
  return [f = test_function("branin")](TrialContext& t) { return std::vector<double>{f.f(test_point(f, t.params()))}; };
}

int count(const std::vector<Trial>& trials, TrialStatus s) {
  int n = 0;
  for (const auto& t : trials) n += t.status == s;
  return n;
}

TuneOptions opts(const std::string& algorithm, int budget, uint64_t seed = 0, int parallel = 1) {
  TuneOptions o;
  o.algorithm = algorithm;
  o.budget = budget;
  o.seed = seed;
  o.parallel = parallel;
  return o;
}

AshaOptions asha(int64_t min_resource, double eta, int min_trials) {
  AshaOptions a;
  a.enabled = true;
  a.min_resource = min_resource;
  a.eta = eta;
  a.min_trials = min_trials;
  return a;
}

TuneOptions with_asha(TuneOptions o, AshaOptions a) {
  o.early_stopping = a;
  return o;
}

TuneOptions with_threads(TuneOptions o, int threads) {
  o.threads = threads;
  return o;
}

}  // namespace

TEST(Asha, StopsTrialsOutsideTheTopFractionOfEachRung) {
  Asha a(asha(10, 2, 1));
  EXPECT_EQ(a.rung_resource(0), 10);
  EXPECT_EQ(a.rung_resource(2), 40);
  EXPECT_FALSE(a.should_stop(1, 5, 1.0));    // below the first rung: no decision
  EXPECT_FALSE(a.should_stop(1, 10, 0.5));   // alone at rung 0: the best
  EXPECT_TRUE(a.should_stop(2, 10, 0.9));    // 2 at rung 0, keep 1: 0.9 is not the best
  EXPECT_FALSE(a.should_stop(3, 12, 0.4));   // the new best of rung 0
  EXPECT_FALSE(a.should_stop(4, 10, 0.45));  // 4 entries, keep 2: second best
  EXPECT_TRUE(a.should_stop(5, 10, 0.6));    // 5 entries, keep 2: third
  // Trial 1 jumps past rungs 1 and 2 in one report: decided at each.
  EXPECT_FALSE(a.should_stop(1, 45, 0.3));
  EXPECT_TRUE(a.should_stop(3, 20, 0.35));   // rung 1 holds 0.3: 0.35 is second of 2, keep 1
  EXPECT_TRUE(a.should_stop(6, 10, std::nan("")));  // NaN ranks last
}

TEST(Asha, DisabledOrTooFewTrialsNeverStops) {
  Asha off(AshaOptions{});
  EXPECT_FALSE(off.should_stop(1, 100, 1e9));
  Asha a(asha(1, 3, 3));
  EXPECT_FALSE(a.should_stop(1, 1, 0.1));
  EXPECT_FALSE(a.should_stop(2, 1, 0.9));   // only 2 trials at the rung
  EXPECT_TRUE(a.should_stop(3, 1, 0.95));   // 3 trials, keep 1
  EXPECT_THROW(Asha(asha(1, 1, 1)), ConfigError);
  EXPECT_THROW(Asha(asha(0, 3, 1)), ConfigError);
}

TEST(RunStudy, GpFindsBraninMinimumAndStoresEveryTrial) {
  TempDir dir;
  TestFunction f = test_function("branin");
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(f.space, minimize()));
  TuneSummary s = run_study(f.space, minimize(), branin_objective(), *store, opts("gp", 25, 1));
  EXPECT_EQ(s.trials, 25);
  EXPECT_EQ(s.complete, 25);
  ASSERT_TRUE(s.best);
  EXPECT_LT(s.best->values[0] - f.minimum, 0.1);
  auto trials = store->trials();
  double best = 1e9;
  for (const auto& t : trials) best = std::min(best, t.values[0]);
  EXPECT_EQ(best, s.best->values[0]);
}

TEST(RunStudy, CrashingAndNanTrialsAreRecordedFailedAndTheSearchGoesOn) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1)});
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, minimize()));
  int calls = 0;
  TuneSummary s = run_study(space, minimize(), [&](TrialContext& t) -> std::vector<double> {
    ++calls;
    const double x = t.params()["x"].get<double>();
    if (calls % 3 == 0) throw std::runtime_error("segfault in user code");
    if (calls % 3 == 1 && calls > 1) return {std::nan("")};
    return {(x - 0.3) * (x - 0.3)};
  }, *store, opts("tpe", 12, 3));
  EXPECT_EQ(calls, 12);
  auto trials = store->trials();
  EXPECT_EQ(count(trials, TrialStatus::kFailed), 7);
  EXPECT_EQ(s.failed, 7);
  EXPECT_EQ(trials[2].error, "segfault in user code");
  EXPECT_EQ(trials[3].error, "objective 'f' is nan");
  ASSERT_TRUE(s.best);
  EXPECT_EQ(s.best->status, TrialStatus::kComplete);
}

TEST(RunStudy, BudgetZeroIsAConfigErrorAndTouchesNothing) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1)});
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, minimize()));
  try {
    run_study(space, minimize(), [](TrialContext&) { return std::vector<double>{0}; }, *store, opts("gp", 0));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("budget must be at least 1 trial, got 0"), std::string::npos);
  }
  EXPECT_TRUE(store->trials().empty());
}

TEST(RunStudy, ParallelTrialsRunConcurrentlyOnTheirOwnThreadShares) {
  TempDir dir;
  TestFunction f = test_function("branin");
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(f.space, minimize()));
  std::atomic<int> running{0}, peak{0};
  std::atomic<int> threads_seen{0};
  std::mutex mu;
  std::map<int64_t, std::vector<int>> cpus_of;
  TuneSummary s = run_study(f.space, minimize(), [&](TrialContext& t) {
    {
      std::lock_guard<std::mutex> lk(mu);
      cpus_of[t.id()] = t.cpus();
      // The trial's thread runs where it was pinned.
      if (!t.cpus().empty()) {
        cpu_set_t set;
        CPU_ZERO(&set);
        pthread_getaffinity_np(pthread_self(), sizeof set, &set);
        for (int c = 0; c < CPU_SETSIZE; ++c)
          EXPECT_EQ(CPU_ISSET(c, &set) != 0, std::count(t.cpus().begin(), t.cpus().end(), c) == 1) << c;
      }
    }
    const int now = ++running;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    threads_seen = t.threads();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    --running;
    return std::vector<double>{f.f(test_point(f, t.params()))};
  }, *store, with_threads(opts("gp", 10, 0, 2), 4));
  EXPECT_EQ(s.trials, 10);
  EXPECT_EQ(peak.load(), 2);
  EXPECT_EQ(threads_seen.load(), 2);
  std::set<int> workers;
  for (const auto& t : store->trials()) workers.insert(t.worker);
  EXPECT_EQ(workers, (std::set<int>{0, 1}));
  // With at least two CPUs, the two workers are pinned to disjoint halves.
  if (allowed_cpus().size() >= 2) {
    std::map<int, std::vector<int>> by_worker;
    for (const auto& t : store->trials()) by_worker[t.worker] = cpus_of[t.id];
    ASSERT_FALSE(by_worker[0].empty());
    ASSERT_FALSE(by_worker[1].empty());
    for (int c : by_worker[0]) EXPECT_EQ(std::count(by_worker[1].begin(), by_worker[1].end(), c), 0);
  }
}

TEST(RunStudy, KilledRunResumesRerunningTheInterruptedTrial) {
  TempDir dir;
  const fs::path db = dir / "t.db";
  TestFunction f = test_function("branin");
  pid_t pid = fork();
  if (pid == 0) {
    auto store = TrialStore::open_or_create(db, study_json(f.space, minimize()));
    int n = 0;
    run_study(f.space, minimize(), [&](TrialContext& t) {
      if (++n == 4) ::_exit(0);  // the process dies in the middle of trial 4
      return std::vector<double>{f.f(test_point(f, t.params()))};
    }, *store, opts("tpe", 6));
    ::_exit(1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto store = TrialStore::open_or_create(db, study_json(f.space, minimize()));
  auto before = store->trials();
  ASSERT_EQ(before.size(), 4u);
  EXPECT_EQ(before[3].status, TrialStatus::kRunning);
  TuneSummary s = run_study(f.space, minimize(), branin_objective(), *store, opts("tpe", 6));
  auto after = store->trials();
  ASSERT_EQ(after.size(), 7u);  // 3 done + 1 interrupted + its rerun + 2 new
  EXPECT_EQ(after[3].status, TrialStatus::kInterrupted);
  EXPECT_EQ(after[4].params, before[3].params);
  EXPECT_EQ(after[4].status, TrialStatus::kComplete);
  EXPECT_EQ(s.rerun, 1);
  EXPECT_EQ(s.run_now, 3);
  EXPECT_EQ(s.complete, 6);
  // A finished study run again does nothing.
  EXPECT_EQ(run_study(f.space, minimize(), branin_objective(), *store, opts("gp", 6)).run_now, 0);
}

TEST(RunStudy, EarlyStoppingPrunesPoorLearningCurves) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("q", 0, 1)});
  std::vector<ObjectiveSpec> obj{{"auc", Direction::kMaximize}};
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, obj));
  TuneSummary s = run_study(space, obj, [](TrialContext& t) {
    const double q = t.params()["q"].get<double>();
    double auc = 0.5;
    for (int step = 1; step <= 27; ++step) {
      auc = 0.5 + 0.3 * q * (1 - std::exp(-step / 5.0));
      if (t.report(step, auc)) break;
    }
    return std::vector<double>{auc};
  }, *store, with_asha(opts("random", 20, 5), asha(1, 3, 2)));
  EXPECT_GT(s.pruned, 5);
  EXPECT_GT(s.complete, 1);
  ASSERT_TRUE(s.best);
  for (const auto& t : store->trials()) {
    if (t.status == TrialStatus::kPruned) {
      EXPECT_LT(t.intermediate.size(), 27u);
      // The best trial overall was never pruned.
      EXPECT_LT(t.params["q"].get<double>(), s.best->params["q"].get<double>());
    } else {
      EXPECT_EQ(t.intermediate.size(), 27u);
    }
  }
}

TEST(ParetoFront, KeepsOnlyNonDominatedCompleteTrials) {
  std::vector<ObjectiveSpec> obj{{"auc", Direction::kMaximize}, {"seconds", Direction::kMinimize}};
  auto trial = [](int64_t id, double auc, double sec, TrialStatus st = TrialStatus::kComplete) {
    Trial t;
    t.id = id, t.values = {auc, sec}, t.status = st;
    return t;
  };
  std::vector<Trial> trials{trial(1, 0.70, 10), trial(2, 0.75, 20), trial(3, 0.72, 25), trial(4, 0.80, 40),
                            trial(5, 0.69, 5), trial(6, 0.90, 1, TrialStatus::kFailed), trial(7, 0.75, 20)};
  auto front = pareto_front(trials, obj);
  std::vector<int64_t> ids;
  for (const auto& t : front) ids.push_back(t.id);
  EXPECT_EQ(ids, (std::vector<int64_t>{4, 2, 7, 1, 5}));
  EXPECT_EQ(best_trial(trials, obj)->id, 4);
}

TEST(RunStudy, MultiObjectiveSearchSpreadsAlongTheFront) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1), ParamSpec::real("y", 0, 1)});
  std::vector<ObjectiveSpec> obj{{"a", Direction::kMinimize}, {"b", Direction::kMinimize}};
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, obj));
  run_study(space, obj, [](TrialContext& t) {
    const double x = t.params()["x"].get<double>(), y = t.params()["y"].get<double>();
    return std::vector<double>{x + y * y, 1 - x + y * y};
  }, *store, opts("gp", 25, 2));
  auto front = pareto_front(store->trials(), obj);
  EXPECT_GE(front.size(), 4u);
  // The true front is y = 0: front points should have small y.
  for (const auto& t : front) EXPECT_LT(t.params["y"].get<double>(), 0.35);
}

TEST(CommandObjective, ReadsTheLastNumberAndReportsIntermediates) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1), ParamSpec::categorical("mode", {"a", "b"})});
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, minimize("loss")));
  ObjectiveFn fn = command_objective("echo epoch 1 loss=0.9; echo warming up; echo \"epoch 2: {x}\" # {mode}", space);
  run_study(space, minimize("loss"), fn, *store, opts("random", 3));
  for (const auto& t : store->trials()) {
    ASSERT_EQ(t.status, TrialStatus::kComplete) << t.error;
    EXPECT_NEAR(t.values[0], t.params["x"].get<double>(), 1e-9);
    ASSERT_EQ(t.intermediate.size(), 2u);
    EXPECT_EQ(t.intermediate[0].second, 0.9);
  }
}

TEST(CommandObjective, FailuresAndBadPlaceholdersAreClear) {
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("lr", 0, 1)});
  try {
    command_objective("train --lr {lrr}", space);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("{lrr} names no parameter (did you mean {lr}?)"), std::string::npos) << e.what();
  }
  TempDir dir;
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, minimize()));
  run_study(space, minimize(), command_objective("echo oops; exit 3", space), *store, opts("random", 1));
  run_study(space, minimize(), command_objective("echo no number here", space), *store, opts("random", 2));
  auto t = store->trials();
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].status, TrialStatus::kFailed);
  EXPECT_NE(t[0].error.find("exited with status 3; last output: oops"), std::string::npos) << t[0].error;
  EXPECT_NE(t[1].error.find("printed no number"), std::string::npos) << t[1].error;
}

TEST(CommandObjective, PrunedCommandIsTerminated) {
  TempDir dir;
  SearchSpace space(std::vector<ParamSpec>{ParamSpec::real("x", 0, 1)});
  auto store = TrialStore::open_or_create(dir / "t.db", study_json(space, minimize()));
  // Every trial prints its x ten times over one second. With eta 2 and min_trials 1, a trial whose x is
  // worse than every earlier trial's at the first rung is stopped there.
  ObjectiveFn fn = command_objective("for i in 1 2 3 4 5 6 7 8 9 10; do echo {x}; sleep 0.1; done", space);
  run_study(space, minimize(), fn, *store, with_asha(opts("random", 5, 2), asha(1, 2, 1)));
  auto t = store->trials();
  ASSERT_EQ(t.size(), 5u);
  // Rung 0 (step 1) holds every trial's x; a trial is stopped there when at least max(1, n / 2) of the n
  // entries are better. The best so far always runs to its end.
  int pruned = 0;
  double best = 2;
  for (std::size_t i = 0; i < t.size(); ++i) {
    const double x = t[i].params["x"].get<double>();
    std::size_t better = 0;
    for (std::size_t k = 0; k < i; ++k) better += t[k].params["x"].get<double>() < x;
    if (better >= std::max<std::size_t>(1, (i + 1) / 2)) {
      EXPECT_EQ(t[i].status, TrialStatus::kPruned) << i;
      EXPECT_LT(t[i].seconds, 0.6);  // terminated, not run to its end
      EXPECT_NEAR(t[i].values[0], x, 1e-8);
      ++pruned;
    }
    if (x < best) {
      EXPECT_EQ(t[i].status, TrialStatus::kComplete) << i;
      best = x;
    }
  }
  EXPECT_GE(pruned, 1);
}
