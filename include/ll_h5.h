/* ll_h5.h: writing lens results to HDF5 (docs/hdf5-format.md), batch by batch.
 *
 * ll_h5_create opens "<path>.tmp.<pid>" in the output's directory and writes the root attributes and the
 * fixed datasets; ll_h5_append extends every per-token dataset by one batch; ll_h5_commit flushes,
 * closes and renames the file to its final name; ll_h5_abort closes and removes the temporary file.
 * A file with the final name is therefore always complete. */
#ifndef LL_H5_H
#define LL_H5_H

#include "ll_common.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ll_h5_meta {
    const char *path;          /* final output path */
    const char *command_line;
    const char *created;       /* ISO 8601 UTC */
    const char *model_path;
    const char *architecture;
    const char *dtype;         /* "F32", "F16", "BF16" */
    const char *backend;       /* "cpu", "cuda" */
    int allow_tf32;            /* fp32 matmuls were allowed to use TF32 (run --tf32 on cuda) */
    int64_t n_layers, d_model, vocab_size;
    int topk;
    const char *config_sha256; /* hex: config.json's; for GGUF, that of its header and metadata */
    const char *source_format; /* "safetensors" or "gguf" */
    int n_st_files;
    const char *const *st_files;         /* [n_st_files] file names (safetensors; GGUF: the .gguf file) */
    const char *const *st_header_sha256; /* [n_st_files] hex */
    const char *storage_types;  /* "Q4_1 x210, F32 x61, Q8_0 x1": stored types of the tensors used */
    const char *tokenizer;      /* where token strings come from: "tokenizer.json", "gguf" or "none" */
    const char *tokenizer_error; /* why the model's tokenizer could not be used, or NULL */
    int n_points;
    const char *const *point_names; /* [n_points] "embed", "mid.3", "post.3" */
    const int32_t *point_layers;    /* [n_points], -1 for embed */
    int save_probs;                 /* write probs / probs_token_index / probs_vocab_index */
    int64_t n_probs_vocab;          /* columns of probs */
    const int32_t *probs_vocab;     /* [n_probs_vocab] vocabulary ids */
    int save_hidden;                /* write hidden [token, point, d_model] */
    int64_t n_vocab;                /* entries of vocab / vocab_bytes; 0 = no tokenizer, datasets absent */
    const char *const *vocab_display;   /* [n_vocab] UTF-8 display strings */
    const uint8_t *const *vocab_bytes;  /* [n_vocab] raw bytes of each token */
    const size_t *vocab_bytes_len;      /* [n_vocab] */
    int tp, pp;                         /* tensor-parallel ranks x pipeline stages (0: one process) */
    int world_size;                     /* ranks of the run */
    const char *const *rank_devices;    /* [world_size] "cuda:0 on node12", "cpu on node3", or NULL */
    /* How many rows the file will hold (0: unknown): chunks of the growing datasets are sized for this, so
     * that a small result is a small file (a chunk is allocated whole). */
    int64_t expect_tokens, expect_prompts, expect_probs_rows;
} ll_h5_meta;

/* One batch of whole prompts. All arrays are host memory, token-major. */
typedef struct ll_h5_batch {
    int n_prompts;
    const char *const *prompt_texts;   /* [n_prompts] */
    const char *const *prompt_targets; /* [n_prompts], "" for none */
    const int64_t *prompt_lengths;     /* [n_prompts] tokens per prompt; they sum to n_tokens */
    int64_t n_tokens;
    const int32_t *tokens;         /* [n_tokens] */
    const int32_t *target_ids;     /* [n_tokens] */
    const int32_t *topk_ids;       /* [n_tokens, n_points, topk] */
    const float *topk_probs;       /* [n_tokens, n_points, topk] */
    const float *entropy;          /* [n_tokens, n_points] */
    const float *kl_final;         /* [n_tokens, n_points] */
    const float *target_probs;     /* [n_tokens, n_points] */
    const float *target_logprobs;  /* [n_tokens, n_points] */
    const int32_t *target_ranks;   /* [n_tokens, n_points] */
    int64_t n_probs_rows;          /* rows of probs in this batch (0 without --save-probs) */
    const int64_t *probs_token;    /* [n_probs_rows] token index within this batch */
    const uint16_t *probs;         /* [n_probs_rows, n_points, n_probs_vocab] float16 bits */
    const float *hidden;           /* [n_tokens, n_points, d_model] or NULL */
} ll_h5_batch;

typedef struct ll_h5_writer ll_h5_writer;

ll_status ll_h5_create(const ll_h5_meta *meta, ll_h5_writer **out, ll_err *err);
ll_status ll_h5_append(ll_h5_writer *w, const ll_h5_batch *b, ll_err *err);
/* Finishes the file and renames it to meta->path; frees w whatever happens. */
ll_status ll_h5_commit(ll_h5_writer *w, ll_err *err);
/* Closes and deletes the temporary file; frees w. Safe on NULL. */
void ll_h5_abort(ll_h5_writer *w);
/* The temporary file being written ("<path>.tmp.<pid>"), for a signal handler that must remove it; NULL
 * after commit or abort. */
const char *ll_h5_tmp_path(const ll_h5_writer *w);

#ifdef __cplusplus
}
#endif
#endif
