/* backend_check.c: the device-memory discipline checker (LOGITLENS_DEVICE_CHECK=1, a testing mode).
 *
 * On the CPU backend "device" memory is host memory, so host code that reads an op's output directly
 * instead of downloading it, or passes a host array where an op needs device memory, works there and
 * crashes (or reads garbage) on the CUDA backend. This wrapper makes those mistakes fail on the CPU:
 *   - every buffer from alloc and every weight from upload_weight lives in its own page-aligned mapping
 *     that is PROT_NONE whenever no op is running, so host code touching device memory faults; a
 *     SIGSEGV handler names the allocation and exits with the internal-error code (70);
 *   - every pointer an op receives must lie, with the extent the op will touch, inside one device
 *     allocation (and weights inside one uploaded weight); upload/download sources and destinations
 *     must be host memory on the host side; violations are LL_ERR_INTERNAL errors naming the op and
 *     the argument.
 * The ops themselves are the CPU backend's (results are bit-identical to --backend cpu). Only the CPU
 * backend is wrapped (ll_backend_open). Single-threaded host use, as the engine does. */
#include "backend_check.h"

#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct region {
    char *base;   /* page-aligned mapping */
    size_t size;  /* bytes asked for */
    size_t mapped;
    int weight;   /* 1: an uploaded weight, 0: an alloc buffer */
} region;

typedef struct checker {
    ll_backend inner;
    region *r;
    int n, cap;
} checker;

static ll_backend_ops g_check_ops;
static checker *g_active; /* for the SIGSEGV handler (one checked backend at a time) */
static struct sigaction g_old_segv;

static checker *ck(ll_backend *be) { return (checker *)be->ctx; }

static void protect_all(checker *c, int prot) {
    for (int i = 0; i < c->n; i++)
        if (c->r[i].mapped && mprotect(c->r[i].base, c->r[i].mapped, prot) != 0) abort();
}

static void on_segv(int sig, siginfo_t *si, void *uctx) {
    (void)uctx;
    const char *a = (const char *)si->si_addr;
    if (g_active)
        for (int i = 0; i < g_active->n; i++) {
            const region *r = &g_active->r[i];
            if (a >= r->base && a < r->base + r->mapped) {
                char msg[256];
                int len = snprintf(msg, sizeof msg,
                                   "logitlens: device check: host code touched device memory at %p, byte %zu of "
                                   "a %s of %zu bytes (on the CUDA backend this is an invalid access)\n",
                                   (const void *)a, (size_t)(a - r->base), r->weight ? "weight" : "device buffer",
                                   r->size);
                if (len > 0) (void)!write(2, msg, (size_t)len);
                _exit(ll_status_exit_code(LL_ERR_INTERNAL));
            }
        }
    sigaction(sig, &g_old_segv, NULL); /* not ours: fault again with the previous handler */
}

