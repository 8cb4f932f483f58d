/* cpu_attention.c: causal softmax attention within each packed prompt, with grouped-query heads.
 *
 * Math: for query token t of prompt j (tokens [off[j], off[j+1])) and query head h, with kv head
 * g = h / (n_heads / n_kv_heads):
 *     s_u = scale * q[t,h,:] . k[u,g,:]  for off[j] <= u <= t      (no attention across prompts)
 *                                        and t - window < u when L->window > 0 (sliding window)
 *     out[t, h*head_dim + i] = sum_u exp(s_u - max s) v[u,g,i] / sum_u exp(s_u - max s).
 * Layout: q/k/v are strided views (ll_attn_layout: element (t, h, i) at q[t*ldq + h*hsq + i]), which
 * covers GPT-2's fused [q|k|v] rows, GPT-NeoX's per-head [q_h k_h v_h] interleave and separate buffers;
 * out is [T, n_heads * head_dim] contiguous.
 * Precision: dot products in float (vector lanes, four keys at a time); the softmax subtracts the row
 * max and uses the polynomial exp of cpu_exp.h (relative error < 1e-7), its denominator summed in
 * double; the weighted sum of v rows in float, divided once at the end. Normalized error against
 * float64 stays below 1e-5 for prompts of hundreds of tokens (tests/c/test_cpu_ops.c, "attention").
 * Threads: OpenMP over (prompt, head, query row) items in that order, dynamic schedule (a row's cost
 * grows with its position): consecutive items share a head, so its K and V rows stay in cache. Each
 * thread owns one row of scores (the longest prompt) and one head_dim accumulator: no [T x T] buffer
 * is ever formed. The row kernel is built for AVX2 and the baseline (LL_CPU_CLONES). Deterministic. */
#include "cpu_internal.h"

#include "cpu_exp.h"

#include <stdlib.h>

/* One query row: n keys starting at kb / vb (row strides ldk / ldv), scores scratch sc[n], acc[hd]. */
LL_CPU_CLONES
static void attn_row(float *o, const float *qv, const float *kb, int64_t ldk, const float *vb, int64_t ldv, int64_t n,
                     int hd, float scale, float *sc, float *acc) {
    float m = -INFINITY;
    int64_t u = 0;
    for (; u + 4 <= n; u += 4) { /* four dot products per pass over q: one horizontal sum per key */
        const float *k0 = kb + u * ldk, *k1 = k0 + ldk, *k2 = k1 + ldk, *k3 = k2 + ldk;
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma omp simd reduction(+ : d0, d1, d2, d3)
        for (int i = 0; i < hd; i++) {
            d0 += qv[i] * k0[i];
            d1 += qv[i] * k1[i];
            d2 += qv[i] * k2[i];
            d3 += qv[i] * k3[i];
        }
        sc[u] = d0 * scale;
        sc[u + 1] = d1 * scale;
        sc[u + 2] = d2 * scale;
        sc[u + 3] = d3 * scale;
    }
    for (; u < n; u++) {
        const float *k0 = kb + u * ldk;
        float d0 = 0.0f;
#pragma omp simd reduction(+ : d0)
        for (int i = 0; i < hd; i++) d0 += qv[i] * k0[i];
        sc[u] = d0 * scale;
    }
#pragma omp simd reduction(max : m)
    for (int64_t w = 0; w < n; w++) m = sc[w] > m ? sc[w] : m;
    double den = 0.0;
#pragma omp simd reduction(+ : den)
    for (int64_t w = 0; w < n; w++) {
        float e = ll_cpu_exp_neg(ll_cpu_clamp_min(sc[w] - m, LL_CPU_EXP_MIN));
        sc[w] = e;
        den += e;
    }
#pragma omp simd
    for (int i = 0; i < hd; i++) acc[i] = 0.0f;
    u = 0;
    for (; u + 4 <= n; u += 4) {
        const float *v0 = vb + u * ldv, *v1 = v0 + ldv, *v2 = v1 + ldv, *v3 = v2 + ldv;
        const float e0 = sc[u], e1 = sc[u + 1], e2 = sc[u + 2], e3 = sc[u + 3];
#pragma omp simd
        for (int i = 0; i < hd; i++) acc[i] += e0 * v0[i] + e1 * v1[i] + e2 * v2[i] + e3 * v3[i];
    }
    for (; u < n; u++) {
        const float *v0 = vb + u * ldv;
        const float e0 = sc[u];
#pragma omp simd
        for (int i = 0; i < hd; i++) acc[i] += e0 * v0[i];
    }
    const float inv = (float)(1.0 / den);
#pragma omp simd
    for (int i = 0; i < hd; i++) o[i] = acc[i] * inv;
}

ll_status ll_cpu_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                           const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T) {
    const char *op = "attention";
    if (!L) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL layout");
    if (T < 0 || L->n_heads < 1 || L->n_kv_heads < 1 || L->n_heads % L->n_kv_heads != 0 || L->head_dim < 1 ||
        L->window < 0)
        return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld heads=%d kv_heads=%d head_dim=%d window=%lld",
                           (long long)T, L->n_heads, L->n_kv_heads, L->head_dim, (long long)L->window);
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
    const int64_t n_items = T * nh; /* item i of prompt j: i - nh*off[j] = h * len_j + (t - off[j]) */
    int fail = 0;
#pragma omp parallel
    {
        float *sc = ll_cpu_aligned_alloc((size_t)maxlen, sizeof(float)); /* [maxlen] scores of one row */
        float *acc = ll_cpu_aligned_alloc((size_t)hd, sizeof(float));    /* [head_dim] */
        if (!sc || !acc) {
#pragma omp atomic write
            fail = 1;
        }
        int j = 0; /* prompt of the previous item */
#pragma omp for schedule(dynamic, 8)
        for (int64_t it = 0; it < n_items; it++) {
            if (!sc || !acc) continue;
            if (it < nh * off[j] || it >= nh * off[j + 1]) { /* binary search: last j with nh*off[j] <= it */
                int lo = 0, hi = n_prompts - 1;
                while (lo < hi) {
                    int mid = (lo + hi + 1) / 2;
                    if (nh * off[mid] <= it) lo = mid;
                    else hi = mid - 1;
                }
                j = lo;
            }
            const int64_t s0 = off[j], len = off[j + 1] - s0, local = it - nh * s0;
            const int h = (int)(local / len), g = h / group;
            const int64_t t = s0 + local % len;
            const int64_t u0 = L->window > 0 && t - L->window + 1 > s0 ? t - L->window + 1 : s0; /* first key */
            float *o = out + t * (int64_t)nh * hd + (int64_t)h * hd; /* [head_dim] */
            attn_row(o, q + t * L->ldq + h * L->hsq, k + u0 * L->ldk + g * L->hsk, L->ldk, v + u0 * L->ldv + g * L->hsv,
                     L->ldv, t - u0 + 1, hd, L->scale, sc, acc);
        }
        free(sc);
        free(acc);
    }
    if (fail) return ll_cpu_fail(be, LL_ERR_NOMEM, op,
                                 "cannot allocate per-thread score rows (%lld floats)", (long long)maxlen);
    return LL_OK;
}
