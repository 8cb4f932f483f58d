/* comm_single.c: the one-rank communicator. All-reduce and broadcast leave the buffer as it is;
 * all-gather copies the one contribution; send/recv have no peer and split gives the same one rank. */
#include "ll_comm.h"

#include <stdlib.h>
#include <string.h>

static ll_status single_allreduce(ll_comm *c, ll_backend *be, float *buf, int64_t n) {
    (void)c; (void)be; (void)buf; (void)n;
    return LL_OK;
}

static ll_status single_allgather(ll_comm *c, ll_backend *be, void *recv, const void *send, size_t bytes) {
    (void)c;
    if (!bytes) return LL_OK;
    if (be->ops->copy(be, recv, send, bytes)) return ll_fail(&c->err, LL_ERR_BACKEND, "all-gather: %s", be->err.msg);
    return LL_OK;
}

static ll_status single_broadcast(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int root) {
    (void)c; (void)be; (void)buf; (void)bytes; (void)root;
    return LL_OK;
}

static ll_status single_p2p(ll_comm *c, ll_backend *be, const void *buf, size_t bytes, int peer) {
    (void)be; (void)buf; (void)bytes;
    return ll_fail(&c->err, LL_ERR_INTERNAL, "send/recv to rank %d in a one-rank communicator", peer);
}
static ll_status single_recv(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int peer) {
    return single_p2p(c, be, buf, bytes, peer);
}

static ll_status single_split(ll_comm *c, int color, int key, ll_comm **out) {
    (void)color; (void)key;
    *out = c; /* static: closing it does nothing */
    return LL_OK;
}

static void single_abort(ll_comm *c, int code) {
    (void)c;
    _Exit(code);
}

void ll_comm_single(ll_comm *c) {
    memset(c, 0, sizeof *c);
    c->rank = 0;
    c->world = 1;
    c->kind = "single";
    c->allreduce_sum = single_allreduce;
    c->allgather = single_allgather;
    c->broadcast = single_broadcast;
    c->send = single_p2p;
    c->recv = single_recv;
    c->split = single_split;
    c->abort = single_abort;
    c->close = NULL;
}
