/* tok_gguf.c: ll_tokenizer_from_gguf: the tokenizer a GGUF file's metadata (tokenizer.ggml.*) describes.
 *
 * The metadata is turned into the tokenizer.json tree that Hugging Face would use for the same vocabulary
 * and handed to the tokenizer.json loader (tok_load_tree), so that encoding and decoding are those of the
 * tested tokenizer.json path:
 *
 *   model gpt2   byte-level BPE: tokenizer.ggml.tokens as the vocabulary (id = index), tokenizer.ggml.merges
 *                ("a b", split at the first space after the first byte, as llama.cpp does) in rank order,
 *                no unk_token (a character without a token is dropped, as llama.cpp and the StarCoder /
 *                SmolLM2 tokenizer.json files do); tokenizer.ggml.pre chooses the normalizer and the
 *                pre-tokenizer of that model family's tokenizer.json (table `pres` below); ByteLevel decoder.
 *   model llama  SentencePiece BPE as transformers' LlamaConverter builds it (legacy form): normalizer
 *                Prepend("▁") (when tokenizer.ggml.add_space_prefix, default true) + Replace(" ", "▁"),
 *                no pre-tokenizer, BPE with unk_token = the token tokenizer.ggml.unknown_token_id
 *                (default 0), fuse_unk, byte_fallback (<0xNN> tokens), merges derived from
 *                tokenizer.ggml.scores (tok_gguf_spm.c); decoder Replace("▁", " "), ByteFallback, Fuse,
 *                Strip(1 leading space when add_space_prefix).
 *
 * Both: token types 2 (unknown), 3 (control) and 4 (user-defined) become special added tokens matched in
 * the raw text (normalized false); BOS / EOS are inserted as tokenizer.ggml.add_bos_token /
 * add_eos_token say, with llama.cpp's defaults when a key is absent (llama: BOS on, ids 1 / 2; gpt2: off
 * except for the Llama-3 pre-tokenizer, ids 11 / 11 as in llama.cpp, used only when they exist).
 *
 * The file is untrusted: every key's type and every array's length is checked; a token must be valid
 * UTF-8 without NUL bytes and appear once; a merge must name two tokens whose concatenation is a token.
 * Each problem is an LL_ERR_INPUT error naming the file and the key (with the index for arrays). */
#include "ll_gguf.h"
#include "tok_gguf.h"
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_PRE "tokenizer.ggml.pre"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_MERGES "tokenizer.ggml.merges"
#define KEY_BOS "tokenizer.ggml.bos_token_id"
#define KEY_EOS "tokenizer.ggml.eos_token_id"
#define KEY_UNK "tokenizer.ggml.unknown_token_id"
#define KEY_ADD_BOS "tokenizer.ggml.add_bos_token"
#define KEY_ADD_EOS "tokenizer.ggml.add_eos_token"
#define KEY_ADD_SPACE "tokenizer.ggml.add_space_prefix"

#define MAX_TOKENS ((uint64_t)1 << 26) /* the loader's limit on ids */

/* ---- pre-tokenization of each tokenizer.ggml.pre (gpt2 models) ----
 * What the Hugging Face tokenizer.json of each family uses. llama.cpp's own splitting for these names is
 * the same regular expressions; for "default" (and a missing key) there is no Hugging Face file, so it is
 * llama.cpp's list of expressions, each splitting the pieces of the previous one (Split, Isolated). */
