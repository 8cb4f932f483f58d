"""The one set of rules for prompts (docs/cli.md, "Prompts"): blank lines skipped in .txt and .jsonl,
'#' comments in .txt, each skip reported in one note; prompts numbered from 0 as in the result file and
`show`, file lines from 1; nothing silently dropped or shortened (NUL characters, positions past a
prompt's end, layer ranges that select nothing, text targets without a tokenizer); a tokenizer the
engine cannot use does not stop a run whose prompts are token ids, and the file records why."""

import json
import os

import h5py
import pytest

from test_errors import expect_refusal

GPT2 = dict(arch="gpt2", layers=3, d_model=44, heads=4, vocab=397, ctx=32, dtype="f32")


@pytest.fixture(scope="module")
def tok_model(ll):
    d = ll.try_synth(**dict(GPT2, tokenizer="gpt2"))
    if d is None or not os.path.exists(os.path.join(d, "tokenizer.json")):
        pytest.skip("synth --tokenizer gpt2 is not available")
    return d


@pytest.fixture(scope="module")
def ids_model(ll):
    return ll.synth(**GPT2)


def _run(ll, model, pfile=None, extra=(), quiet=False, prompts=()):
    out_dir = ll.tmpdir("out")
    out = os.path.join(out_dir, "r.h5")
    args = ["run", "--model", model, "--out", out, "--threads", "2"]
    if pfile:
        args += ["--prompts", pfile]
    for p in prompts:
        args += ["--prompt", p]
    if quiet:
        args.append("--quiet")
    return ll.run(args + list(extra)), out_dir, out


def _write(ll, name, text):
    p = os.path.join(ll.tmpdir("prompts"), name)
    with open(p, "w", encoding="utf-8") as f:
        f.write(text)
    return p


def _prompts(out):
    with h5py.File(out, "r") as f:
        return [s.decode() for s in f["prompts"][:]]


def test_txt_blank_and_comment_lines_are_skipped_with_a_note(ll, tok_model):
    pf = _write(ll, "p.txt", "# capitals\nThe capital of France is\n\n   \n  # indented comment\nThe cat sat\n\n")
    r, _, out = _run(ll, tok_model, pf)
    assert r.rc == 0, r.describe()
    assert _prompts(out) == ["The capital of France is", "The cat sat"]
    notes = [ln for ln in r.stderr.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "2 prompts from 7 lines" in notes[0] and "3 blank" in notes[0] \
        and "2 comment" in notes[0], r.stderr
    r, _, out = _run(ll, tok_model, pf, quiet=True)
    assert r.rc == 0 and r.stderr == "", r.describe()


def test_jsonl_blank_lines_are_skipped_with_a_note(ll, ids_model):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3]}\n\n{"tokens": [4, 5]}\n \n')
    r, _, out = _run(ll, ids_model, pf)
    assert r.rc == 0, r.describe()
    with h5py.File(out, "r") as f:
        assert list(f["prompt_offsets"][:]) == [0, 3, 5]
    assert "2 prompts from 4 lines (skipped 2 blank and 0 comment lines)" in r.stderr


def test_no_note_when_nothing_is_skipped(ll, ids_model):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3]}\n')
    r, _, _ = _run(ll, ids_model, pf)
    assert r.rc == 0 and "note" not in r.stderr, r.describe()


def test_file_of_only_blank_and_comment_lines_is_refused(ll, tok_model):
    pf = _write(ll, "empty.txt", "# nothing\n\n")
    r, out_dir, _ = _run(ll, tok_model, pf, quiet=True)
    expect_refusal(r, {3}, out_dir, names=["empty.txt", "no prompts", "1 blank", "1 comments"])


@pytest.mark.parametrize("field", ["prompt", "target"])
def test_nul_escape_in_jsonl_is_refused_never_shortened(ll, tok_model, field):
    obj = {"prompt": "The capital of France is", "target": " Paris"}
    obj[field] = obj[field][:4] + "\u0000" + obj[field][4:]
    pf = _write(ll, "nul.jsonl", '{"prompt": "ok"}\n' + json.dumps(obj) + "\n")
    assert "\\u0000" in open(pf).read()
    r, out_dir, _ = _run(ll, tok_model, pf, quiet=True)
    expect_refusal(r, {3}, out_dir, names=["prompt 1", "nul.jsonl:2", "\\u0000", "NUL"])


def test_escaped_backslash_before_u0000_is_ordinary_text(ll, tok_model):
    text = "a\\u0000b"  # backslash, then the six characters u0000: no NUL here
    pf = _write(ll, "lit.jsonl", json.dumps({"prompt": text}) + "\n")
    r, _, out = _run(ll, tok_model, pf, quiet=True)
    assert r.rc == 0, r.describe()
    assert _prompts(out) == [text]


def test_prompts_are_numbered_from_0_and_lines_from_1(ll, ids_model):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2]}\n\n{"tokens": [3, 99999]}\n')
    r, out_dir, _ = _run(ll, ids_model, pf, quiet=True, extra=["--tokens", "5,6"])
    # --tokens is prompt 0, the file's first record prompt 1, its second (line 3) prompt 2
    expect_refusal(r, {3}, out_dir, names=["prompt 2 (p.jsonl:3)", "99999"])
    r, out_dir, _ = _run(ll, ids_model, None, quiet=True, extra=["--tokens", "5,6", "--tokens", "7,-1"])
    expect_refusal(r, {3}, out_dir, names=["prompt 1 (--tokens)"])


