/* test_tokenizer.c: the tokenizer library API (include/ll_tokenizer.h) on synthetic tokenizers:
 * every style at small and odd vocabulary sizes, encode/decode round trips, display strings
 * (escaped partial UTF-8, <unused:ID> for ids past the tokenizer), token bytes with a short buffer,
 * invalid UTF-8 input, error statuses. The agreement with Hugging Face is tested in
 * tests/test_tokenizer_*.py. One line per failed check; exit status 1 when any failed. */
#include "ll_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "test_tokenizer:%d: FAIL %s: ", __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            failures++;                                                    \
        }                                                                  \
    } while (0)

static char *display(const ll_tokenizer *tk, int32_t id) {
    static char buf[256];
    ll_tokenizer_token_display(tk, id, buf, sizeof buf);
    return buf;
}

static void test_style(const char *root, const char *style, int64_t v) {
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s_%lld", root, style, (long long)v);
    CHECK(mkdir(dir, 0755) == 0, "mkdir %s", dir);
    ll_err err;
    ll_status st = ll_tokenizer_write_synth(dir, style, v, 7, &err);
    CHECK(st == LL_OK, "%s %lld: %s", style, (long long)v, err.msg);
    if (st) return;
    CHECK(ll_tokenizer_exists(dir), "%s", dir);
    ll_tokenizer *tk;
    st = ll_tokenizer_load(dir, &tk, &err);
    CHECK(st == LL_OK, "%s %lld: load: %s", style, (long long)v, err.msg);
    if (st) return;
    CHECK(ll_tokenizer_vocab_size(tk) == v, "%s: vocab size %lld, expected %lld", style,
          (long long)ll_tokenizer_vocab_size(tk), (long long)v);

    const char *text = "The Eiffel Tower is in the city of Paris. Größe 123 \xe2\x82\xac";
    int32_t *ids, *ids_plain;
    size_t n, n_plain;
    st = ll_tokenizer_encode(tk, text, strlen(text), 1, &ids, &n, &err);
    CHECK(st == LL_OK, "%s: encode: %s", style, err.msg);
    st = ll_tokenizer_encode(tk, text, strlen(text), 0, &ids_plain, &n_plain, &err);
    CHECK(st == LL_OK, "%s: encode without specials: %s", style, err.msg);
    int has_bos = strcmp(style, "gpt2") != 0;
    CHECK(n == n_plain + (size_t)has_bos, "%s: %zu ids with specials, %zu without", style, n, n_plain);
    for (size_t i = 0; i < n; i++) CHECK(ids[i] >= 0 && ids[i] < v, "%s: id %d out of range", style, ids[i]);
    if (has_bos) {
        const char *bos = !strcmp(style, "llama3") ? "<|begin_of_text|>" : "<s>";
        CHECK(!strcmp(display(tk, ids[0]), bos), "%s: first token shows as '%s'", style, display(tk, ids[0]));
    }
    /* Bytes of all tokens (without specials) concatenated give the text back; for sentencepiece with a
     * leading space from the Prepend normalizer. */
    char joined[512] = {0};
    size_t jl = 0;
    for (size_t i = 0; i < n_plain; i++) {
        uint8_t b[64];
        size_t k = ll_tokenizer_token_bytes(tk, ids_plain[i], b, sizeof b);
        CHECK(k > 0 && k <= sizeof b, "%s: token %d has %zu bytes", style, ids_plain[i], k);
        if (jl + k < sizeof joined) memcpy(joined + jl, b, k), jl += k;
    }
    const char *expect = text;
    if (!strcmp(style, "sentencepiece")) {
        CHECK(joined[0] == ' ', "%s: expected the prepended space", style);
        memmove(joined, joined + 1, jl--);
    }
    CHECK(jl == strlen(expect) && !memcmp(joined, expect, jl), "%s: token bytes join to '%.*s'", style, (int)jl,
          joined);
    char *dec;
    st = ll_tokenizer_decode(tk, ids_plain, n_plain, &dec, &err);
    CHECK(st == LL_OK && !strcmp(dec, text), "%s: decode gives '%s'", style, st ? err.msg : dec);
    if (!st) free(dec);
    free(ids);
    free(ids_plain);

    /* Display strings. */
    char want[64];
    snprintf(want, sizeof want, "<unused:%lld>", (long long)v + 3);
    CHECK(!strcmp(display(tk, (int32_t)v + 3), want), "%s: '%s'", style, display(tk, (int32_t)v + 3));
    CHECK(!strcmp(display(tk, -1), "<unused:-1>"), "%s: '%s'", style, display(tk, -1));
    CHECK(ll_tokenizer_token_bytes(tk, (int32_t)v + 3, NULL, 0) == 0, "%s", style);
    int32_t e2 = -1; /* the token of byte 0xE2 alone */
    for (int32_t id = 0; id < v && e2 < 0; id++) {
        uint8_t b[8];
        if (ll_tokenizer_token_bytes(tk, id, b, sizeof b) == 1 && b[0] == 0xE2) e2 = id;
    }
    CHECK(e2 >= 0 && !strcmp(display(tk, e2), "\\xe2"), "%s: byte 0xE2 shows as '%s'", style,
          e2 >= 0 ? display(tk, e2) : "(none)");
    char small[4];
    size_t full = ll_tokenizer_token_display(tk, (int32_t)v + 3, small, sizeof small);
    CHECK(full == strlen(want) && strlen(small) == 3, "%s: truncated display", style);

    /* Invalid UTF-8 and an empty input. */
    const char bad[] = "a\xff\xc3(\xe2\x82 \xf0\x9f\x98";
    st = ll_tokenizer_encode(tk, bad, sizeof bad - 1, 0, &ids, &n, &err);
    CHECK(st == LL_OK && n > 0, "%s: invalid UTF-8: %s", style, st ? err.msg : "no ids");
    if (!st) free(ids);
    st = ll_tokenizer_encode(tk, "", 0, 1, &ids, &n, &err);
    CHECK(st == LL_OK && n == (size_t)has_bos, "%s: empty input gives %zu ids", style, n);
    if (!st) free(ids);
    ll_tokenizer_free(tk);
}

