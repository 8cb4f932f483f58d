/* fuzz_journal.c: the journal's batch files (host/io/journal_batch.c) against arbitrary bytes.
 *
 * Two modes, by the first byte: 'R' builds a batch from the remaining bytes (counts, lengths, texts and
 * values taken from them), encodes it, decodes it and requires the same arrays back (the valid path, which
 * random bytes rarely reach past the checksum); anything else is decoded as a batch file for two run
 * shapes, which must either fail with a message or yield arrays inside the buffer, consistent with the
 * header. Built with ASan + UBSan (mk/fuzz_journal.mk). */
#include "ll_journal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const ll_journal_shape SHAPES[2] = {{.points = 3, .topk = 2, .d_model = 4, .probs_vocab = 5, .hidden = 1},
                                           {.points = 1, .topk = 1, .d_model = 2, .probs_vocab = 0, .hidden = 0}};

static void check_decoded(const ll_journal_batch *jb, const ll_journal_shape *s) {
    const ll_h5_batch *b = &jb->b;
    int64_t sum = 0;
    for (int i = 0; i < b->n_prompts; i++) sum += b->prompt_lengths[i];
    if (sum != b->n_tokens) abort();
    const size_t tp = (size_t)b->n_tokens * (size_t)s->points;
    volatile float acc = 0; /* touch the last element of every array */
    acc += (float)b->tokens[b->n_tokens - 1] + (float)b->target_ids[b->n_tokens - 1];
    acc += (float)b->topk_ids[tp * (size_t)s->topk - 1] + b->topk_probs[tp * (size_t)s->topk - 1];
    acc += b->entropy[tp - 1] + b->kl_final[tp - 1] + b->target_probs[tp - 1] + b->target_logprobs[tp - 1];
    acc += (float)b->target_ranks[tp - 1];
    if (b->n_probs_rows > 0) acc += (float)b->probs[(size_t)b->n_probs_rows * (size_t)s->points * (size_t)s->probs_vocab - 1];
    if (s->hidden) acc += b->hidden[tp * (size_t)s->d_model - 1];
    for (int i = 0; i < b->n_prompts; i++) acc += (float)strlen(b->prompt_texts[i]) + (float)strlen(b->prompt_targets[i]);
    (void)acc;
}

static void round_trip(const uint8_t *d, size_t n) {
    const ll_journal_shape *s = &SHAPES[n > 0 && (d[0] & 1)];
    int np = 1 + (n > 1 ? d[1] % 4 : 0);
    int64_t len[4], T = 0;
    for (int i = 0; i < np; i++) T += len[i] = 1 + (n > 2 + (size_t)i ? d[2 + i] % 5 : 0);
    const size_t tp = (size_t)T * (size_t)s->points;
    int64_t nrows = s->probs_vocab ? T / 2 : 0;
    int32_t *ints = calloc(tp * (size_t)s->topk + (size_t)T * 2 + tp, 4);
    float *fl = calloc(tp * (size_t)s->topk + 4 * tp + tp * (size_t)s->d_model, 4);
    uint16_t *pr = calloc((size_t)nrows * (size_t)s->points * (size_t)s->probs_vocab + 1, 2);
    int64_t rows[16];
    for (int64_t i = 0; i < nrows; i++) rows[i] = 2 * i;
    char *texts[8];
    const char *tptr[4], *gptr[4];
    for (int i = 0; i < 2 * np; i++) {
        size_t k = n > 6 + (size_t)i ? d[6 + i] % 7 : 0;
        texts[i] = calloc(k + 1, 1);
        for (size_t j = 0; j < k; j++) texts[i][j] = (char)(n > j + 10 ? (d[j + 10] | 1) : 'a');
    }
    for (int i = 0; i < np; i++) tptr[i] = texts[i], gptr[i] = texts[np + i];
    for (size_t i = 0; i < tp * (size_t)s->topk + (size_t)T * 2 + tp; i++) ints[i] = (int32_t)(n ? d[i % n] : 0);
    ll_h5_batch b = {.n_prompts = np, .prompt_texts = tptr, .prompt_targets = gptr, .prompt_lengths = len,
                     .n_tokens = T, .tokens = ints, .target_ids = ints + T, .topk_ids = ints + 2 * T,
                     .topk_probs = fl, .entropy = fl + tp * (size_t)s->topk, .kl_final = fl + tp * (size_t)s->topk + tp,
                     .target_probs = fl + tp * (size_t)s->topk + 2 * tp, .target_logprobs = fl + tp * (size_t)s->topk + 3 * tp,
                     .target_ranks = ints + 2 * T + tp * (size_t)s->topk, .n_probs_rows = nrows, .probs_token = rows,
                     .probs = pr, .hidden = s->hidden ? fl + tp * (size_t)s->topk + 4 * tp : NULL};
    uint8_t *buf;
    size_t blen;
    ll_err err;
    if (ll_journal_encode(&b, s, 7, &buf, &blen, &err)) abort();
    ll_journal_batch jb;
    if (ll_journal_decode(buf, blen, s, 7, "round trip", &jb, &err)) abort();
    check_decoded(&jb, s);
    if (jb.b.n_tokens != T || jb.b.n_prompts != np || memcmp(jb.b.tokens, b.tokens, (size_t)T * 4) ||
        memcmp(jb.b.target_ranks, b.target_ranks, tp * 4) || (nrows && memcmp(jb.b.probs_token, rows, (size_t)nrows * 8)))
        abort();
    for (int i = 0; i < np; i++)
        if (strcmp(jb.b.prompt_texts[i], tptr[i]) || strcmp(jb.b.prompt_targets[i], gptr[i])) abort();
    ll_journal_batch_free(&jb);
    for (int i = 0; i < 2 * np; i++) free(texts[i]);
    free(ints), free(fl), free(pr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 0 && data[0] == 'R') {
        round_trip(data + 1, size - 1);
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf) return 0;
        memcpy(buf, data, size);
        ll_journal_batch jb;
        ll_err err;
        if (ll_journal_decode(buf, size, &SHAPES[i], 0, "fuzz", &jb, &err) == LL_OK) { /* buf is the batch's now */
            check_decoded(&jb, &SHAPES[i]);
            ll_journal_batch_free(&jb);
        } else if (!err.msg[0]) {
            abort(); /* every refusal says why */
        }
    }
    return 0;
}
