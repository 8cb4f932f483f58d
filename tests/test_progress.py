"""Progress on long runs: rate and ETA on stderr (here forced by LOGITLENS_PROGRESS_DELAY=0, one batch per
prompt), silent with --quiet, and silent for runs shorter than the delay."""
import os
import re
import subprocess

from conftest import write_jsonl


def _run(ll, model, prompts, out, extra_env, *args):
    env = dict(os.environ, **extra_env)
    return subprocess.run([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                           "--batch-tokens", "4", "--backend", "cpu", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_progress_lines_with_rate_and_eta(ll, tmp_path):
    model = ll.synth(arch="gpt2", layers=2, d_model=32, heads=2, vocab=300, ctx=32, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[1, 2, 3, 4]] * 6)
    p = _run(ll, model, prompts, tmp_path / "a.h5", {"LOGITLENS_PROGRESS_DELAY": "0"})
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if "tokens/s" in l]
    assert len(lines) >= 3, p.stderr
    assert re.search(r"\d+/24 tokens \(\d+%\)\s+[0-9.]+ tokens/s\s+elapsed \S+\s+ETA \S+", lines[0]), lines[0]
    assert re.search(r"24/24 tokens \(100%\) in \S+, [0-9.]+ tokens/s", lines[-1]), lines[-1]
    q = _run(ll, model, prompts, tmp_path / "b.h5", {"LOGITLENS_PROGRESS_DELAY": "0"}, "--quiet")
    assert q.returncode == 0 and q.stderr == "", q.stderr
    s = _run(ll, model, prompts, tmp_path / "c.h5", {"LOGITLENS_PROGRESS_DELAY": "1000"})
    assert s.returncode == 0 and "tokens/s" not in s.stderr, s.stderr


def test_summary_line_with_load_and_run_times(ll, tmp_path):
    """Unless --quiet, the run ends with one line: output, sizes, weight loading and compute times."""
    model = ll.synth(arch="gpt2", layers=2, d_model=32, heads=2, vocab=300, ctx=32, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[1, 2, 3, 4]] * 3)
    out = tmp_path / "s.h5"
    p = _run(ll, model, prompts, out, {"LOGITLENS_PROGRESS_DELAY": "1000"})
    assert p.returncode == 0, p.stderr
    last = p.stderr.splitlines()[-1]
    m = re.fullmatch(r"logitlens: wrote (\S+): 3 prompts, 12 tokens, (\d+) points on the cpu backend; weights ([0-9.]+) s, "
                     r"forward \+ lens ([0-9.]+) s \((\d+) tokens per second\); peak host memory (\d+) MiB", last)
    assert m, last
    assert m.group(1) == str(out) and int(m.group(2)) == 3  # embed + post.0 + post.1
    run_s, rate = float(m.group(4)), int(m.group(5))
    assert 1 <= int(m.group(6)) < 4096, last
    assert run_s > 0, last
    lo, hi = 12 / (run_s + 0.005), 12 / max(run_s - 0.005, 1e-9)  # run_s is printed to 0.01 s
    assert lo - 1 <= rate <= hi + 1, last


def test_progress_within_one_long_batch(ll, tmp_path):
    """One batch that takes a while reports progress before it ends (per layer and per lens chunk), not only
    when the batch is done."""
    model = ll.synth(arch="llama", layers=8, d_model=256, heads=4, kv_heads=2, ffn=1024, vocab=8000, ctx=2048,
                     tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [list(range(1, 1201))])
    env = {"LOGITLENS_PROGRESS_DELAY": "0"}
    p = _run(ll, model, prompts, tmp_path / "a.h5", env, "--batch-tokens", "4096", "--points", "embed,mid,post")
    assert p.returncode == 0, p.stderr
    partial = [l for l in p.stderr.splitlines() if re.search(r"\b(\d+)/1200 tokens", l) and "/1200 tokens (100%)" not in l]
    counts = {int(re.search(r"(\d+)/1200 tokens", l).group(1)) for l in partial}
    assert len(counts - {0}) >= 2, p.stderr  # several distinct points inside the one batch
