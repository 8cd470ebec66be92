#!/usr/bin/python3
"""pandas peer for the DLRM Criteo prep benchmark (see bench/prep/README.md).

  pandas_prep.py --input FILE.tsv --out OUT_DIR [--min-count 2]
  pandas_prep.py --summary OUT_DIR|BLUEWHALE_DATASET

Prep mode prints one JSON line: {"tool":"pandas","rows":N,"seconds":S,"rows_per_s":R,...} and writes
OUT_DIR/{label,I1..I13,C1..C26}.npy (float32, float32, int32), one file per column.
Summary mode prints one JSON line of per-column checksums, defined exactly as in
duckdb_prep.mjs --summary, so run.sh can compare the outputs. Given a bluewhale dataset directory
(meta.json + shards), it reads the shards directly; it leaves out the order-sensitive checksums when
the recipe's train/valid/test split scattered the rows.

The work is the same as `bluewhale prep --recipe recipes/dlrm-criteo.yaml`:
  dense I1..I13: missing -> 0, negative -> 0, log1p, float32
  categorical C1..C26: ids by descending count (ties by value) starting at 2 for values with
  count >= min_count, 1 for rarer values, 0 for missing; int32
  label: float32
pandas is single-threaded here; that is how it runs for its users.
Run with Debian's /usr/bin/python3 (python3-pandas, python3-numpy).
"""

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import pandas as pd

DENSE = [f"I{i}" for i in range(1, 14)]
CAT = [f"C{i}" for i in range(1, 27)]
NAMES = ["label"] + DENSE + CAT


def categorify(col: pd.Series, min_count: int) -> np.ndarray:
    # factorize + bincount is what Series.value_counts does inside; doing it directly hashes each
    # value once instead of twice (value_counts, then a map back), the fastest plain-pandas form.
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    kept = np.flatnonzero(counts >= min_count)
    order = pd.DataFrame({"n": counts[kept], "v": uniques[kept]}).sort_values(
        ["n", "v"], ascending=[False, True], kind="mergesort").index.to_numpy()
    lut = np.ones(len(uniques) + 1, dtype=np.int32)   # slot 0 is missing (code -1), others rare = 1
    lut[0] = 0
    lut[kept[order] + 1] = np.arange(2, len(order) + 2, dtype=np.int32)
    return lut[codes + 1]


def prep(args) -> None:
    if not os.path.isfile(args.input):
        sys.exit(f"pandas_prep: input file '{args.input}' does not exist")
    t0 = time.perf_counter()
    phases = {}
    df = pd.read_csv(
        args.input, sep="\t", header=None, names=NAMES, engine="c",
        dtype={"label": np.float32, **{c: np.float64 for c in DENSE}, **{c: object for c in CAT}},
        na_values=[""], keep_default_na=False, quoting=3)  # 3 = csv.QUOTE_NONE
    t = time.perf_counter()
    phases["read"] = t - t0

    out = {"label": df["label"].to_numpy(np.float32)}
    for c in DENSE:
        x = df[c].to_numpy(np.float64)
        out[c] = np.log1p(np.maximum(np.nan_to_num(x, nan=0.0), 0.0)).astype(np.float32)
    for c in CAT:
        out[c] = categorify(df[c], args.min_count)
    rows = len(df)
    del df
    phases["transform"] = time.perf_counter() - t
    t = time.perf_counter()

    tmp = f"{args.out.rstrip('/')}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in NAMES:
        np.save(os.path.join(tmp, f"{name}.npy"), out[name])
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)
    phases["write"] = time.perf_counter() - t

    seconds = time.perf_counter() - t0
    size = os.path.getsize(args.input)
    print(json.dumps({
        "tool": "pandas", "rows": rows, "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds), "input_mb_per_s": round(size / 1e6 / seconds, 1),
        "threads": 1, "min_count": args.min_count, "pandas": pd.__version__,
        "phases_s": {k: round(v, 3) for k, v in phases.items()}, "output": args.out,
    }))


def load_npy_dir(path: str) -> dict:
    cols = {}
    for name in NAMES:
        f = os.path.join(path, f"{name}.npy")
        if not os.path.isfile(f):
            sys.exit(f"pandas_prep: '{f}' is missing")
        cols[name] = np.load(f)
    return cols


