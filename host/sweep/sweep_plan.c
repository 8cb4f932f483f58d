/* sweep_plan.c: `logitlens sweep plan FILE`: the sweep file checked, every model and prompt file checked
 * (sweep_check.c), the tasks expanded (model x prompt shard), and OUT written: the shards' prompts
 * (OUT/prompts/SHARD.jsonl), each task's command (OUT/tasks/ID.args), the manifest (OUT/sweep.json) and the
 * job array (OUT/sweep.sbatch). Nothing is written until everything is checked. */
#include "cli/run.h"
#include "ll_memplan.h"
#include "ll_sha256.h"
#include "sweep_check.h"
#include "sweep_plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* What plan computes beside the manifest. */
typedef struct plan_ctx {
    ll_sweep s;
    sw_check *checks;          /* [n_models] */
    ll_prompt_set *sets;       /* [n_sets] as loaded (not tokenized) */
    char **shard_text;         /* [n_shards] the .jsonl of each shard */
    char (*shard_sha)[65];     /* [n_shards] */
    sw_manifest m;
} plan_ctx;

static void plan_free(plan_ctx *p) {
    for (int i = 0; p->checks && i < p->s.n_models; i++) sw_check_free(&p->checks[i]);
    for (int i = 0; p->sets && i < p->s.n_sets; i++) ll_prompts_free(&p->sets[i]);
    for (int i = 0; p->shard_text && i < p->m.n_shards; i++) free(p->shard_text[i]);
    free(p->checks);
    free(p->sets);
    free(p->shard_text);
    free(p->shard_sha);
    sw_manifest_free(&p->m);
    ll_sweep_free(&p->s);
}

static ll_status nomem(ll_err *err) { return ll_fail(err, LL_ERR_NOMEM, "out of memory"); }

/* A growing argv. */
typedef struct argv_b {
    char **v;
    int n, cap, failed;
} argv_b;

static void arg(argv_b *a, const char *fmt, ...) {
    if (a->failed) return;
    if (a->n + 1 >= a->cap) { /* room for the NULL after the last */
        int cap = a->cap ? 2 * a->cap : 32;
        char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (!v) {
            a->failed = 1;
            return;
        }
        a->v = v;
        a->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&a->v[a->n], fmt, ap) < 0) a->failed = 1;
    else a->v[++a->n] = NULL;
    va_end(ap);
}

/* The exact command of a task: `logitlens run` over the shard's prompts into the task's output, under srun
 * when the model has several ranks. */
static ll_status task_argv(const plan_ctx *p, const ll_sweep_model *sm, const sw_model *x, const sw_shard *sh,
                           sw_task *t, ll_err *err) {
    const ll_sweep_lens *l = &p->s.lens;
    argv_b a = {0};
    if (x->ranks > 1) {
        arg(&a, "srun");
        arg(&a, "--ntasks=%d", x->ranks);
        arg(&a, "--kill-on-bad-exit=1");
    }
    arg(&a, "%s", p->m.exe);
    arg(&a, "run");
    arg(&a, "--model"), arg(&a, "%s", x->path);
    arg(&a, "--prompts"), arg(&a, "%s", sh->file);
    arg(&a, "--out"), arg(&a, "%s", t->output);
    arg(&a, "--backend"), arg(&a, "%s", x->backend);
    arg(&a, "--batch-tokens"), arg(&a, "%lld", (long long)sm->batch_tokens);
    arg(&a, "--topk"), arg(&a, "%d", l->topk);
    if (l->points) arg(&a, "--points"), arg(&a, "%s", l->points);
    if (l->layers) arg(&a, "--layers"), arg(&a, "%s", l->layers);
    if (l->save_probs) arg(&a, "--save-probs"), arg(&a, "%s", l->save_probs);
    if (sm->threads) arg(&a, "--threads"), arg(&a, "%d", sm->threads);
    if (x->ranks > 1) arg(&a, "--tp"), arg(&a, "%d", x->tp), arg(&a, "--pp"), arg(&a, "%d", x->pp);
    if (p->m.resume) arg(&a, "--resume");
    t->argv = a.v;
    t->argc = a.n;
    if (a.failed) return nomem(err);
    for (int i = 0; i < a.n; i++)
        if (strchr(a.v[i], '\n'))
            return ll_fail(err, LL_ERR_INPUT, "%s: task %d: the argument '%s' holds a line break", p->s.file, t->id,
                           a.v[i]);
    return LL_OK;
}