static const char RE_LLAMA3[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char RE_QWEN2[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                               "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const RE_DEFAULT[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
};

typedef enum gguf_pre_kind {
    PRE_DEFAULT,   /* llama.cpp's default expressions, then ByteLevel without its regex */
    PRE_GPT2,      /* ByteLevel with the GPT-2 regex */
    PRE_DIGITS,    /* Digits(individual) then ByteLevel with the GPT-2 regex (StarCoder, SmolLM) */
    PRE_LLAMA3,    /* Split(Llama-3 regex) then ByteLevel without regex; ignore_merges */
    PRE_QWEN2,     /* Split(Qwen2 regex) then ByteLevel without regex */
} gguf_pre_kind;

typedef struct gguf_pre {
    const char *name;  /* tokenizer.ggml.pre */
    gguf_pre_kind kind; /* which splitting */
    int nfc;           /* the family's tokenizer.json has an NFC normalizer */
    int add_bos;       /* llama.cpp's add_bos when tokenizer.ggml.add_bos_token is absent */
} gguf_pre;

static const gguf_pre pres[] = {
    {"default", PRE_DEFAULT, 0, 0},
    {"gpt-2", PRE_GPT2, 0, 0},
    {"olmo", PRE_GPT2, 1, 0},      /* OLMo's GPT-NeoX-derived tokenizer.json: NFC + ByteLevel */
    {"starcoder", PRE_DIGITS, 0, 0},
    {"smollm", PRE_DIGITS, 0, 0},
    {"llama-bpe", PRE_LLAMA3, 0, 1},
    {"llama3", PRE_LLAMA3, 0, 1},  /* older spellings of llama-bpe */
    {"llama-v3", PRE_LLAMA3, 0, 1},
    {"qwen2", PRE_QWEN2, 1, 0},
};

/* ---- small cJSON builders (NULL on allocation failure; cJSON functions accept NULL children) ---- */
static cJSON *obj_type(const char *type) {
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "type", type)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *add(cJSON *o, const char *k, cJSON *v) {
    if (!o || !v || !cJSON_AddItemToObject(o, k, v)) {
        cJSON_Delete(v);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *push(cJSON *arr, cJSON *v) {
    if (!arr || !v || !cJSON_AddItemToArray(arr, v)) {
        cJSON_Delete(v);
        cJSON_Delete(arr);
        return NULL;
    }
    return arr;
}

static cJSON *pattern(const char *kind, const char *s) {
    return add(cJSON_CreateObject(), kind, cJSON_CreateString(s));
}

static cJSON *pre_bytelevel(int use_regex) {
    cJSON *o = obj_type("ByteLevel");
    o = add(o, "add_prefix_space", cJSON_CreateFalse());
    o = add(o, "trim_offsets", cJSON_CreateTrue());
    return add(o, "use_regex", cJSON_CreateBool(use_regex));
}

static cJSON *pre_split(const char *regex) {
    cJSON *o = obj_type("Split");
    o = add(o, "pattern", pattern("Regex", regex));
    o = add(o, "behavior", cJSON_CreateString("Isolated"));
    return add(o, "invert", cJSON_CreateFalse());
}

static cJSON *pre_json(gguf_pre_kind kind) {
    cJSON *seq = cJSON_CreateArray();
    switch (kind) {
    case PRE_GPT2:
        cJSON_Delete(seq);
        return pre_bytelevel(1);
    case PRE_DIGITS:
        seq = push(seq, add(obj_type("Digits"), "individual_digits", cJSON_CreateTrue()));
        seq = push(seq, pre_bytelevel(1));
        break;
    case PRE_LLAMA3:
        seq = push(seq, pre_split(RE_LLAMA3));
        seq = push(seq, pre_bytelevel(0));
        break;
    case PRE_QWEN2:
        seq = push(seq, pre_split(RE_QWEN2));
        seq = push(seq, pre_bytelevel(0));
        break;
    case PRE_DEFAULT:
        for (size_t i = 0; i < sizeof RE_DEFAULT / sizeof RE_DEFAULT[0]; i++) seq = push(seq, pre_split(RE_DEFAULT[i]));
        seq = push(seq, pre_bytelevel(0));
        break;
    }
    return add(obj_type("Sequence"), "pretokenizers", seq);
}

/* LlamaConverter's normalizer and decoder (legacy form). */
static cJSON *spm_normalizer(int add_space) {
    cJSON *seq = cJSON_CreateArray();
    if (add_space) seq = push(seq, add(obj_type("Prepend"), "prepend", cJSON_CreateString("\xe2\x96\x81")));
    cJSON *rep = add(obj_type("Replace"), "pattern", pattern("String", " "));
    seq = push(seq, add(rep, "content", cJSON_CreateString("\xe2\x96\x81")));
    return add(obj_type("Sequence"), "normalizers", seq);
}

static cJSON *spm_decoder(int add_space) {
    cJSON *seq = cJSON_CreateArray();
    cJSON *rep = add(obj_type("Replace"), "pattern", pattern("String", "\xe2\x96\x81"));
    seq = push(seq, add(rep, "content", cJSON_CreateString(" ")));
    seq = push(seq, obj_type("ByteFallback"));
    seq = push(seq, obj_type("Fuse"));
    if (add_space) {
        cJSON *strip = add(obj_type("Strip"), "content", cJSON_CreateString(" "));
        strip = add(strip, "start", cJSON_CreateNumber(1));
        seq = push(seq, add(strip, "stop", cJSON_CreateNumber(0)));
    }
    return add(obj_type("Sequence"), "decoders", seq);
}

/* TemplateProcessing "[bos] $A [eos]" for the ids to insert (-1: none). */
static cJSON *template_json(const tok_gguf_vocab *v, int32_t bos, int32_t eos) {
    cJSON *single = cJSON_CreateArray(), *specials = cJSON_CreateObject();
    for (int k = 0; k < 3; k++) {
        int32_t id = k == 0 ? bos : k == 2 ? eos : -1;
        if (k == 1) {
            single = push(single, add(cJSON_CreateObject(), "Sequence",
                                      add(add(cJSON_CreateObject(), "id", cJSON_CreateString("A")), "type_id",
                                          cJSON_CreateNumber(0))));
            continue;
        }
        if (id < 0) continue;
        const char *name = k == 0 ? "bos" : "eos";
        single =
            push(single,
                 add(cJSON_CreateObject(), "SpecialToken",
                     add(add(cJSON_CreateObject(), "id", cJSON_CreateString(name)), "type_id", cJSON_CreateNumber(0))));
        cJSON *def = add(cJSON_CreateObject(), "id", cJSON_CreateString(name));
        def = add(def, "ids", cJSON_CreateIntArray(&id, 1));
        cJSON *toks = push(cJSON_CreateArray(), cJSON_CreateString(v->tok[id]));
        specials = add(specials, name, add(def, "tokens", toks));
    }
    cJSON *o = add(obj_type("TemplateProcessing"), "single", single);
    o = add(o, "pair", cJSON_CreateArray());
    return add(o, "special_tokens", specials);
}

/* ---- reading the metadata ---- */

static int is_int_type(ll_gguf_vtype t) {
    return t == LL_GGUF_UINT8 || t == LL_GGUF_INT8 || t == LL_GGUF_UINT16 || t == LL_GGUF_INT16 ||
           t == LL_GGUF_UINT32 || t == LL_GGUF_INT32 || t == LL_GGUF_UINT64 || t == LL_GGUF_INT64;
}

/* The array at `key`: elements of `want` (LL_GGUF_STRING; LL_GGUF_INT32 for any integer type;
 * LL_GGUF_FLOAT32 for FLOAT32, FLOAT64 or integers) and, when n >= 0, exactly n of them. NULL with LL_OK
 * when absent. */
static ll_status get_array(const ll_gguf *g, const char *key, ll_gguf_vtype want, int64_t n, const ll_gguf_kv **out,
                           ll_err *err) {
    const ll_gguf_kv *kv = ll_gguf_find(g, key);
    *out = NULL;
    if (!kv) return LL_OK;
    int ok = kv->type == LL_GGUF_ARRAY;
    if (ok && want == LL_GGUF_STRING) ok = kv->arr_type == LL_GGUF_STRING;
    if (ok && want == LL_GGUF_INT32) ok = is_int_type(kv->arr_type);
    if (ok && want == LL_GGUF_FLOAT32)
        ok = kv->arr_type == LL_GGUF_FLOAT32 || kv->arr_type == LL_GGUF_FLOAT64 || is_int_type(kv->arr_type);
    if (!ok) {
        const char *what = want == LL_GGUF_STRING ? "strings" : want == LL_GGUF_INT32 ? "integers" : "numbers";
        if (kv->type == LL_GGUF_ARRAY)
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is an array of %s (expected an array of %s)", g->name, key,
                           ll_gguf_vtype_name(kv->arr_type), what);
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s has type %s (expected an array of %s)", g->name, key,
                       ll_gguf_vtype_name(kv->type), what);
    }
    if (n >= 0 && kv->arr_n != (uint64_t)n)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s has %llu entries but %s has %lld (expected one per token)",
                       g->name, key, (unsigned long long)kv->arr_n, KEY_TOKENS, (long long)n);
    *out = kv;
    return LL_OK;
}

