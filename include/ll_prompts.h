/* ll_prompts.h: the prompts of a run: from --prompt, --tokens and --prompts files (.txt, .jsonl),
 * tokenized and validated against the model.
 *
 * One set of rules (docs/cli.md, "Prompts"): prompts are numbered from 0 in the order they are given
 * (command-line prompts first, then the file's), as the result file and `show` number them; file lines
 * from 1, as editors do; every message names both ("prompt 3 (p.txt:5)"). In both file formats blank
 * lines are skipped; in .txt a line whose first non-blank character is '#' is a comment. Nothing else is
 * dropped: a prompt that cannot be run exactly as written (a NUL character, no tokens) is an error. */
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
    char origin[256];    /* where it came from, for messages: "prompt 0 (--prompt)", "prompt 6 (prompts.jsonl:7)" */
} ll_prompt;

typedef struct ll_prompt_set {
    ll_prompt *v;
    int n, cap;
} ll_prompt_set;

/* source: where the prompt comes from ("--prompt", "p.txt:5"); the origin adds its index. */
ll_status ll_prompts_add_text(ll_prompt_set *s, const char *text, const char *source, ll_err *err);
/* ids: comma-separated integers */
ll_status ll_prompts_add_token_list(ll_prompt_set *s, const char *ids, const char *source, ll_err *err);

/* What a prompt file held besides its prompts. */
typedef struct ll_prompts_file_stats {
    int64_t lines;    /* lines read */
    int64_t prompts;  /* prompts added */
    int64_t blank;    /* blank (empty or whitespace-only) lines skipped */
    int64_t comments; /* .txt comment lines ('#' first) skipped */
} ll_prompts_file_stats;

/* .txt: one prompt per line; .jsonl: {"prompt": TEXT | "tokens": [ids], "target": TEXT, "target_id": ID}.
 * stats may be NULL. */
ll_status ll_prompts_load_file(ll_prompt_set *s, const char *path, ll_prompts_file_stats *stats, ll_err *err);
/* Tokenizes text prompts and targets. tk may be NULL: then any text is an error that ends with
 * no_tokenizer (why there is none, e.g. "the model m/ has no tokenizer.json"). */
ll_status ll_prompts_tokenize(ll_prompt_set *s, ll_tokenizer *tk, const char *no_tokenizer, int add_special,
                              ll_err *err);
/* 1 when some prompt or target is text (needs a tokenizer). */
int ll_prompts_need_tokenizer(const ll_prompt_set *s);
/* Checks ids against the vocabulary, lengths against the context (and sliding window, when > 0). */
ll_status ll_prompts_validate(const ll_prompt_set *s, int64_t vocab, int64_t n_ctx, int64_t sliding_window,
                              ll_err *err);
void ll_prompts_free(ll_prompt_set *s);

#endif
