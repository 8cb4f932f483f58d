"""The lens never holds the [points x tokens x vocab] logits: peak memory is set by the vocabulary tile,
not by vocab x points x tokens. Here those logits would take 2.5 GB in float32 (25 points x 512 tokens x
50000 ids); the whole run must stay far below that."""
import os
import subprocess

from conftest import write_jsonl


def test_peak_memory_does_not_scale_with_logits(ll, tmp_path):
    model = ll.synth(arch="gpt2", layers=12, d_model=16, heads=2, vocab=50000, ctx=512, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[(7 * i) % 50000 for i in range(512)]])
    out = tmp_path / "out.h5"
    proc = subprocess.Popen([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                             "--points", "embed,mid,post", "--backend", "cpu", "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err
    logits_mib = 25 * 512 * 50000 * 4 // (1 << 20)
    peak_mib = usage.ru_maxrss // 1024
    assert peak_mib < 600, "peak RSS %d MiB (the logits alone would be %d MiB)" % (peak_mib, logits_mib)