/* Copies a GGUF string into a NUL-terminated one after checking it (valid UTF-8, no NUL). */
static ll_status take_string(const ll_gguf *g, const char *key, uint64_t i, ll_gguf_str s, char **out, ll_err *err) {
    *out = NULL;
    if (s.len && memchr(s.ptr, 0, s.len))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] contains a NUL byte (not supported)", g->name, key,
                       (unsigned long long)i);
    if (s.len && !tok_utf8_valid((const uint8_t *)s.ptr, s.len))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] is not valid UTF-8", g->name, key, (unsigned long long)i);
    *out = malloc(s.len + 1);
    if (!*out) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory reading %s", g->name, key);
    if (s.len) memcpy(*out, s.ptr, s.len);
    (*out)[s.len] = 0;
    return LL_OK;
}

static void vocab_free(tok_gguf_vocab *v) {
    for (uint64_t i = 0; v->tok && i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->type);
    free(v->score);
    tok_strmap_free(&v->ids);
    memset(v, 0, sizeof *v);
}

static ll_status read_vocab(const ll_gguf *g, int spm, tok_gguf_vocab *v, ll_err *err) {
    const ll_gguf_kv *kv, *types, *scores;
    ll_status st = get_array(g, KEY_TOKENS, LL_GGUF_STRING, -1, &kv, err);
    if (st) return st;
    if (!kv)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is missing (the tokenizer's vocabulary)", g->name, KEY_TOKENS);
    if (kv->arr_n == 0 || kv->arr_n > MAX_TOKENS)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s has %llu tokens (expected 1 to 2^26)", g->name, KEY_TOKENS,
                       (unsigned long long)kv->arr_n);
    v->n = kv->arr_n;
    if ((st = get_array(g, KEY_TYPES, LL_GGUF_INT32, (int64_t)v->n, &types, err))) return st;
    if ((st = get_array(g, KEY_SCORES, LL_GGUF_FLOAT32, (int64_t)v->n, &scores, err))) return st;
    if (spm && !scores)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is missing (a llama tokenizer's merges come from its scores)",
                       g->name, KEY_SCORES);
    v->tok = calloc(v->n, sizeof *v->tok);
    v->len = calloc(v->n, sizeof *v->len);
    v->type = calloc(v->n, sizeof *v->type);
    if (spm) v->score = calloc(v->n, sizeof *v->score);
    if (!v->tok || !v->len || !v->type || (spm && !v->score))
        return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory reading %s", g->name, KEY_TOKENS);
    for (uint64_t i = 0; i < v->n; i++) {
        ll_gguf_str s = ll_gguf_arr_str(kv, i);
        char empty[40];
        if (s.len == 0) { /* as llama.cpp: an empty token cannot be matched; give it a name */
            snprintf(empty, sizeof empty, "[EMPTY_%llu]", (unsigned long long)i);
            s.ptr = empty;
            s.len = strlen(empty);
        }
        if ((st = take_string(g, KEY_TOKENS, i, s, &v->tok[i], err))) return st;
        v->len[i] = s.len;
        int32_t prev;
        if (tok_strmap_get(&v->ids, v->tok[i], s.len, &prev))
            return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] '%s' is also token %d (each token must appear once)",
                           g->name, KEY_TOKENS, (unsigned long long)i, v->tok[i], (int)prev);
        if (tok_strmap_put(&v->ids, v->tok[i], s.len, (int32_t)i))
            return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory reading %s", g->name, KEY_TOKENS);
        v->type[i] = TOK_GGUF_NORMAL;
        if (types) {
            int64_t t = ll_gguf_arr_int(types, i);
            if (t < 0 || t > TOK_GGUF_BYTE)
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] is %lld (expected 0 to 6)", g->name, KEY_TYPES,
                               (unsigned long long)i, (long long)t);
            v->type[i] = (int32_t)t;
        }
        if (spm) {
            double sc = ll_gguf_arr_float(scores, i);
            if (is_int_type(scores->arr_type)) sc = (double)ll_gguf_arr_int(scores, i);
            if (isnan(sc))
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] is NaN", g->name, KEY_SCORES,
                               (unsigned long long)i);
            v->score[i] = sc;
        }
    }
    return LL_OK;
}

