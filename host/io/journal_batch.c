/* journal_batch.c: one committed batch as a file of the run's journal (include/ll_journal.h), and back.
 *
 * Layout (little-endian, every section padded to 8 bytes):
 *   header   "LLJBATCH", u32 version (1), u32 hidden, then i64: index, n_prompts, n_tokens, points, topk,
 *            d_model, probs_vocab, n_probs_rows, text_bytes
 *   i64      prompt_lengths [n_prompts]
 *   texts    per prompt: u32 length + bytes of its text, u32 length + bytes of its target (text_bytes in all)
 *   i32      tokens [T], target_ids [T], topk_ids [T, P, k]
 *   f32      topk_probs [T, P, k], entropy, kl_final, target_probs, target_logprobs [T, P]
 *   i32      target_ranks [T, P]
 *   i64      probs_token [n_probs_rows];  u16 probs [n_probs_rows, P, probs_vocab]
 *   f32      hidden [T, P, d_model] when the run saves it
 *   SHA-256 of everything before it (32 bytes).
 * Decoding trusts nothing: the header must match the run's shape and the batch's index, every count is
 * bounded and overflow-checked against the file's length, the lengths must sum to the token count and the
 * checksum must match. */
#include "ll_journal.h"
#include "ll_sha256.h"

#include <stdlib.h>
#include <string.h>

#define MAGIC "LLJBATCH"
#define VERSION 1u
#define HEADER_BYTES 88
#define COUNT_MAX ((int64_t)1 << 40)

static size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Byte sizes of the numeric sections after the texts, in file order. */
typedef struct sizes {
    size_t lengths, tokens, targets, topk_ids, topk_probs, tp[4], ranks, probs_token, probs, hidden;
} sizes;

/* Section sizes of a batch; -1 when a product overflows. */
static int section_sizes(int64_t np, int64_t T, const ll_journal_shape *s, int64_t nrows, sizes *z) {
    size_t tp, tpk, rows_nv, tpd;
    if (ll_mul_size((size_t)T, (size_t)s->points, &tp) || ll_mul_size(tp, (size_t)s->topk, &tpk) ||
        ll_mul_size((size_t)nrows, (size_t)s->points, &rows_nv) || ll_mul_size(rows_nv, (size_t)s->probs_vocab, &rows_nv) ||
        ll_mul_size(tp, (size_t)s->d_model, &tpd) || tpk > SIZE_MAX / 8 || tpd > SIZE_MAX / 8 || rows_nv > SIZE_MAX / 4)
        return -1;
    z->lengths = (size_t)np * 8;
    z->tokens = pad8((size_t)T * 4);
    z->targets = pad8((size_t)T * 4);
    z->topk_ids = pad8(tpk * 4);
    z->topk_probs = pad8(tpk * 4);
    for (int i = 0; i < 4; i++) z->tp[i] = pad8(tp * 4);
    z->ranks = pad8(tp * 4);
    z->probs_token = (size_t)nrows * 8;
    z->probs = pad8(rows_nv * 2);
    z->hidden = s->hidden ? pad8(tpd * 4) : 0;
    return 0;
}

static size_t sizes_total(const sizes *z) {
    size_t t = z->lengths + z->tokens + z->targets + z->topk_ids + z->topk_probs + z->ranks + z->probs_token + z->probs +
               z->hidden;
    for (int i = 0; i < 4; i++) t += z->tp[i];
    return t;
}

