/* comm_check.c: a communicator that checks, under LOGITLENS_DEVICE_CHECK=1 (host/engine/backend_check.c),
 * that every buffer the engine hands to a collective or send/recv is device memory of sufficient size,
 * as NCCL requires on the CUDA backend; then lets the wrapped (MPI) communicator touch it. So a CPU-rank
 * run finds the host pointers that would break NCCL ranks, on machines without a GPU. */
#include "engine/backend_check.h"
#include "ll_comm.h"

#include <stdlib.h>
#include <string.h>

typedef struct checked {
    ll_comm c;      /* first: the ll_comm handed out */
    ll_comm *inner;
    int owns_inner; /* a split's communicator is closed with its wrapper */
} checked;

static ll_comm *IN(ll_comm *c) { return ((checked *)c)->inner; }

static ll_status bad(ll_comm *c, ll_backend *be) {
    return ll_fail(&c->err, LL_ERR_INTERNAL, "%s", be->err.msg);
}

/* Runs an inner op with device memory open to host code. */
#define RUN(c, be, call)                                                                                 \
    do {                                                                                                 \
        ll_backend_check_open(be, 1);                                                                    \
        ll_status st_ = IN(c)->call;                                                                     \
        ll_backend_check_open(be, 0);                                                                    \
        if (st_) memcpy(&(c)->err, &IN(c)->err, sizeof(c)->err);                                         \
        return st_;                                                                                      \
    } while (0)

static ll_status k_allreduce(ll_comm *c, ll_backend *be, float *buf, int64_t n) {
    if (!ll_backend_check_devbuf(be, "comm allreduce_sum", "buf", buf, (size_t)n * 4)) return bad(c, be);
    RUN(c, be, allreduce_sum(IN(c), be, buf, n));
}

static ll_status k_allgather(ll_comm *c, ll_backend *be, void *recv, const void *send, size_t bytes) {
    if (!ll_backend_check_devbuf(be, "comm allgather", "send", send, bytes) ||
        !ll_backend_check_devbuf(be, "comm allgather", "recv", recv, bytes * (size_t)c->world))
        return bad(c, be);
    RUN(c, be, allgather(IN(c), be, recv, send, bytes));
}

static ll_status k_broadcast(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int root) {
    if (!ll_backend_check_devbuf(be, "comm broadcast", "buf", buf, bytes)) return bad(c, be);
    RUN(c, be, broadcast(IN(c), be, buf, bytes, root));
}

static ll_status k_send(ll_comm *c, ll_backend *be, const void *buf, size_t bytes, int peer) {
    if (!ll_backend_check_devbuf(be, "comm send", "buf", buf, bytes)) return bad(c, be);
    RUN(c, be, send(IN(c), be, buf, bytes, peer));
}

static ll_status k_recv(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int peer) {
    if (!ll_backend_check_devbuf(be, "comm recv", "buf", buf, bytes)) return bad(c, be);
    RUN(c, be, recv(IN(c), be, buf, bytes, peer));
}

static ll_status wrap(ll_comm *inner, int owns, ll_comm **out);

static ll_status k_split(ll_comm *c, int color, int key, ll_comm **out) {
    ll_comm *sub = NULL;
    if (IN(c)->split(IN(c), color, key, &sub)) {
        memcpy(&c->err, &IN(c)->err, sizeof c->err);
        return LL_ERR_BACKEND;
    }
    ll_status st = wrap(sub, 1, out);
    if (st) {
        ll_comm_close(sub);
        return ll_fail(&c->err, st, "device check: out of memory");
    }
    return LL_OK;
}

static void k_abort(ll_comm *c, int code) { IN(c)->abort(IN(c), code); }

static void k_close(ll_comm *c) {
    checked *k = (checked *)c;
    if (k->owns_inner) ll_comm_close(k->inner);
    free(k);
}

static ll_status wrap(ll_comm *inner, int owns, ll_comm **out) {
    checked *k = calloc(1, sizeof *k);
    if (!k) return LL_ERR_NOMEM;
    k->inner = inner;
    k->owns_inner = owns;
    k->c = (ll_comm){.rank = inner->rank, .world = inner->world, .kind = inner->kind, .allreduce_sum = k_allreduce,
                     .allgather = k_allgather, .broadcast = k_broadcast, .send = k_send, .recv = k_recv,
                     .split = k_split, .abort = k_abort, .close = k_close};
    *out = &k->c;
    return LL_OK;
}

ll_status ll_comm_check_wrap(ll_comm *inner, ll_comm **out) { return wrap(inner, 0, out); }
