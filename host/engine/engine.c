/* engine.c: the engine's buffers (sized once for the largest batch) and its lifetime. */
#include "engine_internal.h"
#include "ll_shard.h"

#include <stdlib.h>
#include <string.h>

typedef struct buf_req {
    void **slot;
    size_t bytes;
} buf_req;

/* Host transfers between pipeline stages are staged through this much backend memory at a time. */
#define XFER_BYTES ((size_t)8 << 20)

/* The saved-probability columns of vocabulary slice [v0, v0 + n) of the run's selection (every id when
 * sel is NULL): *count of them, and when cols is given, each one's output column. */
static int64_t slice_columns(const int32_t *sel, int64_t nv, int64_t v0, int64_t n, int64_t *cols) {
    int64_t c = 0;
    for (int64_t j = 0; j < nv; j++) {
        int64_t id = sel ? sel[j] : j;
        if (id >= v0 && id < v0 + n) {
            if (cols) cols[c] = j;
            c++;
        }
    }
    return c;
}

/* The most saved-probability columns any rank of a tp-way group computes (all of them at one rank). */
static int64_t widest_slice_columns(const ll_engine_opts *o, int64_t vocab, int tp) {
    if (o->probs_nv <= 0 || tp <= 1) return o->probs_nv > 0 ? o->probs_nv : 0;
    int64_t w = 0;
    for (int r = 0; r < tp; r++) {
        const int64_t v0 = r * vocab / tp, n = (r + 1) * vocab / tp - v0;
        const int64_t c = slice_columns(o->probs_vocab, o->probs_nv, v0, n, NULL);
        if (c > w) w = c;
    }
    return w;
}

/* Lists every backend buffer of a rank; with e == NULL only sums their sizes. c: the local config;
 * P: points of the stage; nv_max: saved-probability columns of the widest rank of the group. */
static size_t engine_buffers(const ll_config *c, int P, const ll_engine_opts *o, int64_t T, int tp, int pp,
                             int64_t nv_max, ll_engine *e, buf_req *reqs, int *n_reqs) {
    int64_t d = c->d_model, k = o->topk;
    int64_t R = (int64_t)(P > 0 ? P : 1) * T; /* row buffers also hold the final rows of a stage without points */
    int64_t nq = (int64_t)c->n_heads * c->head_dim, nkv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t nsel = o->probs_nv > 0 ? (int64_t)P * o->max_probs_rows : 0;
    int64_t pw = LL_LENS_PACK_WORDS(k);
    struct {
        void *slot;
        size_t bytes;
    } list[] = {
        {e ? &e->ids : NULL, (size_t)T * 4},
        {e ? &e->pos : NULL, (size_t)T * 4},
        {e ? &e->off : NULL, (size_t)(T + 1) * 8},
        {e ? &e->x : NULL, (size_t)(T * d) * 4},
        {e ? &e->h : NULL, (size_t)(T * d) * 4},
        {e ? &e->qkv : NULL, (size_t)(T * (nq + 2 * nkv)) * 4},
        {e ? &e->att : NULL, (size_t)(T * nq) * 4},
        {e ? &e->a : NULL, (size_t)(T * d) * 4},
        {e ? &e->m : NULL, (size_t)(T * d) * 4},
        {e ? &e->ff : NULL, (size_t)(T * c->d_ff) * 4},
        {e ? &e->ff2 : NULL, c->mlp == LL_MLP_SWIGLU ? (size_t)(T * c->d_ff) * 4 : 0},
        {e ? &e->xf : NULL, (size_t)(T * d) * 4},
        {e ? &e->pts : NULL, (size_t)((int64_t)P * T * d) * 4},
        {e ? &e->tgt_rows : NULL, (size_t)R * 4},
        {e ? &e->zt : NULL, (size_t)R * 4},
        {e ? &e->lse : NULL, (size_t)R * 4},
        {e ? &e->ent : NULL, (size_t)R * 4},
        {e ? &e->kl : NULL, (size_t)R * 4},
        {e ? &e->rank : NULL, (size_t)R * 4},
        {e ? &e->topk_ids : NULL, (size_t)(R * k) * 4},
        {e ? &e->topk_probs : NULL, (size_t)(R * k) * 4},
        {e ? &e->zt_f : NULL, (size_t)T * 4},
        {e ? &e->lse_f : NULL, (size_t)T * 4},
        {e ? &e->ent_f : NULL, (size_t)T * 4},
        {e ? &e->topk_probs_f : NULL, (size_t)(T * k) * 4},
        {e ? &e->topk_ids_f : NULL, (size_t)(T * k) * 4},
        {e ? &e->rank_f : NULL, (size_t)T * 4},
        {e ? &e->u : NULL, (size_t)(T * d) * 4},
        {e ? &e->pb : NULL, (size_t)T * 4},
        {e ? &e->xsel : NULL, (size_t)(nsel * d) * 4},
        {e ? &e->probs : NULL, (size_t)(nsel * (tp > 1 ? nv_max : o->probs_nv)) * 2},
        {e ? &e->vsel : NULL, o->probs_vocab && o->probs_nv > 0 ? (size_t)o->probs_nv * 4 : 0},
        {e ? &e->gsend : NULL, tp > 1 ? (size_t)(R * pw) * 4 : 0},
        {e ? &e->grecv : NULL, tp > 1 ? (size_t)(R * pw) * 4 * (size_t)tp : 0},
        {e ? &e->prob_gather : NULL, tp > 1 ? (size_t)(nsel * nv_max) * 2 * (size_t)tp : 0},
        {e ? &e->xfer : NULL, pp > 1 ? XFER_BYTES : 0},
    };
    size_t total = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        total += list[i].bytes;
        if (reqs && list[i].bytes) {
            reqs[n].slot = list[i].slot;
            reqs[n].bytes = list[i].bytes;
            n++;
        }
    }
    if (n_reqs) *n_reqs = n;
    return total;
}

