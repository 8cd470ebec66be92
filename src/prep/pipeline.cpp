#include "bluewhale/prep/pipeline.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "bluewhale/core/hash.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/prep/input_map.h"
#include "bluewhale/prep/ops.h"
#include "bluewhale/prep/reader.h"
#include "core/zero_buffer.h"
#include "prep/column_split.h"
#include "prep/decompress.h"
#include "prep/ops/math_kernels.h"
#include "prep/ordered_writer.h"
#include "prep/packed_chunk.h"

namespace bluewhale {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

constexpr uint32_t kOpStateVersion = 1;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// "N ms (cpu M ms)": wall time since t and the process's CPU time so far (user + system, all threads),
// for the debug log's phase marks: CPU over wall per phase shows where the threads wait.
std::string phase_mark(Clock::time_point t) {
  return str_cat(static_cast<int64_t>(since(t) * 1000), " ms (cpu ", static_cast<int64_t>(process_cpu_seconds() * 1000), " ms)");
}

struct SplitParams {
  std::string by;
  double valid, test;
  int64_t seed;
  std::vector<std::string> valid_files, test_files;
  std::string column;
  int64_t valid_from, test_from;
  static const ParamTable<SplitParams>& params() {
    static const auto t =
        ParamTable<SplitParams>("split")
            .add("by", &SplitParams::by, std::string("ratio"), "how rows are assigned to train/valid/test")
            .choices({"ratio", "file", "time", "none"})
            .add("valid", &SplitParams::valid, 0.0, "by ratio: fraction of rows for validation").min(0).max(1)
            .add("test", &SplitParams::test, 0.0, "by ratio: fraction of rows for test").min(0).max(1)
            .add("seed", &SplitParams::seed, int64_t{0}, "by ratio: seed of the per-row draw")
            .add("valid_files", &SplitParams::valid_files, std::vector<std::string>{},
                 "by file: inputs (path or file name) whose rows are validation")
            .add("test_files", &SplitParams::test_files, std::vector<std::string>{},
                 "by file: inputs (path or file name) whose rows are test")
            .add("column", &SplitParams::column, std::string(), "by time: the timestamp column")
            .add("valid_from", &SplitParams::valid_from, int64_t{0}, "by time: first time of validation rows")
            .add("test_from", &SplitParams::test_from, int64_t{0}, "by time: first time of test rows");
    return t;
  }
};

struct OutputParams {
  int64_t shard_rows;
  static const ParamTable<OutputParams>& params() {
    static const auto t = ParamTable<OutputParams>("output").add(
        "shard_rows", &OutputParams::shard_rows, int64_t{1} << 20, "rows per dataset shard file").min(1024).max(int64_t{1} << 30);
    return t;
  }
};

const std::vector<std::string> kTopLevelKeys = {"name", "description", "input", "schema", "ops", "split",
                                                "output", "model", "train", "eval", "tune", "serve"};

// Which pass an operator's transform becomes available after (0 = from the start). A fitted operator is
// fitted in the pass after everything it reads is available.
std::vector<int> compute_stages(const std::vector<std::unique_ptr<Op>>& ops) {
  std::vector<int> avail(ops.size(), 0);
  for (std::size_t j = 0; j < ops.size(); ++j) {
    int need = 0;
    auto in = ops[j]->inputs();
    for (std::size_t i = 0; i < j; ++i) {
      auto out = ops[i]->outputs();
      bool touches = false;
      for (const auto& a : in)
        for (const auto& b : out) touches = touches || a == b;
      if (touches) need = std::max(need, avail[i]);
    }
    avail[j] = ops[j]->needs_fit() ? need + 1 : need;
  }
  return avail;
}

// Assigns chunk.split per the recipe.
class Splitter {
 public:
  Splitter(const SplitSpec& spec, const std::vector<std::string>& files, const PrepOptions& opt) : spec_(spec) {
    if (!opt.apply_to.empty()) {
      fixed_ = static_cast<int>(opt.apply_split);
      return;
    }
    if (spec.by == "file") {
      auto matches = [](const std::string& file, const std::vector<std::string>& list) {
        for (const auto& l : list)
          if (l == file || fs::path(file).filename() == l) return true;
        return false;
      };
      for (const auto& f : files) file_split_.push_back(matches(f, spec.test_files)    ? 2
                                                        : matches(f, spec.valid_files) ? 1
                                                                                       : 0);
      for (const auto* list : {&spec.valid_files, &spec.test_files})
        for (const auto& l : *list) {
          bool found = false;
          for (const auto& f : files) found = found || l == f || fs::path(f).filename() == l;
          BW_CHECK(found, ConfigError, "split: file '", l, "' named in the recipe is not among the inputs");
        }
    }
  }

  void assign(Chunk& c) const {
    if (fixed_ >= 0) {
      c.split.assign(c.rows, static_cast<uint8_t>(fixed_));
      return;
    }
    if (spec_.by == "none") {
      c.split.clear();
      return;
    }
    c.split.resize(c.rows);
    if (spec_.by == "file") {
      std::fill(c.split.begin(), c.split.end(), static_cast<uint8_t>(file_split_[c.file_index]));
    } else if (spec_.by == "ratio") {
      for (int64_t r = 0; r < c.rows; ++r) {
        double u = unit_interval(mix64(static_cast<uint64_t>(c.global_row(r)) ^ mix64(spec_.seed)));
        c.split[r] = u < spec_.test ? 2 : u < spec_.test + spec_.valid ? 1 : 0;
      }
    } else {  // time
      const Column& t = c.get(spec_.column, "split by time");
      for (int64_t r = 0; r < c.rows; ++r) {
        int64_t v = t.is_missing(r) ? INT64_MIN : t.i[r];
        c.split[r] = v >= spec_.test_from ? 2 : v >= spec_.valid_from ? 1 : 0;
      }
    }
  }

