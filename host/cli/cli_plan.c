/* cli_plan.c: `logitlens plan`: which tensor x pipeline split of a model fits a cluster's GPUs and which
 * is fastest, from config.json alone (host/cli/plan.h has the model, docs/scale-out.md the reasoning). */
#include "args.h"
#include "cli.h"
#include "ll_shard.h"
#include "plan.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GIB (1024.0 * 1024.0 * 1024.0)
#define PLAN_MAX_WORLD 4096

/* The hardware defaults (PLAN_*) are in plan.h. */

static const char plan_usage[] =
    "usage: logitlens plan --model DIR|config.json [--gpus N] [--nodes N] [--gpu-mem GiB] [--batch-tokens N]\n"
    "                      [--dtype bf16|f16|f32] [--points embed,mid,post] [--layers A:B:S] [--topk K]\n"
    "                      [--tp T] [--pp P] [--tflops T] [--bandwidth GB/s] [--interconnect GB/s]\n"
    "                      [--network GB/s] [--json]\n"
    "\n"
    "Lists every split of the model over --gpus x --nodes ranks into --tp tensor-parallel ranks (within a\n"
    "node) by --pp pipeline stages, with the memory of its neediest rank (weights, activations and lens\n"
    "buffers, CUDA scratch) against --gpu-mem and a roofline estimate of its time per batch; chooses the\n"
    "fastest that fits (the smaller --tp on ties) and prints its srun line. With --tp and/or --pp, checks that\n"
    "split only. Needs config.json only (configs/models/ has some). Exit 0 when a split fits, 5 when none\n"
    "does, 2 when the options or the split are not valid. docs/scale-out.md explains the estimate.\n"
    "\n"
    "defaults: --gpus 8 --nodes 1 --gpu-mem 80 --batch-tokens 4096 --points embed,post --topk 10, --dtype\n"
    "the config's torch_dtype (else bf16), and per GPU --tflops 790 (60 for f32) --bandwidth 4300\n"
    "--interconnect 400 (all-reduce bus bandwidth within a node) --network 50 (between nodes).\n";

typedef struct plan_opts {
    const char *model, *points, *layers, *dtype;
    int64_t gpus, nodes, batch_tokens, topk, tp, pp; /* tp, pp: 0 = choose */
    double gpu_mem_gib, tflops, bandwidth, interconnect, network; /* tflops 0 = the dtype's default */
    int json;
} plan_opts;

/* A finite number > 0 ("80", "141.5", "1e3"). */
static int parse_pos(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v) || v <= 0) return -1;
    *out = v;
    return 0;
}

/* Parses argv into o; returns 0, 1 for --help, or an exit code (after printing one line). */
static int parse_opts(int argc, char **argv, plan_opts *o) {
    *o = (plan_opts){.gpus = 8, .nodes = 1, .batch_tokens = 4096, .topk = 10, .gpu_mem_gib = 80,
                     .bandwidth = PLAN_BANDWIDTH_GBS, .interconnect = PLAN_INTERCONNECT_GBS,
                     .network = PLAN_NETWORK_GBS};
    const struct { const char *name; int64_t *v; int64_t lo, hi; } ints[] = {
        {"--gpus", &o->gpus, 1, 1024}, {"--nodes", &o->nodes, 1, PLAN_MAX_WORLD},
        {"--batch-tokens", &o->batch_tokens, 1, 1LL << 32}, {"--topk", &o->topk, 1, 1 << 20},
        {"--tp", &o->tp, 1, 1024}, {"--pp", &o->pp, 1, 256}};
    const struct { const char *name; double *v; } reals[] = {
        {"--gpu-mem", &o->gpu_mem_gib}, {"--tflops", &o->tflops}, {"--bandwidth", &o->bandwidth},
        {"--interconnect", &o->interconnect}, {"--network", &o->network}};
    const struct { const char *name; const char **v; } strs[] = {
        {"--model", &o->model}, {"--points", &o->points}, {"--layers", &o->layers}, {"--dtype", &o->dtype}};
    for (int i = 1; i < argc; i++) {
        const char *val = NULL, *name = argv[i];
        int r = 0, done = 0;
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) return 1;
        if (ll_arg_flag(argv, i, "--json")) {
            o->json = 1;
            continue;
        }
        for (size_t k = 0; !done && k < sizeof ints / sizeof ints[0]; k++)
            if ((r = ll_arg_value(argc, argv, &i, ints[k].name, &val)) != 0) {
                done = 1;
                if (r > 0 && ll_parse_int(val, ints[k].lo, ints[k].hi, ints[k].v)) {
                    fprintf(stderr, "logitlens plan: %s: expected an integer in [%lld, %lld], got '%s'\n",
                            ints[k].name, (long long)ints[k].lo, (long long)ints[k].hi, val);
                    return 2;
                }
            }
        for (size_t k = 0; !done && k < sizeof reals / sizeof reals[0]; k++)
            if ((r = ll_arg_value(argc, argv, &i, reals[k].name, &val)) != 0) {
                done = 1;
                if (r > 0 && parse_pos(val, reals[k].v)) {
                    fprintf(stderr, "logitlens plan: %s: expected a positive number, got '%s'\n", reals[k].name, val);
                    return 2;
                }
            }
        for (size_t k = 0; !done && k < sizeof strs / sizeof strs[0]; k++)
            if ((r = ll_arg_value(argc, argv, &i, strs[k].name, &val)) != 0) {
                done = 1;
                if (r > 0) *strs[k].v = val;
            }
        if (!done) {
            if (argv[i][0] == '-' || o->model) {
                fprintf(stderr, "logitlens plan: unexpected argument '%s' (see logitlens plan --help)\n", argv[i]);
                return 2;
            }
            o->model = argv[i];
        } else if (r < 0) {
            fprintf(stderr, "logitlens plan: option %s needs a value\n", name);
            return 2;
        }
    }
    if (!o->model) {
        fprintf(stderr, "logitlens plan: a model is required (--model DIR or --model config.json)\n");
        return 2;
    }
    if (o->dtype && strcmp(o->dtype, "bf16") && strcmp(o->dtype, "f16") && strcmp(o->dtype, "f32")) {
        fprintf(stderr, "logitlens plan: --dtype: expected bf16, f16 or f32, got '%s'\n", o->dtype);
        return 2;
    }
    if (o->gpus * o->nodes > PLAN_MAX_WORLD) {
        fprintf(stderr, "logitlens plan: --gpus %lld x --nodes %lld is more than %d ranks\n", (long long)o->gpus,
                (long long)o->nodes, PLAN_MAX_WORLD);
        return 2;
    }
    return 0;
}

