/* sweep_manifest.c: the manifest OUT/sweep.json (docs/sweeps.md, "The manifest"): written by plan
 * (sw_manifest_json gives the part every command reads back; plan adds its estimates) and loaded by every
 * other subcommand. */
#include "sweep_int.h"

#include <stdlib.h>
#include <string.h>

#define MANIFEST_LIMIT (512u << 20)

void sw_manifest_free(sw_manifest *m) {
    if (!m) return;
    for (int i = 0; m->models && i < m->n_models; i++) {
        free(m->models[i].name);
        free(m->models[i].path);
        free(m->models[i].backend);
        free(m->models[i].merged);
    }
    for (int i = 0; m->shards && i < m->n_shards; i++) {
        free(m->shards[i].name);
        free(m->shards[i].set);
        free(m->shards[i].file);
    }
    for (int i = 0; m->tasks && i < m->n_tasks; i++) {
        sw_task *t = &m->tasks[i];
        free(t->output);
        free(t->log);
        for (int a = 0; t->argv && a < t->argc; a++) free(t->argv[a]);
        free(t->argv);
    }
    free(m->models);
    free(m->shards);
    free(m->tasks);
    free(m->out);
    free(m->exe);
    free(m->name);
    free(m->sweep_file);
    memset(m, 0, sizeof *m);
}

cJSON *sw_manifest_json(const sw_manifest *m) {
    cJSON *j = cJSON_CreateObject(), *a;
    if (!j) return NULL;
    int ok = cJSON_AddStringToObject(j, "format", SW_MANIFEST_FORMAT) &&
             cJSON_AddNumberToObject(j, "format_version", SW_MANIFEST_VERSION) &&
             cJSON_AddStringToObject(j, "name", m->name) && cJSON_AddStringToObject(j, "sweep_file", m->sweep_file) &&
             cJSON_AddStringToObject(j, "out", m->out) && cJSON_AddStringToObject(j, "logitlens", m->exe) &&
             cJSON_AddStringToObject(j, "logitlens_version", LL_VERSION) &&
             cJSON_AddBoolToObject(j, "resume", m->resume);
    if (ok && (ok = (a = cJSON_AddArrayToObject(j, "models")) != NULL))
        for (int i = 0; ok && i < m->n_models; i++) {
            const sw_model *x = &m->models[i];
            cJSON *o = cJSON_CreateObject();
            ok = o && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "name", x->name) &&
                 cJSON_AddStringToObject(o, "path", x->path) && cJSON_AddStringToObject(o, "backend", x->backend) &&
                 cJSON_AddNumberToObject(o, "tp", x->tp) && cJSON_AddNumberToObject(o, "pp", x->pp) &&
                 cJSON_AddNumberToObject(o, "ranks", x->ranks) && cJSON_AddNumberToObject(o, "prompts", (double)x->prompts) &&
                 cJSON_AddNumberToObject(o, "tokens", (double)x->tokens) &&
                 cJSON_AddStringToObject(o, "merged", x->merged) &&
                 cJSON_AddNumberToObject(o, "est_tokens_per_s", x->tokens_per_s);
        }
    if (ok && (ok = (a = cJSON_AddArrayToObject(j, "shards")) != NULL))
        for (int i = 0; ok && i < m->n_shards; i++) {
            const sw_shard *x = &m->shards[i];
            cJSON *o = cJSON_CreateObject();
            ok = o && cJSON_AddItemToArray(a, o) && cJSON_AddStringToObject(o, "name", x->name) &&
                 cJSON_AddStringToObject(o, "set", x->set) && cJSON_AddNumberToObject(o, "index", x->index) &&
                 cJSON_AddStringToObject(o, "file", x->file) && cJSON_AddNumberToObject(o, "first_prompt", (double)x->first) &&
                 cJSON_AddNumberToObject(o, "prompts", (double)x->prompts);
        }
    if (ok && (ok = (a = cJSON_AddArrayToObject(j, "tasks")) != NULL))
        for (int i = 0; ok && i < m->n_tasks; i++) {
            const sw_task *t = &m->tasks[i];
            cJSON *o = cJSON_CreateObject(), *av = NULL;
            char *cmd = sw_shell_join(t->argv, t->argc);
            ok = o && cmd && cJSON_AddItemToArray(a, o) && cJSON_AddNumberToObject(o, "id", t->id) &&
                 cJSON_AddStringToObject(o, "model", m->models[t->model].name) &&
                 cJSON_AddStringToObject(o, "shard", m->shards[t->shard].name) &&
                 cJSON_AddNumberToObject(o, "prompts", (double)t->prompts) &&
                 cJSON_AddNumberToObject(o, "tokens", (double)t->tokens) && cJSON_AddStringToObject(o, "output", t->output) &&
                 cJSON_AddStringToObject(o, "log", t->log) && cJSON_AddStringToObject(o, "command", cmd) &&
                 (av = cJSON_AddArrayToObject(o, "argv")) != NULL;
            for (int k = 0; ok && k < t->argc; k++) ok = cJSON_AddItemToArray(av, cJSON_CreateString(t->argv[k]));
            free(cmd);
        }
    if (!ok) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* A string item, duplicated; NULL (with the message) when missing. */
