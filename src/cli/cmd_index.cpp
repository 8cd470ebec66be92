// bluewhale index build | search | bench, and bluewhale gen vectors: the recall stage from the shell.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/models/bench_train.h"
#include "bluewhale/recall/generate.h"
#include "bluewhale/recall/index.h"
#include "bluewhale/recall/roofline.h"
#include "commands.h"
#include "recall/exact_search.h"

namespace bluewhale::cli {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// "-k 100" is the conventional spelling; Args knows only long options.
std::vector<char*> long_k(int argc, char** argv) {
  static char kLong[] = "--k";
  std::vector<char*> out(argv, argv + argc);
  for (auto& a : out)
    if (!std::strcmp(a, "-k")) a = kLong;
  return out;
}

std::vector<int64_t> int_list(const std::string& s, const std::string& option) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    BW_CHECK(!part.empty() && *end == '\0' && v >= 0, ConfigError, "--", option,
             ": expected a comma-separated list of non-negative integers, got '", s, "'");
    out.push_back(v);
  }
  BW_CHECK(!out.empty(), ConfigError, "--", option, ": empty list");
  return out;
}

Vectors read_input(const Args& args, const std::string& option) {
  return read_vectors(args.require(option), args.get("format"), args.get_int("dim"));
}

int index_build(int argc, char** argv) {
  Args args("bluewhale index build", "bluewhale index build --vectors FILE --out FILE [options]",
            "Builds a nearest-neighbour index over a vector file and saves it (versioned, checksummed).\n"
            "Vector files: .fvecs, .bvecs, .tsv (id<TAB>values; ids become the item ids), raw float32 (.f32,\n"
            "needs --dim). Without ids, items are numbered 0..N-1 in file order.");
  args.option("vectors", "input vectors")
      .option("format", "fvecs | bvecs | tsv | raw | auto (by extension)", "auto")
      .option("dim", "dimension of a raw float32 file", "0")
      .option("metric", "l2 | ip | cosine", "l2")
      .option("kind", "hnsw | flat | ivf_sq8", "hnsw")
      .option("m", "hnsw: links per node (2*m on the base layer)", "16")
      .option("ef-construction", "hnsw: beam width while building", "200")
      .option("nlist", "ivf_sq8: number of lists (0 = about 4*sqrt(N))", "0")
      .option("seed", "random seed (hnsw levels, ivf k-means)", "1")
      .option("out", "index file to write")
      .option("threads", "worker threads (0 = all available)", "0")
      .flag("quiet", "no progress line");
  if (!args.parse(argc, argv, 3)) return 0;
  if (args.flag_set("quiet")) set_log_level(LogLevel::kWarn);
  const std::string out = args.require("out");
  Vectors v = read_input(args, "vectors");
  BW_CHECK(v.rows > 0, InputError, args.get("vectors"), ": no vectors (empty collection)");
  IndexOptions o;
  o.kind = parse_index_kind(args.get("kind"), "--kind");
  o.metric = parse_metric(args.get("metric"), "--metric");
  o.dim = v.dim;
  o.m = int(args.get_int("m"));
  o.ef_construction = int(args.get_int("ef-construction"));
  o.nlist = int(args.get_int("nlist"));
  o.seed = uint64_t(args.get_int("seed"));
  const int threads = resolve_threads(int(args.get_int("threads")));
  auto idx = make_index(o);
  const double t0 = now_s();
  {
    ProgressReporter progress("index build", v.rows * v.dim * 4, 10.0, !args.flag_set("quiet"));
    idx->add(v, threads, &progress);
    progress.finish();
  }
  const double build_s = now_s() - t0;
  idx->save(out);
  std::printf("built %s index (%s, dim %lld) of %lld vectors in %.2f s with %d threads (%s vectors/s)\n",
              std::string(index_kind_name(o.kind)).c_str(), std::string(metric_name(o.metric)).c_str(),
              (long long)v.dim, (long long)v.rows, build_s, threads, format_count(double(v.rows) / build_s).c_str());
  std::printf("index memory %s, peak RSS %s, written to %s\n", format_bytes(double(idx->memory_bytes())).c_str(),
              format_bytes(double(peak_rss_bytes())).c_str(), out.c_str());
  std::printf("build_seconds=%.4f peak_rss_bytes=%lld\n", build_s, (long long)peak_rss_bytes());
  return 0;
}

SearchOptions search_options(const Args& args) {
  SearchOptions so;
  so.k = args.get_int("k");
  so.ef = int(args.get_int("ef"));
  so.nprobe = int(args.get_int("nprobe"));
  so.rerank = int(args.get_int("rerank"));
  return so;
}

