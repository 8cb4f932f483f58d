/* h5_append.c: ll_h5_append (include/ll_h5.h): checks one batch of whole prompts and appends it to every
 * growing dataset, one hyperslab write per dataset. Derived here: token_prompt, token_position,
 * prompt_offsets (from prompt_lengths across batches) and probs_token_index (batch-local index plus the
 * tokens written before). */
#include "h5_writer_int.h"

#include <stdlib.h>

static ll_status check_batch(const ll_h5_writer *w, const ll_h5_batch *b, ll_err *err) {
#define BATCH_REQUIRE(cond, fmt, ...)                                                                      \
    do {                                                                                                   \
        if (!(cond)) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output %s: batch " fmt, w->path, __VA_ARGS__); \
    } while (0)
    BATCH_REQUIRE(b->n_prompts >= 0 && b->n_tokens >= 0, "%s", "counts: expected n_prompts, n_tokens >= 0");
    BATCH_REQUIRE(b->n_prompts == 0 || b->prompt_lengths, "%s", "prompt_lengths: NULL");
    int64_t sum = 0;
    for (int i = 0; i < b->n_prompts; i++) {
        BATCH_REQUIRE(b->prompt_lengths[i] >= 1, "prompt_lengths[%d]: expected >= 1, got %lld", i,
                      (long long)b->prompt_lengths[i]);
        sum += b->prompt_lengths[i];
    }
    BATCH_REQUIRE(sum == b->n_tokens, "prompt_lengths: expected them to sum to n_tokens = %lld, got %lld",
                  (long long)b->n_tokens, (long long)sum);
    BATCH_REQUIRE(w->dim_len[DIM_TOKEN] + b->n_tokens <= INT32_MAX &&
                      w->dim_len[DIM_PROMPT] + b->n_prompts <= INT32_MAX,
                  "%s", "size: more than 2^31 tokens or prompts in one file");
    if (b->n_tokens > 0)
        BATCH_REQUIRE(b->tokens && b->target_ids && b->topk_ids && b->topk_probs && b->entropy && b->kl_final &&
                          b->target_probs && b->target_logprobs && b->target_ranks,
                      "%s", "arrays: expected tokens, targets, top-k and statistics arrays");
    BATCH_REQUIRE(!w->save_hidden || b->n_tokens == 0 || b->hidden, "%s", "hidden: NULL with save_hidden");
    BATCH_REQUIRE(w->save_probs || b->n_probs_rows == 0, "n_probs_rows: %lld rows without save_probs",
                  (long long)b->n_probs_rows);
    BATCH_REQUIRE(b->n_probs_rows >= 0 && (b->n_probs_rows == 0 || (b->probs_token && b->probs)), "%s",
                  "probs: expected probs_token and probs arrays");
    for (int64_t r = 0; r < b->n_probs_rows; r++)
        BATCH_REQUIRE(b->probs_token[r] >= 0 && b->probs_token[r] < b->n_tokens,
                      "probs_token[%lld]: expected a token index in [0, %lld), got %lld", (long long)r,
                      (long long)b->n_tokens, (long long)b->probs_token[r]);
#undef BATCH_REQUIRE
    return LL_OK;
}

/* Grows a dimension scale by n entries (old_len, old_len + 1, ...). */
static ll_status grow_scale(ll_h5_writer *w, int dim, int64_t n, int64_t *scratch, ll_err *err) {
    int64_t old = w->dim_len[dim];
    for (int64_t i = 0; i < n; i++) scratch[i] = old + i;
    return ll_h5w_append_rows(w, w->scale[dim], H5T_NATIVE_INT64, old, n, scratch, ll_h5w_dim_names[dim], err);
}

static ll_status append_ds(ll_h5_writer *w, int i, int64_t n_old, int64_t n_new, const void *buf, ll_err *err) {
    return ll_h5w_append_rows(w, w->ds[i], ll_h5w_mem_type(w, ll_h5w_specs[i].kind), n_old, n_new, buf, ll_h5w_specs[i].name, err);
}

ll_status ll_h5_append(ll_h5_writer *w, const ll_h5_batch *b, ll_err *err) {
    ll_status st;
    if (!w || !b) return ll_fail(err, LL_ERR_INTERNAL, "hdf5 output: ll_h5_append given NULL");
    if ((st = check_batch(w, b, err))) return st;
    if (b->n_prompts == 0) return LL_OK;

    int64_t nt = b->n_tokens, np = b->n_prompts, nr = b->n_probs_rows;
    int64_t tok0 = w->dim_len[DIM_TOKEN], prompt0 = w->dim_len[DIM_PROMPT];
    int64_t edge0 = w->dim_len[DIM_PROMPT_EDGE], row0 = w->save_probs ? w->dim_len[DIM_PROBS_ROW] : 0;
    int64_t big = nt > nr ? nt : nr;
    int32_t *tprompt = ll_malloc_array((size_t)nt, sizeof *tprompt);
    int32_t *tpos = ll_malloc_array((size_t)nt, sizeof *tpos);
    int64_t *offs = ll_malloc_array((size_t)np, sizeof *offs);
    int64_t *scratch = ll_malloc_array((size_t)big, sizeof *scratch);
    const char **texts = ll_malloc_array((size_t)np, sizeof *texts);
    const char **targets = ll_malloc_array((size_t)np, sizeof *targets);
    if (!tprompt || !tpos || !offs || !scratch || !texts || !targets) {
        st = ll_fail(err, LL_ERR_NOMEM, "hdf5 output %s: batch of %lld tokens: out of memory", w->path,
                     (long long)nt);
        goto out;
    }
    int64_t t = 0;
    for (int64_t p = 0; p < np; p++) {
        for (int64_t j = 0; j < b->prompt_lengths[p]; j++, t++) {
            tprompt[t] = (int32_t)(prompt0 + p);
            tpos[t] = (int32_t)j;
        }
        offs[p] = tok0 + t;
        texts[p] = b->prompt_texts && b->prompt_texts[p] ? b->prompt_texts[p] : "";
        targets[p] = b->prompt_targets && b->prompt_targets[p] ? b->prompt_targets[p] : "";
    }

    if ((st = append_ds(w, DS_TOKENS, tok0, nt, b->tokens, err))) goto out;
    if ((st = append_ds(w, DS_TOKEN_PROMPT, tok0, nt, tprompt, err))) goto out;
    if ((st = append_ds(w, DS_TOKEN_POSITION, tok0, nt, tpos, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_IDS, tok0, nt, b->target_ids, err))) goto out;
    if ((st = append_ds(w, DS_TOPK_IDS, tok0, nt, b->topk_ids, err))) goto out;
    if ((st = append_ds(w, DS_TOPK_PROBS, tok0, nt, b->topk_probs, err))) goto out;
    if ((st = append_ds(w, DS_ENTROPY, tok0, nt, b->entropy, err))) goto out;
    if ((st = append_ds(w, DS_KL_FINAL, tok0, nt, b->kl_final, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_PROBS, tok0, nt, b->target_probs, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_LOGPROBS, tok0, nt, b->target_logprobs, err))) goto out;
    if ((st = append_ds(w, DS_TARGET_RANKS, tok0, nt, b->target_ranks, err))) goto out;
    if (w->save_hidden && (st = append_ds(w, DS_HIDDEN, tok0, nt, b->hidden, err))) goto out;
    if ((st = grow_scale(w, DIM_TOKEN, nt, scratch, err))) goto out;
    w->dim_len[DIM_TOKEN] += nt;

    if ((st = append_ds(w, DS_PROMPTS, prompt0, np, texts, err))) goto out;
    if ((st = append_ds(w, DS_PROMPT_TARGETS, prompt0, np, targets, err))) goto out;
    if ((st = grow_scale(w, DIM_PROMPT, np, scratch, err))) goto out;
    w->dim_len[DIM_PROMPT] += np;
    if ((st = append_ds(w, DS_PROMPT_OFFSETS, edge0, np, offs, err))) goto out;
    if ((st = grow_scale(w, DIM_PROMPT_EDGE, np, scratch, err))) goto out;
    w->dim_len[DIM_PROMPT_EDGE] += np;

    if (w->save_probs && nr > 0) {
        if ((st = append_ds(w, DS_PROBS, row0, nr, b->probs, err))) goto out;
        for (int64_t r = 0; r < nr; r++) scratch[r] = tok0 + b->probs_token[r];
        if ((st = append_ds(w, DS_PROBS_TOKEN_INDEX, row0, nr, scratch, err))) goto out;
        if ((st = grow_scale(w, DIM_PROBS_ROW, nr, scratch, err))) goto out;
        w->dim_len[DIM_PROBS_ROW] += nr;
    }
out:
    free(tprompt);
    free(tpos);
    free(offs);
    free(scratch);
    free(texts);
    free(targets);
    return st;
}