/* One line of a shard file: the prompt as it was given (text or token ids) and its explicit answer. */
static ll_status shard_line(FILE *f, const ll_prompt *pr) {
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL;
    if (ok && pr->text) ok = cJSON_AddStringToObject(o, "prompt", pr->text) != NULL;
    else if (ok) {
        cJSON *a = cJSON_AddArrayToObject(o, "tokens");
        ok = a != NULL;
        for (int64_t i = 0; ok && i < pr->n; i++) ok = cJSON_AddItemToArray(a, cJSON_CreateNumber(pr->ids[i]));
    }
    if (ok && pr->target_text) ok = cJSON_AddStringToObject(o, "target", pr->target_text) != NULL;
    else if (ok && pr->target_id >= 0) ok = cJSON_AddNumberToObject(o, "target_id", pr->target_id) != NULL;
    char *line = ok ? cJSON_PrintUnformatted(o) : NULL;
    if (line) fprintf(f, "%s\n", line);
    free(line);
    cJSON_Delete(o);
    return line ? LL_OK : LL_ERR_NOMEM;
}

/* Shards (per prompt set, shard_size prompts each), their files' text, models and tasks. */
static ll_status expand(plan_ctx *p, ll_err *err) {
    ll_sweep *s = &p->s;
    sw_manifest *m = &p->m;
    int64_t n_shards = 0;
    for (int si = 0; si < s->n_sets; si++) n_shards += (p->sets[si].n + s->shard_size - 1) / s->shard_size;
    if (n_shards * s->n_models > 10000000)
        return ll_fail(err, LL_ERR_INPUT, "%s: %lld tasks; raise shard_size", s->file, (long long)(n_shards * s->n_models));
    m->n_shards = (int)n_shards;
    m->shards = calloc((size_t)n_shards, sizeof *m->shards);
    p->shard_text = calloc((size_t)n_shards, sizeof *p->shard_text);
    p->shard_sha = calloc((size_t)n_shards, sizeof *p->shard_sha);
    m->models = calloc((size_t)s->n_models, sizeof *m->models);
    m->n_models = s->n_models;
    m->n_tasks = (int)n_shards * s->n_models;
    m->tasks = calloc((size_t)m->n_tasks, sizeof *m->tasks);
    if (!m->shards || !p->shard_text || !p->shard_sha || !m->models || !m->tasks) return nomem(err);
    int k = 0;
    for (int si = 0; si < s->n_sets; si++)
        for (int64_t first = 0, idx = 0; first < p->sets[si].n; first += s->shard_size, idx++, k++) {
            sw_shard *sh = &m->shards[k];
            sh->set = strdup(s->sets[si].name);
            sh->index = (int)idx;
            sh->first = first;
            sh->prompts = p->sets[si].n - first < s->shard_size ? p->sets[si].n - first : s->shard_size;
            sh->name = sw_fmt("%s-%04d", s->sets[si].name, (int)idx);
            sh->file = sh->name ? sw_fmt("%s/prompts/%s.jsonl", m->out, sh->name) : NULL;
            if (!sh->set || !sh->name || !sh->file) return nomem(err);
            size_t len = 0;
            FILE *f = open_memstream(&p->shard_text[k], &len);
            if (!f) return nomem(err);
            ll_status rc = LL_OK;
            for (int64_t i = first; i < first + sh->prompts && !rc; i++) rc = shard_line(f, &p->sets[si].v[i]);
            if (fclose(f) || rc) return nomem(err);
            ll_sha256_hex(p->shard_text[k], len, p->shard_sha[k]);
        }
    for (int mi = 0; mi < s->n_models; mi++) {
        const ll_sweep_model *sm = &s->models[mi];
        sw_model *x = &m->models[mi];
        x->name = strdup(sm->name);
        x->path = realpath(sm->path, NULL); /* it opened: it exists */
        x->backend = strdup(sm->backend);
        x->merged = sw_fmt("%s/merged/%s.h5", m->out, sm->name);
        x->tp = sm->tp;
        x->pp = sm->pp;
        x->ranks = sm->tp * sm->pp;
        x->tokens_per_s = p->checks[mi].tokens_per_s;
        if (!x->name || !x->path || !x->backend || !x->merged) return nomem(err);
        for (int sh_i = 0; sh_i < m->n_shards; sh_i++) {
            const sw_shard *sh = &m->shards[sh_i];
            sw_task *t = &m->tasks[mi * m->n_shards + sh_i];
            int si = 0;
            while (strcmp(s->sets[si].name, sh->set)) si++;
            t->id = mi * m->n_shards + sh_i;
            t->model = mi;
            t->shard = sh_i;
            t->prompts = sh->prompts;
            for (int64_t i = sh->first; i < sh->first + sh->prompts; i++) t->tokens += p->checks[mi].set_tokens[si][i];
            x->prompts += t->prompts;
            x->tokens += t->tokens;
            t->output = sw_fmt("%s/results/%s/%s.h5", m->out, x->name, sh->name);
            t->log = sw_fmt("%s/logs/task-%d.log", m->out, t->id);
            if (!t->output || !t->log) return nomem(err);
            ll_status rc = task_argv(p, sm, x, sh, t, err);
            if (rc) return rc;
        }
    }
    return LL_OK;
}

