/* cli_show.c: `logitlens show FILE.h5 [--prompt I] [--position J] [--top N]`: prints one position's
 * per-point table and the points x positions grid of one prompt of a result file (docs/show.md). */
#include "cli.h"
#include "io/h5_reader.h"
#include "ll_common.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHOW_GRID_COLUMNS 12 /* positions in the grid; longer prompts show their last ones */
#define SHOW_CELL_TOKEN 8    /* columns for the token in a grid cell */
#define SHOW_TABLE_TOKEN 24  /* columns for a token in the table */
#define SHOW_TEXT_COLUMNS 100
#define SHOW_STR_MAX 512     /* bytes of one escaped string */

static void show_usage(FILE *f) {
    fprintf(f,
            "usage: logitlens show FILE.h5 [--prompt I] [--position J] [--top N]\n"
            "\n"
            "Prints, for one prompt of a result file written by `logitlens run`:\n"
            "  the table of every point (layer) at one position: top-1 token and probability, entropy H\n"
            "  (nats), KL to the final distribution, and the target's probability and rank;\n"
            "  the grid of points x positions with the top-1 token and its probability in each cell.\n"
            "\n"
            "  --prompt I     prompt index, default 0\n"
            "  --position J   position in the prompt, default -1 (negative counts from the end)\n"
            "  --top N        show the N most probable tokens per point in the table, default 1\n"
            "  --help         this text\n");
}

/* Appends one code point or escape of s to out; returns bytes consumed from s. Control characters,
 * DEL, bytes that are not valid UTF-8 and (when quote) the quote character are escaped. */
static size_t escape_one(const unsigned char *s, int quote, char *out) {
    unsigned c = s[0];
    if (c == '\n') return strcpy(out, "\\n"), 1;
    if (c == '\t') return strcpy(out, "\\t"), 1;
    if (c == '\r') return strcpy(out, "\\r"), 1;
    if (quote && c == '\'') return strcpy(out, "\\'"), 1;
    if (c >= 0x20 && c < 0x7f) return out[0] = (char)c, out[1] = 0, 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80) n = 0;
    if (n == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0))) n = 0; /* overlong, surrogate */
    if (n == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))) n = 0;
    if (n) {
        memcpy(out, s, n);
        out[n] = 0;
        return n;
    }
    snprintf(out, 5, "\\x%02x", c);
    return 1;
}

/* Escapes s into out with at most max_cols columns (an escape counts its characters, a code point one
 * column); a string that does not fit is cut and ends in '~'. Returns the columns used. */
static int escape_str(const char *s, int quote, int max_cols, char *out, size_t cap) {
    int limit = max_cols; /* first pass: everything; if it does not fit, again with room for '~' */
    for (int pass = 0; pass < 2; pass++) {
        const unsigned char *p = (const unsigned char *)s;
        size_t len = 0;
        int cols = 0, cut = 0;
        out[0] = 0;
        while (*p) {
            char piece[8];
            size_t used = escape_one(p, quote, piece), n = strlen(piece);
            int w = piece[0] == '\\' ? (int)n : 1;
            if (cols + w > limit || len + n + 2 > cap) {
                cut = 1;
                break;
            }
            memcpy(out + len, piece, n + 1);
            len += n;
            cols += w;
            p += used;
        }
        if (!cut) return cols;
        if (pass == 1) {
            out[len++] = '~';
            out[len] = 0;
            return cols + 1;
        }
        limit = max_cols - 1;
    }
    return 0;
}

/* Display string of a token id: the file's vocab entry, or "#ID". */
static const char *token_text(const ll_h5_run *r, int32_t id, char *buf, size_t cap) {
    if (r->vocab && id >= 0 && id < r->n_vocab) return r->vocab[id];
    snprintf(buf, cap, "#%d", (int)id);
    return buf;
}

/* Prints a token quoted, padded with spaces to `width` columns. */
static void print_token(const ll_h5_run *r, int32_t id, int width) {
    char idbuf[24], esc[SHOW_STR_MAX];
    int cols = escape_str(token_text(r, id, idbuf, sizeof idbuf), 1, SHOW_TABLE_TOKEN, esc, sizeof esc);
    printf("'%s'%*s", esc, width > cols ? width - cols : 0, "");
}

static int token_cols(const ll_h5_run *r, int32_t id) {
    char idbuf[24], esc[SHOW_STR_MAX];
    return escape_str(token_text(r, id, idbuf, sizeof idbuf), 1, SHOW_TABLE_TOKEN, esc, sizeof esc);
}

