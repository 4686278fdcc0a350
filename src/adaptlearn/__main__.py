"""``python -m adaptlearn`` is the same program as the ``adaptlearn`` script."""

import sys

from adaptlearn.cli import main

sys.exit(main())
