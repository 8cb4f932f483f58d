"""Answers to the usual logit-lens questions, as layer numbers and reductions over prompts.

Conventions (the traps these functions exist to avoid):

- A *layer* is the model's layer number of a point (``run.point_layers``: ``embed`` is -1, ``mid.i`` and
  ``post.i`` are i), never the index of the point in the file (with ``--points embed,mid,post`` point 7 is
  ``post.2``, with ``--layers 0:32:4`` it is ``post.12``).
- "Never" is NaN: the functions that return a layer return floats, NaN where the event never happens
  (or there is no target). -1 cannot mean "never", because -1 is the embedding's layer.
  ``np.isnan(x)`` finds them; ``np.nanmean`` etc. skip them.
- Ranks in the file count the vocabulary entries with a strictly larger logit: 0 is top-1, and "within
  the top k" is ``0 <= rank < k``; -1 marks a token without a target.
"""
import numpy as np


def first_point(ranks, k=1, axis=0, stay=False):
    """Index (on the point axis ``axis`` of ``ranks``) of the first point at which the target is within
    the top ``k`` (``0 <= rank < k``); -1 where it never is. ``stay=True``: the first point from which it
    stays within the top k through the last point (the answer the model settles on)."""
    ranks = np.asarray(ranks)
    axis = axis % ranks.ndim
    ok = (ranks >= 0) & (ranks < k)
    if stay:
        ok = np.flip(np.logical_and.accumulate(np.flip(ok, axis), axis=axis), axis)
    first = np.argmax(ok, axis=axis)
    return np.where(ok.any(axis=axis), first, -1)


def first_layer(ranks, point_layers, k=1, axis=0, stay=False):
    """The first LAYER (a layer number, not a point index) at which the target is within the top ``k``,
    for target ranks with the point axis at ``axis`` (``Prompt.target_ranks`` is ``[point, position]``:
    axis 0; ``Run.at_position(...).target_ranks`` is ``[prompt, point]``: axis -1). Float array with the
    point axis removed: the layer (-1.0 for ``embed``), NaN where the target never gets there or there is
    no target. ``stay=True``: the layer from which it stays within the top k to the end.

    Example: ranks [5, 3, 0, 1, 0] at points embed, post.0, post.1, post.2, post.3 give 1.0 (``post.1``)
    and, with ``stay=True``, 3.0."""
    p = first_point(ranks, k=k, axis=axis, stay=stay)
    layers = np.asarray(point_layers, dtype=np.float64)
    return np.where(p >= 0, layers[np.maximum(p, 0)], np.nan)


def largest_drop_layer(values, point_layers, axis=0):
    """The layer whose point shows the largest decrease of ``values`` from the point before it (entropy
    or KL to the final layer, with the point axis at ``axis``): the drop from point p-1 to point p is
    credited to point p's layer (``mid.i`` and ``post.i`` both to layer i). Float array with the point
    axis removed; NaN where no step is defined (one point, all NaN). The increase is not a drop: where
    the values only grow, the result is the layer of the smallest increase."""
    v = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    if v.shape[-1] < 2:
        return np.full(v.shape[:-1], np.nan)
    drop = v[..., :-1] - v[..., 1:]
    defined = ~np.isnan(drop)
    has = defined.any(axis=-1)
    best = np.argmax(np.where(defined, drop, -np.inf), axis=-1) + 1
    layers = np.asarray(point_layers, dtype=np.float64)
    return np.where(has, layers[best], np.nan)


STATS = ("mean", "std", "median", "q25", "q75", "count")


def _reduce(x, mask):
    """Stats over axis 0 of x [prompt, point] where mask: float64 [point, stat]."""
    x = np.where(mask, x.astype(np.float64), np.nan)
    count = (~np.isnan(x)).sum(axis=0)
    out = np.full((x.shape[1], len(STATS)), np.nan)
    out[:, 5] = count
    some = count > 0
    if some.any():
        xs = x[:, some]
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out[some, 0] = np.nanmean(xs, axis=0)
            out[some, 1] = np.nanstd(xs, axis=0)
            q = np.nanpercentile(xs, [50, 25, 75], axis=0)
        out[some, 2], out[some, 3], out[some, 4] = q
    return out


def layer_summary(source, position=-1, prompts=None, k=1):
    """Reductions over prompts, point by point, at one position of each prompt (default the last).

    ``source``: a :class:`logitlens.Run` (then ``position`` and ``prompts`` choose what is read) or a
    Dataset from ``Run.at_position``. Returns an ``xarray.Dataset`` with dimensions ``point`` and
    ``stat`` (mean, std, median, q25, q75, count: over the prompts that have a value there) and
    coordinates ``point`` (names), ``layer`` and ``depth`` (0 at ``embed``, 1 at the last layer's
    output: compare models of different depth with ``s.swap_dims(point="depth")``):

    - ``target_prob``, ``target_rank``: over prompts with a target at that position;
    - ``topk_hit``: fraction of those prompts where the target is within the top ``k`` (``stat`` mean);
    - ``entropy``, ``kl_final`` (nats): over every prompt that has the position.

    ``attrs['n_prompts']`` is how many prompts went in, ``attrs['n_with_target']`` how many had a target.
    """
    import xarray as xr

    ds = source.at_position(position, prompts) if hasattr(source, "at_position") else source
    valid = ds["valid"].values[:, None]
    has_target = valid & (ds["target_ids"].values >= 0)[:, None]
    ranks = ds["target_ranks"].values
    hit = ((ranks >= 0) & (ranks < k)).astype(np.float64)
    out = {
        "target_prob": _reduce(ds["target_probs"].values, has_target),
        "target_rank": _reduce(ranks, has_target & (ranks >= 0)),
        "topk_hit": _reduce(hit, has_target),
        "entropy": _reduce(ds["entropy"].values, valid),
        "kl_final": _reduce(ds["kl_final"].values, valid),
    }
    coords = {"point": ds["point"].values, "layer": (("point",), ds["layer"].values),
              "depth": (("point",), ds["depth"].values), "stat": list(STATS)}
    attrs = {"position": int(position), "k": int(k), "n_prompts": int(valid.sum()),
             "n_with_target": int(has_target[:, 0].sum())}
    return xr.Dataset({n: (("point", "stat"), v) for n, v in out.items()}, coords=coords, attrs=attrs)