static ll_status fail(ll_backend *be, const char *op, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static ll_status fail(ll_backend *be, const char *op, const char *fmt, ...) {
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ll_fail(&be->err, LL_ERR_INTERNAL, "device check: %s: %s", op, buf);
}

static const region *find(const checker *c, const void *p) {
    const char *a = (const char *)p;
    for (int i = 0; i < c->n; i++)
        if (a >= c->r[i].base && a < c->r[i].base + (c->r[i].size ? c->r[i].size : 1)) return &c->r[i];
    return NULL;
}

/* p must point into one device buffer with `bytes` bytes from p inside it (any pointer when bytes is 0). */
static int dev(ll_backend *be, const char *op, const char *arg, const void *p, double bytes) {
    if (bytes <= 0) return 1;
    const region *r = find(ck(be), p);
    if (!r || r->weight) {
        fail(be, op, "argument %s (%p, %.0f bytes) is not inside a device buffer from alloc%s", arg, p, bytes,
             r ? " (it is a weight)" : ": host memory where the CUDA backend needs device memory");
        return 0;
    }
    if ((double)((const char *)p - r->base) + bytes > (double)r->size) {
        fail(be, op, "argument %s: %.0f bytes from byte %zu overrun its device buffer of %zu bytes", arg, bytes,
             (size_t)((const char *)p - r->base), r->size);
        return 0;
    }
    return 1;
}

/* p must be host memory: outside every device buffer and weight. */
static int host(ll_backend *be, const char *op, const char *arg, const void *p, size_t bytes) {
    if (!bytes) return 1;
    const checker *c = ck(be);
    const char *a = (const char *)p;
    for (int i = 0; i < c->n; i++)
        if (a < c->r[i].base + c->r[i].mapped && a + bytes > c->r[i].base) {
            fail(be, op, "argument %s (%p, %zu bytes) overlaps device memory where host memory is expected", arg, p,
                 bytes);
            return 0;
        }
    return 1;
}

/* w (optional when may_be_null) must be an uploaded weight of its stated shape. */
static int wt(ll_backend *be, const char *op, const char *arg, const ll_wt *w, int may_be_null) {
    if (!w || !w->data) {
        if (may_be_null) return 1;
        fail(be, op, "weight %s is NULL", arg);
        return 0;
    }
    const region *r = find(ck(be), w->data);
    double bytes = (double)w->rows * (double)w->cols * (double)ll_dtype_size(w->dtype);
    /* a weight, or a view of rows of one (a tied unembedding's vocabulary slice) */
    if (!r || !r->weight || (double)((const char *)w->data - r->base) + bytes > (double)r->size) {
        fail(be, op, "weight %s (%p, [%lld, %lld]) is not an uploaded weight of that size", arg, w->data,
             (long long)w->rows, (long long)w->cols);
        return 0;
    }
    return 1;
}

static ll_status add_region(ll_backend *be, size_t bytes, int weight, void **out) {
    checker *c = ck(be);
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 64;
        region *nr = realloc(c->r, (size_t)cap * sizeof *nr);
        if (!nr) return ll_fail(&be->err, LL_ERR_NOMEM, "device check: out of memory");
        c->r = nr;
        c->cap = cap;
    }
    size_t page = (size_t)sysconf(_SC_PAGESIZE), mapped = bytes ? (bytes + page - 1) / page * page : page;
    void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return ll_fail(&be->err, LL_ERR_NOMEM, "device check: cannot map %zu bytes", bytes);
    c->r[c->n++] = (region){.base = p, .size = bytes, .mapped = mapped, .weight = weight};
    *out = p;
    return LL_OK;
}

static void drop_region(checker *c, void *p) {
    for (int i = 0; i < c->n; i++)
        if (c->r[i].base == p) {
            munmap(c->r[i].base, c->r[i].mapped);
            c->r[i] = c->r[--c->n];
            return;
        }
}

/* Runs an inner op with device memory accessible, then closes it again. */
#define INNER(be, call)                                                                                  \
    do {                                                                                                 \
        checker *c_ = ck(be);                                                                            \
        protect_all(c_, PROT_READ | PROT_WRITE);                                                         \
        ll_status st_ = c_->inner.ops->call;                                                             \
        protect_all(c_, PROT_NONE);                                                                      \
        if (st_ != LL_OK) memcpy(&(be)->err, &c_->inner.err, sizeof(be)->err);                           \
        return st_;                                                                                      \
    } while (0)
#define IN(be) (&ck(be)->inner)
#define F4 4.0

/* ---- memory ---- */

static ll_status c_alloc(ll_backend *be, size_t bytes, void **out) {
    ll_status st = add_region(be, bytes, 0, out);
    if (st == LL_OK && mprotect(*out, ck(be)->r[ck(be)->n - 1].mapped, PROT_NONE) != 0) abort();
    return st;
}
static void c_dealloc(ll_backend *be, void *p) {
    if (p) drop_region(ck(be), p);
}
static ll_status c_upload(ll_backend *be, void *dst, const void *src, size_t bytes) {
    if (!dev(be, "upload", "dst", dst, (double)bytes) || !host(be, "upload", "host_src", src, bytes))
        return LL_ERR_INTERNAL;
    INNER(be, upload(IN(be), dst, src, bytes));
}
static ll_status c_download(ll_backend *be, void *dst, const void *src, size_t bytes) {
    if (!dev(be, "download", "src", src, (double)bytes) || !host(be, "download", "host_dst", dst, bytes))
        return LL_ERR_INTERNAL;
    INNER(be, download(IN(be), dst, src, bytes));
}
static ll_status c_copy(ll_backend *be, void *dst, const void *src, size_t bytes) {
    if (!dev(be, "copy", "dst", dst, (double)bytes) || !dev(be, "copy", "src", src, (double)bytes))
        return LL_ERR_INTERNAL;
    INNER(be, copy(IN(be), dst, src, bytes));
}
static ll_status c_sync(ll_backend *be) { return IN(be)->ops->sync(IN(be)); }
static ll_status c_mem_info(ll_backend *be, size_t *f, size_t *t) { return IN(be)->ops->mem_info(IN(be), f, t); }

