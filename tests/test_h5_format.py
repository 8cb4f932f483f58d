"""The result-file format (docs/hdf5-format.md) as written by host/io/h5_writer.c, read with h5py, xarray
(h5netcdf) and `logitlens show`.

The files come from the C test program's --write mode (tests/c/test_h5_writer.c), which writes a
deterministic run over three batches of 2, 1 and 3 prompts. `expected()` recomputes every value from the
same formulas (small integers scaled by powers of two, so float32 comparisons are exact); keep it in step
with the gen_* functions there. tests/test_loader.py and tests/test_plot.py reuse the fixtures.
"""
import os
import re
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

P, K, D, V = 5, 4, 6, 50
POINTS = ["embed", "mid.0", "post.0", "mid.1", "post.1"]
LAYERS = [-1, 0, 0, 1, 1]
PROBS_VOCAB = [0, 3, 7, 11, 49]
PROMPT_LEN = [3, 5, 17, 1, 4, 2]
SPECIAL_VOCAB = ["<|endoftext|>", " Paris", "\n", "été", "\\xe2", "it's", '\t"q"', " the"]
DOC = Path(__file__).resolve().parent.parent / "docs" / "hdf5-format.md"


def _bin():
    b = os.environ.get("LOGITLENS_BIN")
    if not b:
        pytest.skip("LOGITLENS_BIN is not set (run through `make test-py`)")
    return Path(b)


@pytest.fixture(scope="session")
def logitlens_bin():
    return _bin()


@pytest.fixture(scope="session")
def writer_bin():
    w = _bin().parent / "tests" / "test_h5_writer"
    if not w.exists():
        pytest.fail(f"{w} is missing: build the C tests first (make {w.parent.parent.name}/tests/test_h5_writer)")
    return w


def _write(writer_bin, path, *flags):
    r = subprocess.run([str(writer_bin), "--write", str(path), *flags], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return path


@pytest.fixture(scope="session")
def run_file(writer_bin, tmp_path_factory):
    """The full run: vocab, saved probability rows and hidden states."""
    return _write(writer_bin, tmp_path_factory.mktemp("h5") / "run.h5")


@pytest.fixture(scope="session")
def bare_file(writer_bin, tmp_path_factory):
    """No tokenizer vocabulary, no --save-probs, no --save-hidden."""
    return _write(writer_bin, tmp_path_factory.mktemp("h5") / "bare.h5", "--no-vocab", "--no-extras")


def vocab():
    return [SPECIAL_VOCAB[i] if i < len(SPECIAL_VOCAB) else f" w{i}" for i in range(V)]


def expected():
    """Every dataset of the full run, in file layout ([token, point, ...])."""
    lens = np.array(PROMPT_LEN)
    n = int(lens.sum())
    g = np.arange(n)
    offsets = np.concatenate([[0], np.cumsum(lens)])
    tprompt = np.repeat(np.arange(len(lens)), lens)
    tpos = g - offsets[tprompt]
    tokens = (g * 7 + 3) % V
    last = tpos == lens[tprompt] - 1
    target = np.where(last, np.where(tprompt % 2 == 1, 1, -1), (np.minimum(g + 1, n - 1) * 7 + 3) % V)
    gg, pp, jj = np.meshgrid(g, np.arange(P), np.arange(K), indexing="ij")
    g2, p2 = np.meshgrid(g, np.arange(P), indexing="ij")
    has = (target >= 0)[:, None]
    f32 = np.float32
    rows = [int(offsets[i] + j) for i in range(len(lens)) for j in range(lens[i])
            if j == lens[i] - 1 or (j == 0 and lens[i] > 4)]
    r3, p3, c3 = np.meshgrid(np.array(rows), np.arange(P), np.arange(len(PROBS_VOCAB)), indexing="ij")
    h_g, h_p, h_d = np.meshgrid(g, np.arange(P), np.arange(D), indexing="ij")
    return {
        "tokens": tokens.astype(np.int32),
        "token_prompt": tprompt.astype(np.int32),
        "token_position": tpos.astype(np.int32),
        "prompt_offsets": offsets.astype(np.int64),
        "prompts": [f"prompt {i}: café — {PROMPT_LEN[i]} tokens" for i in range(len(lens))],
        "prompt_targets": [" Paris" if i % 2 else "" for i in range(len(lens))],
        "points": POINTS,
        "point_layers": np.array(LAYERS, np.int32),
        "topk_ids": ((gg * 11 + pp * 5 + jj * 3 + 1) % V).astype(np.int32),
        "topk_probs": ((gg * 13 + pp * 7) % 97 + 1).astype(f32) / (2.0 ** (jj + 7)).astype(f32),
        "entropy": ((g2 * 3 + p2) % 40).astype(f32) / f32(8),
        "kl_final": ((g2 + p2 * 5) % 30).astype(f32) / f32(16),
        "target_ids": target.astype(np.int32),
        "target_probs": np.where(has, ((g2 * 5 + p2 * 3) % 64).astype(f32) / f32(64), np.nan).astype(f32),
        "target_logprobs": np.where(has, -((g2 + p2) % 20).astype(f32) / f32(4), np.nan).astype(f32),
        "target_ranks": np.where(has, (g2 * 3 + p2 * 2) % 50, -1).astype(np.int32),
        "probs": (0x3000 + (r3 * 5 + p3 * 3 + c3 * 7) % 256).astype(np.uint16).view(np.float16),
        "probs_token_index": np.array(rows, np.int64),
        "probs_vocab_index": np.array(PROBS_VOCAB, np.int32),
        "hidden": ((h_g * 100 + h_p * 10 + h_d) / 4.0).astype(f32),
        "vocab": vocab(),
    }


# Axes of every dataset, from the format document's table (parsed, so the test follows the contract).
def doc_datasets():
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \| \[([^\]]*)\] \|", DOC.read_text(), re.M)
    return {name: [a.strip() for a in axes.split(",")] for name, _, axes in rows}


