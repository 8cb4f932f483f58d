/* tok_post.c: the special tokens put around an encoded text: tokenizer.json's post_processor
 * (TemplateProcessing, RobertaProcessing, BertProcessing, ByteLevel, Sequence) for a single sequence,
 * then tokenizer_config.json's add_bos_token / add_eos_token, which transformers' fast tokenizers
 * (Llama, GPT-NeoX, Gemma) turn into the template "[bos] $A [eos]". */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ids_append(int32_t **v, size_t *n, const int32_t *add, size_t k) {
    int32_t *q = realloc(*v, (*n + k + 1) * sizeof *q);
    if (!q) return -1;
    if (k) memcpy(q + *n, add, k * sizeof *q);
    *v = q;
    *n += k;
    return 0;
}

/* Resolves a token string through the added tokens, then the model vocabulary. */
static int token_id(const ll_tokenizer *tk, const char *s, int32_t *id) {
    int k = tok_added_find(&tk->added, s, strlen(s));
    if (k >= 0) {
        *id = tk->added.tokens[k].id;
        return 1;
    }
    return tok_strmap_get(&tk->bpe.vocab, s, strlen(s), id);
}

static ll_status template_parse(tok_post *p, const cJSON *j, const char *path, ll_err *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(j, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (!cJSON_IsArray(single))
        return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.single must be an array of template pieces", path);
    int seen_a = 0, i = 0;
    for (const cJSON *it = single->child; it; it = it->next, i++) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        if (sq) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a)
                return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.single[%d] must be the one Sequence 'A'", path, i);
            seen_a = 1;
            continue;
        }
        const cJSON *name = sp ? cJSON_GetObjectItemCaseSensitive(sp, "id") : NULL;
        if (!cJSON_IsString(name))
            return ll_fail(err, LL_ERR_INPUT,
                           "%s: post_processor.single[%d] must be {\"SpecialToken\": {\"id\": ...}} or {\"Sequence\": ...}",
                           path, i);
        const cJSON *def = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
        if (!cJSON_IsArray(ids))
            return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.special_tokens has no entry '%s' with an 'ids' array",
                           path, name->valuestring);
        for (const cJSON *x = ids->child; x; x = x->next) {
            if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > 2147483646.0)
                return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.special_tokens['%s'].ids must hold ids", path,
                               name->valuestring);
            int32_t v = (int32_t)x->valuedouble;
            if (seen_a ? ids_append(&p->suffix, &p->n_suffix, &v, 1) : ids_append(&p->prefix, &p->n_prefix, &v, 1))
                return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    if (!seen_a) return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.single has no Sequence 'A'", path);
    return LL_OK;
}

static ll_status pair_token(const cJSON *j, const char *key, const char *path, int32_t *id, ll_err *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, key);
    const cJSON *v = cJSON_GetArrayItem(a, 1);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsNumber(v) || !(v->valuedouble >= 0) ||
        v->valuedouble > 2147483646.0)
        return ll_fail(err, LL_ERR_INPUT, "%s: post_processor.%s must be [token, id] with an id in [0, 2^31 - 1)", path,
                       key);
    *id = (int32_t)v->valuedouble;
    return LL_OK;
}

