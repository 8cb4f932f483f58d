/* bench_dequant.c: throughput of ll_gguf_dequant_f32 (host/model/gguf_dequant.c) per GGUF type, against
 * the memory system's floors measured in the same run.
 *
 * For each type, N elements (default 64M: a 256 MiB float32 output, far beyond the caches) are
 * dequantized from random blocks with finite, normal-range f16 scales (no subnormal slow paths, as in
 * real models). Each repeat times, in turn: memcpy of N float32 (the same output bytes written, at least
 * as many read), memset of the output (writing alone: the tighter floor, since every format reads fewer
 * bytes than memcpy does) and the dequantization; on 1 thread, then on all threads (memcpy and memset
 * split over the same threads in 64K-element chunks). Medians of R repeats (default 5) after one warm-up
 * of each (which also faults the pages in).
 *
 * Reported per type: median ms, output GB/s (4 N bytes / time), input GB/s (block bytes / time), the
 * floors' GB/s and the time as a multiple of the memcpy and of the memset time.
 *
 * Usage: gguf_dequant_bench [N] [R]; built and run by `make bench-gguf` (mk/gguf.mk), which then runs
 * the numpy peer (peer_numpy.py). Results: bench/README.md, "GGUF dequantization". */
#include "ll_gguf.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const struct {
    uint32_t type;
    const char *name;
    int64_t qk;         /* elements per block */
    size_t bytes;       /* bytes per block */
    int scale_off[2];   /* f16 scale fields in a block, -1 if none */
} types[] = {
    {LL_GGUF_T_F32, "F32", 1, 4, {-1, -1}},      {LL_GGUF_T_F16, "F16", 1, 2, {-1, -1}},
    {LL_GGUF_T_BF16, "BF16", 1, 2, {-1, -1}},    {LL_GGUF_T_Q8_0, "Q8_0", 32, 34, {0, -1}},
    {LL_GGUF_T_Q4_0, "Q4_0", 32, 18, {0, -1}},   {LL_GGUF_T_Q4_1, "Q4_1", 32, 20, {0, 2}},
    {LL_GGUF_T_Q5_0, "Q5_0", 32, 22, {0, -1}},   {LL_GGUF_T_Q5_1, "Q5_1", 32, 24, {0, 2}},
    {LL_GGUF_T_Q2_K, "Q2_K", 256, 84, {80, 82}}, {LL_GGUF_T_Q3_K, "Q3_K", 256, 110, {108, -1}},
    {LL_GGUF_T_Q4_K, "Q4_K", 256, 144, {0, 2}},  {LL_GGUF_T_Q5_K, "Q5_K", 256, 176, {0, 2}},
    {LL_GGUF_T_Q6_K, "Q6_K", 256, 210, {208, -1}},
};
#define N_TYPES (sizeof types / sizeof types[0])
#define CHUNK 65536

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
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

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng_next(void) {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

/* A random f16 of magnitude in [2^-10, 2^-4): typical block scales. */
static uint16_t random_scale(void) {
    const uint64_t r = rng_next();
    return (uint16_t)(((5 + r % 6) << 10) | ((r >> 8) & 0x3ff));
}

static void fill_blocks(size_t k, uint8_t *src, size_t len) {
    for (size_t i = 0; i < len; i += 8) {
        const uint64_t r = rng_next();
        memcpy(src + i, &r, len - i < 8 ? len - i : 8);
    }
    if (types[k].type == LL_GGUF_T_F16 || types[k].type == LL_GGUF_T_BF16) {
        for (size_t i = 0; i + 2 <= len; i += 2) { /* finite values: clear the exponent's top bit */
            uint16_t h;
            memcpy(&h, src + i, 2);
            h &= 0xbfff;
            memcpy(src + i, &h, 2);
        }
    } else if (types[k].type == LL_GGUF_T_F32) {
        for (size_t i = 0; i + 4 <= len; i += 4) {
            uint32_t u;
            memcpy(&u, src + i, 4);
            u &= 0xbfffffffu;
            memcpy(src + i, &u, 4);
        }
    }
    for (size_t b = 0; b + types[k].bytes <= len; b += types[k].bytes)
        for (int f = 0; f < 2; f++)
            if (types[k].scale_off[f] >= 0) {
                const uint16_t h = random_scale();
                memcpy(src + b + (size_t)types[k].scale_off[f], &h, 2);
            }
}

static void copy_parallel(float *dst, const float *src, int64_t n) {
    const int64_t nc = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t i0 = c * CHUNK, m = n - i0 < CHUNK ? n - i0 : CHUNK;
        memcpy(dst + i0, src + i0, (size_t)m * sizeof *dst);
    }
}

