// run_study_mpi and MpiSession: see tuner.h. With MPI found at build time (BW_HAVE_MPI) the MPI calls
// go through the module libbluewhale_mpi.so (mpi_api.h), loaded when the process was started by an MPI
// launcher; without it, one-rank stand-ins keep the same API.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>

#include "bluewhale/core/error.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/tune/tuner.h"
#include "study_internal.h"

#ifdef BW_HAVE_MPI
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "core/dynamic_library.h"
#include "tune/mpi_api.h"
#endif

namespace bluewhale::tune {
namespace {

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

#ifdef BW_HAVE_MPI

// The module once MpiSession loaded it; null in a process that never did (a one-rank world).
std::atomic<const BwMpiApi*> g_mpi{nullptr};

// $BW_MPI_MODULE, else libbluewhale_mpi.so in the directory of the running binary (where the build puts
// both), else the name alone (the loader's search path).
std::vector<std::string> module_candidates() {
  if (const char* v = std::getenv("BW_MPI_MODULE"); v && *v) return {v};
  std::vector<std::string> out;
  std::string exe(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", exe.data(), exe.size() - 1);
  if (n > 0) {
    exe.resize(static_cast<std::size_t>(n));
    if (const std::size_t slash = exe.rfind('/'); slash != std::string::npos)
      out.push_back(exe.substr(0, slash + 1) + "libbluewhale_mpi.so");
  }
  out.push_back("libbluewhale_mpi.so");
  return out;
}

const BwMpiApi& load_mpi() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lk(mu);
  if (const BwMpiApi* api = g_mpi.load()) return *api;
  // RTLD_GLOBAL: MPI libraries load components of their own (OpenMPI's mca plugins) that resolve
  // symbols of libmpi and its dependencies, which a local load would hide from them.
  std::string errors, path;
  if (void* lib = dlopen_first(module_candidates(), RTLD_GLOBAL, path, errors)) {
    const auto fn = reinterpret_cast<BwMpiApiFn>(::dlsym(lib, BW_MPI_API_SYMBOL));
    const BwMpiApi* api = fn ? fn() : nullptr;
    if (!api || api->version != BW_MPI_API_VERSION) {
      // The reason first: `api` points into the library, gone after dlclose.
      const std::string why = fn ? str_cat("interface version ", api ? api->version : 0, ", this binary's ",
                                           BW_MPI_API_VERSION)
                                 : std::string("no " BW_MPI_API_SYMBOL);
      ::dlclose(lib);
      BW_THROW(IoError, "'", path, "' is not this build's MPI module (", why,
               "): rebuild, or point BW_MPI_MODULE at the libbluewhale_mpi.so built with this binary");
    }
    g_mpi.store(api);  // the module stays loaded for the life of the process
    return *api;
  }
  BW_THROW(IoError, "started by an MPI launcher, but the tuner's MPI module cannot be loaded (", errors,
           "): it is built as libbluewhale_mpi.so next to the bluewhale binary; set BW_MPI_MODULE to its path");
}

// An MPI call's error code as an IoError (MPI's default error handler aborts first; a module set up
// otherwise returns codes).
void mpi_check(int code, const char* call) { BW_CHECK(code == 0, IoError, "MPI: ", call, " failed with error code ", code); }

#endif

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
  if (!launched_by_mpi()) return;
  const BwMpiApi& mpi = load_mpi();
  int already = 0;
  mpi_check(mpi.initialized(&already), "MPI_Initialized");
  if (!already) {
    mpi_check(mpi.init(), "MPI_Init");
    initialized_ = true;
  }
  mpi_check(mpi.rank(&rank_), "MPI_Comm_rank");
  mpi_check(mpi.size(&size_), "MPI_Comm_size");
#else
  (void)launched_by_mpi;
#endif
}

MpiSession::~MpiSession() {
#ifdef BW_HAVE_MPI
  if (initialized_) g_mpi.load()->finalize();
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
// Wildcards for recv, mapped to the module's MPI_ANY_SOURCE / MPI_ANY_TAG.
constexpr int kAnySource = -1, kAnyTag = -1;

// Where a received message came from.
struct Status {
  int source = 0, tag = 0;
};

void send(int dst, int tag, const std::string& text) {
  mpi_check(g_mpi.load()->send(text.data(), static_cast<int>(text.size()), dst, tag), "MPI_Send");
}

// Receives the next message from `src` (kAnySource allowed) with `tag` (kAnyTag allowed).
std::string recv(int src, int tag, Status& st) {
  const BwMpiApi& mpi = *g_mpi.load();
  int len = 0;
  mpi_check(mpi.probe(src == kAnySource ? mpi.any_source : src, tag == kAnyTag ? mpi.any_tag : tag, &st.source,
                      &st.tag, &len),
            "MPI_Probe");
  std::string buf(static_cast<std::size_t>(len), '\0');
  mpi_check(mpi.recv(buf.data(), len, st.source, st.tag), "MPI_Recv");
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
    Status ms;
    const std::string text = recv(kAnySource, kAnyTag, ms);
    const int src = ms.source;
    try {
      if (ms.tag == kRequest) {
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
      } else if (ms.tag == kReport) {
        bool stop = true;
        if (!fatal) {
          const json j = json::parse(text);
          const int64_t id = j.at("id").get<int64_t>(), step = j.at("step").get<int64_t>();
          const double value = j.at("value").is_number() ? j["value"].get<double>() : std::nan("");
          store.report(id, step, value, j.value("metrics", json::object()));
          stop = st.asha->should_stop(id, step, objectives[0].loss(value));
        }
        send(src, kDecision, stop ? "1" : "0");
      } else if (ms.tag == kResult && !fatal) {
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
    Status ms;
    const std::string text = recv(0, kAnyTag, ms);
    if (ms.tag == kStop) break;
    const json a = json::parse(text);
    const int64_t id = a.at("id").get<int64_t>();
    TrialContext ctx(id, a.at("params"), threads, {}, [id](int64_t step, double value, const json& metrics) {
      send(0, kReport, json{{"id", id}, {"step", step}, {"value", value}, {"metrics", metrics}}.dump());
      Status ds;
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
  if (const BwMpiApi* mpi = g_mpi.load()) {
    mpi_check(mpi->initialized(&init), "MPI_Initialized");
    if (init) {
      mpi_check(mpi->size(&size), "MPI_Comm_size");
      mpi_check(mpi->rank(&rank), "MPI_Comm_rank");
    }
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
