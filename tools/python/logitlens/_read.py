"""Bulk reads from the token axis: each needed stretch of a dataset is read once.

A result file's per-token datasets are chunked along the token axis (about 1 MiB a chunk) and
compressed, so reading one prompt's few rows decompresses a whole chunk. Reading many prompts one by one
decompresses the same chunks again and again (about 30 ms a prompt); ``gather`` instead reads every run
of needed chunks with one h5py call and picks the rows out with numpy.
"""
import numpy as np

# The most rows of one read: a dataset whose rows are large (hidden states, probability rows) is read in
# pieces of at most this many bytes, so that gathering from it never holds the whole dataset.
MAX_READ_BYTES = 256 << 20


def gather(ds, idx):
    """Rows ``ds[idx]`` of an h5py dataset for a sorted (non-decreasing) int array ``idx``; the result
    keeps the dataset's dtype. Every chunk-aligned stretch of rows that holds a wanted row is read once."""
    idx = np.asarray(idx, dtype=np.int64)
    out = np.empty((len(idx),) + ds.shape[1:], ds.dtype)
    if len(idx) == 0:
        return out
    n = ds.shape[0]
    row_bytes = max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)
    step = ds.chunks[0] if ds.chunks else max(1, min(n, MAX_READ_BYTES // row_bytes))
    max_blocks = max(1, MAX_READ_BYTES // (row_bytes * step))
    blocks = np.unique(idx // step)
    # runs of consecutive blocks, each cut to at most max_blocks blocks
    cuts = np.nonzero(np.diff(blocks) != 1)[0] + 1
    for run in np.split(blocks, cuts):
        for s in range(0, len(run), max_blocks):
            part = run[s:s + max_blocks]
            lo, hi = int(part[0]) * step, min(n, (int(part[-1]) + 1) * step)
            a, b = np.searchsorted(idx, lo), np.searchsorted(idx, hi)
            block = ds[lo:hi]
            out[a:b] = block[idx[a:b] - lo]
    return out


def gather_any(ds, idx):
    """``ds[idx]`` for any int array ``idx`` (unsorted, repeated): sorted, gathered, put back in order."""
    idx = np.asarray(idx, dtype=np.int64)
    order = np.argsort(idx, kind="stable")
    rows = gather(ds, idx[order])
    out = np.empty_like(rows)
    out[order] = rows
    return out
