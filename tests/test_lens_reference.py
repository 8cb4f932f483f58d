"""End-to-end: the engine's lens statistics (top-k, entropy, KL to the final layer, target probability,
log-probability and rank, saved probability rows) equal the float64 brute-force reference for every
model variant; the last point's lens distribution is the model's own output distribution."""

import json
import os

import numpy as np
import pytest

from conftest import MODELS, TOPK, read_result
from reference import compare, hf_model, lens, safetensors_io as st


def _checker(c, ctx=None):
    return compare.Checker(ctx or "model %s (%s)" % (c.name, c.model_dir), c.res["points"],
                           c.res.get("token_prompt"), c.res.get("token_position"))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lens_statistics_match_reference(lens_case, name):
    """Against the float64 forward and lens; then the reference lens applied to the engine's own saved
    hidden rows, which isolates the lens arithmetic from forward-pass error (a failure only in the
    first check points at the forward pass, in both at the lens)."""
    c = lens_case(name)
    res, ref = c.res, c.ref
    ck = _checker(c, "model %s (%s), end to end against the float64 reference" % (name, c.model_dir))
    ck.equal("target_ids", res["target_ids"], ref["target_ids"])
    ck.lens_stats(res, ref)
    m = c.model
    H = np.asarray(res["hidden"], np.float64)
    own = lens.lens_of_rows(m, H, m.logits_of(H[:, -1]), ref["target_ids"], TOPK)
    own["target_ids"] = ref["target_ids"]
    ck2 = _checker(c, "model %s, reference lens on the engine's own hidden rows" % name)
    ck2.lens_stats(res, own)
    failures = ck.failures + ck2.failures
    if failures:
        raise AssertionError("\n".join(([ck.ctx] + ["  " + f for f in ck.failures] if ck.failures else []) +
                                       ([ck2.ctx] + ["  " + f for f in ck2.failures] if ck2.failures else [])))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_saved_probability_rows(lens_case, name):
    """--save-probs all: one float16 row per token and point over the whole vocabulary."""
    c = lens_case(name)
    res, ref = c.res, c.ref
    N, V = ref["probs"].shape[0], c.model.vocab
    ck = _checker(c)
    for k in ("probs", "probs_token_index", "probs_vocab_index"):
        assert k in res, "model %s: no `%s` dataset although --save-probs all was given" % (name, k)
    ck.equal("probs_token_index", res["probs_token_index"], np.arange(N))
    ck.equal("probs_vocab_index", res["probs_vocab_index"], np.arange(V))
    assert res["probs"].dtype == np.float16, "probs has dtype %s, documented float16" % res["probs"].dtype
    ck.probs16(res["probs"], ref["probs"])
    ck.check()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_last_point_is_the_model_output(lens_case, name):
    """At post.{L-1} the lens is the model's own output: KL ~ 0, and the probabilities are the softmax of
    the model's logits (reference computed from the model's logits, not from the lens path)."""
    c = lens_case(name)
    res, ref, m = c.res, c.ref, c.model
    last = res["points"].index("post.%d" % (m.n_layers - 1))
    kl = np.asarray(res["kl_final"][:, last], np.float64)
    bound = compare.last_kl_tolerance(ref["final_logits"])
    bad = np.flatnonzero(~(np.abs(kl) <= bound))
    assert len(bad) == 0, "model %s: kl_final at the last point is %.3g at token %d (should be 0; bound %.3g)" \
        % (name, kl[bad[0]], bad[0], bound[bad[0]])
    p_out = np.exp(lens.log_softmax(ref["final_logits"]))  # [N, V], straight from the model's logits
    ck = compare.Checker("model %s, last point vs output distribution" % name, [res["points"][last]])
    ck.probs16(res["probs"][:, last:last + 1, :], p_out[:, None, :])
    top = np.take_along_axis(p_out, np.asarray(res["topk_ids"][:, last, :], np.int64), axis=-1)
    ck.close("topk_probs", res["topk_probs"][:, last:last + 1, :], top[:, None, :], "prob_abs",
             tol_array=compare.prob_tolerance(ref["final_logits"][:, None, :], top[:, None, :]))
    ck.check()


