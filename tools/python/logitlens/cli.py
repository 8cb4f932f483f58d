"""``logitlens-plot`` (also ``logitlens plot``, which runs it): pictures of a result file or a sweep.

    logitlens-plot RUN.h5 [--prompt I] [--out FILE] [--kind lens|curve|trajectories] ...
    logitlens-plot SWEEPDIR [--out FILE.png] [--value V] [--position J]

A sweep directory (the OUT of ``logitlens sweep plan``) gives the trajectories of every model against
depth on one figure (the finished tasks' prompts; ``logitlens.open_sweep``).

``--out`` ending in ``.html`` writes the interactive Plotly heatmap (self-contained); any other extension
(``.png``, ``.svg``, ``.pdf``) a matplotlib figure. Exit codes as the logitlens command line: 2 bad
command line, 3 not a (readable) result file, 4 I/O.
"""
import argparse
import os
import sys

from .run import FormatError


def _parser():
    ap = argparse.ArgumentParser(
        prog="logitlens-plot",
        description="Plot a logitlens result file: the logit-lens heatmap of one prompt (interactive HTML or "
                    "an image), the target's probability and rank across layers at one position, or "
                    "trajectories over many prompts.")
    ap.add_argument("run", metavar="RUN.h5|SWEEPDIR",
                    help="a result file written by `logitlens run`, or a sweep directory (trajectories of every model)")
    ap.add_argument("--out", metavar="FILE", help="output: .html (interactive, Plotly) or .png/.svg/.pdf "
                    "(matplotlib); default RUN-KIND.html for the lens, RUN-KIND.png otherwise")
    ap.add_argument("--kind", choices=("lens", "curve", "trajectories"), default="lens",
                    help="lens: points x positions heatmap (default); curve: target probability and rank "
                         "across points at --position; trajectories: a value across depth for every prompt")
    ap.add_argument("--prompt", type=int, default=0, help="prompt index (default 0; negative counts from the end)")
    ap.add_argument("--position", type=int, default=-1,
                    help="position for --kind curve/trajectories (default -1, the last)")
    ap.add_argument("--value", default=None,
                    help="lens: prob (default) or entropy; trajectories: target_probs (default), target_ranks, "
                         "entropy or kl_final")
    ap.add_argument("--positions", type=int, default=None,
                    help="lens: show at most the last N positions (default 48 in HTML, 24 in an image)")
    ap.add_argument("--dpi", type=int, default=120, help="image resolution (default 120)")
    return ap


def _fail(msg, code):
    print(f"logitlens-plot: {msg}", file=sys.stderr)
    return code


def _plot_sweep(args):
    """Every model's trajectories of one value against depth, on one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import plot
    from .sweep import open_sweep

    out = args.out or os.path.join(args.run.rstrip("/"), "trajectories.png")
    if out.lower().endswith((".html", ".htm")):
        return _fail(f"--out {out}: a sweep is drawn as an image; give .png, .svg or .pdf", 2)
    value = args.value or "target_probs"
    try:
        ds = open_sweep(args.run, position=args.position)
    except FileNotFoundError as e:
        return _fail(f"cannot open {e.filename or args.run}: {e.strerror or e}", 4)
    except (FormatError, ValueError, KeyError) as e:
        return _fail(f"{args.run}: {e}", 3)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    drawn = 0
    for m in ds["model"].values:
        part = ds.sel(model=m)
        if not bool(part["done"].values.any()):
            continue
        part = part.isel(prompt=part["done"].values)
        try:
            plot.trajectories(part, value=value, ax=ax, label=f"{m} ({part.sizes['prompt']} prompts)")
        except ValueError as e:
            return _fail(str(e), 2)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return _fail(f"{args.run}: no finished task to draw (see logitlens sweep status)", 3)
    ax.legend(fontsize="small")
    ax.set_title(f"{os.path.basename(os.path.normpath(args.run))}: {drawn} models, position {args.position}")
    try:
        fig.savefig(out, dpi=args.dpi, bbox_inches="tight", pad_inches=0.05)
    except OSError as e:
        return _fail(f"cannot write {out}: {e.strerror or e}", 4)
    finally:
        plt.close(fig)
    print(out)
    return 0


def main(argv=None):
    args = _parser().parse_args(argv)
    if os.path.isdir(args.run):
        return _plot_sweep(args)
    out = args.out or f"{os.path.splitext(args.run)[0]}-{args.kind}.{'html' if args.kind == 'lens' else 'png'}"
    html = out.lower().endswith((".html", ".htm"))
    if html and args.kind != "lens":
        return _fail(f"--out {out}: HTML is written for --kind lens only; give .png, .svg or .pdf", 2)
    value = args.value or ("prob" if args.kind == "lens" else "target_probs")
    from . import open as open_run

    try:
        with open_run(args.run) as run:
            if args.kind == "trajectories":
                target = run
            else:
                try:
                    target = run.prompt(args.prompt)
                except IndexError:
                    return _fail(f"--prompt {args.prompt}: {args.run} has {len(run)} prompts", 2)
            if html:
                from .html import lens_html

                lens_html(target, out, value=value, max_positions=args.positions or 48)
            else:
                import matplotlib

                matplotlib.use("Agg")
                import matplotlib.pyplot as plt

                from . import plot

                if args.kind == "lens":
                    ax = plot.lens_grid(target, value=value, max_positions=args.positions or 24)
                elif args.kind == "curve":
                    ax = plot.layer_curve(target, args.position)
                else:
                    ax = plot.trajectories(target, value=value, position=args.position)
                ax.figure.savefig(out, dpi=args.dpi, bbox_inches="tight", pad_inches=0.05)
                plt.close(ax.figure)
    except FileNotFoundError as e:
        return _fail(f"cannot open {e.filename or args.run}: {e.strerror or e}", 4)
    except FormatError as e:
        return _fail(str(e), 3)
    except ValueError as e:  # a bad --value, a position without target
        return _fail(str(e), 2)
    except OSError as e:
        return _fail(f"cannot write {out}: {e.strerror or e}", 4)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
