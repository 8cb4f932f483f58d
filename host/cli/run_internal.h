/* run_internal.h: the state of one `run` (run_runner.c) and the journal of its committed batches
 * (run_resume.c), shared by those two files only. */
#ifndef LL_RUN_INTERNAL_H
#define LL_RUN_INTERNAL_H

#include "ll_engine.h"
#include "ll_h5.h"
#include "ll_journal.h"
#include "ll_model.h"
#include "ll_progress.h"

#include <signal.h>
#include "ll_ranks.h"
#include "ll_shard.h"
#include "ll_tokenizer.h"
#include "run.h"
#include "run_select.h"

/* Where the engine's progress within a batch goes. */
typedef struct run_batch_progress {
    ll_progress *prog;
    int64_t base, T; /* tokens done before the batch, tokens in it */
} run_batch_progress;

/* Everything a run holds; freed in one place (run_free). */
typedef struct run_ctx {
    ll_run_opts *o;
    ll_model_files *mf;
    ll_tokenizer *tk;
    char tokenizer_error[LL_ERR_MSG_MAX]; /* why the model's tokenizer was not used ("" when it was) */
    ll_points pts;
    ll_probs_sel ps;
    int32_t *pvocab;         /* --probs-vocab ids, or NULL (every id) */
    int64_t pvocab_n;        /* columns of probs */
    int32_t *all_ids;        /* probs_vocab_index without --probs-vocab */
    int64_t total_tokens, max_T, max_rows;
    int64_t total_probs_rows; /* saved probability rows of the whole run */
    int64_t n_batches;        /* batches the run packs (run_plan_batches) */
    ll_h5_writer *h5;
    ll_backend *be;
    ll_weights w;
    ll_engine *eng;
    ll_rank_env env;         /* this process's place in the launch (one rank without a launcher) */
    ll_world world;          /* the world communicator (opened when there are several ranks) */
    int world_open;
    void *xg_send, *xg_recv; /* backend buffers of run_allgather_host (xg_bytes per rank) */
    size_t xg_bytes;
    ll_comm *wc;             /* the world communicator the run uses (world.comm, or its device-check wrapper) */
    ll_comm *tpc;            /* the tensor-parallel group */
    ll_shard sh;             /* what this rank holds */
    ll_engine_opts eo;
    char **texts;            /* [2 * prompts] prompt text and target text of each prompt */
    double t_load, t_run;
    /* the journal of committed batches (rank 0; include/ll_journal.h) */
    char *journal_dir;       /* OUT.journal */
    ll_journal *journal;
    int journal_active;      /* the run commits into it (a fresh journal, or one being resumed) */
    ll_journal_shape jshape;
    int64_t skip_batches;    /* batches committed by an earlier attempt, rebuilt from the journal */
    int already_done;        /* --resume of a run whose output is complete */
    char created[32];        /* the run's start (an earlier attempt's when resuming) */
    char *command_line;      /* the first attempt's command line when resuming, else NULL */
    run_batch_progress bp;
} run_ctx;


/* Before the output is created: the run's identity, and what --resume finds (run_resume.c): a journal to
 * continue (r->skip_batches, r->created, r->command_line from it), a complete output (r->already_done), or
 * nothing (a fresh run). Without --resume an existing journal is refused. Rank 0 decides; every rank learns
 * the result. */
ll_status run_journal_prepare(run_ctx *r, ll_err *err);
/* After the output is created (rank 0): starts the journal of a fresh run. */
ll_status run_journal_start(run_ctx *r, ll_err *err);
/* Ranks (run_ranks.c). */
/* Opens the ranks of a multi-process launch (backend, world communicator) before anything else. */
ll_status run_ranks(run_ctx *r, ll_err *err);
/* The backend this rank computes on (--device, else its local index; CPU threads shared on a node). */
ll_status run_backend(run_ctx *r, ll_err *err);
/* all[i * bytes ..] = rank i's mine (host memory, through the world communicator; a copy at one rank). */
ll_status run_allgather_host(run_ctx *r, const void *mine, size_t bytes, void *all, ll_err *err);
/* Every rank's device, "cuda:1 on node7": one allocation of world strings. */
ll_status run_gather_devices(run_ctx *r, char ***out, ll_err *err);
/* Every rank learns rank 0's temporary output (removed by whichever rank fails or is ended first). */
ll_status run_share_tmp_path(run_ctx *r, ll_err *err);
/* Whether a checkpoint was asked for on any rank (every rank stops before the same batch). */
ll_status run_checkpoint_requested(run_ctx *r, int *stop, ll_err *err);
/* A failed rank of a multi-rank run: one line, then every rank ends (does not return with several ranks). */
void run_fail_ranks(run_ctx *r, ll_status rc, const ll_err *err);

/* Signals (run_signals.c). */
void run_sig_install(const run_ctx *r);           /* from the output's creation on */
int run_sig_interrupted(void);                     /* the SIGINT/SIGTERM received (one process), or 0 */
int run_sig_checkpoint(void);                      /* SIGUSR1 received */
const volatile sig_atomic_t *run_sig_cancel_flag(void); /* for ll_engine_opts.cancel */
void run_sig_ranks_output(const char *tmp_path);   /* ranks: rank 0's temporary output, removed on any end */
void run_sig_output_done(void);                    /* the output is committed: nothing to remove */
void run_sig_remove_output(void);                  /* remove rank 0's temporary output now */

#endif
