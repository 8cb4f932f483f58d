/* cpu_attention.c: causal softmax attention within each packed prompt, with grouped-query heads.
 *
 * Math: for query token t of prompt j (tokens [off[j], off[j+1])) and query head h, with kv head
 * g = h / (n_heads / n_kv_heads):
 *     s_u = scale * q[t,h,:] . k[u,g,:]  for off[j] <= u <= t      (no attention across prompts)
 *     out[t, h*head_dim + i] = sum_u exp(s_u - max s) v[u,g,i] / sum_u exp(s_u - max s).
 * Layout: q/k/v are strided views (ll_attn_layout: element (t, h, i) at q[t*ldq + h*hsq + i]), which
 * covers GPT-2's fused [q|k|v] rows, GPT-NeoX's per-head [q_h k_h v_h] interleave and separate buffers;
 * out is [T, n_heads * head_dim] contiguous.
 * Precision: dot products in float over head_dim (eight-lane partial sums, vectorized); the softmax
 * subtracts the row max and uses the vectorized exp of cpu_exp.h (relative error < 1e-7); its
 * denominator is summed in double; the weighted sum of v rows in float (vectorized over head_dim),
 * then divided once. The normalized error against float64 stays below 1e-5 for rows of thousands of keys.
 * Threads: OpenMP over (token, head) pairs, dynamic schedule (a row's cost grows with its position);
 * each thread owns one row of scores (longest prompt) and one head_dim accumulator: no [T x T] buffer
 * is ever formed. Deterministic. Test: tests/c/test_cpu_ops.c ("attention"). */
#include "cpu_internal.h"

#include "cpu_exp.h"

#include <stdlib.h>

ll_status ll_cpu_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                           const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T) {
    const char *op = "attention";
    if (!L) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL layout");
    if (T < 0 || L->n_heads < 1 || L->n_kv_heads < 1 || L->n_heads % L->n_kv_heads != 0 || L->head_dim < 1)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld heads=%d kv_heads=%d head_dim=%d",
                           (long long)T, L->n_heads, L->n_kv_heads, L->head_dim);
    if (T == 0) return LL_OK;
    if (!out || !q || !k || !v || !off || n_prompts < 1)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL buffer or no prompts (n_prompts=%d)", n_prompts);
    if (off[0] != 0 || off[n_prompts] != T)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "prompt offsets span [%lld, %lld), expected [0, %lld)",
                           (long long)off[0], (long long)off[n_prompts], (long long)T);
    int64_t maxlen = 0;
    for (int j = 0; j < n_prompts; j++) {
        int64_t len = off[j + 1] - off[j];
        if (len < 0)
            return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "prompt %d has negative length %lld", j, (long long)len);
        if (len > maxlen) maxlen = len;
    }
    const int nh = L->n_heads, hd = L->head_dim, group = L->n_heads / L->n_kv_heads;
    const int64_t n_items = T * nh;
    const float scale = L->scale;
    int fail = 0;
#pragma omp parallel
    {
        float *sc = ll_cpu_aligned_alloc((size_t)maxlen, sizeof(float)); /* [maxlen] scores of one row */
        float *acc = ll_cpu_aligned_alloc((size_t)hd, sizeof(float));    /* [head_dim] */
        if (!sc || !acc) {
#pragma omp atomic write
            fail = 1;
        }
        int j = 0; /* prompt of the previous item: items come in increasing t within a chunk */
#pragma omp for schedule(dynamic, 4)
        for (int64_t it = 0; it < n_items; it++) {
            if (!sc || !acc) continue;
            int64_t t = it / nh;
            int h = (int)(it % nh), g = h / group;
            if (t < off[j] || t >= off[j + 1]) { /* binary search for the prompt holding t */
                int lo = 0, hi = n_prompts - 1;
                while (lo < hi) {
                    int mid = (lo + hi + 1) / 2;
                    if (off[mid] <= t) lo = mid;
                    else hi = mid - 1;
                }
                j = lo;
            }
            const int64_t s0 = off[j], n = t - s0 + 1;
            const float *qv = q + t * L->ldq + h * L->hsq; /* [head_dim] */
            float m = -INFINITY;
            for (int64_t u = 0; u < n; u++) {
                const float *kv = k + (s0 + u) * L->ldk + g * L->hsk; /* [head_dim] */
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < hd; i++) dot += qv[i] * kv[i];
                dot *= scale;
                sc[u] = dot;
                m = dot > m ? dot : m;
            }
            double den = 0.0;
#pragma omp simd reduction(+ : den)
            for (int64_t u = 0; u < n; u++) {
                float e = ll_cpu_exp_neg(ll_cpu_clamp_min(sc[u] - m, LL_CPU_EXP_MIN));
                sc[u] = e;
                den += e;
            }
            for (int i = 0; i < hd; i++) acc[i] = 0.0f;
            for (int64_t u = 0; u < n; u++) {
                const float *vv = v + (s0 + u) * L->ldv + g * L->hsv; /* [head_dim] */
                const float e = sc[u];
#pragma omp simd
                for (int i = 0; i < hd; i++) acc[i] += e * vv[i];
            }
            const float inv = (float)(1.0 / den);
            float *o = out + t * (int64_t)nh * hd + (int64_t)h * hd; /* [head_dim] */
            for (int i = 0; i < hd; i++) o[i] = acc[i] * inv;
        }
        free(sc);
        free(acc);
    }
    if (fail) return ll_cpu_fail(be, LL_ERR_NOMEM, op, "cannot allocate per-thread score rows (%lld floats)",
                                 (long long)maxlen);
    return LL_OK;
}