/* A new plan may replace an old one in OUT only when no task of the old one has started, or when it runs
 * exactly the same commands over exactly the same prompts (then records and results stay valid). */
static ll_status check_replan(const plan_ctx *p, ll_err *err) {
    const sw_manifest *m = &p->m;
    char *path = sw_fmt("%s/sweep.json", m->out);
    if (!path) return nomem(err);
    ll_status rc = LL_OK;
    cJSON *old = NULL;
    if (!sw_exists(path) || sw_read_json(path, 512u << 20, &old, err)) {
        free(path);
        cJSON_Delete(old);
        return LL_OK; /* nothing readable to protect */
    }
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(old, "tasks");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(old, "shards");
    char diff[512] = "";
    if (cJSON_GetArraySize(tasks) != m->n_tasks || cJSON_GetArraySize(shards) != m->n_shards)
        snprintf(diff, sizeof diff, "it has %d tasks over %d shards, this plan %d over %d", cJSON_GetArraySize(tasks),
                 cJSON_GetArraySize(shards), m->n_tasks, m->n_shards);
    for (int i = 0; !diff[0] && i < m->n_tasks; i++) {
        char *cmd = sw_shell_join(m->tasks[i].argv, m->tasks[i].argc);
        const char *oc = sw_jstr(cJSON_GetArrayItem(tasks, i), "command");
        if (!cmd || !oc || strcmp(cmd, oc)) snprintf(diff, sizeof diff, "task %d's command differs", i);
        free(cmd);
    }
    for (int i = 0; !diff[0] && i < m->n_shards; i++) {
        const char *sha = sw_jstr(cJSON_GetArrayItem(shards, i), "sha256");
        if (!sha || strcmp(sha, p->shard_sha[i]))
            snprintf(diff, sizeof diff, "the prompts of shard %s differ", m->shards[i].name);
    }
    if (diff[0]) {
        int started = 0, n_old = cJSON_GetArraySize(tasks);
        for (int i = 0; i < n_old && !started; i++) {
            sw_record r;
            const char *out = sw_jstr(cJSON_GetArrayItem(tasks, i), "output");
            started = sw_record_read(m->out, i, &r) == 0 || (out && sw_exists(out));
        }
        if (started)
            rc = ll_fail(err, LL_ERR_USAGE, "%s already holds a sweep whose tasks have started, and this plan differs "
                         "(%s); plan into another output directory, or remove %s", m->out, diff, m->out);
        for (int i = m->n_tasks; !rc && i < n_old; i++) { /* stale command files of a larger old plan */
            char *a = sw_fmt("%s/tasks/%d.args", m->out, i);
            if (a) unlink(a);
            free(a);
        }
    }
    cJSON_Delete(old);
    free(path);
    return rc;
}

