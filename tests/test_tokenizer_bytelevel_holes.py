"""Byte-level vocabularies without some of the 256 byte tokens (StarCoder / SmolLM2 lack 21): they load, and
encode and decode exactly as Hugging Face `tokenizers` does with the same tokenizer.json.

`tokenizers` drops a byte it has no token for when the model has no unk_token, gives unk_token (fused with
fuse_unk) when it has one, and the <0xNN> tokens of the character's UTF-8 bytes with byte_fallback. Each
variant below takes a reference tokenizer trained with `tokenizers` (tests/tokenizer/families.py), removes
every token containing the byte-level character of a missing byte (tests/tokenizer/holes.py), and compares
ids on strings with those bytes at word starts, middles and ends, as whole words and inside multi-byte
characters (tests/tokenizer/holes.py: strings), plus decoding of `tokenizers`' ids and of random ids (ids
in the holes are skipped by both). LL_TOKENIZER_N sets the number of strings (default 3000)."""
import json
import os
import random

import pytest

from tokenizer import families, harness, holes

N = int(os.environ.get("LL_TOKENIZER_N", "3000"))

# variant -> (family, missing bytes, unk_token, fuse_unk, byte_fallback)
VARIANTS = {
    "starcoder_drop": ("gpt2", holes.STARCODER_MISSING, None, False, False),
    "starcoder_unk": ("gpt2", holes.STARCODER_MISSING, "<|endoftext|>", False, False),
    "starcoder_unk_fused": ("gpt2", holes.STARCODER_MISSING, "<|endoftext|>", True, False),
    "starcoder_byte_fallback": ("gpt2", holes.STARCODER_MISSING, None, False, True),
    "starcoder_byte_fallback_unk": ("gpt2", holes.STARCODER_MISSING, "<|endoftext|>", False, True),
    "common_drop": ("gpt2", holes.COMMON_MISSING, None, False, False),
    "common_unk_fused": ("gpt2", holes.COMMON_MISSING, "<|endoftext|>", True, False),
    "llama3_common_drop": ("llama3", holes.COMMON_MISSING, None, False, False),
    "llama3_starcoder_unk": ("llama3", holes.STARCODER_MISSING, "<|end_of_text|>", False, False),
}


@pytest.fixture(scope="module")
def trained():
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = json.loads(families.build(family).to_str())
        return cache[family]

    return get


@pytest.fixture(scope="module")
def variant_dir(tmp_path_factory, trained):
    from tokenizers import Tokenizer
    cache = {}

    def get(name):
        if name not in cache:
            family, missing, unk, fuse, bf = VARIANTS[name]
            doc = holes.remove_bytes(trained(family), missing)
            if bf:
                doc = holes.add_byte_fallback_tokens(doc)
            doc["model"]["unk_token"] = unk
            doc["model"]["fuse_unk"] = fuse
            d = tmp_path_factory.mktemp("holes_" + name)
            text = json.dumps(doc)
            (d / "tokenizer.json").write_text(text)
            cache[name] = (str(d), Tokenizer.from_str(text), missing, family)
        return cache[name]

    return get


def _inputs(family, missing, seed, n):
    return holes.strings(seed, n, missing, families.SPECIALS[family] + families.EXTRA_STRINGS)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_encode_matches_tokenizers(name, variant_dir):
    harness.require_binary()
    d, tok, missing, family = variant_dir(name)
    inputs = _inputs(family, missing, 21, N)
    ours = harness.encode(d, inputs)
    theirs = harness.hf_encode(tok, inputs)
    diff = harness.first_difference(tok, inputs, ours, theirs)
    assert diff is None, "%s: %s" % (name, diff)
    if VARIANTS[name][2] and not VARIANTS[name][4]:
        unk = tok.token_to_id(VARIANTS[name][2])
        assert sum(ids.count(unk) for ids in theirs) > N // 10, "the strings must reach the unknown token"


@pytest.mark.parametrize("name", ["starcoder_drop", "starcoder_unk_fused", "llama3_common_drop"])
def test_encode_without_special_tokens(name, variant_dir):
    harness.require_binary()
    d, tok, missing, family = variant_dir(name)
    inputs = _inputs(family, missing, 22, 1000)
    ours = harness.encode(d, inputs, add_special=False)
    theirs = harness.hf_encode(tok, inputs, add_special=False)
    diff = harness.first_difference(tok, inputs, ours, theirs)
    assert diff is None, "%s (add_special_tokens=False): %s" % (name, diff)


@pytest.mark.parametrize("name", ["starcoder_drop", "starcoder_byte_fallback_unk", "common_drop"])
def test_decode_matches_tokenizers(name, variant_dir):
    harness.require_binary()
    d, tok, missing, family = variant_dir(name)
    id_lists = harness.hf_encode(tok, _inputs(family, missing, 23, 1000))
    r = random.Random(9)
    top = max(tok.get_vocab().values()) + 20
    id_lists += [[r.randrange(top) for _ in range(r.randint(0, 12))] for _ in range(1000)]
    ours = harness.decode(d, id_lists)
    theirs = [tok.decode(ids, skip_special_tokens=False).encode("utf-8") for ids in id_lists]
    bad = [i for i in range(len(id_lists)) if ours[i] != theirs[i]]
    assert not bad, "%s: %d of %d decodes differ; first ids %s: ours %r, theirs %r" % (
        name, len(bad), len(id_lists), id_lists[bad[0]], ours[bad[0]], theirs[bad[0]])


def test_missing_bytes_are_dropped(variant_dir):
    """The documented behaviour, spelled out: without unk_token the bytes vanish, 'a\\x04b' -> a, b."""
    harness.require_binary()
    d, tok, _, _ = variant_dir("starcoder_drop")
    ours = harness.encode(d, [b"a\x04b", b"\x04", b"\x04\x06\x13"], add_special=False)
    assert ours == [[tok.token_to_id("a"), tok.token_to_id("b")], [], []]


def test_unk_token_not_in_vocab_fails_when_used(tmp_path, trained):
    """unk_token naming no token: loading works, encoding a missing byte fails as in `tokenizers` (which
    raises 'Unk token ... not found'); text without missing bytes still encodes."""
    harness.require_binary()
    doc = holes.remove_bytes(trained("gpt2"), holes.STARCODER_MISSING)
    doc["model"]["unk_token"] = "<nope>"
    (tmp_path / "tokenizer.json").write_text(json.dumps(doc))
    ok = harness.run([str(tmp_path), "--text", "hello"])
    assert ok.returncode == 0, ok.stderr
    bad = harness.run([str(tmp_path), "--text", "a\x04b"])
    assert bad.returncode == 3 and "unk_token '<nope>' is not in model.vocab" in bad.stderr.decode(), bad.stderr
