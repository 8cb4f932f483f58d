/* sweep_tree.h: a sweep file's text as one cJSON tree, whichever its format, so that one validator
 * (sweep_file.c) checks YAML and JSON alike. YAML keeps each node's line for messages (cJSON has no place
 * for it, so it lives in a side table). */
#ifndef LL_SWEEP_TREE_H
#define LL_SWEEP_TREE_H

#include "ll_common.h"

#include <cJSON.h>

typedef struct sw_lines {
    const cJSON **node; /* [n] */
    int *line;          /* [n] 1-based line of node[i] */
    int n, cap;
} sw_lines;

/* The line of a node, 0 when unknown (JSON files, or a node the table lacks). */
int sw_lines_get(const sw_lines *l, const cJSON *node);
void sw_lines_free(sw_lines *l);

/* YAML (libyaml's event parser) into a cJSON tree. Mappings become objects, sequences arrays; plain scalars
 * are typed by the YAML 1.2 core schema (null/~/empty, true/false, integers, decimal floats; anything else a
 * string); quoted and block scalars are strings. Refused with "FILE:LINE: ...": syntax errors, anchors and
 * aliases, explicit tags, a second document, keys that are not scalars, duplicate keys, NUL characters,
 * nesting deeper than SW_MAX_DEPTH. An empty document gives a null root. */
#define SW_MAX_DEPTH 64
ll_status sw_yaml_parse(const char *file, const char *text, size_t len, cJSON **out, sw_lines *lines, ll_err *err);

/* JSON (cJSON) into a tree; a syntax error names the line where parsing stopped. */
ll_status sw_json_parse(const char *file, const char *text, size_t len, cJSON **out, ll_err *err);

#endif
