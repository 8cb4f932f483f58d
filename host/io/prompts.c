/* prompts.c: reading, tokenizing and validating prompts. */
#include "ll_prompts.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ll_prompts_free(ll_prompt_set *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->v[i].text);
        free(s->v[i].target_text);
        free(s->v[i].ids);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* The name messages give the next prompt added to s: its index (as in the result file) and its source. */
static void next_origin(const ll_prompt_set *s, const char *source, char *buf, size_t cap) {
    snprintf(buf, cap, "prompt %d (%s)", s->n, source);
}

static ll_prompt *new_prompt(ll_prompt_set *s, const char *source, ll_err *err) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        ll_prompt *v = realloc(s->v, sizeof *v * (size_t)cap);
        if (!v) {
            ll_fail(err, LL_ERR_NOMEM, "out of memory reading prompts");
            return NULL;
        }
        s->v = v;
        s->cap = cap;
    }
    ll_prompt *p = &s->v[s->n];
    memset(p, 0, sizeof *p);
    p->target_id = -1;
    next_origin(s, source, p->origin, sizeof p->origin);
    s->n++;
    return p;
}

ll_status ll_prompts_add_text(ll_prompt_set *s, const char *text, const char *source, ll_err *err) {
    if (!text[0]) {
        char origin[300];
        next_origin(s, source, origin, sizeof origin);
        return ll_fail(err, LL_ERR_INPUT, "%s: empty prompt", origin);
    }
    ll_prompt *p = new_prompt(s, source, err);
    if (!p) return LL_ERR_NOMEM;
    if (!(p->text = strdup(text))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    return LL_OK;
}

ll_status ll_prompts_add_token_list(ll_prompt_set *s, const char *ids, const char *source, ll_err *err) {
    ll_prompt *p = new_prompt(s, source, err);
    if (!p) return LL_ERR_NOMEM;
    const char *origin = p->origin;
    size_t cap = 1;
    for (const char *c = ids; *c; c++) cap += *c == ',';
    if (!(p->ids = ll_malloc_array(cap, 4))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    const char *c = ids;
    while (*c) {
        while (*c == ' ') c++;
        if (!*c) break;
        char *end;
        errno = 0;
        long long v = strtoll(c, &end, 10);
        if (end == c || errno || (*end && *end != ',' && *end != ' '))
            return ll_fail(err, LL_ERR_INPUT, "%s: '%s' is not a comma-separated list of token ids", origin, ids);
        if (v < 0) return ll_fail(err, LL_ERR_INPUT, "%s: token id %lld is negative", origin, v);
        if (v > INT32_MAX) return ll_fail(err, LL_ERR_INPUT, "%s: token id %lld is out of range", origin, v);
        p->ids[p->n++] = (int32_t)v;
        c = end;
        while (*c == ' ') c++;
        if (*c == ',') c++;
    }
    if (p->n == 0) return ll_fail(err, LL_ERR_INPUT, "%s: empty prompt (no token ids)", origin);
    return LL_OK;
}

/* 1 when a JSON text holds the escape \u0000 inside a string (cJSON would cut the string there). */
static int json_has_nul_escape(const char *t, size_t len) {
    int in_str = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_str) {
            in_str = t[i] == '"';
            continue;
        }
        if (t[i] == '"') in_str = 0;
        else if (t[i] == '\\' && i + 1 < len) {
            if (t[i + 1] == 'u' && i + 5 < len && !memcmp(t + i + 2, "0000", 4)) return 1;
            i++; /* the escaped character */
        }
    }
    return 0;
}

