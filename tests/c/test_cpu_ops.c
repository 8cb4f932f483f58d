/* test_cpu_ops.c: every op of the CPU backend except the lens (test_cpu_lens.c) against an independent
 * float64 reference.
 *
 * Each case runs one op on random inputs with an odd shape (T = 1, widths not a multiple of 8, GQA
 * ratios 1/2/4, partial rotary, llama3 scaling, both matmul layouts, with and without bias, several
 * packed prompts) and compares the result with naive float64 loops written here. Outputs are poisoned
 * (NaN) before the op, so an element the op forgets to write fails, and followed by guard elements
 * that must come back untouched. One line per case; the first bad element is printed; exit 1 on any
 * failure. Usage: test_cpu_ops [backend] (default cpu; the ops go through the backend's table and
 * upload/download, so any backend can be checked against the same references). */
#define HARNESS_NAME "test_cpu_ops"
#include "cpu_ops_harness.h"

/* ---- memory, weights, the exp ------------------------------------------------------------------- */

static void test_memory(void) {
    size_t sizes[] = {0, 1, 63, 64, 1000, 1 << 20};
    int ok = 1;
    char detail[128] = "";
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p;
        if (be->ops->alloc(be, sizes[i], &p) || !p) die("alloc");
        if ((uintptr_t)p % 64 != 0) {
            ok = 0;
            snprintf(detail, sizeof detail, "alloc(%zu) not 64-byte aligned", sizes[i]);
        }
        if (is_cpu)
            for (size_t j = 0; j < sizes[i]; j++)
                if (((unsigned char *)p)[j]) {
                    ok = 0;
                    snprintf(detail, sizeof detail, "alloc(%zu) byte %zu not zero", sizes[i], j);
                    break;
                }
        be->ops->dealloc(be, p);
    }
    size_t fr = 0, tot = 0;
    if (be->ops->mem_info(be, &fr, &tot) || tot == 0 || fr > tot) {
        ok = 0;
        snprintf(detail, sizeof detail, "mem_info free %zu total %zu", fr, tot);
    }
    report(ok, "alloc", "alignment, zero fill, mem_info", "%s", detail);
}

/* Every F16 and BF16 bit pattern, from an odd (unaligned) host address, against ll_math.h bit for bit.
 * The CPU contract: weights are always kept as F32 (other backends may keep the stored dtype). */
static void test_upload_dtypes(void) {
    if (!is_cpu) return;
    for (int kind = 0; kind < 2; kind++) {
        unsigned char *raw = malloc(2 * 65536 + 1);
        if (!raw) die("malloc");
        for (uint32_t i = 0; i < 65536; i++) {
            uint16_t h = (uint16_t)i;
            memcpy(raw + 1 + 2 * i, &h, 2);
        }
        ll_wt w;
        ll_dtype dt = kind ? LL_DTYPE_BF16 : LL_DTYPE_F16;
        if (be->ops->upload_weight(be, raw + 1, dt, 256, 256, &w)) die("upload_weight");
        float *got = malloc(65536 * sizeof *got);
        if (!got) die("malloc");
        if (be->ops->download(be, got, w.data, 65536 * sizeof(float))) die("download");
        int64_t bad = 0, first = -1;
        for (uint32_t i = 0; i < 65536; i++) {
            float want = kind ? ll_bf16_to_f32((uint16_t)i) : ll_f16_to_f32((uint16_t)i);
            if (ll_f32_to_bits(got[i]) != ll_f32_to_bits(want)) {
                if (first < 0) first = i;
                bad++;
            }
        }
        int ok = bad == 0 && w.dtype == LL_DTYPE_F32 && w.rows == 256 && w.cols == 256 &&
                 (uintptr_t)w.data % 64 == 0;
        if (ok) report(1, "upload_weight", kind ? "BF16 all 65536 patterns, unaligned source" : "F16 all 65536 patterns, unaligned source", "bit-exact");
        else
            report(0, "upload_weight", kind ? "BF16" : "F16", "%lld of 65536 differ; first 0x%04llx; dtype %d shape [%lld,%lld]",
                   (long long)bad, (long long)first, (int)w.dtype, (long long)w.rows, (long long)w.cols);
        be->ops->free_weight(be, &w);
        int freed = w.data == NULL;
        report(freed, "free_weight", "clears the tensor", "%s", freed ? "" : "data pointer left set");
        free(got);
        free(raw);
    }
    /* F32 is copied, owned, aligned */
    float src[7] = {1, -2, 3.5f, NAN, INFINITY, -0.0f, 1e-40f};
    ll_wt w;
    if (be->ops->upload_weight(be, src, LL_DTYPE_F32, 1, 7, &w)) die("upload_weight");
    float got[7];
    if (be->ops->download(be, got, w.data, sizeof got)) die("download");
    int ok = !memcmp(got, src, sizeof got) && w.data != (void *)src;
    report(ok, "upload_weight", "F32 copy, owned", "%s", ok ? "bit-exact" : "differs");
    be->ops->free_weight(be, &w);
}

