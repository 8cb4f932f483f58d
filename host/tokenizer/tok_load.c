/* tok_load.c: ll_tokenizer_load / ll_tokenizer_free: reads DIR/tokenizer.json (cJSON) and
 * DIR/tokenizer_config.json, builds every stage, and refuses what it cannot reproduce exactly
 * (other model types, truncation, fixed padding, unknown stage types, byte_fallback without all 256
 * <0xNN> tokens). A byte-level vocabulary may lack byte tokens (StarCoder's and SmolLM2's lack 21):
 * the BPE model then drops those bytes, or gives the unknown token, exactly as `tokenizers` does. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int ll_tokenizer_exists(const char *dir) {
    char *p = path_join(dir, "tokenizer.json");
    struct stat st;
    int ok = p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* Reads a whole file; *out is NUL-terminated. Returns 0, or errno. */
static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno ? errno : EIO;
    tok_buf b = {0};
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (tok_buf_append(&b, chunk, r)) {
            fclose(f);
            tok_buf_free(&b);
            return ENOMEM;
        }
    int bad = ferror(f);
    fclose(f);
    if (bad || tok_buf_append(&b, "", 1)) {
        tok_buf_free(&b);
        return bad ? EIO : ENOMEM;
    }
    *out = b.p;
    *len = b.n - 1;
    return 0;
}

/* Parses JSON text (NUL-terminated, len bytes before the NUL) into an object; `path` names it. */
static ll_status parse_json_text(const char *text, size_t len, const char *path, cJSON **out, ll_err *err) {
    /* cJSON strings end at NUL: a token containing U+0000 would silently become another token. */
    for (const char *q = text; (q = strstr(q, "\\u0000")) != NULL; q++) {
        size_t bs = 0;
        while (q - (ptrdiff_t)bs > text && q[-(ptrdiff_t)bs - 1] == '\\') bs++;
        if (bs % 2 == 0)
            return ll_fail(err, LL_ERR_INPUT, "%s: a string contains the NUL character \\u0000 at byte %zu (not supported)",
                           path, (size_t)(q - text));
    }
    if (memchr(text, 0, len))
        return ll_fail(err, LL_ERR_INPUT, "%s: malformed JSON: NUL byte at byte %zu", path,
                       (size_t)((const char *)memchr(text, 0, len) - text));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return ll_fail(err, LL_ERR_INPUT, "%s: malformed JSON near byte %zu", path, at);
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ll_fail(err, LL_ERR_INPUT, "%s: expected a JSON object at the top level", path);
    }
    *out = j;
    return LL_OK;
}

static ll_status parse_json_file(const char *path, cJSON **out, ll_err *err) {
    char *text = NULL;
    size_t len = 0;
    int e = read_file(path, &text, &len);
    if (e) return ll_fail(err, e == ENOMEM ? LL_ERR_NOMEM : LL_ERR_IO, "cannot read %s: %s", path, strerror(e));
    ll_status st = parse_json_text(text, len, path, out, err);
    free(text);
    return st;
}

static int pretok_has_bytelevel(const tok_pretok *p) {
    if (!p) return 0;
    if (p->kind == TOK_PRE_BYTELEVEL) return 1;
    for (size_t i = 0; i < p->n_subs; i++)
        if (pretok_has_bytelevel(&p->subs[i])) return 1;
    return 0;
}

/* Which decoder steps tell how to show a token: ByteLevel (GPT-2 byte chars) or a metaspace char. */
static void decoder_display(const tok_decoder *d, ll_tokenizer *tk) {
    if (!d) return;
    if (d->kind == TOK_DEC_BYTELEVEL) tk->bytelevel_display = 1;
    if (d->kind == TOK_DEC_METASPACE) tk->meta_char = d->replacement;
    if (d->kind == TOK_DEC_REPLACE && d->re.literal && d->content_len == 1 && d->content[0] == ' ') {
        int32_t cp;
        if (tok_utf8_decode((const uint8_t *)d->re.literal, d->re.literal_len, &cp) == d->re.literal_len)
            tk->meta_char = cp;
    }
    for (size_t i = 0; i < d->n_subs; i++) decoder_display(&d->subs[i], tk);
}

