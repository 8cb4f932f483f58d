/* tok_synth.c: ll_tokenizer_write_synth: a real tokenizer.json (+ tokenizer_config.json) for the
 * synthetic models of `logitlens synth`, in one of three styles, with exactly vocab_size ids:
 *   gpt2          byte-level BPE, GPT-2 pre-tokenizer; ids 0..255 the bytes, merges, last id
 *                 <|endoftext|>; merges written as "a b" strings.
 *   llama3        Llama-3 Split regex + ByteLevel, ignore_merges, BOS <|begin_of_text|> added by a
 *                 TemplateProcessing; the last two ids are <|begin_of_text|>, <|end_of_text|>;
 *                 merges written as [a, b] pairs.
 *   sentencepiece Llama-2 style: Prepend("▁") + Replace(" ", "▁") normalizers, BPE with byte_fallback
 *                 and fuse_unk; ids 0..2 <unk> <s> </s>, 3..258 <0x00>..<0xFF>, then characters and
 *                 merges; BOS added (add_bos_token).
 * Ids the merges do not fill are reserved tokens that no text produces. */
#include "tok_synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *LLAMA3_PATTERN =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

#define N_SENTENCES 3000

typedef enum { STYLE_GPT2, STYLE_LLAMA3, STYLE_SP } synth_style;

/* Words of the training text with their counts; each word as alphabet indices. */
typedef struct words {
    tok_strmap index;  /* word text -> word number */
    char **text;       /* word text per word (borrowed from index keys) */
    size_t *len;       /* byte length per word */
    uint32_t *count;   /* occurrences per word */
    size_t n, cap;
} words;

static int words_add(words *w, const char *s, size_t n) {
    if (n == 0) return 0;
    int32_t k;
    if (tok_strmap_get(&w->index, s, n, &k)) {
        w->count[k]++;
        return 0;
    }
    if (w->n == w->cap) {
        size_t c = w->cap ? w->cap * 2 : 256;
        uint32_t *cnt = realloc(w->count, c * sizeof *cnt);
        if (!cnt) return -1;
        w->count = cnt;
        w->cap = c;
    }
    if (tok_strmap_put(&w->index, s, n, (int32_t)w->n)) return -1;
    w->count[w->n++] = 1;
    return 0;
}

static void words_free(words *w) {
    tok_strmap_free(&w->index);
    free(w->count);
    memset(w, 0, sizeof *w);
}

static int cls(char c) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 0;
    if (c >= '0' && c <= '9') return 1;
    if (c == ' ' || c == '\n') return 3;
    return 2;
}

/* GPT-2-like split of ASCII text: an optional space, then a run of one class. */
static int split_bytelevel(const char *t, size_t n, words *w) {
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        if (t[i] == '\n') {
            while (i < n && t[i] == '\n') i++;
        } else {
            if (t[i] == ' ' && i + 1 < n && cls(t[i + 1]) != 3) i++;
            int c = cls(t[i]);
            while (i < n && cls(t[i]) == c && t[i] != '\n') i++;
        }
        if (words_add(w, t + s, i - s)) return -1;
    }
    return 0;
}

/* SentencePiece-like split: "▁" + the text up to the next space (spaces become "▁"). */
static int split_sp(const char *t, size_t n, words *w) {
    tok_buf b = {0};
    size_t i = 0;
    int rc = 0;
    while (i < n && !rc) {
        b.n = 0;
        rc = tok_buf_append(&b, "\xE2\x96\x81", 3);
        while (!rc && i < n && t[i] == ' ') i++;
        while (!rc && i < n && t[i] != ' ') rc = tok_buf_append(&b, t + i++, 1);
        if (!rc && b.n > 3) rc = words_add(w, b.p, b.n);
    }
    tok_buf_free(&b);
    return rc;
}

