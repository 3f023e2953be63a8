"""``python -m backprop_bench``: the same command as ``backprop-bench``."""

import sys

from .bench.cli import main

sys.exit(main())
