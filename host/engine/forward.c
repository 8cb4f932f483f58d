/* forward.c: the transformer forward pass of one packed batch, wired from the op table by the choices
 * in ll_config, capturing the residual stream at the requested points.
 *
 * Per layer (pre-norm):
 *   sequential:  x += attn(norm1(x)) -> mid;  x += mlp(norm2(x)) -> post
 *   parallel:    a = attn(norm1(x)), m = mlp(norm2(x)); x += a -> mid; x += m -> post  (GPT-NeoX)
 * The attention and MLP outputs pass through the tensor-parallel group's allreduce_sum (identity at one
 * rank): each rank computes its heads and MLP columns, and the output projections' partial sums are added
 * across the group. Row-parallel biases are added by the group's rank 0 only.
 *
 * Pipeline parallelism: a stage runs its layers [layer0, layer1). The batch goes through in micro-batches
 * of whole prompts: the first stage embeds one, runs its layers and sends the rows to the next stage
 * while it starts on the next micro-batch, so stages overlap; later stages receive, run and pass on; the
 * last applies the final norm. Each stage captures the points of its own layers. */
#include "engine_internal.h"

#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)

/* A micro-batch: tokens [t0, t0 + T) of the batch, whole prompts. */
typedef struct mb {
    int64_t t0, T;
    int p0, n_prompts; /* its prompts [p0, p0 + n_prompts) */
} mb;

static ll_status capture(ll_engine *e, int point, const mb *u, int64_t T_all, ll_err *err) {
    if (point < 0 || e->slot[point] < 0) return LL_OK;
    const int64_t d = e->c->d_model;
    float *dst = e->pts + ((size_t)e->slot[point] * (size_t)T_all + (size_t)u->t0) * (size_t)d;
    CHECK(e->be->ops->copy(e->be, dst, e->x + (size_t)u->t0 * (size_t)d, (size_t)(u->T * d) * 4));
    return LL_OK;
}

static const ll_wt *LW(const ll_engine *e, int l, ll_lw r) { return ll_weights_layer(e->w, l, r); }

/* a = attention block of the rows h [T, d] (this rank's heads; summed over the group) */
static ll_status attn_block(ll_engine *e, const mb *u, int l, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    int64_t T = u->T, d = c->d_model, hd = c->head_dim;
    int64_t nq = (int64_t)c->n_heads * hd, nkv = (int64_t)c->n_kv_heads * hd;
    ll_attn_layout L = {
        .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .window = c->attn_window};
    const float *q, *k, *v;
    float *qm, *km;
    switch (c->qkv) {
    case LL_QKV_FUSED_GPT2: /* [T, 3 nq] rows = [q | k | v] */
        CHECK(be->ops->matmul(be, e->qkv, e->h, LW(e, l, LL_LW_QKV), c->wlayout, LW(e, l, LL_LW_QKV_B), T, 3 * nq, d));
        qm = e->qkv, km = e->qkv + nq;
        q = qm, k = km, v = e->qkv + 2 * nq;
        L.ldq = L.ldk = L.ldv = 3 * nq;
        L.hsq = L.hsk = L.hsv = hd;
        break;
    case LL_QKV_FUSED_NEOX: /* [T, 3 nq] rows = [q_h k_h v_h] per head */
        CHECK(be->ops->matmul(be, e->qkv, e->h, LW(e, l, LL_LW_QKV), c->wlayout, LW(e, l, LL_LW_QKV_B), T, 3 * nq, d));
        qm = e->qkv, km = e->qkv + hd;
        q = qm, k = km, v = e->qkv + 2 * hd;
        L.ldq = L.ldk = L.ldv = 3 * nq;
        L.hsq = L.hsk = L.hsv = 3 * hd;
        break;
    default: /* separate projections into three blocks [T, nq] [T, nkv] [T, nkv] */
        qm = e->qkv, km = e->qkv + T * nq;
        float *vm = km + T * nkv;
        CHECK(be->ops->matmul(be, qm, e->h, LW(e, l, LL_LW_Q), c->wlayout, LW(e, l, LL_LW_Q_B), T, nq, d));
        CHECK(be->ops->matmul(be, km, e->h, LW(e, l, LL_LW_K), c->wlayout, LW(e, l, LL_LW_K_B), T, nkv, d));
        CHECK(be->ops->matmul(be, vm, e->h, LW(e, l, LL_LW_V), c->wlayout, LW(e, l, LL_LW_V_B), T, nkv, d));
        q = qm, k = km, v = vm;
        L.ldq = nq;
        L.ldk = L.ldv = nkv;
        L.hsq = L.hsk = L.hsv = hd;
        break;
    }
    if (c->use_rope && c->rope.rot_dim > 0) {
        CHECK(be->ops->rope(be, qm, T, L.ldq, c->n_heads, L.hsq, &c->rope, e->pos));
        CHECK(be->ops->rope(be, km, T, L.ldk, c->n_kv_heads, L.hsk, &c->rope, e->pos));
    }
    L.scale = 1.0f / sqrtf((float)hd);
    CHECK(be->ops->attention(be, e->att, q, k, v, &L, e->off, u->n_prompts, T));
    const ll_wt *ob = e->tp->rank == 0 ? LW(e, l, LL_LW_O_B) : NULL;
    CHECK(be->ops->matmul(be, e->a, e->att, LW(e, l, LL_LW_O), c->wlayout, ob, T, d, nq));
    e->stats.forward_allreduce += e->tp->world > 1 ? (double)(T * d) * 4 : 0;
    if (e->tp->world > 1 && e->tp->allreduce_sum(e->tp, be, e->a, T * d))
        return ll_fail(err, LL_ERR_BACKEND, "layer %d attention all-reduce: %s", l, e->tp->err.msg);
    return LL_OK;
}

