/* ops_harness.c: what every case of test_backend_ops shares (ops_harness.h): the tolerance table, the
 * random streams, paired buffers with guards and poison, the element-wise comparison, case bookkeeping. */
#include "ops_harness.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ll_backend g_cpu, g_gpu;
int g_fail, g_pass;
const char *g_filter;

/* ---- tolerance table ----------------------------------------------------------------------------- */

static const tol TOLS[] = {
    {"embed", ALLDT, 0, 0, 0, 0, "a gather of the same stored values plus one fp32 add: exact"},
    {"norm", ALLDT, 1e-5, 3e-5, 1e-5, 0, "fp32 statistics on both; only the summation order differs (an offset of 30 included)"},
    {"matmul", LL_DTYPE_F32, 1e-5, 1e-4, 1e-5, 0, "fp32 GEMM on both (allow_tf32 off; see matmul_tf32); summation orders differ, K up to 1031"},
    {"matmul", LL_DTYPE_F16, 2e-3, 1e-2, 0, 0, "CUDA rounds x to f16 (2^-11 relative) for the GEMM, the CPU keeps fp32 x"},
    {"matmul", LL_DTYPE_BF16, 1e-2, 6e-2, 0, 0, "CUDA rounds x to bf16 (2^-8 relative) for the GEMM, the CPU keeps fp32 x"},
    {"matmul_tf32", LL_DTYPE_F32, 2e-3, 1e-2, 0, 0, "allow_tf32: both operands rounded to TF32 (2^-11 relative), as f16"},
    {"rope", ALLDT, 1e-6, 1e-5, 1e-6, 0, "both rotate in double from the same ll_rope_inv_freq; the last bit may differ"},
    {"attention", ALLDT, 1e-5, 1e-4, 1e-5, 0, "fp32 online softmax vs the CPU's order of summation"},
    {"act", ALLDT, 1e-6, 1e-6, 4e-7, 0, "the device's tanhf/erff/expf are within 2 ulp of glibc's"},
    {"add", ALLDT, 0, 0, 0, 0, "one fp32 add: exact"},
    /* The lens: logits have an RMS of about 2.5 here. Rounding x gives logit errors of ~3e-3 (bf16,
     * up to ~1.5e-2 at the tails) and ~4e-4 (f16); lse, entropy, KL and log-probabilities move by
     * about as much, in nats, so their bounds are absolute (lens_case scales lens_stat's by the logits'
     * RMS / 2.5 for larger logits). */
    {"lens_logit", LL_DTYPE_F32, 1e-5, 5e-5, 1e-5, 0, "fp32 dot products, summation order differs"},
    {"lens_logit", LL_DTYPE_F16, 2e-3, 1e-2, 0, 0, "CUDA rounds x to f16 for the logits, the CPU keeps fp32"},
    {"lens_logit", LL_DTYPE_BF16, 1e-2, 6e-2, 0, 0, "CUDA rounds x to bf16 for the logits, the CPU keeps fp32"},
    {"lens_stat", LL_DTYPE_F32, 0, 1e-4, 0, 1, "lse, entropy (nats), probabilities from fp32 logits on both"},
    {"lens_stat", LL_DTYPE_F16, 0, 5e-3, 0, 1, "logits from f16-rounded x move lse, H (nats) and p by ~1e-3"},
    {"lens_stat", LL_DTYPE_BF16, 0, 3e-2, 0, 1, "logits from bf16-rounded x move lse, H (nats) and p by ~1e-2"},
    {"lens_kl", LL_DTYPE_F32, 0, 2e-4, 0, 1, "KL in nats: three fp32 terms of ~8 nats each cancel"},
    {"lens_kl", LL_DTYPE_F16, 0, 1e-2, 0, 1, "KL in nats from f16-rounded-x logits on CUDA"},
    {"lens_kl", LL_DTYPE_BF16, 0, 5e-2, 0, 1, "KL in nats from bf16-rounded-x logits on CUDA"},
    {"lens_kl_final", ALLDT, 0, 1e-6, 0, 1, "the final rows' KL with themselves, per unit of their largest logit: "
     "fp32 roundings of lse, H and x . u (~2^-24 of it each, summed over a few terms)"},
    {"lens_u", LL_DTYPE_F32, 1e-5, 1e-4, 1e-5, 0, "u = W^T p in fp32"},
    {"lens_u", LL_DTYPE_F16, 5e-3, 3e-2, 0, 0, "p from f16-rounded logits; u itself exact to 2^-16 (hi/lo p)"},
    {"lens_u", LL_DTYPE_BF16, 2e-2, 1e-1, 0, 0, "p from bf16-rounded logits; u itself exact to 2^-16 (hi/lo p)"},
};

