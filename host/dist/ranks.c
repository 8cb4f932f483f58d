/* ranks.c: the rank of this process from the launcher's environment, and the world communicator
 * (include/ll_ranks.h, docs/ranks.md).
 *
 * The MPI and NCCL communicators are modules (build/liblogitlens_mpi.so, build/liblogitlens_nccl.so)
 * opened here with dlopen, as host/engine/backend.c opens the CUDA backend: the executable links neither
 * MPI nor CUDA and starts where they are not installed; only a multi-rank run needs them. */
#include "ll_ranks.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WORLD_MAX (1 << 20) /* more ranks than any job we run: a larger value is a malformed variable */

/* ---- environment ---- */

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL; /* exported but empty counts as unset */
}

/* Reads the decimal integer in $name into *out, within [lo, hi]. 1: read; 0: unset; -1: malformed
 * (err names the variable and its value). */
static int env_int(const char *name, long lo, long hi, int *out, ll_err *err) {
    const char *v = env(name);
    if (!v) return 0;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || v[0] == '+' || v[0] == ' ' || x < lo || x > hi) {
        ll_fail(err, LL_ERR_USAGE, "launcher environment: %s='%s' is not an integer in [%ld, %ld]", name, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 1;
}

/* Local task count of node `node` from a Slurm per-node list "2(x3),1" (2 tasks on each of 3 nodes, then 1).
 * node < 0: the list must be uniform. 1: found; -1: malformed or not found (err filled). */
static int slurm_tasks_on_node(const char *name, const char *list, int node, int *out, ll_err *err) {
    const char *p = list;
    int idx = 0, first = -1, uniform = 1;
    while (*p) {
        char *end;
        errno = 0;
        long n = strtol(p, &end, 10);
        if (errno || end == p || n < 1 || n > WORLD_MAX || *p == '+' || *p == '-' || *p == ' ') goto bad;
        long rep = 1;
        p = end;
        if (*p == '(') {
            if (p[1] != 'x') goto bad;
            errno = 0;
            rep = strtol(p + 2, &end, 10);
            if (errno || end == p + 2 || rep < 1 || rep > WORLD_MAX || *end != ')' || p[2] == '+' || p[2] == '-')
                goto bad;
            p = end + 1;
        }
        if (*p == ',') {
            p++;
            if (!*p) goto bad;
        } else if (*p) goto bad;
        if (first < 0) first = (int)n;
        if (n != first) uniform = 0;
        if (node >= 0 && node >= idx && node < idx + rep) {
            *out = (int)n;
            return 1;
        }
        idx += (int)rep;
    }
    if (first < 0) goto bad;
    if (node < 0) {
        if (!uniform) {
            ll_fail(err, LL_ERR_USAGE, "launcher environment: %s='%s' differs between nodes and SLURM_NODEID is not set",
                    name, list);
            return -1;
        }
        *out = first;
        return 1;
    }
    ll_fail(err, LL_ERR_USAGE, "launcher environment: %s='%s' lists %d nodes, SLURM_NODEID is %d", name, list, idx, node);
    return -1;
bad:
    ll_fail(err, LL_ERR_USAGE, "launcher environment: %s='%s' is not a Slurm task list like '2(x3),1'", name, list);
    return -1;
}

/* Copies a launcher's job id into e->job_id, file-name safe: [A-Za-z0-9._-], other bytes become '_'. */
static void set_job_id(ll_rank_env *e, const char *a, const char *b) {
    char raw[2 * LL_JOB_ID_MAX];
    snprintf(raw, sizeof raw, "%s%s%s", a, b ? "." : "", b ? b : "");
    size_t n = strlen(raw);
    if (n > LL_JOB_ID_MAX - 1) n = LL_JOB_ID_MAX - 1;
    for (size_t i = 0; i < n; i++) {
        char ch = raw[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                 ch == '_' || ch == '-';
        e->job_id[i] = ok ? ch : '_';
    }
    e->job_id[n] = 0;
    if (e->job_id[0] == '.') e->job_id[0] = '_';
}

/* An srun step, as opposed to a batch script or salloc shell (which also carry SLURM_PROCID=0 and the
 * allocation's SLURM_NTASKS): srun sets SLURM_STEP_NUM_TASKS and a real SLURM_STEP_ID (the batch and
 * extern steps use the reserved ids 0xfffffff0 and up). */
static int in_srun_step(void) {
    if (!env("SLURM_PROCID")) return 0;
    if (env("SLURM_STEP_NUM_TASKS")) return 1;
    const char *s = env("SLURM_STEP_ID");
    if (!s) s = env("SLURM_STEPID");
    if (!s) return 0;
    char *end;
    unsigned long long id = strtoull(s, &end, 10);
    return end != s && !*end && id < 0xfffffff0ull;
}

/* Reads a rank/size pair; both must be present. 1: read; 0: neither set; -1: error. */
static int rank_pair(const char *rname, const char *wname, int *rank, int *world, ll_err *err) {
    int r = 0, w = 0;
    int hr = env_int(rname, 0, WORLD_MAX - 1, &r, err);
    if (hr < 0) return -1;
    int hw = env_int(wname, 1, WORLD_MAX, &w, err);
    if (hw < 0) return -1;
    if (!hr && !hw) return 0;
    if (!hr || !hw) {
        ll_fail(err, LL_ERR_USAGE, "launcher environment: %s is set ('%s') but %s is not", hr ? rname : wname,
                env(hr ? rname : wname), hr ? wname : rname);
        return -1;
    }
    if (r >= w) {
        ll_fail(err, LL_ERR_USAGE, "launcher environment: %s=%d is not below %s=%d", rname, r, wname, w);
        return -1;
    }
    *rank = r;
    *world = w;
    return 1;
}

/* A variable that names this process's rank again (PMIX_RANK, PMI_RANK) must agree with the rank found. */
static ll_status same_rank(const char *name, const ll_rank_env *e, const char *rname, ll_err *err) {
    int v;
    int h = env_int(name, 0, WORLD_MAX - 1, &v, err);
    if (h < 0) return LL_ERR_USAGE;
    if (h > 0 && v != e->rank)
        return ll_fail(err, LL_ERR_USAGE, "launcher environment: %s=%d disagrees with %s=%d", name, v, rname, e->rank);
    return LL_OK;
}

static ll_status detect_ompi(ll_rank_env *e, ll_err *err) {
    e->launcher = "mpirun";
    e->mpi_capable = 1;
    snprintf(e->source, sizeof e->source, "OMPI_COMM_WORLD_RANK/SIZE");
    int h = rank_pair("OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE", &e->local_rank, &e->local_world, err);
    if (h < 0) return LL_ERR_USAGE;
    e->local_known = h > 0;
    if (same_rank("PMIX_RANK", e, "OMPI_COMM_WORLD_RANK", err)) return LL_ERR_USAGE;
    const char *ns = env("PMIX_NAMESPACE");
    if (!ns) ns = env("OMPI_MCA_ess_base_jobid");
    if (ns) {
        char tmp[LL_JOB_ID_MAX];
        snprintf(tmp, sizeof tmp, "ompi-%s", ns);
        set_job_id(e, tmp, NULL);
    }
    return LL_OK;
}

static ll_status detect_srun(ll_rank_env *e, ll_err *err) {
    e->launcher = "srun";
    e->local_known = 0; /* unless SLURM_LOCALID and a per-node task count say */
    const char *wname = env("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS"
                        : env("SLURM_NTASKS")       ? "SLURM_NTASKS"
                                                    : "SLURM_NPROCS";
    if (!env(wname))
        return ll_fail(err, LL_ERR_USAGE, "launcher environment: SLURM_PROCID='%s' is set but none of "
                       "SLURM_STEP_NUM_TASKS, SLURM_NTASKS, SLURM_NPROCS", env("SLURM_PROCID"));
    if (rank_pair("SLURM_PROCID", wname, &e->rank, &e->world, err) < 0) return LL_ERR_USAGE;
    snprintf(e->source, sizeof e->source, "SLURM_PROCID/%s", wname);
    int node = -1;
    if (env_int("SLURM_NODEID", 0, WORLD_MAX - 1, &node, err) < 0) return LL_ERR_USAGE;
    const char *lname = env("SLURM_STEP_TASKS_PER_NODE") ? "SLURM_STEP_TASKS_PER_NODE"
                        : env("SLURM_NTASKS_PER_NODE")    ? "SLURM_NTASKS_PER_NODE"
                        : env("SLURM_TASKS_PER_NODE")     ? "SLURM_TASKS_PER_NODE"
                                                          : NULL;
    int lr = 0;
    int hl = env_int("SLURM_LOCALID", 0, WORLD_MAX - 1, &lr, err);
    if (hl < 0) return LL_ERR_USAGE;
    if (lname && hl > 0) {
        int lw;
        if (!strcmp(lname, "SLURM_NTASKS_PER_NODE")) {
            if (env_int(lname, 1, WORLD_MAX, &lw, err) < 0) return LL_ERR_USAGE;
        } else if (slurm_tasks_on_node(lname, env(lname), node, &lw, err) < 0) {
            return LL_ERR_USAGE;
        }
        if (lr >= lw)
            return ll_fail(err, LL_ERR_USAGE, "launcher environment: SLURM_LOCALID=%d is not below %s=%s (%d on this node)",
                           lr, lname, env(lname), lw);
        if (lw > e->world)
            return ll_fail(err, LL_ERR_USAGE, "launcher environment: %s=%s gives %d tasks on this node, more than %s=%d",
                           lname, env(lname), lw, wname, e->world);
        e->local_rank = lr;
        e->local_world = lw;
        e->local_known = 1;
    }
    /* srun --mpi=pmix / pmi2 serves MPI_Init; their rank variables must agree with Slurm's */
    if (same_rank("PMIX_RANK", e, "SLURM_PROCID", err) || same_rank("PMI_RANK", e, "SLURM_PROCID", err))
        return LL_ERR_USAGE;
    e->mpi_capable = env("PMIX_RANK") || env("PMI_RANK");
    const char *job = env("SLURM_JOB_ID");
    if (!job) job = env("SLURM_JOBID");
    const char *step = env("SLURM_STEP_ID");
    if (!step) step = env("SLURM_STEPID");
    if (job) set_job_id(e, job, step);
    return LL_OK;
}

static ll_status detect_pmi(ll_rank_env *e, ll_err *err) {
    e->launcher = "mpirun";
    e->mpi_capable = 1;
    snprintf(e->source, sizeof e->source, "PMI_RANK/PMI_SIZE");
    int h = rank_pair("MPI_LOCALRANKID", "MPI_LOCALNRANKS", &e->local_rank, &e->local_world, err);
    if (h < 0) return LL_ERR_USAGE;
    e->local_known = h > 0;
    if (same_rank("PMIX_RANK", e, "PMI_RANK", err)) return LL_ERR_USAGE;
    const char *job = env("PMI_JOBID");
    if (!job) job = env("PMIX_NAMESPACE");
    if (job) {
        char tmp[LL_JOB_ID_MAX];
        snprintf(tmp, sizeof tmp, "pmi-%s", job);
        set_job_id(e, tmp, NULL);
    }
    return LL_OK;
}

ll_status ll_rank_env_detect(ll_rank_env *e, ll_err *err) {
    LL_ASSERT(e != NULL);
    memset(e, 0, sizeof *e);
    e->world = 1;
    e->local_world = 1;
    e->local_known = 1;
    e->launcher = "none";
    snprintf(e->job_id, sizeof e->job_id, "local");
    snprintf(e->source, sizeof e->source, "no launcher variables");
    ll_status st = LL_OK;
    int h;
    if ((h = rank_pair("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", &e->rank, &e->world, err)) < 0) return LL_ERR_USAGE;
    if (h > 0) st = detect_ompi(e, err);
    else if (in_srun_step()) st = detect_srun(e, err);
    else if ((h = rank_pair("PMI_RANK", "PMI_SIZE", &e->rank, &e->world, err)) < 0) return LL_ERR_USAGE;
    else if (h > 0) st = detect_pmi(e, err);
    else if (env("PMIX_RANK"))
        return ll_fail(err, LL_ERR_USAGE, "launcher environment: PMIX_RANK='%s' is set but no world size "
                       "(OMPI_COMM_WORLD_SIZE, PMI_SIZE or an srun step's SLURM_STEP_NUM_TASKS)", env("PMIX_RANK"));
    if (st) return st;
    if (!e->local_known) {
        e->local_rank = e->rank;
        e->local_world = e->world;
    }
    if (e->local_world > e->world)
        return ll_fail(err, LL_ERR_USAGE, "launcher environment: %d ranks on this node but %d in the job (%s)",
                       e->local_world, e->world, e->source);
    const char *own = getenv("LOGITLENS_JOB_ID");
    if (own) {
        size_t n = strlen(own);
        int ok = n > 0 && n < LL_JOB_ID_MAX && own[0] != '.';
        for (size_t i = 0; ok && i < n; i++) {
            char ch = own[i];
            ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                 ch == '_' || ch == '-';
        }
        if (!ok)
            return ll_fail(err, LL_ERR_USAGE, "LOGITLENS_JOB_ID='%s' is not 1..%d characters of [A-Za-z0-9._-]", own,
                           LL_JOB_ID_MAX - 1);
        memcpy(e->job_id, own, n + 1);
    }
    return LL_OK;
}

/* ---- modules ---- */

/* path = DIR/name, DIR = $LOGITLENS_MODULE_DIR, else the running executable's directory. */
static ll_status module_path(const char *name, char *path, size_t cap, ll_err *err) {
    char dir[PATH_MAX];
    const char *v = getenv(LL_MODULE_DIR_ENV);
    if (v && *v) {
        if (strlen(v) >= sizeof dir)
            return ll_fail(err, LL_ERR_BACKEND, "%s is longer than %zu bytes", LL_MODULE_DIR_ENV, sizeof dir - 1);
        strcpy(dir, v);
    } else {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        if (n <= 0 || (size_t)n >= sizeof dir - 1)
            return ll_fail(err, LL_ERR_BACKEND, "cannot locate the executable to find %s (readlink /proc/self/exe failed)",
                           name);
        dir[n] = 0;
        char *slash = strrchr(dir, '/');
        if (!slash) return ll_fail(err, LL_ERR_BACKEND, "executable path '%s' has no directory", dir);
        slash[slash == dir ? 1 : 0] = 0;
    }
    size_t dl = strlen(dir);
    int n = snprintf(path, cap, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    if (n < 0 || (size_t)n >= cap) return ll_fail(err, LL_ERR_BACKEND, "module path %s/%s is too long", dir, name);
    return LL_OK;
}

/* dlopens DIR/name and finds symbol. On failure err says which file and why (dlerror), and nothing stays open. */
static ll_status module_load(const char *name, const char *symbol, void **dl_out, void **sym_out, char *path,
                             size_t cap, ll_err *err) {
    ll_status st = module_path(name, path, cap, err);
    if (st) return st;
    /* RTLD_NODELETE: the module stays mapped after dlclose, so the exit handlers MPI and the CUDA runtime
     * register never point into unmapped code (as backend.c does for the CUDA backend). */
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!dl) {
        const char *why = dlerror();
        return ll_fail(err, LL_ERR_BACKEND, "cannot load %s: %s", path, why ? why : "unknown error");
    }
    dlerror();
    void *sym = dlsym(dl, symbol);
    const char *why = dlerror();
    if (!sym || why) {
        ll_fail(err, LL_ERR_BACKEND, "%s does not export %s: %s", path, symbol, why ? why : "symbol is NULL");
        dlclose(dl);
        return LL_ERR_BACKEND;
    }
    *dl_out = dl;
    *sym_out = sym;
    return LL_OK;
}

/* Opens the MPI world communicator through the MPI module. */
static ll_status open_mpi(ll_world *w, ll_comm **out, ll_err *err) {
    char path[PATH_MAX + 64];
    void *sym = NULL;
    ll_status st = module_load(LL_MPI_MODULE_NAME, LL_MPI_INIT_SYMBOL, &w->mpi_dl, &sym, path, sizeof path, err);
    if (st) return st;
    ll_comm_mpi_init_fn init;
    memcpy(&init, &sym, sizeof init); /* object pointer -> function pointer, as POSIX dlsym intends */
    *out = NULL;
    st = init(out, err);
    if (st == LL_OK && !*out) st = ll_fail(err, LL_ERR_INTERNAL, "%s: %s succeeded without a communicator", path,
                                           LL_MPI_INIT_SYMBOL);
    if (st) return ll_fail_prefix(err, st, "mpi (%s)", path);
    return LL_OK;
}

static ll_status check_comm(const ll_comm *c, const ll_rank_env *e, const char *what, ll_err *err) {
    if (c->rank != e->rank || c->world != e->world)
        return ll_fail(err, LL_ERR_BACKEND, "%s communicator is rank %d of %d, the launcher environment says rank %d of %d "
                       "(%s, launcher %s)%s",
                       what, c->rank, c->world, e->rank, e->world, e->source, e->launcher,
                       strcmp(c->kind ? c->kind : "", "mpi") ? ""
                       : ": was the job started by a launcher this MPI serves (mpirun, or srun --mpi=pmix)?");
    return LL_OK;
}

static ll_status open_cuda_world(const ll_rank_env *e, int device, const char *rdv, double timeout_s, ll_world *w,
                                 ll_err *err) {
    char path[PATH_MAX + 64];
    void *sym = NULL;
    if (!e->mpi_capable && !rdv)
        return ll_fail(err, LL_ERR_USAGE,
                       "cuda ranks (rank %d of %d, launcher %s) need a way to share the NCCL id: the launcher does not "
                       "serve MPI; pass --rendezvous DIR, a directory every rank sees",
                       e->rank, e->world, e->launcher);
    /* The NCCL module before MPI: a rank that cannot load it fails before any rank waits on it. */
    ll_status st = module_load(LL_NCCL_MODULE_NAME, LL_NCCL_INIT_SYMBOL, &w->nccl_dl, &sym, path, sizeof path, err);
    if (st) return ll_fail_prefix(err, st, "cuda ranks need the NCCL module (built when the CUDA toolkit and NCCL "
                                  "are present; docs/ranks.md)");
    ll_comm_nccl_init_fn init;
    memcpy(&init, &sym, sizeof init);

    ll_err mpi_err = {{0}};
    if (e->mpi_capable) {
        ll_comm *mpi = NULL;
        if (open_mpi(w, &mpi, &mpi_err) == LL_OK) {
            if (check_comm(mpi, e, "the MPI bootstrap", &mpi_err) == LL_OK) w->bootstrap = mpi;
            else ll_comm_close(mpi); /* e.g. MPI singletons under a launcher this MPI does not serve */
        }
    }
    if (!w->bootstrap && !rdv)
        return ll_fail(err, LL_ERR_USAGE,
                       "cuda ranks (rank %d of %d, launcher %s) need a way to share the NCCL id: no MPI bootstrap (%s); "
                       "pass --rendezvous DIR, a directory every rank sees",
                       e->rank, e->world, e->launcher, mpi_err.msg);
    ll_comm_nccl_opts o = {
        .rank = e->rank,
        .world = e->world,
        .device = device,
        .bootstrap = w->bootstrap,
        .rendezvous_dir = rdv,
        .job_id = e->job_id,
        .timeout_s = timeout_s,
    };
    st = init(&o, &w->comm, err);
    if (st == LL_OK && !w->comm)
        st = ll_fail(err, LL_ERR_INTERNAL, "%s: %s succeeded without a communicator", path, LL_NCCL_INIT_SYMBOL);
    if (st) {
        w->comm = NULL;
        return ll_fail_prefix(err, st, "nccl (%s, rank %d of %d, device %d, id over %s)", path, e->rank, e->world,
                              device, w->bootstrap ? "MPI" : rdv);
    }
    return check_comm(w->comm, e, "the NCCL", err);
}

ll_status ll_world_open(const ll_rank_env *e, const char *backend, int device, const char *rendezvous_dir,
                        double timeout_s, ll_world *w, ll_err *err) {
    LL_ASSERT(e != NULL && w != NULL);
    memset(w, 0, sizeof *w);
    if (e->world < 1 || e->rank < 0 || e->rank >= e->world)
        return ll_fail(err, LL_ERR_INTERNAL, "world open: rank %d of %d", e->rank, e->world);
    int cpu = backend && !strcmp(backend, "cpu"), cuda = backend && !strcmp(backend, "cuda");
    if (!cpu && !cuda)
        return ll_fail(err, LL_ERR_USAGE, "world open: backend '%s' (ranks compute on cpu or cuda)",
                       backend ? backend : "(null)");
    if (timeout_s <= 0) timeout_s = LL_WORLD_DEFAULT_TIMEOUT_S;
    if (rendezvous_dir && !*rendezvous_dir) rendezvous_dir = NULL;
    if (e->world == 1) {
        ll_comm_single(&w->single);
        w->comm = &w->single;
        return LL_OK;
    }
    ll_status st;
    if (cpu) {
        st = open_mpi(w, &w->comm, err);
        if (st && !w->comm)
            ll_fail_prefix(err, st, "cpu ranks (rank %d of %d, launcher %s) need OpenMPI (apt-get install openmpi-bin) "
                           "and a launch by mpirun or srun --mpi=pmix", e->rank, e->world, e->launcher);
        if (!st) st = check_comm(w->comm, e, "the MPI", err);
    } else {
        if (device < 0) device = e->local_rank;
        st = open_cuda_world(e, device, rendezvous_dir, timeout_s, w, err);
    }
    if (st) ll_world_close(w);
    return st;
}

void ll_world_close(ll_world *w) {
    if (!w) return;
    if (w->comm && w->comm != &w->single) ll_comm_close(w->comm);
    ll_comm_close(w->bootstrap); /* after the NCCL communicator, which may still use it to abort */
    if (w->nccl_dl) dlclose(w->nccl_dl);
    if (w->mpi_dl) dlclose(w->mpi_dl);
    memset(w, 0, sizeof *w);
}
