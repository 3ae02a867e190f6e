"""``python -m pounce.bench APP [PATH ...]``: the same as ``pounce bench``."""

from __future__ import annotations

import sys

from pounce.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
