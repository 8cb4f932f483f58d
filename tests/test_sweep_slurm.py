"""`logitlens sweep` on a real one-node SLURM cluster (tests/slurm/cluster.py, docs/slurm-tests.md):

- a sweep submitted as a job array runs every task; one that fails (its shard changed after the plan) is
  reported failed by `sweep status` (task files and squeue) with the run's message, `sweep retry`
  resubmits it alone, and `sweep merge` then gives files whose datasets equal those of the same sweep run
  with `sweep run --local`;
- a task signalled with USR1 while it runs (`scancel --signal=USR1 --batch`, what `--signal=B:USR1@120`
  sends before a time limit) stops at a checkpoint (exit 75), is requeued by the batch shell, resumes
  from its journal when released, and the sweep ends with the file an uninterrupted run writes;
  `sweep status` reports running, then pending (requeued), then done.

SLURM and root are required: when the cluster cannot be started these tests fail with the reason (never
skip). "Equal" is bit for bit on every dataset (the CPU backend with one thread is deterministic); root
attributes are not compared (command_line, created and model_path differ by design: docs/sweeps.md).
"""

import json
import os
import re
import subprocess
import time

import numpy as np
import pytest

from conftest import TIME_SCALE, read_result, write_jsonl
from slurm.cluster import SlurmCluster, SlurmError

JOB_TIMEOUT = 90 * TIME_SCALE


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), start_timeout=60)
    try:
        c.start()
    except SlurmError as e:
        pytest.fail("could not start the test SLURM cluster: %s" % e, pytrace=False)
    yield c
    c.stop()


def _ll(ll, cluster, args, timeout=120):
    """The executable with the cluster's environment (sbatch, squeue and the jobs see our slurm.conf)."""
    cmd = [ll.path] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, env=cluster.env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout * TIME_SCALE)
    except subprocess.TimeoutExpired:
        pytest.fail("hung: %s" % " ".join(cmd))
    return p


def _ok(p):
    assert p.returncode == 0, "%s\nexit %d\nstdout:\n%s\nstderr:\n%s" % (" ".join(p.args), p.returncode, p.stdout,
                                                                      p.stderr)
    return p


def _status(ll, cluster, out):
    return json.loads(_ok(_ll(ll, cluster, ["sweep", "status", out, "--json"])).stdout)


def _sweep(out, model, prompts, shard, batch_tokens):
    return ("name: slurmtest\noutput: %s\nshard_size: %d\nmodels:\n"
            "  - {name: m, path: %s, backend: cpu, threads: 1, batch_tokens: %d}\n"
            "prompts:\n  - {name: set, files: %s}\n"
            "lens: {points: [embed, post], topk: 4, save_probs: last}\n"
            "slurm: {time: 10, cpus_per_task: 1, max_parallel: 2, extra: [\"--open-mode=append\"]}\n"
            % (out, shard, model, batch_tokens, prompts))


def _plan(ll, d, text):
    f = os.path.join(d, "sweep.yaml")
    with open(f, "w") as fh:
        fh.write(text)
    r = ll.run(["sweep", "plan", f], timeout=120)
    assert r.rc == 0, r.describe()


def _submit(ll, cluster, out):
    p = _ok(_ll(ll, cluster, ["sweep", "submit", out]))
    m = re.search(r"submitted job (\d+)", p.stdout)
    assert m, p.stdout
    with open(os.path.join(out, "submit.json")) as f:
        assert json.load(f)["submissions"][-1]["job_id"] == m.group(1)
    return m.group(1)


def _same_datasets(a_path, b_path):
    a, b = read_result(a_path), read_result(b_path)
    a.pop("attrs"), b.pop("attrs")
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, list):
            assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)), k
        elif getattr(x, "dtype", None) is not None and x.dtype.kind == "f":
            assert x.shape == y.shape and x.tobytes() == y.tobytes(), "%s differs" % k
        else:
            assert np.array_equal(x, y), "%s differs" % k