/* The inner backend's copy is moved into a mapping of our own (so that it can be protected) and freed. */
static ll_status c_upload_weight(ll_backend *be, const void *src, ll_dtype dt, int64_t rows, int64_t cols, ll_wt *out) {
    if (!host(be, "upload_weight", "host_src", src, (size_t)(rows * cols) * ll_dtype_size(dt))) return LL_ERR_INTERNAL;
    ll_wt w;
    ll_status st = IN(be)->ops->upload_weight(IN(be), src, dt, rows, cols, &w);
    if (st != LL_OK) {
        memcpy(&be->err, &IN(be)->err, sizeof be->err);
        return st;
    }
    size_t bytes = (size_t)(w.rows * w.cols) * ll_dtype_size(w.dtype);
    void *p;
    if ((st = add_region(be, bytes, 1, &p)) != LL_OK) {
        IN(be)->ops->free_weight(IN(be), &w);
        return st;
    }
    if (bytes) memcpy(p, w.data, bytes);
    if (mprotect(p, ck(be)->r[ck(be)->n - 1].mapped, PROT_NONE) != 0) abort();
    *out = w;
    out->data = p;
    IN(be)->ops->free_weight(IN(be), &w);
    return LL_OK;
}
static void c_free_weight(ll_backend *be, ll_wt *w) {
    if (w && w->data) drop_region(ck(be), w->data);
    if (w) w->data = NULL;
}

/* ---- forward ops ---- */

static ll_status c_embed(ll_backend *be, float *x, const ll_wt *wte, const ll_wt *wpe, const int32_t *ids,
                         const int32_t *pos, int64_t T, int64_t d) {
    const char *op = "embed";
    if (!dev(be, op, "x", x, F4 * T * d) || !wt(be, op, "wte", wte, 0) || !wt(be, op, "wpe", wpe, 1) ||
        !dev(be, op, "ids", ids, F4 * T) || (wpe && wpe->data && !dev(be, op, "pos", pos, F4 * T)))
        return LL_ERR_INTERNAL;
    INNER(be, embed(IN(be), x, wte, wpe, ids, pos, T, d));
}
static ll_status c_layernorm(ll_backend *be, float *y, const float *x, const ll_wt *w, const ll_wt *b, int64_t T,
                             int64_t d, float eps) {
    const char *op = "layernorm";
    if (!dev(be, op, "y", y, F4 * T * d) || !dev(be, op, "x", x, F4 * T * d) || !wt(be, op, "w", w, 0) ||
        !wt(be, op, "b", b, 1))
        return LL_ERR_INTERNAL;
    INNER(be, layernorm(IN(be), y, x, w, b, T, d, eps));
}
static ll_status c_rmsnorm(ll_backend *be, float *y, const float *x, const ll_wt *w, int64_t T, int64_t d, float eps) {
    const char *op = "rmsnorm";
    if (!dev(be, op, "y", y, F4 * T * d) || !dev(be, op, "x", x, F4 * T * d) || !wt(be, op, "w", w, 0))
        return LL_ERR_INTERNAL;
    INNER(be, rmsnorm(IN(be), y, x, w, T, d, eps));
}
static ll_status c_matmul(ll_backend *be, float *y, const float *x, const ll_wt *w, ll_wlayout layout,
                          const ll_wt *bias, int64_t T, int64_t N, int64_t K) {
    const char *op = "matmul";
    if (!dev(be, op, "y", y, F4 * T * N) || !dev(be, op, "x", x, F4 * T * K) || !wt(be, op, "w", w, 0) ||
        !wt(be, op, "bias", bias, 1))
        return LL_ERR_INTERNAL;
    INNER(be, matmul(IN(be), y, x, w, layout, bias, T, N, K));
}
static ll_status c_rope(ll_backend *be, float *x, int64_t T, int64_t ld, int n_heads, int64_t hs,
                        const ll_rope_params *p, const int32_t *pos) {
    const char *op = "rope";
    double extent = T > 0 && n_heads > 0 && p ? F4 * ((double)(T - 1) * ld + (double)(n_heads - 1) * hs + p->rot_dim) : 0;
    if (!dev(be, op, "x", x, extent) || !dev(be, op, "pos", pos, F4 * T)) return LL_ERR_INTERNAL;
    INNER(be, rope(IN(be), x, T, ld, n_heads, hs, p, pos));
}
static ll_status c_attention(ll_backend *be, float *out, const float *q, const float *k, const float *v,
                             const ll_attn_layout *L, const int64_t *off, int n_prompts, int64_t T) {
    const char *op = "attention";
    if (L && T > 0) {
        double hd = L->head_dim;
        if (!dev(be, op, "out", out, F4 * T * L->n_heads * hd) ||
            !dev(be, op, "q", q, F4 * ((double)(T - 1) * L->ldq + (double)(L->n_heads - 1) * L->hsq + hd)) ||
            !dev(be, op, "k", k, F4 * ((double)(T - 1) * L->ldk + (double)(L->n_kv_heads - 1) * L->hsk + hd)) ||
            !dev(be, op, "v", v, F4 * ((double)(T - 1) * L->ldv + (double)(L->n_kv_heads - 1) * L->hsv + hd)) ||
            !dev(be, op, "off", off, 8.0 * (n_prompts + 1)))
            return LL_ERR_INTERNAL;
    }
    INNER(be, attention(IN(be), out, q, k, v, L, off, n_prompts, T));
}
static ll_status c_act(ll_backend *be, float *x, int64_t n, ll_act kind) {
    if (!dev(be, "act", "x", x, F4 * n)) return LL_ERR_INTERNAL;
    INNER(be, act(IN(be), x, n, kind));
}
static ll_status c_swiglu(ll_backend *be, float *y, const float *gate, const float *up, int64_t n) {
    const char *op = "swiglu";
    if (!dev(be, op, "y", y, F4 * n) || !dev(be, op, "gate", gate, F4 * n) || !dev(be, op, "up", up, F4 * n))
        return LL_ERR_INTERNAL;
    INNER(be, swiglu(IN(be), y, gate, up, n));
}
static ll_status c_add(ll_backend *be, float *y, const float *x, int64_t n) {
    if (!dev(be, "add", "y", y, F4 * n) || !dev(be, "add", "x", x, F4 * n)) return LL_ERR_INTERNAL;
    INNER(be, add(IN(be), y, x, n));
}

