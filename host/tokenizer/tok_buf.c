/* tok_buf.c: growable byte buffers, piece lists and id lists used by the tokenizer pipeline. */
#include "tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* Grows *p to hold need elements; always leaves a non-NULL pointer (even for need 0), so that
 * pointer arithmetic on an empty buffer is defined. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap && *p) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int tok_buf_reserve(tok_buf *b, size_t extra) {
    size_t need;
    if (ll_add_size(b->n, extra, &need)) return -1;
    return grow((void **)&b->p, &b->cap, need, 1);
}

int tok_buf_append(tok_buf *b, const void *p, size_t n) {
    if (tok_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

void tok_buf_free(tok_buf *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

int tok_plist_push(tok_plist *l, size_t off, size_t len, int32_t id, int at_start) {
    if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return -1;
    l->v[l->n].off = off;
    l->v[l->n].len = len;
    l->v[l->n].id = id;
    l->v[l->n].at_start = at_start;
    l->n++;
    return 0;
}

void tok_plist_free(tok_plist *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int tok_ids_push(tok_ids *l, int32_t id) {
    if (grow((void **)&l->v, &l->cap, l->n + 1, sizeof *l->v)) return -1;
    l->v[l->n++] = id;
    return 0;
}

void tok_ids_free(tok_ids *l) {
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

int tok_spans_push(tok_spans *s, size_t start, size_t end, int is_match) {
    if (grow((void **)&s->v, &s->cap, s->n + 1, sizeof *s->v)) return -1;
    s->v[s->n].start = start;
    s->v[s->n].end = end;
    s->v[s->n].is_match = is_match;
    s->n++;
    return 0;
}

void tok_spans_free(tok_spans *s) {
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}
