"""``python -m pounce`` is the ``pounce`` command."""

import sys

from pounce.cli import main

sys.exit(main())
