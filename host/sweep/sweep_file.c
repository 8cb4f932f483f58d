/* sweep_file.c: a sweep file (YAML or JSON, the same keys; docs/sweeps.md) into an ll_sweep. Every key is
 * checked here, before anything runs: unknown keys, missing keys, wrong types, values out of range, names
 * that collide. Messages are one line: "sweep.yaml:12: models[1].tp: expected a positive integer, got 'two'". */
#include "ll_sweep.h"
#include "sweep_tree.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct vctx {
    const char *file;
    const sw_lines *lines;
    const char *base_dir; /* relative paths are joined to it */
    ll_err *err;
} vctx;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static ll_status v_fail(const vctx *c, const cJSON *node, const char *path, const char *fmt, ...) {
    char msg[LL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = sw_lines_get(c->lines, node);
    char where[64] = "";
    if (line > 0) snprintf(where, sizeof where, ":%d", line);
    return ll_fail(c->err, LL_ERR_INPUT, "%s%s: %s%s%s", c->file, where, path, path[0] ? ": " : "", msg);
}

static ll_status v_nomem(const vctx *c) { return ll_fail(c->err, LL_ERR_NOMEM, "%s: out of memory", c->file); }

/* What a node is, for "got ..." (at most ~60 characters). */
static void got(const cJSON *n, char *buf, size_t cap) {
    if (!n) snprintf(buf, cap, "nothing");
    else if (cJSON_IsNull(n)) snprintf(buf, cap, "nothing (null)");
    else if (cJSON_IsBool(n)) snprintf(buf, cap, "%s", cJSON_IsTrue(n) ? "true" : "false");
    else if (cJSON_IsNumber(n)) snprintf(buf, cap, "%.10g", n->valuedouble);
    else if (cJSON_IsString(n)) {
        const char *s = n->valuestring;
        size_t len = strlen(s);
        char safe[48];
        size_t k = 0;
        for (size_t i = 0; i < len && k < 40; i++) safe[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
        safe[k] = 0;
        snprintf(buf, cap, "'%s%s'", safe, len > 40 ? "..." : "");
    } else if (cJSON_IsArray(n)) snprintf(buf, cap, n->child ? "a list" : "an empty list");
    else if (cJSON_IsObject(n)) snprintf(buf, cap, n->child ? "a mapping" : "an empty mapping");
    else snprintf(buf, cap, "an unknown value");
}

static ll_status v_type(const vctx *c, const cJSON *n, const char *path, const char *expected) {
    char g[64];
    got(n, g, sizeof g);
    return v_fail(c, n, path, "expected %s, got %s", expected, g);
}

static void subpath(char *buf, size_t cap, const char *path, const char *key) {
    snprintf(buf, cap, "%s%s%s", path, path[0] ? "." : "", key);
}

/* Every key of obj must be one of allowed (NULL-terminated); no key twice (JSON allows it, we do not). */
static ll_status v_keys(const vctx *c, const cJSON *obj, const char *path, const char *const *allowed) {
    for (const cJSON *k = obj->child; k; k = k->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(k->string, *a);
        if (!ok) {
            char list[512] = "";
            size_t n = 0;
            for (const char *const *a = allowed; *a && n < sizeof list; a++)
                n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", a == allowed ? "" : ", ", *a);
            char key[64];
            snprintf(key, sizeof key, "%.60s", k->string);
            for (char *p = key; *p; p++)
                if ((unsigned char)*p < 0x20) *p = '?';
            return v_fail(c, k, path[0] ? path : "top level", "unknown key '%s' (expected one of: %s)", key, list);
        }
        for (const cJSON *d = obj->child; d != k; d = d->next)
            if (!strcmp(d->string, k->string))
                return v_fail(c, k, path[0] ? path : "top level", "duplicate key '%.60s'", k->string);
    }
    return LL_OK;
}

static const cJSON *v_get(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key); }

static ll_status v_missing(const vctx *c, const cJSON *obj, const char *path, const char *key, const char *expected) {
    char p[256];
    subpath(p, sizeof p, path, key);
    return v_fail(c, obj, p, "missing (expected %s)", expected);
}

/* Characters a value may hold. */
enum { CS_PATH, CS_NAME, CS_WORD, CS_LINE };
static int is_name_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
           ch == '-';
}
static int charset_ok(const char *s, int cs) {
    if (!*s) return 0;
    if (cs == CS_NAME && (strlen(s) > 64 || s[0] == '.')) return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 && !(cs == CS_LINE && *p == '\t')) return 0;
        if (*p == 0x7f) return 0;
        if (cs == CS_NAME && !is_name_char(*p)) return 0;
        if (cs == CS_WORD && (*p <= ' ' || *p >= 0x7f || strchr("'\"\\$`;", *p))) return 0;
    }
    return 1;
}

