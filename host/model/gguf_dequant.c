/* gguf_dequant.c: GGUF tensor data to float32, bit-exact with the reference dequantization (the `gguf`
 * Python package's gguf.quants.dequantize, 0.19.0, which follows ggml's dequantize_row_* functions).
 *
 * Every format is a sequence of independent blocks of QK elements; a block's bytes are listed below in
 * file order (little-endian; "f16" is an IEEE binary16 scale, converted exactly to float32 first). Each
 * output element is one or two float32 operations on float32 operands, each rounded to float32 in the
 * order written: the reference computes in numpy float32 arrays (never in float16).
 *
 *   F32   QK 1    4 B   x
 *   F16   QK 1    2 B   f16 -> f32 (exact; NaN payloads kept, as numpy's conversion keeps them)
 *   BF16  QK 1    2 B   the top half of a float32 (bits << 16, NaN payloads kept)
 *   Q4_0  QK 32  18 B   f16 d, u8 qs[16]            q = nibble - 8 in [-8, 7]         y = d * q
 *   Q4_1  QK 32  20 B   f16 d, f16 m, u8 qs[16]     q = nibble in [0, 15]             y = (d * q) + m
 *   Q5_0  QK 32  22 B   f16 d, u32 qh, u8 qs[16]    q = (nibble | bit << 4) - 16      y = d * q
 *   Q5_1  QK 32  24 B   f16 d, f16 m, u32 qh, qs[16] q = nibble | bit << 4           y = (d * q) + m
 *   Q8_0  QK 32  34 B   f16 d, i8 qs[32]                                              y = d * q
 *     In the 32-element formats element j < 16 takes the low nibble of qs[j], element j + 16 the high
 *     nibble; the fifth bit of element j is bit j of qh.
 *
 * The K-quants have 256-element super-blocks with one or two f16 scales and a small scale per sub-block
 * of 16 or 32 elements, multiplied into the f16 scale first as the reference does (exact either way, see
 * Precision):  y = (d * sc) * q - (dmin * mn).
 *   Q2_K  84 B   u8 scales[16], u8 qs[64], f16 d, f16 dmin
 *         16 sub-blocks of 16: sc = scales[s] & 15, mn = scales[s] >> 4;
 *         element o = 128 h + 32 k + j (h < 2, k < 4, j < 32): q = (qs[32 h + j] >> 2 k) & 3.
 *   Q3_K  110 B  u8 hmask[32], u8 qs[64], u8 scales[12], f16 d          y = (d * sc) * q
 *         16 sub-blocks of 16, sc a 6-bit value - 32: low 4 bits are the low (s < 8) or high (s >= 8)
 *         nibble of scales[s % 8], high 2 bits are bits 2 (s / 4) of scales[8 + s % 4];
 *         element o = 128 h + 32 k + j: q = ((qs[32 h + j] >> 2 k) & 3) - 4 unless bit (o / 32) of
 *         hmask[j] is set (a set bit means no offset: the stored bit is the inverse of a sign).
 *   Q4_K  144 B  f16 d, f16 dmin, u8 scales[12], u8 qs[128]
 *         8 sub-blocks of 32 with 6-bit sc and mn packed in scales[12]: for s < 4 sc = scales[s] & 63,
 *         mn = scales[s + 4] & 63; for s >= 4 sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4,
 *         mn = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
 *         element 32 s + j: q = nibble (s odd: high, even: low) of qs[32 (s / 2) + j].
 *   Q5_K  176 B  f16 d, f16 dmin, u8 scales[12], u8 qh[32], u8 qs[128]
 *         as Q4_K, and q gains bit s of qh[j] as its fifth bit.
 *   Q6_K  210 B  u8 ql[128], u8 qh[64], i8 scales[16], f16 d              y = (d * sc) * q
 *         16 sub-blocks of 16; element o = 128 h + r (r < 128): q = (low 4 bits | high 2 bits << 4)
 *         - 32 with the low bits the (r / 64)-th nibble of ql[64 h + r % 64] and the high bits bits
 *         2 (r / 32) of qh[32 h + r % 32].
 *
 * Precision: every product here is exact in float32. An f16 scale has at most 11 significant bits and
 * the integers it multiplies (q, or a sub-block scale times q) at most 12 together (Q6_K's int8 scale
 * times a 6-bit q; Q8_0's int8 q alone has 7), so no product needs more than 23 of float32's 24 bits, and
 * none over- or underflows (f16 subnormals are normal float32 numbers). The only rounded operation is the
 * final add or subtract of the min, once, in float32. Hence the order of the products, and whether a
 * compiler fuses a multiply-add, cannot change a bit (the tests pass with FMA contraction forced on).
 * What would: float16 arithmetic, a sum rounded through double first (double rounding), or anything that
 * changes the sign of a zero (d < 0 times q = 0 is -0.0; adding 0.0f to it is not a no-op). Subnormal
 * float32 values never occur (every value is a multiple of 2^-24), so flush-to-zero modes are harmless.
 *
 * Source bytes may be unaligned (a memory-mapped file): multi-byte fields are read through memcpy.
 * Threads: OpenMP over blocks (runs of 4096 elements for F32/F16/BF16), static schedule, one thread below
 * 64K elements; each block's loops are written to vectorize with baseline SSE2 at -O2 (omp simd where
 * gcc would not). Deterministic, and elementwise, so the split cannot change a bit. Throughput: at or
 * near the memory bandwidth for every type (bench/gguf/, bench/README.md).
 * Tests: tests/test_gguf_dequant.py (through tools/gguf_dequant.c) against gguf.quants.dequantize on
 * every type, quantized and random blocks, odd shapes. */
