/* comm_nccl.c: the NCCL communicator, built as the module build/liblogitlens_nccl.so (mk/dist.mk: the
 * system C compiler against the CUDA toolkit's headers, -lnccl -lcudart) and opened by host/dist/ranks.c
 * for CUDA ranks. Only ll_comm_nccl_init is exported; the copies of host/dist/rendezvous.c and
 * host/util/common.c linked in are hidden.
 *
 * Buffers are CUDA device memory. Each op first waits for the backend (be->ops->sync: the kernels that
 * wrote the buffer), enqueues on the communicator's own stream, and waits for that stream before
 * returning, as include/ll_comm.h requires. The wait is a polling loop, not cudaStreamSynchronize, so
 * that a rank whose peer died does not hang: it ends with a one-line error when
 *   - NCCL reports an asynchronous error (ncclCommGetAsyncError: a network peer went away),
 *   - the job's abort mark appears in the rendezvous directory (another rank called abort or failed), or
 *   - the op has not completed after timeout_s seconds (a peer died on a transport that cannot tell);
 * the communicator is then aborted (ncclCommAbort stops its kernels) and every later op fails at once.
 * This is why the communicator is created non-blocking (ncclConfig_t.blocking = 0): init, split and
 * finalize return at once and are polled by the same loop, with the same deadline.
 *
 * The unique id: rank 0 calls ncclGetUniqueId; it reaches the others through o->bootstrap (an MPI
 * communicator: first every rank says whether its CUDA set-up worked, so that all fail together, then
 * rank 0 broadcasts the id), else through the rendezvous directory (include/ll_rendezvous.h), where a
 * rank whose set-up fails leaves the abort mark so that the others stop waiting. docs/ranks.md. */
#include "ll_comm.h"
#include "ll_rendezvous.h"

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(NCCL_VERSION_CODE) || NCCL_VERSION_CODE < NCCL_VERSION(2, 18, 0)
#error "the NCCL module needs NCCL 2.18 or newer (ncclCommSplit, non-blocking communicators)"
#endif

#define LL_EXPORT __attribute__((visibility("default")))
#define ABORT_CHECK_EVERY_S 0.5 /* how often a waiting op looks for the abort mark (a stat on a shared FS) */
#define SPIN_S 0.002            /* poll without sleeping for this long: collectives here take microseconds */

/* Every CUDA call is checked: file:line, the statement and CUDA's message. */
#define CU_CHECK(err, call)                                                                                  \
    do {                                                                                                     \
        cudaError_t e_ = (call);                                                                             \
        if (e_ != cudaSuccess)                                                                               \
            return ll_fail((err), LL_ERR_BACKEND, "%s:%d: %s: %s", __FILE__, __LINE__, #call,                \
                           cudaGetErrorString(e_));                                                          \
    } while (0)

typedef struct nccl_ctx {
    ncclComm_t comm;        /* NULL after an abort */
    cudaStream_t stream;    /* the ops' stream (non-blocking with respect to the legacy default stream) */
    int device;             /* the CUDA device of this rank */
    int world_rank;         /* this rank in the job (the abort mark names it) */
    int is_world;           /* 1: the world communicator (rank 0 removes the id file at close) */
    int broken;             /* an op failed: the communicator was aborted; later ops fail at once */
    char broken_why[256];   /* the first failure, repeated by later ops */
    double timeout_s;       /* deadline of every wait, seconds (> 0) */
    ll_comm *bootstrap;     /* the MPI world communicator (not owned), used by abort; or NULL */
    char rdv_dir[PATH_MAX]; /* "" without a rendezvous directory */
    char job_id[128];
    int wrote_id;           /* this rank wrote the id file */
} nccl_ctx;

