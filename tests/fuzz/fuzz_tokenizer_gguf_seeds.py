"""Writes seed GGUF files for fuzz_tokenizer_gguf into a corpus directory: tokenizer metadata only (no
tensors), gpt2 models with each supported tokenizer.ggml.pre and llama (SentencePiece) models, with token
types, BOS/EOS keys and flags. Plain Python (struct), so that it runs without the gguf package.

usage: python3 tests/fuzz/fuzz_tokenizer_gguf_seeds.py CORPUS_DIR"""
import os
import struct
import sys

U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9


def _str(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _value(vtype, v, sub=None):
    if vtype == U32:
        return struct.pack("<I", v)
    if vtype == I32:
        return struct.pack("<i", v)
    if vtype == F32:
        return struct.pack("<f", v)
    if vtype == BOOL:
        return struct.pack("<B", 1 if v else 0)
    if vtype == STRING:
        return _str(v)
    return struct.pack("<IQ", sub, len(v)) + b"".join(_value(sub, x) for x in v)


def gguf_bytes(kvs):
    """kvs: list of (key, vtype, value[, sub_type])."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs))
    for kv in kvs:
        key, vtype, v = kv[:3]
        out += _str(key) + struct.pack("<I", vtype) + _value(vtype, v, kv[3] if len(kv) > 3 else None)
    return out + b"\0" * (-len(out) % 32)


def _bytelevel_chars():
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def gpt2_seed(pre, missing=(), extra=()):
    chars = _bytelevel_chars()
    tokens = ["<|endoftext|>", "<|im_start|>"] + [c for b, c in enumerate(chars) if b not in missing]
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("ll", "o"), ("e", "llo"), ("Ġ", "w"),
                 ("1", "2"), ("Ġ", "Ġ")]:
        if a + b not in tokens:
            tokens.append(a + b)
        merges.append(a + " " + b)
    tokens.append("New York")
    types = [3, 3] + [1] * (len(tokens) - 3) + [4]
    kvs = [("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
           ("tokenizer.ggml.token_type", ARRAY, types, I32), ("tokenizer.ggml.merges", ARRAY, merges, STRING),
           ("tokenizer.ggml.bos_token_id", U32, 0), ("tokenizer.ggml.eos_token_id", U32, 0)]
    if pre is not None:
        kvs.append(("tokenizer.ggml.pre", STRING, pre))
    return gguf_bytes(kvs + list(extra))


def spm_seed(extra=()):
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    tokens += ["▁", "t", "h", "e", "▁t", "he", "▁the", "l", "o", "ll", "llo", "▁h", "▁hello", "<|user|>"]
    types = [2, 3, 3] + [6] * 256 + [1] * 13 + [4]
    scores = [0.0] * 259 + [-float(i // 2) for i in range(len(tokens) - 259)]
    kvs = [("tokenizer.ggml.model", STRING, "llama"), ("tokenizer.ggml.tokens", ARRAY, tokens, STRING),
           ("tokenizer.ggml.token_type", ARRAY, types, I32), ("tokenizer.ggml.scores", ARRAY, scores, F32)]
    return gguf_bytes(kvs + list(extra))


def seeds():
    out = {}
    for pre in ["default", "gpt-2", "olmo", "starcoder", "smollm", "llama-bpe", "qwen2", None]:
        out["gpt2_%s.gguf" % (pre or "nopre")] = gpt2_seed(pre)
    out["gpt2_holes.gguf"] = gpt2_seed("smollm", missing=(0x04, 0x06, 0xC0, 0xF5, 0xFF),
                                       extra=[("tokenizer.ggml.add_bos_token", BOOL, True),
                                              ("tokenizer.ggml.add_eos_token", BOOL, True)])
    out["spm.gguf"] = spm_seed()
    out["spm_flags.gguf"] = spm_seed([("tokenizer.ggml.add_space_prefix", BOOL, False),
                                      ("tokenizer.ggml.add_eos_token", BOOL, True),
                                      ("tokenizer.ggml.unknown_token_id", U32, 0)])
    return out


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(sys.argv[1], exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(sys.argv[1], "seed_" + name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
