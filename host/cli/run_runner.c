/* run_runner.c: the middle of `logitlens run`, shared by every driver of a run: the model, tokenizer and
 * prompts validated before any compute; batches of whole prompts planned; the memory plan checked; the
 * output created; weights uploaded; the batch loop (forward, lens, append); the file committed. */
#include "args.h"
#include "cli.h"
#include "ll_engine.h"
#include "ll_h5.h"
#include "ll_memplan.h"
#include "ll_model.h"
#include "ll_progress.h"
#include "ll_ranks.h"
#include "ll_shard.h"
#include "run.h"
#include "run_internal.h"
#include "run_select.h"

#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>


#define LL_PEAK_LIST 64 /* ranks whose peak memory the closing line lists */

/* Progress within a batch: the engine reports the share done (ll_engine_opts.progress). */
static void on_batch_progress(void *ctx, double fraction) {
    run_batch_progress *bp = ctx;
    if (bp && bp->prog) ll_progress_update(bp->prog, bp->base + (int64_t)((double)bp->T * fraction));
}

static void run_free(run_ctx *r) {
    ll_h5_abort(r->h5);
    ll_journal_close(r->journal);
    free(r->journal_dir);
    free(r->command_line);
    if (r->texts)
        for (int i = 0; i < 2 * r->o->prompts.n; i++) free(r->texts[i]);
    free(r->texts);
    ll_engine_free(r->eng);
    if (r->be) {
        ll_weights_free(r->be, &r->w);
        if (r->xg_send) r->be->ops->dealloc(r->be, r->xg_send);
        if (r->xg_recv) r->be->ops->dealloc(r->be, r->xg_recv);
    }
    if (r->tpc && r->tpc != r->wc) ll_comm_close(r->tpc);
    if (r->wc && r->wc != r->world.comm) ll_comm_close(r->wc);
    if (r->world_open) ll_world_close(&r->world); /* before the backend: NCCL needs its device */
    if (r->be) ll_backend_close(r->be);
    free(r->all_ids);
    free(r->pvocab);
    ll_probs_sel_free(&r->ps);
    ll_points_free(&r->pts);
    ll_tokenizer_free(r->tk);
    ll_model_files_close(r->mf);
}

/* One line on stderr, unless --quiet. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void note(const run_ctx *r, const char *fmt, ...) {
    if (r->o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("logitlens run: note: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* 1: model, tokenizer, prompts, points and selections: everything validated before any compute. */
static ll_status run_prepare(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    ll_status rc;
    if ((rc = ll_model_files_open(o->model, &r->mf, err))) return rc;
    const ll_config *c = &r->mf->cfg;
    if (o->prompts_file) {
        ll_prompts_file_stats st;
        if ((rc = ll_prompts_load_file(&o->prompts, o->prompts_file, &st, err))) return rc;
        if (st.blank || st.comments)
            note(r, "%s: %lld prompts from %lld lines (skipped %lld blank and %lld comment lines)", o->prompts_file,
                 (long long)st.prompts, (long long)st.lines, (long long)st.blank, (long long)st.comments);
    }
    /* The tokenizer: a model without one, or with one this engine cannot reproduce exactly, still runs
     * token-id prompts (without token strings in the output); text prompts then stop here. */
    ll_err terr = {{0}};
    char no_tok[LL_ERR_MSG_MAX + 64];
    ll_status trc = ll_model_files_tokenizer(r->mf, &r->tk, &terr);
    if (trc == LL_ERR_NOMEM) return ll_fail(err, trc, "%s", terr.msg);
    if (trc) {
        snprintf(r->tokenizer_error, sizeof r->tokenizer_error, "%s", terr.msg);
        snprintf(no_tok, sizeof no_tok, "the model's tokenizer cannot be used (%s)", terr.msg);
        if (!ll_prompts_need_tokenizer(&o->prompts))
            note(r, "%s; the prompts are token ids, so the run goes on without token strings (recorded in the result "
                    "file's tokenizer_error attribute)",
                 no_tok);
    } else {
        snprintf(no_tok, sizeof no_tok, "the model %s has none (%s)", o->model,
                 r->mf->format == LL_MODEL_GGUF ? "no tokenizer.ggml.model in the GGUF metadata"
                                                : "no tokenizer.json in the directory");
    }
    if ((rc = ll_prompts_tokenize(&o->prompts, r->tk, no_tok, o->add_special, err))) return rc;
    int64_t V = c->vocab; /* rows of the unembedding */
    if ((rc = ll_prompts_validate(&o->prompts, V, c->n_ctx, c->sliding_window, err))) return rc;
    if (o->topk > V)
        return ll_fail(err, LL_ERR_USAGE, "--topk %d is larger than the vocabulary (%lld)", o->topk, (long long)V);
    if ((rc = ll_points_parse(o->points, o->layers, c->n_layers, &r->pts, err))) return rc;
    if ((rc = ll_probs_sel_parse(o->save_probs, &r->ps, err))) return rc;
    if ((rc = ll_probs_sel_check(&r->ps, o->save_probs, &o->prompts, err))) return rc;
    if (o->probs_vocab && !o->save_probs) return ll_fail(err, LL_ERR_USAGE, "--probs-vocab needs --save-probs");
    if (o->probs_vocab && (rc = ll_parse_vocab_ids(o->probs_vocab, V, &r->pvocab, &r->pvocab_n, err))) return rc;
    if (r->ps.mode && !r->pvocab) r->pvocab_n = V;
    return LL_OK;
}

