/* cli_synth.c: `logitlens synth`: a small random model in the real Hugging Face layout (config.json,
 * model.safetensors or shards + index, tokenizer.json), for tests, the demo and benchmarks.
 *
 * config.json is written first and read back through the same parser `run` uses, so the tensors
 * written are exactly the ones the architecture file requires, with the shapes config.json implies. */
#include "args.h"
#include "cli.h"
#include "ll_model.h"
#include "ll_tokenizer.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char synth_usage[] =
    "usage: logitlens synth --arch gpt2|gpt_neox|llama|mistral|qwen2 --out DIR\n"
    "         [--layers N] [--d-model D] [--heads H] [--kv-heads H] [--head-dim HD] [--ffn F] [--vocab V]\n"
    "         [--ctx N] [--dtype f32|f16|bf16] [--tied 0|1] [--parallel-residual 0|1] [--rotary-pct P]\n"
    "         [--rope-theta T] [--rope-scaling none|llama3] [--rope-style v4|v5] [--qkv-bias 0|1]\n"
    "         [--gpt2-prefix 0|1] [--shards N] [--seed S] [--tokenizer gpt2|llama3|sentencepiece|none]\n"
    "         [--sliding-window W]  (mistral)\n"
    "\n"
    "Writes a small random model in the Hugging Face layout (see docs/cli.md).\n";

/* PCG32: small, fast, reproducible across platforms. */
typedef struct rng {
    uint64_t s;
} rng;
static uint32_t rng_u32(rng *r) {
    uint64_t old = r->s;
    r->s = old * 6364136223846793005ULL + 1442695040888963407ULL;
    uint32_t x = (uint32_t)(((old >> 18) ^ old) >> 27), rot = (uint32_t)(old >> 59);
    return (x >> rot) | (x << ((32 - rot) & 31));
}
/* uniform in [-1, 1) */
static float rng_sym(rng *r) { return (float)((double)rng_u32(r) / 2147483648.0 - 1.0); }

typedef struct synth_opts {
    const char *arch, *out, *dtype, *rope_scaling, *rope_style, *tokenizer;
    int64_t layers, d, heads, kv_heads, head_dim, ffn, vocab, ctx, tied, parallel, qkv_bias, prefix, shards, seed;
    int64_t window; /* mistral sliding_window; 0 = null */
    double rotary_pct, theta;
} synth_opts;