#include "ll_gguf.h"
#include "ll_math.h"

#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_dequant.c reads GGUF's little-endian fields directly: big-endian hosts are not supported"
#endif

#define QK_K 256
/* Elements below which one thread does the whole tensor: waking a team of threads costs microseconds,
 * about the time one thread takes to write 64K floats (256 KiB). */
#define DQ_PAR_MIN_ELEMS 65536

/* OpenMP: threads over blocks, and simd on the loops gcc -O2 does not vectorize by itself (a 2-5x
 * difference); plain loops when built without -fopenmp (the fuzz builds). */
#if defined(_OPENMP)
#define DQ_SIMD _Pragma("omp simd")
#define DQ_PARALLEL_FOR _Pragma("omp parallel for schedule(static) if (n >= DQ_PAR_MIN_ELEMS)")
#else
#define DQ_SIMD
#define DQ_PARALLEL_FOR
#endif

static inline float rd_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return ll_f16_to_f32(h);
}

/* ---- one block each: b is the block's first byte, y its QK outputs ---- */

static inline void dq_q4_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    const uint8_t *qs = b + 2;
    DQ_SIMD
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((qs[j] & 0x0f) - 8);
        y[j + 16] = d * (float)((qs[j] >> 4) - 8);
    }
}

static inline void dq_q4_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), m = rd_f16(b + 2);
    const uint8_t *qs = b + 4;
    DQ_SIMD
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(qs[j] & 0x0f) + m;
        y[j + 16] = d * (float)(qs[j] >> 4) + m;
    }
}

/* Bit j of a u32, as a table: a lane-wise (qh & bit_j[j]) vectorizes, (qh >> j) & 1 with SSE2 does not
 * (no per-lane shift), which made Q5 three times slower than Q4. */
static const uint32_t bit_j[32] = {
    1u << 0,  1u << 1,  1u << 2,  1u << 3,  1u << 4,  1u << 5,  1u << 6,  1u << 7,
    1u << 8,  1u << 9,  1u << 10, 1u << 11, 1u << 12, 1u << 13, 1u << 14, 1u << 15,
    1u << 16, 1u << 17, 1u << 18, 1u << 19, 1u << 20, 1u << 21, 1u << 22, 1u << 23,
    1u << 24, 1u << 25, 1u << 26, 1u << 27, 1u << 28, 1u << 29, 1u << 30, 1u << 31,
};

static inline void dq_q5_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    uint32_t qh;
    memcpy(&qh, b + 2, 4);
    const uint8_t *qs = b + 6;
    DQ_SIMD
    for (int j = 0; j < 16; j++) {
        const int32_t lo = (int32_t)(qs[j] & 0x0f) | ((qh & bit_j[j]) ? 16 : 0);
        const int32_t hi = (int32_t)(qs[j] >> 4) | ((qh & bit_j[j + 16]) ? 16 : 0);
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static inline void dq_q5_1(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), m = rd_f16(b + 2);
    uint32_t qh;
    memcpy(&qh, b + 4, 4);
    const uint8_t *qs = b + 8;
    DQ_SIMD
    for (int j = 0; j < 16; j++) {
        const int32_t lo = (int32_t)(qs[j] & 0x0f) | ((qh & bit_j[j]) ? 16 : 0);
        const int32_t hi = (int32_t)(qs[j] >> 4) | ((qh & bit_j[j + 16]) ? 16 : 0);
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static inline void dq_q8_0(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b);
    const int8_t *qs = (const int8_t *)(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)qs[j];
}

static inline void dq_q2_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *scales = b, *qs = b + 16;
    const float d = rd_f16(b + 80), dmin = rd_f16(b + 82);
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++)
            for (int half = 0; half < 2; half++) {
                const int s = 8 * h + 2 * k + half; /* sub-block of 16 */
                const float dl = d * (float)(scales[s] & 0x0f), ml = dmin * (float)(scales[s] >> 4);
                const uint8_t *q = qs + 32 * h + 16 * half;
                float *o = y + 128 * h + 32 * k + 16 * half;
                for (int j = 0; j < 16; j++) o[j] = dl * (float)((q[j] >> (2 * k)) & 3) - ml;
            }
}

