"""Plots of the package: the Plotly HTML (parsed: cells, hover texts, axis tokens), matplotlib figures
sized to their content, and the logitlens-plot command."""
import html
import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import logitlens
from test_h5_format import POINTS, PROMPT_LEN, bare_file, expected, logitlens_bin, run_file, vocab, \
    writer_bin  # noqa: F401 (fixtures)
from test_pkg_files import write_file

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plotly_figure(path):
    """The data and layout of the (only) Plotly.newPlot call of an HTML file."""
    text = open(path, encoding="utf-8").read()
    at = text.rindex("Plotly.newPlot(")
    dec = json.JSONDecoder()
    pos = at + len("Plotly.newPlot(")
    args = []
    for _ in range(3):
        while text[pos] in " \n\t,":
            pos += 1
        obj, pos = dec.raw_decode(text, pos)
        args.append(obj)
    return text, args[1], args[2]


def png_size(path):
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_lens_html_cells_and_hover(run_file, tmp_path):
    pytest.importorskip("plotly")
    exp, voc = expected(), vocab()
    out = tmp_path / "lens.html"
    with logitlens.open(run_file) as run:
        p = run.prompt(1)
        logitlens.html.lens_html(p, out)
    text, data, layout = plotly_figure(out)
    assert "<script" in text and "plotly" in text.lower() and len(text) > 1_000_000  # plotly.js inlined
    (h,) = data
    lo, n = exp["prompt_offsets"][1], PROMPT_LEN[1]
    assert h["type"] == "heatmap" and h["y"] == POINTS and h["x"] == list(range(n))
    np.testing.assert_allclose(np.array(h["z"]), exp["topk_probs"][lo:lo + n, :, 0].T, rtol=1e-6)
    for pi in range(len(POINTS)):
        for j in range(n):
            top = voc[exp["topk_ids"][lo + j, pi, 0]]
            assert h["text"][pi][j] == logitlens.plot._short(top, 10)
            hov = h["customdata"][pi][j]
            lines = hov.split("<br>")
            assert POINTS[pi] in lines[0] and f"position {j}" in lines[0]
            for r in range(4):   # the top-4 with their probabilities
                want = f"{r + 1}. {html.escape(repr(voc[exp['topk_ids'][lo + j, pi, r]]))} " \
                       f"{exp['topk_probs'][lo + j, pi, r]:.4f}"
                assert lines[1 + r] == want
            t = exp["target_ids"][lo + j]
            assert lines[-1].startswith(f"target {html.escape(repr(voc[t]))}: p=") and \
                lines[-1].endswith(f"rank {exp['target_ranks'][lo + j, pi]}")
    ticks = layout["xaxis"]["ticktext"]
    assert [t.split("<br>")[0] for t in ticks] == [html.escape(logitlens.plot._short(voc[t], 10))
                                                  for t in exp["tokens"][lo:lo + n]]
    assert 200 < layout["width"] < 1000 and 200 < layout["height"] < 600


def _texts_inside(fig):
    """Every Axes with its tick labels, axis labels and title lies within the figure (nothing clipped)."""
    fig.canvas.draw()
    box = fig.bbox
    r = fig.canvas.get_renderer()
    for ax in fig.axes:
        e = ax.get_tightbbox(r)
        assert e.x0 >= box.x0 - 1 and e.x1 <= box.x1 + 1 and e.y0 >= box.y0 - 1 and e.y1 <= box.y1 + 1, \
            f"{ax.get_title() or ax.get_ylabel()!r}: {e} reaches outside the figure {box}"


@pytest.mark.parametrize("n_pos,n_points", [(3, 5), (24, 5), (12, 27)])
def test_png_sized_to_content(tmp_path, n_pos, n_points):
    pts = ["embed"] + [f"post.{i}" for i in range(n_points - 1)]
    path = write_file(tmp_path / "s.h5", [n_pos, 2], pts, list(range(-1, n_points - 1)), n_points - 1)
    with logitlens.open(path) as run:
        ax = logitlens.plot.lens_grid(run.prompt(0))
        _texts_inside(ax.figure)
        out = tmp_path / "g.png"
        ax.figure.savefig(out, dpi=100)
        w, h = png_size(out)
        # about 62 px a column and 28 px a row plus labels and colour bar: no huge margins, no giant canvas
        assert 62 * n_pos < w < 62 * n_pos + 400 and 28 * n_points < h < 28 * n_points + 260, (w, h)
        plt.close(ax.figure)
        ax = logitlens.plot.trajectories(run, value="entropy")
        _texts_inside(ax.figure)
        ax.figure.savefig(out, dpi=100)
        assert png_size(out) == (600, 380)
        plt.close(ax.figure)


def test_trajectories_values(tmp_path):
    pts = ["embed", "post.0", "post.1"]
    ranks = np.array([[3, 1, 0], [0, 0, 0], [5, 2, 1], [0, 0, 0]])
    path = write_file(tmp_path / "t.h5", [2, 2], pts, [-1, 0, 1], 2, target_ranks=ranks)
    with logitlens.open(path) as run:
        ax = logitlens.plot.trajectories(run, value="target_ranks", position=0)
        med = ax.lines[-1]
        np.testing.assert_allclose(med.get_xdata(), [0, 0.5, 1])
        np.testing.assert_allclose(med.get_ydata(), [4, 1.5, 0.5])   # median of prompts 0 and 1 at position 0
        plt.close(ax.figure)
        with pytest.raises(ValueError, match="value"):
            logitlens.plot.trajectories(run, value="nope")


def _cli(*args):
    cmd = [sys.executable, "-m", "logitlens", *map(str, args)]
    env = dict(os.environ)
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_logitlens_plot_command(run_file, tmp_path):
    pytest.importorskip("plotly")
    out = tmp_path / "x.html"
    r = _cli(run_file, "--prompt", "2", "--out", out)
    assert r.returncode == 0, r.stderr
    _, data, _ = plotly_figure(out)
    assert len(data[0]["x"]) == PROMPT_LEN[2]
    for kind, extra in (("lens", ()), ("curve", ("--position", "1")), ("trajectories", ("--value", "entropy"))):
        png = tmp_path / f"{kind}.png"
        r = _cli(run_file, "--prompt", "2", "--kind", kind, "--out", png, *extra)
        assert r.returncode == 0, r.stderr
        w, h = png_size(png)
        assert 200 < w < 2000 and 150 < h < 1500, (kind, w, h)
    r = _cli(run_file, "--prompt", "9", "--out", out)
    assert r.returncode == 2 and "--prompt 9" in r.stderr
    r = _cli(tmp_path / "none.h5", "--out", out)
    assert r.returncode == 4 and "none.h5" in r.stderr
    bad = tmp_path / "bad.h5"
    bad.write_text("x")
    r = _cli(bad, "--out", out)
    assert r.returncode == 3 and "not a logitlens result file" in r.stderr
    r = _cli(run_file, "--kind", "curve", "--out", out)
    assert r.returncode == 2 and "HTML" in r.stderr