/* m = MLP block of the rows h [T, d] (this rank's columns; summed over the group) */
static ll_status mlp_block(ll_engine *e, const mb *u, int l, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    int64_t T = u->T, d = c->d_model, f = c->d_ff;
    if (c->mlp == LL_MLP_SWIGLU) {
        CHECK(be->ops->matmul(be, e->ff, e->h, LW(e, l, LL_LW_GATE), c->wlayout, LW(e, l, LL_LW_GATE_B), T, f, d));
        CHECK(be->ops->matmul(be, e->ff2, e->h, LW(e, l, LL_LW_UP), c->wlayout, LW(e, l, LL_LW_UP_B), T, f, d));
        CHECK(be->ops->swiglu(be, e->ff, e->ff, e->ff2, T * f));
    } else {
        CHECK(be->ops->matmul(be, e->ff, e->h, LW(e, l, LL_LW_UP), c->wlayout, LW(e, l, LL_LW_UP_B), T, f, d));
        CHECK(be->ops->act(be, e->ff, T * f, c->act));
    }
    const ll_wt *db = e->tp->rank == 0 ? LW(e, l, LL_LW_DOWN_B) : NULL;
    CHECK(be->ops->matmul(be, e->m, e->ff, LW(e, l, LL_LW_DOWN), c->wlayout, db, T, d, f));
    e->stats.forward_allreduce += e->tp->world > 1 ? (double)(T * d) * 4 : 0;
    if (e->tp->world > 1 && e->tp->allreduce_sum(e->tp, be, e->m, T * d))
        return ll_fail(err, LL_ERR_BACKEND, "layer %d MLP all-reduce: %s", l, e->tp->err.msg);
    return LL_OK;
}

/* Splits the batch into micro-batches of whole prompts: one at one stage; with pp stages about 2 pp of
 * similar token counts (never more than the prompts), so that stages overlap. Returns the count. */
static int micro_batches(const ll_batch *b, int pp, mb *out) {
    int want = pp > 1 ? 2 * pp : 1;
    if (want > b->n_prompts) want = b->n_prompts;
    int n = 0, j = 0;
    for (int i = 0; i < want && j < b->n_prompts; i++) {
        const int64_t goal = b->T * (i + 1) / want; /* ends at the first prompt end at or past goal */
        const int j0 = j;
        while (j < b->n_prompts && (j == j0 || b->off[j] < goal)) j++;
        if (i == want - 1) j = b->n_prompts;
        out[n].p0 = j0;
        out[n].t0 = b->off[j0];
        out[n].T = b->off[j] - b->off[j0];
        out[n].n_prompts = j - j0;
        n++;
    }
    return n;
}

/* This stage's part of micro-batch u: embed it (first stage) or receive its rows from the previous stage,
 * run the stage's layers on x[t0, t0 + T), and pass the rows on (all but the last stage). */
