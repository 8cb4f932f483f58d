/* cpu_lens.c: the logit lens on the CPU: target logits, the one-pass vocabulary statistics, the KL
 * terms and saved probability rows (docs/architecture.md, "The lens in one pass"; LENS-MATH).
 *
 * Math, per lens row r (point-major: r = p * T + t) with logits z = W_U x[r] (+ b):
 *   lens_pass: over vocabulary tiles, the online state (m, S = sum e^(z-m), U = sum e^(z-m) (z-m))
 *     merged with ll_lse_merge; LSE = m + log S, H = log S - U/S (ll_lse_value, ll_lse_entropy);
 *     a running top-k (ll_topk_insert: descending, ties to the smaller id) turned into exp(z - LSE);
 *     rank = #{v != target : z_v > zt[r]} (-1 without a target).
 *   lens_expect: u[t] = sum_v p_f(t, v) W_U[v], pb[t] = sum_v p_f(t, v) b[v] for the final rows, with
 *     p_f = exp(z - lse) renormalized by its computed sum (so a rounding error in the float lse does
 *     not scale u; see lens_expect).
 *   lens_kl: KL(p_f || p_l) = -H_f - (x[r] . u[t] + pb[t]) + LSE_l, clamped at 0.
 *   lens_probs: float16 exp(z - LSE) for chosen ids.
 * Layout: x [R, d] row-major, W_U [V, d] (torch layout), b [V]; top-k [R, k]; u [T, d].
 *
 * Tiling (bounded memory, never R x V): row blocks of ctx->lens_rows rows and vocabulary tiles of
 * ctx->lens_cols columns; each tile's logits come from one cblas_sgemm (OpenBLAS threads) into a
 * lens_rows x lens_cols float scratch (32 MiB by default); then the epilogue runs with OpenMP over the
 * rows of the block (never a BLAS call inside a parallel region). The vocabulary is the outer loop, so
 * the W_U tile stays in cache while every row block streams past it.
 *
 * The epilogue per row and tile (max, count, top-k filter, polynomial-exp sums, one merge) lives in
 * cpu_lens_epilogue.c: it runs once per logit and is written to vectorize.
 * Precision: logits are float32 sgemm results; the per-tile sums are double, the cross-tile state is
 * the float ll_lse_state shared with the CUDA backend; LSE and entropy agree with a float64 brute force
 * to about 1e-6 nats for logits of a few tens. Deterministic for a fixed thread count and tiling.
 * Cost: insertion into the top-k is O(k); k is meant to be small (tens). Test: tests/c/test_cpu_ops.c
 * ("lens_*"); micro-benchmark: bench/cpu_ops/bench_lens.c. */
#include "cpu_internal.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Checks the unembedding and its optional bias; sets *bias to the bias data or NULL. */
static ll_status check_unembed(ll_backend *be, const char *op, const ll_wt *wu, const ll_wt *bu, int64_t V,
                               int64_t d, const float **bias) {
    if (d < 1 || V < 1 || d > INT_MAX || V > INT_MAX)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape d=%lld V=%lld", (long long)d, (long long)V);
    ll_status st = ll_cpu_check_mat(be, op, "unembedding [V, d]", wu, V, d);
    if (st) return st;
    *bias = NULL;
    if (bu && bu->data) {
        if ((st = ll_cpu_check_vec(be, op, "unembedding bias", bu, V))) return st;
        *bias = bu->data;
    }
    return LL_OK;
}

ll_status ll_cpu_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu,
                                    const ll_wt *bu, const int32_t *target, int64_t R, int64_t d) {
    const char *op = "lens_target_logits";
    if (R < 0) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad row count %lld", (long long)R);
    const float *bias;
    ll_status st = check_unembed(be, op, wu, bu, wu ? wu->rows : 0, d, &bias);
    if (st) return st;
    if (R == 0) return LL_OK;
    if (!zt || !x || !target) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer");
    const int64_t V = wu->rows;
    for (int64_t r = 0; r < R; r++)
        if (target[r] >= V)
            return ll_cpu_fail(be, LL_ERR_INPUT, op, "target id %d of row %lld is outside the vocabulary [0, %lld)",
                               (int)target[r], (long long)r, (long long)V);
    const float *w = wu->data;
#pragma omp parallel for schedule(static) if (R * d > 32768)
    for (int64_t r = 0; r < R; r++) {
        if (target[r] < 0) {
            zt[r] = NAN;
            continue;
        }
        const float *xr = x + r * d;          /* [d] */
        const float *wr = w + target[r] * d;  /* [d] */
        double s = 0.0;
        for (int64_t i = 0; i < d; i++) s += (double)xr[i] * wr[i];
        if (bias) s += bias[target[r]];
        zt[r] = (float)s;
    }
    return LL_OK;
}

