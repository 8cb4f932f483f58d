/* test_cpu_ops.c: every op of the CPU backend against an independent float64 reference.
 *
 * Each case runs one op on random inputs with an odd shape (T = 1, widths not a multiple of 8, a
 * vocabulary that is not a multiple of the lens tile, lens rows spanning several row blocks, GQA
 * ratios 1/2/4, partial rotary, llama3 scaling, both matmul layouts, with and without bias, several
 * packed prompts) and compares the result with naive float64 loops written here. Outputs are poisoned
 * (NaN) before the op, so an element the op forgets to write fails, and followed by guard elements
 * that must come back untouched. One line per case; the first bad element is printed; exit 1 on any
 * failure. Usage: test_cpu_ops [backend] (default cpu; the ops go through the backend's table and
 * upload/download, so any backend can be checked against the same references). */
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
    fprintf(stderr, "test_cpu_ops: no tolerance for op '%s'\n", op);
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

static void die(const char *what) {
    fprintf(stderr, "test_cpu_ops: %s: %s\n", what, be ? be->err.msg : "");
    exit(1);
}

static void report(int ok, const char *op, const char *desc, const char *fmt, ...) {
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

static void *dev_alloc(size_t bytes) {
    void *p;
    if (be->ops->alloc(be, bytes, &p)) die("alloc");
    if (n_live == 64) die("too many buffers in one case");
    live[n_live++] = p;
    return p;
}

static void *dev_in(const void *h, size_t bytes) {
    void *p = dev_alloc(bytes);
    if (be->ops->upload(be, p, h, bytes)) die("upload");
    return p;
}

static ll_wt *dev_wt(const float *h, int64_t rows, int64_t cols) {
    if (n_live_wt == 16) die("too many weights in one case");
    ll_wt *w = &live_wt[n_live_wt++];
    if (be->ops->upload_weight(be, h, LL_DTYPE_F32, rows, cols, w)) die("upload_weight");
    return w;
}

static void dev_free_all(void) {
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

static void poison(void *h, int64_t n, size_t es) {
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

static void *out_new(obuf *o, int64_t n, size_t es) {
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
static int out_fetch(obuf *o) {
    size_t bytes = (size_t)(o->n + GUARD) * o->es;
    if (be->ops->sync(be) || be->ops->download(be, o->host, o->dev, bytes)) die("download");
    void *g = malloc((size_t)GUARD * o->es);
    if (!g) die("malloc");
    poison(g, GUARD, o->es);
    int ok = !memcmp((char *)o->host + (size_t)o->n * o->es, g, (size_t)GUARD * o->es);
    free(g);
    return ok;
}

static void out_free(obuf *o) {
    free(o->host);
    o->host = NULL;
}

/* Compares float outputs with a float64 reference under the op's tolerance (NaN in ref: got must be
 * NaN). Prints the case line; returns 1 on success. */
static int check_f32(const char *op, const char *desc, const float *got, const double *ref, int64_t n, int guard_ok) {
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
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double rng_unif(void) { return (double)(rng_u64() >> 11) * 0x1.0p-53; } /* [0, 1) */
static float rng_sym(float a) { return (float)((2.0 * rng_unif() - 1.0) * a); } /* [-a, a) */
static double rng_normal(void) {
    double u1 = rng_unif(), u2 = rng_unif();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
static int64_t rng_int(int64_t n) { return (int64_t)(rng_u64() % (uint64_t)n); }

static float *fill_sym(int64_t n, float a) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) die("malloc");
    for (int64_t i = 0; i < n; i++) p[i] = rng_sym(a);
    return p;
}
static float *fill_normal(int64_t n, double sd) {
    float *p = malloc((size_t)(n ? n : 1) * sizeof *p);
    if (!p) die("malloc");
    for (int64_t i = 0; i < n; i++) p[i] = (float)(rng_normal() * sd);
    return p;
}
static double *dalloc(int64_t n) {
    double *p = calloc((size_t)(n ? n : 1), sizeof *p);
    if (!p) die("malloc");
    return p;
}

/* ---- memory, weights, the exp ------------------------------------------------------------------- */

static void test_memory(void) {
    size_t sizes[] = {0, 1, 63, 64, 1000, 1 << 20};
    int ok = 1;
    char detail[128] = "";
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p;
        if (be->ops->alloc(be, sizes[i], &p) || !p) die("alloc");
        if ((uintptr_t)p % 64 != 0) {
            ok = 0;
            snprintf(detail, sizeof detail, "alloc(%zu) not 64-byte aligned", sizes[i]);
        }
        if (is_cpu)
            for (size_t j = 0; j < sizes[i]; j++)
                if (((unsigned char *)p)[j]) {
                    ok = 0;
                    snprintf(detail, sizeof detail, "alloc(%zu) byte %zu not zero", sizes[i], j);
                    break;
                }
        be->ops->dealloc(be, p);
    }
    size_t fr = 0, tot = 0;
    if (be->ops->mem_info(be, &fr, &tot) || tot == 0 || fr > tot) {
        ok = 0;
        snprintf(detail, sizeof detail, "mem_info free %zu total %zu", fr, tot);
    }
    report(ok, "alloc", "alignment, zero fill, mem_info", "%s", detail);
}

/* Every F16 and BF16 bit pattern, from an odd (unaligned) host address, against ll_math.h bit for bit.
 * The CPU contract: weights are always kept as F32 (other backends may keep the stored dtype). */
static void test_upload_dtypes(void) {
    if (!is_cpu) return;
    for (int kind = 0; kind < 2; kind++) {
        unsigned char *raw = malloc(2 * 65536 + 1);
        if (!raw) die("malloc");
        for (uint32_t i = 0; i < 65536; i++) {
            uint16_t h = (uint16_t)i;
            memcpy(raw + 1 + 2 * i, &h, 2);
        }
        ll_wt w;
        ll_dtype dt = kind ? LL_DTYPE_BF16 : LL_DTYPE_F16;
        if (be->ops->upload_weight(be, raw + 1, dt, 256, 256, &w)) die("upload_weight");
        float *got = malloc(65536 * sizeof *got);
        if (!got) die("malloc");
        if (be->ops->download(be, got, w.data, 65536 * sizeof(float))) die("download");
        int64_t bad = 0, first = -1;
        for (uint32_t i = 0; i < 65536; i++) {
            float want = kind ? ll_bf16_to_f32((uint16_t)i) : ll_f16_to_f32((uint16_t)i);
            if (ll_f32_to_bits(got[i]) != ll_f32_to_bits(want)) {
                if (first < 0) first = i;
                bad++;
            }
        }
        int ok = bad == 0 && w.dtype == LL_DTYPE_F32 && w.rows == 256 && w.cols == 256 &&
                 (uintptr_t)w.data % 64 == 0;
        if (ok) report(1, "upload_weight", kind ? "BF16 all 65536 patterns, unaligned source" : "F16 all 65536 patterns, unaligned source", "bit-exact");
        else
            report(0, "upload_weight", kind ? "BF16" : "F16", "%lld of 65536 differ; first 0x%04llx; dtype %d shape [%lld,%lld]",
                   (long long)bad, (long long)first, (int)w.dtype, (long long)w.rows, (long long)w.cols);
        be->ops->free_weight(be, &w);
        int freed = w.data == NULL;
        report(freed, "free_weight", "clears the tensor", "%s", freed ? "" : "data pointer left set");
        free(got);
        free(raw);
    }
    /* F32 is copied, owned, aligned */
    float src[7] = {1, -2, 3.5f, NAN, INFINITY, -0.0f, 1e-40f};
    ll_wt w;
    if (be->ops->upload_weight(be, src, LL_DTYPE_F32, 1, 7, &w)) die("upload_weight");
    float got[7];
    if (be->ops->download(be, got, w.data, sizeof got)) die("download");
    int ok = !memcmp(got, src, sizeof got) && w.data != (void *)src;
    report(ok, "upload_weight", "F32 copy, owned", "%s", ok ? "bit-exact" : "differs");
    be->ops->free_weight(be, &w);
}

static void test_exp(void) {
    if (!is_cpu) return;
    const tol_entry *t = tol_of("exp_neg");
    double worst = 0.0, at = 0.0;
    const int n = 4000000;
    for (int i = 0; i <= n; i++) {
        float x = (float)(LL_CPU_EXP_MIN * (double)i / n);
        double rel = fabs(ll_cpu_exp_neg(x) / exp((double)x) - 1.0);
        if (rel > worst) {
            worst = rel;
            at = x;
        }
    }
    for (int i = 0; i < 200000; i++) { /* small positive arguments (z - LSE rounding above 0) */
        float x = (float)(1e-3 * i / 200000.0);
        double rel = fabs(ll_cpu_exp_neg(x) / exp((double)x) - 1.0);
        if (rel > worst) {
            worst = rel;
            at = x;
        }
    }
    char desc[96];
    snprintf(desc, sizeof desc, "%d points on [%.1f, 0] and [0, 1e-3]", n, (double)LL_CPU_EXP_MIN);
    report(worst < t->tol, "exp_neg", desc, "max rel err %.2e at %.6g (tol %.0e)", worst, at, t->tol);
    float c = -3.0f;
    int ok = ll_cpu_clamp_min(-5.0f, c) == c && ll_cpu_clamp_min(-1.0f, c) == -1.0f &&
             ll_cpu_clamp_min(-INFINITY, c) == c && isnan(ll_cpu_clamp_min(NAN, c)) && ll_cpu_clamp_min(c, c) == c;
    report(ok, "clamp_min", "below, above, -inf, NaN, equal", "%s", ok ? "" : "wrong");
}

/* ---- forward ops -------------------------------------------------------------------------------- */

static void test_embed(int64_t V, int64_t d, int64_t T, int with_pos) {
    float *wte = fill_sym(V * d, 1.0f), *wpe = fill_sym(40 * d, 1.0f);
    int32_t *ids = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) {
        ids[t] = (int32_t)rng_int(V);
        pos[t] = (int32_t)rng_int(40);
    }
    ids[0] = (int32_t)(V - 1);
    ll_wt *w1 = dev_wt(wte, V, d), *w2 = with_pos ? dev_wt(wpe, 40, d) : NULL;
    obuf o;
    float *x = out_new(&o, T * d, 4);
    if (be->ops->embed(be, x, w1, w2, dev_in(ids, (size_t)T * 4), dev_in(pos, (size_t)T * 4), T, d)) die("embed");
    int g = out_fetch(&o);
    double *ref = dalloc(T * d);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++)
            ref[t * d + i] = (float)((double)wte[ids[t] * d + i] + (with_pos ? (double)wpe[pos[t] * d + i] : 0.0));
    char desc[96];
    snprintf(desc, sizeof desc, "V=%lld d=%lld T=%lld %s", (long long)V, (long long)d, (long long)T,
             with_pos ? "wte+wpe" : "wte only");
    check_f32("embed", desc, o.host, ref, T * d, g);
    out_free(&o);
    free(ref);
    free(wte);
    free(wpe);
    free(ids);
    free(pos);
    dev_free_all();
}

static void test_norm(int rms, int64_t T, int64_t d, int with_bias, float offset) {
    float *x = fill_normal(T * d, 1.0), *w = fill_sym(d, 2.0f), *b = fill_sym(d, 1.0f);
    for (int64_t i = 0; i < T * d; i++) x[i] = offset + (offset != 0.0f ? 0.01f : 1.0f) * x[i];
    const float eps = 1e-5f;
    obuf o;
    float *y = out_new(&o, T * d, 4);
    ll_wt *ww = dev_wt(w, 1, d), *bw = with_bias ? dev_wt(b, 1, d) : NULL;
    float *xd = dev_in(x, (size_t)(T * d) * 4);
    ll_status st = rms ? be->ops->rmsnorm(be, y, xd, ww, T, d, eps) : be->ops->layernorm(be, y, xd, ww, bw, T, d, eps);
    if (st) die(rms ? "rmsnorm" : "layernorm");
    int g = out_fetch(&o);
    double *ref = dalloc(T * d);
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * d;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < d; i++) mean += xr[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++) var += rms ? (double)xr[i] * xr[i] : ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)d;
        double r = 1.0 / sqrt(var + (double)eps);
        for (int64_t i = 0; i < d; i++)
            ref[t * d + i] = rms ? xr[i] * r * w[i] : ((double)xr[i] - mean) * r * w[i] + (with_bias ? b[i] : 0.0);
    }
    char desc[96];
    snprintf(desc, sizeof desc, "T=%lld d=%lld%s offset=%g", (long long)T, (long long)d,
             rms ? "" : (with_bias ? " bias" : " no-bias"), (double)offset);
    check_f32(rms ? "rmsnorm" : "layernorm", desc, o.host, ref, T * d, g);
    /* in place: y aliases x */
    if (!rms && be->ops->layernorm(be, xd, xd, ww, bw, T, d, eps) == LL_OK) {
        float *back = malloc((size_t)(T * d) * 4);
        if (be->ops->download(be, back, xd, (size_t)(T * d) * 4)) die("download");
        check_f32("layernorm", "  same, in place (y == x)", back, ref, T * d, 1);
        free(back);
    }
    out_free(&o);
    free(ref);
    free(x);
    free(w);
    free(b);
    dev_free_all();
}

