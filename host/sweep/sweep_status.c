/* sweep_status.c: `sweep status OUT [--json]`: per model, tasks done / running / pending / failed, prompts
 * and tokens done (complete tasks count whole; running ones by their journal's progress.json), and an ETA;
 * then the failed tasks with their messages and the running ones with their progress. The ETA of a model is
 * its remaining tokens over its rate so far: tokens done / time since its first task first started. */
#include "sweep_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct model_sum {
    int n[SW_STATE_COUNT];
    int tasks;
    int64_t prompts, prompts_done, tokens, tokens_done;
    double first_start; /* earliest first attempt, 0 none */
    double eta;         /* seconds, -1 unknown, 0 done */
} model_sum;

static void task_done_counts(const sw_task *t, const sw_view *v, int64_t *prompts, int64_t *tokens) {
    if (v->state == SW_DONE) {
        *prompts = t->prompts;
        *tokens = t->tokens;
    } else if (v->prog.have) {
        *prompts = v->prog.prompts_done < t->prompts ? v->prog.prompts_done : t->prompts;
        *tokens = v->prog.tokens_done < t->tokens ? v->prog.tokens_done : t->tokens;
    } else {
        *prompts = *tokens = 0;
    }
}

static void summarize(const sw_manifest *m, const sw_view *v, model_sum *s) {
    const double now = sw_time_now();
    for (int i = 0; i < m->n_tasks; i++) {
        const sw_task *t = &m->tasks[i];
        model_sum *x = &s[t->model];
        int64_t p, k;
        task_done_counts(t, &v[i], &p, &k);
        x->n[v[i].state]++;
        x->tasks++;
        x->prompts += t->prompts;
        x->tokens += t->tokens;
        x->prompts_done += p;
        x->tokens_done += k;
        double fs = v[i].has_record ? v[i].rec.first_started : 0;
        if (fs > 0 && (x->first_start == 0 || fs < x->first_start)) x->first_start = fs;
    }
    for (int i = 0; i < m->n_models; i++) {
        model_sum *x = &s[i];
        if (x->n[SW_DONE] == x->tasks) x->eta = 0;
        else if (x->tokens_done > 0 && x->first_start > 0 && now > x->first_start)
            x->eta = (double)(x->tokens - x->tokens_done) / ((double)x->tokens_done / (now - x->first_start));
        else x->eta = -1;
    }
}

static void pct(int64_t a, int64_t b, char *buf, size_t cap) {
    snprintf(buf, cap, "%lld/%lld (%.0f%%)", (long long)a, (long long)b, b > 0 ? 100.0 * (double)a / (double)b : 100.0);
}

static void print_text(const sw_manifest *m, const sw_view *v, const model_sum *s, int queue_ok, int n_jobs,
                       char **jobs) {
    printf("sweep %s (%s): %d tasks; ", m->name, m->out, m->n_tasks);
    if (!n_jobs) printf("not submitted to SLURM\n");
    else {
        printf("SLURM job%s", n_jobs > 1 ? "s" : "");
        for (int i = 0; i < n_jobs; i++) printf(" %s", jobs[i]);
        printf(queue_ok ? " (squeue answered)\n" : " (squeue unavailable: states from the task files only)\n");
    }
    printf("%-20s %6s %6s %8s %8s %7s  %-20s %-24s %s\n", "model", "tasks", "done", "running", "pending", "failed",
           "prompts done", "tokens done", "ETA");
    for (int i = 0; i < m->n_models; i++) {
        const model_sum *x = &s[i];
        char pp[48], tk[48], eta[32];
        pct(x->prompts_done, x->prompts, pp, sizeof pp);
        pct(x->tokens_done, x->tokens, tk, sizeof tk);
        if (x->eta == 0) snprintf(eta, sizeof eta, "done");
        else sw_duration(x->eta, eta, sizeof eta);
        printf("%-20s %6d %6d %8d %8d %7d  %-20s %-24s %s\n", m->models[i].name, x->tasks, x->n[SW_DONE],
               x->n[SW_RUNNING], x->n[SW_PENDING], x->n[SW_FAILED], pp, tk, eta);
    }
    for (int pass = 0; pass < 2; pass++) {
        sw_state want = pass == 0 ? SW_FAILED : SW_RUNNING;
        int header = 0;
        for (int i = 0; i < m->n_tasks; i++) {
            if (v[i].state != want) continue;
            const sw_task *t = &m->tasks[i];
            if (!header++) printf("%s tasks:\n", pass == 0 ? "failed" : "running");
            printf("  task %d (%s %s): ", i, m->models[t->model].name, m->shards[t->shard].name);
            if (pass == 0) printf("%s (log: %s)\n", v[i].detail, t->log);
            else {
                int64_t p, k;
                task_done_counts(t, &v[i], &p, &k);
                printf("%lld/%lld tokens, %s\n", (long long)k, (long long)t->tokens, v[i].detail);
            }
        }
    }
}

