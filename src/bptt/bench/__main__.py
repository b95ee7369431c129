import sys

from bptt.bench.cli import main

sys.exit(main())
