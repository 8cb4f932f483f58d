/* standin_cuda.c: a stand-in for build/liblogitlens_cuda.so that runs on the CPU, so that the GPU test
 * harness itself (tests/gpu/test_backend_ops.c, tests/gpu/run_models.sh) is exercised on every `make
 * test` (`make test-gpu-harness`, mk/gpu_harness.mk): a harness that would fail correct CUDA code, or
 * crash, is found before the rare session that has a GPU.
 *
 * It exports ll_backend_cuda_init and names itself "cuda", and computes like the CPU backend except where
 * the real module rounds differently (docs/cuda.md):
 *   - with 16-bit weights, the activations x are rounded to the weight's dtype before every matmul and
 *     lens GEMM (round to nearest even, as llc_cast_from_f32);
 *   - with allow_tf32, the forward matmuls with fp32 weights see x rounded to TF32 (10-bit mantissa); the
 *     lens ops never do (their GEMMs are plain fp32 whatever allow_tf32 says);
 *   - lens_expect with a 16-bit unembedding weighs W_U by p split into p_hi + p_lo (16-bit halves; for F16
 *     of 2^15 p) and normalizes u and pb by the sum of those same split values (lens_expect.cu).
 * The CPU backend keeps weights as fp32 copies, so the stored dtype of each uploaded weight is tracked
 * here by its data pointer. Not a CUDA implementation: summation orders are the CPU's.
 *
 * LL_STANDIN_EMULATE (comma-separated) brings back a fixed defect of the real module, so that
 * `make test-gpu-harness` can check that the tests still catch it:
 *   lens-tf32     the lens GEMMs (pass, expect's logits, probs) round x to TF32 under allow_tf32 while
 *                 lens_target_logits and lens_kl stay fp32 (the final layer's KL with itself becomes
 *                 E_p[z_tf32 - z]);
 *   psum-unsplit  lens_expect with a 16-bit W_U normalizes by the sum of the unsplit fp32 p (and sums
 *                 p b unsplit) while u is weighted by p_hi + p_lo;
 *   old-driver    init fails as the real module does under a driver older than its CUDA runtime. */
#include "ll_backend.h"
#include "ll_math.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ll_backend_ops g_ops;
static const ll_backend_ops *g_cpu;
static int g_tf32;
static int g_emu_lens_tf32, g_emu_psum_unsplit; /* LL_STANDIN_EMULATE */

typedef struct wdt_entry {
    const void *data;
    ll_dtype dtype;
} wdt_entry;
static wdt_entry *g_w;
static int g_nw, g_capw;

#define DT_TF32 ((ll_dtype)100) /* private marker: round to TF32 */

/* The stored dtype of an uploaded weight (F32 for one this module did not upload). */
static ll_dtype stored_dtype(const ll_wt *w) {
    for (int i = 0; i < g_nw; i++)
        if (g_w[i].data == w->data) return g_w[i].dtype;
    return LL_DTYPE_F32;
}

/* The dtype x is rounded to before a forward matmul with w: TF32 for fp32 weights under allow_tf32. */
static ll_dtype gemm_dtype(const ll_wt *w) {
    ll_dtype dt = stored_dtype(w);
    return dt == LL_DTYPE_F32 && g_tf32 ? DT_TF32 : dt;
}

/* The dtype x is rounded to before a lens GEMM (pass, expect's logits, probs): W_U's stored dtype; fp32
 * stays fp32 under allow_tf32 (only the lens-tf32 emulation rounds it to TF32). */
static ll_dtype lens_gemm_dtype(const ll_wt *w) {
    ll_dtype dt = stored_dtype(w);
    return dt == LL_DTYPE_F32 && g_tf32 && g_emu_lens_tf32 ? DT_TF32 : dt;
}

static float round_to(float v, ll_dtype dt) {
    if (dt == LL_DTYPE_BF16) return ll_bf16_to_f32(ll_f32_to_bf16(v));
    if (dt == LL_DTYPE_F16) return ll_f16_to_f32(ll_f32_to_f16(v));
    if (dt == DT_TF32 && v == v) { /* round to nearest even at 13 dropped bits */
        uint32_t b = ll_f32_to_bits(v);
        b += 0xfffu + ((b >> 13) & 1u);
        return ll_bits_to_f32(b & ~0x1fffu);
    }
    return v;
}

