/* sweep_local.c: `sweep run --local OUT [-j N]` and `sweep retry --local`: the sweep's tasks as
 * subprocesses of this executable (/proc/self/exe), N at a time, without SLURM. Each task's output goes to
 * its log; its record says running, then done, failed (with the run's error line), checkpointed or
 * interrupted. A failed task does not stop the others. SIGINT, SIGTERM and SIGUSR1 are passed on to the
 * running tasks (which stop after their current batch, resumable) and no new task starts. One local runner
 * per OUT at a time (a lock on OUT/.local.lock). */
#include "sweep_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal = 0;
static void on_signal(int sig) { got_signal = sig; }

typedef struct slot {
    pid_t pid;   /* 0: free */
    int task;
    double t0;
} slot;

/* Starts task t: its output appended to its log, stdin from /dev/null. */
static pid_t launch(const sw_manifest *m, const sw_task *t) {
    char host[128], now[32];
    sw_host(host, sizeof host);
    sw_iso_time(sw_time_now(), now, sizeof now);
    pid_t pid = fork();
    if (pid != 0) return pid;
    /* child */
    int log = open(t->log, O_WRONLY | O_CREAT | O_APPEND, 0666);
    int in = open("/dev/null", O_RDONLY);
    if (log < 0 || in < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0 || dup2(in, 0) < 0) _exit(127);
    close(log);
    close(in);
    dprintf(2, "== %s on %s: local run of task %d (sweep %s)\n", now, host, t->id, m->name);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGUSR1, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* argv[0] stays the manifest's executable path; the program is this one */
    execv("/proc/self/exe", t->argv);
    execv(t->argv[0], t->argv);
    dprintf(2, "logitlens run: cannot start %s: %s\n", t->argv[0], strerror(errno));
    _exit(127);
}

/* The tasks to run, in id order: not done (or failed only), not running or queued elsewhere. */
static int *select_tasks(const sw_manifest *m, const sw_view *v, ll_sweep_which which, int *n, int *skipped) {
    int *sel = calloc((size_t)m->n_tasks + 1, sizeof *sel);
    *n = *skipped = 0;
    if (!sel) return NULL;
    for (int i = 0; i < m->n_tasks; i++) {
        if (v[i].state == SW_DONE || (which == LL_SWEEP_FAILED && v[i].state != SW_FAILED)) continue;
        if (v[i].state == SW_RUNNING || v[i].queue[0]) {
            fprintf(stderr, "logitlens sweep: task %d is %s elsewhere (%s); not started here\n", i,
                    sw_state_names[v[i].state], v[i].detail);
            (*skipped)++;
            continue;
        }
        sel[(*n)++] = i;
    }
    return sel;
}

static void report(const sw_manifest *m, int id, double secs) {
    sw_record r;
    const sw_task *t = &m->tasks[id];
    const char *label = m->models[t->model].name, *shard = m->shards[t->shard].name;
    if (sw_record_read(m->out, id, &r)) return;
    if (!strcmp(r.state, "done"))
        fprintf(stderr, "logitlens sweep: task %d (%s %s) done in %.1f s\n", id, label, shard, secs);
    else
        fprintf(stderr, "logitlens sweep: task %d (%s %s) %s: %s (log: %s)\n", id, label, shard, r.state, r.message,
                t->log);
}

/* A task that needs several ranks cannot run as one subprocess: it fails with the reason. */
static ll_status refuse_ranks(const sw_manifest *m, int id, ll_err *err) {
    const sw_model *x = &m->models[m->tasks[id].model];
    sw_record r;
    if (sw_record_read(m->out, id, &r)) sw_host(r.host, sizeof r.host);
    snprintf(r.state, sizeof r.state, "failed");
    snprintf(r.runner, sizeof r.runner, "local");
    r.exit_code = 2;
    r.ended = sw_time_now();
    snprintf(r.message, sizeof r.message, "model %s needs %d ranks (tp %d x pp %d), which only `logitlens sweep "
             "submit` starts (under srun); a local run starts one process per task", x->name, x->ranks, x->tp, x->pp);
    return sw_record_write(m->out, id, &r, err);
}