/* 2: batches of whole prompts up to --batch-tokens tokens: the largest batch and probs row count. */
static void run_plan_batches(run_ctx *r) {
    const ll_prompt_set *ps = &r->o->prompts;
    int64_t cur = 0, cur_rows = 0;
    for (int i = 0; i < ps->n; i++) {
        int64_t n = ps->v[i].n, rows = 0;
        for (int64_t j = 0; j < n; j++) rows += ll_probs_selected(&r->ps, j, n);
        if (cur > 0 && cur + n > r->o->batch_tokens) cur = cur_rows = 0;
        if (cur == 0) r->n_batches++;
        cur += n;
        cur_rows += rows;
        if (cur > r->max_T) r->max_T = cur;
        if (cur_rows > r->max_rows) r->max_rows = cur_rows;
        r->total_tokens += n;
        r->total_probs_rows += rows;
    }
}

/* 3: the backend, and the memory plan checked before anything is uploaded. */
static ll_status run_open(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    ll_status rc;
    if (!r->be && (rc = run_backend(r, err))) return rc;
    const char *bname = r->be->ops->name;
    if (o->tf32 && !strcmp(bname, "cpu"))
        note(r, "--tf32 has no effect on the cpu backend (its fp32 matmuls stay fp32)");
    r->eo = (ll_engine_opts){.topk = o->topk, .save_hidden = o->save_hidden, .probs_nv = r->ps.mode ? r->pvocab_n : 0,
                             .probs_vocab = r->pvocab, .max_probs_rows = r->max_rows,
                             .cancel = r->env.world == 1 ? run_sig_cancel_flag() : NULL, /* ranks end on a signal at once */
                             .progress = on_batch_progress, .progress_ctx = &r->bp};
    ll_memplan plan;
    size_t free_b = 0, total_b = 0;
    ll_memplan_compute(r->mf, bname, &r->sh, &r->pts, &r->eo, r->max_T, &plan);
    if (r->be->ops->mem_info(r->be, &free_b, &total_b) != LL_OK) free_b = 0;
    /* LOGITLENS_MEMORY_LIMIT (bytes) caps what a run may plan for, e.g. on a shared node */
    const char *lim = getenv("LOGITLENS_MEMORY_LIMIT");
    int64_t limit;
    if (lim && *lim && !ll_parse_int(lim, 1, INT64_MAX, &limit) && (free_b == 0 || (size_t)limit < free_b))
        free_b = (size_t)limit;
    /* CPU ranks on one node share its memory */
    if (!strcmp(bname, "cpu") && r->env.local_world > 1) free_b /= (size_t)r->env.local_world;
    if (free_b > 0 && plan.total > free_b) {
        char need[32], have[32], wb[32], ab[32];
        ll_memplan_human((double)plan.total, need, sizeof need);
        ll_memplan_human((double)free_b, have, sizeof have);
        ll_memplan_human((double)plan.weights, wb, sizeof wb);
        ll_memplan_human((double)plan.activations, ab, sizeof ab);
        char where[64] = "";
        if (r->env.world > 1) snprintf(where, sizeof where, " on rank %d of %d", r->env.rank, r->env.world);
        return ll_fail(err, LL_ERR_NOMEM,
                       "model %s does not fit the %s backend%s: needs %s (weights %s, activations for batches of "
                       "%lld tokens %s, scratch) but %s (%zu bytes) are available; lower --batch-tokens, use a "
                       "larger device or more ranks (--tp, --pp; logitlens plan)",
                       o->model, bname, where, need, wb, (long long)r->max_T, ab, have, free_b);
    }
    return LL_OK;
}

