/* model_locate.c: what --model names (a safetensors directory, a .gguf file, or a directory holding one
 * .gguf), and the tokenizer that goes with it. */
#include "ll_gguf.h"
#include "ll_model.h"
#include "ll_tokenizer.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

ll_status ll_model_locate(const char *model, ll_model_format *fmt, char **path, ll_err *err) {
    *path = NULL;
    struct stat st;
    if (stat(model, &st) != 0)
        return ll_fail(err, LL_ERR_IO, "model %s: cannot open: %s", model, strerror(errno));
    if (S_ISREG(st.st_mode)) {
        if (!ends_with(model, ".gguf"))
            return ll_fail(err, LL_ERR_INPUT,
                           "model %s: a model file must be a .gguf; for Hugging Face safetensors give the directory "
                           "holding config.json",
                           model);
        *fmt = LL_MODEL_GGUF;
    } else if (!S_ISDIR(st.st_mode)) {
        return ll_fail(err, LL_ERR_INPUT, "model %s: not a directory or a .gguf file", model);
    } else {
        DIR *d = opendir(model);
        if (!d) return ll_fail(err, LL_ERR_IO, "model %s: cannot list the directory: %s", model, strerror(errno));
        int n_gguf = 0, n_st = 0;
        char first[2][512] = {"", ""};
        for (struct dirent *e; (e = readdir(d));) {
            if (e->d_name[0] == '.') continue;
            if (ends_with(e->d_name, ".gguf")) {
                if (n_gguf < 2) snprintf(first[n_gguf], sizeof first[0], "%s", e->d_name);
                n_gguf++;
            } else if (ends_with(e->d_name, ".safetensors") || !strcmp(e->d_name, "model.safetensors.index.json")) {
                n_st++;
            }
        }
        closedir(d);
        if (n_gguf == 0 || n_st > 0) { /* a Hugging Face directory (safetensors are read even beside a .gguf) */
            *fmt = LL_MODEL_SAFETENSORS;
            *path = strdup(model);
            return *path ? LL_OK : ll_fail(err, LL_ERR_NOMEM, "out of memory");
        }
        if (n_gguf > 1)
            return ll_fail(err, LL_ERR_INPUT,
                           "model %s: the directory holds %d .gguf files ('%s', '%s', ...); give --model the file to use",
                           model, n_gguf, first[0], first[1]);
        size_t n = strlen(model) + strlen(first[0]) + 2;
        *path = malloc(n);
        if (!*path) return ll_fail(err, LL_ERR_NOMEM, "out of memory");
        snprintf(*path, n, "%s/%s", model, first[0]);
        *fmt = LL_MODEL_GGUF;
        return LL_OK;
    }
    *path = strdup(model);
    return *path ? LL_OK : ll_fail(err, LL_ERR_NOMEM, "out of memory");
}

/* The tokenizer of a model at `path` in format fmt; g: the GGUF already open, or NULL to open it here. */
static ll_status tokenizer_of(ll_model_format fmt, const char *path, const ll_gguf *g, ll_tokenizer **out,
                              ll_err *err) {
    if (fmt == LL_MODEL_SAFETENSORS) return ll_tokenizer_exists(path) ? ll_tokenizer_load(path, out, err) : LL_OK;
    if (g) return ll_tokenizer_from_gguf(g, out, err);
    ll_gguf *own = NULL;
    ll_status rc = ll_gguf_open(path, &own, err);
    if (!rc) rc = ll_tokenizer_from_gguf(own, out, err);
    ll_gguf_close(own);
    return rc;
}

ll_status ll_model_tokenizer_load(const char *model, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    ll_model_format fmt;
    char *path = NULL;
    ll_status rc = ll_model_locate(model, &fmt, &path, err);
    if (!rc) rc = tokenizer_of(fmt, path, NULL, out, err);
    free(path);
    return rc;
}

ll_status ll_model_files_tokenizer(const ll_model_files *m, ll_tokenizer **out, ll_err *err) {
    *out = NULL;
    return tokenizer_of(m->format, m->dir, m->gguf, out, err);
}
