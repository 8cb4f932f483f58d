/* tok_bpe_load.c: reads the "model" object of tokenizer.json (type BPE): vocab, merges (as "a b"
 * strings or as [a, b] pairs), unk_token, fuse_unk, byte_fallback, ignore_merges,
 * continuing_subword_prefix, end_of_word_suffix. Merges naming unknown tokens are errors, as in
 * `tokenizers`. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static ll_status opt_string(const cJSON *o, const char *k, const char *path, char **out, size_t *len, ll_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    *out = NULL;
    if (len) *len = 0;
    if (!v || cJSON_IsNull(v)) return LL_OK;
    if (!cJSON_IsString(v)) return ll_fail(err, LL_ERR_INPUT, "%s: model.%s must be a string or null", path, k);
    *out = strdup(v->valuestring);
    if (!*out) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    if (len) *len = strlen(*out);
    return LL_OK;
}

static ll_status load_vocab(tok_bpe *m, const cJSON *vocab, const char *path, ll_err *err) {
    if (!cJSON_IsObject(vocab)) return ll_fail(err, LL_ERR_INPUT, "%s: model.vocab must be an object {token: id}", path);
    int64_t max_id = -1;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || d < 0 || d > 2147483646.0 || d != floor(d))
            return ll_fail(err, LL_ERR_INPUT, "%s: model.vocab['%s'] must be an integer id in [0, 2^31-1)", path,
                           e->string);
        if ((int64_t)d > max_id) max_id = (int64_t)d;
        if (tok_strmap_put(&m->vocab, e->string, strlen(e->string), (int32_t)d))
            return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory reading model.vocab", path);
    }
    m->n_vocab = m->vocab.n;
    m->n_ids = max_id + 1;
    if (m->n_ids > (int64_t)1 << 26)
        return ll_fail(err, LL_ERR_INPUT, "%s: model.vocab ids reach %lld (expected below 2^26)", path,
                       (long long)m->n_ids);
    m->id_tok = calloc((size_t)(m->n_ids ? m->n_ids : 1), sizeof *m->id_tok);
    m->id_len = calloc((size_t)(m->n_ids ? m->n_ids : 1), sizeof *m->id_len);
    if (!m->id_tok || !m->id_len) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory reading model.vocab", path);
    for (size_t e = 0; e < m->vocab.n; e++) {
        int32_t id = m->vocab.vals[e];
        /* Duplicate ids: the token seen last wins, as in `tokenizers`' reversed map. */
        m->id_tok[id] = m->vocab.keys[e];
        m->id_len[id] = m->vocab.key_len[e];
    }
    return LL_OK;
}

static ll_status add_merge(tok_bpe *m, const char *a, size_t al, const char *b, size_t bl, int32_t rank, size_t idx,
                           const char *path, tok_buf *tmp, ll_err *err) {
    int32_t ia, ib, inew;
    if (!tok_strmap_get(&m->vocab, a, al, &ia))
        return ll_fail(err, LL_ERR_INPUT, "%s: model.merges[%zu] names token '%.*s', which is not in model.vocab", path,
                       idx, (int)al, a);
    if (!tok_strmap_get(&m->vocab, b, bl, &ib))
        return ll_fail(err, LL_ERR_INPUT, "%s: model.merges[%zu] names token '%.*s', which is not in model.vocab", path,
                       idx, (int)bl, b);
    /* The merged token drops the right part's continuing_subword_prefix. */
    size_t skip = (m->prefix && bl >= m->prefix_len && !memcmp(b, m->prefix, m->prefix_len)) ? m->prefix_len : 0;
    tmp->n = 0;
    if (tok_buf_append(tmp, a, al) || tok_buf_append(tmp, b + skip, bl - skip))
        return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    if (!tok_strmap_get(&m->vocab, tmp->p, tmp->n, &inew))
        return ll_fail(err, LL_ERR_INPUT, "%s: model.merges[%zu] produces '%.*s', which is not in model.vocab", path,
                       idx, (int)tmp->n, tmp->p);
    if (tok_pairmap_put(&m->merges, ia, ib, rank, inew)) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    return LL_OK;
}

