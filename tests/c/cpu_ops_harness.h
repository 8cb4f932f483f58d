/* cpu_ops_harness.h: what the backend op tests (test_cpu_ops.c: memory, forward ops, error paths;
 * test_cpu_lens.c: the lens ops) share: the tolerance table with its reasons, the device-buffer harness
 * (poisoned outputs, guard elements, one report line per case) and the random inputs. Define
 * HARNESS_NAME (the program's name, for messages) before including it; include it once per program. */
#ifndef CPU_OPS_HARNESS_H
#define CPU_OPS_HARNESS_H
#include "ll_backend.h"
#include "ll_math.h"

#include "../../kernels/cpu/cpu_exp.h"
#include "../../kernels/cpu/cpu_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- tolerances: one table, each with its reason ----------------------------------------------- */

typedef enum metric {
    METRIC_NORM, /* max |got - ref| / max |ref| over the output */
    METRIC_ABS,  /* max |got - ref| */
    METRIC_F16,  /* |got - ref| <= tol + 2^-11 |ref|: float16 rounding (half an ulp) on top of tol */
} metric;

typedef struct tol_entry {
    const char *op;
    metric m;
    double tol;
    int logit_floor; /* 1: the bound is at least LOGIT_ULPS ulps of the case's largest |logit| (float32
                        logits are rounded to that and LSE/KL are differences of logit-sized terms) */
    const char *why;
} tol_entry;

#define LOGIT_ULPS 4.0

static const tol_entry TOLS[] = {
    {"exp_neg", METRIC_ABS, 1e-7, 0, "relative error bound of the polynomial exp (cpu_exp.h), measured as |e/exp - 1|"},
    {"embed", METRIC_ABS, 0.0, 0, "a copy plus one float add, which is correctly rounded: exact"},
    {"layernorm", METRIC_NORM, 1e-6, 0, "double statistics, one rounding of the output: a few float ulps"},
    {"rmsnorm", METRIC_NORM, 1e-6, 0, "double statistics, one rounding of the output: a few float ulps"},
    {"matmul", METRIC_NORM, 1e-5, 0, "float32 sgemm accumulation over K <= 300 terms: ~sqrt(K) ulps of the largest output"},
    {"rope", METRIC_NORM, 1e-6, 0, "angle, cos, sin and rotation in double, rounded once"},
    {"attention", METRIC_NORM, 1e-5, 0, "float dot products and float weighted sum of up to 300 v rows"},
    {"gelu_tanh", METRIC_NORM, 1e-6, 0, "tanhf per element: about one float ulp"},
    {"gelu_erf", METRIC_NORM, 1e-6, 0, "erff per element: about one float ulp"},
    {"swiglu", METRIC_NORM, 1e-6, 0, "expf per element: about one float ulp"},
    {"add", METRIC_ABS, 0.0, 0, "one float add, correctly rounded: exact"},
    {"lens_target_logits", METRIC_NORM, 1e-6, 0, "dot product in double, rounded once"},
    {"lens_lse", METRIC_ABS, 1e-5, 1, "the lens contract: within 1e-5 nats of a float64 full softmax"},
    {"lens_entropy", METRIC_ABS, 1e-5, 1, "the lens contract: within 1e-5 nats of a float64 full softmax"},
    {"lens_topk_probs", METRIC_ABS, 1e-5, 1, "the lens contract: probabilities within 1e-5 of float64"},
    {"lens_expect", METRIC_NORM, 1e-5, 0, "sgemm of probabilities by W_U in float over vocabulary tiles, tiles summed in double"},
    {"lens_kl", METRIC_ABS, 1e-5, 1, "the lens contract: KL within 1e-5 nats of float64 (terms of size LSE cancel)"},
    {"lens_probs", METRIC_F16, 1e-5, 0, "float16 output: half an f16 ulp of rounding on top of the 1e-5 probability bound"},
};