static void test_matmul(int64_t T, int64_t N, int64_t K, ll_wlayout layout, int with_bias) {
    float *x = fill_sym(T * K, 1.0f), *w = fill_sym(N * K, 1.0f), *b = fill_sym(N, 1.0f);
    obuf o;
    float *y = out_new(&o, T * N, 4);
    ll_wt *ww = layout == LL_WLAYOUT_OUT_IN ? dev_wt(w, N, K) : dev_wt(w, K, N);
    ll_wt *bw = with_bias ? dev_wt(b, 1, N) : NULL;
    if (be->ops->matmul(be, y, dev_in(x, (size_t)(T * K) * 4), ww, layout, bw, T, N, K)) die("matmul");
    int g = out_fetch(&o);
    double *ref = dalloc(T * N);
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double s = with_bias ? b[n] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)x[t * K + k] * (layout == LL_WLAYOUT_OUT_IN ? w[n * K + k] : w[k * N + n]);
            ref[t * N + n] = s;
        }
    char desc[96];
    snprintf(desc, sizeof desc, "T=%lld N=%lld K=%lld %s %s", (long long)T, (long long)N, (long long)K,
             layout == LL_WLAYOUT_OUT_IN ? "[N,K]" : "[K,N]", with_bias ? "bias" : "no-bias");
    check_f32("matmul", desc, o.host, ref, T * N, g);
    out_free(&o);
    free(ref);
    free(x);
    free(w);
    free(b);
    dev_free_all();
}

