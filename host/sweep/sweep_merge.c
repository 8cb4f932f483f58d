/* sweep_merge.c: `sweep merge OUT`: per model, its shards' result files (read with the reader,
 * host/io/h5_reader.c, and merge_read.c) concatenated in shard order into OUT/merged/MODEL.h5 through the
 * result-file writer (include/ll_h5.h), so the merged file has the format of one run over all the model's
 * prompts. Per-token and per-prompt datasets are concatenated; the writer derives token_prompt,
 * token_position, prompt_offsets and probs_token_index from the appended blocks, so the index datasets come
 * out shifted as one run has them. The fixed datasets and root attributes are the first shard's (every shard
 * must agree on model, points, top-k and saved columns); command_line is the merge's. */
#include "cli/cli.h"
#include "ll_h5.h"
#include "merge_read.h"
#include "sweep_int.h"
#include "io/h5_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of a block are bounded so that merging needs bounded memory whatever the shard sizes. */
#define MERGE_BLOCK_BYTES ((int64_t)64 << 20)

/* What the merged file's ll_h5_meta points into (from the first shard). */
typedef struct merge_meta {
    ll_h5_meta meta;
    char *created, *model_path, *arch, *dtype, *backend, *config_sha, *source_format, *storage_types, *tokenizer,
        *tokenizer_error;
    int64_t allow_tf32, n_layers, d_model, vocab_size, topk, tp, pp, world;
    char **files, **file_sha, **devices;
    int n_files, n_file_sha, n_devices;
    int32_t *probs_vocab;
    uint8_t **vocab_bytes;
    size_t *vocab_len;
} merge_meta;

static void merge_meta_free(merge_meta *x) {
    free(x->created), free(x->model_path), free(x->arch), free(x->dtype), free(x->backend), free(x->config_sha);
    free(x->source_format), free(x->storage_types), free(x->tokenizer), free(x->tokenizer_error);
    sw_strs_free(x->files, x->n_files);
    sw_strs_free(x->file_sha, x->n_file_sha);
    sw_strs_free(x->devices, x->n_devices);
    free(x->probs_vocab);
    for (int64_t i = 0; x->vocab_bytes && i < x->meta.n_vocab; i++) free(x->vocab_bytes[i]);
    free(x->vocab_bytes);
    free(x->vocab_len);
    memset(x, 0, sizeof *x);
}

