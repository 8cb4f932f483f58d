"""The peer of bench_dequant.c: the gguf Python package's numpy dequantization (gguf.quants.dequantize),
the way a Python user turns GGUF tensors into float32. Same kind of random blocks as the C benchmark
(random bytes, normal-range f16 scales), same element count by default; numpy runs on one thread.
Median of R repeats after one warm-up, output GB/s (4 N bytes / time). F32 comes back as a view of the
input (nothing is copied), so it has no throughput to compare.

Usage: python3 bench/gguf/peer_numpy.py [N] [R]
"""

import importlib.metadata
import platform
import sys
import time

import numpy as np

import gguf
from gguf import GGMLQuantizationType as QT

TYPES = [QT.F32, QT.F16, QT.BF16, QT.Q8_0, QT.Q4_0, QT.Q4_1, QT.Q5_0, QT.Q5_1,
         QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]
F16_SCALES = {QT.Q4_0: [0], QT.Q4_1: [0, 2], QT.Q5_0: [0], QT.Q5_1: [0, 2], QT.Q8_0: [0],
              QT.Q2_K: [80, 82], QT.Q3_K: [108], QT.Q4_K: [0, 2], QT.Q5_K: [0, 2], QT.Q6_K: [208]}


def blocks(qtype, n, rng):
    bs, ts = gguf.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n // bs, ts), dtype=np.uint8)
    if qtype in (QT.F16, QT.BF16):
        raw.view(np.uint16)[...] &= np.uint16(0xBFFF)  # finite
    elif qtype == QT.F32:
        raw.view(np.uint32)[...] &= np.uint32(0xBFFFFFFF)
    for off in F16_SCALES.get(qtype, []):
        e = rng.integers(5, 11, size=n // bs, dtype=np.uint16)  # magnitudes 2^-10 .. 2^-5
        m = rng.integers(0, 1024, size=n // bs, dtype=np.uint16)
        raw[:, off:off + 2] = ((e << 10) | m).astype(np.uint16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(1, -1)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 64 << 20
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"peer: gguf {importlib.metadata.version('gguf')} numpy {np.__version__} python {platform.python_version()}; "
          f"N = {n}, {reps} repeats, medians")
    print(f"{'type':5} {'ms':>9} {'out GB/s':>10}")
    rng = np.random.default_rng(0)
    for qtype in TYPES:
        raw = blocks(qtype, n, rng)
        gguf.quants.dequantize(raw, qtype)  # warm-up
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            out = gguf.quants.dequantize(raw, qtype)
            times.append(time.perf_counter() - t0)
            del out
        t = float(np.median(times))
        if qtype == QT.F32:  # dequantize returns a view of the input bytes: nothing is copied
            print(f"{qtype.name:5} {t * 1e3:9.3f} {'(a view)':>10}", flush=True)
        else:
            print(f"{qtype.name:5} {t * 1e3:9.1f} {n * 4 / t * 1e-9:10.2f}", flush=True)


if __name__ == "__main__":
    main()