/* tokenizer.ggml.merges as [a, b] pairs, each checked as the loader would, but naming the GGUF key. */
static ll_status gpt2_merges(const ll_gguf *g, const tok_gguf_vocab *v, cJSON **out, ll_err *err) {
    const ll_gguf_kv *kv;
    ll_status st = get_array(g, KEY_MERGES, LL_GGUF_STRING, -1, &kv, err);
    if (st) return st;
    if (!kv)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is missing (a gpt2 tokenizer needs its merges)", g->name,
                       KEY_MERGES);
    if (kv->arr_n >= (uint64_t)INT32_MAX)
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s has too many entries", g->name, KEY_MERGES);
    cJSON *arr = cJSON_CreateArray();
    tok_buf cat = {0};
    char *m = NULL;
    for (uint64_t i = 0; arr && i < kv->arr_n; i++) {
        if ((st = take_string(g, KEY_MERGES, i, ll_gguf_arr_str(kv, i), &m, err))) goto fail;
        char *sp = m[0] ? strchr(m + 1, ' ') : NULL; /* the first space after the first byte, as llama.cpp */
        if (!sp) {
            st = ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] is '%s' (expected two tokens separated by a space)",
                         g->name, KEY_MERGES, (unsigned long long)i, m);
            goto fail;
        }
        *sp = 0;
        const char *part[2] = {m, sp + 1};
        int32_t id;
        for (int k = 0; k < 2; k++)
            if (!tok_strmap_get(&v->ids, part[k], strlen(part[k]), &id)) {
                st = ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] names '%s', which is not in %s", g->name, KEY_MERGES,
                             (unsigned long long)i, part[k], KEY_TOKENS);
                goto fail;
            }
        cat.n = 0;
        if (tok_buf_append(&cat, part[0], strlen(part[0])) || tok_buf_append(&cat, part[1], strlen(part[1])))
            goto nomem;
        if (!tok_strmap_get(&v->ids, cat.p, cat.n, &id)) {
            st = ll_fail(err, LL_ERR_INPUT, "gguf %s: %s[%llu] produces '%.*s', which is not in %s", g->name,
                         KEY_MERGES, (unsigned long long)i, (int)cat.n, cat.p, KEY_TOKENS);
            goto fail;
        }
        arr = push(arr, push(push(cJSON_CreateArray(), cJSON_CreateString(part[0])), cJSON_CreateString(part[1])));
        free(m);
        m = NULL;
    }
    tok_buf_free(&cat);
    if (!arr) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory reading %s", g->name, KEY_MERGES);
    *out = arr;
    return LL_OK;
