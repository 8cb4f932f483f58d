/* backend.c: opening a backend by name.
 *
 * "cpu" is built in (kernels/cpu). "cuda" is a loadable module, build/liblogitlens_cuda.so, looked up
 * in the directory named by $LOGITLENS_CUDA_MODULE_DIR, else in the directory of the running
 * executable (readlink /proc/self/exe), and entered through its exported ll_backend_cuda_init
 * (LL_CUDA_BACKEND_SYMBOL). The executable never links against CUDA libraries, so it starts on
 * machines without them; only dlopen of the module pulls in libcudart/libcublas. "auto" tries CUDA
 * silently and falls back to the CPU. See docs/backends.md. LOGITLENS_DEVICE_CHECK=1 wraps the CPU
 * backend in the device-memory discipline checker (host/backend_check.c; tests). */
#include "backend_check.h"
#include "ll_backend.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The ll_backend handed out, with the module handle that must outlive it. */
typedef struct backend_box {
    ll_backend be; /* first member: ll_backend_close casts back */
    void *dl;      /* dlopen handle of the CUDA module, NULL for the built-in CPU backend */
} backend_box;

/* Directory holding the CUDA module: $LOGITLENS_CUDA_MODULE_DIR, else the executable's directory. */
static ll_status module_dir(char *dir, size_t cap, ll_err *err) {
    const char *env = getenv("LOGITLENS_CUDA_MODULE_DIR");
    if (env && env[0]) {
        if (strlen(env) >= cap)
            return ll_fail(err, LL_ERR_BACKEND, "cuda backend: LOGITLENS_CUDA_MODULE_DIR is longer than %zu bytes",
                           cap - 1);
        strcpy(dir, env);
        return LL_OK;
    }
    ssize_t n = readlink("/proc/self/exe", dir, cap - 1);
    if (n <= 0 || (size_t)n >= cap - 1)
        return ll_fail(err, LL_ERR_BACKEND, "cuda backend: cannot locate the executable (readlink /proc/self/exe failed)");
    dir[n] = 0;
    char *slash = strrchr(dir, '/');
    if (!slash) return ll_fail(err, LL_ERR_BACKEND, "cuda backend: executable path '%s' has no directory", dir);
    if (slash == dir) slash[1] = 0;
    else *slash = 0;
    return LL_OK;
}

static ll_status open_cuda(const ll_backend_opts *opts, backend_box *box, ll_err *err) {
    char dir[PATH_MAX], path[PATH_MAX + sizeof LL_CUDA_MODULE_NAME + 1];
    ll_status st = module_dir(dir, sizeof dir, err);
    if (st) return st;
    snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", LL_CUDA_MODULE_NAME);
    /* RTLD_NODELETE: the module stays mapped after dlclose, so the CUDA runtime's exit handlers never
     * point into unmapped code. */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        const char *why = dlerror();
        return ll_fail(err, LL_ERR_BACKEND, "cuda backend: cannot load %s: %s", path, why ? why : "unknown error");
    }
    dlerror();
    void *sym = dlsym(dl, LL_CUDA_BACKEND_SYMBOL);
    const char *why = dlerror();
    if (!sym || why) {
        ll_fail(err, LL_ERR_BACKEND, "cuda backend: %s does not export %s: %s", path, LL_CUDA_BACKEND_SYMBOL,
                why ? why : "symbol is NULL");
        dlclose(dl);
        return LL_ERR_BACKEND;
    }
    ll_backend_init_fn init;
    memcpy(&init, &sym, sizeof init); /* object pointer -> function pointer, as POSIX dlsym intends */
    box->be.err.msg[0] = 0;
    st = init(&box->be, opts);
    if (st != LL_OK) {
        ll_fail(err, LL_ERR_BACKEND, "cuda backend: initialization failed: %s",
                box->be.err.msg[0] ? box->be.err.msg : "(no message)");
        dlclose(dl);
        memset(&box->be, 0, sizeof box->be);
        return LL_ERR_BACKEND;
    }
    if (!box->be.ops) {
        ll_fail(err, LL_ERR_BACKEND, "cuda backend: %s returned success without an op table", LL_CUDA_BACKEND_SYMBOL);
        dlclose(dl);
        return LL_ERR_BACKEND;
    }
    box->dl = dl;
    return LL_OK;
}

ll_status ll_backend_open(const char *name, const ll_backend_opts *opts, ll_backend **out, ll_err *err) {
    LL_ASSERT(out != NULL);
    *out = NULL;
    ll_backend_opts defaults = {0, 0, 0};
    if (!opts) opts = &defaults;
    if (!name) name = "auto";
    int want_cpu = !strcmp(name, "cpu"), want_cuda = !strcmp(name, "cuda"), want_auto = !strcmp(name, "auto");
    if (!want_cpu && !want_cuda && !want_auto)
        return ll_fail(err, LL_ERR_USAGE, "unknown backend '%s' (expected cpu, cuda or auto)", name);
    backend_box *box = calloc(1, sizeof *box);
    if (!box) return ll_fail(err, LL_ERR_NOMEM, "cannot allocate a backend");
    if (want_cuda || want_auto) {
        ll_err cuda_err;
        ll_status st = open_cuda(opts, box, want_cuda ? err : &cuda_err);
        if (st == LL_OK) {
            *out = &box->be;
            return LL_OK;
        }
        if (want_cuda) {
            free(box);
            return st;
        }
        memset(box, 0, sizeof *box); /* auto: fall back to the CPU silently */
    }
    ll_status st = ll_backend_cpu_init(&box->be, opts);
    if (st != LL_OK) {
        ll_fail(err, st, "%s", box->be.err.msg);
        free(box);
        return st;
    }
    const char *check = getenv("LOGITLENS_DEVICE_CHECK");
    if (check && !strcmp(check, "1") && (st = ll_backend_check_wrap(&box->be, err)) != LL_OK) {
        box->be.ops->close(&box->be);
        free(box);
        return st;
    }
    *out = &box->be;
    return LL_OK;
}

void ll_backend_close(ll_backend *be) {
    if (!be) return;
    backend_box *box = (backend_box *)be;
    if (be->ops && be->ops->close) be->ops->close(be);
    if (box->dl) dlclose(box->dl);
    free(box);
}
