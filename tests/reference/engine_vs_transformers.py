#!/usr/bin/env python3
"""The engine against Hugging Face transformers itself (not part of `make test`: needs torch and
transformers). Builds random checkpoints with transformers' own classes and save_pretrained
(check_against_transformers.build_models), runs `logitlens run --save-probs all` on each, and compares the
final point's saved float16 probability rows with transformers' float64 softmax.

usage: LOGITLENS_BIN=build/logitlens python3 tests/reference/engine_vs_transformers.py

The llama-v5-rope directory is skipped when transformers predates v5: older versions ignore the
`rope_parameters` spelling (and so drop the llama3 scaling), which the float64 reference covers instead."""
import json
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_against_transformers as c  # noqa: E402

root = tempfile.mkdtemp(prefix="eng-vs-hf-")
BIN = os.environ.get("LOGITLENS_BIN", "build/logitlens")
worst = 0
ok = True
for label, d in c.build_models(root):
    if label == "llama-v5-rope" and int(transformers.__version__.split(".")[0]) < 5:
        print("%-28s skipped (transformers %s does not read rope_parameters)" % (label, transformers.__version__))
        continue
    cfg = json.load(open(os.path.join(d, "config.json")))
    V = cfg["vocab_size"]
    rng = np.random.default_rng(1)
    prompts = [[int(t) for t in rng.integers(0, V, size=n)] for n in (1, 6, 19)]
    pf = os.path.join(root, label + ".jsonl")
    with open(pf, "w") as f:
        for p in prompts: f.write(json.dumps({"tokens": p}) + "\n")
    out = os.path.join(root, label + ".h5")
    r = subprocess.run([BIN, "run", "--model", d, "--prompts", pf, "--out", out, "--points", "post", "--layers", "-1",
                        "--save-probs", "all", "--quiet"], capture_output=True, text=True)
    if r.returncode:
        print("FAIL", label, r.stderr.strip())
        ok = False
        continue
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float64)
    m.eval()
    f = h5py.File(out)
    probs = f["probs"][:, 0, :].astype(np.float64)
    ref = []
    with torch.no_grad():
        for p in prompts:
            logits = m(torch.tensor([p])).logits[0]
            ref.append(torch.softmax(logits, -1).numpy())
    ref = np.concatenate(ref)[:, :probs.shape[1]]
    # float16 rows: half an ulp of the value (2^-11 relative) plus float32 error
    bound = np.abs(ref) * 2.0 ** -10 + 1e-5
    err = np.abs(probs - ref)
    bad = int((err > bound).sum())
    worst = max(worst, float(err.max()))
    ok &= bad == 0
    print("%-28s max |p_engine(f16) - p_transformers| = %.2e, %d beyond float16 rounding" % (label, err.max(), bad))
print("worst %.2e: %s" % (worst, "all agree" if ok else "SOME DIFFER"))
sys.exit(0 if ok else 1)
