"""The CPU-to-GPU gap (the project's headline promise): BlueWhale training DLRM on a machine's CPUs against the
PyTorch DLRM peer (torch_dlrm.py) on that machine's CUDA GPU, side by side in one run.

  1. Training steps on random batches at the Criteo Kaggle shapes (540M parameters) for batches 128, 2048
     and 16384: PyTorch on the GPU, as the DLRM reference code writes it (one EmbeddingBag per table) and
     with the tables fused into one sparse embedding (one gather per batch); BlueWhale on all the CPU's
     threads and on 2 threads.
  2. One epoch of the recipe's DLRM (recipes/dlrm-criteo.yaml: batch 128, SGD lr 0.1) on the same generated
     and prepared rows: test AUC, training and evaluation samples/s for each.

Run through bench/dlrm/gpu.sh on a machine with a GPU. Writes the markdown report to --report after every
measurement, so that a run cut short still leaves what it measured.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from compare import KAGGLE, count, ours_random, sh  # noqa: E402


def torch_random(py, device, batch, steps, fused):
    cmd = [py, os.path.join(HERE, "torch_dlrm.py"), "random", "--device", device, "--table-sizes", KAGGLE,
           "--bottom", "13-512-256-64-16", "--top", "512-256-1", "--batch", str(batch), "--steps", str(steps),
           "--warmup", "20", "--threads", str(os.cpu_count())]
    return json.loads(sh(cmd + (["--fused-tables"] if fused else [])).strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bw", required=True, help="the bluewhale binary, run on this machine's CPUs")
    p.add_argument("--py", default="python3", help="a python3 whose torch sees the GPU")
    p.add_argument("--device", default="cuda")
    p.add_argument("--data", required=True, help="dataset prepared with recipes/dlrm-criteo.yaml")
    p.add_argument("--truth", default="")
    p.add_argument("--report", required=True)
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiplies every step count (dry runs)")
    a = p.parse_args()
    bw = [a.bw]
    ncpu = os.cpu_count()
    gpu = sh([a.py, "-c", "import sys, torch; print(torch.cuda.get_device_name(0) if sys.argv[1].startswith('cuda') "
                          "else 'none (torch on the CPU)', 'torch', torch.__version__)", a.device]).strip()
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    lines = ["# The CPU-to-GPU gap: BlueWhale on CPUs, PyTorch DLRM on a GPU, one machine, one run", "",
             f"GPU: {gpu}. CPU: {cpu}, {ncpu} logical CPUs. {time.strftime('%Y-%m-%d %H:%M')}.", ""]

    def flush():
        with open(a.report, "w") as f:
            f.write("\n".join(lines) + "\n")

    lines += ["## Training steps on random batches, Criteo Kaggle shapes (540M parameters)", "",
              f"| batch | PyTorch GPU, per-table | PyTorch GPU, fused tables | BlueWhale {ncpu} threads | "
              "BlueWhale 2 threads | GPU best / BlueWhale all threads | GPU best / BlueWhale 2 threads |",
              "|---|---|---|---|---|---|---|"]
    flush()
    for batch, steps_pt, steps_bw_all, steps_bw2 in ((128, 400, 3000, 1000), (2048, 200, 300, 80),
                                                      (16384, 40, 40, 10)):
        steps_pt, steps_bw_all, steps_bw2 = (max(2, int(v * a.steps_scale)) for v in (steps_pt, steps_bw_all, steps_bw2))
        t1 = torch_random(a.py, a.device, batch, steps_pt, fused=False)
        t2 = torch_random(a.py, a.device, batch, steps_pt, fused=True)
        oa = ours_random(a.bw, batch, ncpu, steps_bw_all)
        o2 = ours_random(a.bw, batch, 2, steps_bw2)
        best = max(t1["samples_per_second"], t2["samples_per_second"])
        lines.append(f"| {batch} | {t1['samples_per_second']:,.0f} | {t2['samples_per_second']:,.0f} | "
                     f"{oa['samples_per_second']:,.0f} | {o2['samples_per_second']:,.0f} | "
                     f"{best / oa['samples_per_second']:.2f}x | {best / o2['samples_per_second']:.2f}x |")
        print(lines[-1], file=sys.stderr, flush=True)
        flush()
    lines.append("")

    if a.skip_train:
        flush()
        return
    best = ""
    if a.truth:
        with open(a.truth) as f:
            best = f" Best achievable AUC: {json.load(f)['best_auc_all']:.4f}."
    lines += [f"## One epoch of recipes/dlrm-criteo.yaml on {os.path.basename(a.data)} (batch 128, SGD lr 0.1)",
              "", f"Same prepared rows for every line; each shuffles with its own generator.{best}", "",
              "| who | where | train samples/s | test AUC | logloss | eval samples/s (batch 16384) |",
              "|---|---|---|---|---|---|"]
    flush()
    work = os.path.join(os.path.dirname(os.path.abspath(a.report)), "gpu-runs")
    os.makedirs(work, exist_ok=True)
    for threads in (ncpu, 2):
        run = os.path.join(work, f"bw-{threads}")
        subprocess.run(["rm", "-rf", run])
        out = sh(bw + ["train", "--data", a.data, "--out", run, "--recipe",
                       os.path.join(HERE, "..", "..", "recipes", "dlrm-criteo.yaml"), "--threads", str(threads)])
        sps = count(re.search(r"trained .*: ([0-9.]+ ?[kMG]?) samples/s", out).group(1))
        ev = json.loads(sh(bw + ["eval", "--model", run, "--data", a.data, "--split", "test", "--threads",
                                 str(threads), "--json"]).strip().splitlines()[-1])
        lines.append(f"| BlueWhale | CPU, {threads} threads | {sps:,.0f} | {ev['auc']:.4f} | {ev['logloss']:.4f} | "
                     f"{ev['samples_per_second']:,.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
        flush()
    for fused in (False, True):
        cmd = [a.py, os.path.join(HERE, "torch_dlrm.py"), "train", "--device", a.device, "--data", a.data,
               "--batch", "128", "--lr", "0.1", "--threads", str(ncpu)]
        t = json.loads(sh(cmd + (["--fused-tables"] if fused else [])).strip().splitlines()[-1])
        lines.append(f"| PyTorch{' fused tables' if fused else ''} | GPU | {t['samples_per_second']:,.0f} | "
                     f"{t['auc']:.4f} | {t['logloss']:.4f} | {t['eval_samples_per_second']:,.0f} |")
        print(lines[-1], file=sys.stderr, flush=True)
        flush()
    lines.append("")
    flush()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
