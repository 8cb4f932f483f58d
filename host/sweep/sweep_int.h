/* sweep_int.h: what the parts of host/sweep share: the manifest (OUT/sweep.json) as it is loaded back, the
 * task records the runners write (OUT/tasks/ID.json), the run journal's progress, the combined state of a
 * task, and small file helpers. docs/sweeps.md describes every file under OUT. */
#ifndef LL_SWEEP_INT_H
#define LL_SWEEP_INT_H

#include "ll_common.h"
#include "ll_sweep.h"

#include <cJSON.h>
#include <stdint.h>

#define SW_MANIFEST_FORMAT "logitlens.sweep"
#define SW_MANIFEST_VERSION 1
/* The exit code of a run that stopped at a checkpoint after SIGUSR1 (resume with --resume). */
#define SW_EXIT_CHECKPOINTED 75
/* The exit code of a run stopped by SIGINT/SIGTERM (committed batches kept). */
#define SW_EXIT_INTERRUPTED 130
/* sweep run --local / retry: some task failed. */
#define SW_EXIT_TASKS_FAILED 1

typedef struct sw_model {
    char *name, *path, *backend;
    int tp, pp, ranks;         /* ranks = tp * pp */
    int64_t prompts, tokens;   /* over all of the model's tasks */
    char *merged;              /* OUT/merged/NAME.h5 */
    double tokens_per_s;       /* the plan's roofline estimate for one task (0: none) */
} sw_model;

typedef struct sw_shard {
    char *name;                /* "SET-0003" */
    char *set;                 /* the prompt set */
    int index;                 /* within the set */
    char *file;                /* OUT/prompts/NAME.jsonl */
    int64_t first, prompts;    /* prompts [first, first + prompts) of the set */
} sw_shard;

typedef struct sw_task {
    int id;                    /* = the SLURM array task id */
    int model, shard;          /* indices into the manifest's models and shards */
    int64_t prompts, tokens;   /* the shard's prompts and this model's tokens for them */
    char *output;              /* OUT/results/MODEL/SHARD.h5 */
    char *log;                 /* OUT/logs/task-ID.log */
    char **argv;               /* [argc] the exact command (argv[0]: the executable, or srun with ranks) */
    int argc;
} sw_task;

typedef struct sw_manifest {
    char *out;                 /* OUT, absolute */
    char *exe;                 /* the logitlens executable of the tasks */
    char *name;                /* the sweep's name */
    char *sweep_file;
    int resume;                /* the commands carry --resume */
    sw_model *models;
    int n_models;
    sw_shard *shards;
    int n_shards;
    sw_task *tasks;            /* in id order, model-major: model 0's shards, then model 1's, ... */
    int n_tasks;
} sw_manifest;

/* The manifest's JSON (what sw_manifest_load reads back); NULL when out of memory. */
cJSON *sw_manifest_json(const sw_manifest *m);
/* OUT/sweep.json into m (checks the format and that every index is in range). */
ll_status sw_manifest_load(const char *out, sw_manifest *m, ll_err *err);
void sw_manifest_free(sw_manifest *m);

/* What a runner last recorded of a task (OUT/tasks/ID.json). */
typedef struct sw_record {
    char state[16];            /* "queued", "running", "done", "failed", "checkpointed", "interrupted" */
    int exit_code;             /* of the last attempt; -1 while none */
    char message[LL_ERR_MSG_MAX]; /* why it failed: the run's error line */
    double started, ended;     /* unix seconds of the last attempt; 0 unknown */
    double first_started;      /* of the first attempt */
    char host[128];
    long pid;                  /* local runner: the task's process; slurm: the batch shell's */
    char runner[8];            /* "local" or "slurm" */
    char job[64];              /* SLURM job id of the array task */
    int attempts;
} sw_record;

/* 0 and *r when the task has a record, -1 when it has none (or it cannot be read). */
int sw_record_read(const char *out, int id, sw_record *r);
ll_status sw_record_write(const char *out, int id, const sw_record *r, ll_err *err);
/* The run's one-line error from the task's log (the last "logitlens run: " line that is not a note), or a
 * description of the exit code when there is none. */
void sw_failure_message(const char *log, int code, char *buf, size_t cap);
/* Records an attempt's start / end (the runner's side of the records). */
ll_status sw_record_start(const char *out, int id, const char *runner, long pid, const char *job, ll_err *err);
ll_status sw_record_exit(const sw_manifest *m, int id, int code, ll_err *err);

/* The run journal's progress (OUTPUT.journal/progress.json), when present. */
typedef struct sw_progress {
    int have;
    int64_t prompts_done, tokens_done, tokens_total;
} sw_progress;
void sw_journal_read(const char *output, sw_progress *p);
/* 1 when the task's output file exists and no journal is left beside it (the run's "complete"). */
int sw_output_complete(const char *output);

typedef enum sw_state { SW_PENDING = 0, SW_RUNNING, SW_DONE, SW_FAILED, SW_STATE_COUNT } sw_state;
extern const char *const sw_state_names[SW_STATE_COUNT];

/* A task as status, retry and the runners see it: its output, record, journal and the queue combined. */
typedef struct sw_view {
    sw_state state;
    char detail[LL_ERR_MSG_MAX + 64]; /* failed: why; pending: queued / requeued / not started; running: where */
    int has_record;
    sw_record rec;
    sw_progress prog;
    char queue[24];            /* squeue's state of its array task, "" when not listed or no squeue */
} sw_view;

/* The views of every task. With squeue = 1, SLURM's queue is asked about the sweep's jobs (when squeue is
 * on PATH and a job was submitted); *queue_ok says whether it answered. */
ll_status sw_views_get(const sw_manifest *m, int squeue, sw_view **out, int *queue_ok, ll_err *err);

/* OUT/submit.json: the job ids of every submission, newest last. */
ll_status sw_submissions(const char *out, char ***ids, int *n, ll_err *err);

/* Helpers (sweep_util.c). */
char *sw_fmt(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
ll_status sw_mkdirs(const char *dir, ll_err *err);
int sw_exists(const char *path);
/* Writes path through a temporary file in the same directory and a rename (readers never see half of it). */
ll_status sw_write_atomic(const char *path, const char *data, size_t len, ll_err *err);
ll_status sw_write_json(const char *path, const cJSON *j, ll_err *err);
ll_status sw_read_json(const char *path, size_t limit, cJSON **out, ll_err *err);
/* argv as one shell command line, each argument quoted where needed (malloc'ed). */
char *sw_shell_join(char *const *argv, int argc);
/* "2024-05-01T12:00:00Z" */
void sw_iso_time(double unix_s, char *buf, size_t cap);
double sw_time_now(void);
/* "1h 23m", "45 s" */
void sw_duration(double s, char *buf, size_t cap);
/* The host name (short). */
void sw_host(char *buf, size_t cap);
/* cJSON helpers that tolerate a missing or mistyped item. */
const char *sw_jstr(const cJSON *o, const char *key);
double sw_jnum(const cJSON *o, const char *key, double dflt);

#endif
