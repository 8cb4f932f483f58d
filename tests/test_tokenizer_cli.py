"""`logitlens tokenize DIR --text`: ids and readable pieces; --no-special; tokenizer_config.json's
add_bos_token / add_eos_token; display of tokens that are not valid UTF-8 on their own; long inputs without
quadratic behaviour."""
import json
import os
import re
import time

import pytest
from tokenizers import Tokenizer

from tokenizer import harness


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = {}

    def get(style, v=1000):
        if (style, v) not in out:
            d = str(tmp_path_factory.mktemp("cli_%s_%d" % (style, v)))
            p = harness.run([d, "--write-synth", style, "--vocab-size", str(v)])
            assert p.returncode == 0, p.stderr
            out[(style, v)] = d
        return out[(style, v)]

    return get


def _text(d, text, *extra):
    p = harness.run([d, "--text", text] + list(extra))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode("utf-8").split("\n")[:-1]
    head = lines[0]
    n = int(head.split(" ")[0])
    ids = [int(x) for x in head.split(":")[1].split()]
    assert len(ids) == n and len(lines) == n + 1
    pieces = []
    for i, line in zip(ids, lines[1:]):
        m = re.match(r"^ *(\d+)  \"(.*)\"$", line)
        assert m and int(m.group(1)) == i, line
        pieces.append(m.group(2))
    return ids, pieces


def test_text_prints_ids_and_pieces(synth):
    harness.require_binary()
    d = synth("llama3")
    ids, pieces = _text(d, "The Eiffel Tower is in the city of")
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    assert ids == tok.encode("The Eiffel Tower is in the city of").ids
    assert pieces == ["<|begin_of_text|>", "The", " Eiffel", " Tower", " is", " in", " the", " city", " of"]
    ids2, pieces2 = _text(d, "The Eiffel Tower is in the city of", "--no-special")
    assert ids2 == ids[1:] and pieces2 == pieces[1:]


def test_sentencepiece_pieces_show_spaces(synth):
    harness.require_binary()
    d = synth("sentencepiece")
    ids, pieces = _text(d, "The city of Paris")
    assert pieces == ["<s>", " The", " city", " of", " Paris"]


def test_partial_utf8_tokens_are_escaped(synth):
    harness.require_binary()
    d = synth("gpt2", 400)
    ids, pieces = _text(d, "€")  # three bytes, no merges for them in the synthetic vocabulary
    assert pieces == ["\\xe2", "\\x82", "\\xac"], pieces
    d = synth("sentencepiece", 400)
    ids, pieces = _text(d, "€", "--no-special")
    assert pieces[-3:] == ["\\xe2", "\\x82", "\\xac"], pieces


def test_config_bos_eos_flags(synth, tmp_path):
    harness.require_binary()
    src = synth("sentencepiece")
    d = tmp_path / "sp"
    d.mkdir()
    (d / "tokenizer.json").write_text(open(os.path.join(src, "tokenizer.json")).read())
    cfg = json.load(open(os.path.join(src, "tokenizer_config.json")))
    base, _ = _text(str(d), "city")  # no tokenizer_config.json: the post-processor adds <s>
    assert base[0] == 1
    cfg["add_eos_token"] = True
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    ids, pieces = _text(str(d), "city")
    assert ids == base + [2] and pieces[-1] == "</s>"
    cfg["add_bos_token"] = False
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    ids, _ = _text(str(d), "city")
    assert ids == base[1:] + [2]
    ids, _ = _text(str(d), "city", "--no-special")
    assert ids == base[1:]
    # transformers also writes special tokens as AddedToken objects
    cfg["add_bos_token"] = True
    cfg["bos_token"] = {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                        "rstrip": False, "single_word": False}
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    ids, _ = _text(str(d), "city")
    assert ids == base + [2]


def test_help():
    harness.require_binary()
    p = harness.run(["--help"])
    assert p.returncode == 0 and b"--batch" in p.stdout and b"--no-special" in p.stdout


@pytest.mark.parametrize("style", ["gpt2", "llama3", "sentencepiece"])
def test_long_inputs_are_not_quadratic(synth, tmp_path, style):
    """A 2 MB word, 2 MB of spaces, 2 MB of short words and 1 MB of a two-byte letter encode in well under
    the time a quadratic merge would need; 100 KB versions give the ids of `tokenizers`."""
    harness.require_binary()
    d = synth(style, 600)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))

    def inputs(k):
        return [b"a" * k, b" " * k, b"ab " * (k // 3), ("é" * (k // 4)).encode()]

    t = time.time()
    harness.encode(d, inputs(2_000_000))
    elapsed = time.time() - t
    limit = 30 if "build-san" in harness.binary() else 8
    assert elapsed < limit, "%s: %.1f s for 7 MB of degenerate input" % (style, elapsed)
    small = inputs(100_000)
    assert harness.encode(d, small) == harness.hf_encode(tok, small)