static int print_json(const sw_manifest *m, const sw_view *v, const model_sum *s, int queue_ok, int n_jobs,
                      char **jobs) {
    cJSON *j = cJSON_CreateObject(), *a;
    if (!j) return -1;
    cJSON_AddStringToObject(j, "name", m->name);
    cJSON_AddStringToObject(j, "out", m->out);
    cJSON_AddNumberToObject(j, "tasks", m->n_tasks);
    cJSON_AddBoolToObject(j, "squeue", queue_ok);
    if ((a = cJSON_AddArrayToObject(j, "jobs")))
        for (int i = 0; i < n_jobs; i++) cJSON_AddItemToArray(a, cJSON_CreateString(jobs[i]));
    if ((a = cJSON_AddArrayToObject(j, "models")))
        for (int i = 0; i < m->n_models; i++) {
            const model_sum *x = &s[i];
            cJSON *o = cJSON_CreateObject();
            if (!o) continue;
            cJSON_AddItemToArray(a, o);
            cJSON_AddStringToObject(o, "name", m->models[i].name);
            cJSON_AddNumberToObject(o, "tasks", x->tasks);
            for (int k = 0; k < SW_STATE_COUNT; k++) cJSON_AddNumberToObject(o, sw_state_names[k], x->n[k]);
            cJSON_AddNumberToObject(o, "prompts", (double)x->prompts);
            cJSON_AddNumberToObject(o, "prompts_done", (double)x->prompts_done);
            cJSON_AddNumberToObject(o, "tokens", (double)x->tokens);
            cJSON_AddNumberToObject(o, "tokens_done", (double)x->tokens_done);
            if (x->eta >= 0) cJSON_AddNumberToObject(o, "eta_s", x->eta);
            else cJSON_AddNullToObject(o, "eta_s");
        }
    if ((a = cJSON_AddArrayToObject(j, "task_states")))
        for (int i = 0; i < m->n_tasks; i++) {
            const sw_task *t = &m->tasks[i];
            cJSON *o = cJSON_CreateObject();
            if (!o) continue;
            int64_t p, k;
            task_done_counts(t, &v[i], &p, &k);
            cJSON_AddItemToArray(a, o);
            cJSON_AddNumberToObject(o, "id", i);
            cJSON_AddStringToObject(o, "model", m->models[t->model].name);
            cJSON_AddStringToObject(o, "shard", m->shards[t->shard].name);
            cJSON_AddStringToObject(o, "state", sw_state_names[v[i].state]);
            cJSON_AddStringToObject(o, "detail", v[i].detail);
            cJSON_AddStringToObject(o, "record", v[i].has_record ? v[i].rec.state : "");
            cJSON_AddStringToObject(o, "queue", v[i].queue);
            cJSON_AddNumberToObject(o, "attempts", v[i].has_record ? v[i].rec.attempts : 0);
            cJSON_AddNumberToObject(o, "exit_code", v[i].has_record ? v[i].rec.exit_code : -1);
            cJSON_AddNumberToObject(o, "prompts_done", (double)p);
            cJSON_AddNumberToObject(o, "tokens_done", (double)k);
        }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return -1;
    puts(text);
    free(text);
    return 0;
}

ll_status ll_sweep_status(const char *out, int json, ll_err *err) {
    sw_manifest m;
    sw_view *v = NULL;
    model_sum *s = NULL;
    char **jobs = NULL;
    int n_jobs = 0, queue_ok = 0;
    ll_status rc = sw_manifest_load(out, &m, err);
    if (rc) return rc;
    if ((rc = sw_submissions(m.out, &jobs, &n_jobs, err)) || (rc = sw_views_get(&m, 1, &v, &queue_ok, err))) goto done;
    if (!(s = calloc((size_t)m.n_models + 1, sizeof *s))) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    summarize(&m, v, s);
    if (!json) print_text(&m, v, s, queue_ok, n_jobs, jobs);
    else if (print_json(&m, v, s, queue_ok, n_jobs, jobs)) rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    fflush(stdout);
done:
    for (int i = 0; i < n_jobs; i++) free(jobs[i]);
    free(jobs);
    free(s);
    free(v);
    sw_manifest_free(&m);
    return rc;
}