/* ---- lens ops ---- */

static ll_status c_lens_target_logits(ll_backend *be, float *zt, const float *x, const ll_wt *wu, const ll_wt *bu,
                                      const int32_t *target, int64_t R, int64_t d) {
    const char *op = "lens_target_logits";
    if (!dev(be, op, "zt", zt, F4 * R) || !dev(be, op, "x", x, F4 * R * d) || !wt(be, op, "wu", wu, 0) ||
        !wt(be, op, "bu", bu, 1) || !dev(be, op, "target", target, F4 * R))
        return LL_ERR_INTERNAL;
    INNER(be, lens_target_logits(IN(be), zt, x, wu, bu, target, R, d));
}
static ll_status c_lens_pass(ll_backend *be, const ll_lens_pass_args *a) {
    const char *op = "lens_pass";
    if (a) {
        double R = (double)a->R, k = a->k;
        if (!dev(be, op, "x", a->x, F4 * R * a->d) || !wt(be, op, "wu", a->wu, 0) || !wt(be, op, "bu", a->bu, 1) ||
            !dev(be, op, "zt", a->zt, F4 * R) || !dev(be, op, "target", a->target, F4 * R) ||
            !dev(be, op, "lse", a->lse, F4 * R) || !dev(be, op, "entropy", a->entropy, F4 * R) ||
            !dev(be, op, "topk_ids", a->topk_ids, F4 * R * k) || !dev(be, op, "topk_probs", a->topk_probs, F4 * R * k) ||
            !dev(be, op, "rank", a->rank, F4 * R))
            return LL_ERR_INTERNAL;
    }
    INNER(be, lens_pass(IN(be), a));
}
static ll_status c_lens_expect(ll_backend *be, float *u, float *pb, const float *xf, const ll_wt *wu, const ll_wt *bu,
                               const float *lse, int64_t T, int64_t d, int64_t V) {
    const char *op = "lens_expect";
    if (!dev(be, op, "u", u, F4 * T * d) || !dev(be, op, "pb", pb, F4 * T) || !dev(be, op, "xf", xf, F4 * T * d) ||
        !wt(be, op, "wu", wu, 0) || !wt(be, op, "bu", bu, 1) || !dev(be, op, "lse", lse, F4 * T))
        return LL_ERR_INTERNAL;
    INNER(be, lens_expect(IN(be), u, pb, xf, wu, bu, lse, T, d, V));
}
static ll_status c_lens_kl(ll_backend *be, float *kl, const float *x, const ll_wt *wu, const float *u, const float *pb,
                           const float *hf, const float *lse, int64_t R, int64_t T, int64_t d) {
    const char *op = "lens_kl";
    if (!dev(be, op, "kl", kl, F4 * R) || !dev(be, op, "x", x, F4 * R * d) || !wt(be, op, "wu", wu, 0) ||
        !dev(be, op, "u", u, R ? F4 * T * d : 0) || !dev(be, op, "pb", pb, R ? F4 * T : 0) ||
        !dev(be, op, "hf", hf, R ? F4 * T : 0) || !dev(be, op, "lse", lse, F4 * R))
        return LL_ERR_INTERNAL;
    INNER(be, lens_kl(IN(be), kl, x, wu, u, pb, hf, lse, R, T, d));
}
static ll_status c_lens_probs(ll_backend *be, uint16_t *out, const float *x, const ll_wt *wu, const ll_wt *bu,
                              const float *lse, int64_t R, int64_t d, int64_t V, const int32_t *vsel, int64_t nv) {
    const char *op = "lens_probs";
    if (!dev(be, op, "out", out, 2.0 * R * nv) || !dev(be, op, "x", x, F4 * R * d) || !wt(be, op, "wu", wu, 0) ||
        !wt(be, op, "bu", bu, 1) || !dev(be, op, "lse", lse, F4 * R) ||
        (vsel && !dev(be, op, "vsel", vsel, R ? F4 * nv : 0)))
        return LL_ERR_INTERNAL;
    INNER(be, lens_probs(IN(be), out, x, wu, bu, lse, R, d, V, vsel, nv));
}