static nccl_ctx *cx(ll_comm *c) { return (nccl_ctx *)c->ctx; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void nap(double s) {
    struct timespec ts = {0, (long)(s * 1e9)};
    nanosleep(&ts, NULL);
}

static const char *nccl_why(ncclResult_t r, ncclComm_t comm) {
    const char *last = ncclGetLastError(comm);
    return last && *last ? last : ncclGetErrorString(r);
}

/* Marks the communicator broken after a failure and aborts it, so its kernels stop and nothing waits on it. */
static void set_broken(nccl_ctx *m, const char *why) {
    if (!m->broken) snprintf(m->broken_why, sizeof m->broken_why, "%s", why);
    m->broken = 1;
    if (m->comm) {
        ncclCommAbort(m->comm);
        m->comm = NULL;
    }
}

/* Polls until done() says the work finished (1) or failed (-1), or the deadline, the abort mark, or an
 * asynchronous NCCL error ends the wait. Which work: a stream (stream != NULL) or the communicator's own
 * state (comm init, split, finalize: stream == NULL). Returns LL_OK or an error in err. */
static ll_status wait_for(nccl_ctx *m, ncclComm_t comm, cudaStream_t stream, const char *what, ll_err *err) {
    double t0 = now_s(), next_mark = t0 + ABORT_CHECK_EVERY_S, pause = 1e-5;
    for (;;) {
        ncclResult_t as = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(comm, &as);
        if (r != ncclSuccess) as = r;
        if (as != ncclSuccess && as != ncclInProgress)
            return ll_fail(err, LL_ERR_BACKEND, "nccl %s: %s (rank %d)", what, nccl_why(as, comm), m->world_rank);
        if (stream) {
            cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return LL_OK;
            if (q != cudaErrorNotReady)
                return ll_fail(err, LL_ERR_BACKEND, "nccl %s: waiting for the stream: %s (rank %d)", what,
                               cudaGetErrorString(q), m->world_rank);
        } else if (as == ncclSuccess) {
            return LL_OK;
        }
        double t = now_s();
        if (t - t0 >= m->timeout_s)
            return ll_fail(err, LL_ERR_BACKEND,
                           "nccl %s: not complete after %.0f s (rank %d; a peer rank may have died or stopped calling "
                           "it); the communicator is aborted",
                           what, t - t0, m->world_rank);
        if (m->rdv_dir[0] && t >= next_mark) {
            char why[512];
            if (ll_rendezvous_aborted(m->rdv_dir, m->job_id, why, sizeof why))
                return ll_fail(err, LL_ERR_BACKEND, "nccl %s: the job was aborted by another rank (%s; rank %d)", what,
                               why, m->world_rank);
            next_mark = t + ABORT_CHECK_EVERY_S;
        }
        if (t - t0 < SPIN_S) {
            sched_yield();
        } else {
            nap(pause);
            if (pause < 1e-3) pause *= 2;
        }
    }
}

/* Common start of an op: refuse on a broken communicator, then wait for the backend's queued work. */
static ll_status op_begin(ll_comm *c, ll_backend *be, const char *what) {
    nccl_ctx *m = cx(c);
    if (m->broken)
        return ll_fail(&c->err, LL_ERR_BACKEND, "nccl %s: the communicator was aborted after an earlier failure (%s)",
                       what, m->broken_why);
    if (be && be->ops && be->ops->sync && be->ops->sync(be) != LL_OK)
        return ll_fail(&c->err, LL_ERR_BACKEND, "nccl %s: waiting for the backend's work: %s", what, be->err.msg);
    return LL_OK;
}

/* Common end: r is what the enqueueing call returned; waits for completion. On failure the communicator
 * is aborted and marked broken. */
static ll_status op_end(ll_comm *c, ncclResult_t r, const char *what) {
    nccl_ctx *m = cx(c);
    ll_status st = LL_OK;
    if (r != ncclSuccess && r != ncclInProgress)
        st = ll_fail(&c->err, LL_ERR_BACKEND, "nccl %s: %s (rank %d)", what, nccl_why(r, m->comm), m->world_rank);
    else if (r == ncclInProgress) /* the enqueue itself is still going on: wait for it, then for the stream */
        st = wait_for(m, m->comm, NULL, what, &c->err);
    if (!st) st = wait_for(m, m->comm, m->stream, what, &c->err);
    if (st) set_broken(m, c->err.msg);
    return st;
}

static ll_status nccl_allreduce(ll_comm *c, ll_backend *be, float *buf, int64_t n) {
    char what[96];
    snprintf(what, sizeof what, "all-reduce of %lld floats", (long long)n);
    if (n < 0) return ll_fail(&c->err, LL_ERR_INTERNAL, "nccl %s: negative count", what);
    if (op_begin(c, be, what)) return LL_ERR_BACKEND;
    if (n == 0) return LL_OK;
    nccl_ctx *m = cx(c);
    return op_end(c, ncclAllReduce(buf, buf, (size_t)n, ncclFloat32, ncclSum, m->comm, m->stream), what);
}

static ll_status nccl_allgather(ll_comm *c, ll_backend *be, void *recv, const void *send, size_t bytes) {
    char what[96];
    snprintf(what, sizeof what, "all-gather of %zu bytes per rank", bytes);
    if (op_begin(c, be, what)) return LL_ERR_BACKEND;
    if (bytes == 0) return LL_OK;
    nccl_ctx *m = cx(c);
    return op_end(c, ncclAllGather(send, recv, bytes, ncclUint8, m->comm, m->stream), what);
}

static ll_status nccl_broadcast(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int root) {
    char what[96];
    snprintf(what, sizeof what, "broadcast of %zu bytes from rank %d", bytes, root);
    if (root < 0 || root >= c->world)
        return ll_fail(&c->err, LL_ERR_INTERNAL, "nccl %s: root outside 0..%d", what, c->world - 1);
    if (op_begin(c, be, what)) return LL_ERR_BACKEND;
    if (bytes == 0) return LL_OK;
    nccl_ctx *m = cx(c);
    return op_end(c, ncclBroadcast(buf, buf, bytes, ncclUint8, root, m->comm, m->stream), what);
}

static ll_status check_peer(ll_comm *c, int peer, const char *what) {
    if (peer < 0 || peer >= c->world || peer == c->rank)
        return ll_fail(&c->err, LL_ERR_INTERNAL, "nccl %s: peer %d is not another rank of 0..%d (this is rank %d)", what,
                       peer, c->world - 1, c->rank);
    return LL_OK;
}

static ll_status nccl_send(ll_comm *c, ll_backend *be, const void *buf, size_t bytes, int peer) {
    char what[96];
    snprintf(what, sizeof what, "send of %zu bytes to rank %d", bytes, peer);
    if (check_peer(c, peer, what)) return LL_ERR_INTERNAL;
    if (op_begin(c, be, what)) return LL_ERR_BACKEND;
    if (bytes == 0) return LL_OK;
    nccl_ctx *m = cx(c);
    return op_end(c, ncclSend(buf, bytes, ncclUint8, peer, m->comm, m->stream), what);
}

static ll_status nccl_recv(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int peer) {
    char what[96];
    snprintf(what, sizeof what, "recv of %zu bytes from rank %d", bytes, peer);
    if (check_peer(c, peer, what)) return LL_ERR_INTERNAL;
    if (op_begin(c, be, what)) return LL_ERR_BACKEND;
    if (bytes == 0) return LL_OK;
    nccl_ctx *m = cx(c);
    return op_end(c, ncclRecv(buf, bytes, ncclUint8, peer, m->comm, m->stream), what);
}

static ll_comm *comm_new(nccl_ctx *m, ll_err *err);
static void nccl_close(ll_comm *c);

static ll_status nccl_split(ll_comm *c, int color, int key, ll_comm **out) {
    nccl_ctx *m = cx(c);
    *out = NULL;
    char what[96];
    snprintf(what, sizeof what, "split (color %d, key %d)", color, key);
    if (color < 0) return ll_fail(&c->err, LL_ERR_INTERNAL, "nccl %s: colors are >= 0 (every rank joins a group)", what);
    if (op_begin(c, NULL, what)) return LL_ERR_BACKEND;
    nccl_ctx *s = calloc(1, sizeof *s);
    if (!s) return ll_fail(&c->err, LL_ERR_NOMEM, "nccl %s: out of memory", what);
    *s = *m;
    s->comm = NULL;
    s->stream = NULL;
    s->is_world = 0;
    s->wrote_id = 0;
    ncclComm_t nc = NULL;
    ncclResult_t r = ncclCommSplit(m->comm, color, key, &nc, NULL); /* NULL config: inherits non-blocking */
    ll_status st = LL_OK;
    if (r != ncclSuccess && r != ncclInProgress)
        st = ll_fail(&c->err, LL_ERR_BACKEND, "nccl %s: %s (rank %d)", what, nccl_why(r, m->comm), m->world_rank);
    else if (!nc)
        st = ll_fail(&c->err, LL_ERR_INTERNAL, "nccl %s: no communicator returned (rank %d)", what, m->world_rank);
    else
        st = wait_for(m, nc, NULL, what, &c->err);
    if (st) {
        if (nc) ncclCommAbort(nc);
        set_broken(m, c->err.msg); /* the other ranks may be inside the split: do not leave them waiting */
        free(s);
        return st;
    }
    s->comm = nc;
    cudaError_t ce = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess) {
        ncclCommAbort(nc);
        free(s);
        return ll_fail(&c->err, LL_ERR_BACKEND, "nccl %s: cudaStreamCreateWithFlags: %s", what, cudaGetErrorString(ce));
    }
    *out = comm_new(s, &c->err);
    if (!*out) {
        ncclCommAbort(nc);
        cudaStreamDestroy(s->stream);
        free(s);
        return LL_ERR_NOMEM;
    }
    return LL_OK;
}