static cJSON *build_config(const synth_opts *o, ll_dtype dt) {
    cJSON *c = cJSON_CreateObject();
    const char *a = o->arch;
    const char *cls = !strcmp(a, "gpt2")       ? "GPT2LMHeadModel"
                      : !strcmp(a, "gpt_neox") ? "GPTNeoXForCausalLM"
                      : !strcmp(a, "llama")    ? "LlamaForCausalLM"
                      : !strcmp(a, "mistral")  ? "MistralForCausalLM"
                                               : "Qwen2ForCausalLM";
    cJSON *archs = cJSON_AddArrayToObject(c, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(cls));
    cJSON_AddStringToObject(c, "model_type", a);
    cJSON_AddStringToObject(c, "torch_dtype", dt == LL_DTYPE_F32 ? "float32" : dt == LL_DTYPE_F16 ? "float16" : "bfloat16");
    cJSON_AddNumberToObject(c, "vocab_size", (double)o->vocab);
    if (!strcmp(a, "gpt2")) {
        cJSON_AddNumberToObject(c, "n_embd", (double)o->d);
        cJSON_AddNumberToObject(c, "n_head", (double)o->heads);
        cJSON_AddNumberToObject(c, "n_layer", (double)o->layers);
        cJSON_AddNumberToObject(c, "n_positions", (double)o->ctx);
        cJSON_AddNumberToObject(c, "n_ctx", (double)o->ctx);
        if (o->ffn) cJSON_AddNumberToObject(c, "n_inner", (double)o->ffn);
        else cJSON_AddNullToObject(c, "n_inner");
        cJSON_AddNumberToObject(c, "layer_norm_epsilon", 1e-5);
        cJSON_AddStringToObject(c, "activation_function", "gelu_new");
        cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tied != 0);
        return c;
    }
    cJSON_AddNumberToObject(c, "hidden_size", (double)o->d);
    cJSON_AddNumberToObject(c, "num_attention_heads", (double)o->heads);
    cJSON_AddNumberToObject(c, "num_hidden_layers", (double)o->layers);
    cJSON_AddNumberToObject(c, "max_position_embeddings", (double)o->ctx);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tied != 0);
    int v5 = !strcmp(o->rope_style, "v5");
    int llama3 = !strcmp(o->rope_scaling, "llama3");
    cJSON *scaling = NULL;
    if (llama3) {
        scaling = cJSON_CreateObject();
        cJSON_AddStringToObject(scaling, "rope_type", "llama3");
        cJSON_AddNumberToObject(scaling, "factor", 8.0);
        cJSON_AddNumberToObject(scaling, "low_freq_factor", 1.0);
        cJSON_AddNumberToObject(scaling, "high_freq_factor", 4.0);
        /* small so that short test prompts reach every regime of the scaling */
        cJSON_AddNumberToObject(scaling, "original_max_position_embeddings", (double)(o->ctx < 64 ? o->ctx : 64));
    }
    if (!strcmp(a, "gpt_neox")) {
        int64_t ffn = o->ffn ? o->ffn : 4 * o->d;
        cJSON_AddNumberToObject(c, "intermediate_size", (double)ffn);
        cJSON_AddNumberToObject(c, "layer_norm_eps", 1e-5);
        cJSON_AddStringToObject(c, "hidden_act", "gelu");
        cJSON_AddBoolToObject(c, "use_parallel_residual", o->parallel != 0);
        if (v5) {
            cJSON *rp = scaling ? scaling : cJSON_CreateObject();
            if (!scaling) cJSON_AddStringToObject(rp, "rope_type", "default");
            cJSON_AddNumberToObject(rp, "rope_theta", o->theta);
            cJSON_AddNumberToObject(rp, "partial_rotary_factor", o->rotary_pct);
            cJSON_AddItemToObject(c, "rope_parameters", rp);
        } else {
            cJSON_AddNumberToObject(c, "rotary_pct", o->rotary_pct);
            cJSON_AddNumberToObject(c, "rotary_emb_base", o->theta);
            if (scaling) cJSON_AddItemToObject(c, "rope_scaling", scaling);
        }
        return c;
    }
    /* llama family */
    int64_t ffn = o->ffn ? o->ffn : ((o->d * 8 / 3 + 7) / 8) * 8;
    cJSON_AddNumberToObject(c, "intermediate_size", (double)ffn);
    cJSON_AddNumberToObject(c, "num_key_value_heads", (double)(o->kv_heads ? o->kv_heads : o->heads));
    if (o->head_dim) cJSON_AddNumberToObject(c, "head_dim", (double)o->head_dim);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    if (!strcmp(a, "llama")) {
        cJSON_AddBoolToObject(c, "attention_bias", o->qkv_bias > 0);
        cJSON_AddBoolToObject(c, "mlp_bias", 0);
    }
    if (!strcmp(a, "mistral")) {
        if (o->window) cJSON_AddNumberToObject(c, "sliding_window", (double)o->window);
        else cJSON_AddNullToObject(c, "sliding_window");
    }
    if (!strcmp(a, "qwen2")) cJSON_AddBoolToObject(c, "use_sliding_window", 0);
    if (v5) {
        cJSON *rp = scaling ? scaling : cJSON_CreateObject();
        if (!scaling) cJSON_AddStringToObject(rp, "rope_type", "default");
        cJSON_AddNumberToObject(rp, "rope_theta", o->theta);
        cJSON_AddItemToObject(c, "rope_parameters", rp);
    } else {
        cJSON_AddNumberToObject(c, "rope_theta", o->theta);
        if (scaling) cJSON_AddItemToObject(c, "rope_scaling", scaling);
        else cJSON_AddNullToObject(c, "rope_scaling");
    }
    return c;
}

