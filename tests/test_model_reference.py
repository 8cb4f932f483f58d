"""End-to-end: the residual stream the engine saves (--save-hidden) equals the float64 reference forward
pass (tests/reference) at every point, for every architecture variant, storage dtype and checkpoint
layout; point selection (--points, --layers) picks exactly the documented points."""

import json
import os

import numpy as np
import pytest

from conftest import MODELS, STANDARD_ARGS, TOPK, make_prompts, read_result
from reference import compare, hf_model, safetensors_io as st


def _expected_points(n_layers):
    pts = ["embed"]
    for i in range(n_layers):
        pts += ["mid.%d" % i, "post.%d" % i]
    return pts


@pytest.mark.parametrize("name", sorted(MODELS))
def test_residual_stream_matches_reference(lens_case, name):
    c = lens_case(name)
    res, ref, m = c.res, c.ref, c.model
    ctx = "model %s (%s)" % (name, c.model_dir)
    want_points = _expected_points(m.n_layers)
    assert res["points"] == want_points, "%s: points %s, expected %s" % (ctx, res["points"], want_points)
    want_layers = [-1] + [i for i in range(m.n_layers) for _ in (0, 1)]
    assert list(res["point_layers"]) == want_layers, "%s: point_layers %s" % (ctx, list(res["point_layers"]))
    tokens = np.concatenate([np.asarray(p) for p in c.prompts])
    assert np.array_equal(res["tokens"], tokens), "%s: tokens %s, expected %s" % (ctx, res["tokens"], tokens)
    assert "hidden" in res, "%s: no `hidden` dataset although --save-hidden was given" % ctx
    ck = compare.Checker(ctx, want_points, res.get("token_prompt"), res.get("token_position"))
    ck.rows_rel("hidden", np.asarray(res["hidden"], dtype=np.float64), ref["hidden"])
    ck.check()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_root_attributes(lens_case, name):
    c = lens_case(name)
    a, m, opts = c.res["attrs"], c.model, MODELS[name]
    want = {
        "format": "logitlens.lens", "format_version": 1, "architecture": m.arch,
        "n_layers": m.n_layers, "d_model": m.d, "vocab_size": m.vocab, "topk": TOPK,
        "dtype": opts["dtype"].upper(),
    }
    got = {k: a.get(k) for k in want}
    for k in ("format_version", "n_layers", "d_model", "vocab_size", "topk"):
        if got[k] is not None:
            got[k] = int(got[k])
    assert got == want, "model %s: root attributes %s, expected %s" % (name, got, want)
    files, _ = st.checkpoint_files(c.model_dir)
    names = [os.path.basename(str(x.decode() if isinstance(x, bytes) else x)) for x in a.get("safetensors_files", [])]
    assert sorted(names) == sorted(files), "model %s: safetensors_files %s, expected %s" % (name, names, files)


def test_gpt2_transformer_prefix(ll, lens_case, ref_model):
    """GPT2LMHeadModel checkpoints name every tensor "transformer.h.0..."; GPT2Model ones "h.0...". Both
    must load, and give the same numbers."""
    base = lens_case("gpt2")
    d = ll.copy_model(base.model_dir, "gpt2-prefixed")
    raw, meta = st.read_raw(os.path.join(d, "model.safetensors"))
    assert not any(n.startswith("transformer.") for n in raw), "synth gpt2 already uses the prefix"
    st.write_raw(os.path.join(d, "model.safetensors"), {"transformer." + n: t for n, t in raw.items()}, meta)
    c = lens_case("gpt2", d)
    ck = compare.Checker("gpt2 with 'transformer.' prefix (%s)" % d, c.res["points"],
                         c.res.get("token_prompt"), c.res.get("token_position"))
    ck.rows_rel("hidden", np.asarray(c.res["hidden"], dtype=np.float64), c.ref["hidden"])
    ck.equal("topk_ids", c.res["topk_ids"], base.res["topk_ids"])
    ck.close("topk_probs", c.res["topk_probs"], base.res["topk_probs"].astype(np.float64), "prob_abs")
    ck.check()


@pytest.mark.parametrize("name", ["llama-gqa-llama3-v4", "llama-llama3-v5-tied-shards"])
def test_llama3_scaling_is_exercised(ll, ref_model, name):
    """The llama3 models really carry the scaling in the documented spelling, and at the test's prompt
    lengths it changes the residual stream far beyond the tolerance (so the comparison can fail)."""
    d = ll.synth(name)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    if MODELS[name]["rope_style"] == "v5":
        rp = cfg.get("rope_parameters")
        assert isinstance(rp, dict) and rp.get("rope_type") == "llama3", "%s: config.json has no v5 " \
            "rope_parameters with rope_type llama3: %s" % (name, cfg)
        assert "rope_scaling" not in cfg or cfg["rope_scaling"] is None, "%s: both spellings present" % name
    else:
        rs = cfg.get("rope_scaling") or {}
        assert (rs.get("rope_type") or rs.get("type")) == "llama3", "%s: config.json rope_scaling %s" % (name, rs)
        assert "rope_parameters" not in cfg, "%s: v4 config with rope_parameters" % name
    m = ref_model(d)
    prompts, _ = make_prompts(m.vocab, seed=len(name))
    long = max(prompts, key=len)
    scaled, _ = m.forward(long)
    plain_rope = dict(m.rope, type="default")
    saved = m.rope
    try:
        m.rope = plain_rope
        plain, _ = m.forward(long)
    finally:
        m.rope = saved
    last = "post.%d" % (m.n_layers - 1)
    err = np.linalg.norm(scaled[last] - plain[last], axis=-1) / np.linalg.norm(scaled[last], axis=-1)
    assert err.max() > 100 * compare.tol("hidden_rel"), "%s: llama3 scaling changes the output by only %.3g" \
        % (name, err.max())


