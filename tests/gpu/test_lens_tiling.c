/* test_lens_tiling.c: the CUDA lens tiling rule (include/ll_cuda_tiling.h, ll_cuda_lens_tiles) on the CPU.
 *
 * 1. Llama-3-70B at scale: 81 points x 4096 tokens = 331,776 rows of d = 8192 over V = 128,256 at the
 *    default budget: the row block's x operand stays below 2^31 elements (the rule before this one put all
 *    rows in one block: 2.7e9 elements), the tile buffer within the budget, the tiles at least 1024
 *    columns and every tile's GEMM compute-bound (>= 400 FLOP per byte: twice an H200's ridge), for
 *    lens_pass (4 bytes per logit) and lens_expect (8 bytes with the 16-bit halves of p).
 * 2. 20,000 random shapes and budgets: the postconditions stated in ll_cuda_tiling.h, blocks of equal size,
 *    rows blocked only past the cap, and below it exactly the tiling of include/ll_cuda_plan.h (the host's
 *    memory plan), which the rule keeps there.
 * 3. The scratch a lens_pass of the 70B shape requests (ll_cuda_lens_pass_need), by hand.
 * Exit status 1 on any failure; one line per failure, then a summary. Built and run by `make test-gpu-harness`. */
#include "ll_cuda_tiling.h"

#include <stdio.h>

static int failures;

#define EXPECT(cond, ...)                                                                                  \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            failures++;                                                                                    \
            printf("FAIL  test_lens_tiling: ");                                                            \
            printf(__VA_ARGS__);                                                                           \
            printf("\n");                                                                                  \
        }                                                                                                  \
    } while (0)

/* FLOP per byte of one tile's GEMM: rb x vt x d with 16-bit x and W_U, fp32 output. */
static double tile_intensity(int64_t rb, int64_t vt, int64_t d) {
    return 1.0 / (1.0 / (double)vt + 1.0 / (double)rb + 2.0 / (double)d);
}

/* The tiling rule before the row cap (no cap on rows x d; rows blocked only when a 128-column tile of all
 * rows would not fit), kept here to show what the cap changes and that one-block tilings are unchanged. */