static ll_status write_text(const char *path, const char *text, ll_err *err) {
    FILE *f = fopen(path, "wb");
    if (!f) return ll_fail(err, LL_ERR_IO, "cannot create %s: %s", path, strerror(errno));
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    if (fclose(f) != 0 || !ok) return ll_fail(err, LL_ERR_IO, "cannot write %s", path);
    return LL_OK;
}

/* Random values for one tensor, stored as dt. */
static void *fill_tensor(const ll_tensor_spec *sp, const ll_config *c, ll_dtype dt, rng *r, size_t *nbytes) {
    int64_t n = sp->shape[0] * (sp->ndim == 2 ? sp->shape[1] : 1);
    size_t es = ll_dtype_size(dt);
    uint8_t *buf = ll_malloc_array((size_t)n, es);
    if (!buf) return NULL;
    float scale;
    switch (sp->init) {
    case 1: scale = 0.2f; break;   /* norm weights: 1 +- 0.2 */
    case 2: scale = 0.1f; break;   /* biases */
    case 3: scale = 1.4f; break;   /* embeddings: std ~0.8 */
    default: {
        int64_t fan_in = sp->ndim == 2 ? (c->wlayout == LL_WLAYOUT_IN_OUT ? sp->shape[0] : sp->shape[1]) : 1;
        float gain = sp->role == LL_GW_UNEMBED && sp->layer < 0 ? 3.0f : 1.0f;
        scale = gain * sqrtf(3.0f / (float)fan_in); /* unit-variance outputs for unit-variance inputs */
    }
    }
    for (int64_t i = 0; i < n; i++) {
        float v = scale * rng_sym(r) + (sp->init == 1 ? 1.0f : 0.0f);
        if (dt == LL_DTYPE_F32) memcpy(buf + 4 * i, &v, 4);
        else {
            uint16_t h = dt == LL_DTYPE_F16 ? ll_f32_to_f16(v) : ll_f32_to_bf16(v);
            memcpy(buf + 2 * i, &h, 2);
        }
    }
    *nbytes = (size_t)n * es;
    return buf;
}

