/* lens_vp.c: the lens pass under vocabulary parallelism, and the merge of per-slice row states.
 *
 * Each rank of a tensor-parallel group holds unembedding rows [v0, v0 + V) and runs the lens pass over
 * them alone. Per row the slices are merged on the host (docs/scale-out.md, "The lens split over the
 * vocabulary"): with pi_i = exp(lse_i - LSE) the share of slice i in the softmax,
 *   LSE = log sum_i exp(lse_i)                      (max-shifted, in double)
 *   H   = sum_i pi_i H_i - sum_i pi_i log pi_i       (the entropy of a mixture of disjoint supports)
 *   rank = sum_i rank_i                              (each slice counts its logits above the target's)
 *   top-k = the k best of the slices' candidates, probability p_i(v) pi_i, ties to the smaller id.
 * The target logit comes from the one rank whose slice holds the target and is summed over the group
 * (the others add zeros, so the sum is exact). The exchange is one all-gather of 3 + 2k words per row. */
#include "engine_internal.h"
#include "ll_math.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)


void ll_lens_merge(int parts, int64_t R, int k, const uint32_t *packed, float *lse, float *ent, int32_t *rank,
                   int32_t *ids, float *probs, float *pi) {
    const int64_t pw = LL_LENS_PACK_WORDS(k);
    for (int64_t r = 0; r < R; r++) {
        double m = -INFINITY;
        for (int i = 0; i < parts; i++) {
            double l = ll_bits_to_f32(packed[((int64_t)i * R + r) * pw]);
            if (l > m) m = l;
        }
        double s = 0;
        for (int i = 0; i < parts; i++) s += exp((double)ll_bits_to_f32(packed[((int64_t)i * R + r) * pw]) - m);
        const double L = m + log(s);
        double h = 0;
        int64_t above = 0;
        int has_target = 1, n = 0;
        int32_t *ri = ids + r * k;
        float *rp = probs + r * k;
        for (int i = 0; i < parts; i++) {
            const uint32_t *w = packed + ((int64_t)i * R + r) * pw;
            const double li = ll_bits_to_f32(w[0]), hi = ll_bits_to_f32(w[1]);
            const double p = exp(li - L);
            if (pi) pi[(int64_t)i * R + r] = (float)p;
            if (p > 0) h += p * hi - p * (li - L);
            int32_t rk;
            memcpy(&rk, &w[2], 4);
            if (rk < 0) has_target = 0;
            above += rk;
            for (int j = 0; j < k; j++) {
                int32_t id;
                memcpy(&id, &w[3 + j], 4);
                ll_topk_insert(ri, rp, &n, k, id, (float)((double)ll_bits_to_f32(w[3 + k + j]) * p));
            }
        }
        lse[r] = (float)L;
        ent[r] = (float)h;
        rank[r] = has_target ? (int32_t)above : -1;
    }
}