Args& search_knobs(Args& args) {
  return args.option("k", "neighbours per query (also -k)", "10")
      .option("ef", "hnsw: search beam width, the quality knob (0 = max(k, 64))", "0")
      .option("nprobe", "ivf_sq8: lists visited per query (0 = nlist/16)", "0")
      .option("rerank", "ivf_sq8: k*rerank quantised candidates re-scored exactly", "4")
      .option("format", "query file format: fvecs | bvecs | tsv | raw | auto", "auto")
      .option("dim", "dimension of a raw float32 query file", "0");
}

int index_search(int argc, char** argv) {
  Args args("bluewhale index search", "bluewhale index search --index FILE --queries FILE -k K --out FILE",
            "Searches an index with every query vector and writes one TSV line per hit:\n"
            "query<TAB>rank<TAB>id<TAB>distance (query = row number, or the query id for TSV queries;\n"
            "distance: squared L2, -inner product or 1 - cosine). Rows that a filter leaves short are not padded.");
  args.option("index", "index file").option("queries", "query vectors").option("out", "hits TSV to write");
  search_knobs(args)
      .option("filter", "file of allowed item ids, one per line (only these are returned)")
      .option("threads", "worker threads (0 = all available)", "0");
  auto av = long_k(argc, argv);
  if (!args.parse(argc, av.data(), 3)) return 0;
  auto idx = load_index(args.require("index"));
  Vectors q = read_input(args, "queries");
  BW_CHECK(q.dim == idx->dim(), InputError, args.get("queries"), ": queries have dimension ", q.dim, ", the index ",
           args.get("index"), " has dimension ", idx->dim());
  SearchOptions so = search_options(args);
  so.threads = resolve_threads(int(args.get_int("threads")));
  IdFilter filter;
  if (args.has("filter")) {
    std::ifstream in(args.get("filter"));
    BW_CHECK(in.good(), IoError, args.get("filter"), ": cannot open the filter file");
    std::string line;
    for (int64_t n = 1; std::getline(in, line); ++n) {
      if (line.empty()) continue;
      char* end = nullptr;
      const long long id = std::strtoll(line.c_str(), &end, 10);
      BW_CHECK(*end == '\0' || *end == '\r', InputError, args.get("filter"), " line ", n,
               ": expected an integer item id, got '", line, "'");
      filter.insert(id);
    }
    so.filter = &filter;
  }
  const double t0 = now_s();
  SearchResult r = idx->search(q, so);
  const double secs = now_s() - t0;
  std::string text;
  char buf[96];
  for (int64_t i = 0; i < r.queries; ++i) {
    const long long qid = q.ids.empty() ? i : q.ids[std::size_t(i)];
    for (int64_t j = 0; j < r.k; ++j) {
      if (r.ids_of(i)[j] < 0) break;
      std::snprintf(buf, sizeof buf, "%lld\t%lld\t%lld\t%.6g\n", qid, (long long)j + 1, (long long)r.ids_of(i)[j],
                    r.distances_of(i)[j]);
      text += buf;
    }
  }
  write_file_atomic(args.require("out"), text);
  std::printf("searched %lld queries (k %lld) in %.3f s: %.0f queries/s with %d threads; hits written to %s\n",
              (long long)r.queries, (long long)r.k, secs, double(r.queries) / std::max(secs, 1e-9), so.threads,
              args.get("out").c_str());
  return 0;
}

// Runs the whole query batch until at least min_s seconds have passed; returns queries per second.
double time_search(const Index& idx, const Vectors& q, const SearchOptions& so, double min_s, SearchResult& out) {
  int64_t reps = 0;
  const double t0 = now_s();
  double el = 0;
  do {
    out = idx.search(q, so);
    ++reps;
    el = now_s() - t0;
  } while (el < min_s);
  return double(reps * q.rows) / el;
}

// Runs the whole query batch repeatedly for at least min_s seconds; keeps the fastest batch in wall-clock
// seconds (on a machine shared with other work, the one least disturbed by it) and the smallest CPU time
// (all threads) a batch took.
struct BatchTime {
  double wall = 1e300;
  double cpu = 1e300;
};
void time_batches(const Index& idx, const Vectors& q, const SearchOptions& so, double min_s, BatchTime& best) {
  const double t0 = now_s();
  do {
    const double w = now_s(), c = process_cpu_seconds();
    SearchResult r = idx.search(q, so);
    best.cpu = std::min(best.cpu, process_cpu_seconds() - c);
    best.wall = std::min(best.wall, now_s() - w);
  } while (now_s() - t0 < min_s);
}

