/* cpu_lens_epilogue.c: the per-row arithmetic of the CPU lens on one tile of logits, the part that
 * runs once per logit (669M times for GPT-2 small, 13 points x 1024 tokens) and so must vectorize.
 *
 * ll_cpu_lens_row_tile, two passes over the row's nv logits (cpu_lens.c calls it for every row of a
 * tile, OpenMP over rows):
 *   A. 64-wide chunks: chunk max (-> tile max), count of z > zt, and only for a chunk whose max
 *      reaches the current k-th value a scalar scan inserting into the top-k (ll_topk_insert). After
 *      the first tiles the threshold is high and almost every chunk is rejected by one compare.
 *   B. S = sum e^(z - tmax), U = sum e^(z - tmax) (z - tmax) with the polynomial exp of cpu_exp.h
 *      (relative error < 1e-7), summed in double lanes, then merged into the row's state with
 *      ll_lse_merge (ll_math.h), the same float state the CUDA backend keeps.
 * ll_cpu_lens_prob_row: p = exp(z + b - lse) in place, returning sum p (and sum p b), for lens_expect
 * and lens_probs; p below 1.2e-38 (and a NaN logit, which lens_pass has already rejected) gives 0.
 * A -inf logit (a masked id) is exact everywhere: it adds nothing to S, U, sum p or sum p b.
 * Precision: the logits are float32 GEMM outputs; sums in double within a tile; no fast-math.
 * Vectorization: `omp simd` loops without branches (gcc -O2's very-cheap cost model rejects if-converted
 * loops, hence ll_cpu_clamp_min), built twice with target_clones: AVX2 (8 lanes) where the CPU has it,
 * the x86-64 baseline (SSE2, 4 lanes) elsewhere; the clone is chosen once at load time.
 * Deterministic for a given clone. Test: tests/c/test_cpu_ops.c ("lens_*"); cost: bench/cpu_ops. */
#include "cpu_internal.h"

#include "cpu_exp.h"

#include <math.h>

#define CHUNK 64

LL_CPU_CLONES
void ll_cpu_lens_row_tile(const float *z, int64_t nv, int64_t v0, float zt, int32_t tgt, int k, int32_t *ids,
                          float *vals, ll_cpu_lens_row *st) {
    /* A: tile max, count above the target, top-k candidates */
    const float ztv = tgt >= 0 ? zt : INFINITY; /* without a target nothing counts */
    float thr = st->ntop < k ? -INFINITY : vals[k - 1];
    float tmax = -INFINITY;
    int64_t cnt = 0;
    int64_t j = 0;
    for (; j + CHUNK <= nv; j += CHUNK) {
        const float *zc = z + j; /* [CHUNK] */
        float cm = -INFINITY;
        int cc = 0;
#pragma omp simd reduction(max : cm) reduction(+ : cc)
        for (int i = 0; i < CHUNK; i++) {
            float zz = zc[i];
            cm = zz > cm ? zz : cm;
            cc += zz > ztv;
        }
        cnt += cc;
        tmax = cm > tmax ? cm : tmax;
        if (cm >= thr) {
            for (int i = 0; i < CHUNK; i++) {
                if (zc[i] >= thr) {
                    ll_topk_insert(ids, vals, &st->ntop, k, (int32_t)(v0 + j + i), zc[i]);
                    if (st->ntop == k) thr = vals[k - 1];
                }
            }
        }
    }
    for (; j < nv; j++) { /* tail of the last vocabulary tile */
        float zz = z[j];
        tmax = zz > tmax ? zz : tmax;
        cnt += zz > ztv;
        if (zz >= thr) {
            ll_topk_insert(ids, vals, &st->ntop, k, (int32_t)(v0 + j), zz);
            if (st->ntop == k) thr = vals[k - 1];
        }
    }
    if (tgt >= v0 && tgt < v0 + nv && z[tgt - v0] > ztv) cnt--; /* the target itself never counts */
    st->above += cnt;

    /* B: S and U relative to the tile max; a tile whose logits are all -inf (or NaN) adds nothing */
    if (!(tmax > -INFINITY)) return;
    double s = 0.0, u = 0.0;
#pragma omp simd reduction(+ : s, u)
    for (int64_t i = 0; i < nv; i++) {
        float t = ll_cpu_clamp_min(z[i] - tmax, LL_CPU_EXP_MIN);
        float e = ll_cpu_exp_neg(t);
        s += e;
        u += e * t;
    }
    ll_lse_state tile;
    tile.m = tmax;
    tile.S = (float)s;
    tile.U = (float)u;
    st->lse = ll_lse_merge(st->lse, tile);
}

LL_CPU_CLONES
double ll_cpu_lens_prob_row(float *z, const float *b, int64_t n, float lse, double *pb) {
    /* probabilities below exp(-87.3) = 1.2e-38 are set to exactly 0 (they cannot matter next to a sum
     * of 1, and a -inf logit must give p = 0 and p * b = 0, not NaN) */
    double ps = 0.0;
    if (b) {
        double pbs = 0.0;
#pragma omp simd reduction(+ : ps, pbs)
        for (int64_t j = 0; j < n; j++) {
            float t = z[j] + b[j] - lse;
            float p = ll_cpu_keep_ge(ll_cpu_exp_neg(ll_cpu_clamp_min(t, LL_CPU_EXP_MIN)), t, LL_CPU_EXP_MIN);
            z[j] = p;
            ps += p;
            pbs += ll_cpu_keep_ge(p * b[j], t, LL_CPU_EXP_MIN);
        }
        if (pb) *pb = pbs;
    } else {
#pragma omp simd reduction(+ : ps)
        for (int64_t j = 0; j < n; j++) {
            float t = z[j] - lse;
            float p = ll_cpu_keep_ge(ll_cpu_exp_neg(ll_cpu_clamp_min(t, LL_CPU_EXP_MIN)), t, LL_CPU_EXP_MIN);
            z[j] = p;
            ps += p;
        }
        if (pb) *pb = 0.0;
    }
    return ps;
}
