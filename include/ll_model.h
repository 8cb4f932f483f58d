/* ll_model.h: a model's configuration (from config.json), the tensors its architecture needs, and
 * its weights resident on a backend.
 *
 * The three families differ only in a choice of ops and in tensor names: that choice is an ll_config
 * filled by one file per architecture (host/arch_*.c), and forward.c wires the ops from it. */
#ifndef LL_MODEL_H
#define LL_MODEL_H

#include "ll_backend.h"
#include "ll_common.h"
#include "ll_math.h"
#include "ll_safetensors.h"

struct ll_gguf;

#include <cJSON.h>
#include <stdint.h>

typedef enum ll_norm_kind { LL_NORM_LAYERNORM = 0, LL_NORM_RMSNORM = 1 } ll_norm_kind;

typedef enum ll_qkv_kind {
    LL_QKV_FUSED_GPT2 = 0, /* c_attn Conv1D [d, 3d]: output row = [q | k | v] */
    LL_QKV_FUSED_NEOX = 1, /* query_key_value Linear [3d, d]: output row = [q_0 k_0 v_0 q_1 k_1 v_1 ...] per head */
    LL_QKV_SEPARATE = 2,   /* q_proj / k_proj / v_proj */
} ll_qkv_kind;

typedef enum ll_mlp_kind { LL_MLP_GELU = 0, LL_MLP_SWIGLU = 1 } ll_mlp_kind;

/* Global (per-model) weight roles. */
typedef enum ll_gw {
    LL_GW_TOK_EMBED = 0, /* [V, d] */
    LL_GW_POS_EMBED,     /* [n_ctx, d] learned positions (gpt2) */
    LL_GW_FINAL_NORM,    /* [d] */
    LL_GW_FINAL_NORM_B,  /* [d] */
    LL_GW_UNEMBED,       /* [V, d]; absent when tied (the token embedding is used) */
    LL_GW_UNEMBED_B,     /* [V] */
    LL_GW_COUNT
} ll_gw;

/* Per-layer weight roles. */
typedef enum ll_lw {
    LL_LW_NORM1 = 0, LL_LW_NORM1_B,
    LL_LW_QKV, LL_LW_QKV_B,       /* fused */
    LL_LW_Q, LL_LW_Q_B, LL_LW_K, LL_LW_K_B, LL_LW_V, LL_LW_V_B,
    LL_LW_O, LL_LW_O_B,
    LL_LW_NORM2, LL_LW_NORM2_B,
    LL_LW_UP, LL_LW_UP_B,         /* c_fc / dense_h_to_4h / up_proj */
    LL_LW_GATE, LL_LW_GATE_B,     /* gate_proj (SwiGLU) */
    LL_LW_DOWN, LL_LW_DOWN_B,     /* c_proj / dense_4h_to_h / down_proj */
    LL_LW_COUNT
} ll_lw;

typedef struct ll_config {
    char arch[32];          /* "gpt2", "gpt_neox", "llama", "mistral", "qwen2" */
    int n_layers;
    int64_t d_model;        /* d */
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int64_t d_ff;           /* MLP width */
    int64_t vocab;          /* V: rows of the unembedding */
    int64_t n_ctx;          /* longest prompt the model accepts */
    int64_t attn_window;    /* every layer's sliding window (mistral's sliding_window); 0 = full causal */
    int64_t sliding_window; /* qwen2 use_sliding_window (a window on some layers only): prompts longer than
                               this are refused; 0 = none */
    float norm_eps;
    ll_norm_kind norm;
    ll_qkv_kind qkv;
    ll_mlp_kind mlp;
    ll_act act;             /* LL_MLP_GELU's activation */
    ll_wlayout wlayout;     /* storage of matmul weights */
    int learned_pos;        /* gpt2 */
    int use_rope;
    ll_rope_params rope;
    int parallel_residual;  /* gpt_neox use_parallel_residual */
    int tied;               /* unembedding = token embedding */
    int attn_bias;          /* q/k/v (or fused qkv) biases */
    int o_bias;
    int mlp_bias;
    int norm_bias;          /* LayerNorm biases */
    char prefix[32];        /* tensor name prefix found (gpt2: "" or "transformer.") */
} ll_config;

