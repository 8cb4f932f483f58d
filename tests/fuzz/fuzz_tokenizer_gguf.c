/* fuzz_tokenizer_gguf.c: libFuzzer target: arbitrary bytes as a GGUF file whose tokenizer.ggml.* metadata is
 * turned into a tokenizer (host/tokenizer/tok_gguf.c, through the reader host/model/gguf.c). Building must
 * either fail with a one-line message (and no tokenizer) or give a tokenizer that encodes, decodes and
 * displays a few fixed texts without crashing, leaking or producing ids outside the vocabulary.
 * Seeds: tests/fuzz/fuzz_tokenizer_gguf_seeds.py (written into the corpus before each run by mk/tokenizer.mk). */
#include "ll_gguf.h"
#include "fuzz_tokenizer_exercise.h"
#include "ll_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const char *TEXTS[] = {"", "hello world", "The Eiffel Tower is in the city of", "  a\tb\n\nc  12345",
                              "caf\xc3\xa9 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80 don't DON'T a\x04z",
                              "<s>x</s> <|endoftext|> <|im_start|> abc", "\xff\xfe\xc3(\xe2\x82"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int fd = -1;
    static char path[64];
    if (fd < 0) { /* the reader maps a file: the input goes to an in-memory one */
        fd = memfd_create("fuzz.gguf", 0);
        if (fd < 0) abort();
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) || (size && pwrite(fd, data, size, 0) != (ssize_t)size)) abort();
    ll_gguf *g;
    ll_err err;
    if (ll_gguf_open(path, &g, &err) != LL_OK) return 0;
    ll_tokenizer *tk = NULL;
    err.msg[0] = 0;
    ll_status st = ll_tokenizer_from_gguf(g, &tk, &err);
    ll_gguf_close(g); /* the tokenizer keeps no pointer into the mapping */
    if (st != LL_OK) {
        if (tk || !err.msg[0] || strchr(err.msg, '\n')) abort(); /* errors are one non-empty line */
        return 0;
    }
    if (!tk) return 0; /* no tokenizer.ggml.model */
    fuzz_tokenizer_exercise(tk, TEXTS, sizeof TEXTS / sizeof TEXTS[0]);
    return 0;
}
