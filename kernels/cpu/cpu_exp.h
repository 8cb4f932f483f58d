/* cpu_exp.h: a branch-free float exp for non-positive arguments, written so that gcc vectorizes the
 * loops that call it (the lens epilogue, the attention softmax).
 *
 * Math: exp(x) = 2^n exp(r) with n = nearest integer to x log2(e) and r = x - n ln2 (Cody-Waite split of
 * ln2 into a 16-bit head, exact when multiplied by |n| <= 126, and a tail), |r| <= ln2/2 = 0.347.
 * exp(r) is the Taylor polynomial of degree 7 (truncation error r^8/8! < 5.3e-9);
 * 2^n is built from the exponent bits. Measured relative error against exp() in double is below
 * 8.5e-8 on [-87.3, 0] (tests/c/test_cpu_ops.c, case "exp_neg").
 *
 * Domain: callers clamp x to [LL_CPU_EXP_MIN, 0] with ll_cpu_clamp_min (small positive x, up to 88, is
 * also exact to the same accuracy). exp(-87.3) = 1.2e-38 is the smallest normal
 * float, so the clamp changes a sum of exponentials that contains at least one exp(0) = 1 by
 * less than 1e-37. No NaN handling: a NaN argument gives an unspecified value. */
#ifndef LL_CPU_EXP_H
#define LL_CPU_EXP_H

#include <stdint.h>
#include <string.h>

#define LL_CPU_EXP_MIN (-87.3f)

/* max(t, c) for a non-NaN c, written as a compare and bit masks: gcc -O2 (vect-cost-model very-cheap)
 * refuses to if-convert a `t < c ? c : t` inside a loop, and fmaxf needs -ffinite-math-only, but it
 * vectorizes this. A NaN t stays NaN. */
static inline float ll_cpu_clamp_min(float t, float c) {
    int32_t m = -(int32_t)(t < c); /* all ones where t < c */
    int32_t bt, bc;
    memcpy(&bt, &t, sizeof bt);
    memcpy(&bc, &c, sizeof bc);
    bt = (bt & ~m) | (bc & m);
    memcpy(&t, &bt, sizeof t);
    return t;
}

/* v where t >= c, else +0 (also +0 where t is NaN); vectorizes like ll_cpu_clamp_min. Used to drop
 * the terms of logits below the exp clamp exactly, so that a -inf logit (a masked id) contributes 0
 * and not 1.2e-38 * (-inf) = -inf to a sum of p * b. */
static inline float ll_cpu_keep_ge(float v, float t, float c) {
    int32_t m = -(int32_t)(t >= c); /* all ones where kept */
    int32_t bv;
    memcpy(&bv, &v, sizeof bv);
    bv &= m;
    memcpy(&v, &bv, sizeof v);
    return v;
}

static inline float ll_cpu_exp_neg(float x) {
    const float log2e = 1.44269504088896341f;
    const float ln2_hi = 0.693145751953125f;       /* 0x3f317200: 16 significant bits */
    const float ln2_lo = 1.42860682030941723212e-6f; /* ln2 - ln2_hi */
    const float round_magic = 12582912.0f;          /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * log2e + round_magic) - round_magic;
    float r = x - n * ln2_hi;
    r = r - n * ln2_lo;
    /* exp(r) = 1 + (r + r^2 q(r)), q = 1/2 + r/6 + ... + r^5/7!: adding the small part to 1 last keeps
     * the result within about 0.7 ulp (a plain Horner chain ending in `p * r + 1` reaches 1.2 ulp) */
    float q = 1.0f / 5040.0f;
    q = q * r + 1.0f / 720.0f;
    q = q * r + 1.0f / 120.0f;
    q = q * r + 1.0f / 24.0f;
    q = q * r + 1.0f / 6.0f;
    q = q * r + 0.5f;
    float p = 1.0f + (r + (r * r) * q);
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

#endif
