/* tok_regex.c: the regular expressions of tokenizer.json (Split, Replace, ByteLevel's GPT-2 pattern,
 * Whitespace) run with PCRE2 in UTF + UCP mode.
 *
 * `tokenizers` compiles these patterns with Oniguruma (Ruby syntax). Two differences matter and are
 * handled here: `^`/`$` are line anchors in Ruby syntax (PCRE2_MULTILINE), and Oniguruma's Unicode `\w`
 * (Letter | Mark | Decimal_Number | Connector_Punctuation) covers combining marks and excludes other
 * numbers, unlike PCRE2's `\w`, so `\w`/`\W`
 * are rewritten into explicit classes. \s, \d, \p{..} and (?i) agree between the two engines. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define WORD_CLASS "\\p{L}\\p{M}\\p{Nd}\\p{Pc}"

/* Rewrites \w and \W; returns NULL on allocation failure, sets *bad for \W inside a class. */
static char *rewrite_pattern(const char *p, int *bad) {
    size_t n = strlen(p);
    tok_buf out = {0};
    int in_class = 0;
    *bad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[i + 1];
            const char *rep = NULL;
            if (d == 'w') rep = in_class ? WORD_CLASS : "[" WORD_CLASS "]";
            else if (d == 'W') {
                if (in_class) *bad = 1;
                rep = "[^" WORD_CLASS "]";
            }
            if (rep) {
                if (tok_buf_append(&out, rep, strlen(rep))) goto fail;
            } else if (tok_buf_append(&out, p + i, 2)) goto fail;
            i++;
            continue;
        }
        if (c == '[') {
            if (in_class && i + 1 < n && p[i + 1] == ':') {
                /* POSIX class [:name:] inside a bracket: copy through its closing ":]". */
                const char *e = strstr(p + i + 2, ":]");
                if (e) {
                    size_t l = (size_t)(e - (p + i)) + 2;
                    if (tok_buf_append(&out, p + i, l)) goto fail;
                    i += l - 1;
                    continue;
                }
            }
            in_class++;
            if (tok_buf_append(&out, &c, 1)) goto fail;
            /* A ']' right after '[' or '[^' is a literal. */
            if (i + 1 < n && p[i + 1] == '^') {
                if (tok_buf_append(&out, "^", 1)) goto fail;
                i++;
            }
            if (i + 1 < n && p[i + 1] == ']') {
                if (tok_buf_append(&out, "]", 1)) goto fail;
                i++;
            }
            continue;
        }
        if (c == ']' && in_class) in_class--;
        if (tok_buf_append(&out, &c, 1)) goto fail;
    }
    if (tok_buf_append(&out, "", 1)) goto fail;
    return out.p;
fail:
    tok_buf_free(&out);
    return NULL;
}

ll_status tok_regex_compile(tok_regex *re, const char *pattern, const char *where, ll_err *err) {
    memset(re, 0, sizeof *re);
    int bad;
    char *pat = rewrite_pattern(pattern, &bad);
    if (!pat) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory compiling regex", where);
    if (bad) {
        free(pat);
        return ll_fail(err, LL_ERR_INPUT, "%s: regex '%s' uses \\W inside a character class, which is not supported",
                       where, pattern);
    }
    int ec;
    PCRE2_SIZE eo;
    re->code = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec,
                             &eo, NULL);
    free(pat);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return ll_fail(err, LL_ERR_INPUT, "%s: cannot compile regex '%s': %s at offset %zu", where, pattern,
                       (const char *)msg, (size_t)eo);
    }
    pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE); /* falls back to the interpreter when JIT is unavailable */
    re->md = pcre2_match_data_create_from_pattern(re->code, NULL);
    re->mctx = pcre2_match_context_create(NULL);
    re->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!re->md || !re->mctx) {
        tok_regex_free(re);
        return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory compiling regex", where);
    }
    if (re->jit) pcre2_jit_stack_assign(re->mctx, NULL, re->jit);
    return LL_OK;
}

ll_status tok_regex_literal(tok_regex *re, const char *s, size_t n, const char *where, ll_err *err) {
    memset(re, 0, sizeof *re);
    if (n == 0) return ll_fail(err, LL_ERR_INPUT, "%s: empty String pattern (expected at least one character)", where);
    re->literal = malloc(n);
    if (!re->literal) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", where);
    memcpy(re->literal, s, n);
    re->literal_len = n;
    return LL_OK;
}

ll_status tok_regex_from_json(tok_regex *re, const cJSON *pattern, const char *where, ll_err *err) {
    memset(re, 0, sizeof *re);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pattern, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pattern, "Regex");
    if (cJSON_IsString(s)) return tok_regex_literal(re, s->valuestring, strlen(s->valuestring), where, err);
    if (cJSON_IsString(r)) return tok_regex_compile(re, r->valuestring, where, err);
    return ll_fail(err, LL_ERR_INPUT, "%s: field 'pattern' must be {\"String\": ...} or {\"Regex\": ...}", where);
}

static size_t char_len(const char *s, size_t n, size_t pos) {
    if (pos >= n) return 1;
    uint8_t c = (uint8_t)s[pos];
    size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    return pos + l > n ? n - pos : l;
}

int tok_regex_next(tok_regex *re, const char *s, size_t n, size_t pos, size_t *start, size_t *end, ll_err *err) {
    if (pos > n) return 0;
    if (re->literal) {
        if (n - pos < re->literal_len) return 0;
        const char *f = memmem(s + pos, n - pos, re->literal, re->literal_len);
        if (!f) return 0;
        *start = (size_t)(f - s);
        *end = *start + re->literal_len;
        return 1;
    }
    int rc = pcre2_match(re->code, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, re->md, re->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        ll_fail(err, LL_ERR_INPUT, "regex match failed on a %zu-byte piece: %s", n, (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(re->md);
    *start = ov[0];
    *end = ov[1];
    return 1;
}

/* Finds all non-overlapping matches as Rust's find_iter does (an empty match right after the
 * previous match is skipped; after an empty match the search moves one character on), and writes
 * the match / non-match spans covering s[0..n), as `tokenizers`' find_matches. */
int tok_regex_spans(tok_regex *re, const char *s, size_t n, int invert, tok_spans *out, ll_err *err) {
    out->n = 0;
    if (n == 0) return tok_spans_push(out, 0, 0, invert ? 1 : 0) ? -2 : 0;
    size_t pos = 0, prev = 0, last_end = (size_t)-1;
    while (pos <= n) {
        size_t a, b;
        int r = tok_regex_next(re, s, n, pos, &a, &b, err);
        if (r < 0) return -1;
        if (r == 0) break;
        if (a == b) {
            pos = b + char_len(s, n, b);
            if (b == last_end) continue;
        } else {
            pos = b;
        }
        last_end = b;
        if (prev != a && tok_spans_push(out, prev, a, invert)) return -2;
        if (tok_spans_push(out, a, b, !invert)) return -2;
        prev = b;
    }
    if (prev != n && tok_spans_push(out, prev, n, invert)) return -2;
    return 0;
}

void tok_regex_free(tok_regex *re) {
    if (re->md) pcre2_match_data_free(re->md);
    if (re->mctx) pcre2_match_context_free(re->mctx);
    if (re->jit) pcre2_jit_stack_free(re->jit);
    if (re->code) pcre2_code_free(re->code);
    free(re->literal);
    memset(re, 0, sizeof *re);
}
