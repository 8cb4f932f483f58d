/* engine_internal.h: the engine's state, shared by engine.c, forward.c, lens.c, lens_vp.c and
 * pipeline.c. */
#ifndef LL_ENGINE_INTERNAL_H
#define LL_ENGINE_INTERNAL_H

#include "ll_engine.h"
#include "ll_shard.h"

struct ll_engine {
    ll_backend *be;
    const ll_config *gc;  /* the model's config */
    ll_config lc;         /* this rank's part of it (local heads, KV heads, MLP width) */
    const ll_config *c;   /* = &lc */
    const ll_weights *w;
    ll_shard sh;          /* what this rank holds */
    ll_comm single;       /* the communicators of a one-rank engine */
    ll_comm *tp;          /* this rank's tensor-parallel group */
    ll_comm *world;       /* every rank (pipeline transfers, results to rank 0) */
    const ll_points *p;   /* every point of the run */
    int P;                /* points this stage captures */
    int *slot;            /* [p->n] local slot of each point or -1 */
    int *point_of;        /* [P] global point index of each local slot */
    int *stage_P;         /* [pp] points each stage captures */
    ll_engine_opts o;
    int64_t max_T;        /* batch capacity in tokens */
    int64_t Rcap;         /* capacity of row buffers: max(P, 1) * max_T */
    int64_t V;            /* unembedding rows this rank holds: global ids [v0, v0 + V) */
    int64_t nv_loc;       /* saved-probability columns this rank computes */
    int64_t nv_loc_max;   /* the most any rank of the group computes */
    /* backend buffers (sizes for max_T tokens) */
    int32_t *ids, *pos;   /* [T] */
    int64_t *off;         /* [max_T + 1] prompt offsets */
    float *x;             /* [T, d] residual stream */
    float *h;             /* [T, d] norm output */
    float *qkv;           /* [T, (nq + 2 nkv) hd] q, k, v (fused or separate blocks), local heads */
    float *att;           /* [T, nq hd] attention output before o_proj */
    float *a;             /* [T, d] attention block output */
    float *m;             /* [T, d] MLP block output */
    float *ff, *ff2;      /* [T, d_ff] MLP hidden (ff2: SwiGLU's up projection), local columns */
    float *xf;            /* [T, d] final norm of the last layer's output: the model's own output rows */
    float *pts;           /* [P, T, d] captured points, point-major; the lens normalizes them in place */
    int32_t *tgt_rows;    /* [Rcap] target id of each lens row */
    float *zt, *lse, *ent, *kl;   /* [Rcap] */
    int32_t *rank;        /* [Rcap] */
    int32_t *topk_ids;    /* [Rcap, k] */
    float *topk_probs;    /* [Rcap, k] */
    float *zt_f, *lse_f, *ent_f, *topk_probs_f; /* final rows: [T], [T], [T], [T, k] */
    int32_t *topk_ids_f, *rank_f;               /* [T, k], [T] */
    float *u;             /* [T, d] KL term W_U^T p_final */
    float *pb;            /* [T] KL term p_final . b */
    float *xsel;          /* [P max_probs_rows, d] rows whose probabilities are saved */
    uint16_t *probs;      /* [P max_probs_rows, nv] */
    int32_t *vsel;        /* [nv_loc] --probs-vocab ids in this rank's slice (local ids); NULL without it */
    uint32_t *gsend, *grecv; /* tensor parallel: [Rcap, 3 + 2k] packed row states, [tp, Rcap, 3 + 2k] */
    uint16_t *prob_gather;   /* tensor parallel: [tp, P max_probs_rows, nv_loc_max] */
    void *xfer;           /* pipeline: staging of host transfers, xfer_bytes */
    size_t xfer_bytes;
    /* host scratch */
    int64_t *h_off;       /* [max_T + 1] a micro-batch's prompt offsets */
    int32_t *h_tgt;       /* [Rcap] targets of the lens rows (global ids) */
    int32_t *h_tloc;      /* [Rcap] targets as local unembedding rows (-1 outside the slice) */
    float *h_buf;         /* [Rcap max(k, 3)] download staging */
    int32_t *h_ibuf;      /* [Rcap k] */
    uint32_t *h_gat;      /* tensor parallel: [tp, Rcap, 3 + 2k] */
    float *h_u;           /* tensor parallel: [max_T, d] */
    float *h_pi;          /* tensor parallel: [tp, max_T] each slice's share of the final rows' softmax */
    uint16_t *h_probs;    /* [tp, P max_probs_rows, nv_loc_max] */
    /* this stage's merged results, point-major [P, T, ...] (host) */
    float *r_lse, *r_ent, *r_zt, *r_kl, *r_tkp; /* [Rcap], r_tkp [Rcap, k] */
    int32_t *r_rank, *r_tki;                    /* [Rcap], [Rcap, k] */
    float *r_hidden;      /* [P, T, d] when hidden states are saved */
    uint16_t *r_probs;    /* [P, max_probs_rows, nv] when probabilities are saved */
    float *r_lse_loc;     /* [max_T] this rank's own final-row LSE over its slice */
    ll_engine_comm_stats stats;
    double fwd_share;     /* the forward pass's share of a batch's work (for progress), the lens the rest */
};

