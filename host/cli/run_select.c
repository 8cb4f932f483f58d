/* run_select.c: --save-probs positions, --probs-vocab ids and the vocabulary strings of a run. */
#include "args.h"
#include "run_select.h"

#include <stdlib.h>
#include <string.h>

ll_status ll_probs_sel_parse(const char *s, ll_probs_sel *ps, ll_err *err) {
    memset(ps, 0, sizeof *ps);
    if (!s) return LL_OK;
    if (!strcmp(s, "last")) ps->mode = LL_PROBS_LAST;
    else if (!strcmp(s, "all")) ps->mode = LL_PROBS_ALL;
    else {
        ps->mode = LL_PROBS_LIST;
        char bad[32];
        int64_t n;
        int r = ll_parse_int_list(s, -(1LL << 40), 1LL << 40, &ps->pos, &n, bad, sizeof bad);
        if (r == -3) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        if (r == -2) return ll_fail(err, LL_ERR_USAGE, "--save-probs '%s': '%s' is not a position", s, bad);
        if (r) return ll_fail(err, LL_ERR_USAGE, "--save-probs '%s': expected last, all or a comma list of positions", s);
        ps->n_pos = (int)n;
    }
    return LL_OK;
}

ll_status ll_probs_sel_check(const ll_probs_sel *ps, const char *spec, const ll_prompt_set *prompts, ll_err *err) {
    if (ps->mode != LL_PROBS_LIST) return LL_OK;
    for (int i = 0; i < prompts->n; i++) {
        const ll_prompt *p = &prompts->v[i];
        for (int k = 0; k < ps->n_pos; k++) {
            int64_t q = ps->pos[k] < 0 ? p->n + ps->pos[k] : ps->pos[k];
            if (q < 0 || q >= p->n)
                return ll_fail(err, LL_ERR_USAGE,
                               "--save-probs %s: position %lld is outside %s, which has %lld tokens (positions 0..%lld "
                               "or -%lld..-1)",
                               spec, (long long)ps->pos[k], p->origin, (long long)p->n, (long long)p->n - 1,
                               (long long)p->n);
        }
    }
    return LL_OK;
}

int ll_probs_selected(const ll_probs_sel *ps, int64_t j, int64_t n) {
    switch (ps->mode) {
    case LL_PROBS_LAST: return j == n - 1;
    case LL_PROBS_ALL: return 1;
    case LL_PROBS_LIST:
        for (int i = 0; i < ps->n_pos; i++) {
            int64_t q = ps->pos[i] < 0 ? n + ps->pos[i] : ps->pos[i];
            if (q == j) return 1;
        }
        return 0;
    default: return 0;
    }
}

void ll_probs_sel_free(ll_probs_sel *ps) {
    free(ps->pos);
    memset(ps, 0, sizeof *ps);
}

ll_status ll_parse_vocab_ids(const char *s, int64_t V, int32_t **out, int64_t *n, ll_err *err) {
    int64_t *ids;
    char bad[32];
    int r = ll_parse_int_list(s, 0, V - 1, &ids, n, bad, sizeof bad);
    if (r == -3) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (r == -2) return ll_fail(err, LL_ERR_USAGE, "--probs-vocab: '%s' is not a token id in 0..%lld", bad, (long long)V - 1);
    if (r) return ll_fail(err, LL_ERR_USAGE, "--probs-vocab '%s': expected a comma list of token ids", s);
    if (*n == 0) {
        free(ids);
        return ll_fail(err, LL_ERR_USAGE, "--probs-vocab: empty list");
    }
    int32_t *v = ll_malloc_array((size_t)*n, 4);
    if (!v) {
        free(ids);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < *n; i++) v[i] = (int32_t)ids[i];
    free(ids);
    *out = v;
    return LL_OK;
}

void ll_vocab_strings_free(ll_vocab_strings *v) {
    for (int64_t i = 0; i < v->n; i++) {
        if (v->display) free(v->display[i]);
        if (v->bytes) free(v->bytes[i]);
    }
    free(v->display);
    free(v->bytes);
    free(v->len);
    memset(v, 0, sizeof *v);
}

ll_status ll_vocab_strings_build(const ll_tokenizer *tk, int64_t V, ll_vocab_strings *v, ll_err *err) {
    memset(v, 0, sizeof *v);
    v->display = calloc((size_t)V, sizeof *v->display);
    v->bytes = calloc((size_t)V, sizeof *v->bytes);
    v->len = calloc((size_t)V, sizeof *v->len);
    if (!v->display || !v->bytes || !v->len) {
        ll_vocab_strings_free(v);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    v->n = V;
    for (int64_t i = 0; i < V; i++) {
        size_t dl = ll_tokenizer_token_display(tk, (int32_t)i, NULL, 0);
        size_t bl = ll_tokenizer_token_bytes(tk, (int32_t)i, NULL, 0);
        v->display[i] = malloc(dl + 1);
        v->bytes[i] = malloc(bl + 1);
        if (!v->display[i] || !v->bytes[i]) {
            ll_vocab_strings_free(v);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
        ll_tokenizer_token_display(tk, (int32_t)i, v->display[i], dl + 1);
        ll_tokenizer_token_bytes(tk, (int32_t)i, v->bytes[i], bl);
        v->len[i] = bl;
    }
    return LL_OK;
}
