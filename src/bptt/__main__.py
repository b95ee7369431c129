"""``python -m bptt``: the same command line as ``bptt``."""

import sys

from bptt.cli import main

sys.exit(main())
