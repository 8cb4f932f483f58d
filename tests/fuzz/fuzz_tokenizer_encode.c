/* fuzz_tokenizer_encode.c: libFuzzer target: arbitrary bytes as text to encode. The first byte picks
 * one of four tokenizers (the three synthetic styles and one that uses every normalizer,
 * pre-tokenizer, added-token option and decoder step) and whether special tokens are added; the rest
 * is the text, valid UTF-8 or not. Every id must be inside the vocabulary, decoding and display must
 * not crash, and the same text must encode to the same ids twice (the word cache must not change
 * results). */
#include "ll_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static ll_tokenizer *TK[4];

/* A tokenizer.json with every supported stage; byte-fallback BPE over a few letters. */
static char *kitchen_sink(void) {
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    n += (size_t)snprintf(s + n, cap - n,
        "{\"added_tokens\": ["
        "{\"id\": 0, \"content\": \"<unk>\", \"special\": true, \"normalized\": false},"
        "{\"id\": 1, \"content\": \"<s>\", \"special\": true, \"normalized\": false},"
        "{\"id\": 300, \"content\": \"[MASK]\", \"special\": true, \"lstrip\": true, \"rstrip\": true, \"normalized\": false},"
        "{\"id\": 301, \"content\": \"newword\", \"normalized\": true},"
        "{\"id\": 302, \"content\": \"xyz\", \"single_word\": true, \"normalized\": false}],"
        "\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKC\"}, {\"type\": \"NFD\"},"
        " {\"type\": \"StripAccents\"}, {\"type\": \"NFC\"}, {\"type\": \"NFKD\"}, {\"type\": \"Lowercase\"},"
        " {\"type\": \"Replace\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"content\": \" \"},"
        " {\"type\": \"Strip\", \"strip_left\": true, \"strip_right\": false},"
        " {\"type\": \"Prepend\", \"prepend\": \"_\"}]},"
        "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": ["
        " {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+|\\\\d\"}, \"behavior\": \"MergedWithNext\", \"invert\": true},"
        " {\"type\": \"Split\", \"pattern\": {\"String\": \",\"}, \"behavior\": \"MergedWithPrevious\"},"
        " {\"type\": \"Split\", \"pattern\": {\"Regex\": \"[aeiou]*\"}, \"behavior\": \"Contiguous\"},"
        " {\"type\": \"Digits\", \"individual_digits\": true}, {\"type\": \"Punctuation\", \"behavior\": \"Removed\"},"
        " {\"type\": \"CharDelimiterSplit\", \"delimiter\": \"|\"}, {\"type\": \"Whitespace\"},"
        " {\"type\": \"BertPreTokenizer\"}, {\"type\": \"Metaspace\", \"replacement\": \"_\", \"prepend_scheme\": \"first\", \"split\": true},"
        " {\"type\": \"WhitespaceSplit\"}]},"
        "\"post_processor\": {\"type\": \"Sequence\", \"processors\": [{\"type\": \"ByteLevel\"},"
        " {\"type\": \"RobertaProcessing\", \"sep\": [\"<unk>\", 0], \"cls\": [\"<s>\", 1]}]},"
        "\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": \"_\"}, \"content\": \" \"},"
        " {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 1},"
        " {\"type\": \"Metaspace\"}, {\"type\": \"BPEDecoder\", \"suffix\": \"</w>\"}]},"
        "\"model\": {\"type\": \"BPE\", \"unk_token\": \"<unk>\", \"fuse_unk\": true, \"byte_fallback\": true,"
        " \"continuing_subword_prefix\": \"##\", \"vocab\": {\"<unk>\": 0, \"<s>\": 1");
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(s + n, cap - n, ", \"<0x%02X>\": %d", b, b + 2);
    const char *letters = "abcdeo_";
    int id = 258;
    for (const char *c = letters; *c; c++) {
        n += (size_t)snprintf(s + n, cap - n, ", \"%c\": %d, \"##%c\": %d", *c, id, *c, id + 1);
        id += 2;
    }
    snprintf(s + n, cap - n, ", \"ab\": %d, \"##ab\": %d, \"abc\": %d, \"_a\": %d, \"newword\": 301},"
             " \"merges\": [\"a ##b\", \"##a ##b\", \"ab ##c\", \"_ ##a\"]}}", id, id + 1, id + 2, id + 3);
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char root[] = "/tmp/ll_fuzz_tok_XXXXXX";
    if (!mkdtemp(root)) abort();
    const char *styles[3] = {"gpt2", "llama3", "sentencepiece"};
    ll_err err;
    for (int i = 0; i < 3; i++) {
        char dir[128], path[192];
        snprintf(dir, sizeof dir, "%s/%s", root, styles[i]);
        if (mkdir(dir, 0700) || ll_tokenizer_write_synth(dir, styles[i], 700, 3, &err) ||
            ll_tokenizer_load(dir, &TK[i], &err)) {
            fprintf(stderr, "fuzz_tokenizer_encode: setup failed: %s\n", err.msg);
            abort();
        }
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        unlink(path);
        rmdir(dir);
    }
    rmdir(root);
    char *js = kitchen_sink();
    if (!js || ll_tokenizer_load_json(js, strlen(js), "kitchen-sink.json", &TK[3], &err)) {
        fprintf(stderr, "fuzz_tokenizer_encode: kitchen-sink tokenizer: %s\n", js ? err.msg : "out of memory");
        abort();
    }
    free(js);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    ll_tokenizer *tk = TK[data[0] & 3];
    int add_special = (data[0] >> 2) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *a, *b;
    size_t na, nb;
    ll_err err;
    if (ll_tokenizer_encode(tk, text, len, add_special, &a, &na, &err) != LL_OK) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort();
    }
    if (ll_tokenizer_encode(tk, text, len, add_special, &b, &nb, &err) != LL_OK) abort();
    if (na != nb || memcmp(a, b, na * sizeof *a)) abort();
    int64_t v = ll_tokenizer_vocab_size(tk);
    char buf[32];
    for (size_t i = 0; i < na; i++) {
        if (a[i] < 0 || a[i] >= v) abort();
        ll_tokenizer_token_display(tk, a[i], buf, sizeof buf);
    }
    char *t;
    if (ll_tokenizer_decode(tk, a, na, &t, &err) == LL_OK) free(t);
    free(a);
    free(b);
    return 0;
}
