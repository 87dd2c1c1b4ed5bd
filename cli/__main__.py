"""``python -m ponder.cli``: the same as the ``ponder`` console script."""

import sys

from ponder.cli.app import main

sys.exit(main())