/* The dtype of --dtype, else config.json's torch_dtype (or transformers 5's dtype), else bf16. */
static ll_dtype plan_dtype(const char *arg, const char *text) {
    if (arg) return !strcmp(arg, "f32") ? LL_DTYPE_F32 : !strcmp(arg, "f16") ? LL_DTYPE_F16 : LL_DTYPE_BF16;
    ll_dtype t = LL_DTYPE_BF16;
    cJSON *root = cJSON_Parse(text);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
    if (!cJSON_IsString(v)) v = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "float32")) t = LL_DTYPE_F32;
        else if (!strcmp(v->valuestring, "float16")) t = LL_DTYPE_F16;
    }
    cJSON_Delete(root);
    return t;
}

/* Reads and parses config.json (model: a directory holding it, or the file). */
static ll_status load_config(const char *model, ll_config *c, char **text, ll_err *err) {
    struct stat st;
    char path[4096];
    if (stat(model, &st)) return ll_fail(err, LL_ERR_INPUT, "%s: no such file or directory", model);
    snprintf(path, sizeof path, S_ISDIR(st.st_mode) ? "%s/config.json" : "%s", model);
    size_t len;
    ll_status rc = ll_read_small_file(path, 16u << 20, text, &len, err);
    if (!rc) rc = ll_config_parse(path, *text, len, c, err);
    return rc;
}

/* Evaluates the splits to consider (the given one, or every tp dividing the ranks) into *out. */
static ll_status eval_splits(const plan_opts *o, const ll_plan_job *job, const ll_plan_hw *hw, ll_plan_split **out,
                             int *n, ll_err *err) {
    const int world = (int)(o->gpus * o->nodes);
    *n = 0;
    *out = calloc((size_t)world, sizeof **out);
    if (!*out) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    for (int tp = 1; tp <= world; tp++) {
        if (world % tp || (o->tp && tp != o->tp) || (o->pp && world / tp != o->pp)) continue;
        ll_status rc = ll_plan_split_eval(job, hw, tp, world / tp, &(*out)[(*n)++], err);
        if (rc) return rc;
    }
    return LL_OK;
}

/* The fastest split that fits (the smaller tp on ties: splits come in increasing tp), or -1. */
static int choose(const ll_plan_split *s, int n) {
    int best = -1;
    for (int i = 0; i < n; i++)
        if (s[i].fits && (best < 0 || s[i].tokens_per_s > s[best].tokens_per_s * (1 + 1e-9))) best = i;
    return best;
}

/* Evaluates the splits, prints the report and sets *code (0, or the exit code of "nothing fits" / "no valid
 * split", whose one-line reason goes to stderr after the report). */
