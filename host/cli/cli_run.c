/* cli_run.c: `logitlens run`: model + prompts in, the lens on every captured point out, to HDF5. */
#include "args.h"
#include "cli.h"
#include "ll_engine.h"
#include "ll_h5.h"
#include "ll_memplan.h"
#include "ll_progress.h"
#include "ll_prompts.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char run_usage[] =
    "usage: logitlens run --model DIR (--prompt TEXT ... | --tokens IDS ... | --prompts FILE) --out FILE.h5\n"
    "                     [--topk K] [--points embed,mid,post] [--layers A:B:S] [--save-probs last|all|POS,...]\n"
    "                     [--probs-vocab IDS] [--save-hidden] [--no-special] [--backend cpu|cuda|auto]\n"
    "                     [--device N] [--tf32] [--threads N] [--batch-tokens N] [--quiet]\n"
    "\n"
    "Runs the model over the prompts, applies the final norm + unembedding + softmax to the residual stream\n"
    "at every selected point, and writes top-k, entropy, KL to the final layer and target statistics to\n"
    "FILE.h5 (format: docs/hdf5-format.md). See docs/cli.md for every option.\n";

static volatile sig_atomic_t interrupted = 0;
static void on_signal(int sig) { interrupted = sig; }

typedef struct run_opts {
    const char *model, *out, *points, *layers, *save_probs, *probs_vocab, *backend;
    int topk, save_hidden, add_special, quiet, threads, device, tf32;
    int64_t batch_tokens;
} run_opts;

/* Parses --save-probs into per-prompt positions; fills rows (batch-local token indices) for a batch. */
typedef struct probs_sel {
    int mode;            /* 0 none, 1 last, 2 all, 3 list */
    int64_t *pos;        /* list mode: positions (negative from the end) */
    int n_pos;
} probs_sel;

static ll_status parse_probs_sel(const char *s, probs_sel *ps, ll_err *err) {
    memset(ps, 0, sizeof *ps);
    if (!s) return LL_OK;
    if (!strcmp(s, "last")) ps->mode = 1;
    else if (!strcmp(s, "all")) ps->mode = 2;
    else {
        ps->mode = 3;
        char bad[32];
        int64_t n;
        int r = ll_parse_int_list(s, -(1LL << 40), 1LL << 40, &ps->pos, &n, bad, sizeof bad);
        if (r == -3) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        if (r == -2) return ll_fail(err, LL_ERR_USAGE, "--save-probs '%s': '%s' is not a position", s, bad);
        if (r) return ll_fail(err, LL_ERR_USAGE, "--save-probs '%s': expected last, all or a comma list of positions", s);
        ps->n_pos = (int)n;
    }
    return LL_OK;
}

/* Whether position j of a prompt of n tokens is saved. */
static int probs_selected(const probs_sel *ps, int64_t j, int64_t n) {
    switch (ps->mode) {
    case 1: return j == n - 1;
    case 2: return 1;
    case 3:
        for (int i = 0; i < ps->n_pos; i++) {
            int64_t q = ps->pos[i] < 0 ? n + ps->pos[i] : ps->pos[i];
            if (q == j) return 1;
        }
        return 0;
    default: return 0;
    }
}

