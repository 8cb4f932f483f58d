"""The lens never holds the [points x tokens x vocab] logits: peak memory is set by the vocabulary tile,
not by vocab x points x tokens. Here those logits would take 2.5 GB in float32 (25 points x 512 tokens x
50000 ids); the whole run must stay far below that."""
import re
import subprocess

from conftest import write_jsonl


def test_peak_memory_does_not_scale_with_logits(ll, tmp_path):
    model = ll.synth(arch="gpt2", layers=12, d_model=16, heads=2, vocab=50000, ctx=512, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[(7 * i) % 50000 for i in range(512)]])
    out = tmp_path / "out.h5"
    # The engine reports its own peak (VmHWM, the high-water mark of its address space since exec) on its
    # last line. getrusage/wait4's maxrss is not used: when a large test process launches the engine
    # (vfork + exec), the kernel folds the launcher's own peak into the child's maxrss.
    r = subprocess.run([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                        "--points", "embed,mid,post", "--backend", "cpu"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    err = r.stderr.decode()
    assert r.returncode == 0, err
    m = re.search(r"peak host memory (\d+) MiB$", err.strip().splitlines()[-1])
    assert m, err
    logits_mib = 25 * 512 * 50000 * 4 // (1 << 20)
    peak_mib = int(m.group(1))
    assert peak_mib < 600, "peak RSS %d MiB (the logits alone would be %d MiB)" % (peak_mib, logits_mib)
