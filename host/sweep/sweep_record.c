/* sweep_record.c: a task's record (OUT/tasks/ID.json: what the runner saw of its last attempt), the
 * failure message taken from its log, and the run journal's progress (OUTPUT.journal/progress.json, written
 * by `logitlens run --resume`). */
#include "sweep_int.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void copy_str(char *dst, size_t cap, const char *src) { snprintf(dst, cap, "%s", src ? src : ""); }

int sw_record_read(const char *out, int id, sw_record *r) {
    memset(r, 0, sizeof *r);
    r->exit_code = -1;
    char *path = sw_fmt("%s/tasks/%d.json", out, id);
    cJSON *j = NULL;
    ll_err err;
    int found = path && sw_exists(path) && sw_read_json(path, 1u << 20, &j, &err) == LL_OK;
    free(path);
    if (!found) return -1;
    copy_str(r->state, sizeof r->state, sw_jstr(j, "state"));
    copy_str(r->message, sizeof r->message, sw_jstr(j, "message"));
    copy_str(r->host, sizeof r->host, sw_jstr(j, "host"));
    copy_str(r->runner, sizeof r->runner, sw_jstr(j, "runner"));
    copy_str(r->job, sizeof r->job, sw_jstr(j, "job"));
    r->exit_code = (int)sw_jnum(j, "exit_code", -1);
    r->started = sw_jnum(j, "started", 0);
    r->ended = sw_jnum(j, "ended", 0);
    r->first_started = sw_jnum(j, "first_started", 0);
    r->pid = (long)sw_jnum(j, "pid", 0);
    r->attempts = (int)sw_jnum(j, "attempts", 0);
    cJSON_Delete(j);
    return 0;
}

ll_status sw_record_write(const char *out, int id, const sw_record *r, ll_err *err) {
    char *dir = sw_fmt("%s/tasks", out), *path = sw_fmt("%s/tasks/%d.json", out, id);
    cJSON *j = cJSON_CreateObject();
    char t1[32] = "", t2[32] = "";
    if (r->started > 0) sw_iso_time(r->started, t1, sizeof t1);
    if (r->ended > 0) sw_iso_time(r->ended, t2, sizeof t2);
    ll_status rc = LL_OK;
    if (!dir || !path || !j || !cJSON_AddNumberToObject(j, "id", id) || !cJSON_AddStringToObject(j, "state", r->state) ||
        !cJSON_AddNumberToObject(j, "exit_code", r->exit_code) || !cJSON_AddStringToObject(j, "message", r->message) ||
        !cJSON_AddNumberToObject(j, "attempts", r->attempts) || !cJSON_AddStringToObject(j, "runner", r->runner) ||
        !cJSON_AddStringToObject(j, "host", r->host) || !cJSON_AddNumberToObject(j, "pid", (double)r->pid) ||
        !cJSON_AddStringToObject(j, "job", r->job) || !cJSON_AddNumberToObject(j, "started", r->started) ||
        !cJSON_AddStringToObject(j, "started_at", t1) || !cJSON_AddNumberToObject(j, "ended", r->ended) ||
        !cJSON_AddStringToObject(j, "ended_at", t2) || !cJSON_AddNumberToObject(j, "first_started", r->first_started))
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (!rc) rc = sw_mkdirs(dir, err);
    if (!rc) rc = sw_write_json(path, j, err);
    cJSON_Delete(j);
    free(dir);
    free(path);
    return rc;
}

ll_status sw_record_start(const char *out, int id, const char *runner, long pid, const char *job, ll_err *err) {
    sw_record r;
    sw_record_read(out, id, &r);
    copy_str(r.state, sizeof r.state, "running");
    copy_str(r.runner, sizeof r.runner, runner);
    copy_str(r.job, sizeof r.job, job);
    sw_host(r.host, sizeof r.host);
    r.message[0] = 0;
    r.exit_code = -1;
    r.pid = pid;
    r.started = sw_time_now();
    r.ended = 0;
    if (r.first_started <= 0) r.first_started = r.started;
    r.attempts++;
    return sw_record_write(out, id, &r, err);
}

/* The last 64 KiB of a file (malloc'ed, NUL-terminated), or NULL. */
static char *read_tail(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    const long want = 64 * 1024;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        long start = size > want ? size - want : 0;
        if (size >= 0 && fseek(f, start, SEEK_SET) == 0 && (buf = malloc((size_t)(size - start) + 1))) {
            size_t n = fread(buf, 1, (size_t)(size - start), f);
            buf[n] = 0;
        }
    }
    fclose(f);
    return buf;
}

