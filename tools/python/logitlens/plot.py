"""Plots of one prompt of a logitlens run (matplotlib).

``lens_grid``: the classic logit-lens picture, points (layers) x positions, each cell coloured by the
top-1 probability (or the entropy) and labelled with the top-1 token.
``layer_curve``: how the target token's probability and rank change with depth at one position.
``trajectories``: one value (target probability, rank, entropy, KL) against depth for many prompts at
once, with their median and quartiles.

Figures are sized from their content (rows, columns, label lengths) and use matplotlib's constrained
layout, so that labels are neither clipped nor surrounded by large margins; save with
``fig.savefig(path, bbox_inches="tight")`` for the tightest crop.
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
        label_w = 0.09 * max((len(p) for p in prompt.points), default=4)
        # "tight", not "constrained": callers (tools/plot_lens.py) call fig.tight_layout(), which
        # matplotlib refuses on a constrained figure that has a colour bar
        _, ax = plt.subplots(figsize=(1.9 + label_w + 0.62 * max(1, len(positions)), 1.5 + 0.28 * n_points),
                             layout="tight")
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
        _, ax = plt.subplots(figsize=(min(16.0, max(4.5, 1.6 + 0.3 * len(x))), 3.6), layout="constrained")
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


TRAJECTORY_VALUES = {
    "target_probs": ("target probability", "log"),
    "target_ranks": ("target rank (0 = top-1)", "symlog"),
    "entropy": ("entropy (nats)", "linear"),
    "kl_final": ("KL(final || point) (nats)", "linear"),
}


def trajectories(run, value="target_probs", position=-1, prompts=None, ax=None, max_lines=200, x="depth",
                 label=None):
    """Plots ``value`` (``target_probs``, ``target_ranks``, ``entropy`` or ``kl_final``) against depth at
    one position (default the last) of many prompts of a :class:`logitlens.Run` (or of a Dataset from
    ``Run.at_position``): one thin line per prompt (at most ``max_lines``), the median in bold and the
    quartiles shaded, over the prompts that have a value. ``x``: ``"depth"`` (fraction of the model:
    compare models of different depth on one Axes by calling it once per run with ``ax=`` and
    ``label=``) or ``"layer"``. Returns the Axes."""
    plt = _pyplot()
    if value not in TRAJECTORY_VALUES:
        raise ValueError(f"trajectories: value={value!r}: expected one of {', '.join(TRAJECTORY_VALUES)}")
    ds = run.at_position(position, prompts) if hasattr(run, "at_position") else run
    y = ds[value].values.astype(np.float64)
    if value == "target_ranks":
        y[y < 0] = np.nan
    y[~ds["valid"].values] = np.nan
    keep = ~np.isnan(y).all(axis=1)
    y = y[keep]
    xs = ds["depth"].values if x == "depth" else ds["layer"].values.astype(np.float64)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 3.8), layout="constrained")
    for row in y[:max_lines]:
        ax.plot(xs, row, color="0.6", lw=0.6, alpha=0.35)
    if len(y):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q25, med, q75 = np.nanpercentile(y, [25, 50, 75], axis=0)
        line, = ax.plot(xs, med, lw=2.2, label=label or f"median of {len(y)} prompts")
        ax.fill_between(xs, q25, q75, color=line.get_color(), alpha=0.2, lw=0)
        ax.legend(loc="best", fontsize=8)
    name, scale = TRAJECTORY_VALUES[value]
    if scale == "symlog":
        ax.set_yscale("symlog", linthresh=1)
    elif scale == "log" and len(y) and np.nanmin(y) > 0:
        ax.set_yscale("log")
    ax.set_ylabel(name)
    ax.set_xlabel("depth (fraction of layers; 0 = embed, 1 = last layer)" if x == "depth" else "layer")
    ax.set_title(f"position {position}, {len(y)} prompts with a value")
    return ax