tol get_tol(const char *op, ll_dtype dt) {
    for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
        if (!strcmp(TOLS[i].op, op) && (TOLS[i].dt == ALLDT || TOLS[i].dt == dt)) return TOLS[i];
    fprintf(stderr, "test_backend_ops: no tolerance for %s %s\n", op, ll_dtype_name(dt));
    exit(2);
}

/* ---- random data --------------------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
uint64_t rnd_u64(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
double rnd_unif(void) { return ((rnd_u64() >> 11) + 0.5) / 9007199254740992.0; }
float rnd_normal(float sd) {
    double u1 = rnd_unif(), u2 = rnd_unif();
    return (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
int64_t rnd_int(int64_t n) { return (int64_t)(rnd_u64() % (uint64_t)n); }

float *fvec(int64_t n, float sd, float mean) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = mean + rnd_normal(sd);
    return v;
}

/* A weight: the stored bits (for upload_weight) and their exact float values (for host references). */

hw hw_make(int64_t rows, int64_t cols, ll_dtype dt, float sd, float mean) {
    hw w = {0};
    int64_t n = rows * cols;
    w.dt = dt;
    w.rows = rows;
    w.cols = cols;
    w.val = fvec(n, sd, mean);
    w.bits = malloc((size_t)n * ll_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        if (dt == LL_DTYPE_BF16) {
            uint16_t b = ll_f32_to_bf16(w.val[i]);
            ((uint16_t *)w.bits)[i] = b;
            w.val[i] = ll_bf16_to_f32(b);
        } else if (dt == LL_DTYPE_F16) {
            uint16_t b = ll_f32_to_f16(w.val[i]);
            ((uint16_t *)w.bits)[i] = b;
            w.val[i] = ll_f16_to_f32(b);
        } else {
            ((float *)w.bits)[i] = w.val[i];
        }
    }
    return w;
}
void hw_free(hw *w) {
    free(w->bits);
    free(w->val);
}

/* ---- backend helpers: every call checked; a failing call fails the case ---------------------------- */

char g_case[512];
int g_case_bad;

int ck(ll_backend *be, ll_status st, const char *what) {
    if (st == LL_OK) return 1;
    if (!g_case_bad) printf("FAIL  %s: %s on %s returned %d: %s\n", g_case, what, be->ops->name, (int)st, be->err.msg);
    g_case_bad = 1;
    return 0;
}


void *buf_on(ll_backend *be, size_t bytes, const void *init, int poison) {
    void *p = NULL;
    if (!CK(be, be->ops->alloc(be, bytes + GUARD, &p))) return NULL;
    unsigned char *h = malloc(bytes + GUARD);
    if (init) memcpy(h, init, bytes);
    else memset(h, poison, bytes);
    memset(h + bytes, GUARD_BYTE, GUARD);
    CK(be, be->ops->upload(be, p, h, bytes + GUARD));
    free(h);
    return p;
}
/* inputs: the same bytes on both backends */
pair in_pair(const void *host, size_t bytes) {
    pair p = {buf_on(&g_cpu, bytes, host, 0), buf_on(&g_gpu, bytes, host, 0), bytes};
    return p;
}
/* outputs: poisoned (0xff: NaN floats and f16; 0x7f for ints) with a guard after them */
pair out_pair(size_t bytes, int poison) {
    pair p = {buf_on(&g_cpu, bytes, NULL, poison), buf_on(&g_gpu, bytes, NULL, poison), bytes};
    return p;
}

/* Downloads both sides; checks the guards. Returns host copies (caller frees) or 0 on failure. */
int fetch(pair p, void **hc, void **hg) {
    unsigned char *c = malloc(p.bytes + GUARD), *g = malloc(p.bytes + GUARD);
    *hc = c;
    *hg = g;
    if (!p.c || !p.g) return 0;
    if (!CK(&g_cpu, g_cpu.ops->download(&g_cpu, c, p.c, p.bytes + GUARD))) return 0;
    if (!CK(&g_gpu, g_gpu.ops->download(&g_gpu, g, p.g, p.bytes + GUARD))) return 0;
    for (int i = 0; i < GUARD; i++) {
        if (g[p.bytes + i] != GUARD_BYTE || c[p.bytes + i] != GUARD_BYTE) {
            if (!g_case_bad)
                printf("FAIL  %s: guard byte %d after the output overwritten (%s: 0x%02x)\n", g_case, i,
                       g[p.bytes + i] != GUARD_BYTE ? "cuda" : "cpu",
                       g[p.bytes + i] != GUARD_BYTE ? g[p.bytes + i] : c[p.bytes + i]);
            g_case_bad = 1;
            return 0;
        }
    }
    return 1;
}
void pair_free(pair *p) {
    if (p->c) g_cpu.ops->dealloc(&g_cpu, p->c);
    if (p->g) g_gpu.ops->dealloc(&g_gpu, p->g);
    p->c = p->g = NULL;
}

