"""`logitlens sweep` without SLURM (docs/sweeps.md): bad sweep files are refused with one line and nothing
written; plan writes the manifest, the job-array script, the shard files and each task's command; `run
--local -j 2` of two synthetic models x three prompt shards completes, `status` says so, and `merge` gives
per model a file whose datasets equal one `logitlens run` over all of that model's prompts; a failing task
is marked failed with its message while the others finish, and `retry` reruns only it.

What "equal" means here: every dataset of the merged file equals the single run's, bit for bit (the CPU
backend is deterministic for a given batch). Shards are 2 prompts of 6 tokens and batch_tokens is 12, so
the single run's batches are exactly the shards' batches. Root attributes are not compared: command_line
(the merge's), created (the first shard's) and model_path (the plan makes paths absolute) differ by design.
The SLURM side is tests/test_sweep_slurm.py.
"""

import glob
import json
import os
import shutil

import numpy as np
import pytest

from conftest import read_result, write_jsonl

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Two small models of different architectures (token-id prompts: no tokenizer needed).
MODEL_A = dict(arch="gpt2", layers=2, d_model=32, heads=2, vocab=97, ctx=16, dtype="f32")
MODEL_B = dict(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, vocab=101, ctx=16, dtype="f32")
PROMPT_LEN = 6
N_PROMPTS = 6
SHARD = 2
LENS_ARGS = ["--topk", "5", "--points", "embed,mid,post", "--save-probs", "last"]


def _prompts(seed=3):
    rng = np.random.default_rng(seed)
    prompts = [[int(t) for t in rng.integers(0, 90, size=PROMPT_LEN)] for _ in range(N_PROMPTS)]
    answers = [int(rng.integers(0, 90)) if j % 2 == 0 else None for j in range(N_PROMPTS)]
    return prompts, answers


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return str(path)


def _sweep_yaml(out, models, prompt_file, shard=SHARD, extra=""):
    lines = ["name: t", "output: %s" % out, "shard_size: %d" % shard, "models:"]
    for name, path in models:
        lines += ["  - name: %s" % name, "    path: %s" % path, "    backend: cpu", "    threads: 1",
                  "    batch_tokens: %d" % (SHARD * PROMPT_LEN)]
    lines += ["prompts:", "  - name: set", "    files: %s" % prompt_file,
              "lens:", "  points: [embed, mid, post]", "  topk: 5", "  save_probs: last"]
    return "\n".join(lines) + "\n" + extra


def _one_line_error(r):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.rc not in (0,) and len(lines) == 1, r.describe()
    return lines[0]


@pytest.fixture(scope="module")
def models(ll):
    return ll.synth(**MODEL_A), ll.synth(**MODEL_B)


@pytest.fixture(scope="module")
def prompt_file(ll):
    d = ll.tmpdir("sweep-prompts")
    p = os.path.join(d, "prompts.jsonl")
    write_jsonl(p, *_prompts())
    return p


def _plan(ll, d, text, name="sweep.yaml"):
    f = _write(os.path.join(d, name), text)
    return ll.run(["sweep", "plan", f], timeout=120)


# ----------------------------------------------------------------------------------------- bad files

BASE = {"output": "OUT", "shard_size": 2, "models": [{"path": "MODEL"}], "prompts": [{"files": "PROMPTS"}]}


def _yaml_of(d):
    return json.dumps(d)  # JSON is YAML: the same tree through libyaml


