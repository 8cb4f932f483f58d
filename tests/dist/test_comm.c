/* test_comm.c: the world communicator from ll_world_open, every op, checked against what each rank can
 * compute on its own. tests/dist/run.sh runs it plain (one rank) and under mpirun with 1..4 ranks.
 *
 *   test_comm [ops|abort|kill] [--backend cpu|cuda] [--rendezvous DIR] [--timeout S] [--nccl-one]
 *     ops    every op of include/ll_comm.h on backend memory (alloc/upload/download of the backend, so
 *            LOGITLENS_DEVICE_CHECK=1 and the CUDA backend work too), sizes across several chunks when
 *            LOGITLENS_MPI_CHUNK_BYTES is small, a split into two groups, the MPI module's host-memory
 *            path (be = NULL), and the errors of bad roots and peers. Prints one line per rank:
 *            "test_comm: rank R of W (kind): N checks, F failed" and exits 1 when F > 0.
 *     abort  the last rank calls comm->abort(comm, 3) after 0.5 s while the others wait in an all-reduce
 *     kill   the last rank SIGKILLs itself after 0.5 s while the others wait in an all-reduce
 *            (run.sh checks that every rank is gone within a bound and the launcher's status is non-zero)
 *   --nccl-one  skip ll_world_open: a one-rank NCCL communicator straight from the module
 *               ($LOGITLENS_MODULE_DIR/liblogitlens_nccl.so, rank 0 of 1, id through --rendezvous DIR), so a
 *               machine with one GPU runs the module's ops, split and close (the CUDA backend is implied)
 * Values are small integers, so every sum is exact in float32 and results are compared exactly. */