ll_status ll_sweep_run_local(const char *out, int jobs, ll_sweep_which which, int *n_failed, ll_err *err) {
    sw_manifest m;
    sw_view *v = NULL;
    int *sel = NULL, n_sel = 0, skipped = 0, queue_ok = 0, lock = -1;
    slot *slots = NULL;
    *n_failed = 0;
    ll_status rc = sw_manifest_load(out, &m, err);
    if (rc) return rc;
    char *lock_path = sw_fmt("%s/.local.lock", m.out);
    if (!lock_path || (lock = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666)) < 0) {
        rc = ll_fail(err, LL_ERR_IO, "cannot open %s/.local.lock: %s", m.out, strerror(errno));
        goto done;
    }
    if (flock(lock, LOCK_EX | LOCK_NB)) {
        rc = ll_fail(err, LL_ERR_USAGE, "another `logitlens sweep run --local` or `retry --local` is running on %s",
                     m.out);
        goto done;
    }
    if ((rc = sw_views_get(&m, 1, &v, &queue_ok, err))) goto done;
    if (!(sel = select_tasks(&m, v, which, &n_sel, &skipped)) ||
        !(slots = calloc((size_t)(jobs > 0 ? jobs : 1), sizeof *slots))) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    fprintf(stderr, "logitlens sweep: %d of %d tasks to run, %d at a time\n", n_sel, m.n_tasks, jobs);
    struct sigaction sa = {0}, old_int, old_term, old_usr1;
    sa.sa_handler = on_signal; /* no SA_RESTART: waitpid returns to pass the signal on */
    sigemptyset(&sa.sa_mask);
    got_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGUSR1, &sa, &old_usr1);
    int next = 0, running = 0, stopped = 0;
    while (running > 0 || (!rc && next < n_sel && !stopped)) {
        while (!rc && running < jobs && next < n_sel && !stopped && !got_signal) {
            int id = sel[next++];
            if (m.models[m.tasks[id].model].ranks > 1) {
                if (!(rc = refuse_ranks(&m, id, err))) report(&m, id, 0);
                continue;
            }
            int s = 0;
            while (slots[s].pid) s++;
            pid_t pid = launch(&m, &m.tasks[id]);
            if (pid < 0) {
                rc = ll_fail(err, LL_ERR_IO, "cannot start task %d: %s", id, strerror(errno));
                break;
            }
            slots[s] = (slot){.pid = pid, .task = id, .t0 = sw_time_now()};
            running++;
            rc = sw_record_start(m.out, id, "local", (long)pid, "", err);
            if (rc) kill(pid, SIGTERM); /* unrecorded, it would run unseen */
        }
        if (got_signal && !stopped) { /* pass it on once; the tasks stop after their current batch */
            stopped = got_signal;
            fprintf(stderr, "logitlens sweep: signal %d: passed on to %d running tasks; no new task starts\n", stopped,
                    running);
            for (int s = 0; s < jobs; s++)
                if (slots[s].pid) kill(slots[s].pid, stopped);
        }
        if (running == 0) continue;
        int status;
        pid_t pid = waitpid(-1, &status, 0);
        if (pid < 0) {
            if (errno == EINTR) continue;
            rc = ll_fail(err, LL_ERR_INTERNAL, "waiting for the tasks: %s", strerror(errno));
            break;
        }
        for (int s = 0; s < jobs; s++)
            if (slots[s].pid == pid) {
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 70;
                ll_status r2 = sw_record_exit(&m, slots[s].task, code, rc ? &(ll_err){{0}} : err);
                if (!rc) rc = r2;
                report(&m, slots[s].task, sw_time_now() - slots[s].t0);
                slots[s].pid = 0;
                running--;
            }
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    /* the outcome of every task this run chose */
    int done = 0;
    for (int k = 0; k < n_sel; k++) {
        sw_record r;
        if (sw_record_read(m.out, sel[k], &r) == 0 && !strcmp(r.state, "done")) done++;
        else if (k < next && !(r.state[0] && !strcmp(r.state, "checkpointed")) && strcmp(r.state, "interrupted"))
            (*n_failed)++;
    }
    fprintf(stderr, "logitlens sweep: %d done, %d failed, %d not started%s\n", done, *n_failed, n_sel - next + skipped,
            *n_failed ? " (logitlens sweep status shows why; retry reruns them)" : "");
    if (!rc && stopped)
        rc = ll_fail(err, LL_ERR_INTERRUPTED, "stopped by signal %d: the running tasks stopped after their current "
                     "batch; run again to resume", stopped);
done:
    if (lock >= 0) close(lock);
    free(lock_path);
    free(slots);
    free(sel);
    free(v);
    sw_manifest_free(&m);
    return rc;
}