def read_all(f, name):
    ds = f[name]
    if ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype):
        return list(ds.asstr()[()])
    return ds[()]


def test_datasets_hold_what_was_written(run_file):
    exp = expected()
    with h5py.File(run_file, "r") as f:
        for name, want in exp.items():
            got = read_all(f, name)
            if isinstance(want, list):
                assert got == want, name
            else:
                assert got.dtype == want.dtype, f"{name}: dtype {got.dtype}, expected {want.dtype}"
                np.testing.assert_array_equal(got, want, err_msg=name)
        vb = f["vocab_bytes"][()]
        assert bytes(vb[1]) == b" Paris" and bytes(vb[4]) == b"\xe2" and bytes(vb[3]) == "été".encode()


def test_every_documented_dataset_and_axis(run_file):
    docs = doc_datasets()
    assert {"tokens", "topk_ids", "probs", "hidden", "vocab_bytes"} <= set(docs)
    with h5py.File(run_file, "r") as f:
        for name, axes in docs.items():
            assert name in f, f"documented dataset '{name}' missing"
            ds = f[name]
            labels = [d.label for d in ds.dims]
            assert labels == axes, f"{name}: axis labels {labels}, documented {axes}"
            for a, dim in enumerate(ds.dims):
                scales = list(dim.keys())
                assert scales == [axes[a]], f"{name} axis {a}: scales {scales}"
                scale = dim[0]
                assert scale.dtype == np.int64
                np.testing.assert_array_equal(scale[()], np.arange(ds.shape[a]))


