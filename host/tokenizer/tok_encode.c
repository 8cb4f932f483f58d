/* tok_encode.c: ll_tokenizer_encode: the encoding pipeline of `tokenizers` (see tok_internal.h).
 *
 * Input bytes that are not valid UTF-8 are first replaced by U+FFFD, one per maximal invalid
 * subsequence: the ids then equal those `tokenizers` gives for Python's
 * bytes.decode("utf-8", errors="replace") of the same bytes. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

static ll_status nomem(ll_err *err) { return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory"); }

ll_status ll_tokenizer_encode(ll_tokenizer *tk, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n_ids, ll_err *err) {
    *ids = NULL;
    *n_ids = 0;
    tok_buf *b0 = &tk->buf[0], *b1 = &tk->buf[1], *b2 = &tk->buf[2];
    tok_plist *p0 = &tk->pl[0], *p1 = &tk->pl[1];
    b0->n = b1->n = b2->n = 0;
    p0->n = p1->n = 0;
    tok_ids out = {0};
    ll_status st = LL_OK;

    if (tok_buf_reserve(b0, 1) || tok_buf_reserve(b1, 1) || tok_buf_reserve(b2, 1)) return nomem(err);
    if (tok_utf8_lossy((const uint8_t *)text, len, b0)) return nomem(err);
    /* 1. non-normalized added tokens on the original text */
    if (tok_added_split(&tk->added, &tk->added.raw, b0->p, 0, b0->n, 1, p0)) return nomem(err);
    /* 2. normalize each text piece, then find normalized added tokens in it */
    const tok_buf *cur_b = b0;
    const tok_plist *cur = p0;
    if (tk->norm || !tk->added.norm.empty) {
        for (size_t i = 0; i < p0->n; i++) {
            const tok_piece *p = &p0->v[i];
            if (p->id >= 0) {
                if (tok_plist_push(p1, 0, 0, p->id, 0)) return nomem(err);
                continue;
            }
            size_t off = b1->n;
            int lead_kept = 1;
            if (tk->norm) {
                if ((st = tok_normalizer_apply(tk->norm, b0->p + p->off, p->len, b1, &lead_kept, err))) return st;
            } else if (tok_buf_append(b1, b0->p + p->off, p->len)) {
                return nomem(err);
            }
            if (tok_added_split(&tk->added, &tk->added.norm, b1->p, off, b1->n - off, p->at_start && lead_kept, p1))
                return nomem(err);
        }
        cur_b = b1;
        cur = p1;
    }
    /* 3. pre-tokenize */
    if (tk->pre) {
        tok_plist *dst = cur == p0 ? p1 : p0;
        dst->n = 0;
        if ((st = tok_pretok_apply(tk->pre, cur, cur_b, dst, b2, err))) return st;
        cur = dst;
        cur_b = b2;
    }
    /* 4. the model, with the post-processor's special tokens around */
    if (add_special)
        for (size_t i = 0; i < tk->post.n_prefix; i++)
            if (tok_ids_push(&out, tk->post.prefix[i])) goto oom;
    for (size_t i = 0; i < cur->n; i++) {
        const tok_piece *p = &cur->v[i];
        if (p->id >= 0) {
            if (tok_ids_push(&out, p->id)) goto oom;
        } else if ((st = tok_bpe_encode_word(&tk->bpe, cur_b->p + p->off, p->len, &out, err))) {
            tok_ids_free(&out);
            return st;
        }
    }
    if (add_special)
        for (size_t i = 0; i < tk->post.n_suffix; i++)
            if (tok_ids_push(&out, tk->post.suffix[i])) goto oom;
    if (!out.v && !(out.v = malloc(sizeof *out.v))) goto oom;
    *ids = out.v;
    *n_ids = out.n;
    return LL_OK;
oom:
    tok_ids_free(&out);
    return nomem(err);
}