/* A string value in charset cs; *out stays NULL when the key is absent and not required. */
static ll_status v_str(const vctx *c, const cJSON *obj, const char *path, const char *key, int required, int cs,
                       const char *expected, char **out) {
    const cJSON *n = v_get(obj, key);
    char p[256];
    subpath(p, sizeof p, path, key);
    if (!n) return required ? v_missing(c, obj, path, key, expected) : LL_OK;
    if (!cJSON_IsString(n) || !charset_ok(n->valuestring, cs)) return v_type(c, n, p, expected);
    if (!(*out = strdup(n->valuestring))) return v_nomem(c);
    return LL_OK;
}

/* An integer in [lo, hi]. */
static ll_status v_int(const vctx *c, const cJSON *obj, const char *path, const char *key, int required, int64_t lo,
                       int64_t hi, const char *expected, int64_t *out) {
    const cJSON *n = v_get(obj, key);
    char p[256];
    subpath(p, sizeof p, path, key);
    if (!n) return required ? v_missing(c, obj, path, key, expected) : LL_OK;
    double v = cJSON_IsNumber(n) ? n->valuedouble : NAN;
    if (!isfinite(v) || v != floor(v) || v < (double)lo || v > (double)hi) return v_type(c, n, p, expected);
    *out = (int64_t)v;
    return LL_OK;
}

/* A string, or a list of strings; each in charset cs. */
static ll_status v_strlist(const vctx *c, const cJSON *n, const char *path, int cs, const char *expected, char ***out,
                           int *count) {
    int len = cJSON_IsString(n) ? 1 : cJSON_IsArray(n) ? cJSON_GetArraySize(n) : 0;
    if (len < 1 || len > LL_SWEEP_MAX_ITEMS) return v_type(c, n, path, expected);
    if (!(*out = calloc((size_t)len, sizeof **out))) return v_nomem(c);
    const cJSON *it = cJSON_IsString(n) ? n : n->child;
    for (int i = 0; i < len; i++, it = it->next) {
        char p[256];
        snprintf(p, sizeof p, cJSON_IsString(n) ? "%s" : "%s[%d]", path, i);
        if (!cJSON_IsString(it) || !charset_ok(it->valuestring, cs)) return v_type(c, it, p, expected);
        if (!((*out)[i] = strdup(it->valuestring))) return v_nomem(c);
        *count = i + 1;
    }
    return LL_OK;
}

/* The list at key: an array of 1..LL_SWEEP_MAX_ITEMS mappings. */
static ll_status v_list(const vctx *c, const cJSON *root, const char *key, const char *expected, const cJSON **out,
                        int *n) {
    const cJSON *l = v_get(root, key);
    if (!l) return v_missing(c, root, "", key, expected);
    *n = cJSON_IsArray(l) ? cJSON_GetArraySize(l) : 0;
    if (*n < 1 || *n > LL_SWEEP_MAX_ITEMS) return v_type(c, l, key, expected);
    *out = l;
    return LL_OK;
}

static ll_status join_path(const vctx *c, const char *p, char **out) {
    if (p[0] == '/' || !c->base_dir || !c->base_dir[0]) {
        if (!(*out = strdup(p))) return v_nomem(c);
        return LL_OK;
    }
    size_t n = strlen(c->base_dir) + strlen(p) + 2;
    if (!(*out = malloc(n))) return v_nomem(c);
    snprintf(*out, n, "%s/%s", c->base_dir, p);
    return LL_OK;
}