static void rm_rf(const char *root) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "test_tokenizer: cannot remove %s\n", root);
}

int main(void) {
    char root[] = "/tmp/ll_test_tokenizer_XXXXXX";
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    const char *styles[] = {"gpt2", "llama3", "sentencepiece"};
    const int64_t sizes[] = {300, 301, 397, 512, 2048};
    for (int s = 0; s < 3; s++)
        for (int k = 0; k < 5; k++) test_style(root, styles[s], sizes[k]);

    ll_err err;
    ll_tokenizer *tk = NULL;
    CHECK(ll_tokenizer_write_synth(root, "wordpiece", 500, 1, &err) == LL_ERR_USAGE, "bad style");
    CHECK(strstr(err.msg, "wordpiece") != NULL, "%s", err.msg);
    CHECK(ll_tokenizer_write_synth(root, "gpt2", 200, 1, &err) == LL_ERR_USAGE, "small vocab");
    CHECK(ll_tokenizer_write_synth("/nonexistent/dir", "gpt2", 400, 1, &err) == LL_ERR_IO, "unwritable dir");
    CHECK(ll_tokenizer_load("/nonexistent/dir", &tk, &err) == LL_ERR_IO && tk == NULL, "missing dir");
    CHECK(strstr(err.msg, "tokenizer.json") != NULL, "%s", err.msg);
    CHECK(!ll_tokenizer_exists("/nonexistent/dir"), "exists");
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", root);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", f);
        fclose(f);
    }
    CHECK(ll_tokenizer_load(root, &tk, &err) == LL_ERR_INPUT, "WordPiece");
    CHECK(strstr(err.msg, "model.type 'WordPiece' is not supported") != NULL, "%s", err.msg);
    rm_rf(root);
    if (failures) fprintf(stderr, "test_tokenizer: %d checks failed\n", failures);
    return failures ? 1 : 0;
}
