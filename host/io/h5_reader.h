/* h5_reader.h: reading a result file (docs/hdf5-format.md) back, one prompt at a time: what
 * `logitlens show` prints and what the writer's tests compare against. */
#ifndef LL_H5_READER_H
#define LL_H5_READER_H

#include "ll_common.h"

#include <hdf5.h>
#include <stdint.h>

typedef struct ll_h5_run {
    char *path;              /* as opened */
    hid_t file;              /* open read-only */
    int32_t format_version;  /* root attribute */
    int64_t n_tokens;        /* length of the token axis */
    int64_t n_prompts;       /* length of the prompt axis */
    int n_points;            /* length of the point axis */
    int topk;                /* length of the k axis */
    char **point_names;      /* [n_points] */
    int32_t *point_layers;   /* [n_points] */
    int64_t *prompt_offsets; /* [n_prompts + 1] */
    int64_t n_vocab;         /* entries of `vocab`; 0 when the file has none */
    char **vocab;            /* [n_vocab] display strings, NULL when absent */
} ll_h5_run;

/* The per-token data of one prompt; arrays are token-major like the file. */
typedef struct ll_h5_prompt_data {
    int64_t offset;         /* first token on the token axis */
    int64_t length;         /* tokens in the prompt */
    int32_t *tokens;        /* [length] */
    int32_t *target_ids;    /* [length], -1 for none */
    int32_t *topk_ids;      /* [length, n_points, topk] */
    float *topk_probs;      /* [length, n_points, topk] */
    float *entropy;         /* [length, n_points] */
    float *kl_final;        /* [length, n_points] */
    float *target_probs;    /* [length, n_points] */
    int32_t *target_ranks;  /* [length, n_points] */
} ll_h5_prompt_data;

/* Opens and checks a result file: LL_ERR_IO when it cannot be opened, LL_ERR_INPUT when it is not a
 * logitlens file, has an unsupported format_version, or its datasets disagree with the format. */
ll_status ll_h5_run_open(const char *path, ll_h5_run **out, ll_err *err);
void ll_h5_run_close(ll_h5_run *r);

/* Reads prompt `prompt` (0 <= prompt < n_prompts) into *out (free with ll_h5_prompt_data_free). */
/* Rows [off, off + n) of a dataset along its first axis (1 to 3 axes), all of each row, as mtype; rows
 * outside the dataset are an error. */
ll_status ll_h5_read_rows(const ll_h5_run *r, const char *name, hid_t mtype, int64_t off, int64_t n, void *buf,
                          ll_err *err);
/* A scalar string attribute of the root (variable or fixed length) into a malloc'ed string. */
ll_status ll_h5_read_attr_str(const ll_h5_run *r, const char *name, char **out, ll_err *err);

ll_status ll_h5_read_prompt(const ll_h5_run *r, int64_t prompt, ll_h5_prompt_data *out, ll_err *err);
void ll_h5_prompt_data_free(ll_h5_prompt_data *d);

#endif