BAD = [
    # (case, file name, content builder (dict -> text), expected substrings of the one-line error)
    ("unknown top key", "s.yaml", lambda b: _yaml_of(dict(b, modles=[])), ["unknown key 'modles'"]),
    ("unknown model key", "s.yaml", lambda b: _yaml_of(dict(b, models=[{"path": b["models"][0]["path"], "gpu": 1}])),
     ["models[0]", "unknown key 'gpu'"]),
    ("unknown slurm key", "s.yaml", lambda b: _yaml_of(dict(b, slurm={"nodes": 2})), ["slurm", "unknown key 'nodes'"]),
    ("missing output", "s.yaml", lambda b: _yaml_of({k: v for k, v in b.items() if k != "output"}), ["output", "missing"]),
    ("missing models", "s.json", lambda b: json.dumps({k: v for k, v in b.items() if k != "models"}), ["models", "missing"]),
    ("missing model path", "s.yaml", lambda b: _yaml_of(dict(b, models=[{"name": "x"}])), ["models[0].path", "missing"]),
    ("missing files", "s.yaml", lambda b: _yaml_of(dict(b, prompts=[{"name": "x"}])), ["prompts[0].files", "missing"]),
    ("zero shard size", "s.yaml", lambda b: _yaml_of(dict(b, shard_size=0)), ["shard_size", "positive integer", "got 0"]),
    ("shard size text", "s.yaml", lambda b: _yaml_of(dict(b, shard_size="ten")), ["shard_size", "got 'ten'"]),
    ("tp fraction", "s.json", lambda b: json.dumps(dict(b, models=[dict(b["models"][0], tp=1.5)])), ["models[0].tp", "1.5"]),
    ("topk string", "s.json", lambda b: json.dumps(dict(b, lens={"topk": "5"})), ["lens.topk", "got '5'"]),
    ("bad point kind", "s.yaml", lambda b: _yaml_of(dict(b, lens={"points": ["embed", "final"]})),
     ["lens.points", "'final' is not a point kind"]),
    ("empty model list", "s.yaml", lambda b: _yaml_of(dict(b, models=[])), ["models", "got an empty list"]),
    ("bad backend", "s.yaml", lambda b: _yaml_of(dict(b, models=[dict(b["models"][0], backend="tpu")])),
     ["models[0].backend", "cpu, cuda or auto", "'tpu'"]),
    ("bad time", "s.yaml", lambda b: _yaml_of(dict(b, slurm={"time": "1:xx"})), ["slurm.time", "'1:xx'"]),
    ("bad extra", "s.yaml", lambda b: _yaml_of(dict(b, slurm={"extra": ["exclusive"]})), ["slurm.extra[0]", "'-'"]),
    ("files not a list", "s.yaml", lambda b: _yaml_of(dict(b, prompts=[{"files": 7}])), ["prompts[0].files", "got 7"]),
    ("prompt extension", "s.yaml", lambda b: _yaml_of(dict(b, prompts=[{"files": "p.csv"}])), ["prompts[0].files", ".txt or .jsonl"]),
    ("duplicate names", "s.yaml", lambda b: _yaml_of(dict(b, models=b["models"] * 2)), ["models[1].name", "already"]),
    ("missing model dir", "s.yaml", lambda b: _yaml_of(dict(b, models=[{"path": "/nonexistent/model"}])),
     ["models[0]", "/nonexistent/model"]),
    ("missing prompt file", "s.yaml", lambda b: _yaml_of(dict(b, prompts=[{"files": "/nonexistent/p.jsonl"}])),
     ["prompts[0]", "/nonexistent/p.jsonl"]),
    ("tp does not divide", "s.yaml", lambda b: _yaml_of(dict(b, models=[dict(b["models"][0], tp=3)])),
     ["models[0]", "--tp 3 does not divide"]),
    ("layers select nothing", "s.yaml", lambda b: _yaml_of(dict(b, lens={"layers": "7:9"})), ["models[0]", "selects no layer"]),
    ("not a mapping", "s.yaml", lambda b: "- a\n- b\n", ["top level", "expected a mapping"]),
    ("yaml syntax", "s.yaml", lambda b: "output: o\nshard_size: 2\n  models: x\n", ["s.yaml:3", "not valid YAML"]),
    ("yaml alias", "s.yaml", lambda b: "output: &o x\nshard_size: *o\n", ["anchors"]),
    ("json syntax", "s.json", lambda b: json.dumps(b)[:-1] + ",}", ["not valid JSON"]),
    ("json duplicate key", "s.json", lambda b: '{"output": "a", ' + json.dumps(b)[1:], ["duplicate key 'output'"]),
    ("extension", "s.toml", lambda b: "output = 1\n", ["s.toml", ".yaml, .yml or .json"]),
]