size_t ll_engine_activation_bytes(const ll_config *c, int n_points, const ll_engine_opts *o, int64_t max_T, int tp,
                                  int pp) {
    return engine_buffers(c, n_points, o, max_T, tp, pp, widest_slice_columns(o, c->vocab, tp), NULL, NULL, NULL);
}

void ll_engine_free(ll_engine *e) {
    if (!e) return;
    void **bufs[] = {(void **)&e->ids, (void **)&e->pos, (void **)&e->off, (void **)&e->x, (void **)&e->h,
                     (void **)&e->qkv, (void **)&e->att, (void **)&e->a, (void **)&e->m, (void **)&e->ff,
                     (void **)&e->ff2, (void **)&e->xf, (void **)&e->pts, (void **)&e->tgt_rows,
                     (void **)&e->zt, (void **)&e->lse, (void **)&e->ent, (void **)&e->kl, (void **)&e->rank,
                     (void **)&e->topk_ids, (void **)&e->topk_probs, (void **)&e->zt_f, (void **)&e->lse_f,
                     (void **)&e->ent_f, (void **)&e->topk_probs_f, (void **)&e->topk_ids_f, (void **)&e->rank_f,
                     (void **)&e->u, (void **)&e->pb, (void **)&e->xsel, (void **)&e->probs, (void **)&e->vsel,
                     (void **)&e->gsend, (void **)&e->grecv, (void **)&e->prob_gather, (void **)&e->xfer};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) e->be->ops->dealloc(e->be, *bufs[i]);
    void *host[] = {e->h_off, e->slot, e->point_of, e->stage_P, e->h_pi, e->h_tgt, e->h_tloc, e->h_buf, e->h_ibuf,
                    e->h_gat, e->h_u, e->h_probs, e->r_lse, e->r_ent, e->r_zt, e->r_kl, e->r_tkp, e->r_rank,
                    e->r_tki, e->r_hidden, e->r_probs, e->r_lse_loc};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++) free(host[i]);
    free(e);
}

