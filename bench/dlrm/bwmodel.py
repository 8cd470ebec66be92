"""Reads the weights of a BlueWhale DLRM model file (`model.bin` of a `bluewhale train` output directory), so
that the PyTorch peer can start from exactly the weights BlueWhale starts from.

File layout (src/data/binary_io.cpp, src/train/trainer.cpp save_model_file, src/models/dlrm.cpp save):
  "BWBIN\\0\\0\\1" | u32 format version | u32 tag length | tag | payload | u64 payload length | u64 XXH3
  payload: string model name, then DlrmModel::save: string magic, u32 version, i64 num_dense,
  vector<i64> table sizes, i64 dim, vector<i64> bottom, vector<i64> top, 3 strings (interaction, optimizer,
  sparse optimizer), per dense layer (bottom then top) weight (out, in) and bias as (u64 n, n f32), i64 step,
  i32 optimizer slots and their states, per table (u64 n, n f32 weights (rows, dim)) and its Adagrad state.
Strings and vectors are a u64 length then the elements. The checksum is not verified here.
"""
import struct

import numpy as np


class _Reader:
    def __init__(self, data, pos):
        self.data, self.pos = data, pos

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def i64s(self):
        n = self.take("Q")
        v = list(struct.unpack_from(f"<{n}q", self.data, self.pos))
        self.pos += 8 * n
        return v

    def floats(self):
        n = self.take("Q")
        v = np.frombuffer(self.data, np.float32, count=n, offset=self.pos)
        self.pos += 4 * n
        return v


def load_dlrm(path):
    """Returns {"num_dense", "tables", "dim", "bottom", "top", "interaction", "layers": [(w (out, in), b)]
    bottom first then top, "embeddings": [(rows, dim) arrays]}."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"BWBIN\0\0\1":
        raise ValueError(f"{path}: not a BlueWhale binary file")
    r = _Reader(data, 8)
    r.take("I")
    tag_len = r.take("I")
    r.pos += tag_len  # the tag
    if r.string() != "dlrm":
        raise ValueError(f"{path}: not a DLRM model")
    r.string()  # the state magic
    r.take("I")
    m = {"num_dense": r.take("q"), "tables": r.i64s(), "dim": r.take("q"), "bottom": r.i64s(), "top": r.i64s(),
         "interaction": r.string()}
    r.string()
    r.string()
    sizes = [m["num_dense"]] + m["bottom"]
    t = len(m["tables"])
    if m["interaction"] != "dot":
        raise ValueError(f"{path}: interaction '{m['interaction']}', the PyTorch peer has only 'dot'")
    top_in = m["dim"] + t * (t + 1) // 2
    sizes_top = [top_in] + m["top"]
    layers = []
    for dims in (sizes, sizes_top):
        for i in range(len(dims) - 1):
            w = r.floats().reshape(dims[i + 1], dims[i])
            b = r.floats()
            if len(b) != dims[i + 1]:
                raise ValueError(f"{path}: layer bias has {len(b)} values, expected {dims[i + 1]}")
            layers.append((w, b))
    r.take("q")
    slots = r.take("i")
    for _ in range(2 * len(layers) * slots):
        r.floats()
    emb = []
    for n in m["tables"]:
        emb.append(r.floats().reshape(n, m["dim"]))
        r.floats()
    m["layers"], m["embeddings"] = layers, emb
    return m
