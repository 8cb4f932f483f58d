/* test_h5_writer.c: the result-file writer (host/io/h5_writer.c) and reader (host/io/h5_reader.c).
 *
 *   test_h5_writer                         self-test: writes a file over several batches, reads it back and
 *                                          compares every value; error paths (uncreatable output, abort,
 *                                          malformed batch, foreign and newer files); timing of one large batch
 *   test_h5_writer --write PATH [--no-vocab] [--no-extras]
 *                                          writes the deterministic file to PATH and leaves it there
 *                                          (tests/test_h5_format.py checks it with h5py, the Python loader,
 *                                          xarray and `logitlens show`)
 *
 * The data are small integers scaled by powers of two, so every float is exact and the Python side can
 * recompute them (tests/test_h5_format.py, `expected_*`): keep the two generators in step. */
#include "io/h5_reader.h"
#include "io/h5_util.h"
#include "ll_h5.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            failures++;                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

/* ---- the deterministic run --------------------------------------------------------------------------- */

enum { P = 5, K = 4, D = 6, V = 50, NPV = 5, NBATCH = 3 };
static const char *const point_names[P] = {"embed", "mid.0", "post.0", "mid.1", "post.1"};
static const int32_t point_layers[P] = {-1, 0, 0, 1, 1};
static const int32_t probs_vocab[NPV] = {0, 3, 7, 11, 49};
static const int batch_prompts[NBATCH] = {2, 1, 3};
static const int64_t prompt_len[] = {3, 5, 17, 1, 4, 2}; /* all batches, in order */
#define N_PROMPTS 6
#define N_TOKENS 32

static int32_t gen_token(int64_t g) { return (int32_t)((g * 7 + 3) % V); }
static int32_t gen_topk_id(int64_t g, int p, int j) { return (int32_t)((g * 11 + p * 5 + j * 3 + 1) % V); }
static float gen_topk_prob(int64_t g, int p, int j) {
    return (float)((g * 13 + p * 7) % 97 + 1) / (float)(1 << (j + 7));
}
static float gen_entropy(int64_t g, int p) { return (float)((g * 3 + p) % 40) / 8.0f; }
static float gen_kl(int64_t g, int p) { return (float)((g + p * 5) % 30) / 16.0f; }
static float gen_tprob(int64_t g, int p) { return (float)((g * 5 + p * 3) % 64) / 64.0f; }
static float gen_tlogprob(int64_t g, int p) { return -(float)((g + p) % 20) / 4.0f; }
static int32_t gen_trank(int64_t g, int p) { return (int32_t)((g * 3 + p * 2) % 50); }
static uint16_t gen_probs_bits(int64_t g, int p, int c) { return (uint16_t)(0x3000 + (g * 5 + p * 3 + c * 7) % 256); }
static float gen_hidden(int64_t g, int p, int d) { return (float)(g * 100 + p * 10 + d) / 4.0f; }
/* Odd prompts have an explicit answer whose first token is 1. */
static const char *gen_target_text(int64_t prompt) { return prompt % 2 ? " Paris" : ""; }

/* Vocabulary display strings: a few awkward ones (control characters, non-ASCII, quotes, an escaped
 * partial byte), the rest plain. */
static void gen_vocab(char disp[V][32], uint8_t bytes[V][32], size_t len[V]) {
    static const char *const special[] = {"<|endoftext|>", " Paris", "\n", "\xc3\xa9t\xc3\xa9", "\\xe2",
                                          "it's", "\t\"q\"", " the"};
    for (int i = 0; i < V; i++) {
        if (i < 8) snprintf(disp[i], 32, "%s", special[i]);
        else snprintf(disp[i], 32, " w%d", i);
        if (i == 4) {
            bytes[i][0] = 0xe2;
            len[i] = 1;
        } else {
            len[i] = strlen(disp[i]);
            memcpy(bytes[i], disp[i], len[i]);
        }
    }
}

typedef struct gen_opts {
    int vocab;  /* write vocab / vocab_bytes */
    int extras; /* --save-probs rows and hidden */
} gen_opts;

