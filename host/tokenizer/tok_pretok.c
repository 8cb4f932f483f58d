/* tok_pretok.c: tokenizer.json pre-tokenizers: ByteLevel, Split, Metaspace, Digits, Whitespace,
 * WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit and Sequence. Each one maps a
 * piece to new pieces exactly as the same-named `tokenizers` pre-tokenizer does. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* GPT-2's pattern, as `tokenizers`' ByteLevel uses it when use_regex is true. */
static const char *GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jbool(const cJSON *o, const char *k, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

static ll_status one_char(const char *s, const char *where, const char *field, int32_t *cp, ll_err *err) {
    size_t n = s ? strlen(s) : 0;
    if (!s || !n || tok_utf8_decode((const uint8_t *)s, n, cp) != n)
        return ll_fail(err, LL_ERR_INPUT, "%s: field '%s' must be a string of exactly one character", where, field);
    return LL_OK;
}

ll_status tok_prepend_scheme_parse(const cJSON *j, const char *where, tok_prepend_scheme *out, ll_err *err) {
    const char *ps = jstr(j, "prepend_scheme");
    if (ps) {
        if (!strcmp(ps, "always")) *out = TOK_PREPEND_ALWAYS;
        else if (!strcmp(ps, "first")) *out = TOK_PREPEND_FIRST;
        else if (!strcmp(ps, "never")) *out = TOK_PREPEND_NEVER;
        else
            return ll_fail(err, LL_ERR_INPUT, "%s: field 'prepend_scheme' must be always, first or never (got '%s')",
                           where, ps);
    } else {
        *out = jbool(j, "add_prefix_space", 1) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    }
    return LL_OK;
}

ll_status tok_pretok_parse(tok_pretok *pt, const cJSON *j, const char *where, ll_err *err) {
    memset(pt, 0, sizeof *pt);
    const char *type = jstr(j, "type");
    if (!type) return ll_fail(err, LL_ERR_INPUT, "%s: pre-tokenizer without a string field 'type'", where);
    char sub[512];
    ll_status st;
    if (!strcmp(type, "ByteLevel")) {
        pt->kind = TOK_PRE_BYTELEVEL;
        pt->add_prefix_space = jbool(j, "add_prefix_space", 1);
        pt->use_regex = jbool(j, "use_regex", 1);
        if (pt->use_regex && (st = tok_regex_compile(&pt->re, GPT2_PATTERN, where, err))) return st;
    } else if (!strcmp(type, "Split")) {
        pt->kind = TOK_PRE_SPLIT;
        if ((st = tok_regex_from_json(&pt->re, cJSON_GetObjectItemCaseSensitive(j, "pattern"), where, err))) return st;
        if ((st = tok_split_behavior_parse(j, where, &pt->behavior, err))) return st;
        pt->invert = jbool(j, "invert", 0);
    } else if (!strcmp(type, "Metaspace")) {
        pt->kind = TOK_PRE_METASPACE;
        const char *r = jstr(j, "replacement");
        if ((st = one_char(r ? r : "\xE2\x96\x81", where, "replacement", &pt->replacement, err))) return st;
        if ((st = tok_prepend_scheme_parse(j, where, &pt->prepend, err))) return st;
        pt->split = jbool(j, "split", 1);
    } else if (!strcmp(type, "Digits")) {
        pt->kind = TOK_PRE_DIGITS;
        pt->individual_digits = jbool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Whitespace")) {
        pt->kind = TOK_PRE_WHITESPACE;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        pt->kind = TOK_PRE_WHITESPACE_SPLIT;
    } else if (!strcmp(type, "Punctuation")) {
        pt->kind = TOK_PRE_PUNCTUATION;
        if ((st = tok_split_behavior_parse(j, where, &pt->behavior, err))) return st;
    } else if (!strcmp(type, "BertPreTokenizer")) {
        pt->kind = TOK_PRE_BERT;
    } else if (!strcmp(type, "CharDelimiterSplit")) {
        pt->kind = TOK_PRE_CHAR_DELIMITER;
        if ((st = one_char(jstr(j, "delimiter"), where, "delimiter", &pt->replacement, err))) return st;
    } else if (!strcmp(type, "Sequence")) {
        pt->kind = TOK_PRE_SEQUENCE;
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(arr))
            return ll_fail(err, LL_ERR_INPUT, "%s: Sequence pre-tokenizer needs an array field 'pretokenizers'", where);
        int n = cJSON_GetArraySize(arr);
        pt->subs = calloc(n ? (size_t)n : 1, sizeof *pt->subs);
        if (!pt->subs) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
        for (int i = 0; i < n; i++) {
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", where, i);
            st = tok_pretok_parse(&pt->subs[i], cJSON_GetArrayItem(arr, i), sub, err);
            pt->n_subs = (size_t)i + 1;
            if (st) return st;
        }
    } else {
        return ll_fail(err, LL_ERR_INPUT,
                       "%s: pre-tokenizer type '%s' is not supported (supported: ByteLevel, Split, Metaspace, "
                       "Digits, Whitespace, WhitespaceSplit, Punctuation, BertPreTokenizer, CharDelimiterSplit, "
                       "Sequence)",
                       where, type);
    }
    return LL_OK;
}