static ll_status jsonl_line(ll_prompt_set *s, const char *line, size_t len, const char *source, ll_err *err) {
    char origin[300];
    next_origin(s, source, origin, sizeof origin);
    if (json_has_nul_escape(line, len))
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: a string holds \\u0000 (a NUL character), which a prompt or target cannot contain", origin);
    cJSON *o = cJSON_ParseWithLength(line, len);
    ll_status rc = LL_OK;
    if (!cJSON_IsObject(o)) {
        rc = ll_fail(err, LL_ERR_INPUT, "%s: not a JSON object (expected {\"prompt\": ...} or {\"tokens\": [...]})",
                     origin);
        goto done;
    }
    cJSON *pr = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    cJSON *tk = cJSON_GetObjectItemCaseSensitive(o, "tokens");
    cJSON *tg = cJSON_GetObjectItemCaseSensitive(o, "target");
    cJSON *ti = cJSON_GetObjectItemCaseSensitive(o, "target_id");
    if ((pr != NULL) == (tk != NULL)) {
        rc = ll_fail(err, LL_ERR_INPUT, "%s: needs exactly one of \"prompt\" (text) and \"tokens\" (list of ids)",
                     origin);
        goto done;
    }
    if (pr) {
        if (!cJSON_IsString(pr)) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: \"prompt\" must be a string", origin);
            goto done;
        }
        if ((rc = ll_prompts_add_text(s, pr->valuestring, source, err))) goto done;
    } else {
        if (!cJSON_IsArray(tk)) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: \"tokens\" must be a list of token ids", origin);
            goto done;
        }
        int n = cJSON_GetArraySize(tk);
        if (n == 0) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: empty prompt (\"tokens\" is an empty list)", origin);
            goto done;
        }
        ll_prompt *p = new_prompt(s, source, err);
        if (!p) {
            rc = LL_ERR_NOMEM;
            goto done;
        }
        if (!(p->ids = ll_malloc_array((size_t)n, 4))) {
            rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (cJSON *x = tk->child; x; x = x->next) {
            double v = x->valuedouble;
            if (!cJSON_IsNumber(x) || v != floor(v)) {
                rc = ll_fail(err, LL_ERR_INPUT, "%s: \"tokens\"[%lld] is not an integer token id", origin,
                             (long long)p->n);
                goto done;
            }
            if (v < 0) {
                rc = ll_fail(err, LL_ERR_INPUT, "%s: token id %.0f is negative", origin, v);
                goto done;
            }
            if (v > INT32_MAX) {
                rc = ll_fail(err, LL_ERR_INPUT, "%s: token id %.0f is out of range", origin, v);
                goto done;
            }
            p->ids[p->n++] = (int32_t)v;
        }
    }
    ll_prompt *p = &s->v[s->n - 1];
    if (tg && !cJSON_IsNull(tg)) {
        if (!cJSON_IsString(tg) || !tg->valuestring[0]) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: \"target\" must be a non-empty string", origin);
            goto done;
        }
        if (!(p->target_text = strdup(tg->valuestring))) {
            rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (ti && !cJSON_IsNull(ti)) {
        if (!cJSON_IsNumber(ti) || ti->valuedouble != floor(ti->valuedouble) || ti->valuedouble < 0 ||
            ti->valuedouble > INT32_MAX) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: \"target_id\" must be a non-negative integer token id", origin);
            goto done;
        }
        if (p->target_text) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: give either \"target\" or \"target_id\", not both", origin);
            goto done;
        }
        p->target_id = (int32_t)ti->valuedouble;
    }
done:
    cJSON_Delete(o);
    return rc;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

ll_status ll_prompts_load_file(ll_prompt_set *s, const char *path, ll_prompts_file_stats *stats, ll_err *err) {
    ll_prompts_file_stats st = {0};
    int jsonl = has_suffix(path, ".jsonl");
    if (!jsonl && !has_suffix(path, ".txt"))
        return ll_fail(err, LL_ERR_USAGE, "--prompts %s: expected a .txt or .jsonl file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return ll_fail(err, LL_ERR_INPUT, "--prompts %s: cannot open: %s", path, strerror(errno));
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int before = s->n;
    ll_status rc = LL_OK;
    while ((len = getline(&line, &cap, f)) >= 0) {
        st.lines++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        char source[256];
        snprintf(source, sizeof source, "%s:%lld", base, (long long)st.lines);
        if (memchr(line, 0, (size_t)len)) {
            rc = ll_fail(err, LL_ERR_INPUT, "%s: line contains a NUL byte", source);
            break;
        }
        size_t i = 0;
        while (i < (size_t)len && (line[i] == ' ' || line[i] == '\t')) i++;
        if (i == (size_t)len) { /* blank lines carry no prompt, in either format */
            st.blank++;
            continue;
        }
        if (jsonl) {
            rc = jsonl_line(s, line, (size_t)len, source, err);
        } else if (line[i] == '#') {
            st.comments++;
            continue;
        } else {
            rc = ll_prompts_add_text(s, line, source, err);
        }
        if (rc) break;
    }
    free(line);
    if (rc == LL_OK && ferror(f)) rc = ll_fail(err, LL_ERR_IO, "--prompts %s: read error", path);
    fclose(f);
    st.prompts = s->n - before;
    if (rc == LL_OK && st.prompts == 0)
        rc = ll_fail(err, LL_ERR_INPUT, "--prompts %s: no prompts in the file (%lld lines: %lld blank, %lld comments)",
                     path, (long long)st.lines, (long long)st.blank, (long long)st.comments);
    if (stats) *stats = st;
    return rc;
}

int ll_prompts_need_tokenizer(const ll_prompt_set *s) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i].text || s->v[i].target_text) return 1;
    return 0;
}