@pytest.mark.parametrize("case,fname,build,expect", BAD, ids=[c[0] for c in BAD])
def test_bad_sweep_file_is_refused_with_one_line(ll, models, prompt_file, case, fname, build, expect):
    d = ll.tmpdir("sweep-bad")
    out = os.path.join(d, "out")
    base = json.loads(json.dumps(BASE))
    base["output"] = out
    base["models"][0]["path"] = models[0]
    base["prompts"][0]["files"] = prompt_file
    r = _plan(ll, d, build(base), fname)
    line = _one_line_error(r)
    assert line.startswith("logitlens sweep plan: ") and fname in line, line
    for e in expect:
        assert e in line, "%s: expected %r in %r" % (case, e, line)
    assert r.rc in (2, 3, 4), r.describe()
    assert not os.path.exists(out), "%s: plan wrote %s before refusing" % (case, out)


def test_prompt_longer_than_context_is_refused_at_plan(ll, models):
    d = ll.tmpdir("sweep-ctx")
    p = os.path.join(d, "p.jsonl")
    write_jsonl(p, [[1, 2, 3], list(range(20))])  # ctx is 16
    out = os.path.join(d, "out")
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0])], p))
    line = _one_line_error(r)
    assert "prompts[0] (set) with models[0] (a)" in line and "prompt 1" in line, line
    assert not os.path.exists(out)


def test_example_sweeps_parse(ll):
    # The shipped examples name models that are not here: plan must get past the sweep file itself and
    # stop at the first missing model or prompt file.
    files = sorted(glob.glob(os.path.join(REPO, "configs", "sweeps", "*.yaml")) +
                   glob.glob(os.path.join(REPO, "configs", "sweeps", "*.json")))
    assert files
    for f in files:
        r = ll.run(["sweep", "plan", f])
        line = _one_line_error(r)
        assert "cannot open" in line and ("models[0]" in line or "prompts[0]" in line), line


# ----------------------------------------------------------------------------------------- plan

def test_plan_writes_manifest_script_and_shards(ll, models, prompt_file):
    d = ll.tmpdir("sweep-plan")
    out = os.path.join(d, "out")
    slurm = ("slurm:\n  partition: debug\n  account: acct\n  qos: q\n  time: \"00:30:00\"\n  gpus_per_task: 1\n"
             "  cpus_per_task: 2\n  mem: 4G\n  constraint: h200\n  max_parallel: 2\n"
             "  extra: [\"--exclusive\"]\n  setup: [\"echo set up\"]\n")
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0]), ("b", models[1])], prompt_file, extra=slurm))
    assert r.rc == 0, r.describe()
    assert "2 models x 3 shards = 6 tasks" in r.stdout and "estimated GPU-hours" in r.stdout, r.stdout
    with open(os.path.join(out, "sweep.json")) as f:
        m = json.load(f)
    assert m["format"] == "logitlens.sweep" and m["format_version"] == 1
    assert [x["name"] for x in m["models"]] == ["a", "b"]
    assert [s["name"] for s in m["shards"]] == ["set-0000", "set-0001", "set-0002"]
    assert [t["id"] for t in m["tasks"]] == list(range(6))
    exe = os.path.realpath(ll.path)
    prompts, answers = _prompts()
    for t in m["tasks"]:
        mi, si = t["id"] // 3, t["id"] % 3
        assert t["model"] == "ab"[mi] and t["shard"] == "set-%04d" % si
        assert t["output"] == os.path.join(out, "results", "ab"[mi], "set-%04d.h5" % si)
        argv = t["argv"]
        assert argv[0] == exe and argv[1] == "run", argv
        opt = dict(zip(argv[2::2], argv[3::2]))
        assert opt["--model"] == os.path.realpath(models[mi])
        assert opt["--prompts"] == os.path.join(out, "prompts", "set-%04d.jsonl" % si)
        assert opt["--out"] == t["output"] and opt["--batch-tokens"] == "12" and opt["--topk"] == "5"
        assert opt["--points"] == "embed,mid,post" and opt["--save-probs"] == "last" and opt["--threads"] == "1"
        assert argv[-1] == "--resume" and m["resume"] is True
        assert t["command"].split() == argv  # no argument here needs quoting
        with open(os.path.join(out, "tasks", "%d.args" % t["id"])) as f:
            assert f.read().splitlines() == argv
        assert t["prompts"] == SHARD and t["tokens"] == SHARD * PROMPT_LEN
    # each shard holds its prompts as given (token ids and explicit answers)
    for si in range(3):
        with open(os.path.join(out, "prompts", "set-%04d.jsonl" % si)) as f:
            lines = [json.loads(l) for l in f]
        for j, obj in enumerate(lines):
            k = si * SHARD + j
            assert obj["tokens"] == prompts[k]
            assert obj.get("target_id") == answers[k]
    with open(os.path.join(out, "sweep.sbatch")) as f:
        sb = f.read()
    for line in ["#SBATCH --array=0-5%2", "#SBATCH --signal=B:USR1@120", "#SBATCH --requeue",
                 "#SBATCH --partition=debug", "#SBATCH --account=acct", "#SBATCH --qos=q", "#SBATCH --time=00:30:00",
                 "#SBATCH --gpus-per-task=1", "#SBATCH --cpus-per-task=2", "#SBATCH --mem=4G",
                 "#SBATCH --constraint=h200", "#SBATCH --exclusive", "#SBATCH --ntasks=1", "echo set up",
                 "LL=%s" % exe, "OUT=%s" % out, 'trap \'kill -USR1 "$PID" 2>/dev/null\' USR1',
                 'scontrol requeue "$SLURM_JOB_ID"', 'if [ "$RC" -eq 75 ] || [ "$RC" -eq 138 ]; then']:
        assert line in sb, "%r not in sweep.sbatch:\n%s" % (line, sb)
    assert sb.startswith("#!/bin/bash\n")
    # a plan of the same file again is accepted (nothing changed); one that changes the tasks after they
    # started is refused
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0]), ("b", models[1])], prompt_file, extra=slurm))
    assert r.rc == 0, r.describe()