typedef int (*char_pred)(int32_t cp, int32_t arg);

static int pred_eq(int32_t cp, int32_t arg) { return cp == arg; }
static int pred_ws(int32_t cp, int32_t arg) { (void)arg; return tok_uni_is_whitespace(cp); }
static int pred_punct(int32_t cp, int32_t arg) { (void)arg; return tok_uni_is_punct(cp); }
static int pred_num(int32_t cp, int32_t arg) { (void)arg; return tok_uni_is_numeric(cp); }

/* `tokenizers`' Pattern for a char predicate: every matching char is its own match span; runs of
 * non-matching chars form one span. */
static int pred_spans(const char *s, size_t n, char_pred f, int32_t arg, tok_spans *sp) {
    sp->n = 0;
    if (n == 0) return tok_spans_push(sp, 0, 0, 0);
    size_t i = 0, run = 0;
    while (i < n) {
        int32_t cp;
        size_t l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!l) l = 1, cp = 0xFFFD;
        if (f(cp, arg)) {
            if (run < i && tok_spans_push(sp, run, i, 0)) return -1;
            if (tok_spans_push(sp, i, i + l, 1)) return -1;
            run = i + l;
        }
        i += l;
    }
    if (run < n && tok_spans_push(sp, run, n, 0)) return -1;
    return 0;
}

/* Whitespace: `\w+|[^\w\s]+` kept, whitespace removed (runs of word chars and runs of other chars). */
static int whitespace_split(const char *s, size_t n, int at_start, tok_buf *out, tok_plist *pl) {
    size_t i = 0, rs = 0;
    int cls = -1; /* 0 word, 1 other, 2 space */
    while (i <= n) {
        int c = 2;
        size_t l = 1;
        if (i < n) {
            int32_t cp;
            l = tok_utf8_decode((const uint8_t *)s + i, n - i, &cp);
            if (!l) l = 1, cp = 0xFFFD;
            c = tok_uni_is_alnum_word(cp) ? 0 : tok_uni_is_whitespace(cp) ? 2 : 1;
        }
        if (c != cls || i == n) {
            if (cls == 0 || cls == 1) {
                size_t off = out->n;
                if (tok_buf_append(out, s + rs, i - rs)) return -1;
                if (tok_plist_push(pl, off, i - rs, -1, at_start && rs == 0)) return -1;
            }
            cls = c;
            rs = i;
        }
        if (i == n) break;
        i += l;
    }
    return 0;
}

static int bytelevel_map(const char *s, size_t n, tok_buf *out) {
    if (tok_buf_reserve(out, 2 * n)) return -1;
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        size_t l = tok_utf8_encode(tok_bytelevel_cp[(uint8_t)s[i]], enc);
        memcpy(out->p + out->n, enc, l);
        out->n += l;
    }
    return 0;
}

