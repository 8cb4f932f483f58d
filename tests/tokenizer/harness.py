"""Runs `logitlens tokenize` in batch mode and compares its results with Hugging Face `tokenizers`."""
import json
import os
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def binary():
    return os.environ.get("LOGITLENS_BIN", os.path.join(ROOT, "build", "logitlens"))


def run(args, **kw):
    return subprocess.run([binary(), "tokenize"] + list(args), capture_output=True, **kw)


def _model_args(directory):
    """A .gguf is given with --model (the spelling the docs show for GGUF files); a directory positionally."""
    return ["--model", directory] if str(directory).endswith(".gguf") else [directory]


def encode(directory, inputs, add_special=True):
    """Our ids for each input (bytes), through --batch --hex; directory: a tokenizer.json directory or a .gguf."""
    with tempfile.NamedTemporaryFile("w", suffix=".hex", delete=False) as f:
        for b in inputs:
            f.write(b.hex() + "\n")
        path = f.name
    try:
        args = _model_args(directory) + ["--batch", path, "--hex"] + ([] if add_special else ["--no-special"])
        p = run(args)
        if p.returncode != 0:
            raise AssertionError("logitlens tokenize failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")))
        lines = p.stdout.decode().split("\n")
        assert lines[-1] == "" and len(lines) == len(inputs) + 1, "expected %d output lines" % len(inputs)
        return [[int(x) for x in line.split()] for line in lines[:-1]]
    finally:
        os.unlink(path)


def decode(directory, id_lists):
    """Our decoded text (bytes) for each id list, through --decode."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for ids in id_lists:
            f.write(json.dumps(list(ids)) + "\n")
        path = f.name
    try:
        p = run(_model_args(directory) + ["--decode", path])
        if p.returncode != 0:
            raise AssertionError("logitlens tokenize --decode failed: %s" % p.stderr.decode(errors="replace"))
        lines = p.stdout.decode().split("\n")
        assert len(lines) == len(id_lists) + 1
        return [bytes.fromhex(line) for line in lines[:-1]]
    finally:
        os.unlink(path)


def hf_encode(tok, inputs, add_special=True):
    """HF ids for each input; invalid UTF-8 is decoded with errors="replace" first (the documented mapping)."""
    texts = [b.decode("utf-8", errors="replace") for b in inputs]
    return [e.ids for e in tok.encode_batch(texts, add_special_tokens=add_special)]


def first_difference(tok, inputs, ours, theirs):
    """None when all equal, else a readable description of the first input whose ids differ."""
    bad = [i for i in range(len(inputs)) if ours[i] != theirs[i]]
    if not bad:
        return None
    i = bad[0]
    o, t = ours[i], theirs[i]
    k = next((j for j in range(min(len(o), len(t))) if o[j] != t[j]), min(len(o), len(t)))
    show = lambda ids: [tok.id_to_token(x) for x in ids[max(0, k - 3):k + 4]]
    return ("%d of %d inputs differ; first: input #%d %r\n  first differing position %d\n  ours:   %s %s\n"
            "  theirs: %s %s" % (len(bad), len(inputs), i, inputs[i][:300], k, o[max(0, k - 3):k + 4], show(o),
                                 t[max(0, k - 3):k + 4], show(t)))


def require_binary():
    """Skips the calling test when the engine under test is not configured."""
    import pytest
    if not os.environ.get("LOGITLENS_BIN"):
        pytest.skip("LOGITLENS_BIN is not set (make test-py sets it to build/logitlens)")
    if not os.path.exists(binary()):
        raise AssertionError("LOGITLENS_BIN=%s does not exist; run make first" % binary())