static ll_status plan_report(const plan_opts *o, const ll_config *cfg, const ll_tensor_spec *specs, int n_specs,
                             const ll_points *pts, const char *config_text, int *code, ll_err *err) {
    const int world = (int)(o->gpus * o->nodes);
    const ll_dtype dt = plan_dtype(o->dtype, config_text);
    const double tflops = o->tflops > 0 ? o->tflops : dt == LL_DTYPE_F32 ? PLAN_TFLOPS_32 : PLAN_TFLOPS_16;
    const ll_plan_hw hw = {.gpus = (int)o->gpus, .nodes = (int)o->nodes, .gpu_mem = o->gpu_mem_gib * GIB,
                           .flops = tflops * 1e12, .bandwidth = o->bandwidth * 1e9,
                           .interconnect = o->interconnect * 1e9, .network = o->network * 1e9};
    const ll_plan_job job = {.cfg = cfg, .specs = specs, .n_specs = n_specs, .pts = pts, .topk = (int)o->topk,
                             .batch_tokens = o->batch_tokens, .dtype = dt};
    ll_plan_split *splits = NULL;
    int n_splits = 0;
    char verdict[LL_ERR_MSG_MAX + 256] = "";
    ll_status rc = eval_splits(o, &job, &hw, &splits, &n_splits, err);
    if (!rc) {
        double n_params = 0;
        for (int i = 0; i < n_specs; i++)
            n_params += (double)specs[i].shape[0] * (specs[i].ndim == 2 ? (double)specs[i].shape[1] : 1.0);
        const int chosen = choose(splits, n_splits);
        int least = -1; /* the valid split whose neediest rank needs the least */
        for (int i = 0; i < n_splits; i++)
            if (splits[i].valid &&
                (least < 0 || splits[i].ranks[splits[i].worst].total < splits[least].ranks[splits[least].worst].total))
                least = i;
        if (chosen < 0 && least < 0) {
            snprintf(verdict, sizeof verdict, "no split of %d ranks is valid for this %s model (%s); choose other "
                     "--gpus or --nodes", world, cfg->arch, n_splits ? splits[0].reason : "none");
            *code = ll_status_exit_code(LL_ERR_USAGE);
        } else if (chosen < 0) {
            const ll_plan_split *s = &splits[least];
            snprintf(verdict, sizeof verdict, "%s does not fit %d x %d GPUs of %.4g GiB: the least any split needs "
                     "is %.1f GiB on one GPU (--tp %d --pp %d, rank %d); use more or larger GPUs, fewer "
                     "--batch-tokens or fewer --points", o->model, hw.nodes, hw.gpus, o->gpu_mem_gib,
                     s->ranks[s->worst].total / GIB, s->tp, s->pp, s->worst);
            *code = ll_status_exit_code(LL_ERR_NOMEM);
        }
        const ll_plan_report rep = {.model = o->model, .job = &job, .hw = &hw, .points_arg = o->points,
                                    .layers_arg = o->layers, .n_params = n_params, .splits = splits,
                                    .n_splits = n_splits, .chosen = chosen, .verdict = verdict[0] ? verdict : NULL};
        if (o->json) {
            char *json = ll_plan_json(&rep);
            if (json) puts(json);
            else rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
            free(json);
        } else {
            ll_plan_print_table(stdout, &rep);
        }
        fflush(stdout);
        if (!rc && verdict[0]) fprintf(stderr, "logitlens plan: %s\n", verdict);
    }
    for (int i = 0; i < n_splits; i++) ll_plan_split_free(&splits[i]);
    free(splits);
    return rc;
}

/* The split --tp and/or --pp give (the other from the rank count): o->tp and o->pp both set, or an error. */
static ll_status given_split(plan_opts *o, const ll_config *cfg, ll_err *err) {
    const int64_t world = o->gpus * o->nodes;
    int64_t tp = o->tp, pp = o->pp;
    ll_status rc = ll_shard_check(cfg, tp ? (int)tp : 1, pp ? (int)pp : 1, err); /* the model first */
    if (rc) return rc;
    if (!tp) tp = world % pp ? 0 : world / pp;
    if (!pp) pp = world % tp ? 0 : world / tp;
    if (!tp || !pp || tp * pp != world)
        return ll_fail(err, LL_ERR_USAGE, "--tp x --pp must equal the %lld ranks of --gpus %lld x --nodes %lld (one "
                       "rank per GPU)", (long long)world, (long long)o->gpus, (long long)o->nodes);
    if ((rc = ll_shard_check(cfg, (int)tp, (int)pp, err))) return rc;
    if (tp > o->gpus)
        return ll_fail(err, LL_ERR_USAGE, "--tp %lld is more than the %lld GPUs of a node: a tensor-parallel group "
                       "stays within a node", (long long)tp, (long long)o->gpus);
    o->tp = tp;
    o->pp = pp;
    return LL_OK;
}

int ll_cmd_plan(int argc, char **argv) {
    plan_opts o;
    int code = parse_opts(argc, argv, &o);
    if (code == 1) {
        fputs(plan_usage, stdout);
        return 0;
    }
    if (code) return code;
    ll_err err = {{0}};
    ll_config cfg;
    ll_points pts = {0};
    ll_tensor_spec *specs = NULL;
    int n_specs = 0;
    char *text = NULL;
    ll_status rc = load_config(o.model, &cfg, &text, &err);
    if (!rc) rc = ll_points_parse(o.points, o.layers, cfg.n_layers, &pts, &err);
    if (!rc) rc = ll_config_tensor_specs(&cfg, &specs, &n_specs, &err);
    if (!rc && (o.tp || o.pp)) rc = given_split(&o, &cfg, &err);
    if (!rc) rc = plan_report(&o, &cfg, specs, n_specs, &pts, text, &code, &err);
    if (rc) {
        fprintf(stderr, "logitlens plan: %s\n", err.msg);
        code = ll_status_exit_code(rc);
    }
    free(specs);
    free(text);
    ll_points_free(&pts);
    return code;
}
