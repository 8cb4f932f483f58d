"""Every malformed input is refused cleanly: the documented exit code (docs/cli.md: 2 bad command line,
3 bad input, 4 cannot read or write a file), one line on stderr naming the offending file and the
field or tensor, no output file and no temporary leftovers, and never a crash or a hang.

Bad checkpoints are built from a good synthesized model with the reference's own safetensors writer."""

import json
import os
import struct

import pytest

from conftest import write_jsonl
from reference import safetensors_io as st

ST = "model.safetensors"
# The good model every corruption starts from (3 layers, d 44, V 397, context 32) and a llama one for
# the llama-family config fields.
GPT2 = dict(arch="gpt2", layers=3, d_model=44, heads=4, vocab=397, ctx=32, dtype="f32")
LLAMA = dict(arch="llama", layers=2, d_model=40, heads=4, kv_heads=2, vocab=301, ctx=32, dtype="f32")
V = GPT2["vocab"]
CTX = GPT2["ctx"]
GOOD_PROMPT = [[1, 2, 3, 4, 5]]


def _shape_forms(shape):
    """Ways a message may write a shape: [44,176], (44, 176), 44x176."""
    return ["[%s]" % ",".join(map(str, shape)), "(%s)" % ",".join(map(str, shape)), "x".join(map(str, shape))]


def expect_refusal(r, codes, out_dir, names=(), any_of=(), ci_names=()):
    """The common contract of every error case."""
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    problems = []
    if r.rc not in codes:
        problems.append("exit code %d, expected %s" % (r.rc, " or ".join(map(str, sorted(codes)))))
    if len(lines) != 1:
        problems.append("stderr has %d lines, expected exactly one" % len(lines))
    msg = " ".join(lines)
    squeezed = msg.replace(" ", "")
    for n in names:
        if n not in msg:
            problems.append("message does not name %r" % n)
    for n in ci_names:
        if n.lower() not in msg.lower():
            problems.append("message does not name %r" % n)
    for group in any_of:
        if not any(g in msg or g.replace(" ", "") in squeezed for g in group):
            problems.append("message names none of %s" % list(group))
    if out_dir is not None:
        left = sorted(os.listdir(out_dir))
        if left:
            problems.append("output directory not empty afterwards: %s" % left)
    if os.environ.get("LOGITLENS_TEST_SHOW_ERRORS"):
        print("exit %d: %s" % (r.rc, msg))
    if problems:
        raise AssertionError("; ".join(problems) + "\n" + r.describe())


def run_lens(ll, model_dir, prompts=GOOD_PROMPT, extra=(), prompts_file=None, out=None):
    """Runs `logitlens run` with its output in a fresh empty directory; returns (result, out_dir)."""
    pdir = ll.tmpdir("prompts")
    if prompts_file is None:
        prompts_file = os.path.join(pdir, "prompts.jsonl")
        write_jsonl(prompts_file, prompts)
    out_dir = None
    if out is None:
        out_dir = ll.tmpdir("out")
        out = os.path.join(out_dir, "result.h5")
    args = ["run", "--model", model_dir, "--prompts", prompts_file, "--out", out, "--threads", "2", "--quiet"]
    return ll.run(args + list(extra)), out_dir


@pytest.fixture(scope="module")
def gpt2(ll):
    return ll.synth(**GPT2)


def _rewrite(d, edit_tensors=None, header_override=None):
    """Reads d/model.safetensors, lets edit_tensors(dict) change tensors, and writes it back (packed)."""
    path = os.path.join(d, ST)
    raw, meta = st.read_raw(path)
    if edit_tensors is not None:
        raw = edit_tensors(raw) or raw
    st.write_raw(path, raw, meta, header_override=header_override)
    return raw


# ---- sanity: the good model runs (otherwise every case below proves nothing) -----------------------

def test_good_model_runs(ll, gpt2):
    r, out_dir = run_lens(ll, gpt2)
    assert r.rc == 0, r.describe()
    assert os.listdir(out_dir) == ["result.h5"], os.listdir(out_dir)


# ---- checkpoint files -------------------------------------------------------------------------------