nomem:
    st = ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory reading %s", g->name, KEY_MERGES);
fail:
    free(m);
    tok_buf_free(&cat);
    cJSON_Delete(arr);
    return st;
}

/* An optional token id key: *id unchanged when absent. Range checks are left to the caller, which knows
 * whether the id is used. */
static ll_status get_token_id(const ll_gguf *g, const char *key, int64_t *id, ll_err *err) {
    int found;
    int64_t x;
    ll_status st = ll_gguf_get_int(g, key, &x, &found, err);
    if (!st && found) *id = x;
    return st;
}

/* A used special token id: inside the vocabulary. `what` says why it is needed. */
static ll_status check_token_id(const ll_gguf *g, const char *key, int64_t id, int was_set, const tok_gguf_vocab *v,
                                const char *what, ll_err *err) {
    if (id >= 0 && (uint64_t)id < v->n) return LL_OK;
    if (!was_set) return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s but %s is not set", g->name, what, key);
    return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is %lld, outside the vocabulary (%llu tokens)", g->name, key,
                   (long long)id, (unsigned long long)v->n);
}

static ll_status get_flag(const ll_gguf *g, const char *key, int *flag, ll_err *err) {
    int found, x;
    ll_status st = ll_gguf_get_bool(g, key, &x, &found, err);
    if (!st && found) *flag = x != 0;
    return st;
}

