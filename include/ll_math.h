/* ll_math.h: per-element math shared by the CPU and CUDA backends.
 *
 * Everything here is a static inline function usable from C11 and from CUDA device code, so the CPU
 * tests cover exactly the arithmetic the GPU kernels run: dtype conversions, activations, RoPE
 * frequencies (including llama3 scaling), and the online log-sum-exp state of the lens
 * (see docs/architecture.md, "The lens in one pass"). */
#ifndef LL_MATH_H
#define LL_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define LL_HD __host__ __device__ __forceinline__
#else
#define LL_HD static inline
#endif

/* ---- dtype conversion ------------------------------------------------------------------------ */

LL_HD float ll_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
LL_HD uint32_t ll_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* bfloat16 is the top half of an IEEE float32. */
LL_HD float ll_bf16_to_f32(uint16_t h) { return ll_bits_to_f32((uint32_t)h << 16); }

/* float32 -> bfloat16, round to nearest even; NaN stays NaN. */
LL_HD uint16_t ll_f32_to_bf16(float f) {
    uint32_t u = ll_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* IEEE binary16 -> float32, exact for every input including subnormals, Inf and NaN. */
LL_HD float ll_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalize */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while ((man & 0x400u) == 0);
            man &= 0x3ffu;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    return ll_bits_to_f32(u);
}

/* float32 -> IEEE binary16, round to nearest even, overflow to Inf, NaN kept. */
LL_HD uint16_t ll_f32_to_f16(float f) {
    uint32_t u = ll_f32_to_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to >= 65520: Inf */
    if (a < 0x38800000u) {                                   /* below 2^-14: subnormal or zero */
        if (a < 0x33000000u) return (uint16_t)sign;          /* below half the smallest subnormal */
        uint32_t e = a >> 23;
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 14..24 */
        uint32_t half = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1u))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15 */
    return (uint16_t)(sign | (r >> 13));
}

/* ---- activations ----------------------------------------------------------------------------- */

/* GPT-2's "gelu_new": 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), computed through the
 * identity 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)): one expf instead of tanhf (whose expm1f made GELU ~8%
 * of a CPU run), and no cancellation: the result keeps a few ulp of relative accuracy for every x
 * (exp overflowing to +inf for very negative x gives the correct -0). */
LL_HD float ll_gelu_tanh(float x) {
    const float k2 = 2.0f * 0.7978845608028654f;
    return x / (1.0f + expf(-k2 * (x + 0.044715f * x * x * x)));
}

/* Exact GELU: 0.5 x (1 + erf(x / sqrt 2)) (GPT-NeoX's "gelu"). */
LL_HD float ll_gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f)); }

/* SiLU(x) = x sigmoid(x); SwiGLU(g, u) = SiLU(g) u. */
LL_HD float ll_silu(float x) { return x / (1.0f + expf(-x)); }

/* ---- RoPE -------------------------------------------------------------------------------------- */

/* Parameters of rotate-half RoPE with optional llama3 frequency scaling. */
typedef struct ll_rope_params {
    int rot_dim;           /* rotated dims per head (even); head_dim for full rotary */
    double theta;          /* rope_theta (base) */
    int llama3;            /* 1 when rope_scaling.rope_type == "llama3" */
    double factor;         /* llama3: factor */
    double low_freq_factor;  /* llama3: low_freq_factor */
    double high_freq_factor; /* llama3: high_freq_factor */
    double original_max_pos; /* llama3: original_max_position_embeddings */
} ll_rope_params;

/* Inverse frequency of rotary pair i (0 <= i < rot_dim/2): theta^(-2i/rot_dim), then llama3's
 * wavelength-dependent scaling: long wavelengths divided by factor, short kept, a smooth blend
 * between. Computed in double: the float64 reference and both backends agree to the last bit. */
LL_HD double ll_rope_inv_freq(const ll_rope_params *p, int i) {
    double inv = pow(p->theta, -(2.0 * i) / (double)p->rot_dim);
    if (!p->llama3) return inv;
    const double pi = 3.14159265358979323846;
    double wavelen = 2.0 * pi / inv;
    double low_wavelen = p->original_max_pos / p->low_freq_factor;
    double high_wavelen = p->original_max_pos / p->high_freq_factor;
    if (wavelen < high_wavelen) return inv;
    if (wavelen > low_wavelen) return inv / p->factor;
    double smooth = (p->original_max_pos / wavelen - p->low_freq_factor) /
                    (p->high_freq_factor - p->low_freq_factor);
    return (1.0 - smooth) * inv / p->factor + smooth * inv;
}

/* ---- the lens: online log-sum-exp state -------------------------------------------------------- */

/* Running softmax statistics of one row over the vocabulary, relative to the running max m:
 * S = sum exp(z - m), U = sum exp(z - m) (z - m). LSE = m + log S, entropy H = log S - U / S. */
typedef struct ll_lse_state {
    float m;
    float S;
    float U;
} ll_lse_state;

LL_HD ll_lse_state ll_lse_init(void) {
    ll_lse_state s;
    s.m = -INFINITY;
    s.S = 0.0f;
    s.U = 0.0f;
    return s;
}

/* Merges two partial states (associative and commutative up to rounding). */
LL_HD ll_lse_state ll_lse_merge(ll_lse_state a, ll_lse_state b) {
    if (b.S == 0.0f) return a;
    if (a.S == 0.0f) return b;
    ll_lse_state r;
    r.m = a.m > b.m ? a.m : b.m;
    float da = a.m - r.m, db = b.m - r.m;
    float ea = expf(da), eb = expf(db);
    r.S = a.S * ea + b.S * eb;
    r.U = (a.U + da * a.S) * ea + (b.U + db * b.S) * eb;
    return r;
}

LL_HD float ll_lse_value(ll_lse_state s) { return s.m + logf(s.S); }
LL_HD float ll_lse_entropy(ll_lse_state s) {
    float h = logf(s.S) - s.U / s.S;
    return h > 0.0f ? h : 0.0f;
}

/* KL(p_f || p_l) from its terms combined in double (-H_f - sum p_f z_l + LSE_l): rounding can make it
 * slightly negative, which is clamped to 0 (never -0); a NaN term (an overflowing row) stays NaN so the
 * row is not silently reported as identical to the final layer. */
LL_HD float ll_kl_finish(double v) { return v != v ? (float)v : v > 0.0 ? (float)v : 0.0f; }

/* ---- the lens: running top-k ------------------------------------------------------------------- */

/* Inserts (id, val) into a descending top-k list of current length *n (capacity k). Ties keep the
 * smaller id first, so the result does not depend on the order tiles are visited in. */
LL_HD void ll_topk_insert(int32_t *ids, float *vals, int *n, int k, int32_t id, float val) {
    int pos = *n;
    if (pos == k) {
        float lv = vals[k - 1];
        if (val < lv || (val == lv && id > ids[k - 1])) return;
        pos = k - 1;
    } else {
        (*n)++;
    }
    while (pos > 0 && (vals[pos - 1] < val || (vals[pos - 1] == val && ids[pos - 1] > id))) {
        vals[pos] = vals[pos - 1];
        ids[pos] = ids[pos - 1];
        pos--;
    }
    vals[pos] = val;
    ids[pos] = id;
}

#endif
