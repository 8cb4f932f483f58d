/* tok_gguf_spm.c: BPE merges for a SentencePiece ("llama") vocabulary from its scores, as transformers'
 * LlamaConverter gets them (SentencePieceExtractor / generate_merges), so that the tokenizer built from a
 * GGUF file gives the ids Hugging Face `tokenizers` gives for that model's tokenizer.json:
 *
 *   for each token t in id order, every split t = l + r at a character (code point) boundary with both l
 *   and r in the vocabulary is a candidate (l, r, score(t)); a token's candidates are ordered by
 *   (id(l), id(r)); then all candidates are sorted by (score, characters of l, characters of r), highest
 *   first, keeping the previous order among equals (Python's stable sort with reverse=True).
 *
 * The merge rank is the position in that list. Older transformers releases sorted by the score alone,
 * which differs only among candidates of equal score. */
#include "tok_gguf.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

typedef struct spm_cand {
    int32_t l, r;         /* token ids of the two parts */
    int32_t len_l, len_r; /* their lengths in code points */
    double score;         /* score of the merged token */
    uint32_t seq;         /* position before the global sort (ties keep it) */
} spm_cand;

static int32_t cp_count(const char *s, size_t n) {
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((uint8_t)s[i] & 0xC0) != 0x80;
    return k;
}

static int cmp_local(const void *a, const void *b) {
    const spm_cand *x = a, *y = b;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

static int cmp_global(const void *a, const void *b) {
    const spm_cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->len_l != y->len_l) return x->len_l > y->len_l ? -1 : 1;
    if (x->len_r != y->len_r) return x->len_r > y->len_r ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

ll_status tok_gguf_spm_merges(const char *file, const tok_gguf_vocab *v, cJSON **out, ll_err *err) {
    *out = NULL;
    spm_cand *c = NULL;
    size_t n = 0, cap = 0;
    for (uint64_t t = 0; t < v->n; t++) {
        const char *s = v->tok[t];
        size_t len = v->len[t], first = n;
        for (size_t k = 1; k < len; k++) {
            if (((uint8_t)s[k] & 0xC0) == 0x80) continue; /* not a code point boundary */
            int32_t l, r;
            if (!tok_strmap_get(&v->ids, s, k, &l) || !tok_strmap_get(&v->ids, s + k, len - k, &r)) continue;
            if (n == cap) {
                size_t nc = cap ? 2 * cap : 4096;
                spm_cand *q = realloc(c, nc * sizeof *q);
                if (!q) goto nomem;
                c = q;
                cap = nc;
            }
            c[n++] = (spm_cand){l, r, cp_count(s, k), cp_count(s + k, len - k), v->score[t], 0};
        }
        if (n - first > 1) qsort(c + first, n - first, sizeof *c, cmp_local);
    }
    if (n > (size_t)INT32_MAX) {
        free(c);
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: the scores give too many merges", file);
    }
    for (size_t i = 0; i < n; i++) c[i].seq = (uint32_t)i;
    if (n > 1) qsort(c, n, sizeof *c, cmp_global);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(pair, cJSON_CreateString(v->tok[c[i].l])) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateString(v->tok[c[i].r])) || !cJSON_AddItemToArray(arr, pair)) {
            cJSON_Delete(pair);
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    free(c);
    if (!arr) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory deriving merges from the scores", file);
    *out = arr;
    return LL_OK;
nomem:
    free(c);
    return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory deriving merges from the scores", file);
}
