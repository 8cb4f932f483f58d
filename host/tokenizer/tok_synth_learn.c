/* tok_synth_learn.c: a small, deterministic BPE trainer for synthetic tokenizers: repeatedly merge
 * the most frequent adjacent pair (counted over unique words weighted by their counts). Meant for
 * the few thousand words of the built-in text, not for real corpora. */
#include "tok_synth.h"

#include <stdlib.h>
#include <string.h>

static int push_token(tok_synth_vocab *v, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s) return -1;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    char **t = realloc(v->tok, (v->n_tok + 1) * sizeof *t);
    if (!t) {
        free(s);
        return -1;
    }
    v->tok = t;
    v->tok[v->n_tok++] = s;
    return 0;
}

static int cmp_merged(const tok_synth_vocab *v, int32_t a1, int32_t b1, int32_t a2, int32_t b2) {
    /* Compares tok[a1]+tok[b1] with tok[a2]+tok[b2] without building them. */
    const char *p[2] = {v->tok[a1], v->tok[b1]}, *q[2] = {v->tok[a2], v->tok[b2]};
    int i = 0, j = 0;
    const char *x = p[0], *y = q[0];
    for (;;) {
        if (!*x && i == 0) x = p[++i];
        if (!*y && j == 0) y = q[++j];
        if (!*x || !*y) return (*x != 0) - (*y != 0);
        if (*x != *y) return (unsigned char)*x < (unsigned char)*y ? -1 : 1;
        x++, y++;
    }
}

int tok_synth_learn(tok_synth_vocab *v, int32_t **words, size_t *word_len, const uint32_t *counts, size_t n_words,
                    size_t max_merges) {
    int rc = 0;
    while (v->n_merges < max_merges) {
        tok_pairmap pc = {0};
        for (size_t w = 0; w < n_words && !rc; w++)
            for (size_t i = 0; i + 1 < word_len[w]; i++) {
                int32_t a = words[w][i], b = words[w][i + 1];
                if (a < 0 || b < 0) continue;
                int32_t c = 0, unused;
                tok_pairmap_get(&pc, a, b, &c, &unused);
                if (tok_pairmap_put(&pc, a, b, c + (int32_t)counts[w], 0)) {
                    rc = -1;
                    break;
                }
            }
        int32_t best_a = -1, best_b = -1, best_c = 0;
        for (size_t i = 0; i < pc.cap; i++) {
            if (!pc.keys[i]) continue;
            uint64_t k = pc.keys[i] - 1;
            int32_t a = (int32_t)(k >> 32), b = (int32_t)(uint32_t)k, c = pc.rank[i];
            if (c > best_c || (c == best_c && cmp_merged(v, a, b, best_a, best_b) < 0)) {
                best_a = a;
                best_b = b;
                best_c = c;
            }
        }
        tok_pairmap_free(&pc);
        if (rc || best_a < 0) break;
        int32_t nid = (int32_t)v->n_tok;
        if (push_token(v, v->tok[best_a], v->tok[best_b])) return -1;
        int32_t *ma = realloc(v->merge_a, (v->n_merges + 1) * sizeof *ma);
        if (!ma) return -1;
        v->merge_a = ma;
        int32_t *mb = realloc(v->merge_b, (v->n_merges + 1) * sizeof *mb);
        if (!mb) return -1;
        v->merge_b = mb;
        v->merge_a[v->n_merges] = best_a;
        v->merge_b[v->n_merges] = best_b;
        v->n_merges++;
        for (size_t w = 0; w < n_words; w++) {
            size_t o = 0;
            for (size_t i = 0; i < word_len[w]; i++) {
                if (i + 1 < word_len[w] && words[w][i] == best_a && words[w][i + 1] == best_b) {
                    words[w][o++] = nid;
                    i++;
                } else {
                    words[w][o++] = words[w][i];
                }
            }
            word_len[w] = o;
        }
    }
    return rc;
}

void tok_synth_vocab_free(tok_synth_vocab *v) {
    for (size_t i = 0; i < v->n_tok; i++) free(v->tok[i]);
    free(v->tok);
    free(v->merge_a);
    free(v->merge_b);
    memset(v, 0, sizeof *v);
}