static void fill_meta(ll_h5_meta *m, const char *path, gen_opts o, char disp[V][32], uint8_t bytes[V][32],
                      size_t len[V], const char **dp, const uint8_t **bp) {
    static const char *const st_files[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    static const char *const st_sha[2] = {"aa11", "bb22"};
    memset(m, 0, sizeof *m);
    m->path = path;
    m->command_line = "logitlens run --model synth --out x.h5";
    m->created = "2026-01-02T03:04:05Z";
    m->model_path = "synth";
    m->architecture = "gpt2";
    m->dtype = "F32";
    m->backend = "cpu";
    m->n_layers = 2;
    m->d_model = D;
    m->vocab_size = V;
    m->topk = K;
    m->config_sha256 = "0123abcd";
    m->source_format = "safetensors";
    m->storage_types = "BF16 x26";
    m->tokenizer = "tokenizer.json";
    m->n_st_files = 2;
    m->st_files = st_files;
    m->st_header_sha256 = st_sha;
    m->n_points = P;
    m->point_names = point_names;
    m->point_layers = point_layers;
    m->save_probs = o.extras;
    m->n_probs_vocab = o.extras ? NPV : 0;
    m->probs_vocab = o.extras ? probs_vocab : NULL;
    m->save_hidden = o.extras;
    if (o.vocab) {
        gen_vocab(disp, bytes, len);
        for (int i = 0; i < V; i++) {
            dp[i] = disp[i];
            bp[i] = bytes[i];
        }
        m->n_vocab = V;
        m->vocab_display = dp;
        m->vocab_bytes = bp;
        m->vocab_bytes_len = len;
    }
}

/* Host arrays of one batch, filled from the generator; tok0/prompt0 = tokens/prompts written before. */
typedef struct gen_batch {
    ll_h5_batch b;
    char texts[8][48];
    const char *text_ptr[8], *target_ptr[8];
    int32_t *tokens, *target_ids, *topk_ids, *ranks;
    float *topk_probs, *entropy, *kl, *tprobs, *tlogprobs, *hidden;
    int64_t *probs_token;
    uint16_t *probs;
} gen_batch;

static void gen_batch_free(gen_batch *g) {
    free(g->tokens); free(g->target_ids); free(g->topk_ids); free(g->ranks); free(g->topk_probs);
    free(g->entropy); free(g->kl); free(g->tprobs); free(g->tlogprobs); free(g->hidden);
    free(g->probs_token); free(g->probs);
}

/* Saved probability rows: each prompt's last position, and also position 0 of prompts longer than 4. */
static void gen_batch_fill(gen_batch *g, int n_prompts, int64_t prompt0, int64_t tok0, gen_opts o) {
    memset(g, 0, sizeof *g);
    int64_t nt = 0;
    for (int i = 0; i < n_prompts; i++) nt += prompt_len[prompt0 + i];
    g->tokens = calloc(nt, 4); g->target_ids = calloc(nt, 4);
    g->topk_ids = calloc(nt * P * K, 4); g->topk_probs = calloc(nt * P * K, 4);
    g->entropy = calloc(nt * P, 4); g->kl = calloc(nt * P, 4); g->tprobs = calloc(nt * P, 4);
    g->tlogprobs = calloc(nt * P, 4); g->ranks = calloc(nt * P, 4);
    g->hidden = o.extras ? calloc(nt * P * D, 4) : NULL;
    g->probs_token = calloc(2 * n_prompts, 8);
    g->probs = calloc(2 * n_prompts * P * NPV, 2);
    int64_t t = 0, nr = 0;
    for (int i = 0; i < n_prompts; i++) {
        int64_t pi = prompt0 + i, len = prompt_len[pi];
        snprintf(g->texts[i], sizeof g->texts[i], "prompt %lld: caf\xc3\xa9 \xe2\x80\x94 %lld tokens", (long long)pi,
                 (long long)len);
        g->text_ptr[i] = g->texts[i];
        g->target_ptr[i] = gen_target_text(pi);
        for (int64_t j = 0; j < len; j++, t++) {
            int64_t gt = tok0 + t;
            g->tokens[t] = gen_token(gt);
            g->target_ids[t] = j + 1 < len ? gen_token(gt + 1) : (pi % 2 ? 1 : -1);
            int has = g->target_ids[t] >= 0;
            for (int p = 0; p < P; p++) {
                for (int k = 0; k < K; k++) {
                    g->topk_ids[(t * P + p) * K + k] = gen_topk_id(gt, p, k);
                    g->topk_probs[(t * P + p) * K + k] = gen_topk_prob(gt, p, k);
                }
                g->entropy[t * P + p] = gen_entropy(gt, p);
                g->kl[t * P + p] = gen_kl(gt, p);
                g->tprobs[t * P + p] = has ? gen_tprob(gt, p) : NAN;
                g->tlogprobs[t * P + p] = has ? gen_tlogprob(gt, p) : NAN;
                g->ranks[t * P + p] = has ? gen_trank(gt, p) : -1;
                for (int d = 0; g->hidden && d < D; d++) g->hidden[(t * P + p) * D + d] = gen_hidden(gt, p, d);
            }
            if (o.extras && (j == len - 1 || (j == 0 && len > 4))) g->probs_token[nr++] = t;
        }
    }
    for (int64_t r = 0; r < nr; r++)
        for (int p = 0; p < P; p++)
            for (int c = 0; c < NPV; c++)
                g->probs[(r * P + p) * NPV + c] = gen_probs_bits(tok0 + g->probs_token[r], p, c);
    ll_h5_batch *b = &g->b;
    b->n_prompts = n_prompts;
    b->prompt_texts = g->text_ptr;
    b->prompt_targets = g->target_ptr;
    b->prompt_lengths = &prompt_len[prompt0];
    b->n_tokens = nt;
    b->tokens = g->tokens;
    b->target_ids = g->target_ids;
    b->topk_ids = g->topk_ids;
    b->topk_probs = g->topk_probs;
    b->entropy = g->entropy;
    b->kl_final = g->kl;
    b->target_probs = g->tprobs;
    b->target_logprobs = g->tlogprobs;
    b->target_ranks = g->ranks;
    b->n_probs_rows = nr;
    b->probs_token = g->probs_token;
    b->probs = g->probs;
    b->hidden = g->hidden;
}

/* Writes the whole deterministic run to path; returns the status of the first failing call. */
static ll_status write_run(const char *path, gen_opts o, ll_err *err) {
    static char disp[V][32];
    static uint8_t bytes[V][32];
    static size_t len[V];
    const char *dp[V];
    const uint8_t *bp[V];
    ll_h5_meta m;
    ll_h5_writer *w;
    fill_meta(&m, path, o, disp, bytes, len, dp, bp);
    ll_status st = ll_h5_create(&m, &w, err);
    if (st) return st;
    int64_t prompt0 = 0, tok0 = 0;
    for (int bi = 0; bi < NBATCH; bi++) {
        gen_batch g;
        gen_batch_fill(&g, batch_prompts[bi], prompt0, tok0, o);
        st = ll_h5_append(w, &g.b, err);
        prompt0 += g.b.n_prompts;
        tok0 += g.b.n_tokens;
        gen_batch_free(&g);
        if (st) {
            ll_h5_abort(w);
            return st;
        }
    }
    return ll_h5_commit(w, err);
}

/* ---- helpers ---------------------------------------------------------------------------------------- */

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Number of entries in dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static int same_f32(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

static int read_ds(hid_t f, const char *name, hid_t mtype, void *buf) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) return -1;
    herr_t rc = H5Dread(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    return rc < 0 ? -1 : 0;
}

/* ---- checks ----------------------------------------------------------------------------------------- */

static void check_contents(const char *path, gen_opts o) {
    ll_err err = {{0}};
    ll_h5_run *r = NULL;
    ll_status st = ll_h5_run_open(path, &r, &err);
    CHECK(st == LL_OK, "open %s: %s", path, err.msg);
    if (st) return;
    CHECK(r->n_tokens == N_TOKENS && r->n_prompts == N_PROMPTS, "%lld tokens, %lld prompts", (long long)r->n_tokens,
          (long long)r->n_prompts);
    CHECK(r->n_points == P && r->topk == K, "%d points, k %d", r->n_points, r->topk);
    CHECK(r->format_version == LL_H5_FORMAT_VERSION, "version %d", r->format_version);
    for (int p = 0; p < P && r->n_points == P; p++) {
        CHECK(strcmp(r->point_names[p], point_names[p]) == 0, "point %d is '%s'", p, r->point_names[p]);
        CHECK(r->point_layers[p] == point_layers[p], "point %d layer %d", p, r->point_layers[p]);
    }
    CHECK((r->vocab != NULL) == (o.vocab != 0), "vocab presence %d", r->vocab != NULL);
    if (r->vocab) CHECK(r->n_vocab == V && strcmp(r->vocab[3], "\xc3\xa9t\xc3\xa9") == 0, "vocab[3] '%s'", r->vocab[3]);
    int64_t off = 0;
    int bad = 0;
    for (int64_t pi = 0; pi < N_PROMPTS && r->n_prompts == N_PROMPTS; pi++) {
        CHECK(r->prompt_offsets[pi] == off, "prompt_offsets[%lld] = %lld, expected %lld", (long long)pi,
              (long long)r->prompt_offsets[pi], (long long)off);
        ll_h5_prompt_data d;
        st = ll_h5_read_prompt(r, pi, &d, &err);
        CHECK(st == LL_OK, "read prompt %lld: %s", (long long)pi, err.msg);
        if (st) break;
        CHECK(d.offset == off && d.length == prompt_len[pi], "prompt %lld at %lld+%lld", (long long)pi,
              (long long)d.offset, (long long)d.length);
        for (int64_t j = 0; j < d.length && d.length == prompt_len[pi]; j++) {
            int64_t g = off + j;
            int32_t want_t = j + 1 < d.length ? gen_token(g + 1) : (pi % 2 ? 1 : -1);
            bad += d.tokens[j] != gen_token(g) || d.target_ids[j] != want_t;
            for (int p = 0; p < P; p++) {
                size_t i = (size_t)j * P + p;
                for (int k = 0; k < K; k++) {
                    bad += d.topk_ids[i * K + k] != gen_topk_id(g, p, k);
                    bad += d.topk_probs[i * K + k] != gen_topk_prob(g, p, k);
                }
                bad += d.entropy[i] != gen_entropy(g, p) || d.kl_final[i] != gen_kl(g, p);
                bad += !same_f32(d.target_probs[i], want_t >= 0 ? gen_tprob(g, p) : NAN);
                bad += d.target_ranks[i] != (want_t >= 0 ? gen_trank(g, p) : -1);
            }
        }
        off += prompt_len[pi];
        ll_h5_prompt_data_free(&d);
    }
    CHECK(bad == 0, "%d per-token values differ from what was written", bad);

    /* What the reader does not cover: probability rows and hidden states. */
    hid_t f = r->file;
    if (o.extras) {
        int64_t idx[16];
        uint16_t probs[16 * P * NPV];
        float *hidden = calloc((size_t)N_TOKENS * P * D, sizeof *hidden);
        CHECK(read_ds(f, "probs_token_index", H5T_NATIVE_INT64, idx) == 0, "%s", "read probs_token_index");
        /* probs is stored as half floats; read its raw bits through the same half type. */
        hid_t h16 = ll_h5_type_f16(1);
        CHECK(read_ds(f, "probs", h16, probs) == 0, "%s", "read probs");
        H5Tclose(h16);
        int64_t want_idx[16], nr = 0, o2 = 0;
        for (int pi = 0; pi < N_PROMPTS; pi++) {
            for (int64_t j = 0; j < prompt_len[pi]; j++)
                if (j == prompt_len[pi] - 1 || (j == 0 && prompt_len[pi] > 4)) want_idx[nr++] = o2 + j;
            o2 += prompt_len[pi];
        }
        int badp = 0;
        for (int64_t rr = 0; rr < nr; rr++) {
            badp += idx[rr] != want_idx[rr];
            for (int p = 0; p < P; p++)
                for (int c = 0; c < NPV; c++) badp += probs[(rr * P + p) * NPV + c] != gen_probs_bits(want_idx[rr], p, c);
        }
        CHECK(badp == 0, "%d probs values or token indices differ", badp);
        CHECK(read_ds(f, "hidden", H5T_NATIVE_FLOAT, hidden) == 0, "%s", "read hidden");
        int badh = 0;
        for (int64_t g = 0; g < N_TOKENS; g++)
            for (int p = 0; p < P; p++)
                for (int d = 0; d < D; d++) badh += hidden[(g * P + p) * D + d] != gen_hidden(g, p, d);
        CHECK(badh == 0, "%d hidden values differ", badh);
        free(hidden);
    } else {
        CHECK(H5Lexists(f, "probs", H5P_DEFAULT) == 0 && H5Lexists(f, "hidden", H5P_DEFAULT) == 0, "%s",
              "probs/hidden present without --save-probs/--save-hidden");
    }
    ll_h5_run_close(r);
}

static void check_create_errors(const char *dir) {
    ll_err err = {{0}};
    ll_h5_writer *w = (ll_h5_writer *)&err; /* must be reset to NULL on failure */
    char path[512];
    char disp[V][32];
    uint8_t bytes[V][32];
    size_t len[V];
    const char *dp[V];
    const uint8_t *bp[V];
    ll_h5_meta m;
    gen_opts o = {1, 1};

    /* Missing directory. */
    snprintf(path, sizeof path, "%s/no_such_dir/out.h5", dir);
    fill_meta(&m, path, o, disp, bytes, len, dp, bp);
    ll_status st = ll_h5_create(&m, &w, &err);
    CHECK(st == LL_ERR_IO && w == NULL, "missing dir: status %d", (int)st);
    CHECK(strstr(err.msg, "cannot create output") && strstr(err.msg, path) && strstr(err.msg, "No such file"),
          "missing dir message: %s", err.msg);
    CHECK(!strchr(err.msg, '\n'), "%s", "message has a newline");

    /* The output is an existing directory. */
    fill_meta(&m, dir, o, disp, bytes, len, dp, bp);
    st = ll_h5_create(&m, &w, &err);
    CHECK(st == LL_ERR_IO && strstr(err.msg, "is a directory"), "directory as output: %d %s", (int)st, err.msg);

    /* A path component is a regular file. */
    snprintf(path, sizeof path, "%s/plain", dir);
    FILE *fp = fopen(path, "w");
    if (fp) fclose(fp);
    snprintf(path, sizeof path, "%s/plain/out.h5", dir);
    fill_meta(&m, path, o, disp, bytes, len, dp, bp);
    st = ll_h5_create(&m, &w, &err);
    CHECK(st == LL_ERR_IO && strstr(err.msg, "Not a directory"), "file as directory: %d %s", (int)st, err.msg);
    snprintf(path, sizeof path, "%s/plain", dir);
    unlink(path);

    /* Programmer errors in meta are reported, not crashed on. */
    snprintf(path, sizeof path, "%s/bad_meta.h5", dir);
    fill_meta(&m, path, o, disp, bytes, len, dp, bp);
    m.topk = 0;
    st = ll_h5_create(&m, &w, &err);
    CHECK(st == LL_ERR_INTERNAL && strstr(err.msg, "meta.topk"), "topk 0: %d %s", (int)st, err.msg);
    CHECK(count_prefix(dir, "bad_meta.h5") == 0, "%s", "files left after a rejected meta");
    char base[256];
    snprintf(base, sizeof base, "%s", strrchr(dir, '/') + 1);
    strcat(base, ".tmp.");
    snprintf(path, sizeof path, "%.*s", (int)(strrchr(dir, '/') - dir), dir);
    CHECK(count_prefix(path, base) == 0, "%s", "temporary file left beside a directory given as output");
}

static void check_abort_and_bad_batch(const char *dir) {
    ll_err err = {{0}};
    char path[512], disp[V][32];
    uint8_t bytes[V][32];
    size_t len[V];
    const char *dp[V];
    const uint8_t *bp[V];
    ll_h5_meta m;
    ll_h5_writer *w = NULL;
    gen_opts o = {1, 1};
    snprintf(path, sizeof path, "%s/aborted.h5", dir);
    fill_meta(&m, path, o, disp, bytes, len, dp, bp);
    CHECK(ll_h5_create(&m, &w, &err) == LL_OK, "create: %s", err.msg);
    if (!w) return;
    CHECK(count_prefix(dir, "aborted.h5.tmp.") == 1, "%s", "temporary file missing while writing");
    CHECK(!file_exists(path), "%s", "final name exists before commit");
    gen_batch g;
    gen_batch_fill(&g, 2, 0, 0, o);
    CHECK(ll_h5_append(w, &g.b, &err) == LL_OK, "append: %s", err.msg);
    ll_h5_abort(w);
    CHECK(count_prefix(dir, "aborted.h5") == 0, "%s", "files left after abort");

    /* A batch whose prompt lengths do not add up is refused with a message naming the field. */
    CHECK(ll_h5_create(&m, &w, &err) == LL_OK, "create: %s", err.msg);
    if (!w) {
        gen_batch_free(&g);
        return;
    }
    g.b.n_tokens += 1;
    ll_status st = ll_h5_append(w, &g.b, &err);
    CHECK(st == LL_ERR_INTERNAL && strstr(err.msg, "prompt_lengths") && strstr(err.msg, path), "bad batch: %d %s",
          (int)st, err.msg);
    g.b.n_tokens -= 1;
    g.probs_token[0] = 999;
    st = ll_h5_append(w, &g.b, &err);
    CHECK(st == LL_ERR_INTERNAL && strstr(err.msg, "probs_token[0]"), "bad probs row: %d %s", (int)st, err.msg);
    ll_h5_abort(w);
    ll_h5_abort(NULL);
    gen_batch_free(&g);
    CHECK(count_prefix(dir, "aborted.h5") == 0, "%s", "files left after abort");
}

/* Writes a small HDF5 file with a root attribute format/format_version, or none (fmt NULL). */
static void write_foreign(const char *path, const char *fmt, int version) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t s = H5Screate(H5S_SCALAR);
    if (fmt) {
        hid_t t = ll_h5_type_utf8();
        hid_t a = H5Acreate2(f, "format", t, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, &fmt);
        H5Aclose(a);
        H5Tclose(t);
        a = H5Acreate2(f, "format_version", H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, H5T_NATIVE_INT, &version);
        H5Aclose(a);
    }
    H5Sclose(s);
    H5Fclose(f);
}

