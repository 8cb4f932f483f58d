"""The memory plan: `inspect` prints it for both backends, and `run` refuses a model that does not fit
(required and available bytes in the message, exit 5, no output file) before loading any weights."""
import os
import re
import subprocess

from conftest import write_jsonl


def test_inspect_prints_the_plan(ll):
    model = ll.synth(arch="llama", layers=2, d_model=48, heads=4, kv_heads=2, vocab=300, ctx=32, tokenizer="none")
    r = ll.run(["inspect", model, "--batch-tokens", "256", "--points", "embed,mid,post"])
    assert r.rc == 0, r.describe()
    assert "architecture  llama" in r.stdout
    assert "4 query, 2 key/value" in r.stdout
    plan = re.findall(r"^  (cpu|cuda)\s+weights .* = ([0-9.]+) (KiB|MiB|GiB) (host|device) memory$", r.stdout, re.M)
    assert [p[0] for p in plan] == ["cpu", "cuda"], r.stdout
    # a bigger batch needs more memory
    r2 = ll.run(["inspect", model, "--batch-tokens", "4096", "--points", "embed,mid,post"])
    unit = {"KiB": 1, "MiB": 1024, "GiB": 1024 * 1024}
    small = float(plan[0][1]) * unit[plan[0][2]]
    big = re.search(r"^  cpu\s+weights .* = ([0-9.]+) (KiB|MiB|GiB) host", r2.stdout, re.M)
    assert float(big.group(1)) * unit[big.group(2)] > small


def test_run_refuses_a_model_that_does_not_fit(ll, tmp_path):
    model = ll.synth(arch="gpt2", layers=2, d_model=32, heads=2, vocab=300, ctx=32, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[1, 2, 3, 4]])
    out = tmp_path / "out.h5"
    env = dict(os.environ, LOGITLENS_MEMORY_LIMIT="100000")
    p = subprocess.run([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                        "--backend", "cpu"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 5, p.stderr
    msg = p.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "does not fit the cpu backend" in msg and "needs" in msg and "100000 bytes" in msg, msg
    assert not out.exists() and not any(tmp_path.glob("out.h5*")), list(tmp_path.iterdir())
    # the same run with the limit lifted succeeds
    env["LOGITLENS_MEMORY_LIMIT"] = str(1 << 40)
    p = subprocess.run([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                        "--backend", "cpu", "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert out.exists()


def _align(n):
    return (n + 255) // 256 * 256


def _cuda_lens_pass_scratch(R, d, V, k, budget):
    """docs/cuda.md's tiling and lens_pass scratch for a 16-bit unembedding (written out independently): row
    blocks of at most min((2^31 - 1) / d, B / min(V, 1024)) rows, equal in size, and tiles of B / rows
    columns (a multiple of 128 in [128, 4096], at most V), B = budget / 4 logits."""
    B = min(budget // 4, 2**31 - 1)
    cap = max(1, min((2**31 - 1) // d, B // min(V, 1024), R))
    blocks = -(-R // cap)
    rb = -(-R // blocks)
    vt = min(max(128, min(4096, (B // rb) // 128 * 128)), V)
    wcap = min(k, vt) if k > 32 else 0
    return _align(2 * R * d) + _align(20 * R) + _align(rb * vt * 4) + 2 * _align(rb * wcap * 4)


def test_cuda_plan_counts_the_lens_scratch(ll):
    """The CUDA plan's scratch is the largest request of the run's ops plus cuBLAS's 32 MiB workspace: here
    lens_pass over all 5 points x 65536 tokens (the rows' 16-bit copy alone is 320 MiB), for the default
    tile budget and for LL_CUDA_LENS_TILE_BYTES."""
    model = ll.synth(arch="llama", layers=2, d_model=512, heads=8, kv_heads=2, vocab=300, ctx=32, dtype="bf16",
                     tokenizer="none")
    R, d, V, k = 5 * 65536, 512, 300, 10
    for budget in (256 << 20, 64 << 20):
        env = dict(os.environ, LL_CUDA_LENS_TILE_BYTES=str(budget))
        p = subprocess.run([ll.path, "inspect", model, "--batch-tokens", "65536", "--points", "embed,mid,post"],
                           env=env, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        m = re.search(r"^  cuda\s+weights .* scratch ([0-9.]+) MiB = ", p.stdout, re.M)
        assert m, p.stdout
        want = (_cuda_lens_pass_scratch(R, d, V, k, budget) + (32 << 20)) / 2**20
        assert abs(float(m.group(1)) - want) < 0.01, (budget, m.group(1), want)
