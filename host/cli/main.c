/* main.c: the logitlens executable: dispatches to the subcommands in cli_*.c. */
#include "cli.h"
#include "ll_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *ll_command_line = "";

static void usage(FILE *f) {
    fprintf(f,
            "logitlens %s: the logit lens on every layer of a Hugging Face checkpoint\n"
            "\n"
            "usage: logitlens <command> [options]   (logitlens <command> --help for each)\n"
            "\n"
            "commands:\n"
            "  run       run the lens over prompts and write an HDF5 file\n"
            "  show      print the per-layer table and the layer x position grid of a result file\n"
            "  inspect   describe a model directory: architecture, shapes, parameters, memory a run needs\n"
            "  synth     write a small random model in the Hugging Face layout\n"
            "  tokenize  print the token ids and pieces of a text\n"
            "  plan      choose a tensor x pipeline split that fits a cluster's GPUs, from config.json alone\n"
            "  sweep     many models x prompt shards as tasks: plan, submit to SLURM or run locally, status, merge\n"
            "  plot      pictures of a result file or a sweep (runs logitlens-plot, from the Python package)\n",
            LL_VERSION);
}

static char *join_args(int argc, char **argv) {
    size_t n = 1;
    for (int i = 0; i < argc; i++) n += strlen(argv[i]) + 3;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strcat(s, " ");
        int quote = strpbrk(argv[i], " \t\"'") != NULL || argv[i][0] == 0;
        if (quote) strcat(s, "'");
        strcat(s, argv[i]);
        if (quote) strcat(s, "'");
    }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("logitlens %s\n", LL_VERSION);
        return 0;
    }
    /* The CPU backend alternates OpenMP regions with OpenBLAS's own thread pool; libgomp's default
     * spin-waiting then steals the cores OpenBLAS needs (measured: ~12% of a GPT-2-small run). libgomp reads
     * OMP_WAIT_POLICY only when it loads, before main, so `run` sets it and re-executes itself once. A
     * value the user set is respected. */
    if (!strcmp(cmd, "run") && !getenv("OMP_WAIT_POLICY") && !getenv("LOGITLENS_NO_REEXEC")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        setenv("LOGITLENS_NO_REEXEC", "1", 1);
        execv("/proc/self/exe", argv);
        /* exec failed (no /proc): carry on with the default policy */
    }
    char *cl = join_args(argc, argv);
    ll_command_line = cl ? cl : "";
    int rc;
    if (!strcmp(cmd, "run")) rc = ll_cmd_run(argc - 1, argv + 1);
    else if (!strcmp(cmd, "show")) rc = ll_cmd_show(argc - 1, argv + 1);
    else if (!strcmp(cmd, "inspect")) rc = ll_cmd_inspect(argc - 1, argv + 1);
    else if (!strcmp(cmd, "synth")) rc = ll_cmd_synth(argc - 1, argv + 1);
    else if (!strcmp(cmd, "tokenize")) rc = ll_cmd_tokenize(argc - 1, argv + 1);
    else if (!strcmp(cmd, "plan")) rc = ll_cmd_plan(argc - 1, argv + 1);
    else if (!strcmp(cmd, "sweep")) rc = ll_cmd_sweep(argc - 1, argv + 1);
    else if (!strcmp(cmd, "plot")) rc = ll_cmd_plot(argc - 1, argv + 1);
    else {
        fprintf(stderr, "logitlens: unknown command '%s' (expected run, show, inspect, synth, tokenize, plan, sweep or plot)\n", cmd);
        rc = 2;
    }
    free(cl);
    return rc;
}