static void nccl_abort(ll_comm *c, int code) {
    nccl_ctx *m = cx(c);
    fflush(stdout);
    fflush(stderr);
    if (m->rdv_dir[0]) { /* tell ranks that wait on the rendezvous or poll in an op */
        char why[64];
        snprintf(why, sizeof why, "abort called with code %d", code);
        ll_rendezvous_mark_abort(m->rdv_dir, m->job_id, m->world_rank, code, why, NULL);
    }
    if (m->comm) ncclCommAbort(m->comm); /* local kernels stop; peers see a failed transport or time out */
    m->comm = NULL;
    if (m->bootstrap && m->bootstrap->abort) m->bootstrap->abort(m->bootstrap, code); /* MPI_Abort: the launcher ends all */
    _Exit(code);
}

static void nccl_close(ll_comm *c) {
    if (!c) return;
    nccl_ctx *m = cx(c);
    if (m->comm) {
        ll_err e;
        ncclResult_t r = ncclCommFinalize(m->comm); /* non-blocking: flushes, then waits for the peers */
        if ((r == ncclSuccess || r == ncclInProgress) && wait_for(m, m->comm, NULL, "finalize", &e) == LL_OK)
            ncclCommDestroy(m->comm);
        else
            ncclCommAbort(m->comm);
    }
    if (m->stream) cudaStreamDestroy(m->stream);
    if (m->wrote_id) ll_rendezvous_remove(m->rdv_dir, m->job_id, "ncclid");
    free(m);
    free(c);
}