def test_plan_multi_rank_model_runs_under_srun(ll, models, prompt_file):
    d = ll.tmpdir("sweep-ranks")
    out = os.path.join(d, "out")
    text = _sweep_yaml(out, [("a", models[0])], prompt_file).replace("    threads: 1\n", "    threads: 1\n    tp: 2\n")
    r = _plan(ll, d, text)
    assert r.rc == 0, r.describe()
    with open(os.path.join(out, "sweep.json")) as f:
        m = json.load(f)
    argv = m["tasks"][0]["argv"]
    assert argv[:3] == ["srun", "--ntasks=2", "--kill-on-bad-exit=1"] and argv[4] == "run", argv
    assert argv[argv.index("--tp") + 1] == "2" and argv[argv.index("--pp") + 1] == "1"
    with open(os.path.join(out, "sweep.sbatch")) as f:
        assert "#SBATCH --ntasks=2\n" in f.read()
    # a local run cannot start ranks: the task fails with that reason, and says so
    r = ll.run(["sweep", "run", "--local", out])
    assert r.rc == 1, r.describe()
    st = _status(ll, out)
    assert st["models"][0]["failed"] == 3
    assert "needs 2 ranks" in st["task_states"][0]["detail"]


# ----------------------------------------------------------------------------------------- local run

def _status(ll, out):
    r = ll.run(["sweep", "status", out, "--json"])
    assert r.rc == 0, r.describe()
    return json.loads(r.stdout)


def _single_run(ll, model_dir, prompts_path, out):
    r = ll.run(["run", "--model", model_dir, "--prompts", prompts_path, "--out", out, "--backend", "cpu",
                "--threads", "1", "--batch-tokens", str(SHARD * PROMPT_LEN), "--quiet"] + LENS_ARGS, timeout=120)
    assert r.rc == 0, r.describe()
    return out


def _assert_same_datasets(merged, single):
    a, b = read_result(merged), read_result(single)
    a.pop("attrs"), b.pop("attrs")
    assert sorted(a) == sorted(b)
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, list):  # vocab_bytes
            assert len(x) == len(y) and all(np.array_equal(u, v) for u, v in zip(x, y)), k
        elif getattr(x, "dtype", None) is not None and x.dtype.kind == "f":
            assert x.shape == y.shape and x.tobytes() == y.tobytes(), "%s differs" % k
        else:
            assert np.array_equal(x, y), "%s differs" % k


