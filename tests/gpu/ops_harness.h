/* ops_harness.h: the shared machinery of test_backend_ops (tests/gpu/test_backend_ops.c: the forward ops and
 * main; tests/gpu/test_backend_lens.c: the lens ops; ops_harness.c: the definitions).
 *
 * Every case draws fresh random inputs from a stream seeded by its name, uploads the same bytes to the
 * CPU backend (g_cpu) and the CUDA module (g_gpu), runs the op on both and compares: outputs are poisoned
 * and followed by guard bytes, errors are normalized by the CPU output's RMS, bounds come from one table
 * (TOLS in ops_harness.c, per op and dtype, each with its reason). */
#ifndef LL_TEST_OPS_HARNESS_H
#define LL_TEST_OPS_HARNESS_H

#include "ll_backend.h"

#include <stddef.h>
#include <stdint.h>

#define GUARD 256
#define GUARD_BYTE 0xa5
#define POISON_F 0xff /* outputs poisoned to NaN (floats and f16) */
#define POISON_I 0x7f /* ints: 0x7f7f7f7f */
#define ALLDT ((ll_dtype)-1)

extern ll_backend g_cpu, g_gpu; /* the reference and the backend under test */
extern int g_fail, g_pass;      /* cases so far */
extern const char *g_filter;    /* run only cases whose name contains it (NULL: all) */
extern char g_case[512];        /* the current case's name */
extern int g_case_bad;          /* the current case has failed (its first failure is printed) */
extern const ll_dtype DTS[3];   /* F32, F16, BF16 */

/* ---- tolerances ---- */
typedef struct tol {
    const char *op;
    ll_dtype dt;
    double rel;   /* bound on ||cuda - cpu|| / ||cpu|| (0 with abs_only) */
    double atol;  /* elementwise: times the RMS of the CPU output, or in the output's units with abs_only */
    double rtol;  /* elementwise: times |cpu| */
    int abs_only; /* atol is absolute and no relative-norm bound applies (quantities that can be ~0) */
    const char *why;
} tol;
tol get_tol(const char *op, ll_dtype dt); /* exits 2 when the table has no entry */

/* ---- random data (the case's stream) ---- */
uint64_t rnd_u64(void);
double rnd_unif(void);         /* (0, 1) */
float rnd_normal(float sd);
int64_t rnd_int(int64_t n);    /* [0, n) */
float *fvec(int64_t n, float sd, float mean); /* malloc'd [n] normal(mean, sd) */

/* A weight: the stored bits (for upload_weight) and their exact float values (for host references). */
typedef struct hw {
    void *bits;
    float *val;
    ll_dtype dt;
    int64_t rows, cols;
} hw;
hw hw_make(int64_t rows, int64_t cols, ll_dtype dt, float sd, float mean);
void hw_free(hw *w);

/* ---- buffers on both backends; every backend call checked (a failing call fails the case) ---- */
int ck(ll_backend *be, ll_status st, const char *what);
#define CK(be, call) ck((be), (call), #call)

typedef struct pair {
    void *c, *g; /* the CPU's and the CUDA module's copy */
    size_t bytes;
} pair;
void *buf_on(ll_backend *be, size_t bytes, const void *init, int poison);
pair in_pair(const void *host, size_t bytes); /* inputs: the same bytes on both backends */
pair out_pair(size_t bytes, int poison);      /* outputs: poisoned, with a guard after them */
int fetch(pair p, void **hc, void **hg);      /* downloads both (caller frees), checks the guards */
void pair_free(pair *p);

typedef struct wpair {
    ll_wt c, g;
} wpair;
wpair w_pair(const hw *w); /* the same stored bits uploaded to both */
void wpair_free(wpair *p);

/* ---- comparison and case bookkeeping ---- */
typedef struct cmpres {
    double rel, maxerr; /* worst normalized and absolute errors of the case so far */
} cmpres;
/* Compares n floats (cuda g against cpu c) under t; reports the first divergence; 1 when within bounds. */
int cmp_f32(const char *what, const float *g, const float *c, int64_t n, tol t, cmpres *res);
/* Names the case, seeds its stream; 0 when the filter skips it. */
int case_begin(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void case_end(const cmpres *r, tol t); /* one PASS/FAIL line */

/* ---- the lens cases (test_backend_lens.c) ---- */
void test_lens(void);        /* every lens op, each dtype, tiles forced small */
void test_lens_slices(void); /* lens_pass over a vocabulary slice (v0, v_total) */
void test_lens_tf32(void);   /* the lens with g_gpu opened with allow_tf32 (by the caller) */

#endif
