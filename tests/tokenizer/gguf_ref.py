"""GGUF tokenizer metadata on the Python side, written independently of host/tokenizer/tok_gguf.c.

- read_meta(path): the tokenizer.ggml.* keys of a GGUF file (gguf.GGUFReader).
- write_gguf(path, meta, extra=...): a GGUF file with only tokenizer metadata (gguf.GGUFWriter).
- hf_tokenizer(meta): the Hugging Face `tokenizers` Tokenizer that metadata stands for, built with the
  `tokenizers` Python API: for gpt2 models the vocabulary and merges with the normalizer / pre-tokenizer
  of the family's tokenizer.json (PRE below); for llama models what transformers' LlamaConverter builds
  (legacy form), merges derived from the scores as its generate_merges does (spm_merges below).
- byte_level_chars(): GPT-2's byte -> character table (for removing byte tokens from a vocabulary).

The defaults for absent keys are llama.cpp's (llama: BOS added, ids 1/2, unknown 0; gpt2: BOS only for
the Llama-3 pre-tokenizer, ids 11/11 when the vocabulary has them).
"""
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# llama.cpp's expressions for the "default" pre-tokenizer, applied one after the other.
_DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
            r"\p{N}+", r"[0-9][0-9][0-9]"]


def _bl(use_regex):
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=use_regex)


def _split(rx):
    return pre_tokenizers.Split(Regex(rx), behavior="isolated", invert=False)


# tokenizer.ggml.pre -> (normalizer or None, pre-tokenizer, ignore_merges, llama.cpp's add_bos default)
PRE = {
    "default": lambda: (None, pre_tokenizers.Sequence([_split(r) for r in _DEFAULT] + [_bl(False)]), False, False),
    "gpt-2": lambda: (None, _bl(True), False, False),
    "olmo": lambda: (normalizers.NFC(), _bl(True), False, False),
    "starcoder": lambda: (None, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _bl(True)]),
                          False, False),
    "smollm": lambda: (None, pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _bl(True)]),
                       False, False),
    "llama-bpe": lambda: (None, pre_tokenizers.Sequence([_split(_LLAMA3), _bl(False)]), True, True),
    "qwen2": lambda: (normalizers.NFC(), pre_tokenizers.Sequence([_split(_QWEN2), _bl(False)]), False, False),
}
PRE["llama3"] = PRE["llama-v3"] = PRE["llama-bpe"]


def byte_level_chars():
    """byte -> the character GPT-2's ByteLevel writes for it."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, extra = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + extra)
            extra += 1
    return out


def read_meta(path):
    """The tokenizer.ggml.* keys of a GGUF file, short names (model, pre, tokens, ...)."""
    import gguf
    fields = gguf.GGUFReader(path).fields
    meta = {}
    for key, field in fields.items():
        if key.startswith("tokenizer.ggml."):
            meta[key[len("tokenizer.ggml."):]] = field.contents()
    return meta


def write_gguf(path, meta, raw=()):
    """Writes a GGUF holding tokenizer metadata only. meta uses read_meta's names; raw: extra (key, value,
    GGUFValueType, sub_type) entries written as given (for malformed files)."""
    import gguf
    w = gguf.GGUFWriter(path, arch="llama")
    setters = {"model": w.add_tokenizer_model, "pre": w.add_tokenizer_pre, "tokens": w.add_token_list,
               "token_type": w.add_token_types, "scores": w.add_token_scores, "merges": w.add_token_merges,
               "bos_token_id": w.add_bos_token_id, "eos_token_id": w.add_eos_token_id,
               "unknown_token_id": w.add_unk_token_id, "add_bos_token": w.add_add_bos_token,
               "add_eos_token": w.add_add_eos_token, "add_space_prefix": w.add_add_space_prefix}
    for k, v in meta.items():
        setters[k](v)
    for key, value, vtype, sub in raw:
        w.add_key_value(key, value, vtype, sub_type=sub)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def spm_merges(tokens, scores):
    """Merges of a SentencePiece vocabulary as transformers' generate_merges gets them: every split of a token
    into two tokens at a character boundary, per token in id order ordered by the parts' ids, then all sorted
    by (score of the token, characters of the left part, of the right part), highest first, stably."""
    ids = {t: i for i, t in enumerate(tokens)}
    cands = []
    for t, s in zip(tokens, scores):
        local = [(t[:k], t[k:], s) for k in range(1, len(t)) if t[:k] in ids and t[k:] in ids]
        local.sort(key=lambda c: (ids[c[0]], ids[c[1]]))
        cands += local
    cands.sort(key=lambda c: (c[2], len(c[0]), len(c[1])), reverse=True)
    return [(a, b) for a, b, _ in cands]


def _special_ids(meta, spm, pre_add_bos):
    n = len(meta["tokens"])

    def tid(key, default):
        v = meta.get(key, default)
        return v if v is not None and 0 <= v < n else None

    bos = tid("bos_token_id", 1 if spm else 11)
    eos = tid("eos_token_id", 2 if spm else 11)
    add_bos = meta.get("add_bos_token", True if spm else pre_add_bos)
    add_eos = meta.get("add_eos_token", False)
    return (bos if add_bos else None), (eos if add_eos else None)


def hf_tokenizer(meta):
    """The `tokenizers` Tokenizer for GGUF tokenizer metadata (see the module docstring)."""
    tokens = list(meta["tokens"])
    types = list(meta.get("token_type", [NORMAL] * len(tokens)))
    vocab = {t: i for i, t in enumerate(tokens)}
    spm = meta["model"] == "llama"
    if spm:
        unk = tokens[meta.get("unknown_token_id", 0)]
        model = models.BPE(vocab=vocab, merges=spm_merges(tokens, list(meta["scores"])), unk_token=unk,
                           fuse_unk=True, byte_fallback=True)
        tok = Tokenizer(model)
        space = meta.get("add_space_prefix", True)
        tok.normalizer = normalizers.Sequence(([normalizers.Prepend("▁")] if space else [])
                                              + [normalizers.Replace(" ", "▁")])
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                        + ([decoders.Strip(" ", 1, 0)] if space else []))
        pre_add_bos = True
    else:
        norm, pre, ignore_merges, pre_add_bos = PRE[meta.get("pre", "default")]()
        merges = []
        for m in meta["merges"]:
            k = m.find(" ", 1)
            merges.append((m[:k], m[k + 1:]))
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=ignore_merges))
        if norm is not None:
            tok.normalizer = norm
        tok.pre_tokenizer = pre
        tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (UNKNOWN, CONTROL, USER_DEFINED)])
    bos, eos = _special_ids(meta, spm, pre_add_bos)
    if bos is not None or eos is not None:
        single = (["BOS"] if bos is not None else []) + ["$A"] + (["EOS"] if eos is not None else [])
        specials = ([("BOS", bos)] if bos is not None else []) + ([("EOS", eos)] if eos is not None else [])
        tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=specials)
    return tok
