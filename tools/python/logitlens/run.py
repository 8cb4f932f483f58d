"""Run and Prompt: a logitlens result file and one prompt of it, as numpy arrays.

The file stores every per-token array token-major (``[token, point, ...]``, all prompts packed). A
``Prompt`` turns that around into the shape one looks at: ``[point, position, ...]``. Many prompts at
once (``Run.prompts``, ``Run.at_position``) are read in bulk: each needed stretch of a dataset is read
once and split with numpy (_read.py), never prompt by prompt.
"""
from functools import cached_property

import h5py
import numpy as np

from ._read import gather

FORMAT = "logitlens.lens"
FORMAT_VERSION = 1

# The per-token datasets a Prompt holds (always present in a result file), in file layout [token, ...].
TOKEN_FIELDS = ("tokens", "target_ids", "topk_ids", "topk_probs", "entropy", "kl_final", "target_probs",
                "target_logprobs", "target_ranks")
# What at_position reads by default (the per-point statistics and the ids they refer to).
POSITION_FIELDS = TOKEN_FIELDS
# HDF5 chunk cache per open file: whole chunks (1 MiB) stay decompressed between reads of nearby rows.
CHUNK_CACHE_BYTES = 64 << 20


class FormatError(ValueError):
    """The file is not a logitlens result file, or one this loader cannot read."""


def open(path):
    """Opens a result file written by ``logitlens run``; returns a :class:`Run` (a context manager)."""
    return Run(path)


def _as_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return v


def _attr_value(v):
    """Root attributes as plain Python values: str, int, float or list of str."""
    if isinstance(v, np.ndarray):
        return [_attr_value(x) for x in v.tolist()]
    if isinstance(v, np.generic):
        return v.item()
    return _as_str(v)


def _strings(ds):
    """A 1-D string dataset as a list of str (UTF-8)."""
    if ds.shape[0] == 0:
        return []
    return [_as_str(s) for s in ds.asstr(errors="replace")[()]]


def _fill_value(dtype):
    """What marks "no value" in an array of this dtype: NaN for floats, -1 for integers (as the file's
    target_ids and target_ranks do)."""
    return np.nan if np.dtype(dtype).kind == "f" else -1


def point_depths(points, point_layers, n_layers):
    """Depth of each point as a fraction of the model: ``embed`` 0, ``mid.i`` (i + 0.5) / n_layers,
    ``post.i`` (i + 1) / n_layers (so the last layer's output is 1 whatever the model's depth)."""
    out = np.empty(len(points), np.float64)
    for n, (name, layer) in enumerate(zip(points, point_layers)):
        if layer < 0:
            out[n] = 0.0
        elif str(name).startswith("mid."):
            out[n] = (layer + 0.5) / n_layers
        else:
            out[n] = (layer + 1.0) / n_layers
    return out


