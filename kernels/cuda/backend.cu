/* backend.cu: the CUDA backend's context, memory, weights and op table; the module's entry point
 * ll_backend_cuda_init (found by host/backend.c with dlsym in build/liblogitlens_cuda.so).
 *
 * Math: none; this file owns resources.
 * Memory: plain cudaMalloc (never managed memory), zero-filled on allocation. Weights keep the dtype
 *   they are stored in (BF16, F16, F32): the host converts nothing, the kernels widen on load.
 *   One scratch arena (grown on demand, freed at close) holds every op's temporaries; a fixed cuBLAS
 *   workspace keeps GEMM results independent of what else is allocated.
 * Ordering: every op is queued on one non-blocking stream. upload() and download() wait for the copy
 *   (the host buffer is the caller's again when they return); copy() and the compute ops do not;
 *   sync() waits for everything. LL_CUDA_SYNC=1 synchronizes after every launch, so that a fault is
 *   reported by the op that caused it (tests/gpu sets it).
 * Determinism: nothing here affects results; see each kernel file.
 * Launch shape, shared memory: none (the zero fill is cudaMemsetAsync).
 * CPU reference: kernels/cpu (the same op table); test: tests/gpu/test_backend_ops.c. */
#include "cuda_common.cuh"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ll_status llc_fail(ll_backend *be, ll_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(be->err.msg, sizeof be->err.msg, fmt, ap);
    va_end(ap);
    for (char *p = be->err.msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return status;
}

ll_status llc_fail_cuda(ll_backend *be, const char *op, const char *file, int line, const char *stmt,
                        cudaError_t e) {
    ll_status st = e == cudaErrorMemoryAllocation ? LL_ERR_NOMEM : LL_ERR_BACKEND;
    return llc_fail(be, st, "cuda %s: %s:%d: %s: %s (%s)", op, file, line, stmt, cudaGetErrorString(e),
                    cudaGetErrorName(e));
}

ll_status llc_fail_cublas(ll_backend *be, const char *op, const char *file, int line, const char *stmt,
                          cublasStatus_t s) {
    ll_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? LL_ERR_NOMEM : LL_ERR_BACKEND;
    return llc_fail(be, st, "cuda %s: %s:%d: %s: %s", op, file, line, stmt, cublasGetStatusString(s));
}

ll_status llc_after_launch(ll_backend *be, const char *op, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return llc_fail_cuda(be, op, file, line, "kernel launch", e);
    llc_ctx *c = llc_get(be);
    if (c->sync_each) {
        e = cudaStreamSynchronize(c->stream);
        if (e != cudaSuccess) return llc_fail_cuda(be, op, file, line, "kernel execution (LL_CUDA_SYNC=1)", e);
    }
    return LL_OK;
}

ll_status llc_enter(ll_backend *be, const char *op) {
    LLC_CUDA(be, op, cudaSetDevice(llc_get(be)->device));
    return LL_OK;
}

ll_status llc_scratch(ll_backend *be, const char *op, size_t bytes, void **out) {
    llc_ctx *c = llc_get(be);
    if (bytes < LLC_ALIGN) bytes = LLC_ALIGN;
    if (c->scratch_bytes < bytes) {
        /* The stream may still read the old arena. */
        LLC_CUDA(be, op, cudaStreamSynchronize(c->stream));
        if (c->scratch) LLC_CUDA(be, op, cudaFree(c->scratch));
        c->scratch = NULL;
        c->scratch_bytes = 0;
        size_t grow = bytes + bytes / 4; /* fewer regrowths when sizes creep up batch by batch */
        if (grow < bytes) grow = bytes;
        cudaError_t e = cudaMalloc(&c->scratch, grow);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            c->scratch = NULL;
            e = cudaMalloc(&c->scratch, bytes);
            if (e != cudaSuccess) {
                (void)cudaGetLastError();
                c->scratch = NULL;
                return llc_fail(be, LL_ERR_NOMEM, "cuda %s: cannot allocate %zu bytes of scratch on %s: %s", op,
                                bytes, c->name, cudaGetErrorString(e));
            }
            grow = bytes;
        }
        c->scratch_bytes = grow;
    }
    *out = c->scratch;
    return LL_OK;
}

/* ---- memory --------------------------------------------------------------------------------------- */