/* The reference's own inverse frequencies (the Hugging Face formulas, written out again here). */
static double ref_inv_freq(const ll_rope_params *p, int i) {
    double inv = 1.0 / pow(p->theta, (double)(2 * i) / (double)p->rot_dim);
    if (!p->llama3) return inv;
    double wavelen = 2.0 * M_PI / inv;
    double lo = p->original_max_pos / p->low_freq_factor, hi = p->original_max_pos / p->high_freq_factor;
    if (wavelen < hi) return inv;
    if (wavelen > lo) return inv / p->factor;
    double s = (p->original_max_pos / wavelen - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
    return (1.0 - s) * inv / p->factor + s * inv;
}

/* x lives inside a wider buffer (row stride ld, head stride hs, first head at column c0): every
 * element outside the rotated dims, including the rest of each row, must come back unchanged. */
static void test_rope(int64_t T, int n_heads, int head_dim, int rot_dim, int64_t hs, int64_t ld, int64_t c0,
                      int llama3, double theta, int max_pos) {
    ll_rope_params p = {rot_dim, theta, llama3, 8.0, 1.0, 4.0, 8192.0};
    int64_t n = T * ld;
    float *buf = fill_sym(n, 1.0f);
    int32_t *pos = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t == 0 ? max_pos : rng_int(max_pos + 1));
    obuf o;
    float *d = out_new(&o, n, 4);
    if (be->ops->upload(be, d, buf, (size_t)n * 4)) die("upload");
    if (be->ops->rope(be, d + c0, T, ld, n_heads, hs, &p, dev_in(pos, (size_t)T * 4))) die("rope");
    int g = out_fetch(&o);
    double *ref = dalloc(n);
    for (int64_t i = 0; i < n; i++) ref[i] = buf[i];
    int half = rot_dim / 2;
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < half; i++) {
                double a = (double)pos[t] * ref_inv_freq(&p, i);
                int64_t b0 = t * ld + c0 + h * hs;
                double x1 = buf[b0 + i], x2 = buf[b0 + i + half];
                ref[b0 + i] = x1 * cos(a) - x2 * sin(a);
                ref[b0 + i + half] = x2 * cos(a) + x1 * sin(a);
            }
    (void)head_dim;
    char desc[128];
    snprintf(desc, sizeof desc, "T=%lld heads=%d hd=%d rot=%d ld=%lld%s pos<=%d", (long long)T, n_heads, head_dim,
             rot_dim, (long long)ld, llama3 ? " llama3" : "", max_pos);
    check_f32("rope", desc, o.host, ref, n, g);
    out_free(&o);
    free(ref);
    free(buf);
    free(pos);
    dev_free_all();
}

typedef enum qkv_kind { QKV_SEPARATE, QKV_FUSED, QKV_NEOX } qkv_kind;

