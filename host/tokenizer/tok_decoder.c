/* tok_decoder.c: tokenizer.json decoders (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace,
 * BPEDecoder, Sequence), each a step over the list of token strings as `tokenizers`' decode_chain. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static ll_status one_char(const char *s, const char *where, const char *field, int32_t *cp, ll_err *err) {
    size_t n = s ? strlen(s) : 0;
    if (!s || !n || tok_utf8_decode((const uint8_t *)s, n, cp) != n)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be a string of exactly one character", where, field);
    return LL_OK;
}

static ll_status count_field(const cJSON *j, const char *k, const char *where, size_t *out, ll_err *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!v) {
        *out = 0;
        return LL_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be a non-negative integer", where, k);
    *out = (size_t)v->valuedouble;
    return LL_OK;
}

ll_status tok_decoder_parse(tok_decoder *d, const cJSON *j, const char *where, ll_err *err) {
    memset(d, 0, sizeof *d);
    const char *type = jstr(j, "type");
    if (!type) return ll_fail(err, LL_ERR_INPUT, "%s: decoder without a string field 'type'", where);
    ll_status st;
    if (!strcmp(type, "ByteLevel")) d->kind = TOK_DEC_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback")) d->kind = TOK_DEC_BYTEFALLBACK;
    else if (!strcmp(type, "Fuse")) d->kind = TOK_DEC_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->kind = TOK_DEC_METASPACE;
        const char *r = jstr(j, "replacement");
        if ((st = one_char(r ? r : "\xE2\x96\x81", where, "replacement", &d->replacement, err))) return st;
        if ((st = tok_prepend_scheme_parse(j, where, &d->prepend, err))) return st;
    } else if (!strcmp(type, "Strip")) {
        d->kind = TOK_DEC_STRIP;
        if ((st = one_char(jstr(j, "content"), where, "content", &d->strip_char, err))) return st;
        if ((st = count_field(j, "start", where, &d->strip_start, err))) return st;
        if ((st = count_field(j, "stop", where, &d->strip_stop, err))) return st;
    } else if (!strcmp(type, "Replace")) {
        d->kind = TOK_DEC_REPLACE;
        const char *c = jstr(j, "content");
        if (!c) return ll_fail(err, LL_ERR_INPUT, "%s: Replace decoder needs a string field 'content'", where);
        if ((st = tok_regex_from_json(&d->re, cJSON_GetObjectItemCaseSensitive(j, "pattern"), where, err))) return st;
        d->content = strdup(c);
        if (!d->content) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        d->content_len = strlen(c);
    } else if (!strcmp(type, "BPEDecoder")) {
        d->kind = TOK_DEC_BPE;
        const char *s = jstr(j, "suffix");
        d->content = strdup(s ? s : "</w>");
        if (!d->content) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        d->content_len = strlen(d->content);
    } else if (!strcmp(type, "Sequence")) {
        d->kind = TOK_DEC_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "decoders");
        if (!cJSON_IsArray(arr))
            return ll_fail(err, LL_ERR_INPUT, "%s: Sequence decoder needs an array field 'decoders'", where);
        int n = cJSON_GetArraySize(arr);
        d->subs = calloc(n ? (size_t)n : 1, sizeof *d->subs);
        if (!d->subs) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        char sub[512];
        for (int i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.decoders[%d]", where, i);
            st = tok_decoder_parse(&d->subs[i], cJSON_GetArrayItem(arr, i), sub, err);
            d->n_subs = (size_t)i + 1;
            if (st) return st;
        }
    } else {
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: decoder type '%s' is not supported (supported: ByteLevel, Metaspace, ByteFallback, Fuse, "
                       "Strip, Replace, BPEDecoder, Sequence)",
                       where, type);
    }
    return LL_OK;
}

void tok_decoder_free(tok_decoder *d) {
    if (!d) return;
    for (size_t i = 0; i < d->n_subs; i++) tok_decoder_free(&d->subs[i]);
    free(d->subs);
    free(d->content);
    tok_regex_free(&d->re);
    memset(d, 0, sizeof *d);
}

/* Replaces token k's text with b's (b is consumed). */
static void take(tok_buf *dst, tok_buf *b) {
    tok_buf_free(dst);
    *dst = *b;
    memset(b, 0, sizeof *b);
}

/* Joins all tokens into the first one; n becomes 1 (0 stays 0). */
static int fuse(tok_buf *t, size_t *n) {
    if (*n == 0) return 0;
    for (size_t i = 1; i < *n; i++) {
        if (tok_buf_append(&t[0], t[i].p, t[i].n)) return -1;
        tok_buf_free(&t[i]);
    }
    *n = 1;
    return 0;
}

static int parse_byte_token(const tok_buf *t, uint8_t *b) {
    if (t->n != 6 || memcmp(t->p, "<0x", 3) || t->p[5] != '>') return 0;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t->p[i];
        int d;
        if (i == 3 && c == '+') continue; /* Rust's from_str_radix accepts a leading '+' */
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return 0;
        v = v * 16 + d;
    }
    *b = (uint8_t)v;
    return 1;
}

