/* ll_safetensors.h: reading Hugging Face safetensors checkpoints (single file or sharded with
 * model.safetensors.index.json), memory-mapped and fully bounds-checked.
 *
 * A safetensors file is: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data section; offsets are relative to the data section. Files are untrusted input: every
 * length, offset and shape is checked before a pointer into the mapping is handed out. */
#ifndef LL_SAFETENSORS_H
#define LL_SAFETENSORS_H

#include "ll_common.h"

#include <stddef.h>
#include <stdint.h>

#define LL_ST_MAX_DIMS 8
#define LL_ST_MAX_HEADER (100u << 20) /* headers above 100 MiB are refused as corrupt */

typedef struct ll_st_tensor {
    char *name;
    char dtype_name[16];    /* as written in the header: "F32", "BF16", "I64", ... */
    int dtype_ok;           /* 1 when dtype is F32, F16 or BF16 */
    ll_dtype dtype;         /* valid when dtype_ok */
    int ndim;
    int64_t shape[LL_ST_MAX_DIMS];
    const uint8_t *data;    /* into the file mapping */
    size_t nbytes;
    int file;               /* index into ll_st_set.files */
} ll_st_tensor;

typedef struct ll_st_file {
    char *path;             /* full path */
    const char *name;       /* base name (points into path) */
    uint8_t *map;           /* whole file, read-only mapping */
    size_t size;
    size_t header_len;      /* JSON length N */
    char header_sha256[65]; /* SHA-256 of the first 8 + N bytes */
} ll_st_file;

typedef struct ll_st_set {
    ll_st_file *files;
    int n_files;
    ll_st_tensor *tensors;  /* sorted by name */
    int n_tensors;
} ll_st_set;

/* Opens DIR/model.safetensors, or DIR/model.safetensors.index.json and its shards. */
ll_status ll_st_open_dir(const char *dir, ll_st_set **out, ll_err *err);
/* Opens one safetensors file (used by tools and tests). */
ll_status ll_st_open_file(const char *path, ll_st_set **out, ll_err *err);
void ll_st_close(ll_st_set *s);
/* Finds a tensor by exact name; NULL when absent. */
const ll_st_tensor *ll_st_find(const ll_st_set *s, const char *name);
/* Product of the shape (element count). */
int64_t ll_st_numel(const ll_st_tensor *t);
/* Formats a shape as "[4096,1024]". */
void ll_st_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);
/* Tells the OS the mapped bytes of t are no longer needed (after a backend copied them). */
void ll_st_release(const ll_st_set *s, const ll_st_tensor *t);



/* ---- writing (synth and tools) ---- */
typedef struct ll_st_out_tensor {
    const char *name;
    ll_dtype dtype;
    int ndim;
    int64_t shape[LL_ST_MAX_DIMS];
    const void *data;   /* nbytes of little-endian data */
    size_t nbytes;
} ll_st_out_tensor;

/* Writes one safetensors file (header padded to 8 bytes, data in the given order), via a temporary
 * name renamed into place. */
ll_status ll_st_write_file(const char *path, const ll_st_out_tensor *t, int n, ll_err *err);
#endif
