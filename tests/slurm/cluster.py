"""A real one-node SLURM cluster on 127.0.0.1 that a test starts and stops itself.

    with SlurmCluster(workdir) as c:          # munged, slurmctld and slurmd, all under workdir
        job = c.sbatch("job.sh", "--array=0-2")
        assert c.wait_job(job, timeout=30) == "COMPLETED"

Nothing is assumed to be running and nothing system-wide is touched: the munge key, munged's socket,
slurm.conf, the state, spool, log and pid files all live under `workdir`, on free TCP ports, and every
client call gets SLURM_CONF pointing at our slurm.conf (use `env()` for your own subprocesses). Needs
root (slurmd must be able to start jobs as their user) and Debian's slurm-wlm/munge packages
(tools/deps/debian-slurm.txt). There is no accounting database: `sacct` does not work; job states come
from `scontrol show job -o` and last MIN_JOB_AGE seconds after a job ends. docs/slurm-tests.md has the
details.

Every failure (missing packages, not root, a daemon that will not start, a wait that runs out) raises
SlurmError with the relevant daemon logs in its message; tests turn it into a failure, never a skip.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

# Seconds a finished job stays visible to `scontrol show job` (slurm.conf MinJobAge). There is no
# accounting, so this is the window in which job_state() and wait_job() can see how a job ended.
MIN_JOB_AGE = 60

# JobState values after which a job will not run again by itself (REQUEUED and COMPLETING are not).
TERMINAL_STATES = frozenset(["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED",
                             "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "SPECIAL_EXIT", "REVOKED"])

# Marks every process we start (daemons, their slurmstepds, the jobs, whose environment sbatch exports):
# the value is the cluster's workdir, so that stop() finds what is ours and nothing else.
MARKER = "LOGITLENS_SLURM_TEST_CLUSTER"

_SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("munge", "unmunge", "sbatch", "squeue", "sinfo", "scontrol", "scancel")


class SlurmError(RuntimeError):
    """The test cluster could not be set up, or a request to it failed or timed out."""


def _which(name):
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(_SBIN)
    return shutil.which(name, path=path)


def _free_ports(n):
    """n distinct TCP ports that nothing listens on at this moment (bound to every address, as the
    daemons bind)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _mem_total_mb():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return 2048


def _cpus():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _tail(path, nbytes=3000):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read: %s)" % e