/* The manifest with plan's estimates and resources added. */
static cJSON *manifest_json(const plan_ctx *p, double *gpu_hours) {
    const sw_manifest *m = &p->m;
    cJSON *j = sw_manifest_json(m);
    if (!j) return NULL;
    char now[32];
    sw_iso_time(sw_time_now(), now, sizeof now);
    cJSON_AddStringToObject(j, "created", now);
    cJSON_AddNumberToObject(j, "shard_size", (double)p->s.shard_size);
    cJSON_AddStringToObject(j, "sbatch", "sweep.sbatch");
    *gpu_hours = 0;
    int i = 0;
    for (cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "models")->child; o; o = o->next, i++) {
        const sw_check *c = &p->checks[i];
        const sw_model *x = &m->models[i];
        double h = !strcmp(c->mem_backend, "cuda") && x->tokens_per_s > 0
                       ? (double)x->tokens / x->tokens_per_s * x->ranks / 3600.0 : 0;
        *gpu_hours += h;
        cJSON_AddStringToObject(o, "architecture", c->arch);
        cJSON_AddNumberToObject(o, "params", (double)c->n_params);
        cJSON_AddNumberToObject(o, "batch_tokens", (double)p->s.models[i].batch_tokens);
        cJSON_AddNumberToObject(o, "largest_batch_tokens", (double)c->max_batch);
        cJSON_AddStringToObject(o, "memory_backend", c->mem_backend);
        cJSON_AddNumberToObject(o, "memory_bytes_per_rank", c->mem_bytes);
        cJSON_AddNumberToObject(o, "est_gpu_hours", h);
    }
    i = 0;
    for (cJSON *o = cJSON_GetObjectItemCaseSensitive(j, "shards")->child; o; o = o->next, i++)
        cJSON_AddStringToObject(o, "sha256", p->shard_sha[i]);
    cJSON *e = cJSON_AddObjectToObject(j, "estimate");
    if (e) {
        cJSON_AddNumberToObject(e, "gpu_hours", *gpu_hours);
        cJSON_AddStringToObject(e, "method",
                                "per model: tokens / (the roofline tokens per second of `logitlens plan` for its tp x pp "
                                "split at its largest batch, on H200-class GPUs) x ranks; cpu-backend models count 0");
    }
    const ll_sweep_slurm *u = &p->s.slurm;
    cJSON *sl = cJSON_AddObjectToObject(j, "slurm");
    if (sl) {
        if (u->partition) cJSON_AddStringToObject(sl, "partition", u->partition);
        if (u->account) cJSON_AddStringToObject(sl, "account", u->account);
        if (u->qos) cJSON_AddStringToObject(sl, "qos", u->qos);
        if (u->time) cJSON_AddStringToObject(sl, "time", u->time);
        if (u->mem) cJSON_AddStringToObject(sl, "mem", u->mem);
        if (u->constraint) cJSON_AddStringToObject(sl, "constraint", u->constraint);
        if (u->gpus_per_task) cJSON_AddNumberToObject(sl, "gpus_per_task", u->gpus_per_task);
        if (u->cpus_per_task) cJSON_AddNumberToObject(sl, "cpus_per_task", u->cpus_per_task);
        if (u->max_parallel) cJSON_AddNumberToObject(sl, "max_parallel", u->max_parallel);
    }
    return j;
}

/* Everything under OUT: directories, shard files, command files, the manifest and the script. */
static ll_status write_out(const plan_ctx *p, double *gpu_hours, ll_err *err) {
    const sw_manifest *m = &p->m;
    const char *subdirs[] = {"prompts", "results", "logs", "tasks"};
    ll_status rc = sw_mkdirs(m->out, err);
    for (size_t i = 0; !rc && i < sizeof subdirs / sizeof *subdirs; i++) {
        char *d = sw_fmt("%s/%s", m->out, subdirs[i]);
        rc = d ? sw_mkdirs(d, err) : nomem(err);
        free(d);
    }
    for (int i = 0; !rc && i < m->n_models; i++) {
        char *d = sw_fmt("%s/results/%s", m->out, m->models[i].name);
        rc = d ? sw_mkdirs(d, err) : nomem(err);
        free(d);
    }
    for (int i = 0; !rc && i < m->n_shards; i++)
        rc = sw_write_atomic(m->shards[i].file, p->shard_text[i], strlen(p->shard_text[i]), err);
    for (int i = 0; !rc && i < m->n_tasks; i++) {
        const sw_task *t = &m->tasks[i];
        size_t len = 0;
        char *text = NULL, *path = sw_fmt("%s/tasks/%d.args", m->out, i);
        FILE *f = open_memstream(&text, &len);
        for (int a = 0; f && a < t->argc; a++) fprintf(f, "%s\n", t->argv[a]);
        if (!path || !f || fclose(f)) rc = nomem(err);
        else rc = sw_write_atomic(path, text, len, err);
        free(text);
        free(path);
    }
    if (!rc) rc = sw_sbatch_write(&p->s, m, err);
    cJSON *j = rc ? NULL : manifest_json(p, gpu_hours);
    if (!rc && !j) rc = nomem(err);
    char *path = sw_fmt("%s/sweep.json", m->out);
    if (!rc) rc = path ? sw_write_json(path, j, err) : nomem(err);
    free(path);
    cJSON_Delete(j);
    return rc;
}

