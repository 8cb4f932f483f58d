/* ll_tokenizer.h: Hugging Face tokenizer.json in C (host/tokenizer/), producing exactly the ids the
 * `tokenizers` library produces, and readable strings back. */
#ifndef LL_TOKENIZER_H
#define LL_TOKENIZER_H

#include "ll_common.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ll_tokenizer ll_tokenizer;
struct ll_gguf;

/* 1 when DIR/tokenizer.json exists. */
int ll_tokenizer_exists(const char *dir);

/* Loads DIR/tokenizer.json (and DIR/tokenizer_config.json when present). Unsupported features are
 * errors naming the feature (never silently different ids). */
ll_status ll_tokenizer_load(const char *dir, ll_tokenizer **out, ll_err *err);
void ll_tokenizer_free(ll_tokenizer *tk);

/* Builds a tokenizer from the text of a tokenizer.json held in memory (len bytes, need not be
 * NUL-terminated); `name` stands for the file in messages. No tokenizer_config.json is read. */
ll_status ll_tokenizer_load_json(const char *json, size_t len, const char *name, ll_tokenizer **out, ll_err *err);

/* Builds the tokenizer a GGUF file's metadata describes (tokenizer.ggml.*: model gpt2 or llama, tokens,
 * merges or scores, token types, bos/eos and add_bos_token/add_eos_token, pre). *out = NULL with LL_OK
 * when the file has no tokenizer.ggml.model; a tokenizer this code cannot reproduce exactly (an unknown
 * model or pre name, ...) is an LL_ERR_INPUT error naming the key and the value. */
ll_status ll_tokenizer_from_gguf(const struct ll_gguf *g, ll_tokenizer **out, ll_err *err);

/* Encodes len bytes of text (need not be valid UTF-8). add_special: insert BOS/EOS as the post-processor
 * and tokenizer_config.json say; 0 turns special-token insertion off. *ids is malloc'ed (caller frees). */
ll_status ll_tokenizer_encode(ll_tokenizer *tk, const char *text, size_t len, int add_special, int32_t **ids,
                              size_t *n_ids, ll_err *err);

/* Decodes ids to text as tokenizers' decode(skip_special_tokens=False) does; *text is malloc'ed,
 * NUL-terminated. */
ll_status ll_tokenizer_decode(ll_tokenizer *tk, const int32_t *ids, size_t n, char **text, ll_err *err);

/* As ll_tokenizer_decode, also giving the byte length of *text (decoded text may contain NUL
 * characters, which a NUL-terminated string alone cannot show). */
ll_status ll_tokenizer_decode_n(ll_tokenizer *tk, const int32_t *ids, size_t n, char **text, size_t *len,
                                ll_err *err);

/* Number of ids the tokenizer knows (max id + 1, added tokens included). */
int64_t ll_tokenizer_vocab_size(const ll_tokenizer *tk);

/* The raw bytes token `id` stands for (byte-level and metaspace mappings undone, <0xNN> byte tokens as
 * their byte). Copies up to cap bytes into buf and returns the full length; 0 for unknown ids. */
size_t ll_tokenizer_token_bytes(const ll_tokenizer *tk, int32_t id, uint8_t *buf, size_t cap);

/* Display string of one token: its bytes as UTF-8 with bytes that are not valid UTF-8 on their own
 * written as \xNN, and `<unused:ID>` for ids the tokenizer does not have (e.g. padded embedding rows).
 * Writes a NUL-terminated string of at most cap bytes; returns the full length (without NUL). */
size_t ll_tokenizer_token_display(const ll_tokenizer *tk, int32_t id, char *buf, size_t cap);

/* Writes DIR/tokenizer.json (and tokenizer_config.json) for a synthetic model: style "gpt2" (byte-level
 * BPE), "llama3" (Split regex + ByteLevel, BOS), or "sentencepiece" (Metaspace-style BPE with byte
 * fallback, BOS), with exactly vocab_size ids, merges learned deterministically from a built-in English
 * text so that common words are single tokens. */
ll_status ll_tokenizer_write_synth(const char *dir, const char *style, int64_t vocab_size, uint64_t seed,
                                   ll_err *err);

#ifdef __cplusplus
}
#endif
#endif