static cJSON *added_token(int id, const char *content) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", id);
    cJSON_AddStringToObject(o, "content", content);
    cJSON_AddBoolToObject(o, "single_word", 0);
    cJSON_AddBoolToObject(o, "lstrip", 0);
    cJSON_AddBoolToObject(o, "rstrip", 0);
    cJSON_AddBoolToObject(o, "normalized", 0);
    cJSON_AddBoolToObject(o, "special", 1);
    return o;
}

static cJSON *template_bos(const char *bos, int bos_id) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(p, "single");
    cJSON *pair = cJSON_AddArrayToObject(p, "pair");
    for (int k = 0; k < 2; k++) {
        cJSON *arr = k ? pair : single;
        cJSON *st = cJSON_CreateObject(), *sti = cJSON_AddObjectToObject(st, "SpecialToken");
        cJSON_AddStringToObject(sti, "id", bos);
        cJSON_AddNumberToObject(sti, "type_id", 0);
        cJSON_AddItemToArray(arr, st);
        const char *seqs[2] = {"A", "B"};
        for (int s = 0; s <= k; s++) {
            cJSON *sq = cJSON_CreateObject(), *sqi = cJSON_AddObjectToObject(sq, "Sequence");
            cJSON_AddStringToObject(sqi, "id", seqs[s]);
            cJSON_AddNumberToObject(sqi, "type_id", s);
            cJSON_AddItemToArray(arr, sq);
        }
    }
    cJSON *sp = cJSON_AddObjectToObject(p, "special_tokens");
    cJSON *e = cJSON_AddObjectToObject(sp, bos);
    cJSON_AddStringToObject(e, "id", bos);
    cJSON *ids = cJSON_AddArrayToObject(e, "ids");
    cJSON_AddItemToArray(ids, cJSON_CreateNumber(bos_id));
    cJSON *toks = cJSON_AddArrayToObject(e, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString(bos));
    return p;
}

static cJSON *typed(const char *type) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static cJSON *bytelevel(int use_regex) {
    cJSON *o = typed("ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", 0);
    cJSON_AddBoolToObject(o, "trim_offsets", 1);
    cJSON_AddBoolToObject(o, "use_regex", use_regex);
    return o;
}

static ll_status write_json(const char *dir, const char *name, cJSON *j, ll_err *err) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    char *text = cJSON_Print(j);
    ll_status st = LL_OK;
    if (!path || !text) {
        st = ll_fail(err, LL_ERR_NOMEM, "tokenizer synth: out of memory");
        goto done;
    }
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        st = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        goto done;
    }
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, f) != len || fputc('\n', f) == EOF;
    if (fclose(f) || bad) st = ll_fail(err, LL_ERR_IO, "cannot write %s: %s", path, strerror(errno));
done:
    free(path);
    free(text);
    return st;
}