static ll_status load_merges(tok_bpe *m, const cJSON *merges, const char *path, ll_err *err) {
    if (!merges || cJSON_IsNull(merges)) return LL_OK;
    if (!cJSON_IsArray(merges)) return ll_fail(err, LL_ERR_INPUT, "%s: model.merges must be an array", path);
    tok_buf tmp = {0};
    size_t idx = 0;
    ll_status st = LL_OK;
    for (const cJSON *e = merges->child; e && !st; e = e->next, idx++) {
        if (idx >= (size_t)INT32_MAX) {
            st = ll_fail(err, LL_ERR_INPUT, "%s: model.merges has too many entries", path);
            break;
        }
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1]) {
                st = ll_fail(err, LL_ERR_INPUT, "%s: model.merges[%zu] is '%s' (expected two tokens separated by one space)",
                             path, idx, s);
                break;
            }
            st = add_merge(m, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), (int32_t)idx, idx, path, &tmp, err);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
            st = add_merge(m, a, strlen(a), b, strlen(b), (int32_t)idx, idx, path, &tmp, err);
        } else {
            st = ll_fail(err, LL_ERR_INPUT, "%s: model.merges[%zu] must be a string \"a b\" or a pair [\"a\", \"b\"]",
                         path, idx);
        }
    }
    tok_buf_free(&tmp);
    return st;
}

ll_status tok_bpe_parse(tok_bpe *m, const cJSON *j, const char *path, ll_err *err) {
    memset(m, 0, sizeof *m);
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    if (!cJSON_IsObject(j)) return ll_fail(err, LL_ERR_INPUT, "%s: field 'model' must be an object", path);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (cJSON_IsString(type)) {
        if (strcmp(type->valuestring, "BPE"))
            return ll_fail(err, LL_ERR_INPUT, "%s: model.type '%s' is not supported (expected BPE)", path,
                           type->valuestring);
    } else if (!cJSON_GetObjectItemCaseSensitive(j, "merges")) {
        return ll_fail(err, LL_ERR_INPUT, "%s: model has no 'type' and no 'merges' (expected a BPE model)", path);
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(j, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return ll_fail(err, LL_ERR_INPUT, "%s: model.dropout is set (BPE dropout is random; expected null)", path);
    ll_status st;
    if ((st = opt_string(j, "continuing_subword_prefix", path, &m->prefix, &m->prefix_len, err))) return st;
    if ((st = opt_string(j, "end_of_word_suffix", path, &m->suffix, &m->suffix_len, err))) return st;
    if ((st = opt_string(j, "unk_token", path, &m->unk_token, NULL, err))) return st;
    /* An empty prefix or suffix (GPT-2's files have "") changes nothing; dropping it keeps the fast path. */
    if (m->prefix && !m->prefix_len) {
        free(m->prefix);
        m->prefix = NULL;
    }
    if (m->suffix && !m->suffix_len) {
        free(m->suffix);
        m->suffix = NULL;
    }
    m->fuse_unk = jbool(j, "fuse_unk", 0);
    m->byte_fallback = jbool(j, "byte_fallback", 0);
    m->ignore_merges = jbool(j, "ignore_merges", 0);
    if ((st = load_vocab(m, cJSON_GetObjectItemCaseSensitive(j, "vocab"), path, err))) return st;
    if (m->unk_token && !tok_strmap_get(&m->vocab, m->unk_token, strlen(m->unk_token), &m->unk_id)) m->unk_id = -1;
    if ((st = load_merges(m, cJSON_GetObjectItemCaseSensitive(j, "merges"), path, err))) return st;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id;
        if (tok_strmap_get(&m->vocab, name, 6, &id)) m->byte_ids[b] = id;
    }
    return LL_OK;
}
