/* tok_split.c: how a pre-tokenizer turns the match / non-match spans of a piece into new pieces
 * (SplitDelimiterBehavior of `tokenizers`: Removed, Isolated, MergedWithPrevious, MergedWithNext,
 * Contiguous). Empty pieces are dropped, as in `tokenizers`. */
#include "tok_internal.h"

#include <cjson/cJSON.h>
#include <string.h>

ll_status tok_split_behavior_parse(const cJSON *obj, const char *where, tok_split_behavior *out, ll_err *err) {
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(obj, "behavior");
    if (!b) {
        *out = TOK_SPLIT_ISOLATED;
        return LL_OK;
    }
    static const struct { const char *name; tok_split_behavior v; } names[] = {
        {"Removed", TOK_SPLIT_REMOVED},
        {"Isolated", TOK_SPLIT_ISOLATED},
        {"MergedWithPrevious", TOK_SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", TOK_SPLIT_MERGED_WITH_NEXT},
        {"Contiguous", TOK_SPLIT_CONTIGUOUS},
    };
    if (cJSON_IsString(b))
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            if (!strcmp(b->valuestring, names[i].name)) {
                *out = names[i].v;
                return LL_OK;
            }
    return ll_fail(err, LL_ERR_INPUT,
                   "%s: field 'behavior' must be one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
                   "Contiguous",
                   where);
}

static int emit(const char *src, size_t a, size_t b, int at_start, tok_buf *out, tok_plist *pl) {
    if (a == b) return 0;
    size_t off = out->n;
    if (tok_buf_append(out, src + a, b - a)) return -1;
    return tok_plist_push(pl, off, b - a, -1, at_start && a == 0);
}

int tok_split_emit(const tok_spans *sp, tok_split_behavior beh, const char *src, int at_start, tok_buf *out,
                   tok_plist *pl) {
    size_t n = sp->n;
    const tok_span *v = sp->v;
    switch (beh) {
    case TOK_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!v[i].is_match && emit(src, v[i].start, v[i].end, at_start, out, pl)) return -1;
        return 0;
    case TOK_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            if (emit(src, v[i].start, v[i].end, at_start, out, pl)) return -1;
        return 0;
    case TOK_SPLIT_MERGED_WITH_PREVIOUS:
    case TOK_SPLIT_CONTIGUOUS: {
        /* Fold left: a match (or, for Contiguous, a span of the same kind as the previous one)
         * extends the last output span. */
        size_t cs = 0, ce = 0;
        int have = 0, prev_match = 0;
        for (size_t i = 0; i < n; i++) {
            int m = v[i].is_match;
            int extend = beh == TOK_SPLIT_CONTIGUOUS ? (m == prev_match) : (m && !prev_match);
            if (extend && have) ce = v[i].end;
            else {
                if (have && emit(src, cs, ce, at_start, out, pl)) return -1;
                cs = v[i].start;
                ce = v[i].end;
                have = 1;
            }
            prev_match = m;
        }
        if (have && emit(src, cs, ce, at_start, out, pl)) return -1;
        return 0;
    }
    case TOK_SPLIT_MERGED_WITH_NEXT: {
        /* Fold right: a match extends the following output span to the left. Spans are collected
         * backwards as (start, end) pairs in a small local stack grown in the piece list's space. */
        tok_spans tmp = {0};
        size_t cs = 0, ce = 0;
        int have = 0, prev_match = 0;
        for (size_t k = n; k-- > 0;) {
            int m = v[k].is_match;
            if (m && !prev_match && have) cs = v[k].start;
            else {
                if (have && tok_spans_push(&tmp, cs, ce, 0)) goto fail;
                cs = v[k].start;
                ce = v[k].end;
                have = 1;
            }
            prev_match = m;
        }
        if (have && tok_spans_push(&tmp, cs, ce, 0)) goto fail;
        for (size_t k = tmp.n; k-- > 0;)
            if (emit(src, tmp.v[k].start, tmp.v[k].end, at_start, out, pl)) goto fail;
        tok_spans_free(&tmp);
        return 0;
    fail:
        tok_spans_free(&tmp);
        return -1;
    }
    }
    return -1;
}
