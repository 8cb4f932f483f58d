/* ll_cuda_tiling.h: how the CUDA lens ops cut their [R rows x V columns] logits into row blocks x vocabulary
 * tiles, and the scratch each lens op requests with that tiling. Plain C (no CUDA), so that the rule is
 * unit-tested on the CPU (tests/gpu/test_lens_tiling.c, run by `make test-gpu-harness`); lens.cu and
 * lens_expect.cu size and carve their scratch with these functions and check that the two agree.
 *
 * The rule (elements: B = budget / bytes_per_elem, the tile buffer's capacity, LL_CUDA_LENS_TILE_BYTES,
 * default 256 MiB; at most 2^31 - 1):
 *   1. A row block holds at most  min((2^31 - 1) / d, B / min(V, 1024))  rows: the x operand of a tile's GEMM
 *      (rows x d) and every tile buffer stay below 2^31 elements (cuBLAS's int dimensions and 32-bit
 *      offset arithmetic), and a tile can still be 1024 columns wide.
 *   2. Rows are split into the fewest blocks of at most that many rows, of equal size (ceil(R / blocks)).
 *      At the default budget rows are blocked when R > 65,536 (d <= 32,767); Llama-3-70B's
 *      81 points x 4096 tokens = 331,776 rows go in 6 blocks of 55,296.
 *   3. vtile = B / rblock, rounded down to a multiple of 128, within [128, 4096] and at most V.
 * Why: a tile's GEMM (rblock x vtile x d, 16-bit operands, fp32 output) does
 *   1 / (1/vtile + 1/rblock + 2/d) FLOP per byte. A 128-column tile of every row (the old rule: one row
 *   block up to 524,288 rows) does ~124 FLOP/B at d = 8192, below the ridge of an H200 (~790 TFLOP/s bf16 over
 *   ~4.3-4.8 TB/s: ~165-185 FLOP/B; memory-bound: every tile re-reads all of x), and its x operand passes 2^31 elements at 70B scale. At
 *   1024 columns and >= 32,768 rows a tile does >= 640 FLOP/B at d >= 4096 (~270 at GPT-2's d = 768,
 *   bounded there by the fp32 output): compute-bound. The cost of blocking rows is one more read of W_U
 *   per block (rblock FLOP per byte of W_U: negligible at >= 32,768 rows). Below the thresholds (one row
 *   block) the tiling is exactly the earlier one: vtile = B / R.
 *
 * The host's memory plan (host/engine/memplan.c) sizes the CUDA scratch with the same functions. */
#ifndef LL_CUDA_LENS_TILING_H
#define LL_CUDA_LENS_TILING_H

#include "ll_cuda_plan.h"

#include <stddef.h>
#include <stdint.h>

#define LL_CUDA_LENS_VTILE_MIN 1024                         /* narrowest tile rows are blocked for */
#define LL_CUDA_LENS_ELEMS_MAX ((int64_t)2147483647)        /* 2^31 - 1: largest GEMM operand, in elements */

/* Row block and vocabulary tile for R rows (R >= 1), V columns (V >= 1), model width d, bytes_per_elem
 * bytes of tile buffer per logit and a budget in bytes. Postconditions (tests/gpu/test_lens_tiling.c):
 * 1 <= rblock <= R; rblock x d <= 2^31 - 1 (for d <= 2^31 - 1); rblock x vtile x bytes_per_elem <= budget
 * when budget >= 128 x bytes_per_elem; vtile <= 4096, vtile <= V, a multiple of 128 or V; the blocks are
 * of equal size up to one row. */
static inline void ll_cuda_lens_tiles(int64_t R, int64_t V, int64_t d, size_t bytes_per_elem, size_t budget_bytes,
                                      int64_t *rblock, int64_t *vtile) {
    int64_t B = (int64_t)(budget_bytes / (bytes_per_elem ? bytes_per_elem : 1));
    if (B > LL_CUDA_LENS_ELEMS_MAX) B = LL_CUDA_LENS_ELEMS_MAX;
    if (B < 1) B = 1;
    if (R < 1) R = 1;
    if (V < 1) V = 1;
    const int64_t vmin = V < LL_CUDA_LENS_VTILE_MIN ? V : LL_CUDA_LENS_VTILE_MIN;
    int64_t cap = LL_CUDA_LENS_ELEMS_MAX / (d > 0 ? d : 1); /* rows x d < 2^31 */
    if (cap > B / vmin) cap = B / vmin;                     /* a vmin-column tile of the block fits */
    if (cap < 1) cap = 1;
    if (cap > R) cap = R;
    const int64_t blocks = (R + cap - 1) / cap;
    const int64_t rb = (R + blocks - 1) / blocks; /* <= cap */
    int64_t vt = B / rb;
    vt = vt / 128 * 128;
    if (vt < 128) vt = 128;
    if (vt > LL_CUDA_LENS_VTILE_MAX) vt = LL_CUDA_LENS_VTILE_MAX;
    if (vt > V) vt = V;
    *rblock = rb;
    *vtile = vt;
}

/* lens_pass over R rows of width d (x rounded to 16 bits when half), top-k k: x16, row state, the tile
 * buffer (which also carries the target check's result before the first GEMM), and for k > 32 the tile's
 * winners (values and ids). */
static inline size_t ll_cuda_lens_pass_need(int64_t R, int64_t d, int64_t V, int k, int half, size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiles(R, V, d, sizeof(float), budget, &rb, &vt);
    const int64_t wcap = k > 32 ? (k < vt ? k : vt) : 0;
    return ll_cuda_align(half ? (size_t)R * (size_t)d * 2 : 0) + ll_cuda_align((size_t)R * LL_CUDA_LENS_ROW_STATE) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) + 2 * ll_cuda_align((size_t)rb * (size_t)wcap * 4);
}

/* lens_expect over T final rows: the sums of p, x16, the tile (fp32 logits, and p as two 16-bit halves). */
static inline size_t ll_cuda_lens_expect_need(int64_t T, int64_t d, int64_t V, int half, size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiles(T, V, d, half ? sizeof(float) + 2 * sizeof(uint16_t) : sizeof(float), budget, &rb, &vt);
    return ll_cuda_align((size_t)T * sizeof(float)) + ll_cuda_align(half ? (size_t)T * (size_t)d * 2 : 0) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) +
           2 * ll_cuda_align(half ? (size_t)rb * (size_t)vt * sizeof(uint16_t) : 0);
}

/* lens_probs over R rows and nv selected ids (gathered rows of W_U, elem_size bytes each, when vsel). */
static inline size_t ll_cuda_lens_probs_need(int64_t R, int64_t d, int64_t nv, size_t elem_size, int vsel,
                                             size_t budget) {
    int64_t rb, vt;
    ll_cuda_lens_tiles(R, nv, d, sizeof(float), budget, &rb, &vt);
    return ll_cuda_align(elem_size != 4 ? (size_t)R * (size_t)d * 2 : 0) +
           ll_cuda_align((size_t)rb * (size_t)vt * sizeof(float)) +
           ll_cuda_align(vsel ? (size_t)vt * (size_t)d * elem_size : 0);
}

#endif
