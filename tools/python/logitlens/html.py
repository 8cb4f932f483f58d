"""The logit-lens view of one prompt as an interactive Plotly heatmap, in one self-contained HTML file.

Rows are the points in depth order (``embed`` at the bottom), columns the prompt's positions labelled with
the input tokens; each cell shows the top-1 token and is coloured by its probability (or the entropy);
hovering a cell lists the top-k tokens with their probabilities and the target's probability and rank.
"""
import html as _html

import numpy as np

from .plot import _short


def _hover(prompt, p, j, kmax):
    run = prompt.run
    esc = _html.escape
    lines = [f"<b>{esc(prompt.points[p])}</b>, position {j}: input {esc(repr(prompt.token_strings[j]))}"]
    for r in range(kmax):
        lines.append(f"{r + 1}. {esc(repr(prompt.topk_strings[p, j, r]))} {float(prompt.topk_probs[p, j, r]):.4f}")
    lines.append(f"entropy {float(prompt.entropy[p, j]):.3f} nats, KL to final {float(prompt.kl_final[p, j]):.3f}")
    t = int(prompt.target_ids[j])
    if t >= 0:
        lines.append(f"target {esc(repr(run.token_string(t)))}: p={float(prompt.target_probs[p, j]):.4g}, "
                     f"rank {int(prompt.target_ranks[p, j])}")
    return "<br>".join(lines)


def lens_figure(prompt, value="prob", max_positions=48, topk=None, token_width=10, title=None):
    """The Plotly figure (``plotly.graph_objects.Figure``) of a :class:`logitlens.Prompt`.

    ``value``: ``"prob"`` (top-1 probability) or ``"entropy"`` (nats) as the colour; ``max_positions``:
    the last that many positions (None: all); ``topk``: how many of the saved top-k to list on hover
    (default all). Cell texts are the top-1 tokens cut to ``token_width`` characters."""
    import plotly.graph_objects as go

    if value == "prob":
        z, label, scale, zmin, zmax = prompt.topk_probs[:, :, 0], "top-1 probability", "Blues", 0.0, 1.0
    elif value == "entropy":
        z, label, scale, zmin, zmax = prompt.entropy, "entropy (nats)", "Viridis_r", 0.0, None
    else:
        raise ValueError(f"lens_figure: value={value!r}: expected 'prob' or 'entropy'")
    n_points, n_pos = z.shape
    first = max(0, n_pos - max_positions) if max_positions else 0
    positions = list(range(first, n_pos))
    kmax = prompt.topk_ids.shape[2] if topk is None else min(int(topk), prompt.topk_ids.shape[2])
    z = np.asarray(z[:, first:], dtype=np.float64)
    text = [[_short(prompt.topk_strings[p, j, 0], token_width) for j in positions] for p in range(n_points)]
    hover = [[_hover(prompt, p, j, kmax) for j in positions] for p in range(n_points)]
    ticks = [f"{_html.escape(_short(prompt.token_strings[j], token_width))}<br>{j}" for j in positions]
    heat = go.Heatmap(z=z.tolist(), x=positions, y=list(prompt.points), text=text, customdata=hover,
                      texttemplate="%{text}", textfont={"size": 10}, hovertemplate="%{customdata}<extra></extra>",
                      colorscale=scale, zmin=zmin, zmax=zmax, colorbar={"title": {"text": label}}, xgap=1, ygap=1)
    fig = go.Figure(heat)
    head = title or f"prompt {prompt.index}: {prompt.text[:80]!r}"
    if first:
        head += f" (positions {first}..{n_pos - 1} of {n_pos})"
    fig.update_layout(
        title={"text": _html.escape(head), "x": 0.01},
        xaxis={"title": {"text": "input token / position"}, "tickmode": "array", "tickvals": positions,
               "ticktext": ticks, "side": "bottom"},
        yaxis={"title": {"text": "point"}, "type": "category"},
        width=int(min(2400, 220 + 70 * len(positions))), height=int(min(2400, 190 + 26 * n_points)),
        margin={"l": 80, "r": 20, "t": 50, "b": 70}, template="plotly_white")
    return fig


def lens_html(prompt, path, value="prob", max_positions=48, topk=None, token_width=10, title=None):
    """Writes the figure of :func:`lens_figure` to ``path`` as one self-contained HTML file (Plotly's
    JavaScript included: it opens offline). Returns the figure."""
    fig = lens_figure(prompt, value=value, max_positions=max_positions, topk=topk, token_width=token_width,
                      title=title)
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return fig