static ll_status post_parse(tok_post *p, const cJSON *j, const char *path, ll_err *err) {
    if (!j || cJSON_IsNull(j)) return LL_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(type)) return ll_fail(err, LL_ERR_INPUT, "%s: post_processor without a string field 'type'", path);
    const char *t = type->valuestring;
    if (!strcmp(t, "ByteLevel")) return LL_OK; /* offsets only */
    if (!strcmp(t, "TemplateProcessing")) return template_parse(p, j, path, err);
    if (!strcmp(t, "RobertaProcessing") || !strcmp(t, "BertProcessing")) {
        int32_t cls, sep;
        ll_status st;
        if ((st = pair_token(j, "cls", path, &cls, err)) || (st = pair_token(j, "sep", path, &sep, err))) return st;
        if (ids_append(&p->prefix, &p->n_prefix, &cls, 1) || ids_append(&p->suffix, &p->n_suffix, &sep, 1))
            return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        return LL_OK;
    }
    if (!strcmp(t, "Sequence")) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "processors");
        if (!cJSON_IsArray(arr))
            return ll_fail(err, LL_ERR_INPUT, "%s: Sequence post_processor needs an array field 'processors'", path);
        for (const cJSON *e = arr->child; e; e = e->next) {
            /* Each processor wraps the result of the previous one. */
            tok_post q = {0};
            ll_status st = post_parse(&q, e, path, err);
            if (!st) {
                int32_t *np = NULL, *ns = NULL;
                size_t nn = 0, nm = 0;
                if (ids_append(&np, &nn, q.prefix, q.n_prefix) || ids_append(&np, &nn, p->prefix, p->n_prefix) ||
                    ids_append(&ns, &nm, p->suffix, p->n_suffix) || ids_append(&ns, &nm, q.suffix, q.n_suffix)) {
                    st = ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
                    free(np);
                    free(ns);
                } else {
                    free(p->prefix);
                    free(p->suffix);
                    p->prefix = np;
                    p->n_prefix = nn;
                    p->suffix = ns;
                    p->n_suffix = nm;
                }
            }
            free(q.prefix);
            free(q.suffix);
            if (st) return st;
        }
        return LL_OK;
    }
    return ll_fail(err, LL_ERR_INPUT,
                   "%s: post_processor type '%s' is not supported (supported: TemplateProcessing, RobertaProcessing, "
                   "BertProcessing, ByteLevel, Sequence)",
                   path, t);
}

ll_status tok_post_parse(ll_tokenizer *tk, const cJSON *j, const char *path, ll_err *err) {
    return post_parse(&tk->post, j, path, err);
}

static ll_status config_token(const ll_tokenizer *tk, const cJSON *cfg, const char *key, const char *path, int32_t *id,
                              ll_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return ll_fail(err, LL_ERR_INPUT, "%s: add_%s is true but field '%s' is missing (expected the token text)", path,
                       key, key);
    if (!token_id(tk, v->valuestring, id))
        return ll_fail(err, LL_ERR_INPUT, "%s: %s '%s' is not a token of tokenizer.json", path, key, v->valuestring);
    return LL_OK;
}

ll_status tok_post_apply_config(ll_tokenizer *tk, const cJSON *cfg, const char *path, ll_err *err) {
    const cJSON *ab = cJSON_GetObjectItemCaseSensitive(cfg, "add_bos_token");
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(cfg, "add_eos_token");
    if ((ab && !cJSON_IsBool(ab)) || (ae && !cJSON_IsBool(ae)))
        return ll_fail(err, LL_ERR_INPUT, "%s: add_bos_token and add_eos_token must be true or false", path);
    if (!ab && !ae) return LL_OK;
    int add_bos = ab ? cJSON_IsTrue(ab) : tk->post.n_prefix > 0;
    int add_eos = ae ? cJSON_IsTrue(ae) : tk->post.n_suffix > 0;
    int32_t bos = -1, eos = -1;
    ll_status st;
    if (add_bos && ab && (st = config_token(tk, cfg, "bos_token", path, &bos, err))) return st;
    if (add_eos && ae && (st = config_token(tk, cfg, "eos_token", path, &eos, err))) return st;
    if (ab) {
        free(tk->post.prefix);
        tk->post.prefix = NULL;
        tk->post.n_prefix = 0;
        if (add_bos && ids_append(&tk->post.prefix, &tk->post.n_prefix, &bos, 1))
            return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    }
    if (ae) {
        free(tk->post.suffix);
        tk->post.suffix = NULL;
        tk->post.n_suffix = 0;
        if (add_eos && ids_append(&tk->post.suffix, &tk->post.n_suffix, &eos, 1))
            return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    }
    return LL_OK;
}