// Exact batched search against the machine's limits: achieved GFLOP/s (2 * queries * rows * dim per
// batch) of the fused kernel and of the OpenBLAS path, as a fraction of the FMA peak at the SIMD level
// the fused kernel runs at, or of read bandwidth when streaming the rows takes longer than the flops.
// Each round measures the peak, the bandwidth and both paths back to back (interleaved, so that a busy
// spell on a shared machine does not favour one of them); the peaks are the best of the rounds and the
// search times the fastest batch of all rounds. A second figure divides the flops by the CPU time the
// batch received instead of wall time, against the one-thread peak measured the same way: how close
// the kernel runs to the FMA peak while scheduled, which other processes on the machine do not change
// (they still share caches and memory bandwidth).
void roofline(const Index& idx, const Vectors& q, const SearchOptions& base, double min_s, int64_t rounds,
              const std::string& thread_list) {
  const SimdLevel level = simd_level();
  const double flops = 2.0 * double(q.rows) * double(idx.size()) * double(idx.dim());
  const double db_bytes = double(idx.size()) * double(idx.dim()) * 4.0;
  double core_peak = 0, core_cpu_peak = 0;
  for (int64_t round = 0; round < rounds; ++round) {
    core_peak = std::max(core_peak, measure_fma_peak_gflops(1, level));
    core_cpu_peak = std::max(core_cpu_peak, measure_core_fma_peak_gflops(level));
  }
  std::printf("\nexact batched search vs machine limits (fastest batch of %lld round%s of %.2g s each):\n",
              (long long)rounds, rounds == 1 ? "" : "s", min_s);
  // A thread that runs undisturbed gets its CPU time as wall time, so the CPU-time measurement estimates
  // the undisturbed wall-clock peak too; on a busy machine it is the steadier of the two.
  const double core_best = std::max(core_peak, core_cpu_peak);
  std::printf("FMA peak per core: %.1f GFLOP/s (%s FMAs, one thread; best wall-clock run %.1f, per busy CPU-second "
              "%.1f)\n",
              core_best, std::string(simd_level_name(level)).c_str(), core_peak, core_cpu_peak);
  for (int64_t threads : int_list(thread_list, "threads")) {
    SearchOptions so = base;
    so.threads = int(std::max<int64_t>(1, threads));
    double peak = 0, bw = 0;
    BatchTime fused, blas;
    for (int64_t round = 0; round < rounds; ++round) {
      peak = std::max(peak, measure_fma_peak_gflops(so.threads, level));
      bw = std::max(bw, measure_read_bandwidth_gbs(so.threads));
      so.flat_blas = false;
      time_batches(idx, q, so, min_s, fused);
      so.flat_blas = true;
      time_batches(idx, q, so, min_s, blas);
    }
    // Rows stream from memory once per query block: the fused plan's blocks, or the sgemm path's blocks of
    // up to 1024 queries per thread (flat_index.cpp).
    const int64_t fused_passes = recall_detail::exact_search_plan(q.rows, idx.size(), idx.dim(), so.threads, level).query_blocks;
    const int64_t blas_block = std::clamp<int64_t>((q.rows + so.threads - 1) / so.threads, 1, 1024);
    const int64_t blas_passes = (q.rows + blas_block - 1) / blas_block;
    // Other work on the machine lowers a multi-thread measurement more easily than the best one-thread
    // one: the bound is the larger of the two, so that a busy machine never inflates the fraction (it
    // lowers it instead: the batches share the cores with that work).
    const double measured = peak;
    peak = std::max(peak, core_best * so.threads);
    std::printf("threads %d: FMA peak %.1f GFLOP/s (the larger of %d x the per-core peak and %.1f measured on %d "
                "thread%s), read bandwidth %.1f GB/s\n",
                so.threads, peak, so.threads, measured, so.threads, so.threads == 1 ? "" : "s", bw);
    for (int path = 0; path < 2; ++path) {
      const BatchTime& t = path == 0 ? fused : blas;
      const double secs = t.wall;
      const double qps = double(q.rows) / secs;
      const double bytes = db_bytes * double(path == 0 ? fused_passes : blas_passes);
      const double t_compute = flops / (peak * 1e9), t_memory = bytes / (bw * 1e9);
      const bool compute_bound = t_compute >= t_memory;
      std::printf("threads %d, %s: %.1f GFLOP/s, %.1f GB/s -> %s-bound, %.0f%% of that bound (%.0f queries/s); "
                  "per busy CPU-second %.1f GFLOP/s per core, %.0f%% of the core's\n",
                  so.threads, path == 0 ? "fused" : "blas", flops / secs / 1e9, bytes / secs / 1e9,
                  compute_bound ? "compute (FMA)" : "memory", 100.0 * std::max(t_compute, t_memory) / secs, qps,
                  flops / t.cpu / 1e9, 100.0 * flops / t.cpu / 1e9 / core_cpu_peak);
    }
    std::fflush(stdout);
  }
}

