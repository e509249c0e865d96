"""``python -m crossloop``: the same as the ``crossloop`` command."""

import sys

from .cli import main

sys.exit(main())