static void test_attention_w(const int64_t *lens, int n_prompts, int nh, int nkv, int hd, qkv_kind kind, float qscale,
                             int64_t window) {
    int64_t *off = malloc((size_t)(n_prompts + 1) * sizeof *off);
    off[0] = 0;
    for (int j = 0; j < n_prompts; j++) off[j + 1] = off[j] + lens[j];
    const int64_t T = off[n_prompts];
    ll_attn_layout L = {nh, nkv, hd, 0, 0, 0, hd, hd, hd, (float)(1.0 / sqrt((double)hd)), window};
    int64_t qo = 0, ko = 0, vo = 0, row;
    if (kind == QKV_FUSED) { /* GPT-2: [q heads | k heads | v heads] */
        row = (int64_t)(nh + 2 * nkv) * hd;
        ko = (int64_t)nh * hd;
        vo = (int64_t)(nh + nkv) * hd;
        L.ldq = L.ldk = L.ldv = row;
    } else if (kind == QKV_NEOX) { /* GPT-NeoX: [q_h k_h v_h] per head */
        row = (int64_t)3 * nh * hd;
        ko = hd;
        vo = 2 * hd;
        L.ldq = L.ldk = L.ldv = row;
        L.hsq = L.hsk = L.hsv = 3 * hd;
    } else { /* three buffers with padded rows, packed one after another */
        L.ldq = (int64_t)nh * hd + 3;
        L.ldk = L.ldv = (int64_t)nkv * hd + 5;
        ko = T * L.ldq;
        vo = ko + T * L.ldk;
        row = 0;
    }
    int64_t nbuf = kind == QKV_SEPARATE ? vo + T * L.ldv : T * row;
    float *buf = fill_sym(nbuf, 1.0f);
    for (int64_t t = 0; t < T; t++) /* sharpen q so that some scores sit far below the row max */
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd; i++) buf[qo + t * L.ldq + h * L.hsq + i] *= qscale;
    float *d = dev_in(buf, (size_t)nbuf * 4);
    obuf o;
    float *out = out_new(&o, T * nh * hd, 4);
    if (be->ops->attention(be, out, d + qo, d + ko, d + vo, &L, dev_in(off, (size_t)(n_prompts + 1) * 8), n_prompts, T))
        die("attention");
    int g = out_fetch(&o);
    double *ref = dalloc(T * nh * hd), *s = dalloc(T);
    for (int j = 0; j < n_prompts; j++)
        for (int64_t t = off[j]; t < off[j + 1]; t++)
            for (int h = 0; h < nh; h++) {
                int kvh = h / (nh / nkv);
                double m = -INFINITY, den = 0.0;
                const int64_t u0 = window > 0 && t - window + 1 > off[j] ? t - window + 1 : off[j];
                for (int64_t u = u0; u <= t; u++) {
                    double acc = 0.0;
                    for (int i = 0; i < hd; i++)
                        acc += (double)buf[qo + t * L.ldq + h * L.hsq + i] * buf[ko + u * L.ldk + kvh * L.hsk + i];
                    s[u] = acc * L.scale;
                    if (s[u] > m) m = s[u];
                }
                for (int64_t u = u0; u <= t; u++) den += exp(s[u] - m);
                for (int i = 0; i < hd; i++) {
                    double acc = 0.0;
                    for (int64_t u = u0; u <= t; u++) acc += exp(s[u] - m) * buf[vo + u * L.ldv + kvh * L.hsv + i];
                    ref[t * nh * hd + h * hd + i] = acc / den;
                }
            }
    char desc[128];
    int w = snprintf(desc, sizeof desc, "prompts={");
    for (int j = 0; j < n_prompts && w < 60; j++) w += snprintf(desc + w, sizeof desc - (size_t)w, "%s%lld", j ? "," : "", (long long)lens[j]);
    w += snprintf(desc + w, sizeof desc - (size_t)w, "} h=%d kv=%d hd=%d %s%s", nh, nkv, hd,
                  kind == QKV_FUSED ? "fused" : kind == QKV_NEOX ? "neox" : "separate", qscale > 1.0f ? " sharp" : "");
    if (window > 0 && w < (int)sizeof desc) snprintf(desc + w, sizeof desc - (size_t)w, " window=%lld", (long long)window);
    check_f32("attention", desc, o.host, ref, T * nh * hd, g);
    out_free(&o);
    free(ref);
    free(s);
    free(buf);
    free(off);
    dev_free_all();
}
static void test_attention(const int64_t *lens, int n_prompts, int nh, int nkv, int hd, qkv_kind kind, float qscale) {
    test_attention_w(lens, n_prompts, nh, nkv, hd, kind, qscale, 0);
}

static void test_act(int64_t n) {
    float *x = fill_sym(n, 6.0f), *u = fill_sym(n, 2.0f);
    double *ref = dalloc(n);
    char desc[64];
    snprintf(desc, sizeof desc, "n=%lld", (long long)n);
    for (int kind = 0; kind < 2; kind++) {
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->act(be, d, n, kind ? LL_ACT_GELU_ERF : LL_ACT_GELU_TANH)) die("act");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) {
            double v = x[i];
            ref[i] = kind ? 0.5 * v * (1.0 + erf(v / sqrt(2.0)))
                          : 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        }
        check_f32(kind ? "gelu_erf" : "gelu_tanh", desc, o.host, ref, n, g);
        out_free(&o);
    }
    { /* swiglu with y aliasing gate */
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->swiglu(be, d, d, dev_in(u, (size_t)n * 4), n)) die("swiglu");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) ref[i] = (double)x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        char d2[80];
        snprintf(d2, sizeof d2, "%s, y aliases gate", desc);
        check_f32("swiglu", d2, o.host, ref, n, g);
        out_free(&o);
    }
    {
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->add(be, d, dev_in(u, (size_t)n * 4), n)) die("add");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) ref[i] = (float)((double)x[i] + u[i]);
        check_f32("add", desc, o.host, ref, n, g);
        out_free(&o);
    }
    free(ref);
    free(x);
    free(u);
    dev_free_all();
}

/* ---- the lens ----------------------------------------------------------------------------------- */

/* float64 brute force of one row: logits, LSE, entropy, probabilities. */
typedef struct ref_row {
    double *z; /* [V] */
    double lse, ent;
} ref_row;