static ll_status step(tok_decoder *d, tok_buf *t, size_t *n, ll_err *err) {
    tok_buf nb = {0};
    switch (d->kind) {
    case TOK_DEC_BYTELEVEL: {
        tok_buf raw = {0};
        for (size_t i = 0; i < *n; i++) {
            size_t k = 0;
            while (k < t[i].n) {
                int32_t cp;
                size_t l = tok_utf8_decode((const uint8_t *)t[i].p + k, t[i].n - k, &cp);
                if (!l) l = 1, cp = -1;
                int b = tok_bytelevel_byte(cp);
                uint8_t bb = (uint8_t)b;
                if (b >= 0 ? tok_buf_append(&raw, &bb, 1) : tok_buf_append(&raw, t[i].p + k, l)) goto nomem_raw;
                k += l;
            }
        }
        if (tok_utf8_lossy((const uint8_t *)raw.p, raw.n, &nb)) goto nomem_raw;
        tok_buf_free(&raw);
        for (size_t i = 0; i < *n; i++) tok_buf_free(&t[i]);
        t[0] = nb;
        *n = 1;
        return LL_OK;
    nomem_raw:
        tok_buf_free(&raw);
        goto nomem;
    }
    case TOK_DEC_METASPACE:
        for (size_t i = 0; i < *n; i++) {
            nb.n = 0;
            size_t k = 0;
            while (k < t[i].n) {
                int32_t cp;
                size_t l = tok_utf8_decode((const uint8_t *)t[i].p + k, t[i].n - k, &cp);
                if (!l) l = 1, cp = -1;
                if (cp == d->replacement) {
                    if (!(i == 0 && d->prepend != TOK_PREPEND_NEVER) && tok_buf_append(&nb, " ", 1)) goto nomem;
                } else if (tok_buf_append(&nb, t[i].p + k, l)) goto nomem;
                k += l;
            }
            tok_buf tmp = t[i];
            t[i] = nb;
            nb = tmp;
        }
        tok_buf_free(&nb);
        return LL_OK;
    case TOK_DEC_BYTEFALLBACK: {
        /* Runs of <0xNN> tokens become their bytes when those are valid UTF-8, else one U+FFFD per
         * byte. The list is rebuilt in place (it never grows past the number of byte tokens). */
        size_t w = 0, i = 0;
        while (i < *n) {
            uint8_t b;
            if (!parse_byte_token(&t[i], &b)) {
                if (w != i) take(&t[w], &t[i]);
                w++, i++;
                continue;
            }
            tok_buf bytes = {0};
            size_t j = i;
            while (j < *n && parse_byte_token(&t[j], &b)) {
                if (tok_buf_append(&bytes, &b, 1)) {
                    tok_buf_free(&bytes);
                    goto nomem;
                }
                j++;
            }
            size_t run = j - i;
            if (tok_utf8_valid((const uint8_t *)bytes.p, bytes.n)) {
                take(&t[w++], &bytes);
            } else {
                tok_buf_free(&bytes);
                for (size_t k = 0; k < run; k++) {
                    tok_buf r = {0};
                    if (tok_buf_append(&r, "\xEF\xBF\xBD", 3)) goto nomem;
                    take(&t[w++], &r);
                }
            }
            for (size_t k = w; k < j; k++) tok_buf_free(&t[k]);
            i = j;
        }
        for (size_t k = w; k < *n; k++) tok_buf_free(&t[k]);
        *n = w;
        return LL_OK;
    }
    case TOK_DEC_FUSE:
        if (fuse(t, n)) goto nomem;
        return LL_OK;
    case TOK_DEC_STRIP:
        for (size_t i = 0; i < *n; i++) {
            char enc[4];
            size_t cl = tok_utf8_encode(d->strip_char, enc);
            size_t a = 0, b = t[i].n;
            for (size_t k = 0; k < d->strip_start && b - a >= cl && !memcmp(t[i].p + a, enc, cl); k++) a += cl;
            for (size_t k = 0; k < d->strip_stop && b - a >= cl && !memcmp(t[i].p + b - cl, enc, cl); k++) b -= cl;
            if (a > 0 && b > a) memmove(t[i].p, t[i].p + a, b - a);
            t[i].n = b - a;
        }
        return LL_OK;
    case TOK_DEC_REPLACE:
    case TOK_DEC_BPE:
        for (size_t i = 0; i < *n; i++) {
            if (t[i].n == 0) continue; /* nothing to replace in an empty token */
            tok_spans sp = {0};
            nb.n = 0;
            const char *rep = d->content;
            size_t rl = d->content_len;
            int r;
            if (d->kind == TOK_DEC_BPE) {
                /* The suffix becomes a space, or nothing on the last token. */
                tok_regex lit;
                r = tok_regex_literal(&lit, d->content, d->content_len, "decoder", err) ? -2 : 0;
                if (!r) {
                    r = tok_regex_spans(&lit, t[i].p, t[i].n, 0, &sp, err);
                    tok_regex_free(&lit);
                }
                rep = i + 1 == *n ? "" : " ";
                rl = i + 1 == *n ? 0 : 1;
            } else {
                r = tok_regex_spans(&d->re, t[i].p, t[i].n, 0, &sp, err);
            }
            if (r == -1) {
                tok_spans_free(&sp);
                tok_buf_free(&nb);
                return LL_ERR_INPUT;
            }
            int e = r != 0;
            for (size_t k = 0; !e && k < sp.n; k++)
                e = sp.v[k].is_match ? tok_buf_append(&nb, rep, rl)
                                     : tok_buf_append(&nb, t[i].p + sp.v[k].start, sp.v[k].end - sp.v[k].start);
            tok_spans_free(&sp);
            if (e) goto nomem;
            tok_buf tmp = t[i];
            t[i] = nb;
            nb = tmp;
        }
        tok_buf_free(&nb);
        return LL_OK;
    case TOK_DEC_SEQUENCE:
        for (size_t k = 0; k < d->n_subs; k++) {
            ll_status st = step(&d->subs[k], t, n, err);
            if (st) return st;
        }
        return LL_OK;
    }
nomem:
    tok_buf_free(&nb);
    return ll_fail(err, LL_ERR_NOMEM, "decoder: out of memory");
}

ll_status tok_decoder_chain(tok_decoder *d, tok_buf **toks, size_t *n, ll_err *err) {
    return step(d, *toks, n, err);
}
