/* pipeline.c: results of every pipeline stage to world rank 0, which writes the one output file.
 *
 * Each stage's tensor-parallel rank 0 holds its stage's merged results, point-major [P_s, T, ...] (host
 * memory): top-k ids and probabilities, entropy, KL, target rank, target logit and LSE, and when asked the
 * raw hidden rows and the saved probability rows. Rank 0 places its own (the first stage's) and receives
 * the others' in stage order, then writes them token-major at their global point index. Host buffers
 * travel through a bounded backend staging buffer (device memory under NCCL). */
#include "engine_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)

ll_status ll_engine_send_host(ll_engine *e, const void *buf, size_t bytes, int peer, ll_err *err) {
    ll_backend *be = e->be;
    for (size_t o = 0; o < bytes; o += e->xfer_bytes) {
        const size_t n = bytes - o < e->xfer_bytes ? bytes - o : e->xfer_bytes;
        CHECK(be->ops->upload(be, e->xfer, (const char *)buf + o, n));
        e->stats.pipeline += (double)n;
        if (e->world->send(e->world, be, e->xfer, n, peer))
            return ll_fail(err, LL_ERR_BACKEND, "sending results to rank %d: %s", peer, e->world->err.msg);
    }
    return LL_OK;
}

ll_status ll_engine_recv_host(ll_engine *e, void *buf, size_t bytes, int peer, ll_err *err) {
    ll_backend *be = e->be;
    for (size_t o = 0; o < bytes; o += e->xfer_bytes) {
        const size_t n = bytes - o < e->xfer_bytes ? bytes - o : e->xfer_bytes;
        if (e->world->recv(e->world, be, e->xfer, n, peer))
            return ll_fail(err, LL_ERR_BACKEND, "receiving results from rank %d: %s", peer, e->world->err.msg);
        CHECK(be->ops->download(be, (char *)buf + o, e->xfer, n));
    }
    return LL_OK;
}

/* One stage's results, point-major. */
typedef struct stage_res {
    int32_t *tki, *rank;
    float *tkp, *ent, *kl, *zt, *lse, *hidden;
    uint16_t *probs;
} stage_res;

/* The arrays of a stage's results in the order they travel, with their sizes. */
typedef struct piece {
    void *p;
    size_t bytes;
} piece;
static int pieces(stage_res *s, int64_t R, int k, int64_t d, int64_t n_probs, int64_t nv, piece *out) {
    int n = 0;
    out[n++] = (piece){s->tki, (size_t)(R * k) * 4};
    out[n++] = (piece){s->tkp, (size_t)(R * k) * 4};
    out[n++] = (piece){s->ent, (size_t)R * 4};
    out[n++] = (piece){s->kl, (size_t)R * 4};
    out[n++] = (piece){s->rank, (size_t)R * 4};
    out[n++] = (piece){s->zt, (size_t)R * 4};
    out[n++] = (piece){s->lse, (size_t)R * 4};
    if (s->hidden) out[n++] = (piece){s->hidden, (size_t)(R * d) * 4};
    if (s->probs) out[n++] = (piece){s->probs, (size_t)(n_probs * nv) * 2};
    return n;
}

/* Writes a stage's results (its points' global indices gp[P_s]) token-major into out. */
static void place(const ll_engine *e, const ll_batch *b, const stage_res *s, int Ps, const int *gp, int64_t ns,
                  ll_lens_out *out) {
    const int64_t T = b->T, k = e->o.topk, d = e->c->d_model, Pg = e->p->n, nv = e->o.probs_nv;
    for (int64_t q = 0; q < Ps; q++) {
        const int64_t g = gp[q];
        for (int64_t t = 0; t < T; t++) {
            const int64_t r = q * T + t, o = t * Pg + g;
            memcpy(out->topk_ids + o * k, s->tki + r * k, (size_t)k * 4);
            memcpy(out->topk_probs + o * k, s->tkp + r * k, (size_t)k * 4);
            out->entropy[o] = s->ent[r];
            out->kl_final[o] = s->kl[r];
            out->target_ranks[o] = s->rank[r];
            const float lp = b->target[t] >= 0 ? s->zt[r] - s->lse[r] : NAN;
            out->target_logprobs[o] = lp;
            out->target_probs[o] = b->target[t] >= 0 ? expf(lp) : NAN;
            if (out->hidden && s->hidden) memcpy(out->hidden + o * d, s->hidden + r * d, (size_t)d * 4);
        }
        if (out->probs && s->probs)
            for (int64_t j = 0; j < ns; j++)
                memcpy(out->probs + (j * Pg + g) * nv, s->probs + (q * ns + j) * nv, (size_t)nv * 2);
    }
}