static void test_exp(void) {
    if (!is_cpu) return;
    const tol_entry *t = tol_of("exp_neg");
    double worst = 0.0, at = 0.0;
    const int n = 4000000;
    for (int i = 0; i <= n; i++) {
        float x = (float)(LL_CPU_EXP_MIN * (double)i / n);
        double rel = fabs(ll_cpu_exp_neg(x) / exp((double)x) - 1.0);
        if (rel > worst) {
            worst = rel;
            at = x;
        }
    }
    for (int i = 0; i < 200000; i++) { /* small positive arguments (z - LSE rounding above 0) */
        float x = (float)(1e-3 * i / 200000.0);
        double rel = fabs(ll_cpu_exp_neg(x) / exp((double)x) - 1.0);
        if (rel > worst) {
            worst = rel;
            at = x;
        }
    }
    char desc[96];
    snprintf(desc, sizeof desc, "%d points on [%.1f, 0] and [0, 1e-3]", n, (double)LL_CPU_EXP_MIN);
    report(worst < t->tol, "exp_neg", desc, "max rel err %.2e at %.6g (tol %.0e)", worst, at, t->tol);
    float c = -3.0f;
    int ok = ll_cpu_clamp_min(-5.0f, c) == c && ll_cpu_clamp_min(-1.0f, c) == -1.0f &&
             ll_cpu_clamp_min(-INFINITY, c) == c && isnan(ll_cpu_clamp_min(NAN, c)) && ll_cpu_clamp_min(c, c) == c;
    report(ok, "clamp_min", "below, above, -inf, NaN, equal", "%s", ok ? "" : "wrong");
}

/* ---- forward ops -------------------------------------------------------------------------------- */

static void test_embed(int64_t V, int64_t d, int64_t T, int with_pos) {
    float *wte = fill_sym(V * d, 1.0f), *wpe = fill_sym(40 * d, 1.0f);
    int32_t *ids = malloc((size_t)T * 4), *pos = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) {
        ids[t] = (int32_t)rng_int(V);
        pos[t] = (int32_t)rng_int(40);
    }
    ids[0] = (int32_t)(V - 1);
    ll_wt *w1 = dev_wt(wte, V, d), *w2 = with_pos ? dev_wt(wpe, 40, d) : NULL;
    obuf o;
    float *x = out_new(&o, T * d, 4);
    if (be->ops->embed(be, x, w1, w2, dev_in(ids, (size_t)T * 4), dev_in(pos, (size_t)T * 4), T, d)) die("embed");
    int g = out_fetch(&o);
    double *ref = dalloc(T * d);
    for (int64_t t = 0; t < T; t++)
        for (int64_t i = 0; i < d; i++)
            ref[t * d + i] = (float)((double)wte[ids[t] * d + i] + (with_pos ? (double)wpe[pos[t] * d + i] : 0.0));
    char desc[96];
    snprintf(desc, sizeof desc, "V=%lld d=%lld T=%lld %s", (long long)V, (long long)d, (long long)T,
             with_pos ? "wte+wpe" : "wte only");
    check_f32("embed", desc, o.host, ref, T * d, g);
    out_free(&o);
    free(ref);
    free(wte);
    free(wpe);
    free(ids);
    free(pos);
    dev_free_all();
}

