"""Prompt input: .jsonl with "tokens"/"target_id", repeatable --tokens, and (when the model has a
tokenizer.json) text prompts from --prompt, .txt and .jsonl "prompt"/"target", laid out on the token
axis exactly as docs/hdf5-format.md specifies."""

import json
import os

import numpy as np
import pytest

from conftest import read_result

GPT2 = dict(arch="gpt2", layers=2, d_model=44, heads=4, vocab=397, ctx=32, dtype="f32")


def expected_layout(prompts, answers):
    """tokens, token_prompt, token_position, prompt_offsets and target_ids as the format defines them."""
    tokens, tp, tpos, tg, offs = [], [], [], [], [0]
    for j, toks in enumerate(prompts):
        tokens += toks
        tp += [j] * len(toks)
        tpos += list(range(len(toks)))
        tg += toks[1:] + [-1 if answers[j] is None else answers[j]]
        offs.append(offs[-1] + len(toks))
    return {"tokens": tokens, "token_prompt": tp, "token_position": tpos, "target_ids": tg, "prompt_offsets": offs}


def check_layout(r, prompts, answers, ctx):
    want = expected_layout(prompts, answers)
    for name, v in want.items():
        assert name in r, "%s: dataset %s missing" % (ctx, name)
        got = [int(x) for x in np.asarray(r[name])]
        assert got == v, "%s: %s is %s, expected %s" % (ctx, name, got, v)
    n = len(prompts)
    assert len(r["prompts"]) == n and len(r["prompt_targets"]) == n, \
        "%s: prompts/prompt_targets have %d/%d entries for %d prompts" % (ctx, len(r["prompts"]),
                                                                       len(r["prompt_targets"]), n)
    # no target: NaN probability, -1 rank; with a target: finite
    tgt = np.asarray(want["target_ids"])
    tprob = np.asarray(r["target_probs"], np.float64)
    assert np.isnan(tprob[tgt < 0]).all() and np.isfinite(tprob[tgt >= 0]).all(), \
        "%s: target_probs must be NaN exactly where target_ids is -1: %s" % (ctx, tprob)
    ranks = np.asarray(r["target_ranks"])
    assert (ranks[tgt < 0] == -1).all() and (ranks[tgt >= 0] >= 0).all(), "%s: target_ranks %s" % (ctx, ranks)


@pytest.fixture(scope="module")
def model(ll):
    return ll.synth(**GPT2)


def test_jsonl_tokens_and_target_ids(ll, model):
    prompts = [[3, 4, 5], [9], [1, 2, 3, 4, 5, 6], [396, 0], [7] * 20]
    answers = [5, None, 0, None, 396]
    r = read_result(ll.lens(model, prompts, answers, ["--topk", "3"]))
    check_layout(r, prompts, answers, ".jsonl with tokens and target_id")
    assert list(r["prompts"]) == [""] * len(prompts), "pre-tokenized prompts without a tokenizer must be \"\""
    assert list(r["prompt_targets"]) == [""] * len(prompts), "target_id is not an answer text: %s" \
        % list(r["prompt_targets"])


def test_tokens_flag_repeatable(ll, model):
    """--tokens given three times: three prompts, the same results as the same prompts from a .jsonl."""
    prompts = [[3, 4, 5], [7], [1, 2, 11, 12]]
    out_dir = ll.tmpdir("tokens")
    out = os.path.join(out_dir, "t.h5")
    args = ["run", "--model", model, "--out", out, "--topk", "4", "--threads", "2", "--quiet"]
    for p in prompts:
        args += ["--tokens", ",".join(map(str, p))]
    res = ll.run(args)
    assert res.rc == 0, res.describe()
    r = read_result(out)
    check_layout(r, prompts, [None] * 3, "--tokens x3")
    j = read_result(ll.lens(model, prompts, None, ["--topk", "4"]))
    for name in ("topk_ids", "target_ranks"):
        assert np.array_equal(r[name], j[name]), "--tokens and .jsonl give different %s" % name
    for name in ("topk_probs", "entropy", "kl_final"):
        assert np.allclose(r[name], j[name], rtol=0, atol=1e-6, equal_nan=True), \
            "--tokens and .jsonl give different %s" % name


def test_token_list_with_spaces(ll, model):
    out_dir = ll.tmpdir("tokens")
    out = os.path.join(out_dir, "t.h5")
    res = ll.run(["run", "--model", model, "--out", out, "--tokens", "3, 4,5", "--quiet"])
    assert res.rc == 0, res.describe()
    assert [int(x) for x in read_result(out)["tokens"]] == [3, 4, 5]


