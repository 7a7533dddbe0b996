"""``python -m amt``: the ``amt`` command."""

import sys

from amt.cli import main

sys.exit(main())