static void test_norm(int rms, int64_t T, int64_t d, int with_bias, float offset) {
    float *x = fill_normal(T * d, 1.0), *w = fill_sym(d, 2.0f), *b = fill_sym(d, 1.0f);
    for (int64_t i = 0; i < T * d; i++) x[i] = offset + (offset != 0.0f ? 0.01f : 1.0f) * x[i];
    const float eps = 1e-5f;
    obuf o;
    float *y = out_new(&o, T * d, 4);
    ll_wt *ww = dev_wt(w, 1, d), *bw = with_bias ? dev_wt(b, 1, d) : NULL;
    float *xd = dev_in(x, (size_t)(T * d) * 4);
    ll_status st = rms ? be->ops->rmsnorm(be, y, xd, ww, T, d, eps) : be->ops->layernorm(be, y, xd, ww, bw, T, d, eps);
    if (st) die(rms ? "rmsnorm" : "layernorm");
    int g = out_fetch(&o);
    double *ref = dalloc(T * d);
    for (int64_t t = 0; t < T; t++) {
        const float *xr = x + t * d;
        double mean = 0.0, var = 0.0;
        for (int64_t i = 0; i < d; i++) mean += xr[i];
        mean /= (double)d;
        for (int64_t i = 0; i < d; i++) var += rms ? (double)xr[i] * xr[i] : ((double)xr[i] - mean) * ((double)xr[i] - mean);
        var /= (double)d;
        double r = 1.0 / sqrt(var + (double)eps);
        for (int64_t i = 0; i < d; i++)
            ref[t * d + i] = rms ? xr[i] * r * w[i] : ((double)xr[i] - mean) * r * w[i] + (with_bias ? b[i] : 0.0);
    }
    char desc[96];
    snprintf(desc, sizeof desc, "T=%lld d=%lld%s offset=%g", (long long)T, (long long)d,
             rms ? "" : (with_bias ? " bias" : " no-bias"), (double)offset);
    check_f32(rms ? "rmsnorm" : "layernorm", desc, o.host, ref, T * d, g);
    /* in place: y aliases x */
    if (!rms && be->ops->layernorm(be, xd, xd, ww, bw, T, d, eps) == LL_OK) {
        float *back = malloc((size_t)(T * d) * 4);
        if (be->ops->download(be, back, xd, (size_t)(T * d) * 4)) die("download");
        check_f32("layernorm", "  same, in place (y == x)", back, ref, T * d, 1);
        free(back);
    }
    out_free(&o);
    free(ref);
    free(x);
    free(w);
    free(b);
    dev_free_all();
}

static void test_matmul(int64_t T, int64_t N, int64_t K, ll_wlayout layout, int with_bias) {
    float *x = fill_sym(T * K, 1.0f), *w = fill_sym(N * K, 1.0f), *b = fill_sym(N, 1.0f);
    obuf o;
    float *y = out_new(&o, T * N, 4);
    ll_wt *ww = layout == LL_WLAYOUT_OUT_IN ? dev_wt(w, N, K) : dev_wt(w, K, N);
    ll_wt *bw = with_bias ? dev_wt(b, 1, N) : NULL;
    if (be->ops->matmul(be, y, dev_in(x, (size_t)(T * K) * 4), ww, layout, bw, T, N, K)) die("matmul");
    int g = out_fetch(&o);
    double *ref = dalloc(T * N);
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double s = with_bias ? b[n] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)x[t * K + k] * (layout == LL_WLAYOUT_OUT_IN ? w[n * K + k] : w[k * N + n]);
            ref[t * N + n] = s;
        }
    char desc[96];
    snprintf(desc, sizeof desc, "T=%lld N=%lld K=%lld %s %s", (long long)T, (long long)N, (long long)K,
             layout == LL_WLAYOUT_OUT_IN ? "[N,K]" : "[K,N]", with_bias ? "bias" : "no-bias");
    check_f32("matmul", desc, o.host, ref, T * N, g);
    out_free(&o);
    free(ref);
    free(x);
    free(w);
    free(b);
    dev_free_all();
}

