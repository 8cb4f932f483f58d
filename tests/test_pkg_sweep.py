"""logitlens.open_sweep (tools/python/logitlens/sweep.py): a sweep of two synthetic models (of different
depth: 2 and 3 layers) x two prompt sets cut into 3 shards, run with `sweep run --local`, opened as one
Dataset without merging. Its values equal those read from each shard file with h5py directly (at the
last position and at position 1), dtypes are the files', nothing is read before a value is asked for,
an unfinished task is masked (done False, NaN / -1), and ds.sweep.runs() gives the per-task Runs."""

import json
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import write_jsonl

xr = pytest.importorskip("xarray")
import logitlens  # noqa: E402

MODEL_A = dict(arch="gpt2", layers=2, d_model=32, heads=2, vocab=97, ctx=16, dtype="f32")
MODEL_B = dict(arch="llama", layers=3, d_model=32, heads=4, kv_heads=2, vocab=101, ctx=16, dtype="f32")
SETS = {"alpha": 4, "beta": 2}  # prompts per set; shards of 2: alpha-0000, alpha-0001, beta-0000
SHARD = 2
# position-wise fields of the file -> the Dataset's name (k index or None)
FIELDS = {"target_probs": ("target_probs", None), "target_logprobs": ("target_logprobs", None),
          "target_ranks": ("target_ranks", None), "entropy": ("entropy", None), "kl_final": ("kl_final", None),
          "top1_ids": ("topk_ids", 0), "top1_probs": ("topk_probs", 0), "topk_ids": ("topk_ids", None),
          "topk_probs": ("topk_probs", None), "tokens": ("tokens", None), "target_ids": ("target_ids", None)}


@pytest.fixture(scope="module")
def sweep_out(ll):
    d = ll.tmpdir("pkg-sweep")
    rng = np.random.default_rng(11)
    files = {}
    for s, n in SETS.items():
        lens = [int(x) for x in rng.integers(1, 7, size=n)]
        lens[0] = 1  # a one-token prompt: no position 1
        prompts = [[int(t) for t in rng.integers(0, 90, size=k)] for k in lens]
        answers = [int(rng.integers(0, 90)) if j % 2 == 0 else None for j in range(n)]
        files[s] = os.path.join(d, s + ".jsonl")
        write_jsonl(files[s], prompts, answers)
    out = os.path.join(d, "out")
    lines = ["name: pkg", "output: %s" % out, "shard_size: %d" % SHARD, "models:"]
    for name, m in (("a", ll.synth(**MODEL_A)), ("b", ll.synth(**MODEL_B))):
        lines += ["  - name: %s" % name, "    path: %s" % m, "    backend: cpu", "    threads: 1"]
    lines += ["prompts:"] + ["  - name: %s\n    files: %s" % (s, f) for s, f in files.items()]
    lines += ["lens:", "  points: [embed, mid, post]", "  topk: 4"]
    sf = os.path.join(d, "sweep.yaml")
    with open(sf, "w") as f:
        f.write("\n".join(lines) + "\n")
    r = ll.run(["sweep", "plan", sf], timeout=120)
    assert r.rc == 0, r.describe()
    r = ll.run(["sweep", "run", "--local", out, "-j", "2"], timeout=300)
    assert r.rc == 0, r.describe()
    return out


def _manifest(out):
    with open(os.path.join(out, "sweep.json")) as f:
        return json.load(f)


def _expected(path, position):
    """Per prompt of one shard file, read with h5py: the rows at `position`, the valid mask, the points."""
    with h5py.File(path, "r") as f:
        off = f["prompt_offsets"][()].astype(np.int64)
        n = np.diff(off)
        pos = np.where(position < 0, position + n, position)
        valid = (pos >= 0) & (pos < n)
        rows = np.where(valid, off[:-1] + pos, 0)
        points = [p.decode() if isinstance(p, bytes) else p for p in f["points"][()]]
        data = {name: f[name][()][rows] for name in set(v[0] for v in FIELDS.values())}
    return data, valid, points


