/* tok_normalizer.c: tokenizer.json normalizers: NFC, NFD, NFKC, NFKD (utf8proc), Lowercase, Replace,
 * Prepend, Strip, StripAccents and Sequence, with the semantics of `tokenizers`. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return def;
}

ll_status tok_normalizer_parse(tok_normalizer *nz, const cJSON *j, const char *where, ll_err *err) {
    memset(nz, 0, sizeof *nz);
    const char *type = jstr(j, "type");
    if (!type) return ll_fail(err, LL_ERR_INPUT, "%s: normalizer without a string field 'type'", where);
    char sub[512];
    if (!strcmp(type, "NFC")) nz->kind = TOK_NORM_NFC;
    else if (!strcmp(type, "NFD")) nz->kind = TOK_NORM_NFD;
    else if (!strcmp(type, "NFKC")) nz->kind = TOK_NORM_NFKC;
    else if (!strcmp(type, "NFKD")) nz->kind = TOK_NORM_NFKD;
    else if (!strcmp(type, "Lowercase")) nz->kind = TOK_NORM_LOWERCASE;
    else if (!strcmp(type, "StripAccents")) nz->kind = TOK_NORM_STRIP_ACCENTS;
    else if (!strcmp(type, "Strip")) {
        nz->kind = TOK_NORM_STRIP;
        nz->strip_left = jbool(j, "strip_left", 1);
        nz->strip_right = jbool(j, "strip_right", 1);
    } else if (!strcmp(type, "Prepend")) {
        nz->kind = TOK_NORM_PREPEND;
        const char *p = jstr(j, "prepend");
        if (!p) return ll_fail(err, LL_ERR_INPUT, "%s: Prepend normalizer needs a string field 'prepend'", where);
        nz->content = strdup(p);
        if (!nz->content) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        nz->content_len = strlen(p);
    } else if (!strcmp(type, "Replace")) {
        nz->kind = TOK_NORM_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) return ll_fail(err, LL_ERR_INPUT, "%s: Replace normalizer needs a string field 'content'", where);
        snprintf(sub, sizeof sub, "%s (Replace)", where);
        ll_status st = tok_regex_from_json(&nz->re, cJSON_GetObjectItemCaseSensitive(j, "pattern"), sub, err);
        if (st) return st;
        nz->content = strdup(c);
        if (!nz->content) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        nz->content_len = strlen(c);
    } else if (!strcmp(type, "Sequence")) {
        nz->kind = TOK_NORM_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "normalizers");
        if (!cJSON_IsArray(arr))
            return ll_fail(err, LL_ERR_INPUT, "%s: Sequence normalizer needs an array field 'normalizers'", where);
        int n = cJSON_GetArraySize(arr);
        nz->subs = calloc(n ? (size_t)n : 1, sizeof *nz->subs);
        if (!nz->subs) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        for (int i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", where, i);
            ll_status st = tok_normalizer_parse(&nz->subs[i], cJSON_GetArrayItem(arr, i), sub, err);
            nz->n_subs = (size_t)i + 1;
            if (st) return st;
        }
    } else {
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: normalizer type '%s' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
                       "Replace, Prepend, Strip, StripAccents, Sequence)",
                       where, type);
    }
    return LL_OK;
}

static ll_status unicode_form(const char *s, size_t n, int opts, tok_buf *out, ll_err *err) {
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst, opts);
    if (r < 0) {
        free(dst);
        return ll_fail(err, LL_ERR_INPUT, "normalizer: Unicode normalization failed: %s", utf8proc_errmsg(r));
    }
    int e = tok_buf_append(out, dst, (size_t)r);
    free(dst);
    return e ? ll_fail(err, LL_ERR_NOMEM, "normalizer: out of memory") : LL_OK;
}

/* char::to_lowercase, code point by code point (no final-sigma context, as `tokenizers`). */
static int lowercase(const char *s, size_t n, tok_buf *out) {
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) return -1;
        char enc[4];
        if (cp == 0x130) {
            if (tok_buf_append(out, "i\xCC\x87", 3)) return -1;
        } else {
            int32_t lc = cp < 0x80 ? ((cp >= 'A' && cp <= 'Z') ? cp + 32 : cp) : utf8proc_tolower(cp);
            if (tok_buf_append(out, enc, tok_utf8_encode(lc, enc))) return -1;
        }
        i += l;
    }
    return 0;
}

