#!/usr/bin/env python3
"""Recall benchmark: bluewhale's HNSW and exact indexes against hnswlib and FAISS (IndexHNSWFlat, IndexFlat)
on the same files in the same run. Prints a markdown report (also written to bench/out/recall_bench.md):
recall@10 and queries/s per ef for 1 and 2 threads, build time and peak RSS per tool, and the QPS at
recall@10 = 0.95 as a ratio to the better peer. See bench/recall/README.md."""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.environ.get("BENCH_OUT", os.path.join(ROOT, "bench", "out"))
BW = os.environ.get("BLUEWHALE", os.path.join(ROOT, "build", "bluewhale"))
PY = "/usr/bin/python3"  # Debian's python3, where python3-hnswlib / python3-faiss are installed
TIME = "/usr/bin/time"
SETS = os.environ.get("BENCH_RECALL_SETS", "sift5k gen100k_d128 gen100k_d64").split()
THREADS = os.environ.get("BENCH_THREADS_LIST", "1,2")
BUILD_THREADS = int(os.environ.get("BENCH_BUILD_THREADS", "2"))
EF_LIST = os.environ.get("BENCH_EF_LIST", "10,16,24,32,48,64,96,128,192,256,384,512")
MIN_S = os.environ.get("BENCH_MIN_SECONDS", "0.5")
M, EFC, K, TARGET = 16, 200, 10, 0.95
NPROBE_LIST = os.environ.get("BENCH_NPROBE_LIST", "1,2,4,8,16,32,64,128")
SKIP = os.environ.get("BENCH_SKIP", "").split()
# The development machine is shared: each (threads, ef) point is measured REPEAT times, interleaved with
# the other points, and the best is kept, for every tool alike. Builds run once.
REPEAT = int(os.environ.get("BENCH_REPEAT", "2"))


def best_rows(rows):
    best = {}
    for r in rows:
        key = (r["threads"], r["ef"])
        if key not in best or r["qps"] > best[key]["qps"]:
            best[key] = r
    return [best[k] for k in sorted(best)]