static ll_comm *comm_new(nccl_ctx *m, ll_err *err) {
    ll_comm *c = calloc(1, sizeof *c);
    if (!c) {
        ll_fail(err, LL_ERR_NOMEM, "nccl: cannot allocate a communicator");
        return NULL;
    }
    int rank = 0, world = 0;
    ncclCommUserRank(m->comm, &rank);
    ncclCommCount(m->comm, &world);
    c->rank = rank;
    c->world = world;
    c->kind = "nccl";
    c->allreduce_sum = nccl_allreduce;
    c->allgather = nccl_allgather;
    c->broadcast = nccl_broadcast;
    c->send = nccl_send;
    c->recv = nccl_recv;
    c->split = nccl_split;
    c->abort = nccl_abort;
    c->close = nccl_close;
    c->ctx = m;
    return c;
}

/* This rank's part before the id is shared: the device, the stream, and on rank 0 the id. */
static ll_status local_setup(nccl_ctx *m, const ll_comm_nccl_opts *o, ncclUniqueId *id, ll_err *err) {
    int n = 0;
    CU_CHECK(err, cudaGetDeviceCount(&n));
    if (o->device < 0 || o->device >= n)
        return ll_fail(err, LL_ERR_BACKEND, "nccl: rank %d asks for CUDA device %d, this node has %d (0..%d)", o->rank,
                       o->device, n, n - 1);
    CU_CHECK(err, cudaSetDevice(o->device));
    CU_CHECK(err, cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    if (o->rank == 0) {
        ncclResult_t r = ncclGetUniqueId(id);
        if (r != ncclSuccess)
            return ll_fail(err, LL_ERR_BACKEND, "nccl: ncclGetUniqueId: %s", nccl_why(r, NULL));
    }
    return LL_OK;
}

/* Every bootstrap rank learns whether all ranks succeeded (sum of failure flags over MPI, host memory). */
static ll_status agree(ll_comm *boot, ll_status mine, const char *stage, ll_err *err) {
    float bad = mine != LL_OK ? 1.0f : 0.0f;
    if (boot->allreduce_sum(boot, NULL, &bad, 1) != LL_OK)
        return ll_fail(err, LL_ERR_BACKEND, "nccl %s: the MPI bootstrap failed: %s", stage, boot->err.msg);
    if (mine != LL_OK) return mine; /* err already says why */
    if (bad > 0.0f)
        return ll_fail(err, LL_ERR_BACKEND, "nccl %s: %.0f of %d ranks failed (their own messages say why)", stage, bad,
                       boot->world);
    return LL_OK;
}

static ll_status share_id(nccl_ctx *m, const ll_comm_nccl_opts *o, ll_status setup, ncclUniqueId *id, ll_err *err) {
    if (o->bootstrap) {
        ll_comm *b = o->bootstrap;
        if (b->rank != o->rank || b->world != o->world)
            return ll_fail(err, LL_ERR_INTERNAL, "nccl: the bootstrap communicator is rank %d of %d, expected %d of %d",
                           b->rank, b->world, o->rank, o->world);
        ll_status st = agree(b, setup, "set-up", err);
        if (st) return st;
        if (b->broadcast(b, NULL, id, sizeof *id, 0) != LL_OK)
            return ll_fail(err, LL_ERR_BACKEND, "nccl: broadcasting the unique id over MPI: %s", b->err.msg);
        return LL_OK;
    }
    if (setup) return setup;
    if (o->rank == 0) {
        ll_status st = ll_rendezvous_write(m->rdv_dir, m->job_id, "ncclid", id, sizeof *id, err);
        if (!st) m->wrote_id = 1;
        return st;
    }
    return ll_rendezvous_wait(m->rdv_dir, m->job_id, "ncclid", id, sizeof *id, m->timeout_s, err);
}

LL_EXPORT ll_status ll_comm_nccl_init(const ll_comm_nccl_opts *o, ll_comm **out, ll_err *err) {
    *out = NULL;
    if (!o || o->world < 1 || o->rank < 0 || o->rank >= o->world)
        return ll_fail(err, LL_ERR_INTERNAL, "nccl: rank %d of %d", o ? o->rank : -1, o ? o->world : 0);
    if (!o->bootstrap && (!o->rendezvous_dir || !*o->rendezvous_dir) && o->world > 1)
        return ll_fail(err, LL_ERR_USAGE, "nccl: %d ranks and neither an MPI bootstrap nor a rendezvous directory",
                       o->world);
    const char *job = o->job_id && *o->job_id ? o->job_id : "local";
    nccl_ctx *m = calloc(1, sizeof *m);
    if (!m) return ll_fail(err, LL_ERR_NOMEM, "nccl: out of memory");
    m->device = o->device;
    m->world_rank = o->rank;
    m->is_world = 1;
    m->timeout_s = o->timeout_s > 0 ? o->timeout_s : 600.0; /* as ll_world_open's default */
    m->bootstrap = o->bootstrap;
    snprintf(m->job_id, sizeof m->job_id, "%s", job);
    if (o->rendezvous_dir && *o->rendezvous_dir) {
        if (strlen(o->rendezvous_dir) >= sizeof m->rdv_dir) {
            free(m);
            return ll_fail(err, LL_ERR_USAGE, "nccl: rendezvous directory path longer than %zu bytes", sizeof m->rdv_dir - 1);
        }
        strcpy(m->rdv_dir, o->rendezvous_dir);
    }

    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    ll_status st = local_setup(m, o, &id, err);
    st = share_id(m, o, st, &id, err);
    if (!st) {
        ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
        cfg.blocking = 0;
        ncclResult_t r = ncclCommInitRankConfig(&m->comm, o->world, id, o->rank, &cfg);
        if (r != ncclSuccess && r != ncclInProgress)
            st = ll_fail(err, LL_ERR_BACKEND, "nccl: ncclCommInitRankConfig (rank %d of %d): %s", o->rank, o->world,
                         nccl_why(r, m->comm));
        else if (!m->comm)
            st = ll_fail(err, LL_ERR_INTERNAL, "nccl: ncclCommInitRankConfig returned no communicator");
        else
            st = wait_for(m, m->comm, NULL, "init", err);
        if (o->bootstrap) st = agree(o->bootstrap, st, "init", err);
    }
    if (st) {
        if (m->rdv_dir[0] && !o->bootstrap) /* others may wait for the id or inside the init: let them stop */
            ll_rendezvous_mark_abort(m->rdv_dir, m->job_id, o->rank, 1, err ? err->msg : "init failed", NULL);
        if (m->comm) ncclCommAbort(m->comm);
        if (m->stream) cudaStreamDestroy(m->stream);
        if (m->wrote_id) ll_rendezvous_remove(m->rdv_dir, m->job_id, "ncclid");
        free(m);
        return st;
    }
    *out = comm_new(m, err);
    if (!*out) {
        ncclCommAbort(m->comm);
        cudaStreamDestroy(m->stream);
        free(m);
        return LL_ERR_NOMEM;
    }
    return LL_OK;
}
