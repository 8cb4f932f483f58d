/* test_backend_ops.c: every op of the backend table on the CUDA backend against the CPU backend.
 *
 * usage: test_backend_ops MODULE.so [FILTER]     (FILTER: run only cases whose name contains it)
 *
 * Each case draws fresh random inputs (never zeros), uploads the same bytes to both backends, runs the
 * op on both and compares. Weights are drawn in float, rounded to the case's dtype and given to both
 * backends as those stored bits (the CPU widens them exactly), so both see the same rounded weights.
 * Outputs are allocated with GUARD bytes after them; the output is poisoned (NaN for floats, 0x7f7f7f7f
 * for ints) and the guard filled with 0xa5 before the op, so an unwritten element fails the NaN/value
 * check and an out-of-bounds write fails the guard check. One line per case: PASS/FAIL, the case, the
 * normalized error and its bound, and on failure the first divergent element. Exit status 1 if any case
 * failed.
 *
 * Error bounds live in one table (TOLS below), per op and dtype, each with its reason. Errors are
 * normalized: rel = ||cuda - cpu||_2 / ||cpu||_2, and each element must satisfy
 * |cuda - cpu| <= atol * scale + rtol * |cpu|, scale = the RMS of the CPU output (the magnitude the
 * rounding errors are proportional to). The lens cases also keep a float64 host reference of every
 * logit, used to accept top-k id swaps and rank differences between near-tied logits only.
 *
 * LL_CUDA_SYNC=1 is set before the CUDA backend opens, so a device fault is reported by the op that
 * caused it, with file:line. Lens cases force small vocabulary tiles (LL_CUDA_LENS_TILE_BYTES) so that
 * several tiles and row blocks are crossed. */
#include "ll_backend.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUARD 256
#define GUARD_BYTE 0xa5

static ll_backend g_cpu, g_gpu;
static int g_fail, g_pass;
static const char *g_filter;

/* ---- tolerance table ----------------------------------------------------------------------------- */

typedef struct tol {
    const char *op;
    ll_dtype dt;
    double rel;   /* bound on ||cuda - cpu|| / ||cpu|| (0 with abs_only) */
    double atol;  /* elementwise: times the RMS of the CPU output, or in the output's units with abs_only */
    double rtol;  /* elementwise: times |cpu| */
    int abs_only; /* atol is absolute and no relative-norm bound applies (quantities that can be ~0) */
    const char *why;
} tol;

#define ALLDT ((ll_dtype)-1)
static const tol TOLS[] = {
    {"embed", ALLDT, 0, 0, 0, 0, "a gather of the same stored values plus one fp32 add: exact"},
    {"norm", ALLDT, 1e-5, 3e-5, 1e-5, 0, "fp32 statistics on both; only the summation order differs (an offset of 30 included)"},
    {"matmul", LL_DTYPE_F32, 1e-5, 1e-4, 1e-5, 0, "fp32 GEMM on both (no TF32 in tests); summation orders differ, K up to 1031"},
    {"matmul", LL_DTYPE_F16, 2e-3, 1e-2, 0, 0, "CUDA rounds x to f16 (2^-11 relative) for the GEMM, the CPU keeps fp32 x"},
    {"matmul", LL_DTYPE_BF16, 1e-2, 6e-2, 0, 0, "CUDA rounds x to bf16 (2^-8 relative) for the GEMM, the CPU keeps fp32 x"},
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
    {"lens_u", LL_DTYPE_F32, 1e-5, 1e-4, 1e-5, 0, "u = W^T p in fp32"},
    {"lens_u", LL_DTYPE_F16, 5e-3, 3e-2, 0, 0, "p from f16-rounded logits; u itself exact to 2^-16 (hi/lo p)"},
    {"lens_u", LL_DTYPE_BF16, 2e-2, 1e-1, 0, 0, "p from bf16-rounded logits; u itself exact to 2^-16 (hi/lo p)"},
};

static tol get_tol(const char *op, ll_dtype dt) {
    for (size_t i = 0; i < sizeof TOLS / sizeof TOLS[0]; i++)
        if (!strcmp(TOLS[i].op, op) && (TOLS[i].dt == ALLDT || TOLS[i].dt == dt)) return TOLS[i];
    fprintf(stderr, "test_backend_ops: no tolerance for %s %s\n", op, ll_dtype_name(dt));
    exit(2);
}

