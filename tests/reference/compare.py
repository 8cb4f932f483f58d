"""Comparing an engine result file with the float64 reference, reporting the first point and token that
differ. Every tolerance lives in TOL with the reason for its size."""

import numpy as np

# name: (tolerance, reason)
TOL = {
    # ||engine - ref|| / ||ref|| per residual row. The engine computes in float32 (weights stored in f16 or
    # bf16 are widened exactly), so a few layers of tiny models accumulate ~1e-7..1e-6.
    "hidden_rel": (1e-5, "float32 forward over 2-3 layers: observed errors ~1e-6"),
    # absolute, on probabilities in [0, 1]: float32 logits of size ~10 carry ~1e-6 absolute error.
    "prob_abs": (1e-5, "float32 logits and softmax"),
    # entropy (nats, ~log V ~ 6): a sum of V terms in float32.
    "entropy_abs": (1e-5, "float32 sums over V <= 433 terms of size <= log V"),
    # KL(p_final || p_point), ~1 nat here. Float32 logits (up to ~35 in these models) limit a careful engine
    # to a few 1e-6; combining -H_f - x.u + LSE (three terms of the size of LSE) in float32 loses ~1e-6 x
    # LSE, i.e. 1e-5..3e-5 here: that combination and the dot product x.u want double accumulation.
    # Beyond that, KL is sensitive to the float32 rounding of the logits themselves: a logit error dz moves
    # KL by sum_v (p_point - p_final) dz_v, and float32 logits of size |z| carry a few ulp(|z|). So the bound
    # is 1e-5 plus 4 ulp of the largest logit of the two rows (kl_tolerance below): 1e-5 for logits below
    # ~8, 1.8e-5 for logits of ~35 as in these random models.
    "kl_abs": (1e-5, "float32 logits; the KL identity's cancelling terms combined in double"),
    "kl_ulps": (4, "ulps of the largest logit that float32 logits carry into KL"),
    # log p of the target; logits up to ~35, float32 error a few 1e-6 absolute.
    "logprob_abs": (1e-5, "float32 logit minus float32 LSE"),
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


def kl_tolerance(logits, final_logits):
    """Per-[token, point] KL bound: kl_abs + kl_ulps * ulp32(max |logit| of the point row and the final row).
    logits [T, P, V], final_logits [T, V]."""
    zmax = np.maximum(np.abs(logits).max(axis=-1), np.abs(final_logits).max(axis=-1)[:, None])
    return tol("kl_abs") + tol("kl_ulps") * np.spacing(zmax.astype(np.float32)).astype(np.float64)


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

    def check(self):
        if self.failures:
            raise AssertionError("%s\n  " % self.ctx + "\n  ".join(self.failures))
