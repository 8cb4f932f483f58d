/* bench_lens.c: how much the CPU lens pass costs beyond its GEMM.
 *
 * Shape: GPT-2 small's unembedding (d 768, V 50257) on R lens rows (default 1024, one point of the
 * project's 13 x 1024 benchmark), top-10, every row with a target. Compared in the same run, alternated
 * A B A B (at least three pairs, medians quoted):
 *   A  gemm:  the same cblas_sgemm calls over the same tiles as lens_pass (row blocks x vocabulary
 *             tiles into one scratch tile), nothing else: the floor of the pass;
 *   B  pass:  lens_pass (GEMM + epilogue: max, count, top-k filter, polynomial-exp sums, merges).
 * The epilogue's share is (B - A) / B. On a shared, loaded machine wall times are noisy, so two
 * contention-proof figures come with them, both in thread CPU time on one thread (minimum of 5):
 *   C  epilogue alone: ll_cpu_lens_row_tile over all vocabulary tiles of 64 precomputed logit rows,
 *      in ns per logit;
 *   D  sgemm alone: one 512 x 4096 x 768 tile of the same GEMM, in ns per logit;
 * and the share they imply, C / (C + D), which is what B - A measures on an idle machine. The process
 * CPU time of A and B is printed too: time a runtime spends spinning between the OpenBLAS and OpenMP
 * phases shows up there.
 * Also timed once each: lens_target_logits, lens_expect on the first 1024 rows, lens_probs of 64 ids.
 * Usage: bench_lens [R] [threads] [pairs] [tile_rows] [tile_cols]; build with `make -C bench/cpu_ops`. */
#include "ll_backend.h"

#include "cpu_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double process_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double thread_cpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void check(ll_backend *be, ll_status st, const char *what) {
    if (st != LL_OK) {
        fprintf(stderr, "bench_lens: %s: %s\n", what, be->err.msg);
        exit(1);
    }
}

