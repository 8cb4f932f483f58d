"""A sweep directory (the OUT of ``logitlens sweep plan``, docs/sweeps.md) as one lazy xarray Dataset.

    import logitlens
    ds = logitlens.open_sweep("runs/capitals")        # nothing large is read yet
    ds.target_probs.sel(model="gpt2", point="post.5")  # reads gpt2's finished shard files, that variable
    ds.where(ds.done).target_ranks.mean("prompt")
    runs = ds.sweep.runs(model="gpt2")                 # the per-task Run objects (token-level data)

No merge is needed: each finished task's result file (``OUT/results/MODEL/SHARD.h5``) is read with
:class:`logitlens.Run` (``Run.at_position``, in bulk) when a variable is first looked at.
"""
import json
import os

import numpy as np

from .run import Run, point_depths

# Per-prompt quantities at one position: name in the Dataset -> (dataset of the result file, k index or
# None, dims after (model, prompt)). Their dtypes are the file's (docs/hdf5-format.md).
FIELDS = {
    "tokens": ("tokens", None, ()),
    "target_ids": ("target_ids", None, ()),
    "target_probs": ("target_probs", None, ("point",)),
    "target_logprobs": ("target_logprobs", None, ("point",)),
    "target_ranks": ("target_ranks", None, ("point",)),
    "entropy": ("entropy", None, ("point",)),
    "kl_final": ("kl_final", None, ("point",)),
    "top1_ids": ("topk_ids", 0, ("point",)),
    "top1_probs": ("topk_probs", 0, ("point",)),
    "topk_ids": ("topk_ids", None, ("point", "k")),
    "topk_probs": ("topk_probs", None, ("point", "k")),
}
# The format's dtypes, used only when no task of the sweep has finished (nothing to take them from).
FORMAT_DTYPES = {"tokens": np.int32, "target_ids": np.int32, "topk_ids": np.int32, "topk_probs": np.float32,
                 "entropy": np.float32, "kl_final": np.float32, "target_probs": np.float32,
                 "target_logprobs": np.float32, "target_ranks": np.int32}


_LAZY_CLASS = None


def _lazy(*args):
    """A _SweepArray that is also an xarray BackendArray (made on first use: xarray imported then), in
    xarray's LazilyIndexedArray."""
    global _LAZY_CLASS
    from xarray.backends import BackendArray
    from xarray.core import indexing

    if _LAZY_CLASS is None:
        _LAZY_CLASS = type("SweepBackendArray", (_SweepArray, BackendArray), {})
    return indexing.LazilyIndexedArray(_LAZY_CLASS(*args))


def _fill(dtype):
    kind = np.dtype(dtype).kind
    return np.nan if kind == "f" else False if kind == "b" else -1


def _point_key(name):
    """Depth order of a point name: embed, mid.0, post.0, mid.1, post.1, ..."""
    if name == "embed":
        return (-1, 0, name)
    kind, _, layer = name.partition(".")
    try:
        return (int(layer), 0 if kind == "mid" else 1, name)
    except ValueError:
        return (1 << 30, 0, name)


def _point_layer(name):
    k = _point_key(name)[0]
    return -1 if name == "embed" else int(k)


def _task_done(task):
    out = task["output"]
    return os.path.isfile(out) and not os.path.exists(out + ".journal")


def _task_record_state(out_dir, task_id):
    try:
        with open(os.path.join(out_dir, "tasks", "%d.json" % task_id)) as f:
            return str(json.load(f).get("state", ""))
    except (OSError, ValueError):
        return ""


class _Reader:
    """Reads, per task and per source field, the rows of one position of every prompt of the task, on
    demand, and keeps what it read (so each (task, field) is read at most once)."""

    def __init__(self, sweep):
        self.s = sweep
        self.cache = {}

    def task_field(self, ti, field):
        key = (ti, field)
        if key not in self.cache:
            t = self.s.tasks[ti]
            fields = (field,) if field in FORMAT_DTYPES else ("tokens",)
            with Run(t["output"]) as run:
                ds = run.at_position(self.s.position, fields=fields)
                for f in fields:
                    self.cache[(ti, f)] = ds[f].values
                self.cache[(ti, "valid")] = ds["valid"].values
                self.cache[(ti, "position")] = ds["position"].values
                self.cache[(ti, "_points")] = list(run.points)
        return self.cache[key]


