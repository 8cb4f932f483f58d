"""A real one-node SLURM cluster (tests/slurm/cluster.py), started and stopped by this module: a job
array runs every task, a batch shell that traps USR1 requeues itself and runs a second time, and the
cluster stops without leaving a process behind. SLURM (Debian's slurm-wlm and munge,
tools/deps/debian-slurm.txt) and root are required: when either is missing, or the cluster will not
start, these tests fail with the reason (never skip). docs/slurm-tests.md.
"""

import os
import time

import pytest

from slurm.cluster import SlurmCluster, SlurmError

# Every wait is bounded; the whole module takes a few seconds when all goes well.
JOB_TIMEOUT = 30


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = SlurmCluster(tmp_path_factory.mktemp("slurm"), start_timeout=60)
    try:
        c.start()
    except SlurmError as e:
        pytest.fail("could not start the test SLURM cluster: %s" % e, pytrace=False)
    yield c
    c.stop()


def _script(path, body):
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + body)
    os.chmod(path, 0o755)
    return str(path)


def _wait_file(path, timeout, cluster, jobid):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            pytest.fail("%s did not appear within %ds; job %s is %s\n%s"
                        % (path, timeout, jobid, cluster.job_state(jobid), cluster.logs()), pytrace=False)
        time.sleep(0.1)


def _read(path):
    with open(path) as f:
        return f.read()


def test_job_array_runs_every_task(cluster, tmp_path):
    out = tmp_path / "array"
    out.mkdir()
    script = _script(tmp_path / "array.sh",
                     'echo "$SLURM_ARRAY_TASK_ID" > "%s/task-$SLURM_ARRAY_TASK_ID"\n' % out)
    job = cluster.sbatch(script, "--array=0-2", "--time=2", "--output=%s/slurm-%%A_%%a.out" % out)
    try:
        state = cluster.wait_job(job, timeout=JOB_TIMEOUT)
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    assert state == "COMPLETED", cluster.job_records(job)
    recs = cluster.job_records(job)
    assert sorted(r.get("ArrayTaskId") for r in recs) == ["0", "1", "2"], recs
    for i in range(3):
        assert _read(out / ("task-%d" % i)).strip() == str(i)


def test_usr1_trap_requeues_and_second_run_completes(cluster, tmp_path):
    # What `#SBATCH --signal=B:USR1@60` does before a time limit, sent at once: scancel --signal=USR1
    # --batch reaches the batch shell, whose trap requeues the job. The requeued job is held back ~2
    # minutes (cred_expire) unless released; its second run sees SLURM_RESTART_COUNT=1.
    out = tmp_path / "requeue"
    out.mkdir()
    script = _script(tmp_path / "requeue.sh", r'''out=%s
echo "run restart=${SLURM_RESTART_COUNT:-unset}" >> "$out/runs"
if [ "${SLURM_RESTART_COUNT:-0}" -ge 1 ]; then
    echo "second run" > "$out/second"
    exit 0
fi
on_usr1() {
    echo "USR1 received" >> "$out/trapped"
    scontrol requeue "$SLURM_JOB_ID" >> "$out/trapped" 2>&1
    echo "requeue exit $?" >> "$out/trapped"
    exit 0
}
trap on_usr1 USR1
touch "$out/ready"
sleep 60 &
wait $!
echo "not signaled" >> "$out/runs"
''' % out)
    job = cluster.sbatch(script, "--time=2", "--output=%s/slurm-%%j.out" % out, "--open-mode=append")
    try:
        _wait_file(out / "ready", JOB_TIMEOUT, cluster, job)
        assert cluster.job_state(job) == "RUNNING"
        cluster.scancel(job, signal="USR1", batch=True)
        _wait_file(out / "trapped", 10, cluster, job)
        cluster.release_now(job, timeout=JOB_TIMEOUT)
        state = cluster.wait_job(job, timeout=JOB_TIMEOUT)
    except SlurmError as e:
        pytest.fail(str(e), pytrace=False)
    trapped = _read(out / "trapped")
    assert "USR1 received" in trapped and "requeue exit 0" in trapped, trapped
    runs = _read(out / "runs").splitlines()
    assert runs == ["run restart=unset", "run restart=1"], runs
    assert _read(out / "second").strip() == "second run"
    assert state == "COMPLETED"
    (rec,) = cluster.job_records(job)
    assert rec.get("Restarts") == "1", rec


def test_cluster_stops_cleanly(cluster):
    # Last in this module: stops the shared cluster (the fixture's stop() is then a no-op).
    daemons = {name: p.pid for name, p in cluster.procs.items()}
    assert set(daemons) == {"munged", "slurmctld", "slurmd"}
    assert not [n for n in daemons if cluster.procs[n].poll() is not None], "a daemon died early"
    t = time.monotonic()
    cluster.stop()
    took = time.monotonic() - t
    assert cluster.leftover_processes() == []
    for name, p in cluster.procs.items():
        assert p.poll() is not None, "%s (pid %d) still running" % (name, p.pid)
    ping = cluster.run(["scontrol", "ping"], timeout=20, check=False)
    assert "UP" not in ping.stdout, ping.stdout
    assert took < 30, "stop took %.1fs" % took