 private:
  SplitSpec spec_;
  std::vector<int> file_split_;
  int fixed_ = -1;
};

// Missing-value counts of the raw input columns, per thread, for the summary.
// Zero bytes among p[0, n), eight at a time: the high bit of ((b & 0x7F) + 0x7F) | b is set exactly
// when b != 0 (no carry leaves a byte). Runs over every parsed id of the fit pass.
int64_t count_zero_bytes(const uint8_t* p, std::size_t n) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7FULL, kOnes = 0x0101010101010101ULL;
  int64_t nonzero = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    const uint64_t high = (((w & kLow7) + kLow7) | w) & ~kLow7;  // 0x80 per nonzero byte
    nonzero += static_cast<int64_t>(((high >> 7) * kOnes) >> 56);
  }
  for (; i < n; ++i) nonzero += p[i] != 0;
  return static_cast<int64_t>(n) - nonzero;
}

struct MissingCounter {
  std::vector<std::vector<int64_t>> per_thread;
  // Columns the first pass leaves unparsed (TextReader::skip_values), counted in the write pass instead.
  std::vector<bool> deferred;
  // Counts the columns of a freshly parsed chunk that belong to this pass (deferred ones or the others).
  // `only`, when given, marks the columns to count (a thread that converted only some of them).
  void count(const Chunk& c, int tid, bool deferred_pass, const std::vector<uint8_t>* only = nullptr) {
    auto& m = per_thread[tid];
    if (m.size() < c.columns.size()) m.resize(c.columns.size(), 0);
    for (std::size_t k = 0; k < c.columns.size(); ++k) {
      if ((k < deferred.size() && deferred[k]) != deferred_pass) continue;
      if (only && (k >= only->size() || !(*only)[k])) continue;
      const Column& col = c.columns[k];
      int64_t n = 0;
      // One tight loop per kind (not is_missing per row): this runs over every parsed value.
      switch (col.kind) {
        case ColumnKind::kFloat:
          n = prep_ops::count_nan_for(simd_level())(col.f.data(), col.f.size());
          break;
        case ColumnKind::kInt:
          n = count_zero_bytes(col.valid.data(), col.valid.size());
          break;
        case ColumnKind::kList:
          for (int64_t r = 0; r < c.rows; ++r) n += col.offsets[r + 1] == col.offsets[r];
          break;
      }
      m[k] += n;
    }
  }
};

// Adds c's rows to `rows` by split (no split: every row is a training row).
void count_split_rows(const Chunk& c, std::array<int64_t, kNumSplits>& rows) {
  if (c.split.empty()) rows[0] += c.rows;
  else
    for (uint8_t sp : c.split) rows[sp]++;
}

std::string op_state_file(std::size_t index, const std::string& name) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "op-%02zu-%s.bin", index, name.c_str());
  return buf;
}

}  // namespace

Recipe parse_recipe(const std::string& text, const std::string& source) {
  Recipe r;
  r.path = source;
  r.text = text;
  r.root = ConfigNode::parse_yaml(text, source);
  BW_CHECK(r.root.is_map(), ConfigError, source, ": a recipe must be a mapping with sections input, schema, ops, ...");
  r.root.check_keys(kTopLevelKeys);
  static const ConfigNode kNull;
  const ConfigNode* input = r.root.find("input");
  r.input = parse_input_schema(input ? *input : kNull, r.root.at("schema"));
  if (const ConfigNode* ops = r.root.find("ops"); ops && !ops->is_null()) {
    BW_CHECK(ops->is_list(), ConfigError, ops->where(), ": ops must be a list of {op: NAME, ...} entries");
    r.ops = ops->as_list();
  }
  const ConfigNode* split = r.root.find("split");
  SplitParams sp = SplitParams::params().parse(split ? *split : kNull);
  r.split.by = sp.by;
  r.split.valid = sp.valid;
  r.split.test = sp.test;
  r.split.seed = static_cast<uint64_t>(sp.seed);
  r.split.valid_files = sp.valid_files;
  r.split.test_files = sp.test_files;
  r.split.column = sp.column;
  r.split.valid_from = sp.valid_from;
  r.split.test_from = sp.test_from;
  std::string where = split ? split->where() : source + ": split";
  BW_CHECK(sp.valid + sp.test < 1.0, ConfigError, where, ": valid + test must leave rows for training, got ",
           sp.valid + sp.test);
  if (sp.by == "time") {
    const InputColumn* c = r.input.find(sp.column);
    BW_CHECK(c && c->role == Role::kTimestamp, ConfigError, where,
             ": split by time needs 'column' naming a timestamp column of the schema, got '", sp.column, "'");
    BW_CHECK(sp.valid_from <= sp.test_from, ConfigError, where, ": valid_from must not be after test_from");
  }
  if (sp.by == "file")
    BW_CHECK(!sp.valid_files.empty() || !sp.test_files.empty(), ConfigError, where,
             ": split by file needs valid_files and/or test_files");
  const ConfigNode* out = r.root.find("output");
  r.shard_rows = OutputParams::params().parse(out ? *out : kNull).shard_rows;
  // Build every operator once so that recipe mistakes surface before any data is read.
  OpContext ctx;
  for (const auto& node : r.ops) create_op(node, ctx);
  return r;
}

Recipe load_recipe(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const IoError& e) {
    BW_THROW(ConfigError, "cannot read recipe: ", e.what());
  }
  return parse_recipe(text, path);
}

Recipe load_dataset_recipe(const fs::path& dataset) {
  Dataset ds = Dataset::open(dataset);
  const json& p = ds.pipeline();
  BW_CHECK(p.is_object() && p.contains("recipe") && p["recipe"].is_string(), FormatError, (dataset / "meta.json").string(),
           ": no prep recipe stored in 'pipeline.recipe'");
  Recipe r = parse_recipe(p["recipe"].get<std::string>(), (dataset / "meta.json").string() + " (stored recipe)");
  r.path.clear();
  return r;
}