ll_status ll_engine_collect(ll_engine *e, const ll_batch *b, int64_t ns, ll_lens_out *out, ll_err *err) {
    const ll_shard *sh = &e->sh;
    const int64_t T = b->T, k = e->o.topk, d = e->c->d_model, nv = e->o.probs_nv;
    if (sh->tp_rank != 0) return LL_OK;
    stage_res own = {.tki = e->r_tki, .rank = e->r_rank, .tkp = e->r_tkp, .ent = e->r_ent, .kl = e->r_kl,
                     .zt = e->r_zt, .lse = e->r_lse, .hidden = e->r_hidden, .probs = ns > 0 ? e->r_probs : NULL};
    piece pc[9];
    if (sh->rank != 0) { /* a later stage's leader sends its results to rank 0 */
        if (e->P == 0) return LL_OK;
        int n = pieces(&own, e->P * T, (int)k, d, e->P * ns, nv, pc);
        for (int i = 0; i < n; i++) {
            ll_status rc = ll_engine_send_host(e, pc[i].p, pc[i].bytes, 0, err);
            if (rc) return rc;
        }
        return LL_OK;
    }
    LL_ASSERT(out);
    place(e, b, &own, e->P, e->point_of, ns, out);
    for (int s = 1; s < sh->pp; s++) {
        const int Ps = e->stage_P[s];
        if (Ps == 0) continue;
        ll_shard st;
        ll_shard_make(e->gc, sh->tp, sh->pp, s * sh->tp, &st);
        int *slot = malloc((size_t)e->p->n * sizeof *slot), *gp = malloc((size_t)Ps * sizeof *gp);
        const int64_t R = (int64_t)Ps * T;
        const int hidden = e->o.save_hidden, probs = ns > 0;
        stage_res sr = {.tki = malloc((size_t)(R * k) * 4), .tkp = malloc((size_t)(R * k) * 4),
                        .ent = malloc((size_t)R * 4), .kl = malloc((size_t)R * 4), .rank = malloc((size_t)R * 4),
                        .zt = malloc((size_t)R * 4), .lse = malloc((size_t)R * 4),
                        .hidden = hidden ? malloc((size_t)(R * d) * 4) : NULL,
                        .probs = probs ? malloc((size_t)(Ps * ns * nv) * 2 + 2) : NULL};
        ll_status rc = LL_OK;
        if (!slot || !gp || !sr.tki || !sr.tkp || !sr.ent || !sr.kl || !sr.rank || !sr.zt || !sr.lse ||
            (hidden && !sr.hidden) || (probs && !sr.probs))
            rc = ll_fail(err, LL_ERR_NOMEM, "out of host memory for the results of pipeline stage %d", s);
        if (!rc) {
            ll_shard_points(&st, e->p->layers, e->p->n, slot);
            for (int i = 0; i < e->p->n; i++)
                if (slot[i] >= 0) gp[slot[i]] = i;
            int n = pieces(&sr, R, (int)k, d, Ps * ns, nv, pc);
            for (int i = 0; i < n && !rc; i++) rc = ll_engine_recv_host(e, pc[i].p, pc[i].bytes, s * sh->tp, err);
            if (!rc) place(e, b, &sr, Ps, gp, ns, out);
        }
        free(slot), free(gp), free(sr.tki), free(sr.tkp), free(sr.ent), free(sr.kl), free(sr.rank), free(sr.zt);
        free(sr.lse), free(sr.hidden), free(sr.probs);
        if (rc) return rc;
    }
    return LL_OK;
}
