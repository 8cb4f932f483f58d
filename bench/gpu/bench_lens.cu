/* bench_lens.cu: the lens pass against a plain cuBLAS bf16 GEMM of the same shape, in the same run.
 *
 * usage: bench_lens MODULE.so [ROWS]      (ROWS default 65536 = 32 points x 2048 tokens)
 *   BENCH_LENS_TILES=256,64,32   lens tile budgets to time, in MiB (LL_CUDA_LENS_TILE_BYTES for each run;
 *                                default: 256 and 32, the default budget and one that fits in L2)
 *
 * For GPT-2 (d 768, V 50257), Llama-3-8B (d 4096, V 128256) and Llama-3-70B (d 8192, V 128256) shapes:
 *   - lens_pass through the CUDA backend's op table (k = 10, targets on every row), which computes
 *     M x V x d logits tile by tile and reduces them (LSE, entropy, top-k, rank) without storing them;
 *   - cublasGemmEx with the same M, N = V, K = d: bf16 operands, fp32 accumulation, bf16 output
 *     [V x M] fully materialized (the plain way, which a real run could not afford at scale).
 * Effective rate = 2 M V d / time for both; the ratio lens / GEMM is the figure of merit.
 * Random data (never zeros), generated on the device: x ~ U(-1.7, 1.7) (unit variance), W_U ~ scaled
 * uniform in bf16. Two warm-up runs, then the median of REPEATS timed runs.
 * Timing: the backend queues its work on a private stream, so the lens is timed by the host's steady
 * clock around the op followed by a device synchronize (each call lasts milliseconds: the clock's
 * error is far below 1%); the GEMM is timed the same way and, as a cross-check, with CUDA events on
 * its own stream. Every CUDA and cuBLAS call is checked (file:line, statement). */
