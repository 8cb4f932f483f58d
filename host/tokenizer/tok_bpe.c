/* tok_bpe.c: the BPE model applied to one pre-token, as `tokenizers`' BPE does it:
 *   1. with ignore_merges, a pre-token that is itself in the vocabulary is one token;
 *   2. split into characters (continuing_subword_prefix on all but the first, end_of_word_suffix on
 *      the last); a character missing from the vocabulary becomes its <0xNN> byte tokens
 *      (byte_fallback) or the unknown token (consecutive ones fused with fuse_unk), or is dropped
 *      when the model has no unk_token (so a byte-level vocabulary without some byte characters,
 *      like StarCoder's, drops those bytes);
 *   3. merge adjacent pairs, always the pair of lowest rank first and the leftmost among equals,
 *      with a binary heap of candidate merges and a doubly linked list of symbols: O(n log n);
 *   4. cache pre-token -> ids (bounded; cleared when full). */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

#define CACHE_MAX_WORDS (1u << 18)
#define CACHE_MAX_WORD_BYTES 256

typedef struct tok_bpe_sym {
    int32_t id;   /* token id of this symbol */
    int32_t prev; /* previous live symbol, -1 none */
    int32_t next; /* next live symbol, -1 none */
    int32_t live; /* 0 once merged into its left neighbour */
} tok_bpe_sym;

typedef struct tok_bpe_heap_item {
    int32_t rank;  /* merge rank (lower first) */
    int32_t pos;   /* left symbol index (lower first among equal ranks) */
    int32_t newid; /* merged id the pair had when queued */
} tok_bpe_heap_item;

static inline int heap_less(const tok_bpe_heap_item *a, const tok_bpe_heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(tok_bpe *m, size_t *n, tok_bpe_heap_item it) {
    if (*n == m->heap_cap) {
        size_t c = m->heap_cap ? m->heap_cap * 2 : 64;
        tok_bpe_heap_item *h = realloc(m->heap, c * sizeof *h);
        if (!h) return -1;
        m->heap = h;
        m->heap_cap = c;
    }
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&it, &m->heap[p])) break;
        m->heap[i] = m->heap[p];
        i = p;
    }
    m->heap[i] = it;
    return 0;
}

static tok_bpe_heap_item heap_pop(tok_bpe *m, size_t *n) {
    tok_bpe_heap_item top = m->heap[0], last = m->heap[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(&m->heap[c + 1], &m->heap[c])) c++;
        if (!heap_less(&m->heap[c], &last)) break;
        m->heap[i] = m->heap[c];
        i = c;
    }
    if (*n) m->heap[i] = last;
    return top;
}

static int sym_push(tok_bpe *m, size_t *n, int32_t id) {
    if (*n == m->syms_cap) {
        size_t c = m->syms_cap ? m->syms_cap * 2 : 64;
        tok_bpe_sym *s = realloc(m->syms, c * sizeof *s);
        if (!s) return -1;
        m->syms = s;
        m->syms_cap = c;
    }
    m->syms[*n].id = id;
    (*n)++;
    return 0;
}

/* Step 2: the initial symbols of a word. */
static ll_status word_symbols(tok_bpe *m, const char *w, size_t n, size_t *ns, tok_buf *tmp, ll_err *err) {
    int32_t unk = -1; /* pending unknown token (fuse_unk) */
    size_t i = 0;
    *ns = 0;
    while (i < n) {
        int32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)w + i, n - i, &cp);
        if (!l) l = 1;
        int first = i == 0, last = i + l == n;
        const char *key = w + i;
        size_t kl = l;
        if ((m->prefix && !first) || (m->suffix && last)) {
            tmp->n = 0;
            if ((m->prefix && !first && tok_buf_append(tmp, m->prefix, m->prefix_len)) || tok_buf_append(tmp, w + i, l) ||
                (m->suffix && last && tok_buf_append(tmp, m->suffix, m->suffix_len)))
                goto nomem;
            key = tmp->p;
            kl = tmp->n;
        }
        int32_t id;
        if (tok_strmap_get(&m->vocab, key, kl, &id)) {
            if (unk >= 0 && sym_push(m, ns, unk)) goto nomem;
            unk = -1;
            if (sym_push(m, ns, id)) goto nomem;
            i += l;
            continue;
        }
        if (m->byte_fallback) {
            int all = 1;
            for (size_t k = 0; k < kl; k++) all &= m->byte_ids[(uint8_t)key[k]] >= 0;
            if (all) {
                /* As in `tokenizers`, a pending unknown token is not flushed before byte tokens. */
                for (size_t k = 0; k < kl; k++)
                    if (sym_push(m, ns, m->byte_ids[(uint8_t)key[k]])) goto nomem;
                i += l;
                continue;
            }
        }
        if (!m->unk_token) { /* `tokenizers` drops the character */
            i += l;
            continue;
        }
        if (m->unk_id < 0)
            return ll_fail(err, LL_ERR_INPUT, "tokenizer: model.unk_token '%s' is not in model.vocab", m->unk_token);
        if (unk >= 0 && !m->fuse_unk && sym_push(m, ns, unk)) goto nomem;
        unk = m->unk_id;
        i += l;
    }
    if (unk >= 0 && sym_push(m, ns, unk)) goto nomem;
    return LL_OK;
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
}