ll_status ll_journal_encode(const ll_h5_batch *b, const ll_journal_shape *s, int64_t index, uint8_t **buf, size_t *len,
                            ll_err *err) {
    const int64_t np = b->n_prompts, T = b->n_tokens, nrows = s->probs_vocab > 0 ? b->n_probs_rows : 0;
    size_t text = 0;
    for (int64_t i = 0; i < np; i++)
        text += 8 + strlen(b->prompt_texts[i]) + strlen(b->prompt_targets[i]);
    sizes z;
    if (section_sizes(np, T, s, nrows, &z))
        return ll_fail(err, LL_ERR_INTERNAL, "journal: batch %lld is too large to record", (long long)index);
    const size_t total = HEADER_BYTES + pad8(text) + sizes_total(&z) + 32;
    uint8_t *p = calloc(1, total);
    if (!p) return ll_fail(err, LL_ERR_NOMEM, "journal: cannot allocate %zu bytes for batch %lld", total, (long long)index);
    uint8_t *w = p;
    memcpy(w, MAGIC, 8);
    uint32_t u[2] = {VERSION, (uint32_t)(s->hidden != 0)};
    memcpy(w + 8, u, 8);
    int64_t h[9] = {index, np, T, s->points, s->topk, s->d_model, s->probs_vocab, nrows, (int64_t)text};
    memcpy(w + 16, h, sizeof h);
    w += HEADER_BYTES;
    memcpy(w, b->prompt_lengths, z.lengths);
    w += z.lengths;
    uint8_t *t0 = w;
    for (int64_t i = 0; i < np; i++)
        for (int j = 0; j < 2; j++) {
            const char *str = j ? b->prompt_targets[i] : b->prompt_texts[i];
            uint32_t n = (uint32_t)strlen(str);
            memcpy(w, &n, 4);
            memcpy(w + 4, str, n);
            w += 4 + n;
        }
    w = t0 + pad8(text);
    const size_t tp = (size_t)T * (size_t)s->points, tpk = tp * (size_t)s->topk;
    struct {
        const void *src;
        size_t bytes, padded;
    } sec[] = {{b->tokens, (size_t)T * 4, z.tokens},           {b->target_ids, (size_t)T * 4, z.targets},
               {b->topk_ids, tpk * 4, z.topk_ids},            {b->topk_probs, tpk * 4, z.topk_probs},
               {b->entropy, tp * 4, z.tp[0]},                 {b->kl_final, tp * 4, z.tp[1]},
               {b->target_probs, tp * 4, z.tp[2]},            {b->target_logprobs, tp * 4, z.tp[3]},
               {b->target_ranks, tp * 4, z.ranks},            {b->probs_token, (size_t)nrows * 8, z.probs_token},
               {b->probs, (size_t)nrows * (size_t)s->points * (size_t)s->probs_vocab * 2, z.probs},
               {b->hidden, s->hidden ? tp * (size_t)s->d_model * 4 : 0, z.hidden}};
    for (size_t i = 0; i < sizeof sec / sizeof sec[0]; i++) {
        if (sec[i].bytes) memcpy(w, sec[i].src, sec[i].bytes);
        w += sec[i].padded;
    }
    ll_sha256 sh;
    ll_sha256_init(&sh);
    ll_sha256_update(&sh, p, (size_t)(w - p));
    ll_sha256_final(&sh, w);
    *buf = p;
    *len = total;
    return LL_OK;
}

void ll_journal_batch_free(ll_journal_batch *jb) {
    if (!jb) return;
    if (jb->texts)
        for (int64_t i = 0; i < 2 * (int64_t)jb->b.n_prompts; i++) free(jb->texts[i]);
    free(jb->texts);
    free(jb->mem);
    memset(jb, 0, sizeof *jb);
}

