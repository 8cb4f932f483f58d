/* memplan.c: memory plan of a run (weights + activations + backend scratch). */
#include "ll_memplan.h"

#include "ll_cuda_tiling.h"
#include "ll_shard.h"

#include <stdlib.h>

#include <stdio.h>
#include <string.h>

/* The CPU backend's scratch: the lens works in 2048 x 4096 float tiles (32 MiB) plus per-thread rows; an
 * upper bound. The CUDA backend's: the largest request of any op the run makes (the arena keeps the
 * largest; ll_cuda_plan.h has each op's formula, the same the ops use) plus the cuBLAS workspace. */
#define LL_PLAN_CPU_SCRATCH ((size_t)64 << 20)

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* The unembedding's storage dtype (the token embedding's when tied), which the lens ops compute in. */
static ll_dtype unembed_dtype(const ll_model_files *m) {
    ll_dtype dt = m->dtype;
    for (int i = 0; i < m->n_specs; i++) {
        if (m->specs[i].layer >= 0) continue;
        if (m->specs[i].role == LL_GW_UNEMBED) return m->bound[i].dtype;
        if (m->specs[i].role == LL_GW_TOK_EMBED) dt = m->bound[i].dtype;
    }
    return dt;
}

size_t ll_memplan_cuda_scratch(const ll_config *c, int P, int64_t V, const ll_engine_opts *o, int64_t max_T, int half,
                               int lens_half, size_t probs_elem) {
    const size_t budget = ll_cuda_lens_budget();
    const int64_t d = c->d_model, R = (int64_t)P * max_T;
    int64_t K = d; /* widest matmul input: d, the attention output, or the MLP's hidden layer */
    if ((int64_t)c->n_heads * c->head_dim > K) K = (int64_t)c->n_heads * c->head_dim;
    if (c->d_ff > K) K = c->d_ff;
    size_t s = ll_cuda_matmul_scratch(max_T, K, half);
    s = max_size(s, ll_cuda_lens_pass_need(max_T, d, V, o->topk, lens_half, budget)); /* final rows */
    if (R > 0) s = max_size(s, ll_cuda_lens_pass_need(R, d, V, o->topk, lens_half, budget)); /* every point */
    s = max_size(s, ll_cuda_lens_expect_need(max_T, d, V, lens_half, budget));
    if (o->probs_nv > 0 && P > 0)
        s = max_size(s, ll_cuda_lens_probs_need((int64_t)P * o->max_probs_rows, d, o->probs_nv, probs_elem,
                                                o->probs_vocab != NULL, budget));
    return s + LL_CUDA_BLAS_WORKSPACE;
}

void ll_memplan_compute(const ll_model_files *m, const char *backend, const ll_shard *shard, const ll_points *p,
                        const ll_engine_opts *o, int64_t max_T, ll_memplan *out) {
    memset(out, 0, sizeof *out);
    int cpu = !strcmp(backend, "cpu");
    ll_shard whole;
    if (!shard) {
        ll_shard_whole(&m->cfg, &whole);
        shard = &whole;
    }
    ll_config lc;
    ll_shard_local_config(&m->cfg, shard, &lc);
    const int P = ll_shard_points(shard, p->layers, p->n, NULL);
    /* weights: each tensor's share at the bytes per element the backend keeps it in */
    double *eb = malloc((size_t)(m->n_specs > 0 ? m->n_specs : 1) * sizeof *eb);
    if (eb) {
        for (int i = 0; i < m->n_specs; i++) {
            const ll_model_tensor *t = &m->bound[i];
            eb[i] = cpu ? 4.0 : t->quantized ? 2.0 : (double)t->nbytes / (double)(t->numel > 0 ? t->numel : 1);
        }
        out->weights = ll_shard_weight_bytes(&m->cfg, shard, m->specs, m->n_specs, eb);
        free(eb);
    } else {
        out->weights = ll_model_weights_bytes(m, backend); /* an upper bound */
    }
    out->activations = ll_engine_activation_bytes(&lc, P, o, max_T, shard->tp, shard->pp);
    out->scratch = cpu ? LL_PLAN_CPU_SCRATCH
                       : ll_memplan_cuda_scratch(&lc, P, shard->n_v, o, max_T, m->dtype != LL_DTYPE_F32,
                                                 unembed_dtype(m) != LL_DTYPE_F32, ll_dtype_size(unembed_dtype(m)));
    out->total = out->weights + out->activations + out->scratch;
}

void ll_memplan_human(double b, char *buf, size_t cap) {
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) b /= 1024, i++;
    snprintf(buf, cap, "%.2f %s", b, u[i]);
}