static void print_summary(const plan_ctx *p, double gpu_hours) {
    const sw_manifest *m = &p->m;
    int64_t prompts = 0;
    for (int i = 0; i < p->s.n_sets; i++) prompts += p->sets[i].n;
    printf("sweep %s: %d models x %d shards = %d tasks; %lld prompts in %d sets, %lld per shard\n", m->name, m->n_models,
           m->n_shards, m->n_tasks, (long long)prompts, p->s.n_sets, (long long)p->s.shard_size);
    printf("  %-20s %-9s %5s %-7s %9s %12s %12s %14s %10s\n", "model", "arch", "ranks", "backend", "prompts", "tokens",
           "memory/rank", "est. tokens/s", "GPU-hours");
    for (int i = 0; i < m->n_models; i++) {
        const sw_model *x = &m->models[i];
        const sw_check *c = &p->checks[i];
        char mem[32], tps[32], gh[32];
        ll_memplan_human(c->mem_bytes, mem, sizeof mem);
        int gpu = !strcmp(c->mem_backend, "cuda") && x->tokens_per_s > 0;
        if (x->tokens_per_s > 0) snprintf(tps, sizeof tps, "%.3g", x->tokens_per_s);
        else snprintf(tps, sizeof tps, "-");
        if (gpu) snprintf(gh, sizeof gh, "%.3g", (double)x->tokens / x->tokens_per_s * x->ranks / 3600.0);
        else snprintf(gh, sizeof gh, "0 (%s)", c->mem_backend);
        printf("  %-20s %-9s %5d %-7s %9lld %12lld %12s %14s %10s\n", x->name, c->arch, x->ranks, x->backend,
               (long long)x->prompts, (long long)x->tokens, mem, tps, gh);
    }
    printf("estimated GPU-hours: %.3g (per model: its tokens / the roofline tokens per second of `logitlens plan` for its\n"
           "  tp x pp split at its largest batch on H200-class GPUs, x its ranks; cpu-backend models count 0; a\n"
           "  lower bound: loading weights and partly filled batches are not counted)\n", gpu_hours);
    printf("wrote %s/sweep.json (manifest), %s/sweep.sbatch (job array 0-%d), %d shard files in %s/prompts\n", m->out,
           m->out, m->n_tasks - 1, m->n_shards, m->out);
    if (!m->resume)
        printf("note: this logitlens's run has no --resume: a requeued task starts its shard again\n");
    if (m->n_tasks > 1001)
        printf("note: %d tasks; SLURM's default MaxArraySize allows array indices up to 1000 (raise shard_size or "
               "MaxArraySize)\n", m->n_tasks);
    printf("next: logitlens sweep submit %s   (or: logitlens sweep run --local %s -j N)\n", m->out, m->out);
}

ll_status ll_sweep_plan(const ll_sweep_plan_opts *o, ll_err *err) {
    plan_ctx p = {0};
    ll_status rc = ll_sweep_load(o->file, &p.s, err);
    if (rc) goto done;
    ll_sweep *s = &p.s;
    for (const char *c = s->output; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\'' || *c == '"' || *c == '\\' || *c == '%') {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: output: '%s' holds a space, quote, backslash or '%%', which #SBATCH "
                         "lines cannot carry; choose another directory", s->file, s->output);
            goto done;
        }
    p.m.out = strdup(s->output);
    p.m.exe = strdup(o->exe);
    p.m.name = strdup(s->name);
    p.m.sweep_file = realpath(o->file, NULL);
    p.m.resume = strstr(ll_run_usage, "--resume") != NULL;
    p.checks = calloc((size_t)s->n_models, sizeof *p.checks);
    p.sets = calloc((size_t)s->n_sets, sizeof *p.sets);
    if (!p.m.out || !p.m.exe || !p.m.name || !p.m.sweep_file || !p.checks || !p.sets) {
        rc = nomem(err);
        goto done;
    }
    /* every prompt file, then every model with every prompt: all before anything is written */
    for (int i = 0; i < s->n_sets; i++)
        if ((rc = sw_load_set(&s->sets[i], &p.sets[i], err))) {
            ll_fail_prefix(err, rc, "%s: prompts[%d] (%s)", s->file, i, s->sets[i].name);
            goto done;
        }
    for (int i = 0; i < s->n_models; i++)
        if ((rc = sw_check_model(s, i, &p.checks[i], err))) goto done;
    if ((rc = expand(&p, err)) || (rc = check_replan(&p, err))) goto done;
    double gpu_hours = 0;
    if ((rc = write_out(&p, &gpu_hours, err))) goto done;
    print_summary(&p, gpu_hours);
done:
    plan_free(&p);
    return rc;
}