PrepReport run_prep(const Recipe& recipe, const PrepOptions& opt) {
  auto t0 = Clock::now();
  BW_CHECK(!opt.inputs.empty(), ConfigError, "prep: no input files given (--input FILE ...)");
  BW_CHECK(!opt.out.empty(), ConfigError, "prep: no output directory given (--out DIR)");
  const int threads = resolve_threads(opt.threads);
  PrepReport report;

  OpContext ctx;
  ctx.threads = threads;
  ctx.memory_budget = opt.memory_mb << 20;
  ctx.temp_dir = opt.temp_dir.empty() ? (opt.out.has_parent_path() ? opt.out.parent_path().string() : std::string("."))
                                      : opt.temp_dir;

  std::vector<std::unique_ptr<Op>> ops;
  for (const auto& node : recipe.ops) ops.push_back(create_op(node, ctx));

  // The layout every chunk will have, from the reader through each operator.
  auto reader_layout = [&] {
    PlanState p;
    for (const auto& c : recipe.input.columns)
      if (c.role != Role::kIgnore) p.columns.push_back(ColumnInfo{c.name, c.role, kind_for_role(c.role), 0});
    return p;
  };
  PlanState plan = reader_layout();
  const std::size_t raw_columns = plan.columns.size();
  std::vector<std::string> raw_names;
  for (const auto& c : plan.columns) raw_names.push_back(c.name);
  // The index of a raw input column (Chunk::columns as parsed), -1 for other names.
  auto raw_index = [&](const std::string& name) {
    const auto it = std::find(raw_names.begin(), raw_names.end(), name);
    return it == raw_names.end() ? -1 : static_cast<int>(it - raw_names.begin());
  };
  for (const auto& op : ops) op->plan(plan);

  // Catch what would otherwise fail only after a full fit pass.
  for (const auto& c : plan.columns) {
    bool sparse = c.role == Role::kCategorical || c.role == Role::kMulti || c.role == Role::kSequence;
    if (!sparse || c.cardinality > 0) continue;
    bool fitted_later = false;
    for (const auto& op : ops)
      for (const auto& o : op->outputs()) fitted_later = fitted_later || (op->needs_fit() && o == c.name);
    BW_CHECK(fitted_later, ConfigError, recipe.path, ": column '", c.name, "' is ", role_name(c.role),
             " but no operator maps its values to ids; add {op: categorify, columns: ", c.name,
             "} or {op: hash, columns: ", c.name, ", buckets: N} to the ops");
  }
  {
    std::error_code ec;
    BW_CHECK(opt.overwrite || !fs::exists(opt.out, ec), IoError, "output '", opt.out.string(),
             "' already exists (pass --overwrite to replace it)");
  }

  const bool applying = !opt.apply_to.empty();
  std::vector<int> avail = compute_stages(ops);
  int fit_passes = 0;
  // needed[p][i]: operator i must transform during fit pass p because an operator fitted in that pass reads
  // (directly or through other operators) what it writes. The rest wait for the write pass.
  // `read`, when given, gets the columns those operators read (names may repeat).
  auto needed_in_pass = [&](int pass, std::vector<std::string>* read = nullptr) {
    std::vector<bool> need(ops.size(), false);
    std::vector<std::string> wanted;
    for (std::size_t j = ops.size(); j-- > 0;) {
      if (avail[j] == pass + 1) {
        for (const auto& in : ops[j]->inputs()) wanted.push_back(in);
        continue;
      }
      if (avail[j] > pass) continue;
      bool feeds = false;
      for (const auto& out : ops[j]->outputs())
        feeds = feeds || std::find(wanted.begin(), wanted.end(), out) != wanted.end();
      if (feeds) {
        need[j] = true;
        for (const auto& in : ops[j]->inputs()) wanted.push_back(in);
      }
    }
    if (read) *read = wanted;
    return need;
  };
  if (applying) {
    Dataset src = Dataset::open(opt.apply_to);
    const json& p = src.pipeline();
    // Datasets from before categorical_keys was stored used scheme 1 (every value hashed).
    int scheme = 1;
    if (p.contains("categorical_keys")) {
      BW_CHECK(p["categorical_keys"].is_number_integer(), FormatError, (opt.apply_to / "meta.json").string(),
               ": pipeline.categorical_keys: expected an integer, got ", p["categorical_keys"].dump());
      scheme = p["categorical_keys"].get<int>();
    }
    BW_CHECK(scheme == kCategoricalKeyScheme, FormatError, (opt.apply_to / "meta.json").string(),
             ": pipeline.categorical_keys: the dataset was prepared by a bluewhale that keys categorical values "
             "differently (scheme ", scheme, ", this build uses ", kCategoricalKeyScheme,
             "), so its fitted dictionaries and hash buckets would not match new rows; prepare it again from the raw "
             "files");
    BW_CHECK(p.contains("ops") && p["ops"].is_array() && p["ops"].size() == ops.size(), FormatError,
             (opt.apply_to / "meta.json").string(), ": stored pipeline does not match its recipe (", ops.size(), " operators)");
    for (std::size_t i = 0; i < ops.size(); ++i) {
      const json& e = p["ops"][i];
      BW_CHECK(e.is_object() && e.value("op", "") == ops[i]->name(), FormatError, (opt.apply_to / "meta.json").string(),
               ": stored operator ", i, " is not '", ops[i]->name(), "'");
      if (!ops[i]->needs_fit()) continue;
      std::string file = e.value("state", "");
      BW_CHECK(!file.empty() && file.find('/') == std::string::npos && file.find("..") == std::string::npos, FormatError,
               (opt.apply_to / "meta.json").string(), ": bad state file name for operator ", i);
      BinaryReader in(opt.apply_to / "pipeline" / file, "op-state", kOpStateVersion);
      ops[i]->load_state(in);
    }
  } else {
    for (int a : avail) fit_passes = std::max(fit_passes, a);
  }

  for (const auto& f : opt.inputs) {
    // Every input is opened more than once (its compression detected, then read once per pass): a pipe or a
    // device would lose what the first opening read, and the rows would come out cut.
    std::error_code ec;
    const fs::file_status st = fs::status(f, ec);
    BW_CHECK(ec || fs::is_regular_file(st), IoError, "input '", f,
             "' is not a regular file (a pipe or a device): prep reads each input more than once (to detect its "
             "compression, then once per pass); save it to a file first");
    report.input_bytes += file_size(f);  // a missing or unreadable path fails here, named
  }
  Splitter splitter(recipe.split, opt.inputs, opt);

  std::unique_ptr<DatasetWriter> writer;
  // Rows per split seen by the first fit pass: the write pass writes exactly these, so the dataset writer
  // can lay its shards out in advance (DatasetWriter::expect_rows).
  std::vector<std::array<int64_t, kNumSplits>> fit_rows(threads, std::array<int64_t, kNumSplits>{});
  MissingCounter missing;
  missing.per_thread.resize(threads);
  missing.deferred.assign(raw_columns, false);
  std::vector<BadRowStats> bad(threads);

  // One streaming pass. `pass` < fit_passes fits the operators whose stage is pass+1; the last pass
  // transforms everything and writes.
  // Raw parsed chunks kept in memory between passes (up to the cache budget), so that a later pass
  // replays them instead of reading and parsing the text again. cache[k] is chunk k of the input.
  // A deque: growing it at the end keeps references to existing slots valid while workers hold them.
  // Chunks are kept packed (see PackedChunk), and the chunks that workers parse into are reused.
  PackArena cache_arena;  // declared first: the packed chunks point into it
  std::deque<std::unique_ptr<PackedChunk>> cache;
  std::atomic<int64_t> cache_bytes{0};
  // Plain text is read and parsed again in a later pass rather than cached: the file sits in the page
  // cache after the first pass, and the cache's fresh memory (~290 bytes per Criteo row, ~2 ms per MiB
  // on the virtual machines prep runs on) cost as much as parsing again, with twice the peak memory.
  // Compressed input is cached: decompressing again on the one reader thread would bound the pass.
  bool any_compressed = false;
  if (fit_passes > 0)
    for (const auto& f : opt.inputs)
      any_compressed = any_compressed ||
                       text::open_byte_source(f, recipe.input.format.compression)->compression() != text::Compression::kNone;
  // The text a fit will see in all is known for plain input only.
  ctx.input_bytes = any_compressed ? 0 : report.input_bytes;
  const int64_t cache_budget = any_compressed && opt.cache_mb > 0 ? opt.cache_mb << 20 : 0;
  // Plain files are mapped once for every pass; the second finds the page-table entries the first made.
  std::unique_ptr<InputMaps> maps;
  if (opt.map_mb > 0) {
    maps = std::make_unique<InputMaps>(opt.inputs, recipe.input.format.compression, opt.map_mb << 20);
    for (std::size_t i = 0; i < opt.inputs.size(); ++i)
      if (maps->touch_ns(i) >= 0)
        log_debug("prep: ", opt.inputs[i], ": first touch ", static_cast<int>(maps->touch_ns(i)), " ns a page: ",
                  maps->view(i).data ? "mapped" : "read (touching it through a mapping costs more)");
  }
  bool all_cached = false;
  auto chunk_bytes = [](const Chunk& c) {
    int64_t b = static_cast<int64_t>(c.split.capacity() + c.row_index.capacity() * 8);
    for (const auto& col : c.columns)
      b += static_cast<int64_t>(col.f.capacity() * 4 + col.i.capacity() * 8 + col.valid.capacity() + col.offsets.capacity() * 8);
    return b;
  };

  std::optional<std::vector<ChunkCut>> pass_cuts;  // the first pass's chunks, when every file is plain
  // Chunks a fit pass parsed into, kept for the write pass: their ~1 MB of buffers each would otherwise be
  // fresh pages there (costly on virtual machines, see core/zero_buffer.h).
  std::vector<std::unique_ptr<Chunk>> spare_chunks;
  // One streaming pass. `pass` < fit_passes fits the operators whose stage is pass+1; the last pass
  // transforms everything and writes.
  auto run_pass = [&](int pass, bool write) {
    std::string label = write ? (fit_passes ? str_cat("prep: pass ", pass + 1, "/", fit_passes + 1, " (transform, write)")
                                            : std::string("prep: transform, write"))
                              : str_cat("prep: pass ", pass + 1, "/", fit_passes + 1, " (fit)");
    if (opt.progress) log_info(label, " over ", opt.inputs.size(), " file(s), ", format_bytes(report.input_bytes),
                               pass > 0 && all_cached ? " (replayed from memory)" : "");
    ProgressReporter progress(label, report.input_bytes, 10.0, opt.progress);
    for (std::size_t i = 0; i < ops.size(); ++i)
      if (!write && avail[i] == pass + 1) ops[i]->begin_fit(ctx);
    // Bad rows are counted once, in the pass that parses every chunk.
    std::vector<BadRowStats> scratch_bad(threads);
    std::vector<BadRowStats>& pass_bad = pass == 0 ? bad : scratch_bad;
    const bool fill_cache = pass == 0 && !write && cache_budget > 0;
    std::unique_ptr<TextReader> reader;
    if (!(pass > 0 && all_cached)) {
      reader = std::make_unique<TextReader>(opt.inputs, recipe.input, 2 * threads, maps.get());
      if (pass_cuts) reader->replay(*pass_cuts);
      // A fit pass converts only the columns its operators (and a time split) read: the others are only
      // delimited (Criteo's dense fields, a third of the parsing). Not when dropping bad rows (every field
      // decides which rows count) nor when filling the cache (a later pass replays every column).
      if (!write && !fill_cache && recipe.input.format.on_bad_rows == "error") {
        std::vector<std::string> wanted;
        needed_in_pass(pass, &wanted);
        if (recipe.split.by == "time") wanted.push_back(recipe.split.column);
        std::vector<std::string> skip;
        for (const auto& c : recipe.input.columns)
          if (c.role != Role::kIgnore && kind_for_role(c.role) != ColumnKind::kList &&
              std::find(wanted.begin(), wanted.end(), c.name) == wanted.end())
            skip.push_back(c.name);
        reader->skip_values(skip);
        if (pass == 0)
          for (std::size_t k = 0; k < raw_names.size(); ++k)
            missing.deferred[k] = std::find(skip.begin(), skip.end(), raw_names[k]) != skip.end();
      }
    }
    std::unique_ptr<OrderedWriter> ordered;
    if (write) {
      ordered = std::make_unique<OrderedWriter>(writer.get(), static_cast<std::size_t>(2 * threads + 2), threads);
      for (std::size_t k = 0; k < spare_chunks.size(); ++k)
        ordered->add_free(std::move(*spare_chunks[k]), static_cast<int>(k % static_cast<std::size_t>(threads)));
      spare_chunks.clear();
    }
    const std::vector<bool> need = write ? std::vector<bool>(ops.size(), true) : needed_in_pass(pass);
    bool transforms_in_pass = write;
    for (std::size_t i = 0; i < ops.size(); ++i) transforms_in_pass = transforms_in_pass || (need[i] && avail[i] <= pass);

    // Fits split into parts (Op::fit_parts) are spread over the threads by part: each part has one owner
    // thread, which counts that part of every chunk, whoever parsed it. Parts go to owners in turn,
    // the op's parts in order.
    std::vector<std::vector<int>> part_owner(ops.size());
    bool by_parts = false;
    if (!write && threads > 1) {
      int next_owner = 0;
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (avail[i] != pass + 1) continue;
        const int parts = ops[i]->fit_parts();
        for (int p = 0; p < parts; ++p) {
          part_owner[i].push_back(next_owner);
          next_owner = (next_owner + 1) % threads;
        }
        by_parts = by_parts || parts > 0;
      }
    }

    // Workers pull chunks one at a time (no barrier between batches): the next chunk of text from the
    // reader, or the next cached chunk once everything is cached.
    std::mutex source_mu;
    std::atomic<std::size_t> next_index{0};  // chunks handed out
    std::atomic<bool> cache_missed_any{false};
    std::vector<std::array<int64_t, kNumSplits>> written(threads, std::array<int64_t, kNumSplits>{});
    // Set when a worker fails: the others take no further chunk (the error is reported once they
    // return, not after they read the rest of the input).
    std::atomic<bool> failed{false};
    auto next_work = [&](TextChunk& t, std::size_t& at) {
      if (failed.load(std::memory_order_relaxed)) return false;
      if (reader && !fill_cache) {
        // No lock of ours around the reader: it numbers its chunks, and reads a replayed chunk outside its
        // own lock, so that one thread's copy does not wait for the other's.
        if (!reader->next(t)) return false;
        at = t.index;
        ++next_index;
        return true;
      }
      std::lock_guard<std::mutex> lk(source_mu);
      if (reader) {
        if (!reader->next(t)) return false;
        at = t.index;
      } else if (next_index >= cache.size()) {
        return false;
      } else {
        at = next_index;
      }
      ++next_index;
      if (fill_cache && cache.size() <= at) cache.resize(at + 1);  // only this thread resizes, under the lock
      return true;
    };
    auto process = [&](TextChunk& text, std::size_t at, Chunk& c, int tid) {
      int64_t raw_bytes = text.raw_bytes;
      std::unique_ptr<PackedChunk>* slot = nullptr;
      {
        std::lock_guard<std::mutex> lk(source_mu);
        if (at < cache.size()) slot = &cache[at];
      }
      if (pass > 0 && slot && *slot) {
        // The last pass consumes the cache; an intermediate fit pass keeps it for the next one.
        (*slot)->unpack(c);
        if (write) slot->reset();
        if (!reader) {
          int64_t n = static_cast<int64_t>(cache.size()), k = static_cast<int64_t>(at);
          raw_bytes = report.input_bytes * (k + 1) / n - report.input_bytes * k / n;
        }
      } else {
        reader->parse(text, c, pass_bad[tid]);
        splitter.assign(c);
        if (fill_cache && transforms_in_pass) {
          int64_t b = chunk_bytes(c);
          if (cache_bytes.fetch_add(b) + b <= cache_budget) *slot = std::make_unique<PackedChunk>(c, &cache_arena);
        }
      }
      const int64_t rows = c.rows;
      if (pass == 0) missing.count(c, tid, false);
      if (write && pass > 0) missing.count(c, tid, true);  // nothing deferred when pass 0 filled the cache
      if (pass == 0 && !write) count_split_rows(c, fit_rows[tid]);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (write) {
          ops[i]->transform(c, !applying);
        } else if (avail[i] <= pass) {
          if (need[i]) ops[i]->transform(c, true);
        } else if (avail[i] == pass + 1) {
          if (!by_parts || ops[i]->fit_parts() == 0) ops[i]->fit_chunk(c, tid);
        }
      }
      if (write) count_split_rows(c, written[tid]);
      // Nothing changed the parsed chunk in this pass: pack it now, after the operators read it.
      if (fill_cache && !transforms_in_pass && !*slot) {
        int64_t b = chunk_bytes(c);
        if (cache_bytes.fetch_add(b) + b <= cache_budget) *slot = std::make_unique<PackedChunk>(c, &cache_arena);
      }
      if (fill_cache && !*slot) cache_missed_any = true;
      progress.add(rows, raw_bytes);
    };
    // By parts: parsed chunks wait in a ring until every thread counted its parts of them. A thread
    // first counts its parts of the chunks others published, then parses the next chunk when a ring slot
    // is free, else waits; so a thread whose parts cost more parses fewer chunks. The ring starts with a
    // chunk per thread and grows when a thread would wait, up to ring_max (with 2 * threads + 2 slots
    // threads still waited 5-30 ms per 1M Criteo rows; with 4 * threads + 2, not at all).
    const std::size_t ring_max = static_cast<std::size_t>(4 * threads + 2);
    // An earlier fit pass's chunk when there is one (its buffers are touched memory), else a new one.
    auto new_chunk = [&] {
      if (spare_chunks.empty()) return std::make_unique<Chunk>();
      std::unique_ptr<Chunk> c = std::move(spare_chunks.back());
      spare_chunks.pop_back();
      return c;
    };
    std::mutex ring_mu;
    std::condition_variable ring_cv;
    std::vector<std::unique_ptr<Chunk>> ring_store;
    std::vector<Chunk*> ring_free;
    std::deque<Chunk*> published;          // by publication order, from published_base on
    std::deque<int> unfinished;            // threads yet to count their parts of each published chunk
    std::size_t published_base = 0;
    std::vector<std::size_t> counted(threads, 0);  // chunks each thread counted its parts of
    int parsing = 0;
    bool reading_done = false, ring_failed = false;
    auto fit_own_parts = [&](const Chunk& c, int tid) {
      for (std::size_t i = 0; i < ops.size(); ++i)
        for (std::size_t p = 0; p < part_owner[i].size(); ++p)
          if (part_owner[i][p] == tid) ops[i]->fit_chunk_part(c, static_cast<int>(p), tid, true);
    };
    auto parts_worker = [&](int tid) {
      TextChunk text;
      std::size_t at = 0;
      std::unique_lock<std::mutex> lk(ring_mu);
      for (;;) {
        if (ring_failed) return;
        if (counted[tid] < published_base + published.size()) {
          const std::size_t seq = counted[tid]++;
          Chunk* c = published[seq - published_base];
          lk.unlock();
          fit_own_parts(*c, tid);
          lk.lock();
          // Chunks before this one may have left the deque meanwhile: index it again.
          if (--unfinished[seq - published_base] == 0) {
            ring_free.push_back(c);
            ring_cv.notify_all();
          }
          while (!unfinished.empty() && unfinished.front() == 0) {
            unfinished.pop_front();
            published.pop_front();
            ++published_base;
          }
          continue;
        }
        if (reading_done) {
          if (parsing == 0) return;
          ring_cv.wait(lk);
          continue;
        }
        if (ring_free.empty() && ring_store.size() < ring_max) {
          ring_store.push_back(new_chunk());
          ring_free.push_back(ring_store.back().get());
        }
        if (ring_free.empty()) {
          ring_cv.wait(lk);
          continue;
        }
        Chunk* c = ring_free.back();
        ring_free.pop_back();
        ++parsing;
        lk.unlock();
        const bool got = next_work(text, at);  // an error stops every thread (the catch below)
        if (got) process(text, at, *c, tid);
        lk.lock();
        --parsing;
        if (got) {
          published.push_back(c);
          unfinished.push_back(threads);
        } else {
          reading_done = true;
          ring_free.push_back(c);
        }
        ring_cv.notify_all();
      }
    };
    // On two threads, a first pass whose fits all split into parts that read raw columns, with nothing
    // else needing whole chunks (no operator transforms in it, no cache to fill, every bad row an error),
    // is shared by columns instead of by chunks (prep/column_split.h).
    std::vector<ColumnSplitFit::Part> split_parts;
    bool by_columns = by_parts && threads == ColumnSplitFit::kThreads && pass == 0 && reader && !fill_cache &&
                      !transforms_in_pass && recipe.input.format.on_bad_rows == "error" &&
                      opt.fit_sharing != PrepOptions::FitSharing::kChunks;
    for (std::size_t i = 0; by_columns && i < ops.size(); ++i) {
      if (avail[i] != pass + 1) continue;
      by_columns = ops[i]->fit_parts() > 0;
      for (int p = 0; by_columns && p < ops[i]->fit_parts(); ++p) {
        ColumnSplitFit::Part part{static_cast<int>(i), p, {}};
        const std::vector<std::string> names = ops[i]->fit_part_inputs(p);
        by_columns = !names.empty();
        for (const std::string& name : names) {
          part.columns.push_back(raw_index(name));
          by_columns = by_columns && part.columns.back() >= 0;
        }
        split_parts.push_back(std::move(part));
      }
    }
    if (by_columns && opt.fit_sharing == PrepOptions::FitSharing::kAuto) {
      // Sharing by chunks moves every parsed key of the other thread's columns between the cores: cheap
      // within a core complex (it beat sharing by columns by ~10 % of the pass there), 35-50 % of the
      // pass across two on one host (by columns then saved ~20 %; 1M Criteo rows, 2026-12-05), while on
      // a host whose vCPUs probe farther apart still by chunks won (PrepOptions::kColumnsUpToNs). A ~0.5 ms
      // probe.
      // Only where the two CPUs are the process's to use (under a one-CPU quota the two spinning threads
      // would take turns by quota periods).
      const std::vector<int> cpus = allowed_cpus();
      const bool two = cpus.size() == 2 && available_threads() >= 2;
      const double ns = two ? cpu_round_trip_ns(cpus[0], cpus[1], 1000, 3) : std::nan("");
      by_columns = PrepOptions::columns_for_round_trip(ns);
      log_debug("prep: cores ", two ? str_cat(static_cast<int>(ns), " ns apart") : std::string("not probed"),
                ": fit shared by ", by_columns ? "columns" : "chunks");
    }
    if (pass == 0 && by_parts) report.fit_sharing = by_columns ? "columns" : "chunks";
    if (by_columns) {
      std::vector<int> always;
      if (recipe.split.by == "time" && raw_index(recipe.split.column) >= 0) always.push_back(raw_index(recipe.split.column));
      ColumnSplitFit::Hooks hooks;
      hooks.next = next_work;
      hooks.plan = [&](const std::vector<uint8_t>& convert) {
        std::vector<std::string> skip;
        for (const auto& c : recipe.input.columns) {
          const int k = raw_index(c.name);
          if (k >= 0 && !convert[static_cast<std::size_t>(k)] && kind_for_role(c.role) != ColumnKind::kList)
            skip.push_back(c.name);
        }
        return reader->plan_skipping(skip);
      };
      hooks.parse = [&](const TextChunk& text, std::size_t, Chunk& c, int tid, const TextReader::ParsePlan* plan) {
        reader->parse(text, c, pass_bad[tid], plan);
        splitter.assign(c);
      };
      hooks.parsed = [&](const Chunk& c, const TextChunk& text, int tid, const std::vector<uint8_t>& counted, bool first) {
        missing.count(c, tid, false, &counted);
        if (!first) return;
        count_split_rows(c, fit_rows[tid]);
        progress.add(c.rows, text.raw_bytes);
      };
      hooks.fit = [&](const Chunk& c, const ColumnSplitFit::Part& p, int tid, bool sole) {
        ops[static_cast<std::size_t>(p.op)]->fit_chunk_part(c, p.part, tid, sole);
      };
      hooks.size = [&](const ColumnSplitFit::Part& p, int tid) {
        return ops[static_cast<std::size_t>(p.op)]->fit_part_size(p.part, tid);
      };
      ColumnSplitFit split(std::move(split_parts), raw_names.size(), std::move(always), ctx.input_bytes, std::move(hooks));
      ring_store.push_back(new_chunk());
      ring_store.push_back(new_chunk());
      split.run(*ring_store[0], *ring_store[1]);
    } else if (by_parts) {
      for (int k = 0; k < threads; ++k) {
        ring_store.push_back(new_chunk());
        ring_free.push_back(ring_store.back().get());
      }
    }
    if (!by_columns) {
      try {
        parallel_for(threads, threads, [&](int64_t, int64_t, int tid) {
          if (by_parts) {
            try {
              parts_worker(tid);
            } catch (...) {
              failed = true;
              std::lock_guard<std::mutex> lk(ring_mu);
              ring_failed = true;
              ring_cv.notify_all();
              throw;
            }
            return;
          }
          TextChunk text;
          std::size_t at = 0;
          Chunk scratch;  // a fit pass keeps nothing of its chunks: one buffer per worker, reused
          try {
            while (next_work(text, at)) {
              if (ordered) {
                Chunk c = ordered->take_free(tid);
                process(text, at, c, tid);
                if (!ordered->put(at, std::move(c), tid)) break;  // another worker failed
              } else {
                process(text, at, scratch, tid);
              }
            }
            if (ordered) ordered->done(tid);
          } catch (...) {
            failed = true;
            // The others may be waiting for this worker's chunk to be written (they are at most
            // max_ahead chunks ahead of it): they stop instead.
            if (ordered) ordered->abort();
            throw;
          }
        });
      } catch (...) {
        if (ordered) ordered->abort();
        throw;
      }
    }
    if (ordered) ordered->finish(next_index);
    for (auto& c : ring_store) spare_chunks.push_back(std::move(c));
    for (const auto& w : written)
      for (int sp = 0; sp < kNumSplits; ++sp) {
        report.split_rows[sp] += w[sp];
        report.rows += w[sp];
      }
    bool cache_missed = cache_missed_any.load();
    if (fill_cache) {
      all_cached = !cache_missed;
      if (cache_missed)
        log_info("prep: parsed rows exceed the cache budget (--cache-mb ", opt.cache_mb,
                 "); later passes re-read the rest of the input");
    }
    log_debug("prep: pass ", pass + 1, " streamed at ", phase_mark(t0));
    // Plain input: later passes take this pass's chunks as cut, without scanning for records again.
    if (reader && !pass_cuts) pass_cuts = reader->cuts();
    for (std::size_t i = 0; i < ops.size(); ++i)
      if (!write && avail[i] == pass + 1) ops[i]->end_fit();
    progress.finish();
  };

  // With no fitting (apply-to or stateless recipes), a single pass counts missing values too.
  auto tf = Clock::now();
  log_debug("prep: setup ", phase_mark(t0));
  for (int pass = 0; pass < fit_passes; ++pass) run_pass(pass, false);
  log_debug("prep: fit passes done at ", phase_mark(t0));
  report.fit_seconds = since(tf);
  // Fitted operators know their output sizes (categorify's cardinality) only now: plan again.
  plan = reader_layout();
  for (const auto& op : ops) op->plan(plan);
  std::vector<DatasetColumn> out_cols;
  for (const auto& c : plan.columns) {
    if (c.role == Role::kIgnore) continue;
    DatasetColumn d;
    d.name = c.name;
    d.role = c.role;
    d.cardinality = c.cardinality;
    out_cols.push_back(d);
  }
  DatasetWriterOptions wopt;
  wopt.shard_rows = recipe.shard_rows;
  wopt.overwrite = opt.overwrite;
  writer = std::make_unique<DatasetWriter>(opt.out, out_cols, wopt);
  // A column whose last writer fitted on these very rows and knows which of its ids all occur there is
  // counted without marking those (its distinct ids in meta.json); applied state promises nothing.
  for (const auto& d : out_cols) {
    const Op* last = nullptr;
    for (const auto& op : ops)
      for (const auto& o : op->outputs())
        if (o == d.name) last = op.get();
    const int64_t from = last ? last->ids_present_from(d.name) : -1;
    if (from >= 0) writer->assume_ids_present(d.name, from);
  }
  if (fit_passes > 0) {
    std::array<int64_t, kNumSplits> expect{};
    for (const auto& t : fit_rows)
      for (int sp = 0; sp < kNumSplits; ++sp) expect[sp] += t[sp];
    writer->expect_rows(expect);
  }
  // The fitted state is final now: it is written (and fsynced, tens of ms on some disks) on a thread of
  // its own while the write pass runs, instead of after it. Joined before the writer can remove the
  // staging directory, on every path.
  fs::path pipe_dir = writer->staging_path() / "pipeline";
  std::exception_ptr state_error;
  struct Joiner {
    std::thread t;
    ~Joiner() {
      if (t.joinable()) t.join();
    }
  } state_saver;
  state_saver.t = std::thread([&] {
    try {
      fs::create_directories(pipe_dir);
      for (std::size_t i = 0; i < ops.size(); ++i) {
        if (!ops[i]->needs_fit()) continue;
        BinaryWriter out(pipe_dir / op_state_file(i, ops[i]->name()), "op-state", kOpStateVersion);
        ops[i]->save_state(out);
        out.close();
      }
    } catch (...) {
      state_error = std::current_exception();
    }
  });
  auto tw = Clock::now();
  run_pass(fit_passes, true);
  log_debug("prep: write pass done at ", phase_mark(t0));
  report.write_seconds = since(tw);
  report.passes = fit_passes + 1;
  BadRowStats all_bad;
  for (const auto& b : bad) all_bad.add(b);
  report.skipped_rows = all_bad.skipped;
  report.first_skip_error = all_bad.first_error;
  if (report.skipped_rows > 0)
    log_warn("prep: skipped ", report.skipped_rows, " bad row(s); first: ", report.first_skip_error);

  // Persist the fitted pipeline with the dataset.
  state_saver.t.join();
  if (state_error) std::rethrow_exception(state_error);
  json pipeline;
  pipeline["recipe"] = recipe.text;
  pipeline["recipe_source"] = recipe.path;
  pipeline["inputs"] = opt.inputs;
  pipeline["applied_from"] = applying ? fs::absolute(opt.apply_to).string() : std::string();
  pipeline["categorical_keys"] = kCategoricalKeyScheme;
  json op_list = json::array();
  for (std::size_t i = 0; i < ops.size(); ++i) {
    json e;
    e["op"] = ops[i]->name();
    if (ops[i]->needs_fit()) e["state"] = op_state_file(i, ops[i]->name());
    std::string s = ops[i]->summary();
    if (!s.empty()) report.op_summaries.push_back(s);
    op_list.push_back(e);
  }
  pipeline["ops"] = op_list;
  log_debug("prep: pipeline state saved at ", phase_mark(t0));
  // The commit mostly waits for the disk (the last slices, fsyncs: ~5 ms at 1M rows). Meanwhile another
  // thread frees what the run no longer needs: the input's mappings, the operators' fitted state, the
  // freed regions kept for reuse, the heap's free pages. Left to the process exit, that teardown (tens of MB in 4 KiB pages)
  // came after the commit, ~1 ms on the 2-core VM.
  Joiner releaser;
  releaser.t = std::thread([done = std::move(ops), maps = std::move(maps)]() mutable {
    maps.reset();
    done.clear();
    release_zeroed_regions();
    malloc_trim(0);
  });
  writer->commit(pipeline);
  const DatasetWriter::WriteMode wm = writer->write_mode();
  report.shard_writes = wm.direct ? "direct" : "page cache";
  report.page_cache_us_per_mib = wm.page_cache_ns_per_mib / 1000;
  log_debug("prep: dataset committed at ", phase_mark(t0));

  std::vector<int64_t> miss(raw_columns, 0);
  for (const auto& m : missing.per_thread)
    for (std::size_t k = 0; k < m.size() && k < raw_columns; ++k) miss[k] += m[k];
  int64_t total_rows = report.rows + report.skipped_rows;
  for (const auto& c : plan.columns) {
    PrepColumnSummary s;
    s.name = c.name;
    s.role = std::string(role_name(c.role));
    s.cardinality = c.cardinality;
    const int k = raw_index(c.name);
    s.missing_rate = k < 0 || total_rows == 0 ? 0.0 : double(miss[static_cast<std::size_t>(k)]) / double(total_rows);
    report.columns.push_back(s);
  }
  report.seconds = since(t0);
  return report;
}