wpair w_pair(const hw *w) {
    wpair p;
    memset(&p, 0, sizeof p);
    CK(&g_cpu, g_cpu.ops->upload_weight(&g_cpu, w->bits, w->dt, w->rows, w->cols, &p.c));
    CK(&g_gpu, g_gpu.ops->upload_weight(&g_gpu, w->bits, w->dt, w->rows, w->cols, &p.g));
    return p;
}
void wpair_free(wpair *p) {
    if (p->c.data) g_cpu.ops->free_weight(&g_cpu, &p->c);
    if (p->g.data) g_gpu.ops->free_weight(&g_gpu, &p->g);
}

/* ---- comparison ------------------------------------------------------------------------------------- */


/* Compares n floats; reports the first divergence. Expected NaN (cpu NaN) must be NaN on CUDA too. */
int cmp_f32(const char *what, const float *g, const float *c, int64_t n, tol t, cmpres *res) {
    double num = 0, den = 0, ss = 0, maxerr = 0;
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++)
        if (!isnan(c[i])) {
            ss += (double)c[i] * c[i];
            cnt++;
        }
    const double rms = t.abs_only ? 1.0 : cnt ? sqrt(ss / cnt) : 0;
    int64_t bad = -1, nbad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(c[i]) || isnan(g[i])) {
            if (isnan(c[i]) != isnan(g[i])) {
                if (bad < 0) bad = i;
                nbad++;
            }
            continue;
        }
        double e = fabs((double)g[i] - (double)c[i]);
        num += e * e;
        den += (double)c[i] * c[i];
        if (e > maxerr) maxerr = e;
        if (e > t.atol * rms + t.rtol * fabs((double)c[i]) || isinf(g[i]) != isinf(c[i])) {
            if (bad < 0) bad = i;
            nbad++;
        }
    }
    double rel = den > 0 ? sqrt(num / den) : sqrt(num);
    if (res) {
        if (rel > res->rel) res->rel = rel;
        if (maxerr > res->maxerr) res->maxerr = maxerr;
    }
    /* the norm-wise bound needs enough elements to be an average; a handful are judged element-wise */
    if (bad >= 0 || (!t.abs_only && n >= 32 && rel > t.rel)) {
        if (!g_case_bad) {
            if (bad >= 0)
                printf("FAIL  %s: %s: %lld of %lld elements diverge, first at [%lld]: cuda %.9g, cpu %.9g "
                       "(bound %.3g*rms %.3g + %.3g*|cpu|; %s); rel %.3g\n",
                       g_case, what, (long long)nbad, (long long)n, (long long)bad, g[bad], c[bad], t.atol, rms,
                       t.rtol, t.why, rel);
            else
                printf("FAIL  %s: %s: rel error %.3g > bound %.3g (%s)\n", g_case, what, rel, t.rel, t.why);
        }
        g_case_bad = 1;
        return 0;
    }
    return 1;
}

int case_begin(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_case, sizeof g_case, fmt, ap);
    va_end(ap);
    g_case_bad = 0;
    /* each case draws from its own stream, seeded by its name (FNV-1a): a filtered run (sanitize.sh)
     * sees exactly the inputs of the full run */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *c = g_case; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
    g_rng = h | 1;
    if (g_filter && !strstr(g_case, g_filter)) return 0;
    return 1;
}
void case_end(const cmpres *r, tol t) {
    if (g_case_bad) {
        g_fail++;
        return;
    }
    g_pass++;
    if (t.abs_only)
        printf("PASS  %-64s max|err| %.2e (bound %.0e)  rel %.2e\n", g_case, r ? r->maxerr : 0.0, t.atol, r ? r->rel : 0.0);
    else
        printf("PASS  %-64s rel %.2e (bound %.0e)  max|err| %.2e\n", g_case, r ? r->rel : 0.0, t.rel, r ? r->maxerr : 0.0);
}

const ll_dtype DTS[3] = {LL_DTYPE_F32, LL_DTYPE_F16, LL_DTYPE_BF16};
