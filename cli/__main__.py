"""``python -m ponder.cli``: the same as the ``ponder`` console script."""

import sys

from ponder.cli.entry import main

sys.exit(main())