/* The last path component without a trailing '/', without ext (when given and present), made a name. */
static char *derive_name(const char *path, const char *const *exts) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    size_t start = len;
    while (start > 0 && path[start - 1] != '/') start--;
    char *s = strndup(path + start, len - start);
    if (!s) return NULL;
    for (const char *const *e = exts; *e; e++) {
        size_t n = strlen(s), k = strlen(*e);
        if (n > k && !strcmp(s + n - k, *e)) {
            s[n - k] = 0;
            break;
        }
    }
    for (char *p = s; *p; p++)
        if (!is_name_char((unsigned char)*p)) *p = '_';
    if (s[0] == '.') s[0] = '_';
    if (strlen(s) > 64) s[64] = 0;
    if (!s[0]) {
        free(s);
        s = strdup("unnamed");
    }
    return s;
}

#define NAME_EXPECTED "a name of letters, digits, '.', '_' and '-' (at most 64, not starting with '.')"
#define PATH_EXPECTED "a file or directory path"

static ll_status v_model(const vctx *c, const cJSON *m, int i, ll_sweep_model *out) {
    static const char *const keys[] = {"name", "path", "backend", "tp", "pp", "batch_tokens", "threads", NULL};
    static const char *const exts[] = {".gguf", NULL};
    char path[64];
    snprintf(path, sizeof path, "models[%d]", i);
    if (!cJSON_IsObject(m)) return v_type(c, m, path, "a mapping with 'path' and optionally name, backend, tp, pp, batch_tokens, threads");
    ll_status rc;
    char *raw = NULL;
    int64_t v;
    out->tp = out->pp = 1;
    out->batch_tokens = 4096;
    if ((rc = v_keys(c, m, path, keys))) return rc;
    if ((rc = v_str(c, m, path, "path", 1, CS_PATH, "the model: a Hugging Face directory or a .gguf file", &raw))) return rc;
    rc = join_path(c, raw, &out->path);
    if (!rc) rc = v_str(c, m, path, "name", 0, CS_NAME, NAME_EXPECTED, &out->name);
    if (!rc && !out->name && !(out->name = derive_name(raw, exts))) rc = v_nomem(c);
    free(raw);
    if (rc) return rc;
    if ((rc = v_str(c, m, path, "backend", 0, CS_NAME, "cpu, cuda or auto", &out->backend))) return rc;
    if (out->backend && strcmp(out->backend, "cpu") && strcmp(out->backend, "cuda") && strcmp(out->backend, "auto")) {
        char p[96];
        subpath(p, sizeof p, path, "backend");
        return v_type(c, v_get(m, "backend"), p, "cpu, cuda or auto");
    }
    if (!out->backend && !(out->backend = strdup("auto"))) return v_nomem(c);
    v = 1;
    if ((rc = v_int(c, m, path, "tp", 0, 1, 1024, "a tensor-parallel rank count in [1, 1024]", &v))) return rc;
    out->tp = (int)v;
    v = 1;
    if ((rc = v_int(c, m, path, "pp", 0, 1, 256, "a pipeline stage count in [1, 256]", &v))) return rc;
    out->pp = (int)v;
    if ((rc = v_int(c, m, path, "batch_tokens", 0, 1, 1LL << 32, "tokens per batch, a positive integer", &out->batch_tokens)))
        return rc;
    v = 0;
    if ((rc = v_int(c, m, path, "threads", 0, 0, 4096, "a CPU thread count in [0, 4096] (0 = all cores)", &v))) return rc;
    out->threads = (int)v;
    return LL_OK;
}

