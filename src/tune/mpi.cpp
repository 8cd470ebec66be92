// run_study_mpi and MpiSession: see tuner.h. Compiled with MPI when CMake found it (BW_HAVE_MPI), as
// one-rank stand-ins otherwise, so builds without MPI keep the same API.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/tune/tuner.h"
#include "study_internal.h"

#ifdef BW_HAVE_MPI
#include <mpi.h>
#endif

namespace bluewhale::tune {
namespace {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

}  // namespace

bool MpiSession::compiled() {
#ifdef BW_HAVE_MPI
  return true;
#else
  return false;
#endif
}

MpiSession::MpiSession() {
#ifdef BW_HAVE_MPI
  int already = 0;
  MPI_Initialized(&already);
  if (!already && launched_by_mpi()) {
    MPI_Init(nullptr, nullptr);
    initialized_ = true;
  }
  if (already || initialized_) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
  }
#else
  (void)launched_by_mpi;
#endif
}

MpiSession::~MpiSession() {
#ifdef BW_HAVE_MPI
  if (initialized_) MPI_Finalize();
#endif
}

#ifndef BW_HAVE_MPI

TuneSummary run_study_mpi(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                          const ObjectiveFn& objective, TrialStore* store, const TuneOptions& options) {
  BW_ASSERT(store, "run_study_mpi without MPI needs the store");
  return run_study(space, objectives, objective, *store, options);
}

#else

