"""``python -m crossloop``: the same as the ``crossloop`` command."""

import sys

from .commands import main

sys.exit(main())