/* The reference's own inverse frequencies (the Hugging Face formulas, written out again here). */
static double ref_inv_freq(const ll_rope_params *p, int i) {
    double inv = 1.0 / pow(p->theta, (double)(2 * i) / (double)p->rot_dim);
    if (!p->llama3) return inv;
    double wavelen = 2.0 * M_PI / inv;
    double lo = p->original_max_pos / p->low_freq_factor, hi = p->original_max_pos / p->high_freq_factor;
    if (wavelen < hi) return inv;
    if (wavelen > lo) return inv / p->factor;
    double s = (p->original_max_pos / wavelen - p->low_freq_factor) / (p->high_freq_factor - p->low_freq_factor);
    return (1.0 - s) * inv / p->factor + s * inv;
}

/* x lives inside a wider buffer (row stride ld, head stride hs, first head at column c0): every
 * element outside the rotated dims, including the rest of each row, must come back unchanged. */
static void test_rope(int64_t T, int n_heads, int head_dim, int rot_dim, int64_t hs, int64_t ld, int64_t c0,
                      int llama3, double theta, int max_pos) {
    ll_rope_params p = {rot_dim, theta, llama3, 8.0, 1.0, 4.0, 8192.0};
    int64_t n = T * ld;
    float *buf = fill_sym(n, 1.0f);
    int32_t *pos = malloc((size_t)T * 4);
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(t == 0 ? max_pos : rng_int(max_pos + 1));
    obuf o;
    float *d = out_new(&o, n, 4);
    if (be->ops->upload(be, d, buf, (size_t)n * 4)) die("upload");
    if (be->ops->rope(be, d + c0, T, ld, n_heads, hs, &p, dev_in(pos, (size_t)T * 4))) die("rope");
    int g = out_fetch(&o);
    double *ref = dalloc(n);
    for (int64_t i = 0; i < n; i++) ref[i] = buf[i];
    int half = rot_dim / 2;
    for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++)
            for (int i = 0; i < half; i++) {
                double a = (double)pos[t] * ref_inv_freq(&p, i);
                int64_t b0 = t * ld + c0 + h * hs;
                double x1 = buf[b0 + i], x2 = buf[b0 + i + half];
                ref[b0 + i] = x1 * cos(a) - x2 * sin(a);
                ref[b0 + i + half] = x2 * cos(a) + x1 * sin(a);
            }
    (void)head_dim;
    char desc[128];
    snprintf(desc, sizeof desc, "T=%lld heads=%d hd=%d rot=%d ld=%lld%s pos<=%d", (long long)T, n_heads, head_dim,
             rot_dim, (long long)ld, llama3 ? " llama3" : "", max_pos);
    check_f32("rope", desc, o.host, ref, n, g);
    out_free(&o);
    free(ref);
    free(buf);
    free(pos);
    dev_free_all();
}

typedef enum qkv_kind { QKV_SEPARATE, QKV_FUSED, QKV_NEOX } qkv_kind;

