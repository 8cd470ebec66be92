"""The PyTorch peer of `bluewhale train` / `bluewhale bench train`: a plain DLRM written as the DLRM reference
code (dlrm_s_pytorch.py) writes it — one nn.EmbeddingBag(mode="sum", sparse=True) per table, nn.Linear
MLPs with ReLU, the pairwise dot interaction without self-pairs, BCE on logits, torch.optim.SGD over dense
and sparse gradients — with the reference initialisation that BlueWhale also uses (embeddings
U(-sqrt(1/rows), sqrt(1/rows)), weights N(0, sqrt(2/(in+out))), biases N(0, sqrt(1/out))).

  random: times training steps on random batches, the same shapes as `bluewhale bench train`
  train:  trains one pass over a BlueWhale dataset's train split and evaluates exact AUC on a split;
          --init-from MODEL.bin starts from BlueWhale's own initial weights (paired comparison)

Each mode prints one JSON object on its last line.
"""
import argparse
import json
import math
import resource
import sys
import time

import numpy as np
import torch
from torch import nn


def mlp(sizes, last_relu):
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        with torch.no_grad():
            lin.weight.normal_(0.0, math.sqrt(2.0 / (sizes[i] + sizes[i + 1])))
            lin.bias.normal_(0.0, math.sqrt(1.0 / sizes[i + 1]))
        layers.append(lin)
        if i < len(sizes) - 2 or last_relu:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRM(nn.Module):
    """fused=False: one EmbeddingBag per table, as the DLRM reference code. fused=True: all tables in one
    sparse nn.Embedding with per-table row offsets (as TorchRec groups tables), one gather per batch; the
    stronger form on a GPU, where 26 small kernels per pass cost more than their work."""

    def __init__(self, num_dense, table_sizes, dim, bottom, top, fused=False):
        super().__init__()
        self.bottom = mlp([num_dense] + bottom, last_relu=True)
        self.fused = fused
        self.tables = nn.ModuleList()
        if fused:
            e = nn.Embedding(sum(table_sizes), dim, sparse=True)
            with torch.no_grad():
                at = 0
                for n in table_sizes:
                    bound = math.sqrt(1.0 / n)
                    e.weight[at:at + n].uniform_(-bound, bound)
                    at += n
            self.tables.append(e)
            starts = [0]
            for n in table_sizes[:-1]:
                starts.append(starts[-1] + n)
            self.register_buffer("starts", torch.tensor(starts, dtype=torch.int64), persistent=False)
        else:
            for n in table_sizes:
                e = nn.EmbeddingBag(n, dim, mode="sum", sparse=True)
                with torch.no_grad():
                    bound = math.sqrt(1.0 / n)
                    e.weight.uniform_(-bound, bound)
                self.tables.append(e)
        t = len(table_sizes) + 1
        li, lj = torch.tril_indices(t, t, offset=-1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        self.top = mlp([dim + t * (t - 1) // 2] + top, last_relu=False)

    def forward(self, dense, ids, offsets):
        z0 = self.bottom(dense)
        b, d = z0.shape
        if self.fused:
            z = torch.cat([z0.unsqueeze(1), self.tables[0](ids + self.starts)], dim=1)
        else:
            feats = [z0] + [emb(ids[:, k], offsets) for k, emb in enumerate(self.tables)]
            z = torch.cat(feats, dim=1).view(b, -1, d)
        zz = torch.bmm(z, z.transpose(1, 2))
        x = torch.cat([z0, zz[:, self.li, self.lj]], dim=1)
        return self.top(x).squeeze(1)


def sizes(text):
    return [int(v) for v in text.split("-")]


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_random(a):
    torch.manual_seed(a.seed)
    tables = [int(v) for v in a.table_sizes.split(",")]
    bottom = sizes(a.bottom)
    num_dense, bottom = bottom[0], bottom[1:]
    dev = torch.device(a.device)
    model = DLRM(num_dense, tables, a.dim, bottom, sizes(a.top), fused=a.fused_tables).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(a.seed)
    batches = []
    for _ in range(4):
        dense = torch.rand(a.batch, num_dense, generator=g)
        ids = torch.stack([torch.randint(0, n, (a.batch,), generator=g) for n in tables], dim=1)
        labels = torch.randint(0, 2, (a.batch,), generator=g).float()
        batches.append((dense.to(dev), ids.to(dev), labels.to(dev)))
    offsets = torch.arange(a.batch, device=dev)

    def step(i):
        dense, ids, labels = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(dense, ids, offsets), labels)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    sync(dev)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i)
    sync(dev)
    sec = time.perf_counter() - t0
    return {"mode": "random", "batch": a.batch, "steps": a.steps, "threads": torch.get_num_threads(),
            "device": device_name(dev), "fused_tables": a.fused_tables,
            "seconds": sec, "samples_per_second": a.batch * a.steps / sec, "peak_rss_mib": peak_rss_mib(),
            "peak_device_mib": peak_device_mib(dev)}


def sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def device_name(dev):
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"


def peak_device_mib(dev):
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else 0.0


def auc_exact(labels, scores):
    # Mann-Whitney U with average ranks for tied scores.
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), np.float64)
    n = len(s)
    starts = np.flatnonzero(np.concatenate(([True], s[1:] != s[:-1])))
    ends = np.concatenate((starts[1:], [n]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    pos = labels > 0.5
    npos = pos.sum()
    nneg = n - npos
    return float((ranks[pos].sum() - npos * (npos + 1) / 2.0) / (npos * nneg))


def evaluate(model, y, x, ids, batch):
    """x and ids on the model's device; scores come back to the host once, after the timed loop."""
    model.eval()
    dev = x.device
    out = torch.empty(len(y), dtype=torch.float32, device=dev)
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(y), batch):
            e = min(s + batch, len(y))
            out[s:e] = model(x[s:e], ids[s:e], torch.arange(e - s, device=dev))
    sync(dev)
    sec = time.perf_counter() - t0
    out = out.cpu().numpy()
    model.train()
    p = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
    yy = y.cpu().numpy().astype(np.float64)
    eps = 1e-12
    logloss = float(-np.mean(yy * np.log(np.maximum(p, eps)) + (1 - yy) * np.log(np.maximum(1 - p, eps))))
    acc = float(np.mean((p > 0.5) == (yy > 0.5)))
    return {"auc": auc_exact(yy, out), "logloss": logloss, "accuracy": acc, "eval_seconds": sec,
            "eval_samples_per_second": len(y) / sec}


def init_from(model, path, num_dense, tables, dim, bottom, top):
    """Copies BlueWhale's weights (a `bluewhale train` model.bin) into the model, after checking the shapes."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bwmodel import load_dlrm

    if model.fused:
        sys.exit("--init-from loads one table per EmbeddingBag: leave out --fused-tables")
    m = load_dlrm(path)
    want = {"num_dense": num_dense, "tables": tables, "dim": dim, "bottom": bottom, "top": top}
    for k, v in want.items():
        if m[k] != v:
            sys.exit(f"{path}: {k} is {m[k]}, this run has {v}")
    linears = [l for l in model.bottom if isinstance(l, nn.Linear)] + [l for l in model.top if isinstance(l, nn.Linear)]
    with torch.no_grad():
        for lin, (w, b) in zip(linears, m["layers"]):
            lin.weight.copy_(torch.from_numpy(w.copy()))
            lin.bias.copy_(torch.from_numpy(b.copy()))
        for emb, w in zip(model.tables, m["embeddings"]):
            emb.weight.copy_(torch.from_numpy(w.copy()))


def run_train(a):
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bwdataset import load_split

    torch.manual_seed(a.seed)
    if a.data.endswith(".npz"):  # export_npz below: the same rows, for a machine without the dataset
        z = np.load(a.data)
        y, x, ids, tables = z["train_y"], z["train_x"], z["train_ids"], [int(v) for v in z["tables"]]
        ty, tx, tids = z[a.eval_split + "_y"], z[a.eval_split + "_x"], z[a.eval_split + "_ids"]
    else:
        y, x, ids, tables = load_split(a.data, "train")
        ty, tx, tids, _ = load_split(a.data, a.eval_split)
    dev = torch.device(a.device)
    y, x, ids = (torch.from_numpy(v).to(dev) for v in (y, x, ids.astype(np.int64)))
    ty, tx, tids = (torch.from_numpy(v).to(dev) for v in (ty, tx, tids.astype(np.int64)))
    model = DLRM(x.shape[1], tables, a.dim, sizes(a.bottom), sizes(a.top), fused=a.fused_tables)
    if a.init_from:
        init_from(model, a.init_from, x.shape[1], tables, a.dim, sizes(a.bottom), sizes(a.top))
    model.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(a.seed)
    n = len(y)
    samples = 0
    offsets = torch.arange(a.batch, device=dev)
    sync(dev)
    t0 = time.perf_counter()
    last = t0
    for epoch in range(a.epochs):
        perm = torch.arange(n) if a.no_shuffle else torch.randperm(n, generator=g)
        perm = perm.to(dev)
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            b = len(idx)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx], ids[idx], offsets[:b]), y[idx])
            loss.backward()
            opt.step()
            samples += b
            now = time.perf_counter()
            if now - last > 10:
                last = now
                print(f"torch train: epoch {epoch} {samples} samples, {samples / (now - t0):.0f}/s, "
                      f"loss {loss.item():.4f}", file=sys.stderr, flush=True)
    sync(dev)
    sec = time.perf_counter() - t0
    r = {"mode": "train", "batch": a.batch, "epochs": a.epochs, "threads": torch.get_num_threads(),
         "device": device_name(dev), "fused_tables": a.fused_tables,
         "seed": a.seed, "init_from": a.init_from, "shuffle": not a.no_shuffle, "train_rows": n,
         "eval_split": a.eval_split, "eval_rows": len(ty),
         "train_seconds": sec, "samples_per_second": samples / sec}
    r.update(evaluate(model, ty, tx, tids, a.eval_batch))
    r["peak_rss_mib"] = peak_rss_mib()
    r["peak_device_mib"] = peak_device_mib(dev)
    return r


def export_npz(a):
    """Writes the train split and --eval-split of a BlueWhale dataset to one compressed .npz (--out), which
    `train --data FILE.npz` reads: how the rows travel to a GPU machine that has no bluewhale build."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bwdataset import load_split

    y, x, ids, tables = load_split(a.data, "train")
    ty, tx, tids, _ = load_split(a.data, a.eval_split)
    np.savez_compressed(a.out, train_y=y, train_x=x, train_ids=ids, tables=np.array(tables, np.int64),
                        **{a.eval_split + "_y": ty, a.eval_split + "_x": tx, a.eval_split + "_ids": tids})
    return {"mode": "export", "out": a.out, "train_rows": len(y), "eval_rows": len(ty)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["random", "train", "export"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--bottom", default="512-256-64-16", help="train: sizes after the dense input; "
                   "random: including it (13-512-256-64-16), as bluewhale bench train")
    p.add_argument("--top", default="512-256-1", help="top MLP sizes after the interaction")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--table-sizes", default="")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--data", default="")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--eval-split", default="test")
    p.add_argument("--eval-batch", type=int, default=16384)
    p.add_argument("--init-from", default="", help="train: start from the weights of a BlueWhale model.bin")
    p.add_argument("--no-shuffle", action="store_true", help="train: rows in dataset order every epoch")
    p.add_argument("--device", default="cpu", help="cpu or cuda (a GPU peer for the CPU-to-GPU gap)")
    p.add_argument("--fused-tables", action="store_true",
                   help="all tables in one sparse nn.Embedding (one gather per batch) instead of one "
                        "EmbeddingBag per table")
    p.add_argument("--out", default="", help="export: the .npz to write")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda: this torch sees no GPU")
    r = {"random": run_random, "train": run_train, "export": export_npz}[a.mode](a)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