/* One tensor the architecture needs: its name and the exact shape config.json implies. */
typedef struct ll_tensor_spec {
    char name[160];
    int layer;              /* -1 for global */
    int role;               /* ll_gw or ll_lw */
    int ndim;
    int64_t shape[2];
    int init;               /* synth: 0 random matrix, 1 ones-ish (norm weight), 2 small (bias) */
} ll_tensor_spec;

/* Where a model's files are (--model): a directory of Hugging Face safetensors + config.json, a .gguf
 * file, or a directory holding exactly one .gguf and no safetensors. */
typedef enum ll_model_format { LL_MODEL_SAFETENSORS = 0, LL_MODEL_GGUF = 1 } ll_model_format;

/* Resolves `model` into its format and *path: the directory (safetensors) or the .gguf file (malloc'ed,
 * caller frees). Errors name the path and say what was found. */
ll_status ll_model_locate(const char *model, ll_model_format *fmt, char **path, ll_err *err);

struct ll_tokenizer;
/* The model's tokenizer: DIR/tokenizer.json for a safetensors directory, the GGUF metadata for a GGUF.
 * *out = NULL with LL_OK when the model has none. */
ll_status ll_model_tokenizer_load(const char *model, struct ll_tokenizer **out, ll_err *err);

/* Parses config.json (path for messages) into c. Unknown architectures and missing or malformed fields
 * are LL_ERR_INPUT errors naming the field. */
ll_status ll_config_parse(const char *path, const char *text, size_t len, ll_config *c, ll_err *err);

/* The tensors c needs (allocated array, caller frees). */
ll_status ll_config_tensor_specs(const ll_config *c, ll_tensor_spec **out, int *n, ll_err *err);

/* Whether a checkpoint tensor that is not in the spec list is a known non-weight buffer to ignore. */
int ll_config_is_ignored_buffer(const ll_config *c, const char *name);

/* Architecture files: fill c from the parsed config.json (root) for their family. */
ll_status ll_arch_gpt2_config(const cJSON *root, const char *path, ll_config *c, ll_err *err);
ll_status ll_arch_neox_config(const cJSON *root, const char *path, ll_config *c, ll_err *err);
ll_status ll_arch_llama_config(const cJSON *root, const char *path, ll_config *c, ll_err *err);
void ll_arch_gpt2_specs(const ll_config *c, ll_tensor_spec *s, int *n);
void ll_arch_neox_specs(const ll_config *c, ll_tensor_spec *s, int *n);
void ll_arch_llama_specs(const ll_config *c, ll_tensor_spec *s, int *n);

/* One tensor the architecture needs, as stored in the model's file. */
typedef struct ll_model_tensor {
    const char *name;        /* name in the file ("model.layers.0.self_attn.q_proj.weight", "blk.0.attn_q.weight") */
    const uint8_t *data;     /* stored bytes, in the file mapping */
    size_t nbytes;
    int64_t numel;
    int file;                /* index into ll_model_files.file_names */
    const char *type_name;   /* storage type as the file names it: "BF16", "Q4_K" */
    int gguf_type;           /* GGUF: the ggml type id; -1 for safetensors */
    int quantized;           /* GGUF block-quantized: dequantized while uploading */
    ll_dtype dtype;          /* stored dtype when not quantized; LL_DTYPE_F16 for quantized tensors (what a
                                16-bit backend is given after dequantization) */
    int unpermute_heads;     /* > 0: rows are in llama.cpp's interleaved rotary order for this many heads
                                (GGUF q/k of llama-architecture models) and are put back in HF's order */
    int head_rows;           /* rows per head when unpermute_heads > 0 */
} ll_model_tensor;

