/* sweep_submit.c: `sweep submit OUT` and `sweep retry OUT` under SLURM: `sbatch --parsable
 * --array=IDS%M OUT/sweep.sbatch` for the tasks that are not done (or only the failed ones) and not already
 * queued or running, the job id appended to OUT/submit.json and each submitted task recorded "queued". */
#include "sweep_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* "0-3,5,7-9" from increasing ids (malloc'ed). */
static char *array_spec(const int *ids, int n) {
    size_t cap = (size_t)n * 24 + 1, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n;) {
        int j = i;
        while (j + 1 < n && ids[j + 1] == ids[j] + 1) j++;
        len += (size_t)snprintf(s + len, cap - len, "%s%d", len ? "," : "", ids[i]);
        if (j > i) len += (size_t)snprintf(s + len, cap - len, "-%d", ids[j]);
        i = j + 1;
    }
    return s;
}

/* Runs argv, its stdout into *out (malloc'ed); stderr passes through. Returns the exit code, -1 when it could
 * not start (errno). */
static int run_capture(char *const *argv, const char *cwd, char **out) {
    int fd[2];
    *out = NULL;
    if (pipe(fd)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (cwd && chdir(cwd)) _exit(126);
        execvp(argv[0], argv);
        _exit(errno == ENOENT ? 127 : 126);
    }
    close(fd[1]);
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    char buf[4096];
    ssize_t r;
    while ((r = read(fd[0], buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0 && f) fwrite(buf, 1, (size_t)r, f);
    close(fd[0]);
    if (f) fclose(f);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Appends a submission to OUT/submit.json. */
static ll_status save_submission(const sw_manifest *m, const char *job, const char *spec, ll_err *err) {
    char *path = sw_fmt("%s/submit.json", m->out);
    cJSON *j = NULL;
    ll_status rc = LL_OK;
    if (!path) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (sw_exists(path)) rc = sw_read_json(path, 16u << 20, &j, err);
    else j = cJSON_CreateObject();
    cJSON *subs = j ? cJSON_GetObjectItemCaseSensitive(j, "submissions") : NULL;
    if (!rc && j && !subs) subs = cJSON_AddArrayToObject(j, "submissions");
    cJSON *o = cJSON_CreateObject();
    char now[32];
    sw_iso_time(sw_time_now(), now, sizeof now);
    if (!rc && (!j || !cJSON_IsArray(subs) || !o || !cJSON_AddStringToObject(o, "job_id", job) ||
                !cJSON_AddStringToObject(o, "array", spec) || !cJSON_AddStringToObject(o, "submitted", now)))
        rc = ll_fail(err, LL_ERR_NOMEM, "%s: out of memory, or not a list of submissions", path);
    if (!rc) {
        cJSON_AddItemToArray(subs, o);
        o = NULL;
        rc = sw_write_json(path, j, err);
    }
    cJSON_Delete(o);
    cJSON_Delete(j);
    free(path);
    return rc;
}

/* %M of the plan's array (the manifest's slurm.max_parallel), else every task. */
static int max_parallel(const sw_manifest *m, int n) {
    char *path = sw_fmt("%s/sweep.json", m->out);
    cJSON *j = NULL;
    ll_err e;
    int par = n;
    if (path && !sw_read_json(path, 512u << 20, &j, &e)) {
        double v = sw_jnum(cJSON_GetObjectItemCaseSensitive(j, "slurm"), "max_parallel", 0);
        if (v >= 1 && v < n) par = (int)v;
    }
    cJSON_Delete(j);
    free(path);
    return par;
}

ll_status ll_sweep_submit(const char *out, ll_sweep_which which, ll_err *err) {
    sw_manifest m;
    sw_view *v = NULL;
    int *ids = NULL, n = 0, queue_ok = 0;
    char *spec = NULL, *arr = NULL, *script = NULL, *stdout_text = NULL;
    ll_status rc = sw_manifest_load(out, &m, err);
    if (rc) return rc;
    if ((rc = sw_views_get(&m, 1, &v, &queue_ok, err))) goto done;
    if (!(ids = calloc((size_t)m.n_tasks + 1, sizeof *ids))) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < m.n_tasks; i++) {
        if (v[i].state == SW_DONE || v[i].state == SW_RUNNING || v[i].queue[0]) continue;
        if (which == LL_SWEEP_FAILED && v[i].state != SW_FAILED) continue;
        ids[n++] = i;
    }
    if (n == 0) {
        printf("nothing to submit: every %stask is done, running or queued (logitlens sweep status %s)\n",
               which == LL_SWEEP_FAILED ? "failed " : "", m.out);
        goto done;
    }
    spec = array_spec(ids, n);
    arr = spec ? sw_fmt("--array=%s%%%d", spec, max_parallel(&m, n)) : NULL;
    script = sw_fmt("%s/sweep.sbatch", m.out);
    if (!arr || !script) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    char *argv[] = {"sbatch", "--parsable", arr, script, NULL};
    int code = run_capture(argv, m.out, &stdout_text);
    if (code == 127 || code < 0) {
        rc = ll_fail(err, LL_ERR_BACKEND, "cannot run sbatch: %s (submit from a SLURM login node, or use `logitlens "
                     "sweep run --local %s`)", code < 0 ? strerror(errno) : "not found on PATH", m.out);
        goto done;
    }
    if (code != 0) {
        rc = ll_fail(err, LL_ERR_BACKEND, "sbatch %s %s failed with exit code %d (its message is above)", arr, script,
                     code);
        goto done;
    }
    /* --parsable: "JOBID" or "JOBID;CLUSTER" */
    char *job = stdout_text ? strtok(stdout_text, ";\n") : NULL;
    if (!job || !*job || strspn(job, "0123456789") != strlen(job)) {
        rc = ll_fail(err, LL_ERR_BACKEND, "sbatch printed no job id (got '%.80s')", stdout_text ? stdout_text : "");
        goto done;
    }
    if ((rc = save_submission(&m, job, spec, err))) goto done;
    for (int k = 0; k < n && !rc; k++) {
        sw_record r;
        if (sw_record_read(m.out, ids[k], &r)) r.exit_code = -1;
        snprintf(r.state, sizeof r.state, "queued");
        snprintf(r.runner, sizeof r.runner, "slurm");
        snprintf(r.job, sizeof r.job, "%s_%d", job, ids[k]);
        r.message[0] = 0;
        rc = sw_record_write(m.out, ids[k], &r, err);
    }
    if (!rc) printf("submitted job %s: %d task%s (--array=%s), script %s\n", job, n, n == 1 ? "" : "s", spec, script);
done:
    free(stdout_text);
    free(script);
    free(arr);
    free(spec);
    free(ids);
    free(v);
    sw_manifest_free(&m);
    return rc;
}