int main(int argc, char **argv) {
    const int64_t R = argc > 1 ? atoll(argv[1]) : 1024;
    const int threads = argc > 2 ? atoi(argv[2]) : 0;
    const int pairs = argc > 3 ? atoi(argv[3]) : 3;
    const int64_t tr = argc > 4 ? atoll(argv[4]) : LL_CPU_LENS_ROWS, tc = argc > 5 ? atoll(argv[5]) : LL_CPU_LENS_COLS;
    const int64_t d = 768, V = 50257;
    const int k = 10;
    if (R < 1 || pairs < 1 || pairs > 100) {
        fprintf(stderr, "usage: bench_lens [R >= 1] [threads] [pairs 1..100] [tile_rows] [tile_cols]\n");
        return 2;
    }
    ll_backend *be;
    ll_err err;
    ll_backend_opts opts = {threads, 0, 0};
    if (ll_backend_open("cpu", &opts, &be, &err) != LL_OK) {
        fprintf(stderr, "bench_lens: %s\n", err.msg);
        return 1;
    }
    check(be, ll_cpu_set_lens_tiles(be, tr, tc), "tiles");
    const ll_cpu_ctx *ctx = be->ctx;

    /* random data in the range of real models: unit-norm-ish rows, logits with sd ~3 */
    float *x = malloc((size_t)(R * d) * sizeof *x), *w = malloc((size_t)(V * d) * sizeof *w);
    int32_t *target = malloc((size_t)R * sizeof *target);
    if (!x || !w || !target) return 1;
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < R * d; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0) * 1.7f;
    }
    for (int64_t i = 0; i < V * d; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        w[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 2.0 - 1.0) * 0.19f;
    }
    for (int64_t r = 0; r < R; r++) target[r] = (int32_t)((r * 7919) % V);
    ll_wt wu;
    check(be, be->ops->upload_weight(be, w, LL_DTYPE_F32, V, d, &wu), "upload_weight");
    float *zt = malloc((size_t)R * 4), *lse = malloc((size_t)R * 4), *ent = malloc((size_t)R * 4),
          *probs = malloc((size_t)(R * k) * 4);
    int32_t *ids = malloc((size_t)(R * k) * 4), *rank = malloc((size_t)R * 4);
    float *tile = malloc((size_t)(ctx->lens_rows * ctx->lens_cols) * 4);
    if (!zt || !lse || !ent || !probs || !ids || !rank || !tile) return 1;

    double t0 = now();
    check(be, be->ops->lens_target_logits(be, zt, x, &wu, NULL, target, R, d), "lens_target_logits");
    double t_zt = now() - t0;

    ll_lens_pass_args a = {.x = x, .wu = &wu, .zt = zt, .target = target, .R = R, .d = d, .V = V, .k = k, .lse = lse,
                           .entropy = ent, .topk_ids = ids, .topk_probs = probs, .rank = rank};
    const double flop = 2.0 * (double)R * (double)V * (double)d;
    double ta[100], tb[100], ca[100], cb[100];
    const int64_t RB = R < ctx->lens_rows ? R : ctx->lens_rows, VT = ctx->lens_cols;
    check(be, be->ops->lens_pass(be, &a), "lens_pass (warm-up)");
    for (int p = 0; p < pairs; p++) {
        double c0 = process_cpu();
        t0 = now();
        for (int64_t v0 = 0; v0 < V; v0 += VT) {
            const int64_t nv = V - v0 < VT ? V - v0 : VT;
            for (int64_t r0 = 0; r0 < R; r0 += RB) {
                const int64_t rb = R - r0 < RB ? R - r0 : RB;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rb, (int)nv, (int)d, 1.0f, x + r0 * d, (int)d,
                            w + v0 * d, (int)d, 0.0f, tile, (int)VT);
            }
        }
        ta[p] = now() - t0;
        ca[p] = process_cpu() - c0;
        c0 = process_cpu();
        t0 = now();
        check(be, be->ops->lens_pass(be, &a), "lens_pass");
        tb[p] = now() - t0;
        cb[p] = process_cpu() - c0;
        printf("pair %d: gemm %.3f s (cpu %.3f s)  pass %.3f s (cpu %.3f s)\n", p + 1, ta[p], ca[p], tb[p], cb[p]);
    }
    double ma = median(ta, pairs), mb = median(tb, pairs), mca = median(ca, pairs), mcb = median(cb, pairs);

    /* C: the epilogue alone, one thread, over all vocabulary tiles of 64 rows of precomputed logits */
    openblas_set_num_threads(1);
    const int64_t RE = 64;
    float *zall = malloc((size_t)(RE * V) * 4); /* [RE, V] */
    ll_cpu_lens_row *st = malloc((size_t)RE * sizeof *st);
    int32_t *eids = malloc((size_t)(RE * k) * 4);
    float *evals = malloc((size_t)(RE * k) * 4);
    if (!zall || !st || !eids || !evals) return 1;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)RE, (int)V, (int)d, 1.0f, x, (int)d, w, (int)d, 0.0f, zall,
                (int)V);
    double tc_best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        for (int64_t r = 0; r < RE; r++) {
            st[r].lse = ll_lse_init();
            st[r].above = 0;
            st[r].ntop = 0;
        }
        double c0 = thread_cpu();
        for (int64_t v0 = 0; v0 < V; v0 += VT) {
            const int64_t nv = V - v0 < VT ? V - v0 : VT;
            for (int64_t r = 0; r < RE; r++)
                ll_cpu_lens_row_tile(zall + r * V + v0, nv, v0, zt[r], target[r], k, eids + r * k, evals + r * k, &st[r]);
        }
        double c1 = thread_cpu() - c0;
        if (c1 < tc_best) tc_best = c1;
    }
    const double epi_ns = tc_best / ((double)RE * (double)V) * 1e9;
    /* D: one GEMM tile alone, one thread */
    double td_best = 1e30;
    const int64_t gr = R < 512 ? R : 512, gc = 4096;
    float *gt = malloc((size_t)(gr * gc) * 4);
    if (!gt) return 1;
    for (int rep = 0; rep < 5; rep++) {
        double c0 = thread_cpu();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)gr, (int)gc, (int)d, 1.0f, x, (int)d, w, (int)d, 0.0f, gt,
                    (int)gc);
        double c1 = thread_cpu() - c0;
        if (c1 < td_best) td_best = c1;
    }
    const double gemm_ns = td_best / ((double)gr * (double)gc) * 1e9;
    openblas_set_num_threads(ctx->threads);
    free(zall), free(st), free(eids), free(evals), free(gt);

    const int64_t T = R < 1024 ? R : 1024;
    float *u = malloc((size_t)(T * d) * 4), *pb = malloc((size_t)T * 4);
    uint16_t *out = malloc((size_t)(R * 64) * 2);
    int32_t vsel[64];
    for (int j = 0; j < 64; j++) vsel[j] = (int32_t)((j * 785) % V);
    if (!u || !pb || !out) return 1;
    t0 = now();
    check(be, be->ops->lens_expect(be, u, pb, x, &wu, NULL, lse, T, d, V), "lens_expect");
    double t_exp = now() - t0;
    t0 = now();
    check(be, be->ops->lens_probs(be, out, x, &wu, NULL, lse, R, d, V, vsel, 64), "lens_probs");
    double t_probs = now() - t0;

    printf("\nbench_lens: R=%lld d=%lld V=%lld k=%d threads=%d tiles=%lldx%lld, %d pairs (medians)\n", (long long)R,
           (long long)d, (long long)V, k, ctx->threads, (long long)ctx->lens_rows, (long long)ctx->lens_cols, pairs);
    printf("  A gemm only      %8.3f s  %6.1f GFLOP/s\n", ma, flop / ma * 1e-9);
    printf("  B lens_pass      %8.3f s  %6.1f GFLOP/s (GEMM FLOPs)\n", mb, flop / mb * 1e-9);
    printf("  epilogue share   %8.1f %%  ((B - A) / B); %.2f ns per logit\n", 100.0 * (mb - ma) / mb,
           (mb - ma) / ((double)R * (double)V) * 1e9);
    printf("  process CPU time %8.3f s (A)  %.3f s (B): B - A = %.2f ns per logit of all threads' time\n", mca, mcb,
           (mcb - mca) / ((double)R * (double)V) * 1e9);
    printf("  C epilogue alone %8.3f ns per logit (1 thread, CPU time)\n", epi_ns);
    printf("  D sgemm alone    %8.3f ns per logit (1 thread, CPU time, %.1f GFLOP/s)\n", gemm_ns,
           2.0 * (double)d / gemm_ns);
    printf("  epilogue share   %8.1f %%  (C / (C + D), contention-free)\n", 100.0 * epi_ns / (epi_ns + gemm_ns));
    printf("  lens_target_logits %6.3f s   lens_expect (T=%lld) %6.3f s   lens_probs (64 ids) %6.3f s\n", t_zt,
           (long long)T, t_exp, t_probs);

    be->ops->free_weight(be, &wu);
    ll_backend_close(be);
    free(x), free(w), free(target), free(zt), free(lse), free(ent), free(probs), free(ids), free(rank), free(tile);
    free(u), free(pb), free(out);
    return 0;
}