static void ref_logits(double *z, const float *x, const float *w, const float *b, int64_t V, int64_t d) {
    for (int64_t v = 0; v < V; v++) {
        double s = b ? b[v] : 0.0;
        for (int64_t i = 0; i < d; i++) s += (double)x[i] * w[v * d + i];
        z[v] = s;
    }
}

static void ref_stats(const double *z, int64_t V, double *lse, double *ent) {
    double m = -INFINITY;
    for (int64_t v = 0; v < V; v++)
        if (z[v] > m) m = z[v];
    double s = 0.0;
    for (int64_t v = 0; v < V; v++) s += exp(z[v] - m);
    *lse = m + log(s);
    double h = 0.0;
    for (int64_t v = 0; v < V; v++) {
        if (z[v] == -INFINITY) continue; /* a masked id: p log p -> 0 */
        double lp = z[v] - *lse;
        h -= exp(lp) * lp;
    }
    *ent = h;
}

static const double *sort_z;
static int cmp_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_z[i] > sort_z[j]) return -1;
    if (sort_z[i] < sort_z[j]) return 1;
    return i < j ? -1 : i > j;
}

/* The whole lens of one random problem: target logits, pass, probabilities, and with P > 1 points the
 * KL terms (the last T rows are the final layer; earlier points are perturbations of it). */
typedef struct lens_case {
    const char *name;
    int64_t P, T, d, V;
    int k;
    int bias;
    int64_t tile_rows, tile_cols; /* CPU lens tiles; 0 = defaults */
    double logit_sd;              /* spread of the logits */
    int dup_rows;                 /* copy W_U row 3 into row 5 and 11 (exact ties) */
    int64_t nsel;                 /* lens_probs: selected ids (0 = all) */
    double pert;                  /* noise of point 0 around the final rows; point p gets pert * 10^-p */
    int mask;                     /* bias -inf for ids [64, 128) and every 7th id from 200: masked ids */
} lens_case;

