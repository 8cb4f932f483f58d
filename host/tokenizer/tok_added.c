/* tok_added.c: added tokens (special tokens and user-added tokens) of tokenizer.json.
 *
 * As in `tokenizers`, they are found in the text before pre-tokenization: tokens with
 * normalized=false in the original text, tokens with normalized=true in each normalized piece (their
 * own content normalized the same way). Matching is leftmost-longest over all patterns (a byte trie
 * walked from each candidate position); single_word, lstrip and rstrip then adjust or reject each
 * match exactly as AddedVocabulary::find_matches does. Ids follow AddedVocabulary::add_tokens: the
 * model's id when the content is in the vocabulary, otherwise the next id after the vocabulary. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int trie_node(tok_trie *t, uint8_t byte) {
    if (t->n == t->cap) {
        size_t c = t->cap ? t->cap * 2 : 64;
        tok_trie_node *nn = realloc(t->nodes, c * sizeof *nn);
        if (!nn) return -1;
        t->nodes = nn;
        t->cap = c;
    }
    tok_trie_node *nd = &t->nodes[t->n];
    nd->next_first = -1;
    nd->sibling = -1;
    nd->token = -1;
    nd->byte = byte;
    return (int)t->n++;
}

static int32_t trie_child(const tok_trie *t, int32_t node, uint8_t b) {
    for (int32_t c = t->nodes[node].next_first; c >= 0; c = t->nodes[c].sibling)
        if (t->nodes[c].byte == b) return c;
    return -1;
}

static int trie_add(tok_trie *t, const char *s, size_t n, int32_t token) {
    if (t->n == 0 && trie_node(t, 0) < 0) return -1;
    if (n == 0) return 0;
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)s[i];
        int32_t c = trie_child(t, cur, b);
        if (c < 0) {
            c = trie_node(t, b);
            if (c < 0) return -1;
            t->nodes[c].sibling = t->nodes[cur].next_first;
            t->nodes[cur].next_first = c;
        }
        cur = c;
    }
    if (t->nodes[cur].token < 0) t->nodes[cur].token = token; /* the first pattern wins on duplicates */
    t->first[(uint8_t)s[0]] = 1;
    t->empty = 0;
    return 0;
}

int tok_added_find(const tok_added_vocab *av, const char *s, size_t n) {
    int32_t k;
    return tok_strmap_get(&av->by_content, s, n, &k) ? (int)k : -1;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

ll_status tok_added_parse(ll_tokenizer *tk, const cJSON *arr, const char *path, ll_err *err) {
    tok_added_vocab *av = &tk->added;
    av->raw.empty = av->norm.empty = 1;
    if (!arr || cJSON_IsNull(arr)) return LL_OK;
    if (!cJSON_IsArray(arr)) return ll_fail(err, LL_ERR_INPUT, "%s: field 'added_tokens' must be an array", path);
    int n = cJSON_GetArraySize(arr);
    av->tokens = calloc(n ? (size_t)n : 1, sizeof *av->tokens);
    av->norm_content = calloc(n ? (size_t)n : 1, sizeof *av->norm_content);
    av->norm_len = calloc(n ? (size_t)n : 1, sizeof *av->norm_len);
    if (!av->tokens || !av->norm_content || !av->norm_len) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    int64_t max_added = -1;
    int64_t vsize = (int64_t)tk->bpe.n_vocab;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsObject(e) || !cJSON_IsString(c))
            return ll_fail(err, LL_ERR_INPUT, "%s: added_tokens[%d] must be an object with a string field 'content'", path, i);
        tok_added t = {0};
        t.len = strlen(c->valuestring);
        if (t.len == 0) continue;
        t.special = jbool(e, "special", 0);
        t.single_word = jbool(e, "single_word", 0);
        t.lstrip = jbool(e, "lstrip", 0);
        t.rstrip = jbool(e, "rstrip", 0);
        t.normalized = jbool(e, "normalized", !t.special);
        int prev = tok_added_find(av, c->valuestring, t.len);
        int32_t id;
        if (prev >= 0) {
            id = av->tokens[prev].id;
        } else if (!tok_strmap_get(&tk->bpe.vocab, c->valuestring, t.len, &id)) {
            int64_t nid = max_added < 0 ? vsize : (max_added >= vsize || vsize == 0 ? max_added + 1 : vsize);
            if (nid > INT32_MAX - 1) return ll_fail(err, LL_ERR_INPUT, "%s: added_tokens[%d]: id overflow", path, i);
            id = (int32_t)nid;
        }
        if (id > max_added) max_added = id;
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (cJSON_IsNumber(jid) && jid->valuedouble != (double)id)
            fprintf(stderr, "logitlens: warning: %s: added_tokens[%d] '%s' has id %.0f but tokenizers assigns %d; using %d\n",
                    path, i, c->valuestring, jid->valuedouble, (int)id, (int)id);
        t.id = id;
        if (prev >= 0) {
            /* Re-adding a content updates its flags, as AddedVocabulary does. */
            free(av->tokens[prev].content);
            t.content = strdup(c->valuestring);
            if (!t.content) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
            t.special |= av->tokens[prev].special;
            av->tokens[prev] = t;
            continue;
        }
        t.content = strdup(c->valuestring);
        if (!t.content || tok_strmap_put(&av->by_content, t.content, t.len, (int32_t)av->n)) {
            free(t.content);
            return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        }
        av->tokens[av->n++] = t;
    }
    /* Patterns: special tokens first, then the others, each group in file order. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < av->n; k++) {
            tok_added *t = &av->tokens[k];
            if (t->special != (pass == 0)) continue;
            int e;
            if (!t->normalized) {
                e = trie_add(&av->raw, t->content, t->len, (int32_t)k);
            } else {
                tok_buf nb = {0};
                if (tk->norm) {
                    ll_status st = tok_normalizer_apply(tk->norm, t->content, t->len, &nb, NULL, err);
                    if (st) {
                        tok_buf_free(&nb);
                        return ll_fail_prefix(err, st, "%s: normalizing added token '%s'", path, t->content);
                    }
                } else if (tok_buf_append(&nb, t->content, t->len)) {
                    return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
                }
                av->norm_content[k] = nb.p;
                av->norm_len[k] = nb.n;
                e = nb.n ? trie_add(&av->norm, nb.p, nb.n, (int32_t)k) : 0;
            }
            if (e) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        }
    return LL_OK;
}

/* Longest pattern starting at s[i]; returns the token index or -1, with its length in *len. */
static int32_t longest_at(const tok_trie *t, const char *s, size_t n, size_t i, size_t *len) {
    int32_t cur = 0, best = -1;
    for (size_t k = i; k < n; k++) {
        cur = trie_child(t, cur, (uint8_t)s[k]);
        if (cur < 0) break;
        if (t->nodes[cur].token >= 0) {
            best = t->nodes[cur].token;
            *len = k + 1 - i;
        }
    }
    return best;
}