/* The merged file's metadata from the first shard r. */
static ll_status meta_from(const ll_h5_run *r, const char *path, merge_meta *x, ll_err *err) {
    ll_status rc;
    int64_t d[3];
    if ((rc = sw_h5_attr_str(r, "created", 0, &x->created, err)) ||
        (rc = sw_h5_attr_str(r, "model_path", 0, &x->model_path, err)) ||
        (rc = sw_h5_attr_str(r, "architecture", 0, &x->arch, err)) || (rc = sw_h5_attr_str(r, "dtype", 0, &x->dtype, err)) ||
        (rc = sw_h5_attr_str(r, "backend", 0, &x->backend, err)) ||
        (rc = sw_h5_attr_str(r, "config_sha256", 0, &x->config_sha, err)) ||
        (rc = sw_h5_attr_str(r, "source_format", 1, &x->source_format, err)) ||
        (rc = sw_h5_attr_str(r, "storage_types", 0, &x->storage_types, err)) ||
        (rc = sw_h5_attr_str(r, "tokenizer", 0, &x->tokenizer, err)) ||
        (rc = sw_h5_attr_str(r, "tokenizer_error", 1, &x->tokenizer_error, err)) ||
        (rc = sw_h5_attr_i64(r, "allow_tf32", 1, 0, &x->allow_tf32, err)) ||
        (rc = sw_h5_attr_i64(r, "n_layers", 0, 0, &x->n_layers, err)) ||
        (rc = sw_h5_attr_i64(r, "d_model", 0, 0, &x->d_model, err)) ||
        (rc = sw_h5_attr_i64(r, "vocab_size", 0, 0, &x->vocab_size, err)) ||
        (rc = sw_h5_attr_i64(r, "topk", 0, 0, &x->topk, err)) || (rc = sw_h5_attr_i64(r, "tp", 1, 1, &x->tp, err)) ||
        (rc = sw_h5_attr_i64(r, "pp", 1, 1, &x->pp, err)) ||
        (rc = sw_h5_attr_i64(r, "world_size", 1, 1, &x->world, err)) ||
        (rc = sw_h5_attr_strs(r, "rank_devices", &x->devices, &x->n_devices, err)))
        return rc;
    const int gguf = x->source_format && !strcmp(x->source_format, "gguf");
    if ((rc = sw_h5_attr_strs(r, gguf ? "gguf_files" : "safetensors_files", &x->files, &x->n_files, err)) ||
        (rc = sw_h5_attr_strs(r, gguf ? "gguf_header_sha256" : "safetensors_header_sha256", &x->file_sha,
                              &x->n_file_sha, err)))
        return rc;
    if (x->n_file_sha != x->n_files || (x->n_devices && x->n_devices != x->world))
        return ll_fail(err, LL_ERR_INPUT, "%s: the file and rank attributes disagree in length", path);
    ll_h5_meta *m = &x->meta;
    m->save_probs = sw_h5_has(r, "probs", d);
    if (m->save_probs) {
        if (!sw_h5_has(r, "probs_vocab_index", d))
            return ll_fail(err, LL_ERR_INPUT, "%s: 'probs' without 'probs_vocab_index'", path);
        m->n_probs_vocab = d[0];
        if (!(x->probs_vocab = malloc((size_t)(d[0] > 0 ? d[0] : 1) * sizeof *x->probs_vocab)))
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        if ((rc = ll_h5_read_rows(r, "probs_vocab_index", H5T_NATIVE_INT32, 0, d[0], x->probs_vocab, err))) return rc;
    }
    m->save_hidden = sw_h5_has(r, "hidden", d);
    m->n_vocab = r->n_vocab;
    if (r->n_vocab > 0 && (rc = sw_h5_vocab_bytes(r, r->n_vocab, &x->vocab_bytes, &x->vocab_len, err))) return rc;
    m->created = x->created;
    m->model_path = x->model_path;
    m->architecture = x->arch;
    m->dtype = x->dtype;
    m->backend = x->backend;
    m->allow_tf32 = x->allow_tf32 != 0;
    m->n_layers = x->n_layers;
    m->d_model = x->d_model;
    m->vocab_size = x->vocab_size;
    m->topk = (int)x->topk;
    m->config_sha256 = x->config_sha;
    m->source_format = x->source_format;
    m->n_st_files = x->n_files;
    m->st_files = (const char *const *)x->files;
    m->st_header_sha256 = (const char *const *)x->file_sha;
    m->storage_types = x->storage_types;
    m->tokenizer = x->tokenizer;
    m->tokenizer_error = x->tokenizer_error;
    m->n_points = r->n_points;
    m->point_names = (const char *const *)r->point_names;
    m->point_layers = r->point_layers;
    m->probs_vocab = x->probs_vocab;
    m->vocab_display = (const char *const *)r->vocab;
    m->vocab_bytes = (const uint8_t *const *)x->vocab_bytes;
    m->vocab_bytes_len = x->vocab_len;
    m->tp = (int)x->tp;
    m->pp = (int)x->pp;
    m->world_size = (int)x->world;
    m->rank_devices = x->n_devices ? (const char *const *)x->devices : NULL;
    return LL_OK;
}

/* A later shard must hold the same kind of result as the first. */
static ll_status check_same(const ll_h5_run *first, const merge_meta *x, const ll_h5_run *r, ll_err *err) {
    char *sha = NULL;
    int64_t d[3];
    ll_status rc = sw_h5_attr_str(r, "config_sha256", 0, &sha, err);
    if (rc) return rc;
    const char *what = NULL;
    if (strcmp(sha, x->config_sha)) what = "config_sha256 (another model)";
    else if (r->n_points != first->n_points) what = "the points";
    else if (r->topk != first->topk) what = "topk";
    else if (r->n_vocab != first->n_vocab) what = "the vocabulary";
    else if (sw_h5_has(r, "probs", d) != x->meta.save_probs) what = "whether probs are saved";
    else if (sw_h5_has(r, "hidden", d) != x->meta.save_hidden) what = "whether hidden states are saved";
    for (int i = 0; !what && i < r->n_points; i++)
        if (strcmp(r->point_names[i], first->point_names[i])) what = "the points";
    if (!what && x->meta.save_probs) {
        if (!sw_h5_has(r, "probs_vocab_index", d) || d[0] != x->meta.n_probs_vocab) what = "probs_vocab_index";
        int32_t *ids = what ? NULL : malloc((size_t)(d[0] > 0 ? d[0] : 1) * sizeof *ids);
        if (!what && !ids) rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        else if (!what && !(rc = ll_h5_read_rows(r, "probs_vocab_index", H5T_NATIVE_INT32, 0, d[0], ids, err)) &&
                 memcmp(ids, x->probs_vocab, (size_t)d[0] * sizeof *ids))
            what = "probs_vocab_index";
        free(ids);
    }
    free(sha);
    if (!rc && what)
        rc = ll_fail(err, LL_ERR_INPUT, "%s differs from %s in %s; shards of one model must come from one plan",
                     r->path, first->path, what);
    return rc;
}

