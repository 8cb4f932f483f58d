/* comm_mpi.c: the MPI communicator, built as the module build/liblogitlens_mpi.so (mk/dist.mk) and
 * opened by host/dist/ranks.c for CPU ranks (and as the NCCL module's bootstrap). Only
 * ll_comm_mpi_init is exported; everything else, including the copy of host/util/common.c linked in,
 * is hidden.
 *
 * Memory: buffers are backend memory of `be`, which host code may not touch directly (on the CPU
 * backend under LOGITLENS_DEVICE_CHECK=1 it is PROT_NONE between ops), so each op moves the data through
 * a host staging buffer with be's download/upload, one chunk at a time. be == NULL means the buffers
 * are plain host memory (the NCCL module's bootstrap broadcasts its unique id this way) and MPI works on
 * them in place. The cost on the CPU backend is one memcpy each way per chunk.
 *
 * Counts: MPI takes int counts. Every op goes in chunks of at most LOGITLENS_MPI_CHUNK_BYTES (default
 * 64 MiB, at most INT_MAX, rounded down to whole floats for the all-reduce), which also bounds the
 * staging buffer (the all-gather's chunk is that divided by world + 1). Tests set it small to cover
 * the chunk loops.
 *
 * Errors: the communicators use MPI_ERRORS_RETURN; a failing call becomes one line in c->err naming
 * the op, the sizes and MPI's message. A rank that dies is handled by the launcher (mpirun ends the
 * job; srun with --kill-on-bad-exit=1): MPI has no timeout of its own (docs/ranks.md). */
#include "ll_comm.h"

#include <mpi.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LL_EXPORT __attribute__((visibility("default")))
#define DEFAULT_CHUNK ((size_t)64 << 20)
#define P2P_TAG 7101 /* the tag of send/recv; collectives do not use tags */

typedef struct mpi_ctx {
    MPI_Comm comm;   /* a duplicate of MPI_COMM_WORLD, or a split of one */
    int is_world;    /* 1: close also finalizes MPI (when this module initialized it) */
    int we_init;     /* 1: MPI_Init_thread was called here (not by the host program) */
    size_t chunk;    /* bytes per MPI call and per staging step */
    char *stage;     /* host staging buffer [stage_cap], grown on demand */
    size_t stage_cap;
} mpi_ctx;

static mpi_ctx *cx(ll_comm *c) { return (mpi_ctx *)c->ctx; }

