/* sweep_yaml.c: a sweep file's YAML or JSON text into one cJSON tree (sweep_tree.h). YAML goes through
 * libyaml's event parser; anchors, aliases and tags are refused rather than resolved, so an input cannot
 * expand into more nodes than it has characters. */
#include "sweep_tree.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

int sw_lines_get(const sw_lines *l, const cJSON *node) {
    for (int i = 0; l && i < l->n; i++)
        if (l->node[i] == node) return l->line[i];
    return 0;
}

void sw_lines_free(sw_lines *l) {
    if (!l) return;
    free(l->node);
    free(l->line);
    memset(l, 0, sizeof *l);
}

static int lines_add(sw_lines *l, const cJSON *node, int line) {
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        const cJSON **nn = realloc(l->node, (size_t)cap * sizeof *nn);
        if (!nn) return -1;
        l->node = nn;
        int *nl = realloc(l->line, (size_t)cap * sizeof *nl);
        if (!nl) return -1;
        l->line = nl;
        l->cap = cap;
    }
    l->node[l->n] = node;
    l->line[l->n++] = line;
    return 0;
}

/* Whole-string matches of the YAML 1.2 core schema's plain scalars. */
static int is_int(const char *s) {
    if (*s == '+' || *s == '-') s++;
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static int is_float(const char *s) {
    int digits = 0;
    if (*s == '+' || *s == '-') s++;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        while (*s >= '0' && *s <= '9') s++, digits++;
    }
    if (!digits) return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

static int one_of(const char *s, const char *const *v) {
    for (; *v; v++)
        if (!strcmp(s, *v)) return 1;
    return 0;
}

/* A plain scalar typed by the core schema; anything quoted is a string. */
static cJSON *scalar_node(const char *s, int plain) {
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL", NULL};
    static const char *const trues[] = {"true", "True", "TRUE", NULL};
    static const char *const falses[] = {"false", "False", "FALSE", NULL};
    if (!plain) return cJSON_CreateString(s);
    if (one_of(s, nulls)) return cJSON_CreateNull();
    if (one_of(s, trues)) return cJSON_CreateTrue();
    if (one_of(s, falses)) return cJSON_CreateFalse();
    if (is_int(s) || is_float(s)) return cJSON_CreateNumber(strtod(s, NULL));
    return cJSON_CreateString(s);
}

typedef struct yaml_build {
    const char *file;
    cJSON *root;
    cJSON *stack[SW_MAX_DEPTH]; /* open containers */
    char *key[SW_MAX_DEPTH];    /* per open mapping: the key waiting for its value, or NULL */
    int depth;
    int docs;
    sw_lines *lines;
    ll_err *err;
} yaml_build;

static ll_status nomem(yaml_build *b) { return ll_fail(b->err, LL_ERR_NOMEM, "%s: out of memory", b->file); }

/* Attaches a new node to the open container (or makes it the root). *used = 0 when it was a mapping's key
 * (then node is not kept). */
static ll_status attach(yaml_build *b, cJSON *node, const char *scalar, int line, int *used) {
    *used = 1;
    if (!node) return nomem(b);
    if (b->depth == 0) {
        if (b->root) {
            cJSON_Delete(node);
            return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: expected one YAML node at the top", b->file, line);
        }
        b->root = node;
    } else {
        cJSON *parent = b->stack[b->depth - 1];
        if (cJSON_IsArray(parent)) {
            cJSON_AddItemToArray(parent, node);
        } else if (!b->key[b->depth - 1]) { /* node is a key */
            *used = 0;
            cJSON_Delete(node);
            if (!scalar)
                return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: a mapping key must be a plain name, not a list or mapping",
                               b->file, line);
            if (cJSON_GetObjectItemCaseSensitive(parent, scalar))
                return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: duplicate key '%.80s'", b->file, line, scalar);
            if (!(b->key[b->depth - 1] = strdup(scalar))) return nomem(b);
            return LL_OK;
        } else {
            cJSON_AddItemToObject(parent, b->key[b->depth - 1], node);
            free(b->key[b->depth - 1]);
            b->key[b->depth - 1] = NULL;
        }
    }
    if (lines_add(b->lines, node, line)) return nomem(b);
    return LL_OK;
}