def test_probs_row_and_column_selection(ll, ref_model):
    """--save-probs last / a position list, and --probs-vocab: exactly the documented rows and columns."""
    d = ll.synth("qwen2-bias-f16")
    m = ref_model(d)
    rng = np.random.default_rng(7)
    lengths = (2, 5, 3)
    prompts = [[int(t) for t in rng.integers(0, m.vocab, size=n)] for n in lengths]
    answers = [None, 11, None]
    ref = lens.run_reference(m, prompts, answers, TOPK)
    starts = np.cumsum((0,) + lengths)[:-1]
    cases = [
        ("last", None, [s + n - 1 for s, n in zip(starts, lengths)]),
        ("0,-1", None, sorted([s for s in starts] + [s + n - 1 for s, n in zip(starts, lengths)])),
        ("1", "5,0,17,%d" % (m.vocab - 1), [s + 1 for s in starts]),
        ("all", "3", list(range(sum(lengths)))),
    ]
    for sel, vocab_sel, rows in cases:
        args = ["--points", "embed,post", "--topk", "3", "--save-probs", sel]
        if vocab_sel:
            args += ["--probs-vocab", vocab_sel]
        r = read_result(ll.lens(d, prompts, answers, args))
        ctx = "--save-probs %s --probs-vocab %s" % (sel, vocab_sel)
        got_rows = list(np.asarray(r["probs_token_index"]))
        assert got_rows == rows, "%s: probs_token_index %s, expected %s" % (ctx, got_rows, rows)
        cols = np.asarray(r["probs_vocab_index"], np.int64)
        want_cols = [int(x) for x in vocab_sel.split(",")] if vocab_sel else list(range(m.vocab))
        assert sorted(cols.tolist()) == sorted(want_cols), "%s: probs_vocab_index %s, expected ids %s" \
            % (ctx, cols.tolist(), want_cols)
        pidx = [ref["points"].index(p) for p in r["points"]]
        want = ref["probs"][np.asarray(rows)][:, pidx][:, :, cols]
        ck = compare.Checker(ctx, r["points"])
        ck.probs16(r["probs"], want)
        ck.check()


def test_topk_whole_vocabulary(ll, ref_model):
    """--topk V: every id exactly once, most probable first, probabilities summing to 1."""
    d = ll.synth("gpt2-f16-shards")
    m = ref_model(d)
    prompts = [[1, 2, 3, 4], [m.vocab - 1]]
    ref = lens.run_reference(m, prompts, [None, 0], m.vocab)
    r = read_result(ll.lens(d, prompts, [None, 0], ["--points", "embed,mid,post", "--topk", str(m.vocab)]))
    ids = np.asarray(r["topk_ids"])
    assert ids.shape == (5, 1 + 2 * m.n_layers, m.vocab), "topk_ids shape %s" % (ids.shape,)
    assert (np.sort(ids, axis=-1) == np.arange(m.vocab)).all(), "--topk V: ids are not a permutation"
    s = np.asarray(r["topk_probs"], np.float64).sum(axis=-1)
    assert np.abs(s - 1).max() < 1e-4, "--topk V: probabilities sum to %s" % s
    ck = compare.Checker("--topk V", r["points"], r.get("token_prompt"), r.get("token_position"))
    ck.topk_ids(ids, ref["probs"], ref["topk_ids"])
    ck.close("topk_probs", r["topk_probs"], ref["topk_probs"], "prob_abs",
             tol_array=compare.prob_tolerance(ref["logits"], ref["topk_probs"]))
    ck.check()


# ---- the reference's own checks (no engine needed) --------------------------------------------------

def _tiny_llama(tmp_path, tied=False):
    """A random llama checkpoint written with the reference's own writer."""
    rng = np.random.default_rng(5)
    d, H, KV, hd, ff, V, L = 12, 3, 1, 4, 20, 37, 2
    cfg = {"model_type": "llama", "hidden_size": d, "num_attention_heads": H, "num_key_value_heads": KV,
           "intermediate_size": ff, "num_hidden_layers": L, "vocab_size": V, "max_position_embeddings": 16,
           "rms_norm_eps": 1e-5, "rope_theta": 100.0, "tie_word_embeddings": tied}
    w = {"model.embed_tokens.weight": rng.normal(size=(V, d)), "model.norm.weight": 1 + 0.1 * rng.normal(size=d)}
    if not tied:
        w["lm_head.weight"] = rng.normal(size=(V, d)) * 0.5
    for i in range(L):
        p = "model.layers.%d." % i
        for n, s in (("self_attn.q_proj", (H * hd, d)), ("self_attn.k_proj", (KV * hd, d)),
                     ("self_attn.v_proj", (KV * hd, d)), ("self_attn.o_proj", (d, H * hd)),
                     ("mlp.gate_proj", (ff, d)), ("mlp.up_proj", (ff, d)), ("mlp.down_proj", (d, ff))):
            w[p + n + ".weight"] = rng.normal(size=s) / np.sqrt(s[1])
        w[p + "input_layernorm.weight"] = 1 + 0.1 * rng.normal(size=d)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * rng.normal(size=d)
    os.makedirs(tmp_path, exist_ok=True)
    with open(os.path.join(tmp_path, "config.json"), "w") as f:
        json.dump(cfg, f)
    st.write_arrays(os.path.join(tmp_path, "model.safetensors"), w, "F32")
    return str(tmp_path)