/* One block of whole prompts [p0, p1) of shard r, appended to w. probs_idx: the shard's probs_token_index. */
typedef struct block_bufs {
    int32_t *tokens, *targets, *topk_ids, *ranks;
    float *topk_probs, *entropy, *kl, *tprobs, *tlogprobs, *hidden;
    uint16_t *probs;
    int64_t *lengths, *probs_token;
    char **texts, **ptargets;
} block_bufs;

static void block_free(block_bufs *b, int64_t np) {
    free(b->tokens), free(b->targets), free(b->topk_ids), free(b->ranks), free(b->topk_probs), free(b->entropy);
    free(b->kl), free(b->tprobs), free(b->tlogprobs), free(b->hidden), free(b->probs), free(b->lengths);
    free(b->probs_token);
    sw_strs_free(b->texts, (int)np);
    sw_strs_free(b->ptargets, (int)np);
    memset(b, 0, sizeof *b);
}

static ll_status append_block(ll_h5_writer *w, const ll_h5_run *r, const merge_meta *x, const int64_t *probs_idx,
                              int64_t n_probs, int64_t p0, int64_t p1, hid_t f16, ll_err *err) {
    const int64_t t0 = r->prompt_offsets[p0], T = r->prompt_offsets[p1] - t0, P = r->n_points, K = r->topk;
    const int64_t np = p1 - p0;
    /* the saved rows of these tokens: probs_token_index is increasing */
    int64_t r0 = 0, r1;
    while (r0 < n_probs && probs_idx[r0] < t0) r0++;
    r1 = r0;
    while (r1 < n_probs && probs_idx[r1] < t0 + T) r1++;
    const int64_t nr = r1 - r0;
    block_bufs b = {0};
    ll_status rc = LL_OK;
    b.tokens = malloc((size_t)T * 4), b.targets = malloc((size_t)T * 4);
    b.topk_ids = malloc((size_t)(T * P * K) * 4), b.topk_probs = malloc((size_t)(T * P * K) * 4);
    b.ranks = malloc((size_t)(T * P) * 4), b.entropy = malloc((size_t)(T * P) * 4), b.kl = malloc((size_t)(T * P) * 4);
    b.tprobs = malloc((size_t)(T * P) * 4), b.tlogprobs = malloc((size_t)(T * P) * 4);
    b.lengths = malloc((size_t)np * 8);
    if (x->meta.save_hidden) b.hidden = malloc((size_t)(T * P * x->d_model) * 4 + 4);
    if (nr > 0) {
        b.probs = malloc((size_t)(nr * P * x->meta.n_probs_vocab) * 2 + 2);
        b.probs_token = malloc((size_t)nr * 8);
    }
    if (!b.tokens || !b.targets || !b.topk_ids || !b.topk_probs || !b.ranks || !b.entropy || !b.kl || !b.tprobs ||
        !b.tlogprobs || !b.lengths || (x->meta.save_hidden && !b.hidden) || (nr > 0 && (!b.probs || !b.probs_token))) {
        block_free(&b, 0);
        return ll_fail(err, LL_ERR_NOMEM, "%s: a block of %lld tokens: out of memory", r->path, (long long)T);
    }
    for (int64_t p = p0; p < p1; p++) b.lengths[p - p0] = r->prompt_offsets[p + 1] - r->prompt_offsets[p];
    for (int64_t i = 0; i < nr; i++) b.probs_token[i] = probs_idx[r0 + i] - t0;
    if ((rc = ll_h5_read_rows(r, "tokens", H5T_NATIVE_INT32, t0, T, b.tokens, err)) ||
        (rc = ll_h5_read_rows(r, "target_ids", H5T_NATIVE_INT32, t0, T, b.targets, err)) ||
        (rc = ll_h5_read_rows(r, "topk_ids", H5T_NATIVE_INT32, t0, T, b.topk_ids, err)) ||
        (rc = ll_h5_read_rows(r, "topk_probs", H5T_NATIVE_FLOAT, t0, T, b.topk_probs, err)) ||
        (rc = ll_h5_read_rows(r, "entropy", H5T_NATIVE_FLOAT, t0, T, b.entropy, err)) ||
        (rc = ll_h5_read_rows(r, "kl_final", H5T_NATIVE_FLOAT, t0, T, b.kl, err)) ||
        (rc = ll_h5_read_rows(r, "target_probs", H5T_NATIVE_FLOAT, t0, T, b.tprobs, err)) ||
        (rc = ll_h5_read_rows(r, "target_logprobs", H5T_NATIVE_FLOAT, t0, T, b.tlogprobs, err)) ||
        (rc = ll_h5_read_rows(r, "target_ranks", H5T_NATIVE_INT32, t0, T, b.ranks, err)) ||
        (b.hidden && (rc = ll_h5_read_rows(r, "hidden", H5T_NATIVE_FLOAT, t0, T, b.hidden, err))) ||
        (nr > 0 && (rc = ll_h5_read_rows(r, "probs", f16, r0, nr, b.probs, err))) ||
        (rc = sw_h5_string_rows(r, "prompts", p0, np, &b.texts, err)) ||
        (rc = sw_h5_string_rows(r, "prompt_targets", p0, np, &b.ptargets, err))) {
        block_free(&b, np);
        return rc;
    }
    ll_h5_batch hb = {.n_prompts = (int)np, .prompt_texts = (const char *const *)b.texts,
                      .prompt_targets = (const char *const *)b.ptargets, .prompt_lengths = b.lengths, .n_tokens = T,
                      .tokens = b.tokens, .target_ids = b.targets, .topk_ids = b.topk_ids, .topk_probs = b.topk_probs,
                      .entropy = b.entropy, .kl_final = b.kl, .target_probs = b.tprobs, .target_logprobs = b.tlogprobs,
                      .target_ranks = b.ranks, .n_probs_rows = nr, .probs_token = b.probs_token, .probs = b.probs,
                      .hidden = b.hidden};
    rc = ll_h5_append(w, &hb, err);
    block_free(&b, np);
    return rc;
}

