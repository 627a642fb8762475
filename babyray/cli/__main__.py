"""``python -m babyray.cli``: the ``babyray`` command."""

import sys

from babyray.cli import main

sys.exit(main())