std::string PrepReport::to_json() const {
  json j;
  j["rows"] = rows;
  j["split_rows"] = {{"train", split_rows[0]}, {"valid", split_rows[1]}, {"test", split_rows[2]}};
  j["skipped_rows"] = skipped_rows;
  if (!first_skip_error.empty()) j["first_skip_error"] = first_skip_error;
  j["input_bytes"] = input_bytes;
  j["passes"] = passes;
  j["seconds"] = seconds;
  j["fit_seconds"] = fit_seconds;
  j["write_seconds"] = write_seconds;
  if (!fit_sharing.empty()) j["fit_sharing"] = fit_sharing;
  if (!shard_writes.empty()) j["shard_writes"] = shard_writes;
  if (std::isfinite(page_cache_us_per_mib)) j["page_cache_us_per_mib"] = page_cache_us_per_mib;
  j["rows_per_second"] = seconds > 0 ? double(rows + skipped_rows) / seconds : 0.0;
  j["input_mb_per_second"] = seconds > 0 ? double(input_bytes) * passes / 1e6 / seconds : 0.0;
  json cols = json::array();
  for (const auto& c : columns)
    cols.push_back({{"name", c.name}, {"role", c.role}, {"cardinality", c.cardinality}, {"missing_rate", c.missing_rate}});
  j["columns"] = cols;
  j["operators"] = op_summaries;
  return j.dump(2);
}