/* A model (Hugging Face directory or GGUF file) opened and validated (no weights on a backend yet). */
typedef struct ll_model_files {
    char *dir;                  /* --model as given */
    ll_model_format format;
    ll_config cfg;
    char config_sha256[65];     /* SHA-256 of config.json; for GGUF, of the header and metadata */
    ll_st_set *st;              /* safetensors: the files; NULL for GGUF */
    struct ll_gguf *gguf;       /* GGUF: the file; NULL for safetensors */
    int n_files;
    const char **file_names;    /* [n_files] base names */
    const char **file_sha256;   /* [n_files] SHA-256 of each file's header (safetensors JSON / GGUF metadata) */
    ll_tensor_spec *specs;
    int n_specs;
    ll_model_tensor *bound;     /* [n_specs] stored tensor of each spec */
    ll_dtype dtype;             /* storage dtype of the matrices (the most common one; quantized count as F16) */
    int n_quantized;            /* bound tensors that are block-quantized */
    char storage_types[160];    /* storage types of the bound tensors with counts: "Q4_1 x210, F32 x61, Q8_0 x1" */
    int64_t n_params;
} ll_model_files;

/* Opens a model (ll_model_locate): reads config.json and the safetensors, or the GGUF file, and validates
 * presence, type and exact shape of every tensor the architecture needs before anything is computed. */
ll_status ll_model_files_open(const char *model, ll_model_files **out, ll_err *err);
void ll_model_files_close(ll_model_files *m);
/* The tokenizer of an opened model, as ll_model_tokenizer_load finds it, from the files m already holds
 * (a GGUF is not read again). *out = NULL with LL_OK when the model has none. */
ll_status ll_model_files_tokenizer(const ll_model_files *m, struct ll_tokenizer **out, ll_err *err);
/* Format-specific halves of ll_model_files_open (model_files_st.c, model_files_gguf.c): fill cfg, specs,
 * bound, files and config_sha256 of m. */
ll_status ll_model_files_open_st(ll_model_files *m, const char *dir, ll_err *err);
ll_status ll_model_files_open_gguf(ll_model_files *m, const char *path, ll_err *err);
/* "safetensors" or "gguf". */
const char *ll_model_format_name(ll_model_format f);
/* The dtype the weights are given to a backend in: the CPU computes in F32 whatever is stored; a 16-bit
 * backend gets quantized tensors as F16. */
ll_dtype ll_model_weights_dtype(const ll_model_files *m, const char *backend);
/* Bytes the weights take on a backend. */
size_t ll_model_weights_bytes(const ll_model_files *m, const char *backend);

/* GGUF metadata ({arch}.* keys) into the same ll_config the config.json path builds (gguf_config.c), and
 * the tensors it implies under their GGUF names ("blk.N.attn_q.weight"), shapes in row-major order. */
ll_status ll_gguf_config_parse(const struct ll_gguf *g, ll_config *c, ll_err *err);
ll_status ll_gguf_tensor_specs(const ll_config *c, ll_tensor_spec **out, int *n, ll_err *err);

/* Weights on a backend. */
typedef struct ll_weights {
    ll_wt g[LL_GW_COUNT];
    ll_wt *l;               /* [n_layers * LL_LW_COUNT] */
    const ll_wt *unembed;   /* g[LL_GW_UNEMBED] or, tied, g[LL_GW_TOK_EMBED] (or unembed_view): the rows of
                               the vocabulary this rank's lens covers */
    ll_wt unembed_view;     /* tied and vocabulary-parallel: the token embedding's rows [v0, v0 + n_v) */
    size_t bytes;           /* backend memory held */
} ll_weights;

static inline const ll_wt *ll_weights_layer(const ll_weights *w, int layer, ll_lw role) {
    const ll_wt *t = &w->l[(size_t)layer * LL_LW_COUNT + role];
    return t->data ? t : NULL;
}
static inline const ll_wt *ll_weights_global(const ll_weights *w, ll_gw role) {
    return w->g[role].data ? &w->g[role] : NULL;
}

struct ll_shard;
/* Uploads every bound tensor this rank holds (shard: include/ll_shard.h; NULL = the whole model) to the
 * backend, converting dtype as the backend wants, and releases the mapped pages behind it, so host memory
 * never holds two full copies. Layers outside the shard's stage have no weights. */
ll_status ll_weights_upload(ll_backend *be, const ll_model_files *m, const struct ll_shard *shard, ll_weights *w,
                            ll_err *err);
void ll_weights_free(ll_backend *be, ll_weights *w);

#endif