/* Learns the vocabulary: alphabet (bytes, or characters by frequency) plus merges within budget. */
static int learn(synth_style style, uint64_t seed, size_t budget, tok_synth_vocab *v, size_t *n_alpha) {
    tok_buf text = {0};
    words w = {0};
    int32_t **seqs = NULL;
    size_t *lens = NULL;
    int rc = tok_synth_text(seed, N_SENTENCES, &text);
    if (!rc) rc = style == STYLE_SP ? split_sp(text.p, text.n, &w) : split_bytelevel(text.p, text.n, &w);
    if (rc) goto done;
    seqs = calloc(w.n ? w.n : 1, sizeof *seqs);
    lens = calloc(w.n ? w.n : 1, sizeof *lens);
    if (!seqs || !lens) goto fail;
    int32_t byte_sym[256]; /* byte (or, for sentencepiece, first byte of a char) -> alphabet index */
    tok_strmap chars = {0}; /* sentencepiece: char -> alphabet index */
    if (style != STYLE_SP) {
        tok_bytelevel_init();
        for (int b = 0; b < 256; b++) {
            char enc[5] = {0};
            enc[tok_utf8_encode(tok_bytelevel_cp[b], enc)] = 0;
            char **t = realloc(v->tok, (v->n_tok + 1) * sizeof *t);
            if (!t) goto fail;
            v->tok = t;
            if (!(v->tok[v->n_tok] = strdup(enc))) goto fail;
            v->n_tok++;
            byte_sym[b] = b;
        }
        *n_alpha = 256;
    } else {
        /* Character frequencies over the words (all ASCII, plus the 3-byte "▁"). */
        uint64_t freq[257] = {0}; /* 256 = "▁" */
        for (size_t k = 0; k < w.n; k++) {
            const char *s = w.index.keys[k];
            for (size_t i = 0; i < w.index.key_len[k];) {
                if ((uint8_t)s[i] == 0xE2) freq[256] += w.count[k], i += 3;
                else freq[(uint8_t)s[i]] += w.count[k], i++;
            }
        }
        size_t n_chars = 0;
        for (int c = 0; c < 257; c++) n_chars += freq[c] > 0;
        size_t take = budget - budget / 4;
        if (take > n_chars) take = n_chars;
        for (size_t k = 0; k < take; k++) {
            int best = -1;
            for (int c = 0; c < 257; c++)
                if (freq[c] && (best < 0 || freq[c] > freq[best])) best = c;
            char enc[5] = {0};
            if (best == 256) strcpy(enc, "\xE2\x96\x81");
            else enc[0] = (char)best;
            freq[best] = 0;
            char **t = realloc(v->tok, (v->n_tok + 1) * sizeof *t);
            if (!t) goto fail;
            v->tok = t;
            if (!(v->tok[v->n_tok] = strdup(enc)) || tok_strmap_put(&chars, enc, strlen(enc), (int32_t)v->n_tok)) {
                tok_strmap_free(&chars);
                goto fail;
            }
            v->n_tok++;
        }
        *n_alpha = v->n_tok;
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            int32_t id;
            byte_sym[b] = tok_strmap_get(&chars, &c, 1, &id) ? id : -1;
        }
        int32_t id;
        if (!tok_strmap_get(&chars, "\xE2\x96\x81", 3, &id)) id = -1;
        byte_sym[0xE2] = id;
        tok_strmap_free(&chars);
    }
    for (size_t k = 0; k < w.n; k++) {
        const char *s = w.index.keys[k];
        size_t n = w.index.key_len[k];
        seqs[k] = malloc((n ? n : 1) * sizeof **seqs);
        if (!seqs[k]) goto fail;
        for (size_t i = 0; i < n;) {
            uint8_t b = (uint8_t)s[i];
            seqs[k][lens[k]++] = byte_sym[b];
            i += (style == STYLE_SP && b == 0xE2) ? 3 : 1;
        }
    }
    rc = tok_synth_learn(v, seqs, lens, w.count, w.n, budget > *n_alpha ? budget - *n_alpha : 0);
    goto done;
fail:
    rc = -1;
done:
    if (seqs)
        for (size_t k = 0; k < w.n; k++) free(seqs[k]);
    free(seqs);
    free(lens);
    words_free(&w);
    tok_buf_free(&text);
    return rc;
}

