"""Bad tokenizer.json / tokenizer_config.json files and bad command lines: a clear one-line error that
names the file and the field, and the documented exit code (docs/cli.md), never a crash or other ids."""
import json
import os

import pytest

from tokenizer import harness


@pytest.fixture
def base(tmp_path):
    """A valid byte-level tokenizer.json (and one with byte_fallback) to break in each test."""
    harness.require_binary()
    out = {}
    for style in ("gpt2", "sentencepiece"):
        d = tmp_path / ("src_" + style)
        d.mkdir()
        p = harness.run([str(d), "--write-synth", style, "--vocab-size", "400"])
        assert p.returncode == 0, p.stderr
        out[style] = json.loads((d / "tokenizer.json").read_text())
    return out


def _check(tmp_path, doc, code, *needles, config=None, raw=None):
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    (d / "tokenizer.json").write_text(raw if raw is not None else json.dumps(doc))
    if config is not None:
        (d / "tokenizer_config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    p = harness.run([str(d), "--text", "hello"])
    err = p.stderr.decode()
    assert p.returncode == code, (p.returncode, err)
    assert err.count("\n") == 1 and err.startswith("logitlens tokenize: "), err
    for n in needles:
        assert n in err, "%r not in %r" % (n, err)
    return err


def test_malformed_json(tmp_path, base):
    _check(tmp_path, None, 3, "tokenizer.json", "malformed JSON", raw='{"model": {"type": "BPE", "vocab": {')


def test_missing_file(tmp_path):
    harness.require_binary()
    p = harness.run([str(tmp_path / "nowhere"), "--text", "x"])
    assert p.returncode == 4 and "cannot read" in p.stderr.decode() and "tokenizer.json" in p.stderr.decode()


def test_top_level_not_object(tmp_path, base):
    _check(tmp_path, None, 3, "expected a JSON object", raw="[1, 2]")


@pytest.mark.parametrize("mtype", ["WordPiece", "Unigram", "WordLevel"])
def test_unknown_model_type(tmp_path, base, mtype):
    doc = base["gpt2"]
    doc["model"]["type"] = mtype
    _check(tmp_path, doc, 3, "model.type '%s' is not supported" % mtype)


def test_merge_names_unknown_token(tmp_path, base):
    doc = base["gpt2"]
    doc["model"]["merges"][3] = "qqq zz"
    _check(tmp_path, doc, 3, "model.merges[3]", "'qqq'", "not in model.vocab")


def test_merge_result_not_in_vocab(tmp_path, base):
    doc = base["gpt2"]
    first = doc["model"]["merges"][0]
    del doc["model"]["vocab"][first.replace(" ", "")]
    _check(tmp_path, doc, 3, "model.merges[0] produces")


def test_merge_bad_format(tmp_path, base):
    doc = base["gpt2"]
    doc["model"]["merges"][1] = "abc"
    _check(tmp_path, doc, 3, "model.merges[1]", "two tokens")


def test_missing_byte_level_token_loads(tmp_path, base):
    """A byte-level vocabulary without some byte tokens is not an error (tokenizers drops those bytes;
    tests/test_tokenizer_bytelevel_holes.py checks the ids)."""
    doc = base["gpt2"]
    del doc["model"]["vocab"]["ā"]  # byte 0x01
    doc["model"]["merges"] = [m for m in doc["model"]["merges"] if "ā" not in m]
    d = tmp_path / "holes"
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps(doc))
    p = harness.run([str(d), "--text", "a\x01b"])
    assert p.returncode == 0 and p.stdout.decode().startswith("2 tokens:"), (p.returncode, p.stderr)


def test_missing_byte_fallback_token(tmp_path, base):
    doc = base["sentencepiece"]
    del doc["model"]["vocab"]["<0x41>"]
    _check(tmp_path, doc, 3, "byte_fallback", "<0x41>")


def test_vocab_id_not_integer(tmp_path, base):
    doc = base["gpt2"]
    doc["model"]["vocab"]["!"] = "one"
    _check(tmp_path, doc, 3, "model.vocab['!']", "integer id")


