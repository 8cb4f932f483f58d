"""The prompt files shipped in configs/ run as they are: every line becomes a prompt with its target."""
import glob
import json
import os

import h5py
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = sorted(glob.glob(os.path.join(ROOT, "configs", "prompts", "*.jsonl")))


@pytest.mark.parametrize("path", FILES, ids=[os.path.basename(f) for f in FILES])
def test_shipped_prompt_files_run(ll, tmp_path, path):
    model = ll.synth(arch="gpt2", layers=2, d_model=32, heads=2, vocab=1024, ctx=64, tokenizer="gpt2")
    lines = [json.loads(l) for l in open(path, encoding="utf-8") if l.strip()]
    out = tmp_path / "out.h5"
    r = ll.run(["run", "--model", model, "--prompts", path, "--out", out, "--quiet"])
    assert r.rc == 0, r.describe()
    with h5py.File(out) as f:
        assert len(f["prompts"]) == len(lines)
        assert [t.decode() for t in f["prompt_targets"][:]] == [l.get("target", "") for l in lines]
        last = f["prompt_offsets"][1:] - 1
        assert all(f["target_ids"][i] >= 0 for i, l in zip(last, lines) if "target" in l)