static void set_parallel(float *dst, int64_t n) {
    const int64_t nc = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nc; c++) {
        const int64_t i0 = c * CHUNK, m = n - i0 < CHUNK ? n - i0 : CHUNK;
        memset(dst + i0, (int)(c & 0x7f), (size_t)m * sizeof *dst);
    }
}

static void print_machine(void) {
    char model[256] = "unknown";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                const char *p = strchr(line, ':');
                if (p) {
                    snprintf(model, sizeof model, "%s", p + 2);
                    model[strcspn(model, "\n")] = 0;
                }
                break;
            }
        fclose(f);
    }
    printf("machine: %ld online CPUs, OpenMP max threads %d, CPU '%s', compiler %s\n",
           sysconf(_SC_NPROCESSORS_ONLN), omp_get_max_threads(), model, __VERSION__);
}

int main(int argc, char **argv) {
    const int64_t n = argc > 1 ? atoll(argv[1]) : (int64_t)64 << 20;
    const int reps = argc > 2 ? atoi(argv[2]) : 5;
    if (n < 256 || n % 256 || reps < 1 || reps > 100) {
        fprintf(stderr, "usage: gguf_dequant_bench [N, a multiple of 256] [repeats 1..100]\n");
        return 2;
    }
    print_machine();
    const int max_threads = omp_get_max_threads();
    float *dst = malloc((size_t)n * sizeof *dst), *ref = malloc((size_t)n * sizeof *ref);
    uint8_t *src = malloc((size_t)n * 4); /* the largest input: F32 */
    double *t_copy = malloc(sizeof(double) * (size_t)reps), *t_dq = malloc(sizeof(double) * (size_t)reps);
    double *t_set = malloc(sizeof(double) * (size_t)reps);
    if (!dst || !ref || !src || !t_copy || !t_dq || !t_set) {
        fprintf(stderr, "gguf_dequant_bench: out of memory for %lld elements\n", (long long)n);
        return 1;
    }
    fill_blocks(0, (uint8_t *)ref, (size_t)n * 4); /* random float32 */
    memset(dst, 0, (size_t)n * sizeof *dst);
    printf("N = %lld elements (output %.0f MiB), %d repeats, medians; floors: memcpy, memset of the output\n",
           (long long)n, (double)n * 4 / (1 << 20), reps);

    const int thread_counts[2] = {1, max_threads};
    for (int tc = 0; tc < (max_threads > 1 ? 2 : 1); tc++) {
        const int nt = thread_counts[tc];
        omp_set_num_threads(nt);
        printf("\n%d thread%s\n", nt, nt > 1 ? "s" : "");
        printf("%-5s %7s %7s %9s %8s %12s %12s %9s %9s\n", "type", "B/elem", "ms", "out GB/s", "in GB/s",
               "memcpy GB/s", "memset GB/s", "x memcpy", "x memset");
        for (size_t k = 0; k < N_TYPES; k++) {
            const size_t in_bytes = (size_t)(n / types[k].qk) * types[k].bytes;
            fill_blocks(k, src, in_bytes);
            copy_parallel(dst, ref, n); /* warm-up */
            set_parallel(dst, n);
            ll_gguf_dequant_f32(types[k].type, src, dst, n);
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                copy_parallel(dst, ref, n);
                t_copy[r] = now() - t0;
                t0 = now();
                set_parallel(dst, n);
                t_set[r] = now() - t0;
                t0 = now();
                ll_gguf_dequant_f32(types[k].type, src, dst, n);
                t_dq[r] = now() - t0;
            }
            const double c = median(t_copy, reps), w = median(t_set, reps), d = median(t_dq, reps);
            printf("%-5s %7.4f %7.1f %9.2f %8.2f %12.2f %12.2f %9.2f %9.2f\n", types[k].name,
                   (double)types[k].bytes / (double)types[k].qk, d * 1e3, (double)n * 4 / d * 1e-9,
                   (double)in_bytes / d * 1e-9, (double)n * 4 / c * 1e-9, (double)n * 4 / w * 1e-9, d / c,
                   d / w);
            fflush(stdout);
        }
    }
    free(dst);
    free(ref);
    free(src);
    free(t_copy);
    free(t_dq);
    free(t_set);
    return 0;
}
