/* run_resume.c: what a run is, for its journal (include/ll_journal.h), and what `run --resume` finds.
 *
 * The identity (run.json) holds every input that changes the results: the model's hashes (of its headers,
 * and of a sample of every tensor's bytes), a hash of the
 * prompts (ids, targets and texts, in order), the points, layers, top-k, saved rows and columns, hidden
 * states, batch size, backend, TF32, and the split over ranks; plus the batch count and, not compared,
 * the first attempt's start time and command line, which the finished file records so that a resumed run
 * writes the file an uninterrupted one would. */
#include "cli.h"
#include "ll_sha256.h"
#include "run_internal.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* SHA-256 of the prompts as the run sees them. */
static void prompts_sha256(const ll_prompt_set *ps, char hex[65]) {
    ll_sha256 s;
    ll_sha256_init(&s);
    for (int i = 0; i < ps->n; i++) {
        const ll_prompt *p = &ps->v[i];
        int64_t n = p->n;
        int32_t t = p->target_id;
        ll_sha256_update(&s, &n, 8);
        ll_sha256_update(&s, p->ids, (size_t)p->n * 4);
        ll_sha256_update(&s, &t, 4);
        for (int j = 0; j < 2; j++) {
            const char *str = j ? p->target_text : p->text;
            uint64_t len = str ? strlen(str) + 1 : 0; /* 0: absent, else length + 1 */
            ll_sha256_update(&s, &len, 8);
            if (str) ll_sha256_update(&s, str, len - 1);
        }
    }
    uint8_t d[32];
    ll_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

/* SHA-256 of a sample of the weights: each tensor's name, size and its first and last 4 KiB. The headers'
 * hashes do not change when only the values do (another seed, another fine-tune of the same shape). */
static void weights_sample_sha256(const ll_model_files *mf, char hex[65]) {
    ll_sha256 s;
    ll_sha256_init(&s);
    for (int i = 0; i < mf->n_specs; i++) {
        const ll_model_tensor *t = &mf->bound[i];
        const size_t n = t->nbytes, k = n < 4096 ? n : 4096;
        uint64_t nb = n;
        ll_sha256_update(&s, t->name, strlen(t->name) + 1);
        ll_sha256_update(&s, &nb, 8);
        ll_sha256_update(&s, t->data, k);
        ll_sha256_update(&s, t->data + n - k, k);
    }
    uint8_t d[32];
    ll_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

static const char *or_empty(const char *s) { return s ? s : ""; }

/* The identity as a cJSON object (caller deletes). */
static cJSON *identity(const run_ctx *r, const char *created, const char *command_line) {
    const ll_run_opts *o = r->o;
    const ll_model_files *mf = r->mf;
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    char ph[65];
    prompts_sha256(&o->prompts, ph);
    cJSON_AddStringToObject(j, "format", "logitlens.journal");
    cJSON_AddNumberToObject(j, "version", 1);
    cJSON_AddStringToObject(j, "created", created);
    cJSON_AddStringToObject(j, "command_line", command_line);
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "config_sha256", mf->config_sha256);
    cJSON *files = cJSON_AddArrayToObject(j, "model_files_sha256");
    for (int i = 0; files && i < mf->n_files; i++) cJSON_AddItemToArray(files, cJSON_CreateString(mf->file_sha256[i]));
    char wh[65];
    weights_sample_sha256(mf, wh);
    cJSON_AddStringToObject(j, "weights_sample_sha256", wh);
    cJSON_AddStringToObject(j, "prompts_sha256", ph);
    cJSON_AddNumberToObject(j, "prompts", o->prompts.n);
    cJSON_AddNumberToObject(j, "tokens", (double)r->total_tokens);
    cJSON_AddNumberToObject(j, "batches", (double)r->n_batches);
    cJSON_AddStringToObject(j, "points", or_empty(o->points));
    cJSON_AddStringToObject(j, "layers", or_empty(o->layers));
    cJSON_AddNumberToObject(j, "topk", o->topk);
    cJSON_AddStringToObject(j, "save_probs", or_empty(o->save_probs));
    cJSON_AddStringToObject(j, "probs_vocab", or_empty(o->probs_vocab));
    cJSON_AddNumberToObject(j, "save_hidden", o->save_hidden);
    cJSON_AddNumberToObject(j, "add_special", o->add_special);
    cJSON_AddNumberToObject(j, "batch_tokens", (double)o->batch_tokens);
    cJSON_AddStringToObject(j, "backend", r->be->ops->name);
    cJSON_AddNumberToObject(j, "tf32", o->tf32);
    cJSON_AddNumberToObject(j, "tp", o->tp);
    cJSON_AddNumberToObject(j, "pp", o->pp);
    return j;
}

/* Whether the journal's identity (old) is this run's (now); else *why says the first difference. */
static int same_run(const cJSON *old, const cJSON *now, char *why, size_t cap) {
    static const char *const not_compared[] = {"created", "command_line", "model"};
    for (const cJSON *it = now->child; it; it = it->next) {
        int skip = 0;
        for (size_t i = 0; i < sizeof not_compared / sizeof not_compared[0]; i++)
            skip |= !strcmp(it->string, not_compared[i]);
        if (skip) continue;
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, it->string);
        if (was && cJSON_Compare(was, it, 1)) continue;
        char *a = was ? cJSON_PrintUnformatted(was) : NULL, *b = cJSON_PrintUnformatted(it);
        snprintf(why, cap, "%s is %.120s there and %.120s here", it->string, a ? a : "absent", b ? b : "?");
        free(a);
        free(b);
        return 0;
    }
    return 1;
}