static ll_status check_bytes(ll_tokenizer *tk, ll_err *err) {
    tok_bpe *m = &tk->bpe;
    /* No check for the 256 ByteLevel characters: `tokenizers` loads such vocabularies and its BPE drops a
     * character it has no token for (or gives unk_token / <0xNN> tokens), which tok_bpe.c reproduces. */
    if (m->byte_fallback) {
        for (int b = 0; b < 256; b++)
            if (m->byte_ids[b] < 0)
                return ll_fail(err, LL_ERR_INPUT,
                               "%s: model.byte_fallback is true but model.vocab lacks the token <0x%02X> (expected all "
                               "256 byte tokens)",
                               tk->path, b);
    }
    return LL_OK;
}

static ll_status build(ll_tokenizer *tk, const cJSON *j, ll_err *err) {
    const char *path = tk->path;
    char where[600];
    ll_status st;
    const cJSON *trunc = cJSON_GetObjectItemCaseSensitive(j, "truncation");
    if (trunc && !cJSON_IsNull(trunc))
        return ll_fail(err, LL_ERR_INPUT, "%s: field 'truncation' is set (not supported; expected null)", path);
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(j, "padding");
    if (pad && !cJSON_IsNull(pad)) {
        const cJSON *strat = cJSON_GetObjectItemCaseSensitive(pad, "strategy");
        if (!(cJSON_IsString(strat) && !strcmp(strat->valuestring, "BatchLongest")))
            return ll_fail(err, LL_ERR_INPUT,
                           "%s: field 'padding' has a fixed length (not supported; expected null or BatchLongest)", path);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!model) return ll_fail(err, LL_ERR_INPUT, "%s: missing field 'model'", path);
    if ((st = tok_bpe_parse(&tk->bpe, model, path, err))) return st;

    const cJSON *nj = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    if (nj && !cJSON_IsNull(nj)) {
        tk->norm = calloc(1, sizeof *tk->norm);
        if (!tk->norm) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        snprintf(where, sizeof where, "%s: normalizer", path);
        if ((st = tok_normalizer_parse(tk->norm, nj, where, err))) return st;
    }
    const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    if (pj && !cJSON_IsNull(pj)) {
        tk->pre = calloc(1, sizeof *tk->pre);
        if (!tk->pre) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        snprintf(where, sizeof where, "%s: pre_tokenizer", path);
        if ((st = tok_pretok_parse(tk->pre, pj, where, err))) return st;
    }
    const cJSON *dj = cJSON_GetObjectItemCaseSensitive(j, "decoder");
    if (dj && !cJSON_IsNull(dj)) {
        tk->dec = calloc(1, sizeof *tk->dec);
        if (!tk->dec) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
        snprintf(where, sizeof where, "%s: decoder", path);
        if ((st = tok_decoder_parse(tk->dec, dj, where, err))) return st;
    }
    if ((st = tok_added_parse(tk, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), path, err))) return st;
    if ((st = tok_post_parse(tk, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), path, err))) return st;
    if ((st = check_bytes(tk, err))) return st;

    tk->meta_char = -1;
    decoder_display(tk->dec, tk);
    if (!tk->dec && pretok_has_bytelevel(tk->pre)) tk->bytelevel_display = 1;
    tk->n_ids = tk->bpe.n_ids;
    for (size_t i = 0; i < tk->added.n; i++)
        if (tk->added.tokens[i].id >= tk->n_ids) tk->n_ids = (int64_t)tk->added.tokens[i].id + 1;
    tk->added.by_id = malloc((size_t)(tk->n_ids ? tk->n_ids : 1) * sizeof *tk->added.by_id);
    if (!tk->added.by_id) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", path);
    tk->added.n_by_id = tk->n_ids;
    for (int64_t i = 0; i < tk->n_ids; i++) tk->added.by_id[i] = -1;
    for (size_t i = 0; i < tk->added.n; i++) tk->added.by_id[tk->added.tokens[i].id] = (int32_t)i;
    for (size_t i = 0; i < tk->post.n_prefix; i++)
        if (tk->post.prefix[i] >= tk->n_ids)
            return ll_fail(err, LL_ERR_INPUT, "%s: post_processor adds id %d, beyond the vocabulary (%lld ids)", path,
                           (int)tk->post.prefix[i], (long long)tk->n_ids);
    for (size_t i = 0; i < tk->post.n_suffix; i++)
        if (tk->post.suffix[i] >= tk->n_ids)
            return ll_fail(err, LL_ERR_INPUT, "%s: post_processor adds id %d, beyond the vocabulary (%lld ids)", path,
                           (int)tk->post.suffix[i], (long long)tk->n_ids);
    return LL_OK;
}

