/* bench_attention.c: the CPU attention op on GPT-2 small's shape (one prompt of T tokens, 12 heads of
 * 64, fused [q|k|v] rows), against the FLOP count of causal attention (4 T(T+1)/2 head_dim per head:
 * q.k and p.v, multiply-add counted as 2). Five repeats, median quoted.
 * Usage: bench_attention [T] [threads]; build with `make -C bench/cpu_ops`. */
#include "ll_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    const int64_t T = argc > 1 ? atoll(argv[1]) : 1024;
    const int threads = argc > 2 ? atoi(argv[2]) : 0;
    const int nh = 12, hd = 64;
    const int64_t ld = 3 * (int64_t)nh * hd;
    if (T < 1) return 2;
    ll_backend *be;
    ll_err err;
    ll_backend_opts opts = {threads, 0, 0};
    if (ll_backend_open("cpu", &opts, &be, &err) != LL_OK) {
        fprintf(stderr, "bench_attention: %s\n", err.msg);
        return 1;
    }
    float *qkv = malloc((size_t)(T * ld) * sizeof *qkv), *out = malloc((size_t)(T * nh * hd) * sizeof *out);
    if (!qkv || !out) return 1;
    uint64_t s = 88172645463325252ull;
    for (int64_t i = 0; i < T * ld; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        qkv[i] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
    }
    ll_attn_layout L = {nh, nh, hd, ld, ld, ld, hd, hd, hd, 0.125f, 0};
    int64_t off[2] = {0, T};
    double t[5];
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
        if (be->ops->attention(be, out, qkv, qkv + nh * hd, qkv + 2 * nh * hd, &L, off, 1, T)) {
            fprintf(stderr, "bench_attention: %s\n", be->err.msg);
            return 1;
        }
        t[rep] = now() - t0;
    }
    qsort(t, 5, sizeof t[0], cmp_double);
    const double flop = 4.0 * nh * hd * (double)T * (double)(T + 1) / 2.0;
    printf("bench_attention: T=%lld heads=%d head_dim=%d fused qkv: median %.1f ms (min %.1f), %.1f GFLOP/s\n",
           (long long)T, nh, hd, t[2] * 1e3, t[0] * 1e3, flop / t[2] * 1e-9);
    ll_backend_close(be);
    free(qkv);
    free(out);
    return 0;
}