static void old_rule_tiling(int64_t R, int64_t V, size_t bytes_per_elem, size_t budget_bytes,
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


static void test_70b(void) {
    const int64_t R = 81 * 4096, d = 8192, V = 128256;
    const size_t budget = LL_CUDA_LENS_BUDGET_DEFAULT;
    for (int half = 0; half < 2; half++) {
        const size_t bpe = half ? 8 : 4; /* lens_pass; lens_expect with 16-bit W_U */
        int64_t rb, vt;
        ll_cuda_lens_tiles(R, V, d, bpe, budget, &rb, &vt);
        const int64_t blocks = (R + rb - 1) / rb;
        const double ai = tile_intensity(rb, vt, d);
        printf("70B, %zu bytes per logit: %lld rows in %lld blocks of %lld (x operand %lld elements), tiles of %lld "
               "columns, %.0f FLOP/B per tile\n",
               bpe, (long long)R, (long long)blocks, (long long)rb, (long long)(rb * d), (long long)vt, ai);
        EXPECT(rb * d < ((int64_t)1 << 31), "70B: row block of %lld rows x d %lld = %lld elements >= 2^31", (long long)rb,
               (long long)d, (long long)(rb * d));
        EXPECT((size_t)rb * (size_t)vt * bpe <= budget, "70B: tile %lld x %lld x %zu bytes over the budget %zu",
               (long long)rb, (long long)vt, bpe, budget);
        EXPECT(vt >= (half ? 512 : 1024) && vt % 128 == 0, "70B: vocabulary tile of %lld columns", (long long)vt);
        EXPECT(ai >= 400, "70B: a tile's GEMM does %.0f FLOP per byte (< 400: memory-bound on an H200)", ai);
        EXPECT(blocks * rb - R < blocks, "70B: blocks of %lld rows for %lld rows are not of equal size", (long long)rb,
               (long long)R);
    }
    int64_t rb, vt;
    ll_cuda_lens_tiles(R, V, d, 4, budget, &rb, &vt);
    EXPECT(rb == 55296 && vt == 1152, "70B lens_pass tiling %lld x %lld, expected 6 blocks of 55296 rows x 1152 columns",
           (long long)rb, (long long)vt);
    /* x16 [R, d], the row state, the tile, no winners for k = 10 */
    const size_t want = (size_t)R * (size_t)d * 2 + ll_cuda_align((size_t)R * LL_CUDA_LENS_ROW_STATE) +
                        ll_cuda_align((size_t)55296 * 1152 * 4);
    EXPECT(ll_cuda_lens_pass_need(R, d, V, 10, 1, budget) == want, "70B lens_pass scratch %zu, expected %zu",
           ll_cuda_lens_pass_need(R, d, V, 10, 1, budget), want);
    /* the rule before this one: for the record */
    int64_t orb, ovt;
    old_rule_tiling(R, V, 4, budget, &orb, &ovt);
    printf("70B under the earlier rule: one block of %lld rows (x operand %lld elements, %s 2^31), "
           "tiles of %lld columns, %.0f FLOP/B per tile\n",
           (long long)orb, (long long)(orb * d), orb * d >= ((int64_t)1 << 31) ? ">=" : "<", (long long)ovt,
           tile_intensity(orb, ovt, d));
}

static void test_random(void) {
    uint64_t s = 0x5eed1e55ull;
    for (int it = 0; it < 20000; it++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        const int64_t R = 1 + (int64_t)((s >> 33) % 600000);
        const int64_t V = 1 + (int64_t)((s >> 13) % 200000);
        const int64_t d = 1 + (int64_t)((s >> 40) % ((s & 2) ? 70000 : 9000));
        const size_t bpe = (s & 1) ? 4 : 8;
        const size_t budget = (size_t)4096 << ((s >> 3) % 20); /* 4 KiB .. 2 GiB */
        int64_t rb, vt;
        ll_cuda_lens_tiles(R, V, d, bpe, budget, &rb, &vt);
        char where[160];
        snprintf(where, sizeof where, "R=%lld V=%lld d=%lld bpe=%zu budget=%zu: rblock %lld, vtile %lld", (long long)R,
                 (long long)V, (long long)d, bpe, budget, (long long)rb, (long long)vt);
        EXPECT(rb >= 1 && rb <= R, "%s: rblock out of [1, R]", where);
        EXPECT(rb * d <= LL_CUDA_LENS_ELEMS_MAX, "%s: rblock x d >= 2^31", where);
        EXPECT(vt >= 1 && vt <= LL_CUDA_LENS_VTILE_MAX && vt <= V && (vt % 128 == 0 || vt == V), "%s: vtile", where);
        EXPECT((size_t)rb * (size_t)vt * bpe <= budget, "%s: tile over the budget", where);
        const int64_t blocks = (R + rb - 1) / rb;
        EXPECT(blocks * rb - R < blocks, "%s: blocks not of equal size", where);
        /* the cap: rows x d < 2^31, and a min(V, 1024)-column tile of the block fits */
        const int64_t vmin = V < LL_CUDA_LENS_VTILE_MIN ? V : LL_CUDA_LENS_VTILE_MIN;
        int64_t cap = LL_CUDA_LENS_ELEMS_MAX / d;
        const int64_t bcap = (int64_t)(budget / bpe) / vmin;
        if (cap > bcap) cap = bcap;
        if (cap < 1) cap = 1;
        EXPECT((R <= cap) == (rb == R), "%s: rows blocked %s the cap %lld", where, R <= cap ? "below" : "beyond",
               (long long)cap);
        if (R <= cap && (size_t)R * 128 * bpe <= budget) { /* one block: the same tiles as the earlier rule */
            int64_t orb, ovt;
            old_rule_tiling(R, V, bpe, budget, &orb, &ovt);
            EXPECT(orb == rb && ovt == vt, "%s: one block, but the earlier rule gives %lld x %lld", where,
                   (long long)orb, (long long)ovt);
        }
        /* rows blocked for tiles of at least min(V, 1024) columns (floor to 128 below V) */
        if (rb < R && (int64_t)(budget / bpe) >= vmin)
            EXPECT(vt >= (vmin / 128 * 128 > 0 ? vmin / 128 * 128 : vmin), "%s: blocked rows but a narrow tile", where);
    }
}

int main(void) {
    test_70b();
    test_random();
    if (failures) {
        printf("test_lens_tiling: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_lens_tiling: all passed\n");
    return 0;
}
