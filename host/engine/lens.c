/* lens.c: the logit lens over every captured point of a batch, through the backend's lens ops.
 *
 * Rows are point-major (row r = point * T + token). Steps:
 *  1. xn = FinalNorm(points), each row with its own statistics, in place (the raw rows are downloaded
 *     first when --save-hidden asks for them);
 *  2. the final rows xf (the model's own output rows, on the last pipeline stage) go through one lens
 *     pass for their log-sum-exp and entropy, then lens_expect gives u_t = W_U^T p_final(t) and
 *     p_final(t) . b; other stages receive u, p_final . b and H_final from the last one;
 *  3. zt = target logit of each row, then one pass over the vocabulary for all rows: LSE, entropy,
 *     top-k, target rank;
 *  4. KL(p_final || p_row) = -H_final - (xn_row . u_t + p_final . b) + LSE_row (docs/architecture.md);
 *  5. optionally, full probability rows of selected tokens (float16);
 *  6. world rank 0 gathers every stage's results (pipeline.c).
 * Under tensor parallelism every pass covers this rank's vocabulary slice and the group merges the row
 * states (lens_vp.c); u and p_final . b are sums over the slices, each slice's own expectation weighted by
 * its share of the softmax. The [rows x V] logits never exist at once: the backend works over bounded
 * vocabulary tiles. */
#include "engine_internal.h"

#include <math.h>
#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)

/* Step 2: u, pb and H_final (e->ent_f) for the batch's T final rows, on every stage. */
static ll_status final_terms(ll_engine *e, const ll_batch *b, ll_err *err) {
    ll_backend *be = e->be;
    const ll_shard *sh = &e->sh;
    const int64_t T = b->T, d = e->c->d_model;
    const ll_wt *wu = e->w->unembed, *bu = ll_weights_global(e->w, LL_GW_UNEMBED_B);
    ll_status rc;
    if (sh->pp_rank == sh->pp - 1) {
        ll_vp_dev dv = {.zt = e->zt_f, .lse = e->lse_f, .ent = e->ent_f, .probs = e->topk_probs_f,
                        .rank = e->rank_f, .ids = e->topk_ids_f};
        ll_vp_host hv = {.zt = e->r_zt, .lse = e->r_lse, .ent = e->r_ent, .probs = e->r_tkp, .rank = e->r_rank,
                         .ids = e->r_tki, .lse_own = e->r_lse_loc, .pi = e->h_pi};
        if ((rc = ll_engine_vp_pass(e, e->xf, T, b->target, &dv, &hv, err))) return rc;
        /* over this rank's slice, normalized within it (e->lse_f is still the slice's own LSE) */
        CHECK(be->ops->lens_expect(be, e->u, e->pb, e->xf, wu, bu, e->lse_f, T, d, e->V));
        if (sh->tp > 1) { /* weight each slice by its share pi of the softmax and sum over the group */
            float *pb = e->h_buf;
            CHECK(be->ops->download(be, e->h_u, e->u, (size_t)(T * d) * 4));
            CHECK(be->ops->download(be, pb, e->pb, (size_t)T * 4));
            for (int64_t t = 0; t < T; t++) { /* shares renormalized to sum to 1 (in double), as lens_expect
                                                  divides by its probabilities' actual sum */
                double sum = 0;
                for (int i = 0; i < sh->tp; i++) sum += e->h_pi[(int64_t)i * T + t];
                const double w = (double)e->h_pi[(int64_t)sh->tp_rank * T + t] / sum;
                float *ut = e->h_u + t * d;
                for (int64_t j = 0; j < d; j++) ut[j] = (float)(ut[j] * w);
                pb[t] = (float)(pb[t] * w);
            }
            CHECK(be->ops->upload(be, e->u, e->h_u, (size_t)(T * d) * 4));
            CHECK(be->ops->upload(be, e->pb, pb, (size_t)T * 4));
            e->stats.lens_exchange += (double)(T * d + T) * 4;
            if (e->tp->allreduce_sum(e->tp, be, e->u, T * d) || e->tp->allreduce_sum(e->tp, be, e->pb, T))
                return ll_fail(err, LL_ERR_BACKEND, "lens KL terms all-reduce: %s", e->tp->err.msg);
            CHECK(be->ops->upload(be, e->ent_f, e->r_ent, (size_t)T * 4)); /* the merged H_final */
        }
        for (int s = 0; s + 1 < sh->pp; s++) {
            const int peer = s * sh->tp + sh->tp_rank;
            e->stats.pipeline += (double)(T * d + 2 * T) * 4;
            if (e->world->send(e->world, be, e->u, (size_t)(T * d) * 4, peer) ||
                e->world->send(e->world, be, e->pb, (size_t)T * 4, peer) ||
                e->world->send(e->world, be, e->ent_f, (size_t)T * 4, peer))
                return ll_fail(err, LL_ERR_BACKEND, "sending the final distribution's terms to rank %d: %s", peer,
                               e->world->err.msg);
        }
    } else {
        const int peer = (sh->pp - 1) * sh->tp + sh->tp_rank;
        if (e->world->recv(e->world, be, e->u, (size_t)(T * d) * 4, peer) ||
            e->world->recv(e->world, be, e->pb, (size_t)T * 4, peer) ||
            e->world->recv(e->world, be, e->ent_f, (size_t)T * 4, peer))
            return ll_fail(err, LL_ERR_BACKEND, "receiving the final distribution's terms from rank %d: %s", peer,
                           e->world->err.msg);
    }
    return LL_OK;
}

