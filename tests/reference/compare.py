"""Comparing an engine result file with the float64 reference, reporting the first point and token that
differ. Every tolerance lives in TOL with the reason for its size."""

import numpy as np

# name: (tolerance, reason)
#
# KL, log p, entropy and probabilities come from float32 logits, and a float32 logit of size |z| carries a
# few ulps of |z| (its final rounding alone is half an ulp, a d-term dot product a few, the residual row's
# own relative error end to end more). A logit error dz moves KL by sum_v (p_point - p_final) dz_v and log p
# by dz_t - sum_v p_v dz_v, and the engine's one-pass forms (KL = -H_f - x.u + LSE, log p = z_t - LSE,
# H = LSE - p.z) combine terms of the size of the logits. So these bounds are an absolute term plus N ulps
# of the largest logit of the rows involved, u = ulp32(max |z|): 9.5e-7 for logits of 8..16, 3.8e-6 at ~40,
# 1.5e-5 at ~150. The absolute term is the floor for small logits; the ulps carry the logits' size, which
# reaches ~175 in the tied GGUF test models (gpt2 at d 256) and ~35 in MODELS.
#
# Measured with measure_tolerances.py (CPU backend; every model of MODELS and every GGUF case of
# tests/test_gguf_models.py, 40 prompt seeds each, ~190k values per statistic), end to end (e2e: against the
# float64 forward and lens) and on the engine's own hidden rows (own: the lens arithmetic alone). Worst
# error in u; the N the bound needs beyond its absolute term; the worst error as a fraction of the bound:
#   KL             e2e 27.4 u, needs 23.8 (llama d64 Q4_1, |z| 53); own 22.8 (17.6)   N 40: <= 0.62
#   log p          e2e 13.3 u, needs 12.0 (gpt2 d256 Q6_K, |z| 125); own 13.5 (12.2)  N 20: <= 0.63
#   entropy        e2e 12.2 u, needs 1.7 (mistral d256 Q2_K, |z| 10.5); own 10.0      N 10: <= 0.60
#   probability    target: needs 3.7 p u (gpt2 d256 Q6_K, p ~ 1, |z| 99); top-k: 0   N 8:  <= 0.54
#   last-point KL  10.8 u, needs 9.4 (gpt2 d256 Q6_K, |z| 94)                        N 16: <= 0.62
# and on the real SmolLM2-135M (V 49152, |z| up to 236; own rows, 11 random-token seeds): KL 15.8 u, log p
# 7.6, entropy 9.5, last-point KL 6.8; all within 0.63 of the bounds. Top-k ids (tie_prob) and ranks
# (tie_logit) never failed on the synthetic models. The absolute bounds used before fail at seeds other than
# the tests' own: KL 3.1e-5 (gpt2 of MODELS, make_prompts seed 8; 5.2e-5 for gpt2-f16-shards), log p
# 1.2e-5 (gpt2, seed 6), entropy 1.16e-5 (mistral Q2_K, seed 38), target probability 4.6e-5 (gpt2 d256,
# seed 9), last-point KL 1.05e-5 (gpt2-f16-shards, seed 21). The margins (1.6-1.9x the worst seen) keep
# the bounds far from what a wrong formula gives: KL + 1e-3, entropy + 1e-3 or the log-probability of the
# wrong token fail everywhere, also at |z| ~ 175 (where the KL bound is 6.2e-4).
TOL = {
    # ||engine - ref|| / ||ref|| per residual row. The engine computes in float32 (weights stored in f16 or
    # bf16 are widened exactly), so a few layers of tiny models accumulate ~1e-7..1e-6.
    "hidden_rel": (1e-5, "float32 forward over 2-3 layers: observed errors ~1e-6"),
    # probabilities in [0, 1]: p = exp(log p), so a probability's error is p times its log's error:
    # prob_abs + prob_ulps * p * u (prob_tolerance). The absolute term alone (float32 softmax of logits of
    # size ~10) is what a comparison without logits uses.
    "prob_abs": (1e-5, "float32 logits and softmax"),
    "prob_ulps": (8, "p x ulps of the row's largest logit (needed <= 3.7 beyond prob_abs)"),
    # entropy (nats, ~log V ~ 6): -sum p log p over V terms, i.e. LSE - sum p z in the engine's form.
    "entropy_abs": (1e-5, "float32 sums over V <= 433 terms of size <= log V"),
    "entropy_ulps": (10, "ulps of the row's largest logit (observed <= 12.2, worst at 0.60 of the bound)"),
    # KL(p_final || p_point), ~1 nat here: kl_abs + kl_ulps * u of the larger of the two rows' largest
    # logits (kl_tolerance).
    "kl_abs": (1e-5, "float32 logits; the KL identity's cancelling terms combined in double"),
    "kl_ulps": (40, "ulps of the largest logit of the two rows (needed <= 23.8 beyond kl_abs)"),
    # KL at the model's last point, 0 in exact arithmetic: the engine's point row is its final row, so only
    # the KL identity's rounding is left (last_kl_tolerance).
    "last_kl_ulps": (16, "ulps of the largest final logit (needed <= 9.4 beyond kl_abs)"),
    # log p of the target: float32 logit minus float32 LSE (logprob_tolerance).
    "logprob_abs": (1e-5, "float32 logit minus float32 LSE"),
    "logprob_ulps": (20, "ulps of the target row's largest logit (needed <= 12.2 beyond logprob_abs)"),
    # saved float16 probability rows: the engine rounds its float32 probability to float16 (half an ulp,
    # 2^-11 relative for normal numbers, 2^-25 absolute in the subnormal range), and that float32 value
    # is itself within ~1e-5 relative of the truth, which can move the rounding by one more ulp.
    "probs16_rel": (2.0 ** -10 + 1e-5, "float16 rounding (<= 1 ulp either way) on top of float32 error"),
    "probs16_abs": (2.0 ** -24, "float16 subnormal spacing"),
    # two reference probabilities closer than this are a tie: the engine may order them either way.
    "tie_prob": (1e-6, "ties in top-k: float32 cannot order probabilities this close"),
    # two reference logits closer than this (relative to their size) are a tie for the target rank.
    "tie_logit": (1e-5, "float32 logits of size ~10 carry ~1e-6 absolute error"),
}