static ll_status v_prompt_set(const vctx *c, const cJSON *s, int i, ll_sweep_prompt_set *out) {
    static const char *const keys[] = {"name", "files", NULL};
    static const char *const exts[] = {".jsonl", ".txt", NULL};
    char path[64], p[96];
    snprintf(path, sizeof path, "prompts[%d]", i);
    if (!cJSON_IsObject(s)) return v_type(c, s, path, "a mapping with 'files' and optionally 'name'");
    ll_status rc;
    if ((rc = v_keys(c, s, path, keys))) return rc;
    const cJSON *f = v_get(s, "files");
    if (!f) return v_missing(c, s, path, "files", "a prompt file (.txt or .jsonl) or a list of them");
    subpath(p, sizeof p, path, "files");
    char **raw = NULL;
    int n = 0;
    rc = v_strlist(c, f, p, CS_PATH, "a prompt file (.txt or .jsonl) or a list of them", &raw, &n);
    if (!rc && !(out->files = calloc((size_t)n, sizeof *out->files))) rc = v_nomem(c);
    for (int k = 0; !rc && k < n; k++) {
        size_t len = strlen(raw[k]);
        if (!(len > 4 && !strcmp(raw[k] + len - 4, ".txt")) && !(len > 6 && !strcmp(raw[k] + len - 6, ".jsonl"))) {
            char pk[128];
            snprintf(pk, sizeof pk, cJSON_IsString(f) ? "%s" : "%s[%d]", p, k);
            rc = v_type(c, cJSON_IsString(f) ? f : cJSON_GetArrayItem(f, k), pk, "a prompt file ending in .txt or .jsonl");
        } else if (!(rc = join_path(c, raw[k], &out->files[k]))) {
            out->n_files = k + 1;
        }
    }
    if (!rc) rc = v_str(c, s, path, "name", 0, CS_NAME, NAME_EXPECTED, &out->name);
    if (!rc && !out->name && !(out->name = derive_name(raw[0], exts))) rc = v_nomem(c);
    for (int k = 0; raw && k < n; k++) free(raw[k]);
    free(raw);
    return rc;
}

/* "a,b,c" from a list of strings (or the string itself). */
static char *join_list(char **v, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(v[i]) + 1;
    char *s = malloc(len);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i) strcat(s, ",");
        strcat(s, v[i]);
    }
    return s;
}

/* --save-probs: last, all, or positions (an integer, a list of integers, or "0,-1"). */
static ll_status v_save_probs(const vctx *c, const cJSON *n, char **out) {
    static const char expected[] = "last, all, or token positions (an integer, a list of integers, or \"0,-1\")";
    char buf[64];
    if (cJSON_IsString(n)) {
        const char *s = n->valuestring;
        int ok = !strcmp(s, "last") || !strcmp(s, "all");
        if (!ok && *s) { /* a comma list of integers */
            ok = 1;
            for (const char *p = s; *p && ok; p++) ok = (*p >= '0' && *p <= '9') || *p == ',' || *p == '-';
        }
        if (!ok || strlen(s) > 4096) return v_type(c, n, "lens.save_probs", expected);
        if (!(*out = strdup(s))) return v_nomem(c);
        return LL_OK;
    }
    int len = cJSON_IsArray(n) ? cJSON_GetArraySize(n) : cJSON_IsNumber(n) ? 1 : 0;
    if (len < 1 || len > 1024) return v_type(c, n, "lens.save_probs", expected);
    if (!(*out = calloc((size_t)len, 24))) return v_nomem(c);
    const cJSON *it = cJSON_IsArray(n) ? n->child : n;
    for (int i = 0; i < len; i++, it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        if (!isfinite(v) || v != floor(v) || fabs(v) > 1e9) return v_type(c, it, "lens.save_probs", expected);
        snprintf(buf, sizeof buf, "%s%lld", i ? "," : "", (long long)v);
        strcat(*out, buf);
    }
    return LL_OK;
}

