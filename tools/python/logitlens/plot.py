"""Plots of one prompt of a logitlens run (matplotlib).

``lens_grid``: the classic logit-lens picture, points (layers) x positions, each cell coloured by the
top-1 probability (or the entropy) and labelled with the top-1 token.
``layer_curve``: how the target token's probability and rank change with depth at one position.
"""
import numpy as np


def _pyplot():
    import matplotlib.pyplot as plt

    return plt


def _short(s, width):
    """A token string for a cell: control characters escaped, cut to width characters."""
    s = s.encode("unicode_escape").decode("ascii") if any(ord(c) < 32 or ord(c) == 127 for c in s) else s
    return s if len(s) <= width else s[: width - 1] + "~"


def lens_grid(prompt, ax=None, value="prob", max_positions=24, annotate=True, cmap=None, token_width=8):
    """Draws the logit-lens heatmap of a :class:`logitlens.Prompt`.

    Rows are the points in depth order (``embed`` at the bottom), columns the prompt's positions (the
    last ``max_positions`` of a longer prompt; None for all), labelled below with the input tokens.
    ``value``: ``"prob"`` (top-1 probability, 0..1) or ``"entropy"`` (nats). Cells are annotated with the
    top-1 token string cut to ``token_width`` characters. Returns the Axes.
    """
    plt = _pyplot()
    if value == "prob":
        data = prompt.topk_probs[:, :, 0].astype(np.float64)
        label, vmin, vmax = "top-1 probability", 0.0, 1.0
        cmap = cmap or "Blues"
    elif value == "entropy":
        data = prompt.entropy.astype(np.float64)
        label, vmin, vmax = "entropy (nats)", 0.0, None
        cmap = cmap or "viridis_r"
    else:
        raise ValueError(f"lens_grid: value={value!r}: expected 'prob' or 'entropy'")
    n_points, n_pos = data.shape
    first = max(0, n_pos - max_positions) if max_positions else 0
    data = data[:, first:]
    positions = np.arange(first, n_pos)
    if ax is None:
        _, ax = plt.subplots(figsize=(1.0 + 0.9 * len(positions), 1.0 + 0.35 * n_points))
    im = ax.imshow(data, aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label=label)
    ax.set_yticks(range(n_points))
    ax.set_yticklabels(prompt.points)
    ax.set_xticks(range(len(positions)))
    ax.set_xticklabels([f"{_short(prompt.token_strings[j], token_width)}\n{j}" for j in positions], fontsize=7)
    ax.set_xlabel("input token / position")
    ax.set_ylabel("point")
    title = f"prompt {prompt.index}"
    if first:
        title += f" (positions {first}..{n_pos - 1} of {n_pos})"
    ax.set_title(title)
    if annotate:
        lo, hi = np.nanmin(data) if data.size else 0.0, np.nanmax(data) if data.size else 1.0
        mid = ((vmin if vmin is not None else lo) + (vmax if vmax is not None else hi)) / 2
        dark_high = value == "prob"
        for p in range(n_points):
            for c, j in enumerate(positions):
                v = data[p, c]
                light = (v > mid) if dark_high else (v < mid)
                ax.text(c, p, _short(prompt.topk_strings[p, j, 0], token_width), ha="center", va="center",
                        fontsize=6, color="white" if light else "black")
    return ax


def layer_curve(prompt, position, ax=None):
    """Plots the target token's probability (left axis, log scale) and rank (right axis) at every point
    for one position of a :class:`logitlens.Prompt` (negative positions count from the end).

    Raises ValueError when that position has no target (the last position of a prompt without an
    explicit answer). Returns the Axes of the probability curve.
    """
    plt = _pyplot()
    j = prompt.position(position)
    target = int(prompt.target_ids[j])
    if target < 0:
        raise ValueError(f"layer_curve: prompt {prompt.index} position {j} has no target token")
    probs = prompt.target_probs[:, j].astype(np.float64)
    ranks = prompt.target_ranks[:, j]
    x = np.arange(len(prompt.points))
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.4 * len(x)), 3.5))
    ax.plot(x, probs, "o-", color="tab:blue", label="probability")
    ax.set_yscale("log")
    ax.set_ylabel("target probability", color="tab:blue")
    ax.set_xticks(x)
    ax.set_xticklabels(prompt.points, rotation=60, fontsize=7)
    ax.set_xlabel("point")
    ax2 = ax.twinx()
    ax2.plot(x, ranks, "s--", color="tab:red", label="rank")
    ax2.set_yscale("symlog", linthresh=1)
    ax2.set_ylabel("target rank (0 = top-1)", color="tab:red")
    tgt = prompt.run.token_string(target)
    ax.set_title(f"prompt {prompt.index}, position {j}: target {tgt!r}")
    return ax
