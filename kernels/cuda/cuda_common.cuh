/* cuda_common.cuh: what every file of the CUDA backend shares.
 *
 * - llc_ctx: the backend's private context (device, stream, cuBLAS handle and workspace, the scratch
 *   arena that ops carve their temporaries from).
 * - Error macros: every CUDA and cuBLAS call goes through LLC_CUDA / LLC_CUBLAS, which fill be->err
 *   with "cuda OP: FILE:LINE: STATEMENT: REASON" and return LL_ERR_BACKEND; every launcher ends with
 *   LLC_LAUNCHED, which checks the launch and, when LL_CUDA_SYNC=1 is set in the environment,
 *   synchronizes the stream so that an asynchronous fault is reported by the op that caused it.
 * - Device helpers: loading a weight element of any stored dtype, rounding fp32 to a weight dtype,
 *   warp and block reductions.
 * - The entry points of each op family (embed.cu, norm.cu, matmul.cu, rope.cu, attention.cu, act.cu,
 *   lens.cu, lens_expect.cu); backend.cu puts them in the op table.
 *
 * Ops run asynchronously on ctx->stream, in order; upload() and download() synchronize (the host buffer
 * may be reused as soon as they return). Preconditions on arguments are checked on the host and
 * reported as LL_ERR_INTERNAL (a caller bug); data-dependent preconditions that only the device can see
 * (a token id out of range) produce NaN in the output instead, documented per kernel. */
#ifndef LLC_CUDA_COMMON_CUH
#define LLC_CUDA_COMMON_CUH

#include "ll_backend.h"
#include "ll_cuda_plan.h"
#include "ll_cuda_tiling.h"
#include "ll_math.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <stddef.h>
#include <stdint.h>

struct llc_ctx {
    int device;              /* CUDA device index */
    cudaStream_t stream;     /* every op is queued here, in order */
    cublasHandle_t blas;     /* bound to stream, with blas_ws as its workspace */
    void *blas_ws;           /* [blas_ws_bytes] cuBLAS workspace (fixed: results do not depend on it) */
    size_t blas_ws_bytes;
    void *scratch;           /* [scratch_bytes] arena for op temporaries, grown on demand */
    size_t scratch_bytes;
    int allow_tf32;          /* fp32-weight matmuls may use TF32 */
    int sync_each;           /* LL_CUDA_SYNC=1: synchronize after every launch (error attribution) */
    int num_sms;             /* multiprocessors, sizes grid-stride launches */
    size_t smem_optin;       /* largest dynamic shared memory a block may opt into */
    char name[256];          /* device name, for messages */
};

static inline llc_ctx *llc_get(ll_backend *be) { return (llc_ctx *)be->ctx; }