namespace {

// Message tags. Payloads are JSON text.
enum Tag : int { kRequest = 1, kAssign = 2, kStop = 3, kReport = 4, kDecision = 5, kResult = 6 };

void send(int dst, int tag, const std::string& text) {
  MPI_Send(text.data(), static_cast<int>(text.size()), MPI_CHAR, dst, tag, MPI_COMM_WORLD);
}

// Receives the next message from `src` (MPI_ANY_SOURCE allowed) with `tag` (MPI_ANY_TAG allowed).
std::string recv(int src, int tag, MPI_Status& st) {
  MPI_Probe(src, tag, MPI_COMM_WORLD, &st);
  int len = 0;
  MPI_Get_count(&st, MPI_CHAR, &len);
  std::string buf(static_cast<std::size_t>(len), '\0');
  MPI_Recv(buf.data(), len, MPI_CHAR, st.MPI_SOURCE, st.MPI_TAG, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  return buf;
}

int threads_per_rank(const TuneOptions& opt) {
  int local = 1;
  if (const char* v = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) local = std::max(1, std::atoi(v));
  return std::max(1, resolve_threads(opt.threads) / local);
}

TuneSummary coordinate(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives, TrialStore& store,
                       const TuneOptions& opt, int ranks) {
  const auto t0 = std::chrono::steady_clock::now();
  TuneSummary summary;
  std::exception_ptr fatal;
  detail::StudyStart st;
  try {
    st = detail::begin_study(space, objectives, store, opt);
  } catch (...) {
    fatal = std::current_exception();
  }
  int started = st.counted, done_count = st.counted, active = ranks - 1;
  std::map<int64_t, json> pending;
  // One loop serves every worker: proposals, intermediate reports (answered with the stop decision) and
  // results. After a failure here (the store), workers are told to stop and the error is rethrown.
  while (active > 0) {
    MPI_Status ms;
    const std::string text = recv(MPI_ANY_SOURCE, MPI_ANY_TAG, ms);
    const int src = ms.MPI_SOURCE;
    try {
      if (ms.MPI_TAG == kRequest) {
        if (fatal || started >= opt.budget) {
          send(src, kStop, "{}");
          --active;
          continue;
        }
        json params;
        if (!st.requeue.empty()) {
          params = st.requeue.front();
          st.requeue.erase(st.requeue.begin());
          ++summary.rerun;
        } else {
          std::vector<json> running;
          for (const auto& [k, v] : pending) running.push_back(v);
          params = st.optimizer->suggest(detail::observations(st.history, objectives, space, st.rng), running, st.rng);
        }
        const int64_t id = store.begin_trial(params, src);
        pending[id] = params;
        ++started;
        send(src, kAssign, json{{"id", id}, {"params", params}}.dump());
      } else if (ms.MPI_TAG == kReport) {
        bool stop = true;
        if (!fatal) {
          const json j = json::parse(text);
          const int64_t id = j.at("id").get<int64_t>(), step = j.at("step").get<int64_t>();
          const double value = j.at("value").is_number() ? j["value"].get<double>() : std::nan("");
          store.report(id, step, value, j.value("metrics", json::object()));
          stop = st.asha->should_stop(id, step, objectives[0].loss(value));
        }
        send(src, kDecision, stop ? "1" : "0");
      } else if (ms.MPI_TAG == kResult && !fatal) {
        const json j = json::parse(text);
        const int64_t id = j.at("id").get<int64_t>();
        std::vector<double> values;
        for (const auto& v : j.at("values")) values.push_back(v.is_number() ? v.get<double>() : std::nan(""));
        std::string error = j.value("error", "");
        TrialStatus status = TrialStatus::kFailed;
        if (error.empty()) status = detail::classify(objectives, values, j.value("pruned", false), error);
        store.finish(id, status, values, error, j.value("model_path", ""));
        pending.erase(id);
        st.history = store.trials();
        ++done_count;
        ++summary.run_now;
        if (opt.on_trial_end)
          for (const Trial& t : st.history)
            if (t.id == id) opt.on_trial_end(t, done_count, opt.budget);
      }
    } catch (...) {
      if (!fatal) fatal = std::current_exception();
    }
  }
  if (fatal) std::rethrow_exception(fatal);
  detail::finish_summary(summary, store.trials(), objectives);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

TuneSummary work(const ObjectiveFn& objective, const TuneOptions& opt) {
  TuneSummary summary;
  const int threads = threads_per_rank(opt);
  for (;;) {
    send(0, kRequest, "{}");
    MPI_Status ms;
    const std::string text = recv(0, MPI_ANY_TAG, ms);
    if (ms.MPI_TAG == kStop) break;
    const json a = json::parse(text);
    const int64_t id = a.at("id").get<int64_t>();
    TrialContext ctx(id, a.at("params"), threads, {}, [id](int64_t step, double value, const json& metrics) {
      send(0, kReport, json{{"id", id}, {"step", step}, {"value", value}, {"metrics", metrics}}.dump());
      MPI_Status ds;
      return recv(0, kDecision, ds) == "1";
    });
    json result = {{"id", id}, {"values", json::array()}, {"error", ""}};
    try {
      std::vector<double> values = objective(ctx);
      for (double v : values) result["values"].push_back(v);  // NaN becomes null, read back as NaN
      result["pruned"] = ctx.pruned();
    } catch (const std::exception& e) {
      result["error"] = e.what();
      if (std::string(e.what()).empty()) result["error"] = "the trial threw an exception";
    }
    result["model_path"] = ctx.model_path();
    send(0, kResult, result.dump());
    ++summary.run_now;
  }
  return summary;
}

}  // namespace

TuneSummary run_study_mpi(const SearchSpace& space, const std::vector<ObjectiveSpec>& objectives,
                          const ObjectiveFn& objective, TrialStore* store, const TuneOptions& options) {
  int init = 0, size = 1, rank = 0;
  MPI_Initialized(&init);
  if (init) {
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  }
  if (size <= 1) {
    BW_ASSERT(store, "run_study_mpi on one rank needs the store");
    return run_study(space, objectives, objective, *store, options);
  }
  if (rank == 0) {
    BW_ASSERT(store, "run_study_mpi: rank 0 needs the store");
    return coordinate(space, objectives, *store, options, size);
  }
  return work(objective, options);
}

#endif

}  // namespace bluewhale::tune
