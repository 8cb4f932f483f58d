"""Read logitlens result files (docs/hdf5-format.md) in Python.

    import logitlens
    with logitlens.open("run.h5") as run:
        p = run.prompt(0)
        p.topk_strings[:, -1, 0]      # top-1 token of every point at the last position
        ds = run.to_xarray()          # everything as an xarray.Dataset with named dimensions

Plots live in ``logitlens.plot`` (needs matplotlib): ``lens_grid`` and ``layer_curve``.
"""
from .run import FORMAT, FORMAT_VERSION, FormatError, Prompt, Run, open

__all__ = ["FORMAT", "FORMAT_VERSION", "FormatError", "Prompt", "Run", "open"]