static void test_attention_w(const int64_t *lens, int n_prompts, int nh, int nkv, int hd, qkv_kind kind, float qscale,
                             int64_t window) {
    int64_t *off = malloc((size_t)(n_prompts + 1) * sizeof *off);
    off[0] = 0;
    for (int j = 0; j < n_prompts; j++) off[j + 1] = off[j] + lens[j];
    const int64_t T = off[n_prompts];
    ll_attn_layout L = {nh, nkv, hd, 0, 0, 0, hd, hd, hd, (float)(1.0 / sqrt((double)hd)), window};
    int64_t qo = 0, ko = 0, vo = 0, row;
    if (kind == QKV_FUSED) { /* GPT-2: [q heads | k heads | v heads] */
        row = (int64_t)(nh + 2 * nkv) * hd;
        ko = (int64_t)nh * hd;
        vo = (int64_t)(nh + nkv) * hd;
        L.ldq = L.ldk = L.ldv = row;
    } else if (kind == QKV_NEOX) { /* GPT-NeoX: [q_h k_h v_h] per head */
        row = (int64_t)3 * nh * hd;
        ko = hd;
        vo = 2 * hd;
        L.ldq = L.ldk = L.ldv = row;
        L.hsq = L.hsk = L.hsv = 3 * hd;
    } else { /* three buffers with padded rows, packed one after another */
        L.ldq = (int64_t)nh * hd + 3;
        L.ldk = L.ldv = (int64_t)nkv * hd + 5;
        ko = T * L.ldq;
        vo = ko + T * L.ldk;
        row = 0;
    }
    int64_t nbuf = kind == QKV_SEPARATE ? vo + T * L.ldv : T * row;
    float *buf = fill_sym(nbuf, 1.0f);
    for (int64_t t = 0; t < T; t++) /* sharpen q so that some scores sit far below the row max */
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < hd; i++) buf[qo + t * L.ldq + h * L.hsq + i] *= qscale;
    float *d = dev_in(buf, (size_t)nbuf * 4);
    obuf o;
    float *out = out_new(&o, T * nh * hd, 4);
    if (be->ops->attention(be, out, d + qo, d + ko, d + vo, &L, dev_in(off, (size_t)(n_prompts + 1) * 8), n_prompts, T))
        die("attention");
    int g = out_fetch(&o);
    double *ref = dalloc(T * nh * hd), *s = dalloc(T);
    for (int j = 0; j < n_prompts; j++)
        for (int64_t t = off[j]; t < off[j + 1]; t++)
            for (int h = 0; h < nh; h++) {
                int kvh = h / (nh / nkv);
                double m = -INFINITY, den = 0.0;
                const int64_t u0 = window > 0 && t - window + 1 > off[j] ? t - window + 1 : off[j];
                for (int64_t u = u0; u <= t; u++) {
                    double acc = 0.0;
                    for (int i = 0; i < hd; i++)
                        acc += (double)buf[qo + t * L.ldq + h * L.hsq + i] * buf[ko + u * L.ldk + kvh * L.hsk + i];
                    s[u] = acc * L.scale;
                    if (s[u] > m) m = s[u];
                }
                for (int64_t u = u0; u <= t; u++) den += exp(s[u] - m);
                for (int i = 0; i < hd; i++) {
                    double acc = 0.0;
                    for (int64_t u = u0; u <= t; u++) acc += exp(s[u] - m) * buf[vo + u * L.ldv + kvh * L.hsv + i];
                    ref[t * nh * hd + h * hd + i] = acc / den;
                }
            }
    char desc[128];
    int w = snprintf(desc, sizeof desc, "prompts={");
    for (int j = 0; j < n_prompts && w < 60; j++) w += snprintf(desc + w, sizeof desc - (size_t)w, "%s%lld", j ? "," : "", (long long)lens[j]);
    w += snprintf(desc + w, sizeof desc - (size_t)w, "} h=%d kv=%d hd=%d %s%s", nh, nkv, hd,
                  kind == QKV_FUSED ? "fused" : kind == QKV_NEOX ? "neox" : "separate", qscale > 1.0f ? " sharp" : "");
    if (window > 0 && w < (int)sizeof desc) snprintf(desc + w, sizeof desc - (size_t)w, " window=%lld", (long long)window);
    check_f32("attention", desc, o.host, ref, T * nh * hd, g);
    out_free(&o);
    free(ref);
    free(s);
    free(buf);
    free(off);
    dev_free_all();
}
static void test_attention(const int64_t *lens, int n_prompts, int nh, int nkv, int hd, qkv_kind kind, float qscale) {
    test_attention_w(lens, n_prompts, nh, nkv, hd, kind, qscale, 0);
}

