"""Several ranks (CPU ranks over MPI, started by mpirun) give the one-process result.

Every synthetic variant (fused and separate QKV, GQA with fewer KV heads than ranks, partial rotary, parallel
residual, biases, tied and untied, sharded index, f32/f16/bf16 storage, a sliding window) runs with --tp 2,
--tp 4, --pp 2 and --tp 2 --pp 2 and is compared with the one-process file: the same datasets and
attributes, floats within a reduction-order tolerance (the ranks sum partial matmuls and merge vocabulary
slices in another order than one process), top-k ids and target ranks identical except at near-ties. Then
the failure paths: a rank that fails or is killed ends every rank, with one message and no output file, and
a split that does not fit the launch or the model is refused before loading."""
import os
import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from conftest import make_prompts, read_result, write_jsonl

MPIRUN = shutil.which("mpirun")
LAUNCH_TIMEOUT = 180

# Head counts divide 4 so that every split applies; vocabularies are odd so slices are uneven.
VARIANTS = {
    "gpt2": dict(arch="gpt2", layers=3, d_model=48, heads=4, ffn=96, vocab=397, ctx=32, dtype="f32"),
    "gpt2-f16-shards": dict(arch="gpt2", layers=2, d_model=48, heads=4, ffn=64, vocab=301, ctx=24, dtype="f16",
                            shards=3),
    "neox-parallel": dict(arch="gpt_neox", layers=2, d_model=64, heads=4, ffn=128, vocab=397, ctx=32,
                          dtype="f32", parallel_residual=1, rotary_pct=0.5),
    "neox-sequential-bf16": dict(arch="gpt_neox", layers=3, d_model=64, heads=4, ffn=128, vocab=311, ctx=32,
                                 dtype="bf16", parallel_residual=0, rotary_pct=0.25, rope_theta=500),
    "llama-gqa8x2-bf16": dict(arch="llama", layers=2, d_model=44, heads=8, kv_heads=2, head_dim=12, ffn=88,
                              vocab=397, ctx=32, dtype="bf16", tied=0, rope_scaling="llama3", rope_style="v4",
                              rope_theta=500000),
    "llama-tied-kv1-shards": dict(arch="llama", layers=3, d_model=40, heads=4, kv_heads=1, ffn=80, vocab=389,
                                  ctx=32, dtype="f32", tied=1, shards=3),
    "llama-f16": dict(arch="llama", layers=2, d_model=64, heads=4, ffn=96, vocab=433, ctx=32, dtype="f16",
                      tied=0),
    "qwen2-bias-f16": dict(arch="qwen2", layers=2, d_model=56, heads=4, kv_heads=1, head_dim=14, ffn=112,
                           vocab=401, ctx=32, dtype="f16", qkv_bias=1, rope_theta=1000),
    "mistral-window": dict(arch="mistral", layers=3, d_model=64, heads=4, kv_heads=2, ffn=128, vocab=397,
                           ctx=32, dtype="f32", sliding_window=5),
}
SPLITS = [(2, 1), (4, 1), (1, 2), (2, 2)]
RUN_ARGS = ["--points", "embed,mid,post", "--topk", "5", "--save-probs", "all", "--save-hidden",
            "--backend", "cpu", "--threads", "1", "--batch-tokens", "24", "--quiet"]
FLOAT_DATASETS = ["entropy", "kl_final", "target_logprobs", "target_probs", "topk_probs", "hidden"]