@pytest.mark.parametrize("position", [-1, 1])
def test_values_equal_shard_files(sweep_out, position):
    ds = logitlens.open_sweep(sweep_out, position=position)
    m = _manifest(sweep_out)
    assert list(ds.model.values) == ["a", "b"]
    assert list(ds.shard.values) == ["alpha-0000", "alpha-0001", "beta-0000"]
    assert list(ds.prompt_set.values) == ["alpha"] * 4 + ["beta"] * 2
    assert list(ds.prompt.values) == [0, 1, 2, 3, 0, 1]
    # the point axis is the union in depth order; model a (2 layers) has no mid.2/post.2
    assert list(ds.point.values) == ["embed", "mid.0", "post.0", "mid.1", "post.1", "mid.2", "post.2"]
    assert list(ds.layer.values) == [-1, 0, 0, 1, 1, 2, 2]
    np.testing.assert_allclose(ds.depth.sel(model="a").values[:5], [0, 0.25, 0.5, 0.75, 1.0])
    assert np.isnan(ds.depth.sel(model="a", point="post.2"))
    assert float(ds.depth.sel(model="b", point="post.2")) == 1.0
    assert bool(ds.done.all()) and list(ds.task_state.values.ravel()) == ["done"] * 6
    for t in m["tasks"]:
        sh = next(s for s in m["shards"] if s["name"] == t["shard"])
        sel = (ds.shard_of == t["shard"]).values
        exp, valid, points = _expected(t["output"], position)
        sub = ds.sel(model=t["model"]).isel(prompt=np.nonzero(sel)[0]).sel(point=points)
        assert list(sub.prompt.values) == list(range(sh["first_prompt"], sh["first_prompt"] + sh["prompts"]))
        np.testing.assert_array_equal(sub.valid.values, valid)
        for name, (src, kidx) in FIELDS.items():
            e = exp[src] if kidx is None else exp[src][..., kidx]
            e = e.copy()
            e[~valid] = np.nan if e.dtype.kind == "f" else -1
            got = sub[name].values
            assert got.dtype == e.dtype, (name, got.dtype, e.dtype)
            np.testing.assert_array_equal(got, e, err_msg="%s %s %s" % (t["model"], t["shard"], name))
        # the points a model does not have are NaN / -1
        others = [p for p in ds.point.values if p not in points]
        if others:
            assert np.isnan(ds.entropy.sel(model=t["model"], point=others).values).all()
            assert (ds.target_ranks.sel(model=t["model"], point=others).values == -1).all()
    assert not valid.all() or position == -1  # position 1 of a one-token prompt does not exist


def test_lazy_until_values_are_asked_for(sweep_out, monkeypatch):
    opened = []
    real = logitlens.sweep.Run

    def spy(path):
        opened.append(path)
        return real(path)

    monkeypatch.setattr(logitlens.sweep, "Run", spy)
    ds = logitlens.open_sweep(sweep_out)
    meta = len(opened)
    assert meta == 2  # the metadata of one file per model
    lazy = ds.variables["entropy"]._data
    assert not isinstance(lazy, np.ndarray)
    # one model, one shard: only that task's file is read
    v = ds.entropy.sel(model="b").isel(prompt=[4, 5]).values
    assert v.dtype == np.float32 and v.shape == (2, 7)
    b_beta = [t["output"] for t in _manifest(sweep_out)["tasks"] if t["model"] == "b" and t["shard"] == "beta-0000"]
    assert opened[meta:] == b_beta
    # read once per (task, field): asking again opens nothing
    ds.entropy.sel(model="b").isel(prompt=[4, 5]).values
    assert len(opened) == meta + 1


