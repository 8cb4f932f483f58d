/* forward.c: the transformer forward pass of one packed batch, wired from the op table by the choices
 * in ll_config, capturing the residual stream at the requested points.
 *
 * Per layer (pre-norm):
 *   sequential:  x += attn(norm1(x)) -> mid;  x += mlp(norm2(x)) -> post
 *   parallel:    a = attn(norm1(x)), m = mlp(norm2(x)); x += a -> mid; x += m -> post  (GPT-NeoX)
 * The attention and MLP outputs pass through comm->allreduce_sum (identity at one rank): the seam where
 * tensor-parallel ranks sum their partial results. Row-parallel biases are added by rank 0 only. */
#include "engine_internal.h"

#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ll_status rc_ = (call);                                                        \
        if (rc_ != LL_OK) return ll_fail(err, rc_, "%s", e->be->err.msg);              \
    } while (0)

static ll_status capture(ll_engine *e, int point, int64_t T, ll_err *err) {
    if (point < 0) return LL_OK;
    size_t row = (size_t)(T * e->c->d_model);
    CHECK(e->be->ops->copy(e->be, e->pts + (size_t)point * row, e->x, row * 4));
    return LL_OK;
}

static const ll_wt *LW(const ll_engine *e, int l, ll_lw r) { return ll_weights_layer(e->w, l, r); }

static ll_status attn_block(ll_engine *e, const ll_batch *b, int l, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    int64_t T = b->T, d = c->d_model, hd = c->head_dim;
    int64_t nq = (int64_t)c->n_heads * hd, nkv = (int64_t)c->n_kv_heads * hd;
    ll_attn_layout L = {
        .n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim, .window = c->attn_window};
    const float *q, *k, *v;
    float *qm, *km;
    switch (c->qkv) {
    case LL_QKV_FUSED_GPT2: /* [T, 3d] rows = [q | k | v] */
        CHECK(be->ops->matmul(be, e->qkv, e->h, LW(e, l, LL_LW_QKV), c->wlayout, LW(e, l, LL_LW_QKV_B), T, 3 * d, d));
        qm = e->qkv, km = e->qkv + d;
        q = qm, k = km, v = e->qkv + 2 * d;
        L.ldq = L.ldk = L.ldv = 3 * d;
        L.hsq = L.hsk = L.hsv = hd;
        break;
    case LL_QKV_FUSED_NEOX: /* [T, 3d] rows = [q_h k_h v_h] per head */
        CHECK(be->ops->matmul(be, e->qkv, e->h, LW(e, l, LL_LW_QKV), c->wlayout, LW(e, l, LL_LW_QKV_B), T, 3 * d, d));
        qm = e->qkv, km = e->qkv + hd;
        q = qm, k = km, v = e->qkv + 2 * hd;
        L.ldq = L.ldk = L.ldv = 3 * d;
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
    CHECK(be->ops->attention(be, e->att, q, k, v, &L, e->off, b->n_prompts, T));
    const ll_wt *ob = e->comm->rank == 0 ? LW(e, l, LL_LW_O_B) : NULL;
    CHECK(be->ops->matmul(be, e->a, e->att, LW(e, l, LL_LW_O), c->wlayout, ob, T, d, nq));
    CHECK(e->comm->allreduce_sum(e->comm, be, e->a, T * d));
    return LL_OK;
}

static ll_status mlp_block(ll_engine *e, const ll_batch *b, int l, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    int64_t T = b->T, d = c->d_model, f = c->d_ff;
    if (c->mlp == LL_MLP_SWIGLU) {
        CHECK(be->ops->matmul(be, e->ff, e->h, LW(e, l, LL_LW_GATE), c->wlayout, LW(e, l, LL_LW_GATE_B), T, f, d));
        CHECK(be->ops->matmul(be, e->ff2, e->h, LW(e, l, LL_LW_UP), c->wlayout, LW(e, l, LL_LW_UP_B), T, f, d));
        CHECK(be->ops->swiglu(be, e->ff, e->ff, e->ff2, T * f));
    } else {
        CHECK(be->ops->matmul(be, e->ff, e->h, LW(e, l, LL_LW_UP), c->wlayout, LW(e, l, LL_LW_UP_B), T, f, d));
        CHECK(be->ops->act(be, e->ff, T * f, c->act));
    }
    const ll_wt *db = e->comm->rank == 0 ? LW(e, l, LL_LW_DOWN_B) : NULL;
    CHECK(be->ops->matmul(be, e->m, e->ff, LW(e, l, LL_LW_DOWN), c->wlayout, db, T, d, f));
    CHECK(e->comm->allreduce_sum(e->comm, be, e->m, T * d));
    return LL_OK;
}

ll_status ll_engine_forward(ll_engine *e, const ll_batch *b, ll_err *err) {
    ll_backend *be = e->be;
    const ll_config *c = e->c;
    const ll_points *p = e->p;
    int64_t T = b->T, d = c->d_model;
    ll_status rc;
    LL_ASSERT(T > 0 && T <= e->max_T);
    CHECK(be->ops->upload(be, e->ids, b->tokens, (size_t)T * 4));
    CHECK(be->ops->upload(be, e->pos, b->pos, (size_t)T * 4));
    CHECK(be->ops->upload(be, e->off, b->off, (size_t)(b->n_prompts + 1) * 8));
    CHECK(be->ops->embed(be, e->x, ll_weights_global(e->w, LL_GW_TOK_EMBED),
                         c->learned_pos ? ll_weights_global(e->w, LL_GW_POS_EMBED) : NULL, e->ids, e->pos, T, d));
    if ((rc = capture(e, p->embed, T, err))) return rc;
    for (int l = 0; l < c->n_layers; l++) {
        if ((rc = ll_engine_norm(e, e->h, e->x, LW(e, l, LL_LW_NORM1), LW(e, l, LL_LW_NORM1_B), T, err))) return rc;
        if ((rc = attn_block(e, b, l, err))) return rc;
        if (c->parallel_residual) {
            if ((rc = ll_engine_norm(e, e->h, e->x, LW(e, l, LL_LW_NORM2), LW(e, l, LL_LW_NORM2_B), T, err))) return rc;
            if ((rc = mlp_block(e, b, l, err))) return rc;
            CHECK(be->ops->add(be, e->x, e->a, T * d));
            if ((rc = capture(e, p->mid[l], T, err))) return rc;
        } else {
            CHECK(be->ops->add(be, e->x, e->a, T * d));
            if ((rc = capture(e, p->mid[l], T, err))) return rc;
            if ((rc = ll_engine_norm(e, e->h, e->x, LW(e, l, LL_LW_NORM2), LW(e, l, LL_LW_NORM2_B), T, err))) return rc;
            if ((rc = mlp_block(e, b, l, err))) return rc;
        }
        CHECK(be->ops->add(be, e->x, e->m, T * d));
        if ((rc = capture(e, p->post[l], T, err))) return rc;
    }
    return ll_engine_norm(e, e->xf, e->x, ll_weights_global(e->w, LL_GW_FINAL_NORM),
                          ll_weights_global(e->w, LL_GW_FINAL_NORM_B), T, err);
}
