/* cpu_norm.c: LayerNorm and RMSNorm over each row.
 *
 * Math: layernorm y = (x - mean) / sqrt(var + eps) * w + b (biased variance, as torch);
 *       rmsnorm   y = x / sqrt(mean(x^2) + eps) * w.
 * Layout: x, y [T, d] row-major (y may alias x); w, b [d].
 * Precision: the row statistics are accumulated in double, two passes for the variance (mean first,
 * then the sum of squared deviations), so a row with a large mean and a small spread keeps its digits;
 * each output element is formed in double and rounded once. The result is within a few float ulps of
 * a float64 evaluation (the weight multiply is the only other rounding).
 * Threads: OpenMP over rows; deterministic. Test: tests/c/test_cpu_ops.c ("layernorm", "rmsnorm"). */
#include "cpu_internal.h"

#include <math.h>

static ll_status check_rows(ll_backend *be, const char *op, float *y, const float *x, int64_t T, int64_t d,
                            float eps) {
    if (T < 0 || d < 1) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld d=%lld", (long long)T, (long long)d);
    if (T > 0 && (!y || !x)) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL input or output");
    if (!(eps >= 0.0f)) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "eps %g is not >= 0", (double)eps);
    return LL_OK;
}

ll_status ll_cpu_layernorm(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b,
                           int64_t T, int64_t d, float eps) {
    const char *op = "layernorm";
    ll_status st = check_rows(be, op, y, x, T, d, eps);
    if (st) return st;
    if ((st = ll_cpu_check_vec(be, op, "weight", w, d))) return st;
    if (b && b->data && (st = ll_cpu_check_vec(be, op, "bias", b, d))) return st;
    const float *wv = w->data;
    const float *bv = (b && b->data) ? (const float *)b->data : NULL;
#pragma omp parallel for schedule(static) if (T * d > 32768)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * d; /* [d] */
        float *yr = y + t * d;       /* [d] */
        double s = 0.0;
        for (int64_t i = 0; i < d; i++) s += xr[i];
        double mean = s / (double)d;
        double q = 0.0;
        for (int64_t i = 0; i < d; i++) {
            double dv = (double)xr[i] - mean;
            q += dv * dv;
        }
        double rstd = 1.0 / sqrt(q / (double)d + (double)eps);
        if (bv) {
            for (int64_t i = 0; i < d; i++) yr[i] = (float)(((double)xr[i] - mean) * rstd * wv[i] + bv[i]);
        } else {
            for (int64_t i = 0; i < d; i++) yr[i] = (float)(((double)xr[i] - mean) * rstd * wv[i]);
        }
    }
    return LL_OK;
}

ll_status ll_cpu_rmsnorm(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d,
                         float eps) {
    const char *op = "rmsnorm";
    ll_status st = check_rows(be, op, y, x, T, d, eps);
    if (st) return st;
    if ((st = ll_cpu_check_vec(be, op, "weight", w, d))) return st;
    const float *wv = w->data;
#pragma omp parallel for schedule(static) if (T * d > 32768)
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * d; /* [d] */
        float *yr = y + t * d;       /* [d] */
        double q = 0.0;
        for (int64_t i = 0; i < d; i++) q += (double)xr[i] * xr[i];
        double rstd = 1.0 / sqrt(q / (double)d + (double)eps);
        for (int64_t i = 0; i < d; i++) yr[i] = (float)((double)xr[i] * rstd * wv[i]);
    }
    return LL_OK;
}