/* Formats be->err (one line) and returns status. */
ll_status llc_fail(ll_backend *be, ll_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
ll_status llc_fail_cuda(ll_backend *be, const char *op, const char *file, int line, const char *stmt,
                        cudaError_t e);
ll_status llc_fail_cublas(ll_backend *be, const char *op, const char *file, int line, const char *stmt,
                          cublasStatus_t s);
/* After a launch: cudaGetLastError(), then a stream synchronize when ctx->sync_each. */
ll_status llc_after_launch(ll_backend *be, const char *op, const char *file, int line);
/* Makes ctx->device current for this host thread. */
ll_status llc_enter(ll_backend *be, const char *op);
/* Returns the scratch arena, at least `bytes` long (grows it after draining the stream). The arena is
 * shared by all ops: a pointer into it is valid until the next call of llc_scratch. */
ll_status llc_scratch(ll_backend *be, const char *op, size_t bytes, void **out);

#define LLC_CUDA(be, op, stmt)                                                                         \
    do {                                                                                               \
        cudaError_t llc_e_ = (stmt);                                                                   \
        if (llc_e_ != cudaSuccess) return llc_fail_cuda((be), (op), __FILE__, __LINE__, #stmt, llc_e_); \
    } while (0)

#define LLC_CUBLAS(be, op, stmt)                                                                       \
    do {                                                                                               \
        cublasStatus_t llc_s_ = (stmt);                                                                \
        if (llc_s_ != CUBLAS_STATUS_SUCCESS)                                                           \
            return llc_fail_cublas((be), (op), __FILE__, __LINE__, #stmt, llc_s_);                     \
    } while (0)

#define LLC_LAUNCHED(be, op)                                                                           \
    do {                                                                                               \
        ll_status llc_st_ = llc_after_launch((be), (op), __FILE__, __LINE__);                          \
        if (llc_st_ != LL_OK) return llc_st_;                                                          \
    } while (0)

#define LLC_TRY(expr)                                                                                  \
    do {                                                                                               \
        ll_status llc_st_ = (expr);                                                                    \
        if (llc_st_ != LL_OK) return llc_st_;                                                          \
    } while (0)

/* Argument checks: a violated one is a caller bug (LL_ERR_INTERNAL), reported with the condition. */
#define LLC_REQUIRE(be, op, cond)                                                                      \
    do {                                                                                               \
        if (!(cond))                                                                                   \
            return llc_fail((be), LL_ERR_INTERNAL, "cuda %s: invalid arguments: '%s' does not hold (%s:%d)", \
                            (op), #cond, __FILE__, __LINE__);                                          \
    } while (0)

/* ---- scratch carving ------------------------------------------------------------------------------ */

#define LLC_ALIGN ((size_t)256)
static inline size_t llc_align_up(size_t n) { return (n + LLC_ALIGN - 1) / LLC_ALIGN * LLC_ALIGN; }
/* Hands out the next aligned piece of a scratch region (sizes were summed with llc_align_up). */
static inline void *llc_carve(char **cur, size_t bytes) {
    void *p = *cur;
    *cur += llc_align_up(bytes);
    return p;
}

/* ---- launch shapes -------------------------------------------------------------------------------- */

#define LLC_THREADS 256
/* Blocks for a grid-stride loop over n items: enough to fill the device, never more than needed. */
static inline unsigned llc_grid(const llc_ctx *c, int64_t n) {
    int64_t want = (n + LLC_THREADS - 1) / LLC_THREADS;
    int64_t cap = (int64_t)(c->num_sms > 0 ? c->num_sms : 80) * 32;
    if (want < 1) want = 1;
    return (unsigned)(want < cap ? want : cap);
}

static inline int llc_dtype_valid(ll_dtype t) {
    return t == LL_DTYPE_F32 || t == LL_DTYPE_F16 || t == LL_DTYPE_BF16;
}
/* The module needs no symbol of the executable (it is dlopened by it, and by the tests and benches). */
static inline size_t llc_dtype_size(ll_dtype t) { return t == LL_DTYPE_F32 ? 4 : 2; }
static inline const char *llc_dtype_name(ll_dtype t) {
    return t == LL_DTYPE_F32 ? "F32" : t == LL_DTYPE_F16 ? "F16" : t == LL_DTYPE_BF16 ? "BF16" : "?";
}

/* ---- device helpers ------------------------------------------------------------------------------- */

#ifdef __CUDACC__
/* Element i of a tensor stored as dt, widened to fp32 (exact for every dtype). */
__device__ __forceinline__ float llc_load(const void *p, int dt, int64_t i) {
    if (dt == LL_DTYPE_BF16) return ll_bf16_to_f32(((const uint16_t *)p)[i]);
    if (dt == LL_DTYPE_F16) return ll_f16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* v rounded to dtype dt and widened back (round to nearest even, as the GEMM operands are). */
__device__ __forceinline__ float llc_round(float v, int dt) {
    if (dt == LL_DTYPE_BF16) return ll_bf16_to_f32(ll_f32_to_bf16(v));
    if (dt == LL_DTYPE_F16) return ll_f16_to_f32(ll_f32_to_f16(v));
    return v;
}

__device__ __forceinline__ float llc_warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float llc_warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread. Fixed
 * reduction order: deterministic. Starts with a barrier, so consecutive calls may reuse `red`. */
__device__ __forceinline__ float llc_block_sum(float v, float *red /* [32] shared */) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = llc_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float t = lane < nw ? red[lane] : 0.0f;
    return llc_warp_sum(t);
}
#endif

/* ---- op entry points (one family per file) ---------------------------------------------------------- */

/* embed.cu */
ll_status llc_embed(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                    const int32_t *pos, int64_t T, int64_t d);
/* norm.cu */
ll_status llc_layernorm(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t T,
                        int64_t d, float eps);
ll_status llc_rmsnorm(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d,
                      float eps);
/* matmul.cu */
ll_status llc_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                     const ll_wt *bias, int64_t T, int64_t N, int64_t K);
/* C[m,n] (column-major, ldc) = op(A) op(B) + beta C with A and B stored as dt, C fp32, fp32 accumulate
 * (TF32 for dt == F32 only when tf32 != 0). Shared by matmul and the lens. */
ll_status llc_gemm(ll_backend *be, const char *op, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
                   int64_t n, int64_t k, const void *A, int64_t lda, const void *B, int64_t ldb, ll_dtype dt,
                   float *C, int64_t ldc, float beta, int tf32);
/* dst[n] (stored as dt) = src[n] rounded to nearest even. */
ll_status llc_cast_from_f32(ll_backend *be, const char *op, void *dst, ll_dtype dt, const float *src, int64_t n);
/* rope.cu */
ll_status llc_rope(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                   const ll_rope_params *p, const int32_t *pos);
/* attention.cu */
ll_status llc_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                        const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T);
/* act.cu */
ll_status llc_act(ll_backend *be, float *x, int64_t n, ll_act kind);
ll_status llc_swiglu(ll_backend *be, float *y, const float *gate, const float *up, int64_t n);
ll_status llc_add(ll_backend *be, float *y, const float *x, int64_t n);
/* lens.cu */
ll_status llc_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu, const ll_wt *bu,
                                 const int32_t *target, int64_t R, int64_t d);
ll_status llc_lens_pass(ll_backend *be, const ll_lens_pass_args *a);
/* lens_expect.cu */
ll_status llc_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu,
                          const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V);
ll_status llc_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                      const float *hf, const float *lse, int64_t R, int64_t T, int64_t d);
ll_status llc_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                         const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel, int64_t nv);

/* The lens tiling shared by lens.cu and lens_expect.cu: rows in blocks of rblock, vocabulary in tiles of
 * vtile columns (vtile <= LLC_LENS_VTILE_MAX), so that rblock x vtile x bytes_per_elem stays within the
 * tile budget (LL_CUDA_LENS_TILE_BYTES, default 256 MiB) and rblock x d below 2^31; the arithmetic is
 * ll_cuda_tiling.h's (ll_cuda_lens_tiles). */
#define LLC_LENS_THREADS 256      /* epilogue blocks: 8 warps, one row each */
#define LLC_LENS_VTILE_MAX LL_CUDA_LENS_VTILE_MAX
void llc_lens_plan(int64_t R, int64_t V, int64_t d, size_t bytes_per_elem, int64_t *rblock, int64_t *vtile);
size_t llc_lens_budget(void);

#endif