def test_rope_spellings_agree(ll):
    """The same llama3 model written with rope_scaling (v4) and with rope_parameters (v5) gives the same
    results."""
    opts = dict(MODELS["llama-gqa-llama3-v4"])
    d4 = ll.synth(**dict(opts, rope_style="v4"))
    d5 = ll.synth(**dict(opts, rope_style="v5"))
    w4 = st.load_dir_raw(d4)
    w5 = st.load_dir_raw(d5)
    assert {n: t.data for n, t in w4.items()} == {n: t.data for n, t in w5.items()}, \
        "synth --rope-style changed the weights (same seed)"
    m = hf_model.load(d4)
    prompts, answers = make_prompts(m.vocab, seed=3)
    r4 = read_result(ll.lens(d4, prompts, answers, STANDARD_ARGS))
    r5 = read_result(ll.lens(d5, prompts, answers, STANDARD_ARGS))
    ck = compare.Checker("v4 (%s) vs v5 (%s) rope spelling" % (d4, d5), r4["points"])
    ck.equal("topk_ids", r5["topk_ids"], r4["topk_ids"])
    ck.rows_rel("hidden", np.asarray(r5["hidden"], np.float64), np.asarray(r4["hidden"], np.float64))
    ck.check()


# (--points, --layers, expected points) on the 3-layer gpt2 model.
SELECTIONS = [
    ("post", "0:3:2", ["post.0", "post.2"]),
    ("post", "-1:", ["post.2"]),
    ("post", "-2", ["post.1"]),
    ("mid,post", "1", ["mid.1", "post.1"]),
    ("mid", "::2", ["mid.0", "mid.2"]),
    ("embed,post", ":", ["embed", "post.0", "post.1", "post.2"]),
    ("post,embed", "0:2", ["embed", "post.0", "post.1"]),  # depth order whatever the order given
    ("embed", None, ["embed"]),
    ("mid", "1:", ["mid.1", "mid.2"]),
    (None, None, ["embed", "post.0", "post.1", "post.2"]),  # documented default: embed,post, all layers
]


@pytest.mark.parametrize("points,layers,expected", SELECTIONS,
                         ids=["%s|%s" % (p, l) for p, l, _ in SELECTIONS])
def test_point_selection(ll, lens_case, points, layers, expected):
    """Only the selected points are captured, in depth order, and their statistics are those of the same
    points in the full run (in particular kl_final still refers to the model's own output, even when the
    last layer is not captured)."""
    full = lens_case("gpt2")
    assert full.model.n_layers == 3
    args = ["--save-hidden", "--topk", str(TOPK)]
    if points is not None:
        args += ["--points", points]
    if layers is not None:
        args += ["--layers", layers]
    r = read_result(ll.lens(full.model_dir, full.prompts, full.answers, args))
    ctx = "--points %s --layers %s" % (points, layers)
    assert r["points"] == expected, "%s: points %s, expected %s" % (ctx, r["points"], expected)
    want_layers = [-1 if p == "embed" else int(p.split(".")[1]) for p in expected]
    assert list(r["point_layers"]) == want_layers, "%s: point_layers %s, expected %s" \
        % (ctx, list(r["point_layers"]), want_layers)
    idx = [full.ref["points"].index(p) for p in expected]
    ck = compare.Checker(ctx, expected, r.get("token_prompt"), r.get("token_position"))
    ck.rows_rel("hidden", np.asarray(r["hidden"], np.float64), full.ref["hidden"][:, idx])
    ck.close("kl_final", r["kl_final"], full.ref["kl_final"][:, idx], "kl_abs",
             tol_array=compare.kl_tolerance(full.ref["logits"][:, idx], full.ref["final_logits"]))
    ck.close("entropy", r["entropy"], full.ref["entropy"][:, idx], "entropy_abs")
    ck.topk_ids(r["topk_ids"], full.ref["probs"][:, idx], full.ref["topk_ids"][:, idx])
    ck.check()


def test_batching_does_not_change_results(ll, lens_case):
    """Packing prompts into several forward batches (--batch-tokens 20: the prompts of 1, 7, 20 and 3
    tokens cannot share one batch) gives the results of one batch."""
    full = lens_case("llama-gqa-llama3-v4")
    r = read_result(ll.lens(full.model_dir, full.prompts, full.answers, STANDARD_ARGS + ("--batch-tokens", "20")))
    ck = compare.Checker("--batch-tokens 20 vs one batch", full.res["points"], r.get("token_prompt"),
                         r.get("token_position"))
    for name in ("tokens", "token_prompt", "token_position", "prompt_offsets", "target_ids", "topk_ids",
                 "target_ranks", "probs_token_index"):
        ck.equal(name, r[name], full.res[name])
    ck.rows_rel("hidden", np.asarray(r["hidden"], np.float64), np.asarray(full.res["hidden"], np.float64), "hidden_rel")
    for name, t in (("entropy", "entropy_abs"), ("kl_final", "kl_abs"), ("target_logprobs", "logprob_abs"),
                    ("topk_probs", "prob_abs")):
        ck.close(name, r[name], np.asarray(full.res[name], np.float64), t)
    ck.check()


def test_reference_is_independent_of_the_engine():
    """The reference must not import anything from the project (tools/python, host, ...)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference")
    for fn in sorted(os.listdir(here)):
        if not fn.endswith(".py"):
            continue
        with open(os.path.join(here, fn)) as f:
            src = f.read()
        for bad in ("import logitlens", "from logitlens", "tools/python", "tools.python"):
            assert bad not in src, "tests/reference/%s mentions %r" % (fn, bad)
