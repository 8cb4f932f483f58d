"""Our tokenizer against Hugging Face `tokenizers` (the oracle) on every family we support.

For each family (tests/tokenizer/families.py) a reference tokenizer is trained with `tokenizers` on the
generated corpus and saved as tokenizer.json; then 20,000 generated test strings (tests/tokenizer/corpus.py:
many scripts, emoji sequences, whitespace runs, digit runs, contractions, special and added tokens inside
text, invalid UTF-8, the empty string) are encoded by `logitlens tokenize --batch` and by `tokenizers`:
every id must be equal. Inputs with invalid UTF-8 are given to `tokenizers` decoded with
errors="replace" (each maximal invalid subsequence becomes U+FFFD), the mapping logitlens documents.
Decoding `tokenizers`' ids must give `tokenizers`' decode(skip_special_tokens=False) byte for byte.
LL_TOKENIZER_N overrides the number of strings (default 20000)."""
import os
import random

import pytest

from tokenizer import corpus, families, harness

N = int(os.environ.get("LL_TOKENIZER_N", "20000"))


@pytest.fixture(scope="module")
def family_dir(tmp_path_factory):
    cache = {}

    def get(family):
        if family not in cache:
            d = str(tmp_path_factory.mktemp("tok_" + family))
            cache[family] = (d, families.save(family, d))
        return cache[family]

    return get


def _inputs(family, seed=11, n=N):
    return corpus.strings(seed, n, families.SPECIALS[family] + families.EXTRA_STRINGS)


@pytest.mark.parametrize("family", families.FAMILIES)
def test_encode_matches_tokenizers(family, family_dir):
    harness.require_binary()
    d, tok = family_dir(family)
    inputs = _inputs(family)
    assert len(inputs) == N and b"" in inputs
    assert sum(1 for b in inputs if not _valid(b)) > N // 50, "the corpus must contain invalid UTF-8"
    ours = harness.encode(d, inputs)
    theirs = harness.hf_encode(tok, inputs)
    diff = harness.first_difference(tok, inputs, ours, theirs)
    assert diff is None, "%s: %s" % (family, diff)


@pytest.mark.parametrize("family", families.FAMILIES)
def test_encode_without_special_tokens(family, family_dir):
    harness.require_binary()
    d, tok = family_dir(family)
    inputs = _inputs(family, seed=12, n=2000)
    ours = harness.encode(d, inputs, add_special=False)
    theirs = harness.hf_encode(tok, inputs, add_special=False)
    diff = harness.first_difference(tok, inputs, ours, theirs)
    assert diff is None, "%s (add_special_tokens=False): %s" % (family, diff)


def _valid(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


@pytest.mark.parametrize("family", families.FAMILIES)
def test_decode_matches_tokenizers(family, family_dir):
    harness.require_binary()
    d, tok = family_dir(family)
    id_lists = harness.hf_encode(tok, _inputs(family, seed=13, n=3000))
    # Random id sequences too: byte tokens in any order (invalid UTF-8 once joined), added tokens, and ids
    # beyond the vocabulary (skipped by both).
    r = random.Random(5)
    size = tok.get_vocab_size()
    id_lists += [[r.randrange(size + 20) for _ in range(r.randint(0, 12))] for _ in range(2000)]
    ours = harness.decode(d, id_lists)
    theirs = [tok.decode(ids, skip_special_tokens=False).encode("utf-8") for ids in id_lists]
    bad = [i for i in range(len(id_lists)) if ours[i] != theirs[i]]
    assert not bad, "%s: %d of %d decodes differ; first ids %s: ours %r, theirs %r" % (
        family, len(bad), len(id_lists), id_lists[bad[0]], ours[bad[0]], theirs[bad[0]])


@pytest.mark.parametrize("family", ["gpt2", "llama3"])
def test_token_bytes_match_tokenizers(family, family_dir):
    """For byte-level families, each token's raw bytes (shown by --vocab) decode to what `tokenizers`
    decodes that single id to."""
    harness.require_binary()
    d, tok = family_dir(family)
    p = harness.run([d, "--vocab"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode("utf-8").split("\n")[:-1]
    assert len(lines) == tok.get_vocab_size()
    for line in lines:
        i, hx, disp = line.split("\t")
        raw = bytes.fromhex(hx)
        assert raw.decode("utf-8", errors="replace") == tok.decode([int(i)], skip_special_tokens=False), line
        if not _valid(raw):
            assert "\\x" in disp, "a token that is not valid UTF-8 must be shown escaped: %s" % line