static inline void dq_q3_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *hmask = b, *qs = b + 32, *sc = b + 96;
    const float d = rd_f16(b + 108);
    float dl[16];
    for (int s = 0; s < 16; s++) {
        const int lo = (s < 8 ? sc[s] : sc[s - 8] >> 4) & 0x0f;
        const int hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
        dl[s] = d * (float)((lo | hi << 4) - 32);
    }
    for (int h = 0; h < 2; h++)
        for (int k = 0; k < 4; k++) {
            const int bit = 4 * h + k; /* = o / 32 */
            const uint8_t *q = qs + 32 * h;
            float *o = y + 128 * h + 32 * k;
            const float d0 = dl[2 * bit], d1 = dl[2 * bit + 1];
            for (int j = 0; j < 16; j++)
                o[j] = d0 * (float)(((q[j] >> (2 * k)) & 3) - (((hmask[j] >> bit) & 1) ? 0 : 4));
            for (int j = 16; j < 32; j++)
                o[j] = d1 * (float)(((q[j] >> (2 * k)) & 3) - (((hmask[j] >> bit) & 1) ? 0 : 4));
        }
}

/* The 6-bit scale and min of sub-block s (Q4_K, Q5_K). */
static inline void k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 0x0f) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

static inline void dq_q4_k(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *sc = b + 4, *qs = b + 16;
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(sc, s, &scale, &min);
        const float dl = d * (float)scale, ml = dmin * (float)min;
        const uint8_t *q = qs + 32 * (s / 2);
        const int shift = 4 * (s & 1);
        float *o = y + 32 * s;
        for (int j = 0; j < 32; j++) o[j] = dl * (float)((q[j] >> shift) & 0x0f) - ml;
    }
}

static inline void dq_q5_k(const uint8_t *restrict b, float *restrict y) {
    const float d = rd_f16(b), dmin = rd_f16(b + 2);
    const uint8_t *sc = b + 4, *qh = b + 16, *qs = b + 48;
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(sc, s, &scale, &min);
        const float dl = d * (float)scale, ml = dmin * (float)min;
        const uint8_t *q = qs + 32 * (s / 2);
        const int shift = 4 * (s & 1);
        float *o = y + 32 * s;
        for (int j = 0; j < 32; j++)
            o[j] = dl * (float)(((q[j] >> shift) & 0x0f) | ((qh[j] >> s) & 1) << 4) - ml;
    }
}

static inline void dq_q6_k(const uint8_t *restrict b, float *restrict y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    const float d = rd_f16(b + 208);
    for (int h = 0; h < 2; h++)
        for (int part = 0; part < 8; part++) { /* r = 16 part + j */
            const float dl = d * (float)sc[8 * h + part];
            const int r0 = 16 * part;
            const uint8_t *l = ql + 64 * h + r0 % 64, *hh = qh + 32 * h + r0 % 32;
            const int lshift = 4 * (r0 / 64), hshift = 2 * (r0 / 32);
            float *o = y + 128 * h + r0;
            for (int j = 0; j < 16; j++)
                o[j] = dl * (float)((((l[j] >> lshift) & 0x0f) | ((hh[j] >> hshift) & 3) << 4) - 32);
        }
}

/* ---- element formats, over runs of m elements ---- */

/* IEEE binary16 -> float32 without branches, for whole F16 tensors: ll_f16_to_f32 (used for the block
 * scales) renormalizes subnormals in a loop, which keeps a loop over a tensor from vectorizing (F16 was
 * 5x slower than memcpy). Shift the exponent and mantissa into place and rebias the exponent by
 * 127 - 15; Inf and NaN (exponent 31) get the same rebias again, reaching 255 with the payload kept, as
 * numpy keeps it; zero and subnormals (exponent 0) become 2^-14 (1 + m / 1024) - 2^-14 = m 2^-24, an
 * exact float32 subtraction of normal numbers (so correct under DAZ/FTZ too). The test checks all
 * 65536 inputs. */