static void print_table(const ll_h5_run *r, const ll_h5_prompt_data *d, int64_t j, int top) {
    int P = r->n_points, K = r->topk, name_w = 5;
    int tok_w[64] = {0}; /* widest token in each of the first `top` columns */
    for (int p = 0; p < P; p++) {
        int w = (int)strlen(r->point_names[p]);
        if (w > name_w) name_w = w;
        for (int k = 0; k < top && k < 64; k++) {
            int c = token_cols(r, d->topk_ids[((size_t)j * P + p) * K + k]);
            if (c > tok_w[k]) tok_w[k] = c;
        }
    }
    int32_t target = d->target_ids[j];
    for (int p = 0; p < P; p++) {
        size_t i = (size_t)j * P + p;
        printf("%-*s ", name_w, r->point_names[p]);
        for (int k = 0; k < top; k++) {
            printf("  ");
            print_token(r, d->topk_ids[i * K + k], k < 64 ? tok_w[k] : 0);
            printf(" %.3f", d->topk_probs[i * K + k]);
        }
        printf("   H=%.2f  KL=%.2f", d->entropy[i], d->kl_final[i]);
        if (target >= 0) {
            printf("  target ");
            print_token(r, target, 0);
            printf(" p=%.3f rank=%d", d->target_probs[i], (int)d->target_ranks[i]);
        }
        printf("\n");
    }
}

/* Probability in three characters: ".87", "1.0", "nan". */
static void short_prob(float p, char *buf) {
    if (!(p >= 0.0f && p <= 1.0f)) strcpy(buf, "nan");
    else if (p >= 0.995f) strcpy(buf, "1.0");
    else snprintf(buf, 4, ".%02d", (int)lrintf(p * 100.0f));
}

/* Prints s cut to width columns; padded to width unless it ends the line. */
static void print_cell(const char *s, int width, int pad) {
    char esc[SHOW_STR_MAX];
    int cols = escape_str(s, 0, width, esc, sizeof esc);
    printf("%s%*s", esc, pad && width > cols ? width - cols : 0, "");
}

static void print_grid(const ll_h5_run *r, const ll_h5_prompt_data *d) {
    int P = r->n_points, K = r->topk, name_w = 5;
    int cell = SHOW_CELL_TOKEN + 4; /* token, space, ".87" */
    int64_t first = d->length > SHOW_GRID_COLUMNS ? d->length - SHOW_GRID_COLUMNS : 0;
    for (int p = 0; p < P; p++)
        if ((int)strlen(r->point_names[p]) > name_w) name_w = (int)strlen(r->point_names[p]);
    printf("grid: top-1 token and probability, points (rows) x positions (columns)");
    if (first > 0)
        printf("; positions %lld..%lld of %lld (the last %d)", (long long)first, (long long)d->length - 1,
               (long long)d->length, SHOW_GRID_COLUMNS);
    printf("\n%-*s", name_w, "pos");
    for (int64_t j = first; j < d->length; j++) printf("  %-*lld", j + 1 < d->length ? cell : 0, (long long)j);
    printf("\n%-*s", name_w, "token");
    char idbuf[24], pb[8];
    for (int64_t j = first; j < d->length; j++) {
        printf("  ");
        print_cell(token_text(r, d->tokens[j], idbuf, sizeof idbuf), cell, j + 1 < d->length);
    }
    printf("\n");
    for (int p = 0; p < P; p++) {
        printf("%-*s", name_w, r->point_names[p]);
        for (int64_t j = first; j < d->length; j++) {
            size_t i = ((size_t)j * P + p) * K;
            printf("  ");
            print_cell(token_text(r, d->topk_ids[i], idbuf, sizeof idbuf), SHOW_CELL_TOKEN, 1);
            short_prob(d->topk_probs[i], pb);
            printf(" %s", pb);
        }
        printf("\n");
    }
}

/* Parses a whole decimal integer; 0 on success. */
static int parse_i64(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *out = v;
    return 0;
}