static char *need_str(const cJSON *o, const char *key, const char *path, const char *where, ll_status *rc, ll_err *err) {
    const char *s = sw_jstr(o, key);
    if (*rc) return NULL;
    if (!s) {
        *rc = ll_fail(err, LL_ERR_INPUT, "%s: %s: '%s' is missing or not a string", path, where, key);
        return NULL;
    }
    char *d = strdup(s);
    if (!d) *rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
    return d;
}

static int64_t need_int(const cJSON *o, const char *key, int64_t lo, const char *path, const char *where, ll_status *rc,
                        ll_err *err) {
    double v = sw_jnum(o, key, -1e300);
    if (*rc) return 0;
    if (v < (double)lo || v > 9e15 || v != (double)(int64_t)v) {
        *rc = ll_fail(err, LL_ERR_INPUT, "%s: %s: '%s' is missing or not an integer >= %lld", path, where, key,
                      (long long)lo);
        return 0;
    }
    return (int64_t)v;
}

static int model_index(const sw_manifest *m, const char *name) {
    for (int i = 0; name && i < m->n_models; i++)
        if (m->models[i].name && !strcmp(m->models[i].name, name)) return i;
    return -1;
}

static int shard_index(const sw_manifest *m, const char *name) {
    for (int i = 0; name && i < m->n_shards; i++)
        if (m->shards[i].name && !strcmp(m->shards[i].name, name)) return i;
    return -1;
}