static inline uint32_t f16_bits_to_f32_bits(uint32_t h) {
    const uint32_t shifted = (h & 0x7fffu) << 13, exp = shifted & 0x0f800000u;
    uint32_t o = shifted + 0x38000000u;
    o += (0u - (uint32_t)(exp == 0x0f800000u)) & 0x38000000u;
    const uint32_t small = ll_f32_to_bits(ll_bits_to_f32(o + 0x00800000u) - 0x1p-14f);
    const uint32_t is_small = 0u - (uint32_t)(exp == 0);
    return ((h & 0x8000u) << 16) | (is_small & small) | (~is_small & o);
}

static inline void dq_f16_run(const uint8_t *restrict b, float *restrict y, int64_t m) {
    DQ_SIMD
    for (int64_t i = 0; i < m; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        y[i] = ll_bits_to_f32(f16_bits_to_f32_bits(h));
    }
}

static inline void dq_bf16_run(const uint8_t *restrict b, float *restrict y, int64_t m) {
    DQ_SIMD
    for (int64_t i = 0; i < m; i++) {
        uint16_t h;
        memcpy(&h, b + 2 * i, 2);
        y[i] = ll_bf16_to_f32(h);
    }
}

static inline void dq_f32_run(const uint8_t *restrict b, float *restrict y, int64_t m) {
    memcpy(y, b, (size_t)m * sizeof *y);
}

int ll_gguf_dequant_supported(uint32_t type) {
    switch (type) {
    case LL_GGUF_T_F32:
    case LL_GGUF_T_F16:
    case LL_GGUF_T_BF16:
    case LL_GGUF_T_Q8_0:
    case LL_GGUF_T_Q4_0:
    case LL_GGUF_T_Q4_1:
    case LL_GGUF_T_Q5_0:
    case LL_GGUF_T_Q5_1:
    case LL_GGUF_T_Q2_K:
    case LL_GGUF_T_Q3_K:
    case LL_GGUF_T_Q4_K:
    case LL_GGUF_T_Q5_K:
    case LL_GGUF_T_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* Runs fn over the n / QK blocks of BYTES bytes each, on OpenMP threads when n is large. */
#define DQ_BLOCKS(fn, QK, BYTES)                                                                           \
    do {                                                                                                   \
        LL_ASSERT(n % (QK) == 0);                                                                          \
        const int64_t nb = n / (QK);                                                                       \
        DQ_PARALLEL_FOR                                                                                    \
        for (int64_t i = 0; i < nb; i++) fn(s + i * (BYTES), dst + i * (QK));                              \
    } while (0)

/* Runs fn over runs of DQ_RUN elements of BYTES bytes each (the last one shorter), likewise. */
#define DQ_RUN 4096
#define DQ_ELEMS(fn, BYTES)                                                                                \
    do {                                                                                                   \
        const int64_t nr = (n + DQ_RUN - 1) / DQ_RUN;                                                      \
        DQ_PARALLEL_FOR                                                                                    \
        for (int64_t r = 0; r < nr; r++) {                                                                 \
            const int64_t i0 = r * DQ_RUN;                                                                 \
            fn(s + i0 * (BYTES), dst + i0, n - i0 < DQ_RUN ? n - i0 : DQ_RUN);                             \
        }                                                                                                  \
    } while (0)

void ll_gguf_dequant_f32(uint32_t type, const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    LL_ASSERT(n >= 0);
    switch (type) {
    case LL_GGUF_T_F32: DQ_ELEMS(dq_f32_run, 4); break;
    case LL_GGUF_T_F16: DQ_ELEMS(dq_f16_run, 2); break;
    case LL_GGUF_T_BF16: DQ_ELEMS(dq_bf16_run, 2); break;
    case LL_GGUF_T_Q4_0: DQ_BLOCKS(dq_q4_0, 32, 18); break;
    case LL_GGUF_T_Q4_1: DQ_BLOCKS(dq_q4_1, 32, 20); break;
    case LL_GGUF_T_Q5_0: DQ_BLOCKS(dq_q5_0, 32, 22); break;
    case LL_GGUF_T_Q5_1: DQ_BLOCKS(dq_q5_1, 32, 24); break;
    case LL_GGUF_T_Q8_0: DQ_BLOCKS(dq_q8_0, 32, 34); break;
    case LL_GGUF_T_Q2_K: DQ_BLOCKS(dq_q2_k, QK_K, 84); break;
    case LL_GGUF_T_Q3_K: DQ_BLOCKS(dq_q3_k, QK_K, 110); break;
    case LL_GGUF_T_Q4_K: DQ_BLOCKS(dq_q4_k, QK_K, 144); break;
    case LL_GGUF_T_Q5_K: DQ_BLOCKS(dq_q5_k, QK_K, 176); break;
    case LL_GGUF_T_Q6_K: DQ_BLOCKS(dq_q6_k, QK_K, 210); break;
    default: LL_ASSERT(ll_gguf_dequant_supported(type)); break;
    }
}
