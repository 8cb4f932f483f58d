/* fuzz_tokenizer_load.c: libFuzzer target: arbitrary bytes as tokenizer.json. Loading must either
 * fail with a status and a message or give a tokenizer that encodes, decodes and displays a few
 * fixed texts without crashing, leaking or producing ids outside the vocabulary.
 * Build and run: make fuzz-tokenizer (short) or make fuzz-tokenizer-long (docs/tokenizer.md). */
#include "fuzz_tokenizer_exercise.h"
#include "ll_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TEXTS[] = {"", "hello world", "The Eiffel Tower is in the city of", "  a\tb\n\nc  ",
                              "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80 123456 don't DON'T",
                              "<s>x</s> <|endoftext|> [MASK] newword", "\xff\xfe\xc3(\xe2\x82"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ll_tokenizer *tk;
    ll_err err;
    if (ll_tokenizer_load_json((const char *)data, size, "fuzz.json", &tk, &err) != LL_OK) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort(); /* errors are one non-empty line */
        return 0;
    }
    fuzz_tokenizer_exercise(tk, TEXTS, sizeof TEXTS / sizeof TEXTS[0]);
    return 0;
}