def test_prompt_index_in_messages_matches_the_result_file(ll, tok_model):
    pf = _write(ll, "p.txt", "# header\nfirst prompt\nsecond prompt\n")
    r, _, out = _run(ll, tok_model, pf, quiet=True, prompts=["cli prompt"])
    assert r.rc == 0, r.describe()
    assert _prompts(out) == ["cli prompt", "first prompt", "second prompt"]
    s = ll.run(["show", out, "--prompt", "2"])
    assert s.rc == 0 and "prompt 2 of 3" in s.stdout and "second prompt" in s.stdout, s.describe()


def test_text_target_without_tokenizer_names_the_target(ll, ids_model):
    pf = _write(ll, "t.jsonl", '{"tokens": [1, 2, 3], "target": " Paris"}\n')
    r, out_dir, _ = _run(ll, ids_model, pf, quiet=True)
    expect_refusal(r, {3}, out_dir, names=["prompt 0 (t.jsonl:1)", "target", "' Paris'", "target_id",
                                           "no tokenizer.json"])


def test_text_prompt_without_tokenizer(ll, ids_model):
    r, out_dir, _ = _run(ll, ids_model, None, quiet=True, prompts=["hello"])
    expect_refusal(r, {3}, out_dir, names=["prompt 0 (--prompt)", "needs a tokenizer", "token ids"])


@pytest.mark.parametrize("layers", ["5:2", "2:2", "-1:0", "10:20"])
def test_layers_that_select_nothing_are_refused(ll, ids_model, layers):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3]}\n')
    r, out_dir, _ = _run(ll, ids_model, pf, quiet=True, extra=["--layers", layers])
    expect_refusal(r, {2}, out_dir, names=["--layers", layers, "selects no layer", "0..2"])


def test_layers_that_select_something_still_run(ll, ids_model):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3]}\n')
    r, _, out = _run(ll, ids_model, pf, quiet=True, extra=["--layers", "2:0:-1"])
    assert r.rc == 0, r.describe()
    with h5py.File(out, "r") as f:
        assert [s.decode() for s in f["points"][:]] == ["embed", "post.1", "post.2"]


@pytest.mark.parametrize("pos", ["100", "3", "-4", "0,5"])
def test_save_probs_past_a_prompts_end_is_refused(ll, ids_model, pos):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3, 4, 5]}\n{"tokens": [6, 7, 8]}\n')
    r, out_dir, _ = _run(ll, ids_model, pf, quiet=True, extra=["--save-probs", pos])
    # the first prompt a position does not fit is named, with its length
    lengths = [5, 3]
    i, bad = next((i, p) for i, n in enumerate(lengths) for p in pos.split(",") if not -n <= int(p) < n)
    expect_refusal(r, {2}, out_dir, names=["--save-probs", "position %s" % bad,
                                           "prompt %d (p.jsonl:%d)" % (i, i + 1), "%d tokens" % lengths[i]])


def test_save_probs_within_every_prompt_runs(ll, ids_model):
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3, 4, 5]}\n{"tokens": [6, 7, 8]}\n')
    r, _, out = _run(ll, ids_model, pf, quiet=True, extra=["--save-probs", "0,-1,2"])
    assert r.rc == 0, r.describe()
    with h5py.File(out, "r") as f:
        assert list(f["probs_token_index"][:]) == [0, 2, 4, 5, 7]


def _unusable_tokenizer(ll, model):
    d = ll.copy_model(model, "badtok")
    doc = json.load(open(os.path.join(d, "tokenizer.json")))
    doc["model"]["type"] = "WordPiece"
    json.dump(doc, open(os.path.join(d, "tokenizer.json"), "w"))
    return d


def test_unusable_tokenizer_does_not_stop_token_id_prompts(ll, tok_model):
    d = _unusable_tokenizer(ll, tok_model)
    pf = _write(ll, "p.jsonl", '{"tokens": [1, 2, 3], "target_id": 7}\n')
    r, _, out = _run(ll, d, pf)
    assert r.rc == 0, r.describe()
    notes = [ln for ln in r.stderr.splitlines() if "note:" in ln]
    assert len(notes) == 1 and "tokenizer.json" in notes[0] and "WordPiece" in notes[0] \
        and "without token strings" in notes[0], r.stderr
    with h5py.File(out, "r") as f:
        assert f.attrs["tokenizer"] == "none"
        assert "WordPiece" in f.attrs["tokenizer_error"]
        assert "vocab" not in f
    with h5py.File(ll.lens(tok_model, [[1, 2, 3]], [7]), "r") as f:
        assert f.attrs["tokenizer"] == "tokenizer.json" and "tokenizer_error" not in f.attrs


def test_unusable_tokenizer_stops_text_prompts_with_its_reason(ll, tok_model):
    d = _unusable_tokenizer(ll, tok_model)
    r, out_dir, _ = _run(ll, d, None, quiet=True, prompts=["hello"])
    expect_refusal(r, {3}, out_dir, names=["prompt 0 (--prompt)", "cannot be used", "WordPiece"])