/* Step 5: float16 probabilities of the saved rows (point-major [P, ns]) into e->r_probs [P ns, nv] on the
 * group's rank 0; each rank computes the columns of its slice. */
static ll_status saved_probs(ll_engine *e, const int64_t *probs_rows, int64_t ns, int64_t T, ll_err *err) {
    ll_backend *be = e->be;
    const ll_shard *sh = &e->sh;
    const int64_t d = e->c->d_model, P = e->P, rows = P * ns, nv = e->o.probs_nv;
    const ll_wt *wu = e->w->unembed, *bu = ll_weights_global(e->w, LL_GW_UNEMBED_B);
    for (int64_t p = 0; p < P; p++)
        for (int64_t j = 0; j < ns; j++) {
            const int64_t src = p * T + probs_rows[j];
            CHECK(be->ops->copy(be, e->xsel + (p * ns + j) * d, e->pts + src * d, (size_t)d * 4));
        }
    /* the saved rows' (merged) LSE go to the device through zt, which is free again */
    float *lse_sel = e->h_buf;
    LL_ASSERT(rows <= e->Rcap);
    for (int64_t p = 0; p < P; p++)
        for (int64_t j = 0; j < ns; j++) lse_sel[p * ns + j] = e->r_lse[p * T + probs_rows[j]];
    CHECK(be->ops->upload(be, e->zt, lse_sel, (size_t)rows * 4));
    const int whole = sh->tp == 1;
    /* without --probs-vocab a rank's columns are its whole slice */
    if (e->nv_loc > 0)
        CHECK(be->ops->lens_probs(be, e->probs, e->xsel, wu, bu, e->zt, rows, d, e->V,
                                  e->o.probs_vocab ? e->vsel : NULL, e->nv_loc));
    if (whole) {
        CHECK(be->ops->download(be, e->r_probs, e->probs, (size_t)(rows * nv) * 2));
        return LL_OK;
    }
    const int64_t w = e->nv_loc_max;
    e->stats.lens_exchange += (double)(rows * w) * 2;
    if (e->tp->allgather(e->tp, be, e->prob_gather, e->probs, (size_t)(rows * w) * 2))
        return ll_fail(err, LL_ERR_BACKEND, "saved probabilities all-gather: %s", e->tp->err.msg);
    if (sh->tp_rank != 0) return LL_OK;
    CHECK(be->ops->download(be, e->h_probs, e->prob_gather, (size_t)(rows * w) * 2 * (size_t)sh->tp));
    /* column j of the output belongs to the rank whose slice holds its id, at that rank's next local column;
     * rank i's block is its [rows, n_i] result (n_i columns, packed) */
    int64_t next[LL_MAX_TP], cnt[LL_MAX_TP];
    memset(next, 0, sizeof next);
    memset(cnt, 0, sizeof cnt);
    for (int pass = 0; pass < 2; pass++)
        for (int64_t j = 0; j < nv; j++) {
            const int64_t id = e->o.probs_vocab ? e->o.probs_vocab[j] : j;
            int owner = (int)(id * sh->tp / sh->vocab); /* a first guess, then exact */
            while (owner > 0 && (int64_t)owner * sh->vocab / sh->tp > id) owner--;
            while (owner + 1 < sh->tp && (int64_t)(owner + 1) * sh->vocab / sh->tp <= id) owner++;
            if (pass == 0) {
                cnt[owner]++;
                continue;
            }
            const uint16_t *src = e->h_probs + (size_t)owner * (size_t)(rows * w) + next[owner]++;
            for (int64_t r = 0; r < rows; r++) e->r_probs[r * nv + j] = src[r * cnt[owner]];
        }
    return LL_OK;
}