@pytest.mark.parametrize("section,obj,needle", [
    ("normalizer", {"type": "Precompiled", "precompiled_charsmap": "AA=="}, "normalizer type 'Precompiled' is not supported"),
    ("normalizer", {"type": "BertNormalizer"}, "normalizer type 'BertNormalizer'"),
    ("pre_tokenizer", {"type": "UnicodeScripts"}, "pre-tokenizer type 'UnicodeScripts' is not supported"),
    ("decoder", {"type": "WordPiece", "prefix": "##"}, "decoder type 'WordPiece' is not supported"),
    ("decoder", {"type": "CTC"}, "decoder type 'CTC'"),
    ("post_processor", {"type": "Funky"}, "post_processor type 'Funky' is not supported"),
    ("pre_tokenizer", {"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, "cannot compile regex"),
    ("pre_tokenizer", {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways"}, "field 'behavior'"),
    ("pre_tokenizer", {"type": "Split", "pattern": {"Glob": "a"}, "behavior": "Isolated"}, "field 'pattern'"),
    ("pre_tokenizer", {"type": "Metaspace", "replacement": "ab"}, "field 'replacement'"),
    ("pre_tokenizer", {"type": "Metaspace", "prepend_scheme": "sometimes"}, "prepend_scheme"),
    ("normalizer", {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Nope"}]}, "normalizer.normalizers[1]"),
    ("truncation", {"max_length": 16, "strategy": "LongestFirst", "stride": 0, "direction": "Right"}, "'truncation'"),
    ("padding", {"strategy": {"Fixed": 8}, "pad_id": 0}, "'padding'"),
])
def test_unsupported_features(tmp_path, base, section, obj, needle):
    doc = base["gpt2"]
    doc[section] = obj
    _check(tmp_path, doc, 3, "tokenizer.json", needle)


def test_dropout(tmp_path, base):
    doc = base["gpt2"]
    doc["model"]["dropout"] = 0.1
    _check(tmp_path, doc, 3, "model.dropout")


def test_nul_in_token(tmp_path, base):
    doc = base["gpt2"]
    doc["model"]["vocab"]["a\u0000b"] = 399
    _check(tmp_path, doc, 3, "NUL character")


def test_bad_template(tmp_path, base):
    doc = base["gpt2"]
    doc["post_processor"] = {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}},
                                                                      {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [], "special_tokens": {}}
    _check(tmp_path, doc, 3, "special_tokens has no entry '<x>'")


def test_bad_config(tmp_path, base):
    _check(tmp_path, base["gpt2"], 3, "tokenizer_config.json", "malformed JSON", config="{oops")


def test_config_unknown_bos(tmp_path, base):
    _check(tmp_path, base["gpt2"], 3, "tokenizer_config.json", "bos_token '<nope>'",
           config={"add_bos_token": True, "bos_token": "<nope>"})


def test_config_bos_flag_type(tmp_path, base):
    _check(tmp_path, base["gpt2"], 3, "add_bos_token", config={"add_bos_token": "yes"})


@pytest.mark.parametrize("args,code,needle", [
    ([], 2, "expected DIR"),
    (["--bogus"], 2, "unknown option '--bogus'"),
    (["d", "--text"], 2, "--text needs a value"),
    (["d", "--text", "a", "--vocab"], 2, "exactly one of"),
    (["a", "b", "--vocab"], 2, "unexpected argument 'b'"),
])
def test_usage_errors(args, code, needle):
    harness.require_binary()
    p = harness.run(args)
    assert p.returncode == code and needle in p.stderr.decode(), p.stderr


def test_batch_errors(tmp_path, base):
    d = tmp_path / "ok"
    d.mkdir()
    (d / "tokenizer.json").write_text(json.dumps(base["gpt2"]))
    cases = [("--hex", "abc\n", "line 1: expected an even number of hex digits"),
             ("--hex", "00\nzz\n", "line 2: expected an even number of hex digits"),
             (None, '"ok"\n42\n', "line 2: expected a JSON string"),
             (None, '"a\\u0000b"\n', "\\u0000")]
    for flag, content, needle in cases:
        f = tmp_path / "in.txt"
        f.write_text(content)
        p = harness.run([str(d), "--batch", str(f)] + ([flag] if flag else []))
        assert p.returncode == 3 and needle in p.stderr.decode(), (content, p.stderr)
    f = tmp_path / "ids.jsonl"
    f.write_text("[1, 2]\n[1, \"x\"]\n")
    p = harness.run([str(d), "--decode", str(f)])
    assert p.returncode == 3 and "line 2: expected a JSON array of integer ids" in p.stderr.decode()
    p = harness.run([str(d), "--batch", str(tmp_path / "missing.txt")])
    assert p.returncode == 4 and "cannot open" in p.stderr.decode()


@pytest.mark.parametrize("cls_id", [2.2e29, -1, 2**31])
def test_pair_processor_id_out_of_range(tmp_path, base, cls_id):
    """RobertaProcessing/BertProcessing ids outside int32 are refused (2.2e29 once reached a float-to-int
    conversion: found by fuzz_tokenizer_load)."""
    doc = base["gpt2"]
    doc["post_processor"] = {"type": "RobertaProcessing", "cls": ["<s>", cls_id], "sep": ["</s>", 2]}
    _check(tmp_path, doc, 3, "post_processor.cls must be [token, id]")