ll_status ll_journal_decode(uint8_t *buf, size_t len, const ll_journal_shape *s, int64_t index, const char *what,
                            ll_journal_batch *out, ll_err *err) {
    memset(out, 0, sizeof *out);
    out->mem = buf;
    ll_status rc = LL_ERR_INPUT;
#define BAD(...)                                                                                          \
    do {                                                                                                  \
        ll_fail(err, LL_ERR_INPUT, __VA_ARGS__);                                                          \
        goto fail;                                                                                        \
    } while (0)
    if (len < HEADER_BYTES + 32) BAD("%s: %zu bytes, shorter than a batch record", what, len);
    if (memcmp(buf, MAGIC, 8)) BAD("%s: not a logitlens journal batch (magic)", what);
    uint32_t u[2];
    memcpy(u, buf + 8, 8);
    if (u[0] != VERSION) BAD("%s: batch record version %u, expected %u", what, u[0], VERSION);
    int64_t h[9];
    memcpy(h, buf + 16, sizeof h);
    const int64_t np = h[1], T = h[2], nrows = h[7], text = h[8];
    if (h[0] != index) BAD("%s: holds batch %lld, expected %lld", what, (long long)h[0], (long long)index);
    if (h[3] != s->points || h[4] != s->topk || h[5] != s->d_model || h[6] != s->probs_vocab ||
        (int)u[1] != (s->hidden != 0))
        BAD("%s: recorded for %lld points, top-%lld, d_model %lld, %lld saved columns%s; this run has %lld, %lld, %lld, "
            "%lld%s",
            what, (long long)h[3], (long long)h[4], (long long)h[5], (long long)h[6], u[1] ? ", hidden" : "",
            (long long)s->points, (long long)s->topk, (long long)s->d_model, (long long)s->probs_vocab,
            s->hidden ? ", hidden" : "");
    if (np < 1 || np > COUNT_MAX || T < np || T > COUNT_MAX || nrows < 0 || nrows > T || text < 8 * np ||
        text > COUNT_MAX)
        BAD("%s: bad counts (%lld prompts, %lld tokens, %lld saved rows, %lld text bytes)", what, (long long)np,
            (long long)T, (long long)nrows, (long long)text);
    sizes z;
    if (section_sizes(np, T, s, nrows, &z)) BAD("%s: sizes overflow", what);
    size_t need;
    if (ll_add_size(HEADER_BYTES + 32, pad8((size_t)text), &need) || ll_add_size(need, sizes_total(&z), &need))
        BAD("%s: sizes overflow", what);
    if (need != len) BAD("%s: %zu bytes, the header implies %zu", what, len, need);
    uint8_t sum[32];
    ll_sha256 sh;
    ll_sha256_init(&sh);
    ll_sha256_update(&sh, buf, len - 32);
    ll_sha256_final(&sh, sum);
    if (memcmp(sum, buf + len - 32, 32)) BAD("%s: checksum mismatch (the file is damaged)", what);

    uint8_t *r = buf + HEADER_BYTES;
    out->lengths = (int64_t *)r;
    int64_t tok = 0;
    for (int64_t i = 0; i < np; i++) {
        if (out->lengths[i] < 1 || out->lengths[i] > T - tok) BAD("%s: prompt %lld has length %lld", what, (long long)i,
                                                                  (long long)out->lengths[i]);
        tok += out->lengths[i];
    }
    if (tok != T) BAD("%s: prompt lengths sum to %lld, not %lld tokens", what, (long long)tok, (long long)T);
    r += z.lengths;
    if (!(out->texts = calloc((size_t)np * 2, sizeof *out->texts))) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    out->b.n_prompts = (int)np;
    const uint8_t *t = r, *tend = r + text;
    for (int64_t j = 0; j < 2 * np; j++) { /* file order: text, target of each prompt; kept as [texts | targets] */
        uint32_t n;
        const int64_t dst = j % 2 ? np + j / 2 : j / 2;
        if (tend - t < 4) BAD("%s: texts end early", what);
        memcpy(&n, t, 4);
        t += 4;
        if ((size_t)(tend - t) < n) BAD("%s: text %lld runs past its section", what, (long long)j);
        if (!(out->texts[dst] = malloc((size_t)n + 1))) {
            rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        memcpy(out->texts[dst], t, n);
        out->texts[dst][n] = 0;
        t += n;
    }
    if (t != tend) BAD("%s: %lld unused text bytes", what, (long long)(tend - t));
    r += pad8((size_t)text);
    ll_h5_batch *b = &out->b;
    b->n_tokens = T;
    b->prompt_lengths = out->lengths;
    b->tokens = (const int32_t *)r, r += z.tokens;
    b->target_ids = (const int32_t *)r, r += z.targets;
    b->topk_ids = (const int32_t *)r, r += z.topk_ids;
    b->topk_probs = (const float *)r, r += z.topk_probs;
    b->entropy = (const float *)r, r += z.tp[0];
    b->kl_final = (const float *)r, r += z.tp[1];
    b->target_probs = (const float *)r, r += z.tp[2];
    b->target_logprobs = (const float *)r, r += z.tp[3];
    b->target_ranks = (const int32_t *)r, r += z.ranks;
    out->rows = (int64_t *)r, r += z.probs_token;
    b->n_probs_rows = nrows;
    b->probs_token = out->rows;
    for (int64_t i = 0; i < nrows; i++)
        if (out->rows[i] < 0 || out->rows[i] >= T || (i > 0 && out->rows[i] <= out->rows[i - 1]))
            BAD("%s: saved row %lld names token %lld of %lld", what, (long long)i, (long long)out->rows[i], (long long)T);
    b->probs = nrows ? (const uint16_t *)r : NULL, r += z.probs;
    b->hidden = s->hidden ? (const float *)r : NULL;
    /* the texts as the h5 batch wants them */
    b->prompt_texts = (const char *const *)out->texts;
    b->prompt_targets = (const char *const *)(out->texts + np);
    return LL_OK;
fail:
    ll_journal_batch_free(out);
    return rc;
#undef BAD
}