static ll_status cuda_alloc(ll_backend *be, size_t bytes, void **out) {
    llc_ctx *c = llc_get(be);
    LLC_TRY(llc_enter(be, "alloc"));
    size_t n = bytes ? bytes : 1;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t fr = 0, tot = 0;
        (void)cudaMemGetInfo(&fr, &tot);
        return llc_fail(be, LL_ERR_NOMEM, "cuda alloc: cannot allocate %zu bytes on %s (%zu of %zu bytes free): %s",
                        bytes, c->name, fr, tot, cudaGetErrorString(e));
    }
    e = cudaMemsetAsync(p, 0, n, c->stream);
    if (e != cudaSuccess) {
        cudaFree(p);
        return llc_fail_cuda(be, "alloc", __FILE__, __LINE__, "cudaMemsetAsync(p, 0, n, c->stream)", e);
    }
    *out = p;
    return LL_OK;
}

static void cuda_dealloc(ll_backend *be, void *p) {
    if (!p) return;
    llc_ctx *c = llc_get(be);
    (void)cudaSetDevice(c->device);
    (void)cudaStreamSynchronize(c->stream); /* queued ops may still use p */
    (void)cudaFree(p);
}

static ll_status cuda_upload(ll_backend *be, void *dst, const void *host_src, size_t bytes) {
    llc_ctx *c = llc_get(be);
    if (bytes == 0) return LL_OK;
    LLC_REQUIRE(be, "upload", dst && host_src);
    LLC_TRY(llc_enter(be, "upload"));
    LLC_CUDA(be, "upload", cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->stream));
    LLC_CUDA(be, "upload", cudaStreamSynchronize(c->stream));
    return LL_OK;
}

