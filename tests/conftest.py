"""Shared fixtures of the end-to-end tests.

- `ll`: the engine under test (LOGITLENS_BIN): run it with a timeout, synthesize models (cached for the
  whole session), run the lens on a model (cached by arguments). Tests that need the engine skip with
  a clear reason when LOGITLENS_BIN is unset.
- `ref_model(dir)`: the float64 reference (tests/reference) loaded once per model directory.
- MODELS: the synthesized model variants the reference tests cover, by name.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reference import hf_model  # noqa: E402

BIN_ENV = "LOGITLENS_BIN"


def _bin_path():
    return os.environ.get(BIN_ENV, "")


def _is_san(path):
    return "build-san" in path or os.environ.get("LOGITLENS_SAN") == "1"


# Sanitizer builds run ~3x slower; give them headroom rather than flaky timeouts.
TIME_SCALE = 4 if _is_san(_bin_path()) else 1
DEFAULT_TIMEOUT = 60

# Optional: LOGITLENS_TEST_BACKEND=cpu|cuda runs every lens run on that backend (default: the
# engine's own default, auto).
TEST_BACKEND = os.environ.get("LOGITLENS_TEST_BACKEND", "")

# The model variants compared with the reference. Sizes are deliberately odd (d not a multiple of 8,
# vocabularies that are not powers of two) and small enough for the whole suite to stay fast under
# ASan. tokenizer none: these tests feed token ids and must not depend on the tokenizer.
MODELS = {
    # gpt2: tied unembedding, learned positions, Conv1D weights
    "gpt2": dict(arch="gpt2", layers=3, d_model=44, heads=4, vocab=397, ctx=32, dtype="f32"),
    # gpt2 stored in f16, split over 3 shards with an index
    "gpt2-f16-shards": dict(arch="gpt2", layers=2, d_model=48, heads=3, vocab=301, ctx=24, dtype="f16",
                            shards=3),
    # gpt_neox, parallel residual, half the head rotated, untied
    "neox-parallel": dict(arch="gpt_neox", layers=2, d_model=60, heads=5, vocab=397, ctx=32, dtype="f32",
                          parallel_residual=1, rotary_pct=0.5),
    # gpt_neox, sequential residual, a quarter rotated, bf16, small rope base
    "neox-sequential-bf16": dict(arch="gpt_neox", layers=3, d_model=48, heads=3, vocab=311, ctx=32,
                                 dtype="bf16", parallel_residual=0, rotary_pct=0.25, rope_theta=500),
    # llama: GQA 4:2, head_dim 16 != 44/4, llama3 rope scaling (v4 spelling), untied, bf16
    "llama-gqa-llama3-v4": dict(arch="llama", layers=2, d_model=44, heads=4, kv_heads=2, head_dim=16,
                                vocab=397, ctx=32, dtype="bf16", tied=0, rope_scaling="llama3",
                                rope_style="v4", rope_theta=500000),
    # llama: GQA 5:1, llama3 scaling in the v5 rope_parameters spelling, tied, 3 shards
    "llama-llama3-v5-tied-shards": dict(arch="llama", layers=3, d_model=40, heads=5, kv_heads=1, vocab=389,
                                        ctx=32, dtype="f32", tied=1, rope_scaling="llama3", rope_style="v5",
                                        rope_theta=500000, shards=3),
    # llama: plain rope, d = 70, f16
    "llama-f16-d70": dict(arch="llama", layers=2, d_model=70, heads=5, vocab=433, ctx=32, dtype="f16",
                          tied=0),
    # qwen2: q/k/v biases, GQA 7:1, f16
    "qwen2-bias-f16": dict(arch="qwen2", layers=2, d_model=56, heads=7, kv_heads=1, vocab=401, ctx=32,
                           dtype="f16", qkv_bias=1, rope_theta=1000),
    # mistral: GQA 4:2
    "mistral": dict(arch="mistral", layers=2, d_model=64, heads=4, kv_heads=2, vocab=397, ctx=32,
                    dtype="f32"),
    # mistral with a sliding window shorter than most prompts (and 3 layers, so that the window's reach
    # compounds across layers)
    "mistral-window": dict(arch="mistral", layers=3, d_model=64, heads=4, kv_heads=2, vocab=397, ctx=32,
                           dtype="f32", sliding_window=5),
}

# Several prompts of different lengths in one run (1 token, a full-length one, ...) and their explicit
# answers (None: the last position has no target).
PROMPT_LENGTHS = (1, 7, 20, 3)


def make_prompts(vocab, seed=0, lengths=PROMPT_LENGTHS):
    """Deterministic prompts of the given lengths and answers (every other prompt has one)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    prompts = [[int(t) for t in rng.integers(0, vocab, size=n)] for n in lengths]
    answers = [int(rng.integers(0, vocab)) if j % 2 == 0 else None for j in range(len(lengths))]
    return prompts, answers


