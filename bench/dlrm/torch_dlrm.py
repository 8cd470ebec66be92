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
    def __init__(self, num_dense, table_sizes, dim, bottom, top):
        super().__init__()
        self.bottom = mlp([num_dense] + bottom, last_relu=True)
        self.tables = nn.ModuleList()
        for n in table_sizes:
            e = nn.EmbeddingBag(n, dim, mode="sum", sparse=True)
            with torch.no_grad():
                bound = math.sqrt(1.0 / n)
                e.weight.uniform_(-bound, bound)
            self.tables.append(e)
        t = len(table_sizes) + 1
        self.li, self.lj = torch.tril_indices(t, t, offset=-1)
        self.top = mlp([dim + t * (t - 1) // 2] + top, last_relu=False)

    def forward(self, dense, ids, offsets):
        z0 = self.bottom(dense)
        feats = [z0] + [emb(ids[:, k], offsets) for k, emb in enumerate(self.tables)]
        b, d = z0.shape
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
    model = DLRM(num_dense, tables, a.dim, bottom, sizes(a.top))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(a.seed)
    batches = []
    for _ in range(4):
        dense = torch.rand(a.batch, num_dense, generator=g)
        ids = torch.stack([torch.randint(0, n, (a.batch,), generator=g) for n in tables], dim=1)
        labels = torch.randint(0, 2, (a.batch,), generator=g).float()
        batches.append((dense, ids, labels))
    offsets = torch.arange(a.batch)

    def step(i):
        dense, ids, labels = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(dense, ids, offsets), labels)
        loss.backward()
        opt.step()
        return loss

    for i in range(a.warmup):
        step(i)
    t0 = time.perf_counter()
    for i in range(a.steps):
        step(i)
    sec = time.perf_counter() - t0
    return {"mode": "random", "batch": a.batch, "steps": a.steps, "threads": torch.get_num_threads(),
            "seconds": sec, "samples_per_second": a.batch * a.steps / sec, "peak_rss_mib": peak_rss_mib()}


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
    model.eval()
    out = np.empty(len(y), np.float32)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(y), batch):
            e = min(s + batch, len(y))
            out[s:e] = model(x[s:e], ids[s:e], torch.arange(e - s)).numpy()
    sec = time.perf_counter() - t0
    model.train()
    p = 1.0 / (1.0 + np.exp(-out.astype(np.float64)))
    yy = y.numpy().astype(np.float64)
    eps = 1e-12
    logloss = float(-np.mean(yy * np.log(np.maximum(p, eps)) + (1 - yy) * np.log(np.maximum(1 - p, eps))))
    acc = float(np.mean((p > 0.5) == (yy > 0.5)))
    return {"auc": auc_exact(yy, out), "logloss": logloss, "accuracy": acc, "eval_seconds": sec,
            "eval_samples_per_second": len(y) / sec}


def init_from(model, path, num_dense, tables, dim, bottom, top):
    """Copies BlueWhale's weights (a `bluewhale train` model.bin) into the model, after checking the shapes."""
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from bwmodel import load_dlrm

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
    y, x, ids, tables = load_split(a.data, "train")
    ty, tx, tids, _ = load_split(a.data, a.eval_split)
    y, x, ids = torch.from_numpy(y), torch.from_numpy(x), torch.from_numpy(ids.astype(np.int64))
    ty, tx, tids = torch.from_numpy(ty), torch.from_numpy(tx), torch.from_numpy(tids.astype(np.int64))
    model = DLRM(x.shape[1], tables, a.dim, sizes(a.bottom), sizes(a.top))
    if a.init_from:
        init_from(model, a.init_from, x.shape[1], tables, a.dim, sizes(a.bottom), sizes(a.top))
    opt = torch.optim.SGD(model.parameters(), lr=a.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(a.seed)
    n = len(y)
    samples = 0
    t0 = time.perf_counter()
    last = t0
    for epoch in range(a.epochs):
        perm = torch.arange(n) if a.no_shuffle else torch.randperm(n, generator=g)
        for s in range(0, n, a.batch):
            idx = perm[s:s + a.batch]
            b = len(idx)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx], ids[idx], torch.arange(b)), y[idx])
            loss.backward()
            opt.step()
            samples += b
            now = time.perf_counter()
            if now - last > 10:
                last = now
                print(f"torch train: epoch {epoch} {samples} samples, {samples / (now - t0):.0f}/s, "
                      f"loss {loss.item():.4f}", file=sys.stderr, flush=True)
    sec = time.perf_counter() - t0
    r = {"mode": "train", "batch": a.batch, "epochs": a.epochs, "threads": torch.get_num_threads(),
         "seed": a.seed, "init_from": a.init_from, "shuffle": not a.no_shuffle, "train_rows": n,
         "eval_split": a.eval_split, "eval_rows": len(ty),
         "train_seconds": sec, "samples_per_second": samples / sec}
    r.update(evaluate(model, ty, tx, tids, a.eval_batch))
    r["peak_rss_mib"] = peak_rss_mib()
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["random", "train"])
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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = run_random(a) if a.mode == "random" else run_train(a)
    print(json.dumps(r))


if __name__ == "__main__":
    main()