static ll_tokenizer *tokenizer_new(void) {
    ll_tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) return NULL;
    tk->meta_char = -1;
    tk->added.raw.empty = tk->added.norm.empty = 1;
    return tk;
}

ll_status ll_tokenizer_load(const char *dir, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    tok_bytelevel_init();
    ll_tokenizer *tk = tokenizer_new();
    if (!tk) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    tk->path = path_join(dir, "tokenizer.json");
    char *cfg_path = path_join(dir, "tokenizer_config.json");
    cJSON *j = NULL, *cfg = NULL;
    ll_status st = LL_OK;
    if (!tk->path || !cfg_path) {
        st = ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
        goto done;
    }
    if ((st = parse_json_file(tk->path, &j, err))) goto done;
    if ((st = build(tk, j, err))) goto done;
    struct stat sb;
    if (stat(cfg_path, &sb) == 0) {
        if ((st = parse_json_file(cfg_path, &cfg, err))) goto done;
        if ((st = tok_post_apply_config(tk, cfg, cfg_path, err))) goto done;
    }
done:
    cJSON_Delete(j);
    cJSON_Delete(cfg);
    free(cfg_path);
    if (st) {
        ll_tokenizer_free(tk);
        return st;
    }
    *out = tk;
    return LL_OK;
}

ll_status tok_load_tree(const cJSON *j, const char *name, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    tok_bytelevel_init();
    ll_tokenizer *tk = tokenizer_new();
    if (!tk || !(tk->path = strdup(name))) {
        ll_tokenizer_free(tk);
        return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    }
    ll_status st = build(tk, j, err);
    if (st) {
        ll_tokenizer_free(tk);
        return st;
    }
    *out = tk;
    return LL_OK;
}

ll_status ll_tokenizer_load_json(const char *json, size_t len, const char *name, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    char *text = malloc(len + 1);
    if (!text) return ll_fail(err, LL_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(text, json, len);
    text[len] = 0;
    cJSON *j = NULL;
    ll_status st = parse_json_text(text, len, name, &j, err);
    if (!st) st = tok_load_tree(j, name, out, err);
    cJSON_Delete(j);
    free(text);
    return st;
}

void ll_tokenizer_free(ll_tokenizer *tk) {
    if (!tk) return;
    tok_bpe_free(&tk->bpe);
    tok_added_free(&tk->added);
    tok_normalizer_free(tk->norm);
    free(tk->norm);
    tok_pretok_free(tk->pre);
    free(tk->pre);
    tok_decoder_free(tk->dec);
    free(tk->dec);
    free(tk->post.prefix);
    free(tk->post.suffix);
    for (int i = 0; i < 3; i++) tok_buf_free(&tk->buf[i]);
    for (int i = 0; i < 2; i++) tok_plist_free(&tk->pl[i]);
    free(tk->path);
    free(tk);
}

int64_t ll_tokenizer_vocab_size(const ll_tokenizer *tk) { return tk->n_ids; }
