/* cli_inspect.c: `logitlens inspect DIR`: architecture, shapes, parameter count, dtypes, and the memory a
 * run needs on each backend. */
#include "args.h"
#include "cli.h"
#include "ll_engine.h"
#include "ll_gguf.h"
#include "ll_memplan.h"
#include "ll_model.h"
#include "ll_tokenizer.h"

#include <stdio.h>
#include <string.h>

static const char inspect_usage[] =
    "usage: logitlens inspect (MODEL | --model MODEL) [--batch-tokens N] [--points KINDS] [--layers A:B:S]\n"
    "                         [--topk K]\n"
    "\n"
    "Describes a model (a Hugging Face directory, a .gguf file, or a directory holding one .gguf):\n"
    "architecture, shapes, parameter count, storage types, the tokenizer, and the memory plan of a run\n"
    "(weights + activations + lens buffers for a batch of N tokens) on the CPU and CUDA backends.\n";

int ll_cmd_inspect(int argc, char **argv) {
    const char *dir = NULL, *points = NULL, *layers = NULL;
    int64_t batch_tokens = 4096, topk = 10;
    for (int i = 1; i < argc; i++) {
        const char *val = NULL;
        int r;
        if (ll_arg_flag(argv, i, "--help") || ll_arg_flag(argv, i, "-h")) {
            fputs(inspect_usage, stdout);
            return 0;
        }
        if ((r = ll_arg_value(argc, argv, &i, "--batch-tokens", &val)) != 0) {
            if (r < 0 || ll_parse_int(val, 1, 1LL << 32, &batch_tokens)) {
                fprintf(stderr, "logitlens inspect: --batch-tokens: expected a positive integer\n");
                return ll_status_exit_code(LL_ERR_USAGE);
            }
        } else if ((r = ll_arg_value(argc, argv, &i, "--topk", &val)) != 0) {
            if (r < 0 || ll_parse_int(val, 1, 1 << 20, &topk)) {
                fprintf(stderr, "logitlens inspect: --topk: expected a positive integer\n");
                return ll_status_exit_code(LL_ERR_USAGE);
            }
        } else if ((r = ll_arg_value(argc, argv, &i, "--points", &val)) != 0) points = val;
        else if ((r = ll_arg_value(argc, argv, &i, "--layers", &val)) != 0) layers = val;
        else if ((r = ll_arg_value(argc, argv, &i, "--model", &val)) != 0) {
            if (r > 0 && dir) {
                fprintf(stderr, "logitlens inspect: give one model (DIR, FILE.gguf or --model), not two\n");
                return ll_status_exit_code(LL_ERR_USAGE);
            }
            dir = val;
        } else if (argv[i][0] == '-' || dir) {
            fprintf(stderr, "logitlens inspect: unexpected argument '%s' (see logitlens inspect --help)\n", argv[i]);
            return ll_status_exit_code(LL_ERR_USAGE);
        } else dir = argv[i];
        if (r < 0) {
            fprintf(stderr, "logitlens inspect: option %s needs a value\n", argv[i]);
            return ll_status_exit_code(LL_ERR_USAGE);
        }
    }
    if (!dir) {
        fprintf(stderr, "logitlens inspect: a model is required (a directory, a .gguf file, or --model PATH)\n");
        return ll_status_exit_code(LL_ERR_USAGE);
    }
    ll_err err = {{0}};
    ll_model_files *m = NULL;
    ll_points pts = {0};
    ll_status rc = ll_model_files_open(dir, &m, &err);
    if (!rc) rc = ll_points_parse(points, layers, m->cfg.n_layers, &pts, &err);
    if (rc) {
        fprintf(stderr, "logitlens inspect: %s\n", err.msg);
        ll_model_files_close(m);
        return ll_status_exit_code(rc);
    }
    const ll_config *c = &m->cfg;
    char b1[32], b2[32], b3[32];
    printf("model         %s\n", dir);
    printf("architecture  %s\n", c->arch);
    printf("layers        %d\n", c->n_layers);
    printf("d_model       %lld\n", (long long)c->d_model);
    printf("heads         %d query, %d key/value, head_dim %d\n", c->n_heads, c->n_kv_heads, c->head_dim);
    printf("mlp           %lld wide, %s\n", (long long)c->d_ff,
           c->mlp == LL_MLP_SWIGLU ? "SwiGLU" : c->act == LL_ACT_GELU_TANH ? "GELU (tanh)" : "GELU (erf)");
    printf("norm          %s, eps %g\n", c->norm == LL_NORM_RMSNORM ? "RMSNorm" : "LayerNorm", c->norm_eps);
    if (c->use_rope)
        printf("positions     RoPE on %d of %d dims, theta %g%s\n", c->rope.rot_dim, c->head_dim, c->rope.theta,
               c->rope.llama3 ? ", llama3 scaling" : "");
    else printf("positions     learned, %lld\n", (long long)c->n_ctx);
    printf("residual      %s\n", c->parallel_residual ? "parallel (attention and MLP from the same input)" : "sequential");
    printf("vocabulary    %lld (%s unembedding)\n", (long long)c->vocab, c->tied ? "tied" : "untied");
    printf("context       %lld tokens\n", (long long)c->n_ctx);
    double stored = 0;
    for (int i = 0; i < m->n_specs; i++) stored += (double)m->bound[i].nbytes;
    printf("parameters    %lld (%.3g B)\n", (long long)m->n_params, (double)m->n_params / 1e9);
    printf("storage       %s\n", m->storage_types);
    ll_memplan_human(stored, b1, sizeof b1);
    if (m->format == LL_MODEL_GGUF) {
        printf("files         GGUF %s (version %u, alignment %llu), %d tensors used, %s stored\n", m->gguf->name,
               m->gguf->version, (unsigned long long)m->gguf->alignment, m->n_specs, b1);
        ll_memplan_human((double)ll_model_weights_bytes(m, "cpu"), b2, sizeof b2);
        ll_memplan_human((double)ll_model_weights_bytes(m, "cuda"), b3, sizeof b3);
        printf("dequantized   %s as float32 (cpu), %s with quantized tensors as float16 (cuda)\n", b2, b3);
    } else {
        printf("files         %d safetensors file(s), %d tensors used, %s of weights\n", m->n_files, m->n_specs, b1);
    }
    ll_tokenizer *tk = NULL;
    ll_err terr = {{0}};
    if (ll_model_files_tokenizer(m, &tk, &terr))
        printf("tokenizer     unusable: %s (token-id prompts still run)\n", terr.msg);
    else if (!tk)
        printf("tokenizer     none (token ids only)\n");
    else
        printf("tokenizer     %s, %lld ids\n", m->format == LL_MODEL_GGUF ? "GGUF metadata" : "tokenizer.json",
               (long long)ll_tokenizer_vocab_size(tk));
    ll_tokenizer_free(tk);
    printf("\ntensors (layer 0 and global):\n");
    for (int i = 0; i < m->n_specs; i++) {
        if (m->specs[i].layer > 0) continue;
        char sh[64];
        ll_st_shape_str(m->specs[i].shape, m->specs[i].ndim, sh, sizeof sh);
        printf("  %-52s %-16s %s\n", m->specs[i].name, sh, m->bound[i].type_name);
    }
    ll_engine_opts eo = {.topk = (int)topk};
    printf("\nmemory plan for batches of %lld tokens, %d points, top-%lld:\n", (long long)batch_tokens, pts.n,
           (long long)topk);
    const char *names[] = {"cpu", "cuda"};
    for (int b = 0; b < 2; b++) {
        ll_memplan plan;
        ll_memplan_compute(m, names[b], NULL, &pts, &eo, batch_tokens, &plan);
        ll_memplan_human((double)plan.weights, b1, sizeof b1);
        ll_memplan_human((double)plan.activations, b2, sizeof b2);
        ll_memplan_human((double)plan.total, b3, sizeof b3);
        char b4[32];
        ll_memplan_human((double)plan.scratch, b4, sizeof b4);
        printf("  %-5s weights %s (%s) + activations and lens %s + scratch %s = %s %s memory\n", names[b], b1,
               !b ? "float32" : m->n_quantized ? "quantized as float16" : "as stored", b2, b4, b3,
               b ? "device" : "host");
    }
    ll_points_free(&pts);
    ll_model_files_close(m);
    return 0;
}