static int strip_accents(const char *s, size_t n, tok_buf *out, int *lead_kept) {
    size_t i = 0, start = out->n;
    *lead_kept = 1;
    while (i < n) {
        int32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) return -1;
        utf8proc_category_t c = utf8proc_category(cp);
        if (c != UTF8PROC_CATEGORY_MN && c != UTF8PROC_CATEGORY_MC && c != UTF8PROC_CATEGORY_ME) {
            if (tok_buf_append(out, s + i, l)) return -1;
        } else if (out->n == start) {
            *lead_kept = 0;
        }
        i += l;
    }
    return 0;
}

static int strip(const char *s, size_t n, int left, int right, tok_buf *out, int *lead_kept) {
    size_t a = 0, b = n;
    int32_t cp;
    if (left)
        while (a < b) {
            size_t l = tok_utf8_decode((const uint8_t *)s + a, b - a, &cp);
            if (!l || !tok_uni_is_whitespace(cp)) break;
            a += l;
        }
    if (right)
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)s[k] & 0xC0) == 0x80) k--;
            size_t l = tok_utf8_decode((const uint8_t *)s + k, b - k, &cp);
            if (!l || !tok_uni_is_whitespace(cp)) break;
            b = k;
        }
    *lead_kept = a == 0;
    return tok_buf_append(out, s + a, b - a);
}

static ll_status replace(tok_normalizer *nz, const char *s, size_t n, tok_buf *out, int *lead_kept, ll_err *err) {
    tok_spans sp = {0};
    int r = tok_regex_spans(&nz->re, s, n, 0, &sp, err);
    /* A leading match replaced by nothing removes the first characters. */
    *lead_kept = !(r == 0 && sp.n > 0 && sp.v[0].is_match && sp.v[0].start == 0 && sp.v[0].end > 0 && !nz->content_len);
    ll_status st = LL_OK;
    if (r == -1) st = LL_ERR_INPUT;
    else if (r == -2) st = ll_fail(err, LL_ERR_NOMEM, "normalizer: out of memory");
    for (size_t i = 0; !st && i < sp.n; i++) {
        int e = sp.v[i].is_match ? tok_buf_append(out, nz->content, nz->content_len)
                                 : tok_buf_append(out, s + sp.v[i].start, sp.v[i].end - sp.v[i].start);
        if (e) st = ll_fail(err, LL_ERR_NOMEM, "normalizer: out of memory");
    }
    tok_spans_free(&sp);
    return st;
}

ll_status tok_normalizer_apply(tok_normalizer *nz, const char *s, size_t n, tok_buf *out, int *lead_kept,
                               ll_err *err) {
    int e = 0, kept_local;
    if (!lead_kept) lead_kept = &kept_local;
    *lead_kept = 1;
    switch (nz->kind) {
    case TOK_NORM_NFC: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE, out, err);
    case TOK_NORM_NFD: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, out, err);
    case TOK_NORM_NFKC: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, out, err);
    case TOK_NORM_NFKD: return unicode_form(s, n, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, out, err);
    case TOK_NORM_LOWERCASE: e = lowercase(s, n, out); break;
    case TOK_NORM_STRIP_ACCENTS: e = strip_accents(s, n, out, lead_kept); break;
    case TOK_NORM_STRIP: e = strip(s, n, nz->strip_left, nz->strip_right, out, lead_kept); break;
    case TOK_NORM_PREPEND:
        if (n) e = tok_buf_append(out, nz->content, nz->content_len);
        if (!e) e = tok_buf_append(out, s, n);
        break;
    case TOK_NORM_REPLACE: return replace(nz, s, n, out, lead_kept, err);
    case TOK_NORM_SEQUENCE: {
        /* Ping-pong between two scratch buffers; the last step writes to out. */
        tok_buf a = {0}, b = {0};
        if (tok_buf_append(&a, s, n)) e = 1;
        for (size_t i = 0; !e && i < nz->n_subs; i++) {
            b.n = 0;
            int kept = 1;
            ll_status st = tok_normalizer_apply(&nz->subs[i], a.p, a.n, &b, &kept, err);
            *lead_kept &= kept;
            if (st) {
                tok_buf_free(&a);
                tok_buf_free(&b);
                return st;
            }
            tok_buf t = a;
            a = b;
            b = t;
        }
        if (!e) e = tok_buf_append(out, a.p, a.n);
        tok_buf_free(&a);
        tok_buf_free(&b);
        break;
    }
    }
    return e ? ll_fail(err, LL_ERR_NOMEM, "normalizer: out of memory") : LL_OK;
}

void tok_normalizer_free(tok_normalizer *nz) {
    if (!nz) return;
    for (size_t i = 0; i < nz->n_subs; i++) tok_normalizer_free(&nz->subs[i]);
    free(nz->subs);
    free(nz->content);
    tok_regex_free(&nz->re);
    memset(nz, 0, sizeof *nz);
}
