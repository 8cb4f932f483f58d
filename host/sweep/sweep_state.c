/* sweep_state.c: the state of every task (done / running / pending / failed) from what is on disk and in
 * SLURM's queue. In order of trust: a complete output file (it exists and no journal is left) is done;
 * squeue's word on a listed array task; then the task's record, checked against the queue (a task recorded
 * running that the queue no longer lists ended without recording its exit: cancelled or lost with its node)
 * and, for the local runner, against its process. No accounting database (sacct) is needed. */
#include "sweep_int.h"

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const sw_state_names[SW_STATE_COUNT] = {"pending", "running", "done", "failed"};

ll_status sw_submissions(const char *out, char ***ids, int *n, ll_err *err) {
    *ids = NULL;
    *n = 0;
    char *path = sw_fmt("%s/submit.json", out);
    if (!path) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    cJSON *j = NULL;
    ll_status rc = LL_OK;
    if (sw_exists(path) && !(rc = sw_read_json(path, 16u << 20, &j, err))) {
        const cJSON *subs = cJSON_GetObjectItemCaseSensitive(j, "submissions");
        int k = cJSON_GetArraySize(subs);
        if (k > 0 && !(*ids = calloc((size_t)k, sizeof **ids))) rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        for (const cJSON *s = subs ? subs->child : NULL; s && !rc; s = s->next) {
            const char *id = sw_jstr(s, "job_id");
            if (id && !((*ids)[*n] = strdup(id))) rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            else if (id) (*n)++;
        }
    }
    cJSON_Delete(j);
    free(path);
    return rc;
}

static int is_job_id(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* squeue's state of each array task of the sweep's jobs into queue[task] ("" when not listed); 1 when squeue
 * answered. */
static int ask_squeue(const sw_manifest *m, char (*queue)[24]) {
    char **ids = NULL;
    int n = 0, ok = 0;
    ll_err e;
    if (sw_submissions(m->out, &ids, &n, &e) || n == 0) goto out;
    const struct passwd *pw = getpwuid(getuid());
    if (!pw || !is_job_id(ids[0]) || !strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_", pw->pw_name[0]))
        goto out;
    for (const char *c = pw->pw_name; *c; c++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c)) goto out;
    /* %F: the array's job id, %K: the array task id, one line per array task (-r) */
    char *cmd = sw_fmt("squeue -h -r -u %s -o '%%F|%%K|%%T' 2>/dev/null", pw->pw_name);
    FILE *p = cmd ? popen(cmd, "r") : NULL;
    free(cmd);
    if (!p) goto out;
    char line[256];
    while (fgets(line, sizeof line, p)) {
        char *a = strtok(line, "|\n"), *k = strtok(NULL, "|\n"), *st = strtok(NULL, "|\n");
        if (!a || !k || !st) continue;
        int mine = 0;
        for (int i = 0; i < n && !mine; i++) mine = !strcmp(ids[i], a);
        char *end;
        long task = strtol(k, &end, 10);
        if (mine && !*end && task >= 0 && task < m->n_tasks) snprintf(queue[task], sizeof queue[task], "%s", st);
    }
    ok = pclose(p) == 0;
out:
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    return ok;
}

static int queue_running(const char *q) {
    return !strcmp(q, "RUNNING") || !strcmp(q, "COMPLETING") || !strcmp(q, "CONFIGURING") || !strcmp(q, "STAGE_OUT") ||
           !strcmp(q, "SIGNALING");
}

/* The local runner's process is alive (on this host; elsewhere it cannot be told and is trusted). */
static int local_alive(const sw_record *r) {
    char host[128];
    sw_host(host, sizeof host);
    if (strcmp(host, r->host)) return 1;
    return r->pid > 0 && (kill((pid_t)r->pid, 0) == 0 || errno == EPERM);
}

static void set(sw_view *v, sw_state s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void set(sw_view *v, sw_state s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->detail, sizeof v->detail, fmt, ap);
    va_end(ap);
    v->state = s;
}

static void view_one(const sw_manifest *m, int i, const char *queue, int queue_ok, sw_view *v) {
    const sw_task *t = &m->tasks[i];
    const sw_record *r = &v->rec;
    v->has_record = sw_record_read(m->out, i, &v->rec) == 0;
    sw_journal_read(t->output, &v->prog);
    snprintf(v->queue, sizeof v->queue, "%s", queue);
    const char *rs = v->has_record ? r->state : "";
    const int slurm = !strcmp(r->runner, "slurm");
    if (sw_output_complete(t->output))
        set(v, SW_DONE, "%s", "");
    else if (queue[0] && queue_running(queue))
        set(v, SW_RUNNING, "SLURM %s%s%s", queue, r->host[0] ? " on " : "", r->host);
    else if (queue[0])
        set(v, SW_PENDING, "SLURM %s%s", queue, !strcmp(rs, "checkpointed") ? " (requeued after a checkpoint)" : "");
    else if (!strcmp(rs, "failed") || !strcmp(rs, "interrupted"))
        set(v, SW_FAILED, "exit %d: %s", r->exit_code, r->message);
    else if (!strcmp(rs, "running") && !slurm && !local_alive(r))
        set(v, SW_FAILED, "its local runner stopped without recording an exit (pid %ld on %s is gone); run it again "
            "to resume", r->pid, r->host);
    else if (!strcmp(rs, "running") && slurm && queue_ok)
        set(v, SW_FAILED, "array task %s left the queue without recording an exit (cancelled, or its node failed); "
            "retry resumes it", r->job);
    else if (!strcmp(rs, "running"))
        set(v, SW_RUNNING, "%s on %s%s", slurm ? "SLURM" : "local", r->host, slurm ? " (squeue unavailable)" : "");
    else if (!strcmp(rs, "checkpointed") && slurm && queue_ok)
        set(v, SW_FAILED, "stopped at a checkpoint but array task %s is not in the queue (the requeue failed?); retry "
            "resumes it", r->job);
    else if (!strcmp(rs, "checkpointed"))
        set(v, SW_PENDING, "checkpointed; resumes when it runs again");
    else if (!strcmp(rs, "queued") && queue_ok)
        set(v, SW_FAILED, "submitted as job %s but it left the queue without starting (cancelled?)", r->job);
    else if (!strcmp(rs, "queued"))
        set(v, SW_PENDING, "submitted as job %s", r->job);
    else if (!strcmp(rs, "done"))
        set(v, SW_PENDING, "recorded done, but %s is not complete: it runs again", t->output);
    else
        set(v, SW_PENDING, "not started");
}

ll_status sw_views_get(const sw_manifest *m, int squeue, sw_view **out, int *queue_ok, ll_err *err) {
    sw_view *v = calloc((size_t)m->n_tasks + 1, sizeof *v);
    char(*queue)[24] = calloc((size_t)m->n_tasks + 1, sizeof *queue);
    if (!v || !queue) {
        free(v);
        free(queue);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    *queue_ok = squeue ? ask_squeue(m, queue) : 0;
    for (int i = 0; i < m->n_tasks; i++) view_one(m, i, queue[i], *queue_ok, &v[i]);
    free(queue);
    *out = v;
    return LL_OK;
}