ll_status ll_tokenizer_write_synth(const char *dir, const char *style_name, int64_t vocab_size, uint64_t seed,
                                   ll_err *err) {
    synth_style style;
    int64_t min_v;
    if (!strcmp(style_name, "gpt2")) style = STYLE_GPT2, min_v = 257;
    else if (!strcmp(style_name, "llama3")) style = STYLE_LLAMA3, min_v = 258;
    else if (!strcmp(style_name, "sentencepiece")) style = STYLE_SP, min_v = 260;
    else
        return ll_fail(err, LL_ERR_USAGE, "tokenizer synth: style '%s' is unknown (expected gpt2, llama3 or sentencepiece)",
                       style_name);
    if (vocab_size < min_v || vocab_size > (1 << 24))
        return ll_fail(err, LL_ERR_USAGE, "tokenizer synth: vocab size %lld for style %s (expected %lld to %d)",
                       (long long)vocab_size, style_name, (long long)min_v, 1 << 24);
    int n_special = style == STYLE_GPT2 ? 1 : style == STYLE_LLAMA3 ? 2 : 0;
    int first = style == STYLE_SP ? 259 : 0; /* ids before the learned tokens */
    size_t budget = (size_t)(vocab_size - n_special - first);
    tok_synth_vocab v = {0};
    size_t n_alpha = 0;
    if (learn(style, seed, budget, &v, &n_alpha)) {
        tok_synth_vocab_free(&v);
        return ll_fail(err, LL_ERR_NOMEM, "tokenizer synth: out of memory learning merges");
    }

    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    cJSON *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject();
    cJSON *cfg = cJSON_CreateObject();
    char name[64];
    int64_t id = 0;
    if (style == STYLE_SP) {
        const char *sp[3] = {"<unk>", "<s>", "</s>"};
        for (int k = 0; k < 3; k++) {
            cJSON_AddItemToArray(added, added_token(k, sp[k]));
            cJSON_AddNumberToObject(vocab, sp[k], (double)id++);
        }
        for (int b = 0; b < 256; b++) {
            snprintf(name, sizeof name, "<0x%02X>", b);
            cJSON_AddNumberToObject(vocab, name, (double)id++);
        }
    }
    for (size_t k = 0; k < v.n_tok; k++) cJSON_AddNumberToObject(vocab, v.tok[k], (double)id++);
    for (int64_t r = 0; id < vocab_size - n_special; r++) {
        snprintf(name, sizeof name, style == STYLE_SP ? "<reserved_%lld>" : "<|reserved_%lld|>", (long long)r);
        cJSON_AddNumberToObject(vocab, name, (double)id++);
    }
    const char *specials[2] = {style == STYLE_GPT2 ? "<|endoftext|>" : "<|begin_of_text|>", "<|end_of_text|>"};
    for (int k = 0; k < n_special; k++) {
        cJSON_AddItemToArray(added, added_token((int)id, specials[k]));
        cJSON_AddNumberToObject(vocab, specials[k], (double)id++);
    }

    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    if (style == STYLE_SP) cJSON_AddStringToObject(model, "unk_token", "<unk>");
    else cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", style == STYLE_SP);
    cJSON_AddBoolToObject(model, "byte_fallback", style == STYLE_SP);
    cJSON_AddBoolToObject(model, "ignore_merges", style == STYLE_LLAMA3);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (size_t k = 0; k < v.n_merges; k++) {
        const char *a = v.tok[v.merge_a[k]], *b = v.tok[v.merge_b[k]];
        if (style == STYLE_LLAMA3) {
            cJSON *pr = cJSON_CreateArray();
            cJSON_AddItemToArray(pr, cJSON_CreateString(a));
            cJSON_AddItemToArray(pr, cJSON_CreateString(b));
            cJSON_AddItemToArray(merges, pr);
        } else {
            size_t n = strlen(a) + strlen(b) + 2;
            char *s = malloc(n);
            if (s) {
                snprintf(s, n, "%s %s", a, b);
                cJSON_AddItemToArray(merges, cJSON_CreateString(s));
                free(s);
            }
        }
    }

    if (style == STYLE_GPT2) {
        cJSON_AddNullToObject(root, "normalizer");
        cJSON_AddItemToObject(root, "pre_tokenizer", bytelevel(1));
        cJSON_AddItemToObject(root, "post_processor", bytelevel(1));
        cJSON_AddItemToObject(root, "decoder", bytelevel(1));
        cJSON_AddStringToObject(cfg, "bos_token", "<|endoftext|>");
        cJSON_AddStringToObject(cfg, "eos_token", "<|endoftext|>");
        cJSON_AddStringToObject(cfg, "unk_token", "<|endoftext|>");
        cJSON_AddStringToObject(cfg, "tokenizer_class", "GPT2Tokenizer");
    } else if (style == STYLE_LLAMA3) {
        cJSON_AddNullToObject(root, "normalizer");
        cJSON *pre = typed("Sequence"), *pts = cJSON_AddArrayToObject(pre, "pretokenizers");
        cJSON *split = typed("Split"), *pat = cJSON_AddObjectToObject(split, "pattern");
        cJSON_AddStringToObject(pat, "Regex", LLAMA3_PATTERN);
        cJSON_AddStringToObject(split, "behavior", "Isolated");
        cJSON_AddBoolToObject(split, "invert", 0);
        cJSON_AddItemToArray(pts, split);
        cJSON_AddItemToArray(pts, bytelevel(0));
        cJSON_AddItemToObject(root, "pre_tokenizer", pre);
        cJSON_AddItemToObject(root, "post_processor", template_bos(specials[0], (int)(vocab_size - 2)));
        cJSON_AddItemToObject(root, "decoder", bytelevel(1));
        cJSON_AddStringToObject(cfg, "bos_token", specials[0]);
        cJSON_AddStringToObject(cfg, "eos_token", specials[1]);
        cJSON_AddStringToObject(cfg, "tokenizer_class", "PreTrainedTokenizerFast");
    } else {
        cJSON *norm = typed("Sequence"), *ns = cJSON_AddArrayToObject(norm, "normalizers");
        cJSON *prep = typed("Prepend");
        cJSON_AddStringToObject(prep, "prepend", "\xE2\x96\x81");
        cJSON_AddItemToArray(ns, prep);
        cJSON *rep = typed("Replace"), *pat = cJSON_AddObjectToObject(rep, "pattern");
        cJSON_AddStringToObject(pat, "String", " ");
        cJSON_AddStringToObject(rep, "content", "\xE2\x96\x81");
        cJSON_AddItemToArray(ns, rep);
        cJSON_AddItemToObject(root, "normalizer", norm);
        cJSON_AddNullToObject(root, "pre_tokenizer");
        cJSON_AddItemToObject(root, "post_processor", template_bos("<s>", 1));
        cJSON *dec = typed("Sequence"), *ds = cJSON_AddArrayToObject(dec, "decoders");
        cJSON *drep = typed("Replace"), *dpat = cJSON_AddObjectToObject(drep, "pattern");
        cJSON_AddStringToObject(dpat, "String", "\xE2\x96\x81");
        cJSON_AddStringToObject(drep, "content", " ");
        cJSON_AddItemToArray(ds, drep);
        cJSON_AddItemToArray(ds, typed("ByteFallback"));
        cJSON_AddItemToArray(ds, typed("Fuse"));
        cJSON *strip = typed("Strip");
        cJSON_AddStringToObject(strip, "content", " ");
        cJSON_AddNumberToObject(strip, "start", 1);
        cJSON_AddNumberToObject(strip, "stop", 0);
        cJSON_AddItemToArray(ds, strip);
        cJSON_AddItemToObject(root, "decoder", dec);
        cJSON_AddBoolToObject(cfg, "add_bos_token", 1);
        cJSON_AddBoolToObject(cfg, "add_eos_token", 0);
        cJSON_AddStringToObject(cfg, "bos_token", "<s>");
        cJSON_AddStringToObject(cfg, "eos_token", "</s>");
        cJSON_AddStringToObject(cfg, "unk_token", "<unk>");
        cJSON_AddStringToObject(cfg, "tokenizer_class", "LlamaTokenizer");
    }
    cJSON_AddItemToObject(root, "model", model);
    tok_synth_vocab_free(&v);
    ll_status st = write_json(dir, "tokenizer.json", root, err);
    if (!st) st = write_json(dir, "tokenizer_config.json", cfg, err);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return st;
}