/* Logits of rows [r0, r0+rb) against vocabulary rows w[0..nv) (row stride d) into c (row stride ldc). */
static void tile_logits(float *c, int64_t ldc, const float *x, int64_t r0, int64_t rb, const float *w, int64_t nv,
                        int64_t d) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)nv, (int)d, 1.0f, x + r0 * d, (int)d, w,
                (int)d, 0.0f, c, (int)ldc);
}

ll_status ll_cpu_lens_pass(ll_backend *be, const ll_lens_pass_args *a) {
    const char *op = "lens_pass";
    if (!a) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL arguments");
    const int64_t R = a->R, d = a->d, V = a->V;
    const int k = a->k;
    if (R < 0 || R > INT_MAX) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad row count %lld", (long long)R);
    const float *bias;
    ll_status st = check_unembed(be, op, a->wu, a->bu, V, d, &bias);
    if (st) return st;
    if (k < 1 || k > V) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "top-k %d outside [1, V=%lld]", k, (long long)V);
    if (R == 0) return LL_OK;
    if (!a->x || !a->zt || !a->target || !a->lse || !a->entropy || !a->topk_ids || !a->topk_probs || !a->rank)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer");
    const int64_t vbase = a->v0, vtot = a->v_total > 0 ? a->v_total : V;
    if (vbase < 0 || vbase + V > vtot)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "vocabulary slice [%lld, %lld) outside [0, %lld)", (long long)vbase,
                           (long long)(vbase + V), (long long)vtot);
    for (int64_t r = 0; r < R; r++)
        if (a->target[r] >= vtot)
            return ll_cpu_fail(be, LL_ERR_INPUT, op, "target id %d of row %lld is outside the vocabulary [0, %lld)",
                               (int)a->target[r], (long long)r, (long long)vtot);
    size_t rk;
    if (ll_mul_size((size_t)R, (size_t)k, &rk))
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "top-k of %lld x %d overflows", (long long)R, k);

    const ll_cpu_ctx *c = be->ctx;
    const int64_t RB = R < c->lens_rows ? R : c->lens_rows;
    const int64_t VT = c->lens_cols;
    float *tile = ll_cpu_aligned_alloc((size_t)RB * (size_t)VT, sizeof(float)); /* [RB, VT] logits */
    ll_cpu_lens_row *rows = ll_cpu_aligned_alloc((size_t)R, sizeof(ll_cpu_lens_row));       /* [R] */
    if (!tile || !rows) {
        free(tile);
        free(rows);
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate the %lld x %lld logit tile and %lld row states",
                           (long long)RB, (long long)VT, (long long)R);
    }
    for (int64_t r = 0; r < R; r++) {
        rows[r].lse = ll_lse_init();
        rows[r].above = 0;
        rows[r].ntop = 0;
    }
    const float *w = a->wu->data;
    for (int64_t v0 = 0; v0 < V; v0 += VT) {
        const int64_t nv = V - v0 < VT ? V - v0 : VT;
        for (int64_t r0 = 0; r0 < R; r0 += RB) {
            const int64_t rb = R - r0 < RB ? R - r0 : RB;
            tile_logits(tile, VT, a->x, r0, rb, w + v0 * d, nv, d);
#pragma omp parallel for schedule(dynamic, 8)
            for (int64_t i = 0; i < rb; i++) {
                const int64_t r = r0 + i;
                float *z = tile + i * VT; /* [nv] */
                if (bias) {
                    const float *bt = bias + v0;
#pragma omp simd
                    for (int64_t j = 0; j < nv; j++) z[j] += bt[j];
                }
                ll_cpu_lens_row_tile(z, nv, vbase + v0, a->zt[r], a->target[r], k, a->topk_ids + r * k, a->topk_probs + r * k,
                              &rows[r]);
            }
        }
    }
    int64_t bad_row = -1; /* a row whose logits are not all finite: NaN never enters the top-k, +inf makes S inf */
    for (int64_t r = 0; r < R && bad_row < 0; r++)
        if (rows[r].ntop != k || !isfinite(ll_lse_value(rows[r].lse))) bad_row = r;
    if (bad_row >= 0) {
        free(tile);
        free(rows);
        return ll_cpu_fail(be, LL_ERR_INPUT, op, "row %lld has non-finite logits (NaN or inf in x or W_U)",
                           (long long)bad_row);
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float lse = ll_lse_value(rows[r].lse);
        a->lse[r] = lse;
        a->entropy[r] = ll_lse_entropy(rows[r].lse);
        float *pr = a->topk_probs + r * k; /* [k]: logits -> probabilities */
        for (int i = 0; i < k; i++) pr[i] = expf(pr[i] - lse);
        a->rank[r] = a->target[r] >= 0 ? (int32_t)rows[r].above : -1;
    }
    free(tile);
    free(rows);
    return LL_OK;
}

