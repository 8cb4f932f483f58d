#!/usr/bin/env python3
"""Saves the logit-lens heatmap of one prompt of a logitlens result file.

    python3 tools/plot_lens.py RUN.h5 --prompt 0 --out lens.png [--value prob|entropy] [--positions 24]

Exit codes as the logitlens command line: 2 bad command line, 3 not a (readable) result file, 4 I/O.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "python"))


def main(argv=None):
    ap = argparse.ArgumentParser(description="Save the logit-lens heatmap of one prompt of a result file.")
    ap.add_argument("run", metavar="RUN.h5")
    ap.add_argument("--prompt", type=int, default=0, help="prompt index (default 0; negative counts from the end)")
    ap.add_argument("--out", required=True, metavar="FIG.png", help="output image (format from the extension)")
    ap.add_argument("--value", choices=("prob", "entropy"), default="prob", help="cell colour (default prob)")
    ap.add_argument("--positions", type=int, default=24, help="show at most the last N positions (default 24)")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import logitlens
    import logitlens.plot

    try:
        with logitlens.open(args.run) as run:
            prompt = run.prompt(args.prompt)
            ax = logitlens.plot.lens_grid(prompt, value=args.value, max_positions=args.positions)
            ax.figure.tight_layout()
            ax.figure.savefig(args.out, dpi=120)
            plt.close(ax.figure)
    except FileNotFoundError as e:
        print(f"plot_lens: cannot open {e.filename or args.run}: {e.strerror or e}", file=sys.stderr)
        return 4
    except IndexError as e:
        print(f"plot_lens: --prompt {args.prompt}: {e}", file=sys.stderr)
        return 2
    except logitlens.FormatError as e:
        print(f"plot_lens: {e}", file=sys.stderr)
        return 3
    except OSError as e:
        print(f"plot_lens: cannot write {args.out}: {e}", file=sys.stderr)
        return 4
    print(f"plot_lens: wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