def test_reference_lens_definitions(tmp_path):
    """The brute-force statistics agree with the one-pass identities of docs (LENS-MATH): entropy =
    LSE - E_p[z], KL(p_f||p_l) = -H_f - x_l.u_t + LSE_l with u_t = W_U^T p_f(t); the last point's KL is 0;
    ranks and top-k follow their definitions."""
    m = hf_model.load(_tiny_llama(tmp_path))
    toks = [3, 1, 4, 1, 5, 9, 2, 6]
    hid, logits = m.forward(toks)
    tg = lens.targets_for(toks, 7)
    r = lens.lens_stats(m, hid, logits, tg, 5)
    z = r["logits"]
    lse = np.log(np.exp(z).sum(axis=-1))
    assert np.allclose(r["entropy"], lse - (r["probs"] * z).sum(axis=-1), atol=1e-12)
    x = m.final_norm(np.stack([hid[p] for p in r["points"]], axis=1))
    pf = r["final_probs"]
    hf = -(pf * np.log(pf)).sum(axis=-1)
    u = pf @ m.unembed
    kl = -hf[:, None] - np.einsum("tpd,td->tp", x, u) + lse
    assert np.allclose(r["kl_final"], kl, atol=1e-10)
    assert np.abs(r["kl_final"][:, -1]).max() < 1e-12
    assert np.allclose(z[:, -1, :], logits, atol=1e-12)
    for t in range(len(toks)):
        for p in range(len(r["points"])):
            zt = z[t, p, tg[t]]
            assert r["target_ranks"][t, p] == sum(1 for v in z[t, p] if v > zt)
            assert list(r["topk_ids"][t, p]) == sorted(range(m.vocab), key=lambda v: (-z[t, p, v], v))[:5]
    assert list(tg) == toks[1:] + [7]
    assert list(lens.targets_for([4, 2], None)) == [2, -1]


def test_reference_dtype_decoding():
    """BF16 and F16 decoding from known bit patterns, and the writer's round trip."""
    bf = np.array([0x3F80, 0xC000, 0x3E80, 0x0000, 0x7F80], dtype="<u2").tobytes()
    assert st.decode("BF16", [5], bf).tolist() == [1.0, -2.0, 0.25, 0.0, float("inf")]
    f16 = np.array([0x3C00, 0xC000, 0x0001, 0x7BFF], dtype="<u2").tobytes()
    assert st.decode("F16", [4], f16).tolist() == [1.0, -2.0, 2.0 ** -24, 65504.0]
    a = np.array([[1.0, -0.5, 3.140625], [1e-3, 2.0 ** -20, -7.75]])
    for dt, exact in (("F32", True), ("F16", False), ("BF16", False)):
        back = st.decode(dt, a.shape, st.encode(a, dt))
        rel = {"F32": 1e-7, "F16": 2 ** -11, "BF16": 2 ** -8}[dt]
        assert np.all(np.abs(back - a) <= rel * np.abs(a)), (dt, back)


def test_reference_sharded_and_tied(tmp_path):
    """The reference reads an index + shards like one file, and ties lm_head to the embedding."""
    d1 = _tiny_llama(tmp_path / "one", tied=True)
    w, _ = st.load_dir(d1)
    d2 = str(tmp_path / "sharded")
    os.makedirs(d2)
    with open(os.path.join(d1, "config.json")) as f:
        cfg = f.read()
    with open(os.path.join(d2, "config.json"), "w") as f:
        f.write(cfg)
    names = sorted(w)
    shards = [names[0::2], names[1::2]]
    weight_map = {}
    for i, part in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        st.write_arrays(os.path.join(d2, fn), {n: w[n] for n in part}, "F32")
        weight_map.update({n: fn for n in part})
    with open(os.path.join(d2, st.INDEX_NAME), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    a = hf_model.load(d1)
    b = hf_model.load(d2)
    assert a.unembed is a.embed
    assert np.array_equal(a.forward([1, 2, 3])[1], b.forward([1, 2, 3])[1])