class _SweepArray:
    """The lazy array of one variable [model, prompt, (point, (k))]: reading it opens only the finished
    tasks that hold the requested models and prompts."""

    def __init__(self, sweep, reader, name, src, kidx, extra_dims, dtype):
        self.s, self.r, self.name, self.src, self.kidx = sweep, reader, name, src, kidx
        self.dtype = np.dtype(dtype)
        shape = [len(sweep.models), sweep.n_prompts]
        for d in extra_dims:
            shape.append(len(sweep.points) if d == "point" else sweep.topk)
        self.shape = tuple(shape)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape, dtype=np.int64))

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        from xarray.core import indexing

        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._raw)

    def _raw(self, key):
        # key: a tuple of ints, slices and 1-D int arrays (outer indexing); read the needed (model, shard)
        # tasks into a full [model, prompt, ...] block of the selected models and prompts, then index.
        s = self.s
        mi = np.arange(self.shape[0])[key[0]]
        pi = np.arange(self.shape[1])[key[1]]
        m_sel, p_sel = np.atleast_1d(mi), np.atleast_1d(pi)
        block = np.full((len(m_sel), len(p_sel)) + self.shape[2:], _fill(self.dtype), self.dtype)
        for a, m in enumerate(m_sel):
            for sh, (lo, hi) in enumerate(s.shard_ranges):
                inside = np.nonzero((p_sel >= lo) & (p_sel < hi))[0]
                ti = s.task_grid[m][sh]
                if len(inside) == 0 or ti < 0 or not s.done[m, lo]:
                    continue
                rows = p_sel[inside] - lo
                vals = self.r.task_field(ti, self.src)[rows]
                if self.kidx is not None:
                    vals = vals[:, :, self.kidx]
                if vals.ndim >= 2:  # point axis: the task's points onto the sweep's
                    cols = s.point_index(self.r.task_field(ti, "_points"))
                    out = np.full((len(rows),) + self.shape[2:], _fill(self.dtype), self.dtype)
                    if vals.ndim == 3:
                        kk = min(vals.shape[2], self.shape[3])
                        out[:, cols, :kk] = vals[:, :, :kk]
                    else:
                        out[:, cols] = vals
                    vals = out
                block[a, inside] = vals
        # the other axes (point, k) one at a time (outer indexing), then drop the integer-indexed axes
        for ax in range(len(key) - 1, 1, -1):
            k = key[ax]
            block = block[(slice(None),) * ax + (k,)] if not isinstance(k, np.ndarray) else np.take(block, k, axis=ax)
        return block[(0 if np.ndim(mi) == 0 else slice(None), 0 if np.ndim(pi) == 0 else slice(None))]


