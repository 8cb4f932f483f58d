/* norm.cu: LayerNorm and RMSNorm with fp32 statistics per row.
 *
 * Math: LayerNorm  y = (x - mean) / sqrt(var + eps) * w + b   (var biased: mean of (x - mean)^2)
 *       RMSNorm    y = x / sqrt(mean(x^2) + eps) * w
 * Layout: x, y [T, d] fp32 row-major (y may alias x); w, b vectors of d in their stored dtype.
 * Precision: fp32 accumulation; LayerNorm uses two passes (mean, then the centered sum of squares), so
 *   a large common offset does not cancel. 1/sqrtf, not rsqrtf, to stay within an ulp of the CPU.
 * Launch: one block of 256 threads per row (grid.x = T); each thread strides over the row; block
 *   reductions through 32 floats of shared memory. Rows are re-read from L1/L2 for each pass.
 * Preconditions: w->cols == d (and b->cols == d); eps > 0 keeps the division finite.
 * Determinism: yes (fixed reduction tree).
 * CPU reference: kernels/cpu (layernorm, rmsnorm); test: tests/gpu/test_backend_ops.c, "layernorm",
 *   "rmsnorm". */
#include "cuda_common.cuh"

__global__ void __launch_bounds__(LLC_THREADS)
llc_layernorm_kernel(float *y, const float *x, const void *__restrict__ w, int wdt, const void *__restrict__ b,
                     int bdt, int64_t d, float eps) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    const float *xr = x + r * d;
    float *yr = y + r * d;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += xr[i];
    const float mean = llc_block_sum(s, red) / (float)d;
    float q = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float c = xr[i] - mean;
        q += c * c;
    }
    const float var = llc_block_sum(q, red) / (float)d;
    const float inv = 1.0f / sqrtf(var + eps);
    /* Every thread has read all it needs of xr before the last reduction's barrier: y may alias x. */
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
        float v = (xr[i] - mean) * inv * llc_load(w, wdt, i);
        if (b) v += llc_load(b, bdt, i);
        yr[i] = v;
    }
}

__global__ void __launch_bounds__(LLC_THREADS)
llc_rmsnorm_kernel(float *y, const float *x, const void *__restrict__ w, int wdt, int64_t d, float eps) {
    __shared__ float red[32];
    const int64_t r = blockIdx.x;
    const float *xr = x + r * d;
    float *yr = y + r * d;
    float q = 0.0f;
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) q += xr[i] * xr[i];
    const float inv = 1.0f / sqrtf(llc_block_sum(q, red) / (float)d + eps);
    for (int64_t i = threadIdx.x; i < d; i += blockDim.x) yr[i] = xr[i] * inv * llc_load(w, wdt, i);
}

ll_status llc_layernorm(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t T,
                        int64_t d, float eps) {
    const char *op = "layernorm";
    LLC_REQUIRE(be, op, y && x && w && w->data && T >= 0 && d > 0 && T <= INT32_MAX);
    LLC_REQUIRE(be, op, w->rows * w->cols == d && llc_dtype_valid(w->dtype));
    const int has_b = b && b->data;
    if (has_b) LLC_REQUIRE(be, op, b->rows * b->cols == d && llc_dtype_valid(b->dtype));
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_layernorm_kernel<<<(unsigned)T, LLC_THREADS, 0, c->stream>>>(y, x, w->data, (int)w->dtype,
                                                                     has_b ? b->data : NULL,
                                                                     has_b ? (int)b->dtype : 0, d, eps);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

ll_status llc_rmsnorm(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d, float eps) {
    const char *op = "rmsnorm";
    LLC_REQUIRE(be, op, y && x && w && w->data && T >= 0 && d > 0 && T <= INT32_MAX);
    LLC_REQUIRE(be, op, w->rows * w->cols == d && llc_dtype_valid(w->dtype));
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    llc_rmsnorm_kernel<<<(unsigned)T, LLC_THREADS, 0, c->stream>>>(y, x, w->data, (int)w->dtype, d, eps);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
