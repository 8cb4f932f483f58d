/* cuda_probe.c: says whether the CUDA backend can run here, for `make test-gpu` and `make bench-gpu`.
 *
 * usage: cuda_probe MODULE.so
 * Loads the module with dlopen, opens the backend on device 0 and closes it. Prints one line:
 * the device and free memory (exit 0), or why the backend cannot be used: module or libcudart/driver
 * missing, no device (exit 2: the caller skips); exit 1 when the module loads but is broken (no entry
 * point, or an error other than "no usable device"). Links only libdl: it needs no CPU backend. */
#include "ll_backend.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: cuda_probe MODULE.so\n");
        return 1;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("cannot load %s: %s\n", argv[1], dlerror());
        return 2;
    }
    ll_backend_init_fn init = (ll_backend_init_fn)dlsym(h, LL_CUDA_BACKEND_SYMBOL);
    if (!init) {
        printf("%s has no symbol %s\n", argv[1], LL_CUDA_BACKEND_SYMBOL);
        return 1;
    }
    ll_backend be;
    memset(&be, 0, sizeof be);
    ll_backend_opts opts;
    memset(&opts, 0, sizeof opts);
    ll_status st = init(&be, &opts);
    if (st != LL_OK) {
        printf("%s", be.err.msg);
        /* the module reports a missing device or driver this way; anything else is a failure */
        return st == LL_ERR_BACKEND && strstr(be.err.msg, "cuda: ") == be.err.msg &&
                       (strstr(be.err.msg, "no CUDA device") || strstr(be.err.msg, "not supported") ||
                        strstr(be.err.msg, "driver"))
                   ? 2
                   : 1;
    }
    size_t fr = 0, tot = 0;
    if (be.ops->mem_info(&be, &fr, &tot) != LL_OK) {
        printf("mem_info failed: %s", be.err.msg);
        be.ops->close(&be);
        return 1;
    }
    printf("CUDA device 0 usable, %.1f of %.1f GiB free", fr / 1073741824.0, tot / 1073741824.0);
    be.ops->close(&be);
    return 0;
}