class Run:
    """One result file.

    Attributes:
        path: the file name as given.
        attrs: the root attributes (``format``, ``model_path``, ``topk``, ...) as a dict.
        n_prompts, n_tokens, topk: lengths of the prompt, token and k axes.
        points: names of the captured points in depth order (``embed``, ``mid.0``, ``post.0``, ...).
        point_layers: the layer of each point (-1 for ``embed``), int array.
        n_layers: the model's layer count (root attribute ``n_layers``).
        depths: each point's depth as a fraction of the model (:func:`point_depths`), float array.
        prompt_offsets: prompt j covers tokens ``prompt_offsets[j]:prompt_offsets[j + 1]``.
        prompt_lengths: tokens of each prompt, int array.
        vocab: display string of every token id, or None when the model had no tokenizer.
        probs_vocab_index: vocabulary ids of the columns of saved probability rows, or None.

    ``len(run)`` is the number of prompts; iterating yields :class:`Prompt` objects; ``run[i]`` is
    ``run.prompt(i)``. Close with ``run.close()`` or use ``with logitlens.open(path) as run``.
    """

    def __init__(self, path):
        self.path = str(path)
        try:
            self._f = h5py.File(self.path, "r", rdcc_nbytes=CHUNK_CACHE_BYTES, rdcc_nslots=1009)
        except FileNotFoundError:
            raise
        except OSError as e:
            raise FormatError(f"{self.path}: not a logitlens result file (not an HDF5 file: {e})") from None
        try:
            self._check_and_load()
        except Exception:
            self._f.close()
            raise

    def _check_and_load(self):
        f = self._f
        fmt = _as_str(f.attrs.get("format"))
        if fmt is None:
            raise FormatError(f"{self.path}: not a logitlens result file (root attribute 'format' is missing)")
        if fmt != FORMAT:
            raise FormatError(f"{self.path}: not a logitlens result file (attribute 'format' is {fmt!r}, "
                              f"expected {FORMAT!r})")
        version = f.attrs.get("format_version")
        if version is None:
            raise FormatError(f"{self.path}: root attribute 'format_version' is missing")
        if int(version) != FORMAT_VERSION:
            newer = "; a newer logitlens wrote it, update this package" if int(version) > FORMAT_VERSION else ""
            raise FormatError(f"{self.path}: unsupported format_version {int(version)} "
                              f"(this loader reads format version {FORMAT_VERSION}{newer})")
        for name in ("tokens", "prompt_offsets", "points", "point_layers", "topk_ids"):
            if name not in f:
                raise FormatError(f"{self.path}: dataset '{name}' is missing (docs/hdf5-format.md)")
        self._open = {}
        self.attrs = {k: _attr_value(v) for k, v in f.attrs.items()}
        self.points = _strings(f["points"])
        self.point_layers = f["point_layers"][()]
        self.prompt_offsets = f["prompt_offsets"][()].astype(np.int64)
        self.n_prompts = len(self.prompt_offsets) - 1
        self.n_tokens = int(f["tokens"].shape[0])
        self.topk = int(f["topk_ids"].shape[2])
        if self.n_prompts < 0 or self.prompt_offsets[-1] != self.n_tokens:
            raise FormatError(f"{self.path}: dataset 'prompt_offsets' does not end at the token count "
                              f"{self.n_tokens}")
        self.prompt_lengths = np.diff(self.prompt_offsets)
        layers = self.point_layers
        self.n_layers = int(self.attrs.get("n_layers", (int(layers.max()) + 1) if len(layers) else 0))
        self.depths = point_depths(self.points, layers, max(1, self.n_layers))
        self.vocab = _strings(f["vocab"]) if "vocab" in f else None
        self._vocab_array = np.array(self.vocab, dtype=object) if self.vocab is not None else None
        self.probs_vocab_index = f["probs_vocab_index"][()] if "probs_vocab_index" in f else None
        self._probs_token_index = f["probs_token_index"][()] if "probs_token_index" in f else None

    # -- container protocol ------------------------------------------------------------------------
    def __len__(self):
        return self.n_prompts

    def __iter__(self):
        # in bulk, a block of prompts at a time (one read per dataset and block, not per prompt)
        for lo in range(0, self.n_prompts, 256):
            yield from self.prompts(range(lo, min(lo + 256, self.n_prompts)))

    def __getitem__(self, i):
        return self.prompt(i)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the file (arrays already read stay valid; a Prompt's ``hidden``/``probs`` not yet
        looked at can no longer be read)."""
        self._open.clear()
        self._f.close()

    def __repr__(self):
        return (f"<logitlens.Run {self.path!r}: {self.n_prompts} prompts, {self.n_tokens} tokens, "
                f"{len(self.points)} points, top-{self.topk}>")

    @property
    def file(self):
        """The underlying open ``h5py.File``."""
        return self._f

    def dataset(self, name):
        """The open ``h5py.Dataset`` ``name``, kept open: HDF5's chunk cache belongs to an open dataset,
        so reading prompt after prompt through the same handle decompresses each chunk once."""
        ds = self._open.get(name)
        if ds is None:
            ds = self._open[name] = self._f[name]
        return ds

    @cached_property
    def prompt_texts(self):
        """Every prompt's text (list of str), read once."""
        return _strings(self._f["prompts"]) if "prompts" in self._f else [""] * self.n_prompts

    @cached_property
    def prompt_target_texts(self):
        """Every prompt's explicit answer ("" for none), read once."""
        f = self._f
        return _strings(f["prompt_targets"]) if "prompt_targets" in f else [""] * self.n_prompts

    # -- tokens ------------------------------------------------------------------------------------
    def token_string(self, token_id):
        """Display string of one token id: the file's vocab entry, else ``#ID``."""
        i = int(token_id)
        if self.vocab is not None and 0 <= i < len(self.vocab):
            return self.vocab[i]
        return f"#{i}"

    def token_strings(self, ids):
        """Display strings of an array of ids, same shape (object array of str)."""
        ids = np.asarray(ids)
        out = np.empty(ids.shape, dtype=object)
        if self._vocab_array is not None:
            ok = (ids >= 0) & (ids < len(self._vocab_array))
            out[ok] = self._vocab_array[ids[ok]]
        else:
            ok = np.zeros(ids.shape, bool)
        bad = np.nonzero(~ok)
        for where in zip(*bad):
            out[where] = f"#{int(ids[where])}"
        return out

    # -- prompts -----------------------------------------------------------------------------------
    def _index(self, i):
        n = self.n_prompts
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"prompt index must be an integer, got {type(i).__name__}")
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"{self.path}: prompt {i}: the file has {n} prompts")
        return j

    def _indices(self, indices):
        if indices is None:
            return np.arange(self.n_prompts, dtype=np.int64)
        if isinstance(indices, slice):
            return np.arange(self.n_prompts, dtype=np.int64)[indices]
        return np.array([self._index(i) for i in np.asarray(indices).reshape(-1).tolist()], dtype=np.int64)

    def prompt(self, i):
        """Prompt ``i`` (negative counts from the end) as a :class:`Prompt`."""
        return self.prompts([self._index(i)])[0]

    def prompts(self, indices=None):
        """Several prompts (a list of indices, a range or slice; None: all) as a list of
        :class:`Prompt`, read in bulk: each dataset is read once for all of them, then split.
        ``hidden`` and ``probs`` are read per prompt when first looked at."""
        idx = self._indices(indices)
        if len(idx) == 0:
            return []
        lo, hi = self.prompt_offsets[idx], self.prompt_offsets[idx + 1]
        order = np.argsort(lo, kind="stable")
        # token rows of every prompt, in file order, each prompt's rows contiguous
        rows = np.concatenate([np.arange(lo[o], hi[o]) for o in order])
        uniq, inverse = np.unique(rows, return_inverse=True)
        cols = {name: gather(self.dataset(name), uniq)[inverse] for name in TOKEN_FIELDS}
        bounds = np.concatenate([[0], np.cumsum(hi[order] - lo[order])])
        out = [None] * len(idx)
        for n, o in enumerate(order):
            a, b = bounds[n], bounds[n + 1]
            arrays = {name: cols[name][a:b] for name in TOKEN_FIELDS}
            out[o] = Prompt(self, int(idx[o]), arrays)
        return out

    # -- many prompts at one position --------------------------------------------------------------
    def token_index(self, position=-1, prompts=None):
        """The token-axis index of position ``position`` (negative counts from each prompt's end) of each
        prompt (None: all), and whether the prompt has that position: ``(index, valid)``; index is -1
        where not valid."""
        idx = self._indices(prompts)
        lo, n = self.prompt_offsets[idx], self.prompt_lengths[idx]
        pos = np.full(len(idx), int(position), np.int64)
        pos = np.where(pos < 0, pos + n, pos)
        valid = (pos >= 0) & (pos < n)
        return np.where(valid, lo + pos, -1), valid

    def at_position(self, position=-1, prompts=None, fields=POSITION_FIELDS):
        """One position of every prompt (or of the given ones), vectorized: an ``xarray.Dataset`` with
        dimensions ``prompt``, ``point`` and ``k``: ``topk_ids``/``topk_probs`` ``[prompt, point, k]``,
        ``entropy``, ``kl_final``, ``target_probs``, ``target_logprobs``, ``target_ranks``
        ``[prompt, point]``, ``tokens`` and ``target_ids`` ``[prompt]``; ``valid`` ``[prompt]`` is False
        for a prompt too short to have that position (its values are NaN / -1). Coordinates: ``prompt``
        (index), ``position``, ``point`` (names) with ``layer`` and ``depth``. Dtypes are the file's.
        Each dataset is read once (the chunks holding the wanted rows), not prompt by prompt."""
        import xarray as xr

        idx = self._indices(prompts)
        tok, valid = self.token_index(position, idx)
        want = tok[valid]
        order = np.argsort(want, kind="stable")
        data = {}
        for name in fields:
            ds = self.dataset(name)
            rows = np.empty((len(want),) + ds.shape[1:], ds.dtype)
            rows[order] = gather(ds, want[order])
            full = np.full((len(idx),) + ds.shape[1:], _fill_value(ds.dtype), ds.dtype)
            full[valid] = rows
            dims = ("prompt", "point", "k")[:full.ndim]
            data[name] = (dims, full)
        data["valid"] = (("prompt",), valid)
        n = self.prompt_lengths[idx]
        pos = np.where(valid, np.where(position < 0, position + n, position), -1)
        coords = {"prompt": idx, "position": (("prompt",), pos.astype(np.int64)),
                  **self._point_coords()}
        if any(v[1].ndim == 3 for v in data.values()):
            coords["k"] = np.arange(self.topk)
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))

    def _point_coords(self):
        return {"point": np.array(self.points, dtype=object), "layer": (("point",), self.point_layers),
                "depth": (("point",), self.depths)}

    # -- research questions (analysis.py) ---------------------------------------------------------
    def first_layer(self, k=1, position=-1, prompts=None, stay=False):
        """Per prompt: the first layer at which the target is within the top ``k`` at ``position``
        (float; NaN where it never is or there is no target). See :func:`logitlens.first_layer`."""
        from .analysis import first_layer

        ds = self.at_position(position, prompts, fields=("target_ranks",))
        return first_layer(ds.target_ranks.values, self.point_layers, k=k, axis=-1, stay=stay)

    def summary(self, position=-1, prompts=None):
        """Reductions over prompts by point: see :func:`logitlens.layer_summary`."""
        from .analysis import layer_summary

        return layer_summary(self, position=position, prompts=prompts)

    # -- xarray ------------------------------------------------------------------------------------
    def to_xarray(self, probs=True, hidden=True, lazy=False):
        """The whole file as an ``xarray.Dataset``.

        Dimensions: ``token`` (all prompts packed), ``point``, ``k``, ``prompt``, ``prompt_edge``, and
        ``probs_row``/``probs_vocab`` and ``hidden_dim`` where saved (``probs=False``/``hidden=False``
        leave those large arrays out). Coordinates: ``point`` (names, so ``.sel(point="post.3")``) with
        ``point_layer`` and ``depth``; on ``token``: ``token_id``, ``prompt_index`` and ``position``;
        ``prompt`` (index); ``k``; on ``probs_row``: ``probs_token_index``, ``probs_prompt`` and
        ``probs_position``; ``probs_vocab`` (vocabulary ids). One prompt: :func:`logitlens.select_prompt`
        (``ds.where(ds.prompt_index == i)`` would broadcast ``probs`` over the token axis).

        ``lazy=True`` opens the file through h5netcdf instead (nothing large is read until used) and adds
        the same coordinates; the file stays open as long as the Dataset is in use.
        """
        import xarray as xr

        f = self._f
        tok = ("token",)
        tp = ("token", "point")
        if lazy:
            ds = xr.open_dataset(self.path, engine="h5netcdf", phony_dims="access")
            drop = ["points", "point_layers", "vocab", "vocab_bytes"]
            drop += ["probs"] if not probs else []
            drop += ["hidden"] if not hidden else []
            ds = ds.drop_vars([v for v in drop if v in ds.variables])
        else:
            data = {
                "tokens": (tok, f["tokens"][()]),
                "target_ids": (tok, f["target_ids"][()]),
                "topk_ids": (("token", "point", "k"), f["topk_ids"][()]),
                "topk_probs": (("token", "point", "k"), f["topk_probs"][()]),
                "entropy": (tp, f["entropy"][()]),
                "kl_final": (tp, f["kl_final"][()]),
                "target_probs": (tp, f["target_probs"][()]),
                "target_logprobs": (tp, f["target_logprobs"][()]),
                "target_ranks": (tp, f["target_ranks"][()]),
                "prompts": (("prompt",), np.array(self.prompt_texts, dtype=object)),
                "prompt_targets": (("prompt",), np.array(self.prompt_target_texts, dtype=object)),
                "prompt_offsets": (("prompt_edge",), self.prompt_offsets),
            }
            if probs and "probs" in f:
                data["probs"] = (("probs_row", "point", "probs_vocab"), f["probs"][()])
            if hidden and "hidden" in f:
                data["hidden"] = (("token", "point", "hidden_dim"), f["hidden"][()])
            ds = xr.Dataset(data, attrs=dict(self.attrs))
        token_prompt = f["token_prompt"][()]
        token_position = f["token_position"][()]
        coords = {
            "token": np.arange(self.n_tokens),
            "point": np.array(self.points, dtype=object),
            "point_layer": (("point",), self.point_layers),
            "depth": (("point",), self.depths),
            "k": np.arange(self.topk),
            "prompt": np.arange(self.n_prompts),
            "token_id": (tok, f["tokens"][()]),
            "prompt_index": (tok, token_prompt),
            "position": (tok, token_position),
        }
        if "probs" in ds:
            pti = self._probs_token_index
            coords["probs_token_index"] = (("probs_row",), pti)
            coords["probs_prompt"] = (("probs_row",), token_prompt[pti])
            coords["probs_position"] = (("probs_row",), token_position[pti])
            coords["probs_vocab"] = self.probs_vocab_index
        ds = ds.assign_coords(coords)
        if lazy:
            ds.attrs.update(self.attrs)
        return ds