ll_status ll_engine_vp_pass(ll_engine *e, const float *x, int64_t R, const int32_t *tgt, const ll_vp_dev *dv,
                            const ll_vp_host *hv, ll_err *err) {
    ll_backend *be = e->be;
    const ll_shard *sh = &e->sh;
    const int k = e->o.topk;
    const int64_t d = e->c->d_model, V = e->V, v0 = sh->v0;
    const ll_wt *wu = e->w->unembed, *bu = ll_weights_global(e->w, LL_GW_UNEMBED_B);
    const int split = sh->tp > 1;
    LL_ASSERT(R <= e->Rcap);
    if (R == 0) return LL_OK;
    /* target logits: the rank whose slice holds the target computes it */
    int32_t *tl = e->h_tloc;
    for (int64_t r = 0; r < R; r++) tl[r] = tgt[r] >= v0 && tgt[r] < v0 + V ? (int32_t)(tgt[r] - v0) : -1;
    CHECK(be->ops->upload(be, e->tgt_rows, tl, (size_t)R * 4));
    CHECK(be->ops->lens_target_logits(be, dv->zt, x, wu, bu, e->tgt_rows, R, d));
    CHECK(be->ops->download(be, hv->zt, dv->zt, (size_t)R * 4));
    if (split) {
        for (int64_t r = 0; r < R; r++)
            if (tl[r] < 0) hv->zt[r] = 0.0f;
        CHECK(be->ops->upload(be, dv->zt, hv->zt, (size_t)R * 4));
        e->stats.lens_exchange += (double)R * 4;
        if (e->tp->allreduce_sum(e->tp, be, dv->zt, R))
            return ll_fail(err, LL_ERR_BACKEND, "lens target logits all-reduce: %s", e->tp->err.msg);
        CHECK(be->ops->download(be, hv->zt, dv->zt, (size_t)R * 4));
        for (int64_t r = 0; r < R; r++)
            if (tgt[r] < 0) hv->zt[r] = NAN;
    }
    /* the pass over this rank's slice, with global target ids */
    CHECK(be->ops->upload(be, e->tgt_rows, tgt, (size_t)R * 4));
    const int kk = k < V ? k : (int)V; /* a slice narrower than k gives all its ids */
    /* in chunks of rows, so that a stop request is seen within moments (on the CPU a row's results do not
     * depend on the chunking; on CUDA the tiling follows the chunk, the same on every run) */
    const int64_t chunk = strcmp(be->ops->name, "cpu") ? 65536 : 8192;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        ll_status rc;
        if ((rc = ll_engine_cancelled(e, err))) return rc;
        const int64_t n = R - r0 < chunk ? R - r0 : chunk;
        ll_lens_pass_args a = {.x = x + r0 * d, .wu = wu, .bu = bu, .zt = dv->zt + r0, .target = e->tgt_rows + r0,
                               .R = n, .d = d, .V = V, .k = kk, .lse = dv->lse + r0, .entropy = dv->ent + r0,
                               .topk_ids = dv->ids + r0 * kk, .topk_probs = dv->probs + r0 * kk, .rank = dv->rank + r0,
                               .v0 = v0, .v_total = sh->vocab};
        CHECK(be->ops->lens_pass(be, &a));
        if (x == e->pts) ll_engine_progress(e, e->fwd_share + (1 - e->fwd_share) * (double)(r0 + n) / (double)R);
    }
    CHECK(be->ops->download(be, hv->lse, dv->lse, (size_t)R * 4));
    CHECK(be->ops->download(be, hv->ent, dv->ent, (size_t)R * 4));
    CHECK(be->ops->download(be, hv->rank, dv->rank, (size_t)R * 4));
    CHECK(be->ops->download(be, hv->ids, dv->ids, (size_t)(R * kk) * 4));
    CHECK(be->ops->download(be, hv->probs, dv->probs, (size_t)(R * kk) * 4));
    if (kk < k) /* rows of kk entries to rows of k, padded with probability -1: below every real id (even one
                   whose probability underflowed to 0), and the group holds at least k real ids */
        for (int64_t r = R - 1; r >= 0; r--)
            for (int j = k - 1; j >= 0; j--) {
                hv->ids[r * k + j] = j < kk ? hv->ids[r * kk + j] : INT32_MAX;
                hv->probs[r * k + j] = j < kk ? hv->probs[r * kk + j] : -1.0f;
            }
    if (hv->lse_own) memcpy(hv->lse_own, hv->lse, (size_t)R * 4);
    if (!split) return LL_OK;
    /* exchange the slices' row states and merge them */
    const int64_t pw = LL_LENS_PACK_WORDS(k);
    uint32_t *pk = e->h_gat;
    for (int64_t r = 0; r < R; r++) {
        uint32_t *w = pk + r * pw;
        w[0] = ll_f32_to_bits(hv->lse[r]);
        w[1] = ll_f32_to_bits(hv->ent[r]);
        memcpy(&w[2], &hv->rank[r], 4);
        memcpy(&w[3], hv->ids + r * k, (size_t)k * 4);
        memcpy(&w[3 + k], hv->probs + r * k, (size_t)k * 4);
    }
    CHECK(be->ops->upload(be, e->gsend, pk, (size_t)(R * pw) * 4));
    e->stats.lens_exchange += (double)(R * pw) * 4;
    if (e->tp->allgather(e->tp, be, e->grecv, e->gsend, (size_t)(R * pw) * 4))
        return ll_fail(err, LL_ERR_BACKEND, "lens row-state all-gather: %s", e->tp->err.msg);
    CHECK(be->ops->download(be, pk, e->grecv, (size_t)(R * pw) * 4 * (size_t)sh->tp));
    ll_lens_merge(sh->tp, R, k, pk, hv->lse, hv->ent, hv->rank, hv->ids, hv->probs, hv->pi);
    return LL_OK;
}