static ll_status parse_id_list(const char *s, int64_t V, int32_t **out, int64_t *n, ll_err *err) {
    int64_t *ids;
    char bad[32];
    int r = ll_parse_int_list(s, 0, V - 1, &ids, n, bad, sizeof bad);
    if (r == -3) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (r == -2) return ll_fail(err, LL_ERR_USAGE, "--probs-vocab: '%s' is not a token id in 0..%lld", bad, (long long)V - 1);
    if (r) return ll_fail(err, LL_ERR_USAGE, "--probs-vocab '%s': expected a comma list of token ids", s);
    if (*n == 0) {
        free(ids);
        return ll_fail(err, LL_ERR_USAGE, "--probs-vocab: empty list");
    }
    int32_t *v = ll_malloc_array((size_t)*n, 4);
    if (!v) {
        free(ids);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    for (int64_t i = 0; i < *n; i++) v[i] = (int32_t)ids[i];
    free(ids);
    *out = v;
    return LL_OK;
}

/* The vocabulary display strings and bytes for the file (only with a tokenizer). */
typedef struct vocab_strings {
    int64_t n;
    char **display;
    uint8_t **bytes;
    size_t *len;
} vocab_strings;

static void vocab_free(vocab_strings *v) {
    for (int64_t i = 0; i < v->n; i++) {
        if (v->display) free(v->display[i]);
        if (v->bytes) free(v->bytes[i]);
    }
    free(v->display);
    free(v->bytes);
    free(v->len);
    memset(v, 0, sizeof *v);
}

static ll_status vocab_build(const ll_tokenizer *tk, int64_t V, vocab_strings *v, ll_err *err) {
    memset(v, 0, sizeof *v);
    v->display = calloc((size_t)V, sizeof *v->display);
    v->bytes = calloc((size_t)V, sizeof *v->bytes);
    v->len = calloc((size_t)V, sizeof *v->len);
    if (!v->display || !v->bytes || !v->len) {
        vocab_free(v);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    v->n = V;
    for (int64_t i = 0; i < V; i++) {
        size_t dl = ll_tokenizer_token_display(tk, (int32_t)i, NULL, 0);
        size_t bl = ll_tokenizer_token_bytes(tk, (int32_t)i, NULL, 0);
        v->display[i] = malloc(dl + 1);
        v->bytes[i] = malloc(bl + 1);
        if (!v->display[i] || !v->bytes[i]) {
            vocab_free(v);
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
        ll_tokenizer_token_display(tk, (int32_t)i, v->display[i], dl + 1);
        ll_tokenizer_token_bytes(tk, (int32_t)i, v->bytes[i], bl);
        v->len[i] = bl;
    }
    return LL_OK;
}

static int usage_error(const char *msg) {
    fprintf(stderr, "logitlens run: %s\n", msg);
    return ll_status_exit_code(LL_ERR_USAGE);
}

int ll_cmd_run(int argc, char **argv) {
    run_opts o = {.topk = 10, .add_special = 1, .backend = "auto", .batch_tokens = 4096};
    ll_err err = {{0}};
    ll_status rc = LL_OK;
    ll_prompt_set prompts = {0};
    const char *prompts_file = NULL;
    int64_t v;
    char origin[64];
    int n_cli_prompts = 0;
    ll_model_files *mf = NULL;
    ll_tokenizer *tk = NULL;
    ll_points pts = {0};
    probs_sel ps = {0};
    int32_t *pvocab = NULL;
    int64_t pvocab_n = 0;
    vocab_strings vs = {0};
    ll_h5_writer *h5 = NULL;
    ll_backend *be = NULL;
    ll_weights w = {0};
    ll_engine *eng = NULL;
    ll_comm comm;
    ll_comm_single(&comm);
    char **texts = NULL;
    int32_t *bpos = NULL, *btgt = NULL;
    int64_t *boff = NULL, *blen = NULL, *brows = NULL;
    ll_lens_out res = {0};
    const char **st_files = NULL, **st_sha = NULL, **pnames = NULL; /* HDF5 metadata arrays */
    int32_t *all_ids = NULL;                                         /* probs_vocab_index without --probs-vocab */

    /* 1: options. Prompts from --prompt/--tokens are kept in command-line order. */
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int r;
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) {
            fputs(run_usage, stdout);
            ll_prompts_free(&prompts);
            return 0;
        }
#define OPT(name) ((r = ll_arg_value(argc, argv, &i, name, &val)) != 0)
        if (OPT("--model")) o.model = val;
        else if (OPT("--out")) o.out = val;
        else if (OPT("--prompt")) {
            if (r > 0) {
                snprintf(origin, sizeof origin, "--prompt %d", ++n_cli_prompts);
                if ((rc = ll_prompts_add_text(&prompts, val, origin, &err))) goto fail;
            }
        } else if (OPT("--tokens")) {
            if (r > 0) {
                snprintf(origin, sizeof origin, "--tokens %d", ++n_cli_prompts);
                if ((rc = ll_prompts_add_token_list(&prompts, val, origin, &err))) goto fail;
            }
        } else if (OPT("--prompts")) prompts_file = val;
        else if (OPT("--topk")) {
            if (r > 0 && ll_parse_int(val, 1, 1 << 20, &v)) {
                ll_prompts_free(&prompts);
                return usage_error("--topk: expected a positive integer");
            }
            o.topk = (int)v;
        } else if (OPT("--points")) o.points = val;
        else if (OPT("--layers")) o.layers = val;
        else if (OPT("--save-probs")) o.save_probs = val;
        else if (OPT("--probs-vocab")) o.probs_vocab = val;
        else if (OPT("--backend")) o.backend = val;
        else if (OPT("--device")) {
            if (r > 0 && ll_parse_int(val, 0, 1024, &v)) {
                ll_prompts_free(&prompts);
                return usage_error("--device: expected a device index");
            }
            o.device = (int)v;
        } else if (OPT("--threads")) {
            if (r > 0 && ll_parse_int(val, 0, 4096, &v)) {
                ll_prompts_free(&prompts);
                return usage_error("--threads: expected a thread count (0 = all cores)");
            }
            o.threads = (int)v;
        } else if (OPT("--batch-tokens")) {
            if (r > 0 && ll_parse_int(val, 1, 1LL << 32, &v)) {
                ll_prompts_free(&prompts);
                return usage_error("--batch-tokens: expected a positive integer");
            }
            o.batch_tokens = v;
        } else if (ll_arg_flag(argv, i, "--save-hidden")) o.save_hidden = 1;
        else if (ll_arg_flag(argv, i, "--tf32")) o.tf32 = 1;
        else if (ll_arg_flag(argv, i, "--no-special")) o.add_special = 0;
        else if (ll_arg_flag(argv, i, "--quiet")) o.quiet = 1;
        else {
            fprintf(stderr, "logitlens run: unknown option '%s' (see logitlens run --help)\n", argv[i]);
            ll_prompts_free(&prompts);
            return ll_status_exit_code(LL_ERR_USAGE);
        }
#undef OPT
        if (r < 0) {
            fprintf(stderr, "logitlens run: option %s needs a value\n", argv[i]);
            ll_prompts_free(&prompts);
            return ll_status_exit_code(LL_ERR_USAGE);
        }
    }
    if (!o.model || !o.out) {
        ll_prompts_free(&prompts);
        return usage_error("--model DIR and --out FILE.h5 are required (see logitlens run --help)");
    }
    if (!prompts_file && prompts.n == 0) {
        ll_prompts_free(&prompts);
        return usage_error("no prompts: give --prompt TEXT, --tokens IDS or --prompts FILE");
    }


    /* 2: model, tokenizer, prompts: everything validated before any compute */
    if ((rc = ll_model_files_open(o.model, &mf, &err))) goto fail;
    const ll_config *c = &mf->cfg;
    if (ll_tokenizer_exists(o.model) && (rc = ll_tokenizer_load(o.model, &tk, &err))) goto fail;
    if (prompts_file && (rc = ll_prompts_load_file(&prompts, prompts_file, &err))) goto fail;
    if ((rc = ll_prompts_tokenize(&prompts, tk, o.model, o.add_special, &err))) goto fail;
    int64_t V = c->vocab; /* rows of the unembedding */
    if ((rc = ll_prompts_validate(&prompts, V, c->n_ctx, c->sliding_window, &err))) goto fail;
    if (o.topk > V) {
        rc = ll_fail(&err, LL_ERR_USAGE, "--topk %d is larger than the vocabulary (%lld)", o.topk, (long long)V);
        goto fail;
    }
    if ((rc = ll_points_parse(o.points, o.layers, c->n_layers, &pts, &err))) goto fail;
    if ((rc = parse_probs_sel(o.save_probs, &ps, &err))) goto fail;
    if (o.probs_vocab && !o.save_probs) {
        rc = ll_fail(&err, LL_ERR_USAGE, "--probs-vocab needs --save-probs");
        goto fail;
    }
    if (o.probs_vocab && (rc = parse_id_list(o.probs_vocab, V, &pvocab, &pvocab_n, &err))) goto fail;
    if (ps.mode && !pvocab) pvocab_n = V;

    /* 3: batches of whole prompts up to --batch-tokens tokens */
    int64_t total_tokens = 0, max_T = 0, max_rows = 0;
    {
        int64_t cur = 0, cur_rows = 0;
        for (int i = 0; i < prompts.n; i++) {
            int64_t n = prompts.v[i].n, rows = 0;
            for (int64_t j = 0; j < n; j++) rows += probs_selected(&ps, j, n);
            if (cur > 0 && cur + n > o.batch_tokens) {
                cur = 0;
                cur_rows = 0;
            }
            cur += n;
            cur_rows += rows;
            if (cur > max_T) max_T = cur;
            if (cur_rows > max_rows) max_rows = cur_rows;
            total_tokens += n;
        }
    }

    /* 4: the output file first (an unwritable path fails before the expensive part) */
    char created[32];
    time_t now = time(NULL);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    if (tk && (rc = vocab_build(tk, V, &vs, &err))) goto fail;
    st_files = calloc((size_t)mf->st->n_files, sizeof *st_files);
    st_sha = calloc((size_t)mf->st->n_files, sizeof *st_sha);
    pnames = calloc((size_t)pts.n, sizeof *pnames);
    if (!st_files || !st_sha || !pnames) {
        rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < mf->st->n_files; i++) {
        st_files[i] = mf->st->files[i].name;
        st_sha[i] = mf->st->files[i].header_sha256;
    }
    for (int i = 0; i < pts.n; i++) pnames[i] = pts.names[i];
    if (ps.mode && !pvocab) { /* probs_vocab_index covers every id */
        all_ids = ll_malloc_array((size_t)V, 4);
        if (all_ids)
            for (int64_t i = 0; i < V; i++) all_ids[i] = (int32_t)i;
    }

    ll_backend_opts bo = {.threads = o.threads, .device = o.device, .allow_tf32 = o.tf32};
    if ((rc = ll_backend_open(o.backend, &bo, &be, &err))) {
        goto fail;
    }
    if (o.tf32 && !strcmp(be->ops->name, "cpu") && !o.quiet)
        fprintf(stderr, "logitlens run: note: --tf32 has no effect on the cpu backend (its fp32 matmuls stay fp32)\n");
    /* the memory plan, checked before anything is uploaded */
    ll_engine_opts eo = {.topk = o.topk, .save_hidden = o.save_hidden, .probs_nv = ps.mode ? pvocab_n : 0,
                         .probs_vocab = pvocab, .max_probs_rows = max_rows};
    {
        ll_memplan plan;
        size_t free_b = 0, total_b = 0;
        ll_memplan_compute(mf, be->ops->name, &pts, &eo, max_T, &plan);
        if (be->ops->mem_info(be, &free_b, &total_b) != LL_OK) free_b = 0;
        /* LOGITLENS_MEMORY_LIMIT (bytes) caps what a run may plan for, e.g. on a shared node */
        const char *lim = getenv("LOGITLENS_MEMORY_LIMIT");
        int64_t limit;
        if (lim && *lim && !ll_parse_int(lim, 1, INT64_MAX, &limit) && (free_b == 0 || (size_t)limit < free_b))
            free_b = (size_t)limit;
        if (free_b > 0 && plan.total > free_b) {
            char need[32], have[32], wb[32], ab[32];
            ll_memplan_human((double)plan.total, need, sizeof need);
            ll_memplan_human((double)free_b, have, sizeof have);
            ll_memplan_human((double)plan.weights, wb, sizeof wb);
            ll_memplan_human((double)plan.activations, ab, sizeof ab);
            rc = ll_fail(&err, LL_ERR_NOMEM,
                         "model %s does not fit the %s backend: needs %s (weights %s, activations for batches of "
                         "%lld tokens %s, scratch) but %s (%zu bytes) are available; lower --batch-tokens or use a "
                         "larger device",
                         o.model, be->ops->name, need, wb, (long long)max_T, ab, have, free_b);
            goto fail;
        }
    }
    ll_h5_meta meta = {
        .path = o.out, .command_line = ll_command_line, .created = created, .model_path = o.model,
        .architecture = c->arch, .dtype = ll_dtype_name(mf->dtype), .backend = be->ops->name,
        .allow_tf32 = o.tf32 && strcmp(be->ops->name, "cpu") != 0,
        .n_layers = c->n_layers, .d_model = c->d_model, .vocab_size = V, .topk = o.topk,
        .config_sha256 = mf->config_sha256, .n_st_files = mf->st->n_files, .st_files = st_files,
        .st_header_sha256 = st_sha, .n_points = pts.n, .point_names = pnames, .point_layers = pts.layers,
        .save_probs = ps.mode != 0, .n_probs_vocab = pvocab_n, .probs_vocab = pvocab ? pvocab : all_ids,
        .save_hidden = o.save_hidden, .n_vocab = vs.n, .vocab_display = (const char *const *)vs.display,
        .vocab_bytes = (const uint8_t *const *)vs.bytes, .vocab_bytes_len = vs.len};
    rc = (ps.mode && !pvocab && !all_ids) ? ll_fail(&err, LL_ERR_NOMEM, "out of memory")
                                          : ll_h5_create(&meta, &h5, &err);
    if (rc) goto fail;
    vocab_free(&vs);

    /* 5: weights and engine */
    const double t_load = ll_now();
    if ((rc = ll_weights_upload(be, mf, &w, &err))) goto fail;
    if ((rc = ll_engine_init(be, c, &w, &comm, &pts, &eo, max_T, &eng, &err))) goto fail;
    const double t_run = ll_now();

    texts = calloc((size_t)prompts.n * 2, sizeof *texts);
    bpos = ll_malloc_array((size_t)max_T, 4);
    btgt = ll_malloc_array((size_t)max_T, 4);
    boff = ll_malloc_array((size_t)prompts.n + 1, 8);
    blen = ll_malloc_array((size_t)prompts.n, 8);
    brows = ll_malloc_array((size_t)max_rows + 1, 8);
    int32_t *btok = ll_malloc_array((size_t)max_T, 4);
    if (!texts || !bpos || !btgt || !boff || !blen || !brows || !btok) {
        free(btok);
        rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < prompts.n; i++) {
        ll_prompt *p = &prompts.v[i];
        if (p->text) texts[2 * i] = strdup(p->text);
        else if (tk) ll_tokenizer_decode(tk, p->ids, (size_t)p->n, &texts[2 * i], &err);
        if (!texts[2 * i]) texts[2 * i] = strdup("");
        texts[2 * i + 1] = strdup(p->target_text ? p->target_text : "");
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* test hook: deliver SIGINT to ourselves after this many batches (tests/test_interrupt.py) */
    const char *sig_after = getenv("LOGITLENS_TEST_SIGINT_AFTER_BATCHES");
    int64_t sig_after_n = -1, n_batches = 0;
    if (sig_after && ll_parse_int(sig_after, 0, INT32_MAX, &sig_after_n)) sig_after_n = -1;
    ll_progress prog;
    ll_progress_start(&prog, total_tokens, "tokens", o.quiet);
    int64_t done = 0;
    for (int first = 0; first < prompts.n;) {
        /* gather the batch */
        int np = 0;
        int64_t T = 0, nrows = 0;
        boff[0] = 0;
        while (first + np < prompts.n) {
            ll_prompt *p = &prompts.v[first + np];
            if (np > 0 && T + p->n > o.batch_tokens) break;
            for (int64_t j = 0; j < p->n; j++) {
                btok[T + j] = p->ids[j];
                bpos[T + j] = (int32_t)j;
                btgt[T + j] = j + 1 < p->n ? p->ids[j + 1] : p->target_id;
                if (probs_selected(&ps, j, p->n)) brows[nrows++] = T + j;
            }
            blen[np] = p->n;
            T += p->n;
            boff[++np] = T;
        }
        ll_batch b = {.T = T, .n_prompts = np, .tokens = btok, .pos = bpos, .off = boff, .target = btgt};
        if ((rc = ll_lens_out_alloc(&res, T, pts.n, o.topk, c->d_model, o.save_hidden, ps.mode ? nrows : 0,
                                    pvocab_n, &err)))
            break;
        if ((rc = ll_engine_forward(eng, &b, &err))) break;
        if ((rc = ll_engine_lens(eng, &b, brows, ps.mode ? nrows : 0, &res, &err))) break;
        const char **pt = malloc(sizeof *pt * (size_t)np), **tt = malloc(sizeof *tt * (size_t)np);
        if (!pt || !tt) {
            free(pt);
            free(tt);
            rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory");
            break;
        }
        for (int j = 0; j < np; j++) {
            pt[j] = texts[2 * (first + j)];
            tt[j] = texts[2 * (first + j) + 1];
        }
        ll_h5_batch hb = {.n_prompts = np, .prompt_texts = pt, .prompt_targets = tt, .prompt_lengths = blen,
                          .n_tokens = T, .tokens = btok, .target_ids = btgt, .topk_ids = res.topk_ids,
                          .topk_probs = res.topk_probs, .entropy = res.entropy, .kl_final = res.kl_final,
                          .target_probs = res.target_probs, .target_logprobs = res.target_logprobs,
                          .target_ranks = res.target_ranks, .n_probs_rows = ps.mode ? nrows : 0,
                          .probs_token = brows, .probs = res.probs, .hidden = res.hidden};
        rc = ll_h5_append(h5, &hb, &err);
        free(pt);
        free(tt);
        ll_lens_out_free(&res);
        if (rc) break;
        first += np;
        done += T;
        if (++n_batches == sig_after_n) raise(SIGINT);
        ll_progress_update(&prog, done);
        if (interrupted) {
            rc = ll_fail(&err, LL_ERR_INTERRUPTED, "interrupted by signal %d after %lld of %lld tokens; no output written",
                         (int)interrupted, (long long)done, (long long)total_tokens);
            break;
        }
    }
    free(btok);
    if (rc) goto fail;
    rc = ll_h5_commit(h5, &err);
    h5 = NULL;
    if (rc) goto fail;
    ll_progress_finish(&prog, done);
    if (!o.quiet) {
        const double t_end = ll_now(), run_s = t_end - t_run;
        fprintf(stderr, "logitlens: wrote %s: %d prompts, %lld tokens, %d points; weights %.2f s, forward + lens %.2f s "
                        "(%.0f tokens per second)\n",
                o.out, prompts.n, (long long)total_tokens, pts.n, t_run - t_load, run_s,
                run_s > 0 ? (double)total_tokens / run_s : 0.0);
    }

fail:
    if (rc) fprintf(stderr, "logitlens run: %s\n", err.msg);
    ll_lens_out_free(&res);
    ll_h5_abort(h5);
    if (texts)
        for (int i = 0; i < 2 * prompts.n; i++) free(texts[i]);
    free(texts);
    free(bpos);
    free(btgt);
    free(boff);
    free(blen);
    free(brows);
    ll_engine_free(eng);
    if (be) {
        ll_weights_free(be, &w);
        ll_backend_close(be);
    }
    vocab_free(&vs);
    free(st_files);
    free(st_sha);
    free(pnames);
    free(all_ids);
    free(pvocab);
    free(ps.pos);
    ll_points_free(&pts);
    ll_tokenizer_free(tk);
    ll_model_files_close(mf);
    ll_prompts_free(&prompts);
    return ll_status_exit_code(rc);
}
