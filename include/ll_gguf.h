/* ll_gguf.h: reading GGUF model files (llama.cpp's format), versions 2 and 3, memory-mapped and fully
 * bounds-checked (host/model/gguf.c), and dequantizing their tensors (host/model/gguf_dequant.c).
 *
 * A GGUF file is, little-endian:
 *   u32 magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
 *   n_kv x { string key, u32 value_type, value },
 *   n_tensors x { string name, u32 n_dims, n_dims x u64 ne, u32 ggml_type, u64 offset },
 *   padding to general.alignment (default 32), then the data section; tensor offsets are relative to it
 *   and multiples of the alignment.
 * A string is u64 length + bytes (no NUL). An array value is u32 element type + u64 count + elements
 * (arrays may nest). ne[0] is the innermost (fastest) dimension: a GGUF tensor with ne = [K, N] is a
 * row-major [N, K] matrix, the same bytes as a PyTorch [N, K] tensor.
 *
 * Files are untrusted: every count, string length, type, dimension, offset and tensor extent is checked
 * before anything is handed out; nothing is read outside the mapping. Version 1 files (u32 counts and
 * lengths) are refused by name, big-endian files too. Also refused: duplicate keys or tensor names, empty
 * keys or names, NUL bytes in them, keys over 65535 bytes, tensor names over 256 bytes, BOOL values other
 * than 0/1, arrays nested more than 8 deep, general.alignment that is not an integer power of two in
 * 1..2^24, unknown ggml types, ne[0] not a multiple of the type's block, misaligned or overlapping tensor
 * data. ne[i] == 0 is allowed (an empty tensor, nbytes 0), as in llama.cpp. */
#ifndef LL_GGUF_H
#define LL_GGUF_H

#include "ll_common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Metadata value types (gguf_type in the spec). */
typedef enum ll_gguf_vtype {
    LL_GGUF_UINT8 = 0,
    LL_GGUF_INT8 = 1,
    LL_GGUF_UINT16 = 2,
    LL_GGUF_INT16 = 3,
    LL_GGUF_UINT32 = 4,
    LL_GGUF_INT32 = 5,
    LL_GGUF_FLOAT32 = 6,
    LL_GGUF_BOOL = 7,
    LL_GGUF_STRING = 8,
    LL_GGUF_ARRAY = 9,
    LL_GGUF_UINT64 = 10,
    LL_GGUF_INT64 = 11,
    LL_GGUF_FLOAT64 = 12,
    LL_GGUF_VTYPE_COUNT
} ll_gguf_vtype;

/* Tensor types (ggml_type). Only the values are fixed by the format; names are ggml's. */
typedef enum ll_gguf_ttype {
    LL_GGUF_T_F32 = 0,
    LL_GGUF_T_F16 = 1,
    LL_GGUF_T_Q4_0 = 2,
    LL_GGUF_T_Q4_1 = 3,
    LL_GGUF_T_Q5_0 = 6,
    LL_GGUF_T_Q5_1 = 7,
    LL_GGUF_T_Q8_0 = 8,
    LL_GGUF_T_Q8_1 = 9,
    LL_GGUF_T_Q2_K = 10,
    LL_GGUF_T_Q3_K = 11,
    LL_GGUF_T_Q4_K = 12,
    LL_GGUF_T_Q5_K = 13,
    LL_GGUF_T_Q6_K = 14,
    LL_GGUF_T_Q8_K = 15,
    LL_GGUF_T_BF16 = 30,
} ll_gguf_ttype;

#define LL_GGUF_MAX_DIMS 4
#define LL_GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the mapping (not NUL-terminated). */
typedef struct ll_gguf_str {
    const char *ptr;
    uint64_t len;
} ll_gguf_str;

/* One metadata key/value; everything points into the mapping. value is where the value's bytes start:
 * a scalar's bytes; a STRING's u64 length prefix (the characters follow it); an ARRAY's first element
 * (after the element type and count). value_bytes runs from value to the end of the value. Arrays of
 * strings also have an offset table so that element i is found in O(1). Arrays of arrays are validated
 * and skipped: value points at the first inner array's element type; no getter reads them. */
typedef struct ll_gguf_kv {
    ll_gguf_str key;
    ll_gguf_vtype type;       /* value type */
    ll_gguf_vtype arr_type;   /* element type when type == LL_GGUF_ARRAY */
    uint64_t arr_n;           /* element count when type == LL_GGUF_ARRAY */
    const uint8_t *value;     /* the scalar value, or the first array element (may be unaligned) */
    uint64_t value_bytes;     /* bytes the value occupies in the file */
    uint64_t *str_off;        /* arrays of strings: [arr_n] offset from value of each element's u64 length
                                 prefix; else NULL (also for an empty array) */
} ll_gguf_kv;

/* One tensor info, validated: known type, dims within bounds, data inside the data section, aligned, and
 * not overlapping any other tensor's data. */
