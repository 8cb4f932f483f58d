/* cpu_act.c: elementwise activations, SwiGLU and the residual add.
 *
 * Math: GELU (tanh approximation "gelu_new", or exact erf) from ll_math.h, so both backends run the
 * same per-element formula; swiglu y = silu(gate) * up; add y += x. Layout: flat arrays of n floats;
 * swiglu's y may alias gate (each element is read before it is written). Precision: float32 per
 * element, as ll_math.h (expf, erff: about one ulp each). Threads: OpenMP over elements above
 * 32768 of them; deterministic. Test: tests/c/test_cpu_ops.c ("gelu_tanh", "gelu_erf", "swiglu", "add"). */
#include "cpu_internal.h"

#define ACT_PAR_MIN 32768

ll_status ll_cpu_act(ll_backend *be, float *x, int64_t n, ll_act kind) {
    if (n < 0 || (n > 0 && !x)) return ll_cpu_fail(be, LL_ERR_INTERNAL, "act", "bad array (n=%lld)", (long long)n);
    switch (kind) {
    case LL_ACT_GELU_TANH:
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) x[i] = ll_gelu_tanh(x[i]);
        return LL_OK;
    case LL_ACT_GELU_ERF:
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
        for (int64_t i = 0; i < n; i++) x[i] = ll_gelu_erf(x[i]);
        return LL_OK;
    }
    return ll_cpu_fail(be, LL_ERR_INTERNAL, "act", "unknown activation %d", (int)kind);
}

ll_status ll_cpu_swiglu(ll_backend *be, float *y, const float *gate, const float *up, int64_t n) {
    if (n < 0 || (n > 0 && (!y || !gate || !up)))
        return ll_cpu_fail(be, LL_ERR_INTERNAL, "swiglu", "bad arrays (n=%lld)", (long long)n);
#pragma omp parallel for schedule(static) if (n > ACT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = ll_silu(gate[i]) * up[i];
    return LL_OK;
}

ll_status ll_cpu_add(ll_backend *be, float *y, const float *x, int64_t n) {
    if (n < 0 || (n > 0 && (!y || !x)))
        return ll_cpu_fail(be, LL_ERR_INTERNAL, "add", "bad arrays (n=%lld)", (long long)n);
#pragma omp parallel for simd schedule(static) if (n > ACT_PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
    return LL_OK;
}