static ll_status v_lens(const vctx *c, const cJSON *l, ll_sweep_lens *out) {
    static const char *const keys[] = {"points", "layers", "topk", "save_probs", NULL};
    static const char pts_expected[] = "point kinds from embed, mid, post (a comma list or a list)";
    out->topk = 10;
    if (!l) return LL_OK;
    if (!cJSON_IsObject(l)) return v_type(c, l, "lens", "a mapping of points, layers, topk, save_probs");
    ll_status rc;
    if ((rc = v_keys(c, l, "lens", keys))) return rc;
    const cJSON *p = v_get(l, "points");
    if (p) {
        char **kinds = NULL;
        int n = 0;
        rc = v_strlist(c, p, "lens.points", CS_WORD, pts_expected, &kinds, &n);
        if (!rc && !(out->points = join_list(kinds, n))) rc = v_nomem(c);
        for (int i = 0; kinds && i < n; i++) free(kinds[i]);
        free(kinds);
        if (rc) return rc;
        /* each kind once, from the three (a comma list in one string is split here) */
        int seen[3] = {0};
        char *dup = strdup(out->points), *save = NULL;
        if (!dup) return v_nomem(c);
        for (char *t = strtok_r(dup, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
            int k = !strcmp(t, "embed") ? 0 : !strcmp(t, "mid") ? 1 : !strcmp(t, "post") ? 2 : -1;
            if (k < 0 || seen[k]++)
                rc = v_fail(c, p, "lens.points", "'%.40s' %s (expected embed, mid and post, each at most once)", t,
                            k < 0 ? "is not a point kind" : "is given twice");
        }
        free(dup);
        if (rc) return rc;
    }
    const cJSON *ly = v_get(l, "layers");
    if (ly) {
        char buf[32];
        if (cJSON_IsNumber(ly) && ly->valuedouble == floor(ly->valuedouble) && fabs(ly->valuedouble) < 1e6) {
            snprintf(buf, sizeof buf, "%lld", (long long)ly->valuedouble);
            if (!(out->layers = strdup(buf))) return v_nomem(c);
        } else if (cJSON_IsString(ly) && charset_ok(ly->valuestring, CS_WORD) && strlen(ly->valuestring) < 64) {
            if (!(out->layers = strdup(ly->valuestring))) return v_nomem(c);
        } else {
            return v_type(c, ly, "lens.layers", "a layer range in Python slice syntax (\"0:32:4\") or a layer index");
        }
    }
    int64_t k = 10;
    if ((rc = v_int(c, l, "lens", "topk", 0, 1, 1 << 20, "a positive integer", &k))) return rc;
    out->topk = (int)k;
    const cJSON *sp = v_get(l, "save_probs");
    if (sp && (rc = v_save_probs(c, sp, &out->save_probs))) return rc;
    return LL_OK;
}

/* SLURM's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S (or UNLIMITED). */
static int slurm_time_ok(const char *s) {
    if (!strcmp(s, "UNLIMITED") || !strcmp(s, "infinite")) return 1;
    int days = 0, fields = 0;
    const char *p = s;
    if (strchr(s, '-')) {
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
        if (*p++ != '-') return 0;
        days = 1;
    }
    for (;;) {
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
        fields++;
        if (*p == 0) break;
        if (*p++ != ':') return 0;
    }
    return fields <= 3 && (!days || fields >= 1);
}

static ll_status v_slurm(const vctx *c, const cJSON *s, ll_sweep_slurm *out) {
    static const char *const keys[] = {"job_name", "partition", "account", "qos", "time", "gpus_per_task",
                                       "cpus_per_task", "mem", "constraint", "max_parallel", "extra", "setup", NULL};
    static const char word[] = "a SLURM name (no spaces or quotes)";
    if (!s) return LL_OK;
    if (!cJSON_IsObject(s)) return v_type(c, s, "slurm", "a mapping of SLURM resources (docs/sweeps.md)");
    ll_status rc;
    int64_t v;
    if ((rc = v_keys(c, s, "slurm", keys))) return rc;
    if ((rc = v_str(c, s, "slurm", "job_name", 0, CS_WORD, word, &out->job_name)) ||
        (rc = v_str(c, s, "slurm", "partition", 0, CS_WORD, word, &out->partition)) ||
        (rc = v_str(c, s, "slurm", "account", 0, CS_WORD, word, &out->account)) ||
        (rc = v_str(c, s, "slurm", "qos", 0, CS_WORD, word, &out->qos)) ||
        (rc = v_str(c, s, "slurm", "constraint", 0, CS_WORD, "a SLURM constraint (no spaces or quotes)", &out->constraint)))
        return rc;
    const cJSON *t = v_get(s, "time");
    static const char t_expected[] = "a SLURM time limit (minutes, \"H:M:S\" or \"D-H:M:S\")";
    if (t) {
        char buf[32];
        if (cJSON_IsNumber(t) && t->valuedouble == floor(t->valuedouble) && t->valuedouble >= 1 && t->valuedouble < 1e9)
            snprintf(buf, sizeof buf, "%lld", (long long)t->valuedouble);
        else if (cJSON_IsString(t) && strlen(t->valuestring) < 32 && slurm_time_ok(t->valuestring))
            snprintf(buf, sizeof buf, "%s", t->valuestring);
        else return v_type(c, t, "slurm.time", t_expected);
        if (!(out->time = strdup(buf))) return v_nomem(c);
    }
    const cJSON *m = v_get(s, "mem");
    static const char m_expected[] = "memory per node (\"64G\", \"500M\", or megabytes)";
    if (m) {
        char buf[32];
        int ok = 0;
        if (cJSON_IsNumber(m) && m->valuedouble == floor(m->valuedouble) && m->valuedouble >= 1 && m->valuedouble < 1e12) {
            snprintf(buf, sizeof buf, "%lld", (long long)m->valuedouble);
            ok = 1;
        } else if (cJSON_IsString(m) && strlen(m->valuestring) < 24) {
            const char *p = m->valuestring;
            while (*p >= '0' && *p <= '9') p++;
            ok = p > m->valuestring && (*p == 0 || (strchr("KMGTkmgt", *p) && p[1] == 0));
            snprintf(buf, sizeof buf, "%s", m->valuestring);
        }
        if (!ok) return v_type(c, m, "slurm.mem", m_expected);
        if (!(out->mem = strdup(buf))) return v_nomem(c);
    }
    v = 0;
    if ((rc = v_int(c, s, "slurm", "gpus_per_task", 0, 0, 64, "GPUs per task in [0, 64]", &v))) return rc;
    out->gpus_per_task = (int)v;
    v = 0;
    if ((rc = v_int(c, s, "slurm", "cpus_per_task", 0, 1, 4096, "CPUs per task in [1, 4096]", &v))) return rc;
    out->cpus_per_task = (int)v;
    v = 0;
    if ((rc = v_int(c, s, "slurm", "max_parallel", 0, 1, 1000000, "array tasks at once, a positive integer", &v)))
        return rc;
    out->max_parallel = (int)v;
    const cJSON *e = v_get(s, "extra");
    if (e) {
        if ((rc = v_strlist(c, e, "slurm.extra", CS_LINE, "sbatch options, one per item (\"--exclusive\")", &out->extra,
                            &out->n_extra)))
            return rc;
        for (int i = 0; i < out->n_extra; i++)
            if (out->extra[i][0] != '-') {
                char p[64];
                snprintf(p, sizeof p, cJSON_IsString(e) ? "slurm.extra" : "slurm.extra[%d]", i);
                return v_type(c, cJSON_IsString(e) ? e : cJSON_GetArrayItem(e, i), p,
                              "an sbatch option starting with '-' (\"--exclusive\")");
            }
    }
    const cJSON *su = v_get(s, "setup");
    if (su && (rc = v_strlist(c, su, "slurm.setup", CS_LINE, "shell lines run before each task", &out->setup,
                              &out->n_setup)))
        return rc;
    return LL_OK;
}

static ll_status v_root(const vctx *c, const cJSON *root, ll_sweep *s) {
    static const char *const keys[] = {"name", "output", "shard_size", "models", "prompts", "lens", "slurm", NULL};
    static const char *const exts[] = {".yaml", ".yml", ".json", NULL};
    ll_status rc;
    if (!cJSON_IsObject(root))
        return v_type(c, root, "top level", "a mapping with output, shard_size, models and prompts (docs/sweeps.md)");
    if ((rc = v_keys(c, root, "", keys))) return rc;
    if ((rc = v_str(c, root, "", "name", 0, CS_NAME, NAME_EXPECTED, &s->name))) return rc;
    if (!s->name && !(s->name = derive_name(s->file, exts))) return v_nomem(c);
    char *out = NULL;
    if ((rc = v_str(c, root, "", "output", 1, CS_PATH, "the output directory of the sweep", &out))) return rc;
    rc = join_path(c, out, &s->output);
    free(out);
    if (rc) return rc;
    if ((rc = v_int(c, root, "", "shard_size", 1, 1, 1000000000, "prompts per shard, a positive integer",
                    &s->shard_size)))
        return rc;
    const cJSON *l;
    if ((rc = v_list(c, root, "models", "a list of models (each a mapping with 'path')", &l, &s->n_models))) return rc;
    if (!(s->models = calloc((size_t)s->n_models, sizeof *s->models))) return v_nomem(c);
    int i = 0;
    for (const cJSON *m = l->child; m; m = m->next, i++) {
        if ((rc = v_model(c, m, i, &s->models[i]))) return rc;
        for (int j = 0; j < i; j++)
            if (!strcmp(s->models[j].name, s->models[i].name)) {
                char p[64];
                snprintf(p, sizeof p, "models[%d].name", i);
                return v_fail(c, m, p, "'%s' is already the name of models[%d]; give each model a distinct name",
                              s->models[i].name, j);
            }
    }
    if ((rc = v_list(c, root, "prompts", "a list of prompt sets (each a mapping with 'files')", &l, &s->n_sets)))
        return rc;
    if (!(s->sets = calloc((size_t)s->n_sets, sizeof *s->sets))) return v_nomem(c);
    i = 0;
    for (const cJSON *p = l->child; p; p = p->next, i++) {
        if ((rc = v_prompt_set(c, p, i, &s->sets[i]))) return rc;
        for (int j = 0; j < i; j++)
            if (!strcmp(s->sets[j].name, s->sets[i].name)) {
                char pp[64];
                snprintf(pp, sizeof pp, "prompts[%d].name", i);
                return v_fail(c, p, pp, "'%s' is already the name of prompts[%d]; give each prompt set a distinct name",
                              s->sets[i].name, j);
            }
    }
    if ((rc = v_lens(c, v_get(root, "lens"), &s->lens))) return rc;
    return v_slurm(c, v_get(root, "slurm"), &s->slurm);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

ll_status ll_sweep_parse(const char *file, const char *base_dir, const char *text, size_t len, ll_sweep *s,
                         ll_err *err) {
    memset(s, 0, sizeof *s);
    if (!(s->file = strdup(file))) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", file);
    s->lens.topk = 10;
    cJSON *root = NULL;
    sw_lines lines = {0};
    ll_status rc;
    if (ends_with(file, ".yaml") || ends_with(file, ".yml")) rc = sw_yaml_parse(file, text, len, &root, &lines, err);
    else if (ends_with(file, ".json")) rc = sw_json_parse(file, text, len, &root, err);
    else rc = ll_fail(err, LL_ERR_USAGE, "%s: expected a sweep file ending in .yaml, .yml or .json", file);
    if (!rc) {
        vctx c = {.file = file, .lines = &lines, .base_dir = base_dir, .err = err};
        rc = v_root(&c, root, s);
    }
    cJSON_Delete(root);
    sw_lines_free(&lines);
    return rc;
}

ll_status ll_sweep_load(const char *file, ll_sweep *s, ll_err *err) {
    char *text = NULL, *dir = NULL;
    size_t len = 0;
    memset(s, 0, sizeof *s);
    ll_status rc = ll_read_small_file(file, 16u << 20, &text, &len, err);
    if (rc) return rc;
    char *real = realpath(file, NULL);
    if (real) {
        char *slash = strrchr(real, '/');
        dir = slash == real ? strdup("/") : strndup(real, (size_t)(slash - real));
    }
    if (!real || !dir) rc = ll_fail(err, LL_ERR_IO, "cannot resolve the directory of %s", file);
    else rc = ll_sweep_parse(file, dir, text, len, s, err);
    free(real);
    free(dir);
    free(text);
    return rc;
}

static void free_strs(char **v, int n) {
    for (int i = 0; v && i < n; i++) free(v[i]);
    free(v);
}

void ll_sweep_free(ll_sweep *s) {
    if (!s) return;
    for (int i = 0; s->models && i < s->n_models; i++) {
        free(s->models[i].name);
        free(s->models[i].path);
        free(s->models[i].backend);
    }
    free(s->models);
    for (int i = 0; s->sets && i < s->n_sets; i++) {
        free(s->sets[i].name);
        free_strs(s->sets[i].files, s->sets[i].n_files);
    }
    free(s->sets);
    free(s->lens.points);
    free(s->lens.layers);
    free(s->lens.save_probs);
    ll_sweep_slurm *u = &s->slurm;
    free(u->job_name), free(u->partition), free(u->account), free(u->qos), free(u->constraint), free(u->time);
    free(u->mem);
    free_strs(u->extra, u->n_extra);
    free_strs(u->setup, u->n_setup);
    free(s->file);
    free(s->name);
    free(s->output);
    memset(s, 0, sizeof *s);
}