void sw_failure_message(const char *log, int code, char *buf, size_t cap) {
    char *text = log ? read_tail(log) : NULL;
    const char *best = NULL, *srun = NULL;
    size_t best_len = 0, srun_len = 0;
    for (char *p = text; p && *p;) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len > 15 && !strncmp(p, "logitlens run: ", 15) && strncmp(p, "logitlens run: note:", 20)) best = p, best_len = len;
        else if (len > 13 && !strncmp(p, "srun: error: ", 13)) srun = p, srun_len = len;
        p = nl ? nl + 1 : p + len;
    }
    if (!best && srun) best = srun, best_len = srun_len;
    if (best) {
        if (best_len >= cap) best_len = cap - 1;
        memcpy(buf, best, best_len);
        buf[best_len] = 0;
        while (best_len > 0 && buf[best_len - 1] == '\r') buf[--best_len] = 0;
    } else if (code > 128 && code < 128 + 65) {
        snprintf(buf, cap, "killed by signal %d (%s) with no message in its log", code - 128, strsignal(code - 128));
    } else {
        snprintf(buf, cap, "exited with code %d and no message in its log", code);
    }
    free(text);
}

ll_status sw_record_exit(const sw_manifest *m, int id, int code, ll_err *err) {
    const sw_task *t = &m->tasks[id];
    sw_record r;
    if (sw_record_read(m->out, id, &r)) {
        r.attempts = 1;
        sw_host(r.host, sizeof r.host);
    }
    r.ended = sw_time_now();
    r.exit_code = code;
    r.message[0] = 0;
    if (code == 0 && sw_output_complete(t->output)) {
        copy_str(r.state, sizeof r.state, "done");
    } else if (code == 0) {
        copy_str(r.state, sizeof r.state, "failed");
        snprintf(r.message, sizeof r.message, "exited 0 but %s is not complete", t->output);
    } else if (code == SW_EXIT_CHECKPOINTED) {
        copy_str(r.state, sizeof r.state, "checkpointed");
        copy_str(r.message, sizeof r.message, "stopped at a checkpoint after SIGUSR1; resumes when run again");
    } else if (code == 128 + SIGUSR1) {
        /* USR1 came before the run set its handler (while loading): nothing was in flight, and what was
         * committed before is in the journal, so it is a checkpoint too (the job script requeues it) */
        copy_str(r.state, sizeof r.state, "checkpointed");
        copy_str(r.message, sizeof r.message, "ended by SIGUSR1 before its first batch began; resumes when run again");
    } else if (code == SW_EXIT_INTERRUPTED || code == 128 + SIGTERM) {
        copy_str(r.state, sizeof r.state, "interrupted");
        snprintf(r.message, sizeof r.message, "interrupted by a signal (exit %d); committed batches are kept, so a "
                 "retry continues it", code);
    } else {
        copy_str(r.state, sizeof r.state, "failed");
        sw_failure_message(t->log, code, r.message, sizeof r.message);
    }
    return sw_record_write(m->out, id, &r, err);
}

void sw_journal_read(const char *output, sw_progress *p) {
    memset(p, 0, sizeof *p);
    char *path = sw_fmt("%s.journal/progress.json", output);
    cJSON *j = NULL;
    ll_err err;
    if (path && sw_exists(path) && sw_read_json(path, 1u << 20, &j, &err) == LL_OK) {
        p->have = 1;
        p->prompts_done = (int64_t)sw_jnum(j, "prompts_done", 0);
        p->tokens_done = (int64_t)sw_jnum(j, "tokens_done", 0);
        p->tokens_total = (int64_t)sw_jnum(j, "tokens_total", 0);
    }
    cJSON_Delete(j);
    free(path);
}

int sw_output_complete(const char *output) {
    char *journal = sw_fmt("%s.journal", output);
    int done = journal && sw_exists(output) && !sw_exists(journal);
    free(journal);
    return done;
}

/* `logitlens sweep record OUT TASK start|exit CODE`: the batch script's side of the records. */
ll_status ll_sweep_record(const char *out, int task, const char *event, int code, ll_err *err) {
    sw_manifest m;
    ll_status rc = sw_manifest_load(out, &m, err);
    if (rc) return rc;
    if (task < 0 || task >= m.n_tasks) {
        rc = ll_fail(err, LL_ERR_USAGE, "task %d: the sweep in %s has tasks 0..%d", task, out, m.n_tasks - 1);
    } else if (!strcmp(event, "start")) {
        const char *aj = getenv("SLURM_ARRAY_JOB_ID"), *at = getenv("SLURM_ARRAY_TASK_ID"), *j = getenv("SLURM_JOB_ID");
        char job[64] = "";
        if (aj && at) snprintf(job, sizeof job, "%s_%s", aj, at);
        else if (j) snprintf(job, sizeof job, "%s", j);
        rc = sw_record_start(out, task, job[0] ? "slurm" : "local", (long)getppid(), job, err);
    } else if (!strcmp(event, "exit")) {
        rc = sw_record_exit(&m, task, code, err);
    } else {
        rc = ll_fail(err, LL_ERR_USAGE, "record: expected the event 'start' or 'exit CODE', got '%s'", event);
    }
    sw_manifest_free(&m);
    return rc;
}