/* Step 3. */
static int merge_all(tok_bpe *m, size_t ns) {
    tok_bpe_sym *s = m->syms;
    size_t hn = 0;
    for (size_t i = 0; i < ns; i++) {
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < ns ? (int32_t)i + 1 : -1;
        s[i].live = 1;
    }
    if (ns < 2 || m->merges.n == 0) return 0;
    for (size_t i = 0; i + 1 < ns; i++) {
        tok_bpe_heap_item it = {0, (int32_t)i, 0};
        if (tok_pairmap_get(&m->merges, s[i].id, s[i + 1].id, &it.rank, &it.newid) && heap_push(m, &hn, it)) return -1;
    }
    while (hn) {
        tok_bpe_heap_item top = heap_pop(m, &hn);
        tok_bpe_sym *L = &s[top.pos];
        if (!L->live || L->next < 0) continue;
        tok_bpe_sym *R = &s[L->next];
        int32_t rank, newid;
        if (!tok_pairmap_get(&m->merges, L->id, R->id, &rank, &newid) || newid != top.newid) continue;
        L->id = newid;
        R->live = 0;
        L->next = R->next;
        if (R->next >= 0) s[R->next].prev = top.pos;
        if (L->prev >= 0) {
            tok_bpe_heap_item it = {0, L->prev, 0};
            if (tok_pairmap_get(&m->merges, s[L->prev].id, L->id, &it.rank, &it.newid) && heap_push(m, &hn, it))
                return -1;
        }
        if (L->next >= 0) {
            tok_bpe_heap_item it = {0, top.pos, 0};
            if (tok_pairmap_get(&m->merges, L->id, s[L->next].id, &it.rank, &it.newid) && heap_push(m, &hn, it))
                return -1;
        }
    }
    return 0;
}

static void cache_clear(tok_bpe_cache *c) {
    tok_strmap_free(&c->map);
    c->n = 0;
    c->ids.n = 0;
}

static void cache_put(tok_bpe_cache *c, const char *w, size_t n, const int32_t *ids, size_t k) {
    if (n > CACHE_MAX_WORD_BYTES) return;
    if (c->n >= CACHE_MAX_WORDS) cache_clear(c);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        size_t *o = realloc(c->offs, cap * sizeof *o);
        if (!o) return;
        c->offs = o;
        size_t *l = realloc(c->lens, cap * sizeof *l);
        if (!l) return;
        c->lens = l;
        c->cap = cap;
    }
    size_t off = c->ids.n;
    for (size_t i = 0; i < k; i++)
        if (tok_ids_push(&c->ids, ids[i])) {
            c->ids.n = off;
            return;
        }
    if (tok_strmap_put(&c->map, w, n, (int32_t)c->n)) {
        c->ids.n = off;
        return;
    }
    c->offs[c->n] = off;
    c->lens[c->n] = k;
    c->n++;
}

ll_status tok_bpe_encode_word(tok_bpe *m, const char *w, size_t n, tok_ids *out, ll_err *err) {
    int32_t id;
    if (n == 0) return LL_OK;
    if (m->ignore_merges && tok_strmap_get(&m->vocab, w, n, &id))
        return tok_ids_push(out, id) ? ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory") : LL_OK;
    if (tok_strmap_get(&m->cache.map, w, n, &id)) {
        size_t off = m->cache.offs[id], k = m->cache.lens[id];
        for (size_t i = 0; i < k; i++)
            if (tok_ids_push(out, m->cache.ids.v[off + i])) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
        return LL_OK;
    }
    tok_buf tmp = {0};
    size_t ns;
    ll_status st = word_symbols(m, w, n, &ns, &tmp, err);
    tok_buf_free(&tmp);
    if (st) return st;
    if (merge_all(m, ns)) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    size_t start = out->n;
    for (size_t i = 0; i < ns; i++) {
        if (!m->syms[i].live) continue;
        if (tok_ids_push(out, m->syms[i].id)) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    }
    cache_put(&m->cache, w, n, out->n > start ? out->v + start : NULL, out->n - start);
    return LL_OK;
}

void tok_bpe_free(tok_bpe *m) {
    tok_strmap_free(&m->vocab);
    free(m->id_tok);
    free(m->id_len);
    tok_pairmap_free(&m->merges);
    free(m->unk_token);
    free(m->prefix);
    free(m->suffix);
    tok_strmap_free(&m->cache.map);
    free(m->cache.offs);
    free(m->cache.lens);
    tok_ids_free(&m->cache.ids);
    free(m->syms);
    free(m->heap);
    memset(m, 0, sizeof *m);
}