def mpirun(ll, n, args, env=None, timeout=LAUNCH_TIMEOUT):
    """Runs n ranks of the engine under mpirun; a hang fails the test."""
    if not MPIRUN:
        pytest.fail("mpirun is missing: `make test` installs OpenMPI (tools/deps/debian-mpi.txt)")
    cmd = [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", str(n), ll.path] + [str(a) for a in args]
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        pytest.fail("ranks hung (no exit within %ds): %s" % (timeout, " ".join(cmd)))
    p.elapsed = time.monotonic() - t0
    return p


def prompts_file(ll, vocab):
    d = ll.tmpdir("ranks-prompts")
    prompts, answers = make_prompts(vocab, seed=5, lengths=(1, 7, 20, 3, 11, 2))
    path = os.path.join(d, "p.jsonl")
    write_jsonl(path, prompts, answers)
    return path


def near_tie_ok(ids_a, ids_b, probs_a, probs_b, tol):
    """Top-k lists that differ only where probabilities tie within tol (entries swap, or the k-th differs)."""
    bad = np.argwhere(ids_a != ids_b)
    for idx in bad:
        *row, j = idx
        pa, pb = probs_a[tuple(row)], probs_b[tuple(row)]
        # the set of ids above the near-tie must agree, and the tied values must be close
        if abs(float(pa[j]) - float(pb[j])) > tol:
            return False
        tied = np.abs(pa - pa[j]) <= tol
        if set(ids_a[tuple(row)][tied]) - set(ids_b[tuple(row)]) and j < len(pa) - 1:
            return False
    return True


def assert_same_result(one, many, label):
    a, b = read_result(one), read_result(many)
    assert sorted(k for k in a if k != "attrs") == sorted(k for k in b if k != "attrs"), label
    for name in a:
        if name in ("attrs",) or name in FLOAT_DATASETS or name in ("topk_ids", "target_ranks", "probs"):
            continue
        if isinstance(a[name], list):
            assert [np.asarray(x).tobytes() if not isinstance(x, str) else x for x in a[name]] == \
                [np.asarray(x).tobytes() if not isinstance(x, str) else x for x in b[name]], (label, name)
        else:
            assert np.array_equal(a[name], b[name]), (label, name)
    for name in FLOAT_DATASETS:
        x, y = a[name].astype(np.float64), b[name].astype(np.float64)
        assert x.shape == y.shape, (label, name)
        assert np.array_equal(np.isnan(x), np.isnan(y)), (label, name)
        m = ~np.isnan(x)
        err = np.abs(x[m] - y[m])
        bound = 2e-4 + 2e-4 * np.abs(x[m])
        assert np.all(err <= bound), "%s %s: max error %.3g" % (label, name, err.max())
    probs_a = a["probs"].astype(np.float64)
    probs_b = b["probs"].astype(np.float64)
    assert np.max(np.abs(probs_a - probs_b)) <= 1e-3, label  # float16 rows: a rounding step apart at most
    assert near_tie_ok(a["topk_ids"], b["topk_ids"], a["topk_probs"], b["topk_probs"], 1e-5), label
    ranks_differ = a["target_ranks"] != b["target_ranks"]
    assert ranks_differ.mean() <= 0.01, "%s: %d target ranks differ" % (label, ranks_differ.sum())
    assert np.all(np.abs(a["target_ranks"] - b["target_ranks"]) <= 1), label
    for k, v in a["attrs"].items():
        if k in ("command_line", "created", "tp", "pp", "world_size", "rank_devices"):
            continue
        assert str(b["attrs"][k]) == str(v), (label, k)
    return b["attrs"]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_splits_equal_one_process(ll, name):
    model = ll.synth(**VARIANTS[name])
    pf = prompts_file(ll, VARIANTS[name]["vocab"])
    d = ll.tmpdir("ranks-" + name)
    one = os.path.join(d, "one.h5")
    r = ll.run(["run", "--model", model, "--prompts", pf, "--out", one] + RUN_ARGS, timeout=120)
    assert r.rc == 0, r.describe()
    for tp, pp in SPLITS:
        out = os.path.join(d, "tp%d-pp%d.h5" % (tp, pp))
        p = mpirun(ll, tp * pp, ["run", "--model", model, "--prompts", pf, "--out", out, "--tp", tp, "--pp", pp]
                   + RUN_ARGS)
        label = "%s --tp %d --pp %d" % (name, tp, pp)
        assert p.returncode == 0, "%s\n%s" % (label, p.stderr[-3000:])
        attrs = assert_same_result(one, out, label)
        # the final point against itself: KL ~0 as in one process (u is renormalized across slices)
        kl_last = np.abs(read_result(out)["kl_final"][:, -1]).max()
        kl_one = np.abs(read_result(one)["kl_final"][:, -1]).max()
        assert kl_last <= max(4 * kl_one, 2e-6), "%s: final point's KL %.3g (one process %.3g)" % (label, kl_last, kl_one)
        assert (int(attrs["tp"]), int(attrs["pp"]), int(attrs["world_size"])) == (tp, pp, tp * pp), label
        devs = [str(x) for x in attrs["rank_devices"]]
        assert len(devs) == tp * pp and all(x.startswith("cpu on ") for x in devs), devs


def test_one_process_records_its_split(ll):
    model = ll.synth(**VARIANTS["gpt2"])
    out = os.path.join(ll.tmpdir("ranks-attrs"), "o.h5")
    r = ll.run(["run", "--model", model, "--tokens", "1,2,3", "--out", out, "--backend", "cpu", "--quiet"])
    assert r.rc == 0, r.describe()
    a = read_result(out)["attrs"]
    assert (int(a["tp"]), int(a["pp"]), int(a["world_size"])) == (1, 1, 1)
    assert [str(x) for x in a["rank_devices"]] == ["cpu on " + os.uname().nodename]


def peak_per_rank(stderr):
    m = re.search(r"peak host memory per rank ([\d, ]+) MiB", stderr)
    assert m, stderr
    return [int(x) for x in m.group(1).split(",")]


def test_each_rank_holds_its_share(ll):
    """Peak host memory: with --tp 2 each rank holds about half of the layers' weights (the embedding and
    the norms stay whole); with --pp 2 each stage about half of the layers."""
    if os.environ.get("LOGITLENS_DEVICE_CHECK") == "1":
        pytest.skip("the device check holds a second copy of each weight while uploading it; memory is measured "
                    "by the plain run of this suite")
    model = ll.synth(arch="llama", layers=6, d_model=768, heads=8, kv_heads=4, ffn=3072, vocab=1000, ctx=64,
                     dtype="bf16", tied=0)
    d = ll.tmpdir("ranks-mem")
    base = ["run", "--model", model, "--tokens", "1,2,3,4,5,6,7,8", "--backend", "cpu", "--threads", "1",
            "--topk", "3"]
    r = ll.run(base + ["--out", os.path.join(d, "one.h5")], timeout=120)
    assert r.rc == 0, r.describe()
    one = int(re.search(r"peak host memory (\d+) MiB", r.stderr).group(1))
    weights = 6 * (2 * 768 * 768 + 2 * 768 * 384 + 3 * 768 * 3072) * 4 / 2**20  # F32 on the CPU, MiB
    for tp, pp in ((2, 1), (1, 2)):
        p = mpirun(ll, tp * pp, base + ["--out", os.path.join(d, "s.h5"), "--tp", tp, "--pp", pp])
        assert p.returncode == 0, p.stderr[-3000:]
        peaks = peak_per_rank(p.stderr)
        assert len(peaks) == tp * pp
        # each rank saves at least 40% of the one-process layer weights
        for k in peaks:
            assert one - k >= 0.4 * weights, (tp, pp, one, peaks, weights)


def stderr_lines(p):
    return [ln for ln in p.stderr.splitlines() if ln.startswith("logitlens")]


@pytest.mark.parametrize("fault", ["error", "kill"])
def test_failing_rank_ends_every_rank(ll, fault):
    model = ll.synth(**VARIANTS["llama-f16"])
    pf = prompts_file(ll, VARIANTS["llama-f16"]["vocab"])
    d = ll.tmpdir("ranks-fault")
    out = os.path.join(d, "out.h5")
    env = {"LOGITLENS_TEST_FAULT_RANK": "1", "LOGITLENS_TEST_FAULT": fault, "LOGITLENS_TEST_FAULT_AFTER": "1"}
    p = mpirun(ll, 4, ["run", "--model", model, "--prompts", pf, "--out", out, "--tp", 2, "--pp", 2] + RUN_ARGS,
               env=env, timeout=120)
    assert p.returncode != 0, p.stderr
    assert p.elapsed < 60, "ranks took %.1fs to stop" % p.elapsed
    # neither the file nor its temporary; the batch committed before the fault stays in the journal (and the
    # batch in flight too when rank 0 committed it before the abort reached it)
    assert os.listdir(d) == ["out.h5.journal"], os.listdir(d)
    batches = sorted(f for f in os.listdir(os.path.join(d, "out.h5.journal")) if f.startswith("batch-"))
    assert batches in (["batch-000000.bin"], ["batch-000000.bin", "batch-000001.bin"]), batches
    if fault == "error":
        ours = stderr_lines(p)
        assert ours == ["logitlens run: rank 1 of 4: test fault on rank 1 after 1 batches (LOGITLENS_TEST_FAULT=error)"], \
            p.stderr


def test_rank_count_must_match_the_split(ll):
    model = ll.synth(**VARIANTS["gpt2"])
    d = ll.tmpdir("ranks-count")
    out = os.path.join(d, "o.h5")
    p = mpirun(ll, 3, ["run", "--model", model, "--tokens", "1,2", "--out", out, "--tp", 2, "--backend", "cpu"],
               timeout=60)
    assert p.returncode == 2, p.stderr
    assert stderr_lines(p) == ["logitlens run: rank 0 of 3: --tp 2 x --pp 1 = 2 ranks, but mpirun started 3 (rank 0); "
                               "give --tp and --pp whose product is the number of ranks"], p.stderr
    assert os.listdir(d) == []
    # one process asked for a split
    r = ll.run(["run", "--model", model, "--tokens", "1,2", "--out", out, "--tp", 2, "--pp", 2])
    assert r.rc == 2 and "needs 4 ranks but this is one process" in r.stderr, r.describe()
    assert os.listdir(d) == []


def test_split_must_fit_the_model(ll):
    model = ll.synth(**VARIANTS["gpt2"])  # 4 heads
    d = ll.tmpdir("ranks-heads")
    out = os.path.join(d, "o.h5")
    p = mpirun(ll, 3, ["run", "--model", model, "--tokens", "1,2", "--out", out, "--tp", 3, "--backend", "cpu"],
               timeout=60)
    assert p.returncode == 2, p.stderr
    assert stderr_lines(p) == ["logitlens run: rank 0 of 3: --tp 3 does not divide the 4 attention heads of this "
                               "gpt2 model"], p.stderr
    assert os.listdir(d) == []
    p = mpirun(ll, 4, ["run", "--model", model, "--tokens", "1,2", "--out", out, "--pp", 4, "--backend", "cpu"],
               timeout=60)
    assert p.returncode == 2 and "--pp 4 is more stages than the 3 layers" in p.stderr, p.stderr
    assert os.listdir(d) == []


def test_topk_wider_than_a_slice(ll):
    """--topk 10 over a 13-id vocabulary split 4 ways (slices of 3 and 4 ids): each slice gives all it has."""
    model = ll.synth(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, ffn=64, vocab=13, ctx=16)
    d = ll.tmpdir("ranks-narrow")
    args = ["run", "--model", model, "--tokens", "1,2,3,4,5,6", "--backend", "cpu", "--topk", 10, "--quiet",
            "--threads", 1]
    one, four = os.path.join(d, "one.h5"), os.path.join(d, "four.h5")
    r = ll.run(args + ["--out", one])
    assert r.rc == 0, r.describe()
    p = mpirun(ll, 4, args + ["--out", four, "--tp", 4])
    assert p.returncode == 0, p.stderr
    a, b = read_result(one), read_result(four)
    assert np.array_equal(a["topk_ids"], b["topk_ids"])
    assert np.allclose(a["topk_probs"], b["topk_probs"], atol=1e-6)
    assert np.array_equal(a["target_ranks"], b["target_ranks"])


# GGUF files split over ranks: quantized tensors dequantized then sliced, llama q/k rows put back in HF order
# per head before the heads are split, GPT-2's transposed [q|k|v] rows split per head.
GGUF_CASES = {
    "gpt2-d64.Q5_0": (dict(arch="gpt2", layers=2, d_model=64, heads=2, vocab=301, ctx=32, dtype="f32"), "Q5_0",
                      [(2, 1), (2, 2)]),
    "llama-k.Q4_K_M": (dict(arch="llama", layers=2, d_model=256, heads=4, kv_heads=2, ffn=512, vocab=300, ctx=32,
                            dtype="f32", tied=0, rope_scaling="llama3", rope_theta=500000),
                       {"*": "Q4_K", "attn_v": "Q6_K", "ffn_down": "Q6_K", "token_embd": "Q8_0"}, [(2, 2), (4, 1)]),
    "qwen2-d64-tied.Q8_0": (dict(arch="qwen2", layers=2, d_model=64, heads=4, kv_heads=2, ffn=128, vocab=301, ctx=32,
                                 dtype="f32", qkv_bias=1, tied=1), "Q8_0", [(4, 1), (1, 2)]),
}


@pytest.mark.parametrize("name", sorted(GGUF_CASES))
def test_gguf_splits_equal_one_process(ll, name):
    import gguf_convert as gc

    opts, types, splits = GGUF_CASES[name]
    hf = ll.synth(**opts)
    d = ll.tmpdir("ranks-gguf-" + name)
    path = os.path.join(d, "model.gguf")
    gc.convert(hf, path, types)
    pf = prompts_file(ll, opts["vocab"])
    one = os.path.join(d, "one.h5")
    r = ll.run(["run", "--model", path, "--prompts", pf, "--out", one] + RUN_ARGS, timeout=120)
    assert r.rc == 0, r.describe()
    for tp, pp in splits:
        out = os.path.join(d, "tp%d-pp%d.h5" % (tp, pp))
        p = mpirun(ll, tp * pp, ["run", "--model", path, "--prompts", pf, "--out", out, "--tp", tp, "--pp", pp]
                   + RUN_ARGS)
        assert p.returncode == 0, p.stderr[-3000:]
        assert_same_result(one, out, "%s --tp %d --pp %d" % (name, tp, pp))
