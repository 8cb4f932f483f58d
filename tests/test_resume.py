"""Runs that survive: every committed batch is in OUT.h5.journal, and `run --resume` continues after a kill -9
(before the first commit, mid-file, after the last batch), a Ctrl-C in the middle of one long batch, or a
checkpoint request (SIGUSR1), ending with a file identical to an uninterrupted run: every dataset bit for
bit (CPU) and every attribute, the start time and command line included (they are the first attempt's).
A resume against another model, prompt file or options is refused; --resume of a finished run does nothing;
a journal write that fails keeps the batches committed before it."""
import os
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest

from conftest import make_prompts, write_jsonl

MODEL = dict(arch="llama", layers=3, d_model=48, heads=4, kv_heads=2, ffn=96, vocab=397, ctx=64, dtype="f32")
ARGS = ["--backend", "cpu", "--threads", "1", "--batch-tokens", "24", "--points", "embed,mid,post", "--topk", "5",
        "--save-probs", "last", "--save-hidden", "--quiet"]


def run(ll, model, prompts, out, *extra, env=None, timeout=120):
    cmd = [ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out)] + ARGS + list(extra)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, **(env or {})))
    except subprocess.TimeoutExpired:
        pytest.fail("run hung: " + " ".join(cmd))


def assert_identical(a, b):
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa.keys()) == sorted(fb.keys())
        for k in fa.keys():
            x, y = fa[k], fb[k]
            if not isinstance(x, h5py.Dataset):
                continue
            assert x.shape == y.shape and x.dtype == y.dtype, k
            vx, vy = x[()], y[()]
            if x.dtype.kind == "f":
                assert np.array_equal(vx.view(np.uint8), vy.view(np.uint8)), k  # bits, NaNs included
            elif h5py.check_vlen_dtype(x.dtype) is not None and x.dtype.kind == "O":
                assert [bytes(np.asarray(e).tobytes()) if not isinstance(e, (bytes, str)) else e for e in vx] == \
                    [bytes(np.asarray(e).tobytes()) if not isinstance(e, (bytes, str)) else e for e in vy], k
            else:
                assert np.array_equal(vx, vy), k
        assert dict(fa.attrs.items()).keys() == dict(fb.attrs.items()).keys()
        for k, v in fa.attrs.items():
            if k in ("created", "command_line"):  # a separate run; see first_attempt_recorded
                continue
            assert np.array_equal(np.asarray(v), np.asarray(fb.attrs[k])), k


def first_attempt_recorded(out):
    """A resumed file records the first attempt's command line (and start), not the resume's."""
    with h5py.File(out, "r") as f:
        cl = f.attrs["command_line"]
        cl = cl.decode() if isinstance(cl, bytes) else str(cl)
        assert "--resume" not in cl and cl.split()[1] == "run", cl


@pytest.fixture(scope="module")
def setup(ll, tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    model = ll.synth(**MODEL)
    prompts, answers = make_prompts(MODEL["vocab"], seed=9, lengths=(5, 9, 13, 2, 20, 7, 11, 3, 16, 8))
    pf = d / "p.jsonl"
    write_jsonl(pf, prompts, answers)
    ref = d / "ref.h5"
    p = run(ll, model, pf, ref)
    assert p.returncode == 0, p.stderr
    return model, pf, ref


def journal_batches(out):
    j = str(out) + ".journal"
    return sorted(f for f in os.listdir(j) if f.startswith("batch-")) if os.path.isdir(j) else None


@pytest.mark.parametrize("after", [0, 2, 4])  # 4 = every batch committed, the file not finished
def test_resume_after_kill_is_identical(ll, setup, tmp_path, after):
    model, pf, ref = setup
    out = tmp_path / "o.h5"
    env = {"LOGITLENS_TEST_FAULT_RANK": "0", "LOGITLENS_TEST_FAULT": "kill", "LOGITLENS_TEST_FAULT_AFTER": str(after)}
    p = run(ll, model, pf, out, env=env)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr)
    assert not out.exists()
    assert len(journal_batches(out)) == after
    # a plain run refuses to throw the committed batches away
    p = run(ll, model, pf, out)
    assert p.returncode == 2 and "continue it with --resume" in p.stderr, p.stderr
    p = run(ll, model, pf, out, "--resume")
    assert p.returncode == 0, p.stderr
    assert journal_batches(out) is None  # the journal is gone with the file complete
    assert sorted(x.name for x in tmp_path.iterdir()) == ["o.h5"], list(tmp_path.iterdir())  # stale temporary removed
    assert_identical(ref, out)
    first_attempt_recorded(out)
    p = run(ll, model, pf, out, "--resume")
    assert p.returncode == 0 and p.stderr == "", p.stderr  # nothing to do (quiet)


def test_resume_refuses_another_run(ll, setup, tmp_path):
    model, pf, ref = setup
    out = tmp_path / "o.h5"
    env = {"LOGITLENS_TEST_FAULT_RANK": "0", "LOGITLENS_TEST_FAULT": "kill", "LOGITLENS_TEST_FAULT_AFTER": "1"}
    assert run(ll, model, pf, out, env=env).returncode == -signal.SIGKILL
    other_model = ll.synth(**dict(MODEL, seed=2))
    p = run(ll, other_model, pf, out, "--resume")
    assert p.returncode == 2 and "was written by a different run (weights_sample_sha256" in p.stderr, p.stderr
    pf2 = tmp_path / "p2.jsonl"
    pf2.write_text(pf.read_text().replace("[", "[1, ", 1))
    p = run(ll, model, pf2, out, "--resume")
    assert p.returncode == 2 and "(prompts_sha256 is" in p.stderr, p.stderr
    p = run(ll, model, pf, out, "--resume", "--topk", "3")
    assert p.returncode == 2 and '(topk is 5 there and 3 here)' in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert len(journal_batches(out)) == 1  # untouched by the refusals
    p = run(ll, model, pf, out, "--resume")
    assert p.returncode == 0, p.stderr
    assert_identical(ref, out)


