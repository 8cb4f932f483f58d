/* run.h: `logitlens run` as two parts that other drivers (ranks, resumed runs, sweep tasks) share: the
 * options parser (run_options.c) and the runner (run_runner.c: model, prompts, plan, engine, batch loop,
 * output). cli_run.c is the command: parse, then run. */
#ifndef LL_RUN_H
#define LL_RUN_H

#include "ll_common.h"
#include "ll_prompts.h"

#include <stdint.h>

typedef struct ll_run_opts {
    const char *model;        /* --model: directory, .gguf file, or directory holding one .gguf */
    const char *out;          /* --out FILE.h5 */
    const char *prompts_file; /* --prompts FILE (.txt or .jsonl) */
    const char *points, *layers, *save_probs, *probs_vocab, *backend;
    int topk;
    int save_hidden, add_special, quiet, tf32;
    int resume;               /* --resume: continue OUT.journal, or do nothing when OUT is complete */
    int threads, device;      /* device: -1 = the local rank (0 for one process) */
    int64_t batch_tokens;
    int tp, pp;               /* tensor-parallel ranks x pipeline stages = the launcher's world size */
    const char *rendezvous;   /* --rendezvous DIR: NCCL unique id exchange without MPI */
    double comm_timeout;      /* --comm-timeout: longest wait on another rank */
    ll_prompt_set prompts;    /* from --prompt / --tokens, in command-line order (before the file's) */
} ll_run_opts;

/* Defaults of every option (as documented in docs/cli.md). */
void ll_run_opts_init(ll_run_opts *o);
/* Parses run's arguments (argv[0] is the command name) into o. *help = 1 when --help was given (nothing
 * else is checked then). Usage errors are LL_ERR_USAGE with a one-line message. */
ll_status ll_run_opts_parse(int argc, char **argv, ll_run_opts *o, int *help, ll_err *err);
void ll_run_opts_free(ll_run_opts *o);

/* Runs the lens as o says and writes o->out (complete, or not at all). Messages on stderr are the
 * runner's own notes and progress; the error, if any, is left in err for the caller to print. */
ll_status ll_run_execute(ll_run_opts *o, ll_err *err);

extern const char ll_run_usage[];

#endif