std::string PrepReport::to_text() const {
  std::string s;
  char buf[256];
  std::snprintf(buf, sizeof buf, "rows: %lld (train %lld, valid %lld, test %lld)%s\n", (long long)rows,
                (long long)split_rows[0], (long long)split_rows[1], (long long)split_rows[2],
                skipped_rows ? str_cat(", skipped ", skipped_rows).c_str() : "");
  s += buf;
  double rps = seconds > 0 ? double(rows + skipped_rows) / seconds : 0.0;
  s += "time: " + format_duration(seconds) + " (" + std::to_string(passes) + " pass" + (passes > 1 ? "es" : "") +
       "; fit " + format_duration(fit_seconds) + ", transform+write " + format_duration(write_seconds) + "), " +
       format_count(rps) + " rows/s, " + format_bytes(seconds > 0 ? double(input_bytes) / seconds : 0) + "/s of input\n";
  s += "columns:\n";
  for (const auto& c : columns) {
    std::snprintf(buf, sizeof buf, "  %-20s %-12s cardinality %-10s missing %5.1f%%\n", c.name.c_str(), c.role.c_str(),
                  c.cardinality ? std::to_string(c.cardinality).c_str() : "-", 100.0 * c.missing_rate);
    s += buf;
  }
  if (!op_summaries.empty()) s += "fitted:\n";
  for (const auto& o : op_summaries) {
    // An operator over many columns reports "a; b; c": one line each reads better.
    std::size_t start = 0;
    for (;;) {
      std::size_t sep = o.find("; ", start);
      s += "  " + o.substr(start, sep == std::string::npos ? std::string::npos : sep - start) + "\n";
      if (sep == std::string::npos) break;
      start = sep + 2;
    }
  }
  return s;
}

}  // namespace bluewhale

namespace bluewhale {

int64_t default_cache_mb() {
  int64_t total = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGE_SIZE));
  std::error_code ec;
  for (const char* p : {"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    if (!fs::exists(p, ec)) continue;
    try {
      std::string s = read_file(p);
      if (!s.empty() && s[0] >= '0' && s[0] <= '9') total = std::min<int64_t>(total, std::stoll(s));
    } catch (const std::exception&) {
    }
  }
  return std::max<int64_t>(64, (total >> 20) / 4);
}

}  // namespace bluewhale
