/* tok_decode.c: ids back to text: ll_tokenizer_decode (the decoder chain of tokenizer.json, as
 * `tokenizers`' decode with skip_special_tokens=False), and per-token raw bytes and display strings. */
#include "tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The string `tokenizers` gives a token (id_to_token): for added tokens their content, normalized
 * when the token is matched after normalization; otherwise the model vocabulary's string. Returns
 * 2 for an added token, 1 for a model token, 0 for an unknown id. */
static int token_string(const ll_tokenizer *tk, int32_t id, const char **s, size_t *n) {
    if (id < 0) return 0;
    int32_t i = id < tk->added.n_by_id ? tk->added.by_id[id] : -1;
    if (i >= 0) {
        if (tk->added.norm_content[i]) {
            *s = tk->added.norm_content[i];
            *n = tk->added.norm_len[i];
        } else {
            *s = tk->added.tokens[i].content;
            *n = tk->added.tokens[i].len;
        }
        return 2;
    }
    if (id < tk->bpe.n_ids && tk->bpe.id_tok[id]) {
        *s = tk->bpe.id_tok[id];
        *n = tk->bpe.id_len[id];
        return 1;
    }
    return 0;
}

ll_status ll_tokenizer_decode(ll_tokenizer *tk, const int32_t *ids, size_t n, char **text, ll_err *err) {
    size_t len;
    return ll_tokenizer_decode_n(tk, ids, n, text, &len, err);
}

ll_status ll_tokenizer_decode_n(ll_tokenizer *tk, const int32_t *ids, size_t n, char **text, size_t *len,
                                ll_err *err) {
    *text = NULL;
    *len = 0;
    tok_buf *toks = calloc(n ? n : 1, sizeof *toks);
    if (!toks) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory decoding %zu ids", n);
    size_t nt = 0;
    ll_status st = LL_OK;
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t l;
        if (!token_string(tk, ids[i], &s, &l)) continue; /* unknown ids are skipped, as `tokenizers` does */
        if (tok_buf_append(&toks[nt], s, l)) {
            st = ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
            nt++;
            goto done;
        }
        nt++;
    }
    tok_buf out = {0};
    if (tk->dec) {
        tok_bytelevel_init();
        if ((st = tok_decoder_chain(tk->dec, &toks, &nt, err))) goto done;
        for (size_t i = 0; i < nt; i++)
            if (tok_buf_append(&out, toks[i].p, toks[i].n)) st = LL_ERR_NOMEM;
    } else {
        for (size_t i = 0; i < nt; i++)
            if ((i && tok_buf_append(&out, " ", 1)) || tok_buf_append(&out, toks[i].p, toks[i].n)) st = LL_ERR_NOMEM;
    }
    if (!st && tok_buf_append(&out, "", 1)) st = LL_ERR_NOMEM;
    if (st) {
        tok_buf_free(&out);
        st = ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    } else {
        *text = out.p;
        *len = out.n - 1;
    }
done:
    for (size_t i = 0; i < (n ? n : 1); i++) tok_buf_free(&toks[i]); /* unused entries are zeroed */
    free(toks);
    return st;
}

size_t ll_tokenizer_token_bytes(const ll_tokenizer *tk, int32_t id, uint8_t *buf, size_t cap) {
    const char *s;
    size_t n, len = 0;
    int kind = token_string(tk, id, &s, &n);
    if (!kind) return 0;
#define PUT(byte)                                      \
    do {                                               \
        if (len < cap) buf[len] = (uint8_t)(byte);     \
        len++;                                         \
    } while (0)
    if (kind == 2) { /* added tokens are literal text, apart from a metaspace char */
        size_t i = 0;
        while (i < n) {
            int32_t cp;
            size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
            if (!l) l = 1, cp = -1;
            if (cp >= 0 && cp == tk->meta_char) PUT(' ');
            else
                for (size_t k = 0; k < l; k++) PUT(s[i + k]);
            i += l;
        }
        return len;
    }
    if (tk->bpe.byte_fallback && n == 6 && !memcmp(s, "<0x", 3) && s[5] == '>') {
        for (int b = 0; b < 256; b++)
            if (tk->bpe.byte_ids[b] == id) {
                PUT(b);
                return len;
            }
    }
    size_t i = 0;
    while (i < n) {
        int32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) l = 1, cp = -1;
        int b = tk->bytelevel_display ? tok_bytelevel_byte(cp) : -1;
        if (b >= 0) PUT(b);
        else if (cp >= 0 && cp == tk->meta_char) PUT(' ');
        else
            for (size_t k = 0; k < l; k++) PUT(s[i + k]);
        i += l;
    }
#undef PUT
    return len;
}

size_t ll_tokenizer_token_display(const ll_tokenizer *tk, int32_t id, char *buf, size_t cap) {
    tok_bytelevel_init();
    char tmp[64];
    tok_buf out = {0};
    size_t len;
    if (id < 0 || id >= tk->n_ids || !token_string(tk, id, &(const char *){0}, &(size_t){0})) {
        len = (size_t)snprintf(tmp, sizeof tmp, "<unused:%d>", (int)id);
    } else {
        size_t n = ll_tokenizer_token_bytes(tk, id, NULL, 0);
        uint8_t *b = malloc(n ? n : 1);
        if (!b) return 0;
        ll_tokenizer_token_bytes(tk, id, b, n);
        size_t i = 0;
        int e = 0;
        while (i < n && !e) {
            int32_t cp;
            size_t l = tok_utf8_decode(b + i, n - i, &cp);
            if (l) {
                e = tok_buf_append(&out, b + i, l);
                i += l;
            } else {
                char esc[5];
                snprintf(esc, sizeof esc, "\\x%02x", b[i]);
                e = tok_buf_append(&out, esc, 4);
                i++;
            }
        }
        free(b);
        if (e) {
            tok_buf_free(&out);
            return 0;
        }
        len = out.n;
    }
    const char *src = out.p ? out.p : tmp;
    if (cap) {
        size_t k = len < cap - 1 ? len : cap - 1;
        /* Never cut a UTF-8 sequence in half. */
        if (k < len)
            while (k > 0 && ((uint8_t)src[k] & 0xC0) == 0x80) k--;
        memcpy(buf, src, k);
        buf[k] = 0;
    }
    tok_buf_free(&out);
    return len;
}
