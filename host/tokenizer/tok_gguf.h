/* tok_gguf.h: the vocabulary read from a GGUF file's tokenizer.ggml.* keys, shared by tok_gguf.c (metadata
 * to tokenizer.json tree) and tok_gguf_spm.c (SentencePiece merges from scores). */
#ifndef LL_TOK_GGUF_H
#define LL_TOK_GGUF_H

#include "tok_internal.h"

#include <stdint.h>

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type; 0 is "undefined"). */
enum {
    TOK_GGUF_NORMAL = 1,
    TOK_GGUF_UNKNOWN = 2,
    TOK_GGUF_CONTROL = 3,
    TOK_GGUF_USER_DEFINED = 4,
    TOK_GGUF_UNUSED = 5,
    TOK_GGUF_BYTE = 6,
};

typedef struct tok_gguf_vocab {
    uint64_t n;       /* number of tokens (ids 0..n-1) */
    char **tok;       /* [n] token strings, NUL-terminated, valid UTF-8, distinct */
    size_t *len;      /* [n] their byte lengths */
    int32_t *type;    /* [n] token types (TOK_GGUF_NORMAL when the file has no tokenizer.ggml.token_type) */
    double *score;    /* [n] tokenizer.ggml.scores (llama models), else NULL */
    tok_strmap ids;   /* token string -> id */
} tok_gguf_vocab;

/* The merges transformers' LlamaConverter derives from a SentencePiece vocabulary and its scores, as a
 * tokenizer.json "merges" array of [left, right] pairs (*out, caller deletes). `file` names the GGUF in
 * messages. */
ll_status tok_gguf_spm_merges(const char *file, const tok_gguf_vocab *v, cJSON **out, ll_err *err);

#endif
