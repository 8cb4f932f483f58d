"""Read logitlens result files (docs/hdf5-format.md) in Python.

    import logitlens
    with logitlens.open("run.h5") as run:
        p = run.prompt(0)
        p.topk_strings[:, -1, 0]      # top-1 token of every point at the last position
        last = run.at_position(-1)    # the last position of every prompt, [prompt, point, ...], in bulk
        run.first_layer(k=1)          # per prompt: first layer where the answer is top-1 (NaN: never)
        ds = run.to_xarray()          # everything as an xarray.Dataset with named dimensions

Plots: ``logitlens.plot`` (matplotlib: ``lens_grid``, ``layer_curve``, ``trajectories``) and
``logitlens.html`` (Plotly: ``lens_html``), imported on first use; from the shell ``logitlens-plot``.
"""
import importlib

from .analysis import first_layer, first_point, largest_drop_layer, layer_summary
from .sweep import open_sweep  # noqa: F401 (a sweep directory as one lazy Dataset)
from .run import FORMAT, FORMAT_VERSION, FormatError, Prompt, Run, open, point_depths, select_prompt

# The package's version is the engine's (LL_VERSION in include/ll_common.h; tests/test_pkg_install.py
# checks that they agree). FORMAT_VERSION is the result-file format version this package reads.
__version__ = "0.1.0"

__all__ = ["FORMAT", "FORMAT_VERSION", "FormatError", "Prompt", "Run", "open", "select_prompt",
           "point_depths", "first_layer", "first_point", "largest_drop_layer", "layer_summary",
           "__version__"]

_SUBMODULES = ("plot", "html", "cli", "sweep")


def __getattr__(name):
    # `import logitlens` then `logitlens.plot.lens_grid(...)` works without importing matplotlib (or
    # plotly) until a plot is asked for.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'logitlens' has no attribute {name!r}")
