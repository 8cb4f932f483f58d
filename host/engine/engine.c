/* engine.c: the engine's buffers (sized once for the largest batch) and its lifetime. */
#include "engine_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct buf_req {
    void **slot;
    size_t bytes;
} buf_req;

/* Lists every backend buffer; with slots == NULL only sums their sizes. */
static size_t engine_buffers(const ll_config *c, const ll_points *p, const ll_engine_opts *o, int64_t T,
                             ll_engine *e, buf_req *reqs, int *n_reqs) {
    int64_t d = c->d_model, P = p->n, R = P * T, k = o->topk;
    int64_t nq = (int64_t)c->n_heads * c->head_dim, nkv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t nsel = o->probs_nv > 0 ? P * o->max_probs_rows : 0;
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
        {e ? &e->pts : NULL, (size_t)(R * d) * 4},
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
        {e ? &e->probs : NULL, (size_t)(nsel * o->probs_nv) * 2},
        {e ? &e->vsel : NULL, o->probs_vocab ? (size_t)o->probs_nv * 4 : 0},
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

size_t ll_engine_activation_bytes(const ll_config *c, const ll_points *p, const ll_engine_opts *o, int64_t max_T) {
    return engine_buffers(c, p, o, max_T, NULL, NULL, NULL);
}

void ll_engine_free(ll_engine *e) {
    if (!e) return;
    void **bufs[] = {(void **)&e->ids, (void **)&e->pos, (void **)&e->off, (void **)&e->x, (void **)&e->h,
                     (void **)&e->qkv, (void **)&e->att, (void **)&e->a, (void **)&e->m, (void **)&e->ff,
                     (void **)&e->ff2, (void **)&e->xf, (void **)&e->pts, (void **)&e->tgt_rows,
                     (void **)&e->zt, (void **)&e->lse, (void **)&e->ent, (void **)&e->kl, (void **)&e->rank,
                     (void **)&e->topk_ids, (void **)&e->topk_probs, (void **)&e->zt_f, (void **)&e->lse_f,
                     (void **)&e->ent_f, (void **)&e->topk_probs_f, (void **)&e->topk_ids_f, (void **)&e->rank_f,
                     (void **)&e->u, (void **)&e->pb, (void **)&e->xsel, (void **)&e->probs, (void **)&e->vsel};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (*bufs[i]) e->be->ops->dealloc(e->be, *bufs[i]);
    free(e->h_tgt_rows);
    free(e->h_buf);
    free(e->h_ibuf);
    free(e->h_probs);
    free(e);
}

ll_status ll_engine_init(ll_backend *be, const ll_config *c, const ll_weights *w, ll_comm *comm,
                         const ll_points *p, const ll_engine_opts *o, int64_t max_T, ll_engine **out, ll_err *err) {
    *out = NULL;
    ll_engine *e = calloc(1, sizeof *e);
    if (!e) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    e->be = be;
    e->c = c;
    e->w = w;
    e->comm = comm;
    e->p = p;
    e->o = *o;
    e->max_T = max_T;
    e->V = w->unembed->rows;
    buf_req reqs[64];
    int n = 0;
    engine_buffers(c, p, o, max_T, e, reqs, &n);
    for (int i = 0; i < n; i++) {
        ll_status rc = be->ops->alloc(be, reqs[i].bytes, reqs[i].slot);
        if (rc) {
            ll_fail(err, rc, "allocating %zu bytes of %s backend memory for a batch of %lld tokens: %s",
                    reqs[i].bytes, be->ops->name, (long long)max_T, be->err.msg);
            ll_engine_free(e);
            return rc;
        }
    }
    int64_t R = (int64_t)p->n * max_T, k = o->topk, d = c->d_model;
    int64_t wide = k > 3 ? k : 3;
    if (o->save_hidden && d > wide) wide = d;
    int64_t nsel = o->probs_nv > 0 ? (int64_t)p->n * o->max_probs_rows : 0;
    e->h_tgt_rows = ll_malloc_array((size_t)R, 4);
    e->h_buf = ll_malloc_array((size_t)R, (size_t)wide * 4);
    e->h_ibuf = ll_malloc_array((size_t)R, (size_t)k * 4);
    e->h_probs = nsel ? ll_malloc_array((size_t)nsel, (size_t)o->probs_nv * 2) : NULL;
    if (!e->h_tgt_rows || !e->h_buf || !e->h_ibuf || (nsel && !e->h_probs)) {
        ll_engine_free(e);
        return ll_fail(err, LL_ERR_NOMEM, "out of host memory for a batch of %lld tokens", (long long)max_T);
    }
    if (o->probs_vocab) {
        ll_status rc = be->ops->upload(be, e->vsel, o->probs_vocab, (size_t)o->probs_nv * 4);
        if (rc) {
            ll_fail(err, rc, "%s", be->err.msg);
            ll_engine_free(e);
            return rc;
        }
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