def test_local_run_status_and_merge_equal_one_run(ll, models, prompt_file):
    d = ll.tmpdir("sweep-local")
    out = os.path.join(d, "out")
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0]), ("b", models[1])], prompt_file))
    assert r.rc == 0, r.describe()
    r = ll.run(["sweep", "run", "--local", out, "-j", "2"], timeout=180)
    assert r.rc == 0, r.describe()
    assert "6 done, 0 failed" in r.stderr, r.stderr
    st = _status(ll, out)
    for mod in st["models"]:
        assert (mod["done"], mod["running"], mod["pending"], mod["failed"]) == (3, 0, 0, 0), mod
        assert mod["prompts_done"] == N_PROMPTS and mod["tokens_done"] == N_PROMPTS * PROMPT_LEN
        assert mod["eta_s"] == 0
    assert all(t["state"] == "done" and t["attempts"] == 1 for t in st["task_states"])
    text = ll.run(["sweep", "status", out])
    assert text.rc == 0 and "done" in text.stdout and "not submitted to SLURM" in text.stdout, text.describe()
    r = ll.run(["sweep", "merge", out], timeout=120)
    assert r.rc == 0, r.describe()
    for name, model in (("a", models[0]), ("b", models[1])):
        merged = os.path.join(out, "merged", name + ".h5")
        single = _single_run(ll, model, prompt_file, os.path.join(d, "single-%s.h5" % name))
        _assert_same_datasets(merged, single)
    # running again finds nothing to do
    r = ll.run(["sweep", "run", "--local", out])
    assert r.rc == 0 and "0 of 6 tasks to run" in r.stderr, r.describe()


def test_failed_task_is_marked_and_retry_reruns_only_it(ll, models, prompt_file):
    d = ll.tmpdir("sweep-fail")
    out = os.path.join(d, "out")
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0])], prompt_file))
    assert r.rc == 0, r.describe()
    # Plan checks every prompt against the model, so the failure is made after it: shard 1's file now holds
    # a prompt longer than the model's context (16), as if the file had been changed since the plan.
    shard = os.path.join(out, "prompts", "set-0001.jsonl")
    good = shard + ".good"
    shutil.copy(shard, good)
    write_jsonl(shard, [list(range(20)), [1, 2, 3]])
    r = ll.run(["sweep", "run", "--local", out, "-j", "2"], timeout=180)
    assert r.rc == 1, r.describe()
    assert "2 done, 1 failed" in r.stderr, r.stderr
    st = _status(ll, out)
    states = [t["state"] for t in st["task_states"]]
    assert states == ["done", "failed", "done"], st
    detail = st["task_states"][1]["detail"]
    assert "exit 3" in detail and "logitlens run:" in detail and "context" in detail, detail
    assert st["models"][0]["failed"] == 1 and st["models"][0]["done"] == 2
    text = ll.run(["sweep", "status", out]).stdout
    assert "failed tasks:" in text and "task 1 (a set-0001)" in text, text
    r = ll.run(["sweep", "merge", out])
    assert r.rc == 3 and "not merged" in r.stderr and not os.path.exists(os.path.join(out, "merged", "a.h5")), \
        r.describe()
    # fixed: retry reruns task 1 only
    shutil.copy(good, shard)
    r = ll.run(["sweep", "retry", out], timeout=180)
    assert r.rc == 0, r.describe()
    assert "1 of 3 tasks to run" in r.stderr, r.stderr
    st = _status(ll, out)
    assert [t["state"] for t in st["task_states"]] == ["done"] * 3
    assert [t["attempts"] for t in st["task_states"]] == [1, 2, 1]
    r = ll.run(["sweep", "merge", out], timeout=120)
    assert r.rc == 0, r.describe()
    single = _single_run(ll, models[0], prompt_file, os.path.join(d, "single.h5"))
    _assert_same_datasets(os.path.join(out, "merged", "a.h5"), single)
    # the tasks have run: a plan that changes them is refused, naming the difference
    r = _plan(ll, d, _sweep_yaml(out, [("a", models[0])], prompt_file, shard=3))
    line = _one_line_error(r)
    assert "tasks have started" in line and "differs" in line, line