/* Builds the tokenizer.json tree; *out owns it. */
static ll_status build_tree(const ll_gguf *g, int spm, const gguf_pre *pre, tok_gguf_vocab *v, cJSON **out,
                            ll_err *err) {
    ll_status st;
    cJSON *merges = NULL;
    /* Special tokens and flags, llama.cpp's defaults first; a default id outside the vocabulary counts as
     * unset, an id from the file outside it is an error when the id is used (llama.cpp warns and ignores
     * it). The unknown token matters to llama models only (gpt2 models drop what has no token). */
    int64_t bos = spm ? 1 : 11, eos = spm ? 2 : 11, unk = spm ? 0 : -1;
    int add_bos = spm ? 1 : pre->add_bos, add_eos = 0, add_space = 1;
    if ((st = get_token_id(g, KEY_BOS, &bos, err)) || (st = get_token_id(g, KEY_EOS, &eos, err)) ||
        (spm && (st = get_token_id(g, KEY_UNK, &unk, err))) || (st = get_flag(g, KEY_ADD_BOS, &add_bos, err)) ||
        (st = get_flag(g, KEY_ADD_EOS, &add_eos, err)) || (spm && (st = get_flag(g, KEY_ADD_SPACE, &add_space, err))))
        return st;
    int bos_set = ll_gguf_find(g, KEY_BOS) != NULL, eos_set = ll_gguf_find(g, KEY_EOS) != NULL;
    if ((add_bos && (st = check_token_id(g, KEY_BOS, bos, bos_set, v, KEY_ADD_BOS " is true", err))) ||
        (add_eos && (st = check_token_id(g, KEY_EOS, eos, eos_set, v, KEY_ADD_EOS " is true", err))) ||
        (spm && (st = check_token_id(g, KEY_UNK, unk, ll_gguf_find(g, KEY_UNK) != NULL, v,
                                     "a llama tokenizer needs an unknown token", err))))
        return st;

    if ((st = spm ? tok_gguf_spm_merges(g->name, v, &merges, err) : gpt2_merges(g, v, &merges, err))) return st;

    cJSON *vocab = cJSON_CreateObject();
    for (uint64_t i = 0; vocab && i < v->n; i++) vocab = add(vocab, v->tok[i], cJSON_CreateNumber((double)i));
    cJSON *model = obj_type("BPE");
    model = add(model, "dropout", cJSON_CreateNull());
    model = add(model, "unk_token", spm ? cJSON_CreateString(v->tok[(size_t)unk]) : cJSON_CreateNull());
    model = add(model, "fuse_unk", cJSON_CreateBool(spm));
    model = add(model, "byte_fallback", cJSON_CreateBool(spm));
    model = add(model, "ignore_merges", cJSON_CreateBool(!spm && pre->kind == PRE_LLAMA3));
    model = add(model, "vocab", vocab);
    model = add(model, "merges", merges);

    cJSON *added = cJSON_CreateArray();
    for (uint64_t i = 0; added && i < v->n; i++) {
        int t = v->type[i];
        if (t != TOK_GGUF_UNKNOWN && t != TOK_GGUF_CONTROL && t != TOK_GGUF_USER_DEFINED) continue;
        cJSON *a = add(cJSON_CreateObject(), "id", cJSON_CreateNumber((double)i));
        a = add(a, "content", cJSON_CreateString(v->tok[i]));
        a = add(a, "single_word", cJSON_CreateFalse());
        a = add(a, "lstrip", cJSON_CreateFalse());
        a = add(a, "rstrip", cJSON_CreateFalse());
        a = add(a, "normalized", cJSON_CreateFalse());
        added = push(added, add(a, "special", cJSON_CreateTrue()));
    }

    cJSON *root = cJSON_CreateObject();
    root = add(root, "model", model);
    root = add(root, "added_tokens", added);
    if (spm) {
        root = add(root, "normalizer", spm_normalizer(add_space));
        root = add(root, "decoder", spm_decoder(add_space));
    } else {
        if (pre->nfc) root = add(root, "normalizer", obj_type("NFC"));
        root = add(root, "pre_tokenizer", pre_json(pre->kind));
        root = add(root, "decoder", pre_bytelevel(1));
    }
    if (add_bos || add_eos)
        root = add(root, "post_processor", template_json(v, add_bos ? (int32_t)bos : -1, add_eos ? (int32_t)eos : -1));
    if (!root) return ll_fail(err, LL_ERR_NOMEM, "gguf %s: out of memory building the tokenizer", g->name);
    *out = root;
    return LL_OK;
}

