/* lens.c: the logit lens over every captured point of a batch, through the backend's lens ops.
 *
 * Rows are point-major (row r = point * T + token). Steps:
 *  1. xn = FinalNorm(points), each row with its own statistics, in place (the raw rows are downloaded
 *     first when --save-hidden asks for them);
 *  2. the final rows xf (the model's own output rows) go through one lens pass for their log-sum-exp
 *     and entropy, then lens_expect gives u_t = W_U^T p_final(t) and p_final(t) . b;
 *  3. zt = target logit of each row, then one pass over the vocabulary for all rows: LSE, entropy,
 *     top-k, target rank;
 *  4. KL(p_final || p_row) = -H_final - (xn_row . u_t + p_final . b) + LSE_row (docs/architecture.md);
 *  5. optionally, full probability rows of selected tokens (float16).
 * The [rows x V] logits never exist at once: the backend works over bounded vocabulary tiles. */
#include "engine_internal.h"

#include <math.h>
#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)

ll_status ll_engine_lens(ll_engine *e, const ll_batch *b, const int64_t *probs_rows, int64_t n_probs_rows,
                         ll_lens_out *out, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    int64_t T = b->T, d = c->d_model, V = e->V, P = e->p->n, R = P * T;
    int k = e->o.topk;
    const ll_wt *wu = e->w->unembed, *bu = ll_weights_global(e->w, LL_GW_UNEMBED_B);
    ll_status rc;
    LL_ASSERT(n_probs_rows <= e->o.max_probs_rows || e->o.probs_nv == 0);

    /* the raw residual rows first: step 1 normalizes them in place */
    float *hb = e->h_buf;
    int32_t *ib = e->h_ibuf;
    if (out->hidden) {
        CHECK(be->ops->download(be, hb, e->pts, (size_t)(R * d) * 4));
        for (int64_t p = 0; p < P; p++)
            for (int64_t t = 0; t < T; t++)
                memcpy(out->hidden + (t * P + p) * d, hb + (p * T + t) * d, (size_t)d * 4);
    }
    /* 1 */
    float *xn = e->pts;
    if ((rc = ll_engine_norm(e, xn, e->pts, ll_weights_global(e->w, LL_GW_FINAL_NORM),
                             ll_weights_global(e->w, LL_GW_FINAL_NORM_B), R, err)))
        return rc;
    /* 2: the model's own output distribution */
    CHECK(be->ops->upload(be, e->tgt_rows, b->target, (size_t)T * 4));
    CHECK(be->ops->lens_target_logits(be, e->zt_f, e->xf, wu, bu, e->tgt_rows, T, d));
    ll_lens_pass_args fa = {.x = e->xf, .wu = wu, .bu = bu, .zt = e->zt_f, .target = e->tgt_rows, .R = T, .d = d,
                            .V = V, .k = k, .lse = e->lse_f, .entropy = e->ent_f, .topk_ids = e->topk_ids_f,
                            .topk_probs = e->topk_probs_f, .rank = e->rank_f};
    CHECK(be->ops->lens_pass(be, &fa));
    CHECK(be->ops->lens_expect(be, e->u, e->pb, e->xf, wu, bu, e->lse_f, T, d, V));
    /* 3 */
    for (int64_t p = 0; p < P; p++) memcpy(e->h_tgt_rows + p * T, b->target, (size_t)T * 4);
    CHECK(be->ops->upload(be, e->tgt_rows, e->h_tgt_rows, (size_t)R * 4));
    CHECK(be->ops->lens_target_logits(be, e->zt, xn, wu, bu, e->tgt_rows, R, d));
    ll_lens_pass_args a = {.x = xn, .wu = wu, .bu = bu, .zt = e->zt, .target = e->tgt_rows, .R = R, .d = d,
                           .V = V, .k = k, .lse = e->lse, .entropy = e->ent, .topk_ids = e->topk_ids,
                           .topk_probs = e->topk_probs, .rank = e->rank};
    CHECK(be->ops->lens_pass(be, &a));
    /* 4 */
    CHECK(be->ops->lens_kl(be, e->kl, xn, wu, e->u, e->pb, e->ent_f, e->lse, R, T, d));

    /* Download and transpose to token-major [T, P, ...]. */
    CHECK(be->ops->download(be, ib, e->topk_ids, (size_t)(R * k) * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++)
            memcpy(out->topk_ids + (t * P + p) * k, ib + (p * T + t) * k, (size_t)k * 4);
    CHECK(be->ops->download(be, hb, e->topk_probs, (size_t)(R * k) * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++)
            memcpy(out->topk_probs + (t * P + p) * k, hb + (p * T + t) * k, (size_t)k * 4);
    CHECK(be->ops->download(be, hb, e->ent, (size_t)R * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++) out->entropy[t * P + p] = hb[p * T + t];
    CHECK(be->ops->download(be, hb, e->kl, (size_t)R * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++) out->kl_final[t * P + p] = hb[p * T + t];
    CHECK(be->ops->download(be, ib, e->rank, (size_t)R * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++) out->target_ranks[t * P + p] = ib[p * T + t];
    /* target log-probability = zt - LSE: both downloaded, combined here */
    CHECK(be->ops->download(be, hb, e->zt, (size_t)R * 4));
    CHECK(be->ops->download(be, hb + R, e->lse, (size_t)R * 4));
    for (int64_t p = 0; p < P; p++)
        for (int64_t t = 0; t < T; t++) {
            int64_t r = p * T + t;
            float lp = b->target[t] >= 0 ? hb[r] - hb[R + r] : NAN;
            out->target_logprobs[t * P + p] = lp;
            out->target_probs[t * P + p] = b->target[t] >= 0 ? expf(lp) : NAN;
        }

    /* 5: full rows of the selected tokens, gathered point-major [P, n_probs_rows] */
    if (n_probs_rows > 0 && e->o.probs_nv > 0) {
        int64_t ns = n_probs_rows, nv = e->o.probs_nv, rows = P * ns;
        for (int64_t p = 0; p < P; p++)
            for (int64_t j = 0; j < ns; j++) {
                int64_t src = p * T + probs_rows[j];
                CHECK(be->ops->copy(be, e->xsel + (p * ns + j) * d, xn + src * d, (size_t)d * 4));
            }
        /* the gathered rows' LSE values (downloaded above to hb[R..2R)) go to the device through zt,
         * which is free again */
        float *lse_sel = hb + 2 * R;
        LL_ASSERT(rows <= R); /* h_buf holds at least 3R floats */
        for (int64_t p = 0; p < P; p++)
            for (int64_t j = 0; j < ns; j++) lse_sel[p * ns + j] = hb[R + p * T + probs_rows[j]];
        CHECK(be->ops->upload(be, e->zt, lse_sel, (size_t)rows * 4));
        CHECK(be->ops->lens_probs(be, e->probs, e->xsel, wu, bu, e->zt, rows, d, V, e->o.probs_vocab ? e->vsel : NULL,
                                  nv));
        CHECK(be->ops->download(be, e->h_probs, e->probs, (size_t)(rows * nv) * 2));
        for (int64_t p = 0; p < P; p++)
            for (int64_t j = 0; j < ns; j++)
                memcpy(out->probs + (j * P + p) * nv, e->h_probs + (p * ns + j) * nv, (size_t)nv * 2);
    }
    return LL_OK;
}
