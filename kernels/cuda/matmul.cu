/* matmul.cu: y = x W (+ bias) through cuBLAS, in the weight's stored dtype.
 *
 * Math: y[t, n] = sum_k x[t, k] W(k, n) + bias[n]; W(k, n) = w[n, k] for LL_WLAYOUT_OUT_IN (nn.Linear)
 *   and w[k, n] for LL_WLAYOUT_IN_OUT (GPT-2 Conv1D).
 * Layout: x [T, K], y [T, N] fp32 row-major; w as stored. cuBLAS is column-major, so we compute
 *   y^T = W^T x^T: a row-major [T, N] matrix is a column-major [N, T] one with ld N.
 * Precision: BF16/F16 weights: x is first rounded to the weight's dtype (round to nearest even) into
 *   scratch, then cublasGemmEx with 16-bit operands, fp32 accumulation and fp32 output. The CPU keeps
 *   fp32 activations, so the two differ by the rounding of x (relative ~2^-9 per product for BF16,
 *   ~2^-12 for F16); tests/gpu bounds it by dtype. F32 weights: fp32 GEMM, or TF32 when the backend was
 *   opened with allow_tf32. The bias (any dtype) is added by a separate elementwise kernel in fp32.
 * Launch: cast and bias kernels are grid-stride loops (256 threads, int64 indices, no shared memory);
 *   the GEMM is cuBLAS's choice (CUBLAS_GEMM_DEFAULT) with a fixed workspace.
 * Preconditions: T, N, K fit in int (cuBLAS's dimension type); w has N*K elements in the stated layout.
 * Determinism: yes: cuBLAS gives bitwise-identical results for the same shapes, device and workspace.
 * CPU reference: kernels/cpu (matmul); test: tests/gpu/test_backend_ops.c, "matmul". */
#include "cuda_common.cuh"

#include <limits.h>

static cudaDataType_t llc_cuda_type(ll_dtype dt) {
    switch (dt) {
    case LL_DTYPE_BF16: return CUDA_R_16BF;
    case LL_DTYPE_F16: return CUDA_R_16F;
    default: return CUDA_R_32F;
    }
}

ll_status llc_gemm(ll_backend *be, const char *op, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                   int64_t n, int64_t k, const void *A, int64_t lda, const void *B, int64_t ldb, ll_dtype dt,
                   float *C, int64_t ldc, float beta, int tf32) {
    LLC_REQUIRE(be, op, m > 0 && n > 0 && k > 0 && A && B && C);
    LLC_REQUIRE(be, op, m <= INT_MAX && n <= INT_MAX && k <= INT_MAX && lda <= INT_MAX && ldb <= INT_MAX &&
                            ldc <= INT_MAX);
    llc_ctx *c = llc_get(be);
    const float alpha = 1.0f;
    cublasComputeType_t ct = CUBLAS_COMPUTE_32F;
    if (dt == LL_DTYPE_F32 && tf32) ct = CUBLAS_COMPUTE_32F_FAST_TF32;
    const cudaDataType_t ab = llc_cuda_type(dt);
    LLC_CUBLAS(be, op, cublasGemmEx(c->blas, ta, tb, (int)m, (int)n, (int)k, &alpha, A, ab, (int)lda, B, ab,
                                    (int)ldb, &beta, C, CUDA_R_32F, (int)ldc, ct, CUBLAS_GEMM_DEFAULT));
    if (c->sync_each) LLC_CUDA(be, op, cudaStreamSynchronize(c->stream));
    return LL_OK;
}

__global__ void llc_cast_kernel(void *__restrict__ dst, int dt, const float *__restrict__ src, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = src[i];
        if (dt == LL_DTYPE_BF16) ((uint16_t *)dst)[i] = ll_f32_to_bf16(v);
        else if (dt == LL_DTYPE_F16) ((uint16_t *)dst)[i] = ll_f32_to_f16(v);
        else ((float *)dst)[i] = v;
    }
}

ll_status llc_cast_from_f32(ll_backend *be, const char *op, void *dst, ll_dtype dt, const float *src, int64_t n) {
    if (n <= 0) return LL_OK;
    llc_ctx *c = llc_get(be);
    llc_cast_kernel<<<llc_grid(c, n), LLC_THREADS, 0, c->stream>>>(dst, (int)dt, src, n);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}

/* y[t, n] += bias[n] over a [T, N] row-major matrix. */
__global__ void llc_bias_kernel(float *__restrict__ y, const void *__restrict__ b, int bdt, int64_t T, int64_t N) {
    int64_t total = T * N;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        y[i] += llc_load(b, bdt, i % N);
}

ll_status llc_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                     const ll_wt *bias, int64_t T, int64_t N, int64_t K) {
    const char *op = "matmul";
    LLC_REQUIRE(be, op, y && x && w && w->data && llc_dtype_valid(w->dtype) && T >= 0 && N > 0 && K > 0);
    LLC_REQUIRE(be, op, layout == LL_WLAYOUT_OUT_IN || layout == LL_WLAYOUT_IN_OUT);
    if (layout == LL_WLAYOUT_OUT_IN) LLC_REQUIRE(be, op, w->rows == N && w->cols == K);
    else LLC_REQUIRE(be, op, w->rows == K && w->cols == N);
    const int has_bias = bias && bias->data;
    if (has_bias) LLC_REQUIRE(be, op, bias->rows * bias->cols == N && llc_dtype_valid(bias->dtype));
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);

    const void *xb = x;
    if (w->dtype != LL_DTYPE_F32) {
        void *s = NULL;
        LLC_TRY(llc_scratch(be, op, ll_cuda_matmul_scratch(T, K, 1), &s));
        LLC_TRY(llc_cast_from_f32(be, op, s, w->dtype, x, T * K));
        xb = s;
    }
    if (layout == LL_WLAYOUT_OUT_IN) /* W col-major [K, N] ld K, transposed */
        LLC_TRY(llc_gemm(be, op, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, w->data, K, xb, K, w->dtype, y, N, 0.0f,
                         c->allow_tf32));
    else /* W col-major [N, K] ld N */
        LLC_TRY(llc_gemm(be, op, CUBLAS_OP_N, CUBLAS_OP_N, N, T, K, w->data, N, xb, K, w->dtype, y, N, 0.0f,
                         c->allow_tf32));
    if (has_bias) {
        llc_bias_kernel<<<llc_grid(c, T * N), LLC_THREADS, 0, c->stream>>>(y, bias->data, (int)bias->dtype, T, N);
        LLC_LAUNCHED(be, op);
    }
    return LL_OK;
}