def _wait(what, cond, timeout, cluster, interval=0.05):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail("timed out waiting for %s\n%s" % (what, cluster.logs()), pytrace=False)
        time.sleep(interval)


def test_job_array_completes_retries_and_merges_like_local(ll, cluster):
    model = ll.synth(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, vocab=101, ctx=16, dtype="f32")
    d = ll.tmpdir("sweep-slurm-array")
    rng = np.random.default_rng(5)
    prompts = os.path.join(d, "p.jsonl")
    write_jsonl(prompts, [[int(t) for t in rng.integers(0, 100, size=5)] for _ in range(6)], [7, None] * 3)
    out_slurm, out_local = os.path.join(d, "slurm"), os.path.join(d, "local")
    _plan(ll, d, _sweep(out_slurm, model, prompts, 2, 10))
    _plan(ll, d, _sweep(out_local, model, prompts, 2, 10))
    # task 1 will fail: its shard now holds a prompt longer than the model's context (16), as if the file
    # had changed after the plan (which checks every prompt)
    shard = os.path.join(out_slurm, "prompts", "set-0001.jsonl")
    with open(shard) as f:
        good = f.read()
    write_jsonl(shard, [list(range(20)), [1, 2]])
    job = _submit(ll, cluster, out_slurm)
    seen = set()
    first = _status(ll, cluster, out_slurm)
    assert first["jobs"] == [job] and first["squeue"] is True
    assert all(t["state"] in ("pending", "running", "done", "failed") for t in first["task_states"]), first

    def settled(want_failed):
        st = _status(ll, cluster, out_slurm)
        for t in st["task_states"]:
            seen.add(t["state"])
        return [t["state"] for t in st["task_states"]] == ["done", "failed" if want_failed else "done", "done"]

    _wait("tasks 0 and 2 done, task 1 failed", lambda: settled(True), JOB_TIMEOUT, cluster, interval=0.2)
    try:
        assert cluster.wait_job(job, timeout=JOB_TIMEOUT) == "COMPLETED,FAILED"
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    st = _status(ll, cluster, out_slurm)
    failed = st["task_states"][1]
    assert failed["record"] == "failed" and failed["exit_code"] == 3, failed
    assert "logitlens run:" in failed["detail"] and "context" in failed["detail"], failed
    assert st["models"][0]["done"] == 2 and st["models"][0]["failed"] == 1, st
    text = _ok(_ll(ll, cluster, ["sweep", "status", out_slurm])).stdout
    assert "SLURM job %s (squeue answered)" % job in text and "task 1 (m set-0001)" in text, text
    for i in range(3):  # the batch shell's log of each array task, and the task's own log
        assert os.path.exists(os.path.join(out_slurm, "logs", "slurm-%s_%d.out" % (job, i)))
        with open(os.path.join(out_slurm, "logs", "task-%d.log" % i)) as f:
            log = f.read()
        assert ("(array %s_%d)" % (job, i)) in log and ("wrote" in log) == (i != 1), log
    # fixed: retry resubmits task 1 alone
    with open(shard, "w") as f:
        f.write(good)
    p = _ok(_ll(ll, cluster, ["sweep", "retry", out_slurm]))
    m = re.search(r"submitted job (\d+): 1 task \(--array=1\)", p.stdout)
    assert m, p.stdout
    retry_job = m.group(1)
    _wait("every task done", lambda: settled(False), JOB_TIMEOUT, cluster, interval=0.2)
    try:
        assert cluster.wait_job(retry_job, timeout=JOB_TIMEOUT) == "COMPLETED"
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    st = _status(ll, cluster, out_slurm)
    assert st["jobs"] == [job, retry_job]
    assert st["models"][0]["done"] == 3 and st["models"][0]["prompts_done"] == 6, st
    assert [t["attempts"] for t in st["task_states"]] == [1, 2, 1], st
    assert all(t["record"] == "done" for t in st["task_states"]), st
    assert seen <= {"pending", "running", "done", "failed"}, seen
    _ok(_ll(ll, cluster, ["sweep", "merge", out_slurm]))
    _ok(_ll(ll, cluster, ["sweep", "run", "--local", out_local, "-j", "2"]))
    _ok(_ll(ll, cluster, ["sweep", "merge", out_local]))
    _same_datasets(os.path.join(out_slurm, "merged", "m.h5"), os.path.join(out_local, "merged", "m.h5"))
    # nothing left to submit
    p = _ok(_ll(ll, cluster, ["sweep", "submit", out_slurm]))
    assert "nothing to submit" in p.stdout, p.stdout