ll_status ll_engine_lens(ll_engine *e, const ll_batch *b, const int64_t *probs_rows, int64_t n_probs_rows,
                         ll_lens_out *out, ll_err *err) {
    ll_backend *be = e->be;
    const ll_shard *sh = &e->sh;
    const int64_t T = b->T, d = e->c->d_model, P = e->P, R = P * T;
    const ll_wt *wu = e->w->unembed;
    ll_status rc;
    LL_ASSERT(n_probs_rows <= e->o.max_probs_rows || e->o.probs_nv == 0);

    /* the raw residual rows first: step 1 normalizes them in place */
    if (e->r_hidden && sh->tp_rank == 0) CHECK(be->ops->download(be, e->r_hidden, e->pts, (size_t)(R * d) * 4));
    /* 1 */
    float *xn = e->pts;
    if (P > 0 && (rc = ll_engine_norm(e, xn, e->pts, ll_weights_global(e->w, LL_GW_FINAL_NORM),
                                      ll_weights_global(e->w, LL_GW_FINAL_NORM_B), R, err)))
        return rc;
    /* 2 and 3: the last stage needs its final terms first (its points' pass reuses the host results); an
     * earlier stage runs its points' pass while the later stages are still forwarding, then waits for them */
    const int last = sh->pp_rank == sh->pp - 1;
    if (last && (rc = final_terms(e, b, err))) return rc;
    if (P > 0) {
        for (int64_t p = 0; p < P; p++) memcpy(e->h_tgt + p * T, b->target, (size_t)T * 4);
        ll_vp_dev dv = {.zt = e->zt, .lse = e->lse, .ent = e->ent, .probs = e->topk_probs, .rank = e->rank,
                        .ids = e->topk_ids};
        ll_vp_host hv = {.zt = e->r_zt, .lse = e->r_lse, .ent = e->r_ent, .probs = e->r_tkp, .rank = e->r_rank,
                         .ids = e->r_tki};
        if ((rc = ll_engine_vp_pass(e, xn, R, e->h_tgt, &dv, &hv, err))) return rc;
    }
    if (!last && (rc = final_terms(e, b, err))) return rc;
    if (P > 0) {
        /* 4, with the merged LSE of every row */
        if (sh->tp > 1) CHECK(be->ops->upload(be, e->lse, e->r_lse, (size_t)R * 4));
        CHECK(be->ops->lens_kl(be, e->kl, xn, wu, e->u, e->pb, e->ent_f, e->lse, R, T, d));
        CHECK(be->ops->download(be, e->r_kl, e->kl, (size_t)R * 4));
        /* 5 */
        if (n_probs_rows > 0 && e->o.probs_nv > 0 && (rc = saved_probs(e, probs_rows, n_probs_rows, T, err)))
            return rc;
    }
    /* 6 */
    return ll_engine_collect(e, b, e->o.probs_nv > 0 ? n_probs_rows : 0, out, err);
}
