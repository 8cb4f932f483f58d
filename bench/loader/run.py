#!/usr/bin/env python3
"""Reading 1,000 prompts of a result file: the package's bulk reads against per-prompt reads and plain h5py.

    python3 bench/loader/run.py [--prompts 1000] [--tokens 24] [--points 25] [--topk 10] [--file RUN.h5]

Without --file it writes a file with the engine's storage layout (docs/hdf5-format.md "Storage": token
axis first, chunks of about 1 MiB of whole rows, shuffle + deflate 4) and random values: P prompts of
about T tokens (T/2..3T/2), a 24-layer model's points embed + post.0..23, top-10. Each way is timed on a
freshly opened file (OS page cache warm, HDF5 chunk cache cold), best of --repeat runs:

- per prompt, old: the loader before bulk reads (git 45cb59a; run.prompt(i) one by one: every dataset
  sliced per prompt, every slice decompressing its whole 1 MiB chunk again)
- per prompt, plain h5py: f[name][lo:hi] for the 9 per-token datasets, prompt by prompt
- plain h5py, whole datasets: f[name][()] once per dataset, then numpy indexing (the fast way by hand)
- run.prompts(range(P)): every prompt as a Prompt ([point, position, ...] arrays), bulk
- run.prompt(i) one by one, new (chunk cache of 64 MiB)
- run.at_position(-1): the last position of every prompt ([prompt, point, ...]), bulk
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "python"))
import logitlens  # noqa: E402

FIELDS = ("tokens", "target_ids", "topk_ids", "topk_probs", "entropy", "kl_final", "target_probs",
          "target_logprobs", "target_ranks")


def write(path, n_prompts, tokens, n_points, topk, seed=0):
    rng = np.random.default_rng(seed)
    lens = rng.integers(tokens // 2, tokens + tokens // 2 + 1, n_prompts)
    n = int(lens.sum())
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    tprompt = np.repeat(np.arange(n_prompts), lens).astype(np.int32)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "logitlens.lens"
        f.attrs["format_version"] = np.int32(1)
        f.attrs["n_layers"] = np.int64(n_points - 1)
        f.attrs["topk"] = np.int64(topk)

        def tok(name, a):
            rows = max(1, (1 << 20) // max(1, a[0].nbytes if a.ndim > 1 else a.itemsize))
            f.create_dataset(name, data=a, chunks=(min(rows, len(a)),) + a.shape[1:], maxshape=(None,) + a.shape[1:],
                             compression="gzip", compression_opts=4, shuffle=True)

        V = 50000
        tok("tokens", rng.integers(0, V, n).astype(np.int32))
        tok("token_prompt", tprompt)
        tok("token_position", (np.arange(n) - offsets[tprompt]).astype(np.int32))
        tok("target_ids", rng.integers(0, V, n).astype(np.int32))
        tok("topk_ids", rng.integers(0, V, (n, n_points, topk)).astype(np.int32))
        tok("topk_probs", rng.random((n, n_points, topk)).astype(np.float32))
        for name in ("entropy", "kl_final", "target_probs", "target_logprobs"):
            tok(name, rng.random((n, n_points)).astype(np.float32))
        tok("target_ranks", rng.integers(0, 1000, (n, n_points)).astype(np.int32))
        f.create_dataset("prompt_offsets", data=offsets)
        s = h5py.string_dtype("utf-8")
        f.create_dataset("prompts", data=[f"prompt {i}" for i in range(n_prompts)], dtype=s)
        f.create_dataset("prompt_targets", data=["" for _ in range(n_prompts)], dtype=s)
        f.create_dataset("points", data=["embed"] + [f"post.{i}" for i in range(n_points - 1)], dtype=s)
        f.create_dataset("point_layers", data=np.arange(-1, n_points - 1, dtype=np.int32))
    return n


def old_loader():
    """The loader as it was before bulk reads, from git."""
    src = subprocess.run(["git", "-C", ROOT, "show", "45cb59a:tools/python/logitlens/run.py"],
                         capture_output=True, text=True, check=True).stdout
    spec = importlib.util.spec_from_loader("logitlens_old_run", loader=None)
    mod = importlib.util.module_from_spec(spec)
    exec(compile(src, "logitlens_old_run", "exec"), mod.__dict__)
    return mod


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--points", type=int, default=25)
    ap.add_argument("--topk", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--old-prompts", type=int, default=200,
                    help="prompts read by the old loader (it is slow; its time is scaled to --prompts)")
    ap.add_argument("--file", help="an existing result file instead of a generated one")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.file or os.path.join(tmp.name, "bench.h5")
    if not args.file:
        write(path, args.prompts, args.tokens, args.points, args.topk)
    with logitlens.open(path) as run:
        P = min(args.prompts, run.n_prompts)
        desc = f"{run.n_prompts} prompts, {run.n_tokens} tokens, {len(run.points)} points, top-{run.topk}"
    print(f"file: {desc}, {os.path.getsize(path) / 2**20:.1f} MiB; reading {P} prompts")

    results = []

    def report(name, seconds, n):
        per = seconds / n * P
        results.append((name, per))
        print(f"{name:48s} {per * 1e3:10.1f} ms for {P} prompts ({per / P * 1e6:8.1f} us a prompt)")

    old = old_loader()
    n_old = min(args.old_prompts, P)

    def old_way():
        with old.Run(path) as r:
            for i in range(n_old):
                r.prompt(i)
    report("per prompt, old loader (run.prompt(i))", best(old_way, 1), n_old)

    def h5_per_prompt():
        with h5py.File(path, "r") as f:
            off = f["prompt_offsets"][()]
            for i in range(P):
                for name in FIELDS:
                    f[name][off[i]:off[i + 1]]
    report("per prompt, plain h5py (f[name][lo:hi])", best(h5_per_prompt, args.repeat), P)

    def h5_whole():
        with h5py.File(path, "r") as f:
            off = f["prompt_offsets"][()]
            cols = {name: f[name][()] for name in FIELDS}
            [{name: cols[name][off[i]:off[i + 1]] for name in FIELDS} for i in range(P)]
    report("plain h5py, whole datasets then numpy", best(h5_whole, args.repeat), P)

    def new_bulk():
        with logitlens.open(path) as r:
            r.prompts(range(P))
    report("logitlens run.prompts(range(P))", best(new_bulk, args.repeat), P)

    def new_one_by_one():
        with logitlens.open(path) as r:
            for i in range(P):
                r.prompt(i)
    report("logitlens run.prompt(i) one by one", best(new_one_by_one, 1), P)

    def h5_last():
        with h5py.File(path, "r") as f:
            last = f["prompt_offsets"][1:P + 1] - 1
            {name: f[name][()][last] for name in FIELDS}
    report("last position, plain h5py (whole datasets)", best(h5_last, args.repeat), P)

    def h5_last_fancy():
        with h5py.File(path, "r") as f:
            last = f["prompt_offsets"][1:P + 1] - 1
            {name: f[name][last] for name in FIELDS}
    report("last position, plain h5py (f[name][indices])", best(h5_last_fancy, 1), P)

    def new_last():
        with logitlens.open(path) as r:
            r.at_position(-1, prompts=range(P))
    report("logitlens run.at_position(-1)", best(new_last, args.repeat), P)
    tmp.cleanup()


if __name__ == "__main__":
    main()