/* LL_ERR_INTERRUPTED when the run asked to stop (ll_engine_opts.cancel). */
static inline ll_status ll_engine_cancelled(const ll_engine *e, ll_err *err) {
    if (e->o.cancel && *e->o.cancel) return ll_fail(err, LL_ERR_INTERRUPTED, "interrupted");
    return LL_OK;
}
/* Reports the share of the batch done. */
static inline void ll_engine_progress(const ll_engine *e, double fraction) {
    if (e->o.progress) e->o.progress(e->o.progress_ctx, fraction);
}

/* y = norm(x) with the weights/kind of c (w: weight, b: bias or NULL). */
ll_status ll_engine_norm(ll_engine *e, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t rows,
                         ll_err *err);

/* The buffers of one vocabulary-parallel lens pass: backend outputs of the pass over this rank's slice,
 * and the host results merged over the group (lse_own: this rank's own LSE over its slice, or NULL). */
typedef struct ll_vp_dev {
    float *zt, *lse, *ent, *probs; /* [R], [R], [R], [R, k] */
    int32_t *rank, *ids;           /* [R], [R, k] */
} ll_vp_dev;
typedef struct ll_vp_host {
    float *zt, *lse, *ent, *probs, *lse_own;
    int32_t *rank, *ids;
    float *pi;                     /* [tp, R] each slice's share of the softmax (ll_lens_merge), or NULL */
} ll_vp_host;

/* The vocabulary-parallel lens pass over R rows x (backend, normalized) with global targets tgt (host):
 * target logits (from the rank whose slice holds the target, summed over the group), the pass over this
 * rank's slice, and the merge of the group's slices (ll_lens_merge) into host results (lens_vp.c). The
 * backend outputs stay this rank's own. */
ll_status ll_engine_vp_pass(ll_engine *e, const float *x, int64_t R, const int32_t *tgt, const ll_vp_dev *dv,
                            const ll_vp_host *hv, ll_err *err);

/* Host memory to and from another rank of the world, staged through backend memory (pipeline.c). */
ll_status ll_engine_send_host(ll_engine *e, const void *buf, size_t bytes, int peer, ll_err *err);
ll_status ll_engine_recv_host(ll_engine *e, void *buf, size_t bytes, int peer, ll_err *err);
/* World rank 0 gathers every stage's results into out (token-major, global point order) (pipeline.c). */
ll_status ll_engine_collect(ll_engine *e, const ll_batch *b, int64_t n_probs_rows, ll_lens_out *out, ll_err *err);

#endif