static void test_act(int64_t n) {
    float *x = fill_sym(n, 6.0f), *u = fill_sym(n, 2.0f);
    double *ref = dalloc(n);
    char desc[64];
    snprintf(desc, sizeof desc, "n=%lld", (long long)n);
    for (int kind = 0; kind < 2; kind++) {
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->act(be, d, n, kind ? LL_ACT_GELU_ERF : LL_ACT_GELU_TANH)) die("act");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) {
            double v = x[i];
            ref[i] = kind ? 0.5 * v * (1.0 + erf(v / sqrt(2.0)))
                          : 0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
        }
        check_f32(kind ? "gelu_erf" : "gelu_tanh", desc, o.host, ref, n, g);
        out_free(&o);
    }
    { /* swiglu with y aliasing gate */
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->swiglu(be, d, d, dev_in(u, (size_t)n * 4), n)) die("swiglu");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) ref[i] = (double)x[i] / (1.0 + exp(-(double)x[i])) * u[i];
        char d2[80];
        snprintf(d2, sizeof d2, "%s, y aliases gate", desc);
        check_f32("swiglu", d2, o.host, ref, n, g);
        out_free(&o);
    }
    {
        obuf o;
        float *d = out_new(&o, n, 4);
        if (be->ops->upload(be, d, x, (size_t)n * 4)) die("upload");
        if (be->ops->add(be, d, dev_in(u, (size_t)n * 4), n)) die("add");
        int g = out_fetch(&o);
        for (int64_t i = 0; i < n; i++) ref[i] = (float)((double)x[i] + u[i]);
        check_f32("add", desc, o.host, ref, n, g);
        out_free(&o);
    }
    free(ref);
    free(x);
    free(u);
    dev_free_all();
}

/* ---- error paths: a status and a message naming the op ----------------------------------------- */

static void expect_error(ll_status st, ll_status want, const char *needle, const char *desc) {
    int ok = st == want && (!is_cpu || strstr(be->err.msg, needle) != NULL);
    report(ok, "errors", desc, "status %d (want %d): %s", (int)st, (int)want, be->err.msg);
}

