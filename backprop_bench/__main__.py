"""``python -m backprop_bench``: the same command as ``backprop-bench``."""

import sys

from .command import main

sys.exit(main())