/* "op: MPI_Xxx failed: <MPI's message>" into c->err (one line). */
static ll_status mpi_fail(ll_err *err, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ll_status mpi_fail(ll_err *err, int rc, const char *fmt, ...) {
    char what[512], msg[MPI_MAX_ERROR_STRING + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS || len <= 0) snprintf(msg, sizeof msg, "MPI error %d", rc);
    else msg[len < MPI_MAX_ERROR_STRING ? len : MPI_MAX_ERROR_STRING] = 0;
    return ll_fail(err, LL_ERR_BACKEND, "mpi %s: %s", what, msg); /* ll_fail turns newlines into spaces */
}

static size_t chunk_from_env(void) {
    const char *v = getenv("LOGITLENS_MPI_CHUNK_BYTES");
    if (!v || !*v) return DEFAULT_CHUNK;
    char *end;
    unsigned long long x = strtoull(v, &end, 10);
    if (end == v || *end || x == 0) return DEFAULT_CHUNK;
    return x > (unsigned long long)INT_MAX ? (size_t)INT_MAX : (size_t)x;
}

static ll_status stage_get(ll_comm *c, size_t bytes, char **out) {
    mpi_ctx *m = cx(c);
    if (m->stage_cap < bytes) {
        char *p = realloc(m->stage, bytes);
        if (!p) return ll_fail(&c->err, LL_ERR_NOMEM, "mpi: cannot allocate a %zu-byte staging buffer", bytes);
        m->stage = p;
        m->stage_cap = bytes;
    }
    *out = m->stage;
    return LL_OK;
}

static ll_status be_down(ll_comm *c, ll_backend *be, void *host, const void *src, size_t n, const char *op) {
    if (be->ops->download(be, host, src, n))
        return ll_fail(&c->err, LL_ERR_BACKEND, "mpi %s: staging %zu bytes to the host: %s", op, n, be->err.msg);
    return LL_OK;
}

static ll_status be_up(ll_comm *c, ll_backend *be, void *dst, const void *host, size_t n, const char *op) {
    if (be->ops->upload(be, dst, host, n))
        return ll_fail(&c->err, LL_ERR_BACKEND, "mpi %s: staging %zu bytes from the host: %s", op, n, be->err.msg);
    return LL_OK;
}

static ll_status mpi_allreduce(ll_comm *c, ll_backend *be, float *buf, int64_t n) {
    mpi_ctx *m = cx(c);
    if (n < 0) return ll_fail(&c->err, LL_ERR_INTERNAL, "mpi all-reduce: negative count %lld", (long long)n);
    size_t per = m->chunk / sizeof(float);
    if (per == 0) per = 1;
    char *st = NULL;
    if (be && n > 0 && stage_get(c, (size_t)((int64_t)per < n ? (int64_t)per : n) * sizeof(float), &st)) return LL_ERR_NOMEM;
    for (int64_t off = 0; off < n; off += (int64_t)per) {
        int cnt = (int)((n - off) < (int64_t)per ? (n - off) : (int64_t)per);
        size_t bytes = (size_t)cnt * sizeof(float);
        float *p = be ? (float *)st : buf + off;
        if (be && be_down(c, be, p, buf + off, bytes, "all-reduce")) return LL_ERR_BACKEND;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p, cnt, MPI_FLOAT, MPI_SUM, m->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(&c->err, rc, "all-reduce of %lld floats (chunk at %lld, rank %d of %d)", (long long)n,
                            (long long)off, c->rank, c->world);
        if (be && be_up(c, be, buf + off, p, bytes, "all-reduce")) return LL_ERR_BACKEND;
    }
    return LL_OK;
}

/* recv[i * bytes + off .. + len) = rank i's send[off .. + len) for every chunk [off, off + len). Host
 * memory: one MPI_Allgather per chunk, the receive side a datatype of len bytes whose extent is `bytes`, so
 * each rank's piece lands in place. Staged: gather into [world][len] on the host, upload each piece. */
static ll_status mpi_allgather(ll_comm *c, ll_backend *be, void *recv, const void *send, size_t bytes) {
    mpi_ctx *m = cx(c);
    if (!bytes) return LL_OK;
    size_t W = (size_t)c->world;
    size_t len = be ? m->chunk / (W + 1) : m->chunk;
    if (len == 0) len = 1;
    char *st = NULL;
    if (be) {
        size_t need = (len < bytes ? len : bytes) * (W + 1);
        if (stage_get(c, need, &st)) return LL_ERR_NOMEM;
    }
    for (size_t off = 0; off < bytes; off += len) {
        size_t n = bytes - off < len ? bytes - off : len;
        int rc;
        if (be) {
            char *s = st, *r = st + n;
            if (be_down(c, be, s, (const char *)send + off, n, "all-gather")) return LL_ERR_BACKEND;
            rc = MPI_Allgather(s, (int)n, MPI_BYTE, r, (int)n, MPI_BYTE, m->comm);
            if (rc == MPI_SUCCESS)
                for (size_t i = 0; i < W; i++)
                    if (be_up(c, be, (char *)recv + i * bytes + off, r + i * n, n, "all-gather")) return LL_ERR_BACKEND;
        } else if (n == bytes) {
            rc = MPI_Allgather(send, (int)n, MPI_BYTE, recv, (int)n, MPI_BYTE, m->comm);
        } else {
            MPI_Datatype piece, strided;
            rc = MPI_Type_contiguous((int)n, MPI_BYTE, &piece);
            if (rc == MPI_SUCCESS) {
                rc = MPI_Type_create_resized(piece, 0, (MPI_Aint)bytes, &strided);
                MPI_Type_free(&piece);
            }
            if (rc == MPI_SUCCESS) {
                rc = MPI_Type_commit(&strided);
                if (rc == MPI_SUCCESS)
                    rc = MPI_Allgather((const char *)send + off, (int)n, MPI_BYTE, (char *)recv + off, 1, strided,
                                       m->comm);
                MPI_Type_free(&strided);
            }
        }
        if (rc != MPI_SUCCESS)
            return mpi_fail(&c->err, rc, "all-gather of %zu bytes per rank (chunk at %zu, rank %d of %d)", bytes, off,
                            c->rank, c->world);
    }
    return LL_OK;
}

static ll_status mpi_broadcast(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int root) {
    mpi_ctx *m = cx(c);
    if (root < 0 || root >= c->world)
        return ll_fail(&c->err, LL_ERR_INTERNAL, "mpi broadcast: root %d outside 0..%d", root, c->world - 1);
    char *st = NULL;
    if (be && bytes && stage_get(c, bytes < m->chunk ? bytes : m->chunk, &st)) return LL_ERR_NOMEM;
    for (size_t off = 0; off < bytes; off += m->chunk) {
        size_t n = bytes - off < m->chunk ? bytes - off : m->chunk;
        char *p = be ? st : (char *)buf + off;
        if (be && c->rank == root && be_down(c, be, p, (char *)buf + off, n, "broadcast")) return LL_ERR_BACKEND;
        int rc = MPI_Bcast(p, (int)n, MPI_BYTE, root, m->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(&c->err, rc, "broadcast of %zu bytes from rank %d (chunk at %zu, rank %d of %d)", bytes, root,
                            off, c->rank, c->world);
        if (be && c->rank != root && be_up(c, be, (char *)buf + off, p, n, "broadcast")) return LL_ERR_BACKEND;
    }
    return LL_OK;
}

static ll_status check_peer(ll_comm *c, int peer, const char *op) {
    if (peer < 0 || peer >= c->world || peer == c->rank)
        return ll_fail(&c->err, LL_ERR_INTERNAL, "mpi %s: peer %d is not another rank of 0..%d (this is rank %d)", op,
                       peer, c->world - 1, c->rank);
    return LL_OK;
}

static ll_status mpi_send(ll_comm *c, ll_backend *be, const void *buf, size_t bytes, int peer) {
    mpi_ctx *m = cx(c);
    if (check_peer(c, peer, "send")) return LL_ERR_INTERNAL;
    char *st = NULL;
    if (be && bytes && stage_get(c, bytes < m->chunk ? bytes : m->chunk, &st)) return LL_ERR_NOMEM;
    for (size_t off = 0; off < bytes; off += m->chunk) {
        size_t n = bytes - off < m->chunk ? bytes - off : m->chunk;
        const char *p = be ? st : (const char *)buf + off;
        if (be && be_down(c, be, st, (const char *)buf + off, n, "send")) return LL_ERR_BACKEND;
        int rc = MPI_Send(p, (int)n, MPI_BYTE, peer, P2P_TAG, m->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(&c->err, rc, "send of %zu bytes to rank %d (chunk at %zu, rank %d of %d)", bytes, peer, off,
                            c->rank, c->world);
    }
    return LL_OK;
}

static ll_status mpi_recv(ll_comm *c, ll_backend *be, void *buf, size_t bytes, int peer) {
    mpi_ctx *m = cx(c);
    if (check_peer(c, peer, "recv")) return LL_ERR_INTERNAL;
    char *st = NULL;
    if (be && bytes && stage_get(c, bytes < m->chunk ? bytes : m->chunk, &st)) return LL_ERR_NOMEM;
    for (size_t off = 0; off < bytes; off += m->chunk) {
        size_t n = bytes - off < m->chunk ? bytes - off : m->chunk;
        char *p = be ? st : (char *)buf + off;
        MPI_Status status;
        int rc = MPI_Recv(p, (int)n, MPI_BYTE, peer, P2P_TAG, m->comm, &status);
        int got = -1;
        if (rc == MPI_SUCCESS) rc = MPI_Get_count(&status, MPI_BYTE, &got);
        if (rc != MPI_SUCCESS)
            return mpi_fail(&c->err, rc, "recv of %zu bytes from rank %d (chunk at %zu, rank %d of %d)", bytes, peer, off,
                            c->rank, c->world);
        if ((size_t)got != n)
            return ll_fail(&c->err, LL_ERR_INTERNAL, "mpi recv from rank %d: chunk at %zu has %d bytes, expected %zu "
                           "(the sender's size differs)", peer, off, got, n);
        if (be && be_up(c, be, (char *)buf + off, p, n, "recv")) return LL_ERR_BACKEND;
    }
    return LL_OK;
}

static ll_comm *comm_new(MPI_Comm mc, int is_world, int we_init, ll_err *err);

static ll_status mpi_split(ll_comm *c, int color, int key, ll_comm **out) {
    *out = NULL;
    if (color < 0)
        return ll_fail(&c->err, LL_ERR_INTERNAL, "mpi split: color %d (colors are >= 0; every rank joins a group)", color);
    MPI_Comm nc;
    int rc = MPI_Comm_split(cx(c)->comm, color, key, &nc);
    if (rc != MPI_SUCCESS)
        return mpi_fail(&c->err, rc, "split (color %d, key %d, rank %d of %d)", color, key, c->rank, c->world);
    MPI_Comm_set_errhandler(nc, MPI_ERRORS_RETURN);
    *out = comm_new(nc, 0, 0, &c->err);
    if (!*out) {
        MPI_Comm_free(&nc);
        return LL_ERR_NOMEM;
    }
    cx(*out)->chunk = cx(c)->chunk;
    return LL_OK;
}

static void mpi_abort(ll_comm *c, int code) {
    (void)c;
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code); /* the launcher ends every rank */
    _Exit(code);                     /* MPI_Abort does not return; if it does, still end this rank */
}

static void mpi_close(ll_comm *c) {
    if (!c) return;
    mpi_ctx *m = cx(c);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        if (m->comm != MPI_COMM_NULL) MPI_Comm_free(&m->comm);
        if (m->is_world && m->we_init) MPI_Finalize();
    }
    free(m->stage);
    free(m);
    free(c);
}

static ll_comm *comm_new(MPI_Comm mc, int is_world, int we_init, ll_err *err) {
    ll_comm *c = calloc(1, sizeof *c);
    mpi_ctx *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c);
        free(m);
        ll_fail(err, LL_ERR_NOMEM, "mpi: cannot allocate a communicator");
        return NULL;
    }
    m->comm = mc;
    m->is_world = is_world;
    m->we_init = we_init;
    m->chunk = chunk_from_env();
    MPI_Comm_rank(mc, &c->rank);
    MPI_Comm_size(mc, &c->world);
    c->kind = "mpi";
    c->allreduce_sum = mpi_allreduce;
    c->allgather = mpi_allgather;
    c->broadcast = mpi_broadcast;
    c->send = mpi_send;
    c->recv = mpi_recv;
    c->split = mpi_split;
    c->abort = mpi_abort;
    c->close = mpi_close;
    c->ctx = m;
    return c;
}

