#include "bluewhale/tune/tuner.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <map>
#include <regex>
#include <thread>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "study_internal.h"

namespace bluewhale::tune {

// ---- ASHA -------------------------------------------------------------------------------------------

Asha::Asha(const AshaOptions& options) : opt_(options) {
  BW_CHECK(opt_.min_resource > 0, ConfigError, "tune.early_stopping.min_steps: expected an integer >= 1, got ",
           opt_.min_resource);
  BW_CHECK(opt_.eta > 1, ConfigError, "tune.early_stopping.eta: expected a number > 1, got ", opt_.eta);
  BW_CHECK(opt_.min_trials >= 1, ConfigError, "tune.early_stopping.min_trials: expected an integer >= 1, got ",
           opt_.min_trials);
}

int64_t Asha::rung_resource(int k) const {
  return static_cast<int64_t>(std::llround(static_cast<double>(opt_.min_resource) * std::pow(opt_.eta, k)));
}

bool Asha::should_stop(int64_t trial, int64_t step, double loss) {
  if (!opt_.enabled) return false;
  std::lock_guard<std::mutex> lk(mu_);
  auto it = std::find_if(next_rung_.begin(), next_rung_.end(), [&](const auto& p) { return p.first == trial; });
  if (it == next_rung_.end()) it = next_rung_.insert(next_rung_.end(), {trial, 0});
  // A NaN loss ranks last: it can never be among the best.
  if (std::isnan(loss)) loss = std::numeric_limits<double>::infinity();
  while (step >= rung_resource(it->second)) {
    const int k = it->second++;
    if (static_cast<int>(rungs_.size()) <= k) rungs_.resize(k + 1);
    std::vector<double>& r = rungs_[k];
    r.push_back(loss);
    const std::size_t n = r.size();
    if (static_cast<int>(n) < opt_.min_trials) continue;
    const std::size_t keep = std::max<std::size_t>(1, static_cast<std::size_t>(std::floor(n / opt_.eta)));
    const std::size_t better = static_cast<std::size_t>(std::count_if(r.begin(), r.end(), [&](double v) { return v < loss; }));
    if (better >= keep) return true;
  }
  return false;
}

// ---- trial context -----------------------------------------------------------------------------------

TrialContext::TrialContext(int64_t id, json params, int threads, std::vector<int> cpus, TrialStore* store,
                           const ObjectiveSpec* first_objective, Asha* asha)
    : TrialContext(id, std::move(params), threads, std::move(cpus),
                   [id, store, first_objective, asha](int64_t step, double value, const json& metrics) {
                     if (store) store->report(id, step, value, metrics);
                     return asha && first_objective && asha->should_stop(id, step, first_objective->loss(value));
                   }) {}

TrialContext::TrialContext(int64_t id, json params, int threads, std::vector<int> cpus, Reporter reporter)
    : id_(id), params_(std::move(params)), threads_(threads), cpus_(std::move(cpus)), reporter_(std::move(reporter)) {}

bool TrialContext::report(int64_t step, double value, const json& metrics) {
  if (reporter_ && reporter_(step, value, metrics)) pruned_ = true;
  return pruned_;
}

// ---- helpers -----------------------------------------------------------------------------------------

json study_json(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, const json& extra) {
  json j = extra.is_object() ? extra : json::object();
  j["space"] = space.to_json();
  j["objectives"] = objectives_to_json(objectives);
  return j;
}

namespace detail {

bool usable(const Trial& t, std::size_t n_obj) {
  if (t.values.size() < n_obj) return false;
  for (std::size_t i = 0; i < n_obj; ++i)
    if (!std::isfinite(t.values[i])) return false;
  return true;
}

// Turns trials into optimizer observations. Several objectives become one loss by a random augmented
// Chebyshev scalarisation of the range-normalised losses (ParEGO, Knowles 2006): each proposal aims at
// a different part of the Pareto front. Failed trials get the worst loss seen, so that the model learns
// to avoid the region instead of proposing it again.
std::vector<Observation> observations(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& obj,
                                      const SearchSpace& space, Rng& rng) {
  const std::size_t m = obj.size();
  std::vector<double> lo(m, std::numeric_limits<double>::infinity()), hi(m, -std::numeric_limits<double>::infinity());
  for (const Trial& t : trials)
    if ((t.status == TrialStatus::kComplete || t.status == TrialStatus::kPruned) && usable(t, m))
      for (std::size_t i = 0; i < m; ++i) {
        lo[i] = std::min(lo[i], obj[i].loss(t.values[i]));
        hi[i] = std::max(hi[i], obj[i].loss(t.values[i]));
      }
  std::vector<double> w(m, 1.0);
  if (m > 1) {
    std::exponential_distribution<double> e(1.0);
    double s = 0;
    for (auto& x : w) s += (x = e(rng));
    for (auto& x : w) x /= s;
  }
  std::vector<Observation> out;
  double worst = -std::numeric_limits<double>::infinity();
  std::vector<std::size_t> failed;
  for (const Trial& t : trials) {
    if (t.status == TrialStatus::kRunning || t.status == TrialStatus::kInterrupted) continue;
    try {
      space.encode(t.params);
    } catch (const ConfigError&) {
      continue;  // a configuration from an older space version cannot inform this one
    }
    if ((t.status == TrialStatus::kComplete || t.status == TrialStatus::kPruned) && usable(t, m)) {
      double loss;
      if (m == 1) {
        loss = obj[0].loss(t.values[0]);
      } else {
        double mx = 0, sum = 0;
        for (std::size_t i = 0; i < m; ++i) {
          const double range = hi[i] > lo[i] ? hi[i] - lo[i] : 1.0;
          const double v = w[i] * (obj[i].loss(t.values[i]) - lo[i]) / range;
          mx = std::max(mx, v), sum += v;
        }
        loss = mx + 0.05 * sum;
      }
      worst = std::max(worst, loss);
      out.push_back({t.params, loss});
    } else {
      failed.push_back(out.size());
      out.push_back({t.params, 0.0});
    }
  }
  if (!std::isfinite(worst)) {
    // Only failures so far: they tell the optimizer nothing to compare against.
    std::vector<Observation> none;
    return none;
  }
  for (std::size_t i : failed) out[i].loss = worst;
  return out;
}

StudyStart begin_study(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, TrialStore& store,
                       const TuneOptions& opt) {
  BW_CHECK(opt.budget >= 1, ConfigError, "tune: budget must be at least 1 trial, got ", opt.budget);
  BW_CHECK(opt.parallel >= 1, ConfigError, "tune: parallel must be at least 1, got ", opt.parallel);
  BW_CHECK(!objectives.empty(), ConfigError, "tune: at least one objective is needed");
  StudyStart st{{}, {}, 0, make_optimizer(opt.algorithm, space, opt.optimizer),
                std::make_unique<Asha>(opt.early_stopping), Rng(0)};
  store.lock_for_run();
  store.mark_interrupted();
  st.history = store.trials();
  // Trials interrupted by a killed run are run again first, once each (the newest attempt decides).
  std::map<std::string, bool> settled;
  for (const Trial& t : st.history) {
    if (t.status == TrialStatus::kInterrupted) {
      settled.emplace(t.params.dump(), false);
    } else {
      ++st.counted;
      if (settled.count(t.params.dump())) settled[t.params.dump()] = true;
    }
  }
  for (const Trial& t : st.history)
    if (t.status == TrialStatus::kInterrupted && !settled[t.params.dump()]) {
      settled[t.params.dump()] = true;
      st.requeue.push_back(t.params);
    }
  // Restore the rungs from the stored intermediate values, so early stopping compares with the trials
  // of earlier runs too.
  for (const Trial& t : st.history)
    if (t.status != TrialStatus::kInterrupted)
      for (auto [step, v] : t.intermediate) st.asha->should_stop(t.id, step, objectives[0].loss(v));
  // The rng is advanced by the number of trials already stored, so a resumed study does not replay the
  // proposals of the first run.
  st.rng = Rng(opt.seed * 0x9e3779b97f4a7c15ULL + static_cast<uint64_t>(st.history.size()));
  return st;
}

TrialStatus classify(const std::vector<ObjectiveSpec>& objectives, const std::vector<double>& values, bool pruned,
                     std::string& error) {
  if (values.size() != objectives.size()) {
    error = str_cat("the objective returned ", values.size(), " values for ", objectives.size(), " objectives");
    return TrialStatus::kFailed;
  }
  for (std::size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) {
      error = str_cat("objective '", objectives[i].name, "' is ", values[i]);
      return TrialStatus::kFailed;
    }
  return pruned ? TrialStatus::kPruned : TrialStatus::kComplete;
}

void finish_summary(TuneSummary& summary, const std::vector<Trial>& history, const std::vector<ObjectiveSpec>& objectives) {
  summary.trials = static_cast<int>(history.size());
  for (const Trial& t : history) {
    summary.complete += t.status == TrialStatus::kComplete;
    summary.pruned += t.status == TrialStatus::kPruned;
    summary.failed += t.status == TrialStatus::kFailed;
  }
  summary.best = best_trial(history, objectives);
}

}  // namespace detail

using detail::observations;
using detail::usable;

std::optional<Trial> best_trial(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& objectives) {
  BW_ASSERT(!objectives.empty());
  std::optional<Trial> best;
  for (TrialStatus want : {TrialStatus::kComplete, TrialStatus::kPruned}) {
    for (const Trial& t : trials)
      if (t.status == want && usable(t, objectives.size()) &&
          (!best || objectives[0].better(t.values[0], best->values[0])))
        best = t;
    if (best) break;
  }
  return best;
}

std::vector<Trial> pareto_front(const std::vector<Trial>& trials, const std::vector<ObjectiveSpec>& objectives) {
  const std::size_t m = objectives.size();
  std::vector<const Trial*> done;
  for (const Trial& t : trials)
    if (t.status == TrialStatus::kComplete && usable(t, m)) done.push_back(&t);
  std::vector<Trial> front;
  for (const Trial* a : done) {
    bool dominated = false;
    for (const Trial* b : done) {
      if (a == b) continue;
      bool all = true, one = false;
      for (std::size_t i = 0; i < m; ++i) {
        const double la = objectives[i].loss(a->values[i]), lb = objectives[i].loss(b->values[i]);
        all = all && lb <= la;
        one = one || lb < la;
      }
      if (all && one) {
        dominated = true;
        break;
      }
    }
    if (!dominated) front.push_back(*a);
  }
  std::sort(front.begin(), front.end(), [&](const Trial& x, const Trial& y) {
    return objectives[0].loss(x.values[0]) < objectives[0].loss(y.values[0]);
  });
  return front;
}

TuneSummary run_study(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, const ObjectiveFn& objective,
                      TrialStore& store, const TuneOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  detail::StudyStart st = detail::begin_study(space, objectives, store, opt);
  std::vector<Trial>& history = st.history;
  std::vector<json>& requeue = st.requeue;
  const int counted = st.counted;
  auto& optimizer = st.optimizer;
  Asha& asha = *st.asha;
  Rng& rng = st.rng;

  const int total_threads = resolve_threads(opt.threads);
  const int parallel = opt.parallel;
  const int per_trial = std::max(1, total_threads / parallel);
  const std::vector<int> cpus = allowed_cpus();
  const bool pin = opt.pin && parallel > 1 && static_cast<int>(cpus.size()) >= parallel;

  std::mutex mu;
  std::map<int64_t, json> pending;
  TuneSummary summary;
  int started = counted;
  int done_count = counted;
  std::exception_ptr fatal;
  bool stop = false;

  auto worker = [&](int w) {
    std::vector<int> my_cpus;
    if (pin) {
      const std::size_t share = cpus.size() / static_cast<std::size_t>(parallel);
      my_cpus.assign(cpus.begin() + w * share, cpus.begin() + (w + 1) * share);
      if (!pin_current_thread(my_cpus)) my_cpus.clear();
    }
    try {
      for (;;) {
        json params;
        int64_t id;
        bool rerun = false;
        {
          std::lock_guard<std::mutex> lk(mu);
          if (stop || started >= opt.budget) return;
          if (!requeue.empty()) {
            params = requeue.front();
            requeue.erase(requeue.begin());
            rerun = true;
          } else {
            std::vector<json> running;
            for (const auto& [k, v] : pending) running.push_back(v);
            params = optimizer->suggest(observations(history, objectives, space, rng), running, rng);
          }
          id = store.begin_trial(params, w);
          pending[id] = params;
          ++started;
          if (rerun) ++summary.rerun;
        }
        TrialContext ctx(id, params, per_trial, my_cpus, &store, &objectives[0], &asha);
        TrialStatus status = TrialStatus::kFailed;
        std::vector<double> values;
        std::string error;
        try {
          values = objective(ctx);
          status = detail::classify(objectives, values, ctx.pruned(), error);
        } catch (const std::exception& e) {
          error = e.what();
        }
        store.finish(id, status, values, error, ctx.model_path());
        std::lock_guard<std::mutex> lk(mu);
        pending.erase(id);
        history = store.trials();
        ++done_count;
        ++summary.run_now;
        if (opt.on_trial_end)
          for (const Trial& t : history)
            if (t.id == id) opt.on_trial_end(t, done_count, opt.budget);
      }
    } catch (...) {
      // The store failed (or the optimizer hit a bug): stop handing out trials, report after the join.
      std::lock_guard<std::mutex> lk(mu);
      if (!fatal) fatal = std::current_exception();
      stop = true;
    }
  };
  if (parallel == 1) {
    worker(0);
  } else {
    std::vector<std::thread> threads;
    for (int w = 0; w < parallel; ++w) threads.emplace_back(worker, w);
    for (auto& t : threads) t.join();
  }
  if (fatal) std::rethrow_exception(fatal);

  detail::finish_summary(summary, store.trials(), objectives);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

// ---- command objective ------------------------------------------------------------------------------

namespace {

std::string value_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.10g", v.get<double>());
  return buf;
}

// The last whitespace-separated token of a line, when it is a number.
bool last_number(const std::string& line, double& out) {
  std::size_t end = line.find_last_not_of(" \t\r");
  if (end == std::string::npos) return false;
  std::size_t begin = line.find_last_of(" \t=:,", end);
  begin = begin == std::string::npos ? 0 : begin + 1;
  const std::string tok = line.substr(begin, end - begin + 1);
  char* stop = nullptr;
  const double v = std::strtod(tok.c_str(), &stop);
  if (stop == tok.c_str() || *stop != '\0') return false;
  out = v;
  return true;
}

}  // namespace

ObjectiveFn command_objective(const std::string& command, const SearchSpace& space) {
  static const std::regex placeholder(R"(\{([A-Za-z0-9_.\-]+)\})");
  for (auto it = std::sregex_iterator(command.begin(), command.end(), placeholder); it != std::sregex_iterator(); ++it) {
    const std::string name = (*it)[1];
    if (space.index_of(name) < 0) {
      std::vector<std::string> names;
      for (const auto& p : space.params()) names.push_back(p.name);
      const std::string near = nearest(name, names);
      BW_THROW(ConfigError, "tune: the command's placeholder {", name, "} names no parameter",
               near.empty() ? "" : " (did you mean {" + near + "}?)");
    }
  }
  return [command, space](TrialContext& ctx) -> std::vector<double> {
    std::string cmd;
    std::size_t last = 0;
    for (auto it = std::sregex_iterator(command.begin(), command.end(), placeholder); it != std::sregex_iterator(); ++it) {
      cmd += command.substr(last, it->position() - last);
      auto v = ctx.params().find((*it)[1].str());
      if (v != ctx.params().end()) cmd += value_text(*v);
      last = it->position() + it->length();
    }
    cmd += command.substr(last);
    // The environment is set by the shell, not between fork and exec (where only async-signal-safe
    // calls are allowed in a threaded process).
    cmd = "BW_TUNE_TRIAL=" + std::to_string(ctx.id()) + " BW_TUNE_THREADS=" + std::to_string(ctx.threads()) +
          "; export BW_TUNE_TRIAL BW_TUNE_THREADS; " + cmd;
    int fds[2];
    BW_CHECK(::pipe(fds) == 0, IoError, "tune: cannot create a pipe for the trial command");
    const pid_t pid = ::fork();
    if (pid < 0) {
      ::close(fds[0]), ::close(fds[1]);
      BW_THROW(IoError, "tune: cannot start the trial command (fork failed)");
    }
    if (pid == 0) {
      ::setpgid(0, 0);  // its own group, so a pruned trial's whole pipeline can be terminated
      ::dup2(fds[1], 1);
      ::close(fds[0]), ::close(fds[1]);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(fds[1]);
    FILE* in = ::fdopen(fds[0], "r");
    std::string line, tail;
    bool have = false, killed = false;
    double value = 0;
    int64_t step = 0;
    char buf[4096];
    while (in && std::fgets(buf, sizeof buf, in)) {
      line += buf;
      if (line.empty() || line.back() != '\n') continue;
      line.pop_back();
      tail = line;
      double v;
      if (!killed && last_number(line, v)) {
        value = v, have = true;
        if (ctx.report(++step, v)) {
          ::kill(-pid, SIGTERM);
          killed = true;
        }
      }
      line.clear();
    }
    if (in) std::fclose(in);
    else ::close(fds[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    if (killed) return {value};
    BW_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, InputError, "tune: trial command '", cmd, "' ",
             WIFEXITED(st) ? "exited with status " + std::to_string(WEXITSTATUS(st)) : std::string("was killed by a signal"),
             tail.empty() ? "" : "; last output: " + tail);
    BW_CHECK(have, InputError, "tune: trial command '", cmd, "' printed no number (the last number printed is the objective)");
    return {value};
  };
}

}  // namespace bluewhale::tune