def test_missing_safetensors(ll, gpt2):
    d = ll.copy_model(gpt2)
    os.remove(os.path.join(d, ST))
    r, out = run_lens(ll, d)
    expect_refusal(r, {3, 4}, out, names=[ST])


def test_missing_config(ll, gpt2):
    d = ll.copy_model(gpt2)
    os.remove(os.path.join(d, "config.json"))
    r, out = run_lens(ll, d)
    expect_refusal(r, {3, 4}, out, names=["config.json"])


def test_truncated_safetensors(ll, gpt2):
    d = ll.copy_model(gpt2)
    p = os.path.join(d, ST)
    size = os.path.getsize(p)
    with open(p, "r+b") as f:
        f.truncate(size - 100)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST])


@pytest.mark.parametrize("n", [2 ** 40, 2 ** 64 - 1, 0])
def test_header_length_absurd(ll, gpt2, n):
    d = ll.copy_model(gpt2)
    with open(os.path.join(d, ST), "r+b") as f:
        f.write(struct.pack("<Q", n))
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST])


def test_file_shorter_than_header_length(ll, gpt2):
    d = ll.copy_model(gpt2)
    with open(os.path.join(d, ST), "wb") as f:
        f.write(b"\x10\x00\x00")
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST])


def test_header_json_malformed(ll, gpt2):
    d = ll.copy_model(gpt2)
    p = os.path.join(d, ST)
    with open(p, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = data[8:8 + n]
    i = header.index(b'"')  # first key's opening quote: the JSON no longer parses, the length is unchanged
    header[i:i + 1] = b"#"
    data[8:8 + n] = header
    with open(p, "wb") as f:
        f.write(data)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST])


def test_header_entry_malformed(ll, gpt2):
    """A tensor entry with a shape that is not a list of non-negative integers."""
    d = ll.copy_model(gpt2)

    def edit(h):
        h["ln_f.weight"]["shape"] = ["44"]
    _rewrite(d, header_override=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST, "ln_f.weight"])


@pytest.mark.parametrize("empty_between", [False, True])
def test_offsets_overlapping(ll, gpt2, empty_between):
    """b starts inside a; with empty_between, an empty tensor placed between them must not hide it."""
    d = ll.copy_model(gpt2)
    state = {}

    def edit(h):
        names = [n for n in h if n != "__metadata__"]
        a, b = names[0], names[1]
        ab, ae = h[a]["data_offsets"]
        bb, be = h[b]["data_offsets"]
        h[b]["data_offsets"] = [ab + 8, ab + 8 + (be - bb)]  # b now starts inside a
        if empty_between:
            h["zz.empty"] = {"dtype": "F32", "shape": [0], "data_offsets": [ab + 4, ab + 4]}
        state["names"] = (a, b)
    _rewrite(d, header_override=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST, "overlapping"], any_of=[state["names"]])


def test_offsets_past_end(ll, gpt2):
    d = ll.copy_model(gpt2)

    def edit(h):
        b, e = h["h.2.mlp.c_proj.bias"]["data_offsets"]
        h["h.2.mlp.c_proj.bias"]["data_offsets"] = [b + 10 ** 6, e + 10 ** 6]
    _rewrite(d, header_override=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST, "h.2.mlp.c_proj.bias"])


def test_byte_length_mismatches_shape(ll, gpt2):
    """F32 data declared as F16: the byte range holds twice the bytes the shape needs."""
    d = ll.copy_model(gpt2)

    def edit(h):
        h["h.0.attn.c_proj.weight"]["dtype"] = "F16"
    _rewrite(d, header_override=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[ST, "h.0.attn.c_proj.weight"])


@pytest.mark.parametrize("dtype", ["I64", "F64", "I8"])
def test_unsupported_dtype(ll, gpt2, dtype):
    d = ll.copy_model(gpt2)
    name = "h.1.attn.c_attn.weight"

    def edit(raw):
        a = raw[name].to_float64()
        data = st.encode(a, dtype) if dtype != "I8" else (a * 0).astype("i1").tobytes()
        raw[name] = st.RawTensor(dtype, a.shape, data)
    _rewrite(d, edit_tensors=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[name, dtype])