static void test_lens(const lens_case *c) {
    const int64_t R = c->P * c->T, d = c->d, V = c->V, T = c->T;
    const int k = c->k;
    if (is_cpu) {
        ll_status st = ll_cpu_set_lens_tiles(be, c->tile_rows ? c->tile_rows : LL_CPU_LENS_ROWS,
                                             c->tile_cols ? c->tile_cols : LL_CPU_LENS_COLS);
        if (st) die("set_lens_tiles");
    }
    /* x rows of unit scale, W_U scaled so that logits have sd logit_sd */
    float *x = fill_normal(R * d, 1.0);
    float *w = fill_normal(V * d, c->logit_sd / sqrt((double)d));
    float *b = fill_normal(V, 0.5);
    if (c->mask)
        for (int64_t v = 64; v < V; v++)
            if (v < 128 || (v >= 200 && v % 7 == 0)) b[v] = -INFINITY;
    if (c->dup_rows && V > 11) {
        memcpy(w + 5 * d, w + 3 * d, (size_t)d * 4);
        memcpy(w + 11 * d, w + 3 * d, (size_t)d * 4);
        b[5] = b[11] = b[3];
    }
    for (int64_t p = 0; p + 1 < c->P; p++) /* point p: the final rows plus noise */
        for (int64_t i = 0; i < T * d; i++)
            x[p * T * d + i] = x[(c->P - 1) * T * d + i] + (float)(c->pert * pow(10.0, -(double)p) * rng_normal());
    int32_t *target = malloc((size_t)R * 4);
    for (int64_t r = 0; r < R; r++) target[r] = rng_int(5) == 0 ? -1 : (int32_t)rng_int(V);
    target[0] = (int32_t)(V - 1);
    if (R > 1) target[R - 1] = -1;
    if (c->dup_rows && R > 2 && V > 11) target[1] = 5; /* a target with exact ties at ids 3 and 11 */

    /* references */
    double *z = dalloc(R * V), *lse = dalloc(R), *ent = dalloc(R), *ztr = dalloc(R);
    for (int64_t r = 0; r < R; r++) {
        ref_logits(z + r * V, x + r * d, w, c->bias ? b : NULL, V, d);
        ref_stats(z + r * V, V, &lse[r], &ent[r]);
        ztr[r] = target[r] >= 0 ? z[r * V + target[r]] : NAN;
    }
    double zmax = 0.0;
    for (int64_t i = 0; i < R * V; i++)
        if (isfinite(z[i]) && fabs(z[i]) > zmax) zmax = fabs(z[i]);
    logit_floor = zmax > 0.0 ? LOGIT_ULPS * ldexp(1.0, ilogb(zmax) - 23) : 0.0;

    ll_wt *wu = dev_wt(w, V, d), *bu = c->bias ? dev_wt(b, 1, V) : NULL;
    float *xd = dev_in(x, (size_t)(R * d) * 4);
    int32_t *td = dev_in(target, (size_t)R * 4);
    char desc[160];
    snprintf(desc, sizeof desc, "%s: R=%lld d=%lld V=%lld k=%d%s tiles=%lldx%lld max|z|=%.1f", c->name, (long long)R,
             (long long)d, (long long)V, k, c->bias ? " bias" : "",
             (long long)(c->tile_rows ? c->tile_rows : LL_CPU_LENS_ROWS),
             (long long)(c->tile_cols ? c->tile_cols : LL_CPU_LENS_COLS), zmax);
    printf("-- lens %s\n", desc);

    obuf o_zt, o_lse, o_ent, o_ids, o_pr, o_rank;
    float *zt = out_new(&o_zt, R, 4);
    if (be->ops->lens_target_logits(be, zt, xd, wu, bu, td, R, d)) die("lens_target_logits");
    int g = out_fetch(&o_zt);
    check_f32("lens_target_logits", "  NaN where target < 0", o_zt.host, ztr, R, g);

    ll_lens_pass_args a = {xd, wu, bu, zt, td, R, d, V, k, NULL, NULL, NULL, NULL, NULL};
    a.lse = out_new(&o_lse, R, 4);
    a.entropy = out_new(&o_ent, R, 4);
    a.topk_ids = out_new(&o_ids, R * k, 4);
    a.topk_probs = out_new(&o_pr, R * k, 4);
    a.rank = out_new(&o_rank, R, 4);
    if (be->ops->lens_pass(be, &a)) die("lens_pass");
    int g_lse = out_fetch(&o_lse), g_ent = out_fetch(&o_ent), g_ids = out_fetch(&o_ids), g_pr = out_fetch(&o_pr),
        g_rank = out_fetch(&o_rank);
    check_f32("lens_lse", "  log-sum-exp", o_lse.host, lse, R, g_lse);
    check_f32("lens_entropy", "  entropy", o_ent.host, ent, R, g_ent);

    /* top-k: ids identical up to near-ties, probabilities position by position */
    int32_t *order = malloc((size_t)V * 4);
    double *refp = dalloc(R * k);
    const int32_t *gids = o_ids.host, *grank = o_rank.host;
    int64_t id_bad = 0, rank_bad = 0, first_id = -1, first_rank = -1;
    int32_t first_ref_id = -1;
    for (int64_t r = 0; r < R; r++) {
        const double *zr = z + r * V;
        for (int64_t v = 0; v < V; v++) order[v] = (int32_t)v;
        sort_z = zr;
        qsort(order, (size_t)V, 4, cmp_desc);
        for (int i = 0; i < k; i++) {
            refp[r * k + i] = exp(zr[order[i]] - lse[r]);
            int32_t gi = gids[r * k + i];
            int same = gi == order[i];
            if (!same && gi >= 0 && gi < V && fabs(zr[gi] - zr[order[i]]) <= TIE_EPS) same = 1;
            if (!same) {
                if (first_id < 0) {
                    first_id = r * k + i;
                    first_ref_id = order[i];
                }
                id_bad++;
            }
        }
        /* exact ties must come out smaller id first */
        for (int i = 0; i + 1 < k; i++) {
            int32_t g0 = gids[r * k + i], g1 = gids[r * k + i + 1];
            if (g0 >= 0 && g0 < V && g1 >= 0 && g1 < V && zr[g0] == zr[g1] && g0 > g1) {
                if (first_id < 0) {
                    first_id = r * k + i;
                    first_ref_id = g1;
                }
                id_bad++;
            }
        }
        int64_t lo = 0, hi = 0;
        if (target[r] >= 0) {
            for (int64_t v = 0; v < V; v++) {
                if (v == target[r]) continue;
                lo += zr[v] > ztr[r] + TIE_EPS;
                hi += zr[v] > ztr[r] - TIE_EPS;
            }
        }
        int ok = target[r] < 0 ? grank[r] == -1 : (grank[r] >= lo && grank[r] <= hi);
        if (!ok) {
            if (first_rank < 0) first_rank = r;
            rank_bad++;
        }
    }
    if (id_bad == 0 && g_ids)
        report(1, "lens_topk_ids", "  identical (near-ties within 1e-5 excepted)", "");
    else if (!g_ids)
        report(0, "lens_topk_ids", "  identical", "guard elements overwritten");
    else
        report(0, "lens_topk_ids", "  identical", "%lld bad; first row %lld slot %lld: got id %d ref id %d",
               (long long)id_bad, (long long)(first_id / k), (long long)(first_id % k), (int)gids[first_id],
               (int)first_ref_id);
    check_f32("lens_topk_probs", "  exp(z - lse), descending", o_pr.host, refp, R * k, g_pr);
    if (rank_bad == 0 && g_rank)
        report(1, "lens_rank", "  identical (near-ties within 1e-5 excepted), -1 w/o target", "");
    else if (!g_rank)
        report(0, "lens_rank", "  identical", "guard elements overwritten");
    else
        report(0, "lens_rank", "  identical", "%lld bad; first row %lld: got %d target %d", (long long)rank_bad,
               (long long)first_rank, (int)grank[first_rank], (int)target[first_rank]);

    /* saved probabilities: all ids for every row, or a selection with repeats and the last id */
    int64_t nv = c->nsel ? c->nsel : V;
    int32_t *vsel = NULL;
    if (c->nsel) {
        vsel = malloc((size_t)nv * 4);
        for (int64_t j = 0; j < nv; j++) vsel[j] = (int32_t)rng_int(V);
        vsel[0] = (int32_t)(V - 1);
        if (nv > 2) vsel[2] = vsel[1];
    }
    obuf o_probs;
    uint16_t *pd = out_new(&o_probs, R * nv, 2);
    if (be->ops->lens_probs(be, pd, xd, wu, bu, a.lse, R, d, V, vsel ? dev_in(vsel, (size_t)nv * 4) : NULL, nv))
        die("lens_probs");
    int g_probs = out_fetch(&o_probs);
    float *pf = malloc((size_t)(R * nv) * 4);
    double *pref = dalloc(R * nv);
    const uint16_t *ph = o_probs.host;
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < nv; j++) {
            pf[r * nv + j] = ll_f16_to_f32(ph[r * nv + j]);
            pref[r * nv + j] = exp(z[r * V + (vsel ? vsel[j] : j)] - lse[r]);
        }
    check_f32("lens_probs", nv == V ? "  float16, all ids" : "  float16, selected ids", pf, pref, R * nv, g_probs);

    if (c->P > 1) { /* KL(p_final || p_point) */
        const int64_t rf = (c->P - 1) * T; /* first final row */
        obuf o_u, o_pb, o_kl;
        float *u = out_new(&o_u, T * d, 4), *pb = out_new(&o_pb, T, 4);
        if (be->ops->lens_expect(be, u, pb, xd + rf * d, wu, bu, a.lse + rf, T, d, V)) die("lens_expect");
        int g_u = out_fetch(&o_u), g_pb = out_fetch(&o_pb);
        double *uref = dalloc(T * d), *pbref = dalloc(T);
        for (int64_t t = 0; t < T; t++)
            for (int64_t v = 0; v < V; v++) {
                double p = exp(z[(rf + t) * V + v] - lse[rf + t]);
                if (p == 0.0) continue; /* masked ids: p b -> 0 */
                for (int64_t i = 0; i < d; i++) uref[t * d + i] += p * w[v * d + i];
                pbref[t] += c->bias ? p * b[v] : 0.0;
            }
        check_f32("lens_expect", "  u = W_U^T p_final", o_u.host, uref, T * d, g_u);
        check_f32("lens_expect", "  pb = b . p_final", o_pb.host, pbref, T, g_pb);
        float *kl = out_new(&o_kl, R, 4);
        if (be->ops->lens_kl(be, kl, xd, wu, u, pb, a.entropy + rf, a.lse, R, T, d)) die("lens_kl");
        int g_kl = out_fetch(&o_kl);
        double *klref = dalloc(R);
        for (int64_t r = 0; r < R; r++) {
            int64_t f = rf + r % T;
            double s = 0.0;
            for (int64_t v = 0; v < V; v++) {
                if (z[f * V + v] == -INFINITY) continue; /* p_f = 0 */
                double lpf = z[f * V + v] - lse[f], lpl = z[r * V + v] - lse[r];
                s += exp(lpf) * (lpf - lpl);
            }
            klref[r] = s;
        }
        check_f32("lens_kl", "  all points", o_kl.host, klref, R, g_kl);
        check_f32("lens_kl", "  final rows against themselves (~0)", (const float *)o_kl.host + rf, klref + rf, T, 1);
        out_free(&o_u);
        out_free(&o_pb);
        out_free(&o_kl);
        free(uref);
        free(pbref);
        free(klref);
    }
    out_free(&o_zt);
    out_free(&o_lse);
    out_free(&o_ent);
    out_free(&o_ids);
    out_free(&o_pr);
    out_free(&o_rank);
    out_free(&o_probs);
    free(pf);
    free(pref);
    free(vsel);
    free(order);
    free(refp);
    free(z);
    free(lse);
    free(ent);
    free(ztr);
    free(x);
    free(w);
    free(b);
    free(target);
    dev_free_all();
    logit_floor = 0.0;
    if (is_cpu && ll_cpu_set_lens_tiles(be, LL_CPU_LENS_ROWS, LL_CPU_LENS_COLS)) die("set_lens_tiles");
}

