/* ll_sweep.h: sweeps: many models x many prompt shards as independent `logitlens run` tasks, planned
 * from one sweep file (YAML or JSON), run as a SLURM job array or as local subprocesses, watched, merged
 * back into one result file per model and retried (docs/sweeps.md).
 *
 * The sweep file is untrusted input: ll_sweep_parse never touches the file system and refuses, with one
 * line naming the file, the key and what was expected, unknown keys, missing keys, wrong types and values
 * out of range (tests/fuzz/fuzz_sweep.c). Whether the models and prompt files exist and suit each other is
 * ll_sweep_plan's job, also before any task runs. */
#ifndef LL_SWEEP_H
#define LL_SWEEP_H

#include "ll_common.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The most models, prompt sets and files per set a sweep file may name. */
#define LL_SWEEP_MAX_ITEMS 4096

typedef struct ll_sweep_model {
    char *name;            /* unique; [A-Za-z0-9._-]; default: the path's last component without .gguf */
    char *path;            /* the model (run --model): relative paths joined to the sweep file's directory */
    char *backend;         /* "cpu", "cuda" or "auto" */
    int tp, pp;            /* tensor-parallel ranks x pipeline stages (tp * pp > 1: the task runs under srun) */
    int64_t batch_tokens;  /* run --batch-tokens */
    int threads;           /* run --threads; 0 = not given (all cores) */
} ll_sweep_model;

typedef struct ll_sweep_prompt_set {
    char *name;            /* unique; [A-Za-z0-9._-]; default: the first file's name without its extension */
    char **files;          /* [n_files] .txt or .jsonl prompt files, joined to the sweep file's directory */
    int n_files;
} ll_sweep_prompt_set;

typedef struct ll_sweep_lens {
    char *points;          /* run --points, or NULL (run's default) */
    char *layers;          /* run --layers, or NULL (every layer) */
    char *save_probs;      /* run --save-probs, or NULL (none) */
    int topk;              /* run --topk (default 10) */
} ll_sweep_lens;

typedef struct ll_sweep_slurm {
    char *job_name;        /* default "logitlens-" + the sweep's name */
    char *partition, *account, *qos, *constraint; /* NULL: not given */
    char *time;            /* SLURM time limit ("04:00:00", "1-12:00:00", "90" minutes), NULL: not given */
    char *mem;             /* memory per node ("64G", "8000" MB), NULL: not given */
    int gpus_per_task;     /* 0: not given */
    int cpus_per_task;     /* 0: not given */
    int max_parallel;      /* %M of --array: array tasks running at once; 0 = every task */
    char **extra;          /* [n_extra] further sbatch options, one #SBATCH line each ("--exclusive") */
    int n_extra;
    char **setup;          /* [n_setup] shell lines run before each task ("module load cuda") */
    int n_setup;
} ll_sweep_slurm;

typedef struct ll_sweep {
    char *file;            /* the sweep file as given */
    char *name;            /* default: the file's name without its extension */
    char *output;          /* the output directory (OUT), joined to the sweep file's directory */
    int64_t shard_size;    /* prompts per shard, >= 1 */
    ll_sweep_model *models;            /* [n_models] >= 1 */
    int n_models;
    ll_sweep_prompt_set *sets;         /* [n_sets] >= 1 */
    int n_sets;
    ll_sweep_lens lens;
    ll_sweep_slurm slurm;
} ll_sweep;

/* Parses a sweep file's text: YAML when file ends in .yaml or .yml, JSON when it ends in .json. Relative
 * paths are joined to base_dir. Nothing is read from disk. Free with ll_sweep_free (also after a failure). */
ll_status ll_sweep_parse(const char *file, const char *base_dir, const char *text, size_t len, ll_sweep *out,
                         ll_err *err);
/* Reads FILE and parses it with base_dir = FILE's directory. */
ll_status ll_sweep_load(const char *file, ll_sweep *out, ll_err *err);
void ll_sweep_free(ll_sweep *s);

/* The subcommands (docs/sweeps.md). exe: the logitlens executable the tasks run (absolute). Reports go to
 * stdout, notes to stderr; the error, if any, is left in err. */
typedef struct ll_sweep_plan_opts {
    const char *file;      /* the sweep file */
    const char *exe;       /* the executable every task runs */
} ll_sweep_plan_opts;
ll_status ll_sweep_plan(const ll_sweep_plan_opts *o, ll_err *err);

/* Tasks that a local run or a submission starts. */
typedef enum ll_sweep_which {
    LL_SWEEP_NOT_DONE = 0, /* every task not yet done (failed ones included) */
    LL_SWEEP_FAILED = 1,   /* failed tasks only (retry) */
} ll_sweep_which;

/* Runs the chosen tasks of OUT as subprocesses, jobs at a time. *n_failed: tasks that ended failed.
 * SIGINT/SIGTERM/SIGUSR1 are passed on to the running tasks, and no new one starts. */
ll_status ll_sweep_run_local(const char *out, int jobs, ll_sweep_which which, int *n_failed, ll_err *err);
/* sbatch OUT/sweep.sbatch for the chosen tasks (all not done, or the failed ones); records the job id. */
ll_status ll_sweep_submit(const char *out, ll_sweep_which which, ll_err *err);
/* Per model: tasks done / running / pending / failed, prompts and tokens done, ETA (json: as JSON). */
ll_status ll_sweep_status(const char *out, int json, ll_err *err);
/* One HDF5 file per model (OUT/merged/MODEL.h5), or only model `only` when non-NULL. *n_incomplete: models
 * not merged because some task is not done. */
ll_status ll_sweep_merge(const char *out, const char *only, int *n_incomplete, ll_err *err);
/* What the batch script records of a task: event "start", or "exit" with the task's exit code. */
ll_status ll_sweep_record(const char *out, int task, const char *event, int code, ll_err *err);

#ifdef __cplusplus
}
#endif
#endif