ll_status ll_engine_init(ll_backend *be, const ll_config *c, const ll_weights *w, const ll_engine_par *par,
                         const ll_points *p, const ll_engine_opts *o, int64_t max_T, ll_engine **out, ll_err *err) {
    *out = NULL;
    ll_engine *e = calloc(1, sizeof *e);
    if (!e) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    e->be = be;
    e->gc = c;
    e->w = w;
    e->p = p;
    e->o = *o;
    e->max_T = max_T;
    ll_comm_single(&e->single);
    e->tp = par && par->tp ? par->tp : &e->single;
    e->world = par && par->world ? par->world : &e->single;
    if (par && par->shard) e->sh = *par->shard;
    else ll_shard_whole(c, &e->sh);
    ll_shard_local_config(c, &e->sh, &e->lc);
    e->c = &e->lc;
    const ll_shard *sh = &e->sh;
    e->V = w->unembed->rows;
    if (e->V != sh->n_v || e->tp->world != sh->tp || e->world->world != sh->tp * sh->pp) {
        ll_engine_free(e);
        return ll_fail(err, LL_ERR_INTERNAL, "engine: %lld unembedding rows for a slice of %lld, tp group of %d for "
                       "--tp %d, world of %d for %d x %d", (long long)e->V, (long long)sh->n_v, e->tp->world, sh->tp,
                       e->world->world, sh->tp, sh->pp);
    }
    /* the points this stage captures, and how many every stage does (rank 0 gathers them) */
    e->slot = ll_malloc_array((size_t)(p->n > 0 ? p->n : 1), sizeof *e->slot);
    e->point_of = ll_malloc_array((size_t)(p->n > 0 ? p->n : 1), sizeof *e->point_of);
    e->stage_P = ll_malloc_array((size_t)sh->pp, sizeof *e->stage_P);
    if (!e->slot || !e->point_of || !e->stage_P) {
        ll_engine_free(e);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    for (int s = 0; s < sh->pp; s++) {
        ll_shard st;
        ll_shard_make(c, sh->tp, sh->pp, s * sh->tp, &st);
        e->stage_P[s] = ll_shard_points(&st, p->layers, p->n, NULL);
    }
    e->P = ll_shard_points(sh, p->layers, p->n, e->slot);
    for (int i = 0; i < p->n; i++)
        if (e->slot[i] >= 0) e->point_of[e->slot[i]] = i;
    /* saved-probability columns this rank computes (its slice of the selection) */
    e->nv_loc_max = widest_slice_columns(o, c->vocab, sh->tp);
    e->nv_loc = sh->tp > 1 ? slice_columns(o->probs_vocab, o->probs_nv, sh->v0, sh->n_v, NULL) : o->probs_nv;
    buf_req reqs[64];
    int n = 0;
    engine_buffers(e->c, e->P, o, max_T, sh->tp, sh->pp, e->nv_loc_max, e, reqs, &n);
    for (int i = 0; i < n; i++) {
        ll_status rc = be->ops->alloc(be, reqs[i].bytes, reqs[i].slot);
        if (rc) {
            ll_fail(err, rc, "allocating %zu bytes of %s backend memory for a batch of %lld tokens: %s",
                    reqs[i].bytes, be->ops->name, (long long)max_T, be->err.msg);
            ll_engine_free(e);
            return rc;
        }
    }
    e->xfer_bytes = sh->pp > 1 ? XFER_BYTES : 0;
    const int64_t k = o->topk, d = c->d_model, R = (int64_t)(e->P > 0 ? e->P : 1) * max_T;
    e->Rcap = R;
    const int64_t nsel = o->probs_nv > 0 ? (int64_t)e->P * o->max_probs_rows : 0;
    const size_t pw = (size_t)LL_LENS_PACK_WORDS(k);
    e->h_off = ll_malloc_array((size_t)max_T + 1, 8);
    e->h_tgt = ll_malloc_array((size_t)R, 4);
    e->h_tloc = ll_malloc_array((size_t)R, 4);
    e->h_buf = ll_malloc_array((size_t)R, (size_t)(k > 3 ? k : 3) * 4);
    e->h_ibuf = ll_malloc_array((size_t)R, (size_t)k * 4);
    e->r_lse = ll_malloc_array((size_t)R, 4);
    e->r_ent = ll_malloc_array((size_t)R, 4);
    e->r_zt = ll_malloc_array((size_t)R, 4);
    e->r_kl = ll_malloc_array((size_t)R, 4);
    e->r_rank = ll_malloc_array((size_t)R, 4);
    e->r_tkp = ll_malloc_array((size_t)R, (size_t)k * 4);
    e->r_tki = ll_malloc_array((size_t)R, (size_t)k * 4);
    e->r_lse_loc = ll_malloc_array((size_t)max_T, 4);
    int bad = !e->h_off || !e->h_tgt || !e->h_tloc || !e->h_buf || !e->h_ibuf || !e->r_lse || !e->r_ent || !e->r_zt || !e->r_kl ||
              !e->r_rank || !e->r_tkp || !e->r_tki || !e->r_lse_loc;
    /* the stage's results are assembled on its tensor-parallel rank 0 only */
    const int leader = sh->tp_rank == 0;
    if (o->save_hidden && e->P > 0 && leader) bad |= !(e->r_hidden = ll_malloc_array((size_t)R, (size_t)d * 4));
    if (nsel && leader) {
        bad |= !(e->r_probs = ll_malloc_array((size_t)nsel, (size_t)o->probs_nv * 2));
        if (sh->tp > 1)
            bad |= !(e->h_probs = ll_malloc_array((size_t)nsel * (size_t)sh->tp, (size_t)e->nv_loc_max * 2));
    }
    if (sh->tp > 1) {
        bad |= !(e->h_gat = ll_malloc_array((size_t)R * (size_t)sh->tp, pw * 4));
        bad |= !(e->h_u = ll_malloc_array((size_t)max_T, (size_t)d * 4));
        bad |= !(e->h_pi = ll_malloc_array((size_t)max_T * (size_t)sh->tp, sizeof *e->h_pi));
    }
    if (bad) {
        ll_engine_free(e);
        return ll_fail(err, LL_ERR_NOMEM, "out of host memory for a batch of %lld tokens", (long long)max_T);
    }
    /* the vocabulary subset as local rows of this rank's slice (without --probs-vocab a rank's columns are
     * its whole slice, in order, and need no list) */
    if (o->probs_nv > 0 && o->probs_vocab) {
        int32_t *loc = ll_malloc_array((size_t)o->probs_nv, 4);
        if (!loc) {
            ll_engine_free(e);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
        int64_t nl = 0;
        for (int64_t j = 0; j < o->probs_nv; j++)
            if (o->probs_vocab[j] >= sh->v0 && o->probs_vocab[j] < sh->v0 + sh->n_v)
                loc[nl++] = (int32_t)(o->probs_vocab[j] - sh->v0);
        ll_status rc = nl ? be->ops->upload(be, e->vsel, loc, (size_t)nl * 4) : LL_OK;
        free(loc);
        if (rc) {
            ll_fail(err, rc, "%s", be->err.msg);
            ll_engine_free(e);
            return rc;
        }
    }
    /* the forward pass's share of a batch's work: the stage's matmul elements per token against the lens's
     * d x V per captured row (and per final row on the last stage) */
    {
        const ll_config *lc = e->c;
        const double hd = lc->head_dim, nq = lc->n_heads * hd, nkv = lc->n_kv_heads * hd, dd = (double)lc->d_model;
        const double per_layer = dd * (nq + 2 * nkv) + nq * dd + (lc->mlp == LL_MLP_SWIGLU ? 3 : 2) * dd * (double)lc->d_ff;
        const double fwd = per_layer * (sh->layer1 - sh->layer0);
        const double lens = dd * (double)e->V * (e->P + (sh->pp_rank == sh->pp - 1 ? 2 : 0));
        e->fwd_share = fwd + lens > 0 ? fwd / (fwd + lens) : 1.0;
    }
    *out = e;
    return LL_OK;
}

ll_status ll_engine_norm(ll_engine *e, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t rows,
                         ll_err *err) {
    ll_backend *be = e->be;
    ll_status rc = e->c->norm == LL_NORM_RMSNORM
                       ? be->ops->rmsnorm(be, y, x, w, rows, e->c->d_model, e->c->norm_eps)
                       : be->ops->layernorm(be, y, x, w, b, rows, e->c->d_model, e->c->norm_eps);
    return rc ? ll_fail(err, rc, "%s", be->err.msg) : LL_OK;
}

ll_status ll_lens_out_alloc(ll_lens_out *o, int64_t T, int P, int k, int64_t d, int save_hidden, int64_t n_probs_rows,
                            int64_t nv, ll_err *err) {
    memset(o, 0, sizeof *o);
    size_t TP = (size_t)T * (size_t)P;
    o->topk_ids = ll_malloc_array(TP, (size_t)k * 4);
    o->topk_probs = ll_malloc_array(TP, (size_t)k * 4);
    o->entropy = ll_malloc_array(TP, 4);
    o->kl_final = ll_malloc_array(TP, 4);
    o->target_probs = ll_malloc_array(TP, 4);
    o->target_logprobs = ll_malloc_array(TP, 4);
    o->target_ranks = ll_malloc_array(TP, 4);
    if (save_hidden) o->hidden = ll_malloc_array(TP, (size_t)d * 4);
    if (n_probs_rows) o->probs = ll_malloc_array((size_t)n_probs_rows * (size_t)P, (size_t)nv * 2);
    if (!o->topk_ids || !o->topk_probs || !o->entropy || !o->kl_final || !o->target_probs || !o->target_logprobs ||
        !o->target_ranks || (save_hidden && !o->hidden) || (n_probs_rows && !o->probs)) {
        ll_lens_out_free(o);
        return ll_fail(err, LL_ERR_NOMEM, "out of host memory for the results of %lld tokens", (long long)T);
    }
    return LL_OK;
}

void ll_lens_out_free(ll_lens_out *o) {
    free(o->topk_ids);
    free(o->topk_probs);
    free(o->entropy);
    free(o->kl_final);
    free(o->target_probs);
    free(o->target_logprobs);
    free(o->target_ranks);
    free(o->hidden);
    free(o->probs);
    memset(o, 0, sizeof *o);
}

void ll_engine_comm_stats_get(const ll_engine *e, ll_engine_comm_stats *out) { *out = e->stats; }