ll_status ll_cpu_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu,
                             const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V) {
    const char *op = "lens_expect";
    if (T < 0 || T > INT_MAX) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad token count %lld", (long long)T);
    const float *bias;
    ll_status st = check_unembed(be, op, wu, bu, V, d, &bias);
    if (st) return st;
    if (T == 0) return LL_OK;
    if (!u || !pb || !xf || !lse) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer");
    const ll_cpu_ctx *c = be->ctx;
    const int64_t RB = T < c->lens_rows ? T : c->lens_rows;
    const int64_t VT = c->lens_cols;
    float *tile = ll_cpu_aligned_alloc((size_t)RB * (size_t)VT, sizeof(float)); /* [RB, VT] probabilities */
    float *ub = ll_cpu_aligned_alloc((size_t)RB * (size_t)d, sizeof(float));    /* [RB, d] one tile's u */
    double *uacc = ll_cpu_aligned_alloc((size_t)RB * (size_t)d, sizeof(double)); /* [RB, d] */
    double *pacc = ll_cpu_aligned_alloc((size_t)RB, sizeof(double));             /* [RB] sum p b */
    double *psum = ll_cpu_aligned_alloc((size_t)RB, sizeof(double));             /* [RB] sum p */
    if (!tile || !ub || !uacc || !pacc || !psum) {
        free(psum);
        free(tile);
        free(ub);
        free(uacc);
        free(pacc);
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate the %lld x %lld probability tile", (long long)RB,
                           (long long)VT);
    }
    const float *w = wu->data;
    for (int64_t r0 = 0; r0 < T; r0 += RB) {
        const int64_t rb = T - r0 < RB ? T - r0 : RB;
        memset(uacc, 0, (size_t)rb * (size_t)d * sizeof(double));
        memset(pacc, 0, (size_t)rb * sizeof(double));
        memset(psum, 0, (size_t)rb * sizeof(double));
        for (int64_t v0 = 0; v0 < V; v0 += VT) {
            const int64_t nv = V - v0 < VT ? V - v0 : VT;
            tile_logits(tile, VT, xf, r0, rb, w + v0 * d, nv, d);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < rb; i++) {
                float *z = tile + i * VT; /* [nv] logits -> probabilities */
                double pbs = 0.0;
                const double ps = ll_cpu_lens_prob_row(z, bias ? bias + v0 : NULL, nv, lse[r0 + i], &pbs);
                psum[i] += ps;
                pacc[i] += pbs;
            }
            /* ub[rb, d] = P[rb, nv] W_tile[nv, d] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rb, (int)d, (int)nv, 1.0f, tile, (int)VT,
                        w + v0 * d, (int)d, 0.0f, ub, (int)d);
            const int64_t n = rb * d;
#pragma omp parallel for schedule(static) if (n > 32768)
            for (int64_t i = 0; i < n; i++) uacc[i] += ub[i];
        }
        /* divide by the probabilities' actual sum: an error delta in the float lse would otherwise scale
         * u and pb by (1 - delta), an error of delta * E[z] (LSE-sized) in the KL */
        for (int64_t i = 0; i < rb; i++) {
            const double inv = 1.0 / psum[i];
            for (int64_t j = 0; j < d; j++) u[(r0 + i) * d + j] = (float)(uacc[i * d + j] * inv);
            pb[r0 + i] = (float)(pacc[i] * inv);
        }
    }
    free(tile);
    free(ub);
    free(uacc);
    free(pacc);
    free(psum);
    return LL_OK;
}

