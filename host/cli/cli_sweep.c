/* cli_sweep.c: `logitlens sweep`: many models x prompt shards as `logitlens run` tasks (docs/sweeps.md).
 * This file parses the subcommands' arguments; host/sweep/ does the work. */
#include "args.h"
#include "cli.h"
#include "ll_sweep.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char sweep_usage[] =
    "usage: logitlens sweep plan FILE                  check a sweep file (YAML or JSON) and every model and prompt\n"
    "                                                  in it; write OUT/sweep.json, OUT/sweep.sbatch, the shards\n"
    "       logitlens sweep submit OUT                 sbatch the job array of the tasks not done yet\n"
    "       logitlens sweep run --local OUT [-j N]     run the tasks not done yet here, N at a time (default 1)\n"
    "       logitlens sweep status OUT [--json]        per model: tasks done / running / pending / failed, ETA\n"
    "       logitlens sweep merge OUT [--model NAME]   one result file per model: OUT/merged/MODEL.h5\n"
    "       logitlens sweep retry OUT [--local [-j N]] run the failed tasks again (resubmitted when the sweep was\n"
    "                                                  submitted, else run here)\n"
    "       logitlens sweep record OUT TASK start|exit CODE   (used by OUT/sweep.sbatch)\n"
    "\n"
    "A task is one model over one shard of prompts: a plain `logitlens run` into OUT/results/MODEL/SHARD.h5. Exit\n"
    "codes: 0 success; 1 some task failed (run, retry); 2 bad command line; 3 bad sweep file, model or prompts,\n"
    "or merge found tasks not done; 4 cannot read or write a file; 5 a task does not fit slurm.mem; 6 sbatch\n"
    "unavailable or failed; 130 interrupted. docs/sweeps.md walks through a sweep.\n";

static int usage_error(const char *fmt, const char *arg) {
    fputs("logitlens sweep: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs(" (see logitlens sweep --help)\n", stderr);
    return ll_status_exit_code(LL_ERR_USAGE);
}

static int finish(const char *sub, ll_status rc, const ll_err *err) {
    if (rc) fprintf(stderr, "logitlens sweep %s: %s\n", sub, err->msg);
    return ll_status_exit_code(rc);
}

/* Parses "OUT [--local] [-j N] [--json] [--model NAME]" as the subcommand allows. */
typedef struct sweep_args {
    const char *out, *model;
    int local, json;
    int64_t jobs;
} sweep_args;

static int parse_common(int argc, char **argv, int allow_local, int allow_json, int allow_model, sweep_args *a) {
    *a = (sweep_args){.jobs = 1};
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int r;
        if (allow_local && ll_arg_flag(argv, i, "--local")) a->local = 1;
        else if (allow_json && ll_arg_flag(argv, i, "--json")) a->json = 1;
        else if (allow_local && ((r = ll_arg_value(argc, argv, &i, "-j", &val)) != 0 ||
                                 (r = ll_arg_value(argc, argv, &i, "--jobs", &val)) != 0)) {
            if (r < 0 || ll_parse_int(val, 1, 4096, &a->jobs))
                return usage_error("-j: expected a task count in [1, 4096], got '%s'", r < 0 ? "" : val);
        } else if (allow_model && (r = ll_arg_value(argc, argv, &i, "--model", &val)) != 0) {
            if (r < 0) return usage_error("%s needs a value", "--model");
            a->model = val;
        } else if (argv[i][0] == '-' || a->out) {
            return usage_error("unexpected argument '%s'", argv[i]);
        } else {
            a->out = argv[i];
        }
    }
    if (!a->out) return usage_error("%s", "the sweep's output directory OUT is required");
    return 0;
}

static int cmd_plan(int argc, char **argv) {
    if (argc != 2 || argv[1][0] == '-') return usage_error("%s", "plan takes one sweep file: logitlens sweep plan FILE");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "logitlens sweep plan: cannot find this executable's path (/proc/self/exe)\n");
        return ll_status_exit_code(LL_ERR_IO);
    }
    exe[n] = 0;
    ll_sweep_plan_opts o = {.file = argv[1], .exe = exe};
    ll_err err = {{0}};
    return finish("plan", ll_sweep_plan(&o, &err), &err);
}