class _Sweep:
    def __init__(self, out_dir, position):
        self.out = os.path.abspath(str(out_dir))
        manifest = os.path.join(self.out, "sweep.json")
        with open(manifest) as f:
            m = json.load(f)
        if m.get("format") != "logitlens.sweep":
            raise ValueError(f"{manifest}: not a logitlens sweep manifest (format {m.get('format')!r})")
        self.manifest = m
        self.position = int(position)
        self.models = [x["name"] for x in m["models"]]
        self.shards = m["shards"]
        # prompt axis: every set's prompts in the order the shards list them
        self.shard_ranges, sets, within = [], [], []
        n = 0
        for sh in self.shards:
            k = int(sh["prompts"])
            self.shard_ranges.append((n, n + k))
            sets += [sh["set"]] * k
            within += list(range(int(sh["first_prompt"]), int(sh["first_prompt"]) + k))
            n += k
        self.n_prompts = n
        self.prompt_set = np.array(sets, dtype=object)
        self.prompt_within = np.array(within, dtype=np.int64)
        shard_no = {sh["name"]: j for j, sh in enumerate(self.shards)}
        model_no = {name: j for j, name in enumerate(self.models)}
        self.tasks = m["tasks"]
        self.task_grid = [[-1] * len(self.shards) for _ in self.models]
        self.task_done = np.zeros((len(self.models), len(self.shards)), bool)
        self.task_state = np.full((len(self.models), len(self.shards)), "missing", dtype=object)
        self.task_file = np.full((len(self.models), len(self.shards)), "", dtype=object)
        for ti, t in enumerate(self.tasks):
            a, b = model_no[t["model"]], shard_no[t["shard"]]
            self.task_grid[a][b] = ti
            self.task_file[a, b] = t["output"]
            self.task_done[a, b] = _task_done(t)
            rec = _task_record_state(self.out, int(t["id"]))
            # as `sweep status` (without squeue): the file first, then the record
            self.task_state[a, b] = ("done" if self.task_done[a, b] else "running" if rec == "running" else
                                     "failed" if rec in ("failed", "interrupted") else "pending")
        self.done = np.zeros((len(self.models), n), bool)
        for b, (lo, hi) in enumerate(self.shard_ranges):
            self.done[:, lo:hi] = self.task_done[:, b][:, None]
        # metadata of one finished file per model: its points, layer count and dtypes (no data read)
        self.model_points, self.model_layers, self.dtypes, self.topk = {}, {}, {}, 0
        for a, name in enumerate(self.models):
            for b in range(len(self.shards)):
                if self.task_done[a, b]:
                    with Run(self.task_file[a, b]) as run:
                        self.model_points[name] = list(run.points)
                        self.model_layers[name] = run.n_layers
                        self.topk = max(self.topk, run.topk)
                        for f in FORMAT_DTYPES:
                            self.dtypes.setdefault(f, run.dataset(f).dtype)
                    break
        for f, d in FORMAT_DTYPES.items():
            self.dtypes.setdefault(f, np.dtype(d))
        names = set()
        for pts in self.model_points.values():
            names.update(pts)
        self.points = sorted(names, key=_point_key)
        self._pindex = {p: j for j, p in enumerate(self.points)}

    def point_index(self, names):
        return np.array([self._pindex[p] for p in names], dtype=np.int64)

    def depth(self):
        d = np.full((len(self.models), len(self.points)), np.nan)
        for a, name in enumerate(self.models):
            pts = self.model_points.get(name)
            if pts:
                layers = [_point_layer(p) for p in pts]
                d[a, self.point_index(pts)] = point_depths(pts, layers, max(1, self.model_layers[name]))
        return d