ll_status ll_tokenizer_from_gguf(const ll_gguf *g, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    ll_gguf_str s;
    int found;
    ll_status st = ll_gguf_get_str(g, KEY_MODEL, &s, &found, err);
    if (st || !found) return st;
    char model[64], pre_name[64] = "default";
    if (s.len >= sizeof model || memchr(s.ptr, 0, s.len))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is not a known tokenizer model (supported: gpt2, llama)",
                       g->name, KEY_MODEL);
    memcpy(model, s.ptr, s.len);
    model[s.len] = 0;
    if (!strcmp(model, "none") || !strcmp(model, "no_vocab")) return LL_OK; /* llama.cpp: the model has no vocabulary */
    int spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2"))
        return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is '%s' (supported: gpt2, llama)", g->name, KEY_MODEL, model);

    const gguf_pre *pre = &pres[0];
    if (!spm) { /* llama.cpp has no pre-tokenizer for llama (SentencePiece) vocabularies */
        if ((st = ll_gguf_get_str(g, KEY_PRE, &s, &found, err))) return st;
        if (found) {
            if (s.len >= sizeof pre_name || memchr(s.ptr, 0, s.len) || !tok_utf8_valid((const uint8_t *)s.ptr, s.len))
                return ll_fail(err, LL_ERR_INPUT, "gguf %s: %s is not a known pre-tokenizer name", g->name, KEY_PRE);
            memcpy(pre_name, s.ptr, s.len);
            pre_name[s.len] = 0;
        }
        pre = NULL;
        for (size_t i = 0; i < sizeof pres / sizeof pres[0] && !pre; i++)
            if (!strcmp(pres[i].name, pre_name)) pre = &pres[i];
        if (!pre)
            return ll_fail(
                err, LL_ERR_INPUT,
                "gguf %s: %s is '%s', a pre-tokenizer this code cannot reproduce (supported: default, gpt-2, "
                "olmo, starcoder, smollm, llama-bpe, llama3, llama-v3, qwen2)",
                g->name, KEY_PRE, pre_name);
    }

    tok_gguf_vocab v = {0};
    cJSON *root = NULL;
    char name[600];
    snprintf(name, sizeof name, "gguf %s tokenizer", g->name);
    if (!(st = read_vocab(g, spm, &v, err)) && !(st = build_tree(g, spm, pre, &v, &root, err)))
        st = tok_load_tree(root, name, out, err);
    cJSON_Delete(root);
    vocab_free(&v);
    return st;
}