/* ---- error paths: a status and a message naming the op ----------------------------------------- */

static void expect_error(ll_status st, ll_status want, const char *needle, const char *desc) {
    int ok = st == want && (!is_cpu || strstr(be->err.msg, needle) != NULL);
    report(ok, "errors", desc, "status %d (want %d): %s", (int)st, (int)want, be->err.msg);
}

/* lens_kl's last step (ll_kl_finish): a rounding-negative KL is clamped to +0 (never -0), and a NaN term
 * (an overflowing row) gives NaN rather than a KL of 0 that would read as "identical to the final layer". */
static void test_kl_finish(void) {
    const float x[6] = {1, 2, 3, 4, 5, 6}, u[2] = {0, 0}, pb[1] = {0}, hf[1] = {1.0f};
    const float lse[3] = {1.5f, NAN, 0.9f};
    float h[16] = {0};
    ll_wt *w = dev_wt(h, 4, 2);
    float *kl = dev_alloc(3 * sizeof(float));
    if (be->ops->lens_kl(be, kl, dev_in(x, sizeof x), w, dev_in(u, sizeof u), dev_in(pb, sizeof pb),
                         dev_in(hf, sizeof hf), dev_in(lse, sizeof lse), 3, 1, 2))
        die("lens_kl");
    float got[3];
    if (be->ops->download(be, got, kl, sizeof got)) die("download");
    report(got[0] == 0.5f, "lens_kl", "positive KL kept", "got %g (want 0.5)", got[0]);
    report(isnan(got[1]), "lens_kl", "NaN term gives NaN, not 0", "got %g (want nan)", got[1]);
    report(got[2] == 0.0f && !signbit(got[2]), "lens_kl", "negative rounding clamped to +0", "got %g (want +0)", got[2]);
    dev_free_all();
}