/* mkdir -p */
static int mkdir_p(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int usage_error(const char *msg) {
    fprintf(stderr, "logitlens synth: %s\n", msg);
    return ll_status_exit_code(LL_ERR_USAGE);
}

int ll_cmd_synth(int argc, char **argv) {
    synth_opts o = {.dtype = "f32", .rope_scaling = "none", .rope_style = "v4", .layers = 2, .d = 64, .heads = 4,
                    .vocab = 512, .ctx = 128, .tied = -1, .parallel = 1, .qkv_bias = -1, .shards = 1, .seed = 1,
                    .rotary_pct = 0.25, .theta = 10000.0};
    struct {
        const char *name;
        int64_t *dst;
        int64_t lo, hi;
    } ints[] = {{"--layers", &o.layers, 1, 1000},     {"--d-model", &o.d, 1, 1 << 16},
                {"--heads", &o.heads, 1, 1024},       {"--kv-heads", &o.kv_heads, 1, 1024},
                {"--head-dim", &o.head_dim, 2, 4096}, {"--ffn", &o.ffn, 1, 1 << 18},
                {"--vocab", &o.vocab, 2, 1 << 22},    {"--ctx", &o.ctx, 1, 1 << 22},
                {"--tied", &o.tied, 0, 1},            {"--parallel-residual", &o.parallel, 0, 1},
                {"--qkv-bias", &o.qkv_bias, 0, 1},    {"--gpt2-prefix", &o.prefix, 0, 1},
                {"--shards", &o.shards, 1, 1000},     {"--seed", &o.seed, 0, INT64_MAX},
                {"--sliding-window", &o.window, 1, 1 << 22}};
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int r = 0, matched = 0;
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) {
            fputs(synth_usage, stdout);
            return 0;
        }
        for (size_t j = 0; j < sizeof ints / sizeof ints[0] && !matched; j++) {
            if ((r = ll_arg_value(argc, argv, &i, ints[j].name, &val)) == 0) continue;
            matched = 1;
            if (r > 0 && ll_parse_int(val, ints[j].lo, ints[j].hi, ints[j].dst)) {
                fprintf(stderr, "logitlens synth: %s '%s': expected an integer in %lld..%lld\n", ints[j].name, val,
                        (long long)ints[j].lo, (long long)ints[j].hi);
                return ll_status_exit_code(LL_ERR_USAGE);
            }
        }
        if (!matched) {
            const char **strs[] = {&o.arch, &o.out, &o.dtype, &o.rope_scaling, &o.rope_style, &o.tokenizer};
            const char *names[] = {"--arch", "--out", "--dtype", "--rope-scaling", "--rope-style", "--tokenizer"};
            for (int j = 0; j < 6 && !matched; j++)
                if ((r = ll_arg_value(argc, argv, &i, names[j], &val)) != 0) {
                    matched = 1;
                    if (r > 0) *strs[j] = val;
                }
            double *dbl[] = {&o.rotary_pct, &o.theta};
            const char *dnames[] = {"--rotary-pct", "--rope-theta"};
            for (int j = 0; j < 2 && !matched; j++)
                if ((r = ll_arg_value(argc, argv, &i, dnames[j], &val)) != 0) {
                    matched = 1;
                    char *end;
                    if (r > 0 && ((*dbl[j] = strtod(val, &end)) <= 0 || *end)) {
                        fprintf(stderr, "logitlens synth: %s '%s': expected a positive number\n", dnames[j], val);
                        return ll_status_exit_code(LL_ERR_USAGE);
                    }
                }
        }
        if (!matched) {
            fprintf(stderr, "logitlens synth: unknown option '%s' (see logitlens synth --help)\n", argv[i]);
            return ll_status_exit_code(LL_ERR_USAGE);
        }
        if (r < 0) {
            fprintf(stderr, "logitlens synth: option %s needs a value\n", argv[i]);
            return ll_status_exit_code(LL_ERR_USAGE);
        }
    }
    if (!o.arch || !o.out) return usage_error("--arch and --out are required (see logitlens synth --help)");
    const char *known[] = {"gpt2", "gpt_neox", "llama", "mistral", "qwen2"};
    int ok = 0;
    for (int j = 0; j < 5; j++) ok |= !strcmp(o.arch, known[j]);
    if (!ok) return usage_error("--arch: expected gpt2, gpt_neox, llama, mistral or qwen2");
    ll_dtype dt;
    if (!strcmp(o.dtype, "f32")) dt = LL_DTYPE_F32;
    else if (!strcmp(o.dtype, "f16")) dt = LL_DTYPE_F16;
    else if (!strcmp(o.dtype, "bf16")) dt = LL_DTYPE_BF16;
    else return usage_error("--dtype: expected f32, f16 or bf16");
    if (strcmp(o.rope_scaling, "none") && strcmp(o.rope_scaling, "llama3"))
        return usage_error("--rope-scaling: expected none or llama3");
    if (strcmp(o.rope_style, "v4") && strcmp(o.rope_style, "v5")) return usage_error("--rope-style: expected v4 or v5");
    if (o.rotary_pct > 1) return usage_error("--rotary-pct: expected a fraction in (0, 1]");
    int gpt2 = !strcmp(o.arch, "gpt2"), neox = !strcmp(o.arch, "gpt_neox"), qwen2 = !strcmp(o.arch, "qwen2");
    if (o.tied < 0) o.tied = gpt2 ? 1 : 0;
    if (qwen2 && o.qkv_bias == 0) return usage_error("--qkv-bias 0: qwen2 always has q/k/v biases");
    if (o.window && strcmp(o.arch, "mistral")) return usage_error("--sliding-window applies to mistral only");
    if ((gpt2 || neox) && (o.kv_heads || o.head_dim))
        return usage_error("--kv-heads/--head-dim apply to the llama family only");
    if (!o.tokenizer) o.tokenizer = !strcmp(o.arch, "mistral") ? "sentencepiece" : (gpt2 || neox) ? "gpt2" : "llama3";

    ll_err err = {{0}};
    ll_status rc = LL_OK;
    char path[4200];
    if (mkdir_p(o.out) != 0) {
        fprintf(stderr, "logitlens synth: cannot create directory %s: %s\n", o.out, strerror(errno));
        return ll_status_exit_code(LL_ERR_IO);
    }
    cJSON *cj = build_config(&o, dt);
    char *text = cJSON_Print(cj);
    cJSON_Delete(cj);
    snprintf(path, sizeof path, "%s/config.json", o.out);
    ll_config c;
    ll_tensor_spec *specs = NULL;
    int n_specs = 0;
    if (!text) rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory");
    if (!rc) rc = write_text(path, text, &err);
    if (!rc) rc = ll_config_parse(path, text, strlen(text), &c, &err);
    free(text);
    if (!rc && o.prefix) {
        if (!gpt2) rc = ll_fail(&err, LL_ERR_USAGE, "--gpt2-prefix applies to --arch gpt2 only");
        snprintf(c.prefix, sizeof c.prefix, "transformer.");
    }
    if (!rc) rc = ll_config_tensor_specs(&c, &specs, &n_specs, &err);
    if (rc) {
        free(specs);
        fprintf(stderr, "logitlens synth: %s\n", err.msg);
        return ll_status_exit_code(rc);
    }
    /* shards of consecutive tensors, about equal in count */
    int n_shards = (int)(o.shards < n_specs ? o.shards : n_specs);
    rng r = {.s = (uint64_t)o.seed * 0x9E3779B97F4A7C15ULL + 1};
    cJSON *index = cJSON_CreateObject(), *wm = NULL;
    double total = 0;
    if (n_shards > 1) {
        cJSON_AddObjectToObject(index, "metadata");
        wm = cJSON_AddObjectToObject(index, "weight_map");
    }
    for (int s = 0; s < n_shards && !rc; s++) {
        int lo = (int)((int64_t)n_specs * s / n_shards), hi = (int)((int64_t)n_specs * (s + 1) / n_shards);
        ll_st_out_tensor *ts = calloc((size_t)(hi - lo), sizeof *ts);
        if (!ts) rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory");
        for (int i = lo; i < hi && !rc; i++) {
            ll_st_out_tensor *t = &ts[i - lo];
            t->name = specs[i].name;
            t->dtype = dt;
            t->ndim = specs[i].ndim;
            t->shape[0] = specs[i].shape[0];
            t->shape[1] = specs[i].shape[1];
            t->data = fill_tensor(&specs[i], &c, dt, &r, &t->nbytes);
            if (!t->data) rc = ll_fail(&err, LL_ERR_NOMEM, "out of memory for tensor %s", specs[i].name);
            total += (double)t->nbytes;
        }
        char fname[64];
        if (n_shards > 1) snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        else snprintf(fname, sizeof fname, "model.safetensors");
        snprintf(path, sizeof path, "%s/%s", o.out, fname);
        if (!rc) rc = ll_st_write_file(path, ts, hi - lo, &err);
        for (int i = lo; i < hi && wm; i++) cJSON_AddStringToObject(wm, specs[i].name, fname);
        if (ts)
            for (int i = 0; i < hi - lo; i++) free((void *)ts[i].data);
        free(ts);
    }
    if (!rc && n_shards > 1) {
        cJSON_AddNumberToObject(cJSON_GetObjectItem(index, "metadata"), "total_size", total);
        char *itext = cJSON_Print(index);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", o.out);
        rc = itext ? write_text(path, itext, &err) : ll_fail(&err, LL_ERR_NOMEM, "out of memory");
        free(itext);
        snprintf(path, sizeof path, "%s/model.safetensors", o.out);
        remove(path); /* a leftover single file would take precedence over the index */
    } else if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", o.out);
        remove(path);
    }
    cJSON_Delete(index);
    free(specs);
    if (!rc && strcmp(o.tokenizer, "none"))
        rc = ll_tokenizer_write_synth(o.out, o.tokenizer, o.vocab, (uint64_t)o.seed, &err);
    if (!rc && !strcmp(o.tokenizer, "none")) {
        snprintf(path, sizeof path, "%s/tokenizer.json", o.out);
        remove(path);
    }
    if (rc) {
        fprintf(stderr, "logitlens synth: %s\n", err.msg);
        return ll_status_exit_code(rc);
    }
    return 0;
}