static ll_status stage_forward(ll_engine *e, const ll_batch *b, const mb *u, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    const ll_points *p = e->p;
    const ll_shard *sh = &e->sh;
    const int64_t T = u->T, d = c->d_model;
    float *x = e->x + (size_t)u->t0 * (size_t)d;
    ll_status rc;
    for (int j = 0; j <= u->n_prompts; j++) e->h_off[j] = b->off[u->p0 + j] - u->t0;
    CHECK(be->ops->upload(be, e->pos, b->pos + u->t0, (size_t)T * 4));
    CHECK(be->ops->upload(be, e->off, e->h_off, (size_t)(u->n_prompts + 1) * 8));
    if (sh->pp_rank == 0) {
        CHECK(be->ops->upload(be, e->ids, b->tokens + u->t0, (size_t)T * 4));
        CHECK(be->ops->embed(be, x, ll_weights_global(e->w, LL_GW_TOK_EMBED),
                             c->learned_pos ? ll_weights_global(e->w, LL_GW_POS_EMBED) : NULL, e->ids, e->pos, T, d));
        if ((rc = capture(e, p->embed, u, b->T, err))) return rc;
    } else if (e->world->recv(e->world, be, x, (size_t)(T * d) * 4, sh->rank - sh->tp)) {
        return ll_fail(err, LL_ERR_BACKEND, "receiving the residual stream from rank %d: %s", sh->rank - sh->tp,
                       e->world->err.msg);
    }
    for (int l = sh->layer0; l < sh->layer1; l++) {
        if ((rc = ll_engine_cancelled(e, err))) return rc;
        if ((rc = ll_engine_norm(e, e->h, x, LW(e, l, LL_LW_NORM1), LW(e, l, LL_LW_NORM1_B), T, err))) return rc;
        if ((rc = attn_block(e, u, l, err))) return rc;
        if (c->parallel_residual) {
            if ((rc = ll_engine_norm(e, e->h, x, LW(e, l, LL_LW_NORM2), LW(e, l, LL_LW_NORM2_B), T, err))) return rc;
            if ((rc = mlp_block(e, u, l, err))) return rc;
            CHECK(be->ops->add(be, x, e->a, T * d));
            if ((rc = capture(e, p->mid[l], u, b->T, err))) return rc;
        } else {
            CHECK(be->ops->add(be, x, e->a, T * d));
            if ((rc = capture(e, p->mid[l], u, b->T, err))) return rc;
            if ((rc = ll_engine_norm(e, e->h, x, LW(e, l, LL_LW_NORM2), LW(e, l, LL_LW_NORM2_B), T, err))) return rc;
            if ((rc = mlp_block(e, u, l, err))) return rc;
        }
        CHECK(be->ops->add(be, x, e->m, T * d));
        if ((rc = capture(e, p->post[l], u, b->T, err))) return rc;
        const double layers = sh->layer1 - sh->layer0;
        ll_engine_progress(e, e->fwd_share * ((double)u->t0 + (double)T * (l - sh->layer0 + 1) / layers) / (double)b->T);
    }
    e->stats.pipeline += sh->pp_rank + 1 < sh->pp ? (double)(T * d) * 4 : 0;
    if (sh->pp_rank + 1 < sh->pp && e->world->send(e->world, be, x, (size_t)(T * d) * 4, sh->rank + sh->tp))
        return ll_fail(err, LL_ERR_BACKEND, "sending the residual stream to rank %d: %s", sh->rank + sh->tp,
                       e->world->err.msg);
    return LL_OK;
}

ll_status ll_engine_forward(ll_engine *e, const ll_batch *b, ll_err *err) {
    LL_ASSERT(b->T > 0 && b->T <= e->max_T && b->n_prompts > 0);
    mb ub[2 * LL_MAX_STAGES];
    const int n = micro_batches(b, e->sh.pp, ub);
    ll_status rc;
    for (int i = 0; i < n; i++)
        if ((rc = stage_forward(e, b, &ub[i], err))) return rc;
    e->stats.tokens += b->T;
    if (e->sh.pp_rank + 1 < e->sh.pp) return LL_OK;
    return ll_engine_norm(e, e->xf, e->x, ll_weights_global(e->w, LL_GW_FINAL_NORM),
                          ll_weights_global(e->w, LL_GW_FINAL_NORM_B), b->T, err);
}