#include "ll_backend.h"
#include "ll_comm.h"
#include "ll_ranks.h"

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_checks, g_failed, g_rank;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        g_checks++;                                                                        \
        if (!(cond)) {                                                                     \
            g_failed++;                                                                    \
            fprintf(stderr, "test_comm: rank %d: FAIL %s:%d: ", g_rank, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

static void die(const char *what, const char *msg) {
    fprintf(stderr, "test_comm: rank %d: %s: %s\n", g_rank, what, msg);
    exit(1);
}

/* Backend buffers: alloc + upload from host, download into host. */
static void *dev_from(ll_backend *be, const void *host, size_t bytes) {
    void *p = NULL;
    if (be->ops->alloc(be, bytes ? bytes : 1, &p)) die("alloc", be->err.msg);
    if (bytes && be->ops->upload(be, p, host, bytes)) die("upload", be->err.msg);
    return p;
}
static void to_host(ll_backend *be, void *host, const void *dev, size_t bytes) {
    if (bytes && be->ops->download(be, host, dev, bytes)) die("download", be->err.msg);
}

static float pattern_f(int rank, int64_t i) { return (float)((rank + 1) * (int)(i % 1000 + 1)); }
static unsigned char pattern_b(int rank, size_t j) { return (unsigned char)((rank * 31 + j * 7 + 3) & 0xff); }

static void test_allreduce(ll_comm *c, ll_backend *be, int64_t n) {
    float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = pattern_f(c->rank, i);
    float *d = dev_from(be, h, (size_t)n * sizeof *h);
    ll_status st = c->allreduce_sum(c, be, d, n);
    CHECK(st == LL_OK, "all-reduce of %lld floats: %s", (long long)n, c->err.msg);
    to_host(be, h, d, (size_t)n * sizeof *h);
    int64_t bad = 0, first = -1;
    float tri = (float)(c->world * (c->world + 1) / 2);
    for (int64_t i = 0; i < n; i++)
        if (h[i] != tri * (float)(i % 1000 + 1)) {
            if (first < 0) first = i;
            bad++;
        }
    CHECK(bad == 0, "all-reduce of %lld floats: %lld wrong, first at %lld: %g, expected %g", (long long)n,
          (long long)bad, (long long)first, first >= 0 ? h[first] : 0.0, first >= 0 ? tri * (float)(first % 1000 + 1) : 0.0);
    be->ops->dealloc(be, d);
    free(h);
}

static void test_allgather(ll_comm *c, ll_backend *be, size_t bytes) {
    unsigned char *hs = malloc(bytes ? bytes : 1), *hr = malloc(bytes * (size_t)c->world + 1);
    for (size_t j = 0; j < bytes; j++) hs[j] = pattern_b(c->rank, j);
    memset(hr, 0xee, bytes * (size_t)c->world);
    void *ds = dev_from(be, hs, bytes), *dr = dev_from(be, hr, bytes * (size_t)c->world);
    ll_status st = c->allgather(c, be, dr, ds, bytes);
    CHECK(st == LL_OK, "all-gather of %zu bytes: %s", bytes, c->err.msg);
    to_host(be, hr, dr, bytes * (size_t)c->world);
    size_t bad = 0;
    for (int i = 0; i < c->world; i++)
        for (size_t j = 0; j < bytes; j++) bad += hr[(size_t)i * bytes + j] != pattern_b(i, j);
    CHECK(bad == 0, "all-gather of %zu bytes per rank: %zu wrong bytes", bytes, bad);
    be->ops->dealloc(be, ds);
    be->ops->dealloc(be, dr);
    free(hs);
    free(hr);
}

static void test_broadcast(ll_comm *c, ll_backend *be, size_t bytes, int root) {
    unsigned char *h = malloc(bytes ? bytes : 1);
    for (size_t j = 0; j < bytes; j++) h[j] = c->rank == root ? pattern_b(root + 100, j) : 0;
    void *d = dev_from(be, h, bytes);
    ll_status st = c->broadcast(c, be, d, bytes, root);
    CHECK(st == LL_OK, "broadcast of %zu bytes from %d: %s", bytes, root, c->err.msg);
    to_host(be, h, d, bytes);
    size_t bad = 0;
    for (size_t j = 0; j < bytes; j++) bad += h[j] != pattern_b(root + 100, j);
    CHECK(bad == 0, "broadcast of %zu bytes from rank %d: %zu wrong bytes", bytes, root, bad);
    be->ops->dealloc(be, d);
    free(h);
}

/* Ring: rank r sends to r+1 and receives from r-1. Even ranks send first, odd ranks receive first, so
 * blocking sends (large messages are not buffered) cannot all wait on each other. */
static void test_ring(ll_comm *c, ll_backend *be, size_t bytes) {
    int W = c->world, r = c->rank, next = (r + 1) % W, prev = (r + W - 1) % W;
    unsigned char *hs = malloc(bytes), *hr = malloc(bytes);
    for (size_t j = 0; j < bytes; j++) hs[j] = pattern_b(r + 50, j);
    memset(hr, 0, bytes);
    void *ds = dev_from(be, hs, bytes), *dr = dev_from(be, hr, bytes);
    ll_status s1, s2;
    if (r % 2 == 0) {
        s1 = c->send(c, be, ds, bytes, next);
        s2 = c->recv(c, be, dr, bytes, prev);
    } else {
        s2 = c->recv(c, be, dr, bytes, prev);
        s1 = c->send(c, be, ds, bytes, next);
    }
    CHECK(s1 == LL_OK && s2 == LL_OK, "ring of %zu bytes: %s", bytes, c->err.msg);
    to_host(be, hr, dr, bytes);
    size_t bad = 0;
    for (size_t j = 0; j < bytes; j++) bad += hr[j] != pattern_b(prev + 50, j);
    CHECK(bad == 0, "ring of %zu bytes: %zu wrong bytes from rank %d", bytes, bad, prev);
    be->ops->dealloc(be, ds);
    be->ops->dealloc(be, dr);
    free(hs);
    free(hr);
}

/* Two groups by parity, ranks ordered by descending world rank (key = -rank). */
static void test_split(ll_comm *c, ll_backend *be) {
    int color = c->rank % 2;
    ll_comm *s = NULL;
    ll_status st = c->split(c, color, -c->rank, &s);
    CHECK(st == LL_OK && s, "split: %s", c->err.msg);
    if (st || !s) return;
    int size = 0, pos = 0, sum = 0;
    for (int r = 0; r < c->world; r++)
        if (r % 2 == color) {
            size++;
            sum += r + 1;
            if (r > c->rank) pos++; /* ranks above this one come first */
        }
    CHECK(s->world == size && s->rank == pos, "split: rank %d of %d, expected %d of %d", s->rank, s->world, pos, size);
    float h[3] = {(float)(c->rank + 1), 1.0f, (float)color};
    float *d = dev_from(be, h, sizeof h);
    st = s->allreduce_sum(s, be, d, 3);
    CHECK(st == LL_OK, "all-reduce in group %d: %s", color, s->err.msg);
    to_host(be, h, d, sizeof h);
    CHECK(h[0] == (float)sum && h[1] == (float)size && h[2] == (float)(color * size),
          "all-reduce in group %d: %g %g %g, expected %d %d %d", color, h[0], h[1], h[2], sum, size, color * size);
    be->ops->dealloc(be, d);
    if (s->world > 1) test_broadcast(s, be, 777, s->world - 1);
    if (s != c) ll_comm_close(s);
}

/* The MPI module's host-memory path (be = NULL), which the NCCL module's bootstrap uses. */
static void test_host_memory(ll_comm *c) {
    float f[2] = {1.0f, (float)c->rank};
    ll_status st = c->allreduce_sum(c, NULL, f, 2);
    CHECK(st == LL_OK && f[0] == (float)c->world && f[1] == (float)(c->world * (c->world - 1) / 2),
          "host all-reduce: %s %g %g", st ? c->err.msg : "", f[0], f[1]);
    char id[128];
    for (int j = 0; j < 128; j++) id[j] = c->rank == 0 ? (char)(j * 3 + 1) : 0;
    st = c->broadcast(c, NULL, id, sizeof id, 0);
    int bad = 0;
    for (int j = 0; j < 128; j++) bad += id[j] != (char)(j * 3 + 1);
    CHECK(st == LL_OK && bad == 0, "host broadcast: %s, %d wrong", st ? c->err.msg : "ok", bad);
    if (!strcmp(c->kind, "mpi")) {
        size_t bytes = 5001;
        unsigned char *s = malloc(bytes), *r = malloc(bytes * (size_t)c->world);
        for (size_t j = 0; j < bytes; j++) s[j] = pattern_b(c->rank, j);
        st = c->allgather(c, NULL, r, s, bytes);
        size_t wrong = 0;
        for (int i = 0; i < c->world; i++)
            for (size_t j = 0; j < bytes; j++) wrong += r[(size_t)i * bytes + j] != pattern_b(i, j);
        CHECK(st == LL_OK && wrong == 0, "host all-gather: %s, %zu wrong", st ? c->err.msg : "ok", wrong);
        free(s);
        free(r);
    }
}

static void test_errors(ll_comm *c, ll_backend *be) {
    char buf[8] = {0};
    void *d = dev_from(be, buf, sizeof buf);
    if (strcmp(c->kind, "single")) {
        ll_status st = c->broadcast(c, be, d, sizeof buf, c->world);
        CHECK(st != LL_OK && strstr(c->err.msg, "root"), "broadcast from root %d: expected an error, got '%s'", c->world,
              st ? c->err.msg : "ok");
    }
    ll_status st = c->send(c, be, d, sizeof buf, c->rank);
    CHECK(st != LL_OK && c->err.msg[0], "send to itself: expected an error");
    be->ops->dealloc(be, d);
}

/* A one-rank NCCL communicator from the module itself (ll_world_open gives the single one at world 1). */
static ll_comm *nccl_one(const char *rdv, double timeout) {
    const char *dir = getenv("LOGITLENS_MODULE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", LL_NCCL_MODULE_NAME);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) die("dlopen", dlerror());
    void *sym = dlsym(dl, LL_NCCL_INIT_SYMBOL);
    if (!sym) die("dlsym", LL_NCCL_INIT_SYMBOL);
    ll_comm_nccl_init_fn init;
    memcpy(&init, &sym, sizeof init);
    ll_comm_nccl_opts o = {0, 1, 0, NULL, rdv, "nccl-one", timeout};
    ll_comm *c = NULL;
    ll_err err = {{0}};
    if (init(&o, &c, &err)) die("ll_comm_nccl_init", err.msg);
    return c;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    const char *mode = "ops", *backend = "cpu", *rdv = NULL;
    double timeout = 60;
    int one = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--nccl-one")) one = 1, backend = "cuda";
        else if (!strcmp(argv[i], "--rendezvous") && i + 1 < argc) rdv = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) timeout = atof(argv[++i]);
        else if (argv[i][0] != '-') mode = argv[i];
        else {
            fprintf(stderr, "usage: test_comm [ops|abort|kill] [--backend cpu|cuda] [--rendezvous DIR] [--timeout S] "
                    "[--nccl-one]\n");
            return 2;
        }
    }
    ll_err err = {{0}};
    ll_rank_env e;
    if (ll_rank_env_detect(&e, &err)) die("rank environment", err.msg);
    g_rank = e.rank;
    ll_backend_opts bo = {1, e.local_rank, 0};
    ll_backend *be = NULL;
    if (ll_backend_open(backend, &bo, &be, &err)) die("backend", err.msg);
    ll_world w = {0};
    ll_comm *c;
    if (one) {
        if (!rdv) die("--nccl-one", "needs --rendezvous DIR");
        c = nccl_one(rdv, timeout);
        e.rank = 0;
        e.world = 1;
    } else {
        if (ll_world_open(&e, backend, -1, rdv, timeout, &w, &err)) die("world open", err.msg);
        c = w.comm;
    }
    CHECK(c->rank == e.rank && c->world == e.world, "world: rank %d of %d, environment %d of %d", c->rank, c->world,
          e.rank, e.world);

    if (!strcmp(mode, "abort") || !strcmp(mode, "kill")) {
        if (c->rank == c->world - 1) {
            struct timespec ts = {0, 500000000L};
            nanosleep(&ts, NULL);
            fprintf(stderr, "test_comm: rank %d: %s now\n", c->rank, mode);
            if (!strcmp(mode, "abort")) c->abort(c, 3);
            kill(getpid(), SIGKILL);
            return 99; /* not reached */
        }
        double t0 = now_s();
        float *d = dev_from(be, (float[1]){1}, sizeof(float));
        ll_status st = c->allreduce_sum(c, be, d, 1);
        /* NCCL ranks return here with an error (abort mark, timeout); MPI ranks are ended by the launcher */
        fprintf(stderr, "test_comm: rank %d: all-reduce returned after %.1f s: %s\n", c->rank, now_s() - t0,
                st ? c->err.msg : "ok (unexpected)");
        return st ? 4 : 1;
    }
    if (strcmp(mode, "ops")) die("mode", mode);

    int64_t nf[] = {0, 1, 1000, 100003};
    for (size_t i = 0; i < sizeof nf / sizeof *nf; i++) test_allreduce(c, be, nf[i]);
    size_t nb[] = {1, 13, 70001};
    for (size_t i = 0; i < sizeof nb / sizeof *nb; i++) test_allgather(c, be, nb[i]);
    test_broadcast(c, be, 5000, c->world - 1);
    test_broadcast(c, be, 100001, 0);
    if (c->world > 1) {
        test_ring(c, be, 3);
        test_ring(c, be, 100001);
    }
    test_split(c, be);
    if (strcmp(c->kind, "nccl")) test_host_memory(c);
    test_errors(c, be);
    /* everyone still agrees after the errors (a failed op must not leave the communicator unusable) */
    test_allreduce(c, be, 17);

    printf("test_comm: rank %d of %d (%s, %s): %d checks, %d failed\n", c->rank, c->world, c->kind, backend, g_checks,
           g_failed);
    fflush(stdout);
    if (one) ll_comm_close(c);
    ll_world_close(&w);
    ll_backend_close(be);
    return g_failed ? 1 : 0;
}
