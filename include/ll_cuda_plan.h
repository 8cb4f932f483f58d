/* ll_cuda_plan.h: the CUDA backend's lens tiling and the scratch each of its ops requests, as plain C
 * shared by the kernels (kernels/cuda/lens.cu, lens_expect.cu, matmul.cu) and the host's memory planner
 * (host/memplan.c), so that the plan a run is checked against is exactly what the ops will allocate.
 *
 * Tiling: the lens ops cut their [R rows x V columns] logits into row blocks x vocabulary tiles whose
 * buffer (rblock x vtile x bytes_per_elem) stays within a budget (LL_CUDA_LENS_TILE_BYTES, default
 * 256 MiB): vtile = min(4096, budget / R) rounded down to a multiple of 128 (at least 128, at most V),
 * rblock = budget / vtile (at least 1, at most R). The vocabulary is the inner loop; rows are blocked only
 * when a 128-column tile of all rows would not fit.
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

static inline void ll_cuda_lens_tiling(int64_t R, int64_t V, size_t bytes_per_elem, size_t budget_bytes,
                                       int64_t *rblock, int64_t *vtile) {
    const int64_t budget = (int64_t)(budget_bytes / bytes_per_elem); /* elements */
    int64_t vt = budget / (R > 0 ? R : 1);
    vt = vt / 128 * 128;
    if (vt < 128) vt = 128;
    if (vt > LL_CUDA_LENS_VTILE_MAX) vt = LL_CUDA_LENS_VTILE_MAX;
    if (vt > V) vt = V;
    int64_t rb = budget / (vt > 0 ? vt : 1);
    if (rb < 1) rb = 1;
    if (rb > R) rb = R;
    *rblock = rb;
    *vtile = vt;
}

/* lens_pass over R rows (x rounded to 16 bits when half), top-k k: x16, row state, the tile buffer, and
 * for k > 32 the tile's winners (values and ids). */
static inline size_t ll_cuda_lens_pass_scratch(int64_t R, int64_t d, int64_t V, int k, int half, size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiling(R, V, sizeof(float), budget, &rb, &vt);
    const int64_t wcap = k > 32 ? (k < vt ? k : vt) : 0;
    return ll_cuda_align(half ? (size_t)R * (size_t)d * 2 : 0) + ll_cuda_align((size_t)R * LL_CUDA_LENS_ROW_STATE) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) + 2 * ll_cuda_align((size_t)rb * (size_t)wcap * 4);
}

/* lens_expect over T final rows: the sums of p, x16, the tile (fp32 logits, and p as two 16-bit halves). */
static inline size_t ll_cuda_lens_expect_scratch(int64_t T, int64_t d, int64_t V, int half, size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiling(T, V, half ? sizeof(float) + 2 * sizeof(uint16_t) : sizeof(float), budget, &rb, &vt);
    return ll_cuda_align((size_t)T * sizeof(float)) + ll_cuda_align(half ? (size_t)T * (size_t)d * 2 : 0) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) +
           2 * ll_cuda_align(half ? (size_t)rb * (size_t)vt * sizeof(uint16_t) : 0);
}

/* lens_probs over R rows and nv selected ids (gathered rows of W_U, elem_size bytes each, when vsel). */
static inline size_t ll_cuda_lens_probs_scratch(int64_t R, int64_t d, int64_t nv, size_t elem_size, int vsel,
                                                size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiling(R, nv, sizeof(float), budget, &rb, &vt);
    return ll_cuda_align(elem_size != 4 ? (size_t)R * (size_t)d * 2 : 0) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) +
           ll_cuda_align(vsel ? (size_t)vt * (size_t)d * elem_size : 0);
}

/* matmul with 16-bit weights: x [T, K] rounded to the weight dtype. */
static inline size_t ll_cuda_matmul_scratch(int64_t T, int64_t K, int half) {
    return half ? (size_t)T * (size_t)K * 2 : 0;
}

#endif