/* Near-tie margin for ranks and top-k ids: the backend ranks float32 logits, the reference float64
 * ones; logits closer than this to each other may legitimately come out in either order. */
#define TIE_EPS 1e-5

static const tol_entry *tol_of(const char *op) {
    for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
        if (!strcmp(TOLS[i].op, op)) return &TOLS[i];
    fprintf(stderr, HARNESS_NAME ": no tolerance for op '%s'\n", op);
    abort();
}

/* ---- harness ------------------------------------------------------------------------------------ */

static ll_backend *be;
static int is_cpu;
static int n_cases, n_failed;
static double logit_floor; /* LOGIT_ULPS ulps of the current lens case's largest |logit|; 0 outside */

#define GUARD 16 /* guard elements after every output */
#define POISON32 0x7fa5a5a5u /* a NaN: unwritten float outputs fail the NaN check */
#define POISON16 0x7e5au     /* a float16 NaN */

static inline void die(const char *what) {
    fprintf(stderr, HARNESS_NAME ": %s: %s\n", what, be ? be->err.msg : "");
    exit(1);
}

static inline void report(int ok, const char *op, const char *desc, const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    n_cases++;
    if (!ok) n_failed++;
    printf("%-4s %-18s %-58s %s\n", ok ? "ok" : "FAIL", op, desc, detail);
    fflush(stdout);
}

/* Backend buffers of one case, freed together. */
static void *live[64];
static int n_live;
static ll_wt live_wt[16];
static int n_live_wt;

static inline void *dev_alloc(size_t bytes) {
    void *p;
    if (be->ops->alloc(be, bytes, &p)) die("alloc");
    if (n_live == 64) die("too many buffers in one case");
    live[n_live++] = p;
    return p;
}

static inline void *dev_in(const void *h, size_t bytes) {
    void *p = dev_alloc(bytes);
    if (be->ops->upload(be, p, h, bytes)) die("upload");
    return p;
}

static inline ll_wt *dev_wt(const float *h, int64_t rows, int64_t cols) {
    if (n_live_wt == 16) die("too many weights in one case");
    ll_wt *w = &live_wt[n_live_wt++];
    if (be->ops->upload_weight(be, h, LL_DTYPE_F32, rows, cols, w)) die("upload_weight");
    return w;
}

static inline void dev_free_all(void) {
    for (int i = 0; i < n_live; i++) be->ops->dealloc(be, live[i]);
    for (int i = 0; i < n_live_wt; i++) be->ops->free_weight(be, &live_wt[i]);
    n_live = n_live_wt = 0;
}

/* An output: n elements of es bytes plus GUARD guard elements, all poisoned. */
typedef struct obuf {
    void *dev;
    void *host; /* (n + GUARD) * es bytes after fetch */
    int64_t n;
    size_t es;
} obuf;

static inline void poison(void *h, int64_t n, size_t es) {
    for (int64_t i = 0; i < n; i++) {
        if (es == 4) {
            uint32_t v = POISON32;
            memcpy((char *)h + i * 4, &v, 4);
        } else {
            uint16_t v = POISON16;
            memcpy((char *)h + i * 2, &v, 2);
        }
    }
}

static inline void *out_new(obuf *o, int64_t n, size_t es) {
    o->n = n;
    o->es = es;
    size_t bytes = (size_t)(n + GUARD) * es;
    o->host = malloc(bytes);
    if (!o->host) die("malloc");
    poison(o->host, n + GUARD, es);
    o->dev = dev_in(o->host, bytes);
    return o->dev;
}

/* Downloads the output; returns 1 when the guard elements are untouched. */
static inline int out_fetch(obuf *o) {
    size_t bytes = (size_t)(o->n + GUARD) * o->es;
    if (be->ops->sync(be) || be->ops->download(be, o->host, o->dev, bytes)) die("download");
    void *g = malloc((size_t)GUARD * o->es);
    if (!g) die("malloc");
    poison(g, GUARD, o->es);
    int ok = !memcmp((char *)o->host + (size_t)o->n * o->es, g, (size_t)GUARD * o->es);
    free(g);
    return ok;
}