/* Applies a non-Sequence pre-tokenizer to one piece. */
static ll_status piece_apply(tok_pretok *pt, const char *s, size_t n, int at_start, tok_buf *out, tok_plist *pl,
                             tok_spans *sp, tok_buf *tmp, ll_err *err) {
    int e = 0, r;
    switch (pt->kind) {
    case TOK_PRE_BYTELEVEL: {
        const char *src = s;
        size_t len = n;
        if (pt->add_prefix_space && (n == 0 || s[0] != ' ')) {
            tmp->n = 0;
            if (tok_buf_append(tmp, " ", 1) || tok_buf_append(tmp, s, n)) goto nomem;
            src = tmp->p;
            len = tmp->n;
        }
        if (pt->use_regex) {
            r = tok_regex_spans(&pt->re, src, len, 0, sp, err);
            if (r == -1) return LL_ERR_INPUT;
            if (r == -2) goto nomem;
        } else {
            sp->n = 0;
            if (tok_spans_push(sp, 0, len, 0)) goto nomem;
        }
        for (size_t i = 0; i < sp->n; i++) {
            size_t a = sp->v[i].start, b = sp->v[i].end;
            if (a == b) continue;
            size_t off = out->n;
            if (bytelevel_map(src + a, b - a, out)) goto nomem;
            if (tok_plist_push(pl, off, out->n - off, -1, at_start && a == 0)) goto nomem;
        }
        return LL_OK;
    }
    case TOK_PRE_SPLIT:
        r = tok_regex_spans(&pt->re, s, n, pt->invert, sp, err);
        if (r == -1) return LL_ERR_INPUT;
        if (r == -2) goto nomem;
        e = tok_split_emit(sp, pt->behavior, s, at_start, out, pl);
        break;
    case TOK_PRE_METASPACE: {
        char rep[4];
        size_t rl = tok_utf8_encode(pt->replacement, rep);
        tmp->n = 0;
        int starts = n >= rl && memcmp(s, rep, rl) == 0;
        if (!starts && n > 0 && s[0] == ' ') starts = 1; /* the space becomes the replacement below */
        if (!starts && (pt->prepend == TOK_PREPEND_ALWAYS || (pt->prepend == TOK_PREPEND_FIRST && at_start)))
            if (tok_buf_append(tmp, rep, rl)) goto nomem;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ' ' ? tok_buf_append(tmp, rep, rl) : tok_buf_append(tmp, s + i, 1)) goto nomem;
        if (pt->split) {
            if (pred_spans(tmp->p, tmp->n, pred_eq, pt->replacement, sp)) goto nomem;
            e = tok_split_emit(sp, TOK_SPLIT_MERGED_WITH_NEXT, tmp->p, at_start, out, pl);
        } else if (tmp->n) {
            size_t off = out->n;
            e = tok_buf_append(out, tmp->p, tmp->n) || tok_plist_push(pl, off, tmp->n, -1, at_start);
        }
        break;
    }
    case TOK_PRE_DIGITS:
        if (pred_spans(s, n, pred_num, 0, sp)) goto nomem;
        e = tok_split_emit(sp, pt->individual_digits ? TOK_SPLIT_ISOLATED : TOK_SPLIT_CONTIGUOUS, s, at_start, out, pl);
        break;
    case TOK_PRE_WHITESPACE:
        e = whitespace_split(s, n, at_start, out, pl);
        break;
    case TOK_PRE_WHITESPACE_SPLIT:
        if (pred_spans(s, n, pred_ws, 0, sp)) goto nomem;
        e = tok_split_emit(sp, TOK_SPLIT_REMOVED, s, at_start, out, pl);
        break;
    case TOK_PRE_PUNCTUATION:
        if (pred_spans(s, n, pred_punct, 0, sp)) goto nomem;
        e = tok_split_emit(sp, pt->behavior, s, at_start, out, pl);
        break;
    case TOK_PRE_CHAR_DELIMITER:
        if (pred_spans(s, n, pred_eq, pt->replacement, sp)) goto nomem;
        e = tok_split_emit(sp, TOK_SPLIT_REMOVED, s, at_start, out, pl);
        break;
    case TOK_PRE_BERT: {
        /* Whitespace removed, then each punctuation char isolated. */
        tok_plist mid = {0};
        tok_buf mb = {0};
        if (pred_spans(s, n, pred_ws, 0, sp) || tok_split_emit(sp, TOK_SPLIT_REMOVED, s, at_start, &mb, &mid)) e = 1;
        for (size_t i = 0; !e && i < mid.n; i++) {
            const char *ps = mb.p + mid.v[i].off;
            if (pred_spans(ps, mid.v[i].len, pred_punct, 0, sp) ||
                tok_split_emit(sp, TOK_SPLIT_ISOLATED, ps, mid.v[i].at_start, out, pl))
                e = 1;
        }
        tok_plist_free(&mid);
        tok_buf_free(&mb);
        break;
    }
    case TOK_PRE_SEQUENCE:
        return ll_fail(err, LL_ERR_INTERNAL, "pre-tokenizer: nested Sequence reached piece_apply");
    }
    if (!e) return LL_OK;
