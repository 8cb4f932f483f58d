/* points.c: parsing --points / --layers into the ordered list of captured residual-stream points. */
#include "ll_engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses an optional integer in s[0..len); returns 0 on success (absent: *present = 0). */
static int parse_opt_int(const char *s, size_t len, long *v, int *present) {
    while (len && *s == ' ') s++, len--;
    while (len && s[len - 1] == ' ') len--;
    if (!len) {
        *present = 0;
        return 0;
    }
    char buf[32];
    if (len >= sizeof buf) return -1;
    memcpy(buf, s, len);
    buf[len] = 0;
    char *end;
    errno = 0;
    *v = strtol(buf, &end, 10);
    if (errno || *end) return -1;
    *present = 1;
    return 0;
}

/* Python slice semantics over range(n): fills sel[0..n) with 1 for selected layers. */
static ll_status parse_layers(const char *spec, int n, char *sel, ll_err *err) {
    if (!spec) {
        memset(sel, 1, (size_t)n);
        return LL_OK;
    }
    memset(sel, 0, (size_t)n);
    const char *c1 = strchr(spec, ':');
    long a = 0, b = n, s = 1;
    int pa = 0, pb = 0, ps = 0;
    if (!c1) { /* a single index */
        if (parse_opt_int(spec, strlen(spec), &a, &pa) || !pa)
            return ll_fail(err, LL_ERR_USAGE, "--layers '%s': expected START:STOP[:STEP] or one layer index", spec);
        if (a < 0) a += n;
        if (a < 0 || a >= n)
            return ll_fail(err, LL_ERR_USAGE, "--layers '%s': layer out of range (model has %d layers)", spec, n);
        sel[a] = 1;
        return LL_OK;
    }
    const char *c2 = strchr(c1 + 1, ':');
    if (parse_opt_int(spec, (size_t)(c1 - spec), &a, &pa) ||
        parse_opt_int(c1 + 1, c2 ? (size_t)(c2 - c1 - 1) : strlen(c1 + 1), &b, &pb) ||
        (c2 && (strchr(c2 + 1, ':') || parse_opt_int(c2 + 1, strlen(c2 + 1), &s, &ps))))
        return ll_fail(err, LL_ERR_USAGE, "--layers '%s': expected START:STOP[:STEP] with integers", spec);
    if (!ps) s = 1;
    if (s == 0) return ll_fail(err, LL_ERR_USAGE, "--layers '%s': step must not be zero", spec);
    /* Python's slice.indices() */
    if (s > 0) {
        if (!pa) a = 0;
        else if (a < 0) a = a + n < 0 ? 0 : a + n;
        else if (a > n) a = n;
        if (!pb) b = n;
        else if (b < 0) b = b + n < 0 ? 0 : b + n;
        else if (b > n) b = n;
        for (long i = a; i < b; i += s) sel[i] = 1;
    } else {
        if (!pa) a = n - 1;
        else if (a < 0) a = a + n < 0 ? -1 : a + n;
        else if (a >= n) a = n - 1;
        if (!pb) b = -1;
        else if (b < 0) b = b + n < 0 ? -1 : b + n;
        else if (b >= n) b = n - 1;
        for (long i = a; i > b; i += s) sel[i] = 1;
    }
    return LL_OK;
}

void ll_points_free(ll_points *p) {
    free(p->names);
    free(p->layers);
    free(p->mid);
    free(p->post);
    memset(p, 0, sizeof *p);
}

ll_status ll_points_parse(const char *kinds, const char *layers, int n_layers, ll_points *p, ll_err *err) {
    memset(p, 0, sizeof *p);
    int want_embed = 0, want_mid = 0, want_post = 0;
    if ((kinds && !*kinds) || (layers && !*layers))
        return ll_fail(err, LL_ERR_USAGE, "%s is empty (expected %s)", kinds && !*kinds ? "--points" : "--layers",
                       kinds && !*kinds ? "a comma list of embed, mid, post" : "START:STOP[:STEP] or a layer index");
    const char *k = kinds ? kinds : "embed,post";
    while (*k) {
        size_t len = strcspn(k, ",");
        if (len == 5 && !strncmp(k, "embed", 5)) want_embed = 1;
        else if (len == 3 && !strncmp(k, "mid", 3)) want_mid = 1;
        else if (len == 4 && !strncmp(k, "post", 4)) want_post = 1;
        else
            return ll_fail(err, LL_ERR_USAGE, "--points '%s': unknown kind '%.*s' (expected embed, mid, post)", kinds,
                           (int)len, k);
        k += len;
        if (*k == ',') k++;
    }
    char *sel = malloc((size_t)n_layers);
    if (!sel) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    ll_status rc = parse_layers(layers, n_layers, sel, err);
    if (rc) {
        free(sel);
        return rc;
    }
    int n_sel = 0;
    for (int l = 0; l < n_layers; l++) n_sel += sel[l];
    if (layers && n_sel == 0) { /* never a silent embed-only run */
        free(sel);
        return ll_fail(err, LL_ERR_USAGE, "--layers '%s' selects no layer of the model's %d (0..%d; Python slice rules)",
                       layers, n_layers, n_layers - 1);
    }
    int cap = 1 + 2 * n_layers;
    p->names = calloc((size_t)cap, sizeof *p->names);
    p->layers = calloc((size_t)cap, sizeof *p->layers);
    p->mid = malloc(sizeof *p->mid * (size_t)n_layers);
    p->post = malloc(sizeof *p->post * (size_t)n_layers);
    if (!p->names || !p->layers || !p->mid || !p->post) {
        free(sel);
        ll_points_free(p);
        return ll_fail(err, LL_ERR_NOMEM, "out of memory");
    }
    p->embed = -1;
    if (want_embed) {
        p->embed = p->n;
        snprintf(p->names[p->n], LL_POINT_NAME_MAX, "embed");
        p->layers[p->n++] = -1;
    }
    for (int l = 0; l < n_layers; l++) {
        p->mid[l] = p->post[l] = -1;
        if (!sel[l]) continue;
        if (want_mid) {
            p->mid[l] = p->n;
            snprintf(p->names[p->n], LL_POINT_NAME_MAX, "mid.%d", l);
            p->layers[p->n++] = l;
        }
        if (want_post) {
            p->post[l] = p->n;
            snprintf(p->names[p->n], LL_POINT_NAME_MAX, "post.%d", l);
            p->layers[p->n++] = l;
        }
    }
    free(sel);
    if (p->n == 0) {
        ll_points_free(p);
        return ll_fail(err, LL_ERR_USAGE, "--points/--layers select no point (layers '%s' of a %d-layer model)",
                       layers ? layers : "", n_layers);
    }
    return LL_OK;
}