def test_root_attributes(run_file):
    text = DOC.read_text()
    section = text.split("## Root attributes")[1].split("\n## ")[0]
    rows = re.findall(r"^\| ([^|]+) \|[^|]*\|([^\n]*)\|$", section, re.M)
    # attributes documented as present only in some files (GGUF models, an unusable tokenizer)
    conditional = {n for cell, meaning in rows for n in re.findall(r"`(\w+)`", cell) if " only" in meaning}
    names = [n for cell, _ in rows for n in re.findall(r"`(\w+)`", cell)]
    assert {"tokenizer_error", "gguf_files", "gguf_header_sha256"} <= conditional, conditional
    with h5py.File(run_file, "r") as f:
        a = f.attrs
        for n in names:
            assert n in a or n in conditional, f"documented attribute '{n}' missing"
        for n in conditional:
            assert n not in a, f"attribute '{n}' of other kinds of runs written for a safetensors model"
        assert a["source_format"] == "safetensors" and a["tokenizer"] in ("tokenizer.json", "none")
        assert re.fullmatch(r"(F32|F16|BF16) x\d+", a["storage_types"]), a["storage_types"]
        assert a["format"] == "logitlens.lens" and a["format_version"] == 1
        assert a["format_version"].dtype == np.int32
        for n in ("n_layers", "d_model", "vocab_size", "topk"):
            assert a[n].dtype == np.int64
        assert (a["d_model"], a["vocab_size"], a["topk"]) == (D, V, K)
        assert list(a["safetensors_files"]) == ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
        assert a["architecture"] == "gpt2" and a["created"] == "2026-01-02T03:04:05Z"


def test_storage_layout(run_file):
    with h5py.File(run_file, "r") as f:
        for name in ("tokens", "topk_ids", "topk_probs", "entropy", "target_ranks", "hidden", "probs"):
            ds = f[name]
            assert ds.maxshape[0] is None, f"{name} is not extendible along its first axis"
            assert ds.chunks is not None and ds.chunks[0] >= 1
            assert ds.compression == "gzip" and ds.compression_opts == 4 and ds.shuffle, name
            assert np.prod(ds.chunks) * ds.dtype.itemsize <= 1 << 20, f"{name}: chunk {ds.chunks} over 1 MiB"


def test_optional_datasets_absent(bare_file):
    with h5py.File(bare_file, "r") as f:
        for name in ("vocab", "vocab_bytes", "probs", "probs_token_index", "probs_vocab_index", "hidden",
                     "vocab_id", "probs_row", "hidden_dim"):
            assert name not in f, name
        np.testing.assert_array_equal(f["topk_ids"][()], expected()["topk_ids"])


def test_xarray_named_dimensions(run_file):
    xr = pytest.importorskip("xarray")
    docs = doc_datasets()
    with xr.open_dataset(run_file, engine="h5netcdf") as ds:
        for name, axes in docs.items():
            assert list(ds[name].dims) == axes, name
        np.testing.assert_array_equal(ds["topk_probs"].values, expected()["topk_probs"])
        assert list(ds["points"].values) == POINTS
        assert ds.attrs["format"] == "logitlens.lens"


# ---- logitlens show ---------------------------------------------------------------------------------

def show_escape(s, quote=True):
    """How show prints a token string (host/cli/cli_show.c, escape_one)."""
    out = []
    for ch in s:
        if ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif quote and ch == "'":
            out.append("\\'")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def show(logitlens_bin, *args):
    return subprocess.run([str(logitlens_bin), "show", *map(str, args)], capture_output=True, text=True)


QUOTED = r"'((?:[^'\\]|\\.)*)'"
TABLE_LINE = re.compile(rf"^(\S+)((?:\s+{QUOTED}\s+[0-9.]+)+)\s+H=(\S+)\s+KL=(\S+)"
                        rf"(?:\s+target {QUOTED} p=(\S+) rank=(-?\d+))?$")


def parse_table(out):
    rows = {}
    for line in out.splitlines():
        m = TABLE_LINE.match(line)
        if m and m.group(1) in POINTS:
            pairs = re.findall(rf"{QUOTED}\s+([0-9.]+)", m.group(2))
            rows[m.group(1)] = dict(top=pairs, H=float(m.group(4)), KL=float(m.group(5)),
                                    target=m.group(6), p=m.group(7), rank=m.group(8))
    return rows


