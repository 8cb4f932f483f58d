/* ll_prompts.h: the prompts of a run: from --prompt, --tokens and --prompts files (.txt, .jsonl),
 * tokenized and validated against the model. */
#ifndef LL_PROMPTS_H
#define LL_PROMPTS_H

#include "ll_common.h"
#include "ll_tokenizer.h"

#include <stdint.h>

typedef struct ll_prompt {
    char *text;          /* prompt text; NULL for pre-tokenized prompts */
    char *target_text;   /* explicit answer text, or NULL */
    int32_t target_id;   /* explicit answer id (from "target_id" or the first token of target_text), or -1 */
    int32_t *ids;        /* [n] token ids */
    int64_t n;
    char origin[256];    /* where it came from, for messages: "--prompt 2", "prompts.jsonl:7" */
} ll_prompt;

typedef struct ll_prompt_set {
    ll_prompt *v;
    int n, cap;
} ll_prompt_set;

ll_status ll_prompts_add_text(ll_prompt_set *s, const char *text, const char *origin, ll_err *err);
/* ids: comma-separated integers */
ll_status ll_prompts_add_token_list(ll_prompt_set *s, const char *ids, const char *origin, ll_err *err);
/* .txt: one prompt per line; .jsonl: {"prompt": TEXT | "tokens": [ids], "target": TEXT, "target_id": ID} */
ll_status ll_prompts_load_file(ll_prompt_set *s, const char *path, ll_err *err);
/* Tokenizes text prompts and targets (tk may be NULL: then any text is an error naming tokenizer.json). */
ll_status ll_prompts_tokenize(ll_prompt_set *s, ll_tokenizer *tk, const char *model_dir, int add_special,
                              ll_err *err);
/* Checks ids against the vocabulary, lengths against the context (and sliding window, when > 0). */
ll_status ll_prompts_validate(const ll_prompt_set *s, int64_t vocab, int64_t n_ctx, int64_t sliding_window,
                              ll_err *err);
void ll_prompts_free(ll_prompt_set *s);

#endif
