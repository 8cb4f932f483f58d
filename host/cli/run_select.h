/* run_select.h: what a run saves besides the statistics: the --save-probs positions, the --probs-vocab ids,
 * and the vocabulary strings written to the result file. */
#ifndef LL_RUN_SELECT_H
#define LL_RUN_SELECT_H

#include "ll_common.h"
#include "ll_prompts.h"
#include "ll_tokenizer.h"

#include <stddef.h>
#include <stdint.h>

typedef enum ll_probs_mode { LL_PROBS_NONE = 0, LL_PROBS_LAST, LL_PROBS_ALL, LL_PROBS_LIST } ll_probs_mode;

/* --save-probs: which positions of each prompt get their whole distribution saved. */
typedef struct ll_probs_sel {
    ll_probs_mode mode;
    int64_t *pos;        /* LL_PROBS_LIST: positions (negative count from the end) */
    int n_pos;
} ll_probs_sel;

/* Parses --save-probs (NULL: none). */
ll_status ll_probs_sel_parse(const char *s, ll_probs_sel *ps, ll_err *err);
/* Every listed position must exist in every prompt: a position past a prompt's end is an error naming the
 * prompt, never a silently shorter selection. */
ll_status ll_probs_sel_check(const ll_probs_sel *ps, const char *spec, const ll_prompt_set *prompts, ll_err *err);
/* Whether position j of a prompt of n tokens is saved. */
int ll_probs_selected(const ll_probs_sel *ps, int64_t j, int64_t n);
void ll_probs_sel_free(ll_probs_sel *ps);

/* --probs-vocab: a comma list of ids in [0, V) into a malloc'ed int32 array. */
ll_status ll_parse_vocab_ids(const char *s, int64_t V, int32_t **out, int64_t *n, ll_err *err);

/* The vocabulary's display strings and bytes, for the result file. */
typedef struct ll_vocab_strings {
    int64_t n;
    char **display;   /* [n] UTF-8 display strings */
    uint8_t **bytes;  /* [n] raw bytes */
    size_t *len;      /* [n] byte lengths */
} ll_vocab_strings;

ll_status ll_vocab_strings_build(const ll_tokenizer *tk, int64_t V, ll_vocab_strings *v, ll_err *err);
void ll_vocab_strings_free(ll_vocab_strings *v);

#endif
