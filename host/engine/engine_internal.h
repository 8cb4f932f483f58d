/* engine_internal.h: the engine's state, shared by engine.c, forward.c and lens.c. */
#ifndef LL_ENGINE_INTERNAL_H
#define LL_ENGINE_INTERNAL_H

#include "ll_engine.h"

struct ll_engine {
    ll_backend *be;
    const ll_config *c;
    const ll_weights *w;
    ll_comm *comm;
    const ll_points *p;
    ll_engine_opts o;
    int64_t max_T;       /* batch capacity in tokens */
    int64_t V;           /* unembedding rows */
    /* backend buffers (sizes for max_T tokens) */
    int32_t *ids, *pos;  /* [T] */
    int64_t *off;        /* [max_T + 1] prompt offsets */
    float *x;            /* [T, d] residual stream */
    float *h;            /* [T, d] norm output */
    float *qkv;          /* [T, (nq + 2 nkv) hd] q, k, v (fused or separate blocks) */
    float *att;          /* [T, nq hd] attention output before o_proj */
    float *a;            /* [T, d] attention block output */
    float *m;            /* [T, d] MLP block output */
    float *ff, *ff2;     /* [T, d_ff] MLP hidden (ff2: SwiGLU's up projection) */
    float *xf;           /* [T, d] final norm of the last layer's output: the model's own output rows */
    float *pts;          /* [P, T, d] captured points, point-major; the lens normalizes them in place */
    int32_t *tgt_rows;   /* [P T] target id of each lens row */
    float *zt, *lse, *ent, *kl;   /* [P T] */
    int32_t *rank;       /* [P T] */
    int32_t *topk_ids;   /* [P T, k] */
    float *topk_probs;   /* [P T, k] */
    float *zt_f, *lse_f, *ent_f, *topk_probs_f; /* final rows: [T], [T], [T], [T, k] */
    int32_t *topk_ids_f, *rank_f;               /* [T, k], [T] */
    float *u;            /* [T, d] KL term W_U^T p_final */
    float *pb;           /* [T] KL term p_final . b */
    float *xsel;         /* [P max_probs_rows, d] rows whose probabilities are saved */
    uint16_t *probs;     /* [P max_probs_rows, nv] */
    int32_t *vsel;       /* [nv] vocabulary subset or NULL */
    /* host scratch */
    int32_t *h_tgt_rows; /* [P T] */
    float *h_buf;        /* [P T max(k, 3, d if hidden is saved)] download staging */
    int32_t *h_ibuf;     /* [P T k] */
    uint16_t *h_probs;   /* [P max_probs_rows, nv] */
};

/* y = norm(x) with the weights/kind of c (w: weight, b: bias or NULL). */
ll_status ll_engine_norm(ll_engine *e, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t rows,
                         ll_err *err);

#endif