def select_prompt(ds, i):
    """Prompt ``i`` of a Dataset from :meth:`Run.to_xarray`: its tokens (``isel`` on the token range,
    dtypes kept) and its saved probability rows only (``probs`` stays ``[probs_row, point, probs_vocab]``
    with just this prompt's rows, not broadcast over tokens)."""
    off = ds["prompt_offsets"].values
    n = len(off) - 1
    j = int(i) + n if int(i) < 0 else int(i)
    if not 0 <= j < n:
        raise IndexError(f"prompt {i}: the dataset has {n} prompts")
    sel = {"token": slice(int(off[j]), int(off[j + 1])), "prompt": [j], "prompt_edge": [j, j + 1]}
    if "probs_prompt" in ds.coords:
        sel["probs_row"] = np.nonzero(ds["probs_prompt"].values == j)[0]
    return ds.isel(sel)


class Prompt:
    """One prompt of a run; every array is indexed ``[point, position, ...]``.

    Attributes:
        index: the prompt's index in the run; text, target_text: as given to ``logitlens run``.
        offset: its first token on the file's token axis; ``len(prompt)`` is its token count.
        points: point names (rows of every array); layers, depths: as :class:`Run`'s point_layers/depths.
        tokens: token ids ``[position]``; token_strings: their display strings.
        topk_ids, topk_probs, topk_strings: ``[point, position, k]``, most probable first.
        entropy, kl_final: ``[point, position]``, nats.
        target_ids: ``[position]`` (-1 where there is no target).
        target_probs, target_logprobs, target_ranks: ``[point, position]`` (NaN / -1 without target).
        probs: saved probability rows ``[point, saved_position, vocab]`` (float16) or None;
        probs_positions: the positions those rows are for; probs_vocab: the vocabulary ids of the columns.
        hidden: ``[point, position, d_model]`` float32 residual stream, or None when not saved.
        (``topk_strings``, ``probs`` and ``hidden`` are read or built when first looked at.)
    """

    def __init__(self, run, index, arrays=None):
        lo, hi = int(run.prompt_offsets[index]), int(run.prompt_offsets[index + 1])
        self.run = run
        self.index = index
        self.offset = lo
        self.points = run.points
        self.layers = run.point_layers
        self.depths = run.depths
        self.text = run.prompt_texts[index]
        self.target_text = run.prompt_target_texts[index]
        if arrays is None:
            arrays = {name: run.dataset(name)[lo:hi] for name in TOKEN_FIELDS}
        for name in TOKEN_FIELDS:
            a = arrays[name]
            setattr(self, name, np.moveaxis(a, 0, 1) if a.ndim > 1 else a)
        self.token_strings = list(run.token_strings(self.tokens))

    @cached_property
    def topk_strings(self):
        return self.run.token_strings(self.topk_ids)

    @cached_property
    def hidden(self):
        f = self.run.file
        if "hidden" not in f:
            return None
        return np.moveaxis(self.run.dataset("hidden")[self.offset:self.offset + len(self)], 0, 1)

    @cached_property
    def _probs(self):
        run, f = self.run, self.run.file
        pti = run._probs_token_index
        if pti is None or "probs" not in f:
            return None, None, None
        lo, hi = self.offset, self.offset + len(self)
        sel = np.nonzero((pti >= lo) & (pti < hi))[0]
        block = gather(run.dataset("probs"), sel)
        return np.moveaxis(block, 0, 1), pti[sel] - lo, run.probs_vocab_index

    @property
    def probs(self):
        return self._probs[0]

    @property
    def probs_positions(self):
        return self._probs[1]

    @property
    def probs_vocab(self):
        return self._probs[2]

    def __len__(self):
        return len(self.tokens)

    def position(self, j):
        """Normalizes a position (negative counts from the end); IndexError when out of range."""
        n = len(self)
        k = int(j) + n if j < 0 else int(j)
        if not 0 <= k < n:
            raise IndexError(f"position {j}: prompt {self.index} has {n} positions")
        return k

    def first_layer(self, k=1, stay=False):
        """Per position: the first layer at which the target is within the top ``k`` (float; NaN where
        it never is or there is no target). See :func:`logitlens.first_layer`."""
        from .analysis import first_layer

        return first_layer(self.target_ranks, self.layers, k=k, axis=0, stay=stay)

    def __repr__(self):
        return f"<logitlens.Prompt {self.index} ({len(self)} tokens): {self.text[:60]!r}>"