# ---- text prompts: only with a tokenizer.json -------------------------------------------------------

TOKENIZER_MODELS = {
    "gpt2": dict(GPT2, ctx=64, tokenizer="gpt2"),
    "llama3": dict(arch="llama", layers=2, d_model=40, heads=4, kv_heads=2, vocab=512, ctx=64, dtype="f32",
                   tokenizer="llama3"),
    "sentencepiece": dict(arch="llama", layers=2, d_model=40, heads=4, vocab=400, ctx=64, dtype="f32",
                          tokenizer="sentencepiece"),
}
TEXTS = ["The cat sat on the mat.", "Hello world", "  leading spaces and ünïcödé — 東京"]


def _text_model(ll, style):
    d = ll.try_synth(**TOKENIZER_MODELS[style])
    if d is None or not os.path.exists(os.path.join(d, "tokenizer.json")):
        pytest.skip("the synthesized model has no tokenizer.json (synth --tokenizer %s not available yet): "
                    "text prompts cannot be tested" % style)
    tokenizers = pytest.importorskip("tokenizers", reason="the `tokenizers` package gives the expected ids")
    return d, tokenizers.Tokenizer.from_file(os.path.join(d, "tokenizer.json"))


def _answer_id(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    return ids[0]


@pytest.mark.parametrize("style", sorted(TOKENIZER_MODELS))
@pytest.mark.parametrize("source", ["--prompt", ".txt", ".jsonl"])
def test_text_prompts(ll, style, source):
    d, tok = _text_model(ll, style)
    expect = [tok.encode(t, add_special_tokens=True).ids for t in TEXTS]
    answers = [None] * len(TEXTS)
    work = ll.tmpdir("text")
    out = os.path.join(work, "t.h5")
    args = ["run", "--model", d, "--out", out, "--topk", "3", "--threads", "2", "--quiet"]
    if source == "--prompt":
        for t in TEXTS:
            args += ["--prompt", t]
    elif source == ".txt":
        pf = os.path.join(work, "p.txt")
        with open(pf, "w", encoding="utf-8") as f:
            f.write("\n".join(TEXTS) + "\n")
        args += ["--prompts", pf]
    else:
        pf = os.path.join(work, "p.jsonl")
        targets = [" Paris", None, "x"]
        with open(pf, "w", encoding="utf-8") as f:
            for t, a in zip(TEXTS, targets):
                f.write(json.dumps({"prompt": t, **({"target": a} if a else {})}) + "\n")
        answers = [_answer_id(tok, a) if a else None for a in targets]
        args += ["--prompts", pf]
    res = ll.run(args)
    assert res.rc == 0, res.describe()
    r = read_result(out)
    check_layout(r, expect, answers, "%s tokenizer, prompts from %s" % (style, source))
    assert list(r["prompts"]) == TEXTS, "prompts dataset %s, expected the texts as given" % list(r["prompts"])
    if source == ".jsonl":
        assert list(r["prompt_targets"]) == [" Paris", "", "x"], list(r["prompt_targets"])


@pytest.mark.parametrize("style", sorted(TOKENIZER_MODELS))
def test_no_special(ll, style):
    d, tok = _text_model(ll, style)
    work = ll.tmpdir("text")
    out = os.path.join(work, "t.h5")
    res = ll.run(["run", "--model", d, "--out", out, "--prompt", TEXTS[0], "--no-special", "--quiet"])
    assert res.rc == 0, res.describe()
    want = tok.encode(TEXTS[0], add_special_tokens=False).ids
    got = [int(x) for x in read_result(out)["tokens"]]
    assert got == want, "--no-special: tokens %s, expected %s" % (got, want)


@pytest.mark.parametrize("style", sorted(TOKENIZER_MODELS))
def test_pretokenized_prompt_text_is_decoded(ll, style):
    """With a tokenizer, a pre-tokenized prompt's `prompts` entry is its decoded text."""
    d, tok = _text_model(ll, style)
    ids = tok.encode(TEXTS[1], add_special_tokens=False).ids
    r = read_result(ll.lens(d, [ids], None, ["--topk", "2"]))
    want = tok.decode(ids, skip_special_tokens=False)
    assert list(r["prompts"]) == [want], "prompts %s, expected the decoded %r" % (list(r["prompts"]), want)