def run(cmd, timeout=3600):
    """Runs cmd under GNU time; returns (stdout, peak RSS bytes)."""
    p = subprocess.run([TIME, "-f", "BENCH_RSS_KB %M"] + cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"recall-bench: {' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    rss = int(re.findall(r"BENCH_RSS_KB (\d+)", p.stderr)[-1]) * 1024
    return p.stdout, rss


def dataset(name):
    """(base, queries, truth, metric) for a named set, generating it into bench/out on first use."""
    shared = os.path.join(ROOT, "..", "shared", "data", "ann")
    if name == "sift5k":
        s = os.path.join(shared, "sift5k_split_")
        if not os.path.exists(s + "base.fvecs"):
            return None
        return s + "base.fvecs", s + "query.fvecs", s + "groundtruth.ivecs", "l2"
    m = re.fullmatch(r"gen(\d+)([km])_d(\d+)", name)
    if not m:
        sys.exit(f"recall-bench: unknown set {name}")
    rows = int(m[1]) * (1000 if m[2] == "k" else 1000000)
    dim = int(m[3])
    kind, metric = ("clustered", "l2") if dim == 128 else ("embedding", "ip")
    stem = os.path.join(OUT, "recall", name)
    if not os.path.exists(stem + "_groundtruth.ivecs"):
        os.makedirs(os.path.dirname(stem), exist_ok=True)
        run([BW, "gen", "vectors", "--rows", str(rows), "--dim", str(dim), "--kind", kind, "--queries", "1000",
             "--truth", "100", "--metric", metric, "--out", stem + ".fvecs", "--threads", str(BUILD_THREADS)])
    return stem + ".fvecs", stem + "_query.fvecs", stem + "_groundtruth.ivecs", metric


def bluewhale(kind, base, q, gt, metric, work):
    idx = os.path.join(work, f"bw_{kind}.idx")
    out, rss_b = run([BW, "index", "build", "--vectors", base, "--metric", metric, "--kind", kind, "--m", str(M),
                      "--ef-construction", str(EFC), "--threads", str(BUILD_THREADS), "--quiet", "--out", idx])
    build_s = float(re.search(r"build_seconds=([0-9.]+)", out)[1])
    rows, rss_s = [], 0
    for _ in range(REPEAT):
        out, rss = run([BW, "index", "bench", "--index", idx, "--queries", q, "--truth", gt, "-k", str(K), "--ef-list",
                        EF_LIST, "--nprobe-list", NPROBE_LIST, "--threads", THREADS, "--min-seconds", MIN_S])
        rss_s = max(rss_s, rss)
        rows += [{"threads": int(t), "ef": int(e), "recall": float(r), "qps": float(s)}
                 for t, e, r, s in re.findall(r"^\| (\d+) \| (\d+) \| ([0-9.]+) \| ([0-9]+) \|$", out, re.M)]
    rows = best_rows(rows)
    bound = []
    if kind == "flat":
        roof, _ = run([BW, "index", "bench", "--index", idx, "--queries", q, "--truth", gt, "-k", str(K), "--threads",
                       THREADS, "--min-seconds", MIN_S, "--roofline", "--rounds", str(max(3, REPEAT))])
        bound = re.findall(r"^threads .*bound.*$", roof, re.M)
    return {"build_s": build_s, "rss": max(rss_b, rss_s), "rows": rows, "notes": bound}


def peer(tool, base, q, gt, metric):
    out, rss = run([PY, os.path.join(ROOT, "bench", "recall", "peers.py"), "--tool", tool, "--base", base, "--queries",
                    q, "--truth", gt, "--metric", metric, "--m", str(M), "--ef-construction", str(EFC), "--ef-list",
                    EF_LIST, "--threads", THREADS, "--build-threads", str(BUILD_THREADS), "--k", str(K),
                    "--min-seconds", MIN_S, "--repeat", str(REPEAT)])
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    build = next(r for r in recs if r["kind"] == "build")
    return {"build_s": build["build_s"], "rss": rss, "rows": best_rows([r for r in recs if r["kind"] == "search"]),
            "notes": []}


def qps_at(rows, threads, target):
    """QPS at recall = target, linearly interpolated between the neighbouring ef points (None if never reached)."""
    pts = sorted((r["recall"], r["qps"]) for r in rows if r["threads"] == threads)
    prev = None
    for rec, qps in sorted(pts, key=lambda p: -p[1]):  # fastest first: walk towards higher recall
        if rec >= target:
            if prev is None or prev[0] >= rec:
                return qps
            f = (target - prev[0]) / (rec - prev[0])
            return prev[1] + f * (qps - prev[1])
        prev = (rec, qps)
    return None


def main():
    os.makedirs(OUT, exist_ok=True)
    threads = [int(t) for t in THREADS.split(",")]
    lines = [f"# Recall benchmark ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
             f"build threads {BUILD_THREADS}, M {M}, ef_construction {EFC}, k {K}, best of {REPEAT} sweeps)", ""]
    for name in SETS:
        ds = dataset(name)
        if ds is None:
            print(f"recall-bench: skipping {name} (data absent)", file=sys.stderr)
            continue
        base, q, gt, metric = ds
        work = os.path.join(OUT, "recall")
        os.makedirs(work, exist_ok=True)
        res = {}
        for tool in ["bluewhale-hnsw", "hnswlib", "faiss-hnsw", "bluewhale-ivf_sq8", "bluewhale-flat", "faiss-flat"]:
            if tool in SKIP:
                continue
            print(f"recall-bench: {name}: {tool}", file=sys.stderr, flush=True)
            res[tool] = (bluewhale(tool.split("-")[1], base, q, gt, metric, work) if tool.startswith("bluewhale")
                         else peer(tool, base, q, gt, metric))
            # A 1M-vector set takes hours on 2 cores: each tool's figures are kept as soon as they exist,
            # so an interrupted run loses only the tool it was in.
            with open(os.path.join(work, f"{name}_{tool}.json"), "w") as f:
                json.dump(res[tool], f)
        n = os.path.getsize(base)
        lines += [f"## {name} ({metric}, {os.path.basename(base)}, {n / 2**20:.1f} MiB)", "",
                  "| tool | build s | peak RSS MiB | " + " | ".join(f"QPS@R{TARGET} {t}T" for t in threads) + " |",
                  "|---|---|---|" + "---|" * len(threads)]
        best = {t: max([qps_at(res[p]["rows"], t, TARGET) or 0 for p in ("hnswlib", "faiss-hnsw") if p in res] or [0])
                for t in threads}
        for tool, r in res.items():
            cells = []
            for t in threads:
                v = qps_at(r["rows"], t, TARGET)
                ratio = f" ({v / best[t]:.2f}x)" if v and best[t] and tool.startswith("bluewhale-hnsw") else ""
                cells.append("-" if v is None else f"{v:.0f}{ratio}")
            lines.append(f"| {tool} | {r['build_s']:.2f} | {r['rss'] / 2**20:.0f} | " + " | ".join(cells) + " |")
        lines += ["", "Ratio: bluewhale QPS / the better of hnswlib and faiss-hnsw at the same recall and threads.", "",
                  "| tool | threads | ef (nprobe for ivf) | recall@10 | QPS |", "|---|---|---|---|---|"]
        for tool, r in res.items():
            for row in r["rows"]:
                lines.append(f"| {tool} | {row['threads']} | {row['ef']} | {row['recall']:.4f} | {row['qps']:.0f} |")
            for note in r["notes"]:
                lines.append(f"| {tool} | {note} | | | |")
        lines.append("")
        write_report(lines)  # after every set, not only at the end
    print("\n".join(lines))


def write_report(lines):
    with open(os.path.join(OUT, "recall_bench.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
