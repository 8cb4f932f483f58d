/* rope.cu: rotate-half rotary position embedding, partial rotary, llama3 frequency scaling.
 *
 * Math: for each head h and pair i < rot_dim/2 (half = rot_dim/2), with a = pos[t] * inv_freq(i):
 *   x1 = x[h, i], x2 = x[h, i + half];  x[h, i] = x1 cos a - x2 sin a;  x[h, i + half] = x2 cos a + x1 sin a.
 *   Dims rot_dim .. head_dim-1 are untouched (GPT-NeoX rotary_pct < 1). inv_freq comes from
 *   ll_rope_inv_freq (ll_math.h: theta^(-2i/rot_dim), then llama3's wavelength-dependent scaling), in
 *   double, as on the CPU.
 * Layout: element (t, h, i) of x is x[t * ld + h * hs + i] (q or k inside a fused QKV row, or alone).
 * Precision: the angle, cos, sin and the rotation in double (positions up to 10^5 and more keep their
 *   fraction), rounded once to float, as on the CPU: the two agree to the last bit or one ulp.
 * Launch: one thread per (token, pair) in a grid-stride loop (int64 index), 256 threads; the thread
 *   computes cos/sin once and rotates that pair in every head. No shared memory.
 * Preconditions: rot_dim even, 2 <= rot_dim <= hs; pairs of different threads never
 *   overlap (distinct (t, h, i)), so the in-place update has no race.
 * Determinism: yes.
 * CPU reference: kernels/cpu (rope); test: tests/gpu/test_backend_ops.c, "rope". */
#include "cuda_common.cuh"

__global__ void llc_rope_kernel(float *x, int64_t T, int64_t ld, int n_heads, int64_t hs, ll_rope_params p,
                                const int32_t *__restrict__ pos) {
    const int half = p.rot_dim / 2;
    const int64_t n = T * half;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = e / half;
        const int i = (int)(e - t * half);
        const double a = (double)pos[t] * ll_rope_inv_freq(&p, i);
        const double cs = cos(a), sn = sin(a);
        float *xt = x + t * ld;
        for (int h = 0; h < n_heads; h++) {
            float *xh = xt + (int64_t)h * hs;
            const double x1 = xh[i], x2 = xh[i + half];
            xh[i] = (float)(x1 * cs - x2 * sn);
            xh[i + half] = (float)(x2 * cs + x1 * sn);
        }
    }
}

ll_status llc_rope(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                   const ll_rope_params *p, const int32_t *pos) {
    const char *op = "rope";
    LLC_REQUIRE(be, op, x && p && pos && T >= 0 && n_heads > 0 && ld > 0 && hs >= 0);
    LLC_REQUIRE(be, op, p->rot_dim >= 2 && p->rot_dim % 2 == 0 && p->theta > 0.0);
    LLC_REQUIRE(be, op, hs >= p->rot_dim);
    if (p->llama3)
        LLC_REQUIRE(be, op, p->factor > 0.0 && p->low_freq_factor > 0.0 &&
                                p->high_freq_factor > p->low_freq_factor && p->original_max_pos > 0.0);
    if (T == 0) return LL_OK;
    LLC_TRY(llc_enter(be, op));
    llc_ctx *c = llc_get(be);
    const int64_t n = T * (p->rot_dim / 2);
    llc_rope_kernel<<<llc_grid(c, n), LLC_THREADS, 0, c->stream>>>(x, T, ld, n_heads, hs, *p, pos);
    LLC_LAUNCHED(be, op);
    return LL_OK;
}