def write_jsonl(path, prompts, answers=None):
    with open(path, "w", encoding="utf-8") as f:
        for j, toks in enumerate(prompts):
            obj = {"tokens": list(toks)}
            if answers is not None and answers[j] is not None:
                obj["target_id"] = int(answers[j])
            f.write(json.dumps(obj) + "\n")


class RunResult:
    def __init__(self, cmd, rc, stdout, stderr):
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def describe(self):
        return "command: %s\nexit code: %s\nstderr:\n%s" % (" ".join(self.cmd), self.rc, self.stderr[-4000:])


def _flag(key):
    return "--" + key.replace("_", "-")


class Engine:
    """The executable under test, plus session-wide caches of synthesized models and lens runs."""

    def __init__(self, path, root):
        self.path = path
        self.root = root  # a session temporary directory
        self._models = {}
        self._runs = {}
        self._n = 0

    def run(self, args, timeout=DEFAULT_TIMEOUT, cwd=None):
        """Runs the executable; fails the test (never hangs it) when it exceeds timeout (scaled under
        ASan) or is killed by a signal."""
        cmd = [self.path] + [str(a) for a in args]
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=timeout * TIME_SCALE, cwd=cwd)
        except subprocess.TimeoutExpired:
            pytest.fail("logitlens hung (no exit within %ds): %s" % (timeout * TIME_SCALE, " ".join(cmd)))
        r = RunResult(cmd, p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))
        if r.rc < 0 or r.rc >= 128:
            pytest.fail("logitlens crashed (signal or abnormal exit)\n" + r.describe())
        return r

    def tmpdir(self, prefix):
        self._n += 1
        d = os.path.join(self.root, "%s-%d" % (prefix, self._n))
        os.makedirs(d)
        return d

    def try_synth(self, name=None, **opts):
        """synth, but None instead of a failure (for optional features such as the tokenizer)."""
        try:
            return self.synth(name, **opts)
        except pytest.fail.Exception:
            return None

    def synth(self, name=None, **opts):
        """Synthesizes a model (cached per option set); name picks one of MODELS. tokenizer defaults
        to none. Returns the directory."""
        if name is not None:
            opts = dict(MODELS[name], **opts)
        opts.setdefault("tokenizer", "none")
        opts.setdefault("seed", 1)
        key = json.dumps(opts, sort_keys=True)
        if key not in self._models:
            label = (name or opts["arch"]) + "-" + hashlib.sha1(key.encode()).hexdigest()[:8]
            os.makedirs(os.path.join(self.root, "models"), exist_ok=True)
            out = os.path.join(self.root, "models", label)
            args = ["synth", "--arch", opts["arch"], "--out", out]
            for k, v in sorted(opts.items()):
                if k != "arch":
                    args += [_flag(k), v]
            r = self.run(args, timeout=120)
            if r.rc != 0:
                pytest.fail("logitlens synth failed\n" + r.describe())
            self._models[key] = out
        return self._models[key]

    def copy_model(self, model_dir, prefix="model"):
        """A private copy of a model directory, to modify."""
        d = self.tmpdir(prefix)
        shutil.rmtree(d)
        shutil.copytree(model_dir, d)
        return d

    def lens(self, model_dir, prompts, answers=None, args=(), cache=True):
        """Runs `logitlens run` on pre-tokenized prompts (a .jsonl file) and returns the result path.
        Fails the test with the engine's stderr when it does not succeed."""
        key = json.dumps([model_dir, prompts, answers, list(args)])
        if cache and key in self._runs:
            return self._runs[key]
        d = self.tmpdir("run")
        pf = os.path.join(d, "prompts.jsonl")
        write_jsonl(pf, prompts, answers)
        out = os.path.join(d, "out.h5")
        full = ["run", "--model", model_dir, "--prompts", pf, "--out", out, "--threads", "2", "--quiet"]
        if TEST_BACKEND:
            full += ["--backend", TEST_BACKEND]
        full += list(args)
        r = self.run(full, timeout=120)
        if r.rc != 0 or not os.path.exists(out):
            pytest.fail("logitlens run failed\n" + r.describe())
        if cache:
            self._runs[key] = out
        return out


