"""``python -m logitlens RUN.h5 ...`` is ``logitlens-plot RUN.h5 ...``."""
import sys

from .cli import main

sys.exit(main())