def open_sweep(path, position=-1):
    """Opens a sweep directory (the OUT of ``logitlens sweep plan``) as one lazy ``xarray.Dataset``.

    Reads ``OUT/sweep.json`` and, per model, the metadata of one finished result file (points, layer
    count, dtypes); no merge (``sweep merge``) is needed, and unfinished tasks are allowed.

    Dimensions: ``model``, ``prompt`` (every prompt of every set, in the manifest's shard order),
    ``point`` (the union of the models' points in depth order: ``embed``, ``mid.0``, ``post.0``, ...),
    ``k`` and ``shard``. Coordinates: ``model`` (names), ``prompt`` (the prompt's index within its set;
    with several sets it repeats, so select with ``prompt_set`` too), ``prompt_set`` [prompt],
    ``point`` (names), ``layer`` [point] (``embed`` -1), ``depth`` [model, point] (0 at ``embed``, 1 at the
    model's last layer; NaN where a model has no such point: models of different depth share the
    ``point`` axis by name), ``shard`` (names) and ``shard_of`` [prompt].

    Per prompt, at position ``position`` of the prompt (default -1, the last; negative counts from each
    prompt's end), with the result file's dtypes: ``target_probs``, ``target_logprobs``, ``target_ranks``,
    ``entropy``, ``kl_final``, ``top1_ids``, ``top1_probs`` [model, prompt, point]; ``topk_ids``,
    ``topk_probs`` [model, prompt, point, k]; ``tokens`` (the input token there) and ``target_ids``
    [model, prompt]. Ids are each model's own vocabulary ids. ``valid`` [model, prompt] is False where the
    prompt is shorter than ``position`` reaches, ``position_index`` [model, prompt] is the position read.

    Unfinished tasks: ``done`` [model, prompt] is False for the prompts of a task whose result file is
    not complete (absent, or its ``.journal`` still beside it), and their values are NaN (floats) / -1
    (integers), ``valid`` False; ``task_done``, ``task_state`` (``done``: the file is complete; else
    from ``OUT/tasks/ID.json``: ``running``, ``failed`` (failed or interrupted), ``pending`` (anything
    else, no record); squeue is not asked, so a SLURM task that left the queue still shows ``running``) and ``task_file`` [model, shard] describe every task.

    Lazy: every per-prompt variable above is an xarray lazily indexed array; a value is read when first
    looked at (``.values``, ``.load()``, printing values, arithmetic): only the finished tasks that hold
    the selected models and prompts are opened, each (task, file dataset) read once with
    ``Run.at_position`` and kept. ``done``, ``task_*`` and the coordinates are in memory from the start.
    With dask installed, ``ds.chunk()`` makes them dask arrays.

    Token-level data (every position, hidden states, saved probabilities): ``ds.sweep.runs(...)`` gives
    the per-task :class:`logitlens.Run` objects. The models have different tokenizers, so their token
    axes do not line up across models (a prompt has a different number of tokens in each); compare models
    per prompt at a position (this Dataset), or by depth.
    """
    import xarray as xr

    global _ACCESSOR
    if _ACCESSOR is None:
        _ACCESSOR = _register_accessor()
    s = _Sweep(path, position)
    r = _Reader(s)
    data = {}
    for name, (src, kidx, extra) in FIELDS.items():
        data[name] = xr.Variable(("model", "prompt") + extra, _lazy(s, r, name, src, kidx, extra, s.dtypes[src]))
    data["valid"] = xr.Variable(("model", "prompt"), _lazy(s, r, "valid", "valid", None, (), bool))
    data["position_index"] = xr.Variable(("model", "prompt"),
                                         _lazy(s, r, "position_index", "position", None, (), np.int64))
    data["done"] = (("model", "prompt"), s.done)
    data["task_done"] = (("model", "shard"), s.task_done)
    data["task_state"] = (("model", "shard"), s.task_state.astype(str))
    data["task_file"] = (("model", "shard"), s.task_file.astype(str))
    coords = {
        "model": np.array(s.models, dtype=object),
        "prompt": s.prompt_within,
        "prompt_set": (("prompt",), s.prompt_set),
        "shard_of": (("prompt",), np.repeat([sh["name"] for sh in s.shards],
                                            [hi - lo for lo, hi in s.shard_ranges]).astype(object)),
        "point": np.array(s.points, dtype=object),
        "layer": (("point",), np.array([_point_layer(p) for p in s.points], dtype=np.int64)),
        "depth": (("model", "point"), s.depth()),
        "k": np.arange(s.topk),
        "shard": np.array([sh["name"] for sh in s.shards], dtype=object),
    }
    attrs = {"sweep": str(s.manifest.get("name", "")), "out": s.out, "position": s.position,
             "n_tasks": len(s.tasks), "n_tasks_done": int(s.task_done.sum())}
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _register_accessor():
    import xarray as xr

    @xr.register_dataset_accessor("sweep")
    class SweepAccessor:
        """``ds.sweep.runs(model=None, shard=None)`` on a Dataset of :func:`open_sweep` (or a selection
        of it): ``{(model, shard): logitlens.Run}`` of the finished tasks, open (close them, or use
        ``ds.sweep.run(model, shard)`` in a ``with``). Token axes differ between models (their own
        tokenizers): compare across models per prompt, not per token."""

        def __init__(self, ds):
            self._ds = ds

        def _tasks(self):
            """task_file and task_done [model, shard] (a scalar model/shard of a selection put back)."""
            ds = self._ds
            if "task_file" not in ds:
                raise AttributeError("ds.sweep: not a Dataset of logitlens.open_sweep (no task_file)")
            tf, td = ds["task_file"], ds["task_done"]
            for d in ("model", "shard"):
                if d not in tf.dims:
                    tf, td = tf.expand_dims(d), td.expand_dims(d)
            return tf.transpose("model", "shard"), td.transpose("model", "shard")

        def runs(self, model=None, shard=None):
            tf, td = self._tasks()
            out = {}
            for m in tf["model"].values if model is None else np.atleast_1d(model):
                for sh in tf["shard"].values if shard is None else np.atleast_1d(shard):
                    if bool(td.sel(model=m, shard=sh)):
                        out[(str(m), str(sh))] = Run(str(tf.sel(model=m, shard=sh).values))
            return out

        def run(self, model, shard):
            tf, td = self._tasks()
            if not bool(td.sel(model=model, shard=shard)):
                raise ValueError(f"task ({model}, {shard}) has not finished")
            return Run(str(tf.sel(model=model, shard=shard).values))

    return SweepAccessor


_ACCESSOR = None  # registered on the first open_sweep (so that importing logitlens does not import xarray)