/* ---- random data --------------------------------------------------------------------------------- */

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint64_t rnd_u64(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static double rnd_unif(void) { return ((rnd_u64() >> 11) + 0.5) / 9007199254740992.0; }
static float rnd_normal(float sd) {
    double u1 = rnd_unif(), u2 = rnd_unif();
    return (float)(sd * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
static int64_t rnd_int(int64_t n) { return (int64_t)(rnd_u64() % (uint64_t)n); }

static float *fvec(int64_t n, float sd, float mean) {
    float *v = malloc((size_t)n * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = mean + rnd_normal(sd);
    return v;
}

/* A weight: the stored bits (for upload_weight) and their exact float values (for host references). */
typedef struct hw {
    void *bits;
    float *val;
    ll_dtype dt;
    int64_t rows, cols;
} hw;

static hw hw_make(int64_t rows, int64_t cols, ll_dtype dt, float sd, float mean) {
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
static void hw_free(hw *w) {
    free(w->bits);
    free(w->val);
}

/* ---- backend helpers: every call checked; a failing call fails the case ---------------------------- */

static char g_case[512];
static int g_case_bad;

static int ck(ll_backend *be, ll_status st, const char *what) {
    if (st == LL_OK) return 1;
    if (!g_case_bad) printf("FAIL  %s: %s on %s returned %d: %s\n", g_case, what, be->ops->name, (int)st, be->err.msg);
    g_case_bad = 1;
    return 0;
}
#define CK(be, call) ck((be), (call), #call)

/* A buffer on both backends. */
typedef struct pair {
    void *c, *g;
    size_t bytes;
} pair;

static void *buf_on(ll_backend *be, size_t bytes, const void *init, int poison) {
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
static pair in_pair(const void *host, size_t bytes) {
    pair p = {buf_on(&g_cpu, bytes, host, 0), buf_on(&g_gpu, bytes, host, 0), bytes};
    return p;
}
/* outputs: poisoned (0xff: NaN floats and f16; 0x7f for ints) with a guard after them */
static pair out_pair(size_t bytes, int poison) {
    pair p = {buf_on(&g_cpu, bytes, NULL, poison), buf_on(&g_gpu, bytes, NULL, poison), bytes};
    return p;
}
#define POISON_F 0xff
#define POISON_I 0x7f

/* Downloads both sides; checks the guards. Returns host copies (caller frees) or 0 on failure. */
static int fetch(pair p, void **hc, void **hg) {
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
static void pair_free(pair *p) {
    if (p->c) g_cpu.ops->dealloc(&g_cpu, p->c);
    if (p->g) g_gpu.ops->dealloc(&g_gpu, p->g);
    p->c = p->g = NULL;
}

typedef struct wpair {
    ll_wt c, g;
} wpair;
static wpair w_pair(const hw *w) {
    wpair p;
    memset(&p, 0, sizeof p);
    CK(&g_cpu, g_cpu.ops->upload_weight(&g_cpu, w->bits, w->dt, w->rows, w->cols, &p.c));
    CK(&g_gpu, g_gpu.ops->upload_weight(&g_gpu, w->bits, w->dt, w->rows, w->cols, &p.g));
    return p;
}
static void wpair_free(wpair *p) {
    if (p->c.data) g_cpu.ops->free_weight(&g_cpu, &p->c);
    if (p->g.data) g_gpu.ops->free_weight(&g_gpu, &p->g);
}

/* ---- comparison ------------------------------------------------------------------------------------- */

typedef struct cmpres {
    double rel, maxerr;
} cmpres;

/* Compares n floats; reports the first divergence. Expected NaN (cpu NaN) must be NaN on CUDA too. */
static int cmp_f32(const char *what, const float *g, const float *c, int64_t n, tol t, cmpres *res) {
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

static int case_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int case_begin(const char *fmt, ...) {
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
static void case_end(const cmpres *r, tol t) {
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

static const ll_dtype DTS[3] = {LL_DTYPE_F32, LL_DTYPE_F16, LL_DTYPE_BF16};

/* ---- forward ops -------------------------------------------------------------------------------------- */

static void test_embed(void) {
    static const int64_t shapes[][3] = {{1, 7, 5}, {13, 67, 100}, {64, 768, 1000}}; /* T, d, V */
    for (int s = 0; s < 3; s++)
        for (int di = 0; di < 3; di++)
            for (int with_pe = 0; with_pe < 2; with_pe++) {
                int64_t T = shapes[s][0], d = shapes[s][1], V = shapes[s][2], P = 2 * T + 3;
                ll_dtype dt = DTS[di];
                if (!case_begin("embed %s T=%lld d=%lld V=%lld%s", ll_dtype_name(dt), (long long)T, (long long)d,
                                (long long)V, with_pe ? " +wpe" : ""))
                    continue;
                tol t = get_tol("embed", dt);
                hw wte = hw_make(V, d, dt, 1.0f, 0.0f), wpe = hw_make(P, d, dt, 0.5f, 0.0f);
                int32_t *ids = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
                for (int64_t i = 0; i < T; i++) {
                    ids[i] = (int32_t)rnd_int(V);
                    pos[i] = (int32_t)rnd_int(P);
                }
                ids[T - 1] = (int32_t)(V - 1); /* the last row of the table */
                wpair we = w_pair(&wte), wp = w_pair(&wpe);
                pair pi = in_pair(ids, (size_t)T * 4), pp = in_pair(pos, (size_t)T * 4);
                pair po = out_pair((size_t)(T * d) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    CK(&g_cpu, g_cpu.ops->embed(&g_cpu, po.c, &we.c, with_pe ? &wp.c : NULL, pi.c, pp.c, T, d));
                    CK(&g_gpu, g_gpu.ops->embed(&g_gpu, po.g, &we.g, with_pe ? &wp.g : NULL, pi.g, pp.g, T, d));
                    void *hc, *hg;
                    if (fetch(po, &hc, &hg)) cmp_f32("x", hg, hc, T * d, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&pi);
                pair_free(&pp);
                pair_free(&po);
                wpair_free(&we);
                wpair_free(&wp);
                hw_free(&wte);
                hw_free(&wpe);
                free(ids);
                free(pos);
            }
}

static void test_norms(void) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 67}, {17, 1000}, {2, 4096}};
    for (int s = 0; s < 4; s++)
        for (int di = 0; di < 3; di++)
            for (int kind = 0; kind < 3; kind++) { /* layernorm+bias, layernorm, rmsnorm */
                int64_t T = shapes[s][0], d = shapes[s][1];
                ll_dtype dt = DTS[di];
                const char *nm = kind == 2 ? "rmsnorm" : kind == 0 ? "layernorm+b" : "layernorm";
                if (!case_begin("%s %s T=%lld d=%lld", nm, ll_dtype_name(dt), (long long)T, (long long)d)) continue;
                tol t = get_tol("norm", dt);
                /* an offset of 30 tests that LayerNorm does not cancel (two-pass variance) */
                float *x = fvec(T * d, 2.0f, kind == 1 ? 30.0f : 0.0f);
                hw w = hw_make(1, d, dt, 0.3f, 1.0f), b = hw_make(1, d, dt, 0.2f, 0.0f);
                wpair ww = w_pair(&w), wb = w_pair(&b);
                pair px = in_pair(x, (size_t)(T * d) * 4), py = out_pair((size_t)(T * d) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    if (kind == 2) {
                        CK(&g_cpu, g_cpu.ops->rmsnorm(&g_cpu, py.c, px.c, &ww.c, T, d, 1e-5f));
                        CK(&g_gpu, g_gpu.ops->rmsnorm(&g_gpu, py.g, px.g, &ww.g, T, d, 1e-5f));
                    } else {
                        CK(&g_cpu, g_cpu.ops->layernorm(&g_cpu, py.c, px.c, &ww.c, kind == 0 ? &wb.c : NULL, T, d, 1e-5f));
                        CK(&g_gpu, g_gpu.ops->layernorm(&g_gpu, py.g, px.g, &ww.g, kind == 0 ? &wb.g : NULL, T, d, 1e-5f));
                    }
                    void *hc, *hg;
                    if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, T * d, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&px);
                pair_free(&py);
                wpair_free(&ww);
                wpair_free(&wb);
                hw_free(&w);
                hw_free(&b);
                free(x);
            }
}

static void test_matmul(void) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {1, 37, 19}, {17, 65, 33}, {64, 256, 384}, {5, 1000, 3}, {33, 129, 1031}};
    int n = 0;
    for (int s = 0; s < 6; s++)
        for (int di = 0; di < 3; di++)
            for (int lay = 0; lay < 2; lay++) {
                int64_t T = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                ll_dtype dt = DTS[di];
                int with_b = (n++ % 2) == 0;
                if (!case_begin("matmul %s %s T=%lld N=%lld K=%lld%s", ll_dtype_name(dt), lay ? "in_out" : "out_in",
                                (long long)T, (long long)N, (long long)K, with_b ? " +bias" : ""))
                    continue;
                tol t = get_tol("matmul", dt);
                float *x = fvec(T * K, 1.0f, 0.0f);
                hw w = lay ? hw_make(K, N, dt, 1.0f / (float)sqrt((double)K), 0.0f)
                           : hw_make(N, K, dt, 1.0f / (float)sqrt((double)K), 0.0f);
                hw b = hw_make(1, N, dt, 0.5f, 0.0f);
                wpair ww = w_pair(&w), wb = w_pair(&b);
                pair px = in_pair(x, (size_t)(T * K) * 4), py = out_pair((size_t)(T * N) * 4, POISON_F);
                cmpres r = {0, 0};
                if (!g_case_bad) {
                    ll_wlayout L = lay ? LL_WLAYOUT_IN_OUT : LL_WLAYOUT_OUT_IN;
                    CK(&g_cpu, g_cpu.ops->matmul(&g_cpu, py.c, px.c, &ww.c, L, with_b ? &wb.c : NULL, T, N, K));
                    CK(&g_gpu, g_gpu.ops->matmul(&g_gpu, py.g, px.g, &ww.g, L, with_b ? &wb.g : NULL, T, N, K));
                    void *hc, *hg;
                    if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, T * N, t, &r);
                    free(hc);
                    free(hg);
                }
                case_end(&r, t);
                pair_free(&px);
                pair_free(&py);
                wpair_free(&ww);
                wpair_free(&wb);
                hw_free(&w);
                hw_free(&b);
                free(x);
            }
}

static void test_rope(void) {
    /* T, heads, head_dim, rot_dim, fused row (q inside [q|k|v]), llama3 */
    static const int cfg[][6] = {{1, 1, 2, 2, 0, 0},   {7, 4, 64, 64, 0, 0},  {13, 3, 64, 16, 1, 0},
                                 {5, 2, 24, 6, 1, 0},  {9, 8, 128, 128, 0, 1}, {31, 2, 80, 20, 1, 1}};
    for (int s = 0; s < 6; s++) {
        int64_t T = cfg[s][0];
        int nh = cfg[s][1], hd = cfg[s][2], rot = cfg[s][3], fused = cfg[s][4], l3 = cfg[s][5];
        if (!case_begin("rope T=%lld heads=%d head_dim=%d rot_dim=%d%s%s", (long long)T, nh, hd, rot,
                        fused ? " fused" : "", l3 ? " llama3" : ""))
            continue;
        tol t = get_tol("rope", LL_DTYPE_F32);
        int64_t ld = fused ? 3 * nh * hd : nh * hd;
        float *x = fvec(T * ld, 1.0f, 0.0f);
        int32_t *pos = malloc((size_t)T * 4);
        for (int64_t i = 0; i < T; i++) pos[i] = l3 ? (int32_t)rnd_int(20000) : (int32_t)rnd_int(2048);
        ll_rope_params p = {.rot_dim = rot, .theta = l3 ? 500000.0 : 10000.0, .llama3 = l3, .factor = 8.0,
                            .low_freq_factor = 1.0, .high_freq_factor = 4.0, .original_max_pos = 8192.0};
        pair px = in_pair(x, (size_t)(T * ld) * 4), pp = in_pair(pos, (size_t)T * 4);
        cmpres r = {0, 0};
        if (!g_case_bad) {
            CK(&g_cpu, g_cpu.ops->rope(&g_cpu, px.c, T, ld, nh, hd, &p, pp.c));
            CK(&g_gpu, g_gpu.ops->rope(&g_gpu, px.g, T, ld, nh, hd, &p, pp.g));
            void *hc, *hg;
            if (fetch(px, &hc, &hg)) cmp_f32("x", hg, hc, T * ld, t, &r);
            free(hc);
            free(hg);
        }
        case_end(&r, t);
        pair_free(&px);
        pair_free(&pp);
        free(x);
        free(pos);
    }
}

static void test_attention(void) {
    /* heads, kv heads, head_dim, layout (0 separate, 1 fused [q|k|v], 2 NeoX interleaved), sliding window
     * (0 none; windows below, across and beyond the 16-query blocks and 32-key tiles); prompt lengths,
     * -1 ending the list (empty prompts included; odd head_dim takes the unpadded K tile) */
    static const int cfg[][5] = {{4, 4, 8, 0, 0},   {8, 2, 24, 1, 0}, {6, 1, 64, 0, 0}, {4, 2, 128, 1, 0},
                                 {4, 4, 64, 2, 0},  {2, 1, 256, 0, 0}, {3, 3, 80, 2, 0}, {4, 2, 64, 0, 5},
                                 {8, 2, 32, 1, 40}, {2, 2, 16, 2, 1},  {4, 1, 128, 0, 33}, {4, 2, 33, 1, 0},
                                 {2, 1, 1, 0, 0}};
    static const int lens[][5] = {{1, -1},         {5, 1, 40, -1},    {17, 33, -1},     {70, -1},
                                  {3, 16, 2, 47, -1}, {37, -1},       {9, 9, -1},       {3, 30, 1, 9, -1},
                                  {130, -1},       {7, 20, -1},       {100, 4, -1},     {15, 0, 1, 30, -1},
                                  {0, 1, 1, 40, -1}};
    for (int s = 0; s < (int)(sizeof cfg / sizeof cfg[0]); s++) {
        int nh = cfg[s][0], nkv = cfg[s][1], hd = cfg[s][2], lay = cfg[s][3], win = cfg[s][4];
        int64_t off[6] = {0};
        int np = 0;
        for (int j = 0; j < 5 && lens[s][j] >= 0; j++, np++) off[np + 1] = off[np] + lens[s][j];
        int64_t T = off[np];
        if (!case_begin("attention heads=%d kv=%d head_dim=%d %s prompts=%d T=%lld window=%d", nh, nkv, hd,
                        lay == 0 ? "separate" : lay == 1 ? "fused" : "neox", np, (long long)T, win))
            continue;
        tol t = get_tol("attention", LL_DTYPE_F32);
        ll_attn_layout L = {
            .n_heads = nh, .n_kv_heads = nkv, .head_dim = hd, .scale = 1.0f / sqrtf((float)hd), .window = win};
        int64_t qoff = 0, koff, voff, total;
        if (lay == 0) { /* one buffer, three regions */
            L.ldq = (int64_t)nh * hd;
            L.ldk = L.ldv = (int64_t)nkv * hd;
            L.hsq = L.hsk = L.hsv = hd;
            koff = T * L.ldq;
            voff = koff + T * L.ldk;
            total = voff + T * L.ldv;
        } else if (lay == 1) {
            L.ldq = L.ldk = L.ldv = (int64_t)(nh + 2 * nkv) * hd;
            L.hsq = L.hsk = L.hsv = hd;
            koff = (int64_t)nh * hd;
            voff = (int64_t)(nh + nkv) * hd;
            total = T * L.ldq;
        } else {
            L.ldq = L.ldk = L.ldv = 3LL * nh * hd;
            L.hsq = L.hsk = L.hsv = 3LL * hd;
            koff = hd;
            voff = 2LL * hd;
            total = T * L.ldq;
        }
        float *qkv = fvec(total, 1.5f, 0.0f);
        pair pq = in_pair(qkv, (size_t)total * 4), po = in_pair(off, (size_t)(np + 1) * 8);
        pair py = out_pair((size_t)(T * nh * hd) * 4, POISON_F);
        cmpres r = {0, 0};
        if (!g_case_bad) {
            float *qc = pq.c, *qg = pq.g;
            CK(&g_cpu, g_cpu.ops->attention(&g_cpu, py.c, qc + qoff, qc + koff, qc + voff, &L, po.c, np, T));
            CK(&g_gpu, g_gpu.ops->attention(&g_gpu, py.g, qg + qoff, qg + koff, qg + voff, &L, po.g, np, T));
            void *hc, *hg;
            if (fetch(py, &hc, &hg)) cmp_f32("out", hg, hc, T * nh * hd, t, &r);
            free(hc);
            free(hg);
        }
        case_end(&r, t);
        pair_free(&pq);
        pair_free(&po);
        pair_free(&py);
        free(qkv);
    }
}

static void test_elementwise(void) {
    static const int64_t ns[] = {1, 1000, 65537, 5000011}; /* the last one exceeds one grid-stride pass */
    for (int s = 0; s < (int)(sizeof ns / sizeof ns[0]); s++)
        for (int kind = 0; kind < 5; kind++) { /* gelu_tanh, gelu_erf, swiglu, swiglu aliased, add */
            int64_t n = ns[s];
            static const char *names[] = {"act gelu_tanh", "act gelu_erf", "swiglu", "swiglu y=gate", "add"};
            if (!case_begin("%s n=%lld", names[kind], (long long)n)) continue;
            tol t = get_tol(kind == 4 ? "add" : "act", LL_DTYPE_F32);
            float *a = fvec(n, 3.0f, 0.0f), *b = fvec(n, 1.0f, 0.0f);
            pair pa = in_pair(a, (size_t)n * 4), pb = in_pair(b, (size_t)n * 4);
            pair py = kind == 2 ? out_pair((size_t)n * 4, POISON_F) : pa;
            cmpres r = {0, 0};
            if (!g_case_bad) {
                if (kind < 2) {
                    CK(&g_cpu, g_cpu.ops->act(&g_cpu, pa.c, n, kind == 0 ? LL_ACT_GELU_TANH : LL_ACT_GELU_ERF));
                    CK(&g_gpu, g_gpu.ops->act(&g_gpu, pa.g, n, kind == 0 ? LL_ACT_GELU_TANH : LL_ACT_GELU_ERF));
                } else if (kind < 4) {
                    CK(&g_cpu, g_cpu.ops->swiglu(&g_cpu, py.c, pa.c, pb.c, n));
                    CK(&g_gpu, g_gpu.ops->swiglu(&g_gpu, py.g, pa.g, pb.g, n));
                } else {
                    CK(&g_cpu, g_cpu.ops->add(&g_cpu, pa.c, pb.c, n));
                    CK(&g_gpu, g_gpu.ops->add(&g_gpu, pa.g, pb.g, n));
                }
                void *hc, *hg;
                if (fetch(py, &hc, &hg)) cmp_f32("y", hg, hc, n, t, &r);
                free(hc);
                free(hg);
            }
            case_end(&r, t);
            if (kind == 2) pair_free(&py);
            pair_free(&pa);
            pair_free(&pb);
            free(a);
            free(b);
        }
}

/* ---- the lens ------------------------------------------------------------------------------------------ */

typedef struct lens_cfg {
    int P, T, d, V, k, bias;
    long tile_bytes; /* LL_CUDA_LENS_TILE_BYTES for the case; 0: the default */
    float wscale;    /* W_U entries ~ wscale / sqrt(d) (logits' spread); 0: 2.5 */
} lens_cfg;

/* Number of ids v != skip with |z[v] - ref| <= delta: how far a count may move under logit errors. */
static int64_t near_count(const double *z, int64_t V, double ref, double delta, int64_t skip) {
    int64_t n = 0;
    for (int64_t v = 0; v < V; v++)
        if (v != skip && fabs(z[v] - ref) <= delta) n++;
    return n;
}

static int check_topk(const int32_t *ig, const float *pg, const int32_t *ic, const float *pc, const double *zref,
                      int64_t R, int64_t V, int k, double delta, tol ts, cmpres *r) {
    for (int64_t row = 0; row < R; row++)
        for (int i = 0; i < k; i++) {
            int32_t a = ig[row * k + i], b = ic[row * k + i];
            if (a == b) continue;
            if (a < 0 || a >= V || b < 0 || b >= V ||
                fabs(zref[row * V + a] - zref[row * V + b]) > delta) {
                if (!g_case_bad)
                    printf("FAIL  %s: topk_ids: first divergence at row %lld, rank %d: cuda id %d, cpu id %d (float64 "
                           "logits %.6f vs %.6f, not a near-tie within %.3g)\n",
                           g_case, (long long)row, i, a, b, a >= 0 && a < V ? zref[row * V + a] : NAN,
                           b >= 0 && b < V ? zref[row * V + b] : NAN, delta);
                g_case_bad = 1;
                return 0;
            }
        }
    return cmp_f32("topk_probs", pg, pc, R * k, ts, r);
}

static void lens_case(const lens_cfg *L, ll_dtype dt) {
    const int64_t P = L->P, T = L->T, R = P * T, d = L->d, V = L->V;
    const int k = L->k;
    const float wscale = L->wscale > 0 ? L->wscale : 2.5f;
    if (!case_begin("lens %s P=%lld T=%lld d=%lld V=%lld k=%d%s tile=%ld wscale=%g", ll_dtype_name(dt), (long long)P,
                    (long long)T, (long long)d, (long long)V, k, L->bias ? " +bias" : "", L->tile_bytes,
                    (double)wscale))
        return;
    char tb[32];
    if (L->tile_bytes) {
        snprintf(tb, sizeof tb, "%ld", L->tile_bytes);
        setenv("LL_CUDA_LENS_TILE_BYTES", tb, 1);
    } else {
        unsetenv("LL_CUDA_LENS_TILE_BYTES");
    }
    tol tl = get_tol("lens_logit", dt), ts = get_tol("lens_stat", dt), tu = get_tol("lens_u", dt);

    /* rows: normal; the point before the final one is the final one plus 1e-3 noise (a nearly equal layer) */
    float *x = fvec(R * d, 1.0f, 0.0f);
    if (P >= 2)
        for (int64_t i = 0; i < T * d; i++) x[(P - 2) * T * d + i] = x[(P - 1) * T * d + i] + rnd_normal(1e-3f);
    hw w = hw_make(V, d, dt, wscale / (float)sqrt((double)d), 0.0f), b = hw_make(1, V, dt, 0.5f, 0.0f);
    int32_t *tgt = malloc((size_t)R * 4);
    for (int64_t t = 0; t < T; t++) {
        int32_t id = rnd_unif() < 0.2 ? -1 : (int32_t)rnd_int(V);
        for (int64_t p = 0; p < P; p++) tgt[p * T + t] = id;
    }
    /* float64 reference logits of the fp32 rows */
    double *zref = malloc((size_t)(R * V) * sizeof *zref);
    double ss = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t v = 0; v < V; v++) {
            double acc = L->bias ? b.val[v] : 0.0;
            for (int64_t i = 0; i < d; i++) acc += (double)x[r * d + i] * w.val[v * d + i];
            zref[r * V + v] = acc;
            ss += acc * acc;
        }
    const double zrms = sqrt(ss / (double)(R * V));
    const double delta = tl.atol * zrms; /* largest logit difference the dtype's bound allows */
    /* the lens_stat and lens_kl bounds are for logits of RMS ~2.5 (TOLS); rounding errors grow with them */
    const double lscale = zrms > 2.5 ? zrms / 2.5 : 1.0;
    ts.atol *= lscale;

    wpair ww = w_pair(&w), wb = w_pair(&b);
    const ll_wt *bc = L->bias ? &wb.c : NULL, *bg = L->bias ? &wb.g : NULL;
    pair px = in_pair(x, (size_t)(R * d) * 4), pt = in_pair(tgt, (size_t)R * 4);
    pair pxf = in_pair(x + (P - 1) * T * d, (size_t)(T * d) * 4);
    pair pzt = out_pair((size_t)R * 4, POISON_F), plse = out_pair((size_t)R * 4, POISON_F);
    pair pent = out_pair((size_t)R * 4, POISON_F), prank = out_pair((size_t)R * 4, POISON_I);
    pair pids = out_pair((size_t)(R * k) * 4, POISON_I), pprb = out_pair((size_t)(R * k) * 4, POISON_F);
    pair pu = out_pair((size_t)(T * d) * 4, POISON_F), ppb = out_pair((size_t)T * 4, POISON_F);
    pair pkl = out_pair((size_t)R * 4, POISON_F);
    const int64_t nsel = 17;
    int32_t vsel[17];
    for (int j = 0; j < nsel; j++) vsel[j] = (int32_t)rnd_int(V);
    vsel[nsel - 1] = vsel[0]; /* a repeated id */
    pair psel = in_pair(vsel, sizeof vsel);
    const int full = V <= 5003;
    pair pfull = full ? out_pair((size_t)(R * V) * 2, POISON_F) : (pair){0};
    pair psub = out_pair((size_t)(R * nsel) * 2, POISON_F);
    cmpres res = {0, 0};
    void *hc = NULL, *hg = NULL, *hc2 = NULL, *hg2 = NULL;

    if (g_case_bad) goto done;
    /* target logits */
    CK(&g_cpu, g_cpu.ops->lens_target_logits(&g_cpu, pzt.c, px.c, &ww.c, bc, pt.c, R, d));
    CK(&g_gpu, g_gpu.ops->lens_target_logits(&g_gpu, pzt.g, px.g, &ww.g, bg, pt.g, R, d));
    if (g_case_bad || !fetch(pzt, &hc, &hg) || !cmp_f32("lens_target_logits", hg, hc, R, tl, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;

    /* the pass */
    ll_lens_pass_args ac = {.x = px.c, .wu = &ww.c, .bu = bc, .zt = pzt.c, .target = pt.c, .R = R, .d = d, .V = V,
                            .k = k, .lse = plse.c, .entropy = pent.c, .topk_ids = pids.c, .topk_probs = pprb.c,
                            .rank = prank.c};
    ll_lens_pass_args ag = {.x = px.g, .wu = &ww.g, .bu = bg, .zt = pzt.g, .target = pt.g, .R = R, .d = d, .V = V,
                            .k = k, .lse = plse.g, .entropy = pent.g, .topk_ids = pids.g, .topk_probs = pprb.g,
                            .rank = prank.g};
    CK(&g_cpu, g_cpu.ops->lens_pass(&g_cpu, &ac));
    CK(&g_gpu, g_gpu.ops->lens_pass(&g_gpu, &ag));
    if (g_case_bad) goto done;
    if (!fetch(plse, &hc, &hg) || !cmp_f32("lse", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    if (!fetch(pent, &hc, &hg) || !cmp_f32("entropy", hg, hc, R, ts, &res)) goto done;
    free(hc);
    free(hg);
    hc = hg = NULL;
    if (!fetch(pids, &hc, &hg) || !fetch(pprb, &hc2, &hg2)) goto done;
    if (!check_topk(hg, hg2, hc, hc2, zref, R, V, k, 2 * delta, ts, &res)) goto done;
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    hc = hg = hc2 = hg2 = NULL;
    if (!fetch(prank, &hc, &hg)) goto done;
    {
        const int32_t *rc = hc, *rg = hg;
        for (int64_t r = 0; r < R; r++) {
            int64_t slack = tgt[r] < 0 ? 0 : near_count(zref + r * V, V, zref[r * V + tgt[r]], delta, tgt[r]);
            if ((tgt[r] < 0 && (rc[r] != -1 || rg[r] != -1)) || llabs((long long)rg[r] - rc[r]) > slack) {
                printf("FAIL  %s: rank: first divergence at row %lld: cuda %d, cpu %d (target %d; %lld logits within "
                       "%.3g of the target's)\n",
                       g_case, (long long)r, rg[r], rc[r], tgt[r], (long long)slack, delta);
                g_case_bad = 1;
                goto done;
            }
        }
    }
    free(hc);
    free(hg);
    hc = hg = NULL;

    /* KL terms: each backend from its own final rows' lse and entropy (the last T rows) */
    {
        const float *lfc = (const float *)plse.c + (P - 1) * T, *lfg = (const float *)plse.g + (P - 1) * T;
        const float *hfc = (const float *)pent.c + (P - 1) * T, *hfg = (const float *)pent.g + (P - 1) * T;
        CK(&g_cpu, g_cpu.ops->lens_expect(&g_cpu, pu.c, ppb.c, pxf.c, &ww.c, bc, lfc, T, d, V));
        CK(&g_gpu, g_gpu.ops->lens_expect(&g_gpu, pu.g, ppb.g, pxf.g, &ww.g, bg, lfg, T, d, V));
        if (g_case_bad || !fetch(pu, &hc, &hg) || !cmp_f32("lens_expect u", hg, hc, T * d, tu, &res)) goto done;
        free(hc);
        free(hg);
        hc = hg = NULL;
        if (L->bias) {
            if (!fetch(ppb, &hc, &hg) || !cmp_f32("lens_expect pb", hg, hc, T, tu, &res)) goto done;
            free(hc);
            free(hg);
            hc = hg = NULL;
        }
        CK(&g_cpu, g_cpu.ops->lens_kl(&g_cpu, pkl.c, px.c, &ww.c, pu.c, ppb.c, hfc, plse.c, R, T, d));
        CK(&g_gpu, g_gpu.ops->lens_kl(&g_gpu, pkl.g, px.g, &ww.g, pu.g, ppb.g, hfg, plse.g, R, T, d));
        if (g_case_bad || !fetch(pkl, &hc, &hg)) goto done;
        const float *kc = hc, *kg = hg;
        /* the final layer against itself: 0 up to fp32 arithmetic on each backend */
        for (int64_t t = 0; t < T; t++) {
            float a = kg[(P - 1) * T + t], c = kc[(P - 1) * T + t];
            if (!(fabsf(a) <= 2e-4f) || !(fabsf(c) <= 2e-4f)) {
                printf("FAIL  %s: KL of the final rows with themselves at token %lld: cuda %.3g, cpu %.3g (bound 2e-4: "
                       "the three terms must cancel)\n",
                       g_case, (long long)t, a, c);
                g_case_bad = 1;
                goto done;
            }
        }
        tol tk = get_tol("lens_kl", dt);
        tk.atol *= lscale;
        if (!cmp_f32("lens_kl", kg, kc, R, tk, &res)) goto done;
        free(hc);
        free(hg);
        hc = hg = NULL;
    }

    /* probability rows, each backend with its own lse */
    for (int sel = 0; sel < 2; sel++) {
        if (!sel && !full) continue;
        pair po = sel ? psub : pfull;
        int64_t nv = sel ? nsel : V;
        CK(&g_cpu, g_cpu.ops->lens_probs(&g_cpu, po.c, px.c, &ww.c, bc, plse.c, R, d, V, sel ? psel.c : NULL, nv));
        CK(&g_gpu, g_gpu.ops->lens_probs(&g_gpu, po.g, px.g, &ww.g, bg, plse.g, R, d, V, sel ? psel.g : NULL, nv));
        if (g_case_bad || !fetch(po, &hc, &hg)) goto done;
        float *fc = malloc((size_t)(R * nv) * 4), *fg = malloc((size_t)(R * nv) * 4);
        for (int64_t i = 0; i < R * nv; i++) {
            fc[i] = ll_f16_to_f32(((uint16_t *)hc)[i]);
            fg[i] = ll_f16_to_f32(((uint16_t *)hg)[i]);
        }
        tol tp = ts;
        tp.rtol = ts.rtol + 1e-3; /* plus the float16 rounding of the output */
        int ok = cmp_f32(sel ? "lens_probs vsel" : "lens_probs all", fg, fc, R * nv, tp, &res);
        free(fc);
        free(fg);
        free(hc);
        free(hg);
        hc = hg = NULL;
        if (!ok) goto done;
    }

done:
    case_end(&res, ts);
    free(hc);
    free(hg);
    free(hc2);
    free(hg2);
    pair *all[] = {&px, &pt, &pxf, &pzt, &plse, &pent, &prank, &pids, &pprb, &pu, &ppb, &pkl, &psel, &pfull, &psub};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) pair_free(all[i]);
    wpair_free(&ww);
    wpair_free(&wb);
    hw_free(&w);
    hw_free(&b);
    free(x);
    free(tgt);
    free(zref);
    unsetenv("LL_CUDA_LENS_TILE_BYTES");
}

static void test_lens(void) {
    static const lens_cfg cfgs[] = {
        {1, 1, 8, 7, 1, 0, 0, 0},        /* T=1, one tiny tile */
        {3, 13, 67, 1000, 10, 1, 8192, 0}, /* 128-column tiles, row blocks of 16: every boundary crossed */
        {4, 16, 256, 5003, 64, 1, 0, 0}, /* default budget: a full 4096-column tile and a ragged one */
        {1, 5, 33, 300, 300, 0, 4096, 0}, /* k == V */
        {2, 40, 96, 4099, 5, 0, 65536, 0}, /* 33 tiles of 128 columns */
        /* peaked rows over a GPT-2-sized vocabulary: most probabilities below F16's smallest subnormal,
         * whose mass lens_expect must keep (the final layer's KL with itself stays ~0) */
        {2, 8, 128, 50257, 10, 1, 0, 12.0f},
    };
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++)
        for (int di = 0; di < 3; di++) lens_case(&cfgs[c], DTS[di]);
}

/* ---- main ------------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: test_backend_ops MODULE.so [FILTER]\n");
        return 2;
    }
    g_filter = argc == 3 ? argv[2] : NULL;
    setenv("LL_CUDA_SYNC", "1", 0);
    ll_backend_opts opts = {.threads = 0, .device = 0, .allow_tf32 = 0};
    const char *dev = getenv("LL_TEST_DEVICE");
    if (dev) opts.device = atoi(dev);

    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("SKIP  test_backend_ops: cannot load %s: %s\n", argv[1], dlerror());
        return 0;
    }
    ll_backend_init_fn init = (ll_backend_init_fn)dlsym(h, LL_CUDA_BACKEND_SYMBOL);
    if (!init) {
        printf("FAIL  test_backend_ops: %s has no symbol %s\n", argv[1], LL_CUDA_BACKEND_SYMBOL);
        return 1;
    }
    if (init(&g_gpu, &opts) != LL_OK) {
        printf("SKIP  test_backend_ops: %s\n", g_gpu.err.msg);
        return 0;
    }
    if (ll_backend_cpu_init(&g_cpu, &opts) != LL_OK) {
        printf("FAIL  test_backend_ops: cannot open the CPU backend: %s\n", g_cpu.err.msg);
        return 1;
    }
    printf("test_backend_ops: CUDA (%s) against CPU; bounds are per op and dtype (TOLS in %s)\n", argv[1], __FILE__);
    test_embed();
    test_norms();
    test_matmul();
    test_rope();
    test_attention();
    test_elementwise();
    test_lens();
    printf("test_backend_ops: %d passed, %d failed\n", g_pass, g_fail);
    g_gpu.ops->close(&g_gpu);
    g_cpu.ops->close(&g_cpu);
    return g_fail ? 1 : 0;
}