int index_bench(int argc, char** argv) {
  Args args("bluewhale index bench", "bluewhale index bench --index FILE --queries FILE --truth FILE [options]",
            "Recall@k against exact ground truth (.ivecs; row q = ids of query q's true neighbours) and queries\n"
            "per second, for each thread count and quality setting (ef for hnsw, nprobe for ivf_sq8). Prints a\n"
            "markdown table. For a flat index, --roofline also measures the FMA peak and read bandwidth of this machine\n"
            "and says which one bounds exact batched search and how close it gets, for the fused kernel and the\n"
            "OpenBLAS path side by side. --rounds repeats every measurement and keeps the best (for shared machines).");
  args.option("index", "index file").option("queries", "query vectors").option("truth", "ground truth .ivecs");
  search_knobs(args)
      .option("ef-list", "hnsw: comma-separated ef values", "10,20,40,80,160,320")
      .option("nprobe-list", "ivf_sq8: comma-separated nprobe values", "1,2,4,8,16,32")
      .option("threads", "comma-separated thread counts", "1,2")
      .option("min-seconds", "time each setting for at least this long", "0.5")
      .option("rounds", "repeat each timing (and each peak measurement) this many times; report the best", "1")
      .flag("flat-blas", "flat: search batches through OpenBLAS sgemm instead of the fused kernel")
      .flag("roofline", "flat: also measure FMA peak and read bandwidth (allocates 256 MiB) and report the bound");
  auto av = long_k(argc, argv);
  if (!args.parse(argc, av.data(), 3)) return 0;
  auto idx = load_index(args.require("index"));
  Vectors q = read_input(args, "queries");
  BW_CHECK(q.dim == idx->dim(), InputError, args.get("queries"), ": queries have dimension ", q.dim, ", the index ",
           args.get("index"), " has dimension ", idx->dim());
  IntVectors truth = read_ivecs(args.require("truth"));
  BW_CHECK(truth.rows == q.rows, InputError, args.get("truth"), ": ", truth.rows, " ground-truth rows for ", q.rows,
           " queries");
  SearchOptions base = search_options(args);
  base.flat_blas = args.flag_set("flat-blas");
  const int64_t rounds = args.get_int("rounds");
  BW_CHECK(rounds >= 1 && rounds <= 1000, ConfigError, "--rounds must be in 1..1000, got ", rounds);
  BW_CHECK(base.k <= truth.dim, InputError, args.get("truth"), ": ground truth has ", truth.dim,
           " neighbours per query, fewer than k = ", base.k);
  const double min_s = args.get_double("min-seconds");
  std::vector<int64_t> knobs{0};
  const char* knob = "-";
  if (idx->kind() == IndexKind::kHnsw) knobs = int_list(args.get("ef-list"), "ef-list"), knob = "ef";
  if (idx->kind() == IndexKind::kIvfSq8) knobs = int_list(args.get("nprobe-list"), "nprobe-list"), knob = "nprobe";
  std::printf("index %s: %s, %s, %lld vectors of dim %lld; %lld queries, k %lld\n\n", args.get("index").c_str(),
              std::string(index_kind_name(idx->kind())).c_str(), std::string(metric_name(idx->metric())).c_str(),
              (long long)idx->size(), (long long)idx->dim(), (long long)q.rows, (long long)base.k);
  std::printf("| threads | %s | recall@%lld | QPS |\n|---|---|---|---|\n", knob, (long long)base.k);
  for (int64_t threads : int_list(args.get("threads"), "threads")) {
    for (int64_t kv : knobs) {
      SearchOptions so = base;
      so.threads = int(std::max<int64_t>(1, threads));
      if (idx->kind() == IndexKind::kHnsw) so.ef = int(kv);
      if (idx->kind() == IndexKind::kIvfSq8) so.nprobe = int(kv);
      SearchResult r;
      double qps = 0;
      for (int64_t round = 0; round < rounds; ++round) qps = std::max(qps, time_search(*idx, q, so, min_s, r));
      std::printf("| %d | %lld | %.4f | %.0f |\n", so.threads, (long long)kv, recall_at_k(r, truth, base.k), qps);
      std::fflush(stdout);
    }
  }
  if (idx->kind() == IndexKind::kFlat && args.flag_set("roofline")) roofline(*idx, q, base, min_s, rounds, args.get("threads"));
  std::printf("\npeak RSS %s\n", format_bytes(double(peak_rss_bytes())).c_str());
  return 0;
}

}  // namespace