static ll_status cuda_download(ll_backend *be, void *host_dst, const void *src, size_t bytes) {
    llc_ctx *c = llc_get(be);
    if (bytes == 0) return LL_OK;
    LLC_REQUIRE(be, "download", host_dst && src);
    LLC_TRY(llc_enter(be, "download"));
    LLC_CUDA(be, "download", cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    LLC_CUDA(be, "download", cudaStreamSynchronize(c->stream));
    return LL_OK;
}

static ll_status cuda_copy(ll_backend *be, void *dst, const void *src, size_t bytes) {
    llc_ctx *c = llc_get(be);
    if (bytes == 0) return LL_OK;
    LLC_REQUIRE(be, "copy", dst && src);
    LLC_TRY(llc_enter(be, "copy"));
    LLC_CUDA(be, "copy", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
    if (c->sync_each) LLC_CUDA(be, "copy", cudaStreamSynchronize(c->stream));
    return LL_OK;
}

static ll_status cuda_sync(ll_backend *be) {
    LLC_TRY(llc_enter(be, "sync"));
    LLC_CUDA(be, "sync", cudaStreamSynchronize(llc_get(be)->stream));
    return LL_OK;
}

static ll_status cuda_mem_info(ll_backend *be, size_t *free_bytes, size_t *total_bytes) {
    LLC_TRY(llc_enter(be, "mem_info"));
    size_t fr = 0, tot = 0;
    LLC_CUDA(be, "mem_info", cudaMemGetInfo(&fr, &tot));
    if (free_bytes) *free_bytes = fr;
    if (total_bytes) *total_bytes = tot;
    return LL_OK;
}

static ll_status cuda_upload_weight(ll_backend *be, const void *host_src, ll_dtype src_dtype, int64_t rows,
                                    int64_t cols, ll_wt *out) {
    LLC_REQUIRE(be, "upload_weight", out && host_src && rows > 0 && cols > 0 && llc_dtype_valid(src_dtype));
    size_t n, bytes;
    if (ll_mul_size((size_t)rows, (size_t)cols, &n) || ll_mul_size(n, llc_dtype_size(src_dtype), &bytes))
        return llc_fail(be, LL_ERR_INPUT, "cuda upload_weight: tensor [%lld, %lld] of %s is too large",
                        (long long)rows, (long long)cols, llc_dtype_name(src_dtype));
    void *p = NULL;
    LLC_TRY(cuda_alloc(be, bytes, &p));
    ll_status st = cuda_upload(be, p, host_src, bytes);
    if (st != LL_OK) {
        cuda_dealloc(be, p);
        return st;
    }
    out->data = p;
    out->dtype = src_dtype;
    out->rows = rows;
    out->cols = cols;
    return LL_OK;
}

static void cuda_free_weight(ll_backend *be, ll_wt *w) {
    if (!w) return;
    cuda_dealloc(be, w->data);
    w->data = NULL;
}

/* ---- lifetime ------------------------------------------------------------------------------------- */

static void ctx_free(llc_ctx *c) {
    if (!c) return;
    (void)cudaSetDevice(c->device);
    if (c->stream) (void)cudaStreamSynchronize(c->stream);
    if (c->blas) (void)cublasDestroy(c->blas);
    if (c->blas_ws) (void)cudaFree(c->blas_ws);
    if (c->scratch) (void)cudaFree(c->scratch);
    if (c->stream) (void)cudaStreamDestroy(c->stream);
    (void)cudaGetLastError(); /* failures ignored here must not be reported by a later launch check */
    free(c);
}

static void cuda_close(ll_backend *be) {
    ctx_free(llc_get(be));
    be->ctx = NULL;
}

static ll_backend_ops g_ops;

static void ops_fill(ll_backend_ops *o) {
    memset(o, 0, sizeof *o);
    o->name = "cuda";
    o->close = cuda_close;
    o->alloc = cuda_alloc;
    o->dealloc = cuda_dealloc;
    o->upload = cuda_upload;
    o->download = cuda_download;
    o->copy = cuda_copy;
    o->sync = cuda_sync;
    o->mem_info = cuda_mem_info;
    o->upload_weight = cuda_upload_weight;
    o->free_weight = cuda_free_weight;
    o->embed = llc_embed;
    o->layernorm = llc_layernorm;
    o->rmsnorm = llc_rmsnorm;
    o->matmul = llc_matmul;
    o->rope = llc_rope;
    o->attention = llc_attention;
    o->act = llc_act;
    o->swiglu = llc_swiglu;
    o->add = llc_add;
    o->lens_target_logits = llc_lens_target_logits;
    o->lens_pass = llc_lens_pass;
    o->lens_expect = llc_lens_expect;
    o->lens_kl = llc_lens_kl;
    o->lens_probs = llc_lens_probs;
}

/* Goes through one exit label so that a failure half way frees what was made. */
static ll_status ctx_init(ll_backend *be, llc_ctx *c, const ll_backend_opts *opts) {
    const char *op = "init";
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return llc_fail(be, LL_ERR_BACKEND, "cuda: no CUDA device found (cudaGetDeviceCount: %s)",
                        cudaGetErrorString(e));
    }
    if (count <= 0) return llc_fail(be, LL_ERR_BACKEND, "cuda: no CUDA device found (cudaGetDeviceCount: 0 devices)");
    c->device = opts ? opts->device : 0;
    if (c->device < 0 || c->device >= count)
        return llc_fail(be, LL_ERR_BACKEND, "cuda: device %d requested, but only %d CUDA device%s found", c->device,
                        count, count == 1 ? "" : "s");
    LLC_CUDA(be, op, cudaSetDevice(c->device));
    cudaDeviceProp prop;
    LLC_CUDA(be, op, cudaGetDeviceProperties(&prop, c->device));
    snprintf(c->name, sizeof c->name, "device %d (%.200s, sm_%d%d)", c->device, prop.name, prop.major, prop.minor);
    if (prop.major < 8)
        return llc_fail(be, LL_ERR_BACKEND, "cuda: %s is not supported: the module is built for sm_80 and sm_90 "
                        "(bf16 tensor cores)", c->name);
    c->num_sms = prop.multiProcessorCount;
    c->smem_optin = prop.sharedMemPerBlockOptin;
    c->allow_tf32 = opts ? opts->allow_tf32 : 0;
    const char *s = getenv("LL_CUDA_SYNC");
    c->sync_each = s && s[0] && strcmp(s, "0") != 0;
    LLC_CUDA(be, op, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    LLC_CUBLAS(be, op, cublasCreate(&c->blas));
    LLC_CUBLAS(be, op, cublasSetStream(c->blas, c->stream));
    /* fp32 GEMMs are plain fp32 unless a call asks for TF32 through its compute type. */
    LLC_CUBLAS(be, op, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
    c->blas_ws_bytes = LL_CUDA_BLAS_WORKSPACE;
    LLC_CUDA(be, op, cudaMalloc(&c->blas_ws, c->blas_ws_bytes));
    LLC_CUBLAS(be, op, cublasSetWorkspace(c->blas, c->blas_ws, c->blas_ws_bytes));
    return LL_OK;
}

extern "C" __attribute__((visibility("default"))) ll_status ll_backend_cuda_init(ll_backend *be,
                                                                                  const ll_backend_opts *opts) {
    if (!be) return LL_ERR_INTERNAL;
    be->ops = NULL;
    be->ctx = NULL;
    llc_ctx *c = (llc_ctx *)calloc(1, sizeof *c);
    if (!c) return llc_fail(be, LL_ERR_NOMEM, "cuda: cannot allocate the backend context");
    be->ctx = c;
    ll_status st = ctx_init(be, c, opts);
    if (st != LL_OK) goto fail;
    ops_fill(&g_ops);
    be->ops = &g_ops;
    return LL_OK;
fail:
    ctx_free(c);
    be->ctx = NULL;
    return st == LL_ERR_NOMEM ? st : LL_ERR_BACKEND;
}