/* OpenMPI loads its components (mca_*.so: transports, PMIx) with dlopen. In builds whose components do not
 * link libmpi themselves, they find its symbols only when libmpi is global, but ranks.c opened this module,
 * and so libmpi, RTLD_LOCAL ("undefined symbol" from mca_*.so at MPI_Init; Debian's OpenMPI 4.1 does not need
 * this). Reopening the already loaded libmpi with RTLD_GLOBAL | RTLD_NOLOAD makes its symbols global without
 * loading anything new. */
static void promote_libmpi(void) {
    Dl_info info;
    void *fn = (void *)&MPI_Init_thread;
    if (dladdr(fn, &info) && info.dli_fname) {
        void *h = dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);
        (void)h; /* keeps a reference: libmpi stays loaded for the process's life, as it would anyway */
    }
}

LL_EXPORT ll_status ll_comm_mpi_init(ll_comm **out, ll_err *err) {
    *out = NULL;
    promote_libmpi();
    int inited = 0, finalized = 0, we_init = 0, rc;
    MPI_Finalized(&finalized);
    if (finalized) return ll_fail(err, LL_ERR_BACKEND, "mpi: MPI was already finalized in this process");
    MPI_Initialized(&inited);
    if (!inited) {
        int provided = MPI_THREAD_SINGLE;
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Init_thread");
        we_init = 1;
        if (provided < MPI_THREAD_FUNNELED) {
            MPI_Finalize();
            return ll_fail(err, LL_ERR_BACKEND, "mpi: MPI_Init_thread gave thread level %d, FUNNELED (%d) is needed",
                           provided, MPI_THREAD_FUNNELED);
        }
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm dup;
    rc = MPI_Comm_dup(MPI_COMM_WORLD, &dup); /* our own context: no clash with other users of MPI_COMM_WORLD */
    if (rc != MPI_SUCCESS) {
        ll_status st = mpi_fail(err, rc, "MPI_Comm_dup(MPI_COMM_WORLD)");
        if (we_init) MPI_Finalize();
        return st;
    }
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    *out = comm_new(dup, 1, we_init, err);
    if (!*out) {
        MPI_Comm_free(&dup);
        if (we_init) MPI_Finalize();
        return LL_ERR_NOMEM;
    }
    return LL_OK;
}