ll_status ll_cpu_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                         const float *hf, const float *lse, int64_t R, int64_t T, int64_t d) {
    const char *op = "lens_kl";
    (void)wu; /* the CPU computes logits from float32 rows: nothing to round */
    if (R < 0 || T < 1 || d < 1 || R % T != 0)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape R=%lld T=%lld d=%lld (R must be a multiple of T)",
                           (long long)R, (long long)T, (long long)d);
    if (R == 0) return LL_OK;
    if (!kl || !x || !u || !pb || !hf || !lse) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer");
#pragma omp parallel for schedule(static) if (R * d > 32768)
    for (int64_t r = 0; r < R; r++) {
        const int64_t t = r % T;
        const float *xr = x + r * d; /* [d] */
        const float *ut = u + t * d; /* [d] */
        double dot = 0.0;
        for (int64_t i = 0; i < d; i++) dot += (double)xr[i] * ut[i];
        double v = -(double)hf[t] - (dot + (double)pb[t]) + (double)lse[r];
        kl[r] = ll_kl_finish(v);
    }
    return LL_OK;
}

ll_status ll_cpu_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                            const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel,
                            int64_t nv) {
    const char *op = "lens_probs";
    if (R < 0 || R > INT_MAX) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad row count %lld", (long long)R);
    const float *bias;
    ll_status st = check_unembed(be, op, wu, bu, V, d, &bias);
    if (st) return st;
    if (!vsel && nv != V)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "all ids selected but nv=%lld != V=%lld", (long long)nv,
                           (long long)V);
    if (nv < 0 || nv > INT_MAX) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad id count %lld", (long long)nv);
    if (R == 0 || nv == 0) return LL_OK;
    if (!out || !x || !lse) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer");
    if (vsel)
        for (int64_t j = 0; j < nv; j++)
            if (vsel[j] < 0 || vsel[j] >= V)
                return ll_cpu_fail(be, LL_ERR_INPUT, op, "selected id %d (entry %lld) is outside the vocabulary [0, %lld)",
                                   (int)vsel[j], (long long)j, (long long)V);
    const ll_cpu_ctx *c = be->ctx;
    const int64_t RB = R < c->lens_rows ? R : c->lens_rows;
    const int64_t VT = c->lens_cols;
    float *tile = ll_cpu_aligned_alloc((size_t)RB * (size_t)VT, sizeof(float));              /* [RB, VT] */
    float *wg = vsel ? ll_cpu_aligned_alloc((size_t)VT * (size_t)d, sizeof(float)) : NULL; /* [VT, d] gathered */
    float *bg = ll_cpu_aligned_alloc((size_t)VT, sizeof(float));                            /* [VT] gathered bias */
    if (!tile || (vsel && !wg) || !bg) {
        free(tile);
        free(wg);
        free(bg);
        return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate the %lld x %lld probability tile", (long long)RB,
                           (long long)VT);
    }
    const float *w = wu->data;
    for (int64_t j0 = 0; j0 < nv; j0 += VT) {
        const int64_t n = nv - j0 < VT ? nv - j0 : VT;
        const float *wt;
        if (vsel) {
#pragma omp parallel for schedule(static) if (n * d > 32768)
            for (int64_t j = 0; j < n; j++) memcpy(wg + j * d, w + (int64_t)vsel[j0 + j] * d, (size_t)d * sizeof(float));
            wt = wg;
        } else {
            wt = w + j0 * d;
        }
        for (int64_t j = 0; j < n; j++) bg[j] = bias ? bias[vsel ? vsel[j0 + j] : j0 + j] : 0.0f;
        for (int64_t r0 = 0; r0 < R; r0 += RB) {
            const int64_t rb = R - r0 < RB ? R - r0 : RB;
            tile_logits(tile, VT, x, r0, rb, wt, n, d);
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < rb; i++) {
                float *z = tile + i * VT;                  /* [n] */
                uint16_t *o = out + (r0 + i) * nv + j0;    /* [n] */
                ll_cpu_lens_prob_row(z, bias ? bg : NULL, n, lse[r0 + i], NULL);
                for (int64_t j = 0; j < n; j++) o[j] = ll_f32_to_f16(z[j]);
            }
        }
    }
    free(tile);
    free(wg);
    free(bg);
    return LL_OK;
}
