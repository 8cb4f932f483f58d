/* tok_synth.h: pieces of ll_tokenizer_write_synth: the built-in training text and the BPE trainer. */
#ifndef LL_TOK_SYNTH_H
#define LL_TOK_SYNTH_H

#include "tok_internal.h"

/* Appends n_sentences generated English sentences (ASCII, seeded) to out. */
int tok_synth_text(uint64_t seed, size_t n_sentences, tok_buf *out);

/* A learned vocabulary: token strings in id order (the alphabet first, then one per merge) and the
 * merges as pairs of token indices. */
typedef struct tok_synth_vocab {
    char **tok;        /* token strings (owned) */
    size_t n_tok;
    int32_t *merge_a;  /* left token index per merge */
    int32_t *merge_b;  /* right token index per merge */
    size_t n_merges;
} tok_synth_vocab;

/* Learns up to max_merges merges over `words` (each word a sequence of alphabet indices, -1 for a
 * character outside the alphabet that never merges), weighted by counts. The alphabet strings must
 * already be in v->tok. Deterministic: ties go to the pair whose merged string sorts first. */
int tok_synth_learn(tok_synth_vocab *v, int32_t **words, size_t *word_len, const uint32_t *counts, size_t n_words,
                    size_t max_merges);
void tok_synth_vocab_free(tok_synth_vocab *v);

#endif