int cmd_index(int argc, char** argv) {
  static const char* kUsage =
      "usage: bluewhale index SUBCOMMAND [options]\n"
      "  build    build an index (hnsw | flat | ivf_sq8) over a vector file and save it\n"
      "  search   k nearest neighbours of every query vector -> TSV of hits\n"
      "  bench    recall@k against ground truth and queries/s per quality setting and thread count\n"
      "Run 'bluewhale index SUBCOMMAND --help' for options.\n";
  if (argc < 3 || !std::strcmp(argv[2], "--help") || !std::strcmp(argv[2], "-h")) {
    std::fputs(kUsage, argc < 3 ? stderr : stdout);
    return argc < 3 ? 2 : 0;
  }
  const std::string sub = argv[2];
  if (sub == "build") return index_build(argc, argv);
  if (sub == "search") return index_search(argc, argv);
  if (sub == "bench") return index_bench(argc, argv);
  std::string near = nearest(sub, {"build", "search", "bench"});
  BW_THROW(ConfigError, "unknown subcommand 'index ", sub, "'", near.empty() ? "" : " (did you mean '" + near + "'?)",
           "; expected build | search | bench");
}

int cmd_gen_vectors(int argc, char** argv) {
  Args args("bluewhale gen vectors", "bluewhale gen vectors --rows N --dim D --kind clustered|embedding --out FILE",
            "Generates a synthetic vector collection (.fvecs) for recall benchmarks:\n"
            "  clustered  Gaussian mixture, about sqrt(N) clusters (SIFT-like difficulty)\n"
            "  embedding  learned-embedding-like: low-rank factors with a decaying spectrum, unit length\n"
            "With --queries Q it also writes FILE_query.fvecs (Q more vectors from the same distribution) and,\n"
            "with --truth K, FILE_groundtruth.ivecs: the exact K nearest neighbours under --metric.");
  args.positional("KIND", "vectors")
      .option("rows", "number of vectors")
      .option("dim", "dimension", "128")
      .option("kind", "clustered | embedding", "clustered")
      .option("queries", "number of query vectors to write next to the base (0 = none)", "0")
      .option("truth", "ground-truth neighbours per query (0 = none)", "100")
      .option("metric", "metric of the ground truth: l2 | ip | cosine", "l2")
      .option("seed", "random seed", "1")
      .option("out", "output .fvecs file")
      .option("threads", "worker threads (0 = all available)", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  VectorGenOptions o;
  o.rows = args.get_int("rows");
  o.dim = args.get_int("dim");
  o.kind = args.get("kind");
  o.seed = uint64_t(args.get_int("seed"));
  o.threads = resolve_threads(int(args.get_int("threads")));
  const std::string out = args.require("out");
  args.require("rows");
  const double t0 = now_s();
  Vectors base = generate_vectors(o);
  write_fvecs(out, base);
  std::printf("generated %s: %lld %s vectors of dim %lld\n", out.c_str(), (long long)base.rows, o.kind.c_str(),
              (long long)base.dim);
  const int64_t nq = args.get_int("queries"), k = args.get_int("truth");
  if (nq > 0) {
    VectorGenOptions qo = o;
    qo.rows = nq;
    qo.seed = o.seed * 1000003 + 17;
    Vectors q = generate_vectors(qo);
    std::string stem = out.size() > 6 && out.substr(out.size() - 6) == ".fvecs" ? out.substr(0, out.size() - 6) : out;
    write_fvecs(stem + "_query.fvecs", q);
    std::printf("queries: %s_query.fvecs (%lld)\n", stem.c_str(), (long long)nq);
    if (k > 0) {
      BW_CHECK(k <= base.rows, ConfigError, "--truth ", k, " is larger than --rows ", base.rows);
      IntVectors gt = exact_neighbours(base, q, k, parse_metric(args.get("metric"), "--metric"), o.threads);
      write_ivecs(stem + "_groundtruth.ivecs", gt);
      std::printf("ground truth: %s_groundtruth.ivecs (exact %lld nearest, %s)\n", stem.c_str(), (long long)k,
                  args.get("metric").c_str());
    }
  }
  std::printf("time %s\n", format_duration(now_s() - t0).c_str());
  return 0;
}

}  // namespace bluewhale::cli
