/* cpu_embed.c: token (and learned position) embedding lookup.
 *
 * Math: x[t, :] = wte[ids[t], :] (+ wpe[pos[t], :] when wpe is given, GPT-2). Layout: wte [V, d],
 * wpe [n_positions, d], x [T, d], all row-major F32. Precision: a copy and at most one float add per
 * element, so the result is exact (bitwise equal to float(wte + wpe)). Every id and position is
 * checked against the table first; nothing is written when one is out of range. Threads: OpenMP over
 * tokens. Test: tests/c/test_cpu_ops.c ("embed"). */
#include "cpu_internal.h"

#include <string.h>

ll_status ll_cpu_embed(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                       const int32_t *pos, int64_t T, int64_t d) {
    const char *op = "embed";
    if (T < 0 || d < 1) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "bad shape T=%lld d=%lld", (long long)T, (long long)d);
    if (T == 0) return LL_OK;
    if (!x || !ids) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "NULL output or ids");
    ll_status st = ll_cpu_check_mat(be, op, "wte", wte, wte ? wte->rows : 0, d);
    if (st) return st;
    if (wpe) {
        if ((st = ll_cpu_check_mat(be, op, "wpe", wpe, wpe->rows, d))) return st;
        if (!pos) return ll_cpu_fail(be, LL_ERR_INTERNAL, op, "position table given without positions");
    }
    for (int64_t t = 0; t < T; t++) {
        if (ids[t] < 0 || ids[t] >= wte->rows)
            return ll_cpu_fail(be, LL_ERR_INPUT, op, "token id %d at token %lld is outside the vocabulary [0, %lld)",
                               (int)ids[t], (long long)t, (long long)wte->rows);
        if (wpe && (pos[t] < 0 || pos[t] >= wpe->rows))
            return ll_cpu_fail(be, LL_ERR_INPUT, op,
                               "position %d at token %lld is outside the position table [0, %lld)", (int)pos[t],
                               (long long)t, (long long)wpe->rows);
    }
    const float *te = wte->data;
    const float *pe = wpe ? wpe->data : NULL;
#pragma omp parallel for schedule(static) if (T * d > 32768)
    for (int64_t t = 0; t < T; t++) {
        float *xr = x + t * d;                 /* [d] */
        const float *er = te + ids[t] * d;     /* [d] */
        if (pe) {
            const float *pr = pe + pos[t] * d; /* [d] */
            for (int64_t i = 0; i < d; i++) xr[i] = er[i] + pr[i];
        } else {
            memcpy(xr, er, (size_t)d * sizeof(float));
        }
    }
    return LL_OK;
}
