/* fuzz_tokenizer_exercise.h: what the tokenizer fuzz targets do with a tokenizer that loaded: encode each
 * fixed text (with and without special tokens), check every id is inside the vocabulary, decode, and
 * display each token; then free the tokenizer. Aborts on an id outside the vocabulary. */
#ifndef FUZZ_TOKENIZER_EXERCISE_H
#define FUZZ_TOKENIZER_EXERCISE_H

#include "ll_tokenizer.h"

#include <stdlib.h>
#include <string.h>

static void fuzz_tokenizer_exercise(ll_tokenizer *tk, const char *const *texts, size_t n_texts) {
    ll_err err;
    int64_t v = ll_tokenizer_vocab_size(tk);
    for (size_t t = 0; t < n_texts; t++) {
        int32_t *ids;
        size_t n;
        if (ll_tokenizer_encode(tk, texts[t], strlen(texts[t]), (int)(t & 1), &ids, &n, &err) != LL_OK) continue;
        for (size_t i = 0; i < n; i++)
            if (ids[i] < 0 || ids[i] >= v) abort();
        char *text;
        if (ll_tokenizer_decode(tk, ids, n, &text, &err) == LL_OK) free(text);
        char buf[64];
        for (size_t i = 0; i < n; i++) ll_tokenizer_token_display(tk, ids[i], buf, sizeof buf);
        free(ids);
    }
    ll_tokenizer_free(tk);
}

#endif