static void c_close(ll_backend *be) {
    checker *c = ck(be);
    if (!c) return;
    for (int i = 0; i < c->n; i++) munmap(c->r[i].base, c->r[i].mapped);
    free(c->r);
    if (c->inner.ops && c->inner.ops->close) c->inner.ops->close(&c->inner);
    if (g_active == c) {
        g_active = NULL;
        sigaction(SIGSEGV, &g_old_segv, NULL);
    }
    free(c);
    be->ctx = NULL;
}

ll_status ll_backend_check_wrap(ll_backend *be, ll_err *err) {
    if (g_active) return ll_fail(err, LL_ERR_BACKEND, "device check: one checked backend at a time");
    checker *c = calloc(1, sizeof *c);
    if (!c) return ll_fail(err, LL_ERR_NOMEM, "device check: out of memory");
    c->inner = *be;
    const ll_backend_ops *in = be->ops;
    g_check_ops = (ll_backend_ops){
        .name = in->name,        .close = c_close,
        .alloc = c_alloc,        .dealloc = c_dealloc,
        .upload = c_upload,      .download = c_download,
        .copy = c_copy,          .sync = c_sync,
        .mem_info = c_mem_info,  .upload_weight = c_upload_weight,
        .free_weight = c_free_weight, .embed = c_embed,
        .layernorm = c_layernorm, .rmsnorm = c_rmsnorm,
        .matmul = c_matmul,      .rope = c_rope,
        .attention = c_attention, .act = c_act,
        .swiglu = c_swiglu,      .add = c_add,
        .lens_target_logits = c_lens_target_logits, .lens_pass = c_lens_pass,
        .lens_expect = c_lens_expect, .lens_kl = c_lens_kl,
        .lens_probs = c_lens_probs,
    };
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSEGV, &sa, &g_old_segv) != 0) {
        free(c);
        return ll_fail(err, LL_ERR_BACKEND, "device check: cannot install the SIGSEGV handler");
    }
    g_active = c;
    be->ops = &g_check_ops;
    be->ctx = c;
    return LL_OK;
}

/* ---- communicators (host/dist/comm_check.c) ---- */

int ll_backend_check_devbuf(ll_backend *be, const char *op, const char *arg, const void *p, size_t bytes) {
    if (be->ops != &g_check_ops) return 1;
    return dev(be, op, arg, p, (double)bytes);
}

void ll_backend_check_open(ll_backend *be, int open) {
    if (be->ops != &g_check_ops) return;
    protect_all(ck(be), open ? PROT_READ | PROT_WRITE : PROT_NONE);
}
