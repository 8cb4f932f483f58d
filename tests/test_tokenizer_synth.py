"""ll_tokenizer_write_synth (through `logitlens tokenize DIR --write-synth`): each style writes a
tokenizer.json that Hugging Face `tokenizers` loads, with exactly the requested number of ids, on which our
encoder and decoder agree with `tokenizers`; common words become single tokens when the vocabulary allows."""
import json
import os

import pytest
from tokenizers import Tokenizer

from tokenizer import corpus, harness

STYLES = ["gpt2", "llama3", "sentencepiece"]
SIZES = [300, 301, 397, 512, 1000, 4099]


def _write(tmp_path, style, v, seed=1, tag=""):
    d = str(tmp_path / ("%s_%d_%d%s" % (style, v, seed, tag)))
    os.makedirs(d)
    p = harness.run([d, "--write-synth", style, "--vocab-size", str(v), "--seed", str(seed)])
    assert p.returncode == 0, p.stderr.decode()
    return d


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("v", SIZES)
def test_synth_agrees_with_tokenizers(tmp_path, style, v):
    harness.require_binary()
    d = _write(tmp_path, style, v)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    assert tok.get_vocab_size() == v
    specials = ["<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<s>", "</s>", "<unk>"]
    inputs = corpus.strings(21, 3000, specials)
    ours = harness.encode(d, inputs)
    theirs = harness.hf_encode(tok, inputs)
    diff = harness.first_difference(tok, inputs, ours, theirs)
    assert diff is None, "%s %d: %s" % (style, v, diff)
    dec = harness.decode(d, theirs[:1000])
    assert dec == [tok.decode(ids, skip_special_tokens=False).encode() for ids in theirs[:1000]]
    assert all(0 <= i < v for ids in ours for i in ids)
    if style != "gpt2":
        bos = ours[0][0]
        assert tok.id_to_token(bos) in ("<|begin_of_text|>", "<s>") and bos < v


@pytest.mark.parametrize("style", STYLES)
def test_synth_common_words_are_single_tokens(tmp_path, style):
    harness.require_binary()
    d = _write(tmp_path, style, 1000)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    for word in [" the", " city", " Paris", " Tower", " of", " is", " in"]:
        ids = harness.encode(d, [("The" + word).encode()], add_special=False)[0]
        assert len(ids) == 2, "%s: %r is not a single token: %s" % (style, word, [tok.id_to_token(i) for i in ids])


def test_synth_large_vocab_and_seed(tmp_path):
    harness.require_binary()
    d = _write(tmp_path, "gpt2", 50257)
    tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    assert tok.get_vocab_size() == 50257 and tok.token_to_id("<|endoftext|>") == 50256
    a = open(os.path.join(_write(tmp_path, "llama3", 600, seed=1), "tokenizer.json")).read()
    b = open(os.path.join(_write(tmp_path, "llama3", 600, seed=1, tag="again"), "tokenizer.json")).read()
    assert a == b, "the same seed must write the same file"
    c = open(os.path.join(_write(tmp_path, "llama3", 600, seed=2), "tokenizer.json")).read()
    assert a != c, "another seed must learn from another text"
    cfg = json.load(open(os.path.join(_write(tmp_path, "sentencepiece", 333), "tokenizer_config.json")))
    assert cfg["add_bos_token"] is True and cfg["bos_token"] == "<s>"


@pytest.mark.parametrize("args,msg", [
    (["--write-synth", "bpe", "--vocab-size", "500"], "style 'bpe' is unknown"),
    (["--write-synth", "gpt2", "--vocab-size", "100"], "vocab size 100"),
    (["--write-synth", "gpt2"], "needs --vocab-size"),
])
def test_synth_bad_arguments(tmp_path, args, msg):
    harness.require_binary()
    p = harness.run([str(tmp_path)] + args)
    assert p.returncode == 2 and msg in p.stderr.decode(), p.stderr