@pytest.fixture(scope="session")
def ll(tmp_path_factory):
    path = _bin_path()
    if not path:
        pytest.skip("%s is not set: build the engine and run the suite with `make test-py` (or set %s to "
                    "the logitlens executable)" % (BIN_ENV, BIN_ENV))
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("%s=%s is not an executable file" % (BIN_ENV, path))
    return Engine(os.path.abspath(path), str(tmp_path_factory.mktemp("logitlens")))


_REF_CACHE = {}


@pytest.fixture(scope="session")
def ref_model():
    """ref_model(dir) -> the float64 reference model of that directory (loaded once)."""

    def get(model_dir):
        if model_dir not in _REF_CACHE:
            _REF_CACHE[model_dir] = hf_model.load(model_dir)
        return _REF_CACHE[model_dir]

    return get


# The run every reference comparison uses: every point, hidden states and full probability rows saved.
STANDARD_ARGS = ("--points", "embed,mid,post", "--save-hidden", "--save-probs", "all", "--topk", "5")
TOPK = 5


def read_result(path):
    """A result file as a dict of numpy arrays (strings decoded) plus `attrs`."""
    import h5py
    import numpy as np

    out = {}
    with h5py.File(path, "r") as f:
        for name, ds in f.items():
            if not isinstance(ds, h5py.Dataset):
                continue
            if ds.dtype.kind in ("O", "S", "U") and h5py.check_string_dtype(ds.dtype) is not None:
                out[name] = np.array([s for s in ds.asstr()[()]], dtype=object)
            elif h5py.check_vlen_dtype(ds.dtype) is not None:
                out[name] = list(ds[()])
            else:
                out[name] = ds[()]
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    if "points" in out:
        out["points"] = [str(p) for p in out["points"]]
    return out


class LensCase:
    """One model run through the engine with STANDARD_ARGS and through the reference."""

    def __init__(self, name, model_dir, prompts, answers, result, ref, model):
        self.name = name
        self.model_dir = model_dir
        self.prompts = prompts
        self.answers = answers
        self.res = result
        self.ref = ref
        self.model = model


_CASES = {}


@pytest.fixture(scope="session")
def lens_case(ll, ref_model):
    """lens_case(model name, [model_dir]) -> LensCase, computed once per session."""
    from reference import lens

    def get(name, model_dir=None):
        key = (name, model_dir)
        if key not in _CASES:
            d = model_dir or ll.synth(name)
            m = ref_model(d)
            prompts, answers = make_prompts(m.vocab, seed=len(name))
            out = ll.lens(d, prompts, answers, STANDARD_ARGS)
            _CASES[key] = LensCase(name, d, prompts, answers, read_result(out),
                                   lens.run_reference(m, prompts, answers, TOPK), m)
        return _CASES[key]

    return get
