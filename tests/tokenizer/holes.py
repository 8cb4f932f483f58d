"""Byte-level vocabularies that lack some of the 256 byte tokens (as StarCoder's and SmolLM2's lack 21), and
text that contains those bytes: the tokenizers, and the strings, for tests/test_tokenizer_bytelevel_holes.py
and tests/test_tokenizer_gguf.py."""
import json
import random

from . import corpus
from .gguf_ref import byte_level_chars

# The bytes SmolLM2's (StarCoder's) vocabulary has no token for.
STARCODER_MISSING = [0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2] + list(range(0xF5, 0x100))
# Holes in common bytes: space, 'e', newline, the lead byte of Latin-1 letters, a frequent continuation byte.
COMMON_MISSING = [0x20, 0x65, 0x0A, 0xC3, 0x80]


def remove_bytes(doc, missing):
    """A copy of a tokenizer.json document whose vocabulary and merges have no token containing the byte-level
    character of any byte in `missing` (ids of the others are kept, so the id space has holes). Added tokens
    (written as text, not byte-level characters) stay."""
    doc = json.loads(json.dumps(doc))
    table = byte_level_chars()
    chars = {table[b] for b in missing}
    vocab = doc["model"]["vocab"]
    added = {a["content"] for a in doc.get("added_tokens", [])}
    for t in [t for t in vocab if t not in added and any(c in chars for c in t)]:
        del vocab[t]

    def keep(m):
        parts = m.split(" ") if isinstance(m, str) else m
        return not any(c in chars for p in parts for c in p)

    doc["model"]["merges"] = [m for m in doc["model"]["merges"] if keep(m)]
    return doc


def add_byte_fallback_tokens(doc):
    """Adds the 256 <0xNN> tokens (new ids after the last) and turns byte_fallback on."""
    doc = json.loads(json.dumps(doc))
    vocab = doc["model"]["vocab"]
    nxt = max(max(vocab.values()), max((a["id"] for a in doc.get("added_tokens", [])), default=0)) + 1
    for b in range(256):
        vocab["<0x%02X>" % b] = nxt + b
    doc["model"]["byte_fallback"] = True
    return doc


def _chars_with_byte(b, r, k=40):
    """Up to k characters whose UTF-8 form contains byte b (none for bytes valid UTF-8 never holds)."""
    if b < 0x80:
        return [chr(b)]
    found = []
    for _ in range(20000):
        cp = r.choice([r.randrange(0x80, 0x800), r.randrange(0x800, 0x10000), r.randrange(0x10000, 0x110000)])
        if 0xD800 <= cp < 0xE000:
            continue
        if b in chr(cp).encode("utf-8"):
            found.append(chr(cp))
            if len(found) == k:
                break
    return found


def strings(seed, n, missing, specials=()):
    """n test strings (bytes) with the missing bytes at word starts, middles and ends, as whole words, inside
    multi-byte characters, next to spaces and digits, mixed with the usual corpus."""
    r = random.Random(seed)
    pools = [c for b in missing for c in _chars_with_byte(b, r)]
    base = corpus.strings(seed, n, list(specials))
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(base[i])
            continue
        words = corpus.text(r, specials, max_items=12).split(" ")
        for _ in range(r.randint(1, 6)):
            c = "".join(r.choice(pools) for _ in range(r.randint(1, 3)))
            j = r.randrange(len(words))
            w = words[j]
            where = r.random()
            if where < 0.25:
                words[j] = c + w
            elif where < 0.5:
                words[j] = w + c
            elif where < 0.75 and len(w) > 1:
                k = r.randrange(1, len(w))
                words[j] = w[:k] + c + w[k:]
            else:
                words.insert(j, c)
        out.append(" ".join(words).encode("utf-8"))
    out += [b"a\x04b", b"\x04", b"\x04\x06", b" \x04", b"a \x04\x04 b", b"x\x13\x14y", b"\x16\x1d end", b"12\x0434",
            "\U00040000z\U000B0000".encode(), "a\U00050001 \U00090000".encode(), b"\xc0\xc1\xf5\xff",
            b"caf\xc3\xa9 \xc3\x80 \xf0\x9f\x98\x80", b"\x04" * 50, b" " * 9 + b"\x06"]
    return out