typedef struct ll_gguf_tensor {
    char *name;               /* NUL-terminated copy (names holding NUL bytes are refused) */
    int n_dims;               /* 1..LL_GGUF_MAX_DIMS */
    int64_t ne[LL_GGUF_MAX_DIMS]; /* ggml order, ne[0] innermost; each >= 0; unused dims are 1 */
    uint32_t type;            /* ggml type id (ll_gguf_ttype values and other known ggml types) */
    uint64_t offset;          /* relative to the data section */
    const uint8_t *data;      /* into the mapping */
    size_t nbytes;            /* numel / block elems x block bytes; the product of the ne (zeros counted
                                 as 1) fits in int64 and its bytes in 2^63 */
} ll_gguf_tensor;

/* Made only by ll_gguf_open (the reader keeps private lookup tables behind it). */
typedef struct ll_gguf {
    char *path;               /* as opened */
    const char *name;         /* base name (points into path) */
    uint8_t *map;             /* whole file, read-only mapping */
    size_t size;
    uint32_t version;         /* 2 or 3 */
    uint64_t alignment;       /* general.alignment (any integer type) or 32 */
    ll_gguf_kv *kv;           /* [n_kv] in file order */
    uint64_t n_kv;
    ll_gguf_tensor *tensors;  /* [n_tensors] in file order */
    uint64_t n_tensors;
    size_t data_offset;       /* start of the data section in the file (a multiple of alignment; for a file
                                 without tensors that ends before the padding, the file size) */
    char header_sha256[65];   /* SHA-256 of the bytes before the data section (header, metadata, tensor infos) */
} ll_gguf;

/* Opens and validates a GGUF file. Errors are one line naming the file, the field and what was expected,
 * e.g. "gguf m.gguf: tensor 'blk.0.attn_q.weight': data [offset 123, 4096 bytes] runs past the end of the
 * file (size 2000)". */
ll_status ll_gguf_open(const char *path, ll_gguf **out, ll_err *err);
void ll_gguf_close(ll_gguf *g);

/* Metadata lookup by exact key; NULL when absent. */
const ll_gguf_kv *ll_gguf_find(const ll_gguf *g, const char *key);
/* Typed getters. Each returns LL_OK and sets *found (0 when the key is absent, leaving *out unchanged;
 * found may be NULL); a key present with an incompatible type is an LL_ERR_INPUT error naming the key, its
 * type and what was expected (*found 0, *out unchanged). Integers: any integer type whose value fits in
 * int64 (a UINT64 above INT64_MAX is an error); floats: FLOAT32, FLOAT64 or an integer; bool: BOOL;
 * strings: STRING (the returned pointer is into the mapping, len bytes, not NUL-terminated). */
ll_status ll_gguf_get_int(const ll_gguf *g, const char *key, int64_t *out, int *found, ll_err *err);
ll_status ll_gguf_get_float(const ll_gguf *g, const char *key, double *out, int *found, ll_err *err);
ll_status ll_gguf_get_bool(const ll_gguf *g, const char *key, int *out, int *found, ll_err *err);
ll_status ll_gguf_get_str(const ll_gguf *g, const char *key, ll_gguf_str *out, int *found, ll_err *err);
/* Array elements (i < kv->arr_n; the element type must match the getter's family, else 0 / empty, as for
 * i out of range or kv not an array). arr_int: integer elements (a UINT64 above INT64_MAX saturates to
 * INT64_MAX); arr_float: float or integer elements; arr_str: STRING elements. */
int64_t ll_gguf_arr_int(const ll_gguf_kv *kv, uint64_t i);
double ll_gguf_arr_float(const ll_gguf_kv *kv, uint64_t i);
ll_gguf_str ll_gguf_arr_str(const ll_gguf_kv *kv, uint64_t i);
/* "UINT32", "STRING", "ARRAY", ... */
const char *ll_gguf_vtype_name(ll_gguf_vtype t);

/* Tensor lookup by exact name; NULL when absent. */
const ll_gguf_tensor *ll_gguf_find_tensor(const ll_gguf *g, const char *name);
/* Element count (product of ne). */
int64_t ll_gguf_tensor_numel(const ll_gguf_tensor *t);
/* Tells the OS the mapped bytes of t are no longer needed (after they were dequantized and uploaded). */
void ll_gguf_release(const ll_gguf *g, const ll_gguf_tensor *t);

/* ggml type facts: name ("Q4_K"; NULL for an unknown id), elements per block and bytes per block (0 for
 * unknown ids). Known: ids 0..41 except the removed 4, 5, 31..33 and 36..38 (the gguf Python package's
 * GGML_QUANT_SIZES; tests/c/test_gguf.c checks against it), including types that cannot be dequantized
 * here (their extents are still checked). */
const char *ll_gguf_type_name(uint32_t type);
int64_t ll_gguf_type_block_elems(uint32_t type);
size_t ll_gguf_type_block_bytes(uint32_t type);

/* ---- dequantization (host/model/gguf_dequant.c) ---- */

/* 1 when tensors of this type can be dequantized: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K,
 * Q3_K, Q4_K, Q5_K, Q6_K. */
int ll_gguf_dequant_supported(uint32_t type);
/* Dequantizes n elements (a multiple of the type's block size) from src (the tensor's bytes, any
 * alignment) into dst as float32, bit-exact with the reference dequantization of each format. Runs
 * over OpenMP threads for large n. The type must be supported. */
void ll_gguf_dequant_f32(uint32_t type, const void *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
