/* cli_tokenize.c: `logitlens tokenize`: print the ids and pieces of a text, or tokenize / decode a
 * file of inputs one per line (used by the tests and the benchmark). The tokenizer is a directory's
 * tokenizer.json or a GGUF file's metadata, chosen as `run --model` chooses (ll_model_locate). */
#include "cli.h"
#include "ll_common.h"
#include "ll_model.h"
#include "ll_tokenizer.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: logitlens tokenize MODEL --text TEXT [--no-special]\n"
            "       logitlens tokenize MODEL --batch FILE [--hex] [--no-special] [--stats]\n"
            "       logitlens tokenize MODEL --decode FILE\n"
            "       logitlens tokenize MODEL --vocab\n"
            "       logitlens tokenize DIR --write-synth STYLE --vocab-size V [--seed S]\n"
            "\n"
            "MODEL (positional or --model MODEL): a directory holding tokenizer.json (and optionally\n"
            "tokenizer_config.json), a .gguf file, or a directory holding one .gguf (its tokenizer.ggml.*\n"
            "metadata), chosen as run --model chooses.\n"
            "  --text TEXT    print the ids of TEXT, then one line per token: id and its display string\n"
            "  --no-special   do not add the BOS/EOS tokens of the post-processor\n"
            "  --batch FILE   one input per line, a JSON string (with --hex: the text's bytes in hex);\n"
            "                 prints one line of space-separated ids per input; --stats: encoding time and\n"
            "                 throughput (encode calls only) on stderr\n"
            "  --decode FILE  one JSON array of ids per line; prints the decoded text's bytes in hex per line\n"
            "  --vocab        prints every id: id, its raw bytes in hex, its display string (tab-separated)\n"
            "  --write-synth STYLE  writes DIR/tokenizer.json and DIR/tokenizer_config.json of a synthetic\n"
            "                 tokenizer (gpt2, llama3 or sentencepiece) with V ids, as `logitlens synth` does\n");
}

/* Prints a display string with control characters escaped so that each token stays on one line. */
static void put_display(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n') fputs("\\n", stdout);
        else if (*p == '\t') fputs("\\t", stdout);
        else if (*p == '\r') fputs("\\r", stdout);
        else if (*p == '"') fputs("\\\"", stdout);
        else if (*p < 0x20 || *p == 0x7f) printf("\\x%02x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static char *display(const ll_tokenizer *tk, int32_t id) {
    size_t n = ll_tokenizer_token_display(tk, id, NULL, 0);
    char *s = malloc(n + 1);
    if (s) ll_tokenizer_token_display(tk, id, s, n + 1);
    return s;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void put_hex(const unsigned char *p, size_t n) {
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        putchar(hx[p[i] >> 4]);
        putchar(hx[p[i] & 15]);
    }
}

static int cmd_text(ll_tokenizer *tk, const char *text, int add_special) {
    int32_t *ids;
    size_t n;
    ll_err err;
    ll_status st = ll_tokenizer_encode(tk, text, strlen(text), add_special, &ids, &n, &err);
    if (st) {
        fprintf(stderr, "logitlens tokenize: %s\n", err.msg);
        return ll_status_exit_code(st);
    }
    printf("%zu tokens:", n);
    for (size_t i = 0; i < n; i++) printf(" %d", (int)ids[i]);
    putchar('\n');
    for (size_t i = 0; i < n; i++) {
        char *d = display(tk, ids[i]);
        printf("%8d  ", (int)ids[i]);
        put_display(d ? d : "");
        putchar('\n');
        free(d);
    }
    free(ids);
    return 0;
}

/* Parses one input line of --batch into bytes (*out malloc'ed). */
static int batch_line(const char *path, size_t lineno, char *line, size_t len, int hex, char **out, size_t *n) {
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    if (hex) {
        if (len % 2) goto bad_hex;
        char *b = malloc(len / 2 + 1);
        if (!b) return 5;
        for (size_t i = 0; i < len / 2; i++) {
            int h = hexval(line[2 * i]), l = hexval(line[2 * i + 1]);
            if (h < 0 || l < 0) {
                free(b);
                goto bad_hex;
            }
            b[i] = (char)(h * 16 + l);
        }
        *out = b;
        *n = len / 2;
        return 0;
    bad_hex:
        fprintf(stderr, "logitlens tokenize: %s line %zu: expected an even number of hex digits\n", path, lineno);
        return 3;
    }
    for (const char *q = line; (q = strstr(q, "\\u0000")) != NULL; q++) {
        size_t bs = 0;
        while (q - (ptrdiff_t)bs > line && q[-(ptrdiff_t)bs - 1] == '\\') bs++;
        if (bs % 2 == 0) {
            fprintf(stderr, "logitlens tokenize: %s line %zu: a JSON string with \\u0000 cannot be passed on (use --hex)\n",
                    path, lineno);
            return 3;
        }
    }
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsString(j)) {
        cJSON_Delete(j);
        fprintf(stderr, "logitlens tokenize: %s line %zu: expected a JSON string\n", path, lineno);
        return 3;
    }
    *out = strdup(j->valuestring);
    *n = *out ? strlen(*out) : 0;
    cJSON_Delete(j);
    return *out ? 0 : 5;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmd_batch(ll_tokenizer *tk, const char *path, int hex, int add_special, int stats) {
    double enc_s = 0;
    size_t enc_bytes = 0, enc_ids = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "logitlens tokenize: cannot open %s\n", path);
        return 4;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t r;
    int rc = 0;
    while (!rc && (r = getline(&line, &cap, f)) >= 0) {
        lineno++;
        char *text;
        size_t n;
        if ((rc = batch_line(path, lineno, line, (size_t)r, hex, &text, &n))) break;
        int32_t *ids;
        size_t k;
        ll_err err;
        double t0 = now_s();
        ll_status st = ll_tokenizer_encode(tk, text, n, add_special, &ids, &k, &err);
        enc_s += now_s() - t0;
        enc_bytes += n;
        enc_ids += st ? 0 : k;
        free(text);
        if (st) {
            fprintf(stderr, "logitlens tokenize: %s line %zu: %s\n", path, lineno, err.msg);
            rc = ll_status_exit_code(st);
            break;
        }
        for (size_t i = 0; i < k; i++) printf(i ? " %d" : "%d", (int)ids[i]);
        putchar('\n');
        free(ids);
    }
    free(line);
    fclose(f);
    if (stats && !rc)
        fprintf(stderr, "encode: %zu inputs, %zu bytes, %zu ids in %.6f s (%.2f MB/s)\n", lineno, enc_bytes, enc_ids,
                enc_s, enc_s > 0 ? (double)enc_bytes / enc_s / 1e6 : 0.0);
    return rc;
}