def test_shape_mismatch(ll, gpt2):
    """c_fc stored transposed ([4d, d] instead of Conv1D's [d, 4d]): same bytes, wrong shape."""
    d = ll.copy_model(gpt2)
    name = "h.1.mlp.c_fc.weight"
    dm = GPT2["d_model"]

    def edit(raw):
        t = raw[name]
        assert t.shape == [dm, 4 * dm], "synth wrote %s with shape %s" % (name, t.shape)
        raw[name] = st.RawTensor(t.dtype, [4 * dm, dm], t.data)
    _rewrite(d, edit_tensors=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[name], any_of=[_shape_forms([4 * dm, dm]), _shape_forms([dm, 4 * dm])])
    msg = r.stderr.replace(" ", "")
    assert any(f in msg for f in _shape_forms([4 * dm, dm])) and any(f in msg for f in _shape_forms([dm, 4 * dm])), \
        "the message must give both the tensor's shape and the expected one: " + r.stderr


@pytest.mark.parametrize("name", ["h.1.mlp.c_fc.bias", "wpe.weight", "ln_f.weight"])
def test_missing_tensor(ll, gpt2, name):
    d = ll.copy_model(gpt2)

    def edit(raw):
        del raw[name]
    _rewrite(d, edit_tensors=edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[name])


def test_sharded_index_names_missing_shard(ll):
    src = ll.synth(**dict(GPT2, shards=3))
    d = ll.copy_model(src)
    with open(os.path.join(d, st.INDEX_NAME)) as f:
        shards = sorted(set(json.load(f)["weight_map"].values()))
    assert len(shards) == 3, "synth --shards 3 wrote %s" % shards
    os.remove(os.path.join(d, shards[1]))
    r, out = run_lens(ll, d)
    expect_refusal(r, {3, 4}, out, names=[shards[1]])


def test_sharded_index_malformed(ll):
    src = ll.synth(**dict(GPT2, shards=3))
    d = ll.copy_model(src)
    with open(os.path.join(d, st.INDEX_NAME), "w") as f:
        f.write('{"weight_map": {"wte.weight": ')
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=[st.INDEX_NAME])


# ---- config.json ------------------------------------------------------------------------------------

def _edit_config(d, fn):
    p = os.path.join(d, "config.json")
    with open(p) as f:
        cfg = json.load(f)
    cfg = fn(cfg) or cfg
    with open(p, "w") as f:
        json.dump(cfg, f)


def test_unknown_architecture(ll, gpt2):
    d = ll.copy_model(gpt2)

    def edit(c):
        c["model_type"] = "mamba"
        c["architectures"] = ["MambaForCausalLM"]
    _edit_config(d, edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=["config.json"], ci_names=["mamba"])


def test_malformed_config(ll, gpt2):
    d = ll.copy_model(gpt2)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"model_type": "gpt2", "n_embd": 44,,}')
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=["config.json"])


@pytest.mark.parametrize("model,field", [("gpt2", "n_embd"), ("gpt2", "n_layer"), ("gpt2", "vocab_size"),
                                         ("llama", "hidden_size"), ("llama", "num_attention_heads"),
                                         ("llama", "intermediate_size")])
def test_config_missing_field(ll, model, field):
    d = ll.copy_model(ll.synth(**(GPT2 if model == "gpt2" else LLAMA)))

    def edit(c):
        assert field in c, "synth config.json has no %s: %s" % (field, c)
        del c[field]
    _edit_config(d, edit)
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=["config.json", field])


@pytest.mark.parametrize("field,value", [("n_embd", "44"), ("n_head", 0), ("n_head", 5), ("n_layer", -1)])
def test_config_bad_value(ll, gpt2, field, value):
    """A field of the wrong type, zero/negative, or heads not dividing the width."""
    d = ll.copy_model(gpt2)
    _edit_config(d, lambda c: c.__setitem__(field, value))
    r, out = run_lens(ll, d)
    expect_refusal(r, {3}, out, names=["config.json", field])