/* Appends every prompt of shard r in blocks of at most MERGE_BLOCK_BYTES. */
static ll_status append_shard(ll_h5_writer *w, const ll_h5_run *r, const merge_meta *x, hid_t f16, ll_err *err) {
    int64_t d[3] = {0, 0, 0}, n_probs = 0;
    int64_t *idx = NULL;
    ll_status rc = LL_OK;
    if (x->meta.save_probs && sw_h5_has(r, "probs_token_index", d)) {
        n_probs = d[0];
        if (!(idx = malloc((size_t)(n_probs > 0 ? n_probs : 1) * sizeof *idx)))
            return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        if ((rc = ll_h5_read_rows(r, "probs_token_index", H5T_NATIVE_INT64, 0, n_probs, idx, err))) goto out;
        for (int64_t i = 1; i < n_probs; i++)
            if (idx[i] <= idx[i - 1] || idx[i] >= r->n_tokens) {
                rc = ll_fail(err, LL_ERR_INPUT, "%s: probs_token_index is not increasing within the token axis", r->path);
                goto out;
            }
    }
    const int64_t P = r->n_points, K = r->topk;
    const int64_t tok_bytes = 4 * (2 + 2 * P * K + 5 * P) + (x->meta.save_hidden ? 4 * P * x->d_model : 0);
    const int64_t row_bytes = 2 * P * x->meta.n_probs_vocab;
    int64_t p0 = 0, k = 0;
    while (!rc && p0 < r->n_prompts) {
        int64_t p1 = p0, bytes = 0;
        while (p1 < r->n_prompts) { /* at least one prompt per block */
            int64_t t0 = r->prompt_offsets[p1], t1 = r->prompt_offsets[p1 + 1], rows = 0;
            while (k + rows < n_probs && idx[k + rows] < t1) rows++;
            int64_t add = (t1 - t0) * tok_bytes + rows * row_bytes;
            if (p1 > p0 && bytes + add > MERGE_BLOCK_BYTES) break;
            bytes += add;
            k += rows;
            p1++;
        }
        rc = append_block(w, r, x, idx, n_probs, p0, p1, f16, err);
        p0 = p1;
    }
out:
    free(idx);
    return rc;
}