static int32_t char_before(const char *s, size_t i) {
    if (i == 0) return -1;
    size_t k = i - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
    int32_t cp;
    return tok_utf8_decode((const uint8_t *)s + k, i - k, &cp) ? cp : -1;
}

static int32_t char_at(const char *s, size_t n, size_t i) {
    int32_t cp;
    return i < n && tok_utf8_decode((const uint8_t *)s + i, n - i, &cp) ? cp : -1;
}

int tok_added_split(const tok_added_vocab *av, const tok_trie *trie, const char *buf, size_t base, size_t n,
                    int at_start, tok_plist *out) {
    if (n == 0) return 0;
    const char *s = buf + base;
    if (trie->empty) return tok_plist_push(out, base, n, -1, at_start);
    size_t start_offset = 0, pos = 0;
    while (pos < n) {
        size_t i = pos, len = 0;
        int32_t k = -1;
        for (; i < n; i++) {
            if (!trie->first[(uint8_t)s[i]]) continue;
            k = longest_at(trie, s, n, i, &len);
            if (k >= 0) break;
        }
        if (k < 0) break;
        size_t start = i, stop = i + len;
        pos = stop; /* the search resumes after the raw match, whatever the adjustments below */
        const tok_added *t = &av->tokens[k];
        if (t->single_word) {
            int32_t b = char_before(s, start), a = char_at(s, n, stop);
            int start_space = start == 0 || !tok_uni_is_alnum_word(b);
            int stop_space = stop == n || !tok_uni_is_alnum_word(a);
            if (!start_space || !stop_space) continue;
        }
        if (t->lstrip) {
            size_t ns = start;
            int32_t cp;
            while (ns > 0 && (cp = char_before(s, ns)) >= 0 && tok_uni_is_whitespace(cp)) {
                size_t k2 = ns - 1;
                while (k2 > 0 && ((uint8_t)s[k2] & 0xC0) == 0x80) k2--;
                ns = k2;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (t->rstrip) {
            int32_t cp;
            while (stop < n && (cp = char_at(s, n, stop)) >= 0 && tok_uni_is_whitespace(cp)) {
                char enc[4];
                stop += tok_utf8_encode(cp, enc);
            }
        }
        if (start < start_offset) start = start_offset;
        if (start_offset < start && tok_plist_push(out, base + start_offset, start - start_offset, -1,
                                                   at_start && start_offset == 0))
            return -1;
        if (tok_plist_push(out, base + start, stop - start, t->id, 0)) return -1;
        start_offset = stop;
    }
    if (start_offset < n && tok_plist_push(out, base + start_offset, n - start_offset, -1, at_start && start_offset == 0))
        return -1;
    return 0;
}

static void trie_free(tok_trie *t) {
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

void tok_added_free(tok_added_vocab *av) {
    for (size_t i = 0; i < av->n; i++) {
        free(av->tokens[i].content);
        free(av->norm_content[i]);
    }
    free(av->tokens);
    free(av->norm_content);
    free(av->norm_len);
    tok_strmap_free(&av->by_content);
    free(av->by_id);
    trie_free(&av->raw);
    trie_free(&av->norm);
    memset(av, 0, sizeof *av);
}