static void test_errors(void) {
    float h[64] = {0};
    ll_wt *w = dev_wt(h, 4, 8); /* [4, 8] */
    float *x = dev_in(h, sizeof h), *y = dev_alloc(sizeof h);
    expect_error(be->ops->matmul(be, y, x, w, LL_WLAYOUT_OUT_IN, NULL, 2, 5, 8), LL_ERR_INTERNAL, "cpu matmul",
                 "matmul weight [4,8] used as [N=5,K=8]");
    int32_t ids[2] = {1, 4};
    int32_t *idd = dev_in(ids, sizeof ids);
    expect_error(be->ops->embed(be, y, w, NULL, idd, NULL, 2, 8), LL_ERR_INPUT, "outside the vocabulary",
                 "embed token id 4 of a 4-row table");
    float *zt = dev_alloc(64), *o = dev_alloc(256);
    int32_t tg[2] = {0, 4};
    int32_t *tgd = dev_in(tg, sizeof tg);
    ll_lens_pass_args a = {.x = x, .wu = w, .zt = zt, .target = tgd, .R = 2, .d = 8, .V = 4, .k = 0, .lse = o, .entropy = o,
                           .topk_ids = (int32_t *)o, .topk_probs = o, .rank = (int32_t *)o};
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INTERNAL, "top-k", "lens_pass k=0");
    a.k = 2;
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INPUT, "target id 4", "lens_pass target id 4 with V=4");
    ll_wt bad;
    expect_error(be->ops->upload_weight(be, h, LL_DTYPE_F32, -1, 4, &bad), LL_ERR_INTERNAL, "negative",
                 "upload_weight shape [-1, 4]");
    expect_error(be->ops->upload_weight(be, h, LL_DTYPE_F32, INT64_MAX / 2, 8, &bad), LL_ERR_NOMEM, "overflow",
                 "upload_weight [2^62, 8] overflows");
    float xn[8] = {1, 2, NAN, 0, 0, 0, 0, 0}; /* row 1 of x: NaN */
    if (be->ops->upload(be, x + 8, xn, sizeof xn)) die("upload");
    a.target = dev_in((int32_t[2]){0, 1}, 8);
    expect_error(be->ops->lens_pass(be, &a), LL_ERR_INPUT, "non-finite", "lens_pass row with NaN");
    int64_t off[3] = {0, 3, 2};
    ll_attn_layout L = {2, 1, 4, 8, 8, 8, 4, 4, 4, 0.5f, 0};
    expect_error(be->ops->attention(be, y, x, x, x, &L, dev_in(off, sizeof off), 2, 2), LL_ERR_INTERNAL, "negative length",
                 "attention offsets {0,3,2}");
    L.n_kv_heads = 3;
    expect_error(be->ops->attention(be, y, x, x, x, &L, dev_in(off, sizeof off), 2, 2), LL_ERR_INTERNAL, "kv_heads",
                 "attention 2 heads over 3 kv heads");
    dev_free_all();
}
int main(int argc, char **argv) {
    harness_open(argc, argv);

    test_memory();
    test_upload_dtypes();
    test_exp();

    test_embed(50, 7, 1, 0);
    test_embed(50, 13, 9, 1);

    int64_t norm_d[] = {1, 7, 37, 768};
    for (int i = 0; i < 4; i++) {
        test_norm(0, 1, norm_d[i], 1, 0.0f);
        test_norm(0, 5, norm_d[i], 0, 0.0f);
        test_norm(1, 5, norm_d[i], 0, 0.0f);
    }
    test_norm(0, 3, 37, 1, 100.0f); /* large mean, small spread */
    test_norm(1, 3, 37, 0, 100.0f);

    int64_t mm[][3] = {{1, 1, 1}, {1, 13, 37}, {7, 33, 65}, {64, 100, 300}};
    for (int i = 0; i < 4; i++)
        for (int lay = 0; lay < 2; lay++)
            for (int bias = 0; bias < 2; bias++)
                test_matmul(mm[i][0], mm[i][1], mm[i][2], lay ? LL_WLAYOUT_IN_OUT : LL_WLAYOUT_OUT_IN, bias);

    test_rope(1, 1, 8, 8, 8, 8, 0, 0, 10000.0, 0);
    test_rope(5, 2, 8, 8, 8, 16, 0, 0, 10000.0, 4);
    test_rope(7, 3, 10, 4, 10, 3 * 3 * 10 + 5, 2, 0, 10000.0, 2048); /* partial rotary inside a fused row */
    test_rope(3, 2, 128, 128, 128, 2 * 128 + 1, 0, 1, 500000.0, 100000); /* llama3 scaling, all regimes */
    test_rope(4, 4, 12, 6, 12, 48, 0, 1, 10000.0, 9000);

    {
        int64_t p1[] = {1}, p2[] = {5, 1, 17}, p3[] = {33, 7}, p4[] = {9, 0, 4}, p5[] = {300}, p6[] = {2, 3, 1, 40, 6};
        test_attention(p1, 1, 1, 1, 8, QKV_SEPARATE, 1.0f);
        test_attention(p2, 3, 4, 2, 12, QKV_FUSED, 1.0f);   /* GQA 2 */
        test_attention(p3, 2, 8, 2, 10, QKV_SEPARATE, 1.0f); /* GQA 4 */
        test_attention(p4, 3, 3, 3, 16, QKV_NEOX, 1.0f);     /* an empty prompt in the batch */
        test_attention(p5, 1, 2, 1, 24, QKV_FUSED, 30.0f);   /* scores spread past exp's clamp */
        test_attention(p6, 5, 4, 4, 7, QKV_SEPARATE, 1.0f);
        /* sliding windows: wider than some prompts and narrower than others; 1 = each token itself only */
        test_attention_w(p6, 5, 4, 2, 7, QKV_SEPARATE, 1.0f, 3);
        test_attention_w(p3, 2, 8, 2, 10, QKV_FUSED, 1.0f, 8);
        test_attention_w(p5, 1, 2, 1, 24, QKV_NEOX, 30.0f, 64);
        test_attention_w(p2, 3, 4, 4, 12, QKV_SEPARATE, 1.0f, 1);
    }

    test_act(1);
    test_act(7);
    test_act(1001);
    test_act(70001);

    test_errors();
    return harness_close();
}