static int cmd_run(int argc, char **argv) {
    sweep_args a;
    int code = parse_common(argc, argv, 1, 0, 0, &a);
    if (code) return code;
    if (!a.local)
        return usage_error("%s", "run needs --local (a SLURM run is `logitlens sweep submit OUT`)");
    ll_err err = {{0}};
    int failed = 0;
    ll_status rc = ll_sweep_run_local(a.out, (int)a.jobs, LL_SWEEP_NOT_DONE, &failed, &err);
    if (rc) return finish("run", rc, &err);
    return failed ? 1 : 0;
}

static int cmd_retry(int argc, char **argv) {
    sweep_args a;
    int code = parse_common(argc, argv, 1, 0, 0, &a);
    if (code) return code;
    ll_err err = {{0}};
    char *sub = malloc(strlen(a.out) + 16);
    if (!sub) return finish("retry", ll_fail(&err, LL_ERR_NOMEM, "out of memory"), &err);
    sprintf(sub, "%s/submit.json", a.out);
    int submitted = access(sub, F_OK) == 0;
    free(sub);
    if (submitted && !a.local) return finish("retry", ll_sweep_submit(a.out, LL_SWEEP_FAILED, &err), &err);
    int failed = 0;
    ll_status rc = ll_sweep_run_local(a.out, (int)a.jobs, LL_SWEEP_FAILED, &failed, &err);
    if (rc) return finish("retry", rc, &err);
    return failed ? 1 : 0;
}

static int cmd_record(int argc, char **argv) {
    int64_t task, code = 0;
    if (argc < 4 || ll_parse_int(argv[2], 0, INT32_MAX, &task) ||
        (!strcmp(argv[3], "start") && argc != 4) ||
        (!strcmp(argv[3], "exit") && (argc != 5 || ll_parse_int(argv[4], 0, 255, &code))))
        return usage_error("%s", "record takes OUT TASK start, or OUT TASK exit CODE");
    ll_err err = {{0}};
    return finish("record", ll_sweep_record(argv[1], (int)task, argv[3], (int)code, &err), &err);
}

int ll_cmd_sweep(int argc, char **argv) {
    if (argc < 2 || ll_arg_flag(argv, 1, "--help") || ll_arg_flag(argv, 1, "-h")) {
        fputs(sweep_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? ll_status_exit_code(LL_ERR_USAGE) : 0;
    }
    for (int i = 2; i < argc; i++)
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) {
            fputs(sweep_usage, stdout);
            return 0;
        }
    const char *sub = argv[1];
    sweep_args a;
    ll_err err = {{0}};
    int code;
    if (!strcmp(sub, "plan")) return cmd_plan(argc - 1, argv + 1);
    if (!strcmp(sub, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(sub, "retry")) return cmd_retry(argc - 1, argv + 1);
    if (!strcmp(sub, "record")) return cmd_record(argc - 1, argv + 1);
    if (!strcmp(sub, "submit")) {
        if ((code = parse_common(argc - 1, argv + 1, 0, 0, 0, &a))) return code;
        return finish("submit", ll_sweep_submit(a.out, LL_SWEEP_NOT_DONE, &err), &err);
    }
    if (!strcmp(sub, "status")) {
        if ((code = parse_common(argc - 1, argv + 1, 0, 1, 0, &a))) return code;
        return finish("status", ll_sweep_status(a.out, a.json, &err), &err);
    }
    if (!strcmp(sub, "merge")) {
        if ((code = parse_common(argc - 1, argv + 1, 0, 0, 1, &a))) return code;
        int incomplete = 0;
        ll_status rc = ll_sweep_merge(a.out, a.model, &incomplete, &err);
        if (rc) return finish("merge", rc, &err);
        return incomplete ? ll_status_exit_code(LL_ERR_INPUT) : 0;
    }
    return usage_error("unknown subcommand '%s' (expected plan, submit, run, status, merge, retry or record)", sub);
}