def _alive(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _parse_show_job(line):
    """One line of `scontrol show job -o` as a dict (values may hold spaces: a key starts at a space
    followed by Name=)."""
    rec = {}
    for m in re.finditer(r"(?:^|\s)([A-Za-z][\w:/.()-]*?)=(.*?)(?=\s[A-Za-z][\w:/.()-]*?=|\s*$)", line):
        rec[m.group(1)] = m.group(2)
    return rec


class SlurmCluster:
    """One slurmctld, one slurmd (node = this host's short name, address 127.0.0.1) and a private munged,
    under workdir. A context manager: __enter__ starts (and waits until the node is idle), __exit__
    stops everything. start()/stop() may also be called directly; stop() is idempotent and is also run
    at interpreter exit."""

    def __init__(self, workdir, start_timeout=60.0, stop_timeout=10.0, cluster_name="lltest"):
        self.workdir = os.path.abspath(str(workdir))
        self.start_timeout = float(start_timeout)
        self.stop_timeout = float(stop_timeout)
        self.cluster_name = cluster_name
        self.hostname = socket.gethostname().split(".")[0]
        self.cpus = _cpus()
        # Half of the machine's memory: slurmd refuses a node that claims more than it has.
        self.real_memory_mb = max(1, _mem_total_mb() // 2)
        d = self.workdir
        self.conf_dir = os.path.join(d, "etc")
        self.conf_path = os.path.join(self.conf_dir, "slurm.conf")
        self._set_munge_dir(os.path.join(d, "munge"))
        self._own_munge_dir = False  # a directory outside workdir, removed by stop()
        self.log_dir = os.path.join(d, "log")
        self.run_dir = os.path.join(d, "run")
        self.state_dir = os.path.join(d, "state")
        self.spool_dir = os.path.join(d, "spool")
        self.jobs_dir = os.path.join(d, "jobs")  # default working directory of sbatch
        self.ctld_port = self.slurmd_port = None
        self.procs = {}  # daemon name -> subprocess.Popen
        self._started = False
        self._bins = {}

    def _set_munge_dir(self, d):
        self.munge_dir = d
        self.munge_socket = os.path.join(d, "munge.socket")
        self.munge_key = os.path.join(d, "munge.key")

    # ------------------------------------------------------------------ environment and commands

    def env(self, extra=None):
        """The environment for every SLURM client (and anything the tests start): the caller's
        environment without inherited SLURM_*/SBATCH_*/SALLOC_*/SRUN_* variables (a suite that itself
        runs under SLURM must not leak its job into ours), plus SLURM_CONF, the sbin directories on
        PATH, and MARKER."""
        e = {k: v for k, v in os.environ.items()
             if not k.startswith(("SLURM_", "SBATCH_", "SALLOC_", "SRUN_", "SQUEUE_", "SINFO_", "SCONTROL_"))}
        e["SLURM_CONF"] = self.conf_path
        e[MARKER] = self.workdir
        parts = e.get("PATH", "/usr/bin:/bin").split(os.pathsep)
        e["PATH"] = os.pathsep.join(parts + [p for p in _SBIN if p not in parts])
        if extra:
            e.update(extra)
        return e

    def _bin(self, name):
        if name not in self._bins:
            p = _which(name)
            if not p:
                raise SlurmError("%s not found (PATH and %s): SLURM/munge are not installed; run "
                                 "tools/install-deps.sh (it installs tools/deps/debian-slurm.txt)"
                                 % (name, ":".join(_SBIN)))
            self._bins[name] = p
        return self._bins[name]

    def run(self, args, timeout=30.0, check=True, cwd=None, input=None):
        """Runs a client command (args[0] a name such as "scontrol") with env(); returns the
        CompletedProcess (text). check: raise SlurmError on a nonzero exit. Never hangs: a command
        that exceeds timeout raises SlurmError."""
        cmd = [self._bin(args[0])] + [str(a) for a in args[1:]]
        try:
            p = subprocess.run(cmd, env=self.env(), cwd=cwd or self.workdir, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SlurmError("%s did not finish within %.0fs\n%s" % (" ".join(cmd), timeout, self.logs()))
        if check and p.returncode != 0:
            raise SlurmError("%s failed (exit %d)\nstdout: %s\nstderr: %s"
                             % (" ".join(cmd), p.returncode, p.stdout.strip(), p.stderr.strip()))
        return p

    # ------------------------------------------------------------------ set-up

    def _check_prerequisites(self):
        if os.geteuid() != 0:
            raise SlurmError("SlurmCluster needs root (it runs munged, slurmctld and slurmd with "
                             "SlurmUser=root, and slurmd starts jobs as their user); this process runs "
                             "as uid %d. Run the SLURM tests as root (the CI container does)." % os.geteuid())
        for name in _DAEMONS + _CLIENTS:
            self._bin(name)

    def _write_munge_key(self):
        # A private key: 1024 bytes from /dev/urandom (what `dd if=/dev/urandom bs=1k count=1` writes),
        # mode 0400, owned by the user munged runs as (we run it as ourselves, root).
        with open("/dev/urandom", "rb") as f:
            key = f.read(1024)
        fd = os.open(self.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        try:
            os.write(fd, key)
        finally:
            os.close(fd)
        os.chown(self.munge_key, os.geteuid(), os.getegid())
        os.chmod(self.munge_key, 0o400)

    def slurm_conf(self):
        """The text of slurm.conf for this cluster."""
        lg, rn = self.log_dir, self.run_dir
        return "\n".join([
            "# A one-node test cluster written by tests/slurm/cluster.py; everything lives under",
            "# " + self.workdir,
            "ClusterName=%s" % self.cluster_name,
            "SlurmctldHost=%s(127.0.0.1)" % self.hostname,
            "SlurmctldPort=%d" % self.ctld_port,
            "SlurmdPort=%d" % self.slurmd_port,
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            "AuthInfo=socket=%s" % self.munge_socket,
            "StateSaveLocation=%s" % self.state_dir,
            "SlurmdSpoolDir=%s" % self.spool_dir,
            "SlurmctldPidFile=%s" % os.path.join(rn, "slurmctld.pid"),
            "SlurmdPidFile=%s" % os.path.join(rn, "slurmd.pid"),
            "SlurmctldLogFile=%s" % os.path.join(lg, "slurmctld.log"),
            "SlurmdLogFile=%s" % os.path.join(lg, "slurmd.log"),
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=sched_interval=1,sched_min_interval=0,bf_interval=1",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            # the container's CPUs and memory are whatever slurm.conf says (no hardware check)
            "SlurmdParameters=config_overrides",
            "MpiDefault=none",
            "ReturnToService=2",
            "JobRequeue=1",
            "MinJobAge=%d" % MIN_JOB_AGE,
            "KillWait=2",
            "InactiveLimit=0",
            "MailProg=/bin/true",
            "NodeName=%s NodeAddr=127.0.0.1 CPUs=%d RealMemory=%d State=UNKNOWN"
            % (self.hostname, self.cpus, self.real_memory_mb),
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name, args):
        out = open(os.path.join(self.log_dir, name + ".out"), "ab")
        try:
            self.procs[name] = subprocess.Popen([self._bin(name)] + args, env=self.env(), cwd=self.workdir,
                                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                                start_new_session=True)
        finally:
            out.close()

    def _check_daemons(self, what):
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise SlurmError("%s exited (status %s) while %s\n%s" % (name, p.returncode, what, self.logs()))

    def _wait(self, what, deadline, test, interval=0.2):
        while True:
            self._check_daemons(what)
            if test():
                return
            if time.monotonic() > deadline:
                raise SlurmError("timed out (%.0fs) %s\n%s" % (self.start_timeout, what, self.logs()))
            time.sleep(interval)

    def _munge_works(self):
        try:
            cred = subprocess.run([self._bin("munge"), "-n", "-S", self.munge_socket], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5)
            if cred.returncode != 0:
                return False
            back = subprocess.run([self._bin("unmunge"), "-S", self.munge_socket], input=cred.stdout,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=5)
            return back.returncode == 0
        except (subprocess.TimeoutExpired, OSError):
            return False

    def node_state(self):
        """`sinfo -h -o %T` for our node ("idle", "mixed", "allocated", "down*", ... or "" when
        slurmctld does not answer)."""
        try:
            p = self.run(["sinfo", "-h", "-o", "%T"], timeout=10, check=False)
        except SlurmError:
            return ""
        return p.stdout.strip() if p.returncode == 0 else ""

    def start(self):
        """Starts munged, slurmctld and slurmd and waits (start_timeout in all) until the node is idle.
        Raises SlurmError, with the logs, when any of it fails; whatever was started is stopped again."""
        if self._started:
            return self
        self._check_prerequisites()
        self._started = True
        atexit.register(self.stop)
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        deadline = time.monotonic() + self.start_timeout
        os.makedirs(self.workdir, exist_ok=True)
        self._sweep(orphans=True)  # leftovers of an earlier cluster here, or of one whose workdir is gone
        for d in (self.conf_dir, self.log_dir, self.run_dir, self.state_dir, self.spool_dir, self.jobs_dir):
            os.makedirs(d, exist_ok=True)
        # A Unix socket's path has at most 107 bytes: under a deep workdir (pytest --basetemp), munged's
        # files go to a fresh directory in /tmp instead, removed again by stop().
        if len(self.munge_socket.encode()) > 100:
            self._set_munge_dir(tempfile.mkdtemp(prefix="llslurm-munge-"))
            self._own_munge_dir = True
        # munged insists that its directories are not writable by others, and that its socket's
        # directory is searchable by all (--force turns the same check on the directories above, which
        # pytest makes 0700, into a warning)
        os.makedirs(self.munge_dir, mode=0o711, exist_ok=True)
        os.chmod(self.munge_dir, 0o711)
        for stale in (self.munge_key, self.munge_socket):
            if os.path.lexists(stale):
                os.unlink(stale)
        self._write_munge_key()
        self._spawn("munged", ["--foreground", "--force", "--socket=" + self.munge_socket, "--key-file=" + self.munge_key,
                               "--pid-file=" + os.path.join(self.munge_dir, "munged.pid"),
                               "--log-file=" + os.path.join(self.munge_dir, "munged.log"),
                               "--seed-file=" + os.path.join(self.munge_dir, "munged.seed")])
        self._wait("waiting for munged to answer on " + self.munge_socket, deadline, self._munge_works)

        self.ctld_port, self.slurmd_port = _free_ports(2)
        with open(self.conf_path, "w") as f:
            f.write(self.slurm_conf())
        # -D: foreground (the Popen is the daemon); -i: ignore unreadable state (there is none: a fresh
        # StateSaveLocation)
        self._spawn("slurmctld", ["-D", "-i", "-f", self.conf_path])
        self._wait("waiting for slurmctld to answer (scontrol ping)", deadline,
                   lambda: "UP" in self.run(["scontrol", "ping"], timeout=10, check=False).stdout)
        self._spawn("slurmd", ["-D", "-N", self.hostname, "-f", self.conf_path])
        self._wait("waiting for node %s to be idle (sinfo -h -o %%T)" % self.hostname, deadline,
                   lambda: self.node_state() == "idle")

    # ------------------------------------------------------------------ tear-down

    def _ours(self, orphans=False):
        """pids of live processes that carry our MARKER (daemons, slurmstepds, jobs), not this one.
        orphans: also those of any earlier cluster whose workdir no longer exists (a test run killed
        before it could stop its cluster, whose pytest temporary directory has since been removed)."""
        prefix = (MARKER + "=").encode()
        want = prefix + self.workdir.encode()
        found = []
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open("/proc/%s/environ" % entry, "rb") as f:
                    env = f.read().split(b"\0")
            except OSError:
                continue
            mine = want in env
            if not mine and orphans:
                mine = any(v.startswith(prefix) and not os.path.isdir(v[len(prefix):]) for v in env)
            if mine and _alive(int(entry)):
                found.append(int(entry))
        return found

    def leftover_processes(self):
        """[(pid, command line)] of our processes still alive: the daemons and anything carrying MARKER
        (slurmstepd, job processes). Empty after a clean stop()."""
        pids = set(self._ours())
        pids.update(p.pid for p in self.procs.values() if p.poll() is None)
        out = []
        for pid in sorted(pids):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
            except OSError:
                continue
            if _alive(pid):
                out.append((pid, cmd))
        return out

    def _sweep(self, orphans=False):
        """SIGTERM, then SIGKILL a second later, to every process carrying our MARKER (what is left
        after the daemons stopped: a slurmstepd and its job when slurmd did not stop cleanly)."""
        pids = self._ours(orphans)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            end = time.monotonic() + (1.0 if sig == signal.SIGTERM else self.stop_timeout)
            while time.monotonic() < end:
                pids = [p for p in pids if _alive(p)]
                if not pids:
                    return
                time.sleep(0.05)

    def _terminate(self, name):
        p = self.procs.get(name)
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            try:
                p.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                pass

    def stop(self):
        """Cancels every job (bounded), stops slurmd, slurmctld and munged (SIGTERM, SIGKILL after
        stop_timeout) and kills whatever of ours is left (slurmstepds, job processes). Idempotent."""
        if not self._started:
            return
        self._started = False
        # Cancel the jobs while both daemons are up (without slurmd they would hang in COMPLETING).
        if all(n in self.procs and self.procs[n].poll() is None for n in ("slurmctld", "slurmd")):
            try:
                self.run(["scancel", "--full", "--user", str(os.geteuid())], timeout=5, check=False)
                end = time.monotonic() + 5
                while time.monotonic() < end:
                    q = self.run(["squeue", "-h", "-o", "%i"], timeout=5, check=False)
                    if q.returncode != 0 or not q.stdout.strip():
                        break
                    time.sleep(0.2)
            except SlurmError:
                pass
        for name in ("slurmd", "slurmctld", "munged"):
            self._terminate(name)
        self._sweep()
        if self._own_munge_dir:
            shutil.rmtree(self.munge_dir, ignore_errors=True)
            self._own_munge_dir = False
        try:
            atexit.unregister(self.stop)
        except Exception:
            pass

    @property
    def running(self):
        return self._started

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # ------------------------------------------------------------------ diagnostics

    def logs(self, nbytes=3000):
        """The tails of every daemon log (and their captured stdout/stderr), for failure messages."""
        parts = []
        # Each daemon's own log file, and what it wrote to stdout/stderr (the same lines under -D, plus
        # anything said before the log file was opened: a slurm.conf it could not parse, say).
        for path, n in ((os.path.join(self.munge_dir, "munged.log"), nbytes),
                        (os.path.join(self.log_dir, "munged.out"), nbytes),
                        (os.path.join(self.log_dir, "slurmctld.log"), nbytes),
                        (os.path.join(self.log_dir, "slurmctld.out"), nbytes // 3),
                        (os.path.join(self.log_dir, "slurmd.log"), nbytes),
                        (os.path.join(self.log_dir, "slurmd.out"), nbytes // 3)):
            if os.path.exists(path) and os.path.getsize(path) > 0:
                parts.append("----- %s (last %d bytes)\n%s" % (path, n, _tail(path, n)))
        return "\n".join(parts) if parts else "(no daemon logs under %s)" % self.workdir

    # ------------------------------------------------------------------ jobs

    def sbatch(self, script_path, *args, cwd=None, timeout=30.0):
        """Submits script_path (`sbatch --parsable ARGS SCRIPT`, with env() exported to the job, working
        directory cwd or jobs/ under workdir). Returns the job id (for an array: the array's job id)."""
        p = self.run(["sbatch", "--parsable"] + [str(a) for a in args] + [str(script_path)],
                     timeout=timeout, cwd=cwd or self.jobs_dir)
        out = p.stdout.strip().split(";")[0]
        if not out.isdigit():
            raise SlurmError("sbatch printed no job id: %r (stderr %r)" % (p.stdout, p.stderr))
        return int(out)

    def job_records(self, jobid):
        """`scontrol show job -o JOBID` as a list of dicts (one per job; every task of an array when
        jobid is the array's id); [] when slurmctld no longer (or not yet) knows the job. There is no
        accounting database (sacct does not work): a record disappears MIN_JOB_AGE seconds after the
        job ends."""
        p = self.run(["scontrol", "show", "job", "-o", str(jobid)], timeout=10, check=False)
        if p.returncode != 0:
            if "Invalid job id" in p.stderr:
                return []
            raise SlurmError("scontrol show job %s failed: %s" % (jobid, p.stderr.strip()))
        return [_parse_show_job(line) for line in p.stdout.splitlines() if line.strip()]

    def job_state(self, jobid):
        """The JobState of a job ("PENDING", "RUNNING", "COMPLETED", ...), from scontrol (not sacct: no
        accounting). For an array: the state shared by all its tasks, or the distinct states joined
        with "," while they differ. None when the job is unknown (never submitted, or purged)."""
        states = sorted(set(r.get("JobState", "?") for r in self.job_records(jobid)))
        return ",".join(states) if states else None

    def wait_job(self, jobid, timeout=60.0, interval=0.25):
        """Polls `scontrol show job` until the job (every task of an array) is in a TERMINAL_STATE and
        returns job_state(). Raises SlurmError (with the records and logs) after timeout seconds, or when
        the job disappears before it was seen to finish."""
        end = time.monotonic() + timeout
        last = []
        while True:
            recs = self.job_records(jobid)
            if recs:
                last = recs
                if all(r.get("JobState") in TERMINAL_STATES for r in recs):
                    return ",".join(sorted(set(r["JobState"] for r in recs)))
            elif last:
                raise SlurmError("job %s vanished before it finished; last seen:\n%s"
                                 % (jobid, "\n".join(str(r) for r in last)))
            if time.monotonic() > end:
                raise SlurmError("job %s did not finish within %.0fs; last seen:\n%s\n%s"
                                 % (jobid, timeout, "\n".join(str(r) for r in last) or "(never)", self.logs()))
            time.sleep(interval)

    def wait_state(self, jobid, states, timeout=30.0, interval=0.2):
        """Polls until job_state(jobid) is one of states (a string or a collection); returns it.
        Raises SlurmError after timeout."""
        if isinstance(states, str):
            states = (states,)
        end = time.monotonic() + timeout
        while True:
            st = self.job_state(jobid)
            if st in states:
                return st
            if time.monotonic() > end:
                raise SlurmError("job %s not in %s within %.0fs (state %s)\n%s"
                                 % (jobid, "/".join(states), timeout, st, self.logs()))
            time.sleep(interval)

    def release_now(self, jobid, timeout=30.0):
        """Makes a requeued job eligible (almost) at once: `scontrol update jobid=X StartTime=now+1`. A
        requeued batch job is otherwise held back until its begin time, about 2 minutes (AuthInfo
        cred_expire, 120 s) after the requeue. Waits (bounded) for the job to be PENDING again first (it
        is REQUEUED or COMPLETING for a moment while its first run is cleaned up).

        Why now+1 and not now: slurmd revoked the first run's credential at the requeue, and refuses
        (for cred_expire seconds) any credential of that job created in the same second or earlier
        (slurm_cred.c: ctime <= revoked; whole seconds). A job restarted within the second of its
        requeue fails at once: "Killing non-startable batch JobId=X: Job credential revoked". One second
        after our update, which comes after the requeue, is always later than the revocation."""
        end = time.monotonic() + timeout
        self.wait_state(jobid, "PENDING", timeout=timeout)
        while True:
            p = self.run(["scontrol", "update", "jobid=%s" % jobid, "StartTime=now+1"], timeout=10, check=False)
            if p.returncode == 0:
                return
            if time.monotonic() > end:
                raise SlurmError("scontrol update jobid=%s StartTime=now+1 failed: %s" % (jobid, p.stderr.strip()))
            time.sleep(0.2)

    def requeue(self, jobid):
        """`scontrol requeue JOBID` (what a job's own trap does to requeue itself)."""
        self.run(["scontrol", "requeue", str(jobid)], timeout=10)

    def scancel(self, jobid, signal=None, batch=False, full=False):
        """`scancel [--signal=SIG] [--batch] [--full] JOBID`. signal: a name ("USR1") or a number; without
        it the job is cancelled. batch: signal only the batch shell (its children are not signaled: a
        shell that traps the signal has to `wait` for them)."""
        args = ["scancel"]
        if signal is not None:
            args.append("--signal=%s" % signal)
        if batch:
            args.append("--batch")
        if full:
            args.append("--full")
        self.run(args + [str(jobid)], timeout=10)