def test_qwen2_sliding_window_longer_prompt_refused(ll):
    """qwen2's use_sliding_window (a window on the layers from max_window_layers on) is not implemented:
    a prompt within the window runs (there it equals full attention), a longer one is refused by name."""
    d = ll.copy_model(ll.synth(arch="qwen2", layers=2, d_model=32, heads=4, kv_heads=2, vocab=V, ctx=CTX))

    def edit(c):
        c.update(use_sliding_window=True, sliding_window=4, max_window_layers=1)
    _edit_config(d, edit)
    r, out = run_lens(ll, d, prompts=[[1, 2, 3, 4]])
    assert r.rc == 0, r.describe()
    r, out = run_lens(ll, d, prompts=[[1, 2, 3, 4, 5]])
    expect_refusal(r, {3}, out, names=["sliding_window", "use_sliding_window", "5"])


# ---- prompts ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["id_equal_vocab", "id_huge", "negative_id", "empty_tokens", "too_long",
                                  "not_json", "no_prompt_field", "tokens_not_ints", "target_out_of_range"])
def test_bad_jsonl_prompt(ll, gpt2, case):
    lines = {
        "id_equal_vocab": ([json.dumps({"tokens": [1, 2, V]})], [str(V)]),
        "id_huge": ([json.dumps({"tokens": [1, 2 ** 40]})], []),
        "negative_id": ([json.dumps({"tokens": [1, -1, 2]})], ["-1"]),
        "empty_tokens": ([json.dumps({"tokens": [1]}), json.dumps({"tokens": []})], []),
        "too_long": ([json.dumps({"tokens": [1] * (CTX + 1)})], []),
        "not_json": ([json.dumps({"tokens": [1]}), '{"tokens": [1, 2'], []),
        "no_prompt_field": ([json.dumps({"ids": [1, 2]})], []),
        "tokens_not_ints": ([json.dumps({"tokens": [1, "two"]})], []),
        "target_out_of_range": ([json.dumps({"tokens": [1, 2], "target_id": V + 5})], [str(V + 5)]),
    }[case]
    pdir = ll.tmpdir("prompts")
    pf = os.path.join(pdir, "bad-%s.jsonl" % case)
    with open(pf, "w") as f:
        f.write("\n".join(lines[0]) + "\n")
    r, out = run_lens(ll, gpt2, prompts_file=pf)
    any_of = [(str(CTX), str(CTX + 1))] if case == "too_long" else []
    expect_refusal(r, {3}, out, names=[os.path.basename(pf)] + lines[1], any_of=any_of)


@pytest.mark.parametrize("ids,needle", [(str(V), str(V)), ("1,-5,2", "-5"), ("", None), ("1,,x", None),
                                        (",".join(["1"] * (CTX + 1)), None)])
def test_bad_tokens_flag(ll, gpt2, ids, needle):
    out_dir = ll.tmpdir("out")
    r = ll.run(["run", "--model", gpt2, "--tokens", ids, "--out", os.path.join(out_dir, "r.h5"), "--quiet"])
    expect_refusal(r, {2, 3}, out_dir, names=[needle] if needle else [])


def test_missing_prompts_file(ll, gpt2):
    pf = os.path.join(ll.tmpdir("prompts"), "absent.jsonl")
    r, out = run_lens(ll, gpt2, prompts_file=pf)
    expect_refusal(r, {3, 4}, out, names=["absent.jsonl"])


# ---- output -----------------------------------------------------------------------------------------

def test_output_directory_missing(ll, gpt2):
    base = ll.tmpdir("out")
    r, _ = run_lens(ll, gpt2, out=os.path.join(base, "no", "such", "dir", "result.h5"))
    expect_refusal(r, {4}, base, any_of=[("result.h5", os.path.join("no", "such", "dir"))])


def test_output_under_a_regular_file(ll, gpt2):
    """ENOTDIR: fails for root too."""
    base = ll.tmpdir("out")
    f = os.path.join(base, "plain-file")
    with open(f, "w") as fh:
        fh.write("x")
    r, _ = run_lens(ll, gpt2, out=os.path.join(f, "result.h5"))
    expect_refusal(r, {4}, None, any_of=[("result.h5", "plain-file")])
    assert sorted(os.listdir(base)) == ["plain-file"], os.listdir(base)


def test_output_in_unwritable_filesystem(ll, gpt2):
    """/proc refuses new files whoever asks."""
    target = "/proc/logitlens-test-%d.h5" % os.getpid()
    r, _ = run_lens(ll, gpt2, out=target)
    expect_refusal(r, {4}, None, any_of=[(os.path.basename(target), "/proc")])
    assert not os.path.exists(target)