def test_unfinished_task_is_masked(sweep_out):
    m = _manifest(sweep_out)
    t = next(t for t in m["tasks"] if t["model"] == "a" and t["shard"] == "alpha-0001")
    t2 = next(t for t in m["tasks"] if t["model"] == "b" and t["shard"] == "beta-0000")
    hidden = t["output"] + ".away"
    journal = t2["output"] + ".journal"
    os.rename(t["output"], hidden)
    os.makedirs(journal)  # a result file with its journal beside it is not complete
    try:
        ds = logitlens.open_sweep(sweep_out)
        done = ds.done.values
        exp = np.ones((2, 6), bool)
        exp[0, 2:4] = False
        exp[1, 4:6] = False
        np.testing.assert_array_equal(done, exp)
        assert not bool(ds.task_done.sel(model="a", shard="alpha-0001"))
        assert str(ds.task_state.sel(model="a", shard="alpha-0001").values) != "done"
        for name in ("entropy", "target_probs", "top1_probs"):
            v = ds[name].values
            assert v.dtype == np.float32 and np.isnan(v[~done]).all() and not np.isnan(v[done][..., 0]).all()
        for name in ("target_ranks", "top1_ids", "tokens"):
            v = ds[name].values
            assert v.dtype == np.int32 and (v[~done] == -1).all()
        assert not ds.valid.values[~done].any() and ds.valid.values[done].all()
        # the masked mean skips them
        mean = ds.entropy.where(ds.done).mean("prompt")
        assert not np.isnan(mean.sel(point="embed")).any()
        runs = ds.sweep.runs()
        assert sorted(runs) == sorted((x["model"], x["shard"]) for x in m["tasks"]
                                      if x["id"] not in (t["id"], t2["id"]))
        for r in runs.values():
            r.close()
    finally:
        os.rename(hidden, t["output"])
        shutil.rmtree(journal)


def test_runs_give_token_level_data(sweep_out):
    ds = logitlens.open_sweep(sweep_out)
    runs = ds.sel(model="b").sweep.runs()
    assert sorted(runs) == [("b", "alpha-0000"), ("b", "alpha-0001"), ("b", "beta-0000")]
    try:
        r = runs[("b", "beta-0000")]
        p = r.prompt(-1)
        np.testing.assert_array_equal(p.entropy[:, -1], ds.entropy.sel(model="b").isel(prompt=5).values)
    finally:
        for r in runs.values():
            r.close()
    with ds.sweep.run("a", "alpha-0000") as r:
        assert len(r) == SHARD


def test_not_a_sweep(tmp_path):
    (tmp_path / "sweep.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a logitlens sweep"):
        logitlens.open_sweep(tmp_path)


def _png_size(path):
    import struct

    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_plot_of_a_sweep(sweep_out, tmp_path):
    """`logitlens-plot SWEEPDIR` (and `logitlens plot SWEEPDIR`, which runs it) draws every model's
    trajectories against depth on one figure."""
    import shutil
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep.png"
    r = subprocess.run([sys.executable, "-m", "logitlens", sweep_out, "--out", str(out), "--value", "entropy"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    w, h = _png_size(out)
    assert 300 <= w <= 1600 and 200 <= h <= 1200, (w, h)
    r = subprocess.run([sys.executable, "-m", "logitlens", sweep_out, "--out", str(tmp_path / "x.html")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "a sweep is drawn as an image" in r.stderr, r.stderr
    # the engine's own `plot` command runs the package's logitlens-plot from PATH
    bindir = os.path.dirname(sys.executable)
    if not shutil.which("logitlens-plot", path=bindir):
        pytest.skip("logitlens-plot is not installed next to this Python (make test-py installs the package)")
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    out2 = tmp_path / "via-engine.png"
    r = subprocess.run([os.environ["LOGITLENS_BIN"], "plot", sweep_out, "--out", str(out2)], capture_output=True,
                       text=True, env=env)
    assert r.returncode == 0 and out2.exists(), r.stderr
    r = subprocess.run([os.environ["LOGITLENS_BIN"], "plot", sweep_out], capture_output=True, text=True,
                       env=dict(os.environ, PATH="/nonexistent"))
    assert r.returncode == 4 and "pip install tools/python" in r.stderr, r.stderr