static int cmd_decode(ll_tokenizer *tk, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "logitlens tokenize: cannot open %s\n", path);
        return 4;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t r;
    int rc = 0;
    while (!rc && (r = getline(&line, &cap, f)) >= 0) {
        lineno++;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)r);
        int n = cJSON_IsArray(j) ? cJSON_GetArraySize(j) : -1;
        int32_t *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
        int ok = ids != NULL;
        for (int i = 0; ok && i < n; i++) {
            const cJSON *v = cJSON_GetArrayItem(j, i);
            ok = cJSON_IsNumber(v) && v->valuedouble >= -2147483648.0 && v->valuedouble <= 2147483647.0;
            if (ok) ids[i] = (int32_t)v->valuedouble;
        }
        cJSON_Delete(j);
        if (!ok) {
            free(ids);
            fprintf(stderr, "logitlens tokenize: %s line %zu: expected a JSON array of integer ids\n", path, lineno);
            rc = 3;
            break;
        }
        char *text;
        size_t tlen;
        ll_err err;
        ll_status st = ll_tokenizer_decode_n(tk, ids, (size_t)n, &text, &tlen, &err);
        free(ids);
        if (st) {
            fprintf(stderr, "logitlens tokenize: %s line %zu: %s\n", path, lineno, err.msg);
            rc = ll_status_exit_code(st);
            break;
        }
        put_hex((const unsigned char *)text, tlen);
        putchar('\n');
        free(text);
    }
    free(line);
    fclose(f);
    return rc;
}

static int cmd_vocab(ll_tokenizer *tk) {
    int64_t n = ll_tokenizer_vocab_size(tk);
    unsigned char buf[1024];
    for (int64_t id = 0; id < n; id++) {
        size_t k = ll_tokenizer_token_bytes(tk, (int32_t)id, buf, sizeof buf);
        char *d = display(tk, (int32_t)id);
        printf("%lld\t", (long long)id);
        put_hex(buf, k < sizeof buf ? k : sizeof buf);
        putchar('\t');
        put_display(d ? d : "");
        putchar('\n');
        free(d);
    }
    return 0;
}

/* The tokenizer of MODEL: GGUF metadata when ll_model_locate finds a GGUF, else DIR/tokenizer.json as
 * before (so a missing directory still says which tokenizer.json it could not read). */
