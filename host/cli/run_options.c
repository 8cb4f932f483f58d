/* run_options.c: the command line of `logitlens run` into an ll_run_opts. */
#include "args.h"
#include "run.h"

#include <stdio.h>
#include <string.h>

const char ll_run_usage[] =
    "usage: logitlens run --model MODEL (--prompt TEXT ... | --tokens IDS ... | --prompts FILE) --out FILE.h5\n"
    "                     [--topk K] [--points embed,mid,post] [--layers A:B:S] [--save-probs last|all|POS,...]\n"
    "                     [--probs-vocab IDS] [--save-hidden] [--no-special] [--backend cpu|cuda|auto]\n"
    "                     [--device N] [--tf32] [--threads N] [--batch-tokens N] [--quiet]\n"
    "                     [--tp T] [--pp P] [--rendezvous DIR] [--comm-timeout SECONDS] [--resume]\n"
    "\n"
    "Runs the model (a Hugging Face directory, a .gguf file, or a directory holding one .gguf) over the\n"
    "prompts, applies the final norm + unembedding + softmax to the residual stream at every selected point,\n"
    "and writes top-k, entropy, KL to the final layer and target statistics to FILE.h5 (format:\n"
    "docs/hdf5-format.md). Under srun or mpirun, one process per GPU or CPU rank splits the model --tp ways\n"
    "(tensor parallel) by --pp stages (pipeline); rank 0 writes FILE.h5 (docs/scale-out.md). See docs/cli.md\n"
    "for every option. Committed batches are kept in FILE.h5.journal until the run ends: a run stopped by a\n"
    "signal, a kill or a crash continues with --resume.\n";

void ll_run_opts_init(ll_run_opts *o) {
    memset(o, 0, sizeof *o);
    o->topk = 10;
    o->add_special = 1;
    o->backend = "auto";
    o->batch_tokens = 4096;
    o->device = -1; /* the local rank */
    o->tp = o->pp = 1;
    o->comm_timeout = 600;
}

void ll_run_opts_free(ll_run_opts *o) { ll_prompts_free(&o->prompts); }

/* An integer option's value in [lo, hi]. */
static ll_status int_opt(const char *name, const char *val, int64_t lo, int64_t hi, const char *expected,
                         int64_t *out, ll_err *err) {
    if (ll_parse_int(val, lo, hi, out)) return ll_fail(err, LL_ERR_USAGE, "%s: expected %s", name, expected);
    return LL_OK;
}

ll_status ll_run_opts_parse(int argc, char **argv, ll_run_opts *o, int *help, ll_err *err) {
    *help = 0;
    ll_status rc = LL_OK;
    int64_t v;
    for (int i = 1; i < argc && !rc; i++) {
        const char *val = NULL;
        int r;
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) {
            *help = 1;
            return LL_OK;
        }
        const char *name = argv[i];
#define OPT(n) ((r = ll_arg_value(argc, argv, &i, n, &val)) != 0)
        if (OPT("--model")) o->model = val;
        else if (OPT("--out")) o->out = val;
        else if (OPT("--prompt")) {
            if (r > 0) rc = ll_prompts_add_text(&o->prompts, val, "--prompt", err);
        } else if (OPT("--tokens")) {
            if (r > 0) rc = ll_prompts_add_token_list(&o->prompts, val, "--tokens", err);
        } else if (OPT("--prompts")) o->prompts_file = val;
        else if (OPT("--topk")) {
            if (r > 0 && !(rc = int_opt("--topk", val, 1, 1 << 20, "a positive integer", &v, err))) o->topk = (int)v;
        } else if (OPT("--points")) o->points = val;
        else if (OPT("--layers")) o->layers = val;
        else if (OPT("--save-probs")) o->save_probs = val;
        else if (OPT("--probs-vocab")) o->probs_vocab = val;
        else if (OPT("--backend")) o->backend = val;
        else if (OPT("--device")) {
            if (r > 0 && !(rc = int_opt("--device", val, 0, 1024, "a device index", &v, err))) o->device = (int)v;
        } else if (OPT("--threads")) {
            if (r > 0 && !(rc = int_opt("--threads", val, 0, 4096, "a thread count (0 = all cores)", &v, err)))
                o->threads = (int)v;
        } else if (OPT("--batch-tokens")) {
            if (r > 0 && !(rc = int_opt("--batch-tokens", val, 1, 1LL << 32, "a positive integer", &v, err)))
                o->batch_tokens = v;
        } else if (OPT("--tp")) {
            if (r > 0 && !(rc = int_opt("--tp", val, 1, 1024, "a rank count in [1, 1024]", &v, err))) o->tp = (int)v;
        } else if (OPT("--pp")) {
            if (r > 0 && !(rc = int_opt("--pp", val, 1, 256, "a stage count in [1, 256]", &v, err))) o->pp = (int)v;
        } else if (OPT("--rendezvous")) o->rendezvous = val;
        else if (OPT("--comm-timeout")) {
            if (r > 0 && !(rc = int_opt("--comm-timeout", val, 1, 86400, "seconds in [1, 86400]", &v, err)))
                o->comm_timeout = (double)v;
        } else if (ll_arg_flag(argv, i, "--save-hidden")) o->save_hidden = 1;
        else if (ll_arg_flag(argv, i, "--tf32")) o->tf32 = 1;
        else if (ll_arg_flag(argv, i, "--no-special")) o->add_special = 0;
        else if (ll_arg_flag(argv, i, "--quiet")) o->quiet = 1;
        else if (ll_arg_flag(argv, i, "--resume")) o->resume = 1;
        else return ll_fail(err, LL_ERR_USAGE, "unknown option '%s' (see logitlens run --help)", argv[i]);
#undef OPT
        if (r < 0) return ll_fail(err, LL_ERR_USAGE, "option %s needs a value", name);
    }
    if (rc) return rc;
    if (!o->model || !o->out)
        return ll_fail(err, LL_ERR_USAGE, "--model MODEL and --out FILE.h5 are required (see logitlens run --help)");
    if (!o->prompts_file && o->prompts.n == 0)
        return ll_fail(err, LL_ERR_USAGE, "no prompts: give --prompt TEXT, --tokens IDS or --prompts FILE");
    return LL_OK;
}
