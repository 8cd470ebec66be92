"""Reads a BlueWhale dataset directory (include/bluewhale/data/dataset.h) into numpy arrays, so that the
Python peers train on exactly the rows and ids that `bluewhale train` sees.

Only what the DLRM comparison needs: the label, dense (f32) and categorical (i32) columns of one split.
Block checksums are not verified here (`bluewhale inspect --verify` does that).
"""
import json
import os
import struct

import numpy as np

_DTYPES = {1: np.float32, 2: np.int32, 3: np.int64}


def _read_shard(path, num_columns):
    with open(path, "rb") as f:
        data = f.read()
    magic, version, ncols, rows, nblocks = struct.unpack_from("<8sIIqI", data, 0)
    if magic != b"BWSHARD\0":
        raise ValueError(f"{path}: not a BlueWhale shard (magic {magic!r})")
    if ncols != num_columns:
        raise ValueError(f"{path}: {ncols} columns, meta.json says {num_columns}")
    blocks = {}
    for b in range(nblocks):
        col, dtype, part, _, off, length, _ = struct.unpack_from("<IBBHQQQ", data, 64 + 32 * b)
        if part == 0 and dtype in _DTYPES:
            blocks[col] = np.frombuffer(data, dtype=_DTYPES[dtype], count=length // np.dtype(_DTYPES[dtype]).itemsize,
                                        offset=off)
    return rows, blocks


def load_split(root, split):
    """Returns (labels (n,) f32, dense (n, D) f32, ids (n, T) i32, table_sizes [T]) for one split."""
    with open(os.path.join(root, "meta.json")) as f:
        meta = json.load(f)
    cols = meta["columns"]
    label = [i for i, c in enumerate(cols) if c["role"] == "label"]
    dense = [i for i, c in enumerate(cols) if c["role"] == "dense"]
    cat = [i for i, c in enumerate(cols) if c["role"] == "categorical"]
    if not label:
        raise ValueError(f"{root}: the dataset has no label column")
    if any(c["role"] in ("multi", "sequence") for c in cols):
        raise ValueError(f"{root}: multi-valued columns are not supported by this reader")
    shards = meta["splits"][split]["shards"]
    n = meta["splits"][split]["rows"]
    y = np.empty(n, np.float32)
    x = np.empty((n, len(dense)), np.float32)
    ids = np.empty((n, len(cat)), np.int32)
    at = 0
    for s in shards:
        rows, blocks = _read_shard(os.path.join(root, s["file"]), len(cols))
        y[at:at + rows] = blocks[label[0]]
        for j, c in enumerate(dense):
            x[at:at + rows, j] = blocks[c]
        for j, c in enumerate(cat):
            ids[at:at + rows, j] = blocks[c]
        at += rows
    if at != n:
        raise ValueError(f"{root}: split {split} has {at} rows in its shards, meta.json says {n}")
    return y, x, ids, [cols[c]["cardinality"] for c in cat]
