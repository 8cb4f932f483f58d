"""An interrupted run (SIGINT) stops with exit code 130 and says so in one line; it leaves no output file
nor its temporary, only the journal of the batches it committed, from which --resume continues (more in
tests/test_resume.py)."""
import os
import subprocess

from conftest import write_jsonl


def test_sigint_leaves_no_output(ll, tmp_path):
    model = ll.synth(arch="llama", layers=2, d_model=32, heads=4, vocab=300, ctx=32, tokenizer="none")
    prompts = tmp_path / "p.jsonl"
    write_jsonl(prompts, [[1, 2, 3]] * 5)
    out = tmp_path / "out.h5"
    env = dict(os.environ, LOGITLENS_TEST_SIGINT_AFTER_BATCHES="2")
    p = subprocess.run([ll.path, "run", "--model", model, "--prompts", str(prompts), "--out", str(out),
                        "--batch-tokens", "3", "--backend", "cpu", "--quiet"], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 130, p.stderr
    assert p.stderr.strip() == ("logitlens run: interrupted by signal 2 after 6 of 15 tokens; 2 batches are committed "
                                "in %s.journal: continue with --resume" % out)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.h5.journal", "p.jsonl"], list(tmp_path.iterdir())
    assert sorted(os.listdir(str(out) + ".journal")) == ["batch-000000.bin", "batch-000001.bin", "progress.json",
                                                         "run.json"]