def tol(name):
    return TOL[name][0]


def ulp32(z):
    """Spacing of float32 numbers at |z| (np.spacing of the float32), as float64."""
    return np.spacing(np.abs(np.asarray(z, dtype=np.float64)).astype(np.float32)).astype(np.float64)


def _row_max(logits):
    return np.abs(np.asarray(logits)).max(axis=-1)


def kl_tolerance(logits, final_logits):
    """Per-[token, point] KL bound: kl_abs + kl_ulps * ulp32(max |logit| of the point row and the final row).
    logits [T, P, V], final_logits [T, V]."""
    zmax = np.maximum(_row_max(logits), _row_max(final_logits)[:, None])
    return tol("kl_abs") + tol("kl_ulps") * ulp32(zmax)


def last_kl_tolerance(final_logits):
    """Per-token bound on |KL| at the model's last point (0 exactly): kl_abs + last_kl_ulps * ulp32(max
    |final logit|). final_logits [T, V]."""
    return tol("kl_abs") + tol("last_kl_ulps") * ulp32(_row_max(final_logits))


def logprob_tolerance(logits):
    """Per-[token, point] bound on the target log-probability: logprob_abs + logprob_ulps * ulp32(max
    |logit| of the row). logits [T, P, V]."""
    return tol("logprob_abs") + tol("logprob_ulps") * ulp32(_row_max(logits))


def entropy_tolerance(logits):
    """Per-[token, point] entropy bound: entropy_abs + entropy_ulps * ulp32(max |logit| of the row)."""
    return tol("entropy_abs") + tol("entropy_ulps") * ulp32(_row_max(logits))


def prob_tolerance(logits, probs):
    """Bound on probabilities probs [T, P] or [T, P, k] (the reference's) of the rows logits [T, P, V]:
    prob_abs + prob_ulps * p * ulp32(max |logit| of the row)."""
    u = ulp32(_row_max(logits))
    p = np.nan_to_num(np.abs(np.asarray(probs, dtype=np.float64)))
    if p.ndim == u.ndim + 1:
        u = u[..., None]
    return tol("prob_abs") + tol("prob_ulps") * p * u