#include "ll_backend.h"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#define CK_CUDA(stmt)                                                                                   \
    do {                                                                                                \
        cudaError_t e_ = (stmt);                                                                        \
        if (e_ != cudaSuccess) {                                                                        \
            fprintf(stderr, "bench_lens: %s:%d: %s: %s\n", __FILE__, __LINE__, #stmt, cudaGetErrorString(e_)); \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)
#define CK_BLAS(stmt)                                                                                   \
    do {                                                                                                \
        cublasStatus_t s_ = (stmt);                                                                     \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                              \
            fprintf(stderr, "bench_lens: %s:%d: %s: %s\n", __FILE__, __LINE__, #stmt, cublasGetStatusString(s_)); \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)
#define CK_LL(be, stmt)                                                                                 \
    do {                                                                                                \
        ll_status s_ = (stmt);                                                                          \
        if (s_ != LL_OK) {                                                                              \
            fprintf(stderr, "bench_lens: %s:%d: %s: %s\n", __FILE__, __LINE__, #stmt, (be)->err.msg);   \
            exit(1);                                                                                    \
        }                                                                                               \
    } while (0)

static const int WARMUP = 2, REPEATS = 7;

__device__ __forceinline__ float hash_unif(uint64_t i, uint64_t seed) { /* splitmix64 -> [-1, 1) */
    uint64_t z = i + seed * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
__global__ void fill_f32(float *p, int64_t n, float scale, uint64_t seed) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = scale * hash_unif((uint64_t)i, seed);
}
__global__ void fill_bf16(__nv_bfloat16 *p, int64_t n, float scale, uint64_t seed) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16_rn(scale * hash_unif((uint64_t)i, seed));
}
__global__ void to_bf16(__nv_bfloat16 *d, const float *s, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        d[i] = __float2bfloat16_rn(s[i]);
}
__global__ void fill_ids(int32_t *p, int64_t n, int32_t V, uint64_t seed) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        p[i] = (int32_t)((hash_unif((uint64_t)i, seed) + 1.0f) * 0.5f * (float)(V - 1));
}

static double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

struct shape {
    const char *name;
    int64_t d, V;
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_lens MODULE.so [ROWS]\n");
        return 2;
    }
    const int64_t M = argc > 2 ? atoll(argv[2]) : 32 * 2048;
    std::vector<long> tiles; /* MiB */
    {
        const char *t = getenv("BENCH_LENS_TILES");
        std::string list = t && *t ? t : "256,32";
        size_t pos = 0;
        while (pos <= list.size()) {
            size_t e = list.find(',', pos);
            if (e == std::string::npos) e = list.size();
            char *end = NULL;
            std::string item = list.substr(pos, e - pos);
            long v = strtol(item.c_str(), &end, 10);
            if (item.empty() || *end || v < 1 || v > (1L << 20)) {
                fprintf(stderr, "bench_lens: BENCH_LENS_TILES: '%s' is not a size in MiB (expected e.g. 256,64,32)\n",
                        item.c_str());
                return 2;
            }
            tiles.push_back(v);
            pos = e + 1;
        }
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "bench_lens: cannot load %s: %s\n", argv[1], dlerror());
        return 1;
    }
    ll_backend_init_fn init = (ll_backend_init_fn)dlsym(h, LL_CUDA_BACKEND_SYMBOL);
    if (!init) {
        fprintf(stderr, "bench_lens: %s has no symbol %s\n", argv[1], LL_CUDA_BACKEND_SYMBOL);
        return 1;
    }
    ll_backend be;
    memset(&be, 0, sizeof be);
    ll_backend_opts opts;
    memset(&opts, 0, sizeof opts);
    CK_LL(&be, init(&be, &opts));
    cudaDeviceProp prop;
    CK_CUDA(cudaGetDeviceProperties(&prop, 0));
    cublasHandle_t blas;
    CK_BLAS(cublasCreate(&blas));
    cudaStream_t st;
    CK_CUDA(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CK_BLAS(cublasSetStream(blas, st));
    cudaEvent_t e0, e1;
    CK_CUDA(cudaEventCreate(&e0));
    CK_CUDA(cudaEventCreate(&e1));
    printf("bench_lens: %s (%d SMs, L2 %.0f MiB), M = %lld rows, k = 10\n", prop.name, prop.multiProcessorCount,
           prop.l2CacheSize / 1048576.0, (long long)M);
    printf("%-12s %6s %7s %5s | %10s %9s | %10s %9s %9s | %6s\n", "shape", "d", "V", "tile", "lens ms", "TFLOP/s",
           "gemm ms", "TFLOP/s", "(events)", "ratio");

    const shape shapes[] = {{"gpt2", 768, 50257}, {"llama3-8b", 4096, 128256}, {"llama3-70b", 8192, 128256}};
    const int k = 10;
    for (const shape &s : shapes) {
        const int64_t d = s.d, V = s.V;
        const double flop = 2.0 * (double)M * (double)V * (double)d;
        size_t fr = 0, tot = 0;
        CK_LL(&be, be.ops->mem_info(&be, &fr, &tot));
        const double need = (double)M * d * 4 + (double)V * d * 2 + (double)M * d * 2 * 2 + (double)M * V * 2 +
                            (double)M * (k * 8 + 32) + 3e8;
        if (need > (double)fr) {
            printf("%-12s %6lld %7lld | skipped: needs ~%.1f GB, %.1f GB free (run with fewer ROWS)\n", s.name,
                   (long long)d, (long long)V, need / 1e9, fr / 1e9);
            continue;
        }
        /* inputs, backend memory */
        float *x, *zt, *lse, *ent, *probs;
        int32_t *tgt, *ids, *rank;
        void *wdata;
        CK_LL(&be, be.ops->alloc(&be, (size_t)(M * d) * 4, (void **)&x));
        CK_LL(&be, be.ops->alloc(&be, (size_t)(V * d) * 2, &wdata));
        CK_LL(&be, be.ops->alloc(&be, (size_t)M * 4, (void **)&zt));
        CK_LL(&be, be.ops->alloc(&be, (size_t)M * 4, (void **)&lse));
        CK_LL(&be, be.ops->alloc(&be, (size_t)M * 4, (void **)&ent));
        CK_LL(&be, be.ops->alloc(&be, (size_t)M * 4, (void **)&tgt));
        CK_LL(&be, be.ops->alloc(&be, (size_t)M * 4, (void **)&rank));
        CK_LL(&be, be.ops->alloc(&be, (size_t)(M * k) * 4, (void **)&ids));
        CK_LL(&be, be.ops->alloc(&be, (size_t)(M * k) * 4, (void **)&probs));
        CK_LL(&be, be.ops->sync(&be));
        fill_f32<<<1024, 256>>>(x, M * d, 1.7320508f, 1);
        CK_CUDA(cudaGetLastError());
        fill_bf16<<<1024, 256>>>((__nv_bfloat16 *)wdata, V * d, 2.5f * 1.7320508f / sqrtf((float)d), 2);
        CK_CUDA(cudaGetLastError());
        fill_ids<<<256, 256>>>(tgt, M, (int32_t)V, 3);
        CK_CUDA(cudaGetLastError());
        CK_CUDA(cudaDeviceSynchronize());
        ll_wt wu;
        wu.data = wdata;
        wu.dtype = LL_DTYPE_BF16;
        wu.rows = V;
        wu.cols = d;
        CK_LL(&be, be.ops->lens_target_logits(&be, zt, x, &wu, NULL, tgt, M, d));
        ll_lens_pass_args a;
        memset(&a, 0, sizeof a);
        a.x = x;
        a.wu = &wu;
        a.bu = NULL;
        a.zt = zt;
        a.target = tgt;
        a.R = M;
        a.d = d;
        a.V = V;
        a.k = k;
        a.lse = lse;
        a.entropy = ent;
        a.topk_ids = ids;
        a.topk_probs = probs;
        a.rank = rank;
        std::vector<double> ml(tiles.size()); /* median lens time per tile budget */
        for (size_t ti = 0; ti < tiles.size(); ti++) {
            char b[32];
            snprintf(b, sizeof b, "%ld", tiles[ti] << 20);
            setenv("LL_CUDA_LENS_TILE_BYTES", b, 1);
            std::vector<double> tl;
            for (int i = 0; i < WARMUP + REPEATS; i++) {
                CK_LL(&be, be.ops->sync(&be));
                double t0 = now_s();
                CK_LL(&be, be.ops->lens_pass(&be, &a));
                CK_LL(&be, be.ops->sync(&be));
                if (i >= WARMUP) tl.push_back(now_s() - t0);
            }
            ml[ti] = median(tl);
        }
        /* sanity: lse finite and entropy within [0, log V] on a sample row */
        float hl[2];
        CK_LL(&be, be.ops->download(&be, &hl[0], lse, 4));
        CK_LL(&be, be.ops->download(&be, &hl[1], ent, 4));
        if (!(hl[0] == hl[0]) || !(hl[1] >= 0.0f) || !(hl[1] <= logf((float)V) + 1e-3f)) {
            fprintf(stderr, "bench_lens: %s: implausible row 0: lse %g, entropy %g\n", s.name, hl[0], hl[1]);
            return 1;
        }
        /* the plain GEMM: C[V, M] (col-major) = W^T-op x^T, bf16 in and out, fp32 accumulate */
        __nv_bfloat16 *xb, *c;
        CK_CUDA(cudaMalloc(&xb, (size_t)(M * d) * 2));
        CK_CUDA(cudaMalloc(&c, (size_t)M * (size_t)V * 2));
        to_bf16<<<1024, 256, 0, st>>>(xb, x, M * d);
        CK_CUDA(cudaGetLastError());
        CK_CUDA(cudaStreamSynchronize(st));
        const float one = 1.0f, zero = 0.0f;
        std::vector<double> tg, te;
        for (int i = 0; i < WARMUP + REPEATS; i++) {
            CK_CUDA(cudaStreamSynchronize(st));
            double t0 = now_s();
            CK_CUDA(cudaEventRecord(e0, st));
            CK_BLAS(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)V, (int)M, (int)d, &one, wdata, CUDA_R_16BF,
                                 (int)d, xb, CUDA_R_16BF, (int)d, &zero, c, CUDA_R_16BF, (int)V, CUBLAS_COMPUTE_32F,
                                 CUBLAS_GEMM_DEFAULT));
            CK_CUDA(cudaEventRecord(e1, st));
            CK_CUDA(cudaStreamSynchronize(st));
            float ms = 0;
            CK_CUDA(cudaEventElapsedTime(&ms, e0, e1));
            if (i >= WARMUP) {
                tg.push_back(now_s() - t0);
                te.push_back(ms / 1e3);
            }
        }
        CK_CUDA(cudaFree(xb));
        CK_CUDA(cudaFree(c));
        const double mg = median(tg), me = median(te);
        for (size_t ti = 0; ti < tiles.size(); ti++)
            printf("%-12s %6lld %7lld %5ld | %10.2f %9.1f | %10.2f %9.1f %9.1f | %6.3f\n", s.name, (long long)d,
                   (long long)V, tiles[ti], ml[ti] * 1e3, flop / ml[ti] / 1e12, mg * 1e3, flop / mg / 1e12,
                   flop / me / 1e12, mg / ml[ti]);
        fflush(stdout);
        void *bufs[] = {x, wdata, zt, lse, ent, tgt, rank, ids, probs};
        for (void *p : bufs) be.ops->dealloc(&be, p);
    }
    printf("tile = lens tile budget in MiB; ratio = GEMM time / lens time (1.0: the lens costs exactly one plain "
           "GEMM of its shape)\n");
    CK_CUDA(cudaEventDestroy(e0));
    CK_CUDA(cudaEventDestroy(e1));
    CK_BLAS(cublasDestroy(blas));
    CK_CUDA(cudaStreamDestroy(st));
    be.ops->close(&be);
    return 0;
}
