"""Run and Prompt: a logitlens result file and one prompt of it, as numpy arrays.

The file stores every per-token array token-major (``[token, point, ...]``, all prompts packed). A
``Prompt`` turns that around into the shape one looks at: ``[point, position, ...]``.
"""

import h5py
import numpy as np

FORMAT = "logitlens.lens"
FORMAT_VERSION = 1


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


class Run:
    """One result file.

    Attributes:
        path: the file name as given.
        attrs: the root attributes (``format``, ``model_path``, ``topk``, ...) as a dict.
        n_prompts, n_tokens, topk: lengths of the prompt, token and k axes.
        points: names of the captured points in depth order (``embed``, ``mid.0``, ``post.0``, ...).
        point_layers: the layer of each point (-1 for ``embed``), int array.
        prompt_offsets: prompt j covers tokens ``prompt_offsets[j]:prompt_offsets[j + 1]``.
        vocab: display string of every token id, or None when the model had no tokenizer.
        probs_vocab_index: vocabulary ids of the columns of saved probability rows, or None.

    ``len(run)`` is the number of prompts; iterating yields :class:`Prompt` objects; ``run[i]`` is
    ``run.prompt(i)``. Close with ``run.close()`` or use ``with logitlens.open(path) as run``.
    """

    def __init__(self, path):
        self.path = str(path)
        try:
            self._f = h5py.File(self.path, "r")
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
        self.vocab = _strings(f["vocab"]) if "vocab" in f else None
        self.probs_vocab_index = f["probs_vocab_index"][()] if "probs_vocab_index" in f else None
        self._probs_token_index = f["probs_token_index"][()] if "probs_token_index" in f else None

    # -- container protocol ------------------------------------------------------------------------
    def __len__(self):
        return self.n_prompts

    def __iter__(self):
        for i in range(self.n_prompts):
            yield self.prompt(i)

    def __getitem__(self, i):
        return self.prompt(i)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Closes the file (arrays already read stay valid)."""
        self._f.close()

    def __repr__(self):
        return (f"<logitlens.Run {self.path!r}: {self.n_prompts} prompts, {self.n_tokens} tokens, "
                f"{len(self.points)} points, top-{self.topk}>")

    @property
    def file(self):
        """The underlying open ``h5py.File``."""
        return self._f

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
        flat = out.reshape(-1)
        for n, i in enumerate(ids.reshape(-1)):
            flat[n] = self.token_string(i)
        return out

    # -- prompts -----------------------------------------------------------------------------------
    def prompt(self, i):
        """Prompt ``i`` (negative counts from the end) as a :class:`Prompt`."""
        n = self.n_prompts
        if not isinstance(i, (int, np.integer)):
            raise TypeError(f"prompt index must be an integer, got {type(i).__name__}")
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"{self.path}: prompt {i}: the file has {n} prompts")
        return Prompt(self, j)

    # -- xarray ------------------------------------------------------------------------------------
    def to_xarray(self, probs=True, hidden=True):
        """The whole file as an ``xarray.Dataset`` (read into memory).

        Dimensions: ``token`` (all prompts packed), ``point``, ``k``, ``prompt``, ``prompt_edge``, and
        ``probs_row``/``probs_vocab`` and ``hidden_dim`` where saved (``probs=False``/``hidden=False``
        leave those large arrays out). Coordinates: ``point`` (names) with ``point_layer``; on ``token``:
        ``token_id``, ``prompt_index`` and ``position``; ``prompt`` (index); ``k``; ``probs_token_index``
        and ``probs_vocab`` (vocabulary ids) for saved rows. Select one prompt with
        ``ds.where(ds.prompt_index == 3, drop=True)`` or ``ds.isel(token=slice(*run.prompt_offsets[3:5]))``.
        """
        import xarray as xr

        f = self._f
        tok = ("token",)
        tp = ("token", "point")
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
            "prompts": (("prompt",), np.array(_strings(f["prompts"]), dtype=object)),
            "prompt_targets": (("prompt",), np.array(_strings(f["prompt_targets"]), dtype=object)),
            "prompt_offsets": (("prompt_edge",), self.prompt_offsets),
        }
        coords = {
            "token": np.arange(self.n_tokens),
            "point": np.array(self.points, dtype=object),
            "point_layer": (("point",), self.point_layers),
            "k": np.arange(self.topk),
            "prompt": np.arange(self.n_prompts),
            "token_id": (tok, f["tokens"][()]),
            "prompt_index": (tok, f["token_prompt"][()]),
            "position": (tok, f["token_position"][()]),
        }
        if probs and "probs" in f:
            data["probs"] = (("probs_row", "point", "probs_vocab"), f["probs"][()])
            coords["probs_token_index"] = (("probs_row",), self._probs_token_index)
            coords["probs_vocab"] = self.probs_vocab_index
        if hidden and "hidden" in f:
            data["hidden"] = (("token", "point", "hidden_dim"), f["hidden"][()])
        return xr.Dataset(data, coords=coords, attrs=dict(self.attrs))


class Prompt:
    """One prompt of a run; every array is indexed ``[point, position, ...]``.

    Attributes:
        index: the prompt's index in the run; text, target_text: as given to ``logitlens run``.
        offset: its first token on the file's token axis; ``len(prompt)`` is its token count.
        points: point names (rows of every array).
        tokens: token ids ``[position]``; token_strings: their display strings.
        topk_ids, topk_probs, topk_strings: ``[point, position, k]``, most probable first.
        entropy, kl_final: ``[point, position]``, nats.
        target_ids: ``[position]`` (-1 where there is no target).
        target_probs, target_logprobs, target_ranks: ``[point, position]`` (NaN / -1 without target).
        probs: saved probability rows ``[point, saved_position, vocab]`` (float16) or None;
        probs_positions: the positions those rows are for; probs_vocab: the vocabulary ids of the columns.
        hidden: ``[point, position, d_model]`` float32 residual stream, or None when not saved.
    """

    def __init__(self, run, index):
        f = run.file
        lo, hi = int(run.prompt_offsets[index]), int(run.prompt_offsets[index + 1])
        self.run = run
        self.index = index
        self.offset = lo
        self.points = run.points
        self.text = _as_str(f["prompts"].asstr(errors="replace")[index]) if "prompts" in f else ""
        self.target_text = (_as_str(f["prompt_targets"].asstr(errors="replace")[index])
                            if "prompt_targets" in f else "")

        def rows(name):
            a = f[name][lo:hi]
            return np.moveaxis(a, 0, 1) if a.ndim > 1 else a

        self.tokens = rows("tokens")
        self.target_ids = rows("target_ids")
        self.topk_ids = rows("topk_ids")
        self.topk_probs = rows("topk_probs")
        self.entropy = rows("entropy")
        self.kl_final = rows("kl_final")
        self.target_probs = rows("target_probs")
        self.target_logprobs = rows("target_logprobs")
        self.target_ranks = rows("target_ranks")
        self.token_strings = [run.token_string(t) for t in self.tokens]
        self.topk_strings = run.token_strings(self.topk_ids)
        self.hidden = rows("hidden") if "hidden" in f else None
        self.probs = self.probs_positions = self.probs_vocab = None
        pti = run._probs_token_index
        if pti is not None and "probs" in f:
            sel = np.nonzero((pti >= lo) & (pti < hi))[0]
            self.probs_positions = pti[sel] - lo
            self.probs_vocab = run.probs_vocab_index
            block = f["probs"][sel] if len(sel) else np.zeros((0,) + f["probs"].shape[1:], f["probs"].dtype)
            self.probs = np.moveaxis(block, 0, 1)

    def __len__(self):
        return len(self.tokens)

    def position(self, j):
        """Normalizes a position (negative counts from the end); IndexError when out of range."""
        n = len(self)
        k = int(j) + n if j < 0 else int(j)
        if not 0 <= k < n:
            raise IndexError(f"position {j}: prompt {self.index} has {n} positions")
        return k

    def __repr__(self):
        return f"<logitlens.Prompt {self.index} ({len(self)} tokens): {self.text[:60]!r}>"
