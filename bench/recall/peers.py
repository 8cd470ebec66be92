#!/usr/bin/env python3
"""One peer (hnswlib HNSW, FAISS IndexHNSWFlat or FAISS IndexFlat) on one data set: build, then recall@k and
queries/s for each ef and thread count. Prints one JSON object per line. Run by bench/recall/run.py, one
process per peer so that peak RSS is the peer's own."""
import argparse
import json
import time

import numpy as np


def read_xvecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = int(raw[0])
    rows = raw.reshape(-1, d + 1)[:, 1:]
    return np.ascontiguousarray(rows.view(dtype) if dtype == np.float32 else rows)


def recall(ids, truth, k):
    hit = 0
    for got, want in zip(ids, truth):
        hit += len(set(got[:k].tolist()) & set(want[:k].tolist()))
    return hit / (len(ids) * k)


def timed(fn, nq, min_s):
    reps, t0 = 0, time.perf_counter()
    while True:
        out = fn()
        reps += 1
        el = time.perf_counter() - t0
        if el >= min_s:
            return out, reps * nq / el


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True, choices=["hnswlib", "faiss-hnsw", "faiss-flat"])
    ap.add_argument("--base", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--truth", required=True)
    ap.add_argument("--metric", default="l2", choices=["l2", "ip"])
    ap.add_argument("--m", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef-list", default="10,20,40,80,160,320")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--min-seconds", type=float, default=0.5)
    ap.add_argument("--repeat", type=int, default=1, help="sweeps over (threads, ef); run.py keeps the best")
    a = ap.parse_args()
    base = read_xvecs(a.base, np.float32)
    q = read_xvecs(a.queries, np.float32)
    truth = read_xvecs(a.truth, np.int32)
    efs = [int(x) for x in a.ef_list.split(",")]
    threads = [int(x) for x in a.threads.split(",")]
    n, d = base.shape

    if a.tool == "hnswlib":
        import hnswlib
        idx = hnswlib.Index(space=a.metric, dim=d)
        t0 = time.perf_counter()
        idx.init_index(max_elements=n, M=a.m, ef_construction=a.ef_construction, random_seed=1)
        idx.add_items(base, np.arange(n), num_threads=a.build_threads)
        build = time.perf_counter() - t0

        def search(ef, t):
            idx.set_ef(max(ef, a.k))
            return timed(lambda: idx.knn_query(q, k=a.k, num_threads=t)[0], len(q), a.min_seconds)
    else:
        import faiss
        metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        faiss.omp_set_num_threads(a.build_threads)
        t0 = time.perf_counter()
        if a.tool == "faiss-hnsw":
            idx = faiss.IndexHNSWFlat(d, a.m, metric)
            idx.hnsw.efConstruction = a.ef_construction
        else:
            idx = faiss.IndexFlat(d, metric)
            efs = [0]
        idx.add(base)
        build = time.perf_counter() - t0

        def search(ef, t):
            faiss.omp_set_num_threads(t)
            if a.tool == "faiss-hnsw":
                idx.hnsw.efSearch = max(ef, a.k)
            return timed(lambda: idx.search(q, a.k)[1], len(q), a.min_seconds)

    print(json.dumps({"kind": "build", "build_s": build, "threads": a.build_threads}), flush=True)
    for _ in range(a.repeat):
        for t in threads:
            for ef in efs:
                ids, qps = search(ef, t)
                print(json.dumps({"kind": "search", "threads": t, "ef": ef, "recall": recall(ids, truth, a.k),
                                  "qps": qps}), flush=True)


if __name__ == "__main__":
    main()