def test_output_is_a_directory(ll, gpt2):
    base = ll.tmpdir("out")
    os.makedirs(os.path.join(base, "result.h5"))
    r, _ = run_lens(ll, gpt2, out=os.path.join(base, "result.h5"))
    expect_refusal(r, {4}, None, names=["result.h5"])
    assert sorted(os.listdir(base)) == ["result.h5"] and not os.listdir(os.path.join(base, "result.h5"))


# ---- command line -----------------------------------------------------------------------------------

# (extra arguments, accepted exit codes, words of which the message must contain one)
BAD_COMMAND_LINES = [
    (["--topk", "0"], {2}, ["--topk"]),
    (["--topk", "-3"], {2}, ["--topk"]),
    (["--topk", "abc"], {2}, ["--topk"]),
    (["--topk", str(V + 1)], {2, 3}, ["--topk"]),  # larger than the vocabulary: known only with the model
    (["--layers", "a:b"], {2}, ["--layers"]),
    (["--layers", "0:3:0"], {2}, ["--layers"]),
    (["--layers", "0:3:1:1"], {2}, ["--layers"]),
    (["--layers", "1.5"], {2}, ["--layers"]),
    (["--layers", ""], {2}, ["--layers"]),
    (["--layers", "7"], {2, 3}, ["--layers"]),  # index beyond the 3 layers
    (["--points", "post", "--layers", "5:9"], {2, 3}, ["--layers", "--points"]),  # selects no point at all
    (["--points", "embed,final"], {2}, ["--points"]),
    (["--points", ""], {2}, ["--points"]),
    (["--save-probs", "sometimes"], {2}, ["--save-probs"]),
    (["--probs-vocab", "1,2"], {2}, ["--probs-vocab"]),  # without --save-probs
    (["--save-probs", "all", "--probs-vocab", str(V)], {2, 3}, ["--probs-vocab"]),
    (["--threads", "-1"], {2}, ["--threads"]),
    (["--batch-tokens", "0"], {2}, ["--batch-tokens"]),
    (["--backend", "tpu"], {2}, ["--backend", "tpu"]),
    (["--no-such-flag"], {2}, ["--no-such-flag"]),
    (["--topk"], {2}, ["--topk"]),  # value missing
]


@pytest.mark.parametrize("extra,codes,needles", BAD_COMMAND_LINES,
                         ids=["'%s'" % " ".join(e) for e, _, _ in BAD_COMMAND_LINES])
def test_bad_command_line(ll, gpt2, extra, codes, needles):
    r, out = run_lens(ll, gpt2, extra=extra)
    expect_refusal(r, codes, out, any_of=[needles])


def test_run_without_out(ll, gpt2):
    r = ll.run(["run", "--model", gpt2, "--tokens", "1,2", "--quiet"])
    expect_refusal(r, {2}, None, names=["--out"])


def test_run_without_prompts(ll, gpt2):
    out_dir = ll.tmpdir("out")
    r = ll.run(["run", "--model", gpt2, "--out", os.path.join(out_dir, "r.h5"), "--quiet"])
    expect_refusal(r, {2}, out_dir)


def test_unknown_command(ll):
    r = ll.run(["frobnicate"])
    expect_refusal(r, {2}, None, names=["frobnicate"])


def test_error_message_is_one_line_with_context():
    """The checker itself: a message on two lines or without the names is refused."""
    from conftest import RunResult

    good = RunResult(["x"], 3, "", "logitlens: safetensors model.safetensors: tensor 'a' shape [1,2]\n")
    expect_refusal(good, {3}, None, names=["model.safetensors", "a"], any_of=[_shape_forms([1, 2])])
    for bad, kw in ((RunResult(["x"], 3, "", "line one\nline two\n"), {}),
                    (RunResult(["x"], 4, "", "model.safetensors: bad\n"), {}),
                    (RunResult(["x"], 3, "", "bad\n"), {"names": ["model.safetensors"]})):
        with pytest.raises(AssertionError):
            expect_refusal(bad, {3}, None, **kw)