def test_ctrl_c_in_a_long_batch_stops_within_seconds(ll, tmp_path):
    """One prompt long enough that its single batch takes many seconds: SIGINT stops it between layers, at once;
    the resumed run equals an uninterrupted one."""
    model = ll.synth(arch="llama", layers=32, d_model=512, heads=8, kv_heads=2, ffn=2048, vocab=8000, ctx=4096,
                     dtype="bf16", tokenizer="none")
    prompts, _ = make_prompts(8000, seed=3, lengths=(40, 3000))
    pf = tmp_path / "p.jsonl"
    write_jsonl(pf, prompts)
    args = ["run", "--model", model, "--prompts", str(pf), "--backend", "cpu", "--threads", "2", "--batch-tokens", "3000",
            "--points", "post", "--topk", "3"]
    out = tmp_path / "o.h5"
    p = subprocess.Popen([ll.path] + args + ["--out", str(out)], stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, LOGITLENS_PROGRESS_DELAY="0"))
    # wait for the first batch (the short prompt) to be committed, then interrupt the long one
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60 and not (journal_batches(out) or []):
        time.sleep(0.05)
    assert journal_batches(out), "the first batch was never committed"
    time.sleep(1.0)
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        err = p.communicate(timeout=60)[1]
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail("SIGINT did not stop the run")
    stopped = time.monotonic() - sent
    assert p.returncode == 130, err
    assert stopped < 5, "took %.1f s to stop" % stopped
    assert "interrupted by signal 2 after 40 of 3040 tokens; 1 batches are committed" in err, err
    r = subprocess.run([ll.path] + args + ["--out", str(out), "--resume", "--quiet"], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref.h5"
    r = subprocess.run([ll.path] + args + ["--out", str(ref), "--quiet"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    with h5py.File(ref, "r") as a, h5py.File(out, "r") as b:
        for k in ("topk_ids", "topk_probs", "entropy", "kl_final", "target_ranks"):
            assert np.array_equal(a[k][()], b[k][()]), k


def test_checkpoint_on_sigusr1(ll, setup, tmp_path):
    """SIGUSR1 (Slurm's warning before the time limit): the batch in flight finishes and is committed, then the
    run exits 75; --resume finishes it identically."""
    model, pf, ref = setup
    out = tmp_path / "o.h5"
    p = subprocess.Popen([ll.path, "run", "--model", model, "--prompts", str(pf), "--out", str(out)] + ARGS,
                         stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, LOGITLENS_TEST_USR1_AFTER_BATCHES="2"))
    err = p.communicate(timeout=120)[1]
    assert p.returncode == 75, err
    assert "stopped at a checkpoint (SIGUSR1) after" in err and "3 batches are committed" in err, err
    assert len(journal_batches(out)) == 3
    r = run(ll, model, pf, out, "--resume")
    assert r.returncode == 0, r.stderr
    assert_identical(ref, out)


def test_failed_journal_write_keeps_committed_batches(ll, setup, tmp_path):
    model, pf, ref = setup
    out = tmp_path / "o.h5"
    p = run(ll, model, pf, out, env={"LOGITLENS_TEST_JOURNAL_FAIL_AT": "2"})
    assert p.returncode == 4, p.stderr
    msg = p.stderr.strip()
    assert len(msg.splitlines()) == 1, msg
    assert "No space left on device" in msg and "2 batches are committed" in msg, msg
    assert not out.exists() and len(journal_batches(out)) == 2
    p = run(ll, model, pf, out, "--resume")
    assert p.returncode == 0, p.stderr
    assert_identical(ref, out)


def test_ranks_resume_after_a_killed_rank(ll, setup, tmp_path):
    """Two CPU ranks (--tp 2): rank 1 killed mid-run; rank 0's journal lets two ranks resume, ending with the file
    an uninterrupted two-rank run writes."""
    from test_ranks import mpirun

    model, pf, _ = setup
    base = ["run", "--model", model, "--prompts", str(pf), "--tp", 2] + ARGS
    ref = tmp_path / "ref.h5"
    p = mpirun(ll, 2, base + ["--out", ref])
    assert p.returncode == 0, p.stderr
    out = tmp_path / "o.h5"
    env = {"LOGITLENS_TEST_FAULT_RANK": "1", "LOGITLENS_TEST_FAULT": "kill", "LOGITLENS_TEST_FAULT_AFTER": "2"}
    p = mpirun(ll, 2, base + ["--out", out], env=env)
    assert p.returncode != 0
    assert not out.exists() and len(journal_batches(out)) in (2, 3)
    p = mpirun(ll, 2, base + ["--out", out, "--resume"])
    assert p.returncode == 0, p.stderr
    assert journal_batches(out) is None
    assert_identical(ref, out)