def _first_bad(mask):
    idx = np.argwhere(mask)
    return tuple(int(i) for i in idx[0]) if len(idx) else None


def where(points, tok, pnt, token_prompt=None, token_position=None):
    s = "token %d" % tok
    if token_prompt is not None:
        s += " (prompt %d, position %d)" % (token_prompt[tok], token_position[tok])
    return s + ", point %s" % points[pnt]


class Checker:
    """Collects the first failure of each check; ctx describes the run for the message."""

    def __init__(self, ctx, points, token_prompt=None, token_position=None):
        self.ctx = ctx
        self.points = list(points)
        self.tp = token_prompt
        self.tpos = token_position
        self.failures = []

    def _where(self, tok, pnt):
        return where(self.points, tok, pnt, self.tp, self.tpos)

    def fail(self, msg):
        self.failures.append(msg)

    def shape(self, name, got, want):
        if tuple(got.shape) != tuple(want):
            self.fail("%s: shape %s, expected %s" % (name, tuple(got.shape), tuple(want)))
            return False
        return True

    def rows_rel(self, name, got, ref, tol_name="hidden_rel"):
        """got, ref [T, P, d]: relative error of each row."""
        if not self.shape(name, got, ref.shape):
            return
        err = np.linalg.norm(got - ref, axis=-1) / np.maximum(np.linalg.norm(ref, axis=-1), 1e-30)
        bad = ~(err <= tol(tol_name))
        b = _first_bad(bad)
        if b is not None:
            self.fail("%s: first difference at %s: relative error %.3g > %.1g (%d of %d rows differ; worst %.3g)"
                      % (name, self._where(*b), err[b], tol(tol_name), int(bad.sum()), bad.size, np.nanmax(err)))

    def close(self, name, got, ref, tol_name, nan_where=None, tol_array=None):
        """got, ref [T, P] (or [T, P, k]): absolute error; NaN expected exactly where ref is NaN. tol_array, when
        given, is a per-element bound replacing TOL[tol_name]."""
        if not self.shape(name, got, ref.shape):
            return
        got = np.asarray(got, dtype=np.float64)
        rnan = np.isnan(ref)
        gnan = np.isnan(got)
        b = _first_bad(rnan != gnan)
        if b is not None:
            self.fail("%s: at %s the engine has %r where the reference has %r (NaN exactly where there is no "
                      "target)" % (name, self._where(*b[:2]), got[b], ref[b]))
            return
        err = np.where(rnan, 0.0, np.abs(got - np.where(rnan, 0.0, ref)))
        bound = tol(tol_name) if tol_array is None else np.asarray(tol_array)
        bad = ~(err <= bound)
        b = _first_bad(bad)
        if b is not None:
            bb = bound if np.ndim(bound) == 0 else bound[b[:np.ndim(bound)]]
            self.fail("%s: first difference at %s%s: engine %.8g, reference %.8g (error %.3g > %.2g; %d values differ)"
                      % (name, self._where(*b[:2]), "" if len(b) < 3 else ", k=%d" % b[2], got[b], ref[b], err[b],
                         bb, int(bad.sum())))

    def equal(self, name, got, ref):
        got = np.asarray(got)
        ref = np.asarray(ref)
        if not self.shape(name, got, ref.shape):
            return
        bad = got != ref
        b = _first_bad(bad)
        if b is not None:
            loc = self._where(*b[:2]) if got.ndim >= 2 else "index %d" % b[0]
            self.fail("%s: first difference at %s: engine %r, reference %r (%d values differ)"
                      % (name, loc, got[b], ref[b], int(bad.sum())))

    def topk_ids(self, got_ids, ref_probs, ref_ids):
        """Top-k ids equal up to ties: the engine's j-th id must have a reference probability within
        tie_prob of the reference's j-th largest, and no id may repeat."""
        if not self.shape("topk_ids", got_ids, ref_ids.shape):
            return
        T, P, k = got_ids.shape
        V = ref_probs.shape[-1]
        if (got_ids < 0).any() or (got_ids >= V).any():
            b = _first_bad((got_ids < 0) | (got_ids >= V))
            self.fail("topk_ids: id %d out of range [0, %d) at %s" % (got_ids[b], V, self._where(*b[:2])))
            return
        p_of_got = np.take_along_axis(ref_probs, got_ids.astype(np.int64), axis=-1)
        p_ref = np.take_along_axis(ref_probs, ref_ids, axis=-1)
        bad = np.abs(p_of_got - p_ref) > tol("tie_prob")
        srt = np.sort(got_ids, axis=-1)
        dup = (srt[..., 1:] == srt[..., :-1]).any(axis=-1)
        b = _first_bad(bad)
        if b is not None:
            t, p, j = b
            self.fail("topk_ids: first difference at %s, k=%d: engine ids %s, reference ids %s (reference probs "
                      "%s); not a tie (%d rows differ)" % (self._where(t, p), j, got_ids[t, p].tolist(),
                                                           ref_ids[t, p].tolist(),
                                                           np.round(p_ref[t, p], 8).tolist(),
                                                           int(bad.any(axis=-1).sum())))
        b = _first_bad(dup)
        if b is not None:
            self.fail("topk_ids: repeated id at %s: %s" % (self._where(*b), got_ids[b].tolist()))

    def ranks(self, got, ref_logits, targets):
        """Target ranks: exactly the count of logits strictly above the target's, except that logits within
        tie_logit of the target's may be counted either way."""
        T, P, V = ref_logits.shape
        if not self.shape("target_ranks", got, (T, P)):
            return
        for t in range(T):
            tg = int(targets[t])
            for p in range(P):
                if tg < 0:
                    if got[t, p] != -1:
                        self.fail("target_ranks: %d at %s where there is no target (expected -1)"
                                  % (got[t, p], self._where(t, p)))
                        return
                    continue
                z = ref_logits[t, p]
                zt = z[tg]
                eps = tol("tie_logit") * max(1.0, abs(zt))
                lo = int((z > zt + eps).sum())
                hi = int((z > zt - eps).sum()) - 1  # the target itself is within eps of zt
                exact = int((z > zt).sum())
                if not (lo <= got[t, p] <= max(hi, exact)):
                    self.fail("target_ranks: first difference at %s: engine %d, reference %d (target id %d)"
                              % (self._where(t, p), got[t, p], exact, tg))
                    return

    def probs16(self, got, ref):
        """Saved float16 rows against reference probabilities."""
        if not self.shape("probs", got, ref.shape):
            return
        g = np.asarray(got, dtype=np.float64)
        err = np.abs(g - ref)
        bound = tol("probs16_rel") * np.abs(ref) + tol("probs16_abs")
        bad = ~(err <= bound)
        b = _first_bad(bad)
        if b is not None:
            self.fail("probs: first difference at saved row %d, point %s, column %d: engine %.8g (float16), "
                      "reference %.8g (%d values differ)" % (b[0], self.points[b[1]], b[2], g[b], ref[b],
                                                            int(bad.sum())))

    def lens_stats(self, res, ref):
        """The lens statistics of a result (or a slice of one) against a reference from tests/reference/lens.py
        (logits, probs, final_logits and the statistics): top-k ids up to ties, top-k and target
        probabilities, entropy, KL to the final layer, target log-probability and rank, each with its bound
        above."""
        z = ref["logits"]
        self.topk_ids(res["topk_ids"], ref["probs"], ref["topk_ids"])
        self.close("topk_probs", res["topk_probs"], ref["topk_probs"], "prob_abs",
                   tol_array=prob_tolerance(z, ref["topk_probs"]))
        self.close("entropy", res["entropy"], ref["entropy"], "entropy_abs", tol_array=entropy_tolerance(z))
        self.close("kl_final", res["kl_final"], ref["kl_final"], "kl_abs",
                   tol_array=kl_tolerance(z, ref["final_logits"]))
        self.close("target_logprobs", res["target_logprobs"], ref["target_logprobs"], "logprob_abs",
                   tol_array=logprob_tolerance(z))
        self.close("target_probs", res["target_probs"], ref["target_probs"], "prob_abs",
                   tol_array=prob_tolerance(z, ref["target_probs"]))
        self.ranks(res["target_ranks"], z, ref["target_ids"])

    def check(self):
        if self.failures:
            raise AssertionError("%s\n  " % self.ctx + "\n  ".join(self.failures))
