// bluewhale train / eval / bench train: DLRM on a prepared dataset, and the random-data benchmark mode.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "args.h"
#include "bluewhale/core/error.h"
#include "bluewhale/core/io.h"
#include "bluewhale/core/parallel.h"
#include "bluewhale/core/progress.h"
#include "bluewhale/data/dataset.h"
#include "bluewhale/loader/loader.h"
#include "bluewhale/models/bench_train.h"
#include "bluewhale/models/dlrm.h"
#include "bluewhale/prep/pipeline.h"
#include "bluewhale/recall/roofline.h"
#include "bluewhale/train/dlrm_recipe.h"
#include "bluewhale/train/trainer.h"
#include "commands.h"

namespace bluewhale::cli {
namespace {

using json = nlohmann::json;

std::vector<int64_t> table_sizes(const Dataset& ds) { return ds.sparse_cardinalities(); }

// Rebuilds the model stored in a `train` output directory.
std::unique_ptr<DlrmModel> load_trained(const fs::path& dir, int threads, json* meta_out) {
  fs::path meta_path = dir / "model.json";
  json meta;
  try {
    meta = json::parse(read_file(meta_path));
  } catch (const json::exception& e) {
    BW_THROW(FormatError, meta_path.string(), ": not a BlueWhale model description: ", e.what());
  }
  BW_CHECK(meta.is_object() && meta.value("model", "") == "dlrm" && meta.contains("config") && meta["config"].is_object(),
           FormatError, meta_path.string(), ": expected a dlrm model with a 'config' object");
  const json& cfg = meta["config"];
  BW_CHECK(cfg.contains("model_yaml") && cfg["model_yaml"].is_string() && cfg.contains("num_dense") &&
               cfg["num_dense"].is_number_integer() && cfg.contains("table_sizes") && cfg["table_sizes"].is_array(),
           FormatError, meta_path.string(), ": config lacks model_yaml, num_dense or table_sizes");
  ConfigNode node = ConfigNode::parse_yaml(cfg["model_yaml"].get<std::string>(), meta_path.string() + " (model)");
  DlrmConfig c = dlrm_config_from_recipe(node.is_null() ? nullptr : &node);
  std::vector<int64_t> sizes;
  for (const auto& s : cfg["table_sizes"]) {
    BW_CHECK(s.is_number_integer() && s.get<int64_t>() > 0, FormatError, meta_path.string(), ": bad table size");
    sizes.push_back(s.get<int64_t>());
  }
  auto model = std::make_unique<DlrmModel>(c, cfg["num_dense"].get<int64_t>(), sizes, threads);
  load_model_file(*model, dir / "model.bin");
  if (meta_out) *meta_out = meta;
  return model;
}

Split parse_split(const std::string& s, const char* cmd) {
  if (s == "train") return Split::kTrain;
  if (s == "valid") return Split::kValid;
  if (s == "test") return Split::kTest;
  BW_THROW(ConfigError, cmd, ": --split expects train, valid or test, got '", s, "'");
}

std::vector<int64_t> parse_sizes(const std::string& text, const char* what) {
  std::vector<int64_t> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find_first_of(",-", start);
    std::string part = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    char* stop = nullptr;
    long long v = std::strtoll(part.c_str(), &stop, 10);
    BW_CHECK(!part.empty() && *stop == '\0' && v > 0, ConfigError, "bluewhale bench train: ", what,
             " expects positive integers separated by ',' or '-', got '", text, "'");
    out.push_back(v);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

}  // namespace

int cmd_train(int argc, char** argv) {
  Args args("bluewhale train", "bluewhale train --data DATASET --out DIR [--recipe RECIPE.yaml] [options]",
            "Trains the recipe's model (DLRM) on a dataset written by 'bluewhale prep'. The recipe's 'model'\n"
            "and 'train' sections are used (default: the recipe stored with the dataset). Writes\n"
            "DIR/metrics.jsonl (one line per evaluation), DIR/checkpoint.bin, DIR/model.bin and DIR/model.json.");
  args.option("data", "prepared dataset directory")
      .option("out", "output directory for metrics, checkpoints and the model")
      .option("recipe", "recipe with model and train sections (default: the dataset's stored recipe)")
      .option("threads", "worker threads (0 = all available)", "0")
      .flag("resume", "continue from DIR/checkpoint.bin");
  if (!args.parse(argc, argv, 2)) return 0;
  Dataset ds = Dataset::open(args.require("data"));
  fs::path out = args.require("out");
  Recipe recipe = args.has("recipe") ? load_recipe(args.get("recipe")) : load_dataset_recipe(ds.root());
  BW_CHECK(args.flag_set("resume") || !fs::exists(out / "model.json"), IoError, "bluewhale train: '", out.string(),
           "' already holds a trained model; choose another --out or pass --resume");
  DlrmRecipeRun spec;
  spec.model = recipe.root.find("model");
  spec.train = recipe.root.find("train");
  spec.threads = static_cast<int>(args.get_int("threads"));
  spec.run.resume = args.flag_set("resume");
  spec.on_model = [&](const DlrmModel& model, const TrainOptions&) {
    std::printf("dlrm: %lld parameters (%s with optimizer state), %zu tables, %lld dense features, %s flop/sample\n",
                (long long)model.parameter_count(), format_bytes(double(model.state_bytes())).c_str(),
                model.table_sizes().size(), (long long)model.num_dense(),
                format_count(model.train_flops_per_sample()).c_str());
  };
  TrainReport r = train_dlrm_recipe(ds, out, spec);
  std::printf("trained %lld steps (%.2f epochs, %lld samples) in %s: %s samples/s%s\n", (long long)r.steps, r.epochs,
              (long long)r.samples, format_duration(r.seconds).c_str(), format_count(r.samples_per_second).c_str(),
              r.stopped_early ? ", stopped early at the target AUC" : "");
  if (r.has_eval)
    std::printf("%s: AUC %.4f, logloss %.4f, accuracy %.4f on %lld rows\n", r.final_eval.split.c_str(), r.final_eval.auc,
                r.final_eval.logloss, r.final_eval.accuracy, (long long)r.final_eval.rows);
  std::printf("model written to %s\n", out.string().c_str());
  return 0;
}

int cmd_eval(int argc, char** argv) {
  Args args("bluewhale eval", "bluewhale eval --model DIR --data DATASET [--split test] [options]",
            "Scores a split of a dataset with a model trained by 'bluewhale train' and prints exact AUC,\n"
            "logloss and accuracy (and, with --json, one JSON object).");
  args.option("model", "directory written by 'bluewhale train'")
      .option("data", "dataset directory")
      .option("split", "split to evaluate", "test")
      .option("batch", "evaluation batch size", "16384")
      .option("threads", "worker threads (0 = all available)", "0")
      .flag("json", "print the result as JSON");
  if (!args.parse(argc, argv, 2)) return 0;
  const int threads = resolve_threads(static_cast<int>(args.get_int("threads")));
  Dataset ds = Dataset::open(args.require("data"));
  auto model = load_trained(args.require("model"), threads, nullptr);
  std::vector<int64_t> want = table_sizes(ds);
  BW_CHECK(want == model->table_sizes() && static_cast<int64_t>(ds.dense_columns().size()) == model->num_dense(),
           ConfigError, "bluewhale eval: dataset ", ds.root().string(),
           " does not match the model's tables or dense features (prepare it with --apply-to the training dataset)");
  int64_t batch = args.get_int("batch");
  BW_CHECK(batch > 0, ConfigError, "bluewhale eval: --batch must be positive");
  EvalReport e = evaluate(*model, ds, parse_split(args.get("split"), "bluewhale eval"), batch, threads);
  if (args.flag_set("json")) {
    std::printf("%s\n", e.to_json().dump().c_str());
  } else {
    std::printf("%s: AUC %.4f, logloss %.4f, accuracy %.4f on %lld rows (%s samples/s)\n", e.split.c_str(), e.auc,
                e.logloss, e.accuracy, (long long)e.rows, format_count(e.samples_per_second).c_str());
  }
  return 0;
}

int cmd_predict(int argc, char** argv) {
  Args args("bluewhale predict", "bluewhale predict --model DIR --input FILE... --out SCORES.tsv [options]",
            "Scores raw rows in the training log's format: the fitted prep pipeline of the model's training\n"
            "dataset is applied to them (same dictionaries and statistics), then the model. Writes one click\n"
            "probability per input row, in input order (the label field may be empty).");
  args.option("model", "directory written by 'bluewhale train'")
      .option("input", "raw input files, in order", "", true)
      .option("out", "output file: one probability per line")
      .option("batch", "scoring batch size", "16384")
      .option("threads", "worker threads (0 = all available)", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  const int threads = resolve_threads(static_cast<int>(args.get_int("threads")));
  fs::path out = args.require("out");
  std::vector<std::string> inputs = args.values("input");
  BW_CHECK(!inputs.empty(), ConfigError, "bluewhale predict: missing required option --input FILE...");
  json meta;
  auto model = load_trained(args.require("model"), threads, &meta);
  BW_CHECK(meta.contains("dataset") && meta["dataset"].is_object() && meta["dataset"].contains("path") &&
               meta["dataset"]["path"].is_string(),
           FormatError, (fs::path(args.get("model")) / "model.json").string(), ": no training dataset path");
  fs::path train_ds = meta["dataset"]["path"].get<std::string>();

  // The pipeline is applied through prep --apply-to into a scratch dataset next to the output.
  fs::path scratch = out;
  scratch += ".predict-" + std::to_string(::getpid());
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{scratch};
  PrepOptions po;
  po.inputs = inputs;
  po.out = scratch;
  po.threads = threads;
  po.apply_to = train_ds;
  po.apply_split = Split::kTest;
  po.progress = false;
  run_prep(load_dataset_recipe(train_ds), po);
  Dataset ds = Dataset::open(scratch);

  LoaderOptions lo;
  lo.split = Split::kTest;
  lo.batch_size = args.get_int("batch");
  BW_CHECK(lo.batch_size > 0, ConfigError, "bluewhale predict: --batch must be positive");
  lo.shuffle = false;
  Loader loader(ds, lo);
  Batch b;
  std::vector<float> logits;
  std::string text;
  int64_t rows = 0;
  while (loader.next(b)) {
    logits.resize(b.size);
    model->predict(b, logits.data(), threads);
    char buf[32];
    for (float z : logits) {
      std::snprintf(buf, sizeof buf, "%.6f\n", 1.0 / (1.0 + std::exp(-static_cast<double>(z))));
      text += buf;
    }
    rows += b.size;
  }
  write_file_atomic(out, text);
  std::printf("scored %lld rows into %s\n", (long long)rows, out.string().c_str());
  return 0;
}

int cmd_bench(int argc, char** argv) {
  Args args("bluewhale bench",
            "bluewhale bench train --model dlrm --table-sizes N,N,... [--dim 16 --bottom 13-512-256-64-16 --top 512-256-1]\n"
            "                       [--batch 2048 --threads 2 --steps 200]",
            "Times DLRM training steps on random batches (like the DLRM reference code's random-data mode) and\n"
            "prints samples/s, GFLOP/s and peak memory, so that any implementation can be compared without data.");
  args.positional("WHAT", "train")
      .option("model", "model to time", "dlrm")
      .option("table-sizes", "rows of every embedding table, comma separated")
      .option("dim", "embedding dimension", "16")
      .option("bottom", "dense features, then bottom MLP sizes (the last equals --dim)", "13-512-256-64-16")
      .option("top", "top MLP sizes (the last is 1)", "512-256-1")
      .option("interaction", "dot or cat", "dot")
      .option("lr", "SGD learning rate", "0.1")
      .option("batch", "samples per step", "2048")
      .option("steps", "timed steps", "200")
      .option("power-law", "exponent of the id popularity law (0 = uniform ids)", "0")
      .option("threads", "worker threads (0 = all available)", "0");
  if (!args.parse(argc, argv, 2)) return 0;
  BW_CHECK(args.positionals().size() == 1 && args.positionals()[0] == "train", ConfigError,
           "bluewhale bench: expected 'train'; see --help");
  BW_CHECK(args.get("model") == "dlrm", ConfigError, "bluewhale bench train: --model supports dlrm only");
  BenchTrainOptions o;
  o.table_sizes = parse_sizes(args.require("table-sizes"), "--table-sizes");
  std::vector<int64_t> bottom = parse_sizes(args.get("bottom"), "--bottom");
  BW_CHECK(bottom.size() >= 2, ConfigError, "bluewhale bench train: --bottom needs the dense count and at least one layer");
  o.num_dense = bottom[0];
  o.model.bottom.assign(bottom.begin() + 1, bottom.end());
  o.model.top = parse_sizes(args.get("top"), "--top");
  o.model.dim = args.get_int("dim");
  o.model.interaction = args.get("interaction");
  o.model.lr = args.get_double("lr");
  o.model.validate();
  o.batch = args.get_int("batch");
  o.steps = args.get_int("steps");
  o.id_power_law = args.get_double("power-law");
  o.threads = resolve_threads(static_cast<int>(args.get_int("threads")));
  BW_CHECK(o.batch > 0 && o.steps > 0, ConfigError, "bluewhale bench train: --batch and --steps must be positive");
  BenchTrainReport r = bench_train(o);
  std::printf("dlrm train, %zu tables, dim %lld, batch %lld, %d thread(s), %lld steps\n", o.table_sizes.size(),
              (long long)o.model.dim, (long long)r.batch, r.threads, (long long)r.steps);
  std::printf("  %s samples/s, %.2f ms/step (min %.2f), %.1f GFLOP/s (%s flop/sample)\n",
              format_count(r.samples_per_second).c_str(), r.step_ms, r.step_ms_min, r.gflops,
              format_count(r.flops_per_sample).c_str());
  std::printf("  parameters %lld, parameters+optimizer state %s, peak RSS %s (%.2fx), init %s\n",
              (long long)r.parameter_count, format_bytes(double(r.state_bytes)).c_str(),
              format_bytes(double(r.peak_rss_bytes)).c_str(),
              r.state_bytes > 0 ? double(r.peak_rss_bytes) / double(r.state_bytes) : 0.0,
              format_duration(r.init_seconds).c_str());
  // Measured after the run, on the same threads, so that the fraction compares like with like.
  const double peak = measure_fma_peak_gflops(r.threads);
  std::printf("  FP32 FMA peak %.1f GFLOP/s measured on %d thread(s): the training step reaches %.1f%% of it\n", peak,
              r.threads, peak > 0 ? 100.0 * r.gflops / peak : 0.0);
  return 0;
}

}  // namespace bluewhale::cli
