#include "bluewhale/train/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "bluewhale/core/error.h"
#include "bluewhale/core/log.h"
#include "bluewhale/core/metrics.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/binary_io.h"
#include "bluewhale/loader/loader.h"
#include "bluewhale/core/version.h"

namespace bluewhale {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// JSON has no NaN/inf: undefined metrics (one class absent) are written as null.
nlohmann::json num(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Everything besides the model that a resumed run needs to continue exactly where the checkpoint was.
struct TrainState {
  int64_t step = 0;
  int64_t samples = 0;
  int64_t epoch = 0;
  int64_t batches_in_epoch = 0;  // batches of `epoch` consumed (skipped again on resume)
  double loss_sum = 0;           // training loss since the previous evaluation
  int64_t loss_count = 0;
  double last_auc = NAN;
  int64_t evaluations = 0;       // lines in metrics.jsonl
  int64_t last_eval_step = -1;
  double elapsed_seconds = 0;    // training wall time before this call
};

// The options a checkpoint's batch sequence depends on: changing them would not reproduce the run.
struct CheckpointKey {
  int64_t batch_size;
  int64_t seed;
  uint8_t shuffle;
  int64_t train_rows;
};

void write_checkpoint(const fs::path& path, const Model& model, const TrainState& st, const CheckpointKey& key) {
  BinaryWriter out(path, kCheckpointTag, kTrainFormatVersion);
  out.write_string(model.name());
  out.write(key.batch_size);
  out.write(key.seed);
  out.write(key.shuffle);
  out.write(key.train_rows);
  out.write(st.step);
  out.write(st.samples);
  out.write(st.epoch);
  out.write(st.batches_in_epoch);
  out.write(st.loss_sum);
  out.write(st.loss_count);
  out.write(st.last_auc);
  out.write(st.evaluations);
  out.write(st.last_eval_step);
  out.write(st.elapsed_seconds);
  model.save(out);
  out.close();
}

TrainState read_checkpoint(const fs::path& path, Model& model, const CheckpointKey& key) {
  BinaryReader in(path, kCheckpointTag, kTrainFormatVersion);
  const std::string name = in.read_string();
  in.check(name == model.name(), str_cat("checkpoint of a '", name, "' model, cannot resume a '", model.name(), "' model"));
  CheckpointKey k{};
  k.batch_size = in.read<int64_t>();
  k.seed = in.read<int64_t>();
  k.shuffle = in.read<uint8_t>();
  k.train_rows = in.read<int64_t>();
  auto mismatch = [&](const char* option, auto was, auto now) {
    BW_THROW(ConfigError, path.string(), ": train.", option, ": the checkpoint was written with ", was,
             ", the run asks for ", now, "; resuming would not reproduce the run (use the checkpoint's value or start"
             " a fresh run)");
  };
  if (k.batch_size != key.batch_size) mismatch("batch_size", k.batch_size, key.batch_size);
  if (k.seed != key.seed) mismatch("seed", k.seed, key.seed);
  if (k.shuffle != key.shuffle) mismatch("shuffle", k.shuffle ? "true" : "false", key.shuffle ? "true" : "false");
  BW_CHECK(k.train_rows == key.train_rows, InputError, path.string(), ": the checkpoint was trained on ", k.train_rows,
           " training rows, this dataset has ", key.train_rows, "; resume with the same dataset");
  TrainState st;
  st.step = in.read<int64_t>();
  st.samples = in.read<int64_t>();
  st.epoch = in.read<int64_t>();
  st.batches_in_epoch = in.read<int64_t>();
  st.loss_sum = in.read<double>();
  st.loss_count = in.read<int64_t>();
  st.last_auc = in.read<double>();
  st.evaluations = in.read<int64_t>();
  st.last_eval_step = in.read<int64_t>();
  st.elapsed_seconds = in.read<double>();
  in.check(st.step >= 0 && st.samples >= 0 && st.epoch >= 0 && st.batches_in_epoch >= 0 && st.loss_count >= 0 &&
               st.evaluations >= 0,
           "trainer state out of range");
  model.load(in);
  in.expect_end();
  return st;
}

// The first `lines` lines of metrics.jsonl: the evaluations a checkpoint had seen. Later lines came from
// the interrupted run after its checkpoint and will be produced again.
std::string metrics_prefix(const fs::path& path, int64_t lines) {
  std::string kept;
  if (!fs::exists(path)) return kept;
  std::istringstream in(read_file(path));
  std::string line;
  for (int64_t i = 0; i < lines && std::getline(in, line); ++i) kept += line + "\n";
  return kept;
}

// The live progress line: rewritten in place on a terminal, one plain line per interval otherwise.
class LiveLine {
 public:
  explicit LiveLine(double interval_s)
      : interval_s_(interval_s), tty_(isatty(STDERR_FILENO) != 0), enabled_(log_level() <= LogLevel::kInfo) {}
  ~LiveLine() { end(); }

  bool due() const { return enabled_ && seconds_since(last_) >= interval_s_; }
  void show(const std::string& text) {
    if (!enabled_) return;
    last_ = Clock::now();
    if (tty_) {
      std::fprintf(stderr, "\r%s\033[K", text.c_str());
      shown_ = true;
    } else {
      log_info(text);
    }
  }
  void end() {
    if (shown_) std::fputc('\n', stderr);
    shown_ = false;
  }

 private:
  double interval_s_;
  bool tty_, enabled_, shown_ = false;
  Clock::time_point last_ = Clock::now();
};

}  // namespace

const ParamTable<TrainOptions>& TrainOptions::params() {
  static const auto t =
      ParamTable<TrainOptions>("train")
          .add("epochs", &TrainOptions::epochs, int64_t{1}, "passes over the training split").min(1)
          .add("max_steps", &TrainOptions::max_steps, int64_t{0}, "stop after this many steps (0: no limit)").min(0)
          .add("batch_size", &TrainOptions::batch_size, int64_t{128}, "training rows per step").min(1)
          .add("eval_batch_size", &TrainOptions::eval_batch_size, int64_t{16384}, "rows per evaluation batch").min(1)
          .add("threads", &TrainOptions::threads, 0, "threads for the model (0: all available)").min(0)
          .add("seed", &TrainOptions::seed, int64_t{0}, "seed of the training data order").min(0)
          .add("shuffle", &TrainOptions::shuffle, true, "shuffle the training rows every epoch")
          .add("eval_every", &TrainOptions::eval_every, int64_t{0}, "steps between evaluations (0: only at the end)")
          .min(0)
          .add("eval_split", &TrainOptions::eval_split, std::string("valid"),
               "split evaluated (valid falls back to test when empty)")
          .choices({"valid", "test", "train"})
          .add("target_auc", &TrainOptions::target_auc, 0.0, "stop once an evaluation reaches this AUC (0: off)")
          .min(0)
          .max(1)
          .add("checkpoint_every", &TrainOptions::checkpoint_every, int64_t{0},
               "steps between checkpoints (0: none)")
          .min(0)
          .add("log_every_s", &TrainOptions::log_every_s, 10.0, "seconds between progress lines")
          .min(0);
  return t;
}

void TrainOptions::validate() const {
  BW_CHECK(epochs >= 1, ConfigError, "train.epochs: expected an integer >= 1, got ", epochs);
  BW_CHECK(max_steps >= 0, ConfigError, "train.max_steps: expected an integer >= 0, got ", max_steps);
  BW_CHECK(batch_size >= 1, ConfigError, "train.batch_size: expected an integer >= 1, got ", batch_size);
  BW_CHECK(eval_batch_size >= 1, ConfigError, "train.eval_batch_size: expected an integer >= 1, got ",
           eval_batch_size);
  BW_CHECK(seed >= 0, ConfigError, "train.seed: expected an integer >= 0, got ", seed);
  BW_CHECK(eval_every >= 0, ConfigError, "train.eval_every: expected an integer >= 0, got ", eval_every);
  BW_CHECK(eval_split == "valid" || eval_split == "test" || eval_split == "train", ConfigError,
           "train.eval_split: expected one of valid, test, train, got '", eval_split, "'");
  BW_CHECK(target_auc >= 0 && target_auc <= 1, ConfigError, "train.target_auc: expected a number in [0, 1], got ",
           target_auc);
  BW_CHECK(checkpoint_every >= 0, ConfigError, "train.checkpoint_every: expected an integer >= 0, got ",
           checkpoint_every);
  BW_CHECK(log_every_s >= 0, ConfigError, "train.log_every_s: expected a number >= 0, got ", log_every_s);
}

nlohmann::json TrainOptions::to_json() const {
  return {{"epochs", epochs},         {"max_steps", max_steps},   {"batch_size", batch_size},
          {"eval_batch_size", eval_batch_size}, {"threads", threads}, {"seed", seed},
          {"shuffle", shuffle},       {"eval_every", eval_every}, {"eval_split", eval_split},
          {"target_auc", target_auc}, {"checkpoint_every", checkpoint_every}, {"log_every_s", log_every_s}};
}

nlohmann::json EvalReport::to_json() const {
  return {{"split", split},   {"rows", rows},         {"auc", num(auc)},
          {"logloss", num(logloss)}, {"accuracy", num(accuracy)}, {"seconds", seconds},
          {"samples_per_second", samples_per_second}};
}

std::optional<Split> resolve_eval_split(const Dataset& ds, const std::string& eval_split) {
  Split s = eval_split == "test" ? Split::kTest : eval_split == "train" ? Split::kTrain : Split::kValid;
  if (s == Split::kValid && ds.split_rows(s) == 0) s = Split::kTest;
  if (ds.split_rows(s) == 0) return std::nullopt;
  return s;
}

EvalReport evaluate(Model& model, const Dataset& ds, Split split, int64_t batch_size, int threads) {
  const auto start = Clock::now();
  BW_CHECK(ds.label_column() >= 0, InputError, ds.root().string(), ": the dataset has no label column to evaluate");
  const int64_t n = ds.split_rows(split);
  BW_CHECK(n > 0, InputError, ds.root().string(), ": split '", split_name(split), "' has no rows to evaluate");
  LoaderOptions lo;
  lo.split = split;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.prefetch_batches = 2;
  Loader loader(ds, lo);
  std::vector<float> logits(static_cast<std::size_t>(n)), labels(static_cast<std::size_t>(n));
  int64_t pos = 0;
  Batch b;
  while (loader.next(b)) {
    BW_ASSERT(pos + b.size <= n);
    model.predict(b, logits.data() + pos, threads);
    std::copy(b.labels.begin(), b.labels.end(), labels.begin() + pos);
    pos += b.size;
  }
  BW_ASSERT(pos == n, pos, " rows read, ", n, " expected");
  for (int64_t i = 0; i < n; ++i)
    BW_CHECK(!std::isnan(logits[i]), InputError, "evaluate: the model scored row ", i, " of split '",
             split_name(split), "' as NaN (diverged parameters?)");
  EvalReport r;
  r.split = std::string(split_name(split));
  r.rows = n;
  // AUC only depends on the order of the scores, so logits serve as well as probabilities.
  r.auc = roc_auc(logits.data(), labels.data(), n, threads);
  std::vector<float>& probs = logits;
  for (auto& z : probs) z = static_cast<float>(1.0 / (1.0 + std::exp(-static_cast<double>(z))));
  r.logloss = log_loss(probs.data(), labels.data(), n);
  r.accuracy = accuracy(probs.data(), labels.data(), n);
  r.seconds = seconds_since(start);
  r.samples_per_second = r.seconds > 0 ? static_cast<double>(n) / r.seconds : 0;
  return r;
}

void save_model_file(const Model& model, const fs::path& path) {
  BinaryWriter out(path, kModelFileTag, kTrainFormatVersion);
  out.write_string(model.name());
  model.save(out);
  out.close();
}

void load_model_file(Model& model, const fs::path& path) {
  BinaryReader in(path, kModelFileTag, kTrainFormatVersion);
  const std::string name = in.read_string();
  in.check(name == model.name(), str_cat("holds a '", name, "' model, expected '", model.name(), "'"));
  model.load(in);
  in.expect_end();
}

TrainReport train(Model& model, const Dataset& ds, const TrainOptions& opt, const fs::path& out_dir,
                  const TrainRunOptions& run) {
  const auto start = Clock::now();
  opt.validate();
  BW_CHECK(ds.label_column() >= 0, InputError, ds.root().string(), ": the dataset has no label column to train on");
  const int64_t train_rows = ds.split_rows(Split::kTrain);
  BW_CHECK(train_rows > 0, InputError, ds.root().string(), ": the training split is empty");
  const std::optional<Split> eval_split = resolve_eval_split(ds, opt.eval_split);
  BW_CHECK(eval_split || opt.target_auc == 0, ConfigError, "train.target_auc: set to ", opt.target_auc,
           " but the dataset has no rows in split '", opt.eval_split, "'",
           opt.eval_split == "valid" ? " or 'test'" : "", " to evaluate on");
  if (!eval_split)
    log_warn("train: no rows in split '", opt.eval_split, "'", opt.eval_split == "valid" ? " or 'test'" : "",
             "; training without evaluation");
  const int threads = resolve_threads(opt.threads);

  std::error_code ec;
  fs::create_directories(out_dir, ec);
  BW_CHECK(!ec, IoError, out_dir.string(), ": cannot create the output directory: ", ec.message());
  const fs::path checkpoint_path = out_dir / "checkpoint.bin";
  const fs::path metrics_path = out_dir / "metrics.jsonl";
  const CheckpointKey key{opt.batch_size, opt.seed, static_cast<uint8_t>(opt.shuffle), train_rows};

  TrainState st;
  TrainReport report;
  if (run.resume && fs::exists(checkpoint_path)) {
    // Fully verified (and the model loaded) before anything in out_dir is touched.
    st = read_checkpoint(checkpoint_path, model, key);
    report.resumed_from_step = st.step;
    write_file_atomic(metrics_path, metrics_prefix(metrics_path, st.evaluations));
    log_info("train: resumed from ", checkpoint_path.string(), " at step ", st.step, " (epoch ", st.epoch, ")");
  } else {
    if (run.resume) log_info("train: no checkpoint in ", out_dir.string(), "; starting a fresh run");
    write_file_atomic(metrics_path, "");
  }
  std::ofstream metrics(metrics_path, std::ios::app);
  BW_CHECK(metrics, IoError, metrics_path.string(), ": cannot open for appending");

  LoaderOptions lo;
  lo.split = Split::kTrain;
  lo.batch_size = opt.batch_size;
  lo.shuffle = opt.shuffle;
  lo.seed = static_cast<uint64_t>(opt.seed);
  // Batch assembly is light next to a training step; one assembling thread leaves the cores to the model.
  lo.threads = 1;
  Loader loader(ds, lo);
  const int64_t batches_per_epoch = loader.batches_per_epoch();
  int64_t total_steps = opt.epochs * batches_per_epoch;
  if (opt.max_steps > 0) total_steps = std::min(total_steps, opt.max_steps);

  const int64_t first_step = st.step;
  const auto train_start = Clock::now();
  LiveLine live(opt.log_every_s);
  auto epochs_seen = [&] { return static_cast<double>(st.samples) / static_cast<double>(train_rows); };
  auto running_loss = [&] { return st.loss_count ? st.loss_sum / static_cast<double>(st.loss_count) : NAN; };
  auto status = [&] {
    const double secs = seconds_since(train_start);
    const double steps_done = static_cast<double>(st.step - first_step);
    const double sps = secs > 0 ? steps_done * static_cast<double>(opt.batch_size) / secs : 0;
    std::string eta = "?";
    if (steps_done > 0 && total_steps > st.step)
      eta = format_duration(static_cast<double>(total_steps - st.step) * secs / steps_done);
    else if (total_steps <= st.step)
      eta = "0s";
    char loss[32], auc[32];
    std::snprintf(loss, sizeof loss, "%.5f", running_loss());
    std::snprintf(auc, sizeof auc, "%.5f", st.last_auc);
    return str_cat("train: epoch ", st.epoch + 1, "/", opt.epochs, " step ", st.step, "/", total_steps, " ",
                   format_count(sps), " samples/s loss ", st.loss_count ? loss : "-", " auc ", std::isnan(st.last_auc) ? "-" : auc, " eta ",
                   eta);
  };

  bool stop = false;
  auto do_eval = [&] {
    if (!eval_split) return;
    const EvalReport e = evaluate(model, ds, *eval_split, opt.eval_batch_size, threads);
    nlohmann::json line = {{"step", st.step},
                           {"samples", st.samples},
                           {"seconds", st.elapsed_seconds + seconds_since(train_start)},
                           {"epoch", epochs_seen()},
                           {"auc", num(e.auc)},
                           {"logloss", num(e.logloss)},
                           {"accuracy", num(e.accuracy)},
                           {"train_loss", num(running_loss())}};
    metrics << line.dump() << "\n";
    metrics.flush();
    BW_CHECK(metrics, IoError, metrics_path.string(), ": write failed");
    report.train_loss = running_loss();
    report.final_eval = e;
    report.has_eval = true;
    st.last_auc = e.auc;
    st.loss_sum = 0;
    st.loss_count = 0;
    ++st.evaluations;
    st.last_eval_step = st.step;
    live.end();
    log_info("train: step ", st.step, " ", e.split, " auc ", e.auc, " logloss ", e.logloss, " accuracy ", e.accuracy);
    if (run.on_eval) run.on_eval(st.step, e);
    if (run.should_stop && run.should_stop(st.step, e)) {
      log_info("train: stopped by the caller at step ", st.step);
      report.stopped_by_caller = true;
      stop = true;
    }
    if (opt.target_auc > 0 && e.auc >= opt.target_auc) {
      log_info("train: target auc ", opt.target_auc, " reached at step ", st.step);
      report.stopped_early = true;
      stop = true;
    }
  };

  const int64_t resume_epoch = st.epoch, resume_batches = st.batches_in_epoch;
  if (opt.max_steps > 0 && st.step >= opt.max_steps) stop = true;
  Batch batch;
  for (int64_t e = resume_epoch; e < opt.epochs && !stop; ++e) {
    loader.start_epoch(e);
    st.epoch = e;
    st.batches_in_epoch = 0;
    const int64_t skip = e == resume_epoch ? resume_batches : 0;
    while (!stop && loader.next(batch)) {
      if (st.batches_in_epoch < skip) {
        ++st.batches_in_epoch;  // consumed before the checkpoint
        continue;
      }
      ++st.step;
      ++st.batches_in_epoch;
      const double loss = model.train_step(batch, st.step, threads);
      if (!std::isfinite(loss)) {
        live.end();
        BW_THROW(InputError, "train: the loss is ", loss, " at step ", st.step, " (epoch ", e + 1,
                 "): training diverged; try a lower learning rate",
                 opt.checkpoint_every > 0 ? " (the last checkpoint is kept)" : "");
      }
      st.samples += batch.size;
      st.loss_sum += loss;
      ++st.loss_count;
      if (opt.max_steps > 0 && st.step >= opt.max_steps) stop = true;
      if (opt.eval_every > 0 && st.step % opt.eval_every == 0) do_eval();
      if (opt.checkpoint_every > 0 && st.step % opt.checkpoint_every == 0) {
        TrainState saved = st;
        saved.elapsed_seconds = st.elapsed_seconds + seconds_since(train_start);
        write_checkpoint(checkpoint_path, model, saved, key);
      }
      if (live.due()) live.show(status());
    }
  }
  if (st.last_eval_step != st.step) do_eval();
  live.end();
  metrics.close();

  report.steps = st.step;
  report.samples = st.samples;
  report.epochs = epochs_seen();
  report.evaluations = static_cast<int>(st.evaluations);
  const double secs = seconds_since(train_start);
  report.samples_per_second =
      secs > 0 ? static_cast<double>(st.step - first_step) * static_cast<double>(opt.batch_size) / secs : 0;
  if (!report.has_eval) report.train_loss = running_loss();

  // The model directory: weights first, model.json last, each atomically, so a reader that finds
  // model.json finds the weights it describes.
  save_model_file(model, out_dir / "model.bin");
  nlohmann::json meta = {
      {"format_version", kTrainFormatVersion},
      {"created_by", std::string("bluewhale ") + kVersion},
      {"model", model.name()},
      {"config", run.model_config},
      {"parameters", model.parameter_count()},
      {"weights", "model.bin"},
      {"dataset",
       {{"path", fs::absolute(ds.root()).lexically_normal().string()},
        {"meta", (fs::absolute(ds.root()) / "meta.json").lexically_normal().string()},
        {"format_version", ds.format_version()},
        {"pipeline", ds.pipeline()}}},
      {"train", opt.to_json()},
      {"steps", st.step},
      {"samples", st.samples},
      {"epochs", report.epochs},
      {"stopped_early", report.stopped_early},
      {"stopped_by_caller", report.stopped_by_caller},
      {"metrics", report.has_eval ? report.final_eval.to_json() : nlohmann::json(nullptr)},
      {"train_loss", num(report.train_loss)},
  };
  write_file_atomic(out_dir / "model.json", meta.dump(2) + "\n");
  report.seconds = seconds_since(start);
  return report;
}

}  // namespace bluewhale