/* 3b: the output file (rank 0 writes it; every rank takes part in gathering the devices). An unwritable
 * path fails before the expensive part. */
static ll_status run_open_output(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    const ll_config *c = &r->mf->cfg;
    const int64_t V = c->vocab;
    const char *bname = r->be->ops->name;
    ll_status rc;
    char **devs = NULL;
    if ((rc = run_gather_devices(r, &devs, err))) return rc;
    if (r->sh.rank != 0) { /* only rank 0 writes the output */
        free(devs);
        return LL_OK;
    }

    if (r->ps.mode && !r->pvocab) { /* probs_vocab_index covers every id */
        if (!(r->all_ids = ll_malloc_array((size_t)V, 4))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        for (int64_t i = 0; i < V; i++) r->all_ids[i] = (int32_t)i;
    }
    ll_vocab_strings vs = {0};
    if (r->tk && (rc = ll_vocab_strings_build(r->tk, V, &vs, err))) return rc;
    const char **pnames = calloc((size_t)r->pts.n, sizeof *pnames);
    if (!pnames) {
        ll_vocab_strings_free(&vs);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < r->pts.n; i++) pnames[i] = r->pts.names[i];
    const ll_model_files *mf = r->mf;
    ll_h5_meta meta = {
        .path = o->out, .command_line = r->command_line ? r->command_line : ll_command_line, .created = r->created,
        .model_path = o->model,
        .architecture = c->arch, .dtype = ll_dtype_name(mf->n_quantized ? ll_model_weights_dtype(mf, bname) : mf->dtype),
        .backend = bname, .allow_tf32 = o->tf32 && strcmp(bname, "cpu") != 0,
        .n_layers = c->n_layers, .d_model = c->d_model, .vocab_size = V, .topk = o->topk,
        .config_sha256 = mf->config_sha256, .source_format = ll_model_format_name(mf->format),
        .n_st_files = mf->n_files, .st_files = mf->file_names, .st_header_sha256 = mf->file_sha256,
        .storage_types = mf->storage_types,
        .tokenizer = !r->tk ? "none" : mf->format == LL_MODEL_GGUF ? "gguf" : "tokenizer.json",
        .tokenizer_error = r->tokenizer_error[0] ? r->tokenizer_error : NULL,
        .n_points = r->pts.n, .point_names = pnames, .point_layers = r->pts.layers,
        .save_probs = r->ps.mode != 0, .n_probs_vocab = r->pvocab_n, .probs_vocab = r->pvocab ? r->pvocab : r->all_ids,
        .save_hidden = o->save_hidden, .n_vocab = vs.n, .vocab_display = (const char *const *)vs.display,
        .vocab_bytes = (const uint8_t *const *)vs.bytes, .vocab_bytes_len = vs.len,
        .tp = r->sh.tp, .pp = r->sh.pp, .world_size = r->env.world, .rank_devices = (const char *const *)devs,
        .expect_tokens = r->total_tokens, .expect_prompts = o->prompts.n, .expect_probs_rows = r->total_probs_rows};
    rc = ll_h5_create(&meta, &r->h5, err);
    free(devs);
    free(pnames);
    ll_vocab_strings_free(&vs);
    return rc;
}

/* The prompt and target texts stored per prompt: as given, or decoded from ids when a tokenizer exists. */
static ll_status run_texts(run_ctx *r, ll_err *err) {
    const ll_prompt_set *ps = &r->o->prompts;
    if (!(r->texts = calloc((size_t)ps->n * 2, sizeof *r->texts))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < ps->n; i++) {
        const ll_prompt *p = &ps->v[i];
        ll_err derr;
        if (p->text) r->texts[2 * i] = strdup(p->text);
        else if (r->tk) ll_tokenizer_decode(r->tk, p->ids, (size_t)p->n, &r->texts[2 * i], &derr);
        if (!r->texts[2 * i]) r->texts[2 * i] = strdup("");
        r->texts[2 * i + 1] = strdup(p->target_text ? p->target_text : "");
        if (!r->texts[2 * i] || !r->texts[2 * i + 1]) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    return LL_OK;
}

/* Batch buffers (host, token-major). */
typedef struct batch_bufs {
    int32_t *tok, *pos, *tgt;  /* [max_T] */
    int64_t *off;              /* [prompts + 1] */
    int64_t *len;              /* [prompts] */
    int64_t *rows;             /* [max_rows + 1] */
    const char **pt, **tt;     /* [prompts] */
} batch_bufs;

static void batch_bufs_free(batch_bufs *b) {
    free(b->tok), free(b->pos), free(b->tgt), free(b->off), free(b->len), free(b->rows), free(b->pt), free(b->tt);
}

/* Test hooks (tests/test_ranks.py, tests/test_resume.py): LOGITLENS_TEST_FAULT_RANK=R with
 * LOGITLENS_TEST_FAULT=error|kill makes rank R fail with an error or die by SIGKILL when
 * LOGITLENS_TEST_FAULT_AFTER batches (default 0) are committed: with the next batch computed but not yet
 * committed, or, when every batch is committed, before the output file is finished. */
static ll_status run_test_fault(run_ctx *r, int64_t batches_done, ll_err *err) {
    const char *rk = getenv("LOGITLENS_TEST_FAULT_RANK"), *what = getenv("LOGITLENS_TEST_FAULT");
    if (!rk || !what) return LL_OK;
    int64_t want, after = 0;
    const char *af = getenv("LOGITLENS_TEST_FAULT_AFTER");
    if (ll_parse_int(rk, 0, INT32_MAX, &want) || want != r->env.rank) return LL_OK;
    if (af && ll_parse_int(af, 0, INT32_MAX, &after)) after = 0;
    if (batches_done != after) return LL_OK;
    if (!strcmp(what, "kill")) raise(SIGKILL);
    return ll_fail(err, LL_ERR_INPUT, "test fault on rank %d after %lld batches (LOGITLENS_TEST_FAULT=%s)",
                   r->env.rank, (long long)batches_done, what);
}

/* Batch bi, committed by an earlier attempt, from the journal into the output (rank 0). Its packing must be
 * the one this run plans (the journal's identity already matched). */
static ll_status run_replay_batch(run_ctx *r, int64_t bi, int64_t T, int np, ll_err *err) {
    ll_journal_batch jb;
    ll_status rc = ll_journal_read(r->journal, bi, &r->jshape, &jb, err);
    if (rc) return rc;
    if (jb.b.n_tokens != T || jb.b.n_prompts != np)
        rc = ll_fail(err, LL_ERR_INPUT, "%s: batch %lld holds %d prompts and %lld tokens, this run packs %d and %lld; "
                     "delete %s to start over", r->journal_dir, (long long)bi, jb.b.n_prompts, (long long)jb.b.n_tokens,
                     np, (long long)T, r->journal_dir);
    else
        rc = ll_h5_append(r->h5, &jb.b, err);
    ll_journal_batch_free(&jb);
    return rc;
}


/* 4: the batch loop: forward, lens, commit (journal, then output). SIGINT/SIGTERM stop it within a layer,
 * keeping what was committed; SIGUSR1 after the batch in flight. */
static ll_status run_batches(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    const ll_prompt_set *prompts = &o->prompts;
    const ll_config *c = &r->mf->cfg;
    const int np_all = prompts->n;
    batch_bufs b = {.tok = ll_malloc_array((size_t)r->max_T, 4), .pos = ll_malloc_array((size_t)r->max_T, 4),
                    .tgt = ll_malloc_array((size_t)r->max_T, 4), .off = ll_malloc_array((size_t)np_all + 1, 8),
                    .len = ll_malloc_array((size_t)np_all, 8), .rows = ll_malloc_array((size_t)r->max_rows + 1, 8),
                    .pt = ll_malloc_array((size_t)np_all, sizeof(char *)),
                    .tt = ll_malloc_array((size_t)np_all, sizeof(char *))};
    if (!b.tok || !b.pos || !b.tgt || !b.off || !b.len || !b.rows || !b.pt || !b.tt) {
        batch_bufs_free(&b);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }

    /* test hook: deliver SIGINT to ourselves after this many batches (tests/test_interrupt.py) */
    const char *sig_after = getenv("LOGITLENS_TEST_SIGINT_AFTER_BATCHES");
    int64_t sig_after_n = -1, n_batches = 0;
    if (sig_after && ll_parse_int(sig_after, 0, INT32_MAX, &sig_after_n)) sig_after_n = -1;
    /* test hook: SIGUSR1 to ourselves when this batch index starts (tests/test_resume.py) */
    const char *usr1 = getenv("LOGITLENS_TEST_USR1_AFTER_BATCHES");
    int64_t usr1_at = -1;
    if (usr1 && ll_parse_int(usr1, 0, INT32_MAX, &usr1_at)) usr1_at = -1;
    ll_progress prog;
    ll_progress_start(&prog, r->total_tokens, "tokens", o->quiet);
    int64_t done = 0;
    const int writer = r->sh.rank == 0;
    ll_lens_out res = {0};
    ll_status rc = LL_OK;
    const int saving = r->ps.mode != LL_PROBS_NONE;
    r->bp.prog = &prog; /* the engine reports within a batch through r->bp (run_open) */
    for (int first = 0, bi = 0; first < np_all && !rc; bi++) {
        int np = 0;
        int64_t T = 0, nrows = 0;
        b.off[0] = 0;
        while (first + np < np_all) {
            const ll_prompt *p = &prompts->v[first + np];
            if (np > 0 && T + p->n > o->batch_tokens) break;
            for (int64_t j = 0; j < p->n; j++) {
                b.tok[T + j] = p->ids[j];
                b.pos[T + j] = (int32_t)j;
                b.tgt[T + j] = j + 1 < p->n ? p->ids[j + 1] : p->target_id;
                if (ll_probs_selected(&r->ps, j, p->n)) b.rows[nrows++] = T + j;
            }
            b.len[np] = p->n;
            b.pt[np] = r->texts[2 * (first + np)];
            b.tt[np] = r->texts[2 * (first + np) + 1];
            T += p->n;
            b.off[++np] = T;
        }
        if (bi < r->skip_batches) { /* committed by an earlier attempt: into the output from the journal */
            if (writer) rc = run_replay_batch(r, bi, T, np, err);
            first += np;
            done += T;
            ll_progress_update(&prog, done);
            continue;
        }
        /* a checkpoint asked for (SIGUSR1, during loading or the batch before): stop before new work */
        int stop = 0;
        if ((rc = run_checkpoint_requested(r, &stop, err))) break;
        if (stop) {
            rc = ll_fail(err, LL_STOPPED_CHECKPOINT, "stopped at a checkpoint (SIGUSR1) after %lld of %lld tokens",
                         (long long)done, (long long)r->total_tokens);
            break;
        }
        ll_batch batch = {.T = T, .n_prompts = np, .tokens = b.tok, .pos = b.pos, .off = b.off, .target = b.tgt};
        if (writer && (rc = ll_lens_out_alloc(&res, T, r->pts.n, o->topk, c->d_model, o->save_hidden,
                                              saving ? nrows : 0, r->pvocab_n, err)))
            break;
        r->bp.base = done;
        r->bp.T = T;
        if ((rc = ll_engine_forward(r->eng, &batch, err))) break;
        if (bi == usr1_at) raise(SIGUSR1); /* test hook: a checkpoint request while this batch is in flight */
        if ((rc = ll_engine_lens(r->eng, &batch, b.rows, saving ? nrows : 0, writer ? &res : NULL, err))) break;
        if ((rc = run_test_fault(r, bi, err))) break; /* bi batches committed, this one in flight */
        first += np;
        done += T;
        if (writer) { /* durable in the journal first, then into the output */
            ll_h5_batch hb = {.n_prompts = np, .prompt_texts = b.pt, .prompt_targets = b.tt, .prompt_lengths = b.len,
                              .n_tokens = T, .tokens = b.tok, .target_ids = b.tgt, .topk_ids = res.topk_ids,
                              .topk_probs = res.topk_probs, .entropy = res.entropy, .kl_final = res.kl_final,
                              .target_probs = res.target_probs, .target_logprobs = res.target_logprobs,
                              .target_ranks = res.target_ranks, .n_probs_rows = saving ? nrows : 0,
                              .probs_token = b.rows, .probs = res.probs, .hidden = res.hidden};
            rc = ll_journal_append(r->journal, &hb, &r->jshape, first, done, r->total_tokens, err);
            if (!rc) rc = ll_h5_append(r->h5, &hb, err);
            ll_lens_out_free(&res);
            if (rc) break;
        }
        if (++n_batches == sig_after_n) raise(SIGINT);
        ll_progress_update(&prog, done);
    }
    if (!rc) rc = run_test_fault(r, n_batches + r->skip_batches, err); /* every batch committed, the file not yet */
    if (rc == LL_ERR_INTERRUPTED && run_sig_interrupted())
        ll_fail(err, LL_ERR_INTERRUPTED, "interrupted by signal %d after %lld of %lld tokens", run_sig_interrupted(),
                (long long)done, (long long)r->total_tokens);
    r->bp.prog = NULL;
    ll_lens_out_free(&res);
    batch_bufs_free(&b);
    if (!rc) ll_progress_finish(&prog, done);
    return rc;
}

/* This process's peak resident memory in KiB (VmHWM: the high-water mark of its own address space since
 * exec, unlike getrusage's maxrss, which can inherit the launching process's peak); -1 when unknown. */
static long peak_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}





/* After a failure, interruption or checkpoint (rank 0): the committed batches stay in the journal and the
 * message says how to continue; a journal without a committed batch is removed (nothing to resume). */
static void run_journal_outcome(run_ctx *r, ll_status rc, ll_err *err) {
    if (!r->journal || !r->journal_active || r->env.rank != 0) return;
    const int64_t n = ll_journal_batches(r->journal);
    const size_t used = strlen(err->msg), room = sizeof err->msg - used;
    if (n == 0) {
        ll_journal_remove(r->journal, NULL);
        ll_journal_close(r->journal);
        r->journal = NULL;
        if (rc == LL_ERR_INTERRUPTED || rc == LL_STOPPED_CHECKPOINT) snprintf(err->msg + used, room, "; no output written");
        return;
    }
    snprintf(err->msg + used, room, "; %lld batches are committed in %s: continue with --resume", (long long)n,
             r->journal_dir);
}

ll_status ll_run_execute(ll_run_opts *o, ll_err *err) {
    run_ctx r = {.o = o};
    ll_status rc;
    if ((rc = run_ranks(&r, err))) goto done;
    if ((rc = run_prepare(&r, err))) goto done;
    if ((rc = ll_shard_check(&r.mf->cfg, o->tp, o->pp, err))) goto done;
    ll_shard_make(&r.mf->cfg, o->tp, o->pp, r.env.rank, &r.sh);
    run_plan_batches(&r);
    if ((rc = run_open(&r, err))) goto done;
    if ((rc = run_journal_prepare(&r, err))) goto done;
    if (r.already_done) {
        note(&r, "%s is complete; --resume has nothing to do", o->out);
        goto done;
    }
    if (r.skip_batches > 0)
        note(&r, "resuming %s: %lld batches committed by an earlier attempt are taken from %s", o->out,
             (long long)r.skip_batches, r.journal_dir);
    if ((rc = run_open_output(&r, err))) goto done;
    if ((rc = run_share_tmp_path(&r, err))) goto done;
    if ((rc = run_journal_start(&r, err))) goto done;
    run_sig_install(&r);
    r.t_load = ll_now();
    if ((rc = ll_weights_upload(r.be, r.mf, &r.sh, &r.w, err))) goto done;
    if (run_sig_interrupted()) {
        rc = ll_fail(err, LL_ERR_INTERRUPTED, "interrupted by signal %d while loading the weights", run_sig_interrupted());
        goto done;
    }
    ll_engine_par par = {.shard = &r.sh};
    if (r.world_open) {
        if (o->tp == r.env.world) r.tpc = r.wc;
        else if (r.wc->split(r.wc, r.sh.pp_rank, r.sh.tp_rank, &r.tpc)) {
            rc = ll_fail(err, LL_ERR_BACKEND, "forming the tensor-parallel groups: %s", r.wc->err.msg);
            goto done;
        }
        par.tp = r.tpc;
        par.world = r.wc;
    }
    if ((rc = ll_engine_init(r.be, &r.mf->cfg, &r.w, &par, &r.pts, &r.eo, r.max_T, &r.eng, err))) goto done;
    r.t_run = ll_now();
    if ((rc = run_texts(&r, err))) goto done;
    if ((rc = run_batches(&r, err))) goto done;
    run_sig_output_done(); /* from here the file is committed (or removed by the commit's failure) */
    if (r.h5) {
        rc = ll_h5_commit(r.h5, err);
        r.h5 = NULL;
        if (rc) goto done;
    }
    /* the output is complete: its journal goes */
    if (r.journal && (rc = ll_journal_remove(r.journal, err))) goto done;
    /* every rank's peak host memory, reported by rank 0 */
    int64_t my_kib = peak_rss_kib(), *kibs = calloc((size_t)r.env.world, sizeof *kibs);
    if (!kibs) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((rc = run_allgather_host(&r, &my_kib, sizeof my_kib, kibs, err))) {
        free(kibs);
        goto done;
    }
    if (!o->quiet && r.env.world > 1) { /* what rank 0 exchanged, against the forward pass's formula */
        ll_engine_comm_stats cs;
        ll_engine_comm_stats_get(r.eng, &cs);
        const double tok = cs.tokens > 0 ? (double)cs.tokens : 1, layers = r.sh.layer1 - r.sh.layer0;
        note(&r, "communication of rank 0 (payload): forward all-reduce %.0f bytes per token and layer (2 x d_model x "
                 "4 = %lld with --tp > 1), lens exchange %.0f bytes per token, pipeline %.0f bytes per token",
             layers > 0 ? cs.forward_allreduce / tok / layers : 0.0, (long long)(2 * r.mf->cfg.d_model * 4),
             cs.lens_exchange / tok, cs.pipeline / tok);
    }
    if (!o->quiet) {
        const double run_s = ll_now() - r.t_run;
        char peak[48 + 16 * LL_PEAK_LIST] = "", ranks[64] = "";
        if (r.env.world == 1 && my_kib >= 0) {
            snprintf(peak, sizeof peak, "; peak host memory %ld MiB", (long)((my_kib + 1023) / 1024));
        } else if (r.env.world > 1) { /* per rank, the first LL_PEAK_LIST of them */
            size_t n = (size_t)snprintf(peak, sizeof peak, "; peak host memory per rank");
            for (int i = 0; i < r.env.world && i < LL_PEAK_LIST && n < sizeof peak; i++)
                n += (size_t)snprintf(peak + n, sizeof peak - n, "%s %ld", i ? "," : "", (long)((kibs[i] + 1023) / 1024));
            if (n < sizeof peak) snprintf(peak + n, sizeof peak - n, "%s MiB", r.env.world > LL_PEAK_LIST ? ", ..." : "");
        }
        if (r.env.world > 1) snprintf(ranks, sizeof ranks, " on %d ranks (--tp %d --pp %d)", r.env.world, o->tp, o->pp);
        fprintf(stderr, "logitlens: wrote %s: %d prompts, %lld tokens, %d points%s on the %s backend; weights %.2f s, "
                        "forward + lens %.2f s (%.0f tokens per second)%s\n",
                o->out, o->prompts.n, (long long)r.total_tokens, r.pts.n, ranks, r.be->ops->name, r.t_run - r.t_load,
                run_s, run_s > 0 ? (double)r.total_tokens / run_s : 0.0, peak);
    }
    free(kibs);
done:
    if (rc) run_journal_outcome(&r, rc, err);
    if (rc && rc != LL_STOPPED_CHECKPOINT) run_fail_ranks(&r, rc, err);
    if (rc == LL_STOPPED_CHECKPOINT && r.env.rank != 0) err->msg[0] = 0; /* rank 0 says it */
    run_free(&r);
    return rc;
}
