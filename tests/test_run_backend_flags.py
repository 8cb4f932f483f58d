"""Backend flags of `run`: --tf32 is recorded in the allow_tf32 attribute only where it takes effect (the
CUDA backend), says so on the CPU, and leaves the CPU's results bit-identical."""

import os

import h5py
import numpy as np

LLAMA = dict(arch="llama", layers=2, d_model=32, heads=4, kv_heads=2, vocab=211, ctx=32, dtype="f32")


def _run(ll, model, out, *extra):
    return ll.run(["run", "--model", model, "--tokens", "1,5,9,3,7", "--tokens", "2,4", "--out", out,
                   "--backend", "cpu", "--threads", "2", "--points", "embed,post", "--save-probs", "last"]
                  + list(extra))


def test_tf32_on_cpu_is_a_noted_no_op(ll):
    model = ll.synth(**LLAMA)
    d = ll.tmpdir("tf32")
    plain, tf32 = os.path.join(d, "plain.h5"), os.path.join(d, "tf32.h5")
    r = _run(ll, model, plain, "--quiet")
    assert r.rc == 0, r.describe()
    r = _run(ll, model, tf32, "--tf32")
    assert r.rc == 0, r.describe()
    assert "--tf32" in r.stderr and "no effect on the cpu backend" in r.stderr, r.stderr
    with h5py.File(plain, "r") as a, h5py.File(tf32, "r") as b:
        assert a.attrs["allow_tf32"] == 0 and b.attrs["allow_tf32"] == 0
        assert a.attrs["allow_tf32"].dtype == np.int64
        for name in ("topk_ids", "topk_probs", "entropy", "kl_final", "target_probs", "probs"):
            np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)


def test_tf32_quiet_has_no_note(ll):
    model = ll.synth(**LLAMA)
    out = os.path.join(ll.tmpdir("tf32q"), "r.h5")
    r = _run(ll, model, out, "--tf32", "--quiet")
    assert r.rc == 0, r.describe()
    assert r.stderr == "", r.stderr