def test_usr1_checkpoint_requeue_resume(ll, cluster):
    # A task long enough to be signalled mid-run: 200 one-prompt batches (~30 ms each here).
    model = ll.synth(arch="gpt2", layers=4, d_model=256, heads=4, vocab=4096, ctx=128, dtype="f32")
    d = ll.tmpdir("sweep-slurm-usr1")
    rng = np.random.default_rng(6)
    prompts = os.path.join(d, "p.jsonl")
    write_jsonl(prompts, [[int(t) for t in rng.integers(0, 4000, size=64)] for _ in range(200)])
    out = os.path.join(d, "out")
    _plan(ll, d, _sweep(out, model, prompts, 200, 64))
    with open(os.path.join(out, "sweep.json")) as f:
        task = json.load(f)["tasks"][0]
    progress = task["output"] + ".journal/progress.json"
    job = _submit(ll, cluster, out)
    element = "%s_0" % job
    states = []

    def note():
        st = _status(ll, cluster, out)["task_states"][0]
        if not states or states[-1] != st["state"]:
            states.append(st["state"])
        return st

    def running_with_progress():
        st = note()
        assert st["state"] != "done", "the task finished before it could be signalled: make it longer"
        return st["state"] == "running" and os.path.exists(progress)

    _wait("the task to commit its first batch", running_with_progress, JOB_TIMEOUT, cluster)
    cluster.scancel(element, signal="USR1", batch=True)
    record = os.path.join(out, "tasks", "0.json")

    def checkpointed():
        with open(record) as f:
            return json.load(f)["state"] == "checkpointed"

    _wait("the task to stop at a checkpoint", checkpointed, 60 * TIME_SCALE, cluster)
    with open(record) as f:
        rec = json.load(f)
    assert rec["exit_code"] == 75, rec
    with open(progress) as f:
        done_at_stop = json.load(f)
    assert 0 < done_at_stop["prompts_done"] < 200, done_at_stop
    assert not os.path.exists(task["output"])
    _wait("the requeued task to be pending", lambda: note()["state"] == "pending", 30 * TIME_SCALE, cluster)
    st = _status(ll, cluster, out)["task_states"][0]
    assert st["queue"] == "PENDING" and "requeued" in st["detail"], st
    try:
        cluster.release_now(element, timeout=60)
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    _wait("the resumed task to finish", lambda: note()["state"] == "done", JOB_TIMEOUT, cluster, interval=0.1)
    try:
        assert cluster.wait_job(job, timeout=JOB_TIMEOUT) == "COMPLETED"
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    # states seen in order: running before the signal, pending while requeued, then done
    it = iter(states)
    assert all(s in it for s in ("running", "pending", "done")), states
    assert "failed" not in states, states
    final = _status(ll, cluster, out)["task_states"][0]
    assert final["attempts"] == 2 and final["record"] == "done", final
    with open(task["log"]) as f:
        log = f.read()
    assert log.count("\n== ") + log.startswith("== ") == 2 and "restart 1" in log, log
    assert not os.path.exists(task["output"] + ".journal")
    _ok(_ll(ll, cluster, ["sweep", "merge", out]))
    # the same run, never interrupted
    single = os.path.join(d, "single.h5")
    r = ll.run(task["argv"][1:task["argv"].index("--out") + 1] + [single] +
               [a for a in task["argv"][task["argv"].index("--out") + 2:] if a != "--resume"] + ["--quiet"],
               timeout=300)
    assert r.rc == 0, r.describe()
    _same_datasets(os.path.join(out, "merged", "m.h5"), single)
