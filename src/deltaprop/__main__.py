"""``python -m deltaprop`` works like the ``deltaprop`` command."""

import sys

from .cli import main

sys.exit(main())