static ll_status load_tree(const cJSON *j, const char *path, sw_manifest *m, ll_err *err) {
    ll_status rc = LL_OK;
    const char *fmt = sw_jstr(j, "format");
    if (!fmt || strcmp(fmt, SW_MANIFEST_FORMAT))
        return ll_fail(err, LL_ERR_INPUT, "%s: not a sweep manifest (format is not '%s')", path, SW_MANIFEST_FORMAT);
    if (sw_jnum(j, "format_version", 0) != SW_MANIFEST_VERSION)
        return ll_fail(err, LL_ERR_INPUT, "%s: format_version %g, this logitlens reads %d", path,
                       sw_jnum(j, "format_version", 0), SW_MANIFEST_VERSION);
    m->name = need_str(j, "name", path, "manifest", &rc, err);
    m->sweep_file = need_str(j, "sweep_file", path, "manifest", &rc, err);
    m->out = need_str(j, "out", path, "manifest", &rc, err);
    m->exe = need_str(j, "logitlens", path, "manifest", &rc, err);
    m->resume = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "resume"));
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(j, "models");
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(j, "shards");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(j, "tasks");
    if (!rc && (!cJSON_IsArray(models) || !cJSON_IsArray(shards) || !cJSON_IsArray(tasks)))
        rc = ll_fail(err, LL_ERR_INPUT, "%s: expected lists 'models', 'shards' and 'tasks'", path);
    if (rc) return rc;
    m->n_models = cJSON_GetArraySize(models);
    m->n_shards = cJSON_GetArraySize(shards);
    m->n_tasks = cJSON_GetArraySize(tasks);
    m->models = calloc((size_t)m->n_models + 1, sizeof *m->models);
    m->shards = calloc((size_t)m->n_shards + 1, sizeof *m->shards);
    m->tasks = calloc((size_t)m->n_tasks + 1, sizeof *m->tasks);
    if (!m->models || !m->shards || !m->tasks) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    int i = 0;
    char where[64];
    for (const cJSON *o = models->child; o && !rc; o = o->next, i++) {
        sw_model *x = &m->models[i];
        snprintf(where, sizeof where, "models[%d]", i);
        x->name = need_str(o, "name", path, where, &rc, err);
        x->path = need_str(o, "path", path, where, &rc, err);
        x->backend = need_str(o, "backend", path, where, &rc, err);
        x->merged = need_str(o, "merged", path, where, &rc, err);
        x->tp = (int)need_int(o, "tp", 1, path, where, &rc, err);
        x->pp = (int)need_int(o, "pp", 1, path, where, &rc, err);
        x->ranks = x->tp * x->pp;
        x->prompts = need_int(o, "prompts", 0, path, where, &rc, err);
        x->tokens = need_int(o, "tokens", 0, path, where, &rc, err);
        x->tokens_per_s = sw_jnum(o, "est_tokens_per_s", 0);
    }
    i = 0;
    for (const cJSON *o = shards->child; o && !rc; o = o->next, i++) {
        sw_shard *x = &m->shards[i];
        snprintf(where, sizeof where, "shards[%d]", i);
        x->name = need_str(o, "name", path, where, &rc, err);
        x->set = need_str(o, "set", path, where, &rc, err);
        x->file = need_str(o, "file", path, where, &rc, err);
        x->index = (int)need_int(o, "index", 0, path, where, &rc, err);
        x->first = need_int(o, "first_prompt", 0, path, where, &rc, err);
        x->prompts = need_int(o, "prompts", 1, path, where, &rc, err);
    }
    i = 0;
    for (const cJSON *o = tasks->child; o && !rc; o = o->next, i++) {
        sw_task *t = &m->tasks[i];
        snprintf(where, sizeof where, "tasks[%d]", i);
        t->id = (int)need_int(o, "id", 0, path, where, &rc, err);
        char *mn = need_str(o, "model", path, where, &rc, err), *sn = need_str(o, "shard", path, where, &rc, err);
        t->model = model_index(m, mn);
        t->shard = shard_index(m, sn);
        free(mn);
        free(sn);
        t->prompts = need_int(o, "prompts", 1, path, where, &rc, err);
        t->tokens = need_int(o, "tokens", 0, path, where, &rc, err);
        t->output = need_str(o, "output", path, where, &rc, err);
        t->log = need_str(o, "log", path, where, &rc, err);
        const cJSON *av = cJSON_GetObjectItemCaseSensitive(o, "argv");
        if (!rc && (t->id != i || t->model < 0 || t->shard < 0 || !cJSON_IsArray(av) || cJSON_GetArraySize(av) < 1))
            rc = ll_fail(err, LL_ERR_INPUT, "%s: %s: expected id %d, a known model and shard, and an argv list", path,
                         where, i);
        if (rc) break;
        t->argc = cJSON_GetArraySize(av);
        if (!(t->argv = calloc((size_t)t->argc + 1, sizeof *t->argv))) /* NULL-terminated for exec */ return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        int k = 0;
        for (const cJSON *s = av->child; s && !rc; s = s->next, k++) {
            if (!cJSON_IsString(s)) rc = ll_fail(err, LL_ERR_INPUT, "%s: %s: argv[%d] is not a string", path, where, k);
            else if (!(t->argv[k] = strdup(s->valuestring))) rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
    }
    return rc;
}

ll_status sw_manifest_load(const char *out, sw_manifest *m, ll_err *err) {
    memset(m, 0, sizeof *m);
    char *path = sw_fmt("%s/sweep.json", out);
    if (!path) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    cJSON *j = NULL;
    ll_status rc;
    if (!sw_exists(path))
        rc = ll_fail(err, LL_ERR_IO, "%s has no sweep.json: run `logitlens sweep plan SWEEP_FILE` first", out);
    else if (!(rc = sw_read_json(path, MANIFEST_LIMIT, &j, err)))
        rc = load_tree(j, path, m, err);
    cJSON_Delete(j);
    free(path);
    if (rc) sw_manifest_free(m);
    return rc;
}
