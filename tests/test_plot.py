"""logitlens.plot and tools/plot_lens.py on the files of tests/test_h5_format.py."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import logitlens
from test_h5_format import POINTS, PROMPT_LEN, bare_file, expected, logitlens_bin, run_file, vocab, \
    writer_bin  # noqa: F401 (fixtures)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import logitlens.plot  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

SCRIPT = Path(__file__).resolve().parent.parent / "tools" / "plot_lens.py"


def test_lens_grid(run_file):
    exp = expected()
    with logitlens.open(run_file) as run:
        p = run.prompt(2)
        ax = logitlens.plot.lens_grid(p, max_positions=10)
    img = ax.images[0].get_array()
    lo = exp["prompt_offsets"][2]
    np.testing.assert_allclose(img, exp["topk_probs"][lo + 7:lo + 17, :, 0].T)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == len(POINTS) * 10
    voc = vocab()
    assert texts[0] == voc[exp["topk_ids"][lo + 7, 0, 0]][:8]
    assert [t.get_text() for t in ax.get_yticklabels()] == POINTS
    plt.close(ax.figure)
    ax = logitlens.plot.lens_grid(p, value="entropy", annotate=False)
    np.testing.assert_allclose(ax.images[0].get_array(), exp["entropy"][lo:lo + 17].T)
    assert not ax.texts
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="value"):
        logitlens.plot.lens_grid(p, value="kl")


def test_layer_curve(run_file):
    exp = expected()
    with logitlens.open(run_file) as run:
        p = run.prompt(1)
        ax = logitlens.plot.layer_curve(p, 2)
        g = exp["prompt_offsets"][1] + 2
        np.testing.assert_allclose(ax.lines[0].get_ydata(), exp["target_probs"][g])
        plt.close(ax.figure)
        with pytest.raises(ValueError, match="no target"):
            logitlens.plot.layer_curve(run.prompt(0), -1)


def test_plot_lens_script(run_file, tmp_path):
    out = tmp_path / "lens.png"
    r = subprocess.run([sys.executable, str(SCRIPT), str(run_file), "--prompt", "2", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    r = subprocess.run([sys.executable, str(SCRIPT), str(run_file), "--prompt", "9", "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--prompt 9" in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "none.h5"), "--out", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 4 and "none.h5" in r.stderr