/* A rounded copy of x [n] (in host memory: this backend's device memory is host memory). NULL: no memory. */
static float *rounded(const float *x, int64_t n, ll_dtype dt) {
    float *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
    if (y)
        for (int64_t i = 0; i < n; i++) y[i] = round_to(x[i], dt);
    return y;
}

/* Runs CALL with xr_ = x [n] rounded to dtype DT. */
#define WITH_ROUNDED(be, x, n, DT, CALL)                                                                 \
    do {                                                                                                 \
        float *xr_ = rounded((x), (n), (DT));                                                            \
        if (!xr_) return ll_fail(&(be)->err, LL_ERR_NOMEM, "stand-in: out of memory");                   \
        ll_status st_ = (CALL);                                                                          \
        free(xr_);                                                                                       \
        return st_;                                                                                      \
    } while (0)

static ll_status s_upload_weight(ll_backend *be, const void *src, ll_dtype dt, int64_t rows, int64_t cols, ll_wt *out) {
    ll_status st = g_cpu->upload_weight(be, src, dt, rows, cols, out);
    if (st != LL_OK || !out->data) return st;
    if (g_nw == g_capw) {
        int cap = g_capw ? 2 * g_capw : 256;
        wdt_entry *n = realloc(g_w, (size_t)cap * sizeof *n);
        if (!n) return ll_fail(&be->err, LL_ERR_NOMEM, "stand-in: out of memory");
        g_w = n;
        g_capw = cap;
    }
    g_w[g_nw++] = (wdt_entry){out->data, dt};
    return LL_OK;
}
static void s_free_weight(ll_backend *be, ll_wt *w) {
    for (int i = 0; w && i < g_nw; i++)
        if (g_w[i].data == w->data) g_w[i] = g_w[--g_nw];
    g_cpu->free_weight(be, w);
}
static ll_status s_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                          const ll_wt *bias, int64_t T, int64_t N, int64_t K) {
    WITH_ROUNDED(be, x, T * K, gemm_dtype(w), g_cpu->matmul(be, y, xr_, w, layout, bias, T, N, K));
}
/* lens_target_logits and lens_kl: x rounded to W_U's stored dtype, fp32 products (llc_round) */
static ll_status s_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu, const ll_wt *bu,
                                      const int32_t *target, int64_t R, int64_t d) {
    WITH_ROUNDED(be, x, R * d, stored_dtype(wu), g_cpu->lens_target_logits(be, zt, xr_, wu, bu, target, R, d));
}
static ll_status s_lens_pass_rounded(ll_backend *be, const ll_lens_pass_args *a, const float *xr) {
    ll_lens_pass_args b = *a;
    b.x = xr;
    return g_cpu->lens_pass(be, &b);
}
static ll_status s_lens_pass(ll_backend *be, const ll_lens_pass_args *a) {
    WITH_ROUNDED(be, a->x, a->R * a->d, lens_gemm_dtype(a->wu), s_lens_pass_rounded(be, a, xr_));
}

/* lens_expect with a 16-bit W_U, as lens_expect.cu computes it: logits z = W_U round(x) + b (fp32
 * products, double sums here), p = exp(z - lse), split into p_hi = round16(p), p_lo = round16(p - p_hi)
 * (for F16 of 2^15 p), and u = sum p' W_U / sum p', pb = sum p' b / sum p' with p' = p_hi + p_lo, the
 * value the real module's two GEMMs weigh W_U by. wu/bu data are the CPU backend's fp32 copies. */
