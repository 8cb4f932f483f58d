/* tok_hash.c: the two hash tables of the tokenizer: token string -> id (vocabulary, word cache) and
 * id pair -> merge (rank, result). Open addressing, linear probing, power-of-two capacity, load
 * factor at most 1/2. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* A 64-bit multiply-xorshift hash over 8-byte chunks: fast on the short keys of a vocabulary. */
uint64_t tok_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0x94d049bb133111ebULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return h;
}

static int strmap_rehash(tok_strmap *m, size_t cap) {
    uint32_t *slots = calloc(cap, sizeof *slots);
    if (!slots) return -1;
    for (size_t e = 0; e < m->n; e++) {
        size_t i = (size_t)m->hashes[e] & (cap - 1);
        while (slots[i]) i = (i + 1) & (cap - 1);
        slots[i] = (uint32_t)(e + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

static int strmap_find(const tok_strmap *m, const char *k, size_t n, uint64_t h, size_t *slot) {
    if (!m->cap) return 0;
    size_t i = (size_t)h & (m->cap - 1);
    for (;;) {
        uint32_t e = m->slots[i];
        if (!e) {
            *slot = i;
            return 0;
        }
        e--;
        if (m->hashes[e] == h && m->key_len[e] == n && memcmp(m->keys[e], k, n) == 0) {
            *slot = i;
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
}

int tok_strmap_put(tok_strmap *m, const char *k, size_t n, int32_t v) {
    uint64_t h = tok_hash_bytes(k, n);
    size_t slot;
    if (strmap_find(m, k, n, h, &slot)) {
        m->vals[m->slots[slot] - 1] = v;
        return 0;
    }
    if (m->n >= UINT32_MAX - 1) return -1;
    if ((m->n + 1) * 2 > m->cap) {
        if (strmap_rehash(m, m->cap ? m->cap * 2 : 64)) return -1;
    }
    if (m->n == m->ecap) {
        size_t c = m->ecap ? m->ecap * 2 : 32;
        char **keys = realloc(m->keys, c * sizeof *keys);
        if (!keys) return -1;
        m->keys = keys;
        size_t *kl = realloc(m->key_len, c * sizeof *kl);
        if (!kl) return -1;
        m->key_len = kl;
        int32_t *vals = realloc(m->vals, c * sizeof *vals);
        if (!vals) return -1;
        m->vals = vals;
        uint64_t *hs = realloc(m->hashes, c * sizeof *hs);
        if (!hs) return -1;
        m->hashes = hs;
        m->ecap = c;
    }
    char *key = malloc(n ? n : 1);
    if (!key) return -1;
    if (n) memcpy(key, k, n);
    size_t e = m->n++;
    m->keys[e] = key;
    m->key_len[e] = n;
    m->vals[e] = v;
    m->hashes[e] = h;
    strmap_find(m, k, n, h, &slot);
    m->slots[slot] = (uint32_t)(e + 1);
    return 0;
}

int tok_strmap_get(const tok_strmap *m, const char *k, size_t n, int32_t *v) {
    size_t slot;
    if (!strmap_find(m, k, n, tok_hash_bytes(k, n), &slot)) return 0;
    *v = m->vals[m->slots[slot] - 1];
    return 1;
}

void tok_strmap_free(tok_strmap *m) {
    for (size_t e = 0; e < m->n; e++) free(m->keys[e]);
    free(m->slots);
    free(m->keys);
    free(m->key_len);
    free(m->vals);
    free(m->hashes);
    memset(m, 0, sizeof *m);
}

static inline uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static inline size_t pair_slot(uint64_t k, size_t cap) {
    uint64_t h = k * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 17) & (cap - 1);
}

static int pairmap_grow(tok_pairmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys);
    int32_t *rank = malloc(cap * sizeof *rank);
    int32_t *newid = malloc(cap * sizeof *newid);
    if (!keys || !rank || !newid) {
        free(keys);
        free(rank);
        free(newid);
        return -1;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = pair_slot(m->keys[i], cap);
        while (keys[j]) j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        rank[j] = m->rank[i];
        newid[j] = m->newid[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->newid);
    m->keys = keys;
    m->rank = rank;
    m->newid = newid;
    m->cap = cap;
    return 0;
}

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid) {
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m)) return -1;
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k, m->cap);
    while (m->keys[i] && m->keys[i] != k) i = (i + 1) & (m->cap - 1);
    if (!m->keys[i]) m->n++;
    m->keys[i] = k;
    m->rank[i] = rank;
    m->newid[i] = newid;
    return 0;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid) {
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    size_t i = pair_slot(k, m->cap);
    while (m->keys[i]) {
        if (m->keys[i] == k) {
            *rank = m->rank[i];
            *newid = m->newid[i];
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->newid);
    memset(m, 0, sizeof *m);
}