/* Reads prompt text i for the header; "" when unavailable. */
static char *prompt_text(const ll_h5_run *r, int64_t i) {
    char *s = NULL;
    hid_t ds = H5Dopen2(r->file, "prompts", H5P_DEFAULT), type = -1, fs = -1, ms = -1;
    if (ds < 0) goto out;
    type = H5Dget_type(ds);
    fs = H5Dget_space(ds);
    hsize_t start[1] = {(hsize_t)i}, one[1] = {1}, dims[1];
    if (type < 0 || fs < 0 || H5Tget_class(type) != H5T_STRING || H5Tis_variable_str(type) <= 0 ||
        H5Sget_simple_extent_ndims(fs) != 1 || H5Sget_simple_extent_dims(fs, dims, NULL) < 0 || dims[0] <= (hsize_t)i)
        goto out;
    ms = H5Screate_simple(1, one, NULL);
    char *raw = NULL;
    if (ms < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, one, NULL) < 0 ||
        H5Dread(ds, type, ms, fs, H5P_DEFAULT, &raw) < 0)
        goto out;
    s = strdup(raw ? raw : "");
    H5Dvlen_reclaim(type, ms, H5P_DEFAULT, &raw);
out:
    H5Eclear2(H5E_DEFAULT);
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (type >= 0) H5Tclose(type);
    if (ds >= 0) H5Dclose(ds);
    return s;
}

int ll_cmd_show(int argc, char **argv) {
    const char *path = NULL;
    int64_t prompt = 0, pos = -1, top = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            show_usage(stdout);
            return 0;
        }
        int64_t *dst = !strcmp(a, "--prompt") ? &prompt : !strcmp(a, "--position") ? &pos
                                                         : !strcmp(a, "--top")      ? &top
                                                                                    : NULL;
        if (dst) {
            if (i + 1 >= argc) {
                fprintf(stderr, "logitlens show: %s: expected an integer after it\n", a);
                return 2;
            }
            if (parse_i64(argv[++i], dst)) {
                fprintf(stderr, "logitlens show: %s: expected an integer, got '%s'\n", a, argv[i]);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "logitlens show: unknown option '%s' (expected --prompt, --position, --top or --help)\n", a);
            return 2;
        } else if (path) {
            fprintf(stderr, "logitlens show: expected one FILE.h5, got '%s' and '%s'\n", path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "logitlens show: expected a result file (logitlens show FILE.h5 [--prompt I] "
                        "[--position J] [--top N])\n");
        return 2;
    }
    ll_err err = {{0}};
    ll_h5_run *r = NULL;
    ll_h5_prompt_data d = {0};
    ll_status st = ll_h5_run_open(path, &r, &err);
    int rc = 0;
    if (st) {
        fprintf(stderr, "logitlens show: %s\n", err.msg);
        return ll_status_exit_code(st);
    }
    if (prompt < 0 || prompt >= r->n_prompts) {
        fprintf(stderr, "logitlens show: --prompt %lld: %s has %lld prompts (expected 0..%lld)\n", (long long)prompt,
                path, (long long)r->n_prompts, (long long)r->n_prompts - 1);
        rc = 2;
        goto out;
    }
    if (top < 1 || top > r->topk) {
        fprintf(stderr, "logitlens show: --top %lld: %s stores the top %d tokens (expected 1..%d)\n", (long long)top,
                path, r->topk, r->topk);
        rc = 2;
        goto out;
    }
    if ((st = ll_h5_read_prompt(r, prompt, &d, &err))) {
        fprintf(stderr, "logitlens show: %s\n", err.msg);
        rc = ll_status_exit_code(st);
        goto out;
    }
    int64_t j = pos < 0 ? d.length + pos : pos;
    if (j < 0 || j >= d.length) {
        fprintf(stderr, "logitlens show: --position %lld: prompt %lld has %lld positions (expected %lld..%lld)\n",
                (long long)pos, (long long)prompt, (long long)d.length, (long long)-d.length,
                (long long)d.length - 1);
        rc = 2;
        goto out;
    }

    char *text = prompt_text(r, prompt), esc[SHOW_STR_MAX];
    escape_str(text ? text : "", 1, SHOW_TEXT_COLUMNS, esc, sizeof esc);
    free(text);
    printf("%s: prompt %lld of %lld, %lld tokens: '%s'\n", path, (long long)prompt, (long long)r->n_prompts,
           (long long)d.length, esc);
    printf("position %lld (of 0..%lld): token ", (long long)j, (long long)d.length - 1);
    print_token(r, d.tokens[j], 0);
    if (d.target_ids[j] >= 0) {
        printf(", target ");
        print_token(r, d.target_ids[j], 0);
        printf("\n");
    } else {
        printf(", no target\n");
    }
    printf("\n");
    print_table(r, &d, j, (int)top);
    printf("\n");
    print_grid(r, &d);
out:
    ll_h5_prompt_data_free(&d);
    ll_h5_run_close(r);
    return rc;
}