static ll_status s_lens_expect_split(ll_backend *be, float *u, float *pb, const float *xr, const ll_wt *wu,
                                     const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V, ll_dtype wdt) {
    const float *w = wu->data, *b = bu && bu->data ? bu->data : NULL;
    double *acc = malloc((size_t)d * sizeof *acc);
    if (!acc) return ll_fail(&be->err, LL_ERR_NOMEM, "stand-in: out of memory");
    for (int64_t t = 0; t < T; t++) {
        const float *xt = xr + t * d;
        double ps = 0.0, pbs = 0.0;
        memset(acc, 0, (size_t)d * sizeof *acc);
        for (int64_t v = 0; v < V; v++) {
            const float *wv = w + v * d;
            double z = 0.0;
            for (int64_t i = 0; i < d; i++) z += (double)xt[i] * wv[i];
            const float bv = b ? b[v] : 0.0f;
            const float p = expf((float)z + bv - lse[t]);
            float pu;
            if (wdt == LL_DTYPE_BF16) {
                const float h = ll_bf16_to_f32(ll_f32_to_bf16(p));
                pu = h + ll_bf16_to_f32(ll_f32_to_bf16(p - h));
            } else {
                const float s = p * 32768.0f, h = ll_f16_to_f32(ll_f32_to_f16(s));
                pu = (h + ll_f16_to_f32(ll_f32_to_f16(s - h))) / 32768.0f;
            }
            const float pn = g_emu_psum_unsplit ? p : pu; /* what the normalizer and pb sum */
            ps += pn;
            pbs += (double)pn * bv;
            for (int64_t i = 0; i < d; i++) acc[i] += (double)pu * wv[i];
        }
        for (int64_t i = 0; i < d; i++) u[t * d + i] = (float)(acc[i] / ps);
        pb[t] = (float)(pbs / ps);
    }
    free(acc);
    return LL_OK;
}
static ll_status s_lens_expect_rounded(ll_backend *be, float *u, float *pb, const float *xr, const ll_wt *wu,
                                       const ll_wt *bu, const float *lse, int64_t T, int64_t d, int64_t V) {
    const ll_dtype wdt = stored_dtype(wu);
    if (wdt == LL_DTYPE_F32 || T <= 0) return g_cpu->lens_expect(be, u, pb, xr, wu, bu, lse, T, d, V);
    if (!u || !pb || !xr || !lse || !wu || !wu->data || wu->rows != V || wu->cols != d)
        return ll_fail(&be->err, LL_ERR_INTERNAL, "cuda lens_expect: invalid arguments");
    return s_lens_expect_split(be, u, pb, xr, wu, bu, lse, T, d, V, wdt);
}
static ll_status s_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu, const ll_wt *bu,
                               const float *lse, int64_t T, int64_t d, int64_t V) {
    WITH_ROUNDED(be, xf, T * d, lens_gemm_dtype(wu), s_lens_expect_rounded(be, u, pb, xr_, wu, bu, lse, T, d, V));
}
static ll_status s_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                           const float *hf, const float *lse, int64_t R, int64_t T, int64_t d) {
    WITH_ROUNDED(be, x, R * d, stored_dtype(wu), g_cpu->lens_kl(be, kl, xr_, wu, u, pb, hf, lse, R, T, d));
}
static ll_status s_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                              const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel, int64_t nv) {
    WITH_ROUNDED(be, x, R * d, lens_gemm_dtype(wu), g_cpu->lens_probs(be, out, xr_, wu, bu, lse, R, d, V, vsel, nv));
}

/* Whether LL_STANDIN_EMULATE names `what` (comma-separated list). */
static int emulates(const char *what) {
    const char *e = getenv("LL_STANDIN_EMULATE");
    size_t n = strlen(what);
    for (const char *p = e; p && *p;) {
        const char *q = strchr(p, ',');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == n && !strncmp(p, what, n)) return 1;
        p = q ? q + 1 : NULL;
    }
    return 0;
}

__attribute__((visibility("default"))) ll_status ll_backend_cuda_init(ll_backend *be, const ll_backend_opts *opts) {
    if (emulates("old-driver")) {
        be->ops = NULL;
        be->ctx = NULL;
        return ll_fail(&be->err, LL_ERR_BACKEND, "cuda: no CUDA device found (cudaGetDeviceCount: CUDA driver version "
                       "is insufficient for CUDA runtime version)");
    }
    ll_status st = ll_backend_cpu_init(be, opts);
    if (st != LL_OK) return st;
    g_emu_lens_tf32 = emulates("lens-tf32");
    g_emu_psum_unsplit = emulates("psum-unsplit");
    g_cpu = be->ops;
    g_tf32 = opts && opts->allow_tf32;
    g_ops = *g_cpu;
    g_ops.name = "cuda";
    g_ops.upload_weight = s_upload_weight;
    g_ops.free_weight = s_free_weight;
    g_ops.matmul = s_matmul;
    g_ops.lens_target_logits = s_lens_target_logits;
    g_ops.lens_pass = s_lens_pass;
    g_ops.lens_expect = s_lens_expect;
    g_ops.lens_kl = s_lens_kl;
    g_ops.lens_probs = s_lens_probs;
    be->ops = &g_ops;
    return LL_OK;
}