static ll_status open_container(yaml_build *b, cJSON *node, int line) {
    int used;
    if (b->depth == SW_MAX_DEPTH) {
        cJSON_Delete(node);
        return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: nested deeper than %d levels", b->file, line, SW_MAX_DEPTH);
    }
    ll_status rc = attach(b, node, NULL, line, &used);
    if (rc) return rc;
    b->stack[b->depth] = node;
    b->key[b->depth++] = NULL;
    return LL_OK;
}

/* One parser event into the tree; *end = 1 at the end of the stream. */
static ll_status on_event(yaml_build *b, const yaml_event_t *ev, int *end) {
    const int line = (int)ev->start_mark.line + 1;
    int used;
    switch (ev->type) {
    case YAML_STREAM_END_EVENT:
        *end = 1;
        return LL_OK;
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1)
            return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: a second YAML document; a sweep file holds one", b->file, line);
        return LL_OK;
    case YAML_ALIAS_EVENT:
        return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: YAML aliases (*name) are not supported; write the value out",
                       b->file, line);
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        const yaml_char_t *anchor = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.anchor
                                    : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.anchor
                                                                            : ev->data.mapping_start.anchor;
        const yaml_char_t *tag = ev->type == YAML_SCALAR_EVENT           ? ev->data.scalar.tag
                                 : ev->type == YAML_SEQUENCE_START_EVENT ? ev->data.sequence_start.tag
                                                                         : ev->data.mapping_start.tag;
        if (anchor)
            return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: YAML anchors (&name) are not supported", b->file, line);
        if (tag)
            return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: YAML tags (%.40s) are not supported", b->file, line,
                           (const char *)tag);
        if (ev->type == YAML_SEQUENCE_START_EVENT) return open_container(b, cJSON_CreateArray(), line);
        if (ev->type == YAML_MAPPING_START_EVENT) return open_container(b, cJSON_CreateObject(), line);
        const char *v = (const char *)ev->data.scalar.value;
        if (memchr(v, 0, ev->data.scalar.length))
            return ll_fail(b->err, LL_ERR_INPUT, "%s:%d: a value holds a NUL character", b->file, line);
        int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        return attach(b, scalar_node(v, plain), v, line, &used);
    }
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        LL_ASSERT(b->depth > 0); /* libyaml balances them */
        free(b->key[b->depth - 1]);
        b->key[--b->depth] = NULL;
        return LL_OK;
    default:
        return LL_OK;
    }
}

ll_status sw_yaml_parse(const char *file, const char *text, size_t len, cJSON **out, sw_lines *lines, ll_err *err) {
    yaml_parser_t parser;
    yaml_build b = {.file = file, .lines = lines, .err = err};
    ll_status rc = LL_OK;
    *out = NULL;
    if (!yaml_parser_initialize(&parser)) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    for (int end = 0; !end && !rc;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) rc = ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", file);
            else
                rc = ll_fail(err, LL_ERR_INPUT, "%s:%d: not valid YAML: %s%s%s", file, (int)parser.problem_mark.line + 1,
                             parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                             parser.context ? parser.context : "");
            break;
        }
        rc = on_event(&b, &ev, &end);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    for (int i = 0; i < b.depth; i++) free(b.key[i]);
    if (rc) {
        cJSON_Delete(b.root);
        return rc;
    }
    if (!b.root && !(b.root = cJSON_CreateNull())) return ll_fail(err, LL_ERR_NOMEM, "%s: out of memory", file);
    *out = b.root;
    return LL_OK;
}

ll_status sw_json_parse(const char *file, const char *text, size_t len, cJSON **out, ll_err *err) {
    const char *end = NULL;
    if (memchr(text, 0, len))
        return ll_fail(err, LL_ERR_INPUT, "%s: not valid JSON: the file holds a NUL byte", file);
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out) {
        /* cJSON stops after the first value: anything but white space after it is an error */
        const char *p = end;
        while (p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        if (p == text + len) return LL_OK;
        cJSON_Delete(*out);
        *out = NULL;
        end = p;
    }
    int line = 1;
    if (!end || end < text || end > text + len) end = text + len;
    for (const char *p = text; p < end; p++) line += *p == '\n';
    return ll_fail(err, LL_ERR_INPUT, "%s:%d: not valid JSON (expected one JSON object, as docs/sweeps.md shows)", file,
                   line);
}
