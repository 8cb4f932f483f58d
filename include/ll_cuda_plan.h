/* ll_cuda_plan.h: the CUDA backend's lens tiling and the scratch each of its ops requests, as plain C
 * shared by the kernels (kernels/cuda/lens.cu, lens_expect.cu, matmul.cu) and the host's memory planner
 * (host/memplan.c), so that the plan a run is checked against is exactly what the ops will allocate.
 *
 * The lens ops' tiling and scratch requests are in include/ll_cuda_tiling.h (built on these constants).
 * Scratch: every op carves its temporaries from one arena (kernels/cuda/backend.cu, llc_scratch) in pieces
 * aligned to 256 bytes; the arena keeps the largest request, so a run needs the largest of its ops'. */
#ifndef LL_CUDA_PLAN_H
#define LL_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#define LL_CUDA_ALIGN ((size_t)256)
#define LL_CUDA_LENS_VTILE_MAX 4096            /* widest vocabulary tile: 128 logits per lane of a warp */
#define LL_CUDA_LENS_BUDGET_DEFAULT ((size_t)256 << 20)
#define LL_CUDA_LENS_ROW_STATE 20              /* bytes of per-row lens state: m, S, U, count, n */
#define LL_CUDA_BLAS_WORKSPACE ((size_t)32 << 20)

static inline size_t ll_cuda_align(size_t n) { return (n + LL_CUDA_ALIGN - 1) / LL_CUDA_ALIGN * LL_CUDA_ALIGN; }

/* The lens tile budget in bytes: LL_CUDA_LENS_TILE_BYTES (a positive integer) or the default; >= 4096. */
static inline size_t ll_cuda_lens_budget(void) {
    const char *s = getenv("LL_CUDA_LENS_TILE_BYTES");
    size_t b = LL_CUDA_LENS_BUDGET_DEFAULT;
    if (s && s[0]) {
        char *end = NULL;
        unsigned long long v = strtoull(s, &end, 10);
        if (end && *end == 0 && v > 0) b = (size_t)v;
    }
    return b < 4096 ? 4096 : b;
}

/* matmul with 16-bit weights: x [T, K] rounded to the weight dtype. */
static inline size_t ll_cuda_matmul_scratch(int64_t T, int64_t K, int half) {
    return half ? (size_t)T * (size_t)K * 2 : 0;
}

#endif
