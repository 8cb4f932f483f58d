/* cpu_matmul.c: dense layers through OpenBLAS.
 *
 * Math: y[T, N] = x[T, K] W (+ bias[N]). Layout: W is [N, K] (LL_WLAYOUT_OUT_IN, torch nn.Linear:
 * y = x W^T, cblas transB) or [K, N] (LL_WLAYOUT_IN_OUT, GPT-2 Conv1D: y = x W); x, y row-major.
 * Precision: cblas_sgemm, float32 accumulation (OpenBLAS keeps one FMA chain per output element per
 * K block), the bias added afterwards in float. Threads: OpenBLAS's own inside sgemm, then OpenMP over
 * rows for the bias (never both at once). Deterministic for a fixed thread count.
 * Test: tests/c/test_cpu_ops.c ("matmul"). */
#include "cpu_internal.h"

#include <cblas.h>
#include <limits.h>

ll_status ll_cpu_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                        const ll_wt *bias, int64_t T, int64_t N, int64_t K) {
    const char *op = "matmul";
    if (T < 0 || N < 1 || K < 1)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld N=%lld K=%lld", (long long)T, (long long)N,
                           (long long)K);
    if (T > INT_MAX || N > INT_MAX || K > INT_MAX)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "shape T=%lld N=%lld K=%lld exceeds the BLAS integer range",
                           (long long)T, (long long)N, (long long)K);
    ll_status st;
    if (layout == LL_WLAYOUT_OUT_IN) st = ll_cpu_check_mat(be, op, "weight [N, K]", w, N, K);
    else if (layout == LL_WLAYOUT_IN_OUT) st = ll_cpu_check_mat(be, op, "weight [K, N]", w, K, N);
    else return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "unknown weight layout %d", (int)layout);
    if (st) return st;
    const float *bv = NULL;
    if (bias && bias->data) {
        if ((st = ll_cpu_check_vec(be, op, "bias", bias, N))) return st;
        bv = bias->data;
    }
    if (T == 0) return LL_OK;
    if (!y || !x) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL input or output");
    if (layout == LL_WLAYOUT_OUT_IN)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)N, (int)K, 1.0f, x, (int)K, w->data,
                    (int)K, 0.0f, y, (int)N);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)N, (int)K, 1.0f, x, (int)K, w->data,
                    (int)N, 0.0f, y, (int)N);
    if (bv) {
#pragma omp parallel for schedule(static) if (T * N > 32768)
        for (int64_t t = 0; t < T; t++) {
            float *yr = y + t * N; /* [N] */
#pragma omp simd
            for (int64_t j = 0; j < N; j++) yr[j] += bv[j];
        }
    }
    return LL_OK;
}
