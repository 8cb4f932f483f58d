/* arch_common.h: helpers for the per-architecture files (host/arch_*.c). */
#ifndef LL_ARCH_COMMON_H
#define LL_ARCH_COMMON_H

#include "ll_model.h"

#include <stdarg.h>
#include <stdio.h>

enum { LL_INIT_MATRIX = 0, LL_INIT_NORM = 1, LL_INIT_BIAS = 2, LL_INIT_EMBED = 3 };

#if defined(__GNUC__)
__attribute__((format(printf, 8, 9)))
#endif
static inline void ll_spec_add(ll_tensor_spec *s, int *n, int layer, int role, int init, int64_t rows, int64_t cols,
                               const char *fmt, ...) {
    ll_tensor_spec *t = &s[(*n)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->layer = layer;
    t->role = role;
    t->init = init;
    t->ndim = cols > 0 ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols > 0 ? cols : 0;
}

#endif