static void check_reader_errors(const char *dir) {
    ll_err err = {{0}};
    ll_h5_run *r = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/missing.h5", dir);
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_IO && strstr(err.msg, "No such file"), "missing: %s", err.msg);
    snprintf(path, sizeof path, "%s/text.h5", dir);
    FILE *fp = fopen(path, "w");
    if (fp) {
        fputs("not hdf5\n", fp);
        fclose(fp);
    }
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_INPUT && strstr(err.msg, "not an HDF5 file"), "text: %s", err.msg);
    snprintf(path, sizeof path, "%s/plain.h5", dir);
    write_foreign(path, NULL, 0);
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_INPUT && strstr(err.msg, "'format' is missing"), "plain: %s",
          err.msg);
    write_foreign(path, "something.else", 1);
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_INPUT && strstr(err.msg, "something.else"), "other: %s", err.msg);
    write_foreign(path, LL_H5_FORMAT, 2);
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_INPUT && strstr(err.msg, "unsupported format_version 2"),
          "newer: %s", err.msg);
    write_foreign(path, LL_H5_FORMAT, 1);
    CHECK(ll_h5_run_open(path, &r, &err) == LL_ERR_INPUT && strstr(err.msg, "'tokens' is missing"), "empty: %s",
          err.msg);
    CHECK(r == NULL, "%s", "run returned on failure");
}