/* Merges model mi's shards (all done) into its merged file. */
static ll_status merge_model(const sw_manifest *m, int mi, ll_err *err) {
    const sw_model *x = &m->models[mi];
    ll_h5_run **runs = calloc((size_t)m->n_shards + 1, sizeof *runs);
    merge_meta mm = {0};
    ll_h5_writer *w = NULL;
    hid_t f16 = ll_h5_type_f16(1);
    char *dir = sw_fmt("%s/merged", m->out);
    int n = 0;
    ll_status rc = LL_OK;
    if (!runs || !dir || f16 < 0) {
        rc = ll_fail(err, LL_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < m->n_tasks && !rc; i++)
        if (m->tasks[i].model == mi) rc = ll_h5_run_open(m->tasks[i].output, &runs[n++], err);
    if (rc) goto out;
    if ((rc = meta_from(runs[0], runs[0]->path, &mm, err))) goto out;
    for (int i = 1; i < n && !rc; i++) rc = check_same(runs[0], &mm, runs[i], err);
    if (rc || (rc = sw_mkdirs(dir, err))) goto out;
    mm.meta.path = x->merged;
    mm.meta.command_line = ll_command_line;
    for (int i = 0; i < n; i++) { /* the writer sizes chunks for what the file will hold */
        int64_t d[3];
        mm.meta.expect_tokens += runs[i]->n_tokens;
        mm.meta.expect_prompts += runs[i]->n_prompts;
        if (mm.meta.save_probs && sw_h5_has(runs[i], "probs_token_index", d)) mm.meta.expect_probs_rows += d[0];
    }
    if ((rc = ll_h5_create(&mm.meta, &w, err))) goto out;
    for (int i = 0; i < n && !rc; i++) rc = append_shard(w, runs[i], &mm, f16, err);
    if (!rc) {
        rc = ll_h5_commit(w, err);
        w = NULL;
    }
out:
    ll_h5_abort(w);
    for (int i = 0; runs && i < n; i++) ll_h5_run_close(runs[i]);
    free(runs);
    merge_meta_free(&mm);
    if (f16 >= 0) H5Tclose(f16);
    free(dir);
    return rc;
}

ll_status ll_sweep_merge(const char *out, const char *only, int *n_incomplete, ll_err *err) {
    sw_manifest m;
    sw_view *v = NULL;
    int queue_ok = 0, found = 0;
    *n_incomplete = 0;
    ll_status rc = sw_manifest_load(out, &m, err);
    if (rc) return rc;
    if ((rc = sw_views_get(&m, 0, &v, &queue_ok, err))) goto done;
    for (int mi = 0; mi < m.n_models && !rc; mi++) {
        const sw_model *x = &m.models[mi];
        if (only && strcmp(only, x->name)) continue;
        found = 1;
        int missing = 0, first = -1;
        for (int i = 0; i < m.n_tasks; i++)
            if (m.tasks[i].model == mi && v[i].state != SW_DONE && (missing++, first < 0)) first = i;
        if (missing) {
            fprintf(stderr, "logitlens sweep merge: %s: not merged: %d of its tasks are not done (task %d: %s%s%s)\n",
                    x->name, missing, first, sw_state_names[v[first].state], v[first].detail[0] ? ", " : "",
                    v[first].detail);
            (*n_incomplete)++;
            continue;
        }
        double t0 = sw_time_now();
        if ((rc = merge_model(&m, mi, err))) {
            ll_fail_prefix(err, rc, "merging %s", x->name);
            break;
        }
        printf("merged %s: %lld prompts, %lld tokens from %d shards into %s (%.1f s)\n", x->name, (long long)x->prompts,
               (long long)x->tokens, m.n_shards, x->merged, sw_time_now() - t0);
    }
    if (!rc && !found)
        rc = ll_fail(err, LL_ERR_USAGE, "--model %s: the sweep has no such model", only);
done:
    free(v);
    sw_manifest_free(&m);
    return rc;
}
