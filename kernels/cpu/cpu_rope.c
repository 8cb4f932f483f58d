/* cpu_rope.c: rotary position embedding, rotate-half form (GPT-NeoX, Llama), partial rotary allowed.
 *
 * Math: for each head and each pair i < rot_dim/2, with a = pos * inv_freq(i) (ll_rope_inv_freq,
 * llama3 scaling included), x1 = x[i], x2 = x[i + rot_dim/2]:
 *     x[i] = x1 cos a - x2 sin a,   x[i + rot_dim/2] = x2 cos a + x1 sin a.
 * Dims rot_dim .. head_dim-1 are untouched (GPT-NeoX rotary_pct < 1).
 * Layout: element (t, h, i) at x[t * ld + h * hs + i], so q and k can be rotated in place inside a
 * fused qkv buffer.
 * Precision: the angle, its cosine and sine and the rotation are computed in double and rounded once
 * (positions reach 1e5 and more: a float angle would lose most of its fraction).
 * Threads: OpenMP over tokens; cos/sin computed once per (token, pair) and reused for every head;
 * deterministic. Test: tests/c/test_cpu_ops.c ("rope"). */
#include "cpu_internal.h"

#include <math.h>
#include <stdlib.h>

ll_status ll_cpu_rope(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                      const ll_rope_params *p, const int32_t *pos) {
    const char *op = "rope";
    if (!p) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL parameters");
    if (T < 0 || n_heads < 1 || p->rot_dim < 2 || p->rot_dim % 2 != 0 || hs < p->rot_dim || ld < 0)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld ld=%lld heads=%d hs=%lld rot_dim=%d",
                           (long long)T, (long long)ld, n_heads, (long long)hs, p->rot_dim);
    if (!(p->theta > 0.0)) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "theta %g is not > 0", p->theta);
    if (T == 0) return LL_OK;
    if (!x || !pos) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL x or positions");
    int half = p->rot_dim / 2;
    double *inv = malloc((size_t)half * sizeof *inv);
    if (!inv) return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate %d frequencies", half);
    for (int i = 0; i < half; i++) inv[i] = ll_rope_inv_freq(p, i);
    int fail = 0;
#pragma omp parallel
    {
        double *cs = malloc((size_t)half * 2 * sizeof *cs); /* [half] cos, then [half] sin */
        if (!cs) {
#pragma omp atomic write
            fail = 1;
        }
#pragma omp for schedule(static)
        for (int64_t t = 0; t < T; t++) {
            if (!cs) continue;
            for (int i = 0; i < half; i++) {
                double a = (double)pos[t] * inv[i];
                cs[i] = cos(a);
                cs[half + i] = sin(a);
            }
            for (int h = 0; h < n_heads; h++) {
                float *xh = x + t * ld + h * hs; /* [head_dim] */
                for (int i = 0; i < half; i++) {
                    double x1 = xh[i], x2 = xh[i + half];
                    xh[i] = (float)(x1 * cs[i] - x2 * cs[half + i]);
                    xh[i + half] = (float)(x2 * cs[i] + x1 * cs[half + i]);
                }
            }
        }
        free(cs);
    }
    free(inv);
    if (fail) return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate per-thread cos/sin scratch");
    return LL_OK;
}
