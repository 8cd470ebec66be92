"""BlueWhale DLRM against a plain PyTorch DLRM (torch_dlrm.py), side by side in one run, on one machine.

  1. Training throughput on random batches (the DLRM reference code's random-data mode) at the Criteo
     Kaggle shapes: `bluewhale bench train` against torch_dlrm.py random, same tables, MLPs, batch, threads.
  2. Quality and speed on the same prepared dataset: one epoch of the recipe's DLRM (dim 16, bottom
     512-256-64-16, top 512-256-1, SGD lr 0.1, batch 128) trained by each, then exact test AUC, logloss,
     training samples/s and evaluation samples/s at batch 16384; the generator's best achievable AUC beside.

Writes a markdown report (stdout and --report). Run through bench/dlrm/run.sh.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# The Criteo Kaggle table sizes (the DLRM paper's configuration).
KAGGLE = ("1460,583,10131227,2202608,305,24,12517,633,3,93145,5683,8351593,3194,27,14992,5461306,10,5652,2173,4,"
          "7046547,18,15,286181,105,142572")


def sh(cmd, **kw):
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r.stdout


def count(text):
    # "25.0 k" / "1.2 M" / "812" as printed by format_count
    m = re.match(r"([0-9.]+)\s*([kMG]?)", text.strip())
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def ours_random(bw, batch, threads, steps):
    out = sh([bw, "bench", "train", "--model", "dlrm", "--table-sizes", KAGGLE, "--dim", "16", "--bottom",
              "13-512-256-64-16", "--top", "512-256-1", "--batch", str(batch), "--threads", str(threads),
              "--steps", str(steps)])
    sps = count(re.search(r"\n\s*([0-9.]+ ?[kMG]?) samples/s", out).group(1))
    gflops = float(re.search(r"([0-9.]+) GFLOP/s", out).group(1))
    rss = re.search(r"peak RSS ([0-9.]+ \w+)", out).group(1)
    peak = re.search(r"reaches ([0-9.]+)% of it", out)
    return {"samples_per_second": sps, "gflops": gflops, "peak_rss": rss,
            "peak_pct": float(peak.group(1)) if peak else float("nan")}


def torch_random(py, batch, threads, steps):
    out = sh([py, os.path.join(HERE, "torch_dlrm.py"), "random", "--table-sizes", KAGGLE, "--bottom",
              "13-512-256-64-16", "--top", "512-256-1", "--batch", str(batch), "--threads", str(threads),
              "--steps", str(steps)])
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bw", required=True)
    p.add_argument("--py", default="/usr/bin/python3")
    p.add_argument("--data", required=True, help="prepared dataset (bluewhale prep with the DLRM recipe)")
    p.add_argument("--truth", default="", help="the generator's .truth.json (best achievable AUC)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", default="0", help="comma separated training seeds, each run by both")
    p.add_argument("--skip-random", action="store_true")
    p.add_argument("--paired", action="store_true",
                   help="also train each seed paired: PyTorch starts from BlueWhale's initial weights, both "
                        "read the rows in dataset order, so only floating-point rounding differs")
    p.add_argument("--report", default="")
    a = p.parse_args()
    lines = ["# DLRM: BlueWhale vs PyTorch " + sh([a.py, "-c", "import torch; print(torch.__version__)"]).strip(),
             "", f"threads {a.threads}, machine: {os.cpu_count()} logical CPUs, {time.strftime('%Y-%m-%d %H:%M')}", ""]

    if not a.skip_random:
        lines += ["## Training steps on random batches, Criteo Kaggle shapes (540M parameters)", "",
                  "| batch | BlueWhale samples/s | PyTorch samples/s | ratio | BlueWhale GFLOP/s | % of FMA peak | BW peak RSS | torch peak RSS |",
                  "|---|---|---|---|---|---|---|---|"]
        for batch, steps_bw, steps_pt in ((128, 2000, 400), (2048, 150, 40)):
            o = ours_random(a.bw, batch, a.threads, steps_bw)
            t = torch_random(a.py, batch, a.threads, steps_pt)
            lines.append(f"| {batch} | {o['samples_per_second']:,.0f} | {t['samples_per_second']:,.0f} | "
                         f"{o['samples_per_second'] / t['samples_per_second']:.2f}x | {o['gflops']:.1f} | {o['peak_pct']:.1f}% | "
                         f"{o['peak_rss']} | {t['peak_rss_mib'] / 1024:.2f} GB |")
            print("\n".join(lines[-1:]), file=sys.stderr, flush=True)
        lines.append("")

    best = ""
    if a.truth:
        with open(a.truth) as f:
            best = f"{json.load(f)['best_auc_all']:.4f}"
    with open(os.path.join(a.data, "meta.json")) as f:
        meta = json.load(f)
    rows = {k: v["rows"] for k, v in meta["splits"].items()}
    lines += [f"## One epoch of the recipe's DLRM on {a.data} ({rows.get('train', 0):,} train rows, "
              f"{rows.get('test', 0):,} test rows)", "",
              "dim 16, bottom 512-256-64-16, top 512-256-1, SGD lr 0.1 (dense and sparse), batch 128, "
              "paper initialisation; each side shuffles with its own generator.",
              "" if not best else f"Best achievable AUC (the generator's true click probabilities): {best}", "",
              "| seed | BW test AUC | torch test AUC | AUC diff | BW logloss | torch logloss | BW train samples/s | "
              "torch train samples/s | ratio | BW eval samples/s | torch eval samples/s | eval ratio |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    work = os.path.join(os.path.dirname(os.path.abspath(a.report or ".")), "dlrm-runs")
    os.makedirs(work, exist_ok=True)
    recipe = os.path.join(work, "recipe.yaml")
    def write_recipe(seed, lr="0.1", extra_train=""):
        with open(os.path.join(HERE, "..", "..", "recipes", "dlrm-criteo.yaml")) as f:
            text = f.read()
        text = text.replace("  lr: 0.1\n", f"  lr: {lr}\n  seed: {seed}\n")
        text = text.replace("  epochs: 1\n", f"  epochs: 1\n  seed: {seed}\n{extra_train}")
        with open(recipe, "w") as f:
            f.write(text)

    def bw_run(name):
        run = os.path.join(work, name)
        subprocess.run(["rm", "-rf", run])
        out = sh([a.bw, "train", "--data", a.data, "--out", run, "--recipe", recipe, "--threads", str(a.threads)])
        sps = count(re.search(r"trained .*: ([0-9.]+ ?[kMG]?) samples/s", out).group(1))
        ev = json.loads(sh([a.bw, "eval", "--model", run, "--data", a.data, "--split", "test", "--threads",
                            str(a.threads), "--json"]).strip().splitlines()[-1])
        return run, sps, ev

    def torch_run(seed, *extra):
        return json.loads(sh([a.py, os.path.join(HERE, "torch_dlrm.py"), "train", "--data", a.data, "--seed", str(seed),
                              "--threads", str(a.threads), "--batch", "128", "--lr", "0.1", *extra]).strip().splitlines()[-1])

    def row(seed, ev, t, bw_train_sps):
        return (f"| {seed} | {ev['auc']:.4f} | {t['auc']:.4f} | {ev['auc'] - t['auc']:+.4f} | {ev['logloss']:.4f} | "
                f"{t['logloss']:.4f} | {bw_train_sps:,.0f} | {t['samples_per_second']:,.0f} | "
                f"{bw_train_sps / t['samples_per_second']:.2f}x | {ev['samples_per_second']:,.0f} | "
                f"{t['eval_samples_per_second']:,.0f} | {ev['samples_per_second'] / t['eval_samples_per_second']:.2f}x |")

    def summary(diffs):
        if len(diffs) < 2:
            return []
        mean = sum(diffs) / len(diffs)
        sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
        return ["", f"AUC difference (BlueWhale - PyTorch) over {len(diffs)} seeds: mean {mean:+.4f}, "
                f"standard deviation {sd:.4f}, standard error {sd / len(diffs) ** 0.5:.4f}, "
                f"largest |difference| {max(abs(d) for d in diffs):.4f}."]

    seeds = [int(s) for s in a.seeds.split(",")]
    diffs = []
    for seed in seeds:
        write_recipe(seed)
        _, bw_train_sps, ev = bw_run(f"bw-seed{seed}")
        t = torch_run(seed)
        diffs.append(ev["auc"] - t["auc"])
        lines.append(row(seed, ev, t, bw_train_sps))
        print(lines[-1], file=sys.stderr, flush=True)
    lines += summary(diffs)

    if a.paired:
        lines += ["", "## Paired: the same initial weights and the same row order", "",
                  "For each seed BlueWhale writes its initial model (learning rate 0 for one step), PyTorch loads "
                  "those weights (`torch_dlrm.py --init-from`, bench/dlrm/bwmodel.py), and both train one epoch "
                  "without shuffling, so the runs differ only by floating-point rounding, which SGD amplifies.", "",
                  "| seed | BW test AUC | torch test AUC | AUC diff | BW logloss | torch logloss | BW train samples/s | "
                  "torch train samples/s | ratio | BW eval samples/s | torch eval samples/s | eval ratio |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        diffs = []
        for seed in seeds:
            write_recipe(seed, lr="0", extra_train="  max_steps: 1\n  shuffle: false\n")
            init, _, ev0 = bw_run(f"bw-init-seed{seed}")
            t0 = torch_run(seed, "--init-from", os.path.join(init, "model.bin"), "--epochs", "0")
            if abs(ev0["auc"] - t0["auc"]) > 1e-5:
                sys.exit(f"seed {seed}: the initial models disagree before training (test AUC {ev0['auc']:.6f} vs "
                         f"{t0['auc']:.6f}): the weight import is broken")
            write_recipe(seed, extra_train="  shuffle: false\n")
            _, bw_train_sps, ev = bw_run(f"bw-paired-seed{seed}")
            t = torch_run(seed, "--init-from", os.path.join(init, "model.bin"), "--no-shuffle")
            diffs.append(ev["auc"] - t["auc"])
            lines.append(row(seed, ev, t, bw_train_sps))
            print(lines[-1], file=sys.stderr, flush=True)
        lines += summary(diffs)
    report = "\n".join(lines) + "\n"
    print(report)
    if a.report:
        with open(a.report, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