ll_status ll_prompts_tokenize(ll_prompt_set *s, ll_tokenizer *tk, const char *no_tokenizer, int add_special,
                              ll_err *err) {
    for (int i = 0; i < s->n; i++) {
        ll_prompt *p = &s->v[i];
        if (p->text && !tk)
            return ll_fail(err, LL_ERR_INPUT, "%s: a text prompt needs a tokenizer, and %s; give token ids instead",
                           p->origin, no_tokenizer);
        if (p->target_text && !tk)
            return ll_fail(err, LL_ERR_INPUT,
                           "%s: the target '%s' is text and needs a tokenizer, and %s; give \"target_id\" instead",
                           p->origin, p->target_text, no_tokenizer);
        ll_status rc;
        if (p->text && !p->ids) {
            size_t n = 0;
            if ((rc = ll_tokenizer_encode(tk, p->text, strlen(p->text), add_special, &p->ids, &n, err)))
                return ll_fail_prefix(err, rc, "%s", p->origin);
            p->n = (int64_t)n;
            if (n == 0) return ll_fail(err, LL_ERR_INPUT, "%s: prompt tokenizes to no tokens", p->origin);
        }
        if (p->target_text) {
            int32_t *ids = NULL;
            size_t n = 0;
            if ((rc = ll_tokenizer_encode(tk, p->target_text, strlen(p->target_text), 0, &ids, &n, err)))
                return ll_fail_prefix(err, rc, "%s: target", p->origin);
            if (n == 0) {
                free(ids);
                return ll_fail(err, LL_ERR_INPUT, "%s: target '%s' tokenizes to no tokens", p->origin, p->target_text);
            }
            p->target_id = ids[0];
            free(ids);
        }
    }
    return LL_OK;
}

ll_status ll_prompts_validate(const ll_prompt_set *s, int64_t vocab, int64_t n_ctx, int64_t sliding_window,
                              ll_err *err) {
    if (s->n == 0) return ll_fail(err, LL_ERR_USAGE, "no prompts: give --prompt, --tokens or --prompts");
    for (int i = 0; i < s->n; i++) {
        const ll_prompt *p = &s->v[i];
        if (p->n <= 0) return ll_fail(err, LL_ERR_INPUT, "%s: empty prompt", p->origin);
        if (p->n > n_ctx)
            return ll_fail(err, LL_ERR_INPUT, "%s: prompt has %lld tokens, longer than the model's context of %lld",
                           p->origin, (long long)p->n, (long long)n_ctx);
        if (sliding_window > 0 && p->n > sliding_window)
            return ll_fail(err, LL_ERR_INPUT,
                           "%s: prompt has %lld tokens, longer than config.json's sliding_window %lld "
                           "(qwen2's use_sliding_window, a window on some layers only, is not supported)",
                           p->origin, (long long)p->n, (long long)sliding_window);
        for (int64_t j = 0; j < p->n; j++)
            if (p->ids[j] < 0 || p->ids[j] >= vocab)
                return ll_fail(err, LL_ERR_INPUT, "%s: token id %d at position %lld is out of range (vocabulary has %lld ids)",
                               p->origin, p->ids[j], (long long)j, (long long)vocab);
        if (p->target_id >= vocab)
            return ll_fail(err, LL_ERR_INPUT, "%s: target id %d is out of range (vocabulary has %lld ids)", p->origin,
                           p->target_id, (long long)vocab);
    }
    return LL_OK;
}