static void test_errors(void) {
    float h[64] = {0};
    ll_wt *w = dev_wt(h, 4, 8); /* [4, 8] */
    float *x = dev_in(h, sizeof h), *y = dev_alloc(sizeof h);
    expect_error(be->ops->matmul(be, y, x, w, LL_WLAYOUT_OUT_IN, NULL, 2, 5, 8), LL_ERR_INTERNAL, "cpu matmul",
                 "matmul weight [4,8] used as [N=5,K=8]");
    int32_t ids[2] = {1, 4};
    int32_t *idd = dev_in(ids, sizeof ids);
    expect_error(be->ops->embed(be, y, w, NULL, idd, NULL, 2, 8), LL_ERR_INPUT, "outside the vocabulary",
                 "embed token id 4 of a 4-row table");
    float *zt = dev_alloc(64), *o = dev_alloc(256);
    int32_t tg[2] = {0, 4};
    int32_t *tgd = dev_in(tg, sizeof tg);
    ll_lens_pass_args a = {x, w, NULL, zt, tgd, 2, 8, 4, 0, o, o, (int32_t *)o, o, (int32_t *)o};
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INTERNAL, "top-k", "lens_pass k=0");
    a.k = 2;
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INPUT, "target id 4", "lens_pass target id 4 with V=4");
    ll_wt bad;
    expect_error(be->ops->upload_weight(be, h, LL_DTYPE_F32, -1, 4, &bad), LL_ERR_INTERNAL, "negative",
                 "upload_weight shape [-1, 4]");
    expect_error(be->ops->upload_weight(be, h, LL_DTYPE_F32, INT64_MAX / 2, 8, &bad), LL_ERR_NOMEM, "overflow",
                 "upload_weight [2^62, 8] overflows");
    float xn[8] = {1, 2, NAN, 0, 0, 0, 0, 0}; /* row 1 of x: NaN */
    if (be->ops->upload(be, x + 8, xn, sizeof xn)) die("upload");
    a.target = dev_in((int32_t[2]){0, 1}, 8);
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INPUT, "non-finite", "lens_pass row with NaN");
    int64_t off[3] = {0, 3, 2};
    ll_attn_layout L = {2, 1, 4, 8, 8, 8, 4, 4, 4, 0.5f, 0};
    expect_error(be->ops->attention(be, y, x, x, x, &L, dev_in(off, sizeof off), 2, 2), LL_ERR_INTERNAL, "negative length",
                 "attention offsets {0,3,2}");
    L.n_kv_heads = 3;
    expect_error(be->ops->attention(be, y, x, x, x, &L, dev_in(off, sizeof off), 2, 2), LL_ERR_INTERNAL, "kv_heads",
                 "attention 2 heads over 3 kv heads");
    dev_free_all();
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "cpu";
    ll_backend_opts opts = {0, 0, 0};
    ll_err err;
    if (ll_backend_open(name, &opts, &be, &err) != LL_OK) {
        fprintf(stderr, "test_cpu_ops: cannot open backend %s: %s\n", name, err.msg);
        return 1;
    }
    is_cpu = !strcmp(be->ops->name, "cpu");
    printf("test_cpu_ops: backend %s\n", be->ops->name);

    test_memory();
    test_upload_dtypes();
    test_exp();

    test_embed(50, 7, 1, 0);
    test_embed(50, 13, 9, 1);

    int64_t norm_d[] = {1, 7, 37, 768};
    for (int i = 0; i < 4; i++) {
        test_norm(0, 1, norm_d[i], 1, 0.0f);
        test_norm(0, 5, norm_d[i], 0, 0.0f);
        test_norm(1, 5, norm_d[i], 0, 0.0f);
    }
    test_norm(0, 3, 37, 1, 100.0f); /* large mean, small spread */
    test_norm(1, 3, 37, 0, 100.0f);

    int64_t mm[][3] = {{1, 1, 1}, {1, 13, 37}, {7, 33, 65}, {64, 100, 300}};
    for (int i = 0; i < 4; i++)
        for (int lay = 0; lay < 2; lay++)
            for (int bias = 0; bias < 2; bias++)
                test_matmul(mm[i][0], mm[i][1], mm[i][2], lay ? LL_WLAYOUT_IN_OUT : LL_WLAYOUT_OUT_IN, bias);

    test_rope(1, 1, 8, 8, 8, 8, 0, 0, 10000.0, 0);
    test_rope(5, 2, 8, 8, 8, 16, 0, 0, 10000.0, 4);
    test_rope(7, 3, 10, 4, 10, 3 * 3 * 10 + 5, 2, 0, 10000.0, 2048); /* partial rotary inside a fused row */
    test_rope(3, 2, 128, 128, 128, 2 * 128 + 1, 0, 1, 500000.0, 100000); /* llama3 scaling, all regimes */
    test_rope(4, 4, 12, 6, 12, 48, 0, 1, 10000.0, 9000);

    {
        int64_t p1[] = {1}, p2[] = {5, 1, 17}, p3[] = {33, 7}, p4[] = {9, 0, 4}, p5[] = {300}, p6[] = {2, 3, 1, 40, 6};
        test_attention(p1, 1, 1, 1, 8, QKV_SEPARATE, 1.0f);
        test_attention(p2, 3, 4, 2, 12, QKV_FUSED, 1.0f);   /* GQA 2 */
        test_attention(p3, 2, 8, 2, 10, QKV_SEPARATE, 1.0f); /* GQA 4 */
        test_attention(p4, 3, 3, 3, 16, QKV_NEOX, 1.0f);     /* an empty prompt in the batch */
        test_attention(p5, 1, 2, 1, 24, QKV_FUSED, 30.0f);   /* scores spread past exp's clamp */
        test_attention(p6, 5, 4, 4, 7, QKV_SEPARATE, 1.0f);
        /* sliding windows: wider than some prompts and narrower than others; 1 = each token itself only */
        test_attention_w(p6, 5, 4, 2, 7, QKV_SEPARATE, 1.0f, 3);
        test_attention_w(p3, 2, 8, 2, 10, QKV_FUSED, 1.0f, 8);
        test_attention_w(p5, 1, 2, 1, 24, QKV_NEOX, 30.0f, 64);
        test_attention_w(p2, 3, 4, 4, 12, QKV_SEPARATE, 1.0f, 1);
    }

    test_act(1);
    test_act(7);
    test_act(1001);
    test_act(70001);

    const lens_case lens_cases[] = {
        /* name           P  T    d   V     k   bias rows cols  sd    dup nsel pert mask */
        {"single row",    1, 1,   13, 777,  1,  0,   0,   0,    3.0,  0,  0,   0.0, 0},
        {"row blocks",    3, 100, 37, 1000, 5,  1,   64,  128,  3.0,  1,  0,   1.0, 0},
        {"vocab tiles",   2, 35,  24, 5000, 10, 1,   0,   0,    3.0,  0,  97,  1.0, 0},
        /* logits spread past the exp clamp (> 87 within a tile) and near-zero entropies; the points stay
         * close to the final rows: with |z| ~ 100 the KL of distant rows is ill-conditioned in float32
         * (an ulp of a final logit moves p_f, and that moves the KL by the spread of the other row's logits) */
        {"peaked",        2, 20,  16, 700,  4,  0,   8,   64,   30.0, 0,  33,  0.01, 0},
        {"k = V",         1, 9,   5,  70,   70, 1,   4,   64,   2.0,  1,  0,   0.0, 0},
        {"KL points",     5, 24,  40, 2100, 8,  1,   50,  256,  4.0,  0,  0,   1.0, 0},
        {"KL no bias",    4, 33,  19, 1500, 3,  0,   16,  192,  2.0,  1,  5,   1.0, 0},
        {"masked ids",    2, 10,  12, 500,  6,  1,   8,   64,   3.0,  0,  0,   1.0, 1},
    };
    for (size_t i = 0; i < sizeof lens_cases / sizeof lens_cases[0]; i++) test_lens(&lens_cases[i]);

    test_kl_finish();
    test_errors();

    ll_backend_close(be);
    printf("test_cpu_ops: %d cases, %d failed\n", n_cases, n_failed);
    return n_failed ? 1 : 0;
}