@pytest.mark.parametrize("prompt,position", [(0, None), (1, 0), (2, -1), (2, 7), (3, 0), (5, -2)])
def test_show_table_agrees_with_file(logitlens_bin, run_file, prompt, position):
    exp = expected()
    voc = vocab()
    args = [run_file, "--prompt", prompt] + ([] if position is None else ["--position", position])
    r = show(logitlens_bin, *args)
    assert r.returncode == 0, r.stderr
    rows = parse_table(r.stdout)
    assert list(rows) == POINTS, r.stdout
    off = exp["prompt_offsets"][prompt]
    j = (PROMPT_LEN[prompt] - 1) if position is None else position % PROMPT_LEN[prompt]
    g = off + j
    assert f"position {j} " in r.stdout
    for p, name in enumerate(POINTS):
        row = rows[name]
        assert row["top"] == [(show_escape(voc[exp["topk_ids"][g, p, 0]]), f"{exp['topk_probs'][g, p, 0]:.3f}")]
        assert row["H"] == pytest.approx(exp["entropy"][g, p], abs=0.006)
        assert row["KL"] == pytest.approx(exp["kl_final"][g, p], abs=0.006)
        t = exp["target_ids"][g]
        if t < 0:
            assert row["target"] is None
        else:
            assert row["target"] == show_escape(voc[t])
            assert row["p"] == f"{exp['target_probs'][g, p]:.3f}" and int(row["rank"]) == exp["target_ranks"][g, p]


def test_show_top_n(logitlens_bin, run_file):
    exp = expected()
    voc = vocab()
    r = show(logitlens_bin, run_file, "--prompt", 1, "--position", 0, "--top", 3)
    assert r.returncode == 0, r.stderr
    rows = parse_table(r.stdout)
    g = exp["prompt_offsets"][1]
    for p, name in enumerate(POINTS):
        want = [(show_escape(voc[exp["topk_ids"][g, p, k]]), f"{exp['topk_probs'][g, p, k]:.3f}") for k in range(3)]
        assert rows[name]["top"] == want


def grid_lines(out):
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("grid:"))
    return lines[start:]


def test_show_grid(logitlens_bin, run_file):
    exp = expected()
    voc = vocab()
    r = show(logitlens_bin, run_file, "--prompt", 2)
    assert r.returncode == 0, r.stderr
    grid = grid_lines(r.stdout)
    assert "positions 5..16 of 17" in grid[0]
    assert grid[1].split() == ["pos"] + [str(j) for j in range(5, 17)]
    assert grid[2].startswith("token")
    off = exp["prompt_offsets"][2]
    for p, name in enumerate(POINTS):
        line = grid[3 + p]
        assert line.startswith(name)
        cells = re.findall(r"(\.\d\d|1\.0)(?=\s|$)", line)
        assert len(cells) == 12
        for c, j in enumerate(range(5, 17)):
            prob = exp["topk_probs"][off + j, p, 0]
            assert cells[c] == ("1.0" if prob >= 0.995 else f".{int(round(prob * 100)):02d}")
        # Every top-1 string appears (cut to 8 columns, '~' marking a cut).
        for j in range(5, 17):
            s = show_escape(voc[exp["topk_ids"][off + j, p, 0]], quote=False)
            s = s if len(s) <= 8 else s[:7] + "~"
            assert s in line, (s, line)


def test_show_without_vocab_prints_ids(logitlens_bin, bare_file):
    exp = expected()
    r = show(logitlens_bin, bare_file, "--prompt", 4)
    assert r.returncode == 0, r.stderr
    rows = parse_table(r.stdout)
    g = exp["prompt_offsets"][5] - 1
    assert rows["embed"]["top"][0][0] == f"#{exp['topk_ids'][g, 0, 0]}"