nomem:
    return ll_fail(err, LL_ERR_NOMEM, "pre-tokenizer: out of memory");
}

static ll_status apply_one(tok_pretok *pt, const tok_plist *in, const tok_buf *inbuf, tok_plist *out,
                           tok_buf *outbuf, ll_err *err) {
    tok_spans sp = {0};
    tok_buf tmp = {0};
    ll_status st = LL_OK;
    for (size_t i = 0; !st && i < in->n; i++) {
        const tok_piece *p = &in->v[i];
        if (p->id >= 0) {
            if (tok_plist_push(out, 0, 0, p->id, p->at_start))
                st = ll_fail(err, LL_ERR_NOMEM, "pre-tokenizer: out of memory");
            continue;
        }
        st = piece_apply(pt, inbuf->p + p->off, p->len, p->at_start, outbuf, out, &sp, &tmp, err);
    }
    tok_spans_free(&sp);
    tok_buf_free(&tmp);
    return st;
}

ll_status tok_pretok_apply(tok_pretok *pt, const tok_plist *in, const tok_buf *inbuf, tok_plist *out,
                           tok_buf *outbuf, ll_err *err) {
    if (pt->kind != TOK_PRE_SEQUENCE) return apply_one(pt, in, inbuf, out, outbuf, err);
    if (pt->n_subs == 0) {
        for (size_t i = 0; i < in->n; i++) {
            const tok_piece *p = &in->v[i];
            size_t off = outbuf->n;
            if ((p->id < 0 && tok_buf_append(outbuf, inbuf->p + p->off, p->len)) ||
                tok_plist_push(out, off, p->len, p->id, p->at_start))
                return ll_fail(err, LL_ERR_NOMEM, "pre-tokenizer: out of memory");
        }
        return LL_OK;
    }
    /* Ping-pong through scratch lists; the last stage writes to out. */
    tok_plist la = {0}, lb = {0};
    tok_buf ba = {0}, bb = {0};
    const tok_plist *cur = in;
    const tok_buf *curb = inbuf;
    ll_status st = LL_OK;
    for (size_t k = 0; !st && k < pt->n_subs; k++) {
        int last = k + 1 == pt->n_subs;
        tok_plist *dst = last ? out : (cur == &la ? &lb : &la);
        tok_buf *dstb = last ? outbuf : (cur == &la ? &bb : &ba);
        if (!last) {
            dst->n = 0;
            dstb->n = 0;
        }
        st = tok_pretok_apply(&pt->subs[k], cur, curb, dst, dstb, err);
        cur = dst;
        curb = dstb;
    }
    tok_plist_free(&la);
    tok_plist_free(&lb);
    tok_buf_free(&ba);
    tok_buf_free(&bb);
    return st;
}

void tok_pretok_free(tok_pretok *pt) {
    if (!pt) return;
    for (size_t i = 0; i < pt->n_subs; i++) tok_pretok_free(&pt->subs[i]);
    free(pt->subs);
    tok_regex_free(&pt->re);
    memset(pt, 0, sizeof *pt);
}
