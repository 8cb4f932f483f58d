/* standin_cuda.c: a stand-in for build/liblogitlens_cuda.so that runs on the CPU, so that the GPU test
 * harness itself (tests/gpu/test_backend_ops.c, tests/gpu/run_models.sh) is exercised on every `make
 * test` (`make test-gpu-harness`, mk/gpu_harness.mk): a harness that would fail correct CUDA code, or
 * crash, is found before the rare session that has a GPU.
 *
 * It exports ll_backend_cuda_init and names itself "cuda", and computes like the CPU backend except for
 * the one documented numerical difference of the real module (docs/cuda.md): with 16-bit weights, the
 * activations x are rounded to the weight's dtype before every matmul and lens GEMM (round to nearest
 * even, as llc_cast_from_f32), and with allow_tf32 fp32 weights see x rounded to TF32 (10-bit mantissa).
 * The CPU backend keeps weights as fp32 copies, so the stored dtype of each uploaded weight is tracked
 * here by its data pointer. Not a CUDA implementation: summation orders are the CPU's. */
#include "ll_backend.h"
#include "ll_math.h"

#include <stdlib.h>
#include <string.h>

static ll_backend_ops g_ops;
static const ll_backend_ops *g_cpu;
static int g_tf32;

typedef struct wdt_entry {
    const void *data;
    ll_dtype dtype;
} wdt_entry;
static wdt_entry *g_w;
static int g_nw, g_capw;

#define DT_TF32 ((ll_dtype)100) /* private marker: round to TF32 */

/* The dtype x is rounded to before a GEMM with w. */
static ll_dtype gemm_dtype(const ll_wt *w) {
    for (int i = 0; i < g_nw; i++)
        if (g_w[i].data == w->data) return g_w[i].dtype == LL_DTYPE_F32 && g_tf32 ? DT_TF32 : g_w[i].dtype;
    return g_tf32 ? DT_TF32 : LL_DTYPE_F32;
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

#define WITH_ROUNDED(be, x, n, w, CALL)                                                                  \
    do {                                                                                                 \
        float *xr_ = rounded((x), (n), gemm_dtype(w));                                                   \
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
    WITH_ROUNDED(be, x, T * K, w, g_cpu->matmul(be, y, xr_, w, layout, bias, T, N, K));
}
static ll_status s_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu, const ll_wt *bu,
                                      const int32_t *target, int64_t R, int64_t d) {
    WITH_ROUNDED(be, x, R * d, wu, g_cpu->lens_target_logits(be, zt, xr_, wu, bu, target, R, d));
}
static ll_status s_lens_pass_rounded(ll_backend *be, const ll_lens_pass_args *a, const float *xr) {
    ll_lens_pass_args b = *a;
    b.x = xr;
    return g_cpu->lens_pass(be, &b);
}
static ll_status s_lens_pass(ll_backend *be, const ll_lens_pass_args *a) {
    WITH_ROUNDED(be, a->x, a->R * a->d, a->wu, s_lens_pass_rounded(be, a, xr_));
}
static ll_status s_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu, const ll_wt *bu,
                               const float *lse, int64_t T, int64_t d, int64_t V) {
    WITH_ROUNDED(be, xf, T * d, wu, g_cpu->lens_expect(be, u, pb, xr_, wu, bu, lse, T, d, V));
}
static ll_status s_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                           const float *hf, const float *lse, int64_t R, int64_t T, int64_t d) {
    WITH_ROUNDED(be, x, R * d, wu, g_cpu->lens_kl(be, kl, xr_, wu, u, pb, hf, lse, R, T, d));
}
static ll_status s_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                              const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel, int64_t nv) {
    WITH_ROUNDED(be, x, R * d, wu, g_cpu->lens_probs(be, out, xr_, wu, bu, lse, R, d, V, vsel, nv));
}

__attribute__((visibility("default"))) ll_status ll_backend_cuda_init(ll_backend *be, const ll_backend_opts *opts) {
    ll_status st = ll_backend_cpu_init(be, opts);
    if (st != LL_OK) return st;
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
