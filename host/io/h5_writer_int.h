/* h5_writer_int.h: what the two halves of the result-file writer share: h5_writer.c (layout, create,
 * commit, abort) and h5_append.c (one batch). Not for use outside host/h5_*.c. */
#ifndef LL_H5_WRITER_INT_H
#define LL_H5_WRITER_INT_H

#include "h5_util.h"
#include "ll_h5.h"

/* Dimensions of the format; the first four grow as batches are appended. */
enum {
    DIM_TOKEN, DIM_PROMPT, DIM_PROMPT_EDGE, DIM_PROBS_ROW,
    DIM_POINT, DIM_K, DIM_VOCAB_ID, DIM_PROBS_VOCAB, DIM_HIDDEN_DIM,
    DIM_COUNT
};
extern const char *const ll_h5w_dim_names[DIM_COUNT]; /* dataset name of each dimension scale */
#define DIM_GROWS(d) ((d) <= DIM_PROBS_ROW)

/* Datasets on a growing axis, written by every append. */
enum {
    DS_TOKENS, DS_TOKEN_PROMPT, DS_TOKEN_POSITION, DS_TARGET_IDS,
    DS_TOPK_IDS, DS_TOPK_PROBS, DS_ENTROPY, DS_KL_FINAL, DS_TARGET_PROBS, DS_TARGET_LOGPROBS, DS_TARGET_RANKS,
    DS_HIDDEN, DS_PROMPTS, DS_PROMPT_TARGETS, DS_PROMPT_OFFSETS, DS_PROBS, DS_PROBS_TOKEN_INDEX,
    DS_COUNT
};

typedef enum { T_I32, T_I64, T_F32, T_F16, T_STR } elem_kind;

typedef struct ds_spec {
    const char *name; /* dataset name (docs/hdf5-format.md) */
    elem_kind kind;   /* element type */
    int rank;         /* 1..3 */
    int dims[3];      /* DIM_* of each axis; dims[0] grows */
} ds_spec;

extern const ds_spec ll_h5w_specs[DS_COUNT]; /* every growing dataset */

struct ll_h5_writer {
    char *path;               /* final file name */
    char *tmp_path;           /* "<path>.tmp.<pid>", renamed to path on commit */
    hid_t file;               /* open temporary file */
    hid_t t_utf8;             /* variable-length UTF-8 string type */
    hid_t t_f16_file;         /* little-endian half, as stored */
    hid_t t_f16_mem;          /* native half, as the engine passes it (uint16 bits) */
    hid_t dapl;               /* dataset access list with a chunk cache large enough for one chunk */
    hid_t scale[DIM_COUNT];   /* dimension-scale datasets; -1 where the dimension is absent */
    hid_t ds[DS_COUNT];       /* growing datasets; -1 where absent */
    int64_t dim_len[DIM_COUNT]; /* current length of each dimension */
    int64_t dim_expect[DIM_COUNT]; /* rows a growing dimension will reach (0: unknown), for chunk sizes */
    int n_points, topk;         /* lengths of the point and k axes */
    int64_t d_model;            /* length of hidden_dim */
    int64_t n_probs_vocab;      /* length of probs_vocab (0 without save_probs) */
    int save_probs, save_hidden; /* which optional datasets exist */
};

/* Memory datatype of an element kind. */
hid_t ll_h5w_mem_type(const ll_h5_writer *w, elem_kind k);

/* Extends dataset `ds` (growing axis 0, which currently has n_old rows) by n_new rows and writes them
 * from buf (n_new full rows) with one hyperslab write. */
ll_status ll_h5w_append_rows(ll_h5_writer *w, hid_t ds, hid_t mtype, int64_t n_old, int64_t n_new,
                             const void *buf, const char *name, ll_err *err);

#endif