def test_show_errors(logitlens_bin, run_file, tmp_path):
    def err(args, code, *needles):
        r = show(logitlens_bin, *args)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1, r.stderr
        for n in needles:
            assert n in lines[0], (n, lines[0])
        assert r.stdout == ""

    err([tmp_path / "missing.h5"], 4, "missing.h5", "No such file")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    err([text], 3, "not a logitlens result file")
    plain = tmp_path / "plain.h5"
    with h5py.File(plain, "w") as f:
        f["x"] = np.arange(3)
    err([plain], 3, "not a logitlens result file", "'format'")
    newer = tmp_path / "newer.h5"
    with h5py.File(newer, "w") as f:
        f.attrs["format"] = "logitlens.lens"
        f.attrs["format_version"] = np.int32(2)
    err([newer], 3, "unsupported format_version 2")
    err([run_file, "--prompt", 6], 2, "--prompt 6", "6 prompts")
    err([run_file, "--prompt", 0, "--position", 3], 2, "--position 3", "-3..2")
    err([run_file, "--prompt", 0, "--position", -4], 2, "--position -4")
    err([run_file, "--top", 5], 2, "--top 5", "1..4")
    err([run_file, "--prompt", "x"], 2, "--prompt", "'x'")
    err([], 2, "FILE.h5")
    r = show(logitlens_bin, "--help")
    assert r.returncode == 0 and "--position" in r.stdout


def test_small_runs_make_small_files(ll, tmp_path):
    """Chunks are sized for what a dataset will hold: a 3-token run is a small file (it was 4.2 MB when the
    prompt strings took 2 MiB chunks each), and a 300-prompt run keeps every chunk within 1 MiB."""
    import h5py

    model = ll.synth(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, vocab=300, ctx=32, tokenizer="none")
    out = tmp_path / "s.h5"
    r = ll.run(["run", "--model", model, "--tokens", "1,2,3", "--out", str(out), "--backend", "cpu", "--quiet"])
    assert r.rc == 0, r.describe()
    assert out.stat().st_size < 128 * 1024, out.stat().st_size
    with h5py.File(out, "r") as f:
        for name in ("prompts", "prompt_targets", "tokens", "topk_ids"):
            assert f[name].chunks[0] <= 3, (name, f[name].chunks)
    big = tmp_path / "b.h5"
    r = ll.run(["run", "--model", model, "--out", str(big), "--backend", "cpu", "--quiet"] +
               [a for i in range(300) for a in ("--tokens", "%d,%d" % (i % 300, (i * 7) % 300))])
    assert r.rc == 0, r.describe()
    with h5py.File(big, "r") as f:
        assert f["prompts"].chunks[0] == 300 and f["tokens"].chunks[0] == 600, (f["prompts"].chunks, f["tokens"].chunks)
        for name, ds in f.items():
            if isinstance(ds, h5py.Dataset) and ds.chunks:
                assert np.prod(ds.chunks) * ds.dtype.itemsize <= 1 << 20, name


def test_plain_xarray_sees_point_names(ll, tmp_path):
    """Opened with plain xarray (h5netcdf), every dataset on the point axis carries the point names and layers
    as coordinates (the CF "coordinates" attribute), so a point can be selected by name."""
    import xarray as xr

    model = ll.synth(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, vocab=300, ctx=32, tokenizer="none")
    out = tmp_path / "x.h5"
    r = ll.run(["run", "--model", model, "--tokens", "1,2,3,4", "--out", str(out), "--backend", "cpu", "--quiet",
                "--points", "embed,mid,post", "--save-hidden", "--save-probs", "last"])
    assert r.rc == 0, r.describe()
    with xr.open_dataset(out, engine="h5netcdf") as ds:
        assert list(ds["points"].values) == ["embed", "mid.0", "post.0", "mid.1", "post.1"]
        for name in ("topk_ids", "entropy", "kl_final", "target_ranks", "hidden", "probs"):
            assert "points" in ds[name].coords and "point_layers" in ds[name].coords, name
        sel = ds.set_xindex("points").sel(points="post.0")
        with h5py.File(out, "r") as f:
            np.testing.assert_array_equal(sel["entropy"].values, f["entropy"][:, 2])
            np.testing.assert_array_equal(sel["topk_ids"].values, f["topk_ids"][:, 2, :])