static inline void out_free(obuf *o) {
    free(o->host);
    o->host = NULL;
}

/* Compares float outputs with a float64 reference under the op's tolerance (NaN in ref: got must be
 * NaN). Prints the case line; returns 1 on success. */
static inline int check_f32(const char *op, const char *desc, const float *got, const double *ref, int64_t n, int guard_ok) {
    const tol_entry *t = tol_of(op);
    double scale = 0.0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(ref[i]) && fabs(ref[i]) > scale) scale = fabs(ref[i]);
    if (t->m != METRIC_NORM || scale == 0.0) scale = 1.0;
    double tol = t->tol;
    if (t->logit_floor && logit_floor > tol) tol = logit_floor;
    double worst = 0.0;
    int64_t nbad = 0, first = -1;
    double first_err = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double err;
        int bad;
        if (isnan(ref[i])) {
            err = 0.0;
            bad = !isnan(got[i]);
        } else if (isinf(ref[i])) {
            err = 0.0;
            bad = (double)got[i] != ref[i];
        } else if (isnan(got[i]) || isinf(got[i])) {
            err = INFINITY;
            bad = 1;
        } else {
            err = fabs((double)got[i] - ref[i]) / scale;
            double lim = tol;
            if (t->m == METRIC_F16) lim += ldexp(fabs(ref[i]), -11);
            bad = err > lim;
        }
        if (err > worst) worst = err;
        if (bad) {
            if (first < 0) {
                first = i;
                first_err = err;
            }
            nbad++;
        }
    }
    int ok = nbad == 0 && guard_ok;
    if (ok)
        report(1, op, desc, "err %.2e (tol %.1e)", worst, tol);
    else if (!guard_ok)
        report(0, op, desc, "guard elements after the output were overwritten");
    else
        report(0, op, desc, "%lld of %lld bad; first [%lld]: got %.9g ref %.9g err %.3e (tol %.0e)",
               (long long)nbad, (long long)n, (long long)first, (double)got[first], ref[first], first_err, tol);
    return ok;
}

/* ---- random inputs ------------------------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline double rng_unif(void) { return (double)(rng_u64() >> 11) * 0x1.0p-53; } /* [0, 1) */
static inline float rng_sym(float a) { return (float)((2.0 * rng_unif() - 1.0) * a); } /* [-a, a) */
static inline double rng_normal(void) {
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
static inline int64_t rng_int(int64_t n) { return (int64_t)(rng_u64() % (uint64_t)n); }

static inline float *fill_sym(int64_t n, float a) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) die("malloc");
    for (int64_t i = 0; i < n; i++) p[i] = rng_sym(a);
    return p;
}
static inline float *fill_normal(int64_t n, double sd) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) die("malloc");
    for (int64_t i = 0; i < n; i++) p[i] = (float)(rng_normal() * sd);
    return p;
}
static inline double *dalloc(int64_t n) {
    double *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p) die("malloc");
    return p;
}

/* Opens the backend named by argv[1] (default cpu) into `be`. */
static inline void harness_open(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "cpu";
    ll_backend_opts opts = {0, 0, 0};
    ll_err err;
    if (ll_backend_open(name, &opts, &be, &err) != LL_OK) {
        fprintf(stderr, HARNESS_NAME ": cannot open backend %s: %s\n", name, err.msg);
        exit(1);
    }
    is_cpu = !strcmp(be->ops->name, "cpu");
    printf(HARNESS_NAME ": backend %s\n", be->ops->name);
}

/* Closes the backend and prints the closing line; returns the exit code. */
static inline int harness_close(void) {
    ll_backend_close(be);
    printf(HARNESS_NAME ": %d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}

#endif