def load_bluewhale(path: str) -> dict:
    """Columns of a bluewhale dataset (include/bluewhale/data/dataset.h), splits concatenated in
    train, valid, test order. Rows keep their input order within a split, so a dataset whose rows are all
    in one split (the bench's recipe) is in input order."""
    with open(os.path.join(path, "meta.json")) as f:
        meta = json.load(f)
    if meta.get("format") != "bluewhale-dataset":
        sys.exit(f"pandas_prep: {path}/meta.json: format is not 'bluewhale-dataset'")
    names = [c["name"] for c in meta["columns"]]
    missing = [n for n in NAMES if n not in names]
    if missing:
        sys.exit(f"pandas_prep: {path}: dataset has no column(s) {', '.join(missing)}")
    parts = {n: [] for n in NAMES}
    dtypes = {1: np.float32, 2: np.int32, 3: np.int64}
    for split in ("train", "valid", "test"):
        for shard in meta["splits"].get(split, {}).get("shards", []):
            f = os.path.join(path, shard["file"])
            with open(f, "rb") as fh:
                buf = fh.read()
            if buf[:8] != b"BWSHARD\0":
                sys.exit(f"pandas_prep: {f}: not a bluewhale shard")
            ncols, rows, nblocks = (int(np.frombuffer(buf, "<u4", 1, 12)[0]), int(np.frombuffer(buf, "<i8", 1, 16)[0]),
                                    int(np.frombuffer(buf, "<u4", 1, 24)[0]))
            for k in range(nblocks):
                e = 64 + 32 * k
                col, dt, part = int(np.frombuffer(buf, "<u4", 1, e)[0]), buf[e + 4], buf[e + 5]
                off, length = int(np.frombuffer(buf, "<u8", 1, e + 8)[0]), int(np.frombuffer(buf, "<u8", 1, e + 16)[0])
                if col >= ncols or part != 0 or dt not in dtypes or names[col] not in parts:
                    continue
                a = np.frombuffer(buf, dtypes[dt], length // np.dtype(dtypes[dt]).itemsize, off)
                if len(a) != rows:
                    sys.exit(f"pandas_prep: {f}: column {names[col]} has {len(a)} values for {rows} rows")
                parts[names[col]].append(a)
    return {n: (np.concatenate(v) if v else np.zeros(0)) for n, v in parts.items()}


def summary(path: str) -> None:
    bluewhale = os.path.isfile(os.path.join(path, "meta.json"))
    cols = load_bluewhale(path) if bluewhale else load_npy_dir(path)
    rows = len(cols["label"])
    # Order-sensitive sums only where rows are in input order: a split scatters a bluewhale dataset's rows.
    ordered = True
    if bluewhale:
        with open(os.path.join(path, "meta.json")) as f:
            split_rows = [v.get("rows", 0) for v in json.load(f)["splits"].values()]
        ordered = sum(1 for r in split_rows if r > 0) <= 1
    w = (np.arange(rows, dtype=np.int64) % 7919)
    s = {"rows": rows}
    for c in ["label"] + DENSE:
        x = cols[c].astype(np.float64)
        s[f"{c}_sum"] = float(x.sum())
        if ordered:
            s[f"{c}_wsum"] = float((x * w).sum())
    for c in CAT:
        x = cols[c].astype(np.int64)
        s[f"{c}_distinct"] = int(len(np.unique(x)))
        s[f"{c}_max"] = int(x.max()) if rows else 0
        for k in (0, 1, 2):
            s[f"{c}_n{k}"] = int((x == k).sum())
        s[f"{c}_sum"] = int(x.sum())
        if ordered:
            s[f"{c}_wsum"] = int((x * w).sum())
    print(json.dumps(s))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input")
    ap.add_argument("--out")
    ap.add_argument("--summary", metavar="OUT_DIR")
    ap.add_argument("--min-count", type=int, default=int(os.environ.get("BENCH_MIN_COUNT", "2")))
    args = ap.parse_args()
    if args.summary:
        summary(args.summary)
        return
    if not args.input or not args.out:
        ap.error("--input and --out are required")
    if args.min_count < 1:
        ap.error(f"--min-count must be >= 1, got {args.min_count}")
    prep(args)


if __name__ == "__main__":
    main()