/* One batch of 1024 tokens x 13 points x k = 10 (with hidden states of width 768): the per-batch cost of
 * the writer in a real run. Printed, not asserted: the machine is shared. */
static void time_large_batch(const char *dir, int with_hidden) {
    enum { NT = 1024, NP = 13, KK = 10, DM = 768, NB = 4 };
    static const char *names[NP];
    static int32_t layers[NP];
    char buf[NP][16], path[512];
    for (int i = 0; i < NP; i++) {
        snprintf(buf[i], sizeof buf[i], i ? "post.%d" : "embed", i - 1);
        names[i] = buf[i];
        layers[i] = i - 1;
    }
    ll_h5_meta m = {0};
    snprintf(path, sizeof path, "%s/large.h5", dir);
    m.path = path;
    m.n_points = NP;
    m.point_names = names;
    m.point_layers = layers;
    m.topk = KK;
    m.d_model = DM;
    m.save_hidden = with_hidden;
    int32_t *ids = calloc((size_t)NT * NP * KK, 4), *tok = calloc(NT, 4), *ranks = calloc(NT * NP, 4);
    float *pr = calloc((size_t)NT * NP * KK, 4), *st4 = calloc(NT * NP, 4), *hid = calloc((size_t)NT * NP * DM, 4);
    int64_t lens[8];
    for (int i = 0; i < 8; i++) lens[i] = NT / 8;
    for (size_t i = 0; i < (size_t)NT * NP * KK; i++) ids[i] = (int32_t)(i * 2654435761u % 50000), pr[i] = 1.0f / (1 + i % 10);
    for (size_t i = 0; i < (size_t)NT * NP * DM; i++) hid[i] = sinf((float)i);
    ll_h5_batch b = {.n_prompts = 8, .prompt_lengths = lens, .n_tokens = NT, .tokens = tok, .target_ids = tok,
                     .topk_ids = ids, .topk_probs = pr, .entropy = st4, .kl_final = st4, .target_probs = st4,
                     .target_logprobs = st4, .target_ranks = ranks, .hidden = with_hidden ? hid : NULL};
    ll_err err = {{0}};
    ll_h5_writer *w = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ll_status st = ll_h5_create(&m, &w, &err);
    for (int i = 0; !st && i < NB; i++) st = ll_h5_append(w, &b, &err);
    if (!st) st = ll_h5_commit(w, &err);
    else ll_h5_abort(w);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(st == LL_OK, "large batches: %s", err.msg);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    struct stat sb;
    stat(path, &sb);
    printf("test_h5_writer: %d batches of %d tokens x %d points x k=%d%s: %.3f s (%.1f ms/batch), file %.1f MiB\n",
           NB, NT, NP, KK, with_hidden ? ", hidden 768" : "", s, 1e3 * s / NB, (double)sb.st_size / (1 << 20));
    unlink(path);
    free(ids); free(tok); free(ranks); free(pr); free(st4); free(hid);
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--write") == 0) {
        gen_opts o = {1, 1};
        for (int i = 3; i < argc; i++) {
            if (!strcmp(argv[i], "--no-vocab")) o.vocab = 0;
            else if (!strcmp(argv[i], "--no-extras")) o.extras = 0;
            else {
                fprintf(stderr, "test_h5_writer: unknown option '%s'\n", argv[i]);
                return 2;
            }
        }
        ll_err err = {{0}};
        ll_status st = write_run(argv[2], o, &err);
        if (st) fprintf(stderr, "test_h5_writer: %s\n", err.msg);
        return ll_status_exit_code(st);
    }
    if (argc != 1) {
        fprintf(stderr, "usage: test_h5_writer [--write PATH [--no-vocab] [--no-extras]]\n");
        return 2;
    }
    char dir[] = "/tmp/test_h5_writer.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char path[512];
    ll_err err = {{0}};
    gen_opts variants[3] = {{1, 1}, {0, 0}, {1, 0}};
    for (int v = 0; v < 3; v++) {
        snprintf(path, sizeof path, "%s/run%d.h5", dir, v);
        ll_status st = write_run(path, variants[v], &err);
        CHECK(st == LL_OK, "write %s: %s", path, err.msg);
        CHECK(count_prefix(dir, "run") == 1, "%s", "temporary file left after commit");
        if (!st) check_contents(path, variants[v]);
        unlink(path);
    }
    check_create_errors(dir);
    check_abort_and_bad_batch(dir);
    check_reader_errors(dir);
    time_large_batch(dir, 0);
    time_large_batch(dir, 1);
    ssize_t open_ids = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    CHECK(open_ids == 0, "%zd HDF5 ids still open", open_ids);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "test_h5_writer: could not remove %s\n", dir);
    if (failures) fprintf(stderr, "test_h5_writer: %d checks failed\n", failures);
    return failures ? 1 : 0;
}