static ll_status load_tokenizer(const char *model, ll_tokenizer **tk, ll_err *err) {
    ll_model_format fmt;
    char *path = NULL;
    ll_err lerr;
    ll_status st = ll_model_locate(model, &fmt, &path, &lerr);
    free(path);
    if (!st && fmt == LL_MODEL_GGUF) {
        if ((st = ll_model_tokenizer_load(model, tk, err))) return st;
        if (!*tk)
            return ll_fail(err, LL_ERR_INPUT, "model %s: the GGUF metadata has no tokenizer (no tokenizer.ggml.model)",
                           model);
        return LL_OK;
    }
    struct stat sb;
    if (st && stat(model, &sb) == 0 && !(S_ISDIR(sb.st_mode) && ll_tokenizer_exists(model))) {
        *err = lerr; /* e.g. a directory holding two .gguf files, or a file that is not a .gguf */
        return st;
    }
    return ll_tokenizer_load(model, tk, err);
}

int ll_cmd_tokenize(int argc, char **argv) {
    const char *dir = NULL, *text = NULL, *batch = NULL, *decode = NULL, *synth = NULL;
    long long synth_vocab = -1;
    unsigned long long seed = 1;
    int add_special = 1, hex = 0, vocab = 0, stats = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-special")) add_special = 0;
        else if (!strcmp(a, "--hex")) hex = 1;
        else if (!strcmp(a, "--stats")) stats = 1;
        else if (!strcmp(a, "--vocab")) vocab = 1;
        else if (!strcmp(a, "--vocab-size") || !strcmp(a, "--seed")) {
            char *end;
            if (i + 1 >= argc) {
                fprintf(stderr, "logitlens tokenize: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            long long x = strtoll(v, &end, 10);
            if (!*v || *end || x < 0) {
                fprintf(stderr, "logitlens tokenize: %s '%s' (expected a non-negative integer)\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--seed")) seed = (unsigned long long)x;
            else synth_vocab = x;
        } else if (!strcmp(a, "--write-synth")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "logitlens tokenize: --write-synth needs a style\n");
                return 2;
            }
            synth = argv[++i];
        } else if (!strcmp(a, "--text") || !strcmp(a, "--batch") || !strcmp(a, "--decode") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "logitlens tokenize: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--model") && dir) {
                fprintf(stderr, "logitlens tokenize: the model is given twice ('%s' and '%s')\n", dir, argv[i + 1]);
                return 2;
            }
            const char **dst = !strcmp(a, "--text")    ? &text
                               : !strcmp(a, "--batch") ? &batch
                               : !strcmp(a, "--model") ? &dir
                                                       : &decode;
            *dst = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "logitlens tokenize: unknown option '%s' (see logitlens tokenize --help)\n", a);
            return 2;
        } else if (!dir) dir = a;
        else {
            fprintf(stderr, "logitlens tokenize: unexpected argument '%s' (one model expected)\n", a);
            return 2;
        }
    }
    int modes = (text != NULL) + (batch != NULL) + (decode != NULL) + vocab + (synth != NULL);
    if (!dir || modes != 1) {
        fprintf(stderr, "logitlens tokenize: expected DIR (or --model PATH) and exactly one of --text, --batch, "
                        "--decode, --vocab, --write-synth (see logitlens tokenize --help)\n");
        return 2;
    }
    if (synth) {
        if (synth_vocab < 0) {
            fprintf(stderr, "logitlens tokenize: --write-synth needs --vocab-size V\n");
            return 2;
        }
        ll_err serr;
        ll_status sst = ll_tokenizer_write_synth(dir, synth, synth_vocab, seed, &serr);
        if (sst) {
            fprintf(stderr, "logitlens tokenize: %s\n", serr.msg);
            return ll_status_exit_code(sst);
        }
        return 0;
    }
    ll_tokenizer *tk;
    ll_err err;
    ll_status st = load_tokenizer(dir, &tk, &err);
    if (st) {
        fprintf(stderr, "logitlens tokenize: %s\n", err.msg);
        return ll_status_exit_code(st);
    }
    int rc = text ? cmd_text(tk, text, add_special)
             : batch ? cmd_batch(tk, batch, hex, add_special, stats)
             : decode ? cmd_decode(tk, decode)
                      : cmd_vocab(tk);
    ll_tokenizer_free(tk);
    if (fflush(stdout) && !rc) rc = 4;
    return rc;
}