/* Removes OUT.tmp.<pid> files that an attempt killed outright left behind (their process is gone). */
static void remove_stale_tmp(const char *out) {
    char dir[PATH_MAX], base[PATH_MAX];
    const char *slash = strrchr(out, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) : 1, slash ? out : ".");
    if (slash && slash == out) snprintf(dir, sizeof dir, "/");
    snprintf(base, sizeof base, "%s.tmp.", slash ? slash + 1 : out);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    const size_t bl = strlen(base);
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, base, bl)) continue;
        char *end;
        long pid = strtol(e->d_name + bl, &end, 10);
        if (*end || pid <= 0) continue; /* not a name the writer gives */
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its process still runs */
        char p[PATH_MAX * 2 + 2];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Rank 0's part of run_journal_prepare. */
static ll_status prepare_rank0(run_ctx *r, ll_err *err) {
    ll_run_opts *o = r->o;
    if (o->resume) remove_stale_tmp(o->out);
    const int have_journal = path_exists(r->journal_dir);
    if (!have_journal) {
        if (o->resume && path_exists(o->out)) {
            r->already_done = 1;
            return LL_OK;
        }
        return LL_OK; /* a fresh run */
    }
    char *text = NULL;
    int64_t done = 0;
    ll_status rc = ll_journal_open(r->journal_dir, &text, &done, &r->journal, err);
    if (rc) return rc;
    if (!o->resume) {
        free(text);
        return ll_fail(err, LL_ERR_USAGE,
                       "%s holds %lld committed batches of an earlier run of %s: continue it with --resume, or delete "
                       "%s to start over",
                       r->journal_dir, (long long)done, o->out, r->journal_dir);
    }
    cJSON *old = cJSON_Parse(text);
    free(text);
    const cJSON *c = old ? cJSON_GetObjectItemCaseSensitive(old, "created") : NULL,
                *cl = old ? cJSON_GetObjectItemCaseSensitive(old, "command_line") : NULL;
    if (!old || !cJSON_IsString(c) || !cJSON_IsString(cl) || strlen(c->valuestring) >= sizeof r->created) {
        cJSON_Delete(old);
        return ll_fail(err, LL_ERR_INPUT, "%s/run.json: not a logitlens journal (expected an object with created and "
                       "command_line); delete %s to start over", r->journal_dir, r->journal_dir);
    }
    cJSON *now = identity(r, c->valuestring, cl->valuestring);
    char why[400];
    int same = now && same_run(old, now, why, sizeof why);
    if (same) {
        strcpy(r->created, c->valuestring);
        r->command_line = strdup(cl->valuestring);
    }
    const cJSON *nb = now ? cJSON_GetObjectItemCaseSensitive(now, "batches") : NULL;
    const int64_t total = nb ? (int64_t)nb->valuedouble : 0;
    cJSON_Delete(old);
    cJSON_Delete(now);
    if (!now) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (!same)
        return ll_fail(err, LL_ERR_USAGE,
                       "--resume: %s was written by a different run (%s); resume with the same model, prompts and "
                       "options, or delete %s to start over",
                       r->journal_dir, why, r->journal_dir);
    if (!r->command_line) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (done > total)
        return ll_fail(err, LL_ERR_INPUT, "%s: %lld batch files for a run of %lld batches", r->journal_dir,
                       (long long)done, (long long)total);
    r->skip_batches = done;
    return LL_OK;
}

ll_status run_journal_prepare(run_ctx *r, ll_err *err) {
    size_t n = strlen(r->o->out) + sizeof ".journal";
    if (!(r->journal_dir = malloc(n))) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    snprintf(r->journal_dir, n, "%s.journal", r->o->out);
    time_t now = time(NULL);
    strftime(r->created, sizeof r->created, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    ll_status rc = r->env.rank == 0 ? prepare_rank0(r, err) : LL_OK;
    if (rc) return rc;
    /* every rank learns what rank 0 found */
    int64_t mine[2] = {r->skip_batches, r->already_done}, *all = malloc(sizeof mine * (size_t)r->env.world);
    if (!all) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    if (!(rc = run_allgather_host(r, mine, sizeof mine, all, err))) {
        r->skip_batches = all[0];
        r->already_done = (int)all[1];
    }
    free(all);
    return rc;
}

ll_status run_journal_start(run_ctx *r, ll_err *err) {
    r->jshape = (ll_journal_shape){.points = r->pts.n, .topk = r->o->topk, .d_model = r->mf->cfg.d_model,
                                   .probs_vocab = r->ps.mode ? r->pvocab_n : 0, .hidden = r->o->save_hidden};
    if (r->env.rank != 0) return LL_OK;
    r->journal_active = 1;
    if (r->journal) return LL_OK; /* resuming: it is open already */
    cJSON *id = identity(r, r->created, ll_command_line);
    char *text = id ? cJSON_Print(id) : NULL;
    cJSON_Delete(id);
    if (!text) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = ll_journal_create(r->journal_dir, text, &r->journal, err);
    free(text);
    return rc;
}
